//! Inbound policy: whether a client may talk to us, and hand us a
//! recipient.
//!
//! In the order a session meets them: the deny and allow lists at connect
//! (`lists.rs`); at MAIL the SPF check (`spf.rs`), whose verdict each RCPT
//! applies under the strictest of its listener's and its domain's policy;
//! a domain's `allow_from`; relay control (`relay.rs`) — recipients in our
//! domains are taken from anyone, any other domain only from authenticated
//! users and the networks in `[relay] allow` (the default allows nobody,
//! so faxmta is never an open relay), and address tricks are refused;
//! recipients of a backup MX domain with `verify = "callout"` are put to
//! the domain's primary ([`verify_backup`]); a fax recipient's sender is
//! checked by `fax.rs` (who may fax which number). After the data, DKIM and
//! DMARC (`dmarc.rs`); Authentication-Results fields that claim our own
//! authserv-id are removed from what arrives (`authres.rs`). Outbound
//! DKIM signing is in `dkim.rs`. Connection, message and AUTH failure
//! limits are in `limits.rs`; the users of SMTP AUTH in `users.rs`.
//!
//! Clients that may relay are not checked for SPF, DKIM or DMARC — as
//! Postfix with policyd-spf behind `permit_mynetworks` and
//! `permit_sasl_authenticated` does: they are our own users and servers.

pub mod authres;
pub mod dkim;
pub mod dkim_body;
pub mod dmarc;
pub mod fax;
pub mod limits;
pub mod lists;
pub mod relay;
pub mod spf;
pub mod users;

use crate::config::policy::{DmarcMode, ListenerChecks, SpfMode, SpfPolicy};
use crate::config::{Config, ListenerConfig};
use crate::router::{BackupRoute, Route, Router};
use faxmta_queue::Reply;
use faxmta_smtp::{Callout, Verdict};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// A domain's own rules for its recipients.
struct DomainRules {
    allow_from: Vec<IpNet>,
    spf: SpfPolicy,
}

/// The inbound policy, built once from the configuration.
pub struct Policy {
    relay_allow: Vec<IpNet>,
    /// `[policy] deny`.
    deny: Vec<IpNet>,
    domains: HashMap<String, DomainRules>,
    /// Some domain asks for SPF whatever its listener does.
    domain_spf: bool,
}

impl Policy {
    pub fn new(config: &Config) -> Policy {
        let domains: HashMap<String, DomainRules> = config
            .domains
            .iter()
            .map(|d| {
                let rules = DomainRules {
                    allow_from: d.allow_from.clone().unwrap_or_default(),
                    spf: SpfPolicy {
                        spf: d.spf.unwrap_or_default(),
                        softfail: d.softfail.unwrap_or_default(),
                        permerror: d.permerror.unwrap_or_default(),
                    },
                };
                (d.name.0.clone(), rules)
            })
            .collect();
        Policy {
            relay_allow: config.relay.allow.clone(),
            deny: config.policy.deny.clone(),
            domain_spf: domains.values().any(|r| r.spf.spf != SpfMode::Off),
            domains,
        }
    }

    /// Whether `client` is in `[relay] allow`.
    pub fn relay_network(&self, client: IpAddr) -> bool {
        lists::contains(&self.relay_allow, client)
    }

    /// Whether a client may relay (send to domains that are not ours):
    /// an authenticated user, or a client in `[relay] allow`. Such a
    /// client is trusted: not SPF-, DKIM- or DMARC-checked, its mail
    /// DKIM-signed.
    pub fn may_relay(&self, client: IpAddr, authenticated: bool) -> bool {
        authenticated || self.relay_network(client)
    }

    /// Whether a client at `ip` may talk to `listener` at all.
    pub fn connect(&self, listener: &ListenerConfig, ip: IpAddr) -> Result<(), Reply> {
        lists::connect(&self.deny, listener, ip)
    }

    /// Whether the SPF check has to run for a client of a listener with
    /// `checks`: it may be needed by the listener, by some domain, or by
    /// DMARC — never for a client that may relay (`trusted`).
    pub fn wants_spf(&self, checks: &ListenerChecks, trusted: bool) -> bool {
        !trusted
            && (checks.spf.spf != SpfMode::Off || self.domain_spf || checks.dmarc != DmarcMode::Off)
    }

    /// The SPF policy for one recipient: the strictest of the listener's
    /// and the recipient domain's.
    pub fn spf_for(&self, listener: SpfPolicy, address: &str) -> SpfPolicy {
        match self.rules(address) {
            Some((_, rules)) => listener.strictest(rules.spf),
            None => listener,
        }
    }

    /// A domain's `allow_from` for one recipient.
    pub fn allow_from(&self, client: IpAddr, address: &str) -> Result<(), Reply> {
        match self.rules(address) {
            Some((domain, rules)) => lists::allow_from(&rules.allow_from, client, address, domain),
            None => Ok(()),
        }
    }

    fn rules(&self, address: &str) -> Option<(&str, &DomainRules)> {
        let domain = address.rsplit_once('@')?.1.trim_end_matches('.');
        self.domains
            .get_key_value(domain.to_ascii_lowercase().as_str())
            .map(|(d, r)| (d.as_str(), r))
    }

