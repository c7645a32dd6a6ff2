//! The POP3 fax gateway with the real binary and a real Dovecot POP3
//! server (tests/peers/dovecot_pop3.rs, on 127.0.0.1): a fax request put
//! into the mailbox is fetched, faxed through the simulated engine (the
//! remote machine stores the TIFF), the sender's report arrives in her
//! Maildir, and the mailbox is empty afterwards (DELE). Over STLS and
//! POP3S: a sender who may not fax gets a failure report, so does a mail
//! without a fax recipient; with `delete = false` a mail is fetched once
//! and left on the server. A sender whose mail is hosted elsewhere gets
//! the report by SMTP (a Postfix smtp-sink stands for that server).

mod common;
#[path = "peers/dovecot_pop3.rs"]
mod dovecot_pop3;
mod peers;

use common::*;
use dovecot_pop3::DovecotPop3;
use std::path::{Path, PathBuf};

/// The fax setup of tests/fax.rs (fax domain fax.localhost, alice as the
/// one fax user, success reports) and one `[[pop3]]` mailbox (`pop3`:
/// its TOML lines after host, port, user and password_file). The
/// requests of these tests carry a plain From, believed with `senders =
/// "any"`, unless `pop3` says otherwise: the DKIM proof has its own test.
fn config(work: &Path, dovecot: &DovecotPop3, port: u16, pop3: &str) -> String {
    let w = work.display();
    let pop3 = if pop3.contains("senders") {
        pop3.to_string()
    } else {
        format!("senders = \"any\"\n{pop3}")
    };
    std::fs::write(work.join("pop3.pass"), format!("{}\n", dovecot.password)).unwrap();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
lines = 1
retries = 1
retry_interval = "1s"
success_report = true
spool = "{w}/spool"
archive = "{w}/sent"
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
csid = "REMOTE {{number}}"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
[[pop3]]
host = "127.0.0.1"
port = {port}
user = "{user}"
password_file = "{w}/pop3.pass"
poll = "1s"
timeout = "10s"
{pop3}
"#,
        user = dovecot.user,
    )
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The mail in `user@example.test`'s Maildir containing `needle`, waiting
/// up to `secs` for it.
fn mail_with(s: &Server, user: &str, needle: &str, secs: u64) -> String {
    s.wait_mail_with("example.test", user, &[needle], secs)
}

#[test]
fn a_request_in_the_mailbox_is_faxed_reported_and_deleted() {
    let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
    dovecot.put(
        "From: Alice Example <alice@example.test>\r\n\
         To: Fax Bob <+15551234567@fax.localhost>\r\n\
         Cc: bob@example.test\r\n\
         Subject: Via POP3\r\n\
         Message-ID: <pop3-1@example.test>\r\n\
         \r\n\
         Please fax this page.\r\n",
    );
    let work = tempfile::tempdir().unwrap();
    let port = dovecot.port;
    let s = Server::start_with("", &config(work.path(), &dovecot, port, "tls = \"none\""));
    let report = mail_with(&s, "alice", "Subject: Fax to +15551234567 sent", 60);
    for needle in [
        "Your fax was sent.",
        "Subject:        Via POP3",
        "X-Fax-Result: sent",
    ] {
        assert_contains(&report, needle);
    }
    // The remote machine got the fax; the mailbox is empty (DELE, QUIT).
    let remote: Vec<PathBuf> = files(&work.path().join("remote"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "tif"))
        .collect();
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert!(
        dovecot.wait_count(0, 10),
        "still in the mailbox:\n{}",
        dovecot.log()
    );
    let log = s.log();
    assert_contains(&log, "fax request fetched from pop3 faxgw@127.0.0.1");
    // The ordinary recipient in Cc is not ours to deliver: nothing for bob
    // (once the queue is empty, a delivery to him would have been made).
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert!(s.maildir("example.test", "bob").is_empty());
    // Fetched once only: one fax, one report, a later poll past.
    let polls = dovecot.logins();
    assert!(
        wait_until(10, || dovecot.logins() > polls),
        "no later poll:\n{}",
        dovecot.log()
    );
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_eq!(
        subject_counts(&s, "example.test", "alice")
            .get("Fax to +15551234567 sent")
            .copied(),
        Some(1)
    );
    // Plain text, as configured (loopback).
    let log = dovecot.log();
    let login = log
        .lines()
        .find(|l| l.contains("Login: user=<faxgw>"))
        .unwrap_or_else(|| panic!("no login:\n{log}"));
    assert!(!login.contains(", TLS"), "{login}");
}

