//! The `spool` engine: fax boards and gateways that integrate by files
//! (the spool directories of Brooktrout/Dialogic SR140 servers, the drop
//! directories of RightFax or Kofax, HylaFAX-style `key: value` q-files).
//! No line is ours: a job is a pair of files in `outgoing`, the board
//! answers in `status`, and the faxes it receives appear in `incoming`.
//!
//! The contract (also in docs/configuration.md, `engine = "spool"`):
//! - **Send.** For a job we pick an id `JOBID` (`[A-Za-z0-9+_-]`) and
//!   write `outgoing/JOBID.tif` (the TIFF-F document, every page) and
//!   then `outgoing/JOBID.job` (the control file: [`control::job_file`]).
//!   Each is written as `.NAME`, synced, and renamed; the `.job` comes
//!   last, so its presence means the job is complete. The board takes a
//!   job by renaming or removing `JOBID.job` (it must never take a name
//!   starting with `.`), sends pages `first_page..=pages`, and writes
//!   `status/JOBID.status` the same way (`.JOBID.status`, then rename).
//!   We read it ([`control::status_result`]), then remove it together with
//!   `outgoing/JOBID.tif` and any `outgoing/JOBID.job` left.
//! - **Timeout.** No status within `job_timeout` of writing the job: the
//!   send is an error to retry. If the board has not taken the job, we
//!   withdraw it (rename `JOBID.job` to `.JOBID.withdrawn` — atomic, so
//!   either the board took it or we did — and remove the files); a job
//!   the board took is left to it, and a late status is removed unread
//!   at the next start. A send that is abandoned (the future dropped, as
//!   on shutdown) withdraws its job the same way.
//! - **Receive.** The board writes `incoming/NAME.tif` and then
//!   `incoming/NAME.rx` (`.NAME…` temporaries, renamed). `receive()`
//!   polls `incoming` for a `NAME.rx` whose `NAME.tif` is there (names
//!   starting with `.` are never looked at, a `.tif` alone is never
//!   taken), copies (hard-links) both into `received` as
//!   `TIME-N-NAME.tif`/`.rx`, and returns the fax ([`incoming`]). The
//!   pair is removed from `incoming` (`NAME.rx` first) only when the
//!   fax is acknowledged, once its mails are queued; a pair still there
//!   at the next start is taken again (a crash may duplicate a fax, never
//!   lose it).
//! - `lines` bounds the jobs in `outgoing`/at the board at once: `send`
//!   waits for a free one.
//! - **Live state.** A job written is shown waiting (at the board); once
//!   the board has taken it, dialling; the status file is the only other
//!   word from the board, and it comes at the end.

use super::lines::{Line, Lines};
use super::{FaxEngine, ReceivedFax, SendRequest, SendResult};
use crate::live::LiveState;
use files::FileError;
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub mod control;
pub mod files;
pub mod incoming;

/// The settings of the spool engine (`[fax.spool_engine]`).
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Jobs at the board at once (`[fax] lines`); at least 1.
    pub lines: usize,
    /// Where jobs are written for the board.
    pub outgoing: PathBuf,
    /// Where the board writes how each job ended.
    pub status: PathBuf,
    /// Where the board writes the faxes it received.
    pub incoming: PathBuf,
    /// Where received faxes are moved when taken.
    pub received: PathBuf,
    /// How often `status` and `incoming` are looked at.
    pub poll_interval: Duration,
    /// How long a job may take, from writing it to its status.
    pub job_timeout: Duration,
}

impl Default for SpoolSettings {
    /// Two lines, the directories under `var/fax/board/`, received faxes
    /// in `var/fax/inbound`, polled every second, jobs for 10 minutes.
    fn default() -> Self {
        SpoolSettings {
            lines: 2,
            outgoing: PathBuf::from("var/fax/board/outgoing"),
            status: PathBuf::from("var/fax/board/status"),
            incoming: PathBuf::from("var/fax/board/incoming"),
            received: PathBuf::from("var/fax/inbound"),
            poll_interval: Duration::from_secs(1),
            job_timeout: Duration::from_secs(600),
        }
    }
}

