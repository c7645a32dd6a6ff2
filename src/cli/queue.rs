//! `faxmta queue …`: the administrator's view of the queue, printed the way
//! `mailq` prints it, through the running server's control socket or, when
//! no server runs, straight from the queue.

use crate::admin::control::{self, Request, Response};
use crate::config::Config;
use chrono::TimeZone;
use clap::Subcommand;
use faxmta_queue::{now_unix, Envelope, RcptState};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum QueueAction {
    /// List queued messages (like mailq).
    List {
        /// Print JSON instead of the mailq layout.
        #[arg(long)]
        json: bool,
    },
    /// How many messages are due now, waiting for a later attempt, and
    /// held (by the administrator or for ETRN), without listing them.
    Summary,
    /// Show one message: its envelope and content.
    Show { id: String },
    /// Delete one message, or every message with --all.
    Delete {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Hold a message: it stays queued but is not delivered.
    Hold { id: String },
    /// Release a held message for delivery now.
    Release { id: String },
    /// Try deferred mail now: one message, all, or (--domain) every
    /// recipient in one domain (held messages excepted).
    Flush {
        #[arg(conflicts_with = "domain")]
        id: Option<String>,
        /// Only the recipients in this domain (not its subdomains), in
        /// every message that is not held: e.g. once a backup MX domain's
        /// primary is back; an ETRN domain's held mail is released.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Create or migrate the queue's database schema (`[queue] backend =
    /// "postgres"`; the server also does so when it starts). Prints each
    /// migration and whether it was applied now.
    Migrate,
}

pub fn queue(config: &Config, action: QueueAction) -> ExitCode {
    let (request, json) = match action {
        QueueAction::List { json } => return list(config, json),
        QueueAction::Migrate => return migrate(config),
        QueueAction::Summary => (Request::Summary, false),
        QueueAction::Show { id } => (Request::Show { id }, false),
        QueueAction::Delete { all: true, .. } => (Request::DeleteAll, false),
        QueueAction::Delete { id, .. } => (
            Request::Delete {
                id: id.unwrap_or_default(),
            },
            false,
        ),
        QueueAction::Hold { id } => (Request::Hold { id }, false),
        QueueAction::Release { id } => (Request::Release { id }, false),
        QueueAction::Flush { id, domain } => (Request::Flush { id, domain }, false),
    };
    match ask(config, &request) {
        Response::Error(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
        Response::List(list) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Response::List(list) => {
            print!("{}", mailq(&list, now_unix()));
            ExitCode::SUCCESS
        }
        Response::Show { envelope, message } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&envelope).unwrap_or_default()
            );
            println!("--- message ---");
            print!("{message}");
            ExitCode::SUCCESS
        }
        Response::Queued(id) => {
            println!("queued as {id}");
            ExitCode::SUCCESS
        }
        Response::FaxHistory(list) => {
            println!("{} fax(es)", list.len());
            ExitCode::SUCCESS
        }
        Response::FaxLive(list) => {
            println!("{} fax(es) in flight", list.len());
            ExitCode::SUCCESS
        }
        Response::FaxReceived { pages, .. } => {
            println!("{pages} page(s) received");
            ExitCode::SUCCESS
        }
        Response::Reloaded { .. } => {
            eprintln!("faxmta: unexpected answer from the server");
            ExitCode::FAILURE
        }
        Response::Summary(c) => {
            println!(
                "{} message(s): {} due now, {} waiting for a later attempt, {} held",
                c.due + c.waiting + c.held,
                c.due,
                c.waiting,
                c.held
            );
            ExitCode::SUCCESS
        }
        Response::Count(n) => {
            let what = match request {
                Request::Delete { .. } | Request::DeleteAll => "deleted",
                Request::Hold { .. } => "placed on hold",
                Request::Release { .. } => "released",
                Request::Flush { .. } => "scheduled for delivery now",
                _ => "done",
            };
            println!("{n} message(s) {what}");
            ExitCode::SUCCESS
        }
    }
}

/// `faxmta queue migrate`: the schema of the queue's database, made
/// current.
fn migrate(config: &Config) -> ExitCode {
    if config.queue.backend == crate::config::QueueBackend::Sled {
        println!("the sled queue has no schema to migrate");
        return ExitCode::SUCCESS;
    }
    let settings = match crate::queue::pg_settings(config, crate::queue::Opener::Cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::FAILURE;
        }
    };
    match faxmta_queue::postgres::migrate_database(&settings) {
        Ok(migrations) => {
            for (version, name, now) in migrations {
                let state = if now { "applied now" } else { "present" };
                println!("{version:>4}  {state:<11}  {name}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faxmta: {e} (queue database {})", settings.display());
            ExitCode::FAILURE
        }
    }
}

