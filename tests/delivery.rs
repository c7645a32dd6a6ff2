//! End-to-end delivery with the real binary: what arrives in the Maildir,
//! crash safety (kill -9), cut-off DATA, retries, expiry reports (RFC 3464),
//! SIGTERM, and `check-config`.

mod common;
#[path = "delivery/reports.rs"]
mod reports;
#[path = "delivery/support.rs"]
mod support;
use common::*;
use support::*;

use std::collections::BTreeMap;
use std::process::Command;

/// Python's smtplib with BODY=8BITMIME (UTF-8 text, dot lines) and swaks
/// over STARTTLS: both arrive as sent, apart from the added headers.
#[test]
fn smtplib_and_swaks_messages_arrive_byte_for_byte() {
    let server = Server::start();

    let sent: &[u8] = "From: Alice <alice@example.test>\r\n\
To: Bob <bob@example.test>\r\n\
Subject: smtplib 8bit\r\n\
Message-ID: <smtplib-1@client.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße aus Köln — ½ € ✓ 日本語\r\n\
.a line starting with a dot\r\n\
..two dots\r\n\
.\r\n\
a lone dot above, and trailing spaces here   \r\n\
end\r\n"
        .as_bytes();
    let file = server.path("smtplib.eml");
    std::fs::write(&file, sent).unwrap();
    python(
        r#"
import smtplib, sys
port, path, frm, to = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
msg = open(path, 'rb').read()
with smtplib.SMTP('127.0.0.1', port, local_hostname='client.test') as s:
    refused = s.sendmail(frm, [to], msg, mail_options=['BODY=8BITMIME'])
    assert not refused, refused
"#,
        &[
            &server.mx_port.to_string(),
            file.to_str().unwrap(),
            "alice@example.test",
            "bob@example.test",
        ],
    );
    let files = server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(files.len(), 1, "smtplib message not delivered");
    let (received, rest) = strip_added(&read(&files[0]), "alice@example.test", "bob@example.test");
    assert!(received.contains("with ESMTP id "), "{received}");
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&crlf_to_lf(sent)),
        "smtplib message changed on the way"
    );
    assert_eq!(rest, crlf_to_lf(sent));

    // swaks over STARTTLS.
    let sent2: &[u8] = b"From: Alice <alice@example.test>\r\n\
To: Postmaster <postmaster@example.test>\r\n\
Subject: swaks over tls\r\n\
Message-ID: <swaks-1@client.test>\r\n\
\r\n\
first line\r\n\
.dot at the start\r\n\
\r\n\
last line\r\n";
    let file2 = server.path("swaks.eml");
    // swaks ends DATA with CRLF "." CRLF of its own, after removing a
    // closing dot from the file: give it one, so that what it sends is
    // exactly `sent2`.
    std::fs::write(&file2, [sent2, b".\r\n"].concat()).unwrap();
    let (ok, transcript) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", server.mx_port),
        "--tls",
        "--helo",
        "client.test",
        "--from",
        "alice@example.test",
        "--to",
        "postmaster@example.test",
        "--data",
        &format!("@{}", file2.display()),
    ]);
    assert!(ok, "swaks failed:\n{transcript}");
    assert!(transcript.contains("queued as"), "{transcript}");
    let files = server.wait_maildir("example.test", "postmaster", 1, 10);
    assert_eq!(files.len(), 1, "swaks message not delivered:\n{transcript}");
    let (received, rest) = strip_added(
        &read(&files[0]),
        "alice@example.test",
        "postmaster@example.test",
    );
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&crlf_to_lf(sent2)),
        "swaks message changed on the way"
    );
    assert!(received.contains("with ESMTPS id "), "{received}");
    // swaks prints "TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256".
    let tls_line = transcript
        .lines()
        .find(|l| l.contains("TLS started with cipher"))
        .unwrap_or_else(|| panic!("no TLS in:\n{transcript}"));
    let version = tls_line
        .split("cipher ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .trim();
    assert!(version.starts_with("TLSv1."), "{tls_line}");
    let using = received
        .lines()
        .find_map(|l| l.trim().strip_prefix("(using "))
        .unwrap_or_else(|| panic!("no TLS details in:\n{received}"));
    assert!(
        using.starts_with(&format!("{version} with cipher ")),
        "{received}"
    );
    let cipher = using
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(
        cipher.contains("AES") || cipher.contains("CHACHA20"),
        "cipher {cipher:?} in {received}"
    );
    assert!(
        received.contains("for <postmaster@example.test>"),
        "{received}"
    );
}

