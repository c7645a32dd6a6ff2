//! CRLF injection through the sources that are not SMTP: a `<Sender email>` of the HTTP fax API with `&#13;&#10;`
//! in it once became a `RCPT TO` line of its own at the next hop. Every
//! address that enters the queue from outside an SMTP session is now
//! checked by the RFC 5321 path grammar: the API answers `400
//! NO_SENDER`, `faxmta fax send` and a `submit` over the control socket
//! are refused, and nothing is queued. (The SMTP client's own refusal of
//! such a command is a unit test: transports/smtp/src/scripted.rs,
//! `addresses_with_cr_lf_or_nul_are_never_sent`; with these checks and
//! the queue's own (queue/src/store/tests.rs) no path reaches it.)

mod common;
use common::*;

#[path = "fax_api/client.rs"]
#[allow(dead_code)]
mod client;
use client::*;

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

#[test]
fn crlf_in_an_address_from_the_api_the_cli_or_the_control_socket_queues_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let s = start(&fax_config(w), "");
    let token = new_token(&s, &["scanner"]);
    let pdf = write(
        w,
        "memo.pdf",
        &fixtures::pdf(&[(612, 792, fixtures::PDF_PAGE)]),
    );
    for (n, sender) in [
        "alice@example.test&#13;&#10;RCPT TO:&lt;x@evil.test&gt;",
        "alice@example.test&#10;RCPT TO:&lt;x@evil.test&gt;",
        "alice@example.test&gt; NOTIFY=NEVER",
        "alice&#13;@example.test",
    ]
    .iter()
    .enumerate()
    {
        let meta = write(
            w,
            &format!("job{n}.xml"),
            job(sender, &["+15551234567"], &["memo.pdf"]).as_bytes(),
        );
        let body = refused(
            post(&http(&s), &token, &meta, &[&pdf], &[]),
            400,
            "NO_SENDER",
        );
        assert_contains(&body, "is not an address");
    }
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));

    // The command line.
    let out = s.cli(&[
        "fax",
        "send",
        "--to",
        "+15551234567",
        "--from",
        "alice@example.test\r\nRCPT TO:<x@evil.test>",
        pdf.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_contains(&output_text(&out), "is not a valid address");

    // The control socket itself, whatever the client checked.
    let request = serde_json::json!({
        "op": "submit",
        "message": {
            "sender": "alice@example.test\r\nRCPT TO:<x@evil.test>",
            "recipients": [{"address": "+15551234567@fax.localhost"}],
            "client": {"addr": "local", "helo": "h", "protocol": "local", "trusted": true},
            "body_type": "sevenbit",
            "smtputf8": false,
            "held": false
        },
        "body": "Subject: x\r\n\r\nx\r\n"
    });
    let answer = control(&s, &request.to_string());
    assert!(
        answer.contains("\"error\"") && answer.contains("not a valid address"),
        "{answer}"
    );
    assert!(queue_json(&s).is_empty(), "{:?}", queue_json(&s));
    assert!(!s.log().contains("x@evil.test>, queued"), "{}", s.log());

    // The same request with a good sender is taken.
    let meta = write(
        w,
        "good.xml",
        job("alice@example.test", &["+15551234567"], &["memo.pdf"]).as_bytes(),
    );
    let (code, body) = post(&http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
}

/// One request line on the control socket; the answer line.
fn control(s: &Server, request: &str) -> String {
    use std::io::{BufRead, Write};
    let mut c = std::os::unix::net::UnixStream::connect(s.path("faxmta.sock")).unwrap();
    c.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(c).read_line(&mut line).unwrap();
    line
}
