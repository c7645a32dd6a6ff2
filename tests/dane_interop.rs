//! DANE (RFC 7672) with real peers on loopback. First the DNSSEC test peer
//! itself (tests/peers/dnssec.rs) is proven: hickory's own validator,
//! anchored at the signed parent `test.`, finds a signed child Secure, a
//! tampered one Bogus and an unsigned one Insecure, and a validating
//! unbound in front of it sets AD, SERVFAILs and leaves AD off
//! accordingly. Then Postfix as a DANE sender (it trusts that unbound's AD
//! bit) delivers to faxmta, whose certificate the zone publishes as TLSA
//! `3 1 1`, with a verified TLS connection — and does not deliver when the
//! TLSA record does not match faxmta's certificate.
//!
//! The Postfix tests need root (a mount namespace for its resolv.conf,
//! port 53 for its resolver, Postfix's master) and skip, saying so,
//! without it.

mod common;
mod peers;

use common::*;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use peers::dnssec::{free_dns_port, free_resolver_ip, query, RR_MX, RR_TLSA};
use peers::*;
use std::process::Command;
use std::sync::Arc;

/// A self-signed certificate for `name` (rcgen, ECDSA P-256): DER, PEM
/// certificate, PEM key.
fn certificate(name: &str) -> (Vec<u8>, String, String) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (
        cert.cert.der().to_vec(),
        cert.cert.pem(),
        cert.key_pair.serialize_pem(),
    )
}

/// Records of a mail domain whose MX `mx` is at `ip`, with `tlsa` (TLSA
/// data) at `_PORT._tcp.mx`.
fn mail_zone(name: &str, ip: &str, port: u16, tlsa: &str, signing: Signing) -> Zone {
    Zone::new(
        name,
        &[
            "@ IN MX 10 mx",
            &format!("mx IN A {ip}"),
            &format!("_{port}._tcp.mx IN TLSA {tlsa}"),
        ],
        signing,
    )
}

/// The validation outcome of `name`/`rtype` with hickory anchored at
/// `dns`'s parent keys: the proof of each answer record, or the error.
fn validate(dns: &SignedDns, name: &str, rtype: RecordType) -> Result<Vec<(Proof, RData)>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ns = NameServerConfig::udp_and_tcp(dns.addr.ip());
        for c in &mut ns.connections {
            c.port = dns.addr.port();
        }
        let anchors = TrustAnchors::from_file(&dns.anchor).map_err(|e| format!("anchor: {e}"))?;
        let mut opts = ResolverOpts::default();
        opts.validate = true;
        opts.ndots = 0;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .with_trust_anchor(Arc::new(anchors))
        .build()
        .map_err(|e| format!("resolver: {e}"))?;
        match resolver.lookup(format!("{name}."), rtype).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| (r.proof, r.data.clone()))
                .collect()),
            Err(e) => Err(format!("{e} ({e:?})")),
        }
    })
}

/// Every record Secure (and at least one).
fn proofs(result: &Result<Vec<(Proof, RData)>, String>) -> Vec<Proof> {
    match result {
        Ok(records) => records.iter().map(|(p, _)| *p).collect(),
        Err(e) => panic!("lookup failed: {e}"),
    }
}

#[test]
fn tlsa_data_agrees_with_openssl() {
    let (der, pem, _) = certificate("mx.dane.test");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.pem");
    std::fs::write(&file, pem).unwrap();
    let openssl = |script: &str| {
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .unwrap()
            .to_uppercase()
    };
    let spki = openssl(
        "openssl x509 -in \"$1\" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256",
    );
    assert_eq!(tlsa_rdata(3, 1, 1, &der), format!("3 1 1 {spki}"));
    let spki512 = openssl(
        "openssl x509 -in \"$1\" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha512",
    );
    assert_eq!(tlsa_rdata(3, 1, 2, &der), format!("3 1 2 {spki512}"));
    let whole = openssl("openssl x509 -in \"$1\" -outform DER | openssl dgst -sha256");
    assert_eq!(tlsa_rdata(3, 0, 1, &der), format!("3 0 1 {whole}"));
    let hex: String = der.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(tlsa_rdata(2, 0, 0, &der), format!("2 0 0 {hex}"));
}

