//! Real peers for the outbound tests, all on 127.0.0.0/8: an authoritative
//! DNS server (dns.py, on dnslib), misbehaving SMTP servers (hostile.py),
//! Postfix's smtp-sink, a private Postfix
//! instance with STARTTLS (postfix.sh) — optionally a smart host that
//! requires AUTH, with a private Dovecot as its SASL back end — and a
//! private Dovecot serving LMTP, and a private PostgreSQL; for SIP, a
//! private Kamailio (registrar and proxy), rtpengine, SIPp scenarios
//! (tests/peers/sipp/) and tshark captures on `lo`; for the portal, a
//! headless chromium driven through chromedriver; for DANE, a signed DNS
//! tree served by a private nsd, a validating unbound (dnssec.rs) and a
//! Postfix that sends over DANE (dane_postfix.rs).
//! Each is stopped when its handle is dropped; a failing test prints their
//! logs.
#![allow(dead_code)]

use crate::common::{output_text, restart_with, wait_until, Server};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

mod browser;
mod certs;
mod dane_postfix;
pub mod dnssec;
mod dovecot;
mod https_host;
pub mod kamailio;
mod postgres;
mod rtpengine;
mod sipp;
mod tshark;
#[allow(unused_imports)] // not every test binary uses every peer
pub use browser::{Browser, Screen};
#[allow(unused_imports)]
pub use certs::{ca_and_leaf, self_signed, Ca, Cert};
#[allow(unused_imports)]
pub use dane_postfix::DaneSender;
#[allow(unused_imports)]
pub use dnssec::{tlsa_rdata, SignedDns, Signing, Unbound, Zone};
#[allow(unused_imports)]
pub use dovecot::{Dovecot, DovecotAuth};
#[allow(unused_imports)]
pub use https_host::HttpsHost;
#[allow(unused_imports)]
pub use kamailio::{Kamailio, KamailioSetup};
#[allow(unused_imports)]
pub use postgres::Postgres;
#[allow(unused_imports)]
pub use rtpengine::{Ben, Rtpengine};
#[allow(unused_imports)]
pub use sipp::{sip_port, PortBlock, Sipp, SippRun};
#[allow(unused_imports)]
pub use tshark::{Capture, T38Count};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");

/// Only loopback: the tests never send anything off this machine.
fn loopback(ip: &str) -> IpAddr {
    let addr: IpAddr = ip.parse().unwrap();
    assert!(addr.is_loopback(), "{ip}: peers live on 127.0.0.0/8 only");
    addr
}

/// A port number free on every one of `ips` (all peers of one test listen
/// on the same port, each on its own address).
pub fn shared_port(ips: &[&str]) -> u16 {
    let ips: Vec<String> = ips.iter().map(|ip| loopback(ip).to_string()).collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    crate::common::free_port_on(&ips)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Start a python peer that prints "ready PORT" once it listens and
/// exits when its stdin closes: its process, stdin and port.
fn spawn_ready(mut cmd: Command, what: &str) -> (Child, ChildStdin, u16) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed by scripts/test");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(port) = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
    else {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let _ = child.kill();
        panic!("{what} did not start:\n{line}{err}");
    };
    (child, stdin, port)
}

// ---------------------------------------------------------- hostile.py

/// tests/peers/hostile.py in one mode on one loopback address.
pub struct Hostile {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Hostile {
    pub fn start(mode: &str, ip: &str, interval: &str) -> Hostile {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{PEERS}/hostile.py"))
            .args([mode, "--address", ip, "--interval", interval, "--log"])
            .arg(dir.path().join("events.log"));
        let (child, stdin, port) = spawn_ready(cmd, &format!("hostile.py {mode}"));
        Hostile {
            port,
            dir,
            child,
            stdin: Some(stdin),
        }
    }

