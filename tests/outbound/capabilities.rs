//! Outbound SMTP and the peer's capabilities: STARTTLS (used, failed,
//! required), one result per recipient, connection reuse, DSN, 8BITMIME
//! and SMTPUTF8.

use crate::common::*;
use crate::peers::*;
use crate::support::*;

#[test]
fn starttls_is_used_when_the_peer_offers_it() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "tls.test. MX 10 mx.tls.test.",
        "mx.tls.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start("127.0.0.2", port, "tls.test", &["bob"], "");
    let s = faxmta(&dns, Some(port), "");

    // Lines that start with a dot must survive the transfer (RFC 5321
    // §4.5.2): send() dot-stuffs them towards faxmta, faxmta again
    // towards Postfix, which removes the stuffing.
    let msg = message("tls").replace(
        "Hello from the outbound tests.\r\n",
        "..leading dot\r\n...two dots\r\n..\r\nend\r\n",
    );
    let id = send(&s, ALICE, "bob@tls.test", &msg);
    let line = wait_status(&s, &id, "bob@tls.test", "sent", 15);
    assert_contains(&line, &format!("relay=mx.tls.test[127.0.0.2]:{port}"));
    assert_contains(
        &s.log(),
        &format!("TLS connection established to mx.tls.test[127.0.0.2]:{port}: TLSv1."),
    );
    let mail = pf.wait_maildir("bob", 1, 15);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    // Postfix's Received header tells the TLS version it spoke.
    let received = mail[0]
        .split("\nReceived: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no Received header:\n{}", mail[0]));
    assert!(
        received.contains("(using TLSv1.3 with cipher") || received.contains("(using TLSv1.2"),
        "{}",
        mail[0]
    );
    assert_contains(received, "by peer.tls.test (Postfix) with ESMTPS");
    assert_contains(&mail[0], "Subject: tls");
    assert_contains(&mail[0], "\n\n.leading dot\n..two dots\n.\nend\n");
    assert_contains(&mail[0], "by mx.example.test (faxmta)"); // ours, passed on
}

#[test]
fn a_failed_tls_handshake_falls_back_to_plaintext() {
    // Postfix offers STARTTLS but speaks only TLS 1.0/1.1, which rustls
    // refuses: opportunistic TLS tries again without it.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "oldtls.test. MX 10 mx.oldtls.test.",
        "mx.oldtls.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start(
        "127.0.0.2",
        port,
        "oldtls.test",
        &["bob"],
        "smtpd_tls_protocols = <=TLSv1.1",
    );
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "bob@oldtls.test", &message("oldtls"));
    wait_status(&s, &id, "bob@oldtls.test", "sent", 15);
    assert_contains(&s.log(), "trying again without TLS");
    let mail = pf.wait_maildir("bob", 1, 15);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&mail[0], "by peer.oldtls.test (Postfix) with ESMTP id");
    assert!(!mail[0].contains("(using TLS"), "{}", mail[0]);
}

#[test]
fn required_tls_defers_when_the_peer_has_no_starttls() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "plain.test. MX 10 mx.plain.test.",
        "mx.plain.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "tls = \"required\"\n");

    let id = send(&s, ALICE, "rcpt@plain.test", &message("plain"));
    let line = wait_status(&s, &id, "rcpt@plain.test", "deferred", 10);
    assert_contains(&line, "TLS is required");
    assert!(sink.dumps().is_empty());
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");
}

#[test]
fn each_recipient_gets_its_own_result() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "five.test. MX 10 mx.five.test.",
        "mx.five.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start("127.0.0.2", port, "five.test", &["u1", "u2", "u3"], "");
    let s = faxmta(&dns, Some(port), "");

    let rcpts: Vec<String> = (1..=5).map(|i| format!("<u{i}@five.test>")).collect();
    let id = relay(&s, &format!("<{ALICE}>"), &rcpts, &message("five"));
    for i in 1..=3 {
        let mail = pf.wait_maildir(&format!("u{i}"), 1, 15);
        assert_eq!(mail.len(), 1, "u{i}:\n{}", pf.log());
        assert_contains(&mail[0], "Subject: five");
        wait_status(&s, &id, &format!("u{i}@five.test"), "sent", 5);
    }
    for i in 4..=5 {
        let line = wait_status(&s, &id, &format!("u{i}@five.test"), "bounced", 5);
        assert_contains(&line, "dsn=5.1.1");
    }
    // One report for both failures, with the peer's replies.
    let reports = wait_reports(&s, 1, 10);
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    assert_eq!(s.maildir("example.test", "alice").len(), 1, "one report");
    let report = &reports[0];
    for i in 4..=5 {
        let block = status_block(report, &format!("u{i}@five.test"));
        assert_contains(block, "Action: failed");
        assert_contains(block, "Status: 5.1.1");
        assert_contains(block, "Remote-MTA: dns; mx.five.test");
        assert_contains(block, "Diagnostic-Code: smtp; 550 5.1.1");
        assert_contains(block, "User unknown in virtual mailbox table");
    }
    for i in 1..=3 {
        assert!(
            !report.contains(&format!("Final-Recipient: rfc822; u{i}@five.test")),
            "{report}"
        );
    }
    // One transaction for the five: Postfix queued one message for three.
    assert_eq!(pf.log().matches(": client=").count(), 1, "{}", pf.log());
    assert_contains(&pf.log(), "nrcpt=3 (queue active)");
}

