//! `faxmta fax send` and `faxmta fax status`: faxing files from the
//! command line (through the queue, like any mail to a fax number) and
//! the state of faxes queued and finished, the way HylaFAX's `sendfax`
//! and `faxstat` do it.

use crate::admin::control::{Request, Response};
use crate::cli::queue::{ask, local_time};
use crate::config::{Config, DomainKind};
use faxmta_fax::live::LiveProgress;
use faxmta_fax::media::media_type;
use faxmta_queue::{format_duration, now_unix, Envelope, FaxRecord, NewMessage, RcptState};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `faxmta fax …`
#[derive(clap::Subcommand)]
pub enum FaxAction {
    /// Fax files to a number, through the queue (like mail to
    /// NUMBER@ the first fax domain).
    Send {
        /// The fax number (E.164 like +15551234567, or as the dial plan
        /// takes it).
        #[arg(long)]
        to: String,
        /// The sender: reports go there; must be a fax user [default:
        /// $USER@hostname].
        #[arg(long)]
        from: Option<String>,
        /// The subject (on the cover page) [default: the file names].
        #[arg(long)]
        subject: Option<String>,
        /// A text sent before the files.
        #[arg(long)]
        note: Option<String>,
        /// Files: PDF, PostScript, TIFF, PNG, JPEG, text.
        files: Vec<PathBuf>,
    },
    /// Faxes in the queue and finished ones (all, or one queue id).
    Status { id: Option<String> },
    /// Render a message (RFC 5322 file, "-" for standard input) to a
    /// TIFF-F file the way the fax transport would, without sending it.
    Render {
        message: PathBuf,
        /// The TIFF file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// The number on the cover page.
        #[arg(long, default_value = "")]
        number: String,
    },
    /// Internal: render one document for the server, within limits
    /// (started by the server itself; see docs/architecture.md).
    #[command(hide = true)]
    RenderWorker {
        /// Address space limit in bytes.
        #[arg(long)]
        memory: u64,
        /// CPU time limit in seconds.
        #[arg(long)]
        cpu: u64,
    },
    /// A simulated fax machine calls the running server (engine
    /// "simulated") and sends a TIFF-F file: received faxes for tests and
    /// demos.
    SimulateIncoming {
        /// The number dialled (DID/DNIS).
        #[arg(long)]
        did: Option<String>,
        /// The calling number (ANI / caller id).
        #[arg(long)]
        ani: Option<String>,
        /// The calling machine's station identity.
        #[arg(long, default_value = "")]
        tsi: String,
        /// The TIFF-F file the machine sends.
        file: PathBuf,
    },
}

/// Run `faxmta fax ACTION` on `config`.
pub fn run(config: &Config, action: FaxAction) -> ExitCode {
    match action {
        FaxAction::Send {
            to,
            from,
            subject,
            note,
            files,
        } => send(
            config,
            SendArgs {
                to,
                files,
                from,
                subject,
                note,
            },
        ),
        FaxAction::Status { id } => status(config, id),
        FaxAction::Render {
            message,
            out,
            number,
        } => render(config, &message, &out, &number),
        FaxAction::SimulateIncoming {
            did,
            ani,
            tsi,
            file,
        } => simulate_incoming(config, &file, tsi, did, ani),
        // Started before any configuration is read: see `render_worker`.
        FaxAction::RenderWorker { .. } => ExitCode::FAILURE,
    }
}

/// `faxmta fax render-worker`: set the limits first, then render the one
/// request on standard input (see faxmta_fax::worker).
pub fn render_worker(memory: u64, cpu: u64) -> ExitCode {
    use faxmta_fax::worker;
    if let Err(e) = worker::apply_limits(memory, cpu) {
        eprintln!("faxmta: render worker: cannot set its limits: {e}");
        return ExitCode::from(2);
    }
    ExitCode::from(u8::try_from(worker::serve()).unwrap_or(2))
}

