//! What the server leaves on disk. Invariant 1 seen from the kernel's side: strace records every file the
//! server creates and every fsync, and the `250 … queued as` reply must
//! come after the fsync of everything the message is made of — its body
//! (appended to a segment file, which is fdatasynced, and the bodies
//! directory synced when the segment is new), and, for an envelope large
//! enough that sled 0.34 writes it to a blob file of its own (hundreds of
//! recipients), that blob file and the blobs directory, which sled itself
//! never syncs.
//! And who may read it: the queue, the Maildirs and the keys are for
//! faxmta's user alone (`umask`).

mod common;

use common::*;
use std::process::Command;

#[test]
fn a_message_with_500_recipients_is_synced_blobs_included_before_the_250() {
    let mut server = Server::start_with("max_recipients = 1000", "");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace");
    let mut strace = strace(
        server.pid(),
        &out,
        "openat,fsync,fdatasync,write,writev,sendto,sendmsg,pwrite64,pwritev",
    );

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
    // `fsync(7</path>)` or `fdatasync(…)` of `path`, at or after line
    // `from` (strace shows a call that another thread's call interrupts
    // as `fsync(7</path> <unfinished ...>`; it ended before the 250).
    let synced_after = |path: &str, from: usize| {
        before[from..].iter().any(|l| {
            (l.contains(" fsync(") || l.contains(" fdatasync("))
                && (l.contains(&format!("<{path}>)"))
                    || l.contains(&format!("<{path}> <unfinished")))
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
    // The body: the last append to a segment before the 250 (a small
    // body gets no file of its own). `pwrite64(7</q/bodies/seg-…>, …`.
    let (appended, segment) = before
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, l)| {
            let call = l.find(" pwrite64(").or_else(|| l.find(" pwritev("))?;
            let fd = &l[call..];
            let path = fd.get(fd.find('<')? + 1..fd.find('>')?)?;
            path.contains("/bodies/seg-").then(|| (i, path.to_string()))
        })
        .unwrap_or_else(|| panic!("no body appended to a segment:\n{}", before.join("\n")));
    assert!(
        !created
            .iter()
            .any(|(_, p)| p.ends_with(&format!("/bodies/{id}"))),
        "a small body got a file of its own: {created:?}"
    );
    let blobs: Vec<&(usize, String)> = created
        .iter()
        .filter(|(_, p)| p.contains("/blobs/"))
        .collect();
    assert!(
        !blobs.is_empty(),
        "the envelope was not written to a blob file: make it larger ({created:?})"
    );
    let queue = segment
        .split("/bodies/")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(synced_after(&segment, appended), "segment not synced");
    // A segment made for this message: its name is durable too.
    if let Some((made, _)) = created.iter().find(|(_, p)| *p == segment) {
        assert!(
            synced_after(&format!("{queue}/bodies"), *made),
            "bodies directory not synced after the segment was made"
        );
    }
    // The body and its envelope become durable in the same sync: the
    // segment is synced, and so is sled's log after the append (the
    // envelope's record is written after the body). sled may write the
    // record before the segment's sync ends; a crash then leaves a body
    // that fails its checksum, of a message never acknowledged, which
    // the next open drops (queue crate: `sled::tests::
    // a_body_that_never_reached_the_disk_takes_its_unacknowledged_message_along`).
    assert!(
        synced_after(&format!("{queue}/db"), appended),
        "sled's log not synced after the body was appended"
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

/// Every file and directory under `dir`, with its mode.
fn modes(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() || meta.file_type().is_socket_like() {
            continue;
        }
        out.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            modes(&path, out);
        }
    }
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}
impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

#[test]
fn the_queue_the_mailboxes_and_the_keys_are_for_faxmtas_user_alone() {
    let server = Server::start_with("", "[relay]\nallow = [\"127.0.0.1/32\"]\n");
    // One message delivered, one waiting in the queue (its domain's DNS
    // does not answer), so bodies and envelopes are on disk.
    send(
        &server,
        "sender@example.org",
        "alice@example.test",
        "Subject: kept\r\n\r\nx\r\n",
    );
    let waiting = send(
        &server,
        "sender@example.org",
        "someone@remote.test",
        "Subject: waiting\r\n\r\nx\r\n",
    );
    server.wait_maildir("example.test", "alice", 1, 10);
    assert!(find_queued(&server, &waiting).is_some());
    let mut all = Vec::new();
    for sub in ["queue", "mail", "tls"] {
        modes(&server.path(sub), &mut all);
    }
    assert!(
        all.iter()
            .any(|(p, _)| p.starts_with(server.path("queue/bodies")) && p.is_file()),
        "no body file: {all:?}"
    );
    let open: Vec<_> = all.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by others: {open:#?}");
}
