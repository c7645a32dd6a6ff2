//! The configuration file: its TOML model, defaults and validation.
//!
//! Every value that can be wrong is checked while the file is parsed, so
//! errors carry the file, line and column (`faxmta check-config`). The
//! reference for every key is docs/configuration.md.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub mod dkim;
mod domains;
mod error;
mod etrn;
pub mod fax;
pub mod policy;
pub mod pop3;
mod values;
pub use dkim::DkimConfig;
pub use domains::{DomainConfig, DomainKind, SmarthostConfig};
pub use error::ConfigError;
pub use etrn::{valid_node, EtrnClientConfig};
pub use policy::{PolicyConfig, SmtpAuthConfig};
pub use values::{parse_host, Deliver, Duration, HostSpec, OutboundTls, Size};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our name in the greeting, EHLO, Received headers and reports.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// The process's file creation mask, in octal (`"077"`: the queue,
    /// fax images, Maildirs and keys are for faxmta's user alone).
    #[serde(default = "default_umask")]
    pub umask: String,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[auth]`: SMTP AUTH on submission listeners.
    #[serde(default)]
    pub auth: SmtpAuthConfig,
    /// `[policy]`: the global deny list and the defaults of the checks.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[[dkim]]`: outbound signing keys.
    #[serde(default)]
    pub dkim: Vec<DkimConfig>,
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainConfig>,
    /// `[smarthost]`: where mail for domains that are not ours goes
    /// instead of their MX.
    pub smarthost: Option<SmarthostConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// `[[etrn_client]]`: ETRN sent on a schedule.
    #[serde(default, rename = "etrn_client")]
    pub etrn_clients: Vec<EtrnClientConfig>,
    /// `[fax]`: the fax transport.
    #[serde(default)]
    pub fax: fax::FaxConfig,
    /// `[[pop3]]`: mailboxes the POP3 fax gateway polls.
    #[serde(default)]
    pub pop3: Vec<pop3::Pop3Config>,
}

/// `[admin]`: the HTTP listener for /metrics and the HTTP fax API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `false`: no admin listener at all.
    pub enabled: bool,
    /// HTTPS with the server's `[tls]` certificate.
    pub tls: bool,
    /// The hashed tokens of the HTTP fax API (`faxmta token`).
    pub tokens_file: PathBuf,
    /// The largest request body of `sendfax` (`POST /fax/send`).
    pub max_request: Size,
    /// How long a client has to send a request's headers (also the
    /// longest wait for the next request on a kept-alive connection).
    pub header_timeout: Duration,
    /// How long one request may take, its body and the answer included.
    pub request_timeout: Duration,
    /// Connections open at once at most; more are refused with a 503.
    pub max_connections: usize,
    /// A file whose first line is the token `GET /metrics` must present
    /// (`Authorization: Bearer TOKEN`); absent: /metrics is open to
    /// whoever reaches the listener.
    pub metrics_token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9025)),
            enabled: true,
            tls: false,
            tokens_file: PathBuf::from("var/tokens"),
            max_request: Size(20 * 1024 * 1024),
            header_timeout: Duration(10),
            request_timeout: Duration(300),
            max_connections: 100,
            metrics_token_file: None,
        }
    }
}

/// `[dns]`: the resolver used for MX and address lookups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `IP:port` of the DNS servers to ask. Empty: the system's
    /// (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    /// How long to wait for one answer.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration(5),
        }
    }
}

/// `[outbound]`: the SMTP client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// The port MX hosts are contacted on.
    pub port: u16,
    pub tls: OutboundTls,
    /// Our name in EHLO; default: `hostname`.
    pub helo: Option<String>,
    /// TCP connect, per address.
    pub connect_timeout: Duration,
    /// The greeting, and the reply to EHLO (HELO).
    pub helo_timeout: Duration,
    /// Each other command and its reply (MAIL, RCPT, RSET, STARTTLS,
    /// AUTH, QUIT).
    pub command_timeout: Duration,
    /// The reply to DATA.
    pub data_init_timeout: Duration,
    /// Writing each block of the message (64 KiB) and the final dot.
    pub data_timeout: Duration,
    /// The reply to the final dot.
    pub data_done_timeout: Duration,
    /// A host that timed out is not tried again for this long (deliveries
    /// to it are deferred at once); 0: always try.
    pub suspend_time: Duration,
    /// More Received headers than this: a mail loop, the message fails.
    pub max_received: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        // Postfix's defaults (smtp_*_timeout).
        OutboundConfig {
            port: 25,
            tls: OutboundTls::Opportunistic,
            helo: None,
            connect_timeout: Duration(30),
            helo_timeout: Duration(300),
            command_timeout: Duration(300),
            data_init_timeout: Duration(120),
            data_timeout: Duration(180),
            data_done_timeout: Duration(600),
            suspend_time: Duration(60),
            max_received: 50,
        }
    }
}

