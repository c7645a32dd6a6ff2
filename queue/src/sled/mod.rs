//! The sled backend of the queue: envelopes in sled, bodies in files, an
//! in-memory schedule index, and group commit. [`SledStore`] implements
//! [`crate::QueueStore`] (in `api.rs`); nothing outside this module names
//! a sled type.
//!
//! Layout under the queue directory: `db` and friends are sled's, whose
//! tree `envelopes` maps a queue id to the JSON envelope. The message
//! octets live outside sled: a body under 256 KiB is appended to a shared
//! segment file `bodies/seg-N` (`segments.rs`; the tree `body-at` says
//! where), a larger one streams to `bodies/ID`. A message is committed by
//! its envelope: the body is written and synced first (the segment
//! fdatasynced, or the file fsynced, and the `bodies` directory when a
//! file was made), then the envelope is inserted, and an enqueue returns
//! only after sled's log is flushed and the log file fsynced. (sled 0.34
//! itself only calls `sync_file_range`, which neither flushes the disk's
//! write cache nor file metadata, and writes large values to unsynced
//! blob files; so bodies live outside sled and the store adds the
//! fsyncs.) A body without an envelope (a crash before the commit) is
//! removed when the store is opened.
//!
//! Group commit: a dedicated thread performs the shared syncs
//! (`commit.rs`). Each enqueue registers a waiter after its writes; the
//! thread takes every waiter that is queued, runs one flush and fsync, and
//! answers them all, so N concurrent sessions cost about one sync, not N.
//!
//! A write error (a full disk) poisons sled's handles; the store then
//! opens the database again before its next use (`db.rs`).
//!
//! Leases live in memory: one process owns a sled queue (sled locks it).
//!
//! Files: `db.rs` (the handles and their reopening), `commit.rs` (the sync
//! thread), `index.rs` and `etrn_index.rs` (the in-memory indexes, built
//! at open), `segments.rs` (the segment files of small bodies),
//! `evict.rs` (the body of a message that waits moves to a file),
//! `write.rs` (enqueue, update, remove), `read.rs` (reads, the
//! schedule, leases), `trees.rs` (fax history and broadcasts),
//! `faxlog.rs` (searching it; received faxes, usage, documents), `api.rs`
//! (the trait).

mod api;
mod commit;
mod db;
mod etrn_index;
mod evict;
mod faxlog;
mod index;
mod read;
mod segments;
#[cfg(test)]
mod tests;
mod trees;
mod write;

use crate::body::BodyFiles;
use crate::envelope::QueueId;
use crate::error::QueueError;
use crate::lock::lock;
use crate::store::Store;
use crate::time::now_unix;
use commit::{commit_loop, Syncer, Waiter};
use db::{is_sticky, load, Db, Shared};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};

/// The default bound of sled's page cache: 64 MiB.
pub const DEFAULT_CACHE: u64 = 64 * 1024 * 1024;

struct Inner {
    /// What the store and its sync thread share.
    shared: Arc<Shared>,
    /// Serialises read-modify-write of envelopes within this process.
    write: Mutex<()>,
    commit_tx: Mutex<Option<mpsc::Sender<Waiter>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Messages whose body is to leave its segment (`evict.rs`).
    evict_tx: Mutex<Option<mpsc::Sender<QueueId>>>,
    evictor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Leased messages: the lease's token and when it expires.
    leases: Mutex<HashMap<QueueId, (u64, std::time::Instant)>>,
    /// The last lease token handed out.
    last_token: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    /// Stop the sync thread and wait for it, so that the database (and its
    /// lock) is closed when the last handle goes away.
    fn drop(&mut self) {
        lock(&self.evict_tx).take();
        if let Some(handle) = lock(&self.evictor).take() {
            let _ = handle.join();
        }
        lock(&self.commit_tx).take();
        if let Some(handle) = lock(&self.committer).take() {
            let _ = handle.join();
        }
    }
}

