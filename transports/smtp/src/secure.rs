//! Which TLS policy an outbound delivery runs under, and why: DANE
//! (RFC 7672), MTA-STS (RFC 8461), the configured policy, and what the
//! sender asked for (RFC 8689: REQUIRETLS, `TLS-Required: No`).
//!
//! The [`Planner`] decides per domain (its MX records, their DNSSEC
//! status, its MTA-STS policy) and then per MX host (its addresses, its
//! TLSA records), before any connection is made. The decision is a
//! [`HostPlan`]: the connection's [`TlsPolicy`], the TLSA records the
//! certificate must match, and a sentence for the log line and for
//! `faxmta route`. The rules, RFC 7672 §2.2:
//!
//! * DANE applies only when the MX RRset is DNSSEC-secure (for a domain
//!   without MX: the proof of that and its addresses) and the host's
//!   addresses are secure; then the TLSA records of `_25._tcp.HOST` decide:
//!   secure and usable → the certificate must match them; secure but none
//!   usable → TLS is mandatory, unauthenticated; none (or not secure) →
//!   not a DANE host. A bogus answer or a failed TLSA lookup makes the host
//!   unusable (4.7.5); a bogus MX set defers the domain.
//! * A DANE host is never sent to in plaintext, and DANE wins over
//!   MTA-STS (RFC 8461 §2).
//! * `tls = "dane"` for a domain (Postfix's `dane-only`): no DANE, no mail.
//! * `TLS-Required: No` (without REQUIRETLS) sets DANE and MTA-STS aside.
//! * REQUIRETLS: the MX set must be DNSSEC-secure or the host listed by an
//!   MTA-STS policy, the certificate verified by DANE or PKIX, and the
//!   server must offer REQUIRETLS; otherwise 5.7.30.

use crate::dane::DaneCheck;
use crate::dnssec::TlsaAnswer;
use crate::mx::{Dns, DnsError, MxHost};
use crate::sts::{Lookup, Mode, Policy, Sts};
use crate::{HopError, TlsFailure, TlsPolicy};
use faxmta_queue::Reply;
use faxmta_transport::Job;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The outbound TLS settings (`[outbound] tls`, `dane`,
/// `[outbound.tls_policy]`).
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// The policy for hosts no DANE or MTA-STS policy covers.
    pub default: TlsPolicy,
    /// Opportunistic DANE for every MX domain (`[outbound] dane`).
    pub dane: bool,
    /// Per destination domain (lower case), over `default`.
    pub domains: HashMap<String, TlsPolicy>,
}

impl SecuritySettings {
    /// The configured policy for `domain`, and whether it came from the
    /// per-domain table.
    pub fn for_domain(&self, domain: &str) -> (TlsPolicy, bool) {
        match self.domains.get(&domain.to_ascii_lowercase()) {
            Some(p) => (*p, true),
            None => (self.default, false),
        }
    }
}

/// What the sender asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// MAIL FROM … REQUIRETLS.
    pub requiretls: bool,
    /// `TLS-Required: No` (RFC 8689 §4.2.2), ignored under REQUIRETLS.
    pub ignore_policies: bool,
}

impl Asked {
    pub fn of(job: &Job<'_>) -> Asked {
        let requiretls = job.envelope.requiretls;
        Asked {
            requiretls,
            ignore_policies: !requiretls && tls_required_no(job.body),
        }
    }
}

/// Whether the header section has `TLS-Required: No`.
pub fn tls_required_no(body: &[u8]) -> bool {
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| body.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(body.len());
    let head = String::from_utf8_lossy(&body[..end]);
    // Unfold, then look for the field.
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("TLS-Required")
                && value.trim().eq_ignore_ascii_case("No")
        })
    })
}

