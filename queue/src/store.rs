//! The durable store: envelopes in sled, bodies in files, an in-memory
//! schedule index, and group commit.
//!
//! Layout under the queue directory: `db` and friends are sled's, whose
//! tree `envelopes` maps a queue id to the JSON envelope; `bodies/ID` holds
//! the message octets. A message is committed by its envelope: the body
//! file is written and fsynced first, then the envelope is inserted, and
//! [`Store::enqueue`] returns only after sled's log is flushed and the log
//! file and the `bodies` directory are fsynced. (sled 0.34 itself only
//! calls `sync_file_range`, which neither flushes the disk's write cache
//! nor file metadata, and writes large values to unsynced blob files; so
//! bodies live outside sled and the store adds the fsyncs.) A body without
//! an envelope (a crash before the commit) is removed when the store is
//! opened.
//!
//! Group commit: a dedicated thread performs the shared syncs. Each
//! enqueue registers a waiter after its writes; the thread takes every
//! waiter that is queued, runs one flush and fsync, and answers them all,
//! so N concurrent sessions cost about one sync, not N.
//!
//! A write error (a full disk) poisons sled's handles; the store then
//! opens the database again before its next use (`crate::db`).

use crate::body::BodyWriter;
use crate::commit::{commit_loop, SyncKind, SyncResult, Syncer, Waiter};
use crate::db::{is_sticky, load, Db, Shared};
use crate::envelope::{Envelope, NewMessage, QueueId};
use crate::etrn_index::{envelope_marks, Pending};
use crate::time::now_unix;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The default bound of sled's page cache: 64 MiB.
pub const DEFAULT_CACHE: u64 = 64 * 1024 * 1024;

/// Errors of the queue store.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue store {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("queue store: {0}")]
    Db(#[from] sled::Error),
    #[error("queue store: envelope {id} is corrupt: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("queue store: cannot encode envelope: {0}")]
    Encode(serde_json::Error),
    #[error("queue store: {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("queue store: sync failed: {message}")]
    Sync { message: String, disk_full: bool },
    #[error("queue store: the flush thread is gone")]
    CommitterGone,
    #[error("queue store: the database is being reopened after a write error")]
    Reopening,
    #[error(
        "insufficient system storage: {free} bytes free on the queue's filesystem, {needed} needed"
    )]
    NoRoom { free: u64, needed: u64 },
    #[error("queue store: refused an address with a control character: {0:?}")]
    BadAddress(String),
}

pub(crate) fn io_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

impl QueueError {
    /// Whether the error comes from a full disk (or quota): the sender
    /// should get 452 4.3.1 and try again later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            QueueError::Db(sled::Error::Io(e))
            | QueueError::Open {
                source: sled::Error::Io(e),
                ..
            } => io_disk_full(e),
            QueueError::File { source, .. } => io_disk_full(source),
            QueueError::Sync { disk_full, .. } => *disk_full,
            QueueError::NoRoom { .. } | QueueError::Reopening => true,
            _ => false,
        }
    }
}

/// Messages by where they stand (see [`Store::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueCounts {
    pub due: usize,
    pub waiting: usize,
    pub held: usize,
}

struct Inner {
    /// What the store and its sync thread share.
    shared: Arc<Shared>,
    /// Serialises read-modify-write of envelopes within this process.
    write: Mutex<()>,
    commit_tx: Mutex<Option<mpsc::Sender<Waiter>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    /// Stop the sync thread and wait for it, so that the database (and its
    /// lock) is closed when the last `Store` goes away.
    fn drop(&mut self) {
        lock(&self.commit_tx).take();
        if let Some(handle) = lock(&self.committer).take() {
            let _ = handle.join();
        }
    }
}

