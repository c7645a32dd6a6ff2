//! faxmta-transport: the contract between the scheduler and every
//! transport — the [`Transport`] trait, the [`Job`] it is given and the
//! [`Outcome`] per recipient it returns.
//!
//! A transport receives a [`Job`]: one message, its body, and the
//! recipients that share one next hop. It returns one [`Outcome`] per
//! recipient and never touches the queue: recording outcomes, retrying and
//! reporting are the scheduler's work (invariant 3 in
//! docs/architecture.md). The transports themselves live in their own
//! crates: `faxmta-local` (Maildir), `faxmta-smtp` (SMTP, LMTP) and
//! `faxmta-fax` (the fax line).

mod table;

pub use table::{HopKind, TransportTable};

use faxmta_queue::{Envelope, Reply};
use std::path::PathBuf;

/// One recipient of a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecipient {
    /// Index of the recipient in `Envelope::recipients`.
    pub index: usize,
    /// The address as queued.
    pub address: String,
    /// Where this recipient's copy goes when that differs per recipient
    /// (a Maildir directory for local delivery).
    pub mailbox: Option<PathBuf>,
}

/// Where a job's recipients go next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Into local mailboxes (each recipient's `mailbox`).
    Local,
    /// To the MX hosts of a domain, found in DNS.
    Mx { domain: String },
    /// To configured hosts, in order, without MX lookup (relay-to-host).
    Relay(RelayHop),
    /// To an LMTP server (RFC 2033) that delivers into the mailboxes.
    Lmtp(LmtpTarget),
    /// To the MX hosts of a domain we are a backup MX for: only those
    /// more preferred than our own entry in its MX set; none (we are the
    /// most preferred, or not in the set): deferred, never bounced.
    BackupMx(BackupMxHop),
    /// Over a fax line (one call per number).
    Fax(FaxHop),
}

/// A fax number to call, as the router worked it out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaxHop {
    /// The number in E.164 (`+15551234567`), for reports and logs.
    pub number: String,
    /// What the line dials (the dial plan's outbound form: prefixes added).
    pub dial: String,
    /// The T.33 subaddress (`/T33S=`), if given.
    pub subaddress: Option<String>,
    /// Digits sent as DTMF once the call is answered (`x12`, `;ext=12`),
    /// if given: digits, `*`, `#`, and `,` for a pause.
    pub extension: Option<String>,
    /// The sender's own settings from the fax user directory, over
    /// `[fax]`'s: station identity, page header, cover page on or off.
    pub tsi: Option<String>,
    pub header: Option<String>,
    pub cover_page: Option<bool>,
}

/// A domain we are a backup MX for, and how to reach its primaries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackupMxHop {
    /// The domain, lower case.
    pub domain: String,
    /// The name of our own entry in the domain's MX set, when it is not
    /// one of this host's names (`hostname`) and its address is not one of
    /// our listeners' (both are recognised anyway).
    pub our_mx: Option<String>,
    pub tls: TlsPolicy,
}

/// Where an LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LmtpTarget {
    /// A TCP host (a name, resolved for A/AAAA, or an IP address) and port.
    Tcp(HostPort),
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl std::fmt::Display for LmtpTarget {
    /// `host:port`, `[IPv6]:port` or `unix:PATH`, as configured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmtpTarget::Tcp(h) if h.name.contains(':') => write!(f, "[{}]:{}", h.name, h.port),
            LmtpTarget::Tcp(h) => write!(f, "{}:{}", h.name, h.port),
            LmtpTarget::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How much TLS a destination needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsPolicy {
    /// Never STARTTLS.
    Off,
    /// STARTTLS when offered; any certificate; fall back to plaintext if
    /// the handshake fails.
    #[default]
    Opportunistic,
    /// STARTTLS must succeed; any certificate.
    Required,
    /// STARTTLS must succeed with a certificate that verifies for the name.
    Verify,
    /// DANE required (RFC 7672, Postfix's `dane-only`): DNSSEC-signed MX
    /// (or host) records, TLSA records for the host, and a certificate
    /// chain that matches them; anything less defers.
    Dane,
}

/// A host and port to relay to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A name (resolved for A/AAAA) or an IP address.
    pub name: String,
    pub port: u16,
}

