//! `[[pop3]]`: the POP3 fax gateway — mailboxes polled for fax requests
//! when the domain's MX is hosted elsewhere (src/fax/pop3_gateway.rs).

// A mail-only build (without the feature `fax`) reads these settings
// but has nothing that uses them.
#![cfg_attr(not(feature = "fax"), allow(dead_code))]

use super::error::ConfigError;
use super::values::{Duration, Size};
use serde::Deserialize;
use std::path::PathBuf;

/// How the connection to the POP3 server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pop3TlsMode {
    /// Plain text, the password too: loopback or a trusted network only.
    None,
    /// STLS (RFC 2595) before USER; the server must offer it.
    #[default]
    Starttls,
    /// TLS from the start (pop3s, port 995).
    Implicit,
}

/// One `[[pop3]]` mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pop3Config {
    /// The POP3 server: a host name or IP address.
    pub host: String,
    /// Default 110, or 995 with `tls = "implicit"`.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Pop3TlsMode,
    /// Check the server's certificate (web PKI roots, the host name).
    #[serde(default = "yes")]
    pub tls_verify: bool,
    pub user: String,
    /// A file whose first line is the password (read at every poll).
    pub password_file: PathBuf,
    /// Time between polls.
    #[serde(default = "default_poll")]
    pub poll: Duration,
    /// Delete each message once its fax jobs are queued (the default);
    /// `false`: leave it and remember its UIDL in `uidl_file`.
    #[serde(default = "yes")]
    pub delete: bool,
    /// Where the UIDLs of fetched messages are kept when `delete =
    /// false`; default `<queue path>.pop3-<user>@<host>.uidl`.
    pub uidl_file: Option<PathBuf>,
    /// Larger messages are left on the server (and logged).
    #[serde(default = "default_max_message")]
    pub max_message: Size,
    /// How long one reply may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// What proves who sent a fax request: a From header proves nothing.
    #[serde(default)]
    pub senders: Pop3Senders,
}

/// What makes the gateway believe a fetched mail's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pop3Senders {
    /// A DKIM signature of the From address's domain (or a parent of
    /// it) that verifies: anyone can write a From header.
    #[default]
    Dkim,
    /// The From address as written: only for a mailbox that nobody
    /// outside can send to.
    Any,
}

fn yes() -> bool {
    true
}

fn default_poll() -> Duration {
    Duration(60)
}

fn default_max_message() -> Size {
    Size(20 * 1024 * 1024)
}

fn default_timeout() -> Duration {
    Duration(60)
}

impl Pop3Config {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            Pop3TlsMode::Implicit => 995,
            _ => 110,
        })
    }

    /// `user@host:port`, for logs.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port())
    }
}

/// Check every `[[pop3]]`; errors point at the first line that names the
/// offending value.
pub(super) fn validate(
    boxes: &[Pop3Config],
    fail: impl Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for b in boxes {
        if b.host.trim().is_empty() || b.host.contains(char::is_whitespace) {
            return Err(fail(
                "host",
                format!("pop3 host {:?} is not a host", b.host),
            ));
        }
        if b.user.is_empty() || b.user.contains(['\r', '\n', ' ']) {
            return Err(fail(
                "user",
                format!("pop3 user {:?} is not a user", b.user),
            ));
        }
        if b.poll.0 == 0 {
            return Err(fail("poll", "pop3 poll must be more than 0".into()));
        }
        if b.timeout.0 == 0 {
            return Err(fail("timeout", "pop3 timeout must be more than 0".into()));
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
    fn defaults_and_ports() {
        let c = parse(
            "hostname = \"mx.test\"\n[[pop3]]\nhost = \"pop.test\"\nuser = \"fax\"\npassword_file = \"/x\"\n\
             [[pop3]]\nhost = \"pop.test\"\nuser = \"fax\"\npassword_file = \"/x\"\ntls = \"implicit\"\n",
        )
        .unwrap();
        let (a, b) = (&c.pop3[0], &c.pop3[1]);
        assert_eq!(
            (a.tls, a.port(), a.delete, a.tls_verify),
            (Pop3TlsMode::Starttls, 110, true, true)
        );
        assert_eq!((a.poll.0, b.port()), (60, 995));
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        let e = parse("[[pop3]]\nhost = \"pop.test\"\nuser = \"fax\"\npassword_file = \"/x\"\npoll = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("poll must be more than 0"), "{e}");
        assert!(e.contains(":5"), "{e}");
        let e = parse("[[pop3]]\nhost = \"pop.test\"\nuser = \"fax\"\npassword_file = \"/x\"\ntls = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe"), "{e}");
    }
}
