//! SMTP TLS Reporting (RFC 8460): the outcome of each outbound TLS session
//! is counted per policy domain and policy ([`Recorder`]), turned once a day
//! into one report per policy domain (mail-auth's `TlsReport`), and sent to
//! the `rua` addresses of `_smtp._tls.DOMAIN` ([`report_addresses`]): as a
//! mail ([`report_mail`], RFC 8460 §5.3) or an HTTPS POST ([`post_report`],
//! §5.4).
//!
//! The counters live in memory and in a JSON file (`store.rs`) rewritten
//! atomically every few seconds while results come in, at once by
//! [`Recorder::take_reports`] and [`Recorder::flush`], and when the recorder
//! is dropped. Only the aggregate is written, never a line per session, so
//! the file stays small on a busy server; a crash loses the last seconds of
//! counts, which statistics can afford.

mod store;
#[cfg(test)]
mod tests;

use crate::sts::{self, https};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use mail_auth::report::tlsrpt::{ResultType, TlsReport};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::{Counters, Detail, Key, Kind};

/// How often, at most, the counters are written while results come in.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// The deadline of a report POST.
pub const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// The policy a session was held to.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// DANE: the TLSA records (as presentation text) of the MX host; the
    /// report's `mx-host` is that host (TLSA records are per host).
    Tlsa { records: Vec<String> },
    /// MTA-STS: `policy-string` is the policy's lines, `mx-host` its MX
    /// patterns.
    Sts { policy: Arc<sts::Policy> },
    /// Neither.
    NoPolicy,
}

/// The outcome of one session with one MX host.
#[derive(Debug, Clone)]
pub struct SessionResult {
    /// The domain the policy belongs to (the recipient domain).
    pub policy_domain: String,
    pub policy: PolicyKind,
    pub mx_host: String,
    pub receiving_ip: Option<IpAddr>,
    /// None for a successful session; else the result type and additional
    /// information (RFC 8460 §4.3).
    pub failure: Option<(ResultType, String)>,
}

/// The counters of the sessions not reported yet. Within a tokio runtime
/// a task writes them every [`SAVE_INTERVAL`] while they change.
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    counters: Counters,
    dirty: bool,
    saved: Instant,
}

impl Recorder {
    /// Open the store at `path` (created on the first write).
    pub fn open(path: PathBuf) -> Result<Recorder, String> {
        let inner = Arc::new(Inner::open(path)?);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(SAVE_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else {
                        return; // the recorder is gone
                    };
                    let flushed = tokio::task::spawn_blocking(move || inner.flush()).await;
                    if let Ok(Err(e)) = flushed {
                        tracing::warn!("{e}");
                    }
                }
            });
        }
        Ok(Recorder { inner })
    }

    /// Count one session, now.
    pub fn record(&self, r: SessionResult) {
        self.inner.record_at(r, SystemTime::now());
    }

    /// Count one session at `at` (for tests and replays).
    pub fn record_at(&self, r: SessionResult, at: SystemTime) {
        self.inner.record_at(r, at);
    }

    /// Write the counters now, if anything changed.
    pub fn flush(&self) -> Result<(), String> {
        self.inner.flush()
    }

    /// Take the results of the hours that ended by `until` and make one
    /// report per policy domain and UTC day (policies aggregated:
    /// success/failure counts, failure details per result type, MX host
    /// and address); later results stay. A whole past day gives the range
    /// 00:00:00Z–23:59:59Z; a report of a day not yet over ends at the hour
    /// `until` falls in, and the next report of that day starts there.
    /// The counters are written at once.
    pub fn take_reports(
        &self,
        organization: &str,
        contact: &str,
        until: SystemTime,
    ) -> Vec<(String, TlsReport)> {
        self.inner.take_reports(organization, contact, until)
    }
}

impl Inner {
    fn open(path: PathBuf) -> Result<Inner, String> {
        let counters = match std::fs::read(&path) {
            Ok(data) => {
                let s: store::Store = serde_json::from_slice(&data)
                    .map_err(|e| format!("TLS-RPT store {}: {e}", path.display()))?;
                if s.version != store::VERSION {
                    return Err(format!(
                        "TLS-RPT store {}: format version {} (expected {})",
                        path.display(),
                        s.version,
                        store::VERSION
                    ));
                }
                Counters::from_store(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Counters::default(),
            Err(e) => return Err(format!("TLS-RPT store {}: {e}", path.display())),
        };
        Ok(Inner {
            path,
            state: Mutex::new(State {
                counters,
                dirty: false,
                saved: Instant::now(),
            }),
        })
    }

    fn record_at(&self, r: SessionResult, at: SystemTime) {
        let hour = unix(at).div_euclid(store::HOUR) * store::HOUR;
        let mx_host = r.mx_host.trim_end_matches('.').to_ascii_lowercase();
        let (kind, policy_string, mx_patterns) = match &r.policy {
            PolicyKind::Tlsa { records } => (Kind::Tlsa, records.clone(), vec![mx_host.clone()]),
            PolicyKind::Sts { policy } => (Kind::Sts, policy.lines(), policy.mx.clone()),
            PolicyKind::NoPolicy => (Kind::NoPolicy, Vec::new(), Vec::new()),
        };
        let key = Key {
            hour,
            domain: r.policy_domain.trim_end_matches('.').to_ascii_lowercase(),
            kind,
            policy_string,
            mx_host: mx_patterns,
        };
        let failure = r.failure.map(|(result_type, info)| Detail {
            result_type,
            mx_host,
            ip: r.receiving_ip,
            count: 1,
            info: (!info.is_empty()).then_some(info),
        });
        let mut state = self.lock();
        state.counters.add(key, failure);
        state.dirty = true;
        if state.saved.elapsed() >= SAVE_INTERVAL {
            self.save(&mut state);
        }
    }

    fn flush(&self) -> Result<(), String> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(());
        }
        self.write(&mut state)
    }

