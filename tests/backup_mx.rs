//! Backup MX with the real binary against real peers on
//! loopback. The test zones (tests/peers/dns.py) give each domain a
//! primary at 127.0.0.2 (preference 10) and faxmta at preference 20 —
//! `mx.example.test`, faxmta's hostname, with an A record for 127.0.0.1 —
//! and MX hosts are contacted on faxmta's own MX listener port, so faxmta
//! also knows itself by address. Primaries are smtp-sink or a private
//! Postfix, started while the test runs.
//!
//! Shown: mail accepted from a client that may not relay is queued while
//! the primary is down (deferred, the reason in the queue), with the 30 day
//! lifetime, and goes to the primary within a retry interval once it is
//! up — or at once on `faxmta queue flush --domain` when retries are long;
//! a less preferred host is never used; where faxmta is the most preferred
//! MX, or not an MX at all, the mail is deferred with the reason — never
//! sent to itself, never bounced; a recipient list and a callout to the
//! primary decide at RCPT; a short per-domain lifetime ends in the usual
//! report; `faxmta route` shows the MX set, our preference and the hosts
//! that may be tried.
//!
//! Nothing leaves 127.0.0.0/8.

mod common;
mod peers;
#[path = "backup_mx/support.rs"]
mod support;

use common::*;
use peers::*;
use std::time::{Duration, Instant};
use support::*;

const ALICE: &str = "alice@example.test";
const THIRTY_DAYS: u64 = 30 * 86_400;

#[test]
fn mail_waits_for_the_primary_and_goes_once_it_answers() {
    let mut records = backed_up("partner.test", "127.0.0.2");
    records.push("partner.test. MX 30 mx3.partner.test.".into());
    records.push("mx3.partner.test. A 127.0.0.3".into());
    let dns = Dns::start(&zone_with(&records));
    let s = faxmta(&dns, None, &backup_domains(&[("partner.test", "")]));
    // Less preferred than faxmta: it must never be used.
    let mx3 = Sink::start("127.0.0.3", s.mx_port, &[]);

    // From a client that may not relay: the domain is ours to take.
    let out = transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &["user@partner.test"],
        "held",
    );
    assert_contains(&out, "RCPT user@partner.test 250");
    let id = queued_as(&out);
    let line = wait_status(&s, &id, "user@partner.test", "deferred", 10);
    let primary_addr = format!("mx1.partner.test[127.0.0.2:{}]", s.mx_port);
    assert_contains(&line, &primary_addr);

    // Queued, deferred, the primary's trouble as the reason; 30 days.
    assert!(wait_attempts(&s, &id, 0, 2, 10), "{}", s.log());
    let env = find_queued(&s, &id).unwrap();
    assert_eq!(env["lifetime"], THIRTY_DAYS, "{env}");
    assert_eq!(env["recipients"][0]["state"], "deferred", "{env}");
    let reply = &env["recipients"][0]["last_reply"];
    assert_eq!(reply["code"], 451, "{env}");
    assert_contains(reply["text"].as_str().unwrap(), &primary_addr);
    let mailq = cli_ok(&s, &["queue", "list"]);
    assert_contains(&mailq, &primary_addr);
    assert_contains(&mailq, "user@partner.test  [deferred");

    // The primary comes up: the next retry (1s) hands the mail over.
    let started = Instant::now();
    let primary = Sink::start("127.0.0.2", s.mx_port, &[]);
    let complete = || primary.dumps().iter().any(|d| d.contains("Subject: held"));
    assert!(wait_until(10, complete), "{}", s.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let dumps = primary.dumps();
    assert_eq!(dumps.len(), 1);
    assert_contains(&dumps[0], "X-Mail-Args: <someone@outside.example>");
    assert_contains(&dumps[0], "X-Rcpt-Args: <user@partner.test>");
    assert_contains(&dumps[0], "Subject: held");
    let line = wait_status(&s, &id, "user@partner.test", "sent", 10);
    assert_contains(
        &line,
        &format!("relay=mx1.partner.test[127.0.0.2]:{}", s.mx_port),
    );
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
    assert_eq!(mx3.connections(), 0, "the less preferred MX was contacted");
    assert!(mx3.dumps().is_empty());
    assert_no_loop(&s);
}

