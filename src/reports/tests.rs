//! Tests of the delivery status notifications.
use super::*;
use faxmta_queue::{BodyType, ClientInfo, NewRecipient, RcptState};
use mail_parser::{MessageParser, MimeHeaders};

const ORIGINAL: &[u8] = b"From: Alice <alice@origin.test>\r\nTo: bob@example.test\r\n\
    Subject: hello\r\n\r\nHi Bob,\r\nsecret body line\r\n";

fn rcpt(address: &str, orcpt: Option<&str>, notify: Option<Notify>) -> Recipient {
    Recipient {
        address: address.into(),
        orcpt: orcpt.map(Into::into),
        notify,
        state: RcptState::Failed,
        attempts: 1,
        next_attempt: 0,
        last_attempt: 1_700_000_100,
        last_reply: None,
        relay: None,
        delay_warned: false,
        lifetime: None,
        etrn: None,
        fax: None,
        report_pending: false,
    }
}

fn envelope(sender: &str, ret: Option<Ret>, recipients: Vec<Recipient>) -> Envelope {
    Envelope {
        id: "18C0FFEE0001".into(),
        sender: sender.into(),
        arrival: 1_700_000_000,
        size: ORIGINAL.len() as u64,
        client: ClientInfo::default(),
        body_type: BodyType::SevenBit,
        smtputf8: false,
        requiretls: false,
        ret,
        envid: Some("QQ314159".into()),
        held: false,
        lifetime: None,
        head: String::new(),
        recipients,
    }
}

/// alice@origin.test sent a message to bob@example.test alone.
fn to_bob(ret: Option<Ret>, notify: Option<Notify>) -> Envelope {
    let bob = rcpt("bob@example.test", None, notify);
    envelope("alice@origin.test", ret, vec![bob])
}

fn notify(never: bool, success: bool) -> Option<Notify> {
    let n = Notify {
        never,
        success,
        ..Default::default()
    };
    Some(n)
}

fn build(kind: ReportKind, env: &Envelope, reply: &str, original: &[u8]) -> Option<Report> {
    let mut words = reply.splitn(3, ' ');
    let code = words.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let status = words.next().unwrap_or("");
    let reply = Reply::new(code, status, words.next().unwrap_or(""));
    let item = |r| ReportItem {
        recipient: r,
        reply: &reply,
        remote_mta: Some("mx.remote.test"),
        will_retry_until: Some(1_700_432_000),
    };
    let items: Vec<ReportItem<'_>> = env.recipients.iter().map(item).collect();
    build_report(
        kind,
        "mx.example.test",
        env,
        original,
        &items,
        1_700_003_600,
    )
}

/// Media type and raw contents of each part of a report, checking on the
/// way that every LF in it is part of a CRLF.
fn parts(body: &[u8]) -> Vec<(String, String)> {
    for (i, &b) in body.iter().enumerate() {
        assert!(
            b != b'\n' || (i > 0 && body[i - 1] == b'\r'),
            "bare LF at {i}"
        );
    }
    let msg = MessageParser::default().parse(body).unwrap();
    let ids = msg.root_part().sub_parts().unwrap().to_vec();
    ids.iter()
        .map(|&id| {
            let p = msg.part(id).unwrap();
            let ct = p.content_type().unwrap();
            let name = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            let raw = &body[p.raw_body_offset() as usize..p.raw_end_offset() as usize];
            (name, String::from_utf8_lossy(raw).into_owned())
        })
        .collect()
}

