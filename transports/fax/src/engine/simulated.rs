//! The default engine, `simulated`: no hardware, but real fax. Each call
//! runs spandsp's software modem (V.17/V.29/V.27ter, T.30 with ECM) in
//! our machine and in a simulated remote machine, wired back to back over
//! a perfect phone line in memory ([`super::spandsp::modem`]).
//!
//! The simulated phone network ([`SimulatedNetwork`]) decides how a number
//! answers: busy, no answer, a voice (no fax tone), or a fax machine that
//! stores what it receives under `received/<number>/` — optionally one
//! that hangs up after some pages. Numbers are compared as dialled: digits
//! and an optional leading `+` (spaces, dashes, dots and brackets in the
//! settings are ignored).
//!
//! Incoming faxes: [`SimulatedEngine::call_in`] makes a remote machine call
//! us and send a document over the same back-to-back T.30; what we receive
//! is written under `inbound` with its record ([`super::handover`]) and
//! handed out by `receive()`. The record goes when the fax is
//! acknowledged (its mails queued); the records left at start (a crash)
//! are handed out again.
//!
//! Timing: the line is simulated, not slept; a call costs the CPU time of
//! two software modems on a blocking thread, and `lines` bounds how many
//! run at once. Measured here (`line_time_per_page` in the engine tests):
//! a typed page at 204×196 dpi (about 20 KB as MMR on the line) takes
//! about 15 s of simulated line time at V.17 14400 bit/s with ECM, plus
//! about 13.5 s per call for set-up and release — and about 10 ms of wall
//! time per page. `pace` slows the line down to the clock (real time, or
//! some times faster) for demos and tests that watch a fax on the line.
//!
//! Progress: once a line is taken the call is `dialling`, the remote
//! answers at once (`answered`), and from T.30's phase B on the page on the
//! line is reported (`sending page N of M`), looked at every half second
//! of line time.

use super::handover;
use super::lines::{Line, Lines};
use super::spandsp::modem;
use super::{FaxEngine, ReceivedFax, Reception, SendRequest, SendResult};
use crate::live::LiveState;
use call::{answer_call, place_call, Remote};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The settings of the simulated engine.
#[derive(Debug, Clone)]
pub struct SimulatedSettings {
    /// Calls at once (`[fax] lines`); at least 1.
    pub lines: usize,
    /// Our station identity: the CSID we give when answering an incoming
    /// call (the TSI of a send comes with each [`SendRequest`]).
    pub tsi: String,
    /// Where the faxes we receive are written.
    pub inbound: PathBuf,
    /// How the simulated phone network answers.
    pub network: SimulatedNetwork,
}

impl Default for SimulatedSettings {
    /// Two lines, no identity, faxes in `var/fax/inbound`, the default
    /// network.
    fn default() -> Self {
        SimulatedSettings {
            lines: 2,
            tsi: String::new(),
            inbound: PathBuf::from("var/fax/inbound"),
            network: SimulatedNetwork::default(),
        }
    }
}

/// The simulated phone network (`[fax.simulated]`). A number not listed
/// answers with a fax machine.
#[derive(Debug, Clone)]
pub struct SimulatedNetwork {
    /// Where the remote machines store what they receive, one directory
    /// per dialled number.
    pub received: PathBuf,
    /// The CSID the remote machines give (`{number}`: the number dialled);
    /// at most 20 characters are sent.
    pub csid: String,
    /// Numbers that are busy.
    pub busy: Vec<String>,
    /// Numbers that ring without answer.
    pub no_answer: Vec<String>,
    /// Numbers answered by a voice: no fax tone, T.30 times out.
    pub no_fax_tone: Vec<String>,
    /// Numbers whose machine hangs up after this many pages (at least 1)
    /// of a call.
    pub hang_up_after: BTreeMap<String, u32>,
    /// Line seconds per second of the clock: `Some(1.0)` is real time (a
    /// page takes about 15 s, as on a real line), `Some(10.0)` ten times
    /// faster; `None`: as fast as the CPU goes. For demos and tests that
    /// watch a fax on the line.
    pub pace: Option<f64>,
}

impl Default for SimulatedNetwork {
    fn default() -> Self {
        SimulatedNetwork {
            received: PathBuf::from("var/fax/remote"),
            csid: "{number}".into(),
            busy: Vec::new(),
            no_answer: Vec::new(),
            no_fax_tone: Vec::new(),
            hang_up_after: BTreeMap::new(),
            pace: None,
        }
    }
}

