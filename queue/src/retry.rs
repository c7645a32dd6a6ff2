//! The retry schedule: when a deferred recipient is tried again, and when
//! it has been in the queue too long.

use rand::Rng;

/// Retry intervals and the queue lifetime, in seconds.
///
/// After the n-th failed attempt the next one comes `steps[n-1]` later (the
/// last step repeats), spread by ±`jitter` so that many messages deferred
/// together do not all come back in the same second.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub steps: Vec<u64>,
    pub lifetime: u64,
    /// Fraction of the interval to spread by, 0.0 to 0.5.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            steps: vec![60, 300, 900, 3600, 4 * 3600],
            lifetime: 5 * 86_400,
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// The interval before the next attempt, after `attempts` attempts.
    pub fn interval(&self, attempts: u32) -> u64 {
        let idx = (attempts.max(1) as usize - 1).min(self.steps.len().saturating_sub(1));
        let base = self.steps.get(idx).copied().unwrap_or(300);
        let spread = (base as f64 * self.jitter.clamp(0.0, 0.5)) as u64;
        if spread == 0 {
            return base.max(1);
        }
        let low = base - spread;
        rand::thread_rng().gen_range(low..=base + spread).max(1)
    }

    /// When the next attempt is due, or `None` if the message will have
    /// outlived its lifetime by then (counted from `arrival`).
    pub fn next_attempt(
        &self,
        now: u64,
        arrival: u64,
        attempts: u32,
        lifetime: Option<u64>,
    ) -> Option<u64> {
        let expires = arrival + lifetime.unwrap_or(self.lifetime);
        if now >= expires {
            return None;
        }
        // The last try comes at the expiry time itself rather than never.
        Some((now + self.interval(attempts)).min(expires))
    }

    /// Whether a message that arrived at `arrival` has expired at `now`.
    pub fn expired(&self, now: u64, arrival: u64, lifetime: Option<u64>) -> bool {
        now >= arrival + lifetime.unwrap_or(self.lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_and_last_repeats() {
        let p = RetryPolicy {
            steps: vec![10, 100, 1000],
            lifetime: 10_000,
            jitter: 0.0,
        };
        assert_eq!(p.interval(1), 10);
        assert_eq!(p.interval(2), 100);
        assert_eq!(p.interval(3), 1000);
        assert_eq!(p.interval(9), 1000);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let p = RetryPolicy {
            steps: vec![1000],
            lifetime: 10_000,
            jitter: 0.1,
        };
        for _ in 0..200 {
            let i = p.interval(1);
            assert!((900..=1100).contains(&i), "{i}");
        }
    }

    #[test]
    fn last_attempt_lands_on_expiry_then_none() {
        let p = RetryPolicy {
            steps: vec![100],
            lifetime: 150,
            jitter: 0.0,
        };
        assert_eq!(p.next_attempt(1000, 1000, 1, None), Some(1100));
        assert_eq!(p.next_attempt(1100, 1000, 2, None), Some(1150));
        assert_eq!(p.next_attempt(1150, 1000, 3, None), None);
        assert!(p.expired(1150, 1000, None));
        assert!(!p.expired(1150, 1000, Some(1000)));
    }
}