    /// Check one RCPT: the route it takes, or the reply that refuses it
    /// (`relay.rs`). `may_relay`: from [`Policy::may_relay`].
    pub fn check_recipient(
        &self,
        router: &Router,
        may_relay: bool,
        address: &str,
    ) -> Result<Route, Reply> {
        relay::check(router, may_relay, address)
    }
}

/// A backup MX recipient verified by callout: refused (550 5.1.1 with the
/// primary's own words) only when the primary refuses it permanently;
/// accepted when it accepts, and also when it cannot be asked — down,
/// slow, a temporary answer — because a backup MX exists for the time its
/// primary is down. Without `verify = "callout"`: accepted.
pub async fn verify_backup(
    callout: &Callout,
    route: &BackupRoute,
    address: &str,
) -> Result<(), Reply> {
    let Some(limit) = route.callout else {
        return Ok(());
    };
    match callout.verify(&route.hop, address, limit).await {
        Verdict::Accepted { host, reply } => {
            tracing::debug!("callout <{address}>: {host} said {reply}");
            Ok(())
        }
        Verdict::Refused { host, reply } => {
            tracing::info!("callout <{address}>: refused by {host}: {reply}");
            Err(Reply::new(
                550,
                "5.1.1",
                format!(
                    "<{address}>: Recipient address rejected: the primary MX {host} said: {} {} {}",
                    reply.code, reply.status, reply.text
                ),
            ))
        }
        Verdict::Unverified(why) => {
            tracing::info!("callout <{address}>: not verified, accepted as backup MX: {why}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn setup(extra: &str) -> (Policy, Router) {
        let text = format!(
            "hostname = \"mx.example.test\"\n{extra}\n[[domain]]\nname = \"example.test\"\nkind = \"local\"\ndeliver = \"maildir:/m/{{user}}\"\n"
        );
        let config = Config::parse(Path::new("t.toml"), &text).unwrap();
        (Policy::new(&config), Router::new(&config))
    }

    #[test]
    fn default_is_no_open_relay() {
        let (p, r) = setup("");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let may = p.may_relay(ip, false);
        assert!(!may);
        assert!(p.check_recipient(&r, may, "a@example.test").is_ok());
        let denied = p.check_recipient(&r, may, "a@elsewhere.org").unwrap_err();
        assert_eq!((denied.code, denied.status.as_str()), (554, "5.7.1"));
        // Address tricks are refused (src/policy/relay.rs).
        for trick in [
            "a%elsewhere.org@example.test",
            "elsewhere.org!a@example.test",
        ] {
            assert!(p.check_recipient(&r, may, trick).is_err(), "{trick}");
        }
        assert!(p.check_recipient(&r, may, "a@[10.0.0.1]").is_err());
        // An authenticated user may relay from anywhere.
        assert!(p
            .check_recipient(&r, p.may_relay(ip, true), "a@elsewhere.org")
            .is_ok());
    }

    #[test]
    fn allowed_networks_may_relay() {
        let (p, r) = setup("[relay]\nallow = [\"127.0.0.2/32\", \"2001:db8::/32\"]");
        let check = |ip: &str| {
            let may = p.may_relay(ip.parse().unwrap(), false);
            p.check_recipient(&r, may, "a@elsewhere.org")
        };
        assert!(check("127.0.0.2").is_ok());
        assert!(check("::ffff:127.0.0.2").is_ok());
        assert!(check("2001:db8::5").is_ok());
        assert!(check("127.0.0.3").is_err());
    }

    #[test]
    fn the_strictest_spf_policy_covers_each_recipient() {
        use crate::config::policy::{PermerrorMode, SoftfailMode};
        let text = "hostname = \"mx.example.test\"\n[policy]\nspf = \"tag\"\n\
                    [[listener]]\naddr = \"127.0.0.1:25\"\nrole = \"mx\"\n\
                    [[domain]]\nname = \"Fax.Test\"\nkind = \"local\"\ndeliver = \"maildir:/m\"\n\
                    spf = \"reject-fail\"\nsoftfail = \"reject\"\nallow_from = [\"127.0.0.2/32\"]\n";
        let config = Config::parse(std::path::Path::new("t.toml"), text).unwrap();
        let p = Policy::new(&config);
        let checks = config.policy.for_listener(&config.listeners[0]);
        assert_eq!(checks.spf.spf, SpfMode::Tag);
        let fax = p.spf_for(checks.spf, "+1555@fax.test.");
        assert_eq!(fax.spf, SpfMode::RejectFail);
        assert_eq!(fax.softfail, SoftfailMode::Reject);
        assert_eq!(fax.permerror, PermerrorMode::Accept);
        assert_eq!(p.spf_for(checks.spf, "a@other.test"), checks.spf);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p.wants_spf(&checks, false));
        assert!(!p.wants_spf(&checks, true));
        assert!(p.allow_from(one, "x@FAX.test").is_err());
        assert!(p
            .allow_from("127.0.0.2".parse().unwrap(), "x@fax.test")
            .is_ok());
        assert!(p.allow_from(one, "x@other.test").is_ok());
        // Off everywhere: nothing to check.
        let (quiet, _) = setup("");
        let off = Config::parse(std::path::Path::new("t.toml"), "").unwrap();
        assert!(!quiet.wants_spf(&off.policy.for_listener(&config.listeners[0]), false));
    }
}
