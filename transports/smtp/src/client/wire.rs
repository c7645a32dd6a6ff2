//! The wire side of an outbound connection: writing commands and reading
//! replies, each within one deadline for the whole step (however slowly
//! the server trickles), with reply lines and replies bounded in size;
//! parsing replies; naming the step that timed out.

use super::Connection;
use faxmta_queue::Reply;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest reply line taken (RFC 5321 §4.5.3.1.5 allows 512 octets;
/// real servers send longer texts, none this long).
pub const MAX_REPLY_LINE: usize = 4096;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 200;
/// Parse a reply's lines into a [`Reply`]: code, enhanced status (from the
/// text, or `X.0.0` from the code) and the text of all lines.
pub fn parse_reply(lines: &[String]) -> Reply {
    let code: u16 = lines
        .first()
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.get(4..).unwrap_or("").trim())
        .collect();
    let mut text = texts.join(" ");
    let class = code / 100;
    let mut status = format!("{class}.0.0");
    if let Some((first, rest)) = text.split_once(' ') {
        let parts: Vec<&str> = first.split('.').collect();
        if parts.len() == 3
            && parts[0] == class.to_string()
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            status = first.to_string();
            text = rest.to_string();
        }
    }
    Reply::new(code, &status, text)
}

/// Whether `line` may go on the wire as one command: it ends in CRLF,
/// and has no other CR or LF, no NUL and no other control character
/// (tab aside) — which would end the command early and start one the
/// next hop takes for ours (a recipient of its own, say). `Err` is the
/// client's own permanent failure; nothing was sent. A pipelined batch
/// is checked line by line before it is joined.
pub(crate) fn check_line(line: &[u8]) -> Result<(), Reply> {
    match line.strip_suffix(b"\r\n") {
        Some(text)
            if !text.is_empty() && text.iter().all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t') =>
        {
            Ok(())
        }
        _ => Err(refused(line)),
    }
}

fn refused(bytes: &[u8]) -> Reply {
    let shown: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    Reply::new(
        554,
        "5.5.2",
        format!(
            "refused to send {}: a command with a CR, LF, NUL or other control character in it ({shown:?})",
            step(bytes)
        ),
    )
}

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

/// What writing `bytes` is, for messages: the command's verb ("MAIL
/// FROM"), the message data or the end of the data.
fn step(bytes: &[u8]) -> &'static str {
    if bytes == b".\r\n" || bytes.ends_with(b"\r\n.\r\n") {
        return "end of DATA";
    }
    let word: Vec<u8> = bytes
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    match word.as_slice() {
        b"MAIL" => "MAIL FROM",
        b"RCPT" => "RCPT TO",
        b"EHLO" => "EHLO",
        b"HELO" => "HELO",
        b"LHLO" => "LHLO",
        b"DATA" => "DATA",
        b"RSET" => "RSET",
        b"QUIT" => "QUIT",
        b"STARTTLS" => "STARTTLS",
        b"AUTH" => "AUTH",
        b"ETRN" => "ETRN",
        // AUTH LOGIN's base64 lines.
        _ if bytes.len() <= 512
            && bytes.strip_suffix(b"\r\n").is_some_and(|b| {
                b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c))
            }) =>
        {
            "AUTH data"
        }
        _ => "message data",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_with_cr_lf_or_nul_inside_are_refused() {
        for ok in [&b"MAIL FROM:<a@b.test> SIZE=10\r\n"[..], b"dGVzdA==\r\n"] {
            assert_eq!(check_line(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            &b"MAIL FROM:<a@b.test\r\nRCPT TO:<x@y.test>>\r\n"[..],
            b"RCPT TO:<a@b.test\nRCPT TO:<x@y.test>>\r\n",
            b"RCPT TO:<a@b.test\rX>\r\n",
            b"RCPT TO:<a\0@b.test>\r\n",
            b"MAIL FROM:<a@b.test>",
            b"MAIL FROM:<a@b.test>\n",
            b"\r\n",
            b"MAIL FROM:<a@b.test>\r\n\r\nDATA\r\n",
        ] {
            let e = check_line(bad).unwrap_err();
            assert_eq!((e.code, e.status.as_str()), (554, "5.5.2"), "{bad:?}");
            assert!(e.text.contains("CR, LF, NUL"), "{}", e.text);
        }
    }

    #[test]
    fn replies_are_parsed_with_enhanced_status() {
        let r = parse_reply(&lines(&["550-5.1.1 no such", "550 5.1.1 user here"]));
        assert_eq!(
            (r.code, r.status.as_str(), r.text.as_str()),
            (550, "5.1.1", "no such 5.1.1 user here")
        );
        let r = parse_reply(&lines(&["421 closing"]));
        assert_eq!(
            (r.code, r.status.as_str(), r.text.as_str()),
            (421, "4.0.0", "closing")
        );
        // A status of the wrong class is text, not status.
        let r = parse_reply(&lines(&["250 5.1.1 odd"]));
        assert_eq!(r.status, "2.0.0");
        let r = parse_reply(&lines(&["garbage"]));
        assert_eq!(r.code, 0);
    }
}