/// Where relay-to-host or smart host mail goes, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayHop {
    /// Tried in order.
    pub hosts: Vec<HostPort>,
    pub tls: TlsPolicy,
    /// TLS from the first byte (SMTPS) on every host; a host on port 465
    /// gets it anyway (see [`RelayHop::implicit_tls_for`]).
    pub implicit_tls: bool,
    /// AUTH (RFC 4954) with these credentials after EHLO (and after TLS).
    pub auth: Option<Credentials>,
}

impl RelayHop {
    /// Whether `host` is spoken to with implicit TLS: asked for, or port
    /// 465 (submissions, RFC 8314) — never when TLS is off.
    pub fn implicit_tls_for(&self, host: &HostPort) -> bool {
        self.tls != TlsPolicy::Off && (self.implicit_tls || host.port == 465)
    }
}

/// A user name and password for SMTP AUTH. The password never shows in
/// `Debug` output (and so in no log line or error built from it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub user: String,
    /// `None`: not read (only `serve` reads password files).
    password: Option<String>,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: Some(password.into()),
        }
    }

    /// The user of a password not read: AUTH with it fails (temporarily).
    pub fn unread(user: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: None,
        }
    }

    /// The password, for the AUTH exchange only.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One delivery attempt: a message and the recipients that share a hop.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub envelope: &'a Envelope,
    /// The message as queued (our Received header included).
    pub body: &'a [u8],
    pub recipients: &'a [JobRecipient],
    pub next_hop: &'a NextHop,
}

/// How an attempt ended for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Delivered,
    /// Temporary failure: try again later.
    Deferred,
    /// Permanent failure: report to the sender.
    Failed,
}

impl Status {
    /// The word Postfix logs for it: `sent`, `deferred`, `bounced`.
    pub fn log_word(self) -> &'static str {
        match self {
            Status::Delivered => "sent",
            Status::Deferred => "deferred",
            Status::Failed => "bounced",
        }
    }
}

/// The result of an attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the recipient in `Envelope::recipients`.
    pub index: usize,
    pub status: Status,
    /// Where it went: a host, `local`, a mailbox path.
    pub relay: String,
    /// The reply, or a reply-shaped description of what happened.
    pub reply: Reply,
    /// The remote MTA the reply came from (for DSN `Remote-MTA`).
    pub remote_mta: Option<String>,
    /// Delivered to a next hop that does not do DSN: a NOTIFY=SUCCESS
    /// report says "relayed" (RFC 3461 §4.2), and no more reports follow.
    pub relayed: bool,
    /// The TLS version used, if the hop was encrypted.
    pub tls: Option<String>,
    /// The TLS policy the attempt ran under and why (`dane (…)`,
    /// `mta-sts (…)`, `opportunistic (…)`), for the delivery log line.
    pub tls_policy: Option<String>,
    /// For a deferral: try again after this many seconds instead of the
    /// queue's retry schedule (a busy fax line has its own interval).
    pub retry_after: Option<u64>,
    /// A fax recipient's progress after this attempt, kept with the
    /// recipient for the next attempt and for the report.
    pub fax: Option<faxmta_queue::FaxProgress>,
    /// Hold the whole message (quarantine): it made the transport fail in
    /// a way that trying again would repeat (a fax renderer that keeps
    /// crashing on it). The recipient stays deferred.
    pub quarantine: bool,
    /// The fax document of this attempt (TIFF-F, as it went on the line),
    /// for the scheduler to keep with the fax's record: the transport
    /// never touches the store.
    pub document: Option<FaxDocument>,
}

/// A fax document's octets, cheap to clone; its `Debug` gives the size
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct FaxDocument(pub std::sync::Arc<[u8]>);

impl std::fmt::Debug for FaxDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaxDocument({} octets)", self.0.len())
    }
}

impl Outcome {
    /// An outcome decided here rather than by a remote server.
    pub fn local(index: usize, status: Status, relay: impl Into<String>, reply: Reply) -> Self {
        Outcome {
            index,
            status,
            relay: relay.into(),
            reply,
            remote_mta: None,
            relayed: false,
            tls: None,
            tls_policy: None,
            retry_after: None,
            fax: None,
            quarantine: false,
            document: None,
        }
    }
}

/// A way to move a message one hop further.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// The transport's name in logs and metrics (`local`, `smtp`, `fax` …).
    fn name(&self) -> &'static str;

    /// Attempt delivery; exactly one outcome per job recipient.
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome>;
}
