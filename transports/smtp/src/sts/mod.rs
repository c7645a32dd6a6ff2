//! MTA-STS (RFC 8461): which policy applies to a recipient domain.
//!
//! [`Sts::policy`] looks up the `_mta-sts.DOMAIN` TXT record (§3.1) and,
//! when its `id` is new, fetches `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! (§3.3: our resolver, a PKIX-verified certificate for `mta-sts.DOMAIN`, no
//! redirects, status 200, `Content-Type: text/plain`, at most 64 KiB, one
//! deadline) and parses it (`policy.rs`, §3.2).
//!
//! Policies are cached in memory and in a JSON file (`cache.rs`) until
//! their `max_age` passes (§5). The cache decides as §5.1 says:
//! - the TXT id equals the cached policy's: the cached policy, refetched
//!   once half its `max_age` (at most a day) has passed, to keep it fresh;
//! - a new id: fetch; a valid policy replaces the cached one, a failed fetch
//!   leaves the cached one in force;
//! - no TXT record (or a failed TXT lookup): the cached policy while it is
//!   unexpired, else no policy;
//! - a failed fetch with nothing cached: [`Lookup::Failed`] (the caller
//!   delivers as if the domain had no policy and reports it, RFC 8460).
//!
//! Lookups of one domain at the same time share one fetch. A failed fetch
//! is not retried for the same id for five minutes (set with
//! [`Sts::with_retry_after_failure`]), so a broken policy host does not
//! cost every delivery a fetch.

mod cache;
pub(crate) mod https;
mod policy;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use policy::{Mode, Policy, MAX_AGE_LIMIT};

pub(crate) use cache::write_atomically;

use cache::Entry;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::MtaSts;
use mail_auth::report::tlsrpt::ResultType;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most policy bytes read (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY_SIZE: usize = 64 * 1024;
/// The default deadline of a policy fetch (RFC 8461 §3.3 suggests 60 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The default pause before a failed fetch is tried again for the same id.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);
/// A cached policy is refetched (same id) after half its max_age, at most
/// after this long.
pub const REFRESH_LIMIT: u64 = 86_400;

/// The answer for one domain.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No TXT record and no cached policy: the domain has no MTA-STS.
    None,
    /// The policy in force (freshly fetched or cached).
    Policy(Arc<Policy>),
    /// The TXT record is there but no policy could be fetched or parsed,
    /// and none is cached: deliver as without MTA-STS, report `result_type`
    /// (`sts-policy-fetch-error`, `sts-policy-invalid` or
    /// `sts-webpki-invalid`).
    Failed {
        reason: String,
        result_type: ResultType,
    },
}

/// The MTA-STS policy source: resolver, HTTPS client, cache.
pub struct Sts {
    resolver: TokioResolver,
    tls: Arc<rustls::ClientConfig>,
    port: u16,
    cache_file: Option<PathBuf>,
    /// Whether fetched policies are written to `cache_file`.
    save: bool,
    timeout: Duration,
    retry_after_failure: Duration,
    state: Mutex<State>,
    /// One lock per domain being fetched.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Seconds added to the clock (tests only move it forward).
    #[cfg(test)]
    skew: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    policies: HashMap<String, Entry>,
    /// The last failed fetch per domain, for the id it was made for.
    failures: HashMap<String, Failure>,
}

#[derive(Clone)]
struct Failure {
    id: String,
    /// No new fetch for this id before then (seconds since the epoch).
    until: u64,
    reason: String,
    result_type: ResultType,
}

/// What the `_mta-sts` TXT lookup said.
#[derive(Debug, PartialEq, Eq)]
enum Txt {
    Id(String),
    /// No record, no valid record, or more than one (§3.1).
    Absent,
    /// The lookup itself failed (SERVFAIL, timeout …).
    Failed(String),
}

