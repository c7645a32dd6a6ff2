//! The message content of a session: DATA and BDAT, streamed into the
//! queue's body file as it arrives (`incoming.rs`), then the commit — the
//! 250 comes only after [`faxmta_queue::QueueStore::enqueue_body`] returned
//! (invariant 1).

use super::incoming::{Incoming, Received, Refused};
use super::{Next, Session, HEADER_TOO_BIG, NO_ROOM, TOO_BIG};
use crate::config::Role;
use crate::server::conn::{Deadline, ReadError};
use crate::server::data::{DataError, DataReader};
use crate::server::received::{protocol_name, received_header};
use faxmta_queue::{ClientInfo, NewMessage, NewRecipient};

/// A lifetime of its own that every recipient shares (all are in backup
/// MX domains with the same lifetime) becomes the message's
/// (`Envelope::lifetime`); otherwise each recipient keeps its own, and
/// those without one have the queue's.
fn shared_lifetime(recipients: &mut [NewRecipient]) -> Option<u64> {
    let first = recipients.first()?.lifetime?;
    if recipients.iter().any(|r| r.lifetime != Some(first)) {
        return None;
    }
    for r in recipients {
        r.lifetime = None;
    }
    Some(first)
}

impl Session {
    pub(super) async fn data(&mut self) -> Next {
        match &self.tx {
            None => return self.error(503, "5.5.1", "Error: need MAIL command"),
            Some(tx) if tx.recipients.is_empty() => {
                return self.error(554, "5.5.1", "Error: no valid recipients")
            }
            Some(tx) if tx.incoming.is_some() || tx.chunk_error.is_some() => {
                return self.error(503, "5.5.1", "Error: DATA after BDAT")
            }
            Some(_) => {}
        }
        let mut incoming = self.begin_incoming();
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        let smtp = &self.ctx.config.smtp;
        let mut reader = DataReader::new(
            smtp.bare_newline,
            smtp.max_message_size.0 as usize,
            smtp.max_data_line,
        );
        // The whole message within data_timeout, plus a second per
        // min_data_rate octets received.
        let rate = smtp.min_data_rate;
        let mut deadline = Deadline::new(smtp.data_timeout.std());
        let mut received = self.conn.buffered().len() as u64;
        loop {
            let end = reader.feed(self.conn.buffered());
            if !reader.failed() {
                incoming.take(reader.output()).await;
            }
            reader.clear_output();
            if let Some(n) = end {
                self.conn.consume(n);
                break;
            }
            let all = self.conn.buffered().len();
            self.conn.consume(all);
            deadline.earn(received, rate);
            match self.conn.fill(&deadline).await {
                Ok(n) => received += n as u64,
                Err(ReadError::Timeout) => {
                    // Nothing was acknowledged: the partial message is dropped.
                    self.timed_out_in_data(received);
                    self.tx = None;
                    return Next::Close;
                }
                Err(_) => {
                    tracing::info!(client = %self.peer, "lost connection after DATA; message dropped, not acknowledged");
                    self.tx = None;
                    return Next::Close;
                }
            }
        }
        match reader.finish() {
            Ok(rest) => {
                incoming.take(&rest).await;
                self.finish_message(incoming).await
            }
            Err(e) => {
                drop(incoming);
                self.tx = None;
                let (code, status, text) = match e {
                    DataError::TooBig => TOO_BIG,
                    DataError::LineTooLong => (
                        554,
                        "5.6.0",
                        "Message refused: a text line is longer than RFC 5321 allows",
                    ),
                    DataError::BareNewline => (
                        554,
                        "5.6.0",
                        "Message refused: bare CR or LF in message text (only CRLF line ends are allowed)",
                    ),
                };
                tracing::info!(client = %self.peer, "NOQUEUE: reject: DATA from [{}]: {code} {status} {text}", self.peer.ip());
                self.error(code, status, text)
            }
        }
    }

    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Next {
        // The chunk must be read whatever happens, or its bytes would be
        // taken for commands.
        let max = self.ctx.config.smtp.max_message_size.0 as usize;
        let mut chunk_error = None;
        let keep = match &self.tx {
            None => {
                chunk_error = Some((503, "5.5.1", "Error: need MAIL command"));
                false
            }
            Some(tx) if tx.recipients.is_empty() => {
                chunk_error = Some((554, "5.5.1", "Error: no valid recipients"));
                false
            }
            Some(tx) => {
                let so_far = tx.incoming.as_ref().map_or(0, |i| i.size as usize);
                tx.chunk_error.is_none() && so_far.saturating_add(size) <= max
            }
        };
        if keep && self.tx.as_ref().is_some_and(|tx| tx.incoming.is_none()) {
            let incoming = self.begin_incoming();
            if let Some(tx) = self.tx.as_mut() {
                tx.incoming = Some(incoming);
            }
        }
        let mut left = size;
        // The chunk within data_timeout, plus a second per min_data_rate
        // octets received.
        let smtp = &self.ctx.config.smtp;
        let rate = smtp.min_data_rate;
        let mut deadline = Deadline::new(smtp.data_timeout.std());
        let mut received = 0u64;
        loop {
            let take = left.min(self.conn.buffered().len());
            if keep {
                if let Some(incoming) = self.tx.as_mut().and_then(|tx| tx.incoming.as_mut()) {
                    incoming.take(&self.conn.buffered()[..take]).await;
                }
            }
            self.conn.consume(take);
            left -= take;
            received += take as u64;
            if left == 0 {
                break;
            }
            deadline.earn(received, rate);
            if let Err(e) = self.conn.fill(&deadline).await {
                if let ReadError::Timeout = e {
                    self.timed_out_in_data(received);
                }
                self.tx = None;
                return Next::Close;
            }
        }
        if let Some((code, status, text)) = chunk_error {
            return self.error(code, status, text);
        }
        let Some(tx) = self.tx.as_mut() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        if !keep && tx.chunk_error.is_none() {
            tx.chunk_error = Some(TOO_BIG);
            // The body file goes.
            tx.incoming = None;
        }
        if let Some((code, status, text)) = tx.chunk_error {
            if last {
                self.tx = None;
            }
            return self.error(code, status, text);
        }
        if !last {
            self.reply(250, "2.0.0", &format!("{size} octets received"));
            return Next::Continue;
        }
        let Some(incoming) = tx.incoming.take() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        self.finish_message(incoming).await
    }