/// Invariants 1 and 2: an acknowledged message whose delivery must wait
/// survives kill -9 and is delivered exactly once afterwards.
#[test]
fn deferred_message_survives_kill9_and_is_delivered_once() {
    let mut server = Server::start();
    block(&server, "bob");
    let id = send(
        &server,
        "alice@example.test",
        "bob@example.test",
        &message("survive kill", "crash safety"),
    );
    assert!(
        wait_until(10, || attempts(&server, &id).is_some_and(|n| n >= 1)),
        "no delivery attempt for {id}: {:?}",
        queue_json(&server)
    );
    server.kill9();
    server.spawn();
    let list = queue_json(&server);
    assert!(
        find(&list, &id).is_some(),
        "{id} lost in the crash: {list:?}"
    );
    unblock(&server, "bob");
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    let got = subject_counts(&server, "example.test", "bob");
    assert_eq!(
        got,
        BTreeMap::from([("survive kill".to_string(), 1)]),
        "expected exactly one copy"
    );
    // Nothing else: no report to alice.
    assert!(server.maildir("example.test", "alice").is_empty());
}

/// A held message stays held through kill -9 and is delivered on release.
#[test]
fn held_message_stays_held_through_kill9() {
    let mut server = Server::start();
    block(&server, "bob");
    let id = send(
        &server,
        "alice@example.test",
        "bob@example.test",
        &message("held through crash", "hold me"),
    );
    let out = cli_ok(&server, &["queue", "hold", &id]);
    assert!(out.contains("1 message(s) placed on hold"), "{out}");
    server.kill9();
    unblock(&server, "bob");
    server.spawn();

    let text = cli_ok(&server, &["queue", "list"]);
    let line = id_line(&text, &id);
    assert!(line[id.len()..].trim_start().starts_with('!'), "{text}");
    assert!(text.contains("held]"), "{text}");
    let list = queue_json(&server);
    assert_eq!(find(&list, &id).unwrap()["held"], true, "{list:?}");
    // Held: not delivered although the Maildir is writable again, while a
    // message sent after it to the same mailbox is.
    send(
        &server,
        "postmaster@example.test",
        "bob@example.test",
        &message("sentinel", "not held"),
    );
    server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(
        subject_counts(&server, "example.test", "bob"),
        BTreeMap::from([("sentinel".to_string(), 1)])
    );
    assert_eq!(find(&queue_json(&server), &id).unwrap()["held"], true);

    let out = cli_ok(&server, &["queue", "release", &id]);
    assert!(out.contains("1 message(s) released"), "{out}");
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(
        subject_counts(&server, "example.test", "bob"),
        BTreeMap::from([
            ("held through crash".to_string(), 1),
            ("sentinel".to_string(), 1)
        ])
    );
}