/// How a domain's MX hosts are approached.
#[derive(Debug, Clone)]
pub struct DomainPlan {
    pub domain: String,
    /// Most preferred first.
    pub hosts: Vec<MxHost>,
    /// The MX RRset (or the implicit MX) is DNSSEC-secure.
    pub mx_secure: bool,
    /// DNSSEC lookups were made (DANE on and validation working).
    pub dnssec: bool,
    /// The configured policy for the domain and whether the per-domain
    /// table set it.
    pub configured: (TlsPolicy, bool),
    pub asked: Asked,
    /// Why DANE is not looked at for this domain, if it is not.
    pub no_dane: Option<String>,
    /// The domain's MTA-STS policy (mode enforce or testing).
    pub sts: Option<Arc<Policy>>,
    /// The domain publishes MTA-STS but its policy could not be had (and
    /// none is cached): delivery goes on as without, and it is reported.
    pub sts_failed: Option<(mail_auth::report::tlsrpt::ResultType, String)>,
}

/// How one host is approached.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub addrs: Vec<IpAddr>,
    pub tls: TlsPolicy,
    /// The TLSA records the certificate must match.
    pub dane: Option<DaneCheck>,
    /// The policy's name (`dane`, `mta-sts`, `opportunistic` …).
    pub name: &'static str,
    /// Report-only (MTA-STS testing): `tls` is tried first, and when it
    /// fails for a TLS reason the failure is reported (RFC 8460) and the
    /// host tried again with this policy.
    pub fallback: Option<TlsPolicy>,
    /// Why this policy, for the log line and `faxmta route`.
    pub why: String,
}

impl HostPlan {
    /// `name (why)`, as logged.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.why)
    }
}

/// The name of a configured policy.
pub fn policy_name(p: TlsPolicy) -> &'static str {
    match p {
        TlsPolicy::Off => "off",
        TlsPolicy::Opportunistic => "opportunistic",
        TlsPolicy::Required => "required",
        TlsPolicy::Verify => "verify",
        TlsPolicy::Dane => "dane",
    }
}

/// Decides TLS policies; shared by the transport and `faxmta route`.
#[derive(Clone)]
pub struct Planner {
    pub dns: Dns,
    pub settings: SecuritySettings,
    /// The port MX hosts are contacted on (TLSA at `_PORT._tcp.HOST`).
    pub port: u16,
    /// MTA-STS policies (none: MTA-STS is off).
    pub sts: Option<Arc<Sts>>,
}

impl Planner {
    /// A domain's MX hosts and what DNSSEC says about them. `Err` is the
    /// reply every recipient gets, with whether it is permanent.
    pub async fn domain(&self, domain: &str, asked: Asked) -> Result<DomainPlan, (bool, Reply)> {
        let configured = self.settings.for_domain(domain);
        let dane_wanted = configured.0 == TlsPolicy::Dane
            || (self.settings.dane && configured.0 != TlsPolicy::Off)
            || asked.requiretls;
        let mut no_dane = None;
        let dnssec = if asked.ignore_policies {
            no_dane = Some("the message says TLS-Required: No".to_string());
            false
        } else if !dane_wanted {
            no_dane = Some("DANE is off ([outbound] dane)".to_string());
            false
        } else if self.dns.dnssec_ready().await {
            true
        } else {
            no_dane = Some("DNSSEC validation is not available".to_string());
            false
        };
        let looked = if dnssec {
            self.dns.mx_secure(domain).await
        } else {
            self.dns.mx(domain).await.map(|h| (h, false))
        };
        let (hosts, mx_secure) = match looked {
            Ok(found) => found,
            Err(DnsError::NullMx(_)) => {
                return Err((
                    true,
                    Reply::new(
                        556,
                        "5.1.10",
                        format!("domain {domain} does not accept mail (null MX)"),
                    ),
                ))
            }
            Err(e @ DnsError::NotFound(_)) => {
                return Err((
                    true,
                    Reply::new(550, "5.1.2", format!("Host or domain name not found: {e}")),
                ))
            }
            Err(e @ DnsError::Bogus(_)) => {
                return Err((false, Reply::new(451, "4.7.5", format!("{e} (DANE)"))));
            }
            Err(e) => {
                return Err((
                    false,
                    Reply::new(
                        451,
                        "4.4.3",
                        format!("Host or domain name not found (temporary): {e}"),
                    ),
                ))
            }
        };
        if dnssec && !mx_secure && no_dane.is_none() {
            no_dane = Some(format!("the MX records of {domain} are not DNSSEC-signed"));
        }
        if configured.0 == TlsPolicy::Dane && !mx_secure && !asked.ignore_policies {
            let why = no_dane.clone().unwrap_or_default();
            return Err((
                false,
                Reply::new(
                    451,
                    "4.7.5",
                    format!("DANE is required for {domain} ([outbound.tls_policy]), but {why}"),
                ),
            ));
        }
        let (mut sts, mut sts_failed) = (None, None);
        if let (Some(cache), false) = (&self.sts, asked.ignore_policies) {
            match cache.policy(domain).await {
                Lookup::Policy(p) if p.mode != Mode::None => sts = Some(p),
                Lookup::Policy(_) | Lookup::None => {}
                Lookup::Failed {
                    reason,
                    result_type,
                } => {
                    tracing::warn!("MTA-STS policy of {domain}: {reason}");
                    sts_failed = Some((result_type, reason));
                }
            }
        }
        Ok(DomainPlan {
            domain: domain.to_ascii_lowercase(),
            hosts,
            mx_secure,
            dnssec,
            configured,
            asked,
            no_dane,
            sts,
            sts_failed,
        })
    }

