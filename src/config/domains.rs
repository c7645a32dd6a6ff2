//! The routing part of the configuration: `[[domain]]` entries and the
//! global `[smarthost]`, their validation, and the AUTH passwords read
//! from their files when the configuration is loaded.

use super::error::{ConfigError, Source};
use super::values::OutboundTls;
use super::values::{Deliver, DomainName, Duration, HostSpec};
use super::Config;
use faxmta_smtp::Myself;
use faxmta_transport::{BackupMxHop, Credentials, HostPort, NextHop, RelayHop};
use ipnet::IpNet;
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
    /// Ours to relay for a customer who dequeues with ETRN (RFC 1985):
    /// accepted from anyone and held — not attempted — until a client in
    /// `release_from` sends ETRN for it; then delivered to `hosts` in
    /// order, or without them to its MX hosts more preferred than us.
    Etrn,
    /// Ours, and every local part is a fax number (`+15551234567@…`,
    /// `FAX=…`, `IMCEAFAX-…`): sent over the fax line (`[fax]`), from
    /// senders in the fax user directory only.
    Fax,
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
    /// For `local`, `backup-mx` and `etrn`: the users that exist. Absent:
    /// every local part is accepted.
    pub users: Option<Vec<String>>,
    /// For `relay`, `smarthost` and `etrn`: where the mail goes, tried in
    /// order (`host`, `host:port`, `[IPv6]:port`; port 25 by default).
    pub hosts: Option<Vec<HostSpec>>,
    /// For `relay`, `backup-mx` and `etrn` (default `[outbound] tls`) and
    /// `smarthost` (default `required`): TLS towards those hosts.
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
    /// For `backup-mx` (and `etrn` without `hosts`): the name of our entry
    /// in the domain's MX set, when it is not `hostname`.
    pub our_mx: Option<DomainName>,
    /// For `backup-mx` (default 30 days) and `etrn` (default `[queue]
    /// lifetime`): how long its mail may wait.
    pub lifetime: Option<Duration>,
    /// For `etrn`: the client networks whose ETRN may release its mail.
    pub release_from: Option<Vec<IpNet>>,
    /// Only these client networks may send mail to the domain (RCPT);
    /// absent or empty: any client.
    pub allow_from: Option<Vec<IpNet>>,
    /// SPF for the domain's recipients, on top of the listener's (the
    /// strictest of both applies).
    pub spf: Option<super::policy::SpfMode>,
    pub softfail: Option<super::policy::SoftfailMode>,
    pub permerror: Option<super::policy::PermerrorMode>,
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
/// smart host. The password is the first line of the file, read by
/// `serve` only ([`Config::read_passwords`]); it is never printed
/// (`Debug` hides it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: String,
    pub password_file: PathBuf,
    /// Filled from `password_file` by [`Config::read_passwords`].
    #[serde(skip)]
    credentials: Option<Credentials>,
}

impl AuthConfig {
    /// The user and the password read from the file (`None` until
    /// [`Config::read_passwords`]).
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
            DomainKind::Local
            | DomainKind::Relay
            | DomainKind::BackupMx
            | DomainKind::Etrn
            | DomainKind::Fax => outbound,
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
    /// queue's `lifetime`: a backup MX domain's (30 days by default), an
    /// ETRN domain's when it has one.
    pub fn lifetime(&self) -> Option<u64> {
        match self.kind {
            DomainKind::BackupMx => Some(self.lifetime.map_or(BACKUP_MX_LIFETIME, |d| d.0)),
            DomainKind::Etrn => self.lifetime.map(|d| d.0),
            _ => None,
        }
    }

