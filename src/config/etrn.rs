//! `[[etrn_client]]`: ETRN sent by the daemon on a schedule, for a
//! faxmta that is a customer's in-house server behind an ISP that holds
//! its mail (RFC 1985).

use super::error::ConfigError;
use super::values::OutboundTls;
use super::values::{Duration, HostSpec};
use serde::Deserialize;

/// `[[etrn_client]]`: every `every`, connect to `server`, say EHLO and
/// `ETRN domain`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtrnClientConfig {
    /// The ISP's server: `host`, `host:port`, `IP:port` (port 25 by default).
    pub server: HostSpec,
    /// What to ask for: `domain`, `@domain` (with its subdomains) or
    /// `#queue`, sent as written.
    pub domain: String,
    /// How often.
    pub every: Duration,
    /// STARTTLS towards the server (default `"opportunistic"`).
    #[serde(default)]
    pub tls: OutboundTls,
}

/// Whether `node` is what ETRN takes: a domain name, optionally after `@`
/// (the domain and its subdomains) or `#` (a queue name).
pub fn valid_node(node: &str) -> bool {
    let name = node
        .strip_prefix('@')
        .or_else(|| node.strip_prefix('#'))
        .unwrap_or(node);
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Check every `[[etrn_client]]`; errors point at the first line that
/// names the offending value.
pub(super) fn validate(
    clients: &[EtrnClientConfig],
    fail: impl Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for c in clients {
        if !valid_node(&c.domain) {
            return Err(fail(
                &format!("\"{}\"", c.domain),
                format!(
                    "etrn_client domain {:?}: expected a domain name, @domain or #queue",
                    c.domain
                ),
            ));
        }
        if c.every.0 == 0 {
            return Err(fail(
                "every",
                "etrn_client every must be more than 0".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn nodes() {
        for good in [
            "customer.test",
            "@customer.test",
            "#queue",
            "Customer.Test.",
        ] {
            assert!(valid_node(good), "{good}");
        }
        for bad in ["", "@", "#", "a..b", "a b", "a@b", "@@a", "#@a"] {
            assert!(!valid_node(bad), "{bad}");
        }
        assert!(!valid_node("x".repeat(64).as_str()));
    }

    #[test]
    fn clients_parse_and_errors_name_the_line() {
        let c = parse(
            "[[etrn_client]]\nserver = \"mail.isp.test\"\ndomain = \"@customer.test\"\n\
             every = \"15m\"\n[[etrn_client]]\nserver = \"127.0.0.2:2525\"\n\
             domain = \"other.test\"\nevery = 60\ntls = \"off\"\n",
        )
        .unwrap();
        let (a, b) = (&c.etrn_clients[0], &c.etrn_clients[1]);
        assert_eq!(
            (a.server.name.as_str(), a.server.port),
            ("mail.isp.test", 25)
        );
        assert_eq!((a.every.0, a.tls), (900, OutboundTls::Opportunistic));
        assert_eq!(
            (b.server.port, b.every.0, b.tls),
            (2525, 60, OutboundTls::Off)
        );

        let e = parse("[[etrn_client]]\nserver = \"a\"\ndomain = \"bad name\"\nevery = \"1m\"\n")
            .unwrap_err();
        assert_eq!(e.place, ":3:10", "{e}");
        let e =
            parse("[[etrn_client]]\nserver = \"a\"\ndomain = \"c.test\"\nevery = 0\n").unwrap_err();
        assert_eq!(e.place, ":4:1", "{e}");
        let e = parse("[[etrn_client]]\nserver = \"a\"\ndomain = \"c.test\"\n").unwrap_err();
        assert!(e.message.contains("missing field `every`"), "{e}");
    }
}
