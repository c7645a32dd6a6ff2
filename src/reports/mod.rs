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

use faxmta_queue::{Envelope, NewMessage, Notify, Recipient, Reply, Ret};

mod fax;
mod parts;
pub mod tls;
pub use fax::build_fax_report;
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

    // A REQUIRETLS message's content must not travel in a report that
    // is itself not sent under REQUIRETLS (RFC 8689 §5): headers only.
    let full = !env.requiretls
        && match env.ret {
            Some(Ret::Full) => true,
            Some(Ret::Hdrs) => false,
            None => kind == ReportKind::Failure && original.len() <= MAX_RETURNED_FULL,
        };
    let normalised = crlf_normalise(original);
    let returned: &[u8] = if full {
        &normalised
    } else {
        header_section(&normalised)
    };

    let notification = human_text(kind, &mta, env, &items, full, now_unix);
    let status = delivery_status(kind, &mta, env, &items);
    Some(assemble(Assembly {
        kind,
        reporting_mta,
        mta: &mta,
        env,
        subject: kind.subject(),
        notification: &notification,
        status: &status,
        images: &[],
        returned,
        full,
        now_unix,
    }))
}

/// The makings of a report, for [`assemble`].
struct Assembly<'a> {
    kind: ReportKind,
    reporting_mta: &'a str,
    /// `reporting_mta` as written in the report.
    mta: &'a str,
    env: &'a Envelope,
    subject: &'a str,
    /// The first part, for people (CRLF text).
    notification: &'a str,
    /// The `message/delivery-status` part (CRLF text).
    status: &'a str,
    /// Pictures after the status part: (file name, PNG octets).
    images: &'a [(String, Vec<u8>)],
    /// The original message, or its header section.
    returned: &'a [u8],
    /// `returned` is the whole message.
    full: bool,
    now_unix: u64,
}

/// Put a report together: the header, the notification, the delivery
/// status, any pictures, and the original; addressed to the sender from
/// the null reverse path.
fn assemble(a: Assembly<'_>) -> Report {
    let sender = clean(&a.env.sender);
    let mta = a.mta;
    let boundary = loop {
        let b = format!("=_faxmta_{:032x}", rand::random::<u128>());
        let needle = b.as_bytes();
        if !contains(a.returned, needle)
            && !contains(a.notification.as_bytes(), needle)
            && !contains(a.status.as_bytes(), needle)
        {
            break b;
        }
    };

    let mut head = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>\n\
         To: <{sender}>\n\
         Subject: {subject}\n\
         Date: {date}\n\
         Message-ID: <{now:x}.{id:016x}@{mta}>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"{boundary}\"\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n",
        subject = clean(a.subject),
        date = rfc2822(a.now_unix),
        now = a.now_unix,
        id = rand::random::<u64>(),
    );
    let what = if a.kind == ReportKind::Failure {
        "Undelivered Message"
    } else {
        "Message"
    };
    let third = if a.full {
        ("message/rfc822".to_string(), what.to_string(), a.returned)
    } else {
        (
            "text/rfc822-headers".to_string(),
            format!("{what} Headers"),
            a.returned,
        )
    };
    let mut parts: Vec<(String, String, &[u8])> = vec![
        (
            "text/plain; charset=utf-8".into(),
            "Notification".into(),
            a.notification.as_bytes(),
        ),
        (
            "message/delivery-status".into(),
            "Delivery report".into(),
            a.status.as_bytes(),
        ),
    ];
    let encoded: Vec<(String, Vec<u8>)> = a
        .images
        .iter()
        .map(|(name, png)| (clean(name).replace('"', ""), base64_lines(png)))
        .collect();
    for (name, data) in &encoded {
        parts.push((
            format!("image/png; name=\"{name}\""),
            format!("{name}\nContent-Disposition: inline; filename=\"{name}\""),
            data,
        ));
    }
    parts.push(third);
    let mut body: Vec<u8> = Vec::with_capacity(a.returned.len() + 4096);
    for (ctype, description, content) in parts {
        let cte = if ctype.starts_with("image/") {
            "base64"
        } else if is_8bit(content) {
            "8bit"
        } else {
            "7bit"
        };
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
        smtputf8: a.env.smtputf8,
        ..NewMessage::local(
            "",
            std::slice::from_ref(&a.env.sender),
            a.reporting_mta,
            &body,
        )
    };
    Report { message, body }
}

/// Base64 in CRLF lines of 76 characters (RFC 2045), the last one without
/// its line end.
fn base64_lines(data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38);
    for (i, chunk) in text.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    out
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
mod tests;
