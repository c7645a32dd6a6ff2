//! Reports (RFC 3464) of the delivery tests: an expired message, and the
//! one delay warning of a deferred message, parsed field by field.

use crate::common::*;
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// A deferred recipient is retried on schedule and, after the lifetime,
/// the sender gets an RFC 3464 report; the null sender gets none.
#[test]
fn expired_message_is_reported_to_the_sender_as_rfc3464() {
    let mut server = Server::start();
    restart_with(&mut server, &[("lifetime = \"1h\"", "lifetime = \"4s\"")]);
    block(&server, "bob");
    let subject = "expiring message";
    let id = send(
        &server,
        "alice@example.test",
        "bob@example.test",
        &message(subject, "this will not be delivered"),
    );
    let null_id = send(
        &server,
        "",
        "bob@example.test",
        &message("from the null sender", "no report for this one"),
    );

    // Retried on the 1s schedule: the attempt count grows.
    let mut seen = Vec::new();
    let retried = wait_until(10, || {
        if let Some(n) = attempts(&server, &id) {
            if seen.last() != Some(&n) {
                seen.push(n);
            }
        }
        seen.len() >= 2 && seen.last().is_some_and(|&n| n >= 2)
    });
    assert!(retried, "attempts seen for {id}: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "attempts seen: {seen:?}"
    );
    let list = queue_json(&server);
    if let Some(m) = find(&list, &id) {
        let r = &m["recipients"][0];
        assert_eq!(r["state"], "deferred", "{m}");
        let last = r["last_reply"]["text"].as_str().unwrap_or_default();
        assert!(last.contains("maildir delivery failed"), "{m}");
    }

    // After the lifetime: one report, to alice.
    let files = server.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(files.len(), 1, "no report:\n{}", server.log());
    assert!(wait_queue_empty(&server, 10), "{:?}", queue_json(&server));
    let log = server.log();
    let deferred = log
        .lines()
        .filter(|l| {
            l.contains(&format!("{id}: to=<bob@example.test>")) && l.contains("status=deferred")
        })
        .count();
    assert!(
        deferred >= 2,
        "expected status=deferred lines for {id}:\n{log}"
    );
    assert!(
        log.contains(&format!("{id}: sender non-delivery notification")),
        "{log}"
    );
    assert!(
        !log.contains(&format!("{null_id}: sender non-delivery notification")),
        "a report for the null sender's message:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{null_id}: to=<bob@example.test>"))
                && !l.contains("status=deferred")),
        "the null sender's message did not end:\n{log}"
    );
    assert_eq!(
        server.maildir("example.test", "alice").len(),
        1,
        "more than one report"
    );
    assert!(server.maildir("example.test", "bob").is_empty());

    let raw = read(&files[0]);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("Return-Path: <>\nDelivered-To: alice@example.test\n"),
        "{text}"
    );

    let parsed = python(
        r#"
import email, email.policy, json, sys
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)
out = {
  'content_type': msg.get_content_type(),
  'report_type': msg.get_param('report-type'),
  'from': msg['From'], 'to': msg['To'], 'subject': msg['Subject'],
  'auto_submitted': msg['Auto-Submitted'], 'return_path': msg['Return-Path'],
  'defects': [str(d) for d in msg.defects],
  'parts': [p.get_content_type() for p in msg.get_payload()],
}
parts = msg.get_payload()
status = parts[1].get_payload()
out['per_message'] = dict(status[0].items())
out['per_recipient'] = [dict(s.items()) for s in status[1:]]
returned = parts[2].get_payload()
out['returned_subject'] = returned[0]['Subject']
out['returned_body'] = returned[0].get_payload()
out['notification'] = parts[0].get_payload(decode=True).decode('utf-8')
print(json.dumps(out))
"#,
        &[files[0].to_str().unwrap()],
    );
    let r: Value = serde_json::from_str(&parsed).unwrap_or_else(|e| panic!("{e}: {parsed}"));
    assert_eq!(r["content_type"], "multipart/report", "{r}");
    assert_eq!(r["report_type"], "delivery-status", "{r}");
    assert_eq!(r["defects"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["parts"],
        serde_json::json!(["text/plain", "message/delivery-status", "message/rfc822"]),
        "{r}"
    );
    assert!(
        r["from"]
            .as_str()
            .unwrap()
            .contains("<MAILER-DAEMON@mx.example.test>"),
        "{r}"
    );
    assert_eq!(r["to"], "<alice@example.test>", "{r}");
    assert_eq!(r["return_path"], "<>", "{r}");
    assert!(
        r["auto_submitted"].as_str().unwrap().starts_with("auto-"),
        "{r}"
    );
    assert!(
        r["notification"]
            .as_str()
            .unwrap()
            .contains("<bob@example.test>"),
        "{r}"
    );

    let pm = &r["per_message"];
    assert_eq!(pm["Reporting-MTA"], "dns; mx.example.test", "{r}");
    assert_eq!(pm["X-Faxmta-Queue-ID"], id.as_str(), "{r}");
    let arrival = pm["Arrival-Date"].as_str().unwrap_or_default().to_string();
    let arrival_check = python(
        "import sys, email.utils; print(int(email.utils.parsedate_to_datetime(sys.argv[1]).timestamp()))",
        &[&arrival],
    );
    let arrival_unix: u64 = arrival_check.trim().parse().unwrap();
    assert!(
        arrival_unix + 60 > now() && arrival_unix <= now(),
        "Arrival-Date {arrival} is not the arrival time"
    );

    let recipients = r["per_recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "{r}");
    let pr = &recipients[0];
    assert_eq!(pr["Final-Recipient"], "rfc822; bob@example.test", "{r}");
    assert_eq!(pr["Action"], "failed", "{r}");
    assert_eq!(pr["Status"], "5.4.7", "{r}");
    let diag = pr["Diagnostic-Code"].as_str().unwrap_or_default();
    assert!(diag.starts_with("smtp; "), "{r}");
    assert!(diag.contains("451 4.3.0 maildir delivery failed"), "{r}");

    assert_eq!(r["returned_subject"], subject, "{r}");
    assert!(
        r["returned_body"]
            .as_str()
            .unwrap()
            .contains("this will not be delivered"),
        "{r}"
    );
}

/// One message from Alice to Bob with RCPT parameters `params` (e.g.
/// "NOTIFY=NEVER"); returns the queue id.
fn send_notify(server: &Server, params: &str, subject: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd("MAIL FROM:<alice@example.test>");
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("RCPT TO:<bob@example.test> {params}"));
    assert!(r.starts_with("250"), "RCPT … {params}: {r}");
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(message(subject, "the body stays home").as_bytes());
    c.send(b".\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The log lines about Bob's copy of message `id`.
fn bob_lines(server: &Server, id: &str) -> Vec<String> {
    let start = format!("{id}: to=<bob@example.test>, ");
    server
        .log()
        .lines()
        .filter(|l| l.contains(&start))
        .map(str::to_string)
        .collect()
}

/// Wait until message `id` has had an attempt at least `secs` after its
/// arrival (its log line says `delay=N` with N >= secs) and that attempt
/// is recorded in the queue: a delay warning due then has been decided.
fn wait_attempt_after(server: &Server, id: &str, secs: u64) -> bool {
    wait_until(15, || {
        let lines = bob_lines(server, id);
        let late = lines.iter().position(|l| {
            l.split(", delay=")
                .nth(1)
                .and_then(|d| d.split(',').next())
                .and_then(|d| d.parse::<u64>().ok())
                .is_some_and(|d| d >= secs)
        });
        match late {
            Some(k) => attempts(server, id).is_some_and(|n| n as usize > k),
            None => false,
        }
    })
}

/// With `delay_warning = "2s"`, a deferred recipient gets one RFC 3464
/// delay warning (headers only returned), none for NOTIFY=NEVER or
/// NOTIFY=FAILURE, and no second one before the message is delivered.
#[test]
fn delayed_message_gets_one_delay_warning() {
    let mut server = Server::start();
    restart_with(
        &mut server,
        &[(
            "lifetime = \"1h\"\n",
            "lifetime = \"1h\"\ndelay_warning = \"2s\"\n",
        )],
    );
    block(&server, "bob");
    let warned = send_notify(&server, "", "warn me");
    let never = send_notify(&server, "NOTIFY=NEVER", "never tell");
    let failure = send_notify(&server, "NOTIFY=FAILURE", "failures only");

    let files = server.wait_maildir("example.test", "alice", 1, 15);
    assert_eq!(
        files.len(),
        1,
        "one delay warning expected:\n{}",
        server.log()
    );
    let notice = format!("{warned}: sender delay notification");
    assert!(server.log().contains(&notice), "{}", server.log());
    let at_warning = attempts(&server, &warned).expect("still queued");

    // The others had their chance, past the 2s, and got nothing.
    for id in [&never, &failure] {
        assert!(wait_attempt_after(&server, id, 2), "{}", server.log());
    }
    // The warned one is tried twice more: no second warning.
    assert!(
        wait_until(15, || attempts(&server, &warned)
            .is_some_and(|n| n >= at_warning + 2)),
        "{}",
        server.log()
    );
    let env = find_queued(&server, &warned).expect("still queued");
    assert_eq!(env["recipients"][0]["state"], "deferred", "{env}");
    assert_eq!(env["recipients"][0]["delay_warned"], true, "{env}");
    for id in [&never, &failure] {
        let env = find_queued(&server, id).expect("still queued");
        assert_eq!(env["recipients"][0]["delay_warned"], false, "{env}");
    }

    // Delivered once Bob's Maildir can be made; still the one report.
    unblock(&server, "bob");
    assert!(wait_queue_empty(&server, 15), "{:?}", queue_json(&server));
    assert_eq!(
        subject_counts(&server, "example.test", "bob"),
        BTreeMap::from([
            ("warn me".to_string(), 1),
            ("never tell".to_string(), 1),
            ("failures only".to_string(), 1),
        ])
    );
    let log = server.log();
    assert_eq!(log.matches(&notice).count(), 1, "{log}");
    assert_eq!(log.matches("sender delay notification").count(), 1, "{log}");
    assert!(!log.contains("sender non-delivery"), "{log}");
    assert_eq!(server.maildir("example.test", "alice"), files, "{log}");
    for id in [&warned, &never, &failure] {
        assert!(
            bob_lines(&server, id)
                .last()
                .is_some_and(|l| l.contains("status=sent")),
            "{log}"
        );
    }

    let parsed = python(
        r#"
import email, email.policy, email.utils, json, sys
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.compat32)
parts = msg.get_payload()
out = {
    'content_type': msg.get_content_type(),
    'report_type': msg.get_param('report-type'),
    'from': msg['From'], 'to': msg['To'], 'subject': msg['Subject'],
    'return_path': msg['Return-Path'], 'auto_submitted': msg['Auto-Submitted'],
    'defects': [str(d) for p in msg.walk() for d in p.defects],
    'parts': [p.get_content_type() for p in parts],
    'notification': parts[0].get_payload(decode=True).decode('utf-8'),
}
status = parts[1].get_payload()
out['per_message'] = dict(status[0].items())
out['per_recipient'] = [dict(s.items()) for s in status[1:]]
unix = lambda date: int(email.utils.parsedate_to_datetime(date).timestamp())
out['arrival'] = unix(out['per_message']['Arrival-Date'])
out['retry_until'] = [unix(s['Will-Retry-Until']) for s in status[1:]]
headers = parts[2].get_payload(decode=True)
returned = email.message_from_bytes(headers, policy=email.policy.compat32)
out['returned'] = dict(returned.items())
out['returned_body'] = returned.get_payload()
out['returned_defects'] = [str(d) for d in returned.defects]
print(json.dumps(out))
"#,
        &[files[0].to_str().unwrap()],
    );
    let r: Value = serde_json::from_str(&parsed).unwrap_or_else(|e| panic!("{e}: {parsed}"));
    assert_eq!(r["content_type"], "multipart/report", "{r}");
    assert_eq!(r["report_type"], "delivery-status", "{r}");
    assert_eq!(r["defects"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["parts"],
        serde_json::json!([
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]),
        "{r}"
    );
    assert_eq!(r["subject"], "Delayed Mail (still being retried)", "{r}");
    assert_eq!(r["to"], "<alice@example.test>", "{r}");
    assert_eq!(r["return_path"], "<>", "{r}");
    assert_eq!(r["auto_submitted"], "auto-replied", "{r}");
    assert!(
        r["notification"]
            .as_str()
            .unwrap()
            .contains("THIS IS A WARNING ONLY"),
        "{r}"
    );
    let pm = &r["per_message"];
    assert_eq!(pm["Reporting-MTA"], "dns; mx.example.test", "{r}");
    assert_eq!(pm["X-Faxmta-Queue-ID"], warned.as_str(), "{r}");

    let recipients = r["per_recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "{r}");
    let pr = &recipients[0];
    assert_eq!(pr["Final-Recipient"], "rfc822; bob@example.test", "{r}");
    assert_eq!(pr["Action"], "delayed", "{r}");
    assert_eq!(pr["Status"], "4.3.0", "{r}");
    let diag = pr["Diagnostic-Code"].as_str().unwrap_or_default();
    assert!(
        diag.starts_with("smtp; 451 4.3.0 maildir delivery failed"),
        "{r}"
    );
    assert!(pr.get("Remote-MTA").is_none(), "local delivery: {r}");
    assert!(pr["Last-Attempt-Date"].is_string(), "{r}");
    // Retried until the lifetime (1h) after arrival.
    assert_eq!(
        r["retry_until"][0].as_u64().unwrap(),
        r["arrival"].as_u64().unwrap() + 3600,
        "{r}"
    );

    // The third part: the header section only.
    assert_eq!(r["returned"]["Subject"], "warn me", "{r}");
    assert_eq!(r["returned"]["To"], "Bob <bob@example.test>", "{r}");
    assert_eq!(r["returned_body"], "", "{r}");
    assert_eq!(r["returned_defects"], serde_json::json!([]), "{r}");
    let raw = String::from_utf8_lossy(&read(&files[0])).into_owned();
    assert!(!raw.contains("the body stays home"), "{raw}");
}