#[test]
fn flush_domain_releases_backup_mail_at_once_when_retries_are_long() {
    let mut records = backed_up("partner.test", "127.0.0.2");
    records.extend(backed_up("other.test", "127.0.0.3"));
    let dns = Dns::start(&zone_with(&records));
    let mut s = faxmta(
        &dns,
        None,
        &backup_domains(&[("partner.test", ""), ("other.test", "lifetime = \"7d\"\n")]),
    );
    restart_with(&mut s, &[("retry = [\"1s\"]", "retry = [\"1h\"]")]);

    let a = send(&s, ALICE, "a@partner.test", "Subject: a\r\n\r\na\r\n");
    let b = send(&s, ALICE, "b@other.test", "Subject: b\r\n\r\nb\r\n");
    let held = send(&s, ALICE, "held@partner.test", "Subject: held\r\n\r\nh\r\n");
    // Mixed: a local recipient (delivered at once) and a backup one, each
    // with its own lifetime.
    let mixed = queued_as(&transaction(
        &s,
        "127.0.0.1",
        ALICE,
        &["mixed@partner.test", "bob@example.test"],
        "mixed",
    ));
    for (id, rcpt) in [
        (&a, "a@partner.test"),
        (&b, "b@other.test"),
        (&held, "held@partner.test"),
        (&mixed, "mixed@partner.test"),
    ] {
        wait_status(&s, id, rcpt, "deferred", 10);
    }
    assert_eq!(s.wait_maildir("example.test", "bob", 1, 10).len(), 1);
    assert_eq!(find_queued(&s, &a).unwrap()["lifetime"], THIRTY_DAYS);
    assert_eq!(find_queued(&s, &b).unwrap()["lifetime"], 7 * 86_400);
    let env = find_queued(&s, &mixed).unwrap();
    assert!(env["lifetime"].is_null(), "{env}");
    assert_eq!(env["recipients"][0]["lifetime"], THIRTY_DAYS, "{env}");
    assert!(env["recipients"][1]["lifetime"].is_null(), "{env}");
    cli_ok(&s, &["queue", "hold", &held]);

    // Both primaries come up; with retries an hour apart nothing moves.
    let partner = Sink::start("127.0.0.2", s.mx_port, &[]);
    let other = Sink::start("127.0.0.3", s.mx_port, &[]);
    // (What must not happen: an attempt before the hour is up; only time
    // shows it.)
    assert!(holds_for(Duration::from_secs(3), || partner
        .dumps()
        .is_empty()
        && other.dumps().is_empty()));

    let out = cli_ok(&s, &["queue", "flush", "--domain", "Partner.Test"]);
    assert_eq!(out.trim(), "2 message(s) scheduled for delivery now");
    // (A dump file appears before smtp-sink has written it: wait for both.)
    let both = || {
        let all = partner.dumps().join("\n");
        all.contains("X-Rcpt-Args: <a@partner.test>")
            && all.contains("X-Rcpt-Args: <mixed@partner.test>")
    };
    assert!(wait_until(10, both), "{:?}\n{}", partner.dumps(), s.log());
    wait_status(&s, &a, "a@partner.test", "sent", 10);
    wait_status(&s, &mixed, "mixed@partner.test", "sent", 10);
    assert!(wait_until(10, || find_queued(&s, &mixed).is_none()));

    // Not the other domain, not the held message (what must not happen:
    // only time shows it).
    assert!(holds_for(Duration::from_secs(1), || other
        .dumps()
        .is_empty()
        && partner.dumps().len() == 2));
    assert_eq!(recipient(&s, &b, 0)["attempts"], 1);
    let env = find_queued(&s, &held).unwrap();
    assert_eq!(env["held"], true, "{env}");
    assert_eq!(partner.dumps().len(), 2);

    let out = s.cli(&["queue", "flush", "--domain", "x.test", &a]);
    assert!(!out.status.success(), "--domain and an id together");
    assert_no_loop(&s);
}

