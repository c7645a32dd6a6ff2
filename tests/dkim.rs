//! DKIM and DMARC with the real binary: keys made by `faxmta dkim keygen`,
//! their records served by the test DNS server (tests/peers/dns.py);
//! outbound mail signed on its way to Postfix's smtp-sink and verified
//! twice — by mail-auth's verifier here, and by a second faxmta that
//! records `dkim=pass` in Authentication-Results; a tampered copy fails
//! both; DMARC p=reject refuses a spoofed From under `dmarc = "reject"`.
//! Nothing leaves 127.0.0.0/8.

mod common;
mod peers;

use common::*;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use peers::{shared_port, Dns, Sink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `faxmta dkim keygen DOMAIN --selector S --type KIND --out DIR`: the key
/// file and the zone line it printed.
fn keygen(dir: &Path, domain: &str, selector: &str, kind: &str) -> (PathBuf, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .args([
            "dkim",
            "keygen",
            domain,
            "--selector",
            selector,
            "--type",
            kind,
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let key = dir.join(format!("{domain}.{selector}.key"));
    assert_contains(&text, &format!("wrote {}", key.display()));
    assert_contains(&text, &format!("selector = \"{selector}\""));
    let record = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "{selector}._domainkey.{domain}. IN TXT \"v=DKIM1; k="
            ))
        })
        .unwrap_or_else(|| panic!("no TXT record in:\n{text}"))
        .to_string();
    let mode = std::fs::metadata(&key).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // Never overwritten.
    let again = Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .args(["dkim", "keygen", domain, "--selector", selector, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!again.status.success(), "{}", output_text(&again));
    (key, record)
}

fn zone(records: &[String]) -> String {
    let mut z = String::from("$TTL 60\ntest. SOA ns.test. hostmaster.test. 1 60 60 60 60\n");
    for r in records {
        z.push_str(r);
        z.push('\n');
    }
    z
}

