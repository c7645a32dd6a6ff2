//! Prometheus metrics: what the server counts, and their text form for
//! `GET /metrics` on the admin listener.
//!
//! Counters and histograms are updated where things happen (sessions,
//! the scheduler); the queue gauges are read from the store's in-memory
//! index at scrape time, so a scrape costs no disk access.

#[cfg(feature = "fax")]
mod trunks;

#[cfg(feature = "fax")]
use faxmta_fax::engine::FaxEngine;
#[cfg(feature = "fax")]
use faxmta_fax::transport::FaxObserver;
use faxmta_queue::{now_unix, Store};
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
#[cfg(feature = "fax")]
use std::sync::{Arc, OnceLock};
#[cfg(feature = "fax")]
use std::time::Duration;

/// Every metric faxmta exports (a mail-only build exports the fax ones
/// too, always zero, so dashboards need no second version).
#[cfg_attr(not(feature = "fax"), allow(dead_code))]
pub struct Metrics {
    registry: Registry,
    /// Messages accepted, by listener role (`mx`, `submission`, `local`).
    pub received: IntCounterVec,
    /// Delivery attempts by transport and status (`sent`, `deferred`, `bounced`).
    pub deliveries: IntCounterVec,
    /// Seconds from arrival to final delivery, by transport.
    pub delivery_delay: HistogramVec,
    /// Inbound SMTP sessions open now.
    pub sessions_in: IntGauge,
    /// Outbound deliveries running now, by transport.
    pub deliveries_active: IntGaugeVec,
    /// Sessions (in) and deliveries (out) that used TLS, by direction and version.
    pub tls: IntCounterVec,
    /// SMTP replies refusing something, by code class and enhanced status.
    pub rejects: IntCounterVec,
    /// Limits hit, by limit (`connections`, `connections_per_ip`,
    /// `connection_rate`, `messages`, `recipients`, `errors`,
    /// `auth_failures`).
    pub limits: IntCounterVec,
    /// SMTP AUTH attempts by mechanism and result (`success`, `failure`).
    pub auth: IntCounterVec,
    /// Passwords verified (argon2 run) for SMTP AUTH.
    pub auth_verifications: IntCounter,
    /// Fax pages rendered (cover pages included).
    pub fax_pages_rendered: IntCounter,
    /// Seconds to render one fax document.
    pub fax_render_seconds: Histogram,
    /// Fax calls by result (`sent`, `busy`, `no-answer`, `no-fax-tone`,
    /// `partial`, `error`).
    pub fax_calls: IntCounterVec,
    /// Fax pages the remote confirmed.
    pub fax_pages_sent: IntCounter,
    /// Faxes finished, by outcome (`sent`, `failed`) and the last call's
    /// result (the reason of a failure).
    pub faxes: IntCounterVec,
    /// Faxes received, by how the reception ended (`complete`,
    /// `partial`, `failed`).
    pub fax_received: IntCounterVec,
    /// Fax images deleted by the retention purge.
    pub fax_images_purged: IntCounter,
    /// The fax engine, for the line gauges at scrape time.
    #[cfg(feature = "fax")]
    pub fax_engine: OnceLock<Arc<dyn FaxEngine>>,
    fax_lines: IntGaugeVec,
    #[cfg(feature = "fax")]
    fax_trunks: trunks::TrunkMetrics,
    queue_messages: IntGaugeVec,
}

