//! Outbound SMTP delivery with the real binary against real peers, all on
//! loopback: MX resolution from an authoritative DNS server of our own
//! (tests/peers/dns.py), Postfix's smtp-sink and a private Postfix
//! instance with STARTTLS as the receiving hosts (127.0.0.2, 127.0.0.3 …,
//! one port number per test), reports (RFC 3464) back to a local sender,
//! and what /metrics counts of it all.
//!
//! Every test starts its own faxmta, which relays for 127.0.0.1 and asks
//! only the test's DNS server; nothing leaves 127.0.0.0/8.

mod common;
mod peers;

use common::*;
use peers::*;
use serde_json::Value;

const ALICE: &str = "alice@example.test";

/// A small message from Alice.
fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n\r\nHello from the outbound tests.\r\n",
        now()
    )
}

/// One transaction on the MX listener with MAIL and RCPT arguments as
/// given (`<addr> PARAMS…`); `msg` must be dot-safe and end with CRLF.
/// Returns the queue id.
fn relay(server: &Server, mail: &str, rcpts: &[String], msg: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:{mail}"));
    assert!(r.starts_with("250"), "MAIL FROM:{mail}: {r}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        assert!(r.starts_with("250"), "RCPT TO:{rcpt}: {r}");
    }
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(msg.as_bytes());
    c.send(b".\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The reports in Alice's Maildir, waiting up to `secs` for `n`; each as
/// text with LF line ends.
fn wait_reports(server: &Server, n: usize, secs: u64) -> Vec<String> {
    let files = server.wait_maildir("example.test", "alice", n, secs);
    assert!(
        files.len() >= n,
        "{} report(s) for alice, expected {n}:\n{}",
        files.len(),
        server.log()
    );
    files
        .iter()
        .map(|f| String::from_utf8_lossy(&crlf_to_lf(&read(f))).into_owned())
        .collect()
}

/// The `message/delivery-status` fields of one recipient in a report:
/// the block that holds `Final-Recipient: rfc822; rcpt`.
fn status_block<'a>(report: &'a str, rcpt: &str) -> &'a str {
    let key = format!("Final-Recipient: rfc822; {rcpt}\n");
    let at = report
        .find(&key)
        .unwrap_or_else(|| panic!("{rcpt} is not in the report:\n{report}"));
    let start = report[..at].rfind("\n\n").map_or(0, |p| p + 2);
    let end = report[at..].find("\n\n").map_or(report.len(), |p| at + p);
    &report[start..end]
}

/// Whether the queue still has message `id`.
fn queued(server: &Server, id: &str) -> bool {
    find_queued(server, id).is_some()
}

// ------------------------------------------------------------------ MX

#[test]
fn the_preferred_mx_gets_the_mail_and_the_next_one_when_it_is_down() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "pref.test. MX 20 mx2.pref.test.",
        "pref.test. MX 10 mx1.pref.test.",
        "mx1.pref.test. A 127.0.0.2",
        "mx2.pref.test. A 127.0.0.3",
    ]));
    let mut mx1 = Sink::start("127.0.0.2", port, &[]);
    let mx2 = Sink::start("127.0.0.3", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "rcpt@pref.test", &message("first"));
    let line = wait_status(&s, &id, "rcpt@pref.test", "sent", 10);
    assert_contains(&line, &format!("relay=mx1.pref.test[127.0.0.2]:{port}"));
    let dumps = mx1.wait_dumps(1, 5);
    assert_eq!(dumps.len(), 1);
    assert_contains(&dumps[0], "X-Mail-Args: <alice@example.test>");
    assert_contains(&dumps[0], "X-Rcpt-Args: <rcpt@pref.test>");
    assert_contains(&dumps[0], "Subject: first");
    assert!(mx2.dumps().is_empty(), "the less preferred MX got mail");

    // The preferred host goes away (its pooled connection with it):
    // the next one takes the mail in the same attempt.
    mx1.stop();
    let id = send(&s, ALICE, "rcpt@pref.test", &message("second"));
    let line = wait_status(&s, &id, "rcpt@pref.test", "sent", 10);
    assert_contains(&line, &format!("relay=mx2.pref.test[127.0.0.3]:{port}"));
    let dumps = mx2.wait_dumps(1, 5);
    assert_eq!(dumps.len(), 1);
    assert_contains(&dumps[0], "Subject: second");
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
}

