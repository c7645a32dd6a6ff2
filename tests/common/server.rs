//! The server under test: `Server` (the real binary with a configuration
//! made for the test, its log, restarts) and `Smtp`, a line-by-line SMTP
//! client for it.

use super::*;

/// A running faxmta with its own directory.
pub struct Server {
    pub dir: tempfile::TempDir,
    /// The address its SMTP listeners are on (127.0.0.1 unless started
    /// as one node of several, [`Server::start_node`]).
    pub ip: String,
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
        Server::start_full("127.0.0.1", "", smtp, extra, env)
    }

    /// One node of several sharing a queue: SMTP listeners on `ip`, and
    /// `queue` (TOML lines) added to the `[queue]` table (a backend, a
    /// node name …).
    pub fn start_node(ip: &str, queue: &str, extra: &str) -> Server {
        Server::start_full(ip, queue, "", extra, &[])
    }

    fn start_full(ip: &str, queue: &str, smtp: &str, extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mx_port = free_port_on(&[ip]);
        let sub_port = free_port_on(&[ip]);
        let admin_port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"hostname = "mx.example.test"
[queue]
path = "{d}/queue"
retry = ["1s"]
lifetime = "1h"
{queue}
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
addr = "{ip}:{mx_port}"
role = "mx"
[[listener]]
addr = "{ip}:{sub_port}"
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
            ip: ip.to_string(),
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
            if let Ok(mut s) = TcpStream::connect((self.ip.as_str(), self.mx_port)) {
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
        Smtp::connect_on(&self.ip, self.mx_port)
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
        Smtp::connect_on("127.0.0.1", port)
    }

    pub fn connect_on(ip: &str, port: u16) -> Smtp {
        let stream = TcpStream::connect((ip, port)).unwrap();
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
