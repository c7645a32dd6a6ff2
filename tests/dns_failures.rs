//! DNS failures on the outbound path, with the real binary and a real DNS
//! server of our own (tests/peers/dns.py): a server that never answers
//! (for the MX question, or for the MX host's address), REFUSED, SERVFAIL
//! on the MX host's address, and no DNS server at all (127.0.0.1:9). Each
//! defers (4.4.3), is tried again and never bounces; once DNS answers
//! again the mail is delivered. The time to defer is bounded by `[dns]
//! timeout`. (SERVFAIL on the MX question itself is in tests/outbound.rs,
//! `nxdomain_bounces_and_servfail_is_retried`.)

mod common;
mod peers;

use common::*;
use peers::*;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.test";

fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n\r\nHello from the DNS failure tests.\r\n",
        now()
    )
}

/// Wait until recipient 0 of `id` has been tried at least `n` times;
/// returns its queue entry.
fn wait_attempts(s: &Server, id: &str, n: u64, secs: u64) -> serde_json::Value {
    let ok = wait_until(secs, || {
        find_queued(s, id).is_some_and(|m| m["recipients"][0]["attempts"].as_u64() >= Some(n))
    });
    assert!(ok, "{id} not tried {n} times in {secs}s:\n{}", s.log());
    find_queued(s, id).expect("still queued")
}

/// The recipient is deferred with a temporary DNS status, still queued,
/// and no report went to the sender.
fn assert_deferred_by_dns(s: &Server, id: &str, why: &str) {
    let env = wait_attempts(s, id, 2, 30);
    let r = &env["recipients"][0];
    assert_eq!(r["state"], "deferred", "{env}");
    assert_eq!(r["last_reply"]["code"], 451, "{env}");
    assert_eq!(r["last_reply"]["status"], "4.4.3", "{env}");
    let text = r["last_reply"]["text"].as_str().unwrap_or("");
    assert!(text.contains(why), "{why:?} not in {text:?}");
    assert!(
        !s.log().contains(&format!("{id}: sender non-delivery")),
        "{}",
        s.log()
    );
}

#[test]
fn every_dns_failure_defers_and_the_mail_flows_once_dns_answers() {
    let port = shared_port(&["127.0.0.2"]);
    let broken = [
        // The MX question is never answered.
        "mxtimeout.test. TIMEOUT",
        // The MX is there; its address question is never answered.
        "hosttimeout.test. MX 10 mx.hosttimeout.test.",
        "mx.hosttimeout.test. TIMEOUT",
        // REFUSED for the MX question.
        "refused.test. REFUSED",
        // SERVFAIL for the MX host's address.
        "hostservfail.test. MX 10 mx.hostservfail.test.",
        "mx.hostservfail.test. SERVFAIL",
    ];
    let dns = Dns::start(&zone(&broken));
    let sink = Sink::start("127.0.0.2", port, &[]);
    let s = faxmta(&dns, Some(port), "");

    let cases = [
        ("rcpt@mxtimeout.test", "MX lookup for mxtimeout.test"),
        ("rcpt@hosttimeout.test", "MX host mx.hosttimeout.test"),
        ("rcpt@refused.test", "MX lookup for refused.test"),
        ("rcpt@hostservfail.test", "MX host mx.hostservfail.test"),
    ];
    let ids: Vec<String> = cases
        .iter()
        .map(|(rcpt, _)| send(&s, ALICE, rcpt, &message(rcpt)))
        .collect();
    for ((rcpt, why), id) in cases.iter().zip(&ids) {
        wait_status(&s, id, rcpt, "deferred", 30);
        assert_deferred_by_dns(&s, id, why);
    }
    assert!(sink.dumps().is_empty());
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");

    // DNS answers again: every message goes out, none bounced.
    dns.set_zone(&zone(&[
        "mxtimeout.test. MX 10 mx.good.test.",
        "hosttimeout.test. MX 10 mx.hosttimeout.test.",
        "mx.hosttimeout.test. A 127.0.0.2",
        "refused.test. MX 10 mx.good.test.",
        "hostservfail.test. MX 10 mx.hostservfail.test.",
        "mx.hostservfail.test. A 127.0.0.2",
        "mx.good.test. A 127.0.0.2",
    ]));
    for ((rcpt, _), id) in cases.iter().zip(&ids) {
        wait_status(&s, id, rcpt, "sent", 60);
    }
    assert_eq!(sink.wait_dumps(cases.len(), 10).len(), cases.len());
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");
}

#[test]
fn a_dns_server_that_never_answers_defers_within_the_dns_timeout() {
    // [dns] timeout = 1s (the harness's), two attempts: the first attempt
    // must end well within 10 s, and the recipient is deferred (the
    // message waits in the queue; nothing is bounced).
    let dns = Dns::start(&zone(&["*. TIMEOUT"]));
    let s = faxmta(&dns, None, "");
    let started = Instant::now();
    let id = send(&s, ALICE, "rcpt@anything.test", &message("dns-timeout"));
    let line = wait_status(&s, &id, "rcpt@anything.test", "deferred", 30);
    let took = started.elapsed();
    eprintln!("deferred {took:?} after the message was accepted");
    assert!(took < Duration::from_secs(10), "deferred after {took:?}");
    assert_contains(&line, "dsn=4.4.3");
    assert_deferred_by_dns(&s, &id, "MX lookup for anything.test");
    assert!(
        dns.queries().contains("anything.test. MX -> TIMEOUT"),
        "{}",
        dns.queries()
    );
}

#[test]
fn no_dns_server_at_all_defers_and_delivers_once_one_answers() {
    // The harness's own resolver, 127.0.0.1:9, where nothing listens.
    let port = shared_port(&["127.0.0.2"]);
    let mut s = Server::start_with(
        "",
        &format!("[relay]\nallow = [\"127.0.0.1/32\"]\n[outbound]\nport = {port}\n"),
    );
    let id = send(&s, ALICE, "rcpt@down.test", &message("dns-down"));
    wait_status(&s, &id, "rcpt@down.test", "deferred", 30);
    assert_deferred_by_dns(&s, &id, "MX lookup for down.test");
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");

    // A DNS server appears: the queued message goes out after a restart
    // that points faxmta at it.
    let dns = Dns::start(&zone(&[
        "down.test. MX 10 mx.down.test.",
        "mx.down.test. A 127.0.0.2",
    ]));
    let sink = Sink::start("127.0.0.2", port, &[]);
    restart_with(
        &mut s,
        &[(
            "nameservers = [\"127.0.0.1:9\"]",
            &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
        )],
    );
    wait_status(&s, &id, "rcpt@down.test", "sent", 30);
    assert_eq!(sink.wait_dumps(1, 10).len(), 1);
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");
}
