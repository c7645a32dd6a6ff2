//! `faxmta queue …` against a running server (through its control socket)
//! and against a stopped one (straight from the queue).

mod common;
use common::*;

use serde_json::Value;
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// Send a minimal From/To/Subject message by hand; returns its queue id.
fn send_simple(server: &Server, from: &str, to: &str, subject: &str, body: &str) -> String {
    send(
        server,
        from,
        to,
        &format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\n{body}\r\n"),
    )
}

/// Wait until message `id` has had at least one delivery attempt; returns
/// its envelope.
fn wait_deferred(server: &Server, id: &str) -> Value {
    let mut last = None;
    let ok = wait_until(10, || {
        last = find_queued(server, id);
        last.as_ref()
            .is_some_and(|m| m["recipients"][0]["attempts"].as_u64().unwrap_or(0) >= 1)
    });
    assert!(ok, "{id} never tried: {last:?}\n{}", server.log());
    last.unwrap()
}

// ------------------------------------------------------------------ tests

/// `queue list` reads like mailq; `--json` carries the recipient details;
/// `queue show` prints the envelope and the message.
#[test]
fn list_json_and_show_describe_a_deferred_message() {
    let server = Server::start();
    assert!(server.path("faxmta.sock").exists(), "no control socket");
    assert_eq!(cli_ok(&server, &["queue", "list"]), "Mail queue is empty\n");
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "listed message",
        "the body of the listed message",
    );
    let env = wait_deferred(&server, &id);

    let list = cli_ok(&server, &["queue", "list"]);
    assert!(list.starts_with("-Queue ID-"), "{list}");
    let line = id_line(&list, &id);
    let size = env["size"].as_u64().unwrap();
    assert!(size > 60, "{env}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[0], id, "{list}");
    assert_eq!(
        fields[1],
        size.to_string(),
        "not held, and the size: {list}"
    );
    assert_eq!(*fields.last().unwrap(), "alice@example.test", "{list}");
    assert!(
        list.contains("(451 4.3.0 maildir delivery failed"),
        "{list}"
    );
    let rcpt_line = list
        .lines()
        .find(|l| l.trim_start().starts_with("bob@example.test"))
        .unwrap_or_else(|| panic!("no recipient line:\n{list}"));
    assert!(rcpt_line.contains("[deferred, "), "{list}");
    assert!(rcpt_line.contains("attempt(s)"), "{list}");
    assert!(list.ends_with("in 1 Request.\n"), "{list}");

    let r = &env["recipients"][0];
    assert_eq!(env["sender"], "alice@example.test", "{env}");
    assert_eq!(env["held"], false, "{env}");
    assert_eq!(r["address"], "bob@example.test", "{env}");
    assert_eq!(r["state"], "deferred", "{env}");
    assert_eq!(r["last_reply"]["code"], 451, "{env}");
    assert_eq!(r["last_reply"]["status"], "4.3.0", "{env}");
    assert!(
        r["last_reply"]["text"]
            .as_str()
            .unwrap()
            .starts_with("maildir delivery failed"),
        "{env}"
    );
    let next = r["next_attempt"].as_u64().unwrap();
    assert!(next + 5 >= now() && next <= now() + 5, "{env}");
    assert!(r["attempts"].as_u64().unwrap() >= 1, "{env}");

    let show = cli_ok(&server, &["queue", "show", &id]);
    let (envelope, message) = show
        .split_once("--- message ---\n")
        .unwrap_or_else(|| panic!("{show}"));
    let shown: Value = serde_json::from_str(envelope).unwrap_or_else(|e| panic!("{e}: {show}"));
    assert_eq!(shown["id"], id.as_str(), "{show}");
    assert_eq!(shown["sender"], "alice@example.test", "{show}");
    assert_eq!(
        shown["recipients"][0]["address"], "bob@example.test",
        "{show}"
    );
    assert!(message.starts_with("Received: from client.test"), "{show}");
    assert!(message.contains(&format!("with ESMTP id {id}")), "{show}");
    assert!(
        message.contains("\r\nSubject: listed message\r\n"),
        "{show}"
    );
    assert!(
        message.ends_with("\r\n\r\nthe body of the listed message\r\n"),
        "{show:?}"
    );
    assert_eq!(message.len() as u64, size, "{show}");
}