fn build<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<T>,
) -> T {
    // The names and labels below are constants; registering them cannot
    // fail unless two share a name, which the unit test rules out.
    let metric = metric.unwrap_or_else(|e| panic!("metric definition: {e}"));
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        panic!("metric registration: {e}");
    }
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            received: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_messages_received_total",
                        "Messages accepted into the queue",
                    ),
                    &["source"],
                ),
            ),
            deliveries: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_deliveries_total",
                        "Delivery attempts per recipient, by outcome",
                    ),
                    &["transport", "status"],
                ),
            ),
            delivery_delay: build(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "faxmta_delivery_delay_seconds",
                        "Time from arrival to successful delivery",
                    )
                    .buckets(exponential_buckets(0.01, 4.0, 12).unwrap_or_default()),
                    &["transport"],
                ),
            ),
            sessions_in: build(
                &r,
                IntGauge::new(
                    "faxmta_smtp_sessions_active",
                    "Inbound SMTP sessions open now",
                ),
            ),
            deliveries_active: build(
                &r,
                IntGaugeVec::new(
                    Opts::new("faxmta_deliveries_active", "Delivery jobs running now"),
                    &["transport"],
                ),
            ),
            tls: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_tls_total",
                        "Sessions in and deliveries out that used TLS",
                    ),
                    &["direction", "version"],
                ),
            ),
            rejects: build(
                &r,
                IntCounterVec::new(
                    Opts::new("faxmta_smtp_rejects_total", "Refusals sent to SMTP clients"),
                    &["class", "status"],
                ),
            ),
            limits: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_smtp_limits_total",
                        "Times a client hit one of the server's limits",
                    ),
                    &["limit"],
                ),
            ),
            auth: build(
                &r,
                IntCounterVec::new(
                    Opts::new("faxmta_smtp_auth_total", "SMTP AUTH attempts by result"),
                    &["mechanism", "result"],
                ),
            ),
            auth_verifications: build(
                &r,
                IntCounter::new(
                    "faxmta_smtp_auth_verifications_total",
                    "Passwords verified for SMTP AUTH (argon2 runs)",
                ),
            ),
            fax_pages_rendered: build(
                &r,
                IntCounter::new(
                    "faxmta_fax_pages_rendered_total",
                    "Fax pages rendered, cover pages included",
                ),
            ),
            fax_render_seconds: build(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "faxmta_fax_render_seconds",
                        "Time to render one fax document",
                    )
                    .buckets(exponential_buckets(0.005, 3.0, 10).unwrap_or_default()),
                ),
            ),
            fax_calls: build(
                &r,
                IntCounterVec::new(
                    Opts::new("faxmta_fax_calls_total", "Fax calls placed, by result"),
                    &["result"],
                ),
            ),
            fax_pages_sent: build(
                &r,
                IntCounter::new(
                    "faxmta_fax_pages_sent_total",
                    "Fax pages the remote machine confirmed",
                ),
            ),
            faxes: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_faxes_total",
                        "Faxes finished: sent, or failed with the last call's result",
                    ),
                    &["outcome", "reason"],
                ),
            ),
            fax_received: build(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "faxmta_fax_received_total",
                        "Faxes received, by how the reception ended",
                    ),
                    &["status"],
                ),
            ),
            fax_images_purged: build(
                &r,
                IntCounter::new(
                    "faxmta_fax_images_purged_total",
                    "Fax images deleted by the retention purge",
                ),
            ),
            #[cfg(feature = "fax")]
            fax_engine: OnceLock::new(),
            fax_lines: build(
                &r,
                IntGaugeVec::new(
                    Opts::new("faxmta_fax_lines", "Fax lines: configured, and in use now"),
                    &["state"],
                ),
            ),
            #[cfg(feature = "fax")]
            fax_trunks: trunks::TrunkMetrics::new(&r),
            queue_messages: build(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "faxmta_queue_messages",
                        "Messages in the queue: due now, waiting for a retry, or held",
                    ),
                    &["state"],
                ),
            ),
            registry: r,
        }
    }

    /// The text exposition format, queue gauges refreshed from `store`.
    pub fn render(&self, store: &Store) -> String {
        let counts = store.counts(now_unix());
        self.queue_messages
            .with_label_values(&["due"])
            .set(counts.due as i64);
        self.queue_messages
            .with_label_values(&["deferred"])
            .set(counts.waiting as i64);
        self.queue_messages
            .with_label_values(&["held"])
            .set(counts.held as i64);
        #[cfg(feature = "fax")]
        if let Some(engine) = self.fax_engine.get() {
            self.fax_lines
                .with_label_values(&["total"])
                .set(engine.lines() as i64);
            self.fax_lines
                .with_label_values(&["in_use"])
                .set(engine.lines_busy() as i64);
            self.fax_trunks.refresh(engine.as_ref());
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# error encoding metrics: {e}\n");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(feature = "fax")]
impl FaxObserver for Metrics {
    fn rendered(&self, pages: u32, elapsed: Duration) {
        self.fax_pages_rendered.inc_by(pages as u64);
        self.fax_render_seconds.observe(elapsed.as_secs_f64());
    }

    fn call(&self, result: &str, pages: u32, _line: Duration) {
        self.fax_calls.with_label_values(&[result]).inc();
        self.fax_pages_sent.inc_by(pages as u64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_every_family() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = Metrics::new();
        m.received.with_label_values(&["mx"]).inc();
        m.deliveries.with_label_values(&["local", "sent"]).inc_by(2);
        m.delivery_delay.with_label_values(&["local"]).observe(0.5);
        m.tls.with_label_values(&["in", "TLSv1.3"]).inc();
        m.rejects.with_label_values(&["5xx", "5.7.1"]).inc();
        m.deliveries_active.with_label_values(&["smtp"]).set(1);
        m.limits.with_label_values(&["connections_per_ip"]).inc();
        m.auth.with_label_values(&["PLAIN", "failure"]).inc();
        m.rendered(3, Duration::from_millis(20));
        m.call("busy", 0, Duration::ZERO);
        m.call("sent", 3, Duration::from_secs(30));
        m.faxes.with_label_values(&["failed", "busy"]).inc();
        let text = m.render(&store);
        for needle in [
            "faxmta_messages_received_total{source=\"mx\"} 1",
            "faxmta_deliveries_total{status=\"sent\",transport=\"local\"} 2",
            "faxmta_delivery_delay_seconds_count{transport=\"local\"} 1",
            "faxmta_smtp_sessions_active 0",
            "faxmta_tls_total{direction=\"in\",version=\"TLSv1.3\"} 1",
            "faxmta_queue_messages{state=\"held\"} 0",
            "faxmta_deliveries_active{transport=\"smtp\"} 1",
            "faxmta_smtp_rejects_total{class=\"5xx\",status=\"5.7.1\"} 1",
            "faxmta_smtp_limits_total{limit=\"connections_per_ip\"} 1",
            "faxmta_smtp_auth_total{mechanism=\"PLAIN\",result=\"failure\"} 1",
            "faxmta_fax_pages_rendered_total 3",
            "faxmta_fax_render_seconds_count 1",
            "faxmta_fax_calls_total{result=\"busy\"} 1",
            "faxmta_fax_pages_sent_total 3",
            "faxmta_faxes_total{outcome=\"failed\",reason=\"busy\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
