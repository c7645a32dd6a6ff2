//! The live board: what each fax on its way is doing right now (rendering,
//! waiting for a line, dialling, ringing, sending page N of M) and how it
//! ended, for whoever shows faxes in flight (the control socket's `fax
//! status`, the HTTP API's status view, the web portal).
//!
//! One [`LiveBoard`] is kept by the daemon and shared (it is an `Arc`
//! inside). The fax transport opens an entry per delivery attempt and
//! hands a [`ProgressSink`] to the engine with the
//! [`crate::engine::SendRequest`]; the engine reports through it, from any
//! thread (the modem threads included). The entry's end (sent, failed or
//! deferred, with the reason) is kept [`LiveBoard::keep`] (10 minutes by
//! default) so that a page polling it sees the end before the history
//! takes over; then it goes.
//!
//! Entries are keyed by the job id of the send: the queue id, `/`, and the
//! recipient's index in the envelope (`5B1F…/2`), as
//! [`crate::engine::SendRequest::job_id`]. Readers can poll
//! ([`LiveBoard::list`], [`LiveBoard::get`]), wait for any change
//! ([`LiveBoard::subscribe`], a version counter), or follow every change
//! in order ([`LiveBoard::changes`]).
//!
//! This module is pure (no C library): a mail-only build has an empty
//! board.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// How long an ended entry stays on the board by default.
pub const KEEP_ENDED: Duration = Duration::from_secs(600);

/// Changes a [`LiveBoard::changes`] receiver may fall behind by before it
/// is told it lagged.
const CHANGES: usize = 1024;

/// What a fax is doing now, or how its attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// In the queue, not being worked on: never on the board itself, but
    /// what a reader shows for a fax recipient of the queue without an
    /// entry ([`LiveProgress::queued`]).
    Queued,
    /// The message is being made into pages.
    Rendering,
    /// The document is ready; every line is busy.
    WaitingForLine,
    /// A line is taken and the number dialled (or the job handed to the
    /// fax server, which dials it).
    Dialling,
    /// The far end rings (SIP 180/183).
    Ringing,
    /// The far end answered; the fax machines are negotiating.
    Answered,
    /// Page [`LiveProgress::page`] of [`LiveProgress::pages_total`] is on
    /// the line.
    Sending,
    /// A fax is coming in (inbound; not reported by every engine).
    Receiving,
    /// Every page was confirmed.
    Sent,
    /// The fax failed for good: [`LiveProgress::detail`] says why.
    Failed,
    /// This attempt did not send it; the queue tries again later
    /// ([`LiveProgress::detail`] says why).
    Deferred,
}

impl LiveState {
    /// Whether the attempt has ended.
    pub fn is_end(self) -> bool {
        matches!(
            self,
            LiveState::Sent | LiveState::Failed | LiveState::Deferred
        )
    }
}

/// One fax in flight (or just ended), as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveProgress {
    /// The job id: queue id, `/`, recipient index (`5B1F…/2`).
    pub job_id: String,
    pub state: LiveState,
    /// Since when (Unix seconds) it is in this state (for
    /// [`LiveState::Sending`]: on this page).
    pub since: u64,
    /// The number called (E.164).
    pub number: String,
    /// Pages of the document; 0 until it is rendered.
    pub pages_total: u32,
    /// While sending: the page on the line (1-based, counted in the whole
    /// document, so a resend of the missing pages starts past 1); at the
    /// end: the pages the far end confirmed, in all.
    pub page: u32,
    /// Which call this is for the recipient (1 for the first).
    pub attempt: u32,
    /// The fax engine carrying it (`simulated`, `sip` …).
    pub engine: String,
    /// More words: the reason of a failure or deferral, the SIP status
    /// that rings, the fax server's own status text.
    pub detail: String,
}

