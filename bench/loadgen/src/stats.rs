//! The figures `loadgen` collects and its one-line `key=value` report.

use std::time::Duration;

use crate::args::Args;
use crate::session::Outcome;

/// Every sample is kept (µs) and sorted at the end.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// DATA-end-to-reply of each accepted message, µs.
    pub latency_us: Vec<u32>,
    /// Start minus due time of each message sent, µs.
    pub lag_us: Vec<u32>,
    pub accepted: u64,
    /// Replies that were not 2xx (354 for DATA).
    pub non2xx: u64,
    /// Messages that started more than `--late-ms` after their due time.
    pub late: u64,
    /// Messages not offered: due after the deadline, or their session died.
    pub unsent: u64,
    /// Sessions that failed to open or died on an I/O error.
    pub errors: u64,
    pub connected: u64,
    /// Sessions still busy at the hard end.
    pub abandoned: u64,
    /// When the last message was accepted (the achieved rate's end: not a
    /// session that hangs until the deadline).
    pub last_accepted: Option<tokio::time::Instant>,
    /// The first reply that was not 2xx, for stderr.
    pub first_refusal: Option<String>,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Stats {
    pub fn record(&mut self, outcome: Outcome, lag: Duration, late: Duration) {
        self.lag_us.push(us(lag));
        if lag > late {
            self.late += 1;
        }
        match outcome {
            Outcome::Accepted(t) => {
                self.accepted += 1;
                self.latency_us.push(us(t));
            }
            Outcome::Refused(reply) => {
                self.non2xx += 1;
                self.first_refusal.get_or_insert(reply);
            }
        }
    }

    /// `sent= accepted= non2xx= … p50_ms= …`, for a shell to read.
    pub fn report(&self, a: &Args, t0: tokio::time::Instant, elapsed: Duration) -> String {
        let mut lat = self.latency_us.clone();
        lat.sort_unstable();
        let mut lag = self.lag_us.clone();
        lag.sort_unstable();
        let secs = elapsed.as_secs_f64();
        let busy = self
            .last_accepted
            .map_or(0.0, |t| t.saturating_duration_since(t0).as_secs_f64());
        let achieved = if busy > 0.0 {
            self.accepted as f64 / busy
        } else {
            0.0
        };
        let f = [
            ("sent", self.lag_us.len().to_string()),
            ("accepted", self.accepted.to_string()),
            ("non2xx", self.non2xx.to_string()),
            ("unsent", self.unsent.to_string()),
            ("errors", self.errors.to_string()),
            ("abandoned", self.abandoned.to_string()),
            ("sessions", format!("{}/{}", self.connected, a.sessions)),
            ("seconds", format!("{secs:.2}")),
            ("rate_offered", format!("{}", a.rate)),
            ("rate_achieved", format!("{achieved:.1}")),
            ("p50_ms", ms(percentile(&lat, 50.0))),
            ("p90_ms", ms(percentile(&lat, 90.0))),
            ("p99_ms", ms(percentile(&lat, 99.0))),
            ("max_ms", ms(lat.last().copied())),
            ("late", self.late.to_string()),
            ("lag_p50_ms", ms(percentile(&lag, 50.0))),
            ("lag_p99_ms", ms(percentile(&lag, 99.0))),
            ("lag_max_ms", ms(lag.last().copied())),
        ];
        f.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn ms(v: Option<u32>) -> String {
    v.map_or_else(|| "-".into(), |us| format!("{:.2}", f64::from(us) / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn lag_over_the_threshold_counts_as_late() {
        let mut s = Stats::default();
        let late = Duration::from_millis(2);
        s.record(
            Outcome::Accepted(Duration::from_millis(1)),
            Duration::from_millis(1),
            late,
        );
        s.record(
            Outcome::Refused("MAIL: 452 no".into()),
            Duration::from_millis(5),
            late,
        );
        assert_eq!((s.accepted, s.non2xx, s.late), (1, 1, 1));
        assert_eq!(s.latency_us, vec![1000]);
        assert_eq!(s.first_refusal.as_deref(), Some("MAIL: 452 no"));
    }
}
