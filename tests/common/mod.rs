//! Test harness: runs the real `faxmta` binary on loopback with a
//! configuration made for the test, and offers small helpers to talk SMTP,
//! run the CLI, run Python and swaks, and look into the Maildirs and the
//! queue.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod script;
#[allow(unused_imports)] // not every test binary uses the scripted client
pub use script::*;

/// Ports tests listen on: below the kernel's ephemeral range (32768 and
/// up), so that the many client connections of tests running in parallel
/// never take a port between the moment it is picked and the moment the
/// server binds it.
pub const TEST_PORTS: std::ops::Range<u16> = 10_000..32_000;

/// A free TCP port on 127.0.0.1 in [`TEST_PORTS`], picked at random
/// (so parallel test processes rarely pick the same) and checked free.
pub fn free_port() -> u16 {
    free_port_on(&["127.0.0.1"])
}

/// A port in [`TEST_PORTS`] free on every one of `ips`.
pub fn free_port_on(ips: &[&str]) -> u16 {
    for _ in 0..1000 {
        let span = TEST_PORTS.end - TEST_PORTS.start;
        let port = TEST_PORTS.start + rand::random::<u16>() % span;
        if ips
            .iter()
            .all(|ip| TcpListener::bind((ip.parse::<std::net::IpAddr>().unwrap(), port)).is_ok())
        {
            return port;
        }
    }
    panic!("no free port on {ips:?}");
}

/// A running faxmta with its own directory.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub mx_port: u16,
    pub sub_port: u16,
    /// The admin HTTP listener (/metrics).
    pub admin_port: u16,
    /// RUST_LOG for the process ("info"); takes effect at the next spawn.
    pub rust_log: String,
    /// More environment variables for the process (failpoints …); take
    /// effect at the next spawn.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    /// Write a configuration (the base below plus `extra` TOML, which may
    /// add sections such as `[relay]` or more `[[domain]]`s) and start.
    /// The base has local domains `example.test` (users alice, bob,
    /// postmaster) and `localhost` (any user), retry every 1s, and
    /// `[smtp]` limits from `smtp` (TOML lines for that table).
    pub fn start_with(smtp: &str, extra: &str) -> Server {
        Server::start_with_env(smtp, extra, &[])
    }

    /// [`Server::start_with`], the process started with `env` set.
    pub fn start_with_env(smtp: &str, extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mx_port = free_port();
        let sub_port = free_port();
        let admin_port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"hostname = "mx.example.test"
[queue]
path = "{d}/queue"
retry = ["1s"]
lifetime = "1h"
[control]
socket = "{d}/faxmta.sock"
# Never the system resolver: tests must not send DNS queries off this
# machine. Nothing listens on port 9, so remote domains defer at once.
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "1s"
[admin]
listen = "127.0.0.1:{admin_port}"
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
            admin_port,
            rust_log: "info".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
                // Between a stop and this start another test process may
                // have picked and bound our admin port (ports are picked
                // at random, see `free_port`): take a new one, once.
                let taken = format!("cannot listen on 127.0.0.1:{} (admin)", self.admin_port);
                if self.log().contains(&taken) && self.move_admin_port() {
                    return self.spawn();
                }
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

    /// Give the admin listener a new free port in the configuration;
    /// whether the configuration named the old one.
    fn move_admin_port(&mut self) -> bool {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let old = format!("listen = \"127.0.0.1:{}\"", self.admin_port);
        if !text.contains(&old) {
            return false;
        }
        let port = free_port();
        let new = format!("listen = \"127.0.0.1:{port}\"");
        std::fs::write(self.config(), text.replace(&old, &new)).unwrap();
        self.admin_port = port;
        true
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// Whether the process still runs (it has not exited).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
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

    /// Files delivered to a Maildir's new/, sorted by name (which is not
    /// the order they arrived in: find a message by its content, e.g.
    /// with [`Server::wait_mail_with`]).
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

    /// Wait up to `secs` for a file in a Maildir whose text holds every one
    /// of `needles`; its text. Panics, showing the files there and the
    /// log, if none comes. Maildir names do not keep arrival order: a test
    /// finds a delivered message by what it says, never by its place in
    /// [`Server::maildir`].
    pub fn wait_mail_with(&self, domain: &str, user: &str, needles: &[&str], secs: u64) -> String {
        let texts = || -> Vec<String> {
            self.maildir(domain, user)
                .iter()
                .filter_map(|f| std::fs::read(f).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect()
        };
        let pick = |all: Vec<String>| {
            all.into_iter()
                .find(|t| needles.iter().all(|n| t.contains(n)))
        };
        let mut found = None;
        wait_until(secs, || {
            found = pick(texts());
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "no mail with {needles:?} for {user}@{domain} within {secs}s among {:#?}\n{}",
                texts(),
                self.log()
            )
        })
    }

    /// `GET path` on the admin listener; the response body.
    pub fn http_get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
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
    let text = output_text(&out);
    assert!(out.status.success(), "python failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run swaks with the given arguments; returns its transcript.
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is installed by scripts/test");
    (out.status.success(), output_text(&out))
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

/// Check that `f` stays true for all of `window`, polled every 50 ms;
/// false at the first poll where it is not. For what must NOT happen
/// (a retry before its time, a delivery nobody asked for, a release by a
/// stranger), which only time passing can show: the window is the thing
/// under test, not a guess at how long something takes. Never use it to
/// wait for something to happen: that is [`wait_until`].
pub fn holds_for(window: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + window;
    loop {
        if !f() {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read a delivered file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A finished command's stdout followed by its stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// CRLF → LF, as Maildir files store text (lone CRs and LFs are kept).
pub fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Make a Maildir of example.test undeliverable (a plain file where the
/// directory should be): delivery then defers with 451 4.3.0.
pub fn block(server: &Server, user: &str) {
    std::fs::create_dir_all(server.path("mail/example.test")).unwrap();
    std::fs::write(server.path(&format!("mail/example.test/{user}")), "x").unwrap();
}

/// Undo [`block`]: remove the plain file so the Maildir can be made.
pub fn unblock(server: &Server, user: &str) {
    std::fs::remove_file(server.path(&format!("mail/example.test/{user}"))).unwrap();
}

/// Stop the server (it must exit cleanly), apply `(from, to)` text
/// replacements to its configuration file (each `from` must occur), and
/// start it again.
pub fn restart_with(server: &mut Server, edits: &[(&str, &str)]) {
    assert!(
        server.stop(),
        "faxmta did not stop cleanly:\n{}",
        server.log()
    );
    let mut text = std::fs::read_to_string(server.config()).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from} not in the configuration:\n{text}"
        );
        text = text.replace(from, to);
    }
    std::fs::write(server.config(), text).unwrap();
    server.spawn();
}

/// The queue id from "250 2.0.0 Ok: queued as ID" (checked to be a
/// non-empty alphanumeric word).
pub fn queued_id(reply: &str) -> String {
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply}"))
        .trim()
        .to_string();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{reply}"
    );
    id
}

/// Send one message by hand on a new MX connection (EHLO client.test;
/// every step must succeed). `msg` must be dot-safe and end with CRLF; the
/// final dot is added. Returns the queue id.
pub fn send(server: &Server, from: &str, to: &str, msg: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:<{from}>"));
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(msg.as_bytes());
    c.send(b".\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The log line about recipient `rcpt` of message `id` whose status is
/// `status` (sent, bounced, deferred), waiting up to `secs` for it.
pub fn wait_status(server: &Server, id: &str, rcpt: &str, status: &str, secs: u64) -> String {
    let start = format!("{id}: to=<{rcpt}>, ");
    let word = format!(", status={status} (");
    let find = || {
        server
            .log()
            .lines()
            .find(|l| l.contains(&start) && l.contains(&word))
            .map(str::to_string)
    };
    wait_until(secs, || find().is_some());
    find().unwrap_or_else(|| {
        panic!(
            "no status={status} for {rcpt} of {id} within {secs}s:\n{}",
            server.log()
        )
    })
}

/// Assert that `haystack` contains `needle`, showing the haystack if not.
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "{needle:?} not found in:\n{haystack}"
    );
}

/// Run `faxmta ARGS --config …`, assert that it succeeds, return stdout.
pub fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "faxmta {args:?} failed:\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `faxmta queue list --json`, parsed: one envelope per queued message.
pub fn queue_json(server: &Server) -> Vec<Value> {
    let text = cli_ok(server, &["queue", "list", "--json"]);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list:\n{text}"))
}

/// The envelope of message `id` in a [`queue_json`] list.
pub fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["id"] == id)
}