impl OutboundConfig {
    /// The client's timeouts, each a deadline for a whole reply or write.
    pub fn timeouts(&self) -> faxmta_smtp::Timeouts {
        faxmta_smtp::Timeouts {
            connect: self.connect_timeout.std(),
            helo: self.helo_timeout.std(),
            command: self.command_timeout.std(),
            data_init: self.data_init_timeout.std(),
            data_block: self.data_timeout.std(),
            data_end: self.data_done_timeout.std(),
        }
    }

    /// The timeout keys and their values, for validation.
    fn timeout_keys(&self) -> [(&'static str, Duration); 6] {
        [
            ("connect_timeout", self.connect_timeout),
            ("helo_timeout", self.helo_timeout),
            ("command_timeout", self.command_timeout),
            ("data_init_timeout", self.data_init_timeout),
            ("data_timeout", self.data_timeout),
            ("data_done_timeout", self.data_done_timeout),
        ]
    }
}

fn default_umask() -> String {
    "077".into()
}

impl Config {
    /// `umask` as a mode (validated at load: octal, at most 0777).
    pub fn umask_mode(&self) -> u32 {
        u32::from_str_radix(&self.umask, 8).unwrap_or(0o077) & 0o777
    }
}

pub(crate) fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// How long a message may stay before it fails with a report.
    pub lifetime: Duration,
    /// Intervals between attempts; the last one repeats.
    pub retry: Vec<Duration>,
    /// Deliveries running at once.
    pub concurrency: usize,
    /// Deliveries running at once to one remote domain.
    pub destination_concurrency: usize,
    /// Warn the sender (RFC 3464 action=delayed) once a message has waited
    /// this long; 0 turns warnings off.
    pub delay_warning: Duration,
    /// Space that must stay free on the queue's filesystem: below it (plus
    /// half again the message's size) new mail gets 452 4.3.1; 0 = no
    /// check (Postfix's `queue_minfree`).
    pub min_free: Size,
    /// The bound of the queue database's page cache (sled; a soft bound).
    pub cache: Size,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            path: "var/queue".into(),
            lifetime: Duration(5 * 86_400),
            retry: [60, 300, 900, 3600, 4 * 3600].map(Duration).to_vec(),
            concurrency: 20,
            destination_concurrency: 10,
            delay_warning: Duration(4 * 3600),
            min_free: Size(100 * 1024 * 1024),
            cache: Size(faxmta_queue::DEFAULT_CACHE),
        }
    }
}

/// `[control]`: the local socket through which the CLI talks to the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// Users (numeric uids) that may use the socket besides root and the
    /// user faxmta runs as (checked with SO_PEERCRED).
    pub allow_uids: Vec<u32>,
    /// Groups (numeric gids: the client's primary group) whose members
    /// may use the socket too.
    pub allow_gids: Vec<u32>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: "var/faxmta.sock".into(),
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
        }
    }
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Port 25: mail from the Internet for our domains.
    Mx,
    /// Port 587/465: mail from our own users.
    Submission,
}

/// How a listener offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Announce STARTTLS (the default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all.
    None,
}

/// `[[listener]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    pub role: Role,
    #[serde(default)]
    pub tls: TlsMode,
    /// Only these client networks may connect (empty: all).
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// These client networks are refused at connect.
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// The checks; absent ones come from `[policy]`.
    pub spf: Option<policy::SpfMode>,
    pub softfail: Option<policy::SoftfailMode>,
    pub permerror: Option<policy::PermerrorMode>,
    pub dkim: Option<policy::DkimMode>,
    pub dmarc: Option<policy::DmarcMode>,
}

/// `[tls]`: the server certificate. Without `cert` and `key`, a
/// self-signed pair for `hostname` is made in `generated_dir` on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub generated_dir: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            generated_dir: "var/tls".into(),
        }
    }
}

