//! The router: which way a recipient address goes.
//!
//! The SMTP server asks it at RCPT time (is this ours, does the user
//! exist) and the scheduler asks it again at delivery time (which
//! transport, which mailbox), so both always agree with the configuration.
//! Fax recipients (`kind = "fax"` domains, and the `FAX=` and `IMCEAFAX-`
//! forms at our local domains) are worked out in `router/fax.rs`.

use crate::config::fax::FaxSenders;
use crate::config::{Config, Deliver, DomainKind};
use faxmta_fax::directory::{FaxPolicy, FaxTarget};
use faxmta_queue::Reply;
use faxmta_transport::{BackupMxHop, LmtpTarget, NextHop, RelayHop};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

/// Where a recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Delivered on this host into a Maildir.
    Maildir { mailbox: PathBuf },
    /// Handed to an LMTP server (with the full address in RCPT TO), which
    /// delivers it and answers for each recipient.
    Lmtp { target: LmtpTarget },
    /// Not one of our domains: it has to be relayed, to the domain's MX.
    Remote { domain: String },
    /// One of our relay domains: to its configured hosts, no MX lookup.
    Relay { hop: RelayHop },
    /// Not one of our domains (it has to be relayed), through a smart
    /// host instead of the domain's MX: the domain's own (`kind =
    /// "smarthost"`) or else the global `[smarthost]`.
    Smarthost {
        domain: String,
        hop: RelayHop,
        /// The global `[smarthost]` rather than a `[[domain]]` entry.
        global: bool,
    },
    /// A domain we are a backup MX for: ours to relay (accepted from
    /// anyone), to its MX hosts more preferred than us only.
    BackupMx(BackupRoute),
    /// A domain whose mail we hold for a customer until ETRN releases it:
    /// ours to relay (accepted from anyone).
    Etrn(EtrnRoute),
    /// A fax number: over the fax line. Ours (accepted from any client),
    /// but only from senders the fax user directory lets fax the number
    /// (`crate::policy::fax`).
    Fax(FaxTarget),
}

/// How an ETRN domain's mail is held and where it goes once released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtrnRoute {
    /// The domain, lower case.
    pub domain: String,
    /// After the release: a relay hop (its `hosts`) or a backup MX hop
    /// (its MX hosts more preferred than us).
    pub hop: NextHop,
    /// Its own lifetime in seconds, if it has one (else the queue's).
    pub lifetime: Option<u64>,
    /// Clients whose ETRN may release it.
    pub release_from: Vec<IpNet>,
    /// Recipients are checked against `users = […]`.
    pub listed: bool,
}

impl EtrnRoute {
    /// Whether `client` may release this domain's mail.
    pub fn may_release(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
            v4 => v4,
        };
        self.release_from.iter().any(|net| net.contains(&client))
    }
}

/// How a backup MX domain's recipients are taken and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRoute {
    pub hop: BackupMxHop,
    /// How long its mail may wait, in seconds.
    pub lifetime: u64,
    /// Verify recipients by a callout to the primary, within this time.
    pub callout: Option<std::time::Duration>,
    /// Recipients are checked against `users = […]`.
    pub listed: bool,
}

impl Route {
    /// Whether delivering to this route means relaying for the client.
    pub fn is_relay(&self) -> bool {
        matches!(self, Route::Remote { .. } | Route::Smarthost { .. })
    }
}

struct LocalDomain {
    deliver: Deliver,
    /// Lower-cased user names, when the domain has a user list.
    users: Option<Vec<String>>,
}

