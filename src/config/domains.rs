//! The routing part of the configuration: `[[domain]]` entries and the
//! global `[smarthost]`, their validation, and the AUTH passwords read
//! from their files when the configuration is loaded.

use super::values::{Deliver, DomainName, HostSpec};
use super::{Config, ConfigError, OutboundTls};
use faxmta_transports::{Credentials, HostPort, RelayHop};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The kind of a `[[domain]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainKind {
    /// Delivered on this host.
    Local,
    /// Ours to relay: accepted from anyone, passed to `hosts` in order
    /// without an MX lookup ("relay to host", hard routing).
    Relay,
    /// Not ours (its recipients need relay permission), but sent through
    /// `hosts` — a smart host, with TLS and AUTH — instead of its MX.
    Smarthost,
}

/// `[[domain]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: DomainName,
    pub kind: DomainKind,
    /// For `local`: where mail goes, e.g. `maildir:var/mail/{domain}/{user}`,
    /// `lmtp:HOST:PORT` or `lmtp:unix:PATH`.
    pub deliver: Option<Deliver>,
    /// For `local`: the users that exist. Absent: every local part is accepted.
    pub users: Option<Vec<String>>,
    /// For `relay` and `smarthost`: where the mail goes, tried in order
    /// (`host`, `host:port`, `[IPv6]:port`; port 25 by default).
    pub hosts: Option<Vec<HostSpec>>,
    /// For `relay` (default `[outbound] tls`) and `smarthost` (default
    /// `required`): TLS towards those hosts.
    pub tls: Option<OutboundTls>,
    /// For `smarthost`: TLS from the first byte on every host (port 465
    /// has it anyway).
    pub implicit_tls: Option<bool>,
    /// For `smarthost`: AUTH with these credentials.
    pub auth: Option<AuthConfig>,
}

/// `[smarthost]`: all mail for domains that are not ours goes to these
/// hosts instead of the domain's MX.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmarthostConfig {
    /// Tried in order.
    pub hosts: Vec<HostSpec>,
    #[serde(default = "smarthost_tls")]
    pub tls: OutboundTls,
    /// TLS from the first byte on every host (port 465 has it anyway).
    #[serde(default)]
    pub implicit_tls: bool,
    pub auth: Option<AuthConfig>,
}

fn smarthost_tls() -> OutboundTls {
    OutboundTls::Required
}

/// `auth = { user = "…", password_file = "…" }`: SMTP AUTH towards a
/// smart host. The password is the first line of the file, read when the
/// configuration is loaded; it is never printed (`Debug` hides it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: String,
    pub password_file: PathBuf,
    /// Filled from `password_file` by [`Config::parse`].
    #[serde(skip)]
    credentials: Option<Credentials>,
}

impl AuthConfig {
    /// The user and the password read from the file (`None` only for a
    /// configuration that did not come through [`Config::parse`]).
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }
}

impl SmarthostConfig {
    /// The transport's hop for the global smart host.
    pub fn hop(&self) -> RelayHop {
        hop(&self.hosts, self.tls, self.implicit_tls, self.auth.as_ref())
    }
}

impl DomainConfig {
    /// The transport's hop of a relay or smarthost domain; `outbound`: the
    /// `[outbound] tls` setting, a relay domain's default.
    pub fn hop(&self, outbound: OutboundTls) -> RelayHop {
        let tls = self.tls.unwrap_or(match self.kind {
            DomainKind::Smarthost => smarthost_tls(),
            DomainKind::Local | DomainKind::Relay => outbound,
        });
        let hosts = self.hosts.as_deref().unwrap_or_default();
        hop(
            hosts,
            tls,
            self.implicit_tls.unwrap_or(false),
            self.auth.as_ref(),
        )
    }
}

fn hop(
    hosts: &[HostSpec],
    tls: OutboundTls,
    implicit: bool,
    auth: Option<&AuthConfig>,
) -> RelayHop {
    RelayHop {
        hosts: hosts
            .iter()
            .map(|h| HostPort {
                name: h.name.clone(),
                port: h.port,
            })
            .collect(),
        tls: tls.policy(),
        implicit_tls: implicit,
        auth: auth.and_then(|a| a.credentials().cloned()),
    }
}

/// Errors at the first line of the file that holds one of the needles.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn fail(&self, needles: &[&str], message: String) -> ConfigError {
        let span = needles
            .iter()
            .find_map(|n| self.text.find(n).map(|p| p..p + n.len()));
        ConfigError::at(self.path, self.text, span, message)
    }
}

