//! A signed DNS tree for the DANE tests, made at run time (signatures
//! expire, so every run signs anew): a parent zone `test.`, signed, with
//! `ns.test` and a delegation to each child zone, and the children signed
//! (with a DS in the parent), signed and then tampered with (bogus), or
//! unsigned (no DS) — keys from ldns-keygen (ECDSAP256SHA256, a KSK and a
//! ZSK per zone), signatures from ldns-signzone (NSEC3), all served by one
//! private nsd. The parent's keys are the trust anchor: a validator
//! anchored there finds a signed child Secure, a bogus one Bogus and an
//! unsigned one Insecure (the signed parent proves it has no DS).
//!
//! [`Unbound`] is a private validating resolver in front of it, for peers
//! that trust their resolver's AD bit (Postfix). [`query`] is a minimal DNS
//! client to check either, and [`tlsa_rdata`] computes TLSA data for a
//! certificate.

use crate::common::{pick_port, wait_until, TEST_PORTS};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a child zone is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Signed, with its DS in the parent: Secure.
    Signed,
    /// Signed, DS in the parent, then the data of its first TLSA record
    /// (or, without TLSA, of its first A, AAAA or TXT record) altered in
    /// the signed file, so that RRset's signatures fail: Bogus.
    Bogus,
    /// Not signed, no DS in the parent: Insecure.
    Unsigned,
}

/// A child zone of `test.`.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The zone's name without the final dot, e.g. `dane.test`.
    pub name: String,
    /// Zone-file lines relative to `$ORIGIN` (the zone), e.g.
    /// `@ IN MX 10 mx`, `mx IN A 127.0.0.3`,
    /// `_25._tcp.mx IN TLSA 3 1 1 ABCD…`. The SOA and NS records are added
    /// (the name server is `ns.test.`).
    pub records: Vec<String>,
    pub signing: Signing,
}

impl Zone {
    pub fn new(name: &str, records: &[&str], signing: Signing) -> Zone {
        Zone {
            name: name.to_string(),
            records: records.iter().map(|r| r.to_string()).collect(),
            signing,
        }
    }
}

/// The signed tree served by a private nsd; stopped on drop.
pub struct SignedDns {
    /// Where nsd answers (UDP and TCP).
    pub addr: SocketAddr,
    /// DNSKEY lines (zone-file format) of the parent `test.`: the trust
    /// anchor, e.g. for `[dns] dnssec_trust_anchor`, hickory's
    /// `TrustAnchors::from_file` or unbound's `trust-anchor-file`.
    pub anchor: PathBuf,
    dir: tempfile::TempDir,
    /// Key base names (KSK, ZSK) per zone, kept over [`SignedDns::set_zones`].
    keys: Vec<(String, String, String)>,
    serial: u32,
    child: Option<Child>,
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run a tool to completion; its stdout, or a panic with what it said.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/test installs nsd, ldnsutils, unbound)"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port in [`TEST_PORTS`] free for both UDP and TCP on `ip`.
pub fn free_dns_port(ip: &str) -> u16 {
    let addr: IpAddr = ip.parse().expect("an IP address");
    pick_port(TEST_PORTS, |port| dns_port_free(addr, port))
}

/// Whether nothing listens on `addr:port`, UDP or TCP.
fn dns_port_free(addr: IpAddr, port: u16) -> bool {
    UdpSocket::bind((addr, port)).is_ok() && TcpListener::bind((addr, port)).is_ok()
}

