//! MX delivery: a domain's MX hosts in order, each under the TLS policy
//! the [`Planner`](crate::Planner) chose for it (DANE, MTA-STS, the
//! configured one), skipping ourselves and anything less preferred than
//! ourselves (RFC 5321 §5.1: "mail loops back to myself").

use super::{all_outcomes, HopError, Security, SmtpTransport};
use crate::secure::Asked;
use faxmta_queue::Reply;
use faxmta_transport::{Job, Outcome, Status};
use std::net::SocketAddr;

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
        let mut all_permanent = true;
        'hosts: for (n, mx) in hosts.iter().enumerate() {
            let looped = self.settings.myself.is_name(&mx.name);
            let host = if looped {
                None
            } else {
                match self.planner.host(&plan, mx).await {
                    Ok(host) => Some(host),
                    Err(e) => {
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
            for addr in addrs {
                let security = Security {
                    tls: host.tls,
                    implicit_tls: false,
                    auth: None,
                    dane: host.dane.as_ref(),
                    requiretls: asked.requiretls,
                };
                match self.attempt(job, &mx.name, addr, security, &policy).await {
                    Ok(outcomes) => return outcomes,
                    Err(e) => {
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
        all_outcomes(job, status, reply)
    }
}
