//! Outbound SMTP: MX resolution, the hosts tried in order, connection
//! reuse, and one outcome per recipient.
//!
//! For a domain the transport asks DNS for its MX hosts (`mx.rs`), skips
//! itself and anything less preferred than itself (RFC 5321 §5.1: "mail
//! loops back to myself"), and tries each host's addresses until one takes
//! the transaction. A host that cannot be reached, greets with an error,
//! or answers MAIL FROM with a temporary error makes way for the next one;
//! once a host accepted MAIL FROM, its recipient replies are final for
//! this attempt.
//!
//! A relay hop (relay-to-host, a smart host) names its hosts itself: they
//! are tried in order, with implicit TLS or STARTTLS and AUTH as the hop
//! says; whatever goes wrong with them (AUTH refused included) defers.
//!
//! A backup MX domain (`backup.rs`) goes only to its MX hosts more
//! preferred than our own entry, and defers when there are none; its
//! recipients can be verified at RCPT time by a callout to those hosts
//! (`callout.rs`).
//!
//! Idle connections are pooled by address *and* by the credentials they
//! authenticated with: an authenticated session is only ever reused for
//! the same host address with the same credentials, never for MX
//! delivery or another account's hop.

mod auth;
mod backup;
mod body;
mod callout;
mod client;
pub mod dane;
pub mod dnssec;
mod domain;
mod etrn;
pub mod interfaces;
mod lmtp;
pub mod mx;
pub mod pop3;
pub mod secure;
pub mod sts;
pub mod tls;
pub mod tlsrpt;
mod transaction;

mod suspend;

pub use backup::{BackupPlan, Myself, PlannedHost};
pub use body::{prepare_body, stuff, Prepared};
pub use callout::{Callout, Verdict};
pub use client::{
    parse_reply, ClientSettings, Connection, HopError, Peer, Security, Signer, Timeouts,
    TlsFailure, TlsInfo, MAX_REPLY_LINE,
};
pub use etrn::{etrn, EtrnAnswer};
pub use lmtp::LmtpTransport;
pub use mx::{Dns, DnsError, MxHost};
pub use secure::{Asked, HostPlan, Planner, SecuritySettings};
pub use tls::{Tls, TlsPolicy};

