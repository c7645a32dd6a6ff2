//! One persistent SMTP client session of `loadgen`: greeting and EHLO once,
//! then MAIL/RCPT/DATA per message, each command awaited before the next
//! (no PIPELINING), the body written as prepared by `body`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What became of one message.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The reply to the final dot was 2xx, after this long.
    Accepted(Duration),
    /// MAIL, RCPT, DATA or the final dot had a reply that was not
    /// 2xx/354: that reply's last line.
    Refused(String),
}

pub struct Session {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    line: String,
    reply_by: Instant,
}

/// A message of about `size` octets: a few headers, then lines of 76 `x`
/// (no line starts with a dot), ending without the final CRLF (the caller
/// writes `\r\n.\r\n`).
pub fn body(size: usize) -> Vec<u8> {
    let mut m = b"From: <s@bench.test>\r\nTo: <u@sink.test>\r\nSubject: loadgen\r\n\r\n".to_vec();
    let line = [b'x'; 76];
    while m.len() + 78 <= size.saturating_sub(2) {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    let rest = size.saturating_sub(m.len() + 2).max(1);
    m.extend(std::iter::repeat_n(b'y', rest));
    m
}

impl Session {
    /// Connects, reads the greeting and says EHLO.
    pub async fn open(server: SocketAddr, helo: &str, reply_by: Instant) -> io::Result<Session> {
        let stream = tokio::time::timeout_at(reply_by, TcpStream::connect(server))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut s = Session {
            rd: BufReader::new(rd),
            wr,
            line: String::new(),
            reply_by,
        };
        let greeting = s.reply().await?;
        if greeting != 220 {
            return Err(other(format!("greeting {greeting}: {}", s.line.trim_end())));
        }
        let ehlo = s.command(format!("EHLO {helo}\r\n").as_bytes()).await?;
        if ehlo != 250 {
            return Err(other(format!("EHLO {ehlo}: {}", s.line.trim_end())));
        }
        Ok(s)
    }

    /// Sends one message. An I/O error ends the session; a refusal does
    /// not (the transaction is reset).
    pub async fn send(&mut self, from: &str, to: &str, body: &[u8]) -> io::Result<Outcome> {
        let mail = self
            .command(format!("MAIL FROM:<{from}>\r\n").as_bytes())
            .await?;
        if !(200..300).contains(&mail) {
            return self.refused("MAIL").await;
        }
        let rcpt = self
            .command(format!("RCPT TO:<{to}>\r\n").as_bytes())
            .await?;
        if !(200..300).contains(&rcpt) {
            return self.refused("RCPT").await;
        }
        if self.command(b"DATA\r\n").await? != 354 {
            return self.refused("DATA").await;
        }
        self.wr.write_all(body).await?;
        self.wr.write_all(b"\r\n.\r\n").await?;
        let sent = Instant::now();
        let code = self.reply().await?;
        let took = sent.elapsed();
        if (200..300).contains(&code) {
            Ok(Outcome::Accepted(took))
        } else {
            Ok(Outcome::Refused(format!(
                "end of data: {}",
                self.line.trim_end()
            )))
        }
    }

    /// QUIT, best effort (the figures are already taken).
    pub async fn quit(mut self) {
        let _ = self.command(b"QUIT\r\n").await;
    }

    async fn refused(&mut self, what: &str) -> io::Result<Outcome> {
        let reply = format!("{what}: {}", self.line.trim_end());
        self.command(b"RSET\r\n").await?;
        Ok(Outcome::Refused(reply))
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<u16> {
        self.wr.write_all(line).await?;
        self.reply().await
    }

    /// Reads one (possibly multi-line) reply; its code. `self.line` keeps
    /// the last line for messages.
    async fn reply(&mut self) -> io::Result<u16> {
        loop {
            self.line.clear();
            let n = tokio::time::timeout_at(self.reply_by, self.rd.read_line(&mut self.line))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "no reply before the deadline")
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            let b = self.line.as_bytes();
            let code = self
                .line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| other(format!("not an SMTP reply: {:?}", self.line.trim_end())))?;
            if b.get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_size_asked_for_and_no_dot_lines() {
        for size in [200, 1024, 10240, 10241] {
            let b = body(size);
            assert_eq!(b.len() + 2, size, "size {size}");
            assert!(!b.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
        }
    }
}