    /// The data deadline fell: log, count, and queue the 421.
    fn timed_out_in_data(&mut self, received: u64) {
        tracing::info!(
            client = %self.peer,
            "timeout after {received} octets of message data from [{}]; message dropped, not acknowledged",
            self.peer.ip()
        );
        self.count_limit("data_timeout");
        self.conn
            .queue("421 4.4.2 Error: timeout exceeded, closing connection\r\n");
    }

    /// The checks after the data (DKIM, DMARC; not for trusted clients)
    /// and the header fields that record them and the SPF verdict:
    /// Authentication-Results, Received-SPF, X-Spam-Flag. `Err`: the
    /// message is refused (DMARC p=reject under `dmarc = "reject"`).
    async fn authenticate(
        &self,
        tx: &super::Transaction,
        msg: &Received,
        helo: &str,
        trusted: bool,
    ) -> Result<Vec<u8>, faxmta_queue::Reply> {
        use crate::config::policy::{DkimMode, DmarcMode};
        let Some(auth) = self.ctx.auth.as_ref() else {
            return Ok(Vec::new());
        };
        let dkim = self.checks.dkim == DkimMode::Verify && !trusted;
        let dmarc = if trusted {
            DmarcMode::Off
        } else {
            self.checks.dmarc
        };
        let spf = tx.spf.as_ref();
        let eval = if dkim || dmarc != DmarcMode::Off {
            let mail_from_domain = match tx.sender.rsplit_once('@') {
                Some((_, d)) => d.to_ascii_lowercase(),
                None => helo.to_ascii_lowercase(),
            };
            auth.after_data(
                &msg.header,
                msg.body_hashes.as_deref(),
                dkim,
                dmarc,
                spf,
                &mail_from_domain,
            )
            .await
        } else {
            Default::default()
        };
        if let Some(reply) = eval.reject {
            return Err(reply);
        }
        let hostname = &self.ctx.config.hostname;
        let mut headers = String::new();
        if let Some(ar) = crate::policy::dmarc::authentication_results(hostname, spf, &eval) {
            headers.push_str(&ar);
        }
        if let Some(v) = spf {
            headers.push_str(&v.received_spf(hostname));
        }
        if tx.spam_flag || eval.quarantine {
            headers.push_str("X-Spam-Flag: YES\r\n");
        }
        Ok(headers.into_bytes())
    }

