//! The fax transport: a queued message for a fax number becomes a TIFF-F
//! document, goes out through the engine, and what the line did becomes
//! the recipient's outcome — with the fax's own retry rules (a busy line is
//! tried again at `[fax] retry_interval`, `retries` times; a call that broke
//! off resends the missing pages or all of them).
//!
//! Like every transport it never touches the queue: the recipient's
//! [`FaxProgress`] comes in with the job and goes back in the outcome,
//! and so does the document of each call (the scheduler keeps it).

use super::engine::{FaxEngine, SendRequest, SendResult};
use crate::live::{LiveBoard, LiveProgress, LiveState, ProgressSink};
use faxmta_queue::{Envelope, FaxProgress, Reply};
use faxmta_transport::{
    FaxDocument, FaxHop, Job, JobRecipient, NextHop, Outcome, Status, Transport,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes the document of a fax: the message's pages (cover included) as a
/// TIFF Class F file at `path`.
pub trait Renderer: Send + Sync {
    /// The number of pages written, or why not.
    fn render(
        &self,
        message: &[u8],
        envelope: &Envelope,
        hop: &FaxHop,
        path: &Path,
    ) -> Result<u32, RenderFailure>;
}

/// Why a document was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    /// The message cannot become a fax (an unsupported or broken
    /// attachment, too many pages …): a permanent failure, reported.
    Message(String),
    /// Trouble here (the spool cannot be written, the renderer failed):
    /// tried again later, like any temporary failure.
    Local(String),
    /// The render worker died on the message without a verdict (a signal
    /// that is not one of its limits): tried again later, counted, and the
    /// message quarantined after [`FaxSettings::render_crash_limit`].
    Crashed(String),
}

/// What the transport tells the metrics.
pub trait FaxObserver: Send + Sync {
    /// A document was rendered: its pages and the time it took.
    fn rendered(&self, pages: u32, elapsed: Duration);
    /// A call ended with `result` (`sent`, `busy`, `no-answer`,
    /// `no-fax-tone`, `partial`, `error`) after `line` on the line.
    fn call(&self, result: &str, pages: u32, line: Duration);
}

/// After a call broke off: resend what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resend {
    /// From the first page the remote did not confirm.
    #[default]
    Missing,
    /// Every page.
    All,
}

/// The transport's settings, from `[fax]`.
#[derive(Debug, Clone)]
pub struct FaxSettings {
    /// Our station identity (TSI).
    pub tsi: String,
    /// The header line on each page, if any.
    pub header: Option<String>,
    /// Tries after the first when the line is busy, unanswered or no fax
    /// machine answers.
    pub retries: u32,
    /// Time between those tries.
    pub retry_interval: Duration,
    pub resend: Resend,
    /// Where documents wait for the line.
    pub spool: PathBuf,
    /// Where the documents of faxes sent are kept (`ID-N.tif`), if
    /// anywhere; else they are deleted.
    pub archive: Option<PathBuf>,
    /// Render crashes ([`RenderFailure::Crashed`]) of one recipient
    /// before its message is quarantined (held); at least 1.
    pub render_crash_limit: u32,
}

/// The fax transport.
pub struct FaxTransport {
    engine: Arc<dyn FaxEngine>,
    renderer: Arc<dyn Renderer>,
    observer: Option<Arc<dyn FaxObserver>>,
    settings: FaxSettings,
    /// Where each attempt shows what it is doing, if anywhere.
    live: Option<LiveBoard>,
}

impl FaxTransport {
    pub fn new(
        engine: Arc<dyn FaxEngine>,
        renderer: Arc<dyn Renderer>,
        observer: Option<Arc<dyn FaxObserver>>,
        settings: FaxSettings,
    ) -> Self {
        FaxTransport {
            engine,
            renderer,
            observer,
            settings,
            live: None,
        }
    }

    /// Shows every attempt on `board`: rendering, waiting for a line, what
    /// the engine reports (dialling, page N of M), and the end.
    pub fn with_live(mut self, board: LiveBoard) -> Self {
        self.live = Some(board);
        self
    }

