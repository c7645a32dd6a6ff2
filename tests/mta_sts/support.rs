//! Helpers of tests/mta_sts.rs: a test CA (rcgen) that issues the
//! certificates of the receiving MX and of the policy host, the policy
//! host itself (tests/peers/https_policy.py), and the [`World`] one case
//! runs in: the DNS server (tests/peers/dns.py) with the domain's MX, A
//! and `_mta-sts` TXT records, the policy host, and the CA file the
//! sending faxmta trusts.

use crate::common::*;
use crate::peers::*;
use std::path::PathBuf;

/// The recipient domain of every case.
pub const DOMAIN: &str = "sts.test";
/// Its MX host.
pub const MX: &str = "mx.sts.test";
/// Where the policy host listens (its A record says so).
const POLICY_IP: &str = "127.0.0.1";

/// A policy body in `mode` listing `mx` hosts, valid for a day.
pub fn policy(mode: &str, mx: &[&str]) -> String {
    let mut text = format!("version: STSv1\nmode: {mode}\n");
    for host in mx {
        text.push_str(&format!("mx: {host}\n"));
    }
    text.push_str("max_age: 86400\n");
    text
}

/// The peers of one case: the CA, DNS for `sts.test` (its MX `mx.sts.test`
/// on the receiver's address, `mta-sts.sts.test` on the policy host's,
/// the `_mta-sts` TXT record), the policy host.
pub struct World {
    pub ca: Ca,
    pub dns: Dns,
    pub policy: HttpsHost,
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
        let policy = HttpsHost::start(POLICY_IP, &policy_cert, body);
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