#[test]
fn refused_requests_get_failure_reports_over_stls_and_pop3s() {
    for implicit in [false, true] {
        let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
        // bob is no fax user; carol's mail names no fax address.
        dovecot.put(
            "From: bob@example.test\r\nTo: +15551234567@fax.localhost\r\n\
             Subject: Not allowed\r\n\r\nx\r\n",
        );
        dovecot.put(
            "From: Alice <alice@example.test>\r\nTo: someone@elsewhere.test\r\n\
             Subject: No number\r\n\r\nx\r\n",
        );
        let work = tempfile::tempdir().unwrap();
        let (port, tls) = match implicit {
            false => (dovecot.port, "starttls"),
            true => (dovecot.pop3s_port, "implicit"),
        };
        let s = Server::start_with(
            "",
            &config(
                work.path(),
                &dovecot,
                port,
                &format!("tls = \"{tls}\"\ntls_verify = false"),
            ),
        );
        let to_bob = mail_with(&s, "bob", "Undelivered Mail Returned to Sender", 30);
        assert_contains(&to_bob, "5.7.1");
        assert_contains(&to_bob, "+15551234567@fax.localhost");
        assert_contains(&to_bob, "Subject: Not allowed");
        let to_alice = mail_with(&s, "alice", "No fax recipient", 30);
        assert_contains(&to_alice, "Status: 5.1.3");
        assert_contains(&to_alice, "someone@elsewhere.test");
        assert!(dovecot.wait_count(0, 10), "{}", dovecot.log());
        // Nothing was faxed, nothing went to elsewhere.test.
        assert!(files(&work.path().join("remote")).is_empty());
        assert!(wait_queue_empty(&s, 10), "{:?}", queue_json(&s));
        // Over TLS: Dovecot logs each login as TLS-protected.
        let log = dovecot.log();
        let logins: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Login: user=<faxgw>"))
            .collect();
        assert!(!logins.is_empty(), "{log}");
        assert!(logins.iter().all(|l| l.contains(", TLS")), "{log}");
    }
}

#[test]
fn without_delete_a_mail_is_fetched_once_and_left() {
    let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
    dovecot.put(
        "From: alice@example.test\r\nTo: +15551234567@fax.localhost\r\n\
         Subject: Keep it\r\n\r\nx\r\n",
    );
    let work = tempfile::tempdir().unwrap();
    let port = dovecot.port;
    let uidl = work.path().join("seen.uidl");
    let mut s = Server::start_with(
        "",
        &config(
            work.path(),
            &dovecot,
            port,
            &format!(
                "tls = \"none\"\ndelete = false\nuidl_file = \"{}\"",
                uidl.display()
            ),
        ),
    );
    mail_with(&s, "alice", "Subject: Fax to +15551234567 sent", 60);
    // Several polls later, and after a restart: still one fax, and the
    // mail is still on the server. (Three logins: the restarted server
    // polled at least twice, whatever the one before it did last.)
    let polls = dovecot.logins();
    restart_with(&mut s, &[]);
    assert!(
        wait_until(20, || dovecot.logins() >= polls + 3),
        "not polled again:\n{}",
        dovecot.log()
    );
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_eq!(dovecot.count(), 1);
    assert_eq!(
        subject_counts(&s, "example.test", "alice")
            .get("Fax to +15551234567 sent")
            .copied(),
        Some(1),
        "{}",
        s.log()
    );
    assert_eq!(std::fs::read_to_string(&uidl).unwrap().lines().count(), 1);
}

#[test]
fn a_hosted_senders_report_goes_out_by_smtp() {
    // The sender's domain is hosted on another server (an smtp-sink on
    // 127.0.0.2): the report leaves by SMTP like any mail.
    let sink_port = free_port();
    let sink = peers::Sink::start("127.0.0.2", sink_port, &[]);
    let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
    dovecot.put(
        "From: Carol <carol@hosted.test>\r\n\
         To: +15551234567@fax.localhost\r\n\
         Subject: From the hosted office\r\n\
         \r\n\
         Please fax this.\r\n",
    );
    let work = tempfile::tempdir().unwrap();
    let port = dovecot.port;
    let extra = format!(
        "tls = \"none\"\n[[domain]]\nname = \"hosted.test\"\nkind = \"relay\"\n\
         hosts = [\"127.0.0.2:{sink_port}\"]\ntls = \"off\"\n[[fax.user]]\naddress = \"*@hosted.test\"\n"
    );
    let s = Server::start_with("", &config(work.path(), &dovecot, port, &extra));
    let dumps = sink.wait_dumps(1, 60);
    assert_eq!(dumps.len(), 1, "{}", s.log());
    assert_contains(&dumps[0], "carol@hosted.test");
    assert_contains(&dumps[0], "Subject: Fax to +15551234567 sent");
    assert_contains(&dumps[0], "X-Fax-Result: sent");
    assert!(wait_until(30, || dovecot.count() == 0), "the request stays");
}