// ---------------------------------------------------------- smtp-sink

#[test]
fn one_connection_carries_several_messages() {
    // Shown with messages sent one after another (each delivered before
    // the next arrives): messages queued at the same moment may each get
    // their own connection, as they are delivered in parallel.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "reuse.test. MX 10 mx.reuse.test.",
        "mx.reuse.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "");
    for n in 1..=3 {
        let id = send(&s, ALICE, "rcpt@reuse.test", &message(&format!("reuse{n}")));
        wait_status(&s, &id, "rcpt@reuse.test", "sent", 10);
    }
    assert_eq!(sink.wait_dumps(3, 5).len(), 3);
    assert_eq!(sink.connections(), 1, "{}", sink.output());
    // Between the messages, the connection was checked with RSET.
    let conversation = sink.output().to_ascii_lowercase();
    assert_eq!(conversation.matches("smtp-sink: rset").count(), 2);
}

#[test]
fn success_notices_say_relayed_when_the_peer_lacks_dsn() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "nodsn.test. MX 10 mx.nodsn.test.",
        "mx.nodsn.test. A 127.0.0.2",
        "dsn.test. MX 10 mx.dsn.test.",
        "mx.dsn.test. A 127.0.0.3",
    ]));
    let nodsn = Sink::start("127.0.0.2", port, &["-N"]);
    let dsn = Sink::start("127.0.0.3", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    // No DSN at the peer: we say "relayed", and nothing is passed on.
    let id = relay(
        &s,
        &format!("<{ALICE}> RET=HDRS ENVID=env1"),
        &["<r@nodsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@nodsn.test".into()],
        &message("nodsn"),
    );
    wait_status(&s, &id, "r@nodsn.test", "sent", 10);
    let dumps = nodsn.wait_dumps(1, 5);
    assert_contains(&dumps[0], "X-Mail-Args: <alice@example.test>\n");
    assert_contains(&dumps[0], "X-Rcpt-Args: <r@nodsn.test>\n");
    let reports = wait_reports(&s, 1, 10);
    let block = status_block(&reports[0], "r@nodsn.test");
    assert_contains(block, "Action: relayed");
    assert_contains(block, "Remote-MTA: dns; mx.nodsn.test");
    assert_contains(&reports[0], "Original-Envelope-Id: env1");

    // DSN at the peer: NOTIFY, ORCPT, RET and ENVID go along (as xtext),
    // and the notice is the next hop's to send, not ours.
    let id = relay(
        &s,
        &format!("<{ALICE}> RET=HDRS ENVID=env+20two"),
        &["<r@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r+2Btag@dsn.test".into()],
        &message("dsn"),
    );
    wait_status(&s, &id, "r@dsn.test", "sent", 10);
    let dumps = dsn.wait_dumps(1, 5);
    let mail = dumps[0]
        .lines()
        .find(|l| l.starts_with("X-Mail-Args:"))
        .unwrap();
    assert_contains(mail, " RET=HDRS");
    assert_contains(mail, " ENVID=env+20two");
    let rcpt = dumps[0]
        .lines()
        .find(|l| l.starts_with("X-Rcpt-Args:"))
        .unwrap();
    assert_eq!(
        rcpt,
        "X-Rcpt-Args: <r@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r+2Btag@dsn.test"
    );
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    // (What must not happen: a success notice; only time shows it.)
    assert!(
        holds_for(std::time::Duration::from_secs(1), || s
            .maildir("example.test", "alice")
            .len()
            == 1),
        "a success notice for mail passed on to a DSN-capable host:\n{}",
        s.log()
    );
}