/// `faxmta queue list [--json]`: streamed from the running server (or
/// read from the queue when none runs) and printed as it comes, so a
/// queue of a million messages is never held in memory at once.
fn list(config: &Config, json: bool) -> ExitCode {
    match control::list(&config.control.socket) {
        Ok(Some(reader)) => print_list(reader, json),
        Ok(None) => match crate::queue::open(config, crate::queue::Opener::Cli) {
            Ok(store) => print_list(
                store.envelopes().map(|e| e.map_err(|e| e.to_string())),
                json,
            ),
            Err(e) => {
                eprintln!(
                    "faxmta: {e} (is a server running whose control socket {} does not answer?)",
                    config.control.socket.display()
                );
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Print the listing as it comes.
fn print_list(envelopes: impl Iterator<Item = Result<Envelope, String>>, json: bool) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut failure = None;
    let written = if json {
        write_json(&mut out, envelopes, &mut failure)
    } else {
        write_mailq(&mut out, envelopes, now_unix(), &mut failure)
    };
    let written = written.and_then(|_| std::io::Write::flush(&mut out));
    match (failure, written) {
        (Some(e), _) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
        // A closed pipe (`queue list | head`) is not worth a message.
        (None, Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        (None, Err(e)) => {
            eprintln!("faxmta: cannot write the listing: {e}");
            ExitCode::FAILURE
        }
        (None, Ok(())) => ExitCode::SUCCESS,
    }
}

/// The envelopes until the first error, which is kept in `failure`.
fn until_error<'a>(
    envelopes: impl Iterator<Item = Result<Envelope, String>> + 'a,
    failure: &'a mut Option<String>,
) -> impl Iterator<Item = Envelope> + 'a {
    envelopes.map_while(move |e| match e {
        Ok(env) => Some(env),
        Err(e) => {
            *failure = Some(e);
            None
        }
    })
}

/// The listing as a pretty JSON array (what `serde_json::to_string_pretty`
/// of the whole list gives, written one envelope at a time).
fn write_json(
    out: &mut impl std::io::Write,
    envelopes: impl Iterator<Item = Result<Envelope, String>>,
    failure: &mut Option<String>,
) -> std::io::Result<()> {
    use serde::Serializer;
    let mut ser = serde_json::Serializer::pretty(&mut *out);
    ser.collect_seq(until_error(envelopes, failure))
        .map_err(std::io::Error::other)?;
    writeln!(out)
}

/// The listing in the mailq layout, written one message at a time.
fn write_mailq(
    out: &mut impl std::io::Write,
    envelopes: impl Iterator<Item = Result<Envelope, String>>,
    now: u64,
    failure: &mut Option<String>,
) -> std::io::Result<()> {
    let (mut count, mut total) = (0usize, 0u64);
    let mut block = String::new();
    for env in until_error(envelopes, failure) {
        if count == 0 {
            out.write_all(MAILQ_HEADER.as_bytes())?;
        }
        count += 1;
        total += env.size;
        block.clear();
        mailq_entry(&mut block, &env, now);
        out.write_all(block.as_bytes())?;
    }
    out.write_all(mailq_footer(count, total).as_bytes())
}

const MAILQ_HEADER: &str =
    "-Queue ID-      --Size-- ----Arrival Time---- -Sender/Recipient-------\n";

fn mailq_footer(count: usize, total: u64) -> String {
    if count == 0 {
        return "Mail queue is empty\n".into();
    }
    format!(
        "-- {} Kbytes in {} Request{}.\n",
        total.div_ceil(1024),
        count,
        if count == 1 { "" } else { "s" }
    )
}

/// Carry out a request: through the running server's control socket, or
/// on the queue itself when no server runs.
pub fn ask(config: &Config, request: &Request) -> Response {
    match control::call(&config.control.socket, request) {
        Ok(Some(r)) => r,
        Ok(None) => match crate::queue::open(config, crate::queue::Opener::Cli) {
            Ok(store) => control::execute(&store, request),
            Err(e) => Response::Error(format!(
                "{e} (is a server running whose control socket {} does not answer?)",
                config.control.socket.display()
            )),
        },
        Err(e) => Response::Error(e),
    }
}

pub fn local_time(unix: u64, format: &str) -> String {
    chrono::Local
        .timestamp_opt(unix as i64, 0)
        .single()
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// The mailq layout: one block per message, `!` after the id of a held
/// message, each recipient with its state, last reply and next attempt.
pub fn mailq(list: &[Envelope], now: u64) -> String {
    if list.is_empty() {
        return mailq_footer(0, 0);
    }
    let mut out = String::from(MAILQ_HEADER);
    for env in list {
        mailq_entry(&mut out, env, now);
    }
    out.push_str(&mailq_footer(list.len(), list.iter().map(|e| e.size).sum()));
    out
}

/// One message's block of the mailq layout.
fn mailq_entry(out: &mut String, env: &Envelope, now: u64) {
    {
        let mark = if env.held { "!" } else { " " };
        let sender = if env.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &env.sender
        };
        out.push_str(&format!(
            "{:<15}{mark}{:>8} {:<20} {sender}\n",
            env.id,
            env.size,
            local_time(env.arrival, "%a %b %e %H:%M:%S")
        ));
        for r in &env.recipients {
            if let Some(reply) = &r.last_reply {
                if r.state.is_active() {
                    out.push_str(&format!("{:46}({reply})\n", ""));
                }
            }
            let when = match r.state {
                RcptState::Pending | RcptState::Deferred if env.held => "held".to_string(),
                _ if r.etrn_held() && r.next_attempt > now => format!(
                    "held for ETRN, expires {}",
                    local_time(r.next_attempt, "%a %b %e %H:%M")
                ),
                _ if r.etrn_held() => "held for ETRN".to_string(),
                RcptState::Pending | RcptState::Deferred if r.next_attempt <= now => {
                    "due now".to_string()
                }
                RcptState::Pending | RcptState::Deferred => {
                    format!("next attempt {}", local_time(r.next_attempt, "%H:%M:%S"))
                }
                _ => String::new(),
            };
            let attempts = if r.attempts > 0 {
                format!(", {} attempt(s)", r.attempts)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:46}{}  [{}{attempts}{}{when}]\n",
                "",
                r.address,
                r.state,
                if when.is_empty() { "" } else { ", " }
            ));
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_queue::{ClientInfo, Recipient, Reply};

    #[test]
    fn mailq_layout() {
        let rcpt = |address: &str, state, reply: Option<Reply>| Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            state,
            attempts: u32::from(reply.is_some()),
            next_attempt: 2000,
            last_attempt: 0,
            last_reply: reply,
            relay: None,
            delay_warned: false,
            lifetime: None,
            etrn: None,
            fax: None,
            report_pending: false,
        };
        let env = Envelope {
            id: "6740A1B200001".into(),
            sender: "".into(),
            arrival: 1000,
            size: 2048,
            client: ClientInfo::default(),
            body_type: Default::default(),
            smtputf8: false,
            requiretls: false,
            ret: None,
            envid: None,
            held: true,
            lifetime: None,
            head: String::new(),
            recipients: vec![
                rcpt(
                    "a@example.test",
                    RcptState::Deferred,
                    Some(Reply::new(451, "4.3.0", "disk trouble")),
                ),
                rcpt("b@example.test", RcptState::Delivered, None),
            ],
        };
        let text = mailq(std::slice::from_ref(&env), 1500);
        assert!(text.contains("6740A1B200001  !    2048"), "{text}");
        assert!(text.contains("MAILER-DAEMON"), "{text}");
        assert!(text.contains("(451 4.3.0 disk trouble)"), "{text}");
        assert!(
            text.contains("a@example.test  [deferred, 1 attempt(s), held]"),
            "{text}"
        );
        assert!(text.contains("b@example.test  [delivered]"), "{text}");
        let mut waiting = env.clone();
        waiting.held = false;
        waiting.recipients[0].etrn = Some(faxmta_queue::Etrn::Held);
        let text = mailq(&[waiting], 1500);
        assert!(
            text.contains("a@example.test  [deferred, 1 attempt(s), held for ETRN, expires "),
            "{text}"
        );
        assert!(text.ends_with("-- 2 Kbytes in 1 Request.\n"), "{text}");
        assert_eq!(mailq(&[], 0), "Mail queue is empty\n");
    }

    #[test]
    fn streamed_listings_read_like_the_whole_ones() {
        let env = |id: &str, held: bool| Envelope {
            id: id.into(),
            sender: "s@example.test".into(),
            arrival: 1000,
            size: 1500,
            client: ClientInfo::default(),
            body_type: Default::default(),
            smtputf8: false,
            requiretls: false,
            ret: None,
            envid: None,
            held,
            lifetime: None,
            head: String::new(),
            recipients: vec![],
        };
        let list = [env("A1", false), env("A2", true)];
        for n in 0..=2 {
            let part = &list[..n];
            let stream = || part.iter().cloned().map(Ok::<_, String>);
            let (mut text, mut json, mut failure) = (Vec::new(), Vec::new(), None);
            write_mailq(&mut text, stream(), 1500, &mut failure).unwrap();
            assert_eq!(String::from_utf8(text).unwrap(), mailq(part, 1500));
            write_json(&mut json, stream(), &mut failure).unwrap();
            let whole = serde_json::to_string_pretty(part).unwrap() + "\n";
            assert_eq!(String::from_utf8(json).unwrap(), whole);
            assert!(failure.is_none());
        }
        // An error cuts the listing and is reported.
        let broken = [Ok(list[0].clone()), Err("cut".to_string())];
        let mut failure = None;
        write_mailq(&mut Vec::new(), broken.into_iter(), 0, &mut failure).unwrap();
        assert_eq!(failure.as_deref(), Some("cut"));
    }
}
