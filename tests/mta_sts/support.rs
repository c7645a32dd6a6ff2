//! Helpers of tests/mta_sts.rs: a test CA (rcgen) that issues the
//! certificates of the receiving MX and of the policy host, the policy
//! host itself (tests/peers/https_policy.py), and the [`World`] one case
//! runs in: the DNS server (tests/peers/dns.py) with the domain's MX, A
//! and `_mta-sts` TXT records, the policy host, and the CA file the
//! sending faxmta trusts.

use crate::common::*;
use crate::dane_support::Cert;
use crate::peers::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The recipient domain of every case.
pub const DOMAIN: &str = "sts.test";
/// Its MX host.
pub const MX: &str = "mx.sts.test";
/// Where the policy host listens (its A record says so).
const POLICY_IP: &str = "127.0.0.1";

/// A private CA: its certificate goes into the sender's `[outbound]
/// ca_file`, and it issues server certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "faxmta MTA-STS test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `name`, issued by this CA; its `pem` is
    /// the chain (the certificate, then the CA's).
    pub fn issue(&self, name: &str) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Cert {
            der: leaf.der().to_vec(),
            pem: format!("{}{}", leaf.pem(), self.cert.pem()),
            key: key.serialize_pem(),
        }
    }
}

/// A policy body in `mode` listing `mx` hosts, valid for a day.
pub fn policy(mode: &str, mx: &[&str]) -> String {
    let mut text = format!("version: STSv1\nmode: {mode}\n");
    for host in mx {
        text.push_str(&format!("mx: {host}\n"));
    }
    text.push_str("max_age: 86400\n");
    text
}

/// tests/peers/https_policy.py serving `mta-sts.sts.test`'s policy with
/// a certificate for that name.
pub struct PolicyHost {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl PolicyHost {
    /// Listen on [`POLICY_IP`] with `cert`, serving `body` as the policy.
    fn start(cert: &Cert, body: &str) -> PolicyHost {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = (dir.path().join("host.crt"), dir.path().join("host.key"));
        std::fs::write(&crt, &cert.pem).unwrap();
        std::fs::write(&key, &cert.key).unwrap();
        let port = free_port_on(&[POLICY_IP]);
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
            .args(["--address", POLICY_IP, "--port", &port.to_string()])
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
        PolicyHost {
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

    /// Stop now: the port refuses connections from here on.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PolicyHost {
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

/// The peers of one case: the CA, DNS for `sts.test` (its MX `mx.sts.test`
/// on the receiver's address, `mta-sts.sts.test` on the policy host's,
/// the `_mta-sts` TXT record), the policy host.
pub struct World {
    pub ca: Ca,
    pub dns: Dns,
    pub policy: PolicyHost,
    records: Vec<String>,
    dir: tempfile::TempDir,
}

/// How a case's world differs from the plain one.
#[derive(Default)]
pub struct Options {
    /// More zone records (another MX and its address …).
    pub records: Vec<String>,
    /// The policy host's certificate; default: one the CA issued for
    /// `mta-sts.sts.test`.
    pub policy_cert: Option<Cert>,
}

impl World {
    /// The MX at `mx_ip`; `txt_id`: the `id` of the TXT record (none: no
    /// record); `body`: the policy served.
    pub fn start(mx_ip: &str, txt_id: Option<&str>, body: &str) -> World {
        World::start_with(mx_ip, txt_id, body, Options::default())
    }

    /// [`World::start`] with `options`.
    pub fn start_with(mx_ip: &str, txt_id: Option<&str>, body: &str, options: Options) -> World {
        let ca = Ca::new();
        let mut records = vec![
            format!("{DOMAIN}. MX 10 {MX}."),
            format!("{MX}. A {mx_ip}"),
            format!("mta-sts.{DOMAIN}. A {POLICY_IP}"),
        ];
        records.extend(options.records);
        let dns = Dns::start(&sts_zone(&records, txt_id));
        let policy_cert = options
            .policy_cert
            .unwrap_or_else(|| ca.issue(&format!("mta-sts.{DOMAIN}")));
        let policy = PolicyHost::start(&policy_cert, body);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        World {
            ca,
            dns,
            policy,
            records,
            dir,
        }
    }

    /// The file with the CA's certificate (the sender's `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Publish `txt_id` as the TXT record's id (none: remove the record).
    pub fn set_txt(&self, txt_id: Option<&str>) {
        self.dns.set_zone(&sts_zone(&self.records, txt_id));
    }

    /// The sending faxmta: relays for 127.0.0.1, asks only our DNS, sends
    /// to MX hosts on `mx_port`, trusts the test CA, fetches policies from
    /// the policy host's port; `extra` is more `[outbound]` TOML.
    pub fn sender(&self, mx_port: u16, extra: &str) -> Server {
        faxmta(
            &self.dns,
            Some(mx_port),
            &format!(
                "ca_file = \"{}\"\nmta_sts_port = {}\n{extra}",
                self.ca_file().display(),
                self.policy.port
            ),
        )
    }
}

/// The zone: `records` (the domain's MX, the addresses of the MX and of
/// the policy host …) and, with `txt_id`, the `_mta-sts` record, TTL 0 so
/// the sender sees a change at once.
fn sts_zone(records: &[String], txt_id: Option<&str>) -> String {
    // Negative answers are not cached either (SOA minimum 0): a TXT
    // record added later is seen at once.
    let mut zone = String::from("$TTL 60\ntest. 0 SOA ns.test. hostmaster.test. 1 60 60 60 0\n");
    for r in records {
        zone.push_str(r);
        zone.push('\n');
    }
    if let Some(id) = txt_id {
        zone.push_str(&format!("_mta-sts.{DOMAIN}. 0 TXT \"v=STSv1; id={id};\"\n"));
    }
    zone
}
