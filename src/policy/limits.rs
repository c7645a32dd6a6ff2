//! Per-client and global limits, kept in memory (what Postfix's anvil
//! does): sessions open at once in all and per client address,
//! connections per client address per minute, and failed AUTH attempts
//! per client address (each answered later than the one before, and
//! after `[auth] max_failures` refused with 421).
//!
//! A client is its IPv4 address, or the /64 network of its IPv6 address
//! (one host, or one customer, typically has a whole /64: counting each
//! address alone would let it open a connection, or try a password, from
//! each of 2^64 addresses).
//!
//! A failed AUTH is counted *before* the password is verified (a
//! reservation, given back when the password was right), so that
//! attempts made in parallel cannot all pass the `max_failures` check
//! before any of them is counted.
//!
//! Clients in `[relay] allow` are exempt from the per-address connection
//! limits (Postfix: `smtpd_client_event_limit_exceptions = $mynetworks`),
//! not from the total.
//!
//! It also says when the server is under stress (Postfix's `stress`
//! parameter): from `stress_threshold` percent of `max_connections` open
//! sessions until they fall to three quarters of that; sessions then wait
//! for their client at most `stress_timeout` (src/server/conn.rs), so
//! idle and slow clients make room for new ones.

use super::lists;
use crate::config::Config;
use faxmta_queue::Reply;
use ipnet::IpNet;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The span of `max_connection_rate`.
const RATE_SPAN: Duration = Duration::from_secs(60);

/// Which connection limit refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections`
    Total,
    /// `max_connections_per_ip`
    PerIp,
    /// `max_connection_rate`
    Rate,
}

impl Refusal {
    /// The `limit` label of `faxmta_smtp_limits_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "connections",
            Refusal::PerIp => "connections_per_ip",
            Refusal::Rate => "connection_rate",
        }
    }

    /// The greeting that refuses the connection.
    pub fn reply(self, ip: IpAddr) -> Reply {
        let ip = lists::canonical(ip);
        let text = match self {
            Refusal::Total => "Error: too many connections, try again later".to_string(),
            Refusal::PerIp => format!("Error: too many connections from [{ip}]"),
            Refusal::Rate => format!("Error: too many connections from [{ip}] in the last minute"),
        };
        Reply::new(421, "4.7.0", text)
    }
}

#[derive(Default)]
struct Client {
    active: usize,
    /// Connection times within the last minute (at most rate + 1 kept).
    connects: VecDeque<Instant>,
    /// Failed AUTH times within the failure window.
    auth_failures: VecDeque<Instant>,
}

/// What `[smtp]`, `[relay] allow` and `[auth]` set (replaced by a
/// reload; the counts stay).
struct Thresholds {
    max_total: usize,
    per_ip: usize,
    rate: usize,
    exempt: Vec<IpNet>,
    auth_max: u32,
    auth_delay: Duration,
    auth_window: Duration,
    /// Open sessions that start stress (0: never) and that end it.
    stress_on: usize,
    stress_off: usize,
}

impl Thresholds {
    fn new(config: &Config) -> Thresholds {
        let smtp = &config.smtp;
        let stress_on = match smtp.stress_threshold {
            0 => 0,
            pct => (smtp.max_connections * pct as usize).div_ceil(100).max(1),
        };
        Thresholds {
            stress_on,
            stress_off: stress_on * 3 / 4,
            max_total: smtp.max_connections,
            per_ip: smtp.max_connections_per_ip,
            rate: smtp.max_connection_rate,
            exempt: config.relay.allow.clone(),
            auth_max: config.auth.max_failures,
            auth_delay: config.auth.failure_delay.std(),
            auth_window: config.auth.failure_window.std(),
        }
    }
}

struct State {
    t: Thresholds,
    total: usize,
    clients: HashMap<IpAddr, Client>,
    last_sweep: Instant,
}

/// The limits and what they count.
pub struct Limits {
    stress: watch::Sender<bool>,
    state: Mutex<State>,
    /// Places for password verifications at once (`[auth]
    /// max_verifications`): made at start, kept across reloads, shared by
    /// every users file ([`crate::policy::users::UserDb`]).
    pub verifications: Arc<tokio::sync::Semaphore>,
}

/// A session being open; dropping it gives its place back.
pub struct Permit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.limits.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(c) = state.clients.get_mut(&self.ip) {
            c.active = c.active.saturating_sub(1);
        }
        self.limits.update_stress(&state.t, state.total);
    }
}

/// The client an address counts for: the IPv4 address (an IPv4-mapped
/// IPv6 address is its IPv4 address), or the /64 of an IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match lists::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// A failed AUTH counted before the password is verified
/// ([`Limits::auth_attempt`]): how long to wait before answering it
/// should it fail, and whether it is the last one allowed. Given back by
/// [`Limits::auth_succeeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthAttempt {
    key: IpAddr,
    at: Instant,
    pub delay: Duration,
    pub last: bool,
}