/// What to do with a bare CR or LF inside DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// Refuse the message with 554 5.6.0 (SMTP smuggling defence).
    #[default]
    Reject,
    /// Treat a bare LF or CR as a line end and store CRLF.
    Normalize,
}

/// `[smtp]`: the SMTP server's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Largest message accepted (announced with SIZE).
    pub max_message_size: Size,
    pub max_recipients: usize,
    /// Errors in one session before 421 and close.
    pub max_errors: u32,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 says 512;
    /// extension parameters need more).
    pub max_command_line: usize,
    /// Longest text line in DATA, CRLF included (§4.5.3.1.6: 1000); 0 = no limit.
    pub max_data_line: usize,
    /// A whole command line must arrive within this (a deadline per
    /// command, not per read).
    pub command_timeout: Duration,
    /// DATA (354 to the final dot) or a BDAT chunk must arrive within
    /// this, plus one second per `min_data_rate` octets received.
    pub data_timeout: Duration,
    /// Octets per second that earn a DATA/BDAT transfer more time (Postfix's
    /// `smtpd_min_data_rate`); 0 = `data_timeout` is a hard limit.
    pub min_data_rate: u64,
    /// Percent of `max_connections` open at which the server is under
    /// stress and uses `stress_timeout`; 0 = never.
    pub stress_threshold: u32,
    /// Under stress: the command timeout, and the base of the data
    /// timeout (Postfix: `smtpd_timeout = ${stress?10}{300}`).
    pub stress_timeout: Duration,
    pub bare_newline: BareNewline,
    /// How long to let sessions finish on shutdown before cutting them.
    pub shutdown_grace: Duration,
    /// Sessions open at once, in all (then 421 4.7.0 at connect).
    pub max_connections: usize,
    /// Sessions open at once from one client address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Connections from one client address in a minute; 0 = no limit.
    pub max_connection_rate: usize,
    /// Messages in one session (then 421 4.7.0 at the next MAIL); 0 = no limit.
    pub max_messages_per_connection: usize,
    /// NOOP, RSET, VRFY and ETRN in one session before each counts as an
    /// error too (Postfix's `smtpd_junk_command_limit`); 0 = no limit.
    pub max_junk_commands: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            max_message_size: Size(35 * 1024 * 1024),
            max_recipients: 100,
            max_errors: 10,
            max_command_line: 2048,
            max_data_line: 1000,
            command_timeout: Duration(300),
            data_timeout: Duration(600),
            min_data_rate: 500,
            stress_threshold: 80,
            stress_timeout: Duration(10),
            bare_newline: BareNewline::Reject,
            shutdown_grace: Duration(10),
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_connection_rate: 0,
            max_messages_per_connection: 1000,
            max_junk_commands: 100,
        }
    }
}