#[test]
fn the_signed_zones_validate_as_secure_bogus_and_insecure() {
    let (der, _, _) = certificate("mx.dane.test");
    let tlsa = tlsa_rdata(3, 1, 1, &der);
    let zones = [
        mail_zone("dane.test", "127.0.0.1", 25, &tlsa, Signing::Signed),
        mail_zone("bogus.test", "127.0.0.1", 25, &tlsa, Signing::Bogus),
        mail_zone("insecure.test", "127.0.0.1", 25, &tlsa, Signing::Unsigned),
    ];
    let mut dns = SignedDns::start("127.0.0.1", &zones);

    // Signed: the TLSA record, as published, and the MX are Secure.
    let signed = validate(&dns, "_25._tcp.mx.dane.test", RecordType::TLSA);
    assert_eq!(proofs(&signed), [Proof::Secure]);
    let Ok(records) = &signed else { unreachable!() };
    let RData::TLSA(record) = &records[0].1 else {
        panic!("not a TLSA record: {records:?}")
    };
    let hex: String = record
        .cert_data
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(tlsa.ends_with(&hex), "{tlsa} published as {record:?}");
    assert_eq!(
        proofs(&validate(&dns, "dane.test", RecordType::MX)),
        [Proof::Secure]
    );
    // Bogus: the tampered TLSA RRset fails validation; the zone's other
    // RRsets are untouched and still Secure.
    match validate(&dns, "_25._tcp.mx.bogus.test", RecordType::TLSA) {
        Err(e) => assert!(e.contains("DnssecBogus"), "{e}"),
        Ok(r) => panic!("a tampered TLSA record validated: {r:?}"),
    }
    assert_eq!(
        proofs(&validate(&dns, "bogus.test", RecordType::MX)),
        [Proof::Secure]
    );
    // Unsigned: the signed parent proves there is no DS: Insecure.
    assert_eq!(
        proofs(&validate(
            &dns,
            "_25._tcp.mx.insecure.test",
            RecordType::TLSA
        )),
        [Proof::Insecure]
    );

    // unbound in front of it: AD for the signed zone, SERVFAIL for the
    // bogus TLSA, an answer without AD for the unsigned zone.
    {
        let unbound = Unbound::start("127.0.0.1", free_dns_port("127.0.0.1"), &dns);
        let ask = |name: &str, t| query(unbound.addr, name, t).unwrap();
        let a = ask("_25._tcp.mx.dane.test", RR_TLSA);
        assert!(a.rcode == 0 && a.ad && a.answers >= 1, "{a:?}");
        let a = ask("_25._tcp.mx.bogus.test", RR_TLSA);
        assert_eq!(a.rcode, 2, "SERVFAIL expected: {a:?}\n{}", unbound.log());
        let a = ask("bogus.test", RR_MX);
        assert!(a.rcode == 0 && a.ad, "{a:?}");
        let a = ask("_25._tcp.mx.insecure.test", RR_TLSA);
        assert!(a.rcode == 0 && !a.ad && a.answers == 1, "{a:?}");
    }

    // Published again: dane.test unsigned now (its DS gone from the
    // parent), insecure.test signed; the anchor stays.
    dns.set_zones(&[
        mail_zone("dane.test", "127.0.0.1", 25, &tlsa, Signing::Unsigned),
        mail_zone("insecure.test", "127.0.0.1", 25, &tlsa, Signing::Signed),
    ]);
    assert_eq!(
        proofs(&validate(&dns, "_25._tcp.mx.dane.test", RecordType::TLSA)),
        [Proof::Insecure]
    );
    assert_eq!(
        proofs(&validate(
            &dns,
            "_25._tcp.mx.insecure.test",
            RecordType::TLSA
        )),
        [Proof::Secure]
    );
}

// ------------------------------------------------------ Postfix → faxmta

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// faxmta as the MX of `domains` (local, any user) on `ip`, showing the
/// certificate `cert_pem`/`key_pem`; the DNSSEC tree publishing each
/// domain (signed) with its TLSA data at `_PORT._tcp.mx.DOMAIN`; unbound
/// on port 53 in front of it; and Postfix sending over DANE, through that
/// resolver, to each domain's MX on faxmta's port.
struct Interop {
    // Dropped in this order: the sender first, then what it uses.
    sender: DaneSender,
    unbound: Unbound,
    _dns: SignedDns,
    server: Server,
    _certs: tempfile::TempDir,
}