/// A DKIM key for `selector._domainkey.domain`: the private key (PEM) and
/// the zone's TXT record (the public key in 255-octet strings).
fn dkim_key(dir: &Path, domain: &str, selector: &str) -> (PathBuf, String) {
    let key = dir.join("dkim.pem");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        out.stdout
    };
    run(std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048"));
    let der = run(std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key));
    let p = python(
        "import base64,sys; print(base64.b64encode(open(sys.argv[1],'rb').read()).decode())",
        &[&{
            let f = dir.join("pub.der");
            std::fs::write(&f, der).unwrap();
            f.display().to_string()
        }],
    );
    let value = format!("v=DKIM1; k=rsa; p={}", p.trim());
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    (
        key,
        format!("{selector}._domainkey.{domain}. TXT {}", strings.join(" ")),
    )
}

/// `message` signed by dkimpy with `key` as `d=domain; s=selector`.
fn dkim_signed(message: &str, key: &Path, domain: &str, selector: &str) -> String {
    python(
        r#"
import dkim, sys
msg = sys.argv[1].encode()
key = open(sys.argv[2], 'rb').read()
sig = dkim.sign(msg, sys.argv[4].encode(), sys.argv[3].encode(), key,
                include_headers=[b'from', b'to', b'subject'])
sys.stdout.write((sig + msg).decode())
"#,
        &[message, &key.display().to_string(), domain, selector],
    )
}

#[test]
fn a_from_header_is_no_proof_a_dkim_signature_of_its_domain_is() {
    let work = tempfile::tempdir().unwrap();
    let (key, record) = dkim_key(work.path(), "example.test", "sel");
    let dns = peers::Dns::start(&peers::zone(&[record.as_str()]));
    let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
    let signed = dkim_signed(
        "From: alice@example.test\r\nTo: +15551234567@fax.localhost\r\n\
         Subject: Signed\r\n\r\nSent by Alice.\r\n",
        &key,
        "example.test",
        "sel",
    );
    dovecot.put(&signed);
    // Anyone can write alice's address in a From header.
    dovecot.put(
        "From: alice@example.test\r\nTo: +15557654321@fax.localhost\r\n\
         Subject: Forged\r\n\r\nNot sent by Alice.\r\n",
    );
    let port = dovecot.port;
    // The default: senders = "dkim".
    let mut s = Server::start_with(
        "",
        &config(
            work.path(),
            &dovecot,
            port,
            "tls = \"none\"\n# senders: the default",
        ),
    );
    restart_with(
        &mut s,
        &[(
            "nameservers = [\"127.0.0.1:9\"]",
            &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
        )],
    );
    mail_with(&s, "alice", "Subject: Fax to +15551234567 sent", 60);
    let refused = mail_with(&s, "alice", "+15557654321", 60);
    assert_contains(
        &refused,
        "<alice@example.test> is not proven to have sent this fax request: the mail has no DKIM signature",
    );
    assert!(dovecot.wait_count(0, 10), "{}", dovecot.log());
    let remote: Vec<PathBuf> = files(&work.path().join("remote"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "tif"))
        .collect();
    assert_eq!(
        remote.len(),
        1,
        "only the signed request is faxed: {remote:?}"
    );
    assert!(
        !s.log().contains("(dial +15557654321)")
            && !s
                .log()
                .contains("to=<+15557654321@fax.localhost>, relay=fax"),
        "{}",
        s.log()
    );
}

/// The disk reserve: while less than `[queue]
/// min_free` is free, the gateway fetches nothing into the queue — the
/// mail stays on the POP3 server, poll after poll — and takes it once
/// there is room (here: after a restart with a smaller reserve).
#[test]
fn below_the_disk_reserve_mail_stays_on_the_pop3_server() {
    let mut dovecot = DovecotPop3::start("faxgw", "pop-secret");
    let work = tempfile::tempdir().unwrap();
    let port = dovecot.port;
    let mut s = Server::start_with("", &config(work.path(), &dovecot, port, "tls = \"none\""));
    restart_with(
        &mut s,
        &[(
            "lifetime = \"1h\"\n",
            "lifetime = \"1h\"\nmin_free = \"1000000G\"\n",
        )],
    );
    dovecot.put(
        "From: Alice Example <alice@example.test>\r\n\
         To: Fax Bob <+15551234567@fax.localhost>\r\n\
         Subject: Reserve\r\n\
         Message-ID: <pop3-reserve@example.test>\r\n\
         \r\n\
         Please fax this page.\r\n",
    );
    let refusals = || {
        s.log()
            .matches("left on the server, fetched at a later poll")
            .count()
    };
    assert!(wait_until(20, || refusals() >= 2), "{}", s.log());
    assert_contains(&s.log(), "insufficient system storage");
    assert_eq!(dovecot.count(), 1, "{}", dovecot.log());
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));

    restart_with(&mut s, &[("min_free = \"1000000G\"", "min_free = \"0\"")]);
    mail_with(&s, "alice", "Subject: Fax to +15551234567 sent", 60);
    assert!(dovecot.wait_count(0, 10), "{}", dovecot.log());
}
