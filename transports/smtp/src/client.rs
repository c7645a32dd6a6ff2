//! One outbound SMTP (or LMTP) connection: over TCP or (LMTP) a Unix
//! socket; implicit TLS (SMTPS) or STARTTLS, greeting, EHLO/LHLO (HELO as
//! a fallback), AUTH PLAIN or LOGIN (RFC 4954), reading replies and
//! writing commands with the timeouts of RFC 5321 §4.5.3.2. Transactions
//! are in `transaction.rs`.
//!
//! Every timeout is a deadline for a whole step — a whole reply, a whole
//! write — not for one read: a server that trickles a byte now and then
//! cannot hold a connection (and the delivery worker behind it) longer
//! than the step's timeout. Reply lines and replies are bounded in size.

use super::dane::DaneCheck;
use super::tls::{describe, Tls, TlsPolicy};
use faxmta_queue::Reply;
use faxmta_transport::Credentials;
use smtp_proto::{EhloResponse, EXT_DSN, EXT_REQUIRE_TLS, EXT_START_TLS};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

mod security;
mod wire;
pub use security::{Security, TlsFailure, TlsInfo};
pub(crate) use wire::check_line;
pub use wire::{is_timeout, parse_reply, MAX_REPLY_LINE};

/// RFC 5321 §4.5.3.2 timeouts (and a connect timeout), with Postfix's
/// defaults. Each is a deadline for a whole reply (or a whole write), not
/// for one read.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP (or Unix socket) connect.
    pub connect: Duration,
    /// The greeting, and the reply to EHLO/LHLO (HELO): Postfix's
    /// `smtp_helo_timeout`.
    pub helo: Duration,
    /// Sending a command and its reply: MAIL, RCPT, RSET, STARTTLS (and
    /// the handshake), AUTH, ETRN, QUIT.
    pub command: Duration,
    /// The reply to DATA (`smtp_data_init_timeout`).
    pub data_init: Duration,
    /// Writing one block of the message (64 KiB) and the final dot
    /// (`smtp_data_xfer_timeout`).
    pub data_block: Duration,
    /// The reply to the final dot (`smtp_data_done_timeout`).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            helo: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// RSET on a connection kept for reuse (Postfix's `smtp_rset_timeout`):
/// a server that does not answer it quickly is not worth keeping.
const RSET_TIMEOUT: Duration = Duration::from_secs(20);

/// What is fixed for every connection a transport makes.
#[derive(Clone)]
pub struct ClientSettings {
    /// Our name in EHLO.
    pub helo: String,
    pub tls: Tls,
    pub timeouts: Timeouts,
    /// LMTP (RFC 2033): LHLO, and one reply per recipient after DATA.
    pub lmtp: bool,
    /// DKIM signing of mail from trusted clients (SMTP only, not LMTP).
    pub signer: Option<std::sync::Arc<dyn Signer>>,
}

/// Signs outbound mail (DKIM); the daemon implements it with its keys
/// (defined in faxmta-proto, beside the body preparation that calls it).
pub use faxmta_proto::body::Signer;

/// Why a host could not be used: the caller tries the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopError {
    pub reply: Reply,
    /// A TLS handshake failed (opportunistic TLS may retry in plaintext).
    pub tls_failed: bool,
    /// What went wrong with TLS, if that is why (for TLS reports).
    pub tls_failure: Option<TlsFailure>,
}

impl HopError {
    pub(super) fn temp(text: String) -> Self {
        HopError {
            reply: Reply::new(451, "4.4.1", text),
            tls_failed: false,
            tls_failure: None,
        }
    }

    /// A TLS policy that could not be met on this host (4.7.5, RFC 7672).
    pub fn tls(text: String, failure: TlsFailure) -> Self {
        HopError {
            reply: Reply::new(451, "4.7.5", text),
            tls_failed: false,
            tls_failure: Some(failure),
        }
    }