    /// How many times `event` ("connect", "mail", "dot") happened.
    pub fn count(&self, event: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("events.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(event))
            .count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ DNS

/// A zone under `test.` with these records (zone-file lines), for [`Dns`].
pub fn zone(records: &[&str]) -> String {
    let mut z = String::from("$TTL 60\ntest. SOA ns.test. hostmaster.test. 1 60 60 60 60\n");
    for r in records {
        z.push_str(r);
        z.push('\n');
    }
    z
}

/// tests/peers/dns.py serving one zone on 127.0.0.1.
pub struct Dns {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Dns {
    /// Serve `zone` (zone-file text; `NAME. SERVFAIL` lines allowed).
    pub fn start(zone: &str) -> Dns {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zone");
        std::fs::write(&file, zone).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{PEERS}/dns.py"))
            .arg(&file)
            .args(["--address", "127.0.0.1", "--log"])
            .arg(dir.path().join("queries.log"));
        let (child, stdin, port) = spawn_ready(
            cmd,
            "dns.py (is dnslib installed? scripts/test installs it)",
        );
        Dns {
            port,
            dir,
            child,
            stdin: Some(stdin),
        }
    }

    /// Serve `zone` from now on (dns.py reads its file again when it
    /// changes; replaced by a rename, so never seen half written).
    pub fn set_zone(&self, zone: &str) {
        let tmp = self.dir.path().join("zone.new");
        std::fs::write(&tmp, zone).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("zone")).unwrap();
    }

    /// One line per query answered so far.
    pub fn queries(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("queries.log")).unwrap_or_default()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        drop(self.stdin.take()); // dns.py exits when its stdin closes
        if wait_until(2, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- DNS queries ---\n{}", self.queries());
        }
    }
}

// ------------------------------------------------------------ smtp-sink

fn smtp_sink_path() -> String {
    for p in ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    "smtp-sink".to_string()
}

/// Postfix's smtp-sink on IP:PORT, each transaction dumped to a file.
pub struct Sink {
    pub ip: String,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sink {
    /// Start with extra smtp-sink flags (`-N`: no DSN, `-8`: no 8BITMIME…).
    pub fn start(ip: &str, port: u16, flags: &[&str]) -> Sink {
        let addr = loopback(ip);
        let dir = tempfile::tempdir().unwrap();
        // When run as root, smtp-sink drops to nobody, who must write here.
        chmod(dir.path(), 0o755);
        let dumps = dir.path().join("dump");
        std::fs::create_dir(&dumps).unwrap();
        chmod(&dumps, 0o777);
        let out = std::fs::File::create(dir.path().join("sink.out")).unwrap();
        let mut cmd = Command::new(smtp_sink_path());
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg("-v")
            .arg("-d")
            .arg(dumps.join("msg."))
            .args(flags)
            .arg(format!("{ip}:{port}"))
            .arg("16")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("smtp-sink (Debian package postfix) is installed by scripts/test");
        let mut sink = Sink {
            ip: ip.to_string(),
            port,
            dir,
            child: Some(child),
        };
        // Ready once it accepts a connection; that probe is the one
        // connection `connections` does not count.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((addr, port)).is_err() {
            if let Ok(Some(status)) = sink.child.as_mut().unwrap().try_wait() {
                panic!("smtp-sink exited ({status}):\n{}", sink.output());
            }
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    /// What smtp-sink printed (-v: the conversations).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.out")).unwrap_or_default()
    }

    /// Connections accepted, other than the readiness probe.
    pub fn connections(&self) -> usize {
        self.output()
            .lines()
            .filter(|l| l.contains(": connect ("))
            .count()
            .saturating_sub(1)
    }

    /// The dumped transactions (X-Mail-Args, X-Rcpt-Args, then the
    /// message), in no particular order.
    pub fn dumps(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("dump"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
            .collect()
    }

    /// Wait up to `secs` for `n` dumped transactions, each complete.
    /// smtp-sink creates a dump file at MAIL and writes it through a
    /// buffer, which it flushes when it closes the file at the end of
    /// DATA, before its 250: the last octet it writes is the LF of the
    /// final dot line, so a complete dump ends with an empty line.
    pub fn wait_dumps(&self, n: usize, secs: u64) -> Vec<String> {
        wait_until(secs, || {
            let now = self.dumps();
            now.len() >= n && now.iter().all(|d| d.ends_with("\n\n"))
        });
        self.dumps()
    }

    /// Stop now (the address then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- smtp-sink {}:{} ---\n{}",
                self.ip,
                self.port,
                self.output()
            );
        }
    }
}

// -------------------------------------------------------------- Postfix

/// A private Postfix instance (tests/peers/postfix.sh): smtpd with
/// STARTTLS on IP:PORT, mail for `domain` into Maildirs.
pub struct Postfix {
    pub ip: String,
    pub port: u16,
    pub domain: String,
    dir: tempfile::TempDir,
    /// The SASL back end of a smart host instance; stopped after Postfix.
    auth: Option<DovecotAuth>,
}

impl Postfix {
    /// Start with the given users (empty: any local part exists; a user
    /// `name@domain` adds that domain) and extra main.cf lines.
    pub fn start(ip: &str, port: u16, domain: &str, users: &[&str], main_cf: &str) -> Postfix {
        Postfix::start_with_maps(ip, port, domain, users, main_cf, &[])
    }

    /// [`Postfix::start`] with lookup tables: each `(name, text)` becomes
    /// `etc/name.map` (postmap syntax, one `key value` a line), for main.cf
    /// lines such as `check_recipient_access hash:${config_directory}/name.map`.
    pub fn start_with_maps(
        ip: &str,
        port: u16,
        domain: &str,
        users: &[&str],
        main_cf: &str,
        maps: &[(&str, &str)],
    ) -> Postfix {
        Postfix::launch(ip, port, domain, users, main_cf, "", maps, None)
    }

    /// [`Postfix::start_with_maps`] with extra master.cf lines as well —
    /// e.g. `smtp unix - - n - - smtp`, the SMTP client, for an instance
    /// that relays (with `transport_maps` pointing it at loopback peers).
    pub fn start_with_master(
        ip: &str,
        port: u16,
        domain: &str,
        main_cf: &str,
        master_cf: &str,
        maps: &[(&str, &str)],
    ) -> Postfix {
        Postfix::launch(ip, port, domain, &[], main_cf, master_cf, maps, None)
    }