    /// The reply when the queue cannot take a message: 452 4.3.1 for a
    /// full disk (the client should try again later), else 451 4.3.0.
    fn queue_error(&mut self, e: &faxmta_queue::QueueError) {
        if let faxmta_queue::QueueError::NoRoom { .. } = e {
            // Below the reserve (`[queue] min_free`).
            self.reply(452, "4.3.1", NO_ROOM);
            return;
        }
        let (code, status) = if e.is_disk_full() {
            (452, "4.3.1")
        } else {
            (451, "4.3.0")
        };
        self.reply(
            code,
            status,
            "Error: queue file write error, try again later",
        );
    }

    /// Start receiving a message into the queue: a queue id and its body
    /// file (or why there is none, answered after the data).
    fn begin_incoming(&self) -> Incoming {
        let store = &self.ctx.store;
        // DKIM or DMARC will be verified: hash the body as it goes by.
        let want_dkim = self.ctx.auth.is_some()
            && !self.may_relay()
            && (self.checks.dkim == crate::config::policy::DkimMode::Verify
                || self.checks.dmarc != crate::config::policy::DmarcMode::Off);
        Incoming::begin(
            store,
            store.new_id(),
            self.ctx.config.queue.min_free.0,
            want_dkim,
            &self.ctx.config.hostname,
        )
    }