#[test]
fn where_we_are_the_most_preferred_or_no_mx_the_mail_is_held_with_the_reason() {
    let dns = Dns::start(&zone(&[
        // top.test: faxmta (by address only: another name) is preferred.
        "top.test. MX 10 backup.top.test.",
        "top.test. MX 20 mx2.top.test.",
        "backup.top.test. A 127.0.0.1",
        "mx2.top.test. A 127.0.0.2",
        // none.test: faxmta is not in the MX set at all.
        "none.test. MX 10 mx1.none.test.",
        "mx1.none.test. A 127.0.0.3",
    ]));
    let s = faxmta(
        &dns,
        None,
        &backup_domains(&[("top.test", ""), ("none.test", "")]),
    );
    let mx2 = Sink::start("127.0.0.2", s.mx_port, &[]);
    let none_mx = Sink::start("127.0.0.3", s.mx_port, &[]);

    let id = queued_as(&transaction(
        &s,
        "127.0.0.9",
        ALICE,
        &["a@top.test", "b@none.test"],
        "nowhere",
    ));
    let top = wait_status(&s, &id, "a@top.test", "deferred", 10);
    assert_contains(
        &top,
        "we are the most preferred MX for top.test (preference 10)",
    );
    let none = wait_status(&s, &id, "b@none.test", "deferred", 10);
    assert_contains(&none, "this host is not an MX for none.test");
    assert_contains(&none, "mx1.none.test (10)");

    // Retried (every second) and still held: no bounce, no loop, nothing
    // to the other hosts.
    assert!(wait_attempts(&s, &id, 0, 3, 15), "{}", s.log());
    assert!(wait_attempts(&s, &id, 1, 3, 15), "{}", s.log());
    let env = find_queued(&s, &id).unwrap();
    for (i, status) in [(0, "4.4.6"), (1, "4.4.4")] {
        assert_eq!(env["recipients"][i]["state"], "deferred", "{env}");
        assert_eq!(
            env["recipients"][i]["last_reply"]["status"], status,
            "{env}"
        );
    }
    let mailq = cli_ok(&s, &["queue", "list"]);
    assert_contains(&mailq, "we are the most preferred MX for top.test");
    assert_contains(&mailq, "this host is not an MX for none.test");
    assert_eq!(queue_json(&s).len(), 1, "only the one message");
    assert!(
        s.maildir("example.test", "alice").is_empty(),
        "a report was sent"
    );
    assert_eq!(mx2.connections(), 0);
    assert_eq!(none_mx.connections(), 0);
    let log = s.log();
    assert_contains(&log, "WARN");
    assert!(!log.contains("status=bounced"), "{log}");
    assert!(!log.contains("loops back to myself"), "{log}");
    assert_no_loop(&s);
}

#[test]
fn a_listener_on_every_address_knows_itself_by_an_interface_address() {
    // faxmta's entry in the MX set has another name and the address of
    // an interface of this machine (not loopback), and faxmta listens on
    // 0.0.0.0: that entry is its own, the most preferred, so the mail is
    // held as a backup holds it (4.4.6). Were the address not recognised,
    // faxmta would find itself in no MX set (4.4.4). Nothing is sent to
    // the interface address: a backup MX sends only to hosts more
    // preferred than itself, and here there are none.
    let ip = interface_address();
    let dns = Dns::start(&zone(&[
        "wide.test. MX 10 backup.wide.test.",
        "wide.test. MX 20 mx2.wide.test.",
        &format!("backup.wide.test. A {ip}"),
        "mx2.wide.test. A 127.0.0.3",
    ]));
    let mut s = faxmta(&dns, None, &backup_domains(&[("wide.test", "")]));
    let listener = format!("addr = \"127.0.0.1:{}\"", s.mx_port);
    let everywhere = format!("addr = \"0.0.0.0:{}\"", s.mx_port);
    restart_with(&mut s, &[(&listener, &everywhere)]);

    let id = queued_as(&transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &["user@wide.test"],
        "wide",
    ));
    let line = wait_status(&s, &id, "user@wide.test", "deferred", 10);
    assert_contains(
        &line,
        "we are the most preferred MX for wide.test (preference 10)",
    );
    let env = find_queued(&s, &id).unwrap();
    assert_eq!(
        env["recipients"][0]["last_reply"]["status"], "4.4.6",
        "{env}"
    );
    assert!(!s.log().contains("this host is not an MX"), "{}", s.log());
    assert_no_loop(&s);
}

