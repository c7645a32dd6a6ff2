//! Test harness: runs the real `faxmta` binary on loopback with a
//! configuration made for the test, and offers small helpers to talk SMTP,
//! run the CLI, run Python and swaks, and look into the Maildirs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running faxmta with its own directory.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub mx_port: u16,
    pub sub_port: u16,
    child: Option<Child>,
}

impl Server {
    /// Write a configuration (the base below plus `extra` TOML, which may
    /// add sections such as `[relay]` or more `[[domain]]`s) and start.
    /// The base has local domains `example.test` (users alice, bob,
    /// postmaster) and `localhost` (any user), retry every 1s, and
    /// `[smtp]` limits from `smtp` (TOML lines for that table).
    pub fn start_with(smtp: &str, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mx_port = free_port();
        let sub_port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"hostname = "mx.example.test"
[queue]
path = "{d}/queue"
retry = ["1s"]
lifetime = "1h"
[control]
socket = "{d}/faxmta.sock"
[tls]
generated_dir = "{d}/tls"
[[listener]]
addr = "127.0.0.1:{mx_port}"
role = "mx"
[[listener]]
addr = "127.0.0.1:{sub_port}"
role = "submission"
[smtp]
shutdown_grace = "2s"
{smtp}
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:{d}/mail/{{domain}}/{{user}}"
users = ["alice", "bob", "postmaster"]
[[domain]]
name = "localhost"
kind = "local"
deliver = "maildir:{d}/mail/{{domain}}/{{user}}"
{extra}
"#
        );
        std::fs::write(dir.path().join("faxmta.toml"), config).unwrap();
        let mut server = Server {
            dir,
            mx_port,
            sub_port,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn start() -> Server {
        Server::start_with("", "")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("faxmta.toml")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Start (or restart) the process and wait for its greeting.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("faxmta.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_faxmta"))
            .args(["serve", "--config"])
            .arg(self.config())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.mx_port)) {
                let mut buf = [0u8; 3];
                if s.read_exact(&mut buf).is_ok() && &buf == b"220" {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("faxmta exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "faxmta did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("faxmta.log")).unwrap_or_default()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for the exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                c.kill().unwrap();
                c.wait().unwrap();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `faxmta ARGS --config <this config>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_faxmta"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }

    /// Files delivered to a Maildir's new/, sorted by name.
    pub fn maildir(&self, domain: &str, user: &str) -> Vec<PathBuf> {
        let dir = self.path(&format!("mail/{domain}/{user}/new"));
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        };
        files.sort();
        files
    }

    /// Wait up to `secs` for `n` files in a Maildir; return them.
    pub fn wait_maildir(&self, domain: &str, user: &str, n: usize, secs: u64) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let files = self.maildir(domain, user);
            if files.len() >= n || Instant::now() > deadline {
                return files;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An SMTP connection to the MX listener, greeting read.
    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.mx_port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- faxmta log ---\n{}", self.log());
        }
    }
}

/// A plain-text SMTP client for driving the protocol by hand.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut s = Smtp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = s.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        s
    }

    /// Send raw bytes as they are (one write).
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Read one complete reply (all its lines), joined with "\n".
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                lines.push("<closed>".to_string());
                break;
            }
            let line = line.trim_end().to_string();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            lines.push(line);
            if last {
                break;
            }
        }
        lines.join("\n")
    }

    /// Send a command line (CRLF added) and read its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

/// Run a Python 3 script; panics with its output if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run swaks with the given arguments; returns its transcript.
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is installed by scripts/test");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Poll until `f` returns true or `secs` pass; returns the last result.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read a delivered file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}
