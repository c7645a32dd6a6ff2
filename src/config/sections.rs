//! The small sections of the configuration file, each with its
//! defaults: `[admin]`, `[dns]`, `[outbound]`, `[queue]`, `[control]`,
//! `[[listener]]`, `[tls]`, `[smtp]`, `[relay]`, `[log]`. The larger ones
//! have modules of their own (domains, fax, policy, pop3, etrn).

use super::{policy, Duration, OutboundTls, Size};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// DNSKEY records (zone-file form) to anchor DNSSEC validation at,
    /// instead of the IANA root keys: every key of the anchored zone.
    pub dnssec_trust_anchor: Option<std::path::PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration(5),
            dnssec_trust_anchor: None,
        }
    }
}

/// `[outbound] dane`: DANE for MX domains (RFC 7672).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DaneSetting {
    /// Use TLSA records where the MX and TLSA records are DNSSEC-signed.
    #[default]
    Opportunistic,
    /// Never look (a domain with `tls = "dane"` still does).
    Off,
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
    /// DANE for MX domains.
    pub dane: DaneSetting,
    /// The TLS policy per destination domain, over `tls`: `"dane"`
    /// (DANE required) or any `tls` value.
    pub tls_policy: std::collections::BTreeMap<String, OutboundTls>,
    /// CA certificates (PEM) trusted beside Mozilla's roots, for
    /// `verify`, MTA-STS and REQUIRETLS.
    pub ca_file: Option<std::path::PathBuf>,
    /// Apply the MTA-STS policies of recipient domains (RFC 8461).
    pub mta_sts: bool,
    /// Where fetched MTA-STS policies are kept across restarts; default:
    /// `mta-sts.json` beside the queue directory (`var/mta-sts.json`).
    pub mta_sts_cache: Option<std::path::PathBuf>,
    /// The HTTPS port policies are fetched from (443; tests use others).
    pub mta_sts_port: u16,
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
            dane: DaneSetting::Opportunistic,
            tls_policy: std::collections::BTreeMap::new(),
            ca_file: None,
            mta_sts: true,
            mta_sts_cache: None,
            mta_sts_port: 443,
        }
    }
}

impl OutboundConfig {
    /// The transport's TLS settings.
    pub fn security(&self) -> faxmta_smtp::SecuritySettings {
        faxmta_smtp::SecuritySettings {
            default: self.tls.policy(),
            dane: self.dane == DaneSetting::Opportunistic,
            domains: self
                .tls_policy
                .iter()
                .map(|(d, t)| (d.trim_end_matches('.').to_ascii_lowercase(), t.policy()))
                .collect(),
        }
    }

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
    pub(super) fn timeout_keys(&self) -> [(&'static str, Duration); 6] {
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

/// `[queue]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Where the queue is kept: `sled` (embedded, the default: one
    /// process owns the queue) or `postgres` (several nodes share it).
    pub backend: QueueBackend,
    /// Directory of the sled database; with `postgres`, this node's local
    /// spool of bodies being received.
    pub path: PathBuf,
    /// `postgres`: the database, `postgres://user@host:port/dbname`.
    pub url: Option<String>,
    /// `postgres`: a file whose first line is the database password.
    pub password_file: Option<PathBuf>,
    /// `postgres`: connections at most.
    pub pool_size: usize,
    /// `postgres`: TLS to the database, verified against these
    /// certificate authorities (PEM); none: no TLS.
    pub tls_ca: Option<PathBuf>,
    /// `postgres`: this node's name, unique among the nodes sharing the
    /// database (default: the host name).
    pub node: Option<String>,
    /// How long a delivery leases its message (renewed while it runs): on
    /// a shared queue, how long a dead node's deliveries wait before
    /// another node takes them over.
    pub lease_time: Duration,
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
            backend: QueueBackend::Sled,
            path: "var/queue".into(),
            url: None,
            password_file: None,
            pool_size: 16,
            tls_ca: None,
            node: None,
            lease_time: Duration(300),
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

/// `[accounts]`: where the SMTP AUTH users and the HTTP fax API's tokens
/// are kept.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    pub backend: AccountsBackend,
}

/// `[accounts] backend`: `files` (`[auth] users_file`, `[admin]
/// tokens_file`; the default) or `database` (the queue's PostgreSQL
/// database, so that every node of a cluster answers the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccountsBackend {
    #[default]
    Files,
    Database,
}

/// `[queue] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    Sled,
    Postgres,
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

/// What to do with a bare CR or LF inside DATA (the DATA reader's, in
/// faxmta-proto).
pub use faxmta_proto::BareNewline;

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