#[test]
fn temporary_errors_at_one_mx_make_way_for_the_next() {
    // mx1 greets with 421, mx2 refuses MAIL FROM with 450: mx3 gets it.
    let port = shared_port(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let dns = Dns::start(&zone(&[
        "busy.test. MX 10 mx1.busy.test.",
        "busy.test. MX 20 mx2.busy.test.",
        "busy.test. MX 30 mx3.busy.test.",
        "mx1.busy.test. A 127.0.0.2",
        "mx2.busy.test. A 127.0.0.3",
        "mx3.busy.test. A 127.0.0.4",
    ]));
    let mx1 = Sink::start("127.0.0.2", port, &["-Q", "CONNECT"]);
    let mx2 = Sink::start("127.0.0.3", port, &["-r", "MAIL"]);
    let mx3 = Sink::start("127.0.0.4", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "rcpt@busy.test", &message("busy"));
    let line = wait_status(&s, &id, "rcpt@busy.test", "sent", 10);
    assert_contains(&line, &format!("relay=mx3.busy.test[127.0.0.4]:{port}"));
    assert_eq!(mx3.wait_dumps(1, 5).len(), 1);
    assert!(mx1.dumps().is_empty() && mx2.dumps().is_empty());
    assert!(mx1.connections() >= 1 && mx2.connections() >= 1);
    let log = s.log();
    assert_contains(&log, "refused to talk to me");
    assert_contains(&log, "(in reply to MAIL FROM command)");
}

#[test]
fn a_temporary_rcpt_error_defers_the_recipient() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "later.test. MX 10 mx.later.test.",
        "mx.later.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &["-r", "RCPT"]);
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "rcpt@later.test", &message("later"));
    let line = wait_status(&s, &id, "rcpt@later.test", "deferred", 10);
    assert_contains(&line, "(in reply to RCPT TO command)");
    assert!(
        wait_until(10, || find_queued(&s, &id).is_some_and(|m| m["recipients"]
            [0]["attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 2)),
        "{}",
        s.log()
    );
    let env = find_queued(&s, &id).unwrap();
    assert_eq!(env["recipients"][0]["state"], "deferred", "{env}");
    assert_eq!(env["recipients"][0]["last_reply"]["code"], 450, "{env}");
    assert!(sink.dumps().is_empty());
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");
}

#[test]
fn a_deferred_recipient_is_delivered_once_the_peer_takes_it() {
    // Postfix answers 450 for bob from an access table; the table is then
    // emptied (postmap, reload) and the next retry delivers. A session
    // keeps the table it started with, and faxmta keeps idle connections
    // for reuse: smtpd_hard_error_limit = 1 makes Postfix hang up after
    // the refusal, so that each retry opens a new session.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "retry.test. MX 10 mx.retry.test.",
        "mx.retry.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start_with_maps(
        "127.0.0.2",
        port,
        "retry.test",
        &["bob"],
        "smtpd_recipient_restrictions = check_recipient_access hash:${config_directory}/rcpt.map\n\
         smtpd_hard_error_limit = 1",
        &[(
            "rcpt",
            "bob@retry.test 450 4.2.1 mailbox busy, try again later\n",
        )],
    );
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "bob@retry.test", &message("retried"));
    let line = wait_status(&s, &id, "bob@retry.test", "deferred", 15);
    assert_contains(&line, "dsn=4.2.1");
    assert_contains(&line, "mailbox busy, try again later");
    assert_contains(&line, "(in reply to RCPT TO command)");
    // Retried (every 1s here) while the peer still refuses.
    assert!(
        wait_until(15, || find_queued(&s, &id).is_some_and(|m| m["recipients"]
            [0]["attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 2)),
        "{}",
        s.log()
    );
    let env = find_queued(&s, &id).expect("still queued");
    let r = &env["recipients"][0];
    assert_eq!(r["state"], "deferred", "{env}");
    assert_eq!(r["last_reply"]["code"], 450, "{env}");
    assert_eq!(r["last_reply"]["status"], "4.2.1", "{env}");
    assert!(pf.maildir("bob").is_empty(), "{}", pf.log());

    // The condition goes away: the next retry delivers.
    pf.set_map("rcpt", "");
    let line = wait_status(&s, &id, "bob@retry.test", "sent", 20);
    assert_contains(&line, &format!("relay=mx.retry.test[127.0.0.2]:{port}"));
    let mail = pf.wait_maildir("bob", 1, 15);
    assert_eq!(mail.len(), 1, "{}", pf.log());
    assert_contains(&mail[0], "Subject: retried");
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    let log = s.log();
    let tries = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=<bob@retry.test>, ")))
        .count();
    assert!(tries >= 3, "two deferrals and a success expected:\n{log}");
    // Delivered in the end: no report of any kind to the sender.
    assert!(!log.contains(&format!("{id}: sender ")), "{log}");
    assert!(s.maildir("example.test", "alice").is_empty(), "{log}");
    assert_eq!(pf.maildir("bob").len(), 1, "delivered twice:\n{}", pf.log());
}

/// A report (a Maildir file) as Python's email module reads it: top-level
/// headers, the media types of the parts, the notification text, the
/// `message/delivery-status` fields (per message, then one map per
/// recipient), the header fields of the returned message, and every
/// defect the parser noted.
fn parse_report(file: &std::path::Path) -> Value {
    let json = python(
        r#"
import email, email.policy, json, sys
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)
parts = msg.get_payload()
out = {
    'content_type': msg.get_content_type(),
    'report_type': msg.get_param('report-type'),
    'from': msg['From'], 'to': msg['To'], 'subject': msg['Subject'],
    'return_path': msg['Return-Path'], 'auto_submitted': msg['Auto-Submitted'],
    'defects': [str(d) for p in msg.walk() for d in p.defects],
    'parts': [p.get_content_type() for p in parts],
    'notification': parts[0].get_payload(decode=True).decode('utf-8'),
}
status = parts[1].get_payload()
out['per_message'] = dict(status[0].items())
out['per_recipient'] = [dict(s.items()) for s in status[1:]]
if parts[2].get_content_type() == 'message/rfc822':
    returned = parts[2].get_payload()[0]
else:
    returned = email.message_from_bytes(parts[2].get_payload(decode=True), policy=email.policy.compat32)
out['returned'] = dict(returned.items())
out['returned_body'] = returned.get_payload()
print(json.dumps(out))
"#,
        &[file.to_str().unwrap()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[test]
fn a_refused_recipient_is_reported_with_the_remote_reply() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "refuse.test. MX 10 mx.refuse.test.",
        "mx.refuse.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start("127.0.0.2", port, "refuse.test", &["bob"], "");
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "nobody@refuse.test", &message("refused"));
    let line = wait_status(&s, &id, "nobody@refuse.test", "bounced", 15);
    assert_contains(&line, "dsn=5.1.1");
    // What Postfix answered, from its own log.
    let peer_log = pf.log();
    let reply = peer_log
        .lines()
        .find_map(|l| {
            l.split_once("NOQUEUE: reject: RCPT from ")?
                .1
                .split_once("]: ")
        })
        .and_then(|(_, rest)| rest.split_once("; from=<"))
        .map(|(reply, _)| reply.to_string())
        .unwrap_or_else(|| panic!("no refusal in the Postfix log:\n{peer_log}"));
    assert!(
        reply.starts_with("550 5.1.1 <nobody@refuse.test>: "),
        "{reply}"
    );
    assert_contains(&reply, "User unknown in virtual mailbox table");

    let files = s.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(files.len(), 1, "no report:\n{}", s.log());
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    let r = parse_report(&files[0]);
    assert_eq!(r["content_type"], "multipart/report", "{r}");
    assert_eq!(r["report_type"], "delivery-status", "{r}");
    assert_eq!(r["defects"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["parts"],
        serde_json::json!(["text/plain", "message/delivery-status", "message/rfc822"]),
        "{r}"
    );
    assert_eq!(r["subject"], "Undelivered Mail Returned to Sender", "{r}");
    assert_eq!(r["to"], "<alice@example.test>", "{r}");
    assert_eq!(r["return_path"], "<>", "{r}");
    assert_eq!(r["auto_submitted"], "auto-replied", "{r}");
    assert_eq!(
        r["per_message"]["Reporting-MTA"], "dns; mx.example.test",
        "{r}"
    );
    assert_eq!(r["per_message"]["X-Faxmta-Queue-ID"], id.as_str(), "{r}");

    let recipients = r["per_recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "{r}");
    let pr = &recipients[0];
    assert_eq!(pr["Final-Recipient"], "rfc822; nobody@refuse.test", "{r}");
    assert_eq!(pr["Action"], "failed", "{r}");
    assert_eq!(pr["Status"], "5.1.1", "{r}");
    assert_eq!(pr["Remote-MTA"], "dns; mx.refuse.test", "{r}");
    // The remote reply as received (RFC 3464 §2.3.6).
    assert_eq!(pr["Diagnostic-Code"], format!("smtp; {reply}"), "{r}");
    assert!(pr["Last-Attempt-Date"].is_string(), "{r}");
    assert!(pr.get("Will-Retry-Until").is_none(), "{r}");
    // The human part tells who said what, and when.
    assert_contains(
        r["notification"].as_str().unwrap(),
        &format!(
            "<nobody@refuse.test>: host mx.refuse.test[127.0.0.2:{port}] said: {reply} \
             (in reply to RCPT TO command)\n"
        ),
    );
    // The whole message comes back.
    assert_eq!(r["returned"]["Subject"], "refused", "{r}");
    assert_contains(
        r["returned_body"].as_str().unwrap(),
        "Hello from the outbound tests.",
    );
    assert!(pf.maildir("bob").is_empty());
}

#[test]
fn reports_to_a_remote_sender_go_out_from_the_null_sender() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "nullmx.test. MX 0 .",
        "remote.test. MX 10 mx.remote.test.",
        "mx.remote.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let id = send(
        &s,
        "carol@remote.test",
        "rcpt@nullmx.test",
        &message("to-null"),
    );
    wait_status(&s, &id, "rcpt@nullmx.test", "bounced", 10);
    let dumps = sink.wait_dumps(1, 10);
    assert_eq!(dumps.len(), 1, "{}", s.log());
    let report = &dumps[0];
    assert_contains(report, "X-Mail-Args: <>");
    assert_contains(report, "X-Rcpt-Args: <carol@remote.test>");
    assert_contains(report, "Final-Recipient: rfc822; rcpt@nullmx.test");
    assert_contains(report, "Status: 5.1.10");
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
}

#[test]
fn a_domain_without_mx_is_its_own_mail_host() {
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&["implicit.test. A 127.0.0.2"]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let id = send(&s, ALICE, "rcpt@implicit.test", &message("implicit"));
    let line = wait_status(&s, &id, "rcpt@implicit.test", "sent", 10);
    assert_contains(&line, &format!("relay=implicit.test[127.0.0.2]:{port}"));
    let dumps = sink.wait_dumps(1, 5);
    assert_contains(&dumps[0], "X-Rcpt-Args: <rcpt@implicit.test>");
    assert_contains(&dumps[0], "Subject: implicit");
    assert_contains(&dns.queries(), "implicit.test. MX -> NOERROR");
}

#[test]
fn a_null_mx_fails_at_once_with_5_1_10() {
    let dns = Dns::start(&zone(&["nullmx.test. MX 0 ."]));
    let s = faxmta(&dns, Some(shared_port(&["127.0.0.2"])), "");

    let id = send(&s, ALICE, "rcpt@nullmx.test", &message("nullmx"));
    let line = wait_status(&s, &id, "rcpt@nullmx.test", "bounced", 10);
    assert_contains(&line, "dsn=5.1.10");
    let reports = wait_reports(&s, 1, 10);
    let block = status_block(&reports[0], "rcpt@nullmx.test");
    assert_contains(block, "Action: failed");
    assert_contains(block, "Status: 5.1.10");
    assert_contains(block, "null MX");
    assert_contains(&reports[0], "Subject: Undelivered Mail Returned to Sender");
    // Failed for good: gone from the queue after one attempt.
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    assert_eq!(
        s.log()
            .matches(&format!("{id}: to=<rcpt@nullmx.test>"))
            .count(),
        1,
        "tried more than once:\n{}",
        s.log()
    );
}

#[test]
fn nxdomain_bounces_and_servfail_is_retried() {
    let dns = Dns::start(&zone(&["broken.test. SERVFAIL"]));
    let s = faxmta(&dns, Some(shared_port(&["127.0.0.2"])), "");

    let nx = send(&s, ALICE, "rcpt@nowhere.test", &message("nxdomain"));
    let sf = send(&s, ALICE, "rcpt@broken.test", &message("servfail"));

    let line = wait_status(&s, &nx, "rcpt@nowhere.test", "bounced", 10);
    assert_contains(&line, "dsn=5.1.2");
    let reports = wait_reports(&s, 1, 10);
    let block = status_block(&reports[0], "rcpt@nowhere.test");
    assert_contains(block, "Action: failed");
    assert_contains(block, "Status: 5.1.2");
    assert_contains(block, "NXDOMAIN");

    // SERVFAIL: deferred with 4.4.3, tried again (retry is 1s here), and
    // never reported as failed.
    wait_status(&s, &sf, "rcpt@broken.test", "deferred", 10);
    assert!(
        wait_until(10, || {
            find_queued(&s, &sf)
                .is_some_and(|m| m["recipients"][0]["attempts"].as_u64().unwrap_or(0) >= 2)
        }),
        "{}",
        s.log()
    );
    let env = find_queued(&s, &sf).expect("the SERVFAIL message stays queued");
    let r = &env["recipients"][0];
    assert_eq!(r["state"], "deferred", "{env}");
    assert_eq!(r["last_reply"]["code"], 451, "{env}");
    assert_eq!(r["last_reply"]["status"], "4.4.3", "{env}");
    assert!(!s.log().contains(&format!("{sf}: sender non-delivery")));
    assert_eq!(
        s.maildir("example.test", "alice").len(),
        1,
        "only the NXDOMAIN report"
    );
    assert!(!queued(&s, &nx));
}

#[test]
fn mail_for_a_domain_whose_mx_is_this_host_loops_back() {
    // By name (our hostname) and by address (our own MX listener).
    let dns = Dns::start(&zone(&[
        "byname.test. MX 10 mx.example.test.",
        "byaddr.test. MX 10 self.byaddr.test.",
        "self.byaddr.test. A 127.0.0.1",
    ]));
    let s = faxmta(&dns, None, "");

    let id = relay(
        &s,
        &format!("<{ALICE}>"),
        &["<a@byname.test>".into(), "<b@byaddr.test>".into()],
        &message("loop"),
    );
    for rcpt in ["a@byname.test", "b@byaddr.test"] {
        let line = wait_status(&s, &id, rcpt, "bounced", 10);
        assert_contains(&line, "loops back to myself");
    }
    let reports = wait_reports(&s, 1, 10);
    let all = reports.join("\n");
    for rcpt in ["a@byname.test", "b@byaddr.test"] {
        let block = status_block(&all, rcpt);
        assert_contains(block, "Action: failed");
        assert_contains(block, "Status: 5.4.6");
        assert_contains(block, "loops back to myself");
    }
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
}

// ------------------------------------------------------------ Postfix

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

/// `GET /metrics`, parsed by prometheus_client's parser of the text
/// format: `types` maps each family to its type, `samples` lists every
/// sample as `{name, labels, value}`.
fn scrape(server: &Server) -> Value {
    let text = server.http_get("/metrics");
    let file = server.path("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let json = python(
        r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {'types': {}, 'samples': []}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    out['types'][family.name] = family.type
    for s in family.samples:
        out['samples'].append({'name': s.name, 'labels': s.labels, 'value': s.value})
print(json.dumps(out))
"#,
        &[file.to_str().unwrap()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// The samples named `name` whose labels include `labels`.
fn samples<'a>(m: &'a Value, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    m["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

/// The one sample named `name` with exactly `labels`, if any.
fn sample(m: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples(m, name, labels);
    let exact: Vec<&&Value> = found
        .iter()
        .filter(|s| s["labels"].as_object().unwrap().len() == labels.len())
        .collect();
    assert!(exact.len() <= 1, "{name} {labels:?} twice in {m}");
    exact.first().map(|s| s["value"].as_f64().unwrap())
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(m: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(m, name, labels)
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

#[test]
fn metrics_count_what_happened() {
    // One message delivered here, one relayed over STARTTLS to Postfix.
    let port = shared_port(&["127.0.0.2"]);
    let dns = Dns::start(&zone(&[
        "metrics.test. MX 10 mx.metrics.test.",
        "mx.metrics.test. A 127.0.0.2",
    ]));
    let pf = Postfix::start("127.0.0.2", port, "metrics.test", &["carol"], "");
    let s = faxmta(&dns, Some(port), "");

    let before = scrape(&s);
    assert_eq!(total(&before, "faxmta_messages_received_total", &[]), 0.0);
    assert_eq!(total(&before, "faxmta_deliveries_total", &[]), 0.0);

    let local = send(&s, ALICE, "bob@example.test", &message("metrics-local"));
    let remote = send(&s, ALICE, "carol@metrics.test", &message("metrics-remote"));
    wait_status(&s, &local, "bob@example.test", "sent", 10);
    wait_status(&s, &remote, "carol@metrics.test", "sent", 15);
    assert_eq!(pf.wait_maildir("carol", 1, 15).len(), 1, "{}", pf.log());
    assert_eq!(s.wait_maildir("example.test", "bob", 1, 10).len(), 1);
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert_contains(&s.log(), "TLS connection established to mx.metrics.test");

    // Sessions and deliveries end a little after their log lines: poll.
    let settled = |m: &Value| {
        sample(m, "faxmta_smtp_sessions_active", &[]) == Some(0.0)
            && total(m, "faxmta_deliveries_active", &[]) == 0.0
            && total(m, "faxmta_deliveries_total", &[]) == 2.0
    };
    let mut m = scrape(&s);
    assert!(
        wait_until(10, || {
            m = scrape(&s);
            settled(&m)
        }),
        "{m}"
    );

    let types = &m["types"];
    for (family, kind) in [
        ("faxmta_messages_received", "counter"),
        ("faxmta_deliveries", "counter"),
        ("faxmta_delivery_delay_seconds", "histogram"),
        ("faxmta_smtp_sessions_active", "gauge"),
        ("faxmta_deliveries_active", "gauge"),
        ("faxmta_tls", "counter"),
        ("faxmta_queue_messages", "gauge"),
    ] {
        assert_eq!(types[family], kind, "{family}: {types}");
    }

    // Both arrived on the MX listener; the reports we make are not counted
    // (and none was made).
    let received = "faxmta_messages_received_total";
    assert_eq!(sample(&m, received, &[("source", "mx")]), Some(2.0), "{m}");
    assert_eq!(total(&m, received, &[]), 2.0, "{m}");

    let deliveries = "faxmta_deliveries_total";
    for transport in ["local", "smtp"] {
        let sent = [("transport", transport), ("status", "sent")];
        assert_eq!(sample(&m, deliveries, &sent), Some(1.0), "{m}");
        let t = [("transport", transport)];
        assert_eq!(total(&m, deliveries, &t), 1.0, "only sent: {m}");
        let count = "faxmta_delivery_delay_seconds_count";
        assert_eq!(sample(&m, count, &t), Some(1.0), "{m}");
        let inf = [("transport", transport), ("le", "+Inf")];
        let buckets = "faxmta_delivery_delay_seconds_bucket";
        assert_eq!(sample(&m, buckets, &inf), Some(1.0), "{m}");
        let sum = sample(&m, "faxmta_delivery_delay_seconds_sum", &t).unwrap();
        assert!((0.0..60.0).contains(&sum), "{m}");
    }

    // The relayed message went over TLS (Postfix offers STARTTLS).
    let tls = samples(&m, "faxmta_tls_total", &[("direction", "out")]);
    assert_eq!(tls.len(), 1, "{m}");
    let version = tls[0]["labels"]["version"].as_str().unwrap();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{m}");
    assert_eq!(tls[0]["value"], 1.0, "{m}");

    // The queue gauges: every state, all empty now.
    for state in ["due", "deferred", "held"] {
        let n = sample(&m, "faxmta_queue_messages", &[("state", state)]);
        assert_eq!(n, Some(0.0), "{state}: {m}");
    }
}

/// Relay-to-host: a `kind = "relay"` domain goes to its
/// configured host even though DNS names another MX, and it is accepted
/// from a client that may not relay, because the domain is ours.
#[test]
fn relay_domains_go_to_their_host_not_to_the_mx() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "branch.test. MX 10 mx.branch.test.",
        "mx.branch.test. A 127.0.0.2",
    ]));
    let mx = Sink::start("127.0.0.2", port, &[]);
    let host = Sink::start("127.0.0.3", port, &[]);
    let s = faxmta(
        &dns,
        Some(port),
        &format!("[[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.3:{port}\"]\n"),
    );
    // 127.0.0.9 is not in [relay] allow: it may send to branch.test (ours)
    // but not to another domain.
    let out = python(
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), source_address=('127.0.0.9', 0))
s.sendmail('someone@outside.example', ['user@branch.test'], 'Subject: hard-routed\r\n\r\nrouted\r\n')
try:
    s.sendmail('someone@outside.example', ['user@elsewhere.example'], 'Subject: x\r\n\r\nx\r\n')
    print('RELAYED')
except smtplib.SMTPRecipientsRefused as e:
    print('REFUSED', e.recipients)
s.quit()
"#,
        &[&s.mx_port.to_string()],
    );
    assert_contains(&out, "REFUSED");
    assert_contains(&out, "554");
    let dumps = host.wait_dumps(1, 10);
    assert_eq!(dumps.len(), 1, "{}", s.log());
    assert_contains(&dumps[0], "Subject: hard-routed");
    assert_contains(&dumps[0], "X-Rcpt-Args: <user@branch.test>");
    assert!(mx.dumps().is_empty(), "the MX from DNS got mail");
    assert!(
        !dns.queries().contains("branch.test. MX"),
        "an MX lookup was made:\n{}",
        dns.queries()
    );
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
}

/// `faxmta route ADDRESS` explains the way each kind of address goes,
/// with the MX hosts from the configured DNS in order.
#[test]
fn route_explains_each_kind_of_address() {
    let port = shared_port(&["127.0.0.2", "127.0.0.3"]);
    let dns = Dns::start(&zone(&[
        "pref.test. MX 20 mx2.pref.test.",
        "pref.test. MX 10 mx1.pref.test.",
        "mx1.pref.test. A 127.0.0.2",
        "mx2.pref.test. A 127.0.0.3",
        "nullmx.test. MX 0 .",
    ]));
    let s = faxmta(
        &dns,
        Some(port),
        "[[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.3:2525\", \"backup.branch.test\"]\ntls = \"required\"\n",
    );
    let route = |address: &str| cli_ok(&s, &["route", address]);

    let mx = route("someone@pref.test");
    assert_contains(
        &mx,
        "not our domain (accepted only from clients in [relay] allow: 127.0.0.1/32)",
    );
    assert_contains(
        &mx,
        &format!("SMTP to the MX hosts of pref.test (port {port})"),
    );
    assert_contains(
        &mx,
        "1. mx1.pref.test preference 10: 127.0.0.2\n  2. mx2.pref.test preference 20: 127.0.0.3",
    );
    assert_contains(&mx, "tls:     opportunistic");

    let relay = route("someone@branch.test");
    assert_contains(
        &relay,
        "relay domain (ours: accepted from any client), no MX lookup",
    );
    assert_contains(&relay, "1. 127.0.0.3:2525\n  2. backup.branch.test:25");
    assert_contains(&relay, "tls:     required");

    let local = route("alice@example.test");
    assert_contains(&local, "local domain");
    assert_contains(
        &local,
        &format!("{}/mail/example.test/alice", s.dir.path().display()),
    );

    assert_contains(&route("nobody@example.test"), "refused at RCPT: 550 5.1.1");
    assert_contains(
        &route("x@nullmx.test"),
        "does not accept mail (null MX) — delivery fails",
    );
}