    /// A REQUIRETLS message this host cannot take (RFC 8689 §5: 5.7.30).
    pub fn requiretls(text: String) -> Self {
        HopError {
            reply: Reply::new(
                550,
                "5.7.30",
                format!("REQUIRETLS support required: {text}"),
            ),
            tls_failed: false,
            tls_failure: None,
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A Unix domain socket (LMTP to a server on this host).
    Unix(UnixStream),
    /// Taken by a TLS handshake that failed.
    Gone,
}

impl Stream {
    fn io(&mut self) -> Option<&mut (dyn AsyncReadWrite + Unpin + Send)> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.as_mut()),
            Stream::Unix(s) => Some(s),
            Stream::Gone => None,
        }
    }
}

/// The other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> AsyncReadWrite for T {}

/// An open connection, ready for a transaction.
pub struct Connection {
    stream: Stream,
    input: Vec<u8>,
    /// The server's name (for TLS and messages); `localhost` for a Unix
    /// socket.
    pub host: String,
    pub peer: Peer,
    pub(super) ehlo: Option<EhloResponse<String>>,
    pub tls: Option<TlsInfo>,
    pub(super) settings: ClientSettings,
    /// False once the connection is no longer in a known state.
    pub usable: bool,
    /// When the connection was opened (reuse has a time limit).
    pub opened: std::time::Instant,
    /// Transactions carried so far.
    pub uses: u32,
    /// Whom the session authenticated as (AUTH), if it did.
    pub authenticated: Option<Credentials>,
    /// What the next reply answers, for messages ("the greeting", "MAIL
    /// FROM" …).
    awaiting: String,
}

impl Connection {
    /// Connect over TCP, TLS at once if `security` asks for implicit TLS,
    /// read the greeting, say EHLO (LHLO), STARTTLS as its policy asks,
    /// and AUTH with its credentials.
    pub async fn open(
        addr: SocketAddr,
        host: &str,
        settings: &ClientSettings,
        security: Security<'_>,
    ) -> Result<Connection, HopError> {
        let who = format!("{host}[{addr}]");
        let tcp = connect(settings.timeouts.connect, &who, TcpStream::connect(addr)).await?;
        let _ = tcp.set_nodelay(true);
        Connection::start(
            Stream::Plain(tcp),
            host,
            Peer::Tcp(addr),
            settings,
            security,
        )
        .await
    }

    /// Connect to a Unix domain socket (an LMTP server on this host), read
    /// the greeting and say LHLO (EHLO); never TLS.
    pub async fn open_unix(path: &Path, settings: &ClientSettings) -> Result<Connection, HopError> {
        let who = format!("unix:{}", path.display());
        let unix = connect(settings.timeouts.connect, &who, UnixStream::connect(path)).await?;
        let peer = Peer::Unix(path.to_path_buf());
        let security = Security::starttls(TlsPolicy::Off);
        Connection::start(Stream::Unix(unix), "localhost", peer, settings, security).await
    }

    /// What every connection does once connected: implicit TLS if asked,
    /// the greeting, EHLO or LHLO, STARTTLS as the policy asks, and AUTH.
    async fn start(
        stream: Stream,
        host: &str,
        peer: Peer,
        settings: &ClientSettings,
        security: Security<'_>,
    ) -> Result<Connection, HopError> {
        let policy = security.tls;
        let t = settings.timeouts;
        let mut conn = Connection {
            stream,
            input: Vec::new(),
            host: host.to_string(),
            peer,
            ehlo: None,
            tls: None,
            settings: settings.clone(),
            usable: true,
            opened: std::time::Instant::now(),
            uses: 0,
            authenticated: None,
            awaiting: "the greeting".into(),
        };
        if security.implicit_tls {
            // SMTPS: a failed handshake is no reason to talk in plaintext.
            conn.handshake(policy, security.dane)
                .await
                .map_err(|mut e| {
                    e.tls_failed = false;
                    e
                })?;
        }
        let greeting = conn
            .read_reply(t.helo)
            .await
            .map_err(|e| HopError::temp(e.text))?;
        if greeting.code / 100 != 2 {
            return Err(HopError {
                reply: Reply::new(
                    if greeting.is_permanent() { 554 } else { 451 },
                    &greeting.status,
                    format!("host {} refused to talk to me: {greeting}", conn.who()),
                ),
                tls_failed: false,
                tls_failure: None,
            });
        }
        conn.hello().await?;
        let offers_tls = conn.has(EXT_START_TLS);
        if conn.tls.is_some() {
            // Implicit TLS.
        } else if security.needs_tls() && !offers_tls {
            let who = conn.who();
            return Err(if security.requiretls {
                HopError::requiretls(format!("host {who} did not offer STARTTLS"))
            } else {
                HopError::tls(
                    format!("TLS is required, but host {who} did not offer STARTTLS"),
                    TlsFailure::StarttlsNotSupported,
                )
            });
        } else if policy != TlsPolicy::Off && offers_tls {
            conn.starttls(policy, security.dane)
                .await
                .map_err(|e| match e.tls_failure {
                    // A certificate that does not verify is final for a
                    // REQUIRETLS message (RFC 8689 §5); a broken
                    // handshake may work next time.
                    Some(_) if security.requiretls && !e.tls_failed => {
                        HopError::requiretls(e.reply.text)
                    }
                    _ => e,
                })?;
        }
        if security.requiretls {
            if let Err(e) = conn.requiretls_ready() {
                conn.quit().await;
                return Err(e);
            }
        }
        if let Some(credentials) = security.auth {
            if let Err(e) = conn.authenticate(credentials, policy).await {
                if conn.usable {
                    conn.quit().await;
                }
                return Err(e);
            }
        }
        Ok(conn)
    }