/// The envelope of message `id`, from a fresh [`queue_json`].
pub fn find_queued(server: &Server, id: &str) -> Option<Value> {
    queue_json(server).into_iter().find(|m| m["id"] == id)
}

/// Wait up to `secs` for the queue to be empty; returns whether it is.
pub fn wait_queue_empty(server: &Server, secs: u64) -> bool {
    wait_until(secs, || queue_json(server).is_empty())
}

/// The line of `queue list` output that starts with `id`.
pub fn id_line<'a>(list: &'a str, id: &str) -> &'a str {
    list.lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"))
}

/// Subject lines of the files in a Maildir, in file name order ("" for a
/// file without one). File names do not keep arrival order: compare
/// these as a set (sorted, or [`subject_counts`]) unless there is one.
pub fn subjects(server: &Server, domain: &str, user: &str) -> Vec<String> {
    server
        .maildir(domain, user)
        .iter()
        .map(|f| {
            String::from_utf8_lossy(&read(f))
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// [`subjects`], each with the number of files that carry it.
pub fn subject_counts(server: &Server, domain: &str, user: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for subject in subjects(server, domain, user) {
        *out.entry(subject).or_insert(0) += 1;
    }
    out
}

/// strace attached to every thread of the process `pid`, tracing the
/// system calls `calls` (strace's `-e trace=` list) into `out`, file
/// descriptors shown with their paths (`-y`); returns once it has
/// attached (a running server makes a system call every second: its
/// queue's sync thread). Stop it with `kill` and wait for it.
pub fn strace(pid: u32, out: &Path, calls: &str) -> Child {
    let err = out.with_extension("err");
    let child = Command::new("strace")
        .args(["-f", "-y", "-s", "200", "-qq"])
        .arg("-e")
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("strace runs (scripts/test installs it)");
    // strace attaches to the threads one by one: wait until every thread
    // of the server is traced, or a syscall of one not yet attached is
    // missing from the trace (a received fax's folder file, 1 run in 3).
    let tracer = child.id().to_string();
    assert!(
        wait_until(10, || all_threads_traced_by(pid, &tracer)),
        "strace did not attach to every thread: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    child
}

/// Whether every thread of process `pid` has `tracer` as its tracer.
fn all_threads_traced_by(pid: u32, tracer: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
            status.lines().any(|l| {
                l.strip_prefix("TracerPid:")
                    .is_some_and(|v| v.trim() == tracer)
            })
        })
    })
}

/// A tmpfs mounted for the test, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs for the queue and needs root: {}",
            output_text(&out)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