/// Stop a daemon started in its own process group: SIGTERM, then SIGKILL
/// to its group if it does not exit within 5 s.
fn stop_daemon(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    if wait_until(5, || matches!(child.try_wait(), Ok(Some(_)))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
    let _ = child.wait();
}

impl SignedDns {
    /// Make keys, write and sign `test.` and `zones` (each named under
    /// `test`), and serve them all from one nsd on `ip` (loopback) and a
    /// free port. Returns once nsd answers for every zone.
    pub fn start(ip: &str, zones: &[Zone]) -> SignedDns {
        let addr: IpAddr = ip.parse().expect("an IP address");
        assert!(addr.is_loopback(), "{ip}: peers live on 127.0.0.0/8 only");
        let dir = tempfile::tempdir().unwrap();
        let mut dns = SignedDns {
            addr: SocketAddr::new(addr, free_dns_port(ip)),
            anchor: dir.path().join("anchor.key"),
            dir,
            keys: vec![],
            serial: 1,
            child: None,
        };
        dns.publish(zones);
        dns
    }

    /// Publish `zones` instead (the parent's delegations and DS records
    /// follow): written, signed again and served by a new nsd on the same
    /// address. Keys stay, so the anchor does too.
    pub fn set_zones(&mut self, zones: &[Zone]) {
        if let Some(mut child) = self.child.take() {
            stop_daemon(&mut child);
        }
        self.serial += 1;
        self.publish(zones);
    }

    /// nsd's log (and what it printed).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("nsd.out"), read("nsd.log"))
    }

    /// The directory with the zone files, keys and nsd's configuration.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The base names (paths without .key/.private) of `zone`'s KSK and
    /// ZSK, made on first use.
    fn keys(&mut self, zone: &str) -> (String, String) {
        if let Some((_, k, z)) = self.keys.iter().find(|(n, _, _)| n == zone) {
            return (k.clone(), z.clone());
        }
        let keydir = self.dir.path().join("keys");
        std::fs::create_dir_all(&keydir).unwrap();
        let gen = |ksk: bool| {
            let mut cmd = Command::new("ldns-keygen");
            cmd.current_dir(&keydir).args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                cmd.arg("-k");
            }
            let base = run(cmd.arg(zone), "ldns-keygen");
            keydir.join(base.trim()).display().to_string()
        };
        let (ksk, zsk) = (gen(true), gen(false));
        self.keys.push((zone.to_string(), ksk.clone(), zsk.clone()));
        (ksk, zsk)
    }

    /// Sign `file` (zone `zone`) into `file.signed`: NSEC3 without extra
    /// iterations (RFC 9276), valid from an hour ago for a week.
    fn sign(&mut self, zone: &str, file: &Path) -> PathBuf {
        let (ksk, zsk) = self.keys(zone);
        let now = unix_now();
        let signed = PathBuf::from(format!("{}.signed", file.display()));
        run(
            Command::new("ldns-signzone")
                .args(["-n", "-t", "0"])
                .args(["-i", &(now - 3600).to_string()])
                .args(["-e", &(now + 7 * 86400).to_string()])
                .arg("-f")
                .arg(&signed)
                .arg(file)
                .args([&ksk, &zsk]),
            &format!("ldns-signzone {zone}"),
        );
        signed
    }

    fn publish(&mut self, zones: &[Zone]) {
        let d = self.dir.path().to_path_buf();
        let ip = self.addr.ip();
        let serial = self.serial;
        let soa = |origin: &str| {
            format!(
                "$ORIGIN {origin}.\n$TTL 300\n\
                 @ IN SOA ns.test. hostmaster.test. {serial} 3600 600 86400 300\n\
                 @ IN NS ns.test.\n"
            )
        };
        let mut parent = soa("test");
        parent.push_str(&format!("ns IN A {ip}\n"));
        let mut served = vec![];
        for zone in zones {
            assert!(
                zone.name.ends_with(".test") && zone.name != "ns.test",
                "{}: child zones are named under test. (and are not ns.test)",
                zone.name
            );
            let mut text = soa(&zone.name);
            for r in &zone.records {
                text.push_str(r);
                text.push('\n');
            }
            let file = d.join(format!("{}.zone", zone.name));
            std::fs::write(&file, text).unwrap();
            parent.push_str(&format!("{}. IN NS ns.test.\n", zone.name));
            let file = match zone.signing {
                Signing::Unsigned => file,
                Signing::Signed | Signing::Bogus => {
                    let signed = self.sign(&zone.name, &file);
                    let (ksk, _) = self.keys(&zone.name);
                    let ds = std::fs::read_to_string(format!("{ksk}.ds"))
                        .unwrap_or_else(|e| panic!("{ksk}.ds: {e}"));
                    parent.push_str(&ds);
                    parent.push('\n');
                    if zone.signing == Signing::Bogus {
                        tamper(&signed, &zone.name);
                    }
                    signed
                }
            };
            served.push((zone.name.clone(), file));
        }
        let file = d.join("test.zone");
        std::fs::write(&file, parent).unwrap();
        let signed = self.sign("test", &file);
        served.insert(0, ("test".to_string(), signed));
        // The anchor: every DNSKEY of the parent (hickory trusts an anchor
        // only when it holds all the zone's keys, KSK and ZSK).
        let (ksk, zsk) = self.keys("test");
        let mut anchor = String::new();
        for base in [ksk, zsk] {
            anchor.push_str(&std::fs::read_to_string(format!("{base}.key")).unwrap());
        }
        std::fs::write(&self.anchor, anchor).unwrap();

        let mut conf = format!(
            "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  do-ip6: no\n  \
             database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  username: \"\"\n  \
             chroot: \"\"\n  zonesdir: \"{d}\"\n  server-count: 1\n  verbosity: 1\n  \
             hide-version: yes\nremote-control:\n  control-enable: no\n",
            port = self.addr.port(),
            d = d.display()
        );
        for (name, file) in &served {
            conf.push_str(&format!(
                "zone:\n  name: {name}\n  zonefile: \"{}\"\n",
                file.display()
            ));
        }
        let conf_file = d.join("nsd.conf");
        std::fs::write(&conf_file, conf).unwrap();
        run(
            Command::new("nsd-checkconf").arg(&conf_file),
            "nsd-checkconf",
        );
        let out = std::fs::File::create(d.join("nsd.out")).unwrap();
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("nsd (Debian package nsd) is installed by scripts/test");
        self.child = Some(child);
        // Ready once it answers authoritatively for every zone.
        let names: Vec<String> = served.iter().map(|(n, _)| n.clone()).collect();
        let ready = wait_until(20, || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("nsd exited ({status}):\n{}", self.log());
            }
            names.iter().all(|n| {
                query(self.addr, n, RR_SOA)
                    .map(|a| a.rcode == 0 && a.aa && a.answers > 0)
                    .unwrap_or(false)
            })
        });
        assert!(ready, "nsd did not answer for {names:?}:\n{}", self.log());
    }
}

