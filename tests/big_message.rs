//! Memory per message: a large message streams into the queue's body
//! file as it arrives, so the server's peak resident memory stays well
//! under the message size — for DATA and for BDAT, with DKIM
//! verification hashing the body on the way. (A memory bound, not a
//! timing: the peak, VmHWM, is reset through /proc/PID/clear_refs before
//! each message and read once the scheduler has held it.) The message is
//! for an ETRN domain: held, so no delivery reads it back, and the
//! scheduler's look at it must not read it either.

mod common;
use common::*;

const MIB: usize = 1024 * 1024;
/// The message size of the issue (a 30 MB DATA raised the peak by 88 MB).
const SIZE: usize = 30 * MIB;
/// What the server may grow by for one such message.
const BOUND: u64 = 8 * MIB as u64;

/// A field of /proc/PID/status, in bytes.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        * 1024
}

/// Reset the peak resident size to the current one; the current size.
fn reset_peak(pid: u32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    status_kb(pid, "VmRSS:")
}

/// The peak resident size once the scheduler has seen the message of
/// `reply` (queued for an ETRN domain, so held): its content need not be
/// read for that, and the peak counts whatever the look cost.
fn peak_once_held(server: &Server, reply: &str) -> u64 {
    let id = queued_id(reply);
    let held = format!("{id}: to=<u@hold.test>");
    assert!(
        wait_until(30, || server
            .log()
            .lines()
            .any(|l| l.contains(&held) && l.contains("status=held"))),
        "{id} was not held:\n{}",
        server.log()
    );
    status_kb(server.pid(), "VmHWM:")
}

/// A message of about `SIZE` octets, DKIM-signed (the signature need not
/// verify: its body hash is computed as the body streams by).
fn big_message(subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: a@client.test\r\nTo: u@hold.test\r\nSubject: {subject}\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=client.test; s=s1;\r\n \
         h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\r\n"
    )
    .into_bytes();
    let line = format!("{}\r\n", "y".repeat(76));
    while m.len() < SIZE {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

fn server() -> Server {
    Server::start_with(
        "max_message_size = \"40M\"",
        "[policy]\ndkim = \"verify\"\n\
         [[domain]]\nname = \"hold.test\"\nkind = \"etrn\"\nrelease_from = [\"127.0.0.1/32\"]\n",
    )
}

/// The stored message: its size in the queue, and the subject is found in
/// `queue show`.
fn assert_stored(server: &Server, reply: &str, sent: usize) {
    let id = queued_id(reply);
    let env = find_queued(server, &id).unwrap_or_else(|| panic!("{id} not queued"));
    let size = env["size"].as_u64().unwrap();
    // Ours above it: Received, Authentication-Results.
    assert!(
        size > sent as u64 && size < sent as u64 + 4096,
        "stored {size} octets of {sent}"
    );
    let body = std::fs::metadata(server.path("queue/bodies").join(&id)).unwrap();
    assert_eq!(
        body.len(),
        sent as u64,
        "the body file is the client's data"
    );
}

#[test]
fn a_30_mb_message_does_not_raise_peak_memory_by_its_size() {
    let server = server();
    let pid = server.pid();

    // DATA.
    let msg = big_message("big by DATA");
    let mut c = server.connect();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@hold.test>").starts_with("250"));
    let before = reset_peak(pid);
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&msg);
    c.send(b".\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 "), "{r}");
    let peak = peak_once_held(&server, &r);
    let grew = peak.saturating_sub(before);
    eprintln!(
        "DATA of {} MiB: peak RSS {} MiB, {} KiB over the {} MiB before",
        msg.len() / MIB,
        peak / MIB as u64,
        grew / 1024,
        before / MIB as u64
    );
    assert!(
        grew < BOUND,
        "a {} octet DATA raised the peak RSS by {grew} octets",
        msg.len()
    );
    assert_stored(&server, &r, msg.len());
    assert!(server
        .log()
        .lines()
        .any(|l| l.contains(&queued_id(&r)) && l.contains("size=")));

    // BDAT, in three chunks.
    let msg = big_message("big by BDAT");
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@hold.test>").starts_with("250"));
    let before = reset_peak(pid);
    let third = msg.len() / 3;
    let chunks = [&msg[..third], &msg[third..2 * third], &msg[2 * third..]];
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i == 2 { " LAST" } else { "" };
        c.send(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        c.send(chunk);
        let r = c.reply();
        assert!(r.starts_with("250 "), "{r}");
        if i == 2 {
            let peak = peak_once_held(&server, &r);
            let grew = peak.saturating_sub(before);
            eprintln!(
                "BDAT of {} MiB: {} KiB over the {} MiB before",
                msg.len() / MIB,
                grew / 1024,
                before / MIB as u64
            );
            assert!(grew < BOUND, "a BDAT message raised the peak RSS by {grew}");
            assert_stored(&server, &r, msg.len());
        }
    }
    c.cmd("QUIT");
}

/// A message given up half-way (the client goes away) leaves no body
/// file behind; a header section past the limit is refused.
#[test]
fn an_abandoned_message_leaves_no_body_file_and_a_huge_header_is_refused() {
    let server = server();
    let bodies = server.path("queue/bodies");
    let mut c = server.connect();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@hold.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let msg = big_message("abandoned");
    c.send(&msg[..3 * MIB]);
    let files = || std::fs::read_dir(&bodies).unwrap().count();
    assert!(
        wait_until(10, || files() == 1),
        "the body file is written as the data arrives"
    );
    drop(c);
    assert!(
        wait_until(10, || files() == 0),
        "the body file of a lost connection stayed"
    );

    let mut c = server.connect();
    c.cmd("EHLO client.test");
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@hold.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let mut header = Vec::new();
    while header.len() <= 1100 * 1024 {
        header.extend_from_slice(format!("X-Filler: {}\r\n", "z".repeat(60)).as_bytes());
    }
    header.extend_from_slice(b"\r\nbody\r\n.\r\n");
    c.send(&header);
    let r = c.reply();
    assert!(r.starts_with("552 5.3.4 "), "{r}");
    assert_eq!(files(), 0);
    // The session goes on.
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@hold.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 "), "{r}");
    let id = queued_id(&r);
    assert!(find_queued(&server, &id).is_some(), "{id} not queued");
    // Its body is in a segment, or in a file of its own once it waits
    // (held for ETRN: the queue moves it out of the segment in the
    // background); nothing of the two messages before it is there.
    let names: Vec<String> = std::fs::read_dir(&bodies)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("seg-") || *n == id),
        "{names:?}"
    );
}
