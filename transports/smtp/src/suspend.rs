//! Hosts that did not answer in time, remembered for a while so that the
//! next deliveries to them are deferred at once ("delivery temporarily
//! suspended", as Postfix's queue manager does for a dead destination)
//! instead of each holding a delivery worker for another full timeout.
//!
//! Only timeouts count (connect, greeting, any reply or write): a refused
//! connection or an error reply costs nothing to find out again. A
//! suspended host is skipped like one that cannot be reached, so the next
//! MX host is still tried.

use super::client::is_timeout;
use faxmta_queue::Reply;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More entries than this: the expired ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Host addresses suspended after a timeout, each until a moment.
pub struct Suspended {
    period: Duration,
    hosts: Mutex<HashMap<SocketAddr, (Instant, Reply)>>,
}

impl Suspended {
    /// Suspend hosts for `period` after a timeout (zero: never).
    pub fn new(period: Duration) -> Self {
        Suspended {
            period,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (Instant, Reply)>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply to defer with when `addr` is suspended now.
    pub fn check(&self, addr: SocketAddr) -> Option<Reply> {
        let mut hosts = self.hosts();
        let (until, reply) = hosts.get(&addr)?;
        if Instant::now() < *until {
            return Some(Reply::new(
                451,
                &reply.status,
                format!("delivery temporarily suspended: {}", reply.text),
            ));
        }
        hosts.remove(&addr);
        None
    }

    /// Note the result of talking to `addr`: a timeout suspends it; an
    /// answer in time lifts a suspension.
    pub fn record(&self, addr: SocketAddr, failure: Option<&Reply>) {
        if self.period.is_zero() {
            return;
        }
        let mut hosts = self.hosts();
        match failure.filter(|r| is_timeout(r)) {
            Some(reply) => {
                if hosts.len() >= PRUNE_AT {
                    let now = Instant::now();
                    hosts.retain(|_, (until, _)| *until > now);
                }
                tracing::info!(
                    "{addr}: not answering in time; suspended for {:?}",
                    self.period
                );
                hosts.insert(addr, (Instant::now() + self.period, reply.clone()));
            }
            None => {
                hosts.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_suspend_and_only_for_the_period() {
        let s = Suspended::new(Duration::from_millis(200));
        let a: SocketAddr = "127.0.0.3:25".parse().unwrap();
        let refused = Reply::new(451, "4.4.1", "connect to x[127.0.0.3:25]: refused");
        s.record(a, Some(&refused));
        assert!(s.check(a).is_none(), "a refused connection is cheap");
        let slow = Reply::new(
            451,
            "4.4.1",
            "conversation with x[127.0.0.3:25] timed out while receiving the greeting (3s)",
        );
        s.record(a, Some(&slow));
        let r = s.check(a).expect("suspended");
        assert_eq!((r.code, r.status.as_str()), (451, "4.4.1"));
        assert!(r
            .text
            .starts_with("delivery temporarily suspended: conversation"));
        std::thread::sleep(Duration::from_millis(250));
        assert!(s.check(a).is_none(), "lifted after the period");
        s.record(a, Some(&slow));
        s.record(a, None);
        assert!(s.check(a).is_none(), "an answer lifts it");
        let off = Suspended::new(Duration::ZERO);
        off.record(a, Some(&slow));
        assert!(off.check(a).is_none());
    }
}