use faxmta_queue::Reply;
use faxmta_transport::{Credentials, Job, NextHop, Outcome, RelayHop, Status, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle connection is kept for reuse.
const IDLE: Duration = Duration::from_secs(30);
/// A connection is not reused once it is this old (Postfix's
/// `smtp_connection_reuse_time_limit`), so a session a server keeps in a
/// bad state (an old access map, a stuck rate limit) gets replaced.
const REUSE_TIME_LIMIT: Duration = Duration::from_secs(300);

/// What the SMTP transport needs to know.
pub struct SmtpSettings {
    pub client: ClientSettings,
    /// The port MX hosts are contacted on (25; tests use others).
    pub port: u16,
    /// TLS: the configured policy, DANE, per-domain policies.
    pub security: SecuritySettings,
    /// MTA-STS policies (none: MTA-STS is off).
    pub sts: Option<std::sync::Arc<sts::Sts>>,
    /// Where TLS sessions are counted for TLS reports (RFC 8460).
    pub tls_reports: Option<std::sync::Arc<tlsrpt::Recorder>>,
    /// Our names and listeners: an MX host with one of the names, or
    /// whose address and `port` are one of the listeners, is us.
    pub myself: Myself,
    /// More Received headers than this: a mail loop (RFC 5321 §6.3).
    pub max_received: usize,
    /// Idle connections kept per address for reuse; as many as deliveries
    /// may run at once to one destination, so none has to be closed.
    pub idle_per_host: usize,
    /// A host address that timed out is skipped (deliveries to it are
    /// deferred at once) for this long; zero: never.
    pub suspend: Duration,
}

/// What idle connections are kept under: the address, and the
/// credentials the session authenticated with (none: not authenticated).
type PoolKey = (SocketAddr, Option<Credentials>);

/// The outbound SMTP transport.
pub struct SmtpTransport {
    dns: Dns,
    planner: Planner,
    settings: SmtpSettings,
    pool: Mutex<HashMap<PoolKey, Vec<(Instant, Connection)>>>,
    /// Hosts that timed out lately.
    suspended: suspend::Suspended,
}

impl SmtpTransport {
    pub fn new(dns: Dns, settings: SmtpSettings) -> Self {
        SmtpTransport {
            planner: Planner {
                dns: dns.clone(),
                settings: settings.security.clone(),
                port: settings.port,
                sts: settings.sts.clone(),
            },
            dns,
            suspended: suspend::Suspended::new(settings.suspend),
            settings,
            pool: Mutex::new(HashMap::new()),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<(Instant, Connection)>>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection to `key`'s address, authenticated with its
    /// credentials (or not at all), that still answers RSET.
    async fn reuse(&self, key: &PoolKey) -> Option<Connection> {
        loop {
            let candidate = {
                let mut pool = self.pool();
                let list = pool.get_mut(key)?;
                list.retain(|(since, _)| since.elapsed() < IDLE);
                list.pop()
            };
            let (_, mut conn) = candidate?;
            if conn.reset().await {
                return Some(conn);
            }
        }
    }

    fn keep(&self, conn: Connection) {
        if !conn.usable || conn.opened.elapsed() >= REUSE_TIME_LIMIT || conn.settings.lmtp {
            return;
        }
        let Peer::Tcp(addr) = conn.peer else {
            return;
        };
        let mut pool = self.pool();
        let list = pool.entry((addr, conn.authenticated.clone())).or_default();
        if list.len() < self.settings.idle_per_host {
            list.push((Instant::now(), conn));
        }
    }

    /// Whether `addr` is one of our own listeners.
    fn is_self(&self, addr: SocketAddr) -> bool {
        self.settings.myself.is_listener(addr)
    }

    /// A message that went round too often (RFC 5321 §6.3) fails for
    /// every recipient of the job.
    fn loop_check(&self, job: &Job<'_>) -> Option<Vec<Outcome>> {
        let hops = received_count(job.body);
        (hops > self.settings.max_received).then(|| {
            all_outcomes(
                job,
                Status::Failed,
                Reply::new(
                    554,
                    "5.4.6",
                    format!("mail forwarding loop: {hops} Received headers"),
                ),
            )
        })
    }

    async fn open(
        &self,
        addr: SocketAddr,
        host: &str,
        security: Security<'_>,
    ) -> Result<Connection, HopError> {
        let policy = security.tls;
        if let Some(conn) = self.reuse(&(addr, security.auth.cloned())).await {
            if fits(&conn, host, &security) {
                return Ok(conn);
            }
            conn.quit().await;
        }
        match Connection::open(addr, host, &self.settings.client, security).await {
            // Not with credentials: they would not be sent in plaintext
            // anyway (only tls = "off" allows that, and it never comes
            // from a fallback).
            Err(e)
                if e.tls_failed
                    && policy == TlsPolicy::Opportunistic
                    && security.auth.is_none()
                    && !security.implicit_tls =>
            {
                tracing::info!("{host}[{addr}]: {}; trying again without TLS", e.reply.text);
                let plain = Security::starttls(TlsPolicy::Off);
                Connection::open(addr, host, &self.settings.client, plain).await
            }
            other => other,
        }
    }

    /// One host address: connect (or reuse), then the transaction. `Ok`
    /// holds the job's outcomes; `Err` says why the next host should be
    /// tried. `policy` is the TLS policy's description for the log line.
    async fn attempt(
        &self,
        job: &Job<'_>,
        name: &str,
        addr: SocketAddr,
        security: Security<'_>,
        policy: &str,
    ) -> Result<Vec<Outcome>, HopError> {
        if let Some(reply) = self.suspended.check(addr) {
            tracing::info!("{}: {}", job.envelope.id, reply.text);
            return Err(HopError {
                reply,
                tls_failed: false,
                tls_failure: None,
            });
        }
        let result = self.transaction(job, name, addr, security, policy).await;
        let failure = match &result {
            Ok(_) => None,
            Err(e) => Some(&e.reply),
        };
        self.suspended.record(addr, failure);
        result
    }

    /// [`Self::attempt`] on a host that is not suspended.
    async fn transaction(
        &self,
        job: &Job<'_>,
        name: &str,
        addr: SocketAddr,
        security: Security<'_>,
        policy: &str,
    ) -> Result<Vec<Outcome>, HopError> {
        let mut conn = match self.open(addr, name, security).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!("{}: {}", job.envelope.id, e.reply.text);
                return Err(e);
            }
        };
        conn.uses += 1;
        if let Some(tls) = conn.tls.as_ref().filter(|_| conn.uses == 1) {
            tracing::info!(
                "{}: {} TLS connection established to {}[{}]:{}: {} with cipher {}{}",
                job.envelope.id,
                if tls.verified || tls.dane.is_some() {
                    "Verified"
                } else {
                    "Untrusted"
                },
                name,
                addr.ip(),
                addr.port(),
                tls.version,
                tls.cipher,
                match (&tls.dane, &tls.verify_error) {
                    (Some(matched), _) => format!(" (DANE: {matched} matched)"),
                    (None, Some(e)) => format!(" (certificate: {e})"),
                    (None, None) => String::new(),
                }
            );
        }
        let relay = format!("{}[{}]:{}", name, addr.ip(), addr.port());
        let outcome = |index, status, reply, relayed, tls| Outcome {
            index,
            status,
            relay: relay.clone(),
            reply,
            remote_mta: Some(name.to_string()),
            relayed,
            tls,
            tls_policy: Some(policy.to_string()),
            retry_after: None,
            fax: None,
            quarantine: false,
            document: None,
        };
        match conn.send(job.envelope, job.body, job.recipients).await {
            Ok(results) => {
                let dsn = conn.offers_dsn();
                let tls = conn.tls.as_ref().map(|t| t.version.clone());
                self.keep(conn);
                Ok(results
                    .into_iter()
                    .map(|r| {
                        let relayed = r.status == Status::Delivered && !dsn;
                        outcome(r.index, r.status, r.reply, relayed, tls.clone())
                    })
                    .collect())
            }
            Err(reply) if reply.is_permanent() => {
                self.keep(conn);
                Ok(job
                    .recipients
                    .iter()
                    .map(|r| outcome(r.index, Status::Failed, reply.clone(), false, None))
                    .collect())
            }
            Err(reply) => {
                // Temporary at MAIL FROM, or the connection broke: the next
                // host may do better.
                tracing::info!("{}: {}", job.envelope.id, reply.text);
                self.keep(conn);
                Err(HopError {
                    reply,
                    tls_failed: false,
                    tls_failure: None,
                })
            }
        }
    }

    /// Relay-to-host and smart hosts: the configured hosts in order, no
    /// MX lookup; every failure (AUTH refused too) tries the next host,
    /// and when none is left the recipients are deferred.
    async fn to_hosts(&self, job: &Job<'_>, hop: &RelayHop) -> Vec<Outcome> {
        if let Some(failed) = self.loop_check(job) {
            return failed;
        }
        let asked = Asked::of(job);
        let mut last: Option<HopError> = None;
        for host in &hop.hosts {
            let plan = match self.planner.named_host(&host.name, hop.tls, asked).await {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::info!("{}: {}", job.envelope.id, e.reply.text);
                    last = Some(e);
                    continue;
                }
            };
            let policy = plan.as_ref().map_or_else(
                || {
                    format!(
                        "{} (configured for the relay host)",
                        secure::policy_name(hop.tls)
                    )
                },
                |p| p.describe(),
            );
            let security = Security {
                tls: plan.as_ref().map_or(hop.tls, |p| p.tls),
                implicit_tls: hop.implicit_tls_for(host),
                auth: hop.auth.as_ref(),
                dane: plan.as_ref().and_then(|p| p.dane.as_ref()),
                requiretls: asked.requiretls,
            };
            let known = plan
                .as_ref()
                .map(|p| p.addrs.clone())
                .filter(|a| !a.is_empty());
            let ips = match host.name.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) if known.is_some() => known.unwrap_or_default(),
                Err(_) => match self.dns.addresses(&host.name).await {
                    Ok(ips) => ips,
                    Err(e) => {
                        last = Some(HopError {
                            reply: Reply::new(
                                451,
                                "4.4.3",
                                format!("relay host {}: {e}", host.name),
                            ),
                            tls_failed: false,
                            tls_failure: None,
                        });
                        continue;
                    }
                },
            };
            for ip in ips {
                let addr = SocketAddr::new(ip, host.port);
                if self.is_self(addr) {
                    return all_outcomes(
                        job,
                        Status::Failed,
                        Reply::new(
                            554,
                            "5.4.6",
                            format!("relay host {} loops back to myself", host.name),
                        ),
                    );
                }
                match self.attempt(job, &host.name, addr, security, &policy).await {
                    Ok(outcomes) => return outcomes,
                    Err(e) => last = Some(e),
                }
            }
        }
        // Relay hosts are ours to choose: their trouble is temporary —
        // except a REQUIRETLS message none of them can take (RFC 8689).
        if let Some(e) = last.as_ref().filter(|e| e.reply.status == "5.7.30") {
            return all_outcomes(job, Status::Failed, e.reply.clone());
        }
        let reply = last
            .map(|e| Reply::new(451, &temporary(&e.reply.status), e.reply.text))
            .unwrap_or_else(|| Reply::new(451, "4.4.1", "no relay host could be reached"));
        all_outcomes(job, Status::Deferred, reply)
    }
}

