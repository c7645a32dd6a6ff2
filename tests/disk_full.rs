//! A full disk, with the queue on a small tmpfs: new
//! mail gets 452 4.3.1 — before anything is written while less than
//! `[queue] min_free` is free, and from the failed write when the disk
//! really fills —, nothing acknowledged is lost (a kill -9 included), and
//! the service resumes by itself once space returns (sled's sticky write
//! error is cleared by reopening the database). Mounting needs root, as
//! CI has; the test says so and fails without it.

mod common;
mod peers;

use common::*;
use peers::Sink;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One message of about `kb` KiB with a subject to find it by.
fn message(subject: &str, kb: usize) -> String {
    let mut m = format!("From: a@client.test\r\nTo: u@full.test\r\nSubject: {subject}\r\n\r\n");
    let line = format!("{}\r\n", "x".repeat(76));
    for _ in 0..kb * 1024 / line.len() {
        m.push_str(&line);
    }
    m
}

/// Send one message; the reply to its final dot (or the first refusal).
fn try_send(server: &Server, subject: &str, kb: usize) -> String {
    let mut c = server.connect();
    c.cmd("EHLO client.test");
    let r = c.cmd("MAIL FROM:<a@client.test>");
    if !r.starts_with("250") {
        return r;
    }
    let r = c.cmd("RCPT TO:<u@full.test>");
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(message(subject, kb).as_bytes());
    c.send(b".\r\n");
    let r = c.reply();
    c.cmd("QUIT");
    r
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    output_text(&out)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// Fill the filesystem at `dir` up to the last byte with a filler file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    assert!(free_bytes(dir) < 4096, "the filesystem is not full");
    filler
}

#[test]
fn a_full_disk_defers_new_mail_keeps_the_old_and_recovers() {
    let relay = "127.0.0.23";
    let port = peers::shared_port(&[relay]);
    let mut server = Server::start_with(
        "",
        &format!(
            "[[domain]]\nname = \"full.test\"\nkind = \"relay\"\nhosts = [\"{relay}:{port}\"]\n"
        ),
    );
    let fs = server.path("fs");
    server.stop();
    let _tmpfs = Tmpfs::mount(&fs, "6m");
    let d = server.dir.path().display().to_string();
    restart_with(
        &mut server,
        &[(
            &format!("path = \"{d}/queue\""),
            &format!("path = \"{d}/fs/queue\"\nmin_free = \"0\""),
        )],
    );
    let mut acked = Vec::new();

    // 1. Without a reserve, a fresh queue on a disk filled by someone else up to its last
    // few pages: small messages are taken until the body files and sled's
    // growing log run out of room, then every new one gets 452 4.3.1.
    let filler = fill(&fs);
    let out = Command::new("truncate")
        .args(["-s", "-64K"])
        .arg(&filler)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let mut refusals = 0;
    for n in 0..100 {
        let subject = format!("full {n}");
        let r = try_send(&server, &subject, 1);
        if r.starts_with("250 ") {
            acked.push(subject);
        } else {
            assert!(r.starts_with("452 4.3.1 "), "{r}");
            refusals += 1;
            if refusals == 3 {
                break;
            }
        }
    }
    assert_eq!(refusals, 3, "64 KiB took 100 messages");
    // (The wait is the thing under test, not a guess: the refusal must
    // last while the disk stays full, through the scheduler's retries.)
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        try_send(&server, "still full", 1).starts_with("452 4.3.1 "),
        "{}",
        server.log()
    );

    // 2. Space returns: service resumes without a restart.
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    let mut resumed = false;
    for n in 0..30 {
        let subject = format!("after {n}");
        if try_send(&server, &subject, 8).starts_with("250 ") {
            acked.push(subject);
            resumed = true;
            break;
        }
        // (A poll with a deadline: one probe a second, 30 at most.)
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        resumed,
        "no mail taken once space returned:\n{}",
        server.log()
    );
    // The scheduler's writes hit the full disk too, which poisons sled's
    // handles for good: the store had to reopen the database.
    assert_contains(&server.log(), "queue database reopened after a write error");
    eprintln!("resumed {:?} after space returned", start.elapsed());
    // Meanwhile the scheduler paused on the messages it could not read or
    // record, rather than spinning on them.
    let spins = server.log().matches("cannot read from the queue").count();
    eprintln!("{spins} failed queue reads while full");
    assert!(spins < 300, "the scheduler spun: {spins} failed reads");

    restart_with(&mut server, &[("min_free = \"0\"", "min_free = \"1M\"")]);
    let log_before = server.log().len();
    // 3. With a reserve (min_free), the disk does not fill: refused before the disk is full, at MAIL when the
    // declared size does not fit, after DATA when the message does not.
    let mut c = server.connect();
    c.cmd("EHLO client.test");
    let r = c.cmd("MAIL FROM:<a@client.test> SIZE=8000000");
    assert!(
        r.starts_with("452 4.3.1 Insufficient system storage"),
        "{r}"
    );
    c.cmd("QUIT");
    let mut refused = None;
    for n in 0..100 {
        let subject = format!("reserve {n}");
        let r = try_send(&server, &subject, 100);
        if r.starts_with("250 ") {
            acked.push(subject);
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a 6 MiB disk took 10 MiB of mail");
    assert!(
        refused.starts_with("452 4.3.1 Insufficient system storage"),
        "{refused}"
    );
    assert!(
        acked.len() >= 20,
        "only {} messages were taken",
        acked.len()
    );
    assert!(free_bytes(&fs) >= 1024 * 1024, "the reserve was used");
    let log = server.log();
    assert!(!log[log_before..].contains("queue sync failed"), "{log}");

    // 4. Nothing acknowledged is lost, not even to a kill -9: every
    // message reaches the relay once it listens.
    server.kill9();
    server.spawn();
    let sink = Sink::start(relay, port, &[]);
    let dumps = sink.wait_dumps(acked.len(), 60);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dumps {
        if let Some(s) = d.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *seen.entry(s.trim().to_string()).or_default() += 1;
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|s| !seen.contains_key(*s)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not delivered: {lost:?}\n{}",
        server.log()
    );
    // A message refused with 452 may still arrive (its envelope reached
    // sled's log before the failed sync): a duplicate once the client
    // retries, which the invariants allow. Reported, not asserted.
    let refused_delivered: Vec<&String> = seen.keys().filter(|s| !acked.contains(s)).collect();
    let duplicates = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} acknowledged, all delivered; {duplicates} delivered twice; refused but delivered: {refused_delivered:?}",
        acked.len()
    );
}
