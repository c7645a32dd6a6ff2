//! The open sled database, and opening it again after a write error.
//!
//! sled 0.34 makes an I/O error sticky: once writing its log failed (a full
//! disk), every later operation of that `Db` fails with the same error,
//! even after space returned. So the store keeps the database in a slot
//! ([`Slot`]) it can empty and fill again: after a failure it drops the old
//! handles and opens the directory anew, which recovers everything synced
//! before the failure (every acknowledged message) and rebuilds the
//! schedule index from it. Writes that were not synced may be lost; that
//! repeats a delivery, which the invariants allow, and never loses one.

use super::index::{build, Built, Index};
use super::segments::{Loc, Segments, UNSYNCED_FROM};
use crate::body::BodyFiles;
use crate::error::{io_disk_full, QueueError};
use crate::lock::lock;
use crate::space::available;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// sled's errors, as the queue's (`?` on a sled call): the source kept,
/// a full disk told apart.
impl From<sled::Error> for QueueError {
    fn from(e: sled::Error) -> QueueError {
        let disk_full = matches!(&e, sled::Error::Io(io) if io_disk_full(io));
        QueueError::Backend {
            context: String::new(),
            source: Box::new(e),
            disk_full,
        }
    }
}

/// The handles of one opening of the database.
pub(crate) struct Db {
    pub db: sled::Db,
    pub envelopes: sled::Tree,
    /// Where each body kept in a segment lies ([`Loc`], by queue id).
    pub body_at: sled::Tree,
    /// sled's log file, fsynced by the store (sled only calls
    /// `sync_file_range`).
    pub log: std::fs::File,
}

/// Where the current [`Db`] lives; empty while it is being reopened.
pub(crate) type Slot = RwLock<Option<Arc<Db>>>;

/// Wait at least this long between two attempts to reopen the database.
const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// Free space the filesystem needs before a reopen is tried (opening
/// writes to sled's log).
const REOPEN_ROOM: u64 = 1024 * 1024;

/// What the store and its sync thread share: the database slot, the
/// schedule index, and what a reopening needs.
pub(crate) struct Shared {
    /// The queue directory.
    pub path: PathBuf,
    /// The body files, and those being written.
    pub files: Arc<BodyFiles>,
    /// The segments small bodies are kept in.
    pub segments: Segments,
    /// The bound of sled's page cache, in bytes.
    pub cache: u64,
    /// The open database (empty while it is reopened).
    pub slot: Slot,
    /// Set when sled failed to write: the database must be reopened.
    pub broken: AtomicBool,
    pub index: Mutex<Index>,
    /// Bodies of removed messages, deleted after the next sync.
    pub doomed: Mutex<Vec<Doomed>>,
    /// Wakes the scheduler: a message arrived, was released, rescheduled,
    /// updated — or the whole queue was read again.
    pub changed: Notify,
    /// Held while reopening; when the last attempt was.
    last_reopen: Mutex<Option<Instant>>,
    /// Held shared by every enqueue from its body file to its envelope,
    /// and alone by a reopening: its orphan scan must never see a body
    /// whose envelope is about to be inserted (it would remove the body
    /// of a message about to be acknowledged).
    pub writing: tokio::sync::RwLock<()>,
    /// The disk reserve (`[queue] min_free`) the last writer asked to keep:
    /// moving a body out of its segment (`evict.rs`) keeps it too.
    pub reserve: AtomicU64,
    /// Bodies left in their segment because the move would have eaten
    /// into the reserve.
    pub kept_for_room: AtomicU64,
}

/// The body of a removed message, to go once the removal is synced.
pub(crate) enum Doomed {
    File(PathBuf),
    InSegment(Loc),
}

impl Shared {
    pub fn new(path: &Path, files: Arc<BodyFiles>, cache: u64, db: Db, built: Built) -> Shared {
        let Built {
            index,
            locs,
            segments,
        } = built;
        Shared {
            path: path.to_path_buf(),
            segments: Segments::open(&files.dir, &segments, &locs),
            files,
            cache,
            slot: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
            index: Mutex::new(index),
            doomed: Mutex::new(Vec::new()),
            changed: Notify::new(),
            last_reopen: Mutex::new(None),
            writing: tokio::sync::RwLock::new(()),
            reserve: AtomicU64::new(0),
            kept_for_room: AtomicU64::new(0),
        }
    }