    /// One recipient (and those sharing its call), shown on the live
    /// board from start to end.
    async fn send_one(&self, job: &Job<'_>, hop: &FaxHop, rcpt: &JobRecipient) -> Outcome {
        let sink = self.live.as_ref().map(|board| {
            let before = job
                .envelope
                .recipients
                .get(rcpt.index)
                .and_then(|r| r.fax.as_ref());
            let id = |index: usize| format!("{}/{index}", job.envelope.id);
            let also: Vec<String> = job
                .recipients
                .iter()
                .filter(|r| r.index != rcpt.index)
                .map(|r| id(r.index))
                .collect();
            let start = LiveProgress {
                state: LiveState::Rendering,
                pages_total: before.map_or(0, |p| p.pages_total),
                attempt: before.map_or(0, |p| p.calls) + 1,
                engine: self.engine.name().to_owned(),
                ..LiveProgress::queued(id(rcpt.index), hop.number.clone())
            };
            board.open(start, &also)
        });
        let guard = LiveGuard(sink.clone());
        let outcome = self.attempt(job, hop, rcpt, sink).await;
        if let Some(sink) = &guard.0 {
            let (state, detail) = match outcome.status {
                Status::Delivered => (LiveState::Sent, String::new()),
                Status::Failed => (LiveState::Failed, live_reason(&outcome)),
                Status::Deferred => (LiveState::Deferred, live_reason(&outcome)),
            };
            let confirmed = outcome.fax.as_ref().map_or(0, |f| f.pages_sent);
            sink.end(state, confirmed, &detail);
        }
        outcome
    }