    /// Where an ETRN domain's mail goes once released: its `hosts` in
    /// order (relay to host), or without them its MX hosts more preferred
    /// than us (the backup MX rule: never ourselves).
    pub fn etrn_hop(&self, outbound: OutboundTls) -> NextHop {
        match &self.hosts {
            Some(_) => NextHop::Relay(self.hop(outbound)),
            None => NextHop::BackupMx(self.backup_hop(outbound)),
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
        // The user alone until `serve` read the password (`faxmta route`
        // still shows who logs in).
        auth: auth.map(|a| {
            a.credentials()
                .cloned()
                .unwrap_or_else(|| Credentials::unread(a.user.clone()))
        }),
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
        if (d.verify.is_some() || d.callout_timeout.is_some()) && d.kind != DomainKind::BackupMx {
            return fail(format!(
                "verify and callout_timeout are for backup-mx domains, not domain {name}"
            ));
        }
        let held = matches!(d.kind, DomainKind::BackupMx | DomainKind::Etrn);
        if (d.our_mx.is_some() || d.lifetime.is_some()) && !held {
            return fail(format!(
                "our_mx and lifetime are for backup-mx and etrn domains, not domain {name}"
            ));
        }
        if d.lifetime.is_some_and(|l| l.0 == 0) {
            return fail(format!("domain {name}: lifetime must be more than 0"));
        }
        if d.release_from.is_some() && d.kind != DomainKind::Etrn {
            return fail(format!(
                "release_from is for etrn domains, not domain {name}"
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
                    "hosts, tls, implicit_tls and auth are for relay and smarthost domains (hosts \
                     and tls also for etrn, tls for backup-mx), not local domain {name}"
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
                    "deliver and users are for local domains (users also for backup-mx and \
                     etrn), not {kind} domain {name}"
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
            DomainKind::Etrn if d.deliver.is_some() || smarthost_keys => {
                return fail(format!(
                    "deliver, implicit_tls and auth are not for etrn domain {name}: its mail \
                     goes to its hosts, or to its MX"
                ));
            }
            DomainKind::Etrn if d.release_from.as_ref().is_none_or(|r| r.is_empty()) => {
                return fail(format!(
                    "etrn domain {name} needs release_from = [\"CIDR\", …]: the client networks \
                     whose ETRN releases its mail"
                ));
            }
            DomainKind::Etrn if d.hosts.as_ref().is_some_and(|h| h.is_empty()) => {
                return fail(format!(
                    "etrn domain {name}: hosts = [] names no host (leave hosts out to deliver to \
                     its MX)"
                ));
            }
            DomainKind::Etrn if d.hosts.is_some() && d.our_mx.is_some() => {
                return fail(format!(
                    "etrn domain {name}: our_mx is for delivery to its MX, not to hosts"
                ));
            }
            DomainKind::Fax
                if d.deliver.is_some()
                    || d.users.is_some()
                    || d.hosts.is_some()
                    || d.tls.is_some()
                    || smarthost_keys =>
            {
                return fail(format!(
                    "deliver, users, hosts, tls, implicit_tls and auth are not for fax domain \
                     {name}: its recipients are fax numbers, sent as [fax] says, by the senders \
                     of the fax user directory"
                ));
            }
            #[cfg(not(feature = "fax"))]
            DomainKind::Fax => {
                return fail(format!(
                    "fax domain {name}: this faxmta was built without fax (cargo feature \"fax\")"
                ));
            }
            DomainKind::Local | DomainKind::Relay | DomainKind::BackupMx | DomainKind::Etrn => {}
            #[cfg(feature = "fax")]
            DomainKind::Fax => {}
        }
    }
    Ok(())
}

/// Why a password file could not be used: `denied` when only the
/// permission to read it is missing (the server's user may have it).
struct PasswordError {
    denied: bool,
    error: ConfigError,
}

/// Read each `auth.password_file`: the password is its first line. A file
/// that cannot be read, or whose first line is empty, is an error at the
/// line that names it. `lenient`: a file this user may not read is only a
/// warning (returned), the others are still errors.
fn read_passwords(
    config: &mut Config,
    src: &Source<'_>,
    lenient: bool,
) -> Result<Vec<ConfigError>, ConfigError> {
    let auths = config
        .smarthost
        .iter_mut()
        .filter_map(|s| s.auth.as_mut())
        .chain(config.domains.iter_mut().filter_map(|d| d.auth.as_mut()));
    let mut warnings = Vec::new();
    for auth in auths {
        match read_password(auth, src) {
            Ok(credentials) => auth.credentials = Some(credentials),
            Err(e) if lenient && e.denied => warnings.push(e.error),
            Err(e) => return Err(e.error),
        }
    }
    Ok(warnings)
}

fn read_password(auth: &AuthConfig, src: &Source<'_>) -> Result<Credentials, PasswordError> {
    let file = auth.password_file.display().to_string();
    let at = [format!("\"{file}\""), "password_file".to_string()];
    let at: Vec<&str> = at.iter().map(String::as_str).collect();
    let fail = |denied: bool, message: String| PasswordError {
        denied,
        error: src.fail(&at, message),
    };
    let text = std::fs::read(&auth.password_file).map_err(|e| {
        fail(
            e.kind() == std::io::ErrorKind::PermissionDenied,
            format!("cannot read password_file {file}: {e}"),
        )
    })?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let password = std::str::from_utf8(line).map_err(|_| {
        fail(
            false,
            format!("password_file {file}: the first line is not UTF-8"),
        )
    })?;
    if password.is_empty() {
        return Err(fail(
            false,
            format!("password_file {file}: the first line (the password) is empty"),
        ));
    }
    Ok(Credentials::new(auth.user.clone(), password))
}

impl Config {
    /// Read the smart hosts' AUTH passwords (`auth.password_file`): only
    /// `serve` needs them, so [`Config::load`] leaves them unread and an
    /// administrator without access to them can still run the other
    /// commands. `path`: the configuration file, for the error's line.
    pub fn read_passwords(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        read_passwords(self, &Source { path, text: &text }, false).map(|_| ())
    }

    /// As [`Config::read_passwords`], for `check-config`: a missing or
    /// empty password file is an error, one this user may not read a
    /// warning (returned) — the server may run as a user who can.
    pub fn check_passwords(&mut self, path: &Path) -> Result<Vec<ConfigError>, ConfigError> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        read_passwords(self, &Source { path, text: &text }, true)
    }
}

#[cfg(test)]
mod tests;
