//! Misbehaving destinations, with the real binary and real sockets: a
//! server that accepts TCP and never speaks, one that answers a byte a
//! second, one that sends an endless line, one that drops the connection
//! after the data (having read the final dot), one that never answers the
//! dot, one that says 421 at the greeting and one that says 421 to MAIL
//! (tests/peers/hostile.py, each on its own 127.0.0.x). Each recipient
//! ends deferred (4.x.x, still queued, no report) within a bound derived
//! from the short `[outbound]` timeouts configured here; meanwhile mail to
//! a good destination (Postfix's smtp-sink) keeps flowing, even with so
//! few delivery workers that a stuck one would block everything. A host
//! that timed out is suspended for a while: the next deliveries to it are
//! deferred without a connection.

mod common;
mod peers;

use common::*;
use peers::*;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.test";

/// Every outbound timeout, in seconds.
const TIMEOUT: u64 = 3;
/// How long a hostile peer may hold a recipient before it must be
/// deferred: the longest step's timeout, plus the connect timeout, plus
/// room for scheduling on a busy machine.
const BOUND: Duration = Duration::from_secs(2 * TIMEOUT + 6);

/// The hostile kinds: (mode, domain, address, interval between bytes).
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("silent", "silent.test", "127.0.0.3", "1"),
    ("trickle", "trickle.test", "127.0.0.4", "1"),
    ("endless", "endless.test", "127.0.0.5", "0"),
    ("drop-data", "dropdata.test", "127.0.0.6", "1"),
    ("silent-dot", "silentdot.test", "127.0.0.7", "1"),
    ("421", "busy.test", "127.0.0.8", "1"),
    ("421-mail", "busymail.test", "127.0.0.9", "1"),
];

/// faxmta with short outbound timeouts, a relay domain per hostile peer
/// and good.test relayed to `good_port` on 127.0.0.2; `concurrency`
/// deliveries at once.
fn start(peers: &[(&str, &Hostile)], good_port: u16, concurrency: usize) -> Server {
    let t = format!("\"{TIMEOUT}s\"");
    let mut extra = format!(
        "[relay]\nallow = [\"127.0.0.1/32\"]\n[outbound]\ntls = \"off\"\n\
         connect_timeout = {t}\nhelo_timeout = {t}\ncommand_timeout = {t}\n\
         data_init_timeout = {t}\ndata_timeout = {t}\ndata_done_timeout = {t}\n\
         [[domain]]\nname = \"good.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.2:{good_port}\"]\n"
    );
    for (domain, peer) in peers {
        let ip = KINDS.iter().find(|k| k.1 == *domain).unwrap().2;
        extra.push_str(&format!(
            "[[domain]]\nname = \"{domain}\"\nkind = \"relay\"\nhosts = [\"{ip}:{}\"]\n",
            peer.port
        ));
    }
    let mut s = Server::start_with("", &extra);
    restart_with(
        &mut s,
        &[(
            "lifetime = \"1h\"\n",
            &format!("lifetime = \"1h\"\nconcurrency = {concurrency}\n"),
        )],
    );
    s
}

fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n\r\nHello from the hostile peer tests.\r\n",
        now()
    )
}