/// A call a remote machine places to us ([`SimulatedEngine::call_in`]).
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// What the remote machine sends: a TIFF-F file, every page.
    pub document: PathBuf,
    /// The remote machine's identity (TSI).
    pub tsi: String,
    /// Caller id (ANI) the line presents, if any.
    pub caller: Option<String>,
    /// The number dialled (DID), if the line presents it.
    pub called: Option<String>,
}

/// Errors of the simulated engine.
#[derive(Debug, thiserror::Error)]
pub enum SimulatedError {
    #[error("[fax] lines must be at least 1")]
    NoLines,
    #[error("[fax.simulated] hang_up_after {number:?}: must be at least 1 page")]
    HangUpAfterZero { number: String },
    #[error("[fax.simulated] pace {0}: must be a number above 0")]
    BadPace(f64),
    #[error("{what} {path:?}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the fax engine has stopped")]
    Stopped,
    #[error(transparent)]
    Modem(#[from] modem::ModemError),
    #[error("incoming call failed after {pages_received} page(s): {reason}")]
    CallFailed { reason: String, pages_received: u32 },
    #[error("the call task failed: {0}")]
    Task(String),
}

/// The simulated engine. See the module documentation.
pub struct SimulatedEngine {
    settings: SimulatedSettings,
    busy: HashSet<String>,
    no_answer: HashSet<String>,
    no_fax_tone: HashSet<String>,
    hang_up_after: HashMap<String, u32>,
    lines: Lines,
    /// Names files uniquely within one millisecond.
    sequence: AtomicU64,
    inbox_tx: std::sync::Mutex<Option<mpsc::UnboundedSender<ReceivedFax>>>,
    inbox_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedFax>>,
}

impl SimulatedEngine {
    /// Checks the settings and sets up the lines. Directories are made
    /// when first written to.
    pub fn new(settings: SimulatedSettings) -> Result<SimulatedEngine, SimulatedError> {
        if settings.lines == 0 {
            return Err(SimulatedError::NoLines);
        }
        let net = &settings.network;
        let set = |numbers: &[String]| numbers.iter().map(|n| normalise(n)).collect();
        let mut hang_up_after = HashMap::new();
        for (number, &pages) in &net.hang_up_after {
            if pages == 0 {
                return Err(SimulatedError::HangUpAfterZero {
                    number: number.clone(),
                });
            }
            hang_up_after.insert(normalise(number), pages);
        }
        if let Some(pace) = net.pace.filter(|p| !(p.is_finite() && *p > 0.0)) {
            return Err(SimulatedError::BadPace(pace));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for fax in handover::pending(&settings.inbound) {
            let _ = tx.send(fax);
        }
        Ok(SimulatedEngine {
            busy: set(&net.busy),
            no_answer: set(&net.no_answer),
            no_fax_tone: set(&net.no_fax_tone),
            hang_up_after,
            lines: Lines::new(settings.lines),
            sequence: AtomicU64::new(0),
            inbox_tx: std::sync::Mutex::new(Some(tx)),
            inbox_rx: tokio::sync::Mutex::new(rx),
            settings,
        })
    }

    /// The most lines that were in use at once since the engine started.
    pub fn lines_busy_peak(&self) -> usize {
        self.lines.peak()
    }

    /// Stops taking incoming calls: `receive()` returns what is still
    /// queued, then `None`.
    pub fn stop(&self) {
        if let Ok(mut tx) = self.inbox_tx.lock() {
            tx.take();
        }
    }

    /// A remote machine calls us and sends `call.document`. Waits for a
    /// free line. What we receive is written under `inbound` and queued for
    /// `receive()`; it is also returned. A call that breaks off is an
    /// error, but what did arrive is still queued (the pages, as a fax
    /// server would keep them, or a failed reception with none, so that
    /// someone can be told).
    pub async fn call_in(&self, call: IncomingCall) -> Result<ReceivedFax, SimulatedError> {
        let inbox = self
            .inbox_tx
            .lock()
            .ok()
            .and_then(|tx| tx.clone())
            .ok_or(SimulatedError::Stopped)?;
        readable(&call.document).map_err(|source| SimulatedError::Io {
            what: "cannot read the incoming document",
            path: call.document.clone(),
            source,
        })?;
        let file = self.new_file(&self.settings.inbound, "in")?;
        let csid = self.settings.tsi.clone();
        let line = self.line().await?;
        let span = tracing::info_span!("fax_in", caller = ?call.caller, called = ?call.called);
        let outcome = tokio::task::spawn_blocking(move || {
            let _line = line;
            span.in_scope(|| answer_call(&call, &csid, file))
        })
        .await
        .map_err(|e| SimulatedError::Task(e.to_string()))??;
        let mut outcome = outcome;
        // spandsp wrote the image without a sync: it is made durable here,
        // and its name with the record's (whose write syncs the
        // directory), before it is handed on.
        if outcome.document.exists() {
            if let Err(e) = super::spool::files::sync_file(&outcome.document) {
                tracing::error!("received fax: {e}");
            }
        }
        // Recorded before it is handed out, so that a crash before its
        // mails are queued does not lose it.
        match handover::write(&outcome) {
            Ok(record) => outcome.source = Some(record),
            Err(e) => tracing::error!(
                "received fax {:?}: cannot write its record ({e}); lost if we stop before it is queued",
                outcome.document
            ),
        }
        // A closed inbox (stop() meanwhile) just drops it; the file stays.
        let _ = inbox.send(outcome.clone());
        match &outcome.status {
            Reception::Complete => Ok(outcome),
            Reception::Partial { reason } | Reception::Failed { reason } => {
                Err(SimulatedError::CallFailed {
                    reason: reason.clone(),
                    pages_received: outcome.pages,
                })
            }
        }
    }

    /// Waits for a free line.
    async fn line(&self) -> Result<Line, SimulatedError> {
        // Only closed lines fail, and these are never closed.
        self.lines.take().await.ok_or(SimulatedError::Stopped)
    }

    /// A new file `<dir>/<unix ms>-<n>-<label>.tif`, its directory made.
    fn new_file(&self, dir: &Path, label: &str) -> Result<PathBuf, SimulatedError> {
        std::fs::create_dir_all(dir).map_err(|source| SimulatedError::Io {
            what: "cannot create the directory",
            path: dir.to_owned(),
            source,
        })?;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!("{ms}-{n}-{}.tif", file_label(label))))
    }

