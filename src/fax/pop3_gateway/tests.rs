//! Reading fax requests out of fetched mail.

use super::*;
use std::path::Path;

fn router() -> Router {
    let text = r#"
hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/m/{domain}/{user}"
users = ["alice", "bob"]
[[domain]]
name = "fax.example.test"
kind = "fax"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice"
"#;
    Router::new(&Config::parse(Path::new("t.toml"), text).unwrap())
}

#[test]
fn fax_addresses_in_to_and_cc_are_the_recipients() {
    let mail = "From: Alice <alice@example.test>\r\n\
        To: Bob <+15551234567@fax.example.test>, bob@example.test\r\n\
        Cc: FAX=+15557654321@example.test, IMCEAFAX-+2B15551110000@example.test\r\n\
        Cc: +15551234567@fax.example.test\r\n\
        Subject: hi\r\n\r\nbody\r\n";
    let r = read_request(&router(), mail.as_bytes());
    assert_eq!(r.sender.as_deref(), Some("alice@example.test"));
    assert_eq!(
        r.fax,
        [
            "+15551234567@fax.example.test",
            "FAX=+15557654321@example.test",
            "IMCEAFAX-+2B15551110000@example.test"
        ]
    );
    assert_eq!(r.ignored, ["bob@example.test"]);
    assert!(r.refused.is_empty());
    assert!(!r.automatic);
}

#[test]
fn an_unauthorised_sender_and_a_bad_number_are_refused() {
    let mail = "From: bob@example.test\r\nTo: +15551234567@fax.example.test, \
        1-800-FLOWERS@fax.example.test\r\n\r\nx\r\n";
    let r = read_request(&router(), mail.as_bytes());
    assert!(r.fax.is_empty());
    let codes: Vec<(&str, &str)> = r
        .refused
        .iter()
        .map(|(a, reply)| (a.as_str(), reply.status.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("+15551234567@fax.example.test", "5.7.1"),
            ("1-800-FLOWERS@fax.example.test", "5.1.3")
        ]
    );
}

#[test]
fn the_sender_falls_back_to_sender_and_return_path() {
    let r = read_request(
        &router(),
        b"Sender: alice@example.test\r\nTo: x@y.test\r\n\r\n",
    );
    assert_eq!(r.sender.as_deref(), Some("alice@example.test"));
    let r = read_request(
        &router(),
        b"Return-Path: <alice@example.test>\r\nTo: x@y.test\r\n\r\n",
    );
    assert_eq!(r.sender.as_deref(), Some("alice@example.test"));
    let r = read_request(&router(), b"To: +15551234567@fax.example.test\r\n\r\n");
    assert_eq!(r.sender, None);
}

#[test]
fn reports_and_auto_replies_are_automatic() {
    for mail in [
        "From: alice@example.test\r\nAuto-Submitted: auto-replied\r\n\r\n",
        "From: MAILER-DAEMON@example.test\r\n\r\n",
        "From: alice@example.test\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n",
    ] {
        assert!(read_request(&router(), mail.as_bytes()).automatic, "{mail}");
    }
    let r = read_request(
        &router(),
        b"From: alice@example.test\r\nAuto-Submitted: no\r\n\r\n",
    );
    assert!(!r.automatic);
}