    /// The peer in messages and logs: `host[IP:port]` or `unix:PATH`.
    pub fn who(&self) -> String {
        match &self.peer {
            Peer::Tcp(addr) => format!("{}[{addr}]", self.host),
            Peer::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    pub(super) fn has(&self, ext: u32) -> bool {
        self.ehlo.as_ref().is_some_and(|e| e.has_capability(ext))
    }

    /// Whether the server offered REQUIRETLS (RFC 8689) over TLS that
    /// verified (a connection ready for a REQUIRETLS message).
    pub fn offers_requiretls(&self) -> bool {
        self.requiretls_ready().is_ok()
    }

    /// Whether the server announced DSN (RFC 3461).
    pub fn offers_dsn(&self) -> bool {
        self.has(EXT_DSN)
    }

    async fn hello(&mut self) -> Result<(), HopError> {
        let t = self.settings.timeouts;
        let verb = if self.settings.lmtp { "LHLO" } else { "EHLO" };
        let lines = self
            .exchange(&format!("{verb} {}\r\n", self.settings.helo), t.helo)
            .await
            .map_err(|e| HopError::temp(e.text))?;
        let reply = parse_reply(&lines);
        if reply.code == 250 {
            let mut raw = lines.join("\r\n").into_bytes();
            raw.extend_from_slice(b"\r\n");
            self.ehlo = EhloResponse::parse(&mut raw.iter()).ok();
            return Ok(());
        }
        if self.settings.lmtp {
            return Err(self.hop_error(&reply, "LHLO"));
        }
        // An old server: HELO, and no extensions.
        let helo = self
            .command(&format!("HELO {}\r\n", self.settings.helo), t.helo)
            .await
            .map_err(|e| HopError::temp(e.text))?;
        if helo.code != 250 {
            return Err(self.hop_error(&helo, "HELO"));
        }
        self.ehlo = None;
        Ok(())
    }

    pub(super) fn hop_error(&self, reply: &Reply, after: &str) -> HopError {
        HopError {
            reply: Reply::new(
                if reply.is_permanent() { 554 } else { 451 },
                &reply.status,
                format!("host {} said: {reply} (in reply to {after})", self.who()),
            ),
            tls_failed: false,
            tls_failure: None,
        }
    }

    /// A REQUIRETLS message may go over this connection: verified TLS
    /// (DANE or PKIX) and the server's REQUIRETLS (RFC 8689 §4.2.1).
    fn requiretls_ready(&self) -> Result<(), HopError> {
        let who = self.who();
        match &self.tls {
            None => Err(HopError::requiretls(format!("no TLS with host {who}"))),
            Some(t) if t.dane.is_none() && !t.verified => Err(HopError::requiretls(format!(
                "the certificate of host {who} is not verified: {}",
                t.verify_error.clone().unwrap_or_default()
            ))),
            Some(_) if !self.has(EXT_REQUIRE_TLS) => Err(HopError::requiretls(format!(
                "host {who} does not offer REQUIRETLS"
            ))),
            Some(_) => Ok(()),
        }
    }

    async fn starttls(
        &mut self,
        policy: TlsPolicy,
        dane: Option<&DaneCheck>,
    ) -> Result<(), HopError> {
        let t = self.settings.timeouts;
        let reply = self
            .command("STARTTLS\r\n", t.command)
            .await
            .map_err(|e| HopError::temp(e.text))?;
        if reply.code != 220 {
            let mut e = self.hop_error(&reply, "STARTTLS");
            e.tls_failed = true;
            return Err(e);
        }
        // Anything the server sent after its 220 in plaintext is not to be
        // trusted (the client side of CVE-2011-0411).
        self.input.clear();
        self.handshake(policy, dane).await?;
        // RFC 3207 §4.2: forget what was learned before TLS.
        self.hello().await
    }

    /// The TLS handshake on the TCP stream, and the certificate judged as
    /// `policy` says (by its TLSA records when `dane` is given).
    async fn handshake(
        &mut self,
        policy: TlsPolicy,
        dane: Option<&DaneCheck>,
    ) -> Result<(), HopError> {
        let t = self.settings.timeouts;
        let Peer::Tcp(addr) = self.peer.clone() else {
            self.usable = false;
            return Err(HopError::temp("no TLS over a Unix socket".into()));
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(HopError::temp("TLS already active".into()));
        };
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::from(addr.ip()));
        let connector = TlsConnector::from(self.settings.tls.config.clone());
        let tls = match tokio::time::timeout(t.command, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.usable = false;
                return Err(HopError {
                    reply: Reply::new(
                        451,
                        "4.7.5",
                        format!("TLS handshake with {} failed: {e}", self.who()),
                    ),
                    tls_failed: true,
                    tls_failure: Some(TlsFailure::ValidationFailure),
                });
            }
            Err(_) => {
                self.usable = false;
                return Err(HopError {
                    reply: Reply::new(
                        451,
                        "4.7.5",
                        format!("TLS handshake with {} timed out", self.who()),
                    ),
                    tls_failed: true,
                    tls_failure: Some(TlsFailure::ValidationFailure),
                });
            }
        };
        let (version, cipher) = describe(tls.get_ref().1);
        let verified = self.settings.tls.verify(tls.get_ref().1, &self.host);
        let matched = dane.map(|d| {
            let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
            d.verify(chain, rustls::pki_types::UnixTime::now())
        });
        self.stream = Stream::Tls(Box::new(tls));
        let info = TlsInfo {
            version,
            cipher,
            verified: verified.is_ok(),
            verify_error: verified.err(),
            dane: matched.as_ref().and_then(|m| m.as_ref().ok().cloned()),
        };
        if let Some(Err(why)) = matched {
            self.usable = false;
            return Err(HopError::tls(
                format!(
                    "DANE: the certificate of {} does not match its TLSA records: {why}",
                    self.who()
                ),
                TlsFailure::ValidationFailure,
            ));
        }
        if dane.is_none() && matches!(policy, TlsPolicy::Verify | TlsPolicy::Dane) && !info.verified
        {
            self.usable = false;
            let error = info.verify_error.clone().unwrap_or_default();
            return Err(HopError::tls(
                format!("certificate of {} did not verify: {error}", self.who()),
                TlsFailure::of_certificate(&error),
            ));
        }
        self.tls = Some(info);
        Ok(())
    }

    /// RSET before reusing the connection for another message.
    pub async fn reset(&mut self) -> bool {
        let limit = self.settings.timeouts.command.min(RSET_TIMEOUT);
        let ok = matches!(self.command("RSET\r\n", limit).await, Ok(r) if r.code == 250);
        self.usable = ok;
        ok
    }

    /// Say goodbye (best effort).
    pub async fn quit(mut self) {
        let _ = self.command("QUIT\r\n", Duration::from_secs(5)).await;
    }
}

/// Connect with a time limit; failures are temporary.
async fn connect<S>(
    limit: Duration,
    who: &str,
    connecting: impl Future<Output = std::io::Result<S>>,
) -> Result<S, HopError> {
    match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(HopError::temp(format!("connect to {who}: {e}"))),
        Err(_) => Err(HopError::temp(format!("connect to {who}: timed out"))),
    }
}
