//! The client side of hfaxd's client-server protocol (HylaFAX 6.0, port
//! 4559): FTP-like commands on a control connection, replies of a 3-digit
//! code with `NNN-` continuation lines, and passive (`PASV`) data
//! connections for `STOT`, `RETR` and `LIST`. Every read, write and
//! connect is bounded by the client's timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The longest reply line we accept, and the most lines of one reply.
const MAX_LINE: usize = 8192;
const MAX_LINES: usize = 10_000;

/// A protocol error, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: the server replied {reply}")]
    Refused { what: String, reply: Reply },
    #[error("{what}: bad reply: {detail}")]
    Bad { what: String, detail: String },
}

/// One reply: its code and its text lines (the code and the `-` or space
/// after it removed from the first and last line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the first line.
    pub fn text(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or("")
    }

    /// 1xx, 2xx, 3xx: not an error.
    pub fn positive(&self) -> bool {
        self.code < 400
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{} {}\"", self.code, self.lines.join(" / "))
    }
}

/// What a line of a reply is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `NNN text`: the last line of a reply.
    Last(u16, &'a str),
    /// `NNN-text`: the first line of a multi-line reply.
    First(u16, &'a str),
    /// Any other line inside a multi-line reply.
    Inner(&'a str),
}

/// Classifies one reply line (without its CRLF).
pub fn classify(line: &str) -> Line<'_> {
    let b = line.as_bytes();
    if b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit) {
        let code =
            u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
        match b.get(3) {
            None => return Line::Last(code, ""),
            Some(b' ') => return Line::Last(code, &line[4..]),
            Some(b'-') => return Line::First(code, &line[4..]),
            Some(_) => {}
        }
    }
    Line::Inner(line)
}

/// Parses a whole reply from its lines; `Err` while it is incomplete or
/// when it is malformed (a `Last` line of another code ends nothing).
pub fn parse_reply<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Reply, String> {
    let mut start: Option<u16> = None;
    let mut out = Vec::new();
    for line in lines {
        match (start, classify(line)) {
            (None, Line::Last(code, text)) => {
                return Ok(Reply {
                    code,
                    lines: vec![text.to_owned()],
                })
            }
            (None, Line::First(code, text)) => {
                start = Some(code);
                out.push(text.to_owned());
            }
            (None, Line::Inner(l)) => return Err(format!("a reply starts with {l:?}")),
            (Some(code), Line::Last(c, text)) if c == code => {
                out.push(text.to_owned());
                return Ok(Reply { code, lines: out });
            }
            (Some(_), _) => out.push(line.to_owned()),
        }
    }
    Err("the reply is incomplete".into())
}