/// What `hosts`, `tls`, `implicit_tls` and `auth` must satisfy for a smart
/// host (global or per domain); `what` names it in messages.
fn check_smarthost(
    src: &Source<'_>,
    at: &[&str],
    what: &str,
    hosts: &[HostSpec],
    tls: OutboundTls,
    implicit: bool,
    auth: Option<&AuthConfig>,
) -> Result<(), ConfigError> {
    if hosts.is_empty() {
        return Err(src.fail(at, format!("{what} needs hosts = [\"host:port\", …]")));
    }
    if tls == OutboundTls::Off {
        if implicit {
            return Err(src.fail(
                at,
                format!("{what}: implicit_tls = true and tls = \"off\" contradict each other"),
            ));
        }
        if let Some(h) = hosts.iter().find(|h| h.port == 465) {
            return Err(src.fail(
                at,
                format!(
                    "{what}: port 465 of {} is implicit TLS (SMTPS), but tls = \"off\"",
                    h.name
                ),
            ));
        }
    }
    if let Some(a) = auth {
        if a.user.is_empty() || a.user.contains(['\0', '\r', '\n']) {
            return Err(src.fail(
                &["user", "auth"],
                format!("{what}: auth.user must be a non-empty name"),
            ));
        }
    }
    Ok(())
}

/// Validate `[[domain]]` and `[smarthost]`.
pub(super) fn validate(config: &Config, src: &Source<'_>) -> Result<(), ConfigError> {
    if let Some(s) = &config.smarthost {
        let at = ["[smarthost]", "smarthost"];
        check_smarthost(
            src,
            &at,
            "[smarthost]",
            &s.hosts,
            s.tls,
            s.implicit_tls,
            s.auth.as_ref(),
        )?;
    }
    let mut names = std::collections::HashSet::new();
    for d in &config.domains {
        let name = &d.name.0;
        let quoted = format!("\"{name}\"");
        let at = [quoted.as_str()];
        let fail = |message: String| Err(src.fail(&at, message));
        if !names.insert(name.clone()) {
            return fail(format!("domain {name} is configured twice"));
        }
        let smarthost_keys = d.implicit_tls.is_some() || d.auth.is_some();
        match d.kind {
            DomainKind::Local if d.deliver.is_none() => {
                return fail(format!(
                    "local domain {name} needs deliver = \"maildir:PATH\", \"lmtp:HOST:PORT\" \
                     or \"lmtp:unix:PATH\""
                ));
            }
            DomainKind::Local if d.hosts.is_some() || d.tls.is_some() || smarthost_keys => {
                return fail(format!(
                    "hosts, tls, implicit_tls and auth are for relay and smarthost domains, not \
                     local domain {name}"
                ));
            }
            DomainKind::Relay | DomainKind::Smarthost
                if d.deliver.is_some() || d.users.is_some() =>
            {
                let kind = if d.kind == DomainKind::Relay {
                    "relay"
                } else {
                    "smarthost"
                };
                return fail(format!(
                    "deliver and users are for local domains, not {kind} domain {name}"
                ));
            }
            DomainKind::Relay if d.hosts.as_ref().is_none_or(|h| h.is_empty()) => {
                return fail(format!(
                    "relay domain {name} needs hosts = [\"host:port\", …]"
                ));
            }
            DomainKind::Relay if smarthost_keys => {
                return fail(format!(
                    "implicit_tls and auth are for smarthost domains, not relay domain {name} \
                     (a host that wants AUTH is a smart host: kind = \"smarthost\")"
                ));
            }
            DomainKind::Smarthost => check_smarthost(
                src,
                &at,
                &format!("smarthost domain {name}"),
                d.hosts.as_deref().unwrap_or_default(),
                d.tls.unwrap_or(smarthost_tls()),
                d.implicit_tls.unwrap_or(false),
                d.auth.as_ref(),
            )?,
            DomainKind::Local | DomainKind::Relay => {}
        }
    }
    Ok(())
}