#[async_trait::async_trait]
impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        match job.next_hop {
            NextHop::Mx { domain } => self.to_domain(&job, domain).await,
            NextHop::Relay(hop) => self.to_hosts(&job, hop).await,
            NextHop::BackupMx(hop) => self.to_backup(&job, hop).await,
            other => job
                .recipients
                .iter()
                .map(|r| {
                    Outcome::local(
                        r.index,
                        Status::Deferred,
                        "none",
                        Reply::new(
                            451,
                            "4.3.5",
                            format!("smtp transport cannot deliver to {other:?}"),
                        ),
                    )
                })
                .collect(),
        }
    }
}

/// Whether a kept connection may carry a delivery with `security` to
/// `host`: as much TLS as it needs, the certificate verified for the
/// same name (or matched by DANE), REQUIRETLS offered if needed.
fn fits(conn: &Connection, host: &str, security: &Security<'_>) -> bool {
    let tls = conn.tls.as_ref();
    if security.needs_tls() && tls.is_none() {
        return false;
    }
    let same_host = conn.host.eq_ignore_ascii_case(host);
    if security.dane.is_some() && !(same_host && tls.is_some_and(|t| t.dane.is_some())) {
        return false;
    }
    if security.dane.is_none()
        && matches!(security.tls, TlsPolicy::Verify | TlsPolicy::Dane)
        && !(same_host && tls.is_some_and(|t| t.verified))
    {
        return false;
    }
    !security.requiretls || conn.offers_requiretls()
}

