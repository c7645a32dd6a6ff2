//! An HTTPS host for the MTA-STS and TLS-RPT tests: tests/peers/
//! https_policy.py with a certificate the test made, serving a policy at
//! `/.well-known/mta-sts.txt` and keeping what is POSTed to it.

use super::Cert;
use crate::common::free_port_on;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};

/// tests/peers/https_policy.py: an HTTPS host serving an MTA-STS policy
/// and taking POSTs (TLS reports).
pub struct HttpsHost {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl HttpsHost {
    /// Listen on `ip` with `cert` (and its chain), serving `body` as the
    /// policy; POSTs are kept (see [`HttpsHost::posts`]).
    pub fn start(ip: &str, cert: &Cert, body: &str) -> HttpsHost {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = (dir.path().join("host.crt"), dir.path().join("host.key"));
        std::fs::write(&crt, &cert.pem).unwrap();
        std::fs::write(&key, &cert.key).unwrap();
        let port = free_port_on(&[ip]);
        let posts = dir.path().join("posts");
        std::fs::create_dir(&posts).unwrap();
        write_policy(dir.path(), body);
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/https_policy.py"
            ))
            .arg("--cert")
            .arg(&crt)
            .arg("--key")
            .arg(&key)
            .args(["--address", ip, "--port", &port.to_string()])
            .arg("--post-dir")
            .arg(&posts)
            .arg("--policy")
            .arg(dir.path().join("policy.txt"))
            .arg("--log")
            .arg(dir.path().join("requests.log"))
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
        if line.trim() != format!("ready {port}") {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            let _ = child.wait();
            panic!("https_policy.py did not start:\n{line}{err}");
        }
        HttpsHost {
            port,
            dir,
            child: Some(child),
            stdin: Some(stdin),
        }
    }

    /// Serve `body` from now on.
    pub fn set_policy(&self, body: &str) {
        write_policy(self.dir.path(), body);
    }

    /// The requests answered so far, one `METHOD PATH STATUS` line each.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The policy fetches answered with 200.
    pub fn fetches(&self) -> usize {
        self.requests()
            .iter()
            .filter(|l| *l == "GET /.well-known/mta-sts.txt 200")
            .count()
    }

    /// The POSTs received so far, in order: (`METHOD PATH\nContent-Type:
    /// …` as https_policy.py writes it, the body).
    pub fn posts(&self) -> Vec<(String, Vec<u8>)> {
        let dir = self.dir.path().join("posts");
        (1..)
            .map(|n| dir.join(format!("post-{n}.meta")))
            .take_while(|meta| meta.exists())
            .map(|meta| {
                let head = std::fs::read_to_string(&meta).unwrap();
                let body = std::fs::read(meta.with_extension("body")).unwrap();
                (head, body)
            })
            .collect()
    }

    /// Stop now: the port refuses connections from here on.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HttpsHost {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- policy host requests ---\n{:#?}", self.requests());
        }
    }
}

/// Write the policy file the host serves (replaced by a rename: the host
/// never reads it half written).
fn write_policy(dir: &std::path::Path, body: &str) {
    let tmp = dir.join("policy.new");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, dir.join("policy.txt")).unwrap();
}