/// What `faxmta fax send` was given.
pub struct SendArgs {
    pub to: String,
    pub files: Vec<PathBuf>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// Text for the cover page / a first text part.
    pub note: Option<String>,
}

/// The recipient address for a number: `NUMBER@` the first fax domain.
fn fax_address(config: &Config, number: &str) -> Result<String, String> {
    let number = number.trim();
    if number.is_empty() || number.contains('@') || number.chars().any(char::is_whitespace) {
        return Err(format!(
            "{number:?}: give the fax number alone (e.g. +15551234567)"
        ));
    }
    let domain = config
        .domains
        .iter()
        .find(|d| d.kind == DomainKind::Fax)
        .ok_or("no [[domain]] of kind = \"fax\" in the configuration")?;
    let address = format!("{number}@{}", domain.name.0);
    crate::server::path::check_address(&address, false)?;
    Ok(address)
}

/// Build the message: a text part (the note, if any) and the files.
fn build_message(args: &SendArgs, from: &str, to: &str) -> Result<String, String> {
    let mut builder = mail_builder::MessageBuilder::new()
        .from(from)
        .to(to)
        .subject(args.subject.clone().unwrap_or_else(|| {
            let names: Vec<String> = args
                .files
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.join(", ")
        }))
        .header(
            "X-Mailer",
            mail_builder::headers::raw::Raw::new("faxmta fax send"),
        );
    if let Some(note) = &args.note {
        builder = builder.text_body(note.clone());
    }
    for file in &args.files {
        let data =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "document".into());
        builder = builder.attachment(media_type(&name), name, data);
    }
    builder
        .write_to_string()
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn default_sender(config: &Config) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into());
    format!("{user}@{}", config.hostname)
}

/// `faxmta fax send`
pub fn send(config: &Config, args: SendArgs) -> ExitCode {
    let fail = |e: String| {
        eprintln!("faxmta: {e}");
        ExitCode::FAILURE
    };
    if args.files.is_empty() && args.note.is_none() {
        return fail("nothing to send: give files (or --note)".into());
    }
    let to = match fax_address(config, &args.to) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let from = args.from.clone().unwrap_or_else(|| default_sender(config));
    if let Err(e) = crate::server::path::check_address(&from, false) {
        return fail(format!("--from: {e}"));
    }
    if let Err(e) = crate::policy::fax::may_fax_address(
        &crate::router::Router::new(config),
        &crate::policy::fax::Asker::trusted(&from, None),
        &to,
    ) {
        return fail(e.to_string());
    }
    let body = match build_message(&args, &from, &to) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let message = NewMessage::local(
        &from,
        std::slice::from_ref(&to),
        &config.hostname,
        body.as_bytes(),
    );
    let request = Request::Submit {
        message: Box::new(message),
        body,
    };
    match ask(config, &request) {
        Response::Queued(id) => {
            println!("{id}: fax to {to} queued");
            ExitCode::SUCCESS
        }
        Response::Error(e) => fail(e),
        _ => fail("unexpected answer from the server".into()),
    }
}

/// `faxmta fax simulate-incoming`: a simulated fax machine calls the
/// running server's simulated engine and sends `file`.
pub fn simulate_incoming(
    config: &Config,
    file: &Path,
    tsi: String,
    did: Option<String>,
    ani: Option<String>,
) -> ExitCode {
    let fail = |e: String| {
        eprintln!("faxmta: {e}");
        ExitCode::FAILURE
    };
    // The server resolves paths from its own directory.
    let document = match std::fs::canonicalize(file) {
        Ok(p) => p,
        Err(e) => return fail(format!("{}: {e}", file.display())),
    };
    let request = Request::FaxSimulateIncoming {
        document,
        tsi,
        did,
        ani,
    };
    match ask(config, &request) {
        Response::FaxReceived {
            pages,
            failure: None,
        } => {
            println!("fax received: {pages} page(s)");
            ExitCode::SUCCESS
        }
        Response::FaxReceived {
            pages,
            failure: Some(reason),
        } => fail(format!("the call failed after {pages} page(s): {reason}")),
        Response::Error(e) => fail(e),
        _ => fail("unexpected answer from the server".into()),
    }
}