impl Sts {
    /// `tls` must verify certificates (WebPKI roots plus any extra CAs);
    /// `port` is 443 except in tests; `cache_file` keeps the policies
    /// across restarts (read now, rewritten after each fetched policy).
    pub fn new(
        resolver: TokioResolver,
        tls: Arc<rustls::ClientConfig>,
        port: u16,
        cache_file: Option<PathBuf>,
    ) -> Sts {
        let policies = match &cache_file {
            Some(path) => cache::load(path, unix_now()).unwrap_or_else(|e| {
                tracing::warn!("MTA-STS policy cache not read, starting empty: {e}");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        Sts {
            resolver,
            tls,
            port,
            cache_file,
            save: true,
            timeout: FETCH_TIMEOUT,
            retry_after_failure: RETRY_AFTER_FAILURE,
            state: Mutex::new(State {
                policies,
                failures: HashMap::new(),
            }),
            gates: Mutex::new(HashMap::new()),
            #[cfg(test)]
            skew: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Read the cache file but never write it: for a command-line tool
    /// beside the running server, whose file it is.
    pub fn read_only(mut self) -> Sts {
        self.save = false;
        self
    }

    /// The deadline of one policy fetch (default [`FETCH_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Sts {
        self.timeout = timeout;
        self
    }

    /// How long a failed fetch is not retried for the same TXT id
    /// (default [`RETRY_AFTER_FAILURE`]).
    pub fn with_retry_after_failure(mut self, pause: Duration) -> Sts {
        self.retry_after_failure = pause;
        self
    }

    /// The policy that applies to mail for `domain` now. The TXT record is
    /// looked up on every call (the resolver caches it), so calling this
    /// again before failing a message permanently is the check for a new
    /// policy RFC 8461 §5.1 asks for. A policy in mode `none` is returned
    /// as such: the caller treats it as no policy.
    pub async fn policy(&self, domain: &str) -> Lookup {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let id = match self.txt(&domain).await {
            Txt::Id(id) => id,
            other => {
                if let Txt::Failed(e) = other {
                    tracing::debug!("MTA-STS TXT of {domain}: {e}");
                }
                return self.cached(&domain).map_or(Lookup::None, Lookup::Policy);
            }
        };
        if let Some(answer) = self.answer_from_cache(&domain, &id) {
            return answer;
        }
        // One fetch per domain at a time: who waited for it finds its
        // result in the cache.
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates.entry(domain.clone()).or_default().clone()
        };
        let answer = {
            let _turn = gate.lock().await;
            match self.answer_from_cache(&domain, &id) {
                Some(answer) => answer,
                None => self.refresh(&domain, id).await,
            }
        };
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            gates.remove(&domain); // nobody else waits on it
        }
        answer
    }

    /// The domains with an unexpired cached policy (for a job that refreshes
    /// them ahead of expiry by calling [`Sts::policy`], RFC 8461 §5.1
    /// suggests daily).
    pub fn cached_domains(&self) -> Vec<String> {
        let now = self.now();
        let mut state = self.lock();
        state.policies.retain(|_, e| e.expires() > now);
        let mut domains: Vec<String> = state.policies.keys().cloned().collect();
        domains.sort();
        domains
    }

    /// The unexpired cached policy of `domain`.
    fn cached(&self, domain: &str) -> Option<Arc<Policy>> {
        let now = self.now();
        let mut state = self.lock();
        if state
            .policies
            .get(domain)
            .is_some_and(|e| e.expires() <= now)
        {
            state.policies.remove(domain);
        }
        state.policies.get(domain).map(|e| e.policy.clone())
    }

    /// The answer without a fetch, if there is one for the TXT id `id`: the
    /// cached policy of that id while it needs no refresh, or, within the
    /// pause after a failed fetch of that id, the cached policy or the
    /// failure.
    fn answer_from_cache(&self, domain: &str, id: &str) -> Option<Lookup> {
        let cached = self.cached(domain);
        let now = self.now();
        let state = self.lock();
        if let (Some(p), Some(e)) = (&cached, state.policies.get(domain)) {
            let refresh_after = (p.max_age / 2).min(REFRESH_LIMIT);
            if p.id == id && now < e.fetched.saturating_add(refresh_after) {
                return Some(Lookup::Policy(p.clone()));
            }
        }
        let f = state
            .failures
            .get(domain)
            .filter(|f| f.id == id && now < f.until)?;
        Some(match cached {
            Some(p) => Lookup::Policy(p),
            None => Lookup::Failed {
                reason: f.reason.clone(),
                result_type: f.result_type,
            },
        })
    }

    /// Fetch the policy for `id`; keep it, or the failure.
    async fn refresh(&self, domain: &str, id: String) -> Lookup {
        let cached = self.cached(domain);
        let result = self.fetch(domain, &id).await;
        let now = self.now();
        match result {
            Ok(policy) => {
                let policy = Arc::new(policy);
                tracing::info!(
                    "MTA-STS policy of {domain}: id {id}, mode {}, max_age {}",
                    policy.mode,
                    policy.max_age
                );
                let mut state = self.lock();
                state.failures.remove(domain);
                state.policies.insert(
                    domain.to_string(),
                    Entry {
                        policy: policy.clone(),
                        fetched: now,
                    },
                );
                if let (Some(path), true) = (&self.cache_file, self.save) {
                    state.policies.retain(|_, e| e.expires() > now);
                    if let Err(e) = cache::save(path, &state.policies) {
                        tracing::warn!("MTA-STS policy cache: {e}");
                    }
                }
                Lookup::Policy(policy)
            }
            Err((reason, result_type)) => {
                tracing::warn!("MTA-STS policy of {domain} (id {id}): {reason}");
                self.lock().failures.insert(
                    domain.to_string(),
                    Failure {
                        id,
                        until: now.saturating_add(self.retry_after_failure.as_secs()),
                        reason: reason.clone(),
                        result_type,
                    },
                );
                match cached {
                    Some(p) => Lookup::Policy(p),
                    None => Lookup::Failed {
                        reason,
                        result_type,
                    },
                }
            }
        }
    }

    /// The `id` of `_mta-sts.DOMAIN`.
    async fn txt(&self, domain: &str) -> Txt {
        let name = format!("_mta-sts.{domain}.");
        let lookup = match self.resolver.txt_lookup(name.as_str()).await {
            Ok(l) => l,
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Txt::Absent,
            Err(e) => return Txt::Failed(format!("TXT {name}: {e}")),
        };
        let records: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
                _ => None,
            })
            .filter(|r: &Vec<u8>| is_sts_record(r))
            .collect();
        match records.as_slice() {
            [record] => match MtaSts::parse(record) {
                Ok(m) if valid_id(&m.id) => Txt::Id(m.id),
                _ => {
                    tracing::debug!(
                        "MTA-STS TXT {name}: invalid record {:?}",
                        String::from_utf8_lossy(record)
                    );
                    Txt::Absent
                }
            },
            [] => Txt::Absent,
            _ => {
                tracing::debug!("MTA-STS TXT {name}: {} records, ignored", records.len());
                Txt::Absent
            }
        }
    }

