//! The routing part of the configuration: `[[domain]]` entries and the
//! global `[smarthost]`, their validation, and the AUTH passwords read
//! from their files when the configuration is loaded.

use super::values::{Deliver, DomainName, Duration, HostSpec};
use super::{Config, ConfigError, OutboundTls};
use faxmta_transports::smtp::Myself;
use faxmta_transports::{BackupMxHop, Credentials, HostPort, RelayHop};
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
    /// Ours to relay as its backup MX: accepted from anyone (all local
    /// parts, the listed `users`, or those its primary confirms by
    /// callout), held, and delivered only to its MX hosts more preferred
    /// than our own entry.
    BackupMx,
}

/// How a backup MX checks recipients at RCPT (`verify = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// No check beyond `users`, if given.
    #[default]
    None,
    /// Ask the domain's most preferred MX that is not us.
    Callout,
}

/// The default lifetime of backup MX mail: a primary may be down for long.
pub const BACKUP_MX_LIFETIME: u64 = 30 * 86_400;
/// The default time limit of a callout.
pub const CALLOUT_TIMEOUT: u64 = 30;

/// `[[domain]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    pub name: DomainName,
    pub kind: DomainKind,
    /// For `local`: where mail goes, e.g. `maildir:var/mail/{domain}/{user}`,
    /// `lmtp:HOST:PORT` or `lmtp:unix:PATH`.
    pub deliver: Option<Deliver>,
    /// For `local` and `backup-mx`: the users that exist. Absent: every
    /// local part is accepted.
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
    /// For `backup-mx`: check recipients at RCPT by callout.
    pub verify: Option<Verify>,
    /// For `backup-mx` with `verify = "callout"`: its time limit.
    pub callout_timeout: Option<Duration>,
    /// For `backup-mx`: the name of our entry in the domain's MX set, when
    /// it is not `hostname`.
    pub our_mx: Option<DomainName>,
    /// For `backup-mx`: how long its mail may wait (default 30 days).
    pub lifetime: Option<Duration>,
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
            DomainKind::Local | DomainKind::Relay | DomainKind::BackupMx => outbound,
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

impl DomainConfig {
    /// The transport's hop of a backup MX domain; `outbound`: the
    /// `[outbound] tls` setting, its default.
    pub fn backup_hop(&self, outbound: OutboundTls) -> BackupMxHop {
        BackupMxHop {
            domain: self.name.0.clone(),
            our_mx: self.our_mx.as_ref().map(|n| n.0.clone()),
            tls: self.tls.unwrap_or(outbound).policy(),
        }
    }

    /// How long mail for this domain may wait, when it differs from the
    /// queue's `lifetime`: a backup MX domain's (30 days by default).
    pub fn lifetime(&self) -> Option<u64> {
        match self.kind {
            DomainKind::BackupMx => Some(self.lifetime.map_or(BACKUP_MX_LIFETIME, |d| d.0)),
            _ => None,
        }
    }

    /// The time limit of a callout, when recipients are verified by one.
    pub fn callout(&self) -> Option<std::time::Duration> {
        (self.kind == DomainKind::BackupMx && self.verify == Some(Verify::Callout)).then(|| {
            self.callout_timeout
                .map_or(std::time::Duration::from_secs(CALLOUT_TIMEOUT), |d| d.std())
        })
    }
}