    /// One MX host: its addresses and its TLS policy. `Err`: the host is
    /// not to be used (the next one is tried).
    pub async fn host(&self, plan: &DomainPlan, mx: &MxHost) -> Result<HostPlan, HostError> {
        let (addrs, addr_secure) = if plan.dnssec && plan.mx_secure {
            match self.dns.addresses_secure(&mx.name).await {
                Ok(found) => found,
                Err(e @ DnsError::Bogus(_)) => {
                    return Err(HopError::tls(
                        format!("MX host {}: {e}", mx.name),
                        TlsFailure::DnssecInvalid,
                    )
                    .into())
                }
                Err(e) => return Err(address_error(&mx.name, e)),
            }
        } else {
            match self.dns.addresses(&mx.name).await {
                Ok(ips) => (ips, false),
                Err(e) => return Err(address_error(&mx.name, e)),
            }
        };
        let (configured, per_domain) = plan.configured;
        let dane_required = configured == TlsPolicy::Dane && !plan.asked.ignore_policies;
        let mut why_not_dane = plan.no_dane.clone();
        if plan.dnssec && plan.mx_secure && !addr_secure {
            why_not_dane = Some(format!(
                "the addresses of {} are not DNSSEC-signed",
                mx.name
            ));
        }
        if why_not_dane.is_none() {
            let tlsa = match self.dns.tlsa(&mx.name, self.port).await {
                Ok(answer) => answer,
                Err(e @ DnsError::Bogus(_)) => {
                    return Err(HopError::tls(e.to_string(), TlsFailure::DnssecInvalid).into())
                }
                Err(e) => return Err(HopError::tls(e.to_string(), TlsFailure::TlsaInvalid).into()),
            };
            match tlsa {
                TlsaAnswer::Secure(records) => {
                    let names = vec![mx.name.clone(), plan.domain.clone()];
                    return Ok(match DaneCheck::new(&records, names) {
                        Some(check) => HostPlan {
                            addrs,
                            fallback: None,
                            tls: TlsPolicy::Dane,
                            why: format!(
                                "MX and TLSA records of {} are DNSSEC-signed: {}",
                                mx.name,
                                check.describe().join(", ")
                            ),
                            dane: Some(check),
                            name: "dane",
                        },
                        // RFC 7672 §2.2: unusable records still mean
                        // that the server does TLS.
                        None => HostPlan {
                            addrs,
                            fallback: None,
                            tls: TlsPolicy::Required,
                            dane: None,
                            name: "dane",
                            why: format!(
                                "the TLSA records of {} are all unusable: TLS without authentication",
                                mx.name
                            ),
                        },
                    });
                }
                TlsaAnswer::None { .. } => {
                    why_not_dane = Some(format!("{} has no TLSA records", mx.name));
                }
            }
        }
        let why_not_dane = why_not_dane.unwrap_or_default();
        if dane_required {
            return Err(HopError::tls(
                format!(
                    "DANE is required for {} ([outbound.tls_policy]), but {why_not_dane}",
                    plan.domain
                ),
                TlsFailure::DaneRequired,
            )
            .into());
        }
        // MTA-STS (RFC 8461 §4.2), for hosts DANE does not cover — unless
        // the administrator turned TLS off for this very domain.
        let off_here = per_domain && configured == TlsPolicy::Off;
        let sts = plan.sts.as_ref().filter(|_| !off_here);
        let listed = sts.is_some_and(|p| p.matches(&mx.name));
        if let Some(policy) = sts.filter(|p| p.mode == Mode::Enforce) {
            if !listed {
                return Err(HopError::tls(
                    format!(
                        "MX host {} is not listed in the MTA-STS policy of {} (mx: {})",
                        mx.name,
                        plan.domain,
                        policy.mx.join(", ")
                    ),
                    TlsFailure::CertificateHostMismatch,
                )
                .into());
            }
            return Ok(HostPlan {
                addrs,
                tls: TlsPolicy::Verify,
                fallback: None,
                dane: None,
                name: "mta-sts",
                why: format!(
                    "{why_not_dane}; MTA-STS policy {} of {} in enforce mode lists {}",
                    policy.id, plan.domain, mx.name
                ),
            });
        }
        // Testing mode: verify as enforce would, report, then deliver as
        // configured (RFC 8461 §5).
        let testing = sts.is_some()
            && listed
            && matches!(configured, TlsPolicy::Opportunistic | TlsPolicy::Required);
        let mut host = HostPlan {
            addrs,
            tls: if testing { TlsPolicy::Verify } else { configured },
            fallback: testing.then_some(configured),
            dane: None,
            name: policy_name(configured),
            why: match (sts, per_domain) {
                (Some(p), _) => format!(
                    "{why_not_dane}; MTA-STS policy {} of {} in testing mode: failures are reported, not enforced",
                    p.id, plan.domain
                ),
                (None, true) => {
                    format!("{why_not_dane}; [outbound.tls_policy] for {}", plan.domain)
                }
                (None, false) => format!("{why_not_dane}; no MTA-STS policy"),
            },
        };
        if plan.asked.ignore_policies {
            host.why = "the message says TLS-Required: No".into();
            if configured == TlsPolicy::Dane {
                // Only DANE meets `tls = "dane"`, and it is set aside:
                // STARTTLS when offered (not a PKIX check it never asked).
                host.tls = TlsPolicy::Opportunistic;
                host.name = policy_name(host.tls);
            }
        }
        if plan.asked.requiretls {
            host.fallback = None;
            if !plan.mx_secure && !listed {
                return Err(HopError::requiretls(format!(
                    "the MX records of {} are neither DNSSEC-signed nor covered by MTA-STS",
                    plan.domain
                ))
                .into());
            }
            host.tls = TlsPolicy::Verify;
            host.name = "verify";
            let mx_by = if plan.mx_secure {
                "MX records DNSSEC-signed"
            } else {
                "MX host listed by MTA-STS"
            };
            host.why = format!("REQUIRETLS, {mx_by}, {why_not_dane}");
        }
        Ok(host)
    }