/// An enhanced status made temporary: `5.x.y` becomes `4.x.y`.
fn temporary(status: &str) -> String {
    match status.strip_prefix('5') {
        Some(rest) => format!("4{rest}"),
        None => status.to_string(),
    }
}

/// The same outcome for every recipient of a job.
fn all_outcomes(job: &Job<'_>, status: Status, reply: Reply) -> Vec<Outcome> {
    job.recipients
        .iter()
        .map(|r| Outcome::local(r.index, status, "none", reply.clone()))
        .collect()
}

/// Received headers in the header section of a message.
pub fn received_count(body: &[u8]) -> usize {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| body.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(body.len());
    body[..end]
        .split(|&b| b == b'\n')
        .filter(|line| line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_headers_are_counted_in_the_header_only() {
        let body =
            b"Received: a\r\nreceived: b\r\n\tcont\r\nSubject: x\r\n\r\nReceived: in body\r\n";
        assert_eq!(received_count(body), 2);
        assert_eq!(received_count(b"Subject: none\r\n\r\n"), 0);
        assert_eq!(received_count(b""), 0);
    }

    #[test]
    fn statuses_are_made_temporary_by_their_class_only() {
        assert_eq!(temporary("5.4.5"), "4.4.5");
        assert_eq!(temporary("4.5.0"), "4.5.0");
    }
}