    /// The current handles, or [`QueueError::Reopening`].
    pub fn current(&self) -> Result<Arc<Db>, QueueError> {
        self.slot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(QueueError::Reopening)
    }

    /// Whether the database is poisoned and a reopen may be tried now (not
    /// within [`REOPEN_INTERVAL`] of the last, and with room to write).
    pub fn reopen_due(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
            && !lock(&self.last_reopen).is_some_and(|t| t.elapsed() < REOPEN_INTERVAL)
            && available(&self.files.dir).unwrap_or(0) >= REOPEN_ROOM
    }

    /// After a write error poisoned the database: drop its handles and
    /// open it again, rebuilding the schedule index from what is on disk.
    /// Does nothing when the database is healthy.
    pub fn reopen(&self) -> Result<(), QueueError> {
        if !self.broken.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Ok(mut last) = self.last_reopen.try_lock() else {
            return Err(QueueError::Reopening); // another caller is at it
        };
        *last = Some(Instant::now());
        // Wait for enqueues between body and envelope (a blocking wait
        // that works in and out of an async runtime: this runs on the
        // sync thread, or on a caller's blocking thread).
        let _alone = loop {
            match self.writing.try_write() {
                Ok(guard) => break guard,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let old = self.slot.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(old);
        // Bodies waiting for a removal that may not have reached the disk:
        // whatever has no envelope after the reopen is removed as an orphan.
        lock(&self.doomed).clear();
        // Handles still held elsewhere keep sled's lock a moment: `load`
        // waits for it.
        let (db, built) = match load(
            &self.path,
            &self.files.dir,
            self.cache,
            &self.files.receiving,
        ) {
            Ok(opened) => opened,
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the queue database; trying again later");
                return Err(e);
            }
        };
        let messages = db.envelopes.len();
        self.segments.rebuild(&built.segments, &built.locs);
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
        *lock(&self.index) = built.index;
        self.broken.store(false, Ordering::SeqCst);
        self.changed.notify_one();
        tracing::warn!(
            messages,
            "queue database reopened after a write error; results not synced before it may be repeated"
        );
        Ok(())
    }
}

/// Open the database at `path`, remove bodies in `bodies` whose message
/// was never committed (but those `receiving`: being written), and build
/// the schedule index; `cache`: the bound of sled's page cache.
pub(crate) fn load(
    path: &Path,
    bodies: &Path,
    cache: u64,
    receiving: &Mutex<HashSet<String>>,
) -> Result<(Db, Built), QueueError> {
    let db = open_sled(path, cache)?;
    let envelopes = db.open_tree("envelopes")?;
    let body_at = db.open_tree("body-at")?;
    let file =
        |p: PathBuf| std::fs::File::open(&p).map_err(|source| QueueError::File { path: p, source });
    let log = file(path.join("db"))?;

    let unsynced_from = db
        .get(UNSYNCED_FROM)?
        .and_then(|v| v.as_ref().try_into().ok())
        .map_or(0, u64::from_be_bytes);
    let built = build(&envelopes, &body_at, bodies, receiving, unsynced_from)?;
    Ok((
        Db {
            db,
            envelopes,
            body_at,
            log,
        },
        built,
    ))
}

/// Open sled at `path`. sled locks its `db` file, and a `Db` that was
/// just dropped in this process may keep the file (and the lock) open a
/// moment longer in one of sled's background tasks; so a lock that is
/// refused is tried again for up to [`LOCK_WAIT`] before it is an error
/// (another process that holds the queue still gets one after that).
fn open_sled(path: &Path, cache: u64) -> Result<sled::Db, QueueError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(500))
            .cache_capacity(cache)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_lock_refused(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let disk_full = matches!(&e, sled::Error::Io(io) if io_disk_full(io));
                return Err(QueueError::Backend {
                    context: path.display().to_string(),
                    source: Box::new(e),
                    disk_full,
                });
            }
        }
    }
}

/// How long [`open_sled`] waits for sled's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Whether sled refused to open because its file lock is held (sled 0.34
/// wraps the `flock` error in an `Other` error that names it).
fn is_lock_refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(11)
        || e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().contains("could not acquire lock")
}

/// Whether a sled error means the database must be reopened: an I/O
/// error is sticky in sled 0.34.
pub(crate) fn is_sticky(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(_))
}