/// `[relay]`: who may send mail to domains that are not ours.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Client networks allowed to relay. Empty (the default): nobody.
    pub allow: Vec<IpNet>,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `faxmta=debug`. `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::at(path, "", None, format!("cannot read: {e}")))?;
        Config::parse(path, &text)
    }

    /// Parse and validate configuration text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message repeats the place in its first line; keep the rest.
            let message = e.message().trim().to_string();
            ConfigError::at(path, text, e.span(), message)
        })?;
        let mut config = config;
        config.validate(path, text)?;
        let src = error::Source { path, text };
        policy::load(&mut config, &src)?;
        fax::load(&mut config, &src)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        // Errors found after parsing point at the first line that names the
        // key (toml's spans do not survive deserialisation into our types).
        let find = |needle: &str| text.find(needle).map(|p| p..p + needle.len());
        let fail =
            |needle: &str, message: String| Err(ConfigError::at(path, text, find(needle), message));

        if self.hostname.trim().is_empty() {
            return fail("hostname", "hostname must not be empty".into());
        }
        if u32::from_str_radix(&self.umask, 8).map_or(true, |m| m > 0o777) {
            return fail(
                "umask",
                format!(
                    "umask {:?} is not an octal mode such as \"077\"",
                    self.umask
                ),
            );
        }
        if self.queue.retry.is_empty() || self.queue.retry.iter().any(|d| d.0 == 0) {
            return fail(
                "retry",
                "queue.retry needs at least one interval, none of them 0".into(),
            );
        }
        if self.queue.lifetime.0 == 0 {
            return fail("lifetime", "queue.lifetime must be more than 0".into());
        }
        if self.queue.destination_concurrency == 0 {
            return fail(
                "destination_concurrency",
                "queue.destination_concurrency must be at least 1".into(),
            );
        }
        if self.queue.concurrency == 0 {
            return fail("concurrency", "queue.concurrency must be at least 1".into());
        }
        for (key, value) in self.outbound.timeout_keys() {
            if value.0 == 0 {
                return fail(key, format!("outbound.{key} must be more than 0"));
            }
        }
        if self.dns.timeout.0 == 0 {
            return fail("[dns]", "dns.timeout must be more than 0".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return fail(
                "[tls]",
                "tls.cert and tls.key go together: give both or neither".into(),
            );
        }
        if self.smtp.max_command_line < 512 {
            return fail(
                "max_command_line",
                "smtp.max_command_line must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
            );
        }
        if self.smtp.max_data_line != 0 && self.smtp.max_data_line < 1000 {
            return fail(
                "max_data_line",
                "smtp.max_data_line must be 0 (no limit) or at least 1000 (RFC 5321 §4.5.3.1.6)"
                    .into(),
            );
        }
        if self.smtp.stress_threshold > 100 {
            return fail(
                "stress_threshold",
                "smtp.stress_threshold is a percent of max_connections: 0 (never) to 100".into(),
            );
        }
        for (key, value) in [
            ("command_timeout", self.smtp.command_timeout),
            ("data_timeout", self.smtp.data_timeout),
            ("stress_timeout", self.smtp.stress_timeout),
        ] {
            if value.0 == 0 {
                return fail(key, format!("smtp.{key} must be at least 1s"));
            }
        }
        if self.smtp.max_connections == 0 {
            return fail(
                "max_connections",
                "smtp.max_connections must be at least 1".into(),
            );
        }
        // [admin]'s keys, found after its header (smtp has the same names).
        let admin_at = text.find("[admin]").unwrap_or(0);
        let in_admin = |needle: &str, message: String| {
            let at = text[admin_at..]
                .find(needle)
                .map(|p| admin_at + p..admin_at + p + needle.len());
            Err(ConfigError::at(path, text, at, message))
        };
        for (key, value) in [
            ("header_timeout", self.admin.header_timeout),
            ("request_timeout", self.admin.request_timeout),
        ] {
            if value.0 == 0 {
                return in_admin(key, format!("admin.{key} must be at least 1s"));
            }
        }
        if self.admin.max_connections == 0 {
            return in_admin(
                "max_connections",
                "admin.max_connections must be at least 1".into(),
            );
        }
        if self.smtp.max_recipients == 0 {
            return fail(
                "max_recipients",
                "smtp.max_recipients must be at least 1".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.listeners {
            if !seen.insert(l.addr) {
                return fail(
                    &l.addr.to_string(),
                    format!("listener {} is configured twice", l.addr),
                );
            }
        }
        etrn::validate(&self.etrn_clients, |needle, message| {
            ConfigError::at(path, text, find(needle), message)
        })?;
        pop3::validate(&self.pop3, |needle, message| {
            ConfigError::at(path, text, find(needle), message)
        })?;
        domains::validate(self, &error::Source { path, text })
    }

    /// The retry policy of the queue.
    pub fn retry_policy(&self) -> faxmta_queue::RetryPolicy {
        faxmta_queue::RetryPolicy {
            steps: self.queue.retry.iter().map(|d| d.0).collect(),
            lifetime: self.queue.lifetime.0,
            jitter: 0.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn defaults_are_safe() {
        let c = parse("hostname = \"mx.example.test\"\n").unwrap();
        assert!(c.relay.allow.is_empty(), "never an open relay by default");
        assert_eq!(c.smtp.max_recipients, 100);
        assert_eq!(c.queue.lifetime, Duration(5 * 86_400));
        assert_eq!(c.smtp.bare_newline, BareNewline::Reject);
        assert_eq!(c.smtp.max_connections_per_ip, 50, "Postfix anvil's default");
        assert!(c.auth.users_file.is_none(), "no AUTH unless configured");
        // The admin listener is bounded like SMTP's.
        assert_eq!(c.admin.header_timeout, Duration(10));
        assert_eq!(c.admin.request_timeout, Duration(300));
        assert_eq!(c.admin.max_connections, 100);
        let e = parse("[smtp]\nmax_connections = 5\n[admin]\nmax_connections = 0\n").unwrap_err();
        assert_eq!(e.place, ":4:1", "{e}");
        let e = parse("[admin]\nheader_timeout = \"0s\"\n").unwrap_err();
        assert!(e.message.contains("admin.header_timeout"), "{e}");
        assert!(!c.auth.any_sender);
        let e = parse("[auth]\nmax_failures = 0\n").unwrap_err();
        assert!(e.message.contains("max_failures"), "{e}");
        // A users file that does not parse names its own line.
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, "# x\nalice:not-a-hash\n").unwrap();
        let e = parse(&format!("[auth]\nusers_file = \"{}\"\n", users.display())).unwrap_err();
        assert_eq!(e.place, ":2:14", "{e}");
        assert!(e.message.contains("line 2: user alice"), "{e}");
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
hostname = "mx.example.test"
[queue]
path = "/tmp/q"
lifetime = "2h"
retry = ["10s", 60]
[[listener]]
addr = "127.0.0.1:2525"
role = "mx"
[[listener]]
addr = "127.0.0.1:2465"
role = "submission"
tls = "implicit"
[smtp]
max_message_size = "10M"
bare_newline = "normalize"
[relay]
allow = ["127.0.0.2/32", "::1/128"]
[[domain]]
name = "Example.TEST"
kind = "local"
deliver = "maildir:var/mail/{domain}/{user}"
users = ["alice"]
"#,
        )
        .unwrap();
        assert_eq!(c.queue.retry, vec![Duration(10), Duration(60)]);
        assert_eq!(c.smtp.max_message_size, Size(10 * 1024 * 1024));
        assert_eq!(c.listeners[1].tls, TlsMode::Implicit);
        assert_eq!(c.domains[0].name.0, "example.test");
        assert_eq!(c.relay.allow.len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("hostname = \"x\"\n[queue]\nlifetime = \"5 fortnights\"\n").unwrap_err();
        assert_eq!(e.place, ":3:12", "{e}");
        assert!(e.message.contains("invalid duration"), "{e}");

        let e = parse("hostname = \"x\"\n[smtp]\nmax_recipints = 5\n").unwrap_err();
        assert!(e.to_string().starts_with("test.toml:3:"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");

        let e = parse("[[domain]]\nname = \"a.test\"\nkind = \"local\"\n").unwrap_err();
        assert_eq!(e.place, ":2:8", "{e}");
        assert!(e.message.contains("needs deliver"), "{e}");

        let e = parse("[[domain]]\nname = \"bad domain\"\nkind = \"local\"\n").unwrap_err();
        assert!(e.to_string().starts_with("test.toml:2:"), "{e}");

        let e = parse(
            "[[domain]]\nname = \"a.test\"\nkind = \"local\"\ndeliver = \"lmtp:localhost\"\n",
        )
        .unwrap_err();
        assert_eq!(e.place, ":4:11", "{e}");
        assert!(e.message.contains("lmtp:HOST:PORT"), "{e}");
    }

    #[test]
    fn outbound_timeouts_default_to_postfixs_and_are_configurable() {
        let t = parse("hostname = \"x\"\n").unwrap().outbound.timeouts();
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(
            [
                t.connect,
                t.helo,
                t.command,
                t.data_init,
                t.data_block,
                t.data_end
            ]
            .map(secs),
            [30, 300, 300, 120, 180, 600]
        );
        assert_eq!(parse("").unwrap().outbound.suspend_time, Duration(60));
        let c = parse("[outbound]\nhelo_timeout = \"7s\"\ndata_done_timeout = \"1m\"\n").unwrap();
        let t = c.outbound.timeouts();
        assert_eq!((secs(t.helo), secs(t.data_end)), (7, 60));
        let e = parse("[outbound]\ncommand_timeout = 0\n").unwrap_err();
        assert_eq!(e.place, ":2:1", "{e}");
        assert!(
            e.message.contains("command_timeout must be more than 0"),
            "{e}"
        );
        let e = parse("[dns]\ntimeout = 0\n").unwrap_err();
        assert!(e.message.contains("dns.timeout must be more than 0"), "{e}");
    }
}
