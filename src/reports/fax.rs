//! Fax reports: what the fax servers' "Notification Outgoing Success /
//! Failed" mails tell the sender — number, pages sent of total, time on
//! the line, the remote station, calls made, the reason on failure, and
//! optionally the first page as a picture — as an RFC 3464 report, so
//! programs read the same outcome from the `X-Fax-*` fields of the
//! `message/delivery-status` part.

use super::parts::*;
use super::{assemble, Assembly, Report, ReportItem, ReportKind, MAX_RETURNED_FULL};
use faxmta_queue::{format_duration, Envelope, Ret};

/// Build a fax report of `kind` (Failure or Success) about `items`, fax
/// recipients of `env`. `always`: report even when the recipient's NOTIFY
/// did not ask for this kind (`[fax] success_report`); NOTIFY=NEVER and
/// the null sender still get none. `first_page`: a PNG of the first page.
#[allow(clippy::too_many_arguments)]
pub fn build_fax_report(
    kind: ReportKind,
    reporting_mta: &str,
    env: &Envelope,
    original: &[u8],
    items: &[ReportItem<'_>],
    first_page: Option<Vec<u8>>,
    always: bool,
    now_unix: u64,
) -> Option<Report> {
    if env.null_sender() {
        return None;
    }
    let items: Vec<&ReportItem<'_>> = items
        .iter()
        .filter(|i| {
            let never = i.recipient.notify.is_some_and(|n| n.never);
            kind.wanted(i.recipient.notify) || (always && !never)
        })
        .collect();
    let first = items.first()?;
    let mta = Some(clean(reporting_mta)).filter(|m| !m.is_empty());
    let mta = mta.unwrap_or_else(|| "localhost".into());
    let full = match env.ret {
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

    let number = |i: &ReportItem<'_>| {
        i.recipient
            .fax
            .as_ref()
            .map_or_else(|| i.recipient.address.clone(), |f| f.number.clone())
    };
    let more = match items.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let subject = match kind {
        ReportKind::Success => format!("Fax to {}{more} sent", number(first)),
        _ => format!("Fax to {}{more} failed", number(first)),
    };
    let notification = human_text(kind, &mta, env, &normalised, &items, now_unix);
    let status = delivery_status(kind, &mta, env, &items);
    let images: Vec<(String, Vec<u8>)> = first_page
        .map(|png| ("page-1.png".to_string(), png))
        .into_iter()
        .collect();
    Some(assemble(Assembly {
        kind,
        reporting_mta,
        mta: &mta,
        env,
        subject: &subject,
        notification: &notification,
        status: &status,
        images: &images,
        returned,
        full,
        now_unix,
    }))
}

/// The first part, for people: one block of facts per fax.
fn human_text(
    kind: ReportKind,
    mta: &str,
    env: &Envelope,
    original: &[u8],
    items: &[&ReportItem<'_>],
    now_unix: u64,
) -> String {
    let subject = mail_parser::MessageParser::default()
        .parse_headers(original)
        .and_then(|m| m.subject().map(clean))
        .unwrap_or_default();
    let mut t = format!("This is the fax service at host {mta}.\n\n");
    t.push_str(match kind {
        ReportKind::Success => "Your fax was sent.\n",
        _ => "I'm sorry: your fax could not be sent.\n",
    });
    for item in items {
        let r = item.recipient;
        let fax = r.fax.clone().unwrap_or_default();
        let number = if fax.number.is_empty() {
            clean(&r.address)
        } else {
            clean(&fax.number)
        };
        let mut facts: Vec<(&str, String)> = vec![
            ("Fax number", format!("{number} <{}>", clean(&r.address))),
            ("Subject", subject.clone()),
            ("Submitted", rfc2822(env.arrival)),
        ];
        if fax.pages_total > 0 {
            facts.push((
                "Pages sent",
                format!("{} of {}", fax.pages_sent, fax.pages_total),
            ));
        }
        if fax.line_ms > 0 {
            facts.push(("Time on line", format_duration(fax.line_ms.div_ceil(1000))));
        }
        if let Some(csid) = &fax.remote_csid {
            facts.push(("Remote station", clean(csid)));
        }
        if fax.bit_rate > 0 {
            facts.push(("Speed", format!("{} bit/s", fax.bit_rate)));
        }
        facts.push(("Calls", fax.calls.to_string()));
        let result = match kind {
            ReportKind::Success => "sent".to_string(),
            _ => reply_text(item.reply),
        };
        facts.push(("Result", result));
        facts.push(("Queue ID", clean(&env.id)));
        t.push('\n');
        for (name, value) in facts {
            if !value.is_empty() {
                t.push_str(&format!("    {:<16}{value}\n", format!("{name}:")));
            }
        }
    }
    if kind == ReportKind::Failure {
        t.push_str(
            "\nThe message you sent is attached. For help, please write to\n\
             postmaster and include this report.\n",
        );
    }
    t.push_str(&format!("\nReport made {}.\n", rfc2822(now_unix)));
    crlf(&t)
}