impl Config {
    /// How this host recognises itself in an MX set: `hostname` and the
    /// listeners' addresses.
    pub fn myself(&self) -> Myself {
        Myself {
            names: vec![self.hostname.to_ascii_lowercase()],
            listeners: self.listeners.iter().map(|l| l.addr).collect(),
        }
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
        let backup_keys = d.verify.is_some()
            || d.callout_timeout.is_some()
            || d.our_mx.is_some()
            || d.lifetime.is_some();
        if backup_keys && d.kind != DomainKind::BackupMx {
            return fail(format!(
                "verify, callout_timeout, our_mx and lifetime are for backup-mx domains, not \
                 domain {name}"
            ));
        }
        match d.kind {
            DomainKind::Local if d.deliver.is_none() => {
                return fail(format!(
                    "local domain {name} needs deliver = \"maildir:PATH\", \"lmtp:HOST:PORT\" \
                     or \"lmtp:unix:PATH\""
                ));
            }
            DomainKind::Local if d.hosts.is_some() || d.tls.is_some() || smarthost_keys => {
                return fail(format!(
                    "hosts, tls, implicit_tls and auth are for relay and smarthost domains (tls also \
                     for backup-mx), not \
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
                    "deliver and users are for local domains (users also for backup-mx), not \
                     {kind} domain {name}"
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
            DomainKind::BackupMx if d.deliver.is_some() || d.hosts.is_some() || smarthost_keys => {
                return fail(format!(
                    "deliver, hosts, implicit_tls and auth are not for backup-mx domain {name}: \
                     its mail goes to its MX hosts more preferred than this one"
                ));
            }
            DomainKind::BackupMx if d.users.is_some() && d.verify == Some(Verify::Callout) => {
                return fail(format!(
                    "backup-mx domain {name}: users = […] and verify = \"callout\" exclude each \
                     other (give the list, or let the primary say)"
                ));
            }
            DomainKind::BackupMx if d.lifetime.is_some_and(|l| l.0 == 0) => {
                return fail(format!(
                    "backup-mx domain {name}: lifetime must be more than 0"
                ));
            }
            DomainKind::BackupMx
                if d.callout_timeout.is_some() && d.verify != Some(Verify::Callout) =>
            {
                return fail(format!(
                    "backup-mx domain {name}: callout_timeout needs verify = \"callout\""
                ));
            }
            DomainKind::BackupMx if d.callout_timeout.is_some_and(|t| t.0 == 0) => {
                return fail(format!(
                    "backup-mx domain {name}: callout_timeout must be more than 0"
                ));
            }
            DomainKind::Local | DomainKind::Relay | DomainKind::BackupMx => {}
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
    fn a_backup_mx_domain_has_a_long_lifetime_and_its_own_keys() {
        let c = parse(
            "[outbound]\ntls = \"required\"\n[[domain]]\nname = \"partner.test\"\n\
             kind = \"backup-mx\"\n[[domain]]\nname = \"other.test\"\nkind = \"backup-mx\"\n\
             verify = \"callout\"\ncallout_timeout = \"5s\"\nour_mx = \"MX2.Example.Test.\"\n\
             lifetime = \"7d\"\ntls = \"off\"\n",
        )
        .unwrap();
        let (a, b) = (&c.domains[0], &c.domains[1]);
        assert_eq!(a.lifetime(), Some(30 * 86_400));
        assert_eq!(a.callout(), None);
        let hop = a.backup_hop(c.outbound.tls);
        assert_eq!((hop.domain.as_str(), hop.our_mx), ("partner.test", None));
        assert_eq!(hop.tls, TlsPolicy::Required, "[outbound] tls");
        assert_eq!(b.lifetime(), Some(7 * 86_400));
        assert_eq!(b.callout(), Some(std::time::Duration::from_secs(5)));
        let hop = b.backup_hop(c.outbound.tls);
        assert_eq!(hop.our_mx.as_deref(), Some("mx2.example.test"));
        assert_eq!(hop.tls, TlsPolicy::Off);
        let c =
            parse("[[domain]]\nname = \"p.test\"\nkind = \"backup-mx\"\nverify = \"callout\"\n")
                .unwrap();
        assert_eq!(
            c.domains[0].callout(),
            Some(std::time::Duration::from_secs(30))
        );
    }

    #[test]
    fn backup_mx_errors_name_the_line() {
        let base = "[[domain]]\nname = \"p.test\"\nkind = \"backup-mx\"\n";
        let e = parse(&format!("{base}hosts = [\"a\"]\n")).unwrap_err();
        assert_eq!(e.place, ":2:8", "{e}");
        assert!(e.message.contains("not for backup-mx domain p.test"), "{e}");
        let e = parse(&format!("{base}users = [\"a\"]\nverify = \"callout\"\n")).unwrap_err();
        assert!(e.message.contains("exclude each other"), "{e}");
        let e = parse(&format!("{base}lifetime = 0\n")).unwrap_err();
        assert!(e.message.contains("lifetime must be more than 0"), "{e}");
        let e = parse(&format!("{base}callout_timeout = \"5s\"\n")).unwrap_err();
        assert!(e.message.contains("needs verify"), "{e}");
        let e = parse(&format!("{base}verify = \"ask\"\n")).unwrap_err();
        assert_eq!(e.place, ":4:10", "{e}");
        let e = parse(&format!("{base}our_mx = \"not a name\"\n")).unwrap_err();
        assert!(e.message.contains("invalid domain name"), "{e}");
        let e = parse(
            "[[domain]]\nname = \"l.test\"\nkind = \"local\"\ndeliver = \"maildir:/m\"\n\
             lifetime = \"30d\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("are for backup-mx domains"), "{e}");
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
