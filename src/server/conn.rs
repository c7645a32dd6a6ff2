//! One client connection's byte stream: plain TCP or TLS, an input buffer
//! that hands out lines and raw chunks, and an output buffer flushed only
//! when the session is about to wait for input (so pipelined commands get
//! their replies in one write, RFC 2920).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
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

/// A connection with its buffers.
pub struct Conn {
    pub stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Conn {
    pub fn new(stream: Stream) -> Self {
        Conn {
            stream,
            input: Vec::with_capacity(4096),
            output: Vec::with_capacity(1024),
        }
    }

    /// Queue a reply line for the next flush.
    pub fn queue(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
    }

    /// Write out every queued reply.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            let out = std::mem::take(&mut self.output);
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
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
        self.input.clear();
        n
    }

    /// Flush the replies, then read more input within `timeout`.
    pub async fn fill(&mut self, timeout: Duration) -> Result<(), ReadError> {
        self.flush().await.map_err(ReadError::Io)?;
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, self.stream.read(&mut chunk)).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Ok(Ok(0)) => Err(ReadError::Closed),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// The next command line, at most `max` bytes with its terminator.
    pub async fn read_line(&mut self, max: usize, timeout: Duration) -> Result<Line, ReadError> {
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
            self.fill(timeout).await?;
        }
    }

    /// Hand the stream to a TLS handshake and take it back encrypted.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        self.flush().await?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}
