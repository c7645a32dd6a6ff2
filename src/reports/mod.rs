//! Delivery status notifications: the bounces, delay warnings and success
//! reports faxmta sends back to a message's sender.
//!
//! A report is an RFC 3464 `multipart/report; report-type=delivery-status`
//! message with three parts: a human explanation (in the style of Postfix),
//! the machine-readable `message/delivery-status` part and the original
//! message (whole as `message/rfc822`, or only its header section as
//! `text/rfc822-headers`, following RET= of RFC 3461). Which recipients are
//! reported follows their NOTIFY= parameter; status codes are RFC 3463.
//! Reports go to the sender from the null reverse path, so that a report is
//! never answered with another report. The scheduler enqueues the returned
//! [`Report`] like any other message.

use faxmta_queue::{
    BodyType, ClientInfo, Envelope, NewMessage, NewRecipient, Notify, Recipient, Reply, Ret,
};

mod parts;
use parts::*;

/// Largest original returned whole in a failure report when the sender did
/// not ask for RET=FULL; larger messages are returned as headers only.
pub const MAX_RETURNED_FULL: usize = 1_048_576;

/// Longest single field value we write (keeps lines well under 998 octets).
const MAX_VALUE: usize = 900;

/// What a report is about; one report covers recipients of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Delivery failed permanently (or the message expired).
    Failure,
    /// Delivery is delayed and still being retried.
    Delay,
    /// Delivered (NOTIFY=SUCCESS).
    Success,
    /// Relayed to a system that does not do DSN (NOTIFY=SUCCESS).
    Relayed,
}

impl ReportKind {
    /// The `Action:` value of RFC 3464 §2.3.3.
    pub fn action(self) -> &'static str {
        match self {
            ReportKind::Failure => "failed",
            ReportKind::Delay => "delayed",
            ReportKind::Success => "delivered",
            ReportKind::Relayed => "relayed",
        }
    }

    /// The report's subject line.
    pub fn subject(self) -> &'static str {
        match self {
            ReportKind::Failure => "Undelivered Mail Returned to Sender",
            ReportKind::Delay => "Delayed Mail (still being retried)",
            ReportKind::Success | ReportKind::Relayed => "Successful Mail Delivery Report",
        }
    }

    /// Whether a recipient with this NOTIFY wants a report of this kind.
    pub fn wanted(self, notify: Option<Notify>) -> bool {
        match self {
            ReportKind::Failure => Notify::wants_failure(notify),
            ReportKind::Delay => Notify::wants_delay(notify),
            ReportKind::Success | ReportKind::Relayed => Notify::wants_success(notify),
        }
    }
}

/// One recipient to report on, with the reply that decided its fate.
#[derive(Debug, Clone, Copy)]
pub struct ReportItem<'a> {
    pub recipient: &'a Recipient,
    pub reply: &'a Reply,
    /// Host name of the remote MTA the reply came from; `None` for local
    /// delivery.
    pub remote_mta: Option<&'a str>,
    /// Unix seconds until which delivery is retried (delay reports).
    pub will_retry_until: Option<u64>,
}

/// A report ready to be enqueued: its envelope and its octets.
#[derive(Debug, Clone)]
pub struct Report {
    pub message: NewMessage,
    pub body: Vec<u8>,
}

