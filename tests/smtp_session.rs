//! The SMTP server's protocol behaviour, driven over loopback.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn ehlo_announces_the_extensions() {
    let server = Server::start();
    let mut c = server.connect();
    let ehlo = c.cmd("EHLO client.test");
    for ext in [
        "PIPELINING",
        "SIZE 36700160",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "DSN",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            ehlo.lines().any(|l| l[4..] == *ext),
            "{ext} missing from:\n{ehlo}"
        );
    }
    assert!(c.cmd("QUIT").starts_with("221 2.0.0"));
}

// ---------------------------------------------------------------------------
// Local helpers (the shared ones are in tests/common/mod.rs).

/// Read replies until the server closes the connection.
fn replies_until_closed(c: &mut Smtp) -> Vec<String> {
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
fn expect(reply: &str, prefix: &str) {
    assert!(
        reply.starts_with(prefix),
        "expected {prefix:?}, got {reply:?}"
    );
}

/// The last line of a (possibly multi-line) reply.
fn last_line(reply: &str) -> &str {
    reply.lines().last().unwrap_or("")
}

/// MAIL, RCPTs (each must be accepted), DATA, `body` (CRLF, dot-stuffed by
/// the caller) and the final dot; returns the reply to the final dot.
fn send_message(c: &mut Smtp, from: &str, rcpts: &[&str], body: &[u8]) -> String {
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
fn split_delivered(path: &Path) -> (String, Vec<u8>) {
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file in any Maildir `new/` under the server's mail directory.
fn all_delivered(server: &Server) -> Vec<PathBuf> {
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
fn settle(server: &Server, domain: &str, user: &str, n: usize) -> Vec<PathBuf> {
    let files = server.wait_maildir(domain, user, n + 1, 2);
    assert_eq!(files.len(), n, "{domain}/{user}: {files:?}");
    files
}

// ---------------------------------------------------------------------------
// 1. PIPELINING

#[test]
fn a_whole_transaction_in_one_write() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(
        b"EHLO pipe.test\r\n\
          MAIL FROM:<sender@pipe.test>\r\n\
          RCPT TO:<alice@example.test>\r\n\
          RCPT TO:<bob@example.test>\r\n\
          DATA\r\n\
          Subject: pipelined\r\n\
          \r\n\
          one write\r\n\
          ..dot-stuffed\r\n\
          .\r\n\
          QUIT\r\n",
    );
    let replies = replies_until_closed(&mut c);
    assert_eq!(replies.len(), 7, "{replies:#?}");
    assert!(
        replies[0].starts_with("250-mx.example.test"),
        "{replies:#?}"
    );
    expect(last_line(&replies[0]), "250 ");
    expect(&replies[1], "250 2.1.0");
    expect(&replies[2], "250 2.1.5");
    expect(&replies[3], "250 2.1.5");
    expect(&replies[4], "354 ");
    expect(&replies[5], "250 2.0.0 Ok: queued as ");
    expect(&replies[6], "221 2.0.0");
    for user in ["alice", "bob"] {
        let files = server.wait_maildir("example.test", user, 1, 10);
        assert_eq!(files.len(), 1, "{user}: {files:?}");
        let (head, msg) = split_delivered(&files[0]);
        assert!(
            head.contains(&format!("Delivered-To: {user}@example.test")),
            "{head}"
        );
        assert!(head.contains("Return-Path: <sender@pipe.test>"), "{head}");
        assert_eq!(
            String::from_utf8_lossy(&msg),
            "Subject: pipelined\n\none write\n.dot-stuffed\n"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. CHUNKING

#[test]
fn bdat_chunks_are_delivered_verbatim() {
    let server = Server::start();
    let mut c = server.connect();
    expect(last_line(&c.cmd("EHLO chunk.test")), "250 ");
    expect(&c.cmd("MAIL FROM:<s@chunk.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    let chunks: [&[u8]; 3] = [
        b"Subject: chunks\r\n\r\nfirst chunk\r\n",
        // Looks like commands and an end-of-data line: all of it is data.
        b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n.\r\nQUIT\r\n",
        b"..not unstuffed\r\nlast chunk\r\n",
    ];
    let mut first = format!("BDAT {}\r\n", chunks[0].len()).into_bytes();
    first.extend_from_slice(chunks[0]);
    c.send(&first);
    expect(
        &c.reply(),
        &format!("250 2.0.0 {} octets received", chunks[0].len()),
    );
    // The other two pipelined in one write, the last with LAST.
    let mut rest = format!("BDAT {}\r\n", chunks[1].len()).into_bytes();
    rest.extend_from_slice(chunks[1]);
    rest.extend_from_slice(format!("BDAT {} LAST\r\n", chunks[2].len()).as_bytes());
    rest.extend_from_slice(chunks[2]);
    rest.extend_from_slice(b"NOOP\r\n");
    c.send(&rest);
    expect(
        &c.reply(),
        &format!("250 2.0.0 {} octets received", chunks[1].len()),
    );
    expect(&c.reply(), "250 2.0.0 Ok: queued as ");
    expect(&c.reply(), "250 2.0.0");
    expect(&c.cmd("QUIT"), "221 2.0.0");

    let files = server.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(files.len(), 1, "{files:?}");
    let (_, msg) = split_delivered(&files[0]);
    assert_eq!(
        String::from_utf8_lossy(&msg),
        String::from_utf8_lossy(&crlf_to_lf(&chunks.concat()))
    );
    // The command-looking bytes were never run.
    settle(&server, "example.test", "bob", 0);
    settle(&server, "example.test", "alice", 1);
}

#[test]
fn data_after_bdat_is_refused() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO chunk.test");
    expect(&c.cmd("MAIL FROM:<s@chunk.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    c.send(b"BDAT 7\r\nhello\r\n");
    expect(&c.reply(), "250 2.0.0 7 octets received");
    expect(&c.cmd("DATA"), "503 5.5.1");
    // The transaction is still open: it can be finished with BDAT LAST.
    c.send(b"BDAT 0 LAST\r\n");
    expect(&c.reply(), "250 2.0.0 Ok: queued as ");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(files.len(), 1);
    assert_eq!(split_delivered(&files[0]).1, b"hello\n");
    // BDAT with no transaction: the chunk is swallowed, then 503.
    c.send(b"BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n");
    expect(&c.reply(), "503 5.5.1");
    expect(&c.reply(), "250 2.0.0");
}

// ---------------------------------------------------------------------------
// 3. SIZE

/// A body of about `n` octets in 100-octet lines.
fn big_body(n: usize) -> Vec<u8> {
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    let line = [b'x'; 98];
    while body.len() < n {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}

#[test]
fn size_limit_on_mail_and_on_data() {
    let server = Server::start_with("max_message_size = \"10K\"", "");
    let mut c = server.connect();
    let ehlo = c.cmd("EHLO size.test");
    assert!(ehlo.lines().any(|l| &l[4..] == "SIZE 10240"), "{ehlo}");
    expect(&c.cmd("MAIL FROM:<s@size.test> SIZE=10241"), "552 5.3.4");
    // Still in the right state: the same MAIL with a fitting SIZE works.
    expect(&c.cmd("MAIL FROM:<s@size.test> SIZE=10240"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    expect(&c.cmd("DATA"), "354 ");
    let mut big = big_body(12 * 1024);
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    expect(&c.reply(), "552 5.3.4");
    // The session goes on; a small message is accepted.
    let r = send_message(
        &mut c,
        "s@size.test",
        &["alice@example.test"],
        b"Subject: small\r\n\r\nfits\r\n",
    );
    expect(&r, "250 2.0.0");
    expect(&c.cmd("QUIT"), "221 2.0.0");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    let files = settle(&server, "example.test", "alice", files.len());
    assert_eq!(files.len(), 1);
    assert_eq!(split_delivered(&files[0]).1, b"Subject: small\n\nfits\n");
}

#[test]
fn size_limit_on_bdat() {
    let server = Server::start_with("max_message_size = \"10K\"", "");
    let mut c = server.connect();
    c.cmd("EHLO size.test");
    expect(&c.cmd("MAIL FROM:<s@size.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    let chunk = big_body(6000);
    let mut w = format!("BDAT {}\r\n", chunk.len()).into_bytes();
    w.extend_from_slice(&chunk);
    c.send(&w);
    expect(&c.reply(), "250 2.0.0");
    // Together past 10K: refused, and so is every later chunk.
    c.send(&w);
    expect(&c.reply(), "552 5.3.4");
    let mut last = b"BDAT 5 LAST\r\nabc\r\n".to_vec();
    last.extend_from_slice(b"NOOP\r\n");
    c.send(&last);
    expect(&c.reply(), "552 5.3.4");
    expect(&c.reply(), "250 2.0.0");
    // One chunk alone over the limit, then a small message that fits.
    expect(&c.cmd("MAIL FROM:<s@size.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    let huge = big_body(11 * 1024);
    let mut w = format!("BDAT {} LAST\r\n", huge.len()).into_bytes();
    w.extend_from_slice(&huge);
    c.send(&w);
    expect(&c.reply(), "552 5.3.4");
    expect(&c.cmd("MAIL FROM:<s@size.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    let small: &[u8] = b"Subject: ok\r\n\r\nsmall\r\n";
    let mut w = format!("BDAT {} LAST\r\n", small.len()).into_bytes();
    w.extend_from_slice(small);
    c.send(&w);
    expect(&c.reply(), "250 2.0.0 Ok: queued as ");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    let files = settle(&server, "example.test", "alice", files.len());
    assert_eq!(files.len(), 1);
    assert_eq!(split_delivered(&files[0]).1, b"Subject: ok\n\nsmall\n");
}

// ---------------------------------------------------------------------------
// 4. Line lengths

#[test]
fn command_line_too_long_then_the_session_goes_on() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO long.test");
    // 2048 octets with CRLF is the default limit: this one is exactly at it.
    let at_limit = format!("NOOP {}", "x".repeat(2048 - 2 - 5));
    expect(&c.cmd(&at_limit), "250 2.0.0");
    let over = format!("NOOP {}", "x".repeat(2048 - 2 - 5 + 1));
    expect(&c.cmd(&over), "500 5.5.2");
    // Much longer, with the next command pipelined behind it.
    let mut w = format!("MAIL FROM:<{}@x.test>\r\n", "a".repeat(10_000)).into_bytes();
    w.extend_from_slice(b"MAIL FROM:<s@long.test>\r\n");
    c.send(&w);
    expect(&c.reply(), "500 5.5.2");
    expect(&c.reply(), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    expect(&c.cmd("DATA"), "354 ");
    c.send(b"Subject: ok\r\n\r\nfine\r\n.\r\n");
    expect(&c.reply(), "250 2.0.0");
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 10).len(), 1);
}

#[test]
fn data_line_over_1000_octets_is_refused() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO long.test");
    // 1001 octets with CRLF: refused.
    let mut body = b"Subject: long\r\n\r\n".to_vec();
    body.extend_from_slice(&[b'y'; 999]);
    body.extend_from_slice(b"\r\n");
    let r = send_message(&mut c, "s@long.test", &["alice@example.test"], &body);
    expect(&r, "554 5.6.0");
    // 1000 octets with CRLF: the longest line allowed.
    let mut body = b"Subject: edge\r\n\r\n".to_vec();
    body.extend_from_slice(&[b'z'; 998]);
    body.extend_from_slice(b"\r\n");
    let r = send_message(&mut c, "s@long.test", &["bob@example.test"], &body);
    expect(&r, "250 2.0.0");
    let files = server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(files.len(), 1);
    let msg = split_delivered(&files[0]).1;
    assert!(contains(&msg, &[b'z'; 998]));
    settle(&server, "example.test", "alice", 0);
}

// ---------------------------------------------------------------------------
// 5. Bare newlines

#[test]
fn bare_newlines_are_refused_by_default() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO bare.test");
    let r = send_message(
        &mut c,
        "s@bare.test",
        &["alice@example.test"],
        b"Subject: lf\r\n\r\nbare\nlf\r\n",
    );
    expect(&r, "554 5.6.0");
    let r = send_message(
        &mut c,
        "s@bare.test",
        &["alice@example.test"],
        b"Subject: cr\r\n\r\nbare\rcr\r\n",
    );
    expect(&r, "554 5.6.0");
    expect(&c.cmd("NOOP"), "250 2.0.0");
    settle(&server, "example.test", "alice", 0);
}

#[test]
fn bare_newlines_are_normalized_when_configured() {
    let server = Server::start_with("bare_newline = \"normalize\"", "");
    let mut c = server.connect();
    c.cmd("EHLO bare.test");
    let r = send_message(
        &mut c,
        "s@bare.test",
        &["alice@example.test"],
        b"Subject: mixed\nX-Test: 1\r\n\nbare\nlf\rcr\r\ncrlf\r\n",
    );
    expect(&r, "250 2.0.0");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(files.len(), 1);
    let all = read(&files[0]);
    assert!(!all.contains(&b'\r'), "{}", String::from_utf8_lossy(&all));
    assert_eq!(
        String::from_utf8_lossy(&split_delivered(&files[0]).1),
        "Subject: mixed\nX-Test: 1\n\nbare\nlf\ncr\ncrlf\n"
    );
}

// ---------------------------------------------------------------------------
// 6. SMTP smuggling: tests/smuggling.rs

// ---------------------------------------------------------------------------
// 7. Recipient limit

#[test]
fn too_many_recipients_get_452() {
    let server = Server::start_with("max_recipients = 3", "");
    let mut c = server.connect();
    c.cmd("EHLO many.test");
    expect(&c.cmd("MAIL FROM:<s@many.test>"), "250 2.1.0");
    for r in [
        "alice@example.test",
        "bob@example.test",
        "postmaster@example.test",
    ] {
        expect(&c.cmd(&format!("RCPT TO:<{r}>")), "250 2.1.5");
    }
    expect(&c.cmd("RCPT TO:<fourth@localhost>"), "452 4.5.3");
    expect(&c.cmd("RCPT TO:<fifth@localhost>"), "452 4.5.3");
    expect(&c.cmd("DATA"), "354 ");
    c.send(b"Subject: three\r\n\r\nx\r\n.\r\n");
    expect(&c.reply(), "250 2.0.0");
    for u in ["alice", "bob", "postmaster"] {
        assert_eq!(
            server.wait_maildir("example.test", u, 1, 10).len(),
            1,
            "{u}"
        );
    }
    settle(&server, "localhost", "fourth", 0);
    settle(&server, "localhost", "fifth", 0);
}

// ---------------------------------------------------------------------------
// 8. STARTTLS

const PY_SMTP: &str = r#"
import json, socket, ssl, sys

def reply(s):
    lines = []
    while True:
        line = b""
        while not line.endswith(b"\n"):
            ch = s.recv(1)
            if not ch:
                lines.append("<closed>")
                return "\n".join(lines)
            line += ch
        line = line.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "\n".join(lines)

def cmd(s, line):
    s.sendall(line.encode() + b"\r\n")
    return reply(s)

def tls(s):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s, server_hostname="mx.example.test")

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
out = [reply(s)]
"#;

#[test]
fn starttls_discards_pipelined_plaintext() {
    let server = Server::start();
    let script = format!(
        "{PY_SMTP}{}",
        r#"
out.append(cmd(s, "EHLO inject.test"))
s.sendall(b"STARTTLS\r\nMAIL FROM:<inject@x>\r\n")
out.append(reply(s))
s = tls(s)
out.append(cmd(s, "EHLO inject.test"))
out.append(cmd(s, "RCPT TO:<alice@example.test>"))
out.append(cmd(s, "QUIT"))
print(json.dumps(out))
"#
    );
    let out = python(&script, &[&server.mx_port.to_string()]);
    let r: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    expect(&r[0], "220 ");
    assert!(r[1].lines().any(|l| &l[4..] == "STARTTLS"), "{}", r[1]);
    expect(&r[2], "220 2.0.0");
    expect(last_line(&r[3]), "250 ");
    assert!(
        !r[3].lines().any(|l| &l[4..] == "STARTTLS"),
        "STARTTLS offered again over TLS:\n{}",
        r[3]
    );
    // The injected MAIL was not run: there is no transaction.
    expect(&r[4], "503 5.5.1");
    expect(&r[5], "221 2.0.0");
}

#[test]
fn starttls_session_delivers_with_esmtps() {
    let server = Server::start();
    let script = format!(
        "{PY_SMTP}{}",
        r#"
out.append(cmd(s, "EHLO tls.test"))
out.append(cmd(s, "STARTTLS"))
s = tls(s)
out.append(cmd(s, "MAIL FROM:<s@tls.test>"))
out.append(cmd(s, "EHLO tls.test"))
out.append(cmd(s, "MAIL FROM:<s@tls.test>"))
out.append(cmd(s, "RCPT TO:<alice@example.test>"))
out.append(cmd(s, "DATA"))
s.sendall(b"Subject: over tls\r\n\r\nsecret\r\n.\r\n")
out.append(reply(s))
out.append(cmd(s, "QUIT"))
out.append(s.version())
print(json.dumps(out))
"#
    );
    let out = python(&script, &[&server.mx_port.to_string()]);
    let r: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    expect(&r[2], "220 2.0.0");
    // RFC 3207: the EHLO before TLS is forgotten.
    expect(&r[3], "503 5.5.1");
    expect(last_line(&r[4]), "250 ");
    expect(&r[5], "250 2.1.0");
    expect(&r[6], "250 2.1.5");
    expect(&r[7], "354 ");
    expect(&r[8], "250 2.0.0");
    expect(&r[9], "221 2.0.0");
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    assert_eq!(files.len(), 1);
    let (head, msg) = split_delivered(&files[0]);
    assert!(head.contains(" with ESMTPS id "), "{head}");
    assert!(head.contains("(using TLSv1."), "{head}");
    assert!(
        head.contains(&format!("using {} with cipher ", r[10])),
        "client saw {}:\n{head}",
        r[10]
    );
    assert_eq!(msg, b"Subject: over tls\n\nsecret\n");
}

// ---------------------------------------------------------------------------
// 9. Relay control: tests/relay.rs

// ---------------------------------------------------------------------------
// 10. Errors, timeouts and the small commands

#[test]
fn unknown_local_user_is_550() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO who.test");
    expect(&c.cmd("MAIL FROM:<s@who.test>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<carol@example.test>"), "550 5.1.1");
    expect(&c.cmd("RCPT TO:<Alice@Example.TEST>"), "250 2.1.5");
    expect(&c.cmd("RCPT TO:<anyone@localhost>"), "250 2.1.5");
}

#[test]
fn too_many_errors_close_the_session() {
    let server = Server::start_with("max_errors = 3", "");
    let mut c = server.connect();
    c.cmd("EHLO err.test");
    expect(&c.cmd("FOO"), "500 5.5.2");
    expect(&c.cmd("BAR"), "500 5.5.2");
    expect(&c.cmd("NOOP"), "250 2.0.0");
    c.send(b"BAZ\r\nNOOP\r\n");
    let rest = replies_until_closed(&mut c);
    assert_eq!(rest.len(), 2, "{rest:#?}");
    expect(&rest[0], "500 5.5.2");
    expect(&rest[1], "421 4.7.0");
    // Errors count per session: a new one starts afresh.
    let mut c = server.connect();
    expect(&c.cmd("FOO"), "500 5.5.2");
    expect(&c.cmd("NOOP"), "250 2.0.0");
}

#[test]
fn idle_client_times_out() {
    let server = Server::start_with("command_timeout = \"2s\"", "");
    let mut c = server.connect();
    c.cmd("EHLO slow.test");
    let t = Instant::now();
    let r = c.reply();
    let waited = t.elapsed();
    expect(&r, "421 4.4.2");
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(c.reply(), "<closed>");
}

#[test]
fn small_commands_and_sequence_errors() {
    let server = Server::start();
    let mut c = server.connect();
    expect(&c.cmd("MAIL FROM:<s@seq.test>"), "503 5.5.1");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "503 5.5.1");
    expect(&c.cmd("DATA"), "503 5.5.1");
    expect(&c.cmd("VRFY bob"), "252 2.5.2");
    let help = c.cmd("HELP");
    assert!(help.lines().all(|l| l.starts_with("214")), "{help}");
    expect(last_line(&help), "214 2.0.0");
    expect(&c.cmd("NOOP"), "250 2.0.0");
    c.cmd("EHLO seq.test");
    expect(&c.cmd("MAIL FROM:<s@seq.test>"), "250 2.1.0");
    expect(&c.cmd("MAIL FROM:<s@seq.test>"), "503 5.5.1");
    expect(&c.cmd("DATA"), "554 5.5.1");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "250 2.1.5");
    expect(&c.cmd("RSET"), "250 2.0.0");
    expect(&c.cmd("RCPT TO:<alice@example.test>"), "503 5.5.1");
    expect(&c.cmd("DATA"), "503 5.5.1");
    expect(&c.cmd("QUIT"), "221 2.0.0");
    assert_eq!(c.reply(), "<closed>");
    // Nothing was delivered by any of that.
    assert!(queue_json(&server).is_empty());
    settle(&server, "example.test", "alice", 0);
}

// ---------------------------------------------------------------------------
// 11. DSN parameters

#[test]
fn dsn_parameters_are_kept_with_the_envelope() {
    let server = Server::start();
    // bob's mailbox is a plain file: his delivery defers and the message
    // stays in the queue where we can look at it.
    block(&server, "bob");
    let mut c = server.connect();
    c.cmd("EHLO dsn.test");
    expect(&c.cmd("MAIL FROM:<s@x> RET=HDRS ENVID=abc123"), "250 2.1.0");
    expect(
        &c.cmd(
            "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test",
        ),
        "250 2.1.5",
    );
    expect(
        &c.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER"),
        "250 2.1.5",
    );
    expect(&c.cmd("DATA"), "354 ");
    c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n");
    expect(&c.reply(), "250 2.0.0");
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 10).len(), 1);

    // Wait until bob's attempt has deferred, then read the envelope.
    let mut env = serde_json::Value::Null;
    let found = wait_until(10, || {
        let q = queue_json(&server);
        if let Some(e) = q.iter().find(|e| e["envid"] == "abc123") {
            env = e.clone();
            return env["recipients"][1]["state"] == "deferred";
        }
        false
    });
    assert!(found, "no deferred envelope with envid abc123: {env:#}");
    assert_eq!(env["sender"], "s@x", "{env:#}");
    assert_eq!(env["ret"], "hdrs", "{env:#}");
    assert_eq!(env["envid"], "abc123", "{env:#}");
    let alice = &env["recipients"][0];
    assert_eq!(alice["address"], "alice@example.test", "{env:#}");
    assert_eq!(alice["orcpt"], "rfc822;alice@example.test", "{env:#}");
    assert_eq!(
        alice["notify"],
        serde_json::json!({"never": false, "success": true, "failure": true, "delay": false}),
        "{env:#}"
    );
    let bob = &env["recipients"][1];
    assert_eq!(bob["address"], "bob@example.test", "{env:#}");
    assert!(bob["orcpt"].is_null(), "{env:#}");
    assert_eq!(
        bob["notify"],
        serde_json::json!({"never": true, "success": false, "failure": false, "delay": false}),
        "{env:#}"
    );
}

// ---------------------------------------------------------------------------
// 12. SMTPUTF8 (RFC 6531)

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let server = Server::start();
    let mut c = server.connect();
    c.cmd("EHLO utf8.test");
    // Without SMTPUTF8 a non-ASCII address is refused.
    expect(&c.cmd("MAIL FROM:<jörg@exämple.org>"), "553 5.6.7");
    // With it, the sender and a non-ASCII local part in a local domain
    // are accepted and delivered; the Received header says UTF8SMTP.
    expect(&c.cmd("MAIL FROM:<jörg@exämple.org> SMTPUTF8"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<zoë@localhost>"), "250 2.1.5");
    expect(&c.cmd("DATA"), "354");
    c.send("Subject: grüße\r\n\r\nHallo Zoë\r\n.\r\n".as_bytes());
    expect(&c.reply(), "250 2.0.0");
    let files = server.wait_maildir("localhost", "zoë", 1, 10);
    assert_eq!(files.len(), 1, "{:?}", all_delivered(&server));
    let text = String::from_utf8(read(&files[0])).unwrap();
    assert!(
        text.starts_with("Return-Path: <jörg@exämple.org>\nDelivered-To: zoë@localhost\n"),
        "{text}"
    );
    assert!(text.contains("with UTF8SMTP id"), "{text}");
    assert!(text.contains("Hallo Zoë"), "{text}");
    // A non-ASCII recipient in a transaction without SMTPUTF8 is refused.
    expect(&c.cmd("MAIL FROM:<ascii@example.org>"), "250 2.1.0");
    expect(&c.cmd("RCPT TO:<zoë@localhost>"), "553 5.6.7");
}

// ---------------------------------------------------------------------------
// Authentication-Results claiming our authserv-id (RFC 8601 §5)

#[test]
fn forged_authentication_results_for_our_name_are_removed() {
    let server = Server::start();
    let msg = "Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n\
               Subject: forged results\r\n\
               Authentication-Results:\r\n MX.EXAMPLE.TEST (looks like us);\r\n\tspf=pass smtp.mailfrom=ceo@bank.test\r\n\
               Authentication-Results: relay.elsewhere.test; spf=none\r\n\
               \r\n\
               Authentication-Results: mx.example.test; the body is not touched\r\n";
    let id = send(&server, "someone@outside.test", "alice@example.test", msg);
    let files = server.wait_maildir("example.test", "alice", 1, 10);
    let file = files
        .iter()
        .find(|f| contains(&read(f), b"Subject: forged results"))
        .unwrap_or_else(|| panic!("not delivered: {}", server.log()));
    let (_ours, theirs) = split_delivered(file);
    let text = String::from_utf8_lossy(&theirs).into_owned();
    assert_eq!(
        crlf_to_lf(text.as_bytes()),
        crlf_to_lf(
            b"Subject: forged results\r\n\
              Authentication-Results: relay.elsewhere.test; spf=none\r\n\
              \r\n\
              Authentication-Results: mx.example.test; the body is not touched\r\n"
        ),
        "{text}"
    );
    assert_contains(
        &server.log(),
        &format!(
            "{id}: removed 2 Authentication-Results field(s) claiming authserv-id mx.example.test"
        ),
    );
}