/// kill -9 right after the last 250 of a burst of messages: every
/// acknowledged message is delivered after the restart (duplicates
/// allowed, none lost).
#[test]
fn kill9_right_after_acknowledgement_loses_nothing() {
    let mut server = Server::start();
    let port = server.mx_port;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Smtp::connect(port);
                assert!(c.cmd("EHLO load.test").starts_with("250"));
                let mut acked = Vec::new();
                for i in 0..5 {
                    let subject = format!("load {t}-{i}");
                    let r = c.cmd("MAIL FROM:<postmaster@example.test>");
                    assert!(r.starts_with("250"), "{r}");
                    let r = c.cmd("RCPT TO:<alice@example.test>");
                    assert!(r.starts_with("250"), "{r}");
                    let r = c.cmd("DATA");
                    assert!(r.starts_with("354"), "{r}");
                    c.send(
                        format!("Subject: {subject}\r\n\r\nmessage {t}-{i}\r\n.\r\n").as_bytes(),
                    );
                    let id = queued_id(&c.reply());
                    acked.push((subject, id));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(String, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    server.kill9();
    assert_eq!(acked.len(), 20);
    let before = server.maildir("example.test", "alice").len();

    server.spawn();
    let complete = wait_until(15, || {
        let got = subject_counts(&server, "example.test", "alice");
        acked.iter().all(|(s, _)| got.contains_key(s))
    });
    let got = subject_counts(&server, "example.test", "alice");
    let lost: Vec<&(String, String)> = acked.iter().filter(|(s, _)| !got.contains_key(s)).collect();
    let dups: Vec<(&String, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        complete && lost.is_empty(),
        "acknowledged messages lost after kill -9: {lost:?} (delivered before the kill: {before}; duplicates: {dups:?})"
    );
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    let got = subject_counts(&server, "example.test", "alice");
    assert_eq!(
        got.len(),
        20,
        "unexpected messages: {got:?} (duplicates: {dups:?})"
    );
    if !dups.is_empty() {
        eprintln!("duplicates after kill -9 (allowed): {dups:?}");
    }
}

/// DATA cut off before the final dot: nothing is delivered or reported.
#[test]
fn cut_off_data_is_neither_delivered_nor_reported() {
    let server = Server::start();
    {
        let mut c = server.connect();
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<alice@example.test>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<bob@example.test>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(b"Subject: cut off\r\n\r\nthe first half of the body\r\n.not the end\r\n");
        // Dropped here: the socket closes without the final dot.
    }
    // A complete message sent afterwards on a new connection: once it has
    // been delivered, the cut one would have been too.
    let marker = send(
        &server,
        "postmaster@example.test",
        "bob@example.test",
        &message("marker", "sent after the cut"),
    );
    let files = server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(files.len(), 1, "marker {marker} not delivered");
    // The cut session is over (it says so), and all that was queued went.
    assert!(
        wait_until(10, || server.log().contains(
            "lost connection after DATA; message dropped, not acknowledged"
        )),
        "{}",
        server.log()
    );
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(
        subject_counts(&server, "example.test", "bob"),
        BTreeMap::from([("marker".to_string(), 1)]),
        "the cut-off message was delivered"
    );
    assert!(
        server.maildir("example.test", "alice").is_empty(),
        "the sender of the cut-off message got something"
    );
    assert!(queue_json(&server).is_empty());
    let log = server.log();
    assert!(
        !log.contains("from=<alice@example.test>"),
        "cut-off message was queued:\n{log}"
    );
}

/// SIGTERM with a deferred message: clean exit, the message stays queued
/// and is delivered after the restart.
#[test]
fn sigterm_keeps_deferred_message() {
    let mut server = Server::start();
    block(&server, "bob");
    let id = send(
        &server,
        "alice@example.test",
        "bob@example.test",
        &message("across sigterm", "still here"),
    );
    assert!(
        wait_until(10, || attempts(&server, &id).is_some_and(|n| n >= 1)),
        "{:?}",
        queue_json(&server)
    );
    assert!(
        server.stop(),
        "SIGTERM did not end faxmta with success:\n{}",
        server.log()
    );
    assert!(
        server.log().contains("1 message(s) stay queued"),
        "{}",
        server.log()
    );
    server.spawn();
    let list = queue_json(&server);
    assert!(
        find(&list, &id).is_some(),
        "{id} gone after restart: {list:?}"
    );
    unblock(&server, "bob");
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(
        subject_counts(&server, "example.test", "bob"),
        BTreeMap::from([("across sigterm".to_string(), 1)])
    );
}

/// `check-config` names the file and line of an error; a good file is ok.
#[test]
fn check_config_points_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "hostname = \"mx.example.test\"\n[queue]\nlifetime = \"5 fortnights\"\nretry = [\"1m\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    let place = format!("{}:3:", bad.display());
    let at = text
        .find(&place)
        .unwrap_or_else(|| panic!("no {place} in:\n{text}"));
    let message = &text[at + place.len()..];
    assert!(message.contains("fortnights"), "{text}");
    assert!(message.contains("duration"), "{text}");
    assert!(!text.contains(": ok ("), "{text}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "hostname = \"mx.example.test\"\n[queue]\nlifetime = \"5d\"\nretry = [\"1m\", \"5m\"]\n\
         [[listener]]\naddr = \"127.0.0.1:2525\"\nrole = \"mx\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faxmta"))
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{}: ok", good.display())),
        "{stdout}"
    );
}

/// A queued message whose content file disappeared is not retried forever
/// nor dropped: its recipients fail and the sender is told why.
#[test]
fn lost_content_is_reported_not_retried_forever() {
    let server = Server::start();
    block(&server, "bob");
    let id = send(
        &server,
        "alice@example.test",
        "bob@example.test",
        "Subject: will lose its body\r\n\r\ntext\r\n",
    );
    assert!(wait_until(10, || find_queued(&server, &id)
        .is_some_and(|m| m["recipients"][0]["state"] == "deferred")));
    // A message that waits has its body in a file of its own (moved out
    // of the shared segment after its first attempt): that file is lost.
    let file = server.path(&format!("queue/bodies/{id}"));
    assert!(
        wait_until(10, || file.exists()),
        "the waiting message's body never got a file of its own"
    );
    std::fs::remove_file(&file).unwrap();
    unblock(&server, "bob");
    let reports = server.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(reports.len(), 1, "{}", server.log());
    let text = String::from_utf8_lossy(&read(&reports[0])).into_owned();
    assert!(text.contains("Status: 5.3.0"), "{text}");
    assert!(text.contains("lost from the queue"), "{text}");
    assert!(wait_queue_empty(&server, 10));
    assert!(server.maildir("example.test", "bob").is_empty());
}