#[test]
fn dsn_requests_are_taken_on_by_a_real_postfix() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "dsnpf.test. MX 10 mx.dsnpf.test.",
        "mx.dsnpf.test. A 127.0.0.2",
    ]));
    // Postfix takes Alice's mail too, to show the notice it sends her.
    let pf = Postfix::start("127.0.0.2", port, "dsnpf.test", &["r", ALICE], "");
    let s = faxmta(&dns, Some(port), "");

    // ENVID and ORCPT with characters that xtext must encode: sent
    // decoded, Postfix would refuse the command or misread the address.
    let id = relay(
        &s,
        &format!("<{ALICE}> RET=HDRS ENVID=env+20three"),
        &["<r@dsnpf.test> NOTIFY=SUCCESS ORCPT=rfc822;r+2Btag@dsnpf.test".into()],
        &message("dsnpf"),
    );
    wait_status(&s, &id, "r@dsnpf.test", "sent", 15);
    assert_eq!(pf.wait_maildir("r", 1, 15).len(), 1, "{}", pf.log());
    // Postfix took the requests on: it sends the success notice, with
    // the original recipient and envelope id as we were given them.
    let notices = pf.wait_maildir(ALICE, 1, 15);
    assert_eq!(notices.len(), 1, "{}", pf.log());
    let notice = notices[0].replace("\r\n", "\n");
    assert_contains(&notice, "Original-Envelope-Id: env three\n");
    assert_contains(&notice, "Original-Recipient: rfc822;r+tag@dsnpf.test\n");
    assert_contains(&notice, "Final-Recipient: rfc822; r@dsnpf.test\n");
    assert_contains(&notice, "Action: delivered\n");
    // And we send none of our own.
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    assert!(
        s.maildir("example.test", "alice").is_empty(),
        "a success notice of our own:\n{}",
        s.log()
    );
}

#[test]
fn eight_bit_mail_is_converted_for_a_7_bit_peer() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "seven.test. MX 10 mx.seven.test.",
        "mx.seven.test. A 127.0.0.2",
        "eight.test. MX 10 mx.eight.test.",
        "mx.eight.test. A 127.0.0.3",
    ]));
    let seven = Sink::start("127.0.0.2", port, &["-8"]);
    let eight = Sink::start("127.0.0.3", port, &[]);
    let s = faxmta(&dns, Some(port), "");
    let msg = "From: alice@example.test\r\nSubject: umlauts\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e = gut\r\nzwei\r\n";

    let id = relay(
        &s,
        &format!("<{ALICE}> BODY=8BITMIME"),
        &["<r@seven.test>".into()],
        msg,
    );
    wait_status(&s, &id, "r@seven.test", "sent", 10);
    let dump = &seven.wait_dumps(1, 5)[0];
    assert_contains(dump, "X-Mail-Args: <alice@example.test>\n");
    assert_contains(dump, "Content-Transfer-Encoding: quoted-printable\n");
    assert_contains(dump, "Gr=C3=BC=C3=9Fe =3D gut\n");
    assert!(dump.is_ascii(), "{dump}");

    // A peer with 8BITMIME gets it as it is, declared.
    let id = relay(
        &s,
        &format!("<{ALICE}> BODY=8BITMIME"),
        &["<r@eight.test>".into()],
        msg,
    );
    wait_status(&s, &id, "r@eight.test", "sent", 10);
    let dump = &eight.wait_dumps(1, 5)[0];
    assert_contains(dump, "BODY=8BITMIME");
    assert_contains(dump, "Content-Transfer-Encoding: 8bit\n");
    assert_contains(dump, "Gr\u{fc}\u{df}e = gut\n");
}

#[test]
fn smtputf8_mail_fails_when_the_peer_lacks_it() {
    // smtp-sink never offers SMTPUTF8.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "utf8.test. MX 10 mx.utf8.test.",
        "mx.utf8.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let id = relay(
        &s,
        &format!("<{ALICE}> SMTPUTF8"),
        &["<j\u{f6}rg@utf8.test>".into()],
        &message("utf8"),
    );
    let line = wait_status(&s, &id, "j\u{f6}rg@utf8.test", "bounced", 10);
    assert_contains(&line, "dsn=5.6.7");
    let reports = wait_reports(&s, 1, 10);
    let block = status_block(&reports[0], "j\u{f6}rg@utf8.test");
    assert_contains(block, "Action: failed");
    assert_contains(block, "Status: 5.6.7");
    assert_contains(block, "SMTPUTF8 is required");
    assert!(sink.dumps().is_empty(), "the peer got the message");
}

// ------------------------------------------------------------- metrics