#[test]
fn failure_report_is_rfc3464() {
    let recipients = vec![
        rcpt("bob@example.test", Some("rfc822;bob@example.test"), None),
        rcpt("carol@example.test", None, notify(false, true)),
    ];
    let env = envelope("alice@origin.test", None, recipients);
    let report = build(
        ReportKind::Failure,
        &env,
        "550 5.1.1 user unknown",
        ORIGINAL,
    )
    .unwrap();
    let m = &report.message;
    assert_eq!(
        (m.sender.as_str(), m.client.helo.as_str()),
        ("", "mx.example.test")
    );
    assert_eq!(m.recipients, vec![NewRecipient::new("alice@origin.test")]);
    assert_eq!(m.body_type, BodyType::SevenBit);

    let msg = MessageParser::default().parse(&report.body).unwrap();
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert!(!contains(
        ORIGINAL,
        ct.attribute("boundary").unwrap().as_bytes()
    ));
    assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
    let head = String::from_utf8_lossy(header_section(&report.body)).into_owned();
    assert!(head.contains("\r\nAuto-Submitted: auto-replied\r\n"));
    assert!(head.contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"));
    assert!(head.contains("\r\nTo: <alice@origin.test>\r\n"));

    let parts = parts(&report.body);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].0, "text/plain");
    assert!(parts[0]
        .1
        .contains("This is the mail system at host mx.example.test."));
    assert!(parts[0]
        .1
        .contains("<bob@example.test>: 550 5.1.1 user unknown"));
    assert_eq!(parts[1].0, "message/delivery-status");
    let ds = &parts[1].1;
    for field in [
        "Reporting-MTA: dns; mx.example.test",
        "X-Faxmta-Queue-ID: 18C0FFEE0001",
        "Original-Envelope-Id: QQ314159",
        "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000",
        "Original-Recipient: rfc822;bob@example.test",
        "Final-Recipient: rfc822; bob@example.test",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.remote.test",
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
        "Last-Attempt-Date: Tue, 14 Nov 2023 22:15:00 +0000",
    ] {
        assert!(
            ds.contains(&format!("{field}\r\n")),
            "{field} missing in {ds}"
        );
    }
    assert!(!ds.contains("Will-Retry-Until"));
    // carol asked for NOTIFY=SUCCESS only: not reported.
    assert!(!ds.contains("carol") && !parts[0].1.contains("carol"));

    assert_eq!(parts[2].0, "message/rfc822");
    assert!(contains(parts[2].1.as_bytes(), ORIGINAL));
    let inner = msg.part(msg.root_part().sub_parts().unwrap()[2]).unwrap();
    assert_eq!(inner.message().unwrap().subject(), Some("hello"));
}

#[test]
fn diagnostic_code_is_the_remote_reply_as_received() {
    let env = to_bob(None, None);
    let said = "550 5.1.1 host mx.remote.test[127.0.0.2:25] said: 550 5.1.1 \
                <bob@example.test>: Recipient address rejected: User unknown \
                (in reply to RCPT TO command)";
    let report = build(ReportKind::Failure, &env, said, ORIGINAL).unwrap();
    let wrapped = parts(&report.body);
    assert!(wrapped[1].1.contains(
        "\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: \
         Recipient address rejected: User unknown\r\n"
    ));
    assert!(wrapped[0].1.contains(
        "\r\n<bob@example.test>: host mx.remote.test[127.0.0.2:25] said: 550 5.1.1 \
         <bob@example.test>: Recipient address rejected: User unknown \
         (in reply to RCPT TO command)\r\n"
    ));
    // Not the transport's wrapping: kept whole.
    for other in [
        "451 4.3.0 maildir delivery failed: host x said: y",
        "554 5.4.7 message expired; last reply: 451 4.4.1 host h said: \
         421 busy (in reply to MAIL FROM command)",
    ] {
        let report = build(ReportKind::Failure, &env, other, ORIGINAL).unwrap();
        let kept = parts(&report.body);
        let diagnostic = format!("\r\nDiagnostic-Code: smtp; {other}\r\n");
        assert!(kept[1].1.contains(&diagnostic), "{other}");
        let human = format!("\r\n<bob@example.test>: {other}\r\n");
        assert!(kept[0].1.contains(&human), "{other}");
    }
}

#[test]
fn no_report_for_null_sender_or_notify_never() {
    let bob = rcpt("bob@example.test", None, None);
    let env = envelope("", None, vec![bob]);
    assert!(build(ReportKind::Failure, &env, "550 5.1.1 no", ORIGINAL).is_none());
    let env = to_bob(None, notify(true, false));
    assert!(build(ReportKind::Failure, &env, "550 5.1.1 no", ORIGINAL).is_none());
    assert!(build(ReportKind::Delay, &env, "450 4.2.0 later", ORIGINAL).is_none());
    // Success reports only when asked for.
    let env = to_bob(None, None);
    assert!(build(ReportKind::Success, &env, "250 2.0.0 ok", ORIGINAL).is_none());
}