/// Read each `auth.password_file`: the password is its first line. A file
/// that cannot be read, or whose first line is empty, is an error at the
/// line that names it.
pub(super) fn read_passwords(config: &mut Config, src: &Source<'_>) -> Result<(), ConfigError> {
    let auths = config
        .smarthost
        .iter_mut()
        .filter_map(|s| s.auth.as_mut())
        .chain(config.domains.iter_mut().filter_map(|d| d.auth.as_mut()));
    for auth in auths {
        let file = auth.password_file.display().to_string();
        let at = [format!("\"{file}\""), "password_file".to_string()];
        let at: Vec<&str> = at.iter().map(String::as_str).collect();
        let text = std::fs::read(&auth.password_file)
            .map_err(|e| src.fail(&at, format!("cannot read password_file {file}: {e}")))?;
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let password = std::str::from_utf8(line).map_err(|_| {
            src.fail(
                &at,
                format!("password_file {file}: the first line is not UTF-8"),
            )
        })?;
        if password.is_empty() {
            return Err(src.fail(
                &at,
                format!("password_file {file}: the first line (the password) is empty"),
            ));
        }
        auth.credentials = Some(Credentials::new(auth.user.clone(), password));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use faxmta_transports::smtp::TlsPolicy;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn a_smarthost_reads_its_password_and_defaults_to_required_tls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret pass\r\nsecond line\n").unwrap();
        let c = parse(&format!(
            "[smarthost]\nhosts = [\"smtp.isp.test:587\", \"backup.isp.test:465\"]\n\
             auth = {{ user = \"me@isp.test\", password_file = \"{}\" }}\n",
            file.display()
        ))
        .unwrap();
        let hop = c.smarthost.as_ref().unwrap().hop();
        assert_eq!(hop.tls, TlsPolicy::Required);
        assert!(!hop.implicit_tls);
        assert!(!hop.implicit_tls_for(&hop.hosts[0]));
        assert!(hop.implicit_tls_for(&hop.hosts[1]), "465 is SMTPS");
        let creds = hop.auth.as_ref().unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password()),
            ("me@isp.test", "s3cret pass")
        );
        // The password shows nowhere in Debug output.
        for debug in [format!("{c:?}"), format!("{hop:?}")] {
            assert!(!debug.contains("s3cret"), "{debug}");
            assert!(debug.contains("me@isp.test"), "{debug}");
        }
    }

    #[test]
    fn a_smarthost_domain_has_its_own_hop() {
        let c = parse(
            "[outbound]\ntls = \"opportunistic\"\n[[domain]]\nname = \"partner.test\"\n\
             kind = \"smarthost\"\nhosts = [\"127.0.0.3:2525\"]\nimplicit_tls = true\n\
             [[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"10.0.0.1\"]\n",
        )
        .unwrap();
        let hop = c.domains[0].hop(c.outbound.tls);
        assert_eq!(hop.tls, TlsPolicy::Required, "smarthost default");
        assert!(hop.implicit_tls && hop.auth.is_none());
        let relay = c.domains[1].hop(c.outbound.tls);
        assert_eq!(relay.tls, TlsPolicy::Opportunistic, "[outbound] tls");
    }

    #[test]
    fn smarthost_errors_name_the_line() {
        let e = parse("hostname = \"x\"\n[smarthost]\nhosts = []\n").unwrap_err();
        assert_eq!(e.place, ":2:1", "{e}");
        assert!(e.message.contains("needs hosts"), "{e}");

        let e = parse("[smarthost]\nhosts = [\"a.test:465\"]\ntls = \"off\"\n").unwrap_err();
        assert!(e.message.contains("port 465 of a.test"), "{e}");

        let e = parse("[smarthost]\nhosts = [\"a.test\"]\ntls = \"of\"\n").unwrap_err();
        assert_eq!(e.place, ":3:7", "{e}");

        let e = parse(
            "[smarthost]\nhosts = [\"a.test\"]\n\
             auth = { user = \"u\", password_file = \"/nonexistent/pw\" }\n",
        )
        .unwrap_err();
        assert_eq!(e.place, ":3:38", "{e}");
        assert!(
            e.message
                .starts_with("cannot read password_file /nonexistent/pw: "),
            "{e}"
        );

        let e =
            parse("[smarthost]\nhosts = [\"a.test\"]\nauth = { user = \"u\", password = \"x\" }\n")
                .unwrap_err();
        assert!(e.message.contains("unknown field `password`"), "{e}");

        let e = parse(
            "[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\ntls = \"off\"\n\
             implicit_tls = true\nhosts = [\"a.test\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.place, ":2:8", "{e}");
        assert!(e.message.contains("contradict"), "{e}");

        let e = parse("[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\n").unwrap_err();
        assert!(
            e.message.contains("smarthost domain p.test needs hosts"),
            "{e}"
        );

        let e = parse(
            "[[domain]]\nname = \"b.test\"\nkind = \"relay\"\nhosts = [\"a\"]\nimplicit_tls = true\n",
        )
        .unwrap_err();
        assert!(e.message.contains("not relay domain b.test"), "{e}");
    }

    #[test]
    fn an_empty_password_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "\nsecret on the second line\n").unwrap();
        let e = parse(&format!(
            "[[domain]]\nname = \"p.test\"\nkind = \"smarthost\"\nhosts = [\"a.test\"]\n\
             auth = {{ user = \"u\", password_file = \"{}\" }}\n",
            file.display()
        ))
        .unwrap_err();
        assert_eq!(e.place, ":5:38", "{e}");
        assert!(e.message.contains("is empty"), "{e}");
    }
}
