//! Private Dovecot instances: one serving LMTP (tests/lmtp.rs), and one
//! that only authenticates, the SASL back end of the smart host Postfix
//! (tests/smarthost.rs).

use super::{chmod, is_root, loopback};
use crate::common::wait_until;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn dovecot_path() -> String {
    for p in ["/usr/sbin/dovecot", "/usr/bin/dovecot"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    "dovecot".to_string()
}

/// A private Dovecot that speaks only LMTP, everything in its own
/// directory: configuration, base_dir, state, log and the Maildirs
/// (`mail/DOMAIN/USER`). It listens on IP:PORT and on the Unix socket
/// [`Dovecot::socket`]. Its users come from a passwd-file, so any other
/// recipient gets Dovecot's `550 5.1.1` at RCPT; the quota plugin is on
/// (no limit unless a user's entry sets one). Needs root (the package's
/// `dovecot` and `dovenull` users run its internal processes; mail is
/// written as nobody) and the Debian package dovecot-lmtpd.
pub struct Dovecot {
    pub ip: String,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dovecot {
    /// Start with these users: full addresses, `user@domain`, each
    /// optionally followed by a space and userdb fields (e.g.
    /// `userdb_quota_rule=*:storage=1B`: every message is over quota, which
    /// LMTP reports after the data).
    pub fn start(ip: &str, port: u16, users: &[&str]) -> Dovecot {
        loopback(ip);
        assert!(
            is_root(),
            "the Dovecot peer needs root (its package's users run its processes)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // The mail processes run as nobody: they must reach and write mail/.
        chmod(dir.path(), 0o755);
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        chmod(&mail, 0o777);
        let id = |flag: &str| {
            let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let mut passwd = String::new();
        for entry in users {
            let (user, fields) = entry.split_once(' ').unwrap_or((entry, ""));
            let (name, domain) = user.split_once('@').expect("users are user@domain");
            passwd.push_str(&format!(
                "{user}::{uid}:{gid}::{d}/mail/{domain}/{name}::{fields}\n"
            ));
        }
        std::fs::write(dir.path().join("users"), passwd).unwrap();
        let config = format!(
            r#"# A throwaway Dovecot for faxmta's tests: LMTP only, on loopback.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = faxmta-test-{port}
protocols = lmtp
ssl = no
listen = {ip}
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{d}/mail/%d/%n
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service lmtp {{
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = {ip}
    port = {port}
  }}
}}
"#
        );
        std::fs::write(dir.path().join("dovecot.conf"), config).unwrap();
        let mut dovecot = Dovecot {
            ip: ip.to_string(),
            port,
            dir,
            child: None,
        };
        dovecot.spawn();
        dovecot
    }

    /// The Unix socket it listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("lmtp")
    }

    /// Start (again, after [`Dovecot::stop`]) and wait until both
    /// listeners answer.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "Dovecot is running already");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("dovecot.out"))
            .unwrap();
        let child = Command::new(dovecot_path())
            .arg("-F")
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("dovecot (Debian package dovecot-lmtpd) is installed by scripts/test");
        self.child = Some(child);
        let addr = loopback(&self.ip);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tcp = TcpStream::connect((addr, self.port)).is_ok();
            let unix = std::os::unix::net::UnixStream::connect(self.socket()).is_ok();
            if tcp && unix {
                return;
            }
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                panic!("dovecot exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop (SIGTERM: the master stops its processes) and wait until it is
    /// gone and its TCP listener refuses connections.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        if !wait_until(10, || matches!(child.try_wait(), Ok(Some(_)))) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = loopback(&self.ip);
        assert!(
            wait_until(10, || TcpStream::connect((addr, self.port)).is_err()),
            "dovecot still listens on {}:{} after stopping",
            self.ip,
            self.port
        );
    }

    /// What Dovecot logged, and printed at start.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }

    /// Files in the Maildir new/ of `user` (`user@domain`).
    pub fn maildir(&self, user: &str) -> Vec<PathBuf> {
        let (name, domain) = user.split_once('@').expect("user@domain");
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

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Dovecot {}:{} ---\n{}", self.ip, self.port, self.log());
        }
        // Not `stop`, which asserts: no panics while unwinding.
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            if !wait_until(10, || matches!(child.try_wait(), Ok(Some(_)))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A private Dovecot that only authenticates: its auth service on the
/// Unix socket [`DovecotAuth::socket`] (mode 0666, for Postfix's smtpd,
/// which runs as postfix), mechanisms PLAIN and LOGIN, users and
/// plaintext passwords from a passwd-file, no failure delay. It is the
/// SASL back end of the smart host Postfix (`smtpd_sasl_type = dovecot`).
/// Needs root, like [`Dovecot`].
pub struct DovecotAuth {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl DovecotAuth {
    /// Start with these `(user, password)` pairs.
    pub fn start(users: &[(&str, &str)]) -> DovecotAuth {
        assert!(
            is_root(),
            "the Dovecot auth peer needs root (its package's users run its processes)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        chmod(dir.path(), 0o755);
        let passwd: String = users
            .iter()
            .map(|(user, password)| format!("{user}:{{PLAIN}}{password}\n"))
            .collect();
        std::fs::write(dir.path().join("passwd"), passwd).unwrap();
        chmod(&dir.path().join("passwd"), 0o644);
        // The instance name only has to differ from other instances'.
        let instance = dir.path().file_name().unwrap().to_string_lossy();
        let config = format!(
            r#"# A throwaway Dovecot for faxmta's tests: SASL authentication only.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = faxmta-test-auth{instance}
protocols = none
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
auth_mechanisms = plain login
# Postfix asks for AUTH only after STARTTLS (smtpd_tls_auth_only).
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup
}}
service auth {{
  unix_listener {d}/auth {{
    mode = 0666
  }}
}}
"#
        );
        std::fs::write(dir.path().join("dovecot.conf"), config).unwrap();
        let out = std::fs::File::create(dir.path().join("dovecot.out")).unwrap();
        let child = Command::new(dovecot_path())
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("dovecot (Debian package dovecot-core) is installed by scripts/test");
        let mut auth = DovecotAuth {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(auth.socket()).is_err() {
            if let Ok(Some(status)) = auth.child.as_mut().unwrap().try_wait() {
                auth.child = None;
                panic!("dovecot (auth) exited ({status}):\n{}", auth.log());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot (auth) did not start:\n{}",
                auth.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        auth
    }

    /// The auth socket (for `smtpd_sasl_path`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("auth")
    }

    /// What Dovecot logged, and printed at start.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }
}

impl Drop for DovecotAuth {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Dovecot auth ---\n{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            if !wait_until(10, || matches!(child.try_wait(), Ok(Some(_)))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