/// The message queue. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// The database, for the other trees of this crate (fax history).
    pub(crate) fn db(&self) -> Result<sled::Db, QueueError> {
        Ok(self.handles()?.db.clone())
    }

    /// The current handles.
    pub(crate) fn handles(&self) -> Result<Arc<Db>, QueueError> {
        self.inner.shared.current()
    }

    /// A sled error, noting whether it poisoned the database.
    pub(crate) fn sled_error(&self, e: sled::Error) -> QueueError {
        if is_sticky(&e) {
            self.inner.shared.broken.store(true, Ordering::SeqCst);
        }
        QueueError::Db(e)
    }

    /// Open (or create) the queue at `path`, remove half-written messages,
    /// and build the schedule index. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        Store::open_with_cache(path, DEFAULT_CACHE)
    }

    /// [`Store::open`] with sled's page cache bounded to `cache` bytes (a
    /// soft bound: sled may pass it a little).
    pub fn open_with_cache(path: &Path, cache: u64) -> Result<Store, QueueError> {
        let bodies = path.join("bodies");
        std::fs::create_dir_all(&bodies).map_err(|source| QueueError::File {
            path: bodies.clone(),
            source,
        })?;
        let (db, index) = load(path, &bodies, cache, &Default::default())?;
        let shared = Arc::new(Shared::new(path, bodies, cache, db, index));
        let (tx, rx) = mpsc::channel::<Waiter>();
        let syncer = Syncer::new(shared.clone())?;
        let committer = std::thread::Builder::new()
            .name("queue-sync".into())
            .spawn(move || commit_loop(syncer, rx))
            .map_err(|e| QueueError::Sync {
                message: e.to_string(),
                disk_full: false,
            })?;

        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                write: Mutex::new(()),
                commit_tx: Mutex::new(Some(tx)),
                committer: Mutex::new(Some(committer)),
            }),
        })
    }

    /// After a write error poisoned the database: open it again now
    /// (the sync thread also does so by itself, once space returns; see
    /// [`Shared::reopen`]). Does nothing when the database is healthy.
    /// Blocking: it reads the whole queue.
    pub fn recover(&self) -> Result<(), QueueError> {
        self.inner.shared.reopen()
    }

    /// A fresh queue id (unique in this store, roughly sorted by time).
    pub fn new_id(&self) -> Result<QueueId, QueueError> {
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

    /// Store a message durably. Returns only after the body and envelope
    /// are flushed and synced to disk; the caller may then acknowledge.
    pub async fn enqueue(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        let mut writer = self.begin_body(&id, 0)?;
        for piece in body.chunks(1 << 20) {
            writer.write(piece).await?;
        }
        self.enqueue_body(msg, writer, String::new()).await
    }

    /// Commit a message whose body was written with a [`BodyWriter`]
    /// ([`Store::begin_body`]): the body file is fsynced, the bodies
    /// directory synced, then the envelope inserted and synced (group
    /// commit). `head` is header fields the receiver puts above the body
    /// (its trace and authentication results), kept in the envelope:
    /// the message is `head` followed by the body file. Returns only once
    /// all is on disk; the caller may then acknowledge. On an error the
    /// body file is removed.
    pub async fn enqueue_body(
        &self,
        msg: NewMessage,
        mut body: BodyWriter,
        head: String,
    ) -> Result<Envelope, QueueError> {
        if let Some(bad) = msg.unsafe_address() {
            return Err(QueueError::BadAddress(bad.to_string()));
        }
        body.flush(true).await?;
        let writing = self.inner.shared.writing.read().await;
        // The body's name is durable before its envelope can be.
        sync_outcome(self.request_sync(SyncKind::Bodies)?.await)?;
        let env = self.write_envelope(&body, msg, head)?;
        body.committed();
        drop(writing);
        if let Err(e) = self.sync().await {
            // Not acknowledged: take it back, so a retry by the client does
            // not make a second copy.
            let _ = self.remove(&env.id);
            return Err(e);
        }
        self.publish(&env);
        Ok(env)
    }

    /// [`Store::enqueue`] for callers outside an async runtime.
    pub fn enqueue_blocking(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        if let Some(bad) = msg.unsafe_address() {
            return Err(QueueError::BadAddress(bad.to_string()));
        }
        let mut writer = self.begin_body(&id, 0)?;
        writer.write_blocking(body)?;
        writer.flush_blocking(true)?;
        let writing = self.inner.shared.writing.blocking_read();
        sync_outcome(self.request_sync(SyncKind::Bodies)?.blocking_recv())?;
        let env = self.write_envelope(&writer, msg, String::new())?;
        writer.committed();
        drop(writing);
        if let Err(e) = self.sync_blocking() {
            let _ = self.remove(&env.id);
            return Err(e);
        }
        self.publish(&env);
        Ok(env)
    }

    /// What the store and its sync thread share (for [`BodyWriter`]).
    pub(crate) fn inner_shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The directory of the body files (on the queue's filesystem).
    pub(crate) fn bodies_dir(&self) -> &Path {
        &self.inner.shared.bodies
    }

    fn body_path(&self, id: &str) -> PathBuf {
        self.inner.shared.bodies.join(id)
    }

    /// Insert the envelope: the commit record, written after the body.
    /// On an error the body is left to its writer, which removes it.
    fn write_envelope(
        &self,
        body: &BodyWriter,
        msg: NewMessage,
        head: String,
    ) -> Result<Envelope, QueueError> {
        let size = head.len() as u64 + body.len();
        let mut env = msg.into_envelope(body.id().clone(), size, now_unix());
        env.head = head;
        let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
        let inserted = self.handles().and_then(|h| {
            h.envelopes
                .insert(env.id.as_bytes(), encoded)
                .map_err(|e| self.sled_error(e))
        })?;
        if inserted.is_none() {
            lock(&self.inner.shared.index).added();
        }
        Ok(env)
    }

    fn publish(&self, env: &Envelope) {
        let mut index = lock(&self.inner.shared.index);
        index.set(&env.id, env.due());
        index.etrn.set(&env.id, envelope_marks(env));
        drop(index);
        self.inner.shared.changed.notify_one();
    }

    /// Join the next shared sync; the receiver answers once it ran.
    fn request_sync(&self, kind: SyncKind) -> Result<oneshot::Receiver<SyncResult>, QueueError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.commit_tx)
            .as_ref()
            .ok_or(QueueError::CommitterGone)?
            .send((kind, tx))
            .map_err(|_| QueueError::CommitterGone)?;
        Ok(rx)
    }

    /// Wait until everything written so far is on disk (shared sync).
    pub async fn sync(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync(SyncKind::Full)?.await)
    }

    /// [`Store::sync`] for callers outside an async runtime.
    pub fn sync_blocking(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync(SyncKind::Full)?.blocking_recv())
    }

    /// Whether a write error left the database to be reopened
    /// ([`Store::recover`]).
    pub fn is_broken(&self) -> bool {
        self.inner.shared.broken.load(Ordering::SeqCst)
    }

    /// The envelope of a message.
    pub fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        let found = self
            .handles()?
            .envelopes
            .get(id.as_bytes())
            .map_err(|e| self.sled_error(e))?;
        match found {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| QueueError::Corrupt {
                    id: id.to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// The stored octets of a message: the header fields the receiver
    /// put above it ([`Envelope::head`]), then its body file.
    pub fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let head = match self.get(id)? {
            Some(env) => env.head,
            None => String::new(),
        };
        let path = self.body_path(id);
        let read = std::fs::File::open(&path).and_then(|mut f| {
            use std::io::Read;
            let len = f.metadata()?.len() as usize;
            let mut data = Vec::with_capacity(head.len() + len);
            data.extend_from_slice(head.as_bytes());
            f.read_to_end(&mut data)?;
            Ok(data)
        });
        match read {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(QueueError::File { path, source }),
        }
    }

    /// Change a message's envelope under the store's write lock and save
    /// it. A message whose recipients are all final is removed. Returns
    /// the envelope as saved, or `None` if the message is not (or no
    /// longer) in the queue. The change is written but not synced: losing
    /// it in a crash repeats a delivery, which is allowed, rather than
    /// losing one.
    pub fn update<F>(&self, id: &str, change: F) -> Result<Option<Envelope>, QueueError>
    where
        F: FnOnce(&mut Envelope),
    {
        let _guard = lock(&self.inner.write);
        let Some(mut env) = self.get(id)? else {
            return Ok(None);
        };
        change(&mut env);
        if env.is_done() {
            self.remove_locked(id)?;
        } else {
            let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
            self.handles()?
                .envelopes
                .insert(id.as_bytes(), encoded)
                .map_err(|e| self.sled_error(e))?;
            let mut index = lock(&self.inner.shared.index);
            index.set(id, env.due());
            index.etrn.set(id, envelope_marks(&env));
        }
        self.inner.shared.changed.notify_one();
        Ok(Some(env))
    }

    /// Delete a message (envelope first, so a crash leaves only an orphan
    /// body, which the next open removes). Returns whether it existed.
    pub fn remove(&self, id: &str) -> Result<bool, QueueError> {
        let _guard = lock(&self.inner.write);
        self.remove_locked(id)
    }

    fn remove_locked(&self, id: &str) -> Result<bool, QueueError> {
        let existed = self
            .handles()?
            .envelopes
            .remove(id.as_bytes())
            .map_err(|e| self.sled_error(e))?
            .is_some();
        // The body goes only after the envelope's removal is durable: a
        // crash before that must find the message whole, not an envelope
        // without its body.
        if existed {
            lock(&self.inner.shared.doomed).push(self.body_path(id));
        }
        let mut index = lock(&self.inner.shared.index);
        index.set(id, None);
        index.etrn.set(id, Vec::new());
        if existed {
            index.removed();
        }
        Ok(existed)
    }

    /// The messages an ETRN for `domains` (lower case) concerns, from
    /// the in-memory index: no read of the queue.
    ///
    /// Each with whether it waits — a recipient there still held, or the
    /// message not due before `now` (released once, deferred since) —
    /// and is not being released by an earlier ETRN already; those that
    /// wait are marked as being released.
    pub(crate) fn etrn_claim(&self, domains: &[String], now: u64) -> Pending {
        let mut index = lock(&self.inner.shared.index);
        let mut pending = index.etrn.pending(domains);
        for (id, waits) in &mut pending {
            *waits =
                !index.etrn.releasing(id) && (*waits || index.due_of(id).is_some_and(|t| t > now));
            if *waits {
                index.etrn.start_release(id);
            }
        }
        pending
    }

    /// Ids of the messages in the schedule index (every message that is
    /// neither held nor finished).
    pub(crate) fn scheduled(&self) -> Vec<QueueId> {
        lock(&self.inner.shared.index).scheduled()
    }

    /// Move a message's next attempt to `due` in the schedule index only,
    /// not on disk: for a message whose delivery results could not be
    /// written (a full disk), so that it is not attempted again at once.
    /// A restart or a reopening makes it due at its recorded time again.
    /// Returns whether it is scheduled (not held, not gone).
    pub fn postpone(&self, id: &str, due: u64) -> bool {
        let mut index = lock(&self.inner.shared.index);
        let scheduled = index.due_of(id).is_some();
        if scheduled {
            index.set(id, Some(due));
        }
        scheduled
    }

    /// Ids of messages due at or before `now`, earliest first, at most `limit`.
    pub fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        lock(&self.inner.shared.index).due(now, limit)
    }

    /// The earliest due time of any message, if any is scheduled.
    pub fn next_due(&self) -> Option<u64> {
        lock(&self.inner.shared.index).next_due()
    }

    /// How many messages are due now, waiting for a later attempt, or
    /// held — from the in-memory index, no disk access.
    pub fn counts(&self, now: u64) -> QueueCounts {
        let index = lock(&self.inner.shared.index);
        let (scheduled, due) = index.scheduled_and_due(now);
        QueueCounts {
            due,
            waiting: scheduled - due,
            held: index.messages().saturating_sub(scheduled),
        }
    }

    /// Number of messages in the queue (counted in memory: sled's own
    /// count reads the whole tree).
    pub fn len(&self) -> usize {
        lock(&self.inner.shared.index).messages()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when the queue changed (a message arrived, was released,
    /// rescheduled or updated). Used by the scheduler to wake up.
    pub async fn changed(&self) {
        self.inner.shared.changed.notified().await
    }
}

pub(crate) fn sync_outcome(
    answer: Result<SyncResult, oneshot::error::RecvError>,
) -> Result<(), QueueError> {
    answer
        .map_err(|_| QueueError::CommitterGone)?
        .map_err(|(message, disk_full)| QueueError::Sync { message, disk_full })
}

#[cfg(test)]
mod tests;