#[test]
fn each_hostile_peer_ends_deferred_within_the_timeouts() {
    let good_port = free_port_on(&["127.0.0.2"]);
    let sink = Sink::start("127.0.0.2", good_port, &[]);
    let hostile: Vec<Hostile> = KINDS
        .iter()
        .map(|(mode, _, ip, interval)| Hostile::start(mode, ip, interval))
        .collect();
    let peers: Vec<(&str, &Hostile)> = KINDS.iter().map(|k| k.1).zip(&hostile).collect();
    let s = start(&peers, good_port, 20);

    let sent: Vec<(String, String, Instant)> = KINDS
        .iter()
        .map(|(mode, domain, ..)| {
            let rcpt = format!("rcpt@{domain}");
            let id = send(&s, ALICE, &rcpt, &message(mode));
            (rcpt, id, Instant::now())
        })
        .collect();
    let good = send(&s, ALICE, "rcpt@good.test", &message("good"));

    for ((mode, ..), (rcpt, id, at)) in KINDS.iter().zip(&sent) {
        let line = wait_status(&s, id, rcpt, "deferred", 60);
        let took = at.elapsed();
        eprintln!("{mode}: deferred after {took:?}: {line}");
        assert!(took < BOUND, "{mode}: deferred only after {took:?}");
        assert!(line.contains("dsn=4."), "{mode}: {line}");
    }
    wait_status(&s, &good, "rcpt@good.test", "sent", 10);
    assert_eq!(sink.wait_dumps(1, 10).len(), 1);

    // Still queued, deferred with a temporary status, retried, no report.
    for ((mode, ..), (_, id, _)) in KINDS.iter().zip(&sent) {
        let ok = wait_until(30, || {
            find_queued(&s, id).is_some_and(|m| m["recipients"][0]["attempts"].as_u64() >= Some(2))
        });
        assert!(ok, "{mode}: not tried again:\n{}", s.log());
        let env = find_queued(&s, id).unwrap();
        let r = &env["recipients"][0];
        assert_eq!(r["state"], "deferred", "{mode}: {env}");
        let status = r["last_reply"]["status"].as_str().unwrap_or("");
        assert!(status.starts_with("4."), "{mode}: {env}");
        assert!(!s.log().contains(&format!("{id}: sender non-delivery")));
    }
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");

    // What each peer saw, and what faxmta said about it.
    let by_mode = |m: &str| &hostile[KINDS.iter().position(|k| k.0 == m).unwrap()];
    assert!(by_mode("drop-data").count("dot") >= 1, "the data went out");
    assert!(by_mode("silent-dot").count("dot") >= 1, "the data went out");
    // Hosts that timed out are suspended (suspend_time, 60 s by default):
    // the next attempts are deferred at once, without a connection, so
    // no worker waits on them again; hosts that answered are tried again.
    for mode in ["silent", "trickle", "silent-dot"] {
        let (_, id, _) = &sent[KINDS.iter().position(|k| k.0 == mode).unwrap()];
        let env = find_queued(&s, id).unwrap();
        let text = env["recipients"][0]["last_reply"]["text"]
            .as_str()
            .unwrap_or("");
        assert!(
            text.starts_with("delivery temporarily suspended: conversation with"),
            "{mode}: {env}"
        );
        assert_eq!(by_mode(mode).count("connect"), 1, "{mode}: one connection");
    }
    for mode in ["drop-data", "421", "421-mail"] {
        assert!(by_mode(mode).count("connect") >= 2, "{mode}: tried again");
    }
    let log = s.log();
    for needle in [
        "timed out while receiving the greeting (3s)",
        "while receiving the reply to end of DATA",
        "timed out while receiving the reply to end of DATA (3s)",
        "sent a reply line longer than 4096 octets",
        "421 4.3.2 hostile.test busy",
        "421 4.3.2 hostile.test closing, too busy",
    ] {
        assert_contains(&log, needle);
    }
}

#[test]
fn good_mail_keeps_flowing_while_hostile_peers_hang() {
    // Two delivery workers, and more hostile messages than workers: a
    // worker stuck on a peer that trickles bytes (a transaction there
    // takes minutes when each read has its own timeout) would hold the
    // good mail back for as long.
    let good_port = free_port_on(&["127.0.0.2"]);
    let sink = Sink::start("127.0.0.2", good_port, &[]);
    let slow = ["silent", "trickle", "silent-dot"];
    let hostile: Vec<Hostile> = slow
        .iter()
        .map(|m| {
            let k = KINDS.iter().find(|k| k.0 == *m).unwrap();
            Hostile::start(k.0, k.2, k.3)
        })
        .collect();
    let peers: Vec<(&str, &Hostile)> = slow
        .iter()
        .map(|m| KINDS.iter().find(|k| k.0 == *m).unwrap().1)
        .zip(&hostile)
        .collect();
    let s = start(&peers, good_port, 2);

    let mut bad = Vec::new();
    for round in 0..2 {
        for (domain, _) in &peers {
            let rcpt = format!("rcpt@{domain}");
            bad.push((
                send(&s, ALICE, &rcpt, &message(&format!("{domain}{round}"))),
                rcpt,
            ));
        }
    }
    let started = Instant::now();
    let good: Vec<String> = (0..5)
        .map(|i| send(&s, ALICE, "rcpt@good.test", &message(&format!("good{i}"))))
        .collect();
    // Each hostile message holds a worker for at most one timeout step
    // (plus connect); six of them on two workers, then the good mail.
    let bound = Duration::from_secs(6 * (2 * TIMEOUT) / 2 + 20);
    for id in &good {
        let line = wait_status(&s, id, "rcpt@good.test", "sent", bound.as_secs());
        eprintln!("good mail sent after {:?}: {line}", started.elapsed());
    }
    assert_eq!(sink.wait_dumps(good.len(), 10).len(), good.len());
    // The hostile ones are all still queued, deferred.
    for (id, rcpt) in &bad {
        wait_status(&s, id, rcpt, "deferred", 30);
        assert!(find_queued(&s, id).is_some(), "{id} still queued");
    }
    assert!(s.maildir("example.test", "alice").is_empty(), "no report");
}