#[test]
fn ret_hdrs_returns_only_the_header_section() {
    let env = to_bob(Some(Ret::Hdrs), None);
    let report = build(ReportKind::Failure, &env, "550 5.1.1 no", ORIGINAL).unwrap();
    let parts = parts(&report.body);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert!(parts[2].1.contains("Subject: hello\r\n"));
    assert!(!contains(&report.body, b"secret body line"));
}

#[test]
fn a_requiretls_message_is_returned_as_headers_only_even_with_ret_full() {
    // RFC 8689 §5: the report is not sent under REQUIRETLS, so the
    // content it carries must not be the message's.
    let mut env = to_bob(Some(Ret::Full), None);
    env.requiretls = true;
    let report = build(ReportKind::Failure, &env, "550 5.7.30 no", ORIGINAL).unwrap();
    let parts = parts(&report.body);
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert!(!contains(&report.body, b"secret body line"));
    env.requiretls = false;
    let report = build(ReportKind::Failure, &env, "550 5.7.30 no", ORIGINAL).unwrap();
    assert!(contains(&report.body, b"secret body line"));
}

#[test]
fn delay_report_has_action_delayed_and_retry_until() {
    let env = to_bob(None, None);
    // A reply whose status is not 4.x.x is reported as 4.0.0.
    let report = build(ReportKind::Delay, &env, "451 5.7.1 try later", ORIGINAL).unwrap();
    let parts = parts(&report.body);
    assert!(parts[0].1.contains("could not be delivered for 1h"));
    assert!(parts[1].1.contains("\r\nAction: delayed\r\n"));
    assert!(parts[1].1.contains("\r\nStatus: 4.0.0\r\n"));
    assert!(parts[1]
        .1
        .contains("\r\nWill-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\r\n"));
    // Delay reports return only the headers unless RET=FULL.
    assert_eq!(parts[2].0, "text/rfc822-headers");
    let msg = MessageParser::default().parse(&report.body).unwrap();
    assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
}

#[test]
fn relayed_report_with_ret_full() {
    let env = to_bob(Some(Ret::Full), notify(false, true));
    let report = build(ReportKind::Relayed, &env, "250", ORIGINAL).unwrap();
    let parts = parts(&report.body);
    assert!(parts[1]
        .1
        .contains("\r\nAction: relayed\r\nStatus: 2.0.0\r\n"));
    assert_eq!(parts[2].0, "message/rfc822");
}

#[test]
fn odd_input_does_not_panic_and_stays_crlf() {
    let evil = rcpt("bob@example.test\r\nBcc: evil@x", None, None);
    let env = envelope("alice@origin.test", None, vec![evil]);
    let odd: [&[u8]; 4] = [b"", b"\r\n", b"no body", b"S: x\nbare\rlf\n\nbody\xff\n"];
    for original in odd {
        for kind in [ReportKind::Failure, ReportKind::Delay] {
            let report = build(kind, &env, "550 x bad\nthing\0\u{e9}", original).unwrap();
            assert!(!contains(&report.body, b"\r\nBcc: evil"));
            assert_eq!(parts(&report.body).len(), 3);
        }
    }
    let eight_bit = b"Subject: x\r\n\r\n\xe9t\xe9\r\n";
    let report = build(ReportKind::Failure, &env, "550", eight_bit).unwrap();
    assert_eq!(report.message.body_type, BodyType::EightBitMime);
    assert_eq!(header_section(b"A: b\r\n\r\nbody"), b"A: b\r\n");
    assert_eq!(header_section(b"A: b\r\n"), b"A: b\r\n");
    assert_eq!(header_section(b"\r\nbody"), b"");
}

#[test]
fn large_original_returns_headers_only() {
    let mut big = ORIGINAL.to_vec();
    big.resize(MAX_RETURNED_FULL + 1, b'x');
    let env = to_bob(None, None);
    let report = build(ReportKind::Failure, &env, "552 5.3.4 too big", &big).unwrap();
    assert_eq!(parts(&report.body)[2].0, "text/rfc822-headers");
    assert!(report.body.len() < 10_000);
}
