//! The pieces a report is made of: the `message/delivery-status` fields,
//! status codes, header-safe values and the handling of the original's
//! octets (CRLF, header section, 8-bit detection).

use super::{ReportItem, ReportKind, MAX_VALUE};
use chrono::{DateTime, Utc};
use faxmta_queue::{Envelope, FaxProgress, Reply};

/// The second part: `message/delivery-status` (RFC 3464 §2).
pub(super) fn delivery_status(
    kind: ReportKind,
    mta: &str,
    env: &Envelope,
    items: &[&ReportItem<'_>],
) -> String {
    let mut s = format!(
        "Reporting-MTA: dns; {mta}\nX-Faxmta-Queue-ID: {}\n",
        clean(&env.id)
    );
    if let Some(envid) = &env.envid {
        s.push_str(&format!("Original-Envelope-Id: {}\n", clean(envid)));
    }
    s.push_str(&format!("Arrival-Date: {}\n", rfc2822(env.arrival)));
    for item in items {
        let r = item.recipient;
        s.push('\n');
        if let Some(orcpt) = &r.orcpt {
            s.push_str(&format!("Original-Recipient: {}\n", clean(orcpt)));
        }
        s.push_str(&format!(
            "Final-Recipient: rfc822; {}\nAction: {}\nStatus: {}\n",
            clean(&r.address),
            kind.action(),
            report_status(kind, &item.reply.status)
        ));
        if let Some(fax) = &r.fax {
            // A fax recipient: what the line did, in extension fields
            // (RFC 3464 §3: X- names), the reason as an X-Fax diagnostic.
            s.push_str(&format!(
                "Diagnostic-Code: X-Fax; {}\n{}",
                reply_text(item.reply),
                fax_fields(fax)
            ));
        } else {
            if let Some(host) = item.remote_mta {
                s.push_str(&format!("Remote-MTA: dns; {}\n", clean(host)));
            }
            // The remote server's reply as received (RFC 3464 §2.3.6), not
            // our account of it; our own replies as they are.
            let diagnostic = match remote_reply(item.reply) {
                Some(remote) => clean(remote),
                None => reply_text(item.reply),
            };
            s.push_str(&format!("Diagnostic-Code: smtp; {diagnostic}\n"));
        }
        if r.last_attempt > 0 {
            s.push_str(&format!("Last-Attempt-Date: {}\n", rfc2822(r.last_attempt)));
        }
        if let (ReportKind::Delay, Some(until)) = (kind, item.will_retry_until) {
            s.push_str(&format!("Will-Retry-Until: {}\n", rfc2822(until)));
        }
    }
    crlf(&s)
}

/// The fax extension fields of one recipient's status block.
fn fax_fields(fax: &FaxProgress) -> String {
    let mut s = format!(
        "X-Fax-Number: {}\nX-Fax-Result: {}\nX-Fax-Pages: {} of {}\nX-Fax-Calls: {}\n\
         X-Fax-Duration: {}\n",
        clean(&fax.number),
        clean(&fax.last),
        fax.pages_sent,
        fax.pages_total,
        fax.calls,
        fax.line_ms.div_ceil(1000),
    );
    if let Some(csid) = &fax.remote_csid {
        s.push_str(&format!("X-Fax-Remote-CSID: {}\n", clean(csid)));
    }
    if fax.bit_rate > 0 {
        s.push_str(&format!("X-Fax-Bit-Rate: {}\n", fax.bit_rate));
    }
    s
}

/// The `Status:` to report: the reply's enhanced status code when it is
/// well-formed (RFC 3463) and of the class this kind of report requires,
/// else the class's generic code.
pub(super) fn report_status(kind: ReportKind, status: &str) -> String {
    let (class, default) = match kind {
        ReportKind::Failure => ("5", "5.0.0"),
        ReportKind::Delay => ("4", "4.0.0"),
        ReportKind::Success | ReportKind::Relayed => ("2", "2.0.0"),
    };
    let status = status.trim();
    let fields: Vec<&str> = status.split('.').collect();
    let well_formed = fields.len() == 3
        && fields[0] == class
        && fields[1..]
            .iter()
            .all(|f| (1..=3).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        status.to_string()
    } else {
        default.to_string()
    }
}

/// `550 5.1.1 user unknown`, on one line, without empty pieces.
pub(super) fn reply_text(reply: &Reply) -> String {
    let mut out = reply.code.to_string();
    for piece in [clean(&reply.status), clean(&reply.text)] {
        if !piece.is_empty() {
            out.push(' ');
            out.push_str(&piece);
        }
    }
    out
}

/// The remote server's own reply inside one the SMTP transport wrapped as
/// `host NAME[ADDR] said: REPLY (in reply to COMMAND)`; `None` for any
/// other reply.
pub(super) fn remote_reply(reply: &Reply) -> Option<&str> {
    let (_, said) = reply.text.strip_prefix("host ")?.split_once(" said: ")?;
    let end = said.rfind(" (in reply to ")?;
    if !said.ends_with(')') {
        return None;
    }
    let remote = said[..end].trim();
    let code = remote.get(..3)?;
    code.bytes().all(|b| b.is_ascii_digit()).then_some(remote)
}

/// A value fit for one header or field line: control characters (CR and LF
/// above all, so nothing can inject lines) become spaces, surrounding white
/// space goes, and very long values are cut at a character boundary.
pub(super) fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string();
    if out.len() > MAX_VALUE {
        let mut cut = MAX_VALUE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// LF line ends to CRLF, for text built here (never containing CR).
pub(super) fn crlf(s: &str) -> String {
    s.replace('\n', "\r\n")
}

/// RFC 5322 date of a Unix time (the epoch if out of range).
pub(super) fn rfc2822(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .unwrap_or_default()
        .to_rfc2822()
}

/// The octets with every bare LF and bare CR turned into CRLF.
pub(super) fn crlf_normalise(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64);
    for (i, &b) in data.iter().enumerate() {
        match b {
            // A CR followed by LF: the LF writes the pair.
            b'\r' if data.get(i + 1) == Some(&b'\n') => {}
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    out
}

/// The header section of a CRLF message: everything up to (and including the
/// CRLF ending) the last header line before the first empty line; the whole
/// message when it has no body.
pub(super) fn header_section(msg: &[u8]) -> &[u8] {
    if msg.starts_with(b"\r\n") {
        return &[];
    }
    match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(pos) => &msg[..pos + 2],
        None => msg,
    }
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn is_8bit(data: &[u8]) -> bool {
    data.iter().any(|&b| b >= 0x80)
}
