//! Inbound policy: whether a client may hand us a recipient.
//!
//! For now this is relay control: recipients in our domains are taken from
//! anyone; any other domain only from the networks in `[relay] allow`.
//! The default allows nobody, so faxmta is never an open relay. Recipients
//! of a backup MX domain with `verify = "callout"` are also put to the
//! domain's primary ([`verify_backup`]).

use crate::config::Config;
use crate::router::{BackupRoute, Route, Router};
use faxmta_queue::Reply;
use faxmta_transports::smtp::{Callout, Verdict};
use ipnet::IpNet;
use std::net::IpAddr;

/// The inbound policy, built once from the configuration.
pub struct Policy {
    relay_allow: Vec<IpNet>,
}

impl Policy {
    pub fn new(config: &Config) -> Policy {
        Policy {
            relay_allow: config.relay.allow.clone(),
        }
    }

    /// Whether `client` may relay (send to domains that are not ours).
    pub fn may_relay(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        self.relay_allow.iter().any(|net| net.contains(&client))
    }

    /// Check one RCPT: the route it takes, or the reply that refuses it.
    pub fn check_recipient(
        &self,
        router: &Router,
        client: IpAddr,
        address: &str,
    ) -> Result<Route, Reply> {
        let route = router.resolve(address)?;
        if route.is_relay() && !self.may_relay(client) {
            return Err(Reply::new(
                554,
                "5.7.1",
                format!("<{address}>: Relay access denied"),
            ));
        }
        Ok(route)
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

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is
/// matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
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
        assert!(p.check_recipient(&r, ip, "a@example.test").is_ok());
        let denied = p.check_recipient(&r, ip, "a@elsewhere.org").unwrap_err();
        assert_eq!((denied.code, denied.status.as_str()), (554, "5.7.1"));
        // Address tricks land in our own domain's mailbox or are refused;
        // none goes anywhere else.
        for trick in [
            "a%elsewhere.org@example.test",
            "elsewhere.org!a@example.test",
        ] {
            if let Ok(route) = p.check_recipient(&r, ip, trick) {
                assert!(!route.is_relay(), "{trick}");
            }
        }
        assert!(p.check_recipient(&r, ip, "a@[10.0.0.1]").is_err());
    }

    #[test]
    fn allowed_networks_may_relay() {
        let (p, r) = setup("[relay]\nallow = [\"127.0.0.2/32\", \"2001:db8::/32\"]");
        assert!(p
            .check_recipient(&r, "127.0.0.2".parse().unwrap(), "a@elsewhere.org")
            .is_ok());
        assert!(p
            .check_recipient(&r, "::ffff:127.0.0.2".parse().unwrap(), "a@elsewhere.org")
            .is_ok());
        assert!(p
            .check_recipient(&r, "2001:db8::5".parse().unwrap(), "a@elsewhere.org")
            .is_ok());
        assert!(p
            .check_recipient(&r, "127.0.0.3".parse().unwrap(), "a@elsewhere.org")
            .is_err());
    }
}
