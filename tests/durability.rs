//! Invariant 1 seen from the kernel's side: strace records every file the
//! server creates and every fsync, and the `250 … queued as` reply must
//! come after the fsync of everything the message is made of — its body
//! file and the bodies directory, and, for an envelope large enough that
//! sled 0.34 writes it to a blob file of its own (hundreds of
//! recipients), that blob file and the blobs directory, which sled itself
//! never syncs. And the body's name is durable before sled writes
//! anything after it: sled may write the envelope out at any time once it
//! is inserted, so the bodies directory is synced before the insert.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};

/// strace attached to every thread of `pid`, writing to `out` (paths of
/// descriptors shown with -y); returns once it has attached.
fn trace(pid: u32, out: &std::path::Path) -> Child {
    let err = out.with_extension("err");
    let child = Command::new("strace")
        .args(["-f", "-y", "-s", "200", "-qq"])
        .args([
            "-e",
            "trace=openat,fsync,fdatasync,write,writev,sendto,sendmsg,pwrite64,pwritev",
        ])
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("strace runs (scripts/test installs it)");
    // Attached once the trace file has a line from the server (every
    // thread of a running tokio process makes system calls within a
    // second; the queue's sync thread wakes every second).
    assert!(
        wait_until(10, || std::fs::metadata(out).is_ok_and(|m| m.len() > 0)),
        "strace did not attach: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    child
}

#[test]
fn a_message_with_500_recipients_is_synced_blobs_included_before_the_250() {
    let mut server = Server::start_with("max_recipients = 1000", "");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace");
    let mut strace = trace(server.pid(), &out);

    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<sender@example.org>").starts_with("250"));
    for i in 0..500 {
        let rcpt = format!("recipient-{i:03}-{}@localhost", "x".repeat(100));
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "{r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: many\r\n\r\nOne message, five hundred recipients.\r\n.\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    // The 250 is in the trace: stop tracing (strace detaches).
    assert!(
        wait_until(10, || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.contains(&format!("queued as {id}")))),
        "no 250 in the trace"
    );
    let _ = Command::new("kill").arg(strace.id().to_string()).status();
    let _ = strace.wait();
    assert!(server.stop(), "{}", server.log());

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let reply = lines
        .iter()
        .position(|l| l.contains(&format!("queued as {id}")))
        .unwrap();
    let before = &lines[..reply];
    // `fsync(7</path>)` or `fdatasync(…)` of `path`, at or after line `from`.
    let synced_after = |path: &str, from: usize| {
        before[from..].iter().any(|l| {
            (l.contains(" fsync(") || l.contains(" fdatasync("))
                && l.contains(&format!("<{path}>)"))
        })
    };
    // The files created for the message before its 250.
    let created: Vec<(usize, String)> = before
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(" openat(") && l.contains("O_CREAT") && !l.contains("= -1"))
        .filter_map(|(i, l)| {
            let path = l.split('"').nth(1)?;
            Some((i, path.to_string()))
        })
        .collect();
    let body = created
        .iter()
        .find(|(_, p)| p.ends_with(&format!("/bodies/{id}")))
        .unwrap_or_else(|| panic!("no body file created:\n{created:?}"));
    let blobs: Vec<&(usize, String)> = created
        .iter()
        .filter(|(_, p)| p.contains("/blobs/"))
        .collect();
    assert!(
        !blobs.is_empty(),
        "the envelope was not written to a blob file: make it larger ({created:?})"
    );
    let queue = body
        .1
        .trim_end_matches(&format!("/bodies/{id}"))
        .to_string();
    assert!(synced_after(&body.1, body.0), "body file not synced");
    assert!(
        synced_after(&format!("{queue}/bodies"), body.0),
        "bodies directory not synced"
    );
    // Nothing of sled's is written between the body's creation and the
    // sync of its directory.
    let dir_synced = before[body.0..]
        .iter()
        .position(|l| l.contains(" fsync(") && l.contains(&format!("<{queue}/bodies>)")))
        .map(|n| body.0 + n)
        .unwrap();
    let sled_write = before[body.0..]
        .iter()
        .position(|l| {
            (l.contains(" pwrite64(") || l.contains(" pwritev("))
                && l.contains(&format!("<{queue}/db>"))
        })
        .map(|n| body.0 + n);
    assert!(
        sled_write.is_some_and(|w| w > dir_synced),
        "sled wrote (line {sled_write:?}) before the bodies directory was synced (line {dir_synced})"
    );
    let last_blob = blobs.iter().map(|(i, _)| *i).max().unwrap();
    for (i, path) in &blobs {
        assert!(
            synced_after(path, *i),
            "blob {path} written before the 250 and never synced"
        );
    }
    assert!(
        synced_after(&format!("{queue}/blobs"), last_blob),
        "blobs directory not synced after the last blob"
    );
}