    /// Fetch and parse the policy of `domain` for the TXT id `id`.
    async fn fetch(&self, domain: &str, id: &str) -> Result<Policy, (String, ResultType)> {
        let host = format!("mta-sts.{domain}");
        let call = https::Call {
            host: &host,
            port: self.port,
            method: hyper::Method::GET,
            path: "/.well-known/mta-sts.txt",
            body: None,
            limit: MAX_POLICY_SIZE,
            timeout: self.timeout,
        };
        let resp = https::request(&self.resolver, self.tls.clone(), call)
            .await
            .map_err(|e| match e {
                https::HttpsError::Certificate(m) => (m, ResultType::StsWebpkiInvalid),
                other => (other.to_string(), ResultType::StsPolicyFetchError),
            })?;
        if resp.status != hyper::StatusCode::OK {
            // Redirects included: never followed (§3.3).
            return Err((
                format!(
                    "https://{host}/.well-known/mta-sts.txt: HTTP status {}",
                    resp.status
                ),
                ResultType::StsPolicyFetchError,
            ));
        }
        let media = resp.content_type.as_deref().map(https::media_type);
        if media.as_deref() != Some("text/plain") {
            return Err((
                format!(
                    "https://{host}/.well-known/mta-sts.txt: Content-Type {:?}, not text/plain",
                    resp.content_type.unwrap_or_default()
                ),
                ResultType::StsPolicyInvalid,
            ));
        }
        let body = std::str::from_utf8(&resp.body).map_err(|e| {
            (
                format!("https://{host}/.well-known/mta-sts.txt: not UTF-8: {e}"),
                ResultType::StsPolicyInvalid,
            )
        })?;
        Policy::parse(id, body).map_err(|e| {
            (
                format!("https://{host}/.well-known/mta-sts.txt: {e}"),
                ResultType::StsPolicyInvalid,
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        #[cfg(test)]
        {
            unix_now() + self.skew.load(std::sync::atomic::Ordering::Relaxed)
        }
        #[cfg(not(test))]
        {
            unix_now()
        }
    }

    /// Move this instance's clock forward.
    #[cfg(test)]
    fn advance(&self, secs: u64) {
        self.skew
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A TXT record that begins with `v=STSv1` and a `;` (§3.1); others are
/// not MTA-STS records and are discarded.
fn is_sts_record(record: &[u8]) -> bool {
    record
        .strip_prefix(b"v=STSv1")
        .map(|rest| rest.trim_ascii_start())
        .is_some_and(|rest| rest.starts_with(b";"))
}

/// `id`: 1 to 32 letters and digits (§3.1).
fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