/// The message in a smtp-sink dump (after its X-… lines), CRLF line ends.
fn message_of(dump: &str) -> String {
    let text = dump.replace("\r\n", "\n");
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| {
            ["X-Client-", "X-Helo-Args", "X-Mail-Args", "X-Rcpt-Args"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    format!("{}\r\n", body.join("\r\n"))
}

/// mail-auth's verdicts on `message`, asking `dns`.
fn verify(dns: &Dns, message: &str) -> Vec<DkimResult> {
    let addr = format!("127.0.0.1:{}", dns.port).parse().unwrap();
    let resolver = faxmta_smtp::Dns::new(&[addr], std::time::Duration::from_secs(2))
        .unwrap()
        .resolver()
        .clone();
    let auth = MessageAuthenticator(resolver);
    let parsed = AuthenticatedMessage::parse(message.as_bytes()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(auth.verify_dkim(&parsed))
        .iter()
        .map(|o| o.result().clone())
        .collect()
}

/// A faxmta that verifies DKIM and applies DMARC as `dmarc` says, asking
/// `dns`; the test client (127.0.0.1) may not relay.
fn verifier(dns: &Dns, dmarc: &str) -> Server {
    let mut s = Server::start_with(
        "",
        &format!("[policy]\nspf = \"tag\"\ndkim = \"verify\"\ndmarc = \"{dmarc}\"\n"),
    );
    restart_with(
        &mut s,
        &[(
            "nameservers = [\"127.0.0.1:9\"]",
            &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
        )],
    );
    s
}

/// The header section of the message in alice's Maildir whose text holds
/// every one of `needles`, waiting for it: Maildir names do not keep
/// arrival order, so a message is found by its content.
fn alice_header(s: &Server, needles: &[&str]) -> String {
    let text = s.wait_mail_with("example.test", "alice", needles, 10);
    text.split("\n\n").next().unwrap_or_default().to_string()
}

#[test]
fn our_signature_verifies_and_a_tampered_copy_fails() {
    let keys = tempfile::tempdir().unwrap();
    let (ed_key, ed_record) = keygen(keys.path(), "sign.test", "s1", "ed25519");
    let (rsa_key, rsa_record) = keygen(keys.path(), "rsa.test", "s2", "rsa");
    assert!(
        rsa_record.contains("k=rsa; p=MII") && rsa_record.contains("\" \""),
        "{rsa_record}"
    );
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        ed_record,
        rsa_record,
        "dest.test. MX 10 mx.dest.test.".into(),
        "mx.dest.test. A 127.0.0.2".into(),
        "sign.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"".into(),
        "_dmarc.sign.test. TXT \"v=DMARC1; p=reject\"".into(),
        "rsa.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"".into(),
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let signer = peers::faxmta(
        &dns,
        Some(port),
        &format!(
            "[[dkim]]\ndomain = \"sign.test\"\nselector = \"s1\"\nkey = \"{}\"\n\
             [[dkim]]\ndomain = \"rsa.test\"\nselector = \"s2\"\nkey = \"{}\"\n",
            ed_key.display(),
            rsa_key.display()
        ),
    );
    let msg = |from: &str, subject: &str| {
        format!(
            "From: Alice <{from}>\r\nTo: <rcpt@dest.test>\r\nSubject: {subject}\r\n\
             Date: Sat, 21 Nov 2026 21:30:50 +0000\r\nMessage-ID: <{subject}@sign.test>\r\n\r\n\
             Hello, signed world.\r\n  spaces  and\ttabs\r\n"
        )
    };
    send(
        &signer,
        "alice@sign.test",
        "rcpt@dest.test",
        &msg("alice@sign.test", "ed"),
    );
    send(
        &signer,
        "bob@rsa.test",
        "rcpt@dest.test",
        &msg("bob@rsa.test", "rsa"),
    );
    send(
        &signer,
        "carol@other.test",
        "rcpt@dest.test",
        &msg("carol@other.test", "unsigned"),
    );
    let dumps = sink.wait_dumps(3, 15);
    assert_eq!(dumps.len(), 3, "{}", signer.log());
    let by_subject = |s: &str| {
        message_of(
            dumps
                .iter()
                .find(|d| d.contains(&format!("Subject: {s}")))
                .unwrap_or_else(|| panic!("no {s} in {dumps:?}")),
        )
    };
    let ed = by_subject("ed");
    let rsa = by_subject("rsa");
    // smtp-sink puts its own Received on top.
    assert!(ed.contains("\r\nDKIM-Signature: v=1; "), "{ed}");
    assert_contains(&ed, "a=ed25519-sha256");
    assert_contains(&ed, "d=sign.test");
    assert_contains(&rsa, "a=rsa-sha256");
    assert!(!by_subject("unsigned").contains("DKIM-Signature"));

    // mail-auth's verifier, against the records the DNS server serves.
    assert_eq!(verify(&dns, &ed), [DkimResult::Pass]);
    assert_eq!(verify(&dns, &rsa), [DkimResult::Pass]);
    let tampered = ed.replace("Hello, signed world.", "Hello, forged world.");
    let results = verify(&dns, &tampered);
    assert!(
        results.len() == 1 && results[0] != DkimResult::Pass,
        "{results:?}"
    );
    let forged_subject = rsa.replace("Subject: rsa", "Subject: rsb");
    assert!(
        !matches!(verify(&dns, &forged_subject)[..], [DkimResult::Pass]),
        "a changed signed header must not verify"
    );

    // faxmta itself, the message re-injected as received.
    let check = verifier(&dns, "reject");
    send(&check, "alice@sign.test", "alice@example.test", &ed);
    let head = alice_header(&check, &["Subject: ed", "Hello, signed world."]);
    assert_contains(
        &head,
        "Authentication-Results: mx.example.test;\n\tspf=pass ",
    );
    assert_contains(&head, "\tdkim=pass header.d=sign.test header.s=s1;\n");
    assert_contains(
        &head,
        "\tdmarc=pass (p=reject dis=none) header.from=sign.test\n",
    );
    send(&check, "alice@sign.test", "alice@example.test", &tampered);
    let head = alice_header(&check, &["Subject: ed", "Hello, forged world."]);
    assert_contains(
        &head,
        "\tdkim=fail (body hash did not verify) header.d=sign.test header.s=s1;\n",
    );
    // SPF still passes aligned: DMARC passes, the message is taken.
    assert_contains(&head, "dmarc=pass");
    send(&check, "bob@rsa.test", "alice@example.test", &rsa);
    assert_contains(
        &alice_header(&check, &["Subject: rsa"]),
        "\tdkim=pass header.d=rsa.test header.s=s2;\n",
    );
}

#[test]
fn dmarc_reject_refuses_a_spoofed_from() {
    let dns = Dns::start(&zone(&[
        "_dmarc.bank.test. TXT \"v=DMARC1; p=reject\"".into(),
        "bank.test. TXT \"v=spf1 ip4:192.0.2.1 -all\"".into(),
        "_dmarc.shop.test. TXT \"v=DMARC1; p=quarantine\"".into(),
        "spammer.test. TXT \"v=spf1 ip4:127.0.0.1 -all\"".into(),
    ]));
    let spoof =
        |from: &str| format!("From: <{from}>\r\nSubject: urgent\r\n\r\nPlease wire the money.\r\n");
    let reject = verifier(&dns, "reject");
    let mut c = reject.connect();
    assert!(c.cmd("EHLO spammer.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<x@spammer.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(spoof("ceo@bank.test").as_bytes());
    let r = c.cmd(".");
    assert!(
        r.starts_with("550 5.7.1 Message rejected: DMARC policy of bank.test (p=reject)"),
        "{r}"
    );
    // p=quarantine: taken and marked.
    assert!(c.cmd("MAIL FROM:<x@spammer.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(spoof("boss@shop.test").as_bytes());
    let r = c.cmd(".");
    assert!(r.starts_with("250 "), "{r}");
    c.cmd("QUIT");
    let head = alice_header(&reject, &["header.from=shop.test"]);
    assert_contains(
        &head,
        "dmarc=fail (p=quarantine dis=quarantine) header.from=shop.test",
    );
    assert_contains(&head, "\nX-Spam-Flag: YES");
    assert_contains(&head, "dkim=none (no signature)");
    assert_eq!(reject.maildir("example.test", "alice").len(), 1);
    assert_contains(
        &reject.log(),
        "NOQUEUE: reject: END-OF-MESSAGE from [127.0.0.1]: 550 5.7.1",
    );

    // dmarc = "tag": the same spoof is taken, recorded and marked.
    let tag = verifier(&dns, "tag");
    send(
        &tag,
        "x@spammer.test",
        "alice@example.test",
        &spoof("ceo@bank.test"),
    );
    let head = alice_header(&tag, &["bank.test"]);
    assert_contains(
        &head,
        "dmarc=fail (p=reject dis=quarantine) header.from=bank.test",
    );
    assert_contains(&head, "\nX-Spam-Flag: YES");
}