    /// One recipient: render, call, judge.
    async fn attempt(
        &self,
        job: &Job<'_>,
        hop: &FaxHop,
        rcpt: &JobRecipient,
        sink: Option<ProgressSink>,
    ) -> Outcome {
        let before = job
            .envelope
            .recipients
            .get(rcpt.index)
            .and_then(|r| r.fax.clone());
        let mut progress = before.unwrap_or_else(|| FaxProgress {
            number: hop.number.clone(),
            ..Default::default()
        });
        progress.number = hop.number.clone();
        let relay = format!("{}[{}]", self.engine.name(), hop.dial);
        let outcome = |status, reply, progress: FaxProgress, retry_after| Outcome {
            retry_after,
            fax: Some(progress),
            ..Outcome::local(rcpt.index, status, relay.clone(), reply)
        };

        // The document, made anew for each call (rendering is
        // deterministic; the spool holds only what is on the line now).
        let path = self
            .settings
            .spool
            .join(format!("{}-{}.tif", job.envelope.id, rcpt.index));
        let started = Instant::now();
        let rendered = self.render(job, hop, &path).await;
        let pages = match rendered {
            Ok(pages) => pages,
            Err(RenderFailure::Local(why)) => {
                let _ = std::fs::remove_file(&path);
                tracing::warn!("{}: cannot make the fax document: {why}", job.envelope.id);
                let reply =
                    Reply::new(451, "4.3.0", format!("cannot make the fax document: {why}"));
                return outcome(Status::Deferred, reply, progress, None);
            }
            Err(RenderFailure::Crashed(why)) => {
                let _ = std::fs::remove_file(&path);
                progress.render_crashes += 1;
                progress.last = "render-crashed".into();
                progress.reason = why.clone();
                let crashes = progress.render_crashes;
                let limit = self.settings.render_crash_limit.max(1);
                let quarantine = crashes >= limit;
                tracing::error!(
                    "{}: the fax renderer crashed on the message ({crashes} of {limit}): {why}",
                    job.envelope.id
                );
                let text = if quarantine {
                    format!(
                        "the fax renderer crashed {crashes} times on this message ({why}); \
                         the message is held in quarantine"
                    )
                } else {
                    format!("the fax renderer crashed on this message: {why}")
                };
                return Outcome {
                    quarantine,
                    ..outcome(
                        Status::Deferred,
                        Reply::new(451, "4.3.0", text),
                        progress,
                        None,
                    )
                };
            }
            Err(RenderFailure::Message(why)) => {
                let _ = std::fs::remove_file(&path);
                progress.last = "render-failed".into();
                progress.reason = why.clone();
                let reply = Reply::new(554, "5.6.1", format!("the message cannot be faxed: {why}"));
                return outcome(Status::Failed, reply, progress, None);
            }
        };
        if let Some(o) = &self.observer {
            o.rendered(pages, started.elapsed());
        }
        if progress.pages_total != pages {
            // A different document than last time (first call, or the
            // configuration changed): nothing of it was sent.
            progress.pages_sent = 0;
            progress.pages_total = pages;
        }
        let first_page = match self.settings.resend {
            Resend::Missing if progress.pages_sent < pages => progress.pages_sent + 1,
            _ => 1,
        };
        if first_page == 1 {
            progress.pages_sent = 0;
        }
        if let Some(sink) = &sink {
            sink.update(|p| {
                p.state = LiveState::WaitingForLine;
                p.pages_total = pages;
                p.page = first_page - 1;
            });
        }
        let request = SendRequest {
            job_id: format!("{}/{}", job.envelope.id, rcpt.index),
            dial: hop.dial.clone(),
            number: hop.number.clone(),
            document: path.clone(),
            first_page,
            pages,
            tsi: hop.tsi.clone().unwrap_or_else(|| self.settings.tsi.clone()),
            header: hop.header.clone().or_else(|| self.settings.header.clone()),
            subaddress: hop.subaddress.clone(),
            extension: hop.extension.clone(),
            progress: sink,
        };
        let result = self.engine.send(request).await;
        // The document as it went on the line, handed back with the
        // outcome: the scheduler keeps it with the fax's record.
        let document = match tokio::fs::read(&path).await {
            Ok(data) => Some(FaxDocument(data.into())),
            Err(e) => {
                tracing::warn!("cannot read the fax document {}: {e}", path.display());
                None
            }
        };
        self.done_with(&path, matches!(result, SendResult::Sent { .. }));
        progress.calls += 1;
        let (word, sent_now, line) = match &result {
            SendResult::Sent {
                pages, duration, ..
            } => ("sent", *pages, *duration),
            SendResult::Busy { .. } => ("busy", 0, Duration::ZERO),
            SendResult::NoAnswer { .. } => ("no-answer", 0, Duration::ZERO),
            SendResult::NoFaxTone => ("no-fax-tone", 0, Duration::ZERO),
            SendResult::Partial {
                pages_sent,
                duration,
                ..
            } => ("partial", *pages_sent, *duration),
            SendResult::Error { .. } => ("error", 0, Duration::ZERO),
        };
        if let Some(o) = &self.observer {
            o.call(word, sent_now, line);
        }
        progress.last = word.into();
        progress.line_ms += line.as_millis() as u64;
        progress.pages_sent = (progress.pages_sent + sent_now).min(pages);
        let interval = self.settings.retry_interval.as_secs();
        let judged = match result {
            SendResult::Sent {
                remote_csid,
                bit_rate,
                ..
            } => {
                progress.remote_csid = Some(remote_csid.clone()).filter(|c| !c.is_empty());
                progress.bit_rate = bit_rate;
                progress.reason.clear();
                let csid = match remote_csid.trim() {
                    "" => String::new(),
                    csid => format!(" (remote station {csid})"),
                };
                let text = format!(
                    "fax sent: {} of {pages} pages to {}{csid} in {}s",
                    progress.pages_sent,
                    hop.number,
                    progress.line_ms.div_ceil(1000)
                );
                outcome(
                    Status::Delivered,
                    Reply::new(250, "2.0.0", text),
                    progress,
                    None,
                )
            }
            SendResult::Busy { .. } | SendResult::NoAnswer { .. } | SendResult::NoFaxTone => {
                let detail = match &result {
                    SendResult::Busy { detail } | SendResult::NoAnswer { detail } => detail.clone(),
                    _ => None,
                };
                progress.unreached += 1;
                let said = match word {
                    "busy" => "the line was busy",
                    "no-answer" => "no answer",
                    _ => "no fax machine answered (no fax tone)",
                };
                let why = match detail {
                    Some(d) => format!("{said} ({d})"),
                    None => said.to_string(),
                };
                progress.reason = why.clone();
                if progress.unreached > self.settings.retries {
                    let text = format!(
                        "fax to {} failed: {why} ({} calls)",
                        hop.number, progress.unreached
                    );
                    outcome(
                        Status::Failed,
                        Reply::new(554, "5.4.1", text),
                        progress,
                        None,
                    )
                } else {
                    let text = format!(
                        "fax to {}: {why}; call {} of {}, next in {interval}s",
                        hop.number,
                        progress.unreached,
                        self.settings.retries + 1
                    );
                    outcome(
                        Status::Deferred,
                        Reply::new(451, "4.4.1", text),
                        progress,
                        Some(interval),
                    )
                }
            }
            SendResult::Partial {
                remote_csid,
                reason,
                ..
            } => {
                progress.remote_csid = Some(remote_csid).filter(|c| !c.is_empty());
                progress.reason = reason.clone();
                let text = format!(
                    "fax to {}: the call broke off after {} of {pages} pages ({reason}); \
                     will resend {}",
                    hop.number,
                    progress.pages_sent,
                    match self.settings.resend {
                        Resend::Missing => "the missing pages",
                        Resend::All => "the whole fax",
                    }
                );
                outcome(
                    Status::Deferred,
                    Reply::new(451, "4.4.2", text),
                    progress,
                    Some(interval),
                )
            }
            SendResult::Error { reason, retry } => {
                progress.reason = reason.clone();
                let text = format!("fax to {}: {reason}", hop.number);
                if retry {
                    outcome(
                        Status::Deferred,
                        Reply::new(451, "4.4.2", text),
                        progress,
                        None,
                    )
                } else {
                    outcome(
                        Status::Failed,
                        Reply::new(554, "5.4.2", text),
                        progress,
                        None,
                    )
                }
            }
        };
        Outcome { document, ..judged }
    }