impl Interop {
    fn start(ip: &str, domains: &[(&str, &str)], cert_pem: &str, key_pem: &str) -> Interop {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = (certs.path().join("mx.crt"), certs.path().join("mx.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let mut server = Server::start_node(ip, "", "");
        let d = server.dir.path().display().to_string();
        let mut local = String::new();
        for (domain, _) in domains {
            local.push_str(&format!(
                "[[domain]]\nname = \"{domain}\"\nkind = \"local\"\n\
                 deliver = \"maildir:{d}/mail/{{domain}}/{{user}}\"\n"
            ));
        }
        restart_with(
            &mut server,
            &[
                (
                    &format!("[tls]\ngenerated_dir = \"{d}/tls\"\n"),
                    &format!(
                        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                        cert.display(),
                        key.display()
                    ),
                ),
                (
                    "[[domain]]\nname = \"localhost\"\n",
                    &format!("{local}[[domain]]\nname = \"localhost\"\n"),
                ),
            ],
        );
        let port = server.mx_port;
        let zones: Vec<Zone> = domains
            .iter()
            .map(|(domain, tlsa)| mail_zone(domain, ip, port, tlsa, Signing::Signed))
            .collect();
        let dns = SignedDns::start("127.0.0.1", &zones);
        let unbound = Unbound::start(&free_resolver_ip(), 53, &dns);
        let transport: String = domains
            .iter()
            .map(|(domain, _)| format!("{domain} smtp:{domain}:{port}\n"))
            .collect();
        let sender_port = free_port();
        let sender = DaneSender::start("127.0.0.1", sender_port, &unbound, &transport);
        Interop {
            sender,
            unbound,
            _dns: dns,
            server,
            _certs: certs,
        }
    }

    /// Hand a message for `to` with `subject` to the sending Postfix.
    fn send(&self, to: &str, subject: &str) {
        let (ok, out) = swaks(&[
            "--server",
            &format!("{}:{}", self.sender.ip, self.sender.port),
            "--from",
            "someone@sender.test",
            "--to",
            to,
            "--header",
            &format!("Subject: {subject}"),
        ]);
        assert!(ok, "the sending Postfix did not take the message:\n{out}");
    }

    /// Wait up to `secs` for a line of Postfix's log holding every one of
    /// `needles`; that line.
    fn wait_log(&self, needles: &[&str], secs: u64) -> String {
        let find = || {
            self.sender
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string)
        };
        wait_until(secs, || find().is_some());
        find().unwrap_or_else(|| {
            panic!(
                "no line with {needles:?} in the Postfix log:\n{}\n--- unbound ---\n{}",
                self.sender.log(),
                self.unbound.log()
            )
        })
    }
}

/// faxmta's own IP for these tests: not 127.0.0.1, which the sending
/// Postfix counts as itself (an MX there would be a mail loop to it).
const MX_IP: &str = "127.0.20.1";

#[test]
fn postfix_delivers_to_faxmta_over_dane() {
    if !is_root() {
        eprintln!("skipped: needs root (unshare -m for Postfix's resolv.conf, port 53, Postfix)");
        return;
    }
    let (der, cert, key) = certificate("mx.dane.test");
    let tlsa = tlsa_rdata(3, 1, 1, &der);
    let t = Interop::start(MX_IP, &[("dane.test", &tlsa)], &cert, &key);
    let port = t.server.mx_port;

    t.send("alice@dane.test", "over dane");
    // Over TLS (ESMTPS in faxmta's Received header) …
    t.server.wait_mail_with(
        "dane.test",
        "alice",
        &["Subject: over dane", "(faxmta) with ESMTPS"],
        60,
    );
    // … that Postfix verified: at level dane, with no CA configured, only
    // a TLSA match verifies.
    let verified = t.wait_log(
        &[
            "Verified TLS connection established to mx.dane.test[",
            &format!(":{port}"),
        ],
        10,
    );
    assert_contains(&verified, MX_IP);
    t.wait_log(&["to=<alice@dane.test>", "status=sent"], 10);

    // posttls-finger, with the same resolver, shows the DANE match itself.
    let finger = t.sender.posttls_finger(&format!("dane.test:{port}"));
    assert_contains(
        &finger,
        &format!("Matched DANE EE certificate at depth 0: {tlsa}"),
    );
    assert_contains(&finger, "Verified TLS connection established");
}

#[test]
fn postfix_does_not_deliver_when_the_tlsa_does_not_match() {
    if !is_root() {
        eprintln!("skipped: needs root (unshare -m for Postfix's resolv.conf, port 53, Postfix)");
        return;
    }
    // The zone publishes another certificate's key; faxmta shows its own.
    let (_, cert, key) = certificate("mx.wrong.test");
    let (other, _, _) = certificate("mx.wrong.test");
    let t = Interop::start(
        MX_IP,
        &[("wrong.test", &tlsa_rdata(3, 1, 1, &other))],
        &cert,
        &key,
    );

    t.send("alice@wrong.test", "not over dane");
    let deferred = t.wait_log(&["to=<alice@wrong.test>", "status=deferred"], 60);
    assert_contains(&deferred, "dsn=4.7.5");
    assert_contains(&deferred, "Server certificate not verified");
    t.wait_log(
        &[
            "certificate verification failed for mx.wrong.test[",
            "no matching DANE TLSA records",
        ],
        10,
    );
    assert!(
        t.server.maildir("wrong.test", "alice").is_empty(),
        "delivered despite the TLSA mismatch:\n{}",
        t.sender.log()
    );
}
