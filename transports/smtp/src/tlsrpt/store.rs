//! The TLS-RPT counters: per hour, policy domain and policy, the successful
//! and failed sessions and the failure details, aggregated as they are
//! recorded; turned into RFC 8460 reports per policy domain and UTC day.
//!
//! Only the aggregate is stored (not one line per session), so the store
//! stays small however much mail goes out: its size follows the number of
//! distinct domains, policies and failure kinds, not the session count.

use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(crate) const HOUR: i64 = 3600;
pub(crate) const DAY: i64 = 86_400;

/// Which kind of policy a counter is for (mail-auth's `PolicyType` has no
/// ordering to key a map with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Kind {
    Tlsa,
    Sts,
    NoPolicy,
}

/// What the counters are kept apart by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Key {
    /// Start of the hour (seconds since the epoch, UTC).
    pub hour: i64,
    pub domain: String,
    pub kind: Kind,
    pub policy_string: Vec<String>,
    pub mx_host: Vec<String>,
}

/// Failures of one kind, to one host and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Detail {
    pub result_type: ResultType,
    pub mx_host: String,
    pub ip: Option<IpAddr>,
    pub count: u32,
    /// The first additional information seen for it.
    pub info: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub success: u32,
    pub failure: u32,
    pub details: Vec<Detail>,
}

impl Counts {
    fn add_failure(&mut self, d: Detail) {
        self.failure = self.failure.saturating_add(d.count);
        match self
            .details
            .iter_mut()
            .find(|x| x.result_type == d.result_type && x.mx_host == d.mx_host && x.ip == d.ip)
        {
            Some(x) => {
                x.count = x.count.saturating_add(d.count);
                if x.info.is_none() {
                    x.info = d.info;
                }
            }
            None => self.details.push(d),
        }
    }

    fn merge(&mut self, other: Counts) {
        self.success = self.success.saturating_add(other.success);
        for d in other.details {
            self.add_failure(d);
        }
    }
}

/// Everything not reported yet.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Store {
    /// The format of the file.
    pub version: u32,
    /// Where the last report ended (seconds since the epoch): the next
    /// report of that day starts there.
    pub reported_until: i64,
    /// The counters; a list, since JSON maps take string keys only.
    pub entries: Vec<(Key, Counts)>,
}

pub(crate) const VERSION: u32 = 1;

/// The counters in memory.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub reported_until: i64,
    pub map: BTreeMap<Key, Counts>,
}

impl Counters {
    pub fn from_store(s: Store) -> Counters {
        Counters {
            reported_until: s.reported_until,
            map: s.entries.into_iter().collect(),
        }
    }

    pub fn to_store(&self) -> Store {
        Store {
            version: VERSION,
            reported_until: self.reported_until,
            entries: self
                .map
                .iter()
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect(),
        }
    }

    /// Count one session.
    pub fn add(&mut self, key: Key, failure: Option<Detail>) {
        let c = self.map.entry(key).or_default();
        match failure {
            Some(d) => c.add_failure(d),
            None => c.success = c.success.saturating_add(1),
        }
    }

    /// Remove the counters of the hours that ended by `until` and make one
    /// report per policy domain and UTC day of them.
    pub fn take(
        &mut self,
        organization: &str,
        contact: &str,
        until: i64,
        report_id: &mut dyn FnMut() -> String,
    ) -> Vec<(String, TlsReport)> {
        let cut = until.div_euclid(HOUR) * HOUR;
        let taken: Vec<Key> = self
            .map
            .keys()
            .filter(|k| k.hour + HOUR <= cut)
            .cloned()
            .collect();
        // (domain, day) → policy (without the hour) → counts
        type PolicyId = (Kind, Vec<String>, Vec<String>);
        let mut groups: BTreeMap<(String, i64), BTreeMap<PolicyId, Counts>> = BTreeMap::new();
        for key in taken {
            let Some(counts) = self.map.remove(&key) else {
                continue;
            };
            let day = key.hour.div_euclid(DAY) * DAY;
            groups
                .entry((key.domain, day))
                .or_default()
                .entry((key.kind, key.policy_string, key.mx_host))
                .or_default()
                .merge(counts);
        }
        let since = self.reported_until;
        self.reported_until = self.reported_until.max(cut);
        groups
            .into_iter()
            .map(|((domain, day), policies)| {
                let start = day.max(since.min(day + DAY));
                let end = (day + DAY).min(cut) - 1;
                let policies = policies
                    .into_iter()
                    .map(|((kind, policy_string, mx_host), c)| Policy {
                        policy: PolicyDetails {
                            policy_type: match kind {
                                Kind::Tlsa => PolicyType::Tlsa,
                                Kind::Sts => PolicyType::Sts,
                                Kind::NoPolicy => PolicyType::NoPolicyFound,
                            },
                            policy_string,
                            policy_domain: domain.clone(),
                            mx_host,
                        },
                        summary: Summary {
                            total_success: c.success,
                            total_failure: c.failure,
                        },
                        failure_details: c
                            .details
                            .into_iter()
                            .map(|d| FailureDetails {
                                result_type: d.result_type,
                                sending_mta_ip: None,
                                receiving_mx_hostname: Some(d.mx_host),
                                receiving_mx_helo: None,
                                receiving_ip: d.ip,
                                failed_session_count: d.count,
                                additional_information: d.info,
                                failure_reason_code: None,
                            })
                            .collect(),
                    })
                    .collect();
                let report = TlsReport {
                    organization_name: Some(organization.to_string()),
                    date_range: DateRange::from_timestamps(start, end),
                    contact_info: Some(contact.to_string()),
                    report_id: report_id(),
                    policies,
                };
                (domain, report)
            })
            .collect()
    }
}