/// Drop the times in `q` older than `span`.
fn expire(q: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= span) {
        q.pop_front();
    }
}

impl Limits {
    pub fn new(config: &Config) -> Limits {
        Limits {
            verifications: Arc::new(tokio::sync::Semaphore::new(
                config.auth.max_verifications.max(1),
            )),
            stress: watch::channel(false).0,
            state: Mutex::new(State {
                t: Thresholds::new(config),
                total: 0,
                clients: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// A reload: the new thresholds apply to the next connection and the
    /// next AUTH failure; what is counted (open sessions, recent
    /// connections and failures) is kept.
    pub fn reconfigure(&self, config: &Config) {
        let mut state = self.lock();
        state.t = Thresholds::new(config);
        let total = state.total;
        self.update_stress(&state.t, total);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A new connection from `ip`: its permit, or the limit it hits.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let key = client_key(ip);
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        self.sweep(state, now);
        let t = &state.t;
        let exempt = lists::contains(&t.exempt, ip);
        if state.total >= t.max_total {
            return Err(Refusal::Total);
        }
        let client = state.clients.entry(key).or_default();
        if !exempt {
            if t.rate > 0 {
                // Every attempt counts, refused ones too: a client that
                // keeps hammering stays refused.
                expire(&mut client.connects, now, RATE_SPAN);
                client.connects.push_back(now);
                while client.connects.len() > t.rate + 1 {
                    client.connects.pop_front();
                }
                if client.connects.len() > t.rate {
                    return Err(Refusal::Rate);
                }
            }
            if t.per_ip > 0 && client.active >= t.per_ip {
                return Err(Refusal::PerIp);
            }
        }
        client.active += 1;
        state.total += 1;
        self.update_stress(&state.t, state.total);
        Ok(Permit {
            limits: self.clone(),
            ip: key,
        })
    }

    /// Whether the server is under stress, now and as it changes.
    pub fn stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    /// Enter or leave stress with `total` sessions open (called under the
    /// state lock, so that changes come in order).
    fn update_stress(&self, t: &Thresholds, total: usize) {
        let now = *self.stress.borrow();
        let next = if t.stress_on == 0 {
            false
        } else if now {
            total > t.stress_off
        } else {
            total >= t.stress_on
        };
        if next != now {
            self.stress.send_replace(next);
            if next {
                tracing::warn!(
                    sessions = total,
                    "under stress: {total} sessions open (max_connections {}); clients now get stress_timeout",
                    t.max_total
                );
            } else {
                tracing::info!(sessions = total, "stress over: {total} sessions open");
            }
        }
    }

    /// Forget clients with nothing to remember, once a minute.
    fn sweep(&self, state: &mut State, now: Instant) {
        if now.duration_since(state.last_sweep) < RATE_SPAN {
            return;
        }
        state.last_sweep = now;
        let window = state.t.auth_window;
        state.clients.retain(|_, c| {
            expire(&mut c.connects, now, RATE_SPAN);
            expire(&mut c.auth_failures, now, window);
            c.active > 0 || !c.connects.is_empty() || !c.auth_failures.is_empty()
        });
    }

    /// Whether `ip` has used up its AUTH failures (421 to its AUTH).
    pub fn auth_blocked(&self, ip: IpAddr) -> bool {
        let key = client_key(ip);
        let now = Instant::now();
        let mut state = self.lock();
        let (window, max) = (state.t.auth_window, state.t.auth_max);
        match state.clients.get_mut(&key) {
            Some(c) => {
                expire(&mut c.auth_failures, now, window);
                c.auth_failures.len() >= max as usize
            }
            None => false,
        }
    }

    /// An AUTH from `ip` is about to verify a password: count it as
    /// failed now (n × `failure_delay` to answer the n-th failure in the
    /// window), or `None` when `ip` has used up its failures — then no
    /// password is verified at all.
    pub fn auth_attempt(&self, ip: IpAddr) -> Option<AuthAttempt> {
        let key = client_key(ip);
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let (window, delay, max) = (state.t.auth_window, state.t.auth_delay, state.t.auth_max);
        let c = state.clients.entry(key).or_default();
        expire(&mut c.auth_failures, now, window);
        if c.auth_failures.len() >= max as usize {
            return None;
        }
        c.auth_failures.push_back(now);
        let n = c.auth_failures.len();
        Some(AuthAttempt {
            key,
            at: now,
            delay: delay.saturating_mul(n.min(30) as u32),
            last: n >= max as usize,
        })
    }

    /// The password of `attempt` was right: its failure is given back.
    pub fn auth_succeeded(&self, attempt: &AuthAttempt) {
        let mut state = self.lock();
        if let Some(c) = state.clients.get_mut(&attempt.key) {
            if let Some(pos) = c.auth_failures.iter().rposition(|t| *t == attempt.at) {
                c.auth_failures.remove(pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn limits(smtp: &str) -> Arc<Limits> {
        let text = format!(
            "[smtp]\n{smtp}\n[relay]\nallow = [\"127.0.0.9/32\"]\n[auth]\nmax_failures = 3\n"
        );
        Arc::new(Limits::new(
            &Config::parse(Path::new("t.toml"), &text).unwrap(),
        ))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_in_all_and_per_address() {
        let l = limits("max_connections = 3\nmax_connections_per_ip = 2");
        let a1 = l.admit(ip("127.0.0.1")).unwrap();
        let _a2 = l.admit(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(l.admit(ip("127.0.0.1")).err(), Some(Refusal::PerIp));
        let _b = l.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(l.admit(ip("127.0.0.3")).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = l.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(
            Refusal::PerIp.reply(ip("::ffff:127.0.0.1")).to_string(),
            "421 4.7.0 Error: too many connections from [127.0.0.1]"
        );
    }

    #[test]
    fn connection_rate_and_exemptions() {
        let l = limits("max_connection_rate = 2\nmax_connections_per_ip = 1");
        drop(l.admit(ip("127.0.0.1")).unwrap());
        drop(l.admit(ip("127.0.0.1")).unwrap());
        assert_eq!(l.admit(ip("127.0.0.1")).err(), Some(Refusal::Rate));
        assert_eq!(l.admit(ip("127.0.0.1")).err(), Some(Refusal::Rate));
        // [relay] allow is exempt from both per-address limits.
        let _x: Vec<Permit> = (0..5).map(|_| l.admit(ip("127.0.0.9")).unwrap()).collect();
    }

    #[test]
    fn stress_starts_at_the_threshold_and_ends_at_three_quarters() {
        let l = limits("max_connections = 10\nmax_connections_per_ip = 0\nstress_threshold = 80");
        let stress = l.stress();
        let mut open: Vec<Permit> = (0..7).map(|_| l.admit(ip("127.0.0.1")).unwrap()).collect();
        assert!(!*stress.borrow());
        open.push(l.admit(ip("127.0.0.1")).unwrap());
        assert!(*stress.borrow(), "8 of 10 open");
        open.truncate(7);
        assert!(*stress.borrow(), "still above 6");
        open.truncate(6);
        assert!(!*stress.borrow(), "down to 6: over");
        let never = limits("max_connections = 2\nmax_connections_per_ip = 0\nstress_threshold = 0");
        let _all: Vec<Permit> = (0..2)
            .map(|_| never.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert!(!*never.stress().borrow());
    }

    fn failed(l: &Limits, who: IpAddr) -> Option<(Duration, bool)> {
        l.auth_attempt(who).map(|a| (a.delay, a.last))
    }

    #[test]
    fn auth_failures_grow_slower_then_block() {
        let l = limits("");
        let who = ip("127.0.0.1");
        assert!(!l.auth_blocked(who));
        assert_eq!(failed(&l, who), Some((Duration::from_secs(1), false)));
        assert_eq!(failed(&l, who), Some((Duration::from_secs(2), false)));
        assert!(!l.auth_blocked(who));
        assert_eq!(failed(&l, who), Some((Duration::from_secs(3), true)));
        assert!(l.auth_blocked(who));
        assert_eq!(failed(&l, who), None, "no fourth verification");
        assert!(!l.auth_blocked(ip("127.0.0.2")));
    }

    #[test]
    fn attempts_are_counted_before_the_verification_and_given_back_on_success() {
        let l = limits("");
        let who = ip("127.0.0.1");
        // Three attempts at once (max_failures = 3): all three are
        // counted before any password is checked; a fourth is refused.
        let held: Vec<AuthAttempt> = (0..3).map(|_| l.auth_attempt(who).unwrap()).collect();
        assert!(l.auth_attempt(who).is_none());
        assert!(l.auth_blocked(who));
        // One of them had the right password: its place comes back.
        l.auth_succeeded(&held[1]);
        assert!(!l.auth_blocked(who));
        assert!(l.auth_attempt(who).is_some());
        assert!(l.auth_attempt(who).is_none());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let l = limits("max_connections = 10\nmax_connections_per_ip = 2");
        let _a = l.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = l.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8:1:2:1234::5")).err(),
            Some(Refusal::PerIp),
            "a third address of the same /64"
        );
        let _c = l.admit(ip("2001:db8:1:3::1")).unwrap();
        // AUTH failures too: three from three addresses of one /64.
        for host in ["2001:db8:9:9::1", "2001:db8:9:9::2", "2001:db8:9:9:ffff::3"] {
            assert!(l.auth_attempt(ip(host)).is_some());
        }
        assert!(l.auth_blocked(ip("2001:db8:9:9::77")));
        assert!(l.auth_attempt(ip("2001:db8:9:9::78")).is_none());
        assert!(!l.auth_blocked(ip("2001:db8:9:a::1")));
    }
}