#[test]
fn a_recipient_list_decides_at_rcpt() {
    let dns = Dns::start(&zone_with(&backed_up("listed.test", "127.0.0.2")));
    let s = faxmta(
        &dns,
        None,
        &backup_domains(&[("listed.test", "users = [\"ann\", \"Bob\"]\n")]),
    );
    let out = transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &[
            "ann@listed.test",
            "BOB@listed.test",
            "carol@listed.test",
            "postmaster@listed.test",
            "x@elsewhere.example",
        ],
        "listed",
    );
    assert_contains(&out, "RCPT ann@listed.test 250");
    assert_contains(&out, "RCPT BOB@listed.test 250");
    assert_contains(&out, "RCPT carol@listed.test 550 5.1.1 <carol@listed.test>");
    assert_contains(&out, "RCPT postmaster@listed.test 250");
    assert_contains(&out, "RCPT x@elsewhere.example 554 5.7.1");
    let id = queued_as(&out);
    let env = find_queued(&s, &id).unwrap();
    assert_eq!(env["recipients"].as_array().unwrap().len(), 3, "{env}");
    assert_eq!(env["lifetime"], THIRTY_DAYS, "{env}");
}

#[test]
fn a_callout_asks_the_primary_and_accepts_when_it_cannot() {
    let mut records = backed_up("asked.test", "127.0.0.2");
    records.extend(backed_up("slow.test", "127.0.0.4"));
    let dns = Dns::start(&zone_with(&records));
    let s = faxmta(
        &dns,
        None,
        &backup_domains(&[
            ("asked.test", "verify = \"callout\"\n"),
            (
                "slow.test",
                "verify = \"callout\"\ncallout_timeout = \"2s\"\n",
            ),
        ]),
    );
    let primary = Postfix::start("127.0.0.2", s.mx_port, "asked.test", &["ann"], "");

    let out = transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &["ann@asked.test", "carol@asked.test"],
        "asked",
    );
    assert_contains(&out, "RCPT ann@asked.test 250");
    // The primary's refusal, in its own words.
    assert_contains(
        &out,
        "RCPT carol@asked.test 550 5.1.1 <carol@asked.test>: Recipient address rejected: \
         the primary MX mx1.asked.test said: 550 5.1.1",
    );
    assert_contains(&out, "User unknown");
    let id = queued_as(&out);
    // The callout itself sent no mail; the message then went to ann.
    let mail = primary.wait_maildir("ann", 1, 15);
    assert_eq!(mail.len(), 1, "{}", s.log());
    assert_contains(&mail[0], "Subject: asked");
    wait_status(&s, &id, "ann@asked.test", "sent", 10);
    let log = primary.log();
    assert_contains(&log, "from=<> to=<carol@asked.test>");
    // A second question about carol is answered from the cache.
    let before = log.matches("to=<carol@asked.test>").count();
    let again = transaction(
        &s,
        "127.0.0.9",
        "x@outside.example",
        &["carol@asked.test"],
        "again",
    );
    assert_contains(&again, "RCPT carol@asked.test 550 5.1.1");
    assert_eq!(
        primary.log().matches("to=<carol@asked.test>").count(),
        before
    );

    // The primary goes down: a backup accepts what it cannot verify.
    drop(primary);
    let out = transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &["dave@asked.test"],
        "unverified",
    );
    assert_contains(&out, "RCPT dave@asked.test 250");
    let id = queued_as(&out);
    wait_status(&s, &id, "dave@asked.test", "deferred", 10);
    assert_contains(
        &s.log(),
        "callout <dave@asked.test>: not verified, accepted as backup MX",
    );

    // A primary that takes the connection but never answers: the callout
    // gives up after callout_timeout and the recipient is accepted.
    let silent = std::net::TcpListener::bind(("127.0.0.4", s.mx_port)).unwrap();
    let started = Instant::now();
    let out = transaction(
        &s,
        "127.0.0.9",
        "someone@outside.example",
        &["eve@slow.test"],
        "slow",
    );
    let took = started.elapsed();
    assert_contains(&out, "RCPT eve@slow.test 250");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_contains(
        &s.log(),
        "the callout to the primary MX of slow.test took more than 2s",
    );
    drop(silent);
}

