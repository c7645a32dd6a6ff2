//! MX delivery: a domain's MX hosts in order, each under the TLS policy
//! the [`Planner`](crate::Planner) chose for it (DANE, MTA-STS, the
//! configured one), skipping ourselves and anything less preferred than
//! ourselves (RFC 5321 §5.1: "mail loops back to myself").

use super::{all_outcomes, HopError, Security, SmtpTransport};
use crate::secure::{Asked, DomainPlan, HostPlan};
use crate::tlsrpt::{PolicyKind, SessionResult};
use crate::TlsFailure;
use faxmta_queue::Reply;
use faxmta_transport::{Job, Outcome, Status};
use mail_auth::report::tlsrpt::ResultType;
use std::net::{IpAddr, SocketAddr};

impl SmtpTransport {
    pub(super) async fn to_domain(&self, job: &Job<'_>, domain: &str) -> Vec<Outcome> {
        if let Some(failed) = self.loop_check(job) {
            return failed;
        }
        let asked = Asked::of(job);
        let plan = match self.planner.domain(domain, asked).await {
            Ok(plan) => plan,
            Err((permanent, reply)) => {
                let status = if permanent {
                    Status::Failed
                } else {
                    Status::Deferred
                };
                return all_outcomes(job, status, reply);
            }
        };
        let hosts = &plan.hosts;
        let mut last: Option<HopError> = None;
        // The policy of the last host tried, for the log line of a deferral.
        let mut last_policy: Option<String> = None;
        let mut all_permanent = true;
        'hosts: for (n, mx) in hosts.iter().enumerate() {
            let looped = self.settings.myself.is_name(&mx.name);
            let host = if looped {
                None
            } else {
                match self.planner.host(&plan, mx).await {
                    Ok(host) => Some(host),
                    Err(e) => {
                        self.count_tls(&plan, &mx.name, None, None, Err(&e.error));
                        all_permanent &= e.permanent || e.error.reply.is_permanent();
                        tracing::info!("{}: {}", job.envelope.id, e.error.reply.text);
                        last = Some(e.error);
                        continue;
                    }
                }
            };
            let addrs: Vec<SocketAddr> = host
                .as_ref()
                .map(|h| {
                    h.addrs
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, self.settings.port))
                        .collect()
                })
                .unwrap_or_default();
            if looped || addrs.iter().any(|a| self.is_self(*a)) {
                // We are an MX of this domain: only more preferred hosts
                // may take it (RFC 5321 §5.1).
                if n == 0 || hosts[..n].iter().all(|h| h.preference >= mx.preference) {
                    return all_outcomes(
                        job,
                        Status::Failed,
                        Reply::new(
                            554,
                            "5.4.6",
                            format!("mail for {domain} loops back to myself"),
                        ),
                    );
                }
                break 'hosts;
            }
            let Some(host) = host else { continue };
            let policy = host.describe();
            last_policy = Some(policy.clone());
            for addr in addrs {
                let mut security = Security {
                    tls: host.tls,
                    implicit_tls: false,
                    auth: None,
                    dane: host.dane.as_ref(),
                    requiretls: asked.requiretls,
                };
                let mut result = self.attempt(job, &mx.name, addr, security, &policy).await;
                if let (Err(e), Some(fallback)) = (&result, host.fallback) {
                    if e.tls_failure.is_some() {
                        // Report-only policy: counted, then as configured.
                        self.count_tls(&plan, &mx.name, Some(&host), Some(addr.ip()), Err(e));
                        tracing::info!(
                            "{}: {} (MTA-STS testing mode: reported, delivering as configured)",
                            job.envelope.id,
                            e.reply.text
                        );
                        security.tls = fallback;
                        result = self.attempt(job, &mx.name, addr, security, &policy).await;
                        if let Ok(outcomes) = result {
                            return outcomes;
                        }
                    }
                }
                match result {
                    Ok(outcomes) => {
                        self.count_tls(&plan, &mx.name, Some(&host), Some(addr.ip()), Ok(()));
                        return outcomes;
                    }
                    Err(e) => {
                        self.count_tls(&plan, &mx.name, Some(&host), Some(addr.ip()), Err(&e));
                        all_permanent &= e.reply.is_permanent();
                        last = Some(e);
                    }
                }
            }
        }
        let reply = last.map(|e| e.reply).unwrap_or_else(|| {
            Reply::new(
                451,
                "4.4.1",
                format!("no MX host of {domain} could be reached"),
            )
        });
        let status = if all_permanent && reply.is_permanent() {
            Status::Failed
        } else {
            Status::Deferred
        };
        let mut outcomes = all_outcomes(job, status, reply);
        for o in &mut outcomes {
            o.tls_policy = last_policy.clone();
        }
        outcomes
    }

    /// Counts a TLS session (or a host that could not be used for a TLS
    /// reason) for the domain's TLS report. Failures that are not about
    /// TLS (a refused connection, a busy server) are not counted.
    fn count_tls(
        &self,
        plan: &DomainPlan,
        mx: &str,
        host: Option<&HostPlan>,
        ip: Option<IpAddr>,
        result: Result<(), &HopError>,
    ) {
        let Some(recorder) = &self.settings.tls_reports else {
            return;
        };
        let failure = match result {
            Ok(()) => None,
            Err(e) => match e.tls_failure {
                Some(f) => Some((result_type(f), e.reply.text.clone())),
                None => return,
            },
        };
        let policy = match (host.and_then(|h| h.dane.as_ref()), &plan.sts) {
            (Some(dane), _) => PolicyKind::Tlsa {
                records: dane.describe(),
            },
            (None, Some(policy)) => PolicyKind::Sts {
                policy: policy.clone(),
            },
            (None, None) => PolicyKind::NoPolicy,
        };
        recorder.record(SessionResult {
            policy_domain: plan.domain.clone(),
            policy,
            mx_host: mx.to_string(),
            receiving_ip: ip,
            failure,
        });
    }
}

/// RFC 8460's name for a TLS failure.
fn result_type(f: TlsFailure) -> ResultType {
    match f {
        TlsFailure::StarttlsNotSupported => ResultType::StartTlsNotSupported,
        TlsFailure::CertificateHostMismatch => ResultType::CertificateHostMismatch,
        TlsFailure::CertificateExpired => ResultType::CertificateExpired,
        TlsFailure::CertificateNotTrusted => ResultType::CertificateNotTrusted,
        TlsFailure::ValidationFailure => ResultType::ValidationFailure,
        TlsFailure::TlsaInvalid => ResultType::TlsaInvalid,
        TlsFailure::DnssecInvalid => ResultType::DnssecInvalid,
        TlsFailure::DaneRequired => ResultType::DaneRequired,
    }
}
