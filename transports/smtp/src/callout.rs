//! Recipient verification by callout, for backup MX domains: before a
//! recipient is accepted, the domain's most preferred MX host that is not
//! us is asked whether it would take it — `MAIL FROM:<>`, `RCPT TO:<…>`,
//! `RSET`, `QUIT`; no message is sent.
//!
//! Only a permanent refusal of the recipient counts against it. Anything
//! else that keeps the question from being answered — the primary down or
//! slow, a 4xx, no primary at all — leaves the recipient unverified, and a
//! backup accepts it: the primary being down is when a backup MX is used.
//! The whole callout has a time limit, and answers are kept a short while
//! so that a busy sender does not make us ask the same question again and
//! again.

use super::backup::{BackupPlan, Myself};
use super::client::{ClientSettings, Connection, Security};
use super::{Dns, TlsPolicy};
use faxmta_queue::Reply;
use faxmta_transport::BackupMxHop;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an answer about an address is kept (accepted or refused).
pub const ANSWER_TTL: Duration = Duration::from_secs(600);
/// How long a domain whose primaries could not be asked is not asked
/// again (its recipients are accepted meanwhile).
pub const UNREACHABLE_TTL: Duration = Duration::from_secs(60);
/// Cache entries kept at most; older ones are dropped first.
const CACHE_LIMIT: usize = 10_000;

/// What a callout found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The primary `host` accepted the recipient with `reply`.
    Accepted { host: String, reply: Reply },
    /// The primary `host` refused the recipient permanently with `reply`.
    Refused { host: String, reply: Reply },
    /// The question could not be answered, and why.
    Unverified(String),
}