/// Build the report for `env` (the original message's envelope, `original`
/// its stored octets) about `items`, all of one kind. Returns `None` when no
/// report must be sent: null sender, or no item whose NOTIFY asks for this
/// kind (items not wanted are left out of the report).
pub fn build_report(
    kind: ReportKind,
    reporting_mta: &str,
    env: &Envelope,
    original: &[u8],
    items: &[ReportItem<'_>],
    now_unix: u64,
) -> Option<Report> {
    if env.null_sender() {
        return None;
    }
    let items: Vec<&ReportItem<'_>> = items
        .iter()
        .filter(|i| kind.wanted(i.recipient.notify))
        .collect();
    if items.is_empty() {
        return None;
    }
    let mta = Some(clean(reporting_mta)).filter(|m| !m.is_empty());
    let mta = mta.unwrap_or_else(|| "localhost".into());
    let sender = clean(&env.sender);

    let full = match env.ret {
        Some(Ret::Full) => true,
        Some(Ret::Hdrs) => false,
        None => kind == ReportKind::Failure && original.len() <= MAX_RETURNED_FULL,
    };
    let normalized = crlf_normalize(original);
    let returned: &[u8] = if full {
        &normalized
    } else {
        header_section(&normalized)
    };

    let notification = human_text(kind, &mta, env, &items, full, now_unix);
    let status = delivery_status(kind, &mta, env, &items);

    let boundary = loop {
        let b = format!("=_faxmta_{:032x}", rand::random::<u128>());
        let needle = b.as_bytes();
        if !contains(returned, needle)
            && !contains(notification.as_bytes(), needle)
            && !contains(status.as_bytes(), needle)
        {
            break b;
        }
    };

    let mut head = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>\n\
         To: <{sender}>\n\
         Subject: {subject}\n\
         Date: {date}\n\
         Message-ID: <{now_unix:x}.{id:016x}@{mta}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"{boundary}\"\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n",
        subject = kind.subject(),
        date = rfc2822(now_unix),
        id = rand::random::<u64>(),
    );
    let what = if kind == ReportKind::Failure {
        "Undelivered Message"
    } else {
        "Message"
    };
    let third = if full {
        ("message/rfc822", what.to_string(), returned)
    } else {
        ("text/rfc822-headers", format!("{what} Headers"), returned)
    };
    let parts: [(&str, String, &[u8]); 3] = [
        (
            "text/plain; charset=utf-8",
            "Notification".into(),
            notification.as_bytes(),
        ),
        (
            "message/delivery-status",
            "Delivery report".into(),
            status.as_bytes(),
        ),
        third,
    ];
    let mut body: Vec<u8> = Vec::with_capacity(returned.len() + 4096);
    for (ctype, description, content) in parts {
        let cte = if is_8bit(content) { "8bit" } else { "7bit" };
        head.push_str(&format!(
            "--{boundary}\n\
             Content-Description: {description}\n\
             Content-Type: {ctype}\n\
             Content-Transfer-Encoding: {cte}\n\n"
        ));
        body.extend_from_slice(crlf(&head).as_bytes());
        head.clear();
        body.extend_from_slice(content);
        // The CRLF before a delimiter belongs to the delimiter (RFC 2046).
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());

    let message = NewMessage {
        sender: String::new(),
        recipients: vec![NewRecipient::new(env.sender.clone())],
        client: ClientInfo {
            addr: "local".into(),
            helo: reporting_mta.into(),
            auth_user: None,
            protocol: "local".into(),
            // Made here: ours to sign.
            trusted: true,
        },
        body_type: if is_8bit(&body) {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        smtputf8: env.smtputf8,
        ..Default::default()
    };
    Some(Report { message, body })
}

/// The first part: what happened, for people. All values in it are
/// [`clean`]ed, so the only line breaks are the ones written here.
fn human_text(
    kind: ReportKind,
    mta: &str,
    env: &Envelope,
    items: &[&ReportItem<'_>],
    full: bool,
    now_unix: u64,
) -> String {
    let attached = if full {
        "It's attached below."
    } else {
        "Its headers are attached below."
    };
    let explanation = match kind {
        ReportKind::Failure => format!(
            "I'm sorry to have to inform you that your message could not\n\
             be delivered to one or more recipients. {attached}\n\
             \n\
             For further assistance, please send mail to postmaster.\n\
             \n\
             If you do so, please include this problem report. You can\n\
             delete your own text from the attached returned message.\n"
        ),
        ReportKind::Delay => {
            let age = faxmta_queue::format_duration(now_unix.saturating_sub(env.arrival));
            let until = match items.iter().filter_map(|i| i.will_retry_until).max() {
                Some(until) => format!("until {}", rfc2822(until)),
                None => "for some time".to_string(),
            };
            format!(
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\
                 \n\
                 Your message could not be delivered for {age}\n\
                 (it arrived {arrival}).\n\
                 It will be retried {until}.\n\
                 \n\
                 For further assistance, please send mail to postmaster.\n",
                arrival = rfc2822(env.arrival),
            )
        }
        ReportKind::Success => "Your message was successfully delivered to the destination(s)\n\
             listed below. If the message was delivered to mailbox you will\n\
             receive no further notifications. Otherwise you may still receive\n\
             notifications of mail delivery errors from other systems.\n"
            .to_string(),
        ReportKind::Relayed => "Your message was relayed to the destination(s) listed below,\n\
             which do not report delivery status. You may receive no further\n\
             notifications, or notifications of mail delivery errors from\n\
             other systems.\n"
            .to_string(),
    };
    let mut t = format!(
        "This is the mail system at host {mta}.\n\n{explanation}\n                   The mail system\n"
    );
    for item in items {
        let address = clean(&item.recipient.address);
        // "host X said: 550 … (in reply to RCPT TO command)" tells it all;
        // other replies get their code and status in front.
        let what = match remote_reply(item.reply) {
            Some(_) => clean(&item.reply.text),
            None => reply_text(item.reply),
        };
        t.push_str(&format!("\n<{address}>: {what}\n"));
        if let Some(host) = item.remote_mta {
            t.push_str(&format!("    (reply from host {})\n", clean(host)));
        }
    }
    crlf(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::RcptState;
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
            ret,
            envid: Some("QQ314159".into()),
            held: false,
            lifetime: None,
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
}
