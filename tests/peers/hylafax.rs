//! A private HylaFAX 6.0 server for tests (Debian's hylafax-server,
//! installed by scripts/test): `faxq` and `hfaxd` on 127.0.0.1 (a free
//! port) over a spool directory of their own (the layout of
//! /var/spool/hylafax, `etc` copied from /etc/hylafax, `hosts.hfaxd` as
//! the test says). Both switch to the `uucp` user, so the tests run as
//! root (scripts/test does) or fail saying so. Killed when dropped.
//!
//! Shared by transports/fax/tests/fax_hylafax.rs and tests/fax_hylafax.rs
//! (`#[path]`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HFAXD: &str = "/usr/sbin/hfaxd";
const FAXQ: &str = "/usr/sbin/faxq";

/// A private HylaFAX server; killed when dropped.
pub struct HylafaxServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    children: Vec<Child>,
}

impl HylafaxServer {
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn start() -> HylafaxServer {
        HylafaxServer::with_hosts("127.0.0.1\nlocalhost\n")
    }

    /// With `etc/hosts.hfaxd` of `hosts`.
    pub fn with_hosts(hosts: &str) -> HylafaxServer {
        assert!(
            Path::new(HFAXD).exists() && Path::new(FAXQ).exists(),
            "{HFAXD} and {FAXQ} are needed: install Debian's hylafax-server (scripts/test does)"
        );
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "hfaxd and faxq switch to the uucp user: run these tests as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        for d in [
            "archive", "client", "config", "dev", "docq", "doneq", "info", "log", "pollq", "recvq",
            "sendq", "status", "tmp",
        ] {
            std::fs::create_dir_all(spool.join(d)).unwrap();
        }
        run(
            "cp",
            &["-r", "/etc/hylafax", spool.join("etc").to_str().unwrap()],
        );
        run(
            "cp",
            &[
                "-r",
                "/var/spool/hylafax/bin",
                spool.join("bin").to_str().unwrap(),
            ],
        );
        std::fs::write(spool.join("etc/hosts.hfaxd"), hosts).unwrap();
        run(
            "chmod",
            &["600", spool.join("etc/hosts.hfaxd").to_str().unwrap()],
        );
        run("chmod", &["1777", spool.join("tmp").to_str().unwrap()]);
        run("mkfifo", &[spool.join("FIFO").to_str().unwrap()]);
        run("chown", &["-R", "uucp:uucp", dir.path().to_str().unwrap()]);
        // Below the ephemeral range, held for this test
        // (tests/common/ports.rs): nothing takes it before hfaxd binds it.
        let port = crate::common::free_port();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let q = spool.to_str().unwrap().to_owned();
        let faxq = Command::new(FAXQ)
            .args(["-D", "-q", &q])
            .stdin(Stdio::null())
            .stdout(log("faxq.log"))
            .stderr(log("faxq.err"))
            .spawn()
            .unwrap();
        let hfaxd = Command::new(HFAXD)
            .args(["-d", "-q", &q, "-l", "127.0.0.1", "-i", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log("hfaxd.log"))
            .stderr(log("hfaxd.err"))
            .spawn()
            .unwrap();
        let server = HylafaxServer {
            dir,
            port,
            children: vec![faxq, hfaxd],
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "hfaxd did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for HylafaxServer {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().unwrap();
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

/// The q-file hfaxd wrote for job `id` (in sendq or doneq).
pub fn qfile(spool: &Path, id: u32) -> Option<String> {
    ["sendq", "doneq"]
        .iter()
        .find_map(|q| std::fs::read_to_string(spool.join(q).join(format!("q{id}"))).ok())
}