    /// How the network answers `number` (normalised).
    fn remote(&self, number: &str, job_id: &str) -> Result<Remote, SimulatedError> {
        if self.busy.contains(number) {
            return Ok(Remote::Busy);
        }
        if self.no_answer.contains(number) {
            return Ok(Remote::NoAnswer);
        }
        if self.no_fax_tone.contains(number) {
            return Ok(Remote::Voice);
        }
        let net = &self.settings.network;
        Ok(Remote::Fax {
            csid: net.csid.replace("{number}", number),
            file: self.new_file(&net.received.join(file_label(number)), job_id)?,
            hang_up_after: self.hang_up_after.get(number).copied(),
        })
    }
}

#[async_trait::async_trait]
impl FaxEngine for SimulatedEngine {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn lines(&self) -> usize {
        self.settings.lines
    }

    fn lines_busy(&self) -> usize {
        self.lines.busy()
    }

    async fn send(&self, request: SendRequest) -> SendResult {
        let number = normalise(&request.dial);
        if let Err(reason) = request.check(Some(&number)) {
            return SendResult::Error {
                reason,
                retry: false,
            };
        }
        if let Err(e) = readable(&request.document) {
            return SendResult::Error {
                reason: format!("cannot read the document {:?}: {e}", request.document),
                retry: false,
            };
        }
        let line = match self.line().await {
            Ok(line) => line,
            Err(e) => {
                return SendResult::Error {
                    reason: e.to_string(),
                    retry: true,
                }
            }
        };
        request.report(LiveState::Dialling);
        let remote = match self.remote(&number, &request.job_id) {
            Ok(Remote::Busy) => return SendResult::BUSY,
            Ok(Remote::NoAnswer) => return SendResult::NO_ANSWER,
            Ok(remote) => remote,
            Err(e) => {
                return SendResult::Error {
                    reason: e.to_string(),
                    retry: true,
                }
            }
        };
        let span = tracing::info_span!("fax_call", job = %request.job_id, dial = %request.dial);
        let pace = self.settings.network.pace;
        let task = tokio::task::spawn_blocking(move || {
            let _line = line;
            span.in_scope(|| place_call(&request, remote, pace))
        });
        match task.await {
            Ok(result) => result,
            Err(e) => SendResult::Error {
                reason: format!("the call task failed: {e}"),
                retry: true,
            },
        }
    }

    async fn receive(&self) -> Option<ReceivedFax> {
        self.inbox_rx.lock().await.recv().await
    }

    /// Removes the fax's record.
    async fn acknowledge(&self, fax: &ReceivedFax) {
        handover::remove(fax);
    }
}

fn readable(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path).map(drop)
}

/// A number as dialled: spaces, dashes, dots and brackets dropped.
fn normalise(number: &str) -> String {
    number
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

/// A safe file-name part: at most 64 of `[A-Za-z0-9+._-]`, others `_`.
fn file_label(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

mod call;
#[cfg(test)]
mod tests;
