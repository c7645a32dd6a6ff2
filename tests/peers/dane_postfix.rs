//! A private Postfix (postfix.sh) whose SMTP client sends over DANE
//! (RFC 7672): `smtp_dns_support_level = dnssec`, `smtp_tls_security_level
//! = dane`. Postfix does not validate DNSSEC itself: it asks the libc
//! resolver and trusts the AD bit, so it runs in a mount namespace of its
//! own (`unshare -m`) where /etc/resolv.conf is bind-mounted from a file
//! naming a private validating [`Unbound`] on port 53 with `options
//! trust-ad` (glibc drops AD otherwise). The machine's own resolv.conf is
//! untouched. Needs root (unshare, mount, Postfix's master).

use super::{output_text, Unbound, PEERS};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The DANE sender; stopped on drop.
pub struct DaneSender {
    /// Where its smtpd takes mail to send (any relay from 127.0.0.0/8).
    pub ip: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl DaneSender {
    /// Start with smtpd on `ip:port` and `transport` as its transport map
    /// (postmap lines, e.g. `dane.test smtp:dane.test:2525`: a nexthop
    /// without brackets still looks up MX records, and the TLSA records
    /// then sit at `_2525._tcp.<mx host>`). `resolver` must listen on
    /// port 53.
    pub fn start(ip: &str, port: u16, resolver: &Unbound, transport: &str) -> DaneSender {
        assert_eq!(
            resolver.addr.port(),
            53,
            "resolv.conf names servers on port 53 only"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/transport.map"), transport).unwrap();
        std::fs::write(
            dir.path().join("resolv.conf"),
            format!("nameserver {}\noptions trust-ad\n", resolver.addr.ip()),
        )
        .unwrap();
        let main_cf = "smtp_dns_support_level = dnssec\n\
             smtp_tls_security_level = dane\n\
             smtp_tls_loglevel = 1\n\
             # No probe of the root zone: the test resolver knows only test.\n\
             dnssec_probe =\n\
             transport_maps = hash:${config_directory}/transport.map\n\
             smtp_connect_timeout = 5s";
        let out = DaneSender::in_namespace(dir.path(), &format!("{PEERS}/postfix.sh"))
            .arg("start")
            .arg(dir.path())
            .args([ip, &port.to_string(), "sender.test"])
            .env("POSTFIX_MAIN_CF", main_cf)
            .env("POSTFIX_MASTER_CF", "smtp unix - - n - - smtp")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let sender = DaneSender {
            ip: ip.to_string(),
            port,
            dir,
        };
        assert!(
            out.status.success(),
            "the DANE Postfix did not start (it needs root and the postfix package):\n{}",
            output_text(&out)
        );
        sender
    }

    /// `bash SCRIPT ARGS…` (the arguments added by the caller) in a new
    /// mount namespace whose /etc/resolv.conf is `dir`/resolv.conf.
    fn in_namespace(dir: &Path, script: &str) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc/resolv.conf && exec bash \"$@\"")
            .arg(dir.join("resolv.conf"))
            .arg(script);
        cmd
    }

    /// Postfix's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The resolv.conf the instance sees.
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.path().join("resolv.conf")
    }

    /// `posttls-finger -c -l dane -L summary,certmatch DEST` (e.g.
    /// `dane.test:2525`: MX lookup, TLSA at `_2525._tcp.<mx>`) with this
    /// instance's configuration and resolver: what it printed.
    pub fn posttls_finger(&self, dest: &str) -> String {
        let script = self.dir.path().join("finger.sh");
        std::fs::write(
            &script,
            "MAIL_CONFIG=\"$1\" exec posttls-finger -c -l dane -L summary,certmatch \"$2\"\n",
        )
        .unwrap();
        let out = DaneSender::in_namespace(self.dir.path(), &script.display().to_string())
            .arg(self.dir.path().join("etc"))
            .arg(dest)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        output_text(&out)
    }
}

impl Drop for DaneSender {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{PEERS}/postfix.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output();
        if std::thread::panicking() {
            eprintln!("--- DANE Postfix log ---\n{}", self.log());
        }
    }
}
