//! Helpers of tests/delivery.rs and its reports module: a message, the
//! attempts of a queued one, a delivered file without the fields we add.

use crate::common::*;

/// Split a delivered Maildir file into the Received header we added (with
/// its continuation lines) and the rest, checking the Return-Path and
/// Delivered-To lines on the way.
pub fn strip_added(file: &[u8], sender: &str, rcpt: &str) -> (String, Vec<u8>) {
    let mut lines = file.split_inclusive(|&b| b == b'\n');
    let rp = lines.next().unwrap_or_default();
    assert_eq!(
        rp,
        format!("Return-Path: <{sender}>\n").as_bytes(),
        "first line of:\n{}",
        String::from_utf8_lossy(file)
    );
    let dt = lines.next().unwrap_or_default();
    assert_eq!(
        dt,
        format!("Delivered-To: {rcpt}\n").as_bytes(),
        "second line of:\n{}",
        String::from_utf8_lossy(file)
    );
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(b"Received: "),
        "third line of:\n{}",
        String::from_utf8_lossy(file)
    );
    let mut received = String::from_utf8_lossy(first).into_owned();
    let mut rest = Vec::new();
    let mut in_received = true;
    for line in lines {
        if in_received && line.starts_with(b"\t") {
            received.push_str(&String::from_utf8_lossy(line));
            continue;
        }
        in_received = false;
        rest.extend_from_slice(line);
    }
    (received, rest)
}

/// Attempts made so far for the first recipient of message `id`.
pub fn attempts(server: &Server, id: &str) -> Option<u64> {
    find(&queue_json(server), id).and_then(|m| m["recipients"][0]["attempts"].as_u64())
}

/// A small message from Alice to Bob with a unique Message-ID.
pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n\
         Subject: {subject}\r\nMessage-ID: <{}.{}@client.test>\r\n\r\n{body}\r\n",
        subject.replace(' ', "-"),
        now()
    )
}

// ------------------------------------------------------------------ tests
