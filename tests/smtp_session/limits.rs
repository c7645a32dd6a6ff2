//! The server's limits: message size (MAIL, DATA, BDAT), line lengths,
//! bare newlines, recipients per message.

use crate::common::*;
use crate::support::*;

/// A body of about `n` octets in 100-octet lines.
pub fn big_body(n: usize) -> Vec<u8> {
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