    /// A configured host (relay, smart host, backup MX primary): DANE
    /// only when its policy is `dane`; REQUIRETLS needs a verified
    /// certificate (the host itself is the administrator's choice).
    pub async fn named_host(
        &self,
        name: &str,
        policy: TlsPolicy,
        asked: Asked,
    ) -> Result<Option<HostPlan>, HopError> {
        if policy != TlsPolicy::Dane {
            if asked.requiretls && policy != TlsPolicy::Verify {
                return Ok(Some(HostPlan {
                    addrs: Vec::new(),
                    fallback: None,
                    tls: TlsPolicy::Verify,
                    dane: None,
                    name: "verify",
                    why: "REQUIRETLS: the certificate must verify".into(),
                }));
            }
            return Ok(None);
        }
        let fail = |why: String, failure| HopError::tls(format!("DANE for {name}: {why}"), failure);
        if !self.dns.dnssec_ready().await {
            return Err(fail(
                "DNSSEC validation is not available".into(),
                TlsFailure::DaneRequired,
            ));
        }
        let (addrs, secure) = match self.dns.addresses_secure(name).await {
            Ok(found) => found,
            Err(e @ DnsError::Bogus(_)) => {
                return Err(fail(e.to_string(), TlsFailure::DnssecInvalid))
            }
            Err(e) => return Err(address_error(name, e).error),
        };
        if !secure {
            return Err(fail(
                "its addresses are not DNSSEC-signed".into(),
                TlsFailure::DaneRequired,
            ));
        }
        match self.dns.tlsa(name, self.port).await {
            Ok(TlsaAnswer::Secure(records)) => {
                match DaneCheck::new(&records, vec![name.to_string()]) {
                    Some(check) => Ok(Some(HostPlan {
                        addrs,
                        fallback: None,
                        tls: TlsPolicy::Dane,
                        why: format!("TLSA records of {name}: {}", check.describe().join(", ")),
                        dane: Some(check),
                        name: "dane",
                    })),
                    None => Err(fail(
                        "its TLSA records are all unusable".into(),
                        TlsFailure::TlsaInvalid,
                    )),
                }
            }
            Ok(TlsaAnswer::None { .. }) => Err(fail(
                "it has no DNSSEC-signed TLSA records".into(),
                TlsFailure::DaneRequired,
            )),
            Err(e @ DnsError::Bogus(_)) => Err(fail(e.to_string(), TlsFailure::DnssecInvalid)),
            Err(e) => Err(fail(e.to_string(), TlsFailure::TlsaInvalid)),
        }
    }
}

