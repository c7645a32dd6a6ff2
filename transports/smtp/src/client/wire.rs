//! The wire side of an outbound connection: writing commands and reading
//! replies, each within one deadline for the whole step (however slowly
//! the server trickles), with reply lines and replies bounded in size;
//! naming the step that timed out. Parsing a reply and checking a command
//! line are pure, in faxmta-proto (`reply.rs`, `command.rs`).

use super::Connection;
pub(crate) use faxmta_proto::command::check_line;
use faxmta_proto::command::step;
pub use faxmta_proto::reply::parse_reply;
use faxmta_queue::Reply;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest reply line taken (RFC 5321 §4.5.3.1.5 allows 512 octets;
/// real servers send longer texts, none this long).
pub const MAX_REPLY_LINE: usize = 4096;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 200;
impl Connection {
    /// Send a line (or several) and read one reply. A line with a CR,
    /// LF or NUL inside is never sent ([`check_line`]).
    pub(crate) async fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, Reply> {
        check_line(line.as_bytes())?;
        self.write(line.as_bytes(), timeout).await?;
        self.read_reply(timeout).await
    }

    pub(crate) async fn exchange(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, Reply> {
        check_line(line.as_bytes())?;
        self.write(line.as_bytes(), timeout).await?;
        self.read_lines(timeout).await
    }

    /// Write all of `bytes` within `timeout` (one deadline for the whole
    /// write, however slowly the server takes it).
    pub(crate) async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), Reply> {
        let host = self.who();
        let sending = step(bytes);
        let Some(io) = self.stream.io() else {
            self.usable = false;
            return Err(Reply::new(
                451,
                "4.4.2",
                format!("lost connection with {host} while sending {sending}"),
            ));
        };
        let result = tokio::time::timeout(timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await;
        self.awaiting = format!("the reply to {sending}");
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.usable = false;
                Err(Reply::new(
                    451,
                    "4.4.2",
                    format!("lost connection with {host} while sending {sending}: {e}"),
                ))
            }
            Err(_) => {
                self.usable = false;
                Err(Reply::new(
                    451,
                    "4.4.2",
                    format!(
                        "conversation with {host} timed out while sending {sending} ({}s)",
                        timeout.as_secs()
                    ),
                ))
            }
        }
    }

    /// Read one reply within `timeout`. A 421 means the server is closing
    /// the connection (RFC 5321 §3.8): it is not used again.
    pub(crate) async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Reply> {
        let reply = parse_reply(&self.read_lines(timeout).await?);
        if reply.code == 421 {
            self.usable = false;
        }
        Ok(reply)
    }

    /// Read the lines of one reply (up to the line whose fourth octet is
    /// not `-`), all of it within `timeout`; lines longer than
    /// [`MAX_REPLY_LINE`] or more than [`MAX_REPLY_LINES`] of them end the
    /// connection.
    async fn read_lines(&mut self, timeout: Duration) -> Result<Vec<String>, Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            while let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
                if pos >= MAX_REPLY_LINE {
                    return Err(
                        self.broken(format!("a reply line longer than {MAX_REPLY_LINE} octets"))
                    );
                }
                let raw: Vec<u8> = self.input.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return Ok(lines);
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err(
                        self.broken(format!("a reply of more than {MAX_REPLY_LINES} lines"))
                    );
                }
            }
            if self.input.len() >= MAX_REPLY_LINE {
                return Err(
                    self.broken(format!("a reply line longer than {MAX_REPLY_LINE} octets"))
                );
            }
            let mut chunk = [0u8; 4096];
            let host = self.who();
            let awaiting = self.awaiting.clone();
            let Some(io) = self.stream.io() else {
                self.usable = false;
                return Err(Reply::new(
                    451,
                    "4.4.2",
                    format!("lost connection with {host} while receiving {awaiting}"),
                ));
            };
            // Never more than one line's worth in the buffer.
            let room = (MAX_REPLY_LINE - self.input.len()).min(chunk.len());
            match tokio::time::timeout_at(deadline, io.read(&mut chunk[..room])).await {
                Ok(Ok(0)) => {
                    self.usable = false;
                    return Err(Reply::new(
                        451,
                        "4.4.2",
                        format!("lost connection with {host} while receiving {awaiting}"),
                    ));
                }
                Ok(Ok(n)) => self.input.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    self.usable = false;
                    return Err(Reply::new(
                        451,
                        "4.4.2",
                        format!("lost connection with {host} while receiving {awaiting}: {e}"),
                    ));
                }
                Err(_) => {
                    self.usable = false;
                    return Err(Reply::new(
                        451,
                        "4.4.2",
                        format!(
                            "conversation with {host} timed out while receiving {awaiting} ({}s)",
                            timeout.as_secs()
                        ),
                    ));
                }
            }
        }
    }

    /// Say what the next reply answers (after a pipelined batch).
    pub(crate) fn awaiting(&mut self, what: &str) {
        self.awaiting = format!("the reply to {what}");
    }

    /// The connection is no longer usable: the server sent `what`.
    fn broken(&mut self, what: String) -> Reply {
        self.usable = false;
        self.input.clear();
        Reply::new(
            451,
            "4.5.0",
            format!("host {} sent {what} in {}", self.who(), self.awaiting),
        )
    }
}

/// Whether `reply` is one of the client's own, saying that the host did
/// not answer in time (connect, TLS handshake, a reply or a write); a
/// server's own words are always quoted after "host … said".
pub fn is_timeout(reply: &Reply) -> bool {
    let t = reply.text.as_str();
    (t.starts_with("conversation with ") && t.contains(" timed out while "))
        || (t.starts_with("connect to ") && t.ends_with(": timed out"))
        || (t.starts_with("TLS handshake with ") && t.ends_with(" timed out"))
}