impl LiveProgress {
    /// The row a reader shows for a fax recipient waiting in the queue.
    pub fn queued(job_id: impl Into<String>, number: impl Into<String>) -> LiveProgress {
        LiveProgress {
            job_id: job_id.into(),
            state: LiveState::Queued,
            since: unix_now(),
            number: number.into(),
            pages_total: 0,
            page: 0,
            attempt: 0,
            engine: String::new(),
            detail: String::new(),
        }
    }

    /// In words: `sending page 2 of 3 to +4930…`, `failed: the line was
    /// busy`.
    pub fn describe(&self) -> String {
        let to = &self.number;
        let with = |s: String| match self.detail.as_str() {
            "" => s,
            d => format!("{s}: {d}"),
        };
        match self.state {
            LiveState::Queued => format!("queued for {to}"),
            LiveState::Rendering => "rendering the pages".into(),
            LiveState::WaitingForLine => format!("waiting for a line to {to}"),
            LiveState::Dialling => format!("dialling {to}"),
            LiveState::Ringing => with(format!("ringing at {to}")),
            LiveState::Answered => format!("{to} answered"),
            LiveState::Sending => {
                format!("sending page {} of {} to {to}", self.page, self.pages_total)
            }
            LiveState::Receiving => with("receiving".into()),
            LiveState::Sent => format!("sent {} of {} pages to {to}", self.page, self.pages_total),
            LiveState::Failed => with("failed".into()),
            LiveState::Deferred => with("deferred".into()),
        }
    }
}

/// One entry and when it ended.
struct Entry {
    progress: LiveProgress,
    ended: Option<Instant>,
}

struct Inner {
    entries: Mutex<HashMap<String, Entry>>,
    version: watch::Sender<u64>,
    changes: broadcast::Sender<LiveProgress>,
    keep: Duration,
}

/// The live board. Cheap to clone: every clone is the same board.
#[derive(Clone)]
pub struct LiveBoard {
    inner: Arc<Inner>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        LiveBoard::new(KEEP_ENDED)
    }
}

impl std::fmt::Debug for LiveBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBoard")
            .field("entries", &self.lock().len())
            .field("version", &self.version())
            .finish()
    }
}

impl LiveBoard {
    /// An empty board that keeps ended entries for `keep`.
    pub fn new(keep: Duration) -> LiveBoard {
        let (version, _) = watch::channel(0);
        let (changes, _) = broadcast::channel(CHANGES);
        LiveBoard {
            inner: Arc::new(Inner {
                entries: Mutex::new(HashMap::new()),
                version,
                changes,
                keep,
            }),
        }
    }

    /// How long an ended entry stays.
    pub fn keep(&self) -> Duration {
        self.inner.keep
    }

    /// Opens (or starts again) the entry of `job_id` in `state` and
    /// returns the handle that updates it; `also`: other job ids that
    /// follow the same call (recipients of one message with the same
    /// number).
    pub fn open(&self, start: LiveProgress, also: &[String]) -> ProgressSink {
        let mut ids = vec![start.job_id.clone()];
        ids.extend(also.iter().filter(|id| **id != start.job_id).cloned());
        let sink = ProgressSink {
            board: self.clone(),
            ids: ids.into(),
        };
        sink.update(|p| *p = start.clone());
        sink
    }

    /// Every entry (ended ones still kept included), by job id.
    pub fn list(&self) -> Vec<LiveProgress> {
        let mut all: Vec<LiveProgress> = self.lock().values().map(|e| e.progress.clone()).collect();
        all.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        all
    }

    /// The entries of one queued message (job ids `queue_id/…`).
    pub fn of_message(&self, queue_id: &str) -> Vec<LiveProgress> {
        let prefix = format!("{queue_id}/");
        self.list()
            .into_iter()
            .filter(|p| p.job_id.starts_with(&prefix))
            .collect()
    }

    /// The entry of one job, if on the board.
    pub fn get(&self, job_id: &str) -> Option<LiveProgress> {
        self.lock().get(job_id).map(|e| e.progress.clone())
    }

