//! ETRN and STARTTLS: the two session commands that hand the connection
//! or the queue to something else (src/etrn.rs, the TLS acceptor).

use super::{Next, Session, TlsInfo};
use crate::server::conn::Deadline;

impl Session {
    /// ETRN (RFC 1985): release the mail held for a domain (src/etrn.rs).
    pub(super) async fn etrn(&mut self, node: &str) -> Next {
        if self.helo.is_none() {
            return self.error(503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "Error: MAIL transaction in progress");
        }
        let ip = self.peer.ip();
        let reply = crate::etrn::release(&self.ctx.router, &self.ctx.store, ip, node).await;
        tracing::info!(client = %self.peer, "ETRN {node} from [{ip}]: {reply}");
        if reply.code / 100 == 2 {
            self.reply(reply.code, &reply.status, &reply.text);
            Next::Continue
        } else {
            self.error(reply.code, &reply.status, &reply.text)
        }
    }

    pub(super) async fn starttls(&mut self) -> Next {
        if self.tls.is_some() {
            return self.error(503, "5.5.1", "Error: TLS already active");
        }
        let Some(acceptor) = self.ctx.tls.clone().filter(|_| self.offers_starttls()) else {
            return self.error(502, "5.5.1", "Error: STARTTLS not offered here");
        };
        self.reply(220, "2.0.0", "Ready to start TLS");
        if let Err(e) = self.conn.flush_by(&Deadline::new(self.timeout())).await {
            tracing::debug!(client = %self.peer, error = ?e, "lost connection before TLS");
            return Next::Close;
        }
        // CVE-2011-0411: what the client pipelined after STARTTLS arrived
        // in plaintext and must not be taken as commands.
        let discarded = self.conn.discard_input();
        if discarded > 0 {
            tracing::warn!(client = %self.peer, bytes = discarded, "discarded plaintext pipelined after STARTTLS");
        }
        if let Err(e) = self.conn.upgrade(&acceptor, self.timeout()).await {
            tracing::info!(client = %self.peer, error = %e, "TLS handshake failed");
            return Next::Close;
        }
        if let crate::server::conn::Stream::Tls(s) = &self.conn.stream {
            let (version, cipher) = crate::server::tls::describe(s.get_ref().1);
            tracing::info!(client = %self.peer, "TLS established: {version} with cipher {cipher}");
            self.ctx
                .metrics
                .tls
                .with_label_values(&["in", &version])
                .inc();
            self.tls = Some(TlsInfo { version, cipher });
        }
        // RFC 3207 §4.2: forget everything learned before TLS.
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        Next::Continue
    }
}