/// `faxmta fax render`: what the transport would send, as a file.
pub fn render(config: &Config, message: &Path, out: &Path, number: &str) -> ExitCode {
    use std::io::Read;
    let mut data = Vec::new();
    let read = if message == Path::new("-") {
        std::io::stdin().read_to_end(&mut data).map(|_| ())
    } else {
        std::fs::read(message).map(|d| data = d)
    };
    if let Err(e) = read {
        eprintln!("faxmta: cannot read {}: {e}", message.display());
        return ExitCode::FAILURE;
    }
    let started = std::time::Instant::now();
    let maker = faxmta_fax::document::DocumentMaker {
        options: crate::fax::render_options(config),
        compression: config.fax.compression,
    };
    let written = maker.pages(&data, number).and_then(|pages| {
        faxmta_fax::tiff::write_tiff_f_threads(
            out,
            &pages,
            config.fax.compression,
            &Default::default(),
            maker.options.threads,
        )
        .map(|_| pages.len())
        .map_err(|e| e.to_string())
    });
    match written {
        Ok(n) => {
            println!(
                "{}: {n} page(s) in {} ms",
                out.display(),
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line of `fax status`.
struct Row {
    id: String,
    when: u64,
    number: String,
    state: String,
    pages: String,
    calls: u32,
    sender: String,
    why: String,
}

fn queued_rows(config: &Config, list: &[Envelope], now: u64) -> Vec<Row> {
    let router = crate::router::Router::new(config);
    let mut rows = Vec::new();
    for env in list {
        for r in &env.recipients {
            let number = match (&r.fax, router.fax_number(&r.address)) {
                (Some(p), _) => p.number.clone(),
                (None, Some(n)) => n,
                (None, None) => continue,
            };
            let fax = r.fax.clone().unwrap_or_default();
            let state = match r.state {
                RcptState::Pending | RcptState::Deferred if env.held => "held".to_string(),
                RcptState::Pending if r.next_attempt <= now => "queued".to_string(),
                RcptState::Pending | RcptState::Deferred if r.next_attempt <= now => {
                    "due".to_string()
                }
                RcptState::Pending | RcptState::Deferred => format!(
                    "retry in {}",
                    format_duration(r.next_attempt.saturating_sub(now))
                ),
                RcptState::Delivered => "sent".into(),
                RcptState::Failed => "failed".into(),
            };
            rows.push(Row {
                id: env.id.clone(),
                when: env.arrival,
                number,
                state,
                pages: pages(&fax),
                calls: fax.calls,
                sender: env.sender.clone(),
                why: why(&fax, r.last_reply.as_ref().map(|r| r.text.as_str())),
            });
        }
    }
    rows
}

fn pages(fax: &faxmta_queue::FaxProgress) -> String {
    if fax.pages_total == 0 {
        "-".into()
    } else {
        format!("{}/{}", fax.pages_sent, fax.pages_total)
    }
}

fn why(fax: &faxmta_queue::FaxProgress, reply: Option<&str>) -> String {
    match (fax.last.as_str(), fax.reason.as_str()) {
        ("", _) => reply.unwrap_or("").to_string(),
        (last, "") => last.to_string(),
        (last, reason) => format!("{last}: {reason}"),
    }
}

fn finished_rows(list: &[FaxRecord]) -> Vec<Row> {
    list.iter()
        .map(|f| Row {
            id: f.id.clone(),
            when: f.finished,
            number: f.progress.number.clone(),
            state: f.outcome.clone(),
            pages: pages(&f.progress),
            calls: f.progress.calls,
            sender: f.sender.clone(),
            why: why(&f.progress, f.reply.as_ref().map(|r| r.text.as_str())),
        })
        .collect()
}

/// `faxmta fax status [ID]`: faxes in the queue, then the finished ones.
pub fn status(config: &Config, id: Option<String>) -> ExitCode {
    let now = now_unix();
    let queued = match ask(config, &Request::List) {
        Response::List(list) => queued_rows(config, &list, now),
        Response::Error(e) => {
            eprintln!("faxmta: {e}");
            return ExitCode::FAILURE;
        }
        _ => Vec::new(),
    };
    let finished = match ask(config, &Request::FaxHistory { limit: 1000 }) {
        Response::FaxHistory(list) => finished_rows(&list),
        _ => Vec::new(),
    };
    let live = match ask(config, &Request::FaxLive) {
        Response::FaxLive(list) => list,
        _ => Vec::new(),
    };
    let keep = |r: &Row| id.as_deref().is_none_or(|id| r.id == id);
    let queued: Vec<Row> = queued.into_iter().filter(keep).collect();
    let finished: Vec<Row> = finished.into_iter().filter(keep).collect();
    let live: Vec<LiveProgress> = live
        .into_iter()
        .filter(|p| {
            id.as_deref()
                .is_none_or(|id| p.job_id.split_once('/').is_some_and(|(q, _)| q == id))
        })
        .collect();
    if let Some(id) = &id {
        if queued.is_empty() && finished.is_empty() && live.is_empty() {
            eprintln!("faxmta: {id}: no fax with this queue id");
            return ExitCode::FAILURE;
        }
    }
    let table = |title: &str, rows: &[Row]| {
        println!("{title}");
        if rows.is_empty() {
            println!("  (none)");
            return;
        }
        println!(
            "  {:<14} {:<12} {:<16} {:<12} {:>5} {:>5}  {:<24} RESULT",
            "ID", "TIME", "NUMBER", "STATE", "PAGES", "CALLS", "SENDER"
        );
        for r in rows {
            println!(
                "  {:<14} {:<12} {:<16} {:<12} {:>5} {:>5}  {:<24} {}",
                r.id,
                local_time(r.when, "%b %e %H:%M"),
                r.number,
                r.state,
                r.pages,
                r.calls,
                r.sender,
                r.why
            );
        }
    };
    println!("Faxes on the line (and ended in the last minutes):");
    if live.is_empty() {
        println!("  (none)");
    } else {
        println!(
            "  {:<18} {:<9} {:<10} {:>4}  STATE",
            "JOB", "SINCE", "ENGINE", "CALL"
        );
        for p in &live {
            println!(
                "  {:<18} {:<9} {:<10} {:>4}  {}",
                p.job_id,
                local_time(p.since, "%H:%M:%S"),
                p.engine,
                p.attempt,
                p.describe()
            );
        }
    }
    table("Faxes in the queue:", &queued);
    table("Finished faxes:", &finished);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_get_their_media_types() {
        for (name, want) in [
            ("a.PDF", "application/pdf"),
            ("b.tif", "image/tiff"),
            ("c.jpeg", "image/jpeg"),
            ("d.txt", "text/plain"),
            ("e.docx", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ] {
            assert_eq!(media_type(name), want, "{name}");
        }
    }

    #[test]
    fn the_message_carries_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("report.pdf");
        let b = dir.path().join("notes.txt");
        std::fs::write(&a, b"%PDF-1.4 test").unwrap();
        std::fs::write(&b, b"hello fax").unwrap();
        let args = SendArgs {
            to: "+15551234567".into(),
            files: vec![a, b],
            from: None,
            subject: None,
            note: Some("Please call back".into()),
        };
        let text = build_message(&args, "alice@example.test", "+15551234567@fax.test").unwrap();
        let msg = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(msg.subject(), Some("report.pdf, notes.txt"));
        assert_eq!(msg.attachment_count(), 2);
        assert_eq!(msg.attachment(0).unwrap().contents(), b"%PDF-1.4 test");
        assert_eq!(msg.attachment(1).unwrap().contents(), b"hello fax");
        assert_eq!(msg.body_text(0).as_deref(), Some("Please call back"));
    }
}
