//! Local delivery over LMTP with the real binary and a real Dovecot
//! (tests/peers/dovecot.rs: LMTP only, on 127.0.0.5 and a Unix socket, its
//! users in a passwd-file): each recipient gets Dovecot's own reply, at
//! RCPT (an unknown user) or after the data (a user over quota), and a
//! refused one a report to the sender with Dovecot's 5xx; a stopped
//! Dovecot defers, and the mail arrives once it is back.

mod common;
mod peers;

use common::*;
use peers::*;

const ALICE: &str = "alice@example.test";
const LMTP_IP: &str = "127.0.0.5";

/// faxmta with `lmtp.test` delivered to `deliver` (plus `extra` TOML).
fn faxmta_lmtp(deliver: &str, extra: &str) -> Server {
    Server::start_with(
        "",
        &format!(
            "[[domain]]\nname = \"lmtp.test\"\nkind = \"local\"\ndeliver = \"{deliver}\"\n{extra}"
        ),
    )
}

/// One message to several recipients on the MX listener; the queue id.
fn send_to(server: &Server, rcpts: &[&str], subject: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}>"));
    assert!(r.starts_with("250"), "{r}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "RCPT TO:<{rcpt}>: {r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(
        format!(
            "From: Alice <{ALICE}>\r\nTo: the team\r\nSubject: {subject}\r\n\r\n\
             Hello over LMTP.\r\n.\r\n"
        )
        .as_bytes(),
    );
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The `message/delivery-status` fields of one report, parsed by
/// Python's email module: one map per recipient.
fn report_fields(file: &std::path::Path) -> serde_json::Value {
    let json = python(
        r#"
import email, email.policy, json, sys
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)
parts = msg.get_payload()
status = parts[1].get_payload()
print(json.dumps({
    'to': msg['To'], 'subject': msg['Subject'],
    'per_recipient': [dict(s.items()) for s in status[1:]],
    'notification': parts[0].get_payload(decode=True).decode('utf-8'),
}))
"#,
        &[file.to_str().unwrap()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A message to two users Dovecot knows and one it does not, through
/// `deliver`: the two arrive in Dovecot's Maildirs (not in faxmta's) in
/// one LMTP session, and Alice gets a report for the third with Dovecot's
/// reply. `relay` is what faxmta logs as the relay.
fn known_and_unknown_users(dovecot: &Dovecot, server: &Server, relay: &str) {
    let id = send_to(
        server,
        &["ann@lmtp.test", "Ben@lmtp.test", "nobody@lmtp.test"],
        "team news",
    );
    let mut sessions = Vec::new();
    for rcpt in ["ann@lmtp.test", "Ben@lmtp.test"] {
        let line = wait_status(server, &id, rcpt, "sent", 15);
        assert_contains(&line, &format!("relay={relay}, "));
        assert_contains(&line, "dsn=2.0.0");
        // Dovecot's own reply: "250 2.0.0 <rcpt> SESSION[:Rn] Saved".
        let session = line
            .split_once(&format!(": 250 2.0.0 <{rcpt}> "))
            .and_then(|(_, rest)| rest.split([' ', ':']).next())
            .unwrap_or_else(|| panic!("not Dovecot's reply: {line}"))
            .to_string();
        sessions.push(session);
    }
    // Both went in one LMTP session (one job for the target).
    assert_eq!(sessions[0], sessions[1], "{}", server.log());
    let line = wait_status(server, &id, "nobody@lmtp.test", "bounced", 15);
    assert_contains(&line, &format!("relay={relay}, "));
    assert_contains(&line, "dsn=5.1.1");

    for user in ["ann@lmtp.test", "ben@lmtp.test"] {
        let mail = dovecot.wait_maildir(user, 1, 10);
        assert_eq!(mail.len(), 1, "{user}:\n{}", dovecot.log());
        assert_contains(&mail[0], "Subject: team news");
        assert_contains(&mail[0], "Hello over LMTP.");
        assert_contains(&mail[0], &format!("Return-Path: <{ALICE}>"));
        assert_contains(&mail[0], "by mx.example.test"); // our Received
    }
    assert!(dovecot.maildir("nobody@lmtp.test").is_empty());
    assert!(
        !server.path("mail/lmtp.test").exists(),
        "faxmta wrote into its own Maildir"
    );

    // What Dovecot answered, from its side of the story.
    let reply = "550 5.1.1 <nobody@lmtp.test> User doesn't exist: nobody@lmtp.test";
    let files = server.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(files.len(), 1, "no report:\n{}", server.log());
    let r = report_fields(&files[0]);
    assert_eq!(r["subject"], "Undelivered Mail Returned to Sender", "{r}");
    let recipients = r["per_recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "only the unknown user: {r}");
    let pr = &recipients[0];
    assert_eq!(pr["Final-Recipient"], "rfc822; nobody@lmtp.test", "{r}");
    assert_eq!(pr["Action"], "failed", "{r}");
    assert_eq!(pr["Status"], "5.1.1", "{r}");
    assert_eq!(pr["Diagnostic-Code"], format!("smtp; {reply}"), "{r}");
    assert_contains(
        r["notification"].as_str().unwrap(),
        "(in reply to RCPT TO command)",
    );
    assert!(wait_queue_empty(server, 10), "{}", server.log());
}

#[test]
fn lmtp_over_tcp_delivers_known_users_and_reports_the_unknown_one() {
    let port = shared_port(&[LMTP_IP]);
    let dovecot = Dovecot::start(LMTP_IP, port, &["ann@lmtp.test", "ben@lmtp.test"]);
    let s = faxmta_lmtp(&format!("lmtp:{LMTP_IP}:{port}"), "");
    known_and_unknown_users(&dovecot, &s, &format!("{LMTP_IP}[{LMTP_IP}]:{port}"));

    // Counted under their own transport.
    let metrics = s.http_get("/metrics");
    for (status, n) in [("sent", 2), ("bounced", 1)] {
        assert_contains(
            &metrics,
            &format!("faxmta_deliveries_total{{status=\"{status}\",transport=\"lmtp\"}} {n}"),
        );
    }
}

#[test]
fn lmtp_over_a_unix_socket_delivers_known_users_and_reports_the_unknown_one() {
    let port = shared_port(&[LMTP_IP]);
    let dovecot = Dovecot::start(LMTP_IP, port, &["ann@lmtp.test", "ben@lmtp.test"]);
    let socket = dovecot.socket();
    let s = faxmta_lmtp(&format!("lmtp:unix:{}", socket.display()), "");
    known_and_unknown_users(&dovecot, &s, &format!("lmtp:unix:{}", socket.display()));

    let route = cli_ok(&s, &["route", "anyone@lmtp.test"]);
    assert_contains(
        &route,
        &format!("route:   LMTP delivery to unix:{} ", socket.display()),
    );
    assert_contains(&route, "users:   the LMTP server's");
}

/// Dovecot stopped: the recipients (TCP and Unix socket alike) are
/// deferred, and delivered once it runs again.
#[test]
fn a_stopped_lmtp_server_defers_until_it_is_back() {
    let port = shared_port(&[LMTP_IP]);
    let mut dovecot = Dovecot::start(LMTP_IP, port, &["ann@lmtp.test", "ann@sock.lmtp.test"]);
    let socket = dovecot.socket();
    let s = faxmta_lmtp(
        &format!("lmtp:{LMTP_IP}:{port}"),
        &format!(
            "[[domain]]\nname = \"sock.lmtp.test\"\nkind = \"local\"\ndeliver = \"lmtp:unix:{}\"\n",
            socket.display()
        ),
    );
    dovecot.stop();

    let id = send_to(&s, &["ann@lmtp.test", "ann@sock.lmtp.test"], "while down");
    let tcp = wait_status(&s, &id, "ann@lmtp.test", "deferred", 15);
    assert_contains(&tcp, &format!("relay=lmtp:{LMTP_IP}:{port}, "));
    assert_contains(
        &tcp,
        &format!("(connect to {LMTP_IP}[{LMTP_IP}:{port}]: Connection refused"),
    );
    let unix = wait_status(&s, &id, "ann@sock.lmtp.test", "deferred", 15);
    assert_contains(&unix, &format!("relay=lmtp:unix:{}, ", socket.display()));
    assert_contains(&unix, &format!("(connect to unix:{}: ", socket.display()));
    assert!(find_queued(&s, &id).is_some(), "still queued");
    assert!(dovecot.maildir("ann@lmtp.test").is_empty());

    dovecot.spawn();
    let line = wait_status(&s, &id, "ann@lmtp.test", "sent", 20);
    assert_contains(&line, &format!("relay={LMTP_IP}[{LMTP_IP}]:{port}, "));
    wait_status(&s, &id, "ann@sock.lmtp.test", "sent", 20);
    for user in ["ann@lmtp.test", "ann@sock.lmtp.test"] {
        let mail = dovecot.wait_maildir(user, 1, 10);
        assert_eq!(mail.len(), 1, "{user}:\n{}", dovecot.log());
        assert_contains(&mail[0], "Subject: while down");
    }
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
    // Nothing was wrong for good: no report.
    assert!(s.maildir("example.test", "alice").is_empty());
}

/// With faxmta's own user list, unknown users are refused at RCPT as for
/// any local domain; `faxmta route` names the LMTP server.
#[test]
fn a_user_list_refuses_unknown_lmtp_users_at_rcpt() {
    let port = shared_port(&[LMTP_IP]);
    let dovecot = Dovecot::start(LMTP_IP, port, &["ann@lmtp.test"]);
    let s = faxmta_lmtp(&format!("lmtp:{LMTP_IP}:{port}"), "users = [\"ann\"]\n");

    let mut c = s.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{ALICE}>")).starts_with("250"));
    let r = c.cmd("RCPT TO:<nobody@lmtp.test>");
    assert!(r.starts_with("550 5.1.1 "), "{r}");
    c.cmd("QUIT");

    let id = send_to(&s, &["ann@lmtp.test"], "listed");
    wait_status(&s, &id, "ann@lmtp.test", "sent", 15);
    assert_eq!(dovecot.wait_maildir("ann@lmtp.test", 1, 10).len(), 1);

    let route = cli_ok(&s, &["route", "ann@lmtp.test"]);
    assert_contains(&route, "rule:    local domain");
    assert_contains(
        &route,
        &format!("route:   LMTP delivery to {LMTP_IP}:{port} "),
    );
    assert_contains(&route, "users:   faxmta's list");
    assert_contains(
        &cli_ok(&s, &["route", "nobody@lmtp.test"]),
        "refused at RCPT: 550 5.1.1",
    );
}

/// LMTP's own point: after the data each recipient gets its own reply. A
/// user over quota gets Dovecot's 552 then (not at RCPT), and only that
/// user is reported; the other one's copy is delivered.
#[test]
fn replies_after_the_data_decide_for_each_recipient() {
    let port = shared_port(&[LMTP_IP]);
    let dovecot = Dovecot::start(
        LMTP_IP,
        port,
        &[
            "ann@lmtp.test",
            "carl@lmtp.test userdb_quota_rule=*:storage=1B",
        ],
    );
    let s = faxmta_lmtp(&format!("lmtp:{LMTP_IP}:{port}"), "");

    let id = send_to(&s, &["carl@lmtp.test", "ann@lmtp.test"], "over quota");
    wait_status(&s, &id, "ann@lmtp.test", "sent", 15);
    let line = wait_status(&s, &id, "carl@lmtp.test", "bounced", 15);
    assert_contains(&line, "dsn=5.2.2");
    assert_contains(&line, "(in reply to end of DATA command))");
    assert_eq!(dovecot.wait_maildir("ann@lmtp.test", 1, 10).len(), 1);
    assert!(dovecot.maildir("carl@lmtp.test").is_empty());

    let files = s.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(files.len(), 1, "no report:\n{}", s.log());
    let r = report_fields(&files[0]);
    let recipients = r["per_recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "only carl: {r}");
    assert_eq!(recipients[0]["Final-Recipient"], "rfc822; carl@lmtp.test");
    assert_eq!(recipients[0]["Status"], "5.2.2", "{r}");
    assert_eq!(
        recipients[0]["Remote-MTA"],
        format!("dns; {LMTP_IP}"),
        "{r}"
    );
    let diagnostic = recipients[0]["Diagnostic-Code"].as_str().unwrap();
    assert!(
        diagnostic.starts_with("smtp; 552 5.2.2 <carl@lmtp.test> Quota exceeded"),
        "{r}"
    );
    assert!(wait_queue_empty(&s, 10), "{}", s.log());
}