/// The queue on sled. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl SledStore {
    /// Open (or create) the queue at `path`, remove half-written messages,
    /// and build the schedule index. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<SledStore, QueueError> {
        SledStore::open_with_cache(path, DEFAULT_CACHE)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache` bytes
    /// (a soft bound: sled may pass it a little).
    pub fn open_with_cache(path: &Path, cache: u64) -> Result<SledStore, QueueError> {
        let bodies = path.join("bodies");
        std::fs::create_dir_all(&bodies).map_err(|source| QueueError::File {
            path: bodies.clone(),
            source,
        })?;
        let files = Arc::new(BodyFiles::with_small_in_memory(bodies));
        let (db, built) = load(path, &files.dir, cache, &Default::default())?;
        let shared = Arc::new(Shared::new(path, files, cache, db, built));
        let (tx, rx) = mpsc::channel::<Waiter>();
        let syncer = Syncer::new(shared.clone())?;
        let thread_error = |e: std::io::Error| QueueError::Sync {
            message: e.to_string(),
            disk_full: false,
        };
        let committer = std::thread::Builder::new()
            .name("queue-sync".into())
            .spawn(move || commit_loop(syncer, rx))
            .map_err(thread_error)?;
        let (evict_tx, evict_rx) = mpsc::channel::<QueueId>();
        let evicting = shared.clone();
        let evictor = std::thread::Builder::new()
            .name("queue-evict".into())
            .spawn(move || evict::evict_loop(evicting, evict_rx))
            .map_err(thread_error)?;

        Ok(SledStore {
            inner: Arc::new(Inner {
                shared,
                write: Mutex::new(()),
                commit_tx: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(committer)),
                evict_tx: Mutex::new(Some(evict_tx)),
                evictor: Mutex::new(Some(evictor)),
                leases: Mutex::new(HashMap::new()),
                last_token: Default::default(),
            }),
        })
    }

    /// The database, for the other trees (fax history, broadcasts).
    fn db(&self) -> Result<sled::Db, QueueError> {
        Ok(self.handles()?.db.clone())
    }

    /// The current handles.
    fn handles(&self) -> Result<Arc<Db>, QueueError> {
        self.inner.shared.current()
    }

    /// A sled error, noting whether it poisoned the database.
    fn sled_error(&self, e: sled::Error) -> QueueError {
        if is_sticky(&e) {
            self.inner.shared.broken.store(true, Ordering::SeqCst);
        }
        QueueError::from(e)
    }

    /// Remember the disk reserve a writer keeps, for the moves out of
    /// segments (`evict.rs`).
    fn keep_reserve(&self, reserve: u64) {
        self.inner.shared.reserve.store(reserve, Ordering::Relaxed);
    }

    /// The body files.
    fn files(&self) -> &Arc<BodyFiles> {
        &self.inner.shared.files
    }

    /// A fresh queue id (unique in this store, roughly sorted by time).
    fn new_id(&self) -> Result<QueueId, QueueError> {
        let n = self
            .handles()?
            .db
            .generate_id()
            .map_err(|e| self.sled_error(e))?;
        Ok(format!(
            "{:08X}{:05X}",
            now_unix() & 0xFFFF_FFFF,
            n & 0xF_FFFF
        ))
    }

    /// After a write error poisoned the database: open it again now
    /// (the sync thread also does so by itself, once space returns; see
    /// `Shared::reopen`). Does nothing when the database is healthy.
    fn recover(&self) -> Result<(), QueueError> {
        self.inner.shared.reopen()
    }

    /// Whether a write error left the database to be reopened.
    fn is_broken(&self) -> bool {
        self.inner.shared.broken.load(Ordering::SeqCst)
    }
}

impl Store {
    /// Open the queue at `path` on sled (the embedded default).
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        Ok(Store::new(SledStore::open(path)?))
    }

    /// [`Store::open`] with sled's page cache bounded to `cache` bytes.
    pub fn open_with_cache(path: &Path, cache: u64) -> Result<Store, QueueError> {
        Ok(Store::new(SledStore::open_with_cache(path, cache)?))
    }
}
