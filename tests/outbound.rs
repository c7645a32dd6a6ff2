//! Outbound SMTP delivery with the real binary against real peers, all on
//! loopback: MX resolution from an authoritative DNS server of our own
//! (tests/peers/dns.py), Postfix's smtp-sink and a private Postfix
//! instance with STARTTLS as the receiving hosts (127.0.0.2, 127.0.0.3 …,
//! one port number per test), reports (RFC 3464) back to a local sender,
//! and what /metrics counts of it all.
//!
//! Every test starts its own faxmta, which relays for 127.0.0.1 and asks
//! only the test's DNS server; nothing leaves 127.0.0.0/8.

#[path = "outbound/capabilities.rs"]
mod capabilities;
mod common;
#[path = "outbound/metrics.rs"]
mod metrics;
mod peers;
#[path = "outbound/support.rs"]
mod support;

use common::*;
use peers::*;
use support::*;

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
