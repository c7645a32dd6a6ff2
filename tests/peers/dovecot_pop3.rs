//! A private Dovecot serving POP3 (tests/pop3.rs): one passwd-file user
//! whose Maildir the test fills directly, plain POP3 (with STLS, on a
//! throwaway self-signed certificate) and POP3S on 127.0.0.1, everything
//! in its own temporary directory. Needs root (the package's `dovecot`
//! and `dovenull` users run its processes; the mail belongs to nobody)
//! and the Debian package dovecot-pop3d.

use crate::common::{free_port, wait_until};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DovecotPop3 {
    /// Plain POP3 (STLS offered).
    pub port: u16,
    /// POP3S (TLS from the start).
    pub pop3s_port: u16,
    pub user: String,
    pub password: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Messages put so far (their file names are unique).
    put: usize,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl DovecotPop3 {
    /// Start with the one user `user` / `password`.
    pub fn start(user: &str, password: &str) -> DovecotPop3 {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the Dovecot POP3 peer needs root (its package's users run its processes)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        run(Command::new("chmod").arg("755").arg(dir.path()));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem")));
        let home = dir.path().join("home");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
        }
        run(Command::new("chown").args(["-R", "nobody:"]).arg(&home));
        let id = |flag: &str| {
            let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        std::fs::write(
            dir.path().join("users"),
            format!("{user}:{{PLAIN}}{password}:{uid}:{gid}::{d}/home::\n"),
        )
        .unwrap();
        let (port, pop3s_port) = (free_port(), free_port());
        let config = format!(
            r#"# A throwaway Dovecot for faxmta's tests: POP3 only, on loopback.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = faxmta-test-pop3-{port}
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s_port}
    ssl = yes
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
            .expect("dovecot (Debian package dovecot-pop3d) is installed by scripts/test");
        let mut dovecot = DovecotPop3 {
            port,
            pop3s_port,
            user: user.to_string(),
            password: password.to_string(),
            dir,
            child: Some(child),
            put: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || TcpStream::connect(("127.0.0.1", pop3s_port)).is_err()
        {
            if let Ok(Some(status)) = dovecot.child.as_mut().unwrap().try_wait() {
                dovecot.child = None;
                panic!("dovecot (pop3) exited ({status}):\n{}", dovecot.log());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot (pop3) did not start:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        dovecot
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("home/Maildir")
    }

    /// Deliver `message` into the mailbox directly (Maildir new/).
    pub fn put(&mut self, message: &str) {
        self.put += 1;
        let name = format!(
            "{}.M{}P{}.test",
            crate::common::now(),
            self.put,
            std::process::id()
        );
        let tmp = self.maildir().join("tmp").join(&name);
        std::fs::write(&tmp, message.replace("\r\n", "\n")).unwrap();
        run(Command::new("chown").arg("nobody:").arg(&tmp));
        std::fs::rename(&tmp, self.maildir().join("new").join(&name)).unwrap();
    }

    /// Messages in the mailbox (new/ and cur/).
    pub fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| {
                std::fs::read_dir(self.maildir().join(sub))
                    .map(|rd| rd.count())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Wait up to `secs` for the mailbox to hold `n` messages.
    pub fn wait_count(&self, n: usize, secs: u64) -> bool {
        wait_until(secs, || self.count() == n)
    }

    /// POP3 logins so far (Dovecot logs each one): a client's polls
    /// counted, so a test can wait for "a later poll" as a condition.
    pub fn logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Login: user=<"))
            .count()
    }

    /// What Dovecot logged, and printed at start.
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }
}

fn dovecot_path() -> String {
    for p in ["/usr/sbin/dovecot", "/usr/bin/dovecot"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    "dovecot".to_string()
}

impl Drop for DovecotPop3 {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- Dovecot POP3 ---\n{}", self.log());
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
