//! The disk reserve (`[queue] min_free`) on the HTTP
//! fax API, with the queue on a small tmpfs as in tests/disk_full.rs:
//! while less than the reserve (plus the request's size and half again)
//! is free on the queue's filesystem, `sendfax` answers `507 QUEUE_FULL`
//! in the API's envelope and queues nothing; once space returns it is
//! taken, without a restart. (SMTP: tests/disk_full.rs; the POP3 gateway:
//! tests/pop3.rs; received faxes: tests/fax_inbound.rs.) Mounting needs
//! root, as CI has; the test says so and fails without it.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

#[path = "fax_api/client.rs"]
#[allow(dead_code)]
mod client;
use client::*;

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

/// Bytes free on the filesystem of `path` (df).
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

#[test]
fn below_the_disk_reserve_the_api_answers_queue_full_and_queues_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut s = start(&fax_config(w), "");
    let fs = s.path("fs");
    s.stop();
    let _tmpfs = Tmpfs::mount(&fs, "8m");
    let d = s.dir.path().display().to_string();
    restart_with(
        &mut s,
        &[(
            &format!("path = \"{d}/queue\""),
            &format!("path = \"{d}/fs/queue\"\nmin_free = \"2M\""),
        )],
    );
    let token = new_token(&s, &["scanner"]);
    let pdf = write(
        w,
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    let meta = write(
        w,
        "job.xml",
        job("alice@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    // Someone else fills the disk to 1 MiB free: below the reserve.
    let filler = fs.join("filler");
    let free = free_bytes(&fs);
    let out = Command::new("fallocate")
        .args(["-l", &(free - 1024 * 1024).to_string()])
        .arg(&filler)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let body = refused(
        post(&http(&s), &token, &meta, &[&pdf], &[]),
        507,
        "QUEUE_FULL",
    );
    assert_contains(&body, "insufficient system storage");
    refused_xml(
        post(
            &http(&s),
            &token,
            &meta,
            &[&pdf],
            &["-H", "Accept: application/xml"],
        ),
        507,
        "QUEUE_FULL",
    );
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));
    assert!(
        free_bytes(&fs) >= 1024 * 1024 - 64 * 1024,
        "the refused requests wrote into the reserve"
    );

    // Space returns: taken at once, no restart.
    std::fs::remove_file(&filler).unwrap();
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(queue_json(&s).len(), 1);
}