/// A held message is marked in the list and not delivered, even when its
/// mailbox works again, until it is released.
#[test]
fn hold_and_release() {
    let server = Server::start();
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "held message",
        "wait for release",
    );
    wait_deferred(&server, &id);
    let out = cli_ok(&server, &["queue", "hold", &id]);
    assert_eq!(out, "1 message(s) placed on hold\n");
    assert_eq!(
        cli_ok(&server, &["queue", "summary"]),
        "1 message(s): 0 due now, 0 waiting for a later attempt, 1 held\n"
    );

    let list = cli_ok(&server, &["queue", "list"]);
    let line = id_line(&list, &id);
    assert!(line[id.len()..].trim_start().starts_with('!'), "{list}");
    assert!(list.contains("bob@example.test  [deferred"), "{list}");
    assert!(list.contains(", held]"), "{list}");
    let env = find_queued(&server, &id).unwrap();
    assert_eq!(env["held"], true, "{env}");
    let next = env["recipients"][0]["next_attempt"].as_u64().unwrap();
    let tried = env["recipients"][0]["attempts"].as_u64().unwrap();

    unblock(&server, "bob");
    // A message that is not held gets through to the same mailbox …
    send_simple(
        &server,
        "postmaster@example.test",
        "bob@example.test",
        "sentinel",
        "x",
    );
    server.wait_maildir("example.test", "bob", 1, 10);
    // … and the held one is not tried, not even after its next attempt
    // time has passed.
    assert!(wait_until(10, || now() > next + 1));
    // (What must not happen: an attempt while held; only time shows it.)
    assert!(
        holds_for(Duration::from_millis(500), || subjects(
            &server,
            "example.test",
            "bob"
        ) == ["sentinel"]),
        "{:?}",
        subjects(&server, "example.test", "bob")
    );
    let env = find_queued(&server, &id).unwrap();
    assert_eq!(env["held"], true, "{env}");
    assert_eq!(
        env["recipients"][0]["attempts"].as_u64().unwrap(),
        tried,
        "{env}"
    );

    let out = cli_ok(&server, &["queue", "release", &id]);
    assert_eq!(out, "1 message(s) released\n");
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    let mut got = subjects(&server, "example.test", "bob");
    got.sort();
    assert_eq!(got, ["held message", "sentinel"]);
}

/// `queue flush` delivers at once a message whose next attempt is an hour
/// away.
#[test]
fn flush_delivers_now() {
    let mut server = Server::start();
    restart_with(&mut server, &[("retry = [\"1s\"]", "retry = [\"1h\"]")]);
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "flushed message",
        "deliver me now",
    );
    let env = wait_deferred(&server, &id);
    let next = env["recipients"][0]["next_attempt"].as_u64().unwrap();
    assert!(next > now() + 1800, "next attempt is not far: {env}");
    unblock(&server, "bob");
    assert!(server.maildir("example.test", "bob").is_empty());

    let out = cli_ok(&server, &["queue", "flush"]);
    assert_eq!(out, "1 message(s) scheduled for delivery now\n");
    let files = server.wait_maildir("example.test", "bob", 1, 10);
    assert_eq!(files.len(), 1, "flush did not deliver:\n{}", server.log());
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(
        subjects(&server, "example.test", "bob"),
        ["flushed message"]
    );

    // `queue flush ID` for one message.
    block(&server, "alice");
    let id = send_simple(
        &server,
        "bob@example.test",
        "alice@example.test",
        "second",
        "x",
    );
    wait_deferred(&server, &id);
    unblock(&server, "alice");
    let out = cli_ok(&server, &["queue", "flush", &id]);
    assert_eq!(out, "1 message(s) scheduled for delivery now\n");
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(subjects(&server, "example.test", "alice"), ["second"]);
}

/// `queue delete ID` and `queue delete --all` remove messages for good.
#[test]
fn delete_one_and_all() {
    let server = Server::start();
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "deleted message",
        "never delivered",
    );
    wait_deferred(&server, &id);
    let out = cli_ok(&server, &["queue", "delete", &id]);
    assert_eq!(out, "1 message(s) deleted\n");
    assert_eq!(cli_ok(&server, &["queue", "list"]), "Mail queue is empty\n");
    let out = server.cli(&["queue", "show", &id]);
    assert!(!out.status.success(), "{}", output_text(&out));

    let ids: Vec<String> = (0..3)
        .map(|i| {
            send_simple(
                &server,
                "alice@example.test",
                "bob@example.test",
                &format!("bulk {i}"),
                "x",
            )
        })
        .collect();
    for id in &ids {
        wait_deferred(&server, id);
    }
    assert_eq!(queue_json(&server).len(), 3);
    let out = cli_ok(&server, &["queue", "delete", "--all"]);
    assert_eq!(out, "3 message(s) deleted\n");
    assert!(queue_json(&server).is_empty());

    // Nothing comes back once the mailbox works: only the sentinel arrives.
    unblock(&server, "bob");
    send_simple(
        &server,
        "postmaster@example.test",
        "bob@example.test",
        "sentinel",
        "x",
    );
    server.wait_maildir("example.test", "bob", 1, 10);
    // (What must not happen: a deleted message delivered after all; only
    // time shows it.)
    assert!(
        holds_for(Duration::from_millis(1500), || subjects(
            &server,
            "example.test",
            "bob"
        ) == ["sentinel"]),
        "{:?}",
        subjects(&server, "example.test", "bob")
    );
    // No report either: a deleted message is the administrator's choice.
    assert!(server.maildir("example.test", "alice").is_empty());
    assert!(queue_json(&server).is_empty());
}

