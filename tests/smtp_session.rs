//! The SMTP server's protocol behaviour, driven over loopback.

mod common;
#[path = "smtp_session/limits.rs"]
mod limits;
#[path = "smtp_session/support.rs"]
mod support;
#[path = "smtp_session/tls.rs"]
mod tls;
use common::*;
use std::time::{Duration, Instant};
use support::*;

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
