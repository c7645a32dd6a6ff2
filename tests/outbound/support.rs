//! Helpers of tests/outbound.rs and its modules: a message, relaying it,
//! waiting for reports and reading them.

use crate::common::*;
use serde_json::Value;

pub const ALICE: &str = "alice@example.test";

/// A small message from Alice.
pub fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.{}@example.test>\r\n\r\nHello from the outbound tests.\r\n",
        now()
    )
}

/// One transaction on the MX listener with MAIL and RCPT arguments as
/// given (`<addr> PARAMS…`); `msg` must be dot-safe and end with CRLF.
/// Returns the queue id.
pub fn relay(server: &Server, mail: &str, rcpts: &[String], msg: &str) -> String {
    let mut c = server.connect();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(&format!("MAIL FROM:{mail}"));
    assert!(r.starts_with("250"), "MAIL FROM:{mail}: {r}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        assert!(r.starts_with("250"), "RCPT TO:{rcpt}: {r}");
    }
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(msg.as_bytes());
    c.send(b".\r\n");
    let id = queued_id(&c.reply());
    c.cmd("QUIT");
    id
}

/// The reports in Alice's Maildir, waiting up to `secs` for `n`; each as
/// text with LF line ends.
pub fn wait_reports(server: &Server, n: usize, secs: u64) -> Vec<String> {
    let files = server.wait_maildir("example.test", "alice", n, secs);
    assert!(
        files.len() >= n,
        "{} report(s) for alice, expected {n}:\n{}",
        files.len(),
        server.log()
    );
    files
        .iter()
        .map(|f| String::from_utf8_lossy(&crlf_to_lf(&read(f))).into_owned())
        .collect()
}

/// The `message/delivery-status` fields of one recipient in a report:
/// the block that holds `Final-Recipient: rfc822; rcpt`.
pub fn status_block<'a>(report: &'a str, rcpt: &str) -> &'a str {
    let key = format!("Final-Recipient: rfc822; {rcpt}\n");
    let at = report
        .find(&key)
        .unwrap_or_else(|| panic!("{rcpt} is not in the report:\n{report}"));
    let start = report[..at].rfind("\n\n").map_or(0, |p| p + 2);
    let end = report[at..].find("\n\n").map_or(report.len(), |p| at + p);
    &report[start..end]
}

/// Whether the queue still has message `id`.
pub fn queued(server: &Server, id: &str) -> bool {
    find_queued(server, id).is_some()
}

// ------------------------------------------------------------------ MX

/// A report (a Maildir file) as Python's email module reads it: top-level
/// headers, the media types of the parts, the notification text, the
/// `message/delivery-status` fields (per message, then one map per
/// recipient), the header fields of the returned message, and every
/// defect the parser noted.
pub fn parse_report(file: &std::path::Path) -> Value {
    let json = python(
        r#"
import email, email.policy, json, sys
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
if parts[2].get_content_type() == 'message/rfc822':
    returned = parts[2].get_payload()[0]
else:
    returned = email.message_from_bytes(parts[2].get_payload(decode=True), policy=email.policy.compat32)
out['returned'] = dict(returned.items())
out['returned_body'] = returned.get_payload()
print(json.dumps(out))
"#,
        &[file.to_str().unwrap()],
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}