/// Unknown ids: a non-zero exit and "no such message".
#[test]
fn unknown_ids_are_errors() {
    let server = Server::start();
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "keep",
        "x",
    );
    for args in [
        ["queue", "show", "0000DEADBEEF0"],
        ["queue", "hold", "0000DEADBEEF0"],
        ["queue", "release", "0000DEADBEEF0"],
        ["queue", "delete", "0000DEADBEEF0"],
        ["queue", "flush", "0000DEADBEEF0"],
    ] {
        let out = server.cli(&args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded:\n{}",
            output_text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("0000DEADBEEF0: no such message"),
            "{args:?}: {err}"
        );
    }
    // The real message was not touched.
    let env = find_queued(&server, &id).expect("message still queued");
    assert_eq!(env["held"], false, "{env}");
}

/// With the server stopped, `queue list` opens the queue itself.
#[test]
fn list_works_with_the_server_stopped() {
    let mut server = Server::start();
    block(&server, "bob");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "queued while stopped",
        "x",
    );
    wait_deferred(&server, &id);
    assert!(server.stop(), "{}", server.log());
    assert!(
        !server.path("faxmta.sock").exists(),
        "control socket left behind"
    );

    let list = cli_ok(&server, &["queue", "list"]);
    let line = id_line(&list, &id);
    assert!(line.ends_with("alice@example.test"), "{list}");
    assert!(list.contains("bob@example.test  [deferred"), "{list}");
    assert!(
        list.contains("(451 4.3.0 maildir delivery failed"),
        "{list}"
    );
    let env = find_queued(&server, &id).expect("listed in JSON");
    assert_eq!(env["recipients"][0]["state"], "deferred", "{env}");

    // And the server starts again on the same queue afterwards (the CLI
    // let go of it) and delivers.
    unblock(&server, "bob");
    server.spawn();
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    assert_eq!(
        subjects(&server, "example.test", "bob"),
        ["queued while stopped"]
    );
}

/// Prometheus metrics on the admin listener follow what happened.
#[test]
fn metrics_count_sessions_messages_and_deliveries() {
    let server = Server::start();
    let before = server.http_get("/metrics");
    assert!(before.contains("faxmta_smtp_sessions_active"), "{before}");
    let mut c = server.connect();
    c.cmd("EHLO metrics.test");
    assert!(c.cmd("MAIL FROM:<s@example.org>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.test>").starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<nobody@example.test>")
        .starts_with("550 5.1.1"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: m\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert_eq!(server.wait_maildir("example.test", "alice", 1, 10).len(), 1);
    let mut text = String::new();
    assert!(
        wait_until(10, || {
            text = server.http_get("/metrics");
            text.contains("faxmta_deliveries_total{status=\"sent\",transport=\"local\"} 1")
        }),
        "{text}"
    );
    for needle in [
        "faxmta_messages_received_total{source=\"mx\"} 1",
        "faxmta_smtp_sessions_active 1",
        "faxmta_smtp_rejects_total{class=\"5xx\",status=\"5.1.1\"} 1",
        "faxmta_delivery_delay_seconds_count{transport=\"local\"} 1",
        "faxmta_queue_messages{state=\"held\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    c.cmd("QUIT");
    assert!(wait_until(10, || server
        .http_get("/metrics")
        .contains("faxmta_smtp_sessions_active 0")));
}

/// `faxmta queue show ID | head` ends quietly when head closes the pipe
/// (it panicked in println! before).
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let server = Server::start();
    block(&server, "bob");
    let line = "x".repeat(76);
    let body = vec![line.as_str(); 4000].join("\r\n");
    let id = send_simple(
        &server,
        "alice@example.test",
        "bob@example.test",
        "big",
        &body,
    );
    wait_deferred(&server, &id);
    let script = format!(
        "'{}' queue show {id} --config '{}' | head -c 100 >/dev/null; echo \"status ${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_faxmta"),
        server.config().display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!text.contains("panicked"), "{text}");
    // Killed by SIGPIPE (128 + 13), as cat or grep would be.
    assert_eq!(text.trim(), "status 141", "{text}");
}
