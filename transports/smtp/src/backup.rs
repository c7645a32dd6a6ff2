//! Backup MX (RFC 5321 §5.1): to which of a domain's MX hosts a backup
//! may hand the domain's mail.
//!
//! Only to hosts with a lower preference number than our own entry in the
//! domain's MX set: a host as preferred as us or less would send the mail
//! straight back. Our entry is found by name (our `hostname`, or the
//! domain's `our_mx`) or by address (an MX host whose address and port is
//! one of our listeners; a listener on `0.0.0.0` or `::` is every address
//! of this host's interfaces, `interfaces.rs`). When we are the most preferred host, or not in
//! the set at all, nothing may be tried: the mail is deferred — held, as a
//! backup holds mail — never bounced and never sent to ourselves.

use super::{all_outcomes, temporary, Dns, DnsError, MxHost, Security, SmtpTransport};
use faxmta_queue::Reply;
use faxmta_transport::{BackupMxHop, Job, Outcome, Status};
use std::net::{IpAddr, SocketAddr};

/// How this host recognises itself among a domain's MX hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Myself {
    /// Names that are this host (our `hostname`), lower case.
    pub names: Vec<String>,
    /// Addresses we accept mail on (our listeners).
    pub listeners: Vec<SocketAddr>,
}

impl Myself {
    /// Whether `name` is one of our names.
    pub fn is_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Whether `addr` is one of our listeners (a listener on the
    /// unspecified address counts for every address of this host's
    /// interfaces, loopback included).
    pub fn is_listener(&self, addr: SocketAddr) -> bool {
        self.listeners.iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip()
                    || (l.ip().is_unspecified() && super::interfaces::is_local(addr.ip())))
        })
    }
}

/// One host of a domain's MX set, as a backup MX sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedHost {
    pub mx: MxHost,
    /// Its addresses, or why there are none.
    pub addrs: Result<Vec<IpAddr>, DnsError>,
    /// This entry is us (by name or by address).
    pub ours: bool,
}

/// A domain's MX set with our own entries marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPlan {
    pub domain: String,
    /// Most preferred first.
    pub hosts: Vec<PlannedHost>,
}

impl BackupPlan {
    /// Look up the MX set of `hop`'s domain and the addresses of its
    /// hosts; `port` is the one MX hosts are contacted on.
    pub async fn make(
        dns: &Dns,
        myself: &Myself,
        port: u16,
        hop: &BackupMxHop,
    ) -> Result<BackupPlan, DnsError> {
        let mut hosts = Vec::new();
        for mx in dns.mx(&hop.domain).await? {
            let addrs = dns.addresses(&mx.name).await;
            hosts.push((mx, addrs));
        }
        Ok(BackupPlan::from_hosts(&hop.domain, hosts, |mx, addrs| {
            myself.is_name(&mx.name)
                || hop
                    .our_mx
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&mx.name))
                || addrs.as_ref().is_ok_and(|ips| {
                    ips.iter()
                        .any(|ip| myself.is_listener(SocketAddr::new(*ip, port)))
                })
        }))
    }

    /// A plan from hosts already looked up; `ours` tells our entries.
    pub fn from_hosts(
        domain: &str,
        hosts: Vec<(MxHost, Result<Vec<IpAddr>, DnsError>)>,
        ours: impl Fn(&MxHost, &Result<Vec<IpAddr>, DnsError>) -> bool,
    ) -> BackupPlan {
        let hosts = hosts
            .into_iter()
            .map(|(mx, addrs)| PlannedHost {
                ours: ours(&mx, &addrs),
                mx,
                addrs,
            })
            .collect();
        BackupPlan {
            domain: domain.to_string(),
            hosts,
        }
    }

    /// Our own preference: that of our most preferred entry.
    pub fn our_preference(&self) -> Option<u16> {
        self.hosts
            .iter()
            .filter(|h| h.ours)
            .map(|h| h.mx.preference)
            .min()
    }

    /// The hosts that may take the mail, in order (those more preferred
    /// than us), or the temporary reply that says why there are none.
    pub fn primaries(&self) -> Result<Vec<&PlannedHost>, Reply> {
        let domain = &self.domain;
        let names = || {
            self.hosts
                .iter()
                .map(|h| format!("{} ({})", h.mx.name, h.mx.preference))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(ours) = self.our_preference() else {
            return Err(Reply::new(
                451,
                "4.4.4",
                format!(
                    "this host is not an MX for {domain} (its MX hosts: {}); the mail is held \
                     until it is",
                    names()
                ),
            ));
        };
        let better: Vec<&PlannedHost> = self
            .hosts
            .iter()
            .filter(|h| h.mx.preference < ours)
            .collect();
        if better.is_empty() {
            return Err(Reply::new(
                451,
                "4.4.6",
                format!(
                    "we are the most preferred MX for {domain} (preference {ours}); the mail is \
                     held until a more preferred MX exists"
                ),
            ));
        }
        Ok(better)
    }
}