    /// Counts every change; it only goes up.
    pub fn version(&self) -> u64 {
        *self.inner.version.borrow()
    }

    /// The version counter, to wait for the next change
    /// (`changed().await`) and then read [`LiveBoard::list`] again.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Every change from now on, in order: the entry as it became. A
    /// receiver that falls more than 1024 changes behind is told so
    /// (`RecvError::Lagged`) and should read the list again.
    pub fn changes(&self) -> broadcast::Receiver<LiveProgress> {
        self.inner.changes.subscribe()
    }

    /// The entries, with those ended longer ago than `keep` gone.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while the lock was held leaves the map as it was: go on.
        let mut entries = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keep = self.inner.keep;
        entries.retain(|_, e| e.ended.is_none_or(|at| at.elapsed() < keep));
        entries
    }

    /// Applies `change` to the entries `ids` (the first made from the
    /// others or a blank when missing); announces the result when it
    /// differs.
    fn apply(&self, ids: &[String], change: &dyn Fn(&mut LiveProgress)) {
        let mut changed = Vec::new();
        {
            let mut entries = self.lock();
            for id in ids {
                let entry = entries.entry(id.clone()).or_insert_with(|| Entry {
                    progress: LiveProgress::queued(id.clone(), ""),
                    ended: None,
                });
                let before = entry.progress.clone();
                change(&mut entry.progress);
                entry.progress.job_id = id.clone();
                if entry.progress == before {
                    continue;
                }
                if entry.progress.state != before.state || entry.progress.page != before.page {
                    entry.progress.since = unix_now();
                }
                entry.ended = entry.progress.state.is_end().then(Instant::now);
                changed.push(entry.progress.clone());
            }
        }
        if changed.is_empty() {
            return;
        }
        for p in changed {
            // No receiver is fine.
            let _ = self.inner.changes.send(p);
        }
        self.inner.version.send_modify(|v| *v += 1);
    }
}

/// The handle an engine reports through: it updates the board's entry
/// (or entries) of one job. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct ProgressSink {
    board: LiveBoard,
    ids: Arc<[String]>,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProgressSink").field(&self.ids).finish()
    }
}

/// Two sinks are equal when they update the same entries of the same
/// board (so that a [`crate::engine::SendRequest`] can still be compared).
impl PartialEq for ProgressSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.board.inner, &other.board.inner) && self.ids == other.ids
    }
}

impl Eq for ProgressSink {}

impl ProgressSink {
    /// The job id it reports for.
    pub fn job_id(&self) -> &str {
        self.ids.first().map_or("", String::as_str)
    }

    /// The entry as it is now.
    pub fn current(&self) -> Option<LiveProgress> {
        self.board.get(self.job_id())
    }

    /// Changes the entry with `change`.
    pub fn update(&self, change: impl Fn(&mut LiveProgress)) {
        self.board.apply(&self.ids, &change);
    }

    /// A new state, nothing else changed.
    pub fn state(&self, state: LiveState) {
        self.update(|p| p.state = state);
    }

    /// A new state with words (`detail`).
    pub fn state_with(&self, state: LiveState, detail: &str) {
        self.update(|p| {
            p.state = state;
            p.detail = detail.to_owned();
        });
    }

    /// Page `page` (1-based, in the whole document) is on the line.
    pub fn sending(&self, page: u32) {
        self.update(|p| {
            p.state = LiveState::Sending;
            p.page = page;
            p.detail.clear();
        });
    }

    /// The attempt ended: `state` (an end), the pages confirmed in all and
    /// why.
    pub fn end(&self, state: LiveState, pages_confirmed: u32, detail: &str) {
        self.update(|p| {
            p.state = state;
            p.page = pages_confirmed;
            p.detail = detail.to_owned();
        });
    }

    /// Whether the entry has ended (or is gone).
    pub fn ended(&self) -> bool {
        self.current().is_none_or(|p| p.state.is_end())
    }
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