    /// A smart host such as an ISP runs: AUTH (PLAIN, LOGIN) offered only
    /// after STARTTLS (`smtpd_tls_auth_only`), checked by a private
    /// Dovecot ([`DovecotAuth`]) against `logins` (`(user, password)`),
    /// and only authenticated clients may send — to anyone, even to its
    /// own `domain` (`smtpd_relay_restrictions = permit_sasl_authenticated,
    /// reject`). Mail for `domain` lands in its Maildirs as with
    /// [`Postfix::start`]; the Received header says `with ESMTPSA` and
    /// `(Authenticated sender: USER)`. With `smtps_port`, a second smtpd
    /// on IP:smtps_port speaks implicit TLS (`smtpd_tls_wrappermode`).
    pub fn start_smarthost(
        ip: &str,
        port: u16,
        smtps_port: Option<u16>,
        domain: &str,
        users: &[&str],
        logins: &[(&str, &str)],
    ) -> Postfix {
        let auth = DovecotAuth::start(logins);
        let main_cf = format!(
            "smtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = dovecot\n\
             smtpd_sasl_path = {}\n\
             smtpd_tls_auth_only = yes\n\
             smtpd_sasl_authenticated_header = yes\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject",
            auth.socket().display()
        );
        let master_cf = smtps_port
            .map(|p| format!("{ip}:{p} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes"))
            .unwrap_or_default();
        Postfix::launch(
            ip,
            port,
            domain,
            users,
            &main_cf,
            &master_cf,
            &[],
            Some(auth),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        ip: &str,
        port: u16,
        domain: &str,
        users: &[&str],
        main_cf: &str,
        master_cf: &str,
        maps: &[(&str, &str)],
        auth: Option<DovecotAuth>,
    ) -> Postfix {
        loopback(ip);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        for (name, text) in maps {
            std::fs::write(dir.path().join(format!("etc/{name}.map")), text).unwrap();
        }
        let out = Command::new("bash")
            .arg(format!("{PEERS}/postfix.sh"))
            .arg("start")
            .arg(dir.path())
            .args([ip, &port.to_string(), domain])
            .args(users)
            .env("POSTFIX_MAIN_CF", main_cf)
            .env("POSTFIX_MASTER_CF", master_cf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let pf = Postfix {
            ip: ip.to_string(),
            port,
            domain: domain.to_string(),
            dir,
            auth,
        };
        assert!(
            out.status.success(),
            "the Postfix peer did not start (it needs root and the postfix package):\n{}",
            output_text(&out)
        );
        pf
    }

    /// Rewrite lookup table `name` (see [`Postfix::start_with_maps`]),
    /// compile it and have Postfix reload: sessions opened from now on see
    /// the new table (one already open keeps the old one).
    pub fn set_map(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(format!("etc/{name}.map")), text).unwrap();
        let out = Command::new("bash")
            .arg(format!("{PEERS}/postfix.sh"))
            .arg("reload")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the Postfix peer did not reload:\n{}",
            output_text(&out)
        );
    }

    /// Postfix's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Files in `user`'s Maildir new/ (`name`: in the peer's domain, or
    /// `name@domain`).
    pub fn maildir(&self, user: &str) -> Vec<PathBuf> {
        let (name, domain) = user.split_once('@').unwrap_or((user, &self.domain));
        let new = self.dir.path().join(format!("mail/{domain}/{name}/new"));
        let mut files: Vec<PathBuf> = match std::fs::read_dir(new) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        };
        files.sort();
        files
    }

    /// Wait up to `secs` for `n` messages in `user`'s Maildir; their text.
    pub fn wait_maildir(&self, user: &str, n: usize, secs: u64) -> Vec<String> {
        wait_until(secs, || self.maildir(user).len() >= n);
        self.maildir(user)
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
            .collect()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{PEERS}/postfix.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output();
        if std::thread::panicking() {
            eprintln!("--- Postfix peer log ---\n{}", self.log());
        }
    }
}

// --------------------------------------------------------------- faxmta

/// faxmta for outbound tests: the test client (127.0.0.1) may relay, MX
/// hosts are contacted on `port` (`None`: faxmta's own MX listener port),
/// and DNS questions go to `dns`. `extra` is more configuration TOML; it
/// starts inside the `[outbound]` table (e.g. `tls = "required"`).
pub fn faxmta(dns: &Dns, port: Option<u16>, extra: &str) -> Server {
    let mut server = Server::start_with(
        "",
        &format!("[relay]\nallow = [\"127.0.0.1/32\"]\n[outbound]\nport = 0\n{extra}"),
    );
    // The base configuration has a [dns] table already: point its
    // nameservers at our server (and set the port, which may be the
    // listener's own, known only now).
    let port = port.unwrap_or(server.mx_port);
    restart_with(
        &mut server,
        &[
            (
                "nameservers = [\"127.0.0.1:9\"]",
                &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
            ),
            (
                "[outbound]\nport = 0\n",
                &format!("[outbound]\nport = {port}\n"),
            ),
        ],
    );
    server
}
