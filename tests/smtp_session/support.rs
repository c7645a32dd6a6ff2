//! Helpers of tests/smtp_session.rs and its modules: replies, a message
//! sent on a connection, delivered files split and found.

use crate::common::*;
use std::path::{Path, PathBuf};

/// Read replies until the server closes the connection.
pub fn replies_until_closed(c: &mut Smtp) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let r = c.reply();
        if r == "<closed>" {
            return all;
        }
        all.push(r);
        assert!(all.len() < 100, "runaway replies: {all:?}");
    }
}

/// Assert that a reply starts with `prefix` (code and enhanced status).
#[track_caller]
pub fn expect(reply: &str, prefix: &str) {
    assert!(
        reply.starts_with(prefix),
        "expected {prefix:?}, got {reply:?}"
    );
}

/// The last line of a (possibly multi-line) reply.
pub fn last_line(reply: &str) -> &str {
    reply.lines().last().unwrap_or("")
}

/// MAIL, RCPTs (each must be accepted), DATA, `body` (CRLF, dot-stuffed by
/// the caller) and the final dot; returns the reply to the final dot.
pub fn send_message(c: &mut Smtp, from: &str, rcpts: &[&str], body: &[u8]) -> String {
    expect(&c.cmd(&format!("MAIL FROM:<{from}>")), "250 2.1.0");
    for r in rcpts {
        expect(&c.cmd(&format!("RCPT TO:<{r}>")), "250 2.1.5");
    }
    expect(&c.cmd("DATA"), "354");
    let mut data = body.to_vec();
    data.extend_from_slice(b".\r\n");
    c.send(&data);
    c.reply()
}

/// A delivered Maildir file split into (our delivery + Received headers,
/// the message as the client sent it).
pub fn split_delivered(path: &Path) -> (String, Vec<u8>) {
    let bytes = read(path);
    let mut pos = 0;
    let mut lines = Vec::new();
    // Return-Path, Delivered-To, then the folded Received header.
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| pos + p + 1)
            .unwrap_or(bytes.len());
        let line = String::from_utf8_lossy(&bytes[pos..end]).into_owned();
        let n = lines.len();
        let keep = match n {
            0 => line.starts_with("Return-Path: "),
            1 => line.starts_with("Delivered-To: "),
            2 => line.starts_with("Received: "),
            _ => line.starts_with('\t') || line.starts_with(' '),
        };
        if !keep {
            assert!(
                n >= 3,
                "unexpected delivered file layout:\n{}",
                String::from_utf8_lossy(&bytes)
            );
            break;
        }
        lines.push(line);
        pos = end;
    }
    (lines.concat(), bytes[pos..].to_vec())
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file in any Maildir `new/` under the server's mail directory.
pub fn all_delivered(server: &Server) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("new")) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.path("mail"), &mut out);
    out.sort();
    out
}

/// Wait a little and make sure a Maildir did not get more than `n` files.
pub fn settle(server: &Server, domain: &str, user: &str, n: usize) -> Vec<PathBuf> {
    let files = server.wait_maildir(domain, user, n + 1, 2);
    assert_eq!(files.len(), n, "{domain}/{user}: {files:?}");
    files
}

// ---------------------------------------------------------------------------
// 1. PIPELINING