/// Asks primaries about recipients; one for the whole server.
pub struct Callout {
    dns: Dns,
    client: ClientSettings,
    myself: Myself,
    /// The port MX hosts are contacted on.
    port: u16,
    /// Lower-cased address → when, and the answer.
    answers: Mutex<HashMap<String, (Instant, Verdict)>>,
    /// Domain → when its primaries could not be asked, and why.
    unreachable: Mutex<HashMap<String, (Instant, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forget entries older than `ttl`, and the oldest when there are too many.
fn prune<V>(map: &mut HashMap<String, (Instant, V)>, ttl: Duration) {
    map.retain(|_, (at, _)| at.elapsed() < ttl);
    if map.len() >= CACHE_LIMIT {
        let mut ages: Vec<Instant> = map.values().map(|(at, _)| *at).collect();
        ages.sort();
        let cut = ages[ages.len() / 2];
        map.retain(|_, (at, _)| *at > cut);
    }
}

impl Callout {
    /// `client`: EHLO name and timeouts as for delivery; `port`: the port
    /// MX hosts are contacted on.
    pub fn new(dns: Dns, client: ClientSettings, myself: Myself, port: u16) -> Callout {
        Callout {
            dns,
            client,
            myself,
            port,
            answers: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
        }
    }

    /// Ask the primary of `hop`'s domain about `address`, within `limit`.
    pub async fn verify(&self, hop: &BackupMxHop, address: &str, limit: Duration) -> Verdict {
        let key = address.to_ascii_lowercase();
        if let Some((at, verdict)) = lock(&self.answers).get(&key) {
            if at.elapsed() < ANSWER_TTL {
                return verdict.clone();
            }
        }
        if let Some((at, why)) = lock(&self.unreachable).get(&hop.domain) {
            if at.elapsed() < UNREACHABLE_TTL {
                return Verdict::Unverified(format!("{why} (within the last minute)"));
            }
        }
        let verdict = match tokio::time::timeout(limit, self.ask(hop, address)).await {
            Ok(v) => v,
            Err(_) => Verdict::Unverified(format!(
                "the callout to the primary MX of {} took more than {}s",
                hop.domain,
                limit.as_secs_f32()
            )),
        };
        match &verdict {
            Verdict::Unverified(why) => {
                let mut map = lock(&self.unreachable);
                prune(&mut map, UNREACHABLE_TTL);
                map.insert(hop.domain.clone(), (Instant::now(), why.clone()));
            }
            _ => {
                let mut map = lock(&self.answers);
                prune(&mut map, ANSWER_TTL);
                map.insert(key, (Instant::now(), verdict.clone()));
            }
        }
        verdict
    }

    async fn ask(&self, hop: &BackupMxHop, address: &str) -> Verdict {
        if !address.is_ascii() || address.contains(['\r', '\n', '<', '>']) {
            return Verdict::Unverified(format!("<{address}> cannot be asked about"));
        }
        let plan = match BackupPlan::make(&self.dns, &self.myself, self.port, hop).await {
            Ok(plan) => plan,
            Err(e) => return Verdict::Unverified(format!("backup MX for {}: {e}", hop.domain)),
        };
        let primaries = match plan.primaries() {
            Ok(hosts) => hosts,
            Err(reply) => return Verdict::Unverified(reply.text),
        };
        // No message goes over this connection: TLS only when the
        // domain's policy demands it.
        let tls = match hop.tls {
            TlsPolicy::Required | TlsPolicy::Verify => hop.tls,
            // A callout carries no message; encrypted is enough.
            TlsPolicy::Dane => TlsPolicy::Required,
            TlsPolicy::Off | TlsPolicy::Opportunistic => TlsPolicy::Off,
        };
        let mut why = format!("no primary MX of {} could be reached", hop.domain);
        for host in primaries {
            let Ok(ips) = &host.addrs else { continue };
            for ip in ips {
                let addr = SocketAddr::new(*ip, self.port);
                let security = Security::starttls(tls);
                match Connection::open(addr, &host.mx.name, &self.client, security).await {
                    Ok(mut conn) => {
                        let verdict = converse(&mut conn, address).await;
                        if conn.usable {
                            let _ = conn.command("RSET\r\n", self.client.timeouts.command).await;
                            conn.quit().await;
                        }
                        return verdict;
                    }
                    Err(e) => why = e.reply.text,
                }
            }
        }
        Verdict::Unverified(why)
    }
}

/// `MAIL FROM:<>` and `RCPT TO:<address>` on an open connection.
async fn converse(conn: &mut Connection, address: &str) -> Verdict {
    let timeout = conn.settings.timeouts.command;
    let who = conn.who();
    match conn.command("MAIL FROM:<>\r\n", timeout).await {
        Ok(r) if r.code == 250 => {}
        Ok(r) => return Verdict::Unverified(format!("{who} answered MAIL FROM:<> with {r}")),
        Err(r) => return Verdict::Unverified(r.text),
    }
    match conn
        .command(&format!("RCPT TO:<{address}>\r\n"), timeout)
        .await
    {
        Ok(reply) if reply.code / 100 == 2 => Verdict::Accepted {
            host: conn.host.clone(),
            reply,
        },
        Ok(reply) if reply.is_permanent() => Verdict::Refused {
            host: conn.host.clone(),
            reply,
        },
        Ok(r) => Verdict::Unverified(format!("{who} answered RCPT TO with {r}")),
        Err(r) => Verdict::Unverified(r.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_forgets_old_entries_and_stays_bounded() {
        let mut map: HashMap<String, (Instant, ())> = HashMap::new();
        let old = Instant::now() - Duration::from_secs(120);
        map.insert("old".into(), (old, ()));
        map.insert("new".into(), (Instant::now(), ()));
        prune(&mut map, Duration::from_secs(60));
        assert!(map.contains_key("new") && !map.contains_key("old"));
        let start = Instant::now();
        for i in 0..CACHE_LIMIT {
            map.insert(
                format!("k{i}"),
                (start + Duration::from_millis(i as u64), ()),
            );
        }
        prune(&mut map, Duration::from_secs(3600));
        assert!(map.len() < CACHE_LIMIT, "{}", map.len());
        assert!(map.contains_key(&format!("k{}", CACHE_LIMIT - 1)));
    }
}