/// Errors setting up the spool engine.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("[fax] lines must be at least 1")]
    NoLines,
    #[error("[fax.spool_engine] {0} must be more than 0")]
    Zero(&'static str),
    #[error("[fax.spool_engine] {a} and {b} must be different directories ({path:?})")]
    SameDirectory {
        a: &'static str,
        b: &'static str,
        path: PathBuf,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// The spool engine. See the module documentation.
pub struct SpoolEngine {
    settings: Arc<SpoolSettings>,
    lines: Lines,
    /// Names files uniquely within one millisecond.
    sequence: Arc<AtomicU64>,
    /// One `receive()` scans at a time.
    receiving: tokio::sync::Mutex<()>,
    /// Faxes taken from `incoming` and not yet handed out.
    taken: Arc<std::sync::Mutex<VecDeque<ReceivedFax>>>,
    /// The `NAME`s taken and not yet acknowledged: not taken again.
    handed: Arc<std::sync::Mutex<HashSet<String>>>,
    stopped: AtomicBool,
    stop: Notify,
}

impl SpoolEngine {
    /// Checks the settings, makes the directories and removes what a
    /// previous run left: our temporaries and withdrawn jobs in
    /// `outgoing`, and statuses nobody waits for any more.
    pub fn new(settings: SpoolSettings) -> Result<SpoolEngine, SpoolError> {
        if settings.lines == 0 {
            return Err(SpoolError::NoLines);
        }
        if settings.poll_interval.is_zero() {
            return Err(SpoolError::Zero("poll_interval"));
        }
        if settings.job_timeout.is_zero() {
            return Err(SpoolError::Zero("job_timeout"));
        }
        let dirs = [
            ("outgoing", &settings.outgoing),
            ("status", &settings.status),
            ("incoming", &settings.incoming),
            ("received", &settings.received),
        ];
        for (i, (a, path)) in dirs.iter().enumerate() {
            files::make_dir(path)?;
            for (b, other) in &dirs[i + 1..] {
                if same_dir(path, other) {
                    return Err(SpoolError::SameDirectory {
                        a,
                        b,
                        path: (*path).clone(),
                    });
                }
            }
        }
        clean_stale(&settings);
        Ok(SpoolEngine {
            lines: Lines::new(settings.lines),
            sequence: Arc::new(AtomicU64::new(0)),
            receiving: tokio::sync::Mutex::new(()),
            taken: Arc::default(),
            handed: Arc::default(),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
            settings: Arc::new(settings),
        })
    }

    /// Stops receiving: `receive()` hands out what was already taken,
    /// then returns `None`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    fn pop_taken(&self) -> Option<ReceivedFax> {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// The settings in use.
    pub fn settings(&self) -> &SpoolSettings {
        &self.settings
    }

    /// A new unique `TIME-N-LABEL` (Unix milliseconds, a counter).
    fn new_id(&self, label: &str) -> String {
        unique_name(&self.sequence, label)
    }

    async fn line(&self) -> Result<Line, String> {
        self.lines
            .take()
            .await
            .ok_or_else(|| "the fax engine has stopped".to_owned())
    }

    /// Writes the job, then waits for its status.
    async fn run_job(&self, request: SendRequest) -> SendResult {
        let id = self.new_id(&request.job_id);
        let job = Job::new(&self.settings, id.clone());
        let (tif, control) = (job.tif.clone(), job.control.clone());
        let text = control::job_file(&id, &request, &format!("{id}.tif"), SystemTime::now());
        let document = request.document.clone();
        let written = tokio::task::spawn_blocking(move || {
            files::copy_atomic(&document, &tif)?;
            files::write_atomic(&control, text.as_bytes())
        })
        .await;
        let mut job = job;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return job.abandon(format!("cannot queue the job for the board: {e}")),
            Err(e) => return job.abandon(format!("the job writer failed: {e}")),
        }
        tracing::info!(job = %request.job_id, id = %id, dial = %request.dial, "fax job written for the board");
        let to_send = request.pages + 1 - request.first_page;
        let deadline = Instant::now() + self.settings.job_timeout;
        request.report_with(LiveState::WaitingForLine, "written for the fax board");
        let mut taken = false;
        loop {
            // The board took the job (its control file is gone): on the
            // line as far as we can tell; the board says no more until
            // the end.
            if !taken && !job.control.exists() {
                taken = true;
                request.report_with(LiveState::Dialling, "taken by the fax board");
            }
            match job.status(to_send).await {
                Some(result) => return result,
                None if Instant::now() >= deadline => {
                    return job.timed_out(self.settings.job_timeout)
                }
                None => tokio::time::sleep(self.settings.poll_interval).await,
            }
        }
    }
}

/// A job written to `outgoing`; withdrawn when dropped unfinished.
struct Job {
    id: String,
    tif: PathBuf,
    control: PathBuf,
    status: PathBuf,
    finished: bool,
}

impl Job {
    fn new(settings: &SpoolSettings, id: String) -> Job {
        Job {
            tif: settings.outgoing.join(format!("{id}.tif")),
            control: settings.outgoing.join(format!("{id}.job")),
            status: settings.status.join(format!("{id}.status")),
            id,
            finished: false,
        }
    }

    /// The status, once the board wrote it; read, then removed with the
    /// job's files.
    async fn status(&mut self, to_send: u32) -> Option<SendResult> {
        let status = self.status.clone();
        let read = tokio::task::spawn_blocking(move || {
            if !status.exists() {
                return None;
            }
            Some(files::read_control(&status, control::MAX_CONTROL))
        })
        .await;
        let text = match read {
            Ok(None) => return None,
            Ok(Some(text)) => text,
            Err(e) => Err(format!("the status reader failed: {e}")),
        };
        let result = text
            .and_then(|t| control::Control::parse(&t))
            .and_then(|c| control::status_result(&c, to_send))
            .unwrap_or_else(|e| SendResult::Error {
                reason: format!("bad status file {:?}: {e}", self.status),
                retry: true,
            });
        self.finish();
        Some(result)
    }

    /// No status in time: withdraw the job if the board has not taken it.
    fn timed_out(&mut self, timeout: Duration) -> SendResult {
        let reason = if self.withdraw() {
            format!(
                "the fax board did not take job {} within {timeout:?}",
                self.id
            )
        } else {
            format!(
                "the fax board took job {} but wrote no status within {timeout:?}",
                self.id
            )
        };
        self.finished = true;
        SendResult::Error {
            reason,
            retry: true,
        }
    }

    /// Gives up before the job was complete: its files removed.
    fn abandon(&mut self, reason: String) -> SendResult {
        self.finish();
        SendResult::Error {
            reason,
            retry: true,
        }
    }

    /// Takes the job back unless the board has: `true` if it was still
    /// waiting in `outgoing` (its files are then removed).
    fn withdraw(&mut self) -> bool {
        let aside = self
            .control
            .with_file_name(format!(".{}.withdrawn", self.id));
        match std::fs::rename(&self.control, &aside) {
            Ok(()) => {
                let _ = files::remove_if_there(&aside);
                let _ = files::remove_if_there(&self.tif);
                tracing::info!(id = %self.id, "fax job withdrawn from the board");
                true
            }
            Err(_) => false,
        }
    }

    /// Removes the status and what is left of the job.
    fn finish(&mut self) {
        for path in [&self.status, &self.control, &self.tif] {
            if let Err(e) = files::remove_if_there(path) {
                tracing::warn!("fax spool: {e}");
            }
        }
        let _ = files::remove_if_there(&files::temp_name(&self.tif));
        self.finished = true;
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.finished {
            self.withdraw();
        }
    }
}

#[async_trait::async_trait]
impl FaxEngine for SpoolEngine {
    fn name(&self) -> &'static str {
        "spool"
    }

    fn lines(&self) -> usize {
        self.settings.lines
    }

    fn lines_busy(&self) -> usize {
        self.lines.busy()
    }

    async fn send(&self, request: SendRequest) -> SendResult {
        if let Err(reason) = request.check(None) {
            return SendResult::Error {
                reason,
                retry: false,
            };
        }
        if let Err(e) = std::fs::metadata(&request.document) {
            return SendResult::Error {
                reason: format!("cannot read the document {:?}: {e}", request.document),
                retry: false,
            };
        }
        let _line = match self.line().await {
            Ok(line) => line,
            Err(reason) => {
                return SendResult::Error {
                    reason,
                    retry: true,
                }
            }
        };
        self.run_job(request).await
    }

    /// Cancel-safe: a fax taken by a scan whose `receive()` was dropped
    /// is handed out by the next call.
    async fn receive(&self) -> Option<ReceivedFax> {
        let _one = self.receiving.lock().await;
        loop {
            let stopped = self.stop.notified();
            if let Some(fax) = self.pop_taken() {
                return Some(fax);
            }
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            let settings = self.settings.clone();
            let sequence = self.sequence.clone();
            let taken = self.taken.clone();
            let handed = self.handed.clone();
            let scan = tokio::task::spawn_blocking(move || {
                let mut handed = handed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(fax) = incoming::take_next(&settings, &sequence, &mut handed) {
                    taken
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(fax);
                    return true;
                }
                false
            })
            .await;
            match scan {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!("fax spool: the incoming scan failed: {e}"),
            }
            tokio::select! {
                _ = stopped => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Removes the pair from `incoming`.
    async fn acknowledge(&self, fax: &ReceivedFax) {
        let Some(name) = fax.source.clone() else {
            return;
        };
        let settings = self.settings.clone();
        let handed = self.handed.clone();
        let done = tokio::task::spawn_blocking(move || {
            incoming::acknowledge(&settings, &name);
            handed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        })
        .await;
        if let Err(e) = done {
            tracing::warn!("fax spool: acknowledging {:?} failed: {e}", fax.document);
        }
    }
}

/// A new unique `TIME-N-LABEL` (Unix milliseconds, a counter).
fn unique_name(sequence: &AtomicU64, label: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let n = sequence.fetch_add(1, Ordering::Relaxed);
    format!("{ms}-{n}-{}", files::label(label))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// At start: our temporaries and withdrawn jobs in `outgoing` and the
/// statuses in `status` belong to sends of an earlier run, which nobody
/// waits for. Jobs still waiting (`JOBID.job`) are left: the board may
/// take them at any time, and the queue retries the recipient anyway.
fn clean_stale(settings: &SpoolSettings) {
    let sweep = |dir: &Path, stale: &dyn Fn(&str) -> bool| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if stale(&name) {
                let path = entry.path();
                match files::remove_if_there(&path) {
                    Ok(()) => tracing::info!("fax spool: removed {path:?} from an earlier run"),
                    Err(e) => tracing::warn!("fax spool: {e}"),
                }
            }
        }
    };
    sweep(&settings.outgoing, &|n| {
        n.ends_with(".withdrawn")
            || (n.starts_with('.') && (n.ends_with(".tif") || n.ends_with(".job")))
    });
    sweep(&settings.status, &|n| {
        !n.starts_with('.') && n.ends_with(".status")
    });
}

#[cfg(test)]
mod tests;
