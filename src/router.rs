//! The router: which way a recipient address goes.
//!
//! The SMTP server asks it at RCPT time (is this ours, does the user
//! exist) and the scheduler asks it again at delivery time (which
//! transport, which mailbox), so both always agree with the configuration.

use crate::config::{Config, Deliver, DomainKind};
use faxmta_queue::Reply;
use faxmta_transports::{BackupMxHop, LmtpTarget, RelayHop};
use std::collections::HashMap;
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
    relay: HashMap<String, RelayHop>,
    /// Domains of kind `smarthost`.
    smarthost_domains: HashMap<String, RelayHop>,
    /// `[smarthost]`: for every other domain that is not ours.
    smarthost: Option<RelayHop>,
    /// The domain `postmaster` without a domain goes to (RFC 5321 §4.5.1).
    postmaster_domain: Option<String>,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let mut local = HashMap::new();
        let mut relay = HashMap::new();
        let mut smarthost_domains = HashMap::new();
        let mut backup = HashMap::new();
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
                DomainKind::Relay => {
                    relay.insert(d.name.0.clone(), d.hop(config.outbound.tls));
                }
                DomainKind::Smarthost => {
                    smarthost_domains.insert(d.name.0.clone(), d.hop(config.outbound.tls));
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
            relay,
            smarthost_domains,
            smarthost: config.smarthost.as_ref().map(|s| s.hop()),
            postmaster_domain,
        }
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
        let bare = domain.trim_end_matches('.');
        if let Some(hop) = self.relay.get(bare) {
            return Ok(Route::Relay { hop: hop.clone() });
        }
        if let Some((route, users)) = self.backup.get(bare) {
            let user = user.to_lowercase();
            if users
                .as_ref()
                .is_some_and(|u| user != "postmaster" && !u.contains(&user))
            {
                return Err(unknown_user(address));
            }
            return Ok(Route::BackupMx(route.clone()));
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
                mailbox: PathBuf::from(
                    template
                        .replace("{domain}", &domain)
                        .replace("{user}", &user),
                ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_transports::HostPort;
    use std::path::Path;

    fn router() -> Router {
        let config = Config::parse(
            Path::new("t.toml"),
            r#"
hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
users = ["Alice", "bob"]
[[domain]]
name = "open.test"
kind = "local"
deliver = "maildir:/m/{user}"
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.3:2525", "backup.branch.test"]
tls = "required"
[[domain]]
name = "store.test"
kind = "local"
deliver = "lmtp:unix:/run/dovecot/lmtp"
[[domain]]
name = "listed.test"
kind = "local"
deliver = "lmtp:[::1]:24"
users = ["ann"]
"#,
        )
        .unwrap();
        Router::new(&config)
    }

    #[test]
    fn local_users_and_remote_domains() {
        let r = router();
        assert_eq!(
            r.resolve("alice@Example.TEST"),
            Ok(Route::Maildir {
                mailbox: "/var/mail/example.test/alice".into()
            })
        );
        assert_eq!(r.resolve("carol@example.test").unwrap_err().status, "5.1.1");
        assert_eq!(
            r.resolve("anyone@open.test"),
            Ok(Route::Maildir {
                mailbox: "/m/anyone".into()
            })
        );
        assert_eq!(
            r.resolve("x@elsewhere.org"),
            Ok(Route::Remote {
                domain: "elsewhere.org".into()
            })
        );
        assert!(r.resolve("x@elsewhere.org").unwrap().is_relay());
    }

    #[test]
    fn relay_domains_go_to_their_hosts_and_are_ours() {
        let r = router();
        let Ok(Route::Relay { hop }) = r.resolve("anyone@Branch.Test") else {
            panic!("not a relay route");
        };
        assert!(
            !Route::Relay { hop: hop.clone() }.is_relay(),
            "ours: accepted from anyone"
        );
        assert_eq!(hop.tls, faxmta_transports::smtp::TlsPolicy::Required);
        let hosts: Vec<(&str, u16)> = hop
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.port))
            .collect();
        assert_eq!(hosts, vec![("127.0.0.3", 2525), ("backup.branch.test", 25)]);
        assert!(
            r.resolve("x@sub.branch.test").unwrap().is_relay(),
            "subdomains are not"
        );
    }

    #[test]
    fn lmtp_domains_go_to_their_server_and_user_lists_still_apply() {
        let r = router();
        let unix = LmtpTarget::Unix("/run/dovecot/lmtp".into());
        for address in ["Anyone@Store.Test", "postmaster@store.test"] {
            assert_eq!(
                r.resolve(address),
                Ok(Route::Lmtp {
                    target: unix.clone()
                })
            );
        }
        assert!(!r.resolve("x@store.test").unwrap().is_relay(), "ours");
        let tcp = LmtpTarget::Tcp(HostPort {
            name: "::1".into(),
            port: 24,
        });
        assert_eq!(
            r.resolve("ANN@listed.test"),
            Ok(Route::Lmtp { target: tcp })
        );
        assert_eq!(r.resolve("bob@listed.test").unwrap_err().status, "5.1.1");
    }

    #[test]
    fn smart_hosts_take_what_is_not_ours_and_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        let config = Config::parse(
            Path::new("t.toml"),
            &format!(
                r#"
[smarthost]
hosts = ["smtp.isp.test:587"]
auth = {{ user = "me", password_file = "{}" }}
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/m/{{user}}"
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.3"]
[[domain]]
name = "partner.test"
kind = "smarthost"
hosts = ["127.0.0.4:465"]
"#,
                pw.display()
            ),
        )
        .unwrap();
        let r = Router::new(&config);
        let Ok(Route::Smarthost {
            domain,
            hop,
            global: true,
        }) = r.resolve("x@Elsewhere.Org")
        else {
            panic!("not the global smart host");
        };
        assert_eq!(domain, "elsewhere.org");
        assert_eq!(hop.hosts[0].port, 587);
        assert_eq!(hop.auth.as_ref().unwrap().password(), "secret");
        assert!(r.resolve("x@elsewhere.org").unwrap().is_relay());

        let Ok(route @ Route::Smarthost { global: false, .. }) = r.resolve("x@partner.test") else {
            panic!("not the domain's smart host");
        };
        assert!(route.is_relay(), "a smarthost domain is not ours");
        let Route::Smarthost { hop, .. } = route else {
            unreachable!()
        };
        assert!(hop.auth.is_none() && hop.implicit_tls_for(&hop.hosts[0]));

        // Ours stay ours.
        assert!(matches!(
            r.resolve("x@branch.test"),
            Ok(Route::Relay { .. })
        ));
        assert!(matches!(
            r.resolve("x@example.test"),
            Ok(Route::Maildir { .. })
        ));
    }

    #[test]
    fn backup_mx_domains_are_ours_with_their_lists_and_lifetimes() {
        let config = Config::parse(
            Path::new("t.toml"),
            r#"
[[domain]]
name = "partner.test"
kind = "backup-mx"
[[domain]]
name = "listed.test"
kind = "backup-mx"
users = ["Ann"]
lifetime = "2d"
[[domain]]
name = "asked.test"
kind = "backup-mx"
verify = "callout"
"#,
        )
        .unwrap();
        let r = Router::new(&config);
        let Ok(Route::BackupMx(route)) = r.resolve("Anyone@Partner.Test") else {
            panic!("not a backup route");
        };
        assert!(!Route::BackupMx(route.clone()).is_relay(), "ours");
        assert_eq!(route.hop.domain, "partner.test");
        assert_eq!(route.lifetime, 30 * 86_400);
        assert!(route.callout.is_none() && !route.listed);

        let Ok(Route::BackupMx(route)) = r.resolve("ann@listed.test") else {
            panic!("ann is listed");
        };
        assert_eq!(route.lifetime, 2 * 86_400);
        assert!(route.listed);
        assert!(r.resolve("postmaster@listed.test").is_ok());
        assert_eq!(r.resolve("bob@listed.test").unwrap_err().status, "5.1.1");

        let Ok(Route::BackupMx(route)) = r.resolve("x@asked.test") else {
            panic!("not a backup route");
        };
        assert_eq!(route.callout, Some(std::time::Duration::from_secs(30)));
        assert!(r.resolve("x@sub.partner.test").unwrap().is_relay());
    }

    #[test]
    fn postmaster_always_exists() {
        let r = router();
        assert!(r.resolve("Postmaster").is_ok());
        assert!(r.resolve("postmaster@example.test").is_ok());
    }

    #[test]
    fn local_parts_cannot_escape_the_mail_directory() {
        let r = router();
        for bad in [
            "../../etc@open.test",
            ".hidden@open.test",
            "a/b@open.test",
            "@open.test",
        ] {
            assert!(r.resolve(bad).is_err(), "{bad}");
        }
        assert_eq!(r.resolve("nodomain").unwrap_err().code, 501);
    }
}
