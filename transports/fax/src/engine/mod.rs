//! The fax engine boundary: a job (pages, number, identity) goes out over
//! a line and a [`SendResult`] comes back; received faxes come in.
//!
//! An engine owns its lines: `send` waits for a free one. Engines are
//! one module each; the default, [`simulated`], needs no hardware: a
//! software fax modem (spandsp) speaking real T.30 over a simulated phone
//! line to simulated fax machines. [`spandsp`] is that modem: a thin FFI
//! to spandsp 0.0.6 and a safe wrapper that other engines (a T.38 or a
//! real-line one) can share.

use crate::live::{LiveState, ProgressSink};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub mod handover;
pub mod hylafax;
pub mod lines;
pub mod shared;
pub mod simulated;
pub mod sip;
pub mod spandsp;
pub mod spool;

/// A fax to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// For logs: the queue id and recipient (`5B1F…/2`).
    pub job_id: String,
    /// What is dialled: the number after the dial plan's outbound rules
    /// (digits, possibly with a leading `+`).
    pub dial: String,
    /// The number as E.164 (`+` and digits), for lines that take numbers
    /// rather than dial strings (SIP trunks: `{e164}` in a dial template).
    pub number: String,
    /// The document: a multi-page TIFF Class F file.
    pub document: PathBuf,
    /// The first page to send (1-based): after a partial send, the
    /// pages the remote already has are skipped.
    pub first_page: u32,
    /// The pages in `document`.
    pub pages: u32,
    /// Our station identity (TSI), at most 20 characters (T.30).
    pub tsi: String,
    /// The header line printed at the top of each page by the engine, if
    /// any (name, number; the engine adds date and page).
    pub header: Option<String>,
    /// The T.33 subaddress sent in the SUB frame (routing at the far
    /// end), if any.
    pub subaddress: Option<String>,
    /// Digits to send as DTMF once the far end answers, before fax
    /// starts (an extension behind a PBX or an auto-attendant): digits,
    /// `*`, `#`, and `,` for a pause of about two seconds.
    pub extension: Option<String>,
    /// Where the engine reports how the call goes (dialling, ringing,
    /// page N of M) for the live board ([`crate::live`]); `None`: nobody
    /// watches. The end is reported by the transport, not the engine.
    pub progress: Option<ProgressSink>,
}

impl SendRequest {
    /// Reports a new state of the call, if anyone watches.
    pub fn report(&self, state: LiveState) {
        if let Some(sink) = &self.progress {
            sink.state(state);
        }
    }

    /// Reports a new state with words (the SIP status that rings, the
    /// fax server's status text).
    pub fn report_with(&self, state: LiveState, detail: &str) {
        if let Some(sink) = &self.progress {
            sink.state_with(state, detail);
        }
    }

    /// Reports the page on the line from the pages the far end confirmed
    /// so far in this call: page `first_page + confirmed`, at most the
    /// last.
    pub fn report_pages(&self, confirmed: u32) {
        if let Some(sink) = &self.progress {
            sink.sending(self.first_page.saturating_add(confirmed).min(self.pages));
        }
    }

    /// What every engine refuses before dialling: a dial string that is
    /// not digits (an optional leading `+`), and a page range outside the
    /// document. `dial` is the number as the engine will dial it (by
    /// default [`SendRequest::dial`], trimmed).
    pub fn check(&self, dial: Option<&str>) -> Result<(), String> {
        let number = dial.unwrap_or(self.dial.trim());
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("cannot dial {:?}: not a phone number", self.dial));
        }
        if let Some(ext) = &self.extension {
            if ext.is_empty()
                || !ext
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"*#,".contains(&b))
            {
                return Err(format!("extension {ext:?}: not digits, *, # or ,"));
            }
        }
        if let Some(sub) = &self.subaddress {
            if sub.is_empty() || sub.len() > 20 || !sub.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("subaddress {sub:?}: not up to 20 digits"));
            }
        }
        if self.first_page == 0 || self.first_page > self.pages {
            return Err(format!(
                "pages {}..={} of the document: nothing to send",
                self.first_page, self.pages
            ));
        }
        Ok(())
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    /// Every page from `first_page` on was confirmed by the remote.
    Sent {
        /// Pages sent in this call.
        pages: u32,
        /// Time on the line.
        duration: Duration,
        /// The remote's called subscriber identification (CSID).
        remote_csid: String,
        /// The signalling rate used, bits per second.
        bit_rate: u32,
    },
    /// The line was busy; `detail`: what the line said, if more than
    /// that (`SIP 486 Busy Here (Q.850 cause 17)`).
    Busy { detail: Option<String> },
    /// Nobody answered; `detail` as for `Busy`.
    NoAnswer { detail: Option<String> },
    /// Answered, but no fax machine (a voice or modem answer: no CED/DIS).
    NoFaxTone,
    /// The call broke off after `pages_sent` confirmed pages (counted
    /// from `first_page`).
    Partial {
        pages_sent: u32,
        duration: Duration,
        remote_csid: String,
        /// What went wrong (the T.30 completion text).
        reason: String,
    },
    /// Anything else; `retry`: whether trying again may help.
    Error { reason: String, retry: bool },
}

