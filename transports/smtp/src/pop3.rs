//! A small POP3 client (RFC 1939, STLS of RFC 2595) for the POP3 fax
//! gateway: fetch fax requests from a mailbox hosted elsewhere.
//!
//! What it speaks: the greeting, STLS or implicit TLS (port 995),
//! USER/PASS, STAT, LIST, UIDL, RETR (multi-line, dot-unstuffed), DELE and
//! QUIT. Every read has a timeout, every line a length limit and every
//! retrieved message a size limit, so a misbehaving server can neither
//! hang the gateway nor make it grow without bound. No mailbox state is
//! kept here: the caller decides what to do with each message and when
//! to delete it (deletions take effect at QUIT, RFC 1939 §6).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Tls;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Tls {
    /// Plain text throughout (the password too).
    None,
    /// Plain connection, then STLS before USER; STLS must succeed.
    Starttls,
    /// TLS from the first byte (pop3s, port 995).
    Implicit,
}

/// Limits and TLS of one connection.
#[derive(Debug, Clone)]
pub struct Pop3Settings {
    pub tls: Pop3Tls,
    /// Check the server's certificate against the web PKI roots for the
    /// host name; otherwise any certificate is taken.
    pub verify_certificate: bool,
    pub connect_timeout: Duration,
    /// How long one reply (or one read inside a message) may take.
    pub command_timeout: Duration,
    /// The longest line accepted (RFC 1939 allows 512 octets for replies;
    /// message lines may be longer), CRLF included.
    pub max_line: usize,
    /// The largest message RETR accepts, after unstuffing.
    pub max_message: usize,
}

impl Default for Pop3Settings {
    fn default() -> Self {
        Pop3Settings {
            tls: Pop3Tls::Starttls,
            verify_certificate: true,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            max_line: 64 * 1024,
            max_message: 20 * 1024 * 1024,
        }
    }
}

/// Why a POP3 exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("the server closed the connection during {0}")]
    Closed(String),
    /// A `-ERR` (or otherwise unexpected) reply; the text is the server's.
    #[error("{command}: {reply}")]
    Refused { command: String, reply: String },
    #[error("{0}: a line longer than the limit")]
    LineTooLong(String),
    /// A message (number; 0: a listing) over the limit (octets).
    #[error("message {0} is larger than the limit ({1} octets)")]
    TooBig(u32, usize),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}: malformed reply {1:?}")]
    Malformed(String, String),
}

type Result<T> = std::result::Result<T, Pop3Error>;

/// How much of an answer over the limit `limit` is read (and dropped) to
/// keep the session: four times the limit and a mebibyte more. Past it,
/// the session is closed.
fn drain_limit(limit: usize) -> usize {
    limit.saturating_mul(4).saturating_add(1 << 20)
}

/// The byte stream under the session: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One POP3 session.
pub struct Pop3Client {
    stream: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    settings: Pop3Settings,
    /// Whether the session runs over TLS.
    pub tls_active: bool,
}

