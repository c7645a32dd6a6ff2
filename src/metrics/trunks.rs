//! The per-trunk fax metrics (`faxmta_fax_trunk_*`), refreshed at each
//! scrape from the engine's counters ([`FaxEngine::trunks`]): calls by
//! direction, failures by cause, pages, seconds on the line, calls now
//! and whether the trunk is registered.

use faxmta_fax::engine::{FaxEngine, TrunkReport};
use prometheus::{CounterVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::collections::HashMap;
use std::sync::Mutex;

/// The trunk metrics and the counts already added to them.
pub struct TrunkMetrics {
    calls: IntCounterVec,
    failures: IntCounterVec,
    pages: IntCounterVec,
    line_seconds: CounterVec,
    active: IntGaugeVec,
    registered: IntGaugeVec,
    /// What each counter held at the last scrape, by trunk.
    seen: Mutex<HashMap<String, TrunkReport>>,
}

impl TrunkMetrics {
    pub fn new(registry: &Registry) -> TrunkMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            super::build(registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str| {
            super::build(
                registry,
                IntGaugeVec::new(Opts::new(name, help), &["trunk"]),
            )
        };
        TrunkMetrics {
            calls: counter(
                "faxmta_fax_trunk_calls_total",
                "Fax calls over each SIP trunk, by direction (out, in)",
                &["trunk", "direction"],
            ),
            failures: counter(
                "faxmta_fax_trunk_failures_total",
                "Outgoing fax calls over each trunk that did not send every page, by cause",
                &["trunk", "cause"],
            ),
            pages: counter(
                "faxmta_fax_trunk_pages_total",
                "Fax pages sent and received over each trunk",
                &["trunk"],
            ),
            line_seconds: super::build(
                registry,
                CounterVec::new(
                    Opts::new(
                        "faxmta_fax_trunk_line_seconds_total",
                        "Seconds of fax calls on each trunk",
                    ),
                    &["trunk"],
                ),
            ),
            active: gauge("faxmta_fax_trunk_calls", "Fax calls on each trunk now"),
            registered: gauge(
                "faxmta_fax_trunk_registered",
                "1 while a registering trunk holds its registration, else 0",
            ),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Brings the metrics up to the engine's counters.
    pub fn refresh(&self, engine: &dyn FaxEngine) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        for now in engine.trunks() {
            let before = seen.entry(now.name.clone()).or_default();
            let t = now.name.as_str();
            let add = |c: &IntCounterVec, labels: &[&str], now: u64, before: u64| {
                c.with_label_values(labels)
                    .inc_by(now.saturating_sub(before));
            };
            add(&self.calls, &[t, "out"], now.calls_out, before.calls_out);
            add(&self.calls, &[t, "in"], now.calls_in, before.calls_in);
            add(&self.pages, &[t], now.pages, before.pages);
            for (cause, n) in &now.failures {
                let old = before
                    .failures
                    .iter()
                    .find(|(c, _)| c == cause)
                    .map_or(0, |(_, n)| *n);
                add(&self.failures, &[t, cause], *n, old);
            }
            let secs = now.line_seconds - before.line_seconds;
            if secs > 0.0 {
                self.line_seconds.with_label_values(&[t]).inc_by(secs);
            }
            self.active.with_label_values(&[t]).set(now.busy as i64);
            if let Some(r) = now.registered {
                self.registered.with_label_values(&[t]).set(i64::from(r));
            }
            *before = now;
        }
    }
}