impl SendResult {
    /// Busy, nothing more said.
    pub const BUSY: SendResult = SendResult::Busy { detail: None };
    /// No answer, nothing more said.
    pub const NO_ANSWER: SendResult = SendResult::NoAnswer { detail: None };
}

/// A fax that came in on a line.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedFax {
    /// The received pages, as a TIFF file the engine wrote.
    pub document: PathBuf,
    pub pages: u32,
    /// The sender's transmitting subscriber identification (TSI).
    pub remote_tsi: String,
    /// The calling number (ANI / caller id), if the line gave one.
    pub caller: Option<String>,
    /// The number dialled (DID / DNIS), if the line gave one.
    pub called: Option<String>,
    pub duration: Duration,
    /// How the reception ended.
    pub status: Reception,
    /// When the call ended.
    pub received_at: SystemTime,
    /// Quality: rows the modem received damaged (and repaired by
    /// copying), if the engine counts them; 0 on a clean ECM call.
    pub bad_rows: Option<u32>,
    /// The engine's name for where the fax came from (the spool's
    /// `NAME`, HylaFAX's `recvq` file, the simulated engine's record), for
    /// [`FaxEngine::acknowledge`]; `None`: nothing to acknowledge.
    pub source: Option<String>,
}

/// How a reception ended. A `Failed` one has no pages (its `document`
/// does not exist); it is reported so that someone can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reception {
    /// Every page the caller sent arrived.
    Complete,
    /// The call broke off after some pages; the `reason` (T.30 text).
    Partial { reason: String },
    /// Nothing arrived.
    Failed { reason: String },
}

/// What an engine counts of one trunk since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrunkReport {
    pub name: String,
    /// Calls placed and answered over it.
    pub calls_out: u64,
    pub calls_in: u64,
    /// Calls now, and at most.
    pub busy: usize,
    pub max_calls: usize,
    /// Outgoing calls that did not send every page, by cause.
    pub failures: Vec<(&'static str, u64)>,
    /// Pages sent and received over it.
    pub pages: u64,
    /// Time on the line, in all.
    pub line_seconds: f64,
    /// Whether it holds a registration now (`None`: it does not register).
    pub registered: Option<bool>,
}

/// A fax engine.
#[async_trait::async_trait]
pub trait FaxEngine: Send + Sync {
    /// Its name in logs, metrics and `faxmta route` (`simulated` …).
    fn name(&self) -> &'static str;

    /// How many calls it can carry at once.
    fn lines(&self) -> usize;

    /// How many lines are in use now.
    fn lines_busy(&self) -> usize;

    /// The counters of each trunk (a group of lines with its own name:
    /// the SIP engine's trunks), for the metrics; none by default.
    fn trunks(&self) -> Vec<TrunkReport> {
        Vec::new()
    }

    /// Send one fax; waits for a free line first.
    async fn send(&self, request: SendRequest) -> SendResult;

    /// The next fax received; `None` once the engine has stopped.
    ///
    /// Hand-over is in two phases: a fax handed out here keeps its
    /// source (the board's files, HylaFAX's `recvq` entry, the simulated
    /// engine's record) until [`FaxEngine::acknowledge`]; it is not handed
    /// out again by this engine, but an engine started anew (after a
    /// crash) hands out again whatever was not acknowledged. So a fax is
    /// never lost between the line and the queue; after a crash it may
    /// come twice.
    async fn receive(&self) -> Option<ReceivedFax>;

    /// The server is stopping: calls in progress end now, cleanly where
    /// the line allows (a SIP call is hung up with BYE: the pages already
    /// confirmed count, a partial reception is kept and handed out). By
    /// default nothing: the engine's calls end when it is dropped.
    async fn shutdown(&self) {}

    /// The fax's mails are queued durably: remove (or mark done) its
    /// source, so that it is never handed out again. Errors are logged
    /// by the engine (a source that cannot be removed is noted where the
    /// engine can, else it may come again at the next start).
    async fn acknowledge(&self, fax: &ReceivedFax);
}