/// The address in a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply.
pub fn parse_pasv(text: &str) -> Option<SocketAddr> {
    let open = text.find('(')?;
    let close = open + text[open..].find(')')?;
    let n: Vec<u8> = text[open + 1..close]
        .split(',')
        .map(|s| s.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    if n.len() != 6 {
        return None;
    }
    let ip = IpAddr::from([n[0], n[1], n[2], n[3]]);
    Some(SocketAddr::new(ip, u16::from(n[4]) << 8 | u16::from(n[5])))
}

/// The server file in `150 FILE: /tmp/doc123.tif (Opening …)` or
/// `226 Transfer complete (FILE: /tmp/doc123.tif).`
pub fn parse_file(text: &str) -> Option<String> {
    let rest = &text[text.find("FILE: ")? + 6..];
    let name = rest.split_whitespace().next()?;
    let name = name.trim_end_matches(['.', ')']);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The job id in `200 New job created: jobid: 11741 groupid: 11741.`
pub fn parse_jobid(text: &str) -> Option<u32> {
    let rest = &text[text.find("jobid:")? + 6..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches('.')
        .parse()
        .ok()
}

/// Quotes an argument the way hfaxd's parser reads strings.
pub fn quote(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    format!("\"{clean}\"")
}

/// A logged-in control connection.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    timeout: Duration,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(host: &str, port: u16, io: Duration) -> Result<Client, ProtocolError> {
        let what = format!("connecting to hfaxd at {host}:{port}");
        let stream = bounded(&what, io, TcpStream::connect((host, port))).await?;
        let peer = stream.peer_addr().map_err(|source| ProtocolError::Io {
            what: what.clone(),
            source,
        })?;
        let (r, w) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(r),
            writer: w,
            peer,
            timeout: io,
        };
        let greeting = client.read_reply(&what).await?;
        if greeting.code != 220 {
            return Err(ProtocolError::Refused {
                what,
                reply: greeting,
            });
        }
        Ok(client)
    }

    /// `USER`, then `PASS` if asked for (331), then `ADMIN` if given.
    pub async fn login(
        &mut self,
        user: &str,
        password: Option<&str>,
        admin: Option<&str>,
    ) -> Result<(), ProtocolError> {
        let reply = self.command(&format!("USER {user}")).await?;
        match reply.code {
            230 => {}
            331 => {
                let pass = password.unwrap_or("");
                self.expect_hidden(&format!("PASS {pass}"), "PASS ****", &[230])
                    .await?;
            }
            _ => {
                return Err(ProtocolError::Refused {
                    what: format!("logging in as {user}"),
                    reply,
                })
            }
        }
        if let Some(admin) = admin {
            self.expect_hidden(&format!("ADMIN {admin}"), "ADMIN ****", &[230])
                .await?;
        }
        Ok(())
    }

    /// Sends a command and reads its reply, whatever the code.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ProtocolError> {
        self.send_line(line, line).await?;
        self.read_reply(line).await
    }

    /// Sends a command and requires one of `codes`.
    pub async fn expect(&mut self, line: &str, codes: &[u16]) -> Result<Reply, ProtocolError> {
        self.expect_hidden(line, line, codes).await
    }

    async fn expect_hidden(
        &mut self,
        line: &str,
        shown: &str,
        codes: &[u16],
    ) -> Result<Reply, ProtocolError> {
        self.send_line(line, shown).await?;
        let reply = self.read_reply(shown).await?;
        if codes.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(ProtocolError::Refused {
                what: shown.to_owned(),
                reply,
            })
        }
    }

    async fn send_line(&mut self, line: &str, shown: &str) -> Result<(), ProtocolError> {
        if line.contains(['\r', '\n']) {
            return Err(ProtocolError::Bad {
                what: shown.to_owned(),
                detail: "a line break in a command".into(),
            });
        }
        let data = format!("{line}\r\n");
        bounded(shown, self.timeout, self.writer.write_all(data.as_bytes())).await
    }

    async fn read_reply(&mut self, what: &str) -> Result<Reply, ProtocolError> {
        let mut lines: Vec<String> = Vec::new();
        loop {
            let mut buf = Vec::new();
            let mut limited = (&mut self.reader).take(MAX_LINE as u64);
            let n = bounded(what, self.timeout, limited.read_until(b'\n', &mut buf)).await?;
            if n == 0 {
                return Err(ProtocolError::Bad {
                    what: what.to_owned(),
                    detail: "the server closed the connection".into(),
                });
            }
            if buf.last() != Some(&b'\n') || lines.len() >= MAX_LINES {
                return Err(ProtocolError::Bad {
                    what: what.to_owned(),
                    detail: "a reply line or reply too long".into(),
                });
            }
            let line = String::from_utf8_lossy(&buf);
            lines.push(line.trim_end_matches(['\r', '\n']).to_owned());
            match parse_reply(lines.iter().map(String::as_str)) {
                Ok(reply) => return Ok(reply),
                Err(e) if lines.len() == 1 && matches!(classify(&lines[0]), Line::Inner(_)) => {
                    return Err(ProtocolError::Bad {
                        what: what.to_owned(),
                        detail: e,
                    })
                }
                Err(_) => {}
            }
        }
    }

    /// `PASV`, then a connection to the data port (on the control
    /// connection's server address: the one in the reply may be a
    /// private one behind NAT).
    async fn passive(&mut self) -> Result<TcpStream, ProtocolError> {
        let reply = self.expect("PASV", &[227]).await?;
        let addr = parse_pasv(reply.text()).ok_or_else(|| ProtocolError::Bad {
            what: "PASV".into(),
            detail: format!("no address in {reply}"),
        })?;
        let addr = SocketAddr::new(self.peer.ip(), addr.port());
        bounded(
            "opening the data connection",
            self.timeout,
            TcpStream::connect(addr),
        )
        .await
    }

    /// `STOT`: stores `data` as a new temporary file on the server and
    /// returns its name (for `JPARM DOCUMENT`).
    pub async fn store_temp(&mut self, data: &[u8]) -> Result<String, ProtocolError> {
        let mut conn = self.passive().await?;
        let first = self.expect("STOT", &[150, 125]).await?;
        bounded("sending the document", self.timeout, conn.write_all(data)).await?;
        bounded("closing the data connection", self.timeout, conn.shutdown()).await?;
        drop(conn);
        let done = self.read_reply("STOT").await?;
        if done.code != 226 {
            return Err(ProtocolError::Refused {
                what: "STOT".into(),
                reply: done,
            });
        }
        parse_file(first.text())
            .or_else(|| parse_file(done.text()))
            .ok_or_else(|| ProtocolError::Bad {
                what: "STOT".into(),
                detail: format!("no FILE: in {first} or {done}"),
            })
    }

    /// Runs `command` (`RETR …`, `LIST …`) and reads its data connection
    /// to the end, at most `limit` bytes.
    pub async fn fetch(&mut self, command: &str, limit: u64) -> Result<Vec<u8>, ProtocolError> {
        let conn = self.passive().await?;
        self.expect(command, &[150, 125]).await?;
        let mut data = Vec::new();
        let mut limited = conn.take(limit + 1);
        bounded(command, self.timeout, limited.read_to_end(&mut data)).await?;
        if data.len() as u64 > limit {
            return Err(ProtocolError::Bad {
                what: command.to_owned(),
                detail: format!("more than {limit} bytes"),
            });
        }
        drop(limited);
        let done = self.read_reply(command).await?;
        if done.code != 226 {
            return Err(ProtocolError::Refused {
                what: command.to_owned(),
                reply: done,
            });
        }
        Ok(data)
    }

    /// `QUIT`, ignoring what happens.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}

