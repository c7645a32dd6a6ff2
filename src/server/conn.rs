//! One client connection's byte stream: plain TCP or TLS, an input buffer
//! that hands out lines and raw chunks, and an output buffer flushed only
//! when the session is about to wait for input (so pipelined commands get
//! their replies in one write, RFC 2920).
//!
//! Every wait for the client has a [`Deadline`] for the whole unit it
//! waits for (a command line, a message), not per read: a client that
//! trickles one byte at a time is cut all the same. Writing the replies
//! counts against the same deadline (a client that never reads cannot
//! hold the session either). While the server is under stress (see
//! `src/policy/limits.rs`) every deadline is shortened to the stress
//! timeout, also for sessions already waiting.
//!
//! An idle plain-TCP session holds no input buffer: it waits for the
//! socket to become readable, and only then reserves room to read into.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a STARTTLS handshake runs.
    Upgrading,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// What reading a command line gave.
pub enum Line {
    /// A complete line, terminator included.
    Complete(Vec<u8>),
    /// The line passed the limit; its bytes up to the next LF were skipped.
    TooLong,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    Timeout,
    Closed,
    Io(io::Error),
}

/// Room reserved for one read of message data.
const DATA_CHUNK: usize = 16 * 1024;
/// Room reserved for one read of command lines: small, so that a client
/// trickling a line holds little memory.
const LINE_CHUNK: usize = 1024;

/// Until when the server waits for a unit of input: `limit` after
/// `started` (or the stress timeout, when the server is under stress and
/// that is shorter), plus `extra` (what the data rate earned).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    limit: Duration,
    extra: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn new(limit: Duration) -> Self {
        Deadline {
            started: Instant::now(),
            limit,
            extra: Duration::ZERO,
        }
    }

    /// Grant one second more per `rate` octets of `received` (0: none).
    pub fn earn(&mut self, received: u64, rate: u64) {
        if rate > 0 {
            self.extra = Duration::from_secs_f64(received as f64 / rate as f64);
        }
    }

    /// The instant it falls, with or without stress.
    pub fn at(&self, stressed: bool, stress_timeout: Duration) -> Instant {
        let limit = if stressed {
            self.limit.min(stress_timeout)
        } else {
            self.limit
        };
        self.started + limit + self.extra
    }
}

/// A connection with its buffers.
pub struct Conn {
    pub stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Whether the server is under stress (`Limits::stress`).
    stress: watch::Receiver<bool>,
    stress_timeout: Duration,
}

impl Conn {
    pub fn new(stream: Stream, stress: watch::Receiver<bool>, stress_timeout: Duration) -> Self {
        Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            stress,
            stress_timeout,
        }
    }

    /// When `deadline` falls now.
    fn end(&self, deadline: &Deadline) -> Instant {
        deadline.at(*self.stress.borrow(), self.stress_timeout)
    }

    /// Queue a reply line for the next flush.
    pub fn queue(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
    }

    /// Write out every queued reply.
    async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            let out = std::mem::take(&mut self.output);
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Write out every queued reply before `deadline`.
    pub async fn flush_by(&mut self, deadline: &Deadline) -> Result<(), ReadError> {
        match tokio::time::timeout_at(self.end(deadline), self.flush()).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Bytes received but not used yet.
    pub fn buffered(&self) -> &[u8] {
        &self.input
    }

    /// Drop `n` bytes from the front of the input buffer.
    pub fn consume(&mut self, n: usize) {
        self.input.drain(..n.min(self.input.len()));
    }

    /// Throw away everything received but not used (after STARTTLS).
    pub fn discard_input(&mut self) -> usize {
        let n = self.input.len();
        self.input = Vec::new();
        n
    }

    /// Flush the replies, then read more input before `deadline`; the
    /// number of octets read. The deadline moves when the stress state
    /// changes during the wait.
    pub async fn fill(&mut self, deadline: &Deadline) -> Result<usize, ReadError> {
        self.fill_with(deadline, DATA_CHUNK).await
    }

    /// [`Conn::fill`], reading at most `chunk` octets at a time.
    async fn fill_with(&mut self, deadline: &Deadline, chunk: usize) -> Result<usize, ReadError> {
        self.flush_by(deadline).await?;
        loop {
            let end = self.end(deadline);
            let stress = &mut self.stress;
            let read = read_some(&mut self.stream, &mut self.input, chunk);
            tokio::select! {
                read = tokio::time::timeout_at(end, read) => return match read {
                    Err(_) => Err(ReadError::Timeout),
                    Ok(Err(e)) => Err(ReadError::Io(e)),
                    Ok(Ok(0)) => Err(ReadError::Closed),
                    Ok(Ok(n)) => Ok(n),
                },
                // Both reads are cancel-safe: nothing is lost by starting
                // over with the new deadline. (A closed channel cannot
                // happen while the limits live; then wait without it.)
                changed = stress.changed() => {
                    if changed.is_err() {
                        self.stress = watch::channel(false).1;
                    }
                }
            }
        }
    }

    /// The next command line, at most `max` bytes with its terminator,
    /// complete within `limit` from now.
    pub async fn read_line(&mut self, max: usize, limit: Duration) -> Result<Line, ReadError> {
        let deadline = Deadline::new(limit);
        let mut skipping = false;
        loop {
            if let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=pos).collect();
                if skipping || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete(line));
            }
            if self.input.len() > max {
                // Keep reading, but do not keep the bytes.
                skipping = true;
                self.input.clear();
            }
            if self.input.is_empty() {
                // Idle: give the buffer back while waiting.
                self.input = Vec::new();
            }
            self.fill_with(&deadline, LINE_CHUNK).await?;
        }
    }

    /// Hand the stream to a TLS handshake and take it back encrypted.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        let deadline = Deadline::new(timeout);
        self.flush_by(&deadline).await.map_err(|e| match e {
            ReadError::Io(e) => e,
            _ => io::Error::new(io::ErrorKind::TimedOut, "timed out writing to the client"),
        })?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = tokio::time::timeout_at(self.end(&deadline), acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}

/// Read what is there into `input`'s spare room. A plain socket is first
/// waited on without a buffer, so that an idle session holds none.
async fn read_some(stream: &mut Stream, input: &mut Vec<u8>, chunk: usize) -> io::Result<usize> {
    if let Stream::Plain(tcp) = stream {
        loop {
            tcp.readable().await?;
            input.reserve(chunk);
            match tcp.try_read_buf(input) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
    input.reserve(chunk);
    stream.read_buf(input).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_earns_time_by_the_rate_and_shrinks_under_stress() {
        let mut d = Deadline::new(Duration::from_secs(600));
        let stress = Duration::from_secs(10);
        assert_eq!(d.at(false, stress) - d.started, Duration::from_secs(600));
        assert_eq!(d.at(true, stress) - d.started, Duration::from_secs(10));
        // 5,000 octets at 500 a second: 10 s more, with or without stress.
        d.earn(5_000, 500);
        assert_eq!(d.at(false, stress) - d.started, Duration::from_secs(610));
        assert_eq!(d.at(true, stress) - d.started, Duration::from_secs(20));
        // No rate: no allowance.
        d.earn(1_000_000, 0);
        assert_eq!(d.at(false, stress) - d.started, Duration::from_secs(610));
        // The stress timeout never lengthens a shorter limit.
        let short = Deadline::new(Duration::from_secs(3));
        assert_eq!(
            short.at(true, stress) - short.started,
            Duration::from_secs(3)
        );
    }
}