    fn take_reports(
        &self,
        organization: &str,
        contact: &str,
        until: SystemTime,
    ) -> Vec<(String, TlsReport)> {
        let mut state = self.lock();
        let reports = state
            .counters
            .take(organization, contact, unix(until), &mut report_id);
        state.dirty = true;
        self.save(&mut state);
        reports
    }

    fn save(&self, state: &mut State) {
        if let Err(e) = self.write(state) {
            tracing::warn!("{e}");
        }
    }

    fn write(&self, state: &mut State) -> Result<(), String> {
        let json = serde_json::to_vec(&state.counters.to_store())
            .map_err(|e| format!("TLS-RPT store: {e}"))?;
        state.saved = Instant::now();
        sts::write_atomically(&self.path, &json)?;
        state.dirty = false;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("{e}");
        }
    }
}

/// The `rua` URIs of `_smtp._tls.DOMAIN` (RFC 8460 §3): none when there is
/// no record, or not exactly one that starts with `v=TLSRPTv1`; an error
/// when the lookup fails (try again later).
pub async fn report_addresses(
    resolver: &TokioResolver,
    domain: &str,
) -> Result<Vec<ReportUri>, String> {
    let name = format!("_smtp._tls.{}.", domain.trim_end_matches('.'));
    let lookup = match resolver.txt_lookup(name.as_str()).await {
        Ok(l) => l,
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => return Err(format!("TXT {name}: {e}")),
    };
    let records: Vec<Vec<u8>> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
            _ => None,
        })
        .filter(|r: &Vec<u8>| {
            r.strip_prefix(b"v=TLSRPTv1")
                .is_some_and(|rest| rest.trim_ascii_start().starts_with(b";"))
        })
        .collect();
    match records.as_slice() {
        [record] => Ok(TlsRpt::parse(record).map(|t| t.rua).unwrap_or_default()),
        _ => Ok(Vec::new()),
    }
}

/// The report as a mail (RFC 8460 §5.3): `multipart/report;
/// report-type=tlsrpt`, the gzipped JSON as `application/tlsrpt+gzip`, the
/// `TLS-Report-Domain` and `TLS-Report-Submitter` headers.
pub fn report_mail(
    report: &TlsReport,
    domain: &str,
    submitter: &str,
    from: &str,
    to: &[String],
) -> Result<Vec<u8>, String> {
    let mut mail = Vec::new();
    report
        .write_rfc5322(
            domain,
            submitter,
            from,
            to.iter().map(String::as_str),
            &mut mail,
        )
        .map_err(|e| format!("TLS report mail for {domain}: {e}"))?;
    Ok(mail)
}

/// POST the gzipped JSON report to an `https:` rua (RFC 8460 §5.4);
/// success is a 2xx answer.
pub async fn post_report(
    url: &str,
    report: &TlsReport,
    tls: Arc<rustls::ClientConfig>,
    resolver: &TokioResolver,
) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("report URL {url}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("report URL {url}: not https"));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("report URL {url}: no host"))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let gz = gzip(report.to_json().as_bytes()).map_err(|e| format!("report for {url}: {e}"))?;
    let call = https::Call {
        host,
        port: uri.port_u16().unwrap_or(443),
        method: hyper::Method::POST,
        path,
        body: Some((gz.into(), "application/tlsrpt+gzip")),
        limit: 64 * 1024,
        timeout: POST_TIMEOUT,
    };
    let resp = https::request(resolver, tls, call)
        .await
        .map_err(|e| format!("report POST to {url}: {e}"))?;
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(format!("report POST to {url}: HTTP status {}", resp.status))
    }
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use mail_auth::flate2::{write::GzEncoder, Compression};
    use std::io::Write;
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data)?;
    e.finish()
}

/// A random report id in the UUID form of RFC 8460's example.
fn report_id() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