impl Drop for SignedDns {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_daemon(&mut child);
        }
        if std::thread::panicking() {
            eprintln!("--- nsd {} ---\n{}", self.addr, self.log());
        }
    }
}

/// Alter the data of one record of the signed zone file `signed` so its
/// RRSIG no longer matches: the first TLSA, else the first A, AAAA or TXT.
fn tamper(signed: &Path, zone: &str) {
    let text = std::fs::read_to_string(signed).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let kind = |l: &str| l.split_whitespace().nth(3).map(str::to_string);
    let pick = ["TLSA"]
        .iter()
        .find_map(|t| lines.iter().position(|l| kind(l).as_deref() == Some(t)))
        .or_else(|| {
            lines
                .iter()
                .position(|l| matches!(kind(l).as_deref(), Some("A") | Some("AAAA") | Some("TXT")))
        })
        .unwrap_or_else(|| panic!("bogus zone {zone}: no TLSA, A, AAAA or TXT record to alter"));
    let line = &mut lines[pick];
    let altered = match kind(line).as_deref() {
        // The last hex digit of the data (or the last octet).
        Some("TLSA") | Some("AAAA") => {
            let mut chars: Vec<char> = line.trim_end().chars().collect();
            let last = chars.len() - 1;
            chars[last] = if chars[last] == '0' { '1' } else { '0' };
            chars.into_iter().collect()
        }
        Some("A") => {
            let (head, octet) = line.trim_end().rsplit_once('.').unwrap();
            let n: u8 = octet.parse().unwrap();
            format!("{head}.{}", n ^ 1)
        }
        _ => {
            // TXT: one more character in the last string.
            let end = line.trim_end().rfind('"').unwrap();
            format!("{}x{}", &line[..end], &line[end..])
        }
    };
    *line = altered;
    std::fs::write(signed, lines.join("\n") + "\n").unwrap();
}

// -------------------------------------------------------------- unbound

/// A private validating unbound in front of a [`SignedDns`]: anchored at
/// `test.` with the same keys, `test.` stubbed to nsd, everything else
/// refused (and its queries leave from its own loopback address, so none
/// can leave the machine). Stopped on drop.
pub struct Unbound {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Unbound {
    /// Start on `ip:port` (port 53 for the libc resolver of a peer) and
    /// wait until it answers `test. SOA` validated (AD).
    pub fn start(ip: &str, port: u16, dns: &SignedDns) -> Unbound {
        let addr: IpAddr = ip.parse().expect("an IP address");
        assert!(addr.is_loopback(), "{ip}: peers live on 127.0.0.0/8 only");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "server:\n  interface: {ip}@{port}\n  port: {port}\n  do-ip6: no\n  \
             do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  \
             pidfile: \"{d}/unbound.pid\"\n  logfile: \"{d}/unbound.log\"\n  use-syslog: no\n  \
             verbosity: 1\n  val-log-level: 2\n  access-control: 127.0.0.0/8 allow\n  \
             do-not-query-localhost: no\n  outgoing-interface: {ip}\n  \
             trust-anchor-file: \"{anchor}\"\n  local-zone: \"test.\" transparent\n  \
             local-zone: \".\" refuse\n  module-config: \"validator iterator\"\n\
             remote-control:\n  control-enable: no\n\
             stub-zone:\n  name: \"test.\"\n  stub-addr: {nsd_ip}@{nsd_port}\n",
            anchor = dns.anchor.display(),
            nsd_ip = dns.addr.ip(),
            nsd_port = dns.addr.port(),
        );
        let conf_file = dir.path().join("unbound.conf");
        std::fs::write(&conf_file, conf).unwrap();
        run(
            Command::new("unbound-checkconf").arg(&conf_file),
            "unbound-checkconf",
        );
        let out = std::fs::File::create(dir.path().join("unbound.out")).unwrap();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("unbound (Debian package unbound) is installed by scripts/test");
        let mut unbound = Unbound {
            addr: SocketAddr::new(addr, port),
            dir,
            child: Some(child),
        };
        let ready = wait_until(20, || {
            if let Some(Ok(Some(status))) = unbound.child.as_mut().map(|c| c.try_wait()) {
                panic!("unbound exited ({status}):\n{}", unbound.log());
            }
            query(unbound.addr, "test", RR_SOA)
                .map(|a| a.rcode == 0 && a.ad)
                .unwrap_or(false)
        });
        assert!(
            ready,
            "unbound did not answer test. SOA validated:\n{}",
            unbound.log()
        );
        unbound
    }