/// The domain table.
pub struct Router {
    local: HashMap<String, LocalDomain>,
    /// Domains we are a backup MX for, with their user lists.
    backup: HashMap<String, (BackupRoute, Option<Vec<String>>)>,
    /// ETRN domains, with their user lists.
    etrn: HashMap<String, (EtrnRoute, Option<Vec<String>>)>,
    relay: HashMap<String, RelayHop>,
    /// Domains of kind `smarthost`.
    smarthost_domains: HashMap<String, RelayHop>,
    /// `[smarthost]`: for every other domain that is not ours.
    smarthost: Option<RelayHop>,
    /// The domain `postmaster` without a domain goes to (RFC 5321 §4.5.1).
    postmaster_domain: Option<String>,
    /// Domains of kind `fax`.
    fax_domains: HashSet<String>,
    /// The dial plan, outbound rules and fax user directory.
    fax: FaxPolicy,
    /// `[fax] senders`.
    fax_senders: FaxSenders,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let mut local = HashMap::new();
        let mut relay = HashMap::new();
        let mut smarthost_domains = HashMap::new();
        let mut backup = HashMap::new();
        let mut etrn = HashMap::new();
        let mut fax_domains = HashSet::new();
        for d in &config.domains {
            let users = || {
                d.users
                    .as_ref()
                    .map(|u| u.iter().map(|s| s.to_lowercase()).collect())
            };
            match d.kind {
                DomainKind::BackupMx => {
                    let route = BackupRoute {
                        hop: d.backup_hop(config.outbound.tls),
                        lifetime: d.lifetime().unwrap_or(config.queue.lifetime.0),
                        callout: d.callout(),
                        listed: d.users.is_some(),
                    };
                    backup.insert(d.name.0.clone(), (route, users()));
                }
                DomainKind::Etrn => {
                    let route = EtrnRoute {
                        domain: d.name.0.clone(),
                        hop: d.etrn_hop(config.outbound.tls),
                        lifetime: d.lifetime(),
                        release_from: d.release_from.clone().unwrap_or_default(),
                        listed: d.users.is_some(),
                    };
                    etrn.insert(d.name.0.clone(), (route, users()));
                }
                DomainKind::Relay => {
                    relay.insert(d.name.0.clone(), d.hop(config.outbound.tls));
                }
                DomainKind::Smarthost => {
                    smarthost_domains.insert(d.name.0.clone(), d.hop(config.outbound.tls));
                }
                DomainKind::Fax => {
                    fax_domains.insert(d.name.0.clone());
                }
                DomainKind::Local => {
                    if let Some(deliver) = &d.deliver {
                        local.insert(
                            d.name.0.clone(),
                            LocalDomain {
                                deliver: deliver.clone(),
                                users: users(),
                            },
                        );
                    }
                }
            }
        }
        let hostname = config.hostname.to_ascii_lowercase();
        let postmaster_domain = if local.contains_key(&hostname) {
            Some(hostname)
        } else {
            config
                .domains
                .iter()
                .find(|d| d.kind == DomainKind::Local)
                .map(|d| d.name.0.clone())
        };
        Router {
            local,
            backup,
            etrn,
            relay,
            smarthost_domains,
            smarthost: config.smarthost.as_ref().map(|s| s.hop()),
            postmaster_domain,
            fax_domains,
            fax: config.fax.policy(),
            fax_senders: config.fax.senders(),
        }
    }

    /// The ETRN domains, in no particular order.
    pub fn etrn_domains(&self) -> impl Iterator<Item = &EtrnRoute> {
        self.etrn.values().map(|(route, _)| route)
    }

    /// Decide the route of an address, or the reply that refuses it.
    pub fn resolve(&self, address: &str) -> Result<Route, Reply> {
        let (user, domain) = match address.rsplit_once('@') {
            Some((u, d)) => (u, d.to_ascii_lowercase()),
            None if address.eq_ignore_ascii_case("postmaster") => match &self.postmaster_domain {
                Some(d) => ("postmaster", d.clone()),
                None => return Err(unknown_user(address)),
            },
            None => {
                return Err(Reply::new(
                    501,
                    "5.1.3",
                    format!(
                        "<{address}>: Recipient address rejected: need fully-qualified address"
                    ),
                ))
            }
        };
        if user.is_empty() || domain.is_empty() {
            return Err(bad_syntax(address));
        }
        // A trailing dot (`bob@example.test.`) names the same domain.
        let bare = domain.trim_end_matches('.');
        if bare.is_empty() {
            return Err(bad_syntax(address));
        }
        if let Some(route) = self.fax_route(address, user, bare)? {
            return Ok(route);
        }
        if let Some(hop) = self.relay.get(bare) {
            return Ok(Route::Relay { hop: hop.clone() });
        }
        let listed = |users: &Option<Vec<String>>| {
            let user = user.to_lowercase();
            users
                .as_ref()
                .is_none_or(|u| user == "postmaster" || u.contains(&user))
        };
        if let Some((route, users)) = self.backup.get(bare) {
            if !listed(users) {
                return Err(unknown_user(address));
            }
            return Ok(Route::BackupMx(route.clone()));
        }
        if let Some((route, users)) = self.etrn.get(bare) {
            if !listed(users) {
                return Err(unknown_user(address));
            }
            return Ok(Route::Etrn(route.clone()));
        }
        let Some(local) = self.local.get(bare) else {
            let (hop, global) = match self.smarthost_domains.get(bare) {
                Some(hop) => (hop, false),
                None => match &self.smarthost {
                    Some(hop) => (hop, true),
                    None => return Ok(Route::Remote { domain }),
                },
            };
            return Ok(Route::Smarthost {
                domain,
                hop: hop.clone(),
                global,
            });
        };
        let user = user.to_lowercase();
        // The local part names a directory: refuse anything that could
        // climb out of it or is not a plain name.
        if user.starts_with('.')
            || user.contains(['/', '\\', '\0'])
            || user.chars().any(char::is_control)
        {
            return Err(bad_syntax(address));
        }
        if let Some(users) = &local.users {
            if user != "postmaster" && !users.contains(&user) {
                return Err(unknown_user(address));
            }
        }
        match &local.deliver {
            Deliver::Maildir(template) => Ok(Route::Maildir {
                mailbox: PathBuf::from(template.replace("{domain}", bare).replace("{user}", &user)),
            }),
            Deliver::Lmtp(target) => Ok(Route::Lmtp {
                target: target.clone(),
            }),
        }
    }
}

fn unknown_user(address: &str) -> Reply {
    Reply::new(
        550,
        "5.1.1",
        format!("<{address}>: Recipient address rejected: User unknown in local recipient table"),
    )
}

fn bad_syntax(address: &str) -> Reply {
    Reply::new(
        553,
        "5.1.3",
        format!("<{address}>: Recipient address rejected: bad address syntax"),
    )
}

mod fax;

#[cfg(test)]
mod tests;