impl SmtpTransport {
    /// A backup MX domain: only its MX hosts more preferred than us, in
    /// order; anything that keeps the mail from them defers it.
    pub(super) async fn to_backup(&self, job: &Job<'_>, hop: &BackupMxHop) -> Vec<Outcome> {
        if let Some(failed) = self.loop_check(job) {
            return failed;
        }
        let defer = |reply: Reply| all_outcomes(job, Status::Deferred, reply);
        let myself = &self.settings.myself;
        let plan = match BackupPlan::make(&self.dns, myself, self.settings.port, hop).await {
            Ok(plan) => plan,
            Err(e) => {
                return defer(Reply::new(
                    451,
                    "4.4.3",
                    format!("MX lookup for {}: {e}; the mail is held", hop.domain),
                ))
            }
        };
        let primaries = match plan.primaries() {
            Ok(hosts) => hosts,
            Err(reply) => {
                tracing::warn!("{}: {}", job.envelope.id, reply.text);
                return defer(reply);
            }
        };
        let asked = crate::secure::Asked::of(job);
        let mut last: Option<Reply> = None;
        for host in primaries {
            let plan = match self.planner.named_host(&host.mx.name, hop.tls, asked).await {
                Ok(plan) => plan,
                Err(e) => {
                    last = Some(e.reply);
                    continue;
                }
            };
            let policy = plan.as_ref().map_or_else(
                || {
                    format!(
                        "{} (configured for the backup MX domain)",
                        crate::secure::policy_name(hop.tls)
                    )
                },
                |p| p.describe(),
            );
            let ips = match &host.addrs {
                Ok(ips) => ips,
                Err(e) => {
                    last = Some(Reply::new(
                        451,
                        "4.4.3",
                        format!("MX host {}: {e}", host.mx.name),
                    ));
                    continue;
                }
            };
            for ip in ips {
                let addr = SocketAddr::new(*ip, self.settings.port);
                let security = Security {
                    tls: plan.as_ref().map_or(hop.tls, |p| p.tls),
                    implicit_tls: false,
                    auth: None,
                    dane: plan.as_ref().and_then(|p| p.dane.as_ref()),
                    requiretls: asked.requiretls,
                };
                match self
                    .attempt(job, &host.mx.name, addr, security, &policy)
                    .await
                {
                    Ok(outcomes) => return outcomes,
                    Err(e) => last = Some(e.reply),
                }
            }
        }
        // The primaries' trouble is temporary for a backup: it holds the
        // mail until one answers (or the domain's lifetime ends).
        defer(
            last.map(|r| Reply::new(451, &temporary(&r.status), r.text))
                .unwrap_or_else(|| {
                    Reply::new(
                        451,
                        "4.4.1",
                        format!("no more preferred MX host of {} answered", hop.domain),
                    )
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, preference: u16, ip: &str) -> (MxHost, Result<Vec<IpAddr>, DnsError>) {
        let mx = MxHost {
            name: name.into(),
            preference,
            implicit: false,
        };
        (mx, Ok(vec![ip.parse().unwrap()]))
    }

    fn plan(hosts: Vec<(MxHost, Result<Vec<IpAddr>, DnsError>)>, us: &[&str]) -> BackupPlan {
        BackupPlan::from_hosts("d.test", hosts, |mx, _| us.contains(&mx.name.as_str()))
    }

    fn names(hosts: &[&PlannedHost]) -> Vec<String> {
        hosts.iter().map(|h| h.mx.name.clone()).collect()
    }

    #[test]
    fn only_hosts_more_preferred_than_our_best_entry_are_tried() {
        let p = plan(
            vec![
                host("a", 5, "192.0.2.1"),
                host("b", 10, "192.0.2.2"),
                host("us", 20, "192.0.2.3"),
                host("peer", 20, "192.0.2.4"),
                host("us-too", 30, "192.0.2.3"),
                host("c", 40, "192.0.2.5"),
            ],
            &["us", "us-too"],
        );
        assert_eq!(p.our_preference(), Some(20));
        assert_eq!(names(&p.primaries().unwrap()), ["a", "b"]);
    }

    #[test]
    fn most_preferred_or_absent_defers_with_the_reason() {
        let p = plan(
            vec![host("us", 10, "192.0.2.3"), host("b", 20, "192.0.2.2")],
            &["us"],
        );
        let e = p.primaries().unwrap_err();
        assert_eq!((e.code, e.status.as_str()), (451, "4.4.6"));
        assert!(e
            .text
            .starts_with("we are the most preferred MX for d.test (preference 10)"));

        // Equal preference is not "more preferred" either.
        let p = plan(
            vec![host("b", 10, "192.0.2.2"), host("us", 10, "192.0.2.3")],
            &["us"],
        );
        assert_eq!(p.primaries().unwrap_err().status, "4.4.6");

        let p = plan(vec![host("a", 10, "192.0.2.1")], &[]);
        let e = p.primaries().unwrap_err();
        assert_eq!(e.status, "4.4.4");
        assert!(
            e.text
                .starts_with("this host is not an MX for d.test (its MX hosts: a (10))"),
            "{}",
            e.text
        );
    }

    #[test]
    fn listeners_on_the_unspecified_address_match_loopback() {
        let me = Myself {
            names: vec!["mx.example.test".into()],
            listeners: vec![
                "0.0.0.0:25".parse().unwrap(),
                "192.0.2.7:2525".parse().unwrap(),
            ],
        };
        assert!(me.is_name("MX.example.test"));
        assert!(me.is_listener("127.0.0.1:25".parse().unwrap()));
        assert!(!me.is_listener("127.0.0.1:26".parse().unwrap()));
        assert!(me.is_listener("192.0.2.7:2525".parse().unwrap()));
        assert!(!me.is_listener("192.0.2.8:2525".parse().unwrap()));
    }

    #[test]
    fn listeners_on_the_unspecified_address_match_every_interface_address() {
        let me = Myself {
            names: vec![],
            listeners: vec!["0.0.0.0:25".parse().unwrap()],
        };
        let all = super::super::interfaces::addresses().unwrap();
        assert!(
            all.iter().any(|ip| !ip.is_loopback()),
            "no address but loopback: {all:?}"
        );
        for ip in all {
            assert!(me.is_listener(SocketAddr::new(ip, 25)), "{ip}");
            assert!(!me.is_listener(SocketAddr::new(ip, 26)), "{ip}");
        }
    }
}