    /// unbound's log (and what it printed).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("unbound.out"), read("unbound.log"))
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_daemon(&mut child);
        }
        if std::thread::panicking() {
            eprintln!("--- unbound {} ---\n{}", self.addr, self.log());
        }
    }
}

/// An address in 127.0.53.0/24 where UDP and TCP port 53 are free (only
/// root may bind it): for a resolver a libc resolv.conf can name. Avoids
/// 127.0.0.53/54 (systemd-resolved) and 127.0.0.1 (a system resolver).
pub fn free_resolver_ip() -> String {
    for _ in 0..200 {
        let ip = format!("127.0.53.{}", 1 + rand::random::<u8>() % 254);
        if dns_port_free(ip.parse().unwrap(), 53) {
            return ip;
        }
    }
    panic!("port 53 is taken on every address tried in 127.0.53.0/24");
}

// ---------------------------------------------------------- DNS client

pub const RR_A: u16 = 1;
pub const RR_SOA: u16 = 6;
pub const RR_MX: u16 = 15;
pub const RR_TXT: u16 = 16;
pub const RR_DS: u16 = 43;
pub const RR_DNSKEY: u16 = 48;
pub const RR_TLSA: u16 = 52;

/// The header of a DNS answer.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub rcode: u8,
    /// Authenticated Data: the resolver validated it.
    pub ad: bool,
    /// Authoritative Answer.
    pub aa: bool,
    /// Records in the answer section.
    pub answers: u16,
}

/// Ask `server` (UDP, 1 s) for `name`/`qtype` with recursion desired and
/// the DNSSEC OK bit (EDNS0): the answer's header.
pub fn query(server: SocketAddr, name: &str, qtype: u16) -> std::io::Result<Answer> {
    let id: u16 = rand::random();
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x20]); // RD, AD (ask for the AD bit)
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
                                  // OPT: root owner, type 41, UDP size 4096, DO bit, no data.
    q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    sock.send_to(&q, server)?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        if from != server || n < 12 || buf[..2] != id.to_be_bytes() {
            continue;
        }
        return Ok(Answer {
            rcode: buf[3] & 0x0f,
            ad: buf[3] & 0x20 != 0,
            aa: buf[2] & 0x04 != 0,
            answers: u16::from_be_bytes([buf[6], buf[7]]),
        });
    }
}

// ----------------------------------------------------------------- TLSA

/// The data of a TLSA record for `cert_der` (a DER certificate), e.g.
/// `3 1 1 <HEX>`: `selector` 0 = the whole certificate, 1 = its
/// SubjectPublicKeyInfo; `matching` 0 = the bytes themselves, 1 = SHA-256,
/// 2 = SHA-512.
pub fn tlsa_rdata(usage: u8, selector: u8, matching: u8, cert_der: &[u8]) -> String {
    use sha2::Digest;
    let der = rustls_pki_types::CertificateDer::from(cert_der);
    let selected: Vec<u8> = match selector {
        0 => cert_der.to_vec(),
        1 => webpki::EndEntityCert::try_from(&der)
            .expect("a DER certificate webpki can parse")
            .subject_public_key_info()
            .to_vec(),
        s => panic!("TLSA selector {s}: 0 or 1"),
    };
    let data: Vec<u8> = match matching {
        0 => selected,
        1 => sha2::Sha256::digest(&selected).to_vec(),
        2 => sha2::Sha512::digest(&selected).to_vec(),
        m => panic!("TLSA matching type {m}: 0, 1 or 2"),
    };
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    format!("{usage} {selector} {matching} {hex}")
}