impl Pop3Client {
    /// Connect to `addr` (`host`: the name for TLS), read the greeting,
    /// and set up TLS as `settings.tls` says.
    pub async fn connect(
        host: &str,
        addr: SocketAddr,
        settings: &Pop3Settings,
        tls: &Tls,
    ) -> Result<Pop3Client> {
        let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Pop3Error::Timeout(format!("the connection to {addr}")))?
            .map_err(|source| Pop3Error::Io {
                what: format!("connect to {addr}"),
                source,
            })?;
        let mut client = Pop3Client {
            stream: Some(Box::new(tcp)),
            buf: Vec::new(),
            settings: settings.clone(),
            tls_active: false,
        };
        if settings.tls == Pop3Tls::Implicit {
            client.start_tls(host, tls).await?;
        }
        client.expect_ok("the greeting").await?;
        if settings.tls == Pop3Tls::Starttls {
            client.command("STLS", "STLS").await?;
            client.start_tls(host, tls).await?;
        }
        Ok(client)
    }

    /// A session over an established stream whose greeting is still to
    /// be read (no TLS): for tests and unusual transports.
    pub async fn over(stream: Box<dyn Io>, settings: &Pop3Settings) -> Result<Pop3Client> {
        let mut client = Pop3Client {
            stream: Some(stream),
            buf: Vec::new(),
            settings: settings.clone(),
            tls_active: false,
        };
        client.expect_ok("the greeting").await?;
        Ok(client)
    }

    async fn start_tls(&mut self, host: &str, tls: &Tls) -> Result<()> {
        if !self.buf.is_empty() {
            // Bytes sent before the handshake could be injected plain text.
            return Err(Pop3Error::Tls("data before the TLS handshake".into()));
        }
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| Pop3Error::Tls(format!("bad server name {host}: {e}")))?;
        let inner = self
            .stream
            .take()
            .ok_or_else(|| Pop3Error::Tls("no connection".into()))?;
        let connector = TlsConnector::from(tls.config.clone());
        let stream = tokio::time::timeout(
            self.settings.command_timeout,
            connector.connect(name, inner),
        )
        .await
        .map_err(|_| Pop3Error::Timeout("the TLS handshake".into()))?
        .map_err(|e| Pop3Error::Tls(format!("handshake with {host}: {e}")))?;
        if self.settings.verify_certificate {
            tls.verify(stream.get_ref().1, host)
                .map_err(|e| Pop3Error::Tls(format!("certificate of {host}: {e}")))?;
        }
        self.stream = Some(Box::new(stream));
        self.tls_active = true;
        Ok(())
    }

    fn stream(&mut self) -> Result<&mut Box<dyn Io>> {
        self.stream
            .as_mut()
            .ok_or_else(|| Pop3Error::Closed("a previous failure".into()))
    }

    /// Read one line (without its CRLF or LF).
    async fn line(&mut self, what: &str) -> Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                if end >= self.settings.max_line {
                    self.stream = None;
                    return Err(Pop3Error::LineTooLong(what.to_string()));
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() >= self.settings.max_line {
                self.stream = None;
                return Err(Pop3Error::LineTooLong(what.to_string()));
            }
            let timeout = self.settings.command_timeout;
            let mut chunk = [0u8; 8192];
            let stream = self.stream()?;
            let n = tokio::time::timeout(timeout, stream.read(&mut chunk))
                .await
                .map_err(|_| Pop3Error::Timeout(what.to_string()))?
                .map_err(|source| Pop3Error::Io {
                    what: what.to_string(),
                    source,
                })?;
            if n == 0 {
                self.stream = None;
                return Err(Pop3Error::Closed(what.to_string()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read a status line: the text after `+OK`, or [`Pop3Error::Refused`].
    async fn expect_ok(&mut self, what: &str) -> Result<String> {
        let line = self.line(what).await?;
        let text = String::from_utf8_lossy(&line).into_owned();
        match text.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(Pop3Error::Refused {
                command: what.to_string(),
                reply: text,
            }),
        }
    }

    async fn send(&mut self, line: &str, what: &str) -> Result<()> {
        let timeout = self.settings.command_timeout;
        let data = format!("{line}\r\n");
        let stream = self.stream()?;
        tokio::time::timeout(timeout, async {
            stream.write_all(data.as_bytes()).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Pop3Error::Timeout(what.to_string()))?
        .map_err(|source| Pop3Error::Io {
            what: what.to_string(),
            source,
        })
    }

    /// Send `line`, expect `+OK`; `what` names it in errors (never the
    /// password itself).
    async fn command(&mut self, line: &str, what: &str) -> Result<String> {
        self.send(line, what).await?;
        self.expect_ok(what).await
    }

    /// The lines of a multi-line answer up to the lone dot, unstuffed;
    /// at most `limit` octets in all (lines counted with CRLF).
    ///
    /// An answer over the limit is read to its end and dropped, so the
    /// session goes on (the messages deleted so far are deleted at QUIT,
    /// and the others can still be fetched): a server's LIST size is
    /// only an estimate, and one message larger than it said must not
    /// cost the rest. Only an answer that goes on past [`drain_limit`]
    /// closes the session.
    async fn multiline(&mut self, what: &str, n: u32, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        let mut total = 0usize;
        loop {
            let line = self.line(what).await?;
            if line == b"." {
                break;
            }
            total = total.saturating_add(line.len() + 2);
            if total > limit {
                // Read on to the end, keeping nothing.
                lines = Vec::new();
                if total > drain_limit(limit) {
                    self.stream = None;
                    return Err(Pop3Error::TooBig(n, limit));
                }
                continue;
            }
            let line = match line.first() {
                Some(b'.') => line[1..].to_vec(),
                _ => line,
            };
            lines.push(line);
        }
        if total > limit {
            return Err(Pop3Error::TooBig(n, limit));
        }
        Ok(lines)
    }

    /// USER and PASS.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        if user.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
            return Err(Pop3Error::Malformed(
                "USER/PASS".into(),
                "line break".into(),
            ));
        }
        self.command(&format!("USER {user}"), "USER").await?;
        self.command(&format!("PASS {password}"), "PASS").await?;
        Ok(())
    }

    /// STAT: number of messages and their total size.
    pub async fn stat(&mut self) -> Result<(u32, u64)> {
        let text = self.command("STAT", "STAT").await?;
        let mut words = text.split_whitespace();
        match (
            words.next().and_then(|w| w.parse().ok()),
            words.next().and_then(|w| w.parse().ok()),
        ) {
            (Some(n), Some(size)) => Ok((n, size)),
            _ => Err(Pop3Error::Malformed("STAT".into(), text)),
        }
    }

    /// `(number, second word)` pairs of a LIST or UIDL answer.
    async fn listing(&mut self, command: &str) -> Result<Vec<(u32, String)>> {
        self.command(command, command).await?;
        let limit = self.settings.max_message;
        let mut out = Vec::new();
        for line in self.multiline(command, 0, limit).await? {
            let text = String::from_utf8_lossy(&line).into_owned();
            let mut words = text.split_whitespace();
            match (words.next().and_then(|w| w.parse().ok()), words.next()) {
                (Some(n), Some(value)) => out.push((n, value.to_string())),
                _ => return Err(Pop3Error::Malformed(command.into(), text)),
            }
        }
        Ok(out)
    }

    /// LIST: each message's number and size.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>> {
        self.listing("LIST")
            .await?
            .into_iter()
            .map(|(n, size)| {
                size.parse()
                    .map(|s| (n, s))
                    .map_err(|_| Pop3Error::Malformed("LIST".into(), size))
            })
            .collect()
    }

    /// UIDL: each message's number and unique id.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>> {
        self.listing("UIDL").await
    }

    /// RETR: the message, dot-unstuffed, lines ending in CRLF.
    pub async fn retr(&mut self, n: u32) -> Result<Vec<u8>> {
        let what = format!("RETR {n}");
        self.command(&what, &what).await?;
        let limit = self.settings.max_message;
        let lines = self.multiline(&what, n, limit).await?;
        let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for line in lines {
            out.extend_from_slice(&line);
            out.extend_from_slice(b"\r\n");
        }
        Ok(out)
    }

    /// DELE: mark a message deleted (it goes at QUIT).
    pub async fn dele(&mut self, n: u32) -> Result<()> {
        let what = format!("DELE {n}");
        self.command(&what, &what).await.map(|_| ())
    }

    /// Whether the session can still be used (an error that left the
    /// stream in an unknown state closes it).
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// QUIT: end the session; the server deletes the marked messages.
    pub async fn quit(mut self) -> Result<()> {
        self.command("QUIT", "QUIT").await.map(|_| ())
    }
}

#[cfg(test)]
mod tests;