    /// Store the message durably, then answer 250 (or a 4xx if the store
    /// failed: the client keeps the message and tries again).
    async fn finish_message(&mut self, incoming: Incoming) -> Next {
        let Some(tx) = self.tx.take() else {
            return self.error(503, "5.5.1", "Error: need MAIL command");
        };
        let id = incoming.id().cloned();
        let msg = match incoming.finish().await {
            Ok(msg) => msg,
            Err(Refused::HeaderTooBig) => {
                let (code, status, text) = HEADER_TOO_BIG;
                tracing::info!(client = %self.peer, "NOQUEUE: reject: DATA from [{}]: {code} {status} {text}", self.peer.ip());
                return self.error(code, status, text);
            }
            Err(Refused::Queue(e)) if matches!(e, faxmta_queue::QueueError::NoRoom { .. }) => {
                tracing::warn!(client = %self.peer, "NOQUEUE: reject: DATA from [{}]: 452 4.3.1 {e}", self.peer.ip());
                self.queue_error(&e);
                return Next::Continue;
            }
            Err(Refused::Queue(e)) => {
                match &id {
                    Some(id) => {
                        tracing::error!(error = %e, "{id}: cannot store message from <{}>", tx.sender)
                    }
                    None => {
                        tracing::error!(error = %e, "cannot start a queue file for <{}>", tx.sender)
                    }
                }
                self.queue_error(&e);
                return Next::Continue;
            }
        };
        let id = msg.writer.id().clone();
        let auth_user = self.auth_user.as_ref().map(|u| u.name.clone());
        let protocol = protocol_name(
            self.esmtp,
            tx.smtputf8,
            self.tls.is_some(),
            auth_user.is_some(),
        );
        let helo = self.helo.clone().unwrap_or_default();
        let ip = self.peer.ip();
        // Authenticated users and [relay] allow: not checked, DKIM-signed.
        let trusted = self.may_relay();
        // DKIM and DMARC on the message as received, then the headers
        // that record them above our Received (RFC 7208 §9.1, RFC 8601 §5).
        let mut head = match self.authenticate(&tx, &msg, &helo, trusted).await {
            Ok(headers) => headers,
            Err(reply) => {
                tracing::info!(
                    client = %self.peer,
                    "NOQUEUE: reject: END-OF-MESSAGE from [{ip}]: {reply}; from=<{}>",
                    tx.sender
                );
                return self.error(reply.code, &reply.status, &reply.text);
            }
        };
        let for_rcpt = (tx.recipients.len() == 1).then(|| tx.recipients[0].address.as_str());
        head.extend(received_header(
            &helo,
            self.peer.ip(),
            &self.ctx.config.hostname,
            protocol,
            &id,
            self.tls.as_ref(),
            auth_user.as_deref(),
            for_rcpt,
        ));
        // Authentication-Results claiming our authserv-id are forged:
        // ours are the ones above (RFC 8601 §5); they were left out of the
        // client's header section as it was written.
        let hostname = &self.ctx.config.hostname;
        let forged = msg.forged;
        if forged > 0 {
            tracing::info!(
                "{id}: removed {forged} Authentication-Results field(s) claiming authserv-id {hostname}"
            );
        }
        let nrcpt = tx.recipients.len();
        let sender = tx.sender.clone();
        let mut recipients = tx.recipients;
        let lifetime = shared_lifetime(&mut recipients);
        let message = NewMessage {
            sender: tx.sender,
            recipients,
            client: ClientInfo {
                addr: self.peer.ip().to_string(),
                helo,
                auth_user,
                protocol: protocol.to_string(),
                trusted,
            },
            body_type: tx.body_type,
            smtputf8: tx.smtputf8,
            requiretls: tx.requiretls,
            ret: tx.ret,
            envid: tx.envid,
            held: false,
            lifetime,
        };
        let head = String::from_utf8(head)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        match self.ctx.store.enqueue_body(message, msg.writer, head).await {
            Ok(env) => {
                tracing::info!(
                    "{id}: from=<{sender}>, size={}, nrcpt={nrcpt}, client={}[{}], proto={protocol}",
                    env.size,
                    env.client.helo,
                    self.peer.ip()
                );
                self.reply(250, "2.0.0", &format!("Ok: queued as {id}"));
                // As Postfix: the junk command count starts over.
                self.junk = 0;
                let source = match self.listener.role {
                    Role::Mx => "mx",
                    Role::Submission => "submission",
                };
                self.ctx.metrics.received.with_label_values(&[source]).inc();
            }
            Err(e @ faxmta_queue::QueueError::NoRoom { .. }) => {
                tracing::warn!(client = %self.peer, "NOQUEUE: reject: END-OF-MESSAGE from [{}]: 452 4.3.1 {e}", self.peer.ip());
                self.queue_error(&e);
            }
            Err(e) => {
                tracing::error!(error = %e, "{id}: cannot store message from <{sender}>");
                self.queue_error(&e);
            }
        }
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(lifetime: Option<u64>) -> NewRecipient {
        NewRecipient {
            lifetime,
            ..NewRecipient::new("x@y")
        }
    }

    #[test]
    fn a_lifetime_all_recipients_share_goes_to_the_message() {
        let mut all = vec![rcpt(Some(30)), rcpt(Some(30))];
        assert_eq!(shared_lifetime(&mut all), Some(30));
        assert!(all.iter().all(|r| r.lifetime.is_none()));

        for mut mixed in [
            vec![rcpt(Some(30)), rcpt(None)],
            vec![rcpt(None), rcpt(Some(30))],
            vec![rcpt(Some(30)), rcpt(Some(7))],
        ] {
            let before = mixed.clone();
            assert_eq!(shared_lifetime(&mut mixed), None);
            assert_eq!(mixed, before, "each keeps its own");
        }
        assert_eq!(shared_lifetime(&mut [rcpt(None)]), None);
        assert_eq!(shared_lifetime(&mut []), None);
    }
}