async fn bounded<T>(
    what: &str,
    after: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, ProtocolError> {
    match timeout(after, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ProtocolError::Io {
            what: what.to_owned(),
            source,
        }),
        Err(_) => Err(ProtocolError::Timeout {
            what: what.to_owned(),
            after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(
            parse_reply(["200 New job created: jobid: 7 groupid: 7."]).unwrap(),
            Reply {
                code: 200,
                lines: vec!["New job created: jobid: 7 groupid: 7.".into()]
            }
        );
        let lines = [
            "217-Job state: jobid 1 groupid 1",
            "    STATE: SUSPENDED",
            "200 not the end: another code",
            "217 End of job 1 state.",
        ];
        let r = parse_reply(lines).unwrap();
        assert_eq!(r.code, 217);
        assert_eq!(r.lines.len(), 4);
        assert_eq!(r.lines[1], "    STATE: SUSPENDED");
        assert_eq!(r.lines[3], "End of job 1 state.");
        assert!(parse_reply(lines[..3].iter().copied()).is_err());
        assert!(parse_reply(["hello"]).is_err());
        assert_eq!(parse_reply(["221"]).unwrap().code, 221);
    }

    #[test]
    fn pasv_file_and_jobid() {
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,195,80)"),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,195)"), None);
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,300,1)"), None);
        assert_eq!(
            parse_file("FILE: /tmp/doc12.tif (Opening new data connection)."),
            Some("/tmp/doc12.tif".into())
        );
        assert_eq!(
            parse_file("Transfer complete (FILE: /tmp/doc12.tif)."),
            Some("/tmp/doc12.tif".into())
        );
        assert_eq!(parse_file("Transfer complete."), None);
        assert_eq!(
            parse_jobid("New job created: jobid: 11741 groupid: 11741."),
            Some(11741)
        );
        assert_eq!(parse_jobid("New job created."), None);
        assert_eq!(quote("a\"b\\c\r\nd"), "\"abcd\"");
    }
}