    /// The document after its call: archived when it was sent and an
    /// archive is set, else deleted.
    fn done_with(&self, path: &Path, sent: bool) {
        if let (true, Some(dir), Some(name)) = (sent, &self.settings.archive, path.file_name()) {
            let kept =
                std::fs::create_dir_all(dir).and_then(|_| std::fs::rename(path, dir.join(name)));
            match kept {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    "cannot archive {} in {}: {e}",
                    path.display(),
                    dir.display()
                ),
            }
        }
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// Render on a blocking thread (it is CPU work).
    async fn render(&self, job: &Job<'_>, hop: &FaxHop, path: &Path) -> Result<u32, RenderFailure> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                RenderFailure::Local(format!(
                    "cannot create the fax spool {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let renderer = self.renderer.clone();
        let (body, env, hop, path) = (
            job.body.to_vec(),
            job.envelope.clone(),
            hop.clone(),
            path.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || renderer.render(&body, &env, &hop, &path))
            .await
            .unwrap_or_else(|e| Err(RenderFailure::Local(format!("the renderer failed: {e}"))))
    }
}

#[async_trait::async_trait]
impl Transport for FaxTransport {
    fn name(&self) -> &'static str {
        "fax"
    }

    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome> {
        let NextHop::Fax(hop) = job.next_hop else {
            let reply = Reply::new(451, "4.3.5", "not a fax destination");
            return job
                .recipients
                .iter()
                .map(|r| Outcome::local(r.index, Status::Deferred, "none", reply.clone()))
                .collect();
        };
        // Every recipient of a job has the same hop: the same number,
        // subaddress, extension and sender settings (two addresses for
        // one number, `+1555…@fax.x` and `FAX=+1555…@x`). One document,
        // one call; each of them gets its outcome.
        let Some((first, others)) = job.recipients.split_first() else {
            return Vec::new();
        };
        let outcome = self.send_one(&job, hop, first).await;
        let mut out = Vec::with_capacity(job.recipients.len());
        for rcpt in others {
            out.push(Outcome {
                index: rcpt.index,
                ..outcome.clone()
            });
        }
        out.insert(0, outcome);
        out
    }
}

/// The reason shown at the end of an attempt that did not send: the
/// fax's own reason, else the reply's text.
fn live_reason(outcome: &Outcome) -> String {
    match outcome.fax.as_ref().map(|f| f.reason.as_str()) {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        _ => outcome.reply.text.clone(),
    }
}

/// Ends the live entry of an attempt whose future was dropped (the
/// server stopping mid-call) so that it does not stay "on the line".
struct LiveGuard(Option<ProgressSink>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(sink) = self.0.as_ref().filter(|s| !s.ended()) {
            let confirmed = sink.current().map_or(0, |p| p.page.saturating_sub(1));
            sink.end(LiveState::Deferred, confirmed, "interrupted");
        }
    }
}

#[cfg(test)]
mod tests;