#[test]
fn a_short_backup_lifetime_ends_in_the_usual_report() {
    let dns = Dns::start(&zone_with(&backed_up("brief.test", "127.0.0.2")));
    let s = faxmta(
        &dns,
        None,
        &backup_domains(&[("brief.test", "lifetime = \"3s\"\n")]),
    );
    let id = send(&s, ALICE, "user@brief.test", "Subject: brief\r\n\r\nb\r\n");
    assert_eq!(find_queued(&s, &id).unwrap()["lifetime"], 3);
    let line = wait_status(&s, &id, "user@brief.test", "bounced", 15);
    assert_contains(&line, "5.4.7");
    let reports = s.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(reports.len(), 1, "{}", s.log());
    let report = String::from_utf8_lossy(&read(&reports[0])).into_owned();
    assert_contains(&report, "Final-Recipient: rfc822; user@brief.test");
    assert_contains(&report, "Status: 5.4.7");
    assert_contains(&report, "expired after 3s");
    assert!(wait_queue_empty(&s, 5), "{}", s.log());
}

#[test]
fn route_explains_the_backup_mx_set() {
    let mut records = backed_up("partner.test", "127.0.0.2");
    records.extend([
        "partner.test. MX 30 mx3.partner.test.".to_string(),
        "mx3.partner.test. A 127.0.0.3".to_string(),
        "top.test. MX 10 mx.example.test.".to_string(),
        "top.test. MX 20 mx2.top.test.".to_string(),
        "mx2.top.test. A 127.0.0.2".to_string(),
        "named.test. MX 10 mx1.named.test.".to_string(),
        "named.test. MX 20 backup.isp.test.".to_string(),
        "mx1.named.test. A 127.0.0.2".to_string(),
        "backup.isp.test. A 127.0.0.5".to_string(),
    ]);
    let dns = Dns::start(&zone_with(&records));
    let s = faxmta(
        &dns,
        None,
        &backup_domains(&[
            ("partner.test", ""),
            ("top.test", "verify = \"callout\"\n"),
            (
                "named.test",
                "our_mx = \"backup.isp.test\"\nlifetime = \"10d\"\n",
            ),
        ]),
    );
    let route = |address: &str| cli_ok(&s, &["route", address]);

    let partner = route("user@partner.test");
    assert_contains(
        &partner,
        "rule:    backup MX for partner.test (ours to relay: accepted from any client)",
    );
    assert_contains(&partner, "users:   every local part is accepted");
    assert_contains(&partner, "queue:   kept up to 30d");
    assert_contains(
        &partner,
        &format!(
            "SMTP only to MX hosts of partner.test more preferred than this host (port {})",
            s.mx_port
        ),
    );
    assert_contains(
        &partner,
        "  1. mx1.partner.test preference 10: 127.0.0.2 — more preferred: may be tried\n  \
         2. mx.example.test preference 20: 127.0.0.1 — this host (our entry)\n  \
         3. mx3.partner.test preference 30: 127.0.0.3 — not more preferred than us: never tried",
    );
    assert_contains(&partner, "us:      preference 20");
    assert_contains(&partner, "tries:   mx1.partner.test\n");

    let top = route("user@top.test");
    assert_contains(&top, "verified at RCPT by a callout to the primary MX");
    assert_contains(
        &top,
        "tries:   none — delivery is deferred: we are the most preferred MX for top.test",
    );

    let named = route("user@named.test");
    assert_contains(
        &named,
        "2. backup.isp.test preference 20: 127.0.0.5 — this host",
    );
    assert_contains(&named, "our_mx backup.isp.test");
    assert_contains(&named, "queue:   kept up to 10d");
    assert_contains(&named, "tries:   mx1.named.test");
}
