//! Local delivery over LMTP (RFC 2033), to a server such as Dovecot's
//! LMTP, over TCP or a Unix socket.
//!
//! The recipients of a job share one LMTP server; they go in one
//! transaction on the SMTP client's [`Connection`] in LMTP mode (LHLO, and
//! one reply per accepted recipient after the data), each with its full
//! address in RCPT TO. Each recipient's own reply decides: 2xx delivered,
//! 4xx deferred, 5xx failed (reported to the sender). When the server
//! cannot be reached, or the connection breaks before a recipient's reply,
//! that recipient is deferred. LMTP connections are not kept for reuse
//! (and so never mix with the SMTP pool): one per job, closed with QUIT.

use super::client::{ClientSettings, Connection, HopError, Peer, Security};
use super::mx::Dns;
use super::tls::TlsPolicy;
use faxmta_queue::Reply;
use faxmta_transport::{Job, LmtpTarget, NextHop, Outcome, Status, Transport};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Delivers to LMTP servers ([`NextHop::Lmtp`]).
pub struct LmtpTransport {
    dns: Dns,
    client: ClientSettings,
}

impl LmtpTransport {
    /// `client` is used in LMTP mode whatever its `lmtp` says; host names
    /// of TCP targets are resolved through `dns`.
    pub fn new(dns: Dns, mut client: ClientSettings) -> Self {
        client.lmtp = true;
        LmtpTransport { dns, client }
    }

    /// A connection to `target`, greeted and LHLO said; for a TCP target,
    /// the first of its addresses that answers. No TLS: the server is ours.
    async fn connect(&self, target: &LmtpTarget) -> Result<Connection, HopError> {
        let host = match target {
            LmtpTarget::Unix(path) => return Connection::open_unix(path, &self.client).await,
            LmtpTarget::Tcp(host) => host,
        };
        let ips = if let Ok(ip) = host.name.parse::<IpAddr>() {
            vec![ip]
        } else if host.name.eq_ignore_ascii_case("localhost") {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        } else {
            self.dns.addresses(&host.name).await.map_err(|e| HopError {
                reply: Reply::new(451, "4.4.3", format!("LMTP host {}: {e}", host.name)),
                tls_failed: false,
                tls_failure: None,
            })?
        };
        let mut last = None;
        for ip in ips {
            let addr = SocketAddr::new(ip, host.port);
            let plain = Security::starttls(TlsPolicy::Off);
            match Connection::open(addr, &host.name, &self.client, plain).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HopError {
            reply: Reply::new(451, "4.4.3", format!("LMTP host {}: no address", host.name)),
            tls_failed: false,
            tls_failure: None,
        }))
    }
}

/// The `relay=` of a connection: `host[IP]:port` as for SMTP, or
/// `lmtp:unix:PATH`.
fn relay(conn: &Connection) -> String {
    match &conn.peer {
        Peer::Tcp(addr) => format!("{}[{}]:{}", conn.host, addr.ip(), addr.port()),
        Peer::Unix(path) => format!("lmtp:unix:{}", path.display()),
    }
}

#[async_trait::async_trait]
impl Transport for LmtpTransport {
    fn name(&self) -> &'static str {
        "lmtp"
    }

    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        let all = |status: Status, relay: &str, reply: Reply| -> Vec<Outcome> {
            job.recipients
                .iter()
                .map(|r| Outcome::local(r.index, status, relay, reply.clone()))
                .collect()
        };
        let NextHop::Lmtp(target) = job.next_hop else {
            let reply = Reply::new(
                451,
                "4.3.5",
                format!("lmtp transport cannot deliver to {:?}", job.next_hop),
            );
            return all(Status::Deferred, "none", reply);
        };
        let mut conn = match self.connect(target).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::info!("{}: {}", job.envelope.id, e.reply.text);
                // The LMTP server is ours: its trouble (even a 5xx
                // greeting) is temporary, and the mail waits for it.
                let reply = Reply::new(451, &super::temporary(&e.reply.status), e.reply.text);
                return all(Status::Deferred, &format!("lmtp:{target}"), reply);
            }
        };
        let relay = relay(&conn);
        let outcomes = match conn.send(job.envelope, job.body, job.recipients).await {
            Ok(results) => {
                // A server that does DSN takes success notices on itself
                // (like a remote SMTP server); otherwise LMTP is the final
                // delivery and the notice is ours to send.
                let remote_mta = conn.offers_dsn().then(|| conn.host.clone());
                results
                    .into_iter()
                    .map(|r| Outcome {
                        index: r.index,
                        status: r.status,
                        relay: relay.clone(),
                        reply: r.reply,
                        remote_mta: remote_mta.clone(),
                        relayed: false,
                        tls: None,
                        tls_policy: None,
                        retry_after: None,
                        fax: None,
                        quarantine: false,
                        document: None,
                    })
                    .collect()
            }
            // Refused at MAIL FROM, or the connection broke before any
            // recipient's reply after the data.
            Err(reply) => {
                let status = if reply.is_permanent() {
                    Status::Failed
                } else {
                    Status::Deferred
                };
                all(status, &relay, reply)
            }
        };
        if conn.usable {
            conn.quit().await;
        }
        outcomes
    }
}
