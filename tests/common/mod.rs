//! Test harness: runs the real `faxmta` binary on loopback with a
//! configuration made for the test, and offers small helpers to talk SMTP,
//! run the CLI, run Python and swaks, and look into the Maildirs and the
//! queue.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod ports;
mod script;
mod server;
mod system;
pub use ports::*;
#[allow(unused_imports)] // not every test binary uses the scripted client
pub use script::*;
pub use server::*;
#[allow(unused_imports)] // strace and tmpfs: a few test binaries only
pub use system::*;

/// Run a Python 3 script; panics with its output if it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "python failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run swaks with the given arguments; returns its transcript.
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is installed by scripts/test");
    (out.status.success(), output_text(&out))
}

/// Poll until `f` returns true or `secs` pass; returns the last result.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Check that `f` stays true for all of `window`, polled every 50 ms;
/// false at the first poll where it is not. For what must NOT happen
/// (a retry before its time, a delivery nobody asked for, a release by a
/// stranger), which only time passing can show: the window is the thing
/// under test, not a guess at how long something takes. Never use it to
/// wait for something to happen: that is [`wait_until`].
pub fn holds_for(window: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + window;
    loop {
        if !f() {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read a delivered file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A finished command's stdout followed by its stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// CRLF → LF, as Maildir files store text (lone CRs and LFs are kept).
pub fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Make a Maildir of example.test undeliverable (a plain file where the
/// directory should be): delivery then defers with 451 4.3.0.
pub fn block(server: &Server, user: &str) {
    std::fs::create_dir_all(server.path("mail/example.test")).unwrap();
    std::fs::write(server.path(&format!("mail/example.test/{user}")), "x").unwrap();
}

/// Undo [`block`]: remove the plain file so the Maildir can be made.
pub fn unblock(server: &Server, user: &str) {
    std::fs::remove_file(server.path(&format!("mail/example.test/{user}"))).unwrap();
}

/// Stop the server (it must exit cleanly), apply `(from, to)` text
/// replacements to its configuration file (each `from` must occur), and
/// start it again.
pub fn restart_with(server: &mut Server, edits: &[(&str, &str)]) {
    assert!(
        server.stop(),
        "faxmta did not stop cleanly:\n{}",
        server.log()
    );
    let mut text = std::fs::read_to_string(server.config()).unwrap();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "{from} not in the configuration:\n{text}"
        );
        text = text.replace(from, to);
    }
    std::fs::write(server.config(), text).unwrap();
    server.spawn();
}

/// The queue id from "250 2.0.0 Ok: queued as ID" (checked to be a
/// non-empty alphanumeric word).
pub fn queued_id(reply: &str) -> String {
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply}"))
        .trim()
        .to_string();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{reply}"
    );
    id
}

/// Send one message by hand on a new MX connection (EHLO client.test;
/// every step must succeed). `msg` must be dot-safe and end with CRLF; the
/// final dot is added. Returns the queue id.
pub fn send(server: &Server, from: &str, to: &str, msg: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:<{from}>"));
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(msg.as_bytes());
    c.send(b".\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The log line about recipient `rcpt` of message `id` whose status is
/// `status` (sent, bounced, deferred), waiting up to `secs` for it.
pub fn wait_status(server: &Server, id: &str, rcpt: &str, status: &str, secs: u64) -> String {
    let start = format!("{id}: to=<{rcpt}>, ");
    let word = format!(", status={status} (");
    let find = || {
        server
            .log()
            .lines()
            .find(|l| l.contains(&start) && l.contains(&word))
            .map(str::to_string)
    };
    wait_until(secs, || find().is_some());
    find().unwrap_or_else(|| {
        panic!(
            "no status={status} for {rcpt} of {id} within {secs}s:\n{}",
            server.log()
        )
    })
}

/// Assert that `haystack` contains `needle`, showing the haystack if not.
pub fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "{needle:?} not found in:\n{haystack}"
    );
}

/// Run `faxmta ARGS --config …`, assert that it succeeds, return stdout.
pub fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "faxmta {args:?} failed:\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `faxmta queue list --json`, parsed: one envelope per queued message.
pub fn queue_json(server: &Server) -> Vec<Value> {
    let text = cli_ok(server, &["queue", "list", "--json"]);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list:\n{text}"))
}

/// The envelope of message `id` in a [`queue_json`] list.
pub fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["id"] == id)
}

/// The envelope of message `id`, from a fresh [`queue_json`].
pub fn find_queued(server: &Server, id: &str) -> Option<Value> {
    queue_json(server).into_iter().find(|m| m["id"] == id)
}

/// Wait up to `secs` for the queue to be empty; returns whether it is.
pub fn wait_queue_empty(server: &Server, secs: u64) -> bool {
    wait_until(secs, || queue_json(server).is_empty())
}

/// The line of `queue list` output that starts with `id`.
pub fn id_line<'a>(list: &'a str, id: &str) -> &'a str {
    list.lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"))
}

/// Subject lines of the files in a Maildir, in file name order ("" for a
/// file without one). File names do not keep arrival order: compare
/// these as a set (sorted, or [`subject_counts`]) unless there is one.
pub fn subjects(server: &Server, domain: &str, user: &str) -> Vec<String> {
    server
        .maildir(domain, user)
        .iter()
        .map(|f| {
            String::from_utf8_lossy(&read(f))
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// [`subjects`], each with the number of files that carry it.
pub fn subject_counts(server: &Server, domain: &str, user: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for subject in subjects(server, domain, user) {
        *out.entry(subject).or_insert(0) += 1;
    }
    out
}