/// A host that cannot be used, and whether that is for good (its name
/// does not exist) — the domain fails only if every host's trouble is.
#[derive(Debug)]
pub struct HostError {
    pub error: HopError,
    pub permanent: bool,
}

impl From<HopError> for HostError {
    fn from(error: HopError) -> Self {
        HostError {
            error,
            permanent: false,
        }
    }
}

fn address_error(name: &str, e: DnsError) -> HostError {
    HostError {
        permanent: e.is_permanent(),
        error: HopError {
            reply: Reply::new(451, "4.4.3", format!("MX host {name}: {e}")),
            tls_failed: false,
            tls_failure: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_required_no_is_read_from_the_header_only() {
        assert!(tls_required_no(
            b"Subject: x\r\nTLS-Required: No\r\n\r\nbody"
        ));
        assert!(tls_required_no(b"tls-required:   no\n\nbody"));
        assert!(!tls_required_no(b"Subject: x\r\n\r\nTLS-Required: No\r\n"));
        assert!(!tls_required_no(b"TLS-Required: Yes\r\n\r\n"));
    }

    #[test]
    fn the_per_domain_table_is_over_the_default() {
        let mut s = SecuritySettings {
            default: TlsPolicy::Opportunistic,
            dane: true,
            domains: HashMap::new(),
        };
        s.domains.insert("bank.example".into(), TlsPolicy::Dane);
        assert_eq!(s.for_domain("Bank.Example"), (TlsPolicy::Dane, true));
        assert_eq!(
            s.for_domain("other.example"),
            (TlsPolicy::Opportunistic, false)
        );
    }
}
