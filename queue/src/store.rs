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

use crate::envelope::{Envelope, NewMessage, QueueId};
use crate::time::now_unix;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, Notify};

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
}

/// What the sync thread answers: the error text and whether the disk was full.
type SyncResult = Result<(), (String, bool)>;
type Waiter = oneshot::Sender<SyncResult>;

fn io_disk_full(e: &std::io::Error) -> bool {
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
            _ => false,
        }
    }
}

/// Messages by where they stand (see [`Store::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub due: usize,
    pub waiting: usize,
    pub held: usize,
}

/// The schedule index: which message is due when.
#[derive(Default)]
struct Index {
    by_time: BTreeSet<(u64, QueueId)>,
    due_of: HashMap<QueueId, u64>,
}

impl Index {
    fn set(&mut self, id: &str, due: Option<u64>) {
        if let Some(old) = self.due_of.remove(id) {
            self.by_time.remove(&(old, id.to_string()));
        }
        if let Some(t) = due {
            self.due_of.insert(id.to_string(), t);
            self.by_time.insert((t, id.to_string()));
        }
    }
}

struct Inner {
    db: sled::Db,
    envelopes: sled::Tree,
    /// Directory of the body files.
    bodies: PathBuf,
    index: Mutex<Index>,
    /// Serialises read-modify-write of envelopes within this process.
    write: Mutex<()>,
    commit_tx: Mutex<Option<mpsc::Sender<Waiter>>>,
    /// Body files of removed messages, deleted after the next sync.
    doomed: Arc<Mutex<Vec<PathBuf>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    changed: Notify,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// The database, for the other trees of this crate (fax history).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Open (or create) the queue at `path`, remove half-written messages,
    /// and build the schedule index. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(500))
            .cache_capacity(256 * 1024 * 1024)
            .open()
            .map_err(|source| QueueError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let envelopes = db.open_tree("envelopes")?;
        let bodies = path.join("bodies");
        std::fs::create_dir_all(&bodies).map_err(|source| QueueError::File {
            path: bodies.clone(),
            source,
        })?;

        let mut index = Index::default();
        for item in envelopes.iter() {
            let (key, value) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let env: Envelope =
                serde_json::from_slice(&value).map_err(|source| QueueError::Corrupt {
                    id: id.clone(),
                    source,
                })?;
            index.set(&id, env.due());
        }
        let mut orphans = 0;
        let listing = std::fs::read_dir(&bodies).map_err(|source| QueueError::File {
            path: bodies.clone(),
            source,
        })?;
        for entry in listing.flatten() {
            let name = entry.file_name();
            if !envelopes.contains_key(name.as_encoded_bytes())? {
                let _ = std::fs::remove_file(entry.path());
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "removed bodies of messages never committed");
        }

        let (tx, rx) = mpsc::channel::<Waiter>();
        let doomed = Arc::new(Mutex::new(Vec::new()));
        let syncer = Syncer::new(db.clone(), path, &bodies, doomed.clone())?;
        let committer = std::thread::Builder::new()
            .name("queue-sync".into())
            .spawn(move || commit_loop(syncer, rx))
            .map_err(|e| QueueError::Sync {
                message: e.to_string(),
                disk_full: false,
            })?;

        Ok(Store {
            inner: Arc::new(Inner {
                db,
                envelopes,
                bodies,
                index: Mutex::new(index),
                write: Mutex::new(()),
                commit_tx: Mutex::new(Some(tx)),
                doomed,
                committer: Mutex::new(Some(committer)),
                changed: Notify::new(),
            }),
        })
    }

    /// A fresh queue id (unique in this store, roughly sorted by time).
    pub fn new_id(&self) -> Result<QueueId, QueueError> {
        let n = self.inner.db.generate_id()?;
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
        let path = self.body_path(&id);
        let data = body.to_vec();
        tokio::task::spawn_blocking(move || write_body(&path, &data))
            .await
            .map_err(|e| QueueError::Sync {
                message: e.to_string(),
                disk_full: false,
            })??;
        let env = self.write_envelope(id, msg, body.len())?;
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
        write_body(&self.body_path(&id), body)?;
        let env = self.write_envelope(id, msg, body.len())?;
        if let Err(e) = self.sync_blocking() {
            let _ = self.remove(&env.id);
            return Err(e);
        }
        self.publish(&env);
        Ok(env)
    }

    fn body_path(&self, id: &str) -> PathBuf {
        self.inner.bodies.join(id)
    }

    /// Insert the envelope: the commit record, written after the body.
    fn write_envelope(
        &self,
        id: QueueId,
        msg: NewMessage,
        size: usize,
    ) -> Result<Envelope, QueueError> {
        let env = msg.into_envelope(id, size as u64, now_unix());
        let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
        if let Err(e) = self.inner.envelopes.insert(env.id.as_bytes(), encoded) {
            let _ = std::fs::remove_file(self.body_path(&env.id));
            return Err(e.into());
        }
        Ok(env)
    }

    fn publish(&self, env: &Envelope) {
        lock(&self.inner.index).set(&env.id, env.due());
        self.inner.changed.notify_one();
    }

    /// Join the next shared sync; the receiver answers once it ran.
    fn request_sync(&self) -> Result<oneshot::Receiver<SyncResult>, QueueError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.commit_tx)
            .as_ref()
            .ok_or(QueueError::CommitterGone)?
            .send(tx)
            .map_err(|_| QueueError::CommitterGone)?;
        Ok(rx)
    }

    /// Wait until everything written so far is on disk (shared sync).
    pub async fn sync(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync()?.await)
    }

    /// [`Store::sync`] for callers outside an async runtime.
    pub fn sync_blocking(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync()?.blocking_recv())
    }

    /// The envelope of a message.
    pub fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        match self.inner.envelopes.get(id.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| QueueError::Corrupt {
                    id: id.to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// The stored octets of a message.
    pub fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let path = self.body_path(id);
        match std::fs::read(&path) {
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
            self.inner.envelopes.insert(id.as_bytes(), encoded)?;
            lock(&self.inner.index).set(id, env.due());
        }
        self.inner.changed.notify_one();
        Ok(Some(env))
    }

    /// Delete a message (envelope first, so a crash leaves only an orphan
    /// body, which the next open removes). Returns whether it existed.
    pub fn remove(&self, id: &str) -> Result<bool, QueueError> {
        let _guard = lock(&self.inner.write);
        self.remove_locked(id)
    }

    fn remove_locked(&self, id: &str) -> Result<bool, QueueError> {
        let existed = self.inner.envelopes.remove(id.as_bytes())?.is_some();
        // The body goes only after the envelope's removal is durable: a
        // crash before that must find the message whole, not an envelope
        // without its body.
        if existed {
            lock(&self.inner.doomed).push(self.body_path(id));
        }
        lock(&self.inner.index).set(id, None);
        Ok(existed)
    }

    /// Ids of the messages in the schedule index (every message that is
    /// neither held nor finished).
    pub(crate) fn scheduled(&self) -> Vec<QueueId> {
        lock(&self.inner.index).due_of.keys().cloned().collect()
    }

    /// Every message in the queue, ordered by id (that is, by arrival).
    pub fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        let mut out = Vec::new();
        for item in self.inner.envelopes.iter() {
            let (key, value) = item?;
            let env = serde_json::from_slice(&value).map_err(|source| QueueError::Corrupt {
                id: String::from_utf8_lossy(&key).into_owned(),
                source,
            })?;
            out.push(env);
        }
        Ok(out)
    }

    /// Ids of messages due at or before `now`, earliest first, at most `limit`.
    pub fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        lock(&self.inner.index)
            .by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The earliest due time of any message, if any is scheduled.
    pub fn next_due(&self) -> Option<u64> {
        lock(&self.inner.index).by_time.first().map(|(t, _)| *t)
    }

    /// How many messages are due now, waiting for a later attempt, or
    /// held — from the in-memory index, no disk access.
    pub fn counts(&self, now: u64) -> QueueCounts {
        let index = lock(&self.inner.index);
        let scheduled = index.by_time.len();
        let due = index.by_time.iter().take_while(|(t, _)| *t <= now).count();
        QueueCounts {
            due,
            waiting: scheduled - due,
            held: self.inner.envelopes.len().saturating_sub(scheduled),
        }
    }

    /// Number of messages in the queue.
    pub fn len(&self) -> usize {
        self.inner.envelopes.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.envelopes.is_empty()
    }

    /// Resolves when the queue changed (a message arrived, was released,
    /// rescheduled or updated). Used by the scheduler to wake up.
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }
}

fn sync_outcome(answer: Result<SyncResult, oneshot::error::RecvError>) -> Result<(), QueueError> {
    answer
        .map_err(|_| QueueError::CommitterGone)?
        .map_err(|(message, disk_full)| QueueError::Sync { message, disk_full })
}

/// Write a body file and fsync it. The name is fresh (`create_new`), so a
/// half-written file can only be an orphan, which the next open removes.
fn write_body(path: &Path, data: &[u8]) -> Result<(), QueueError> {
    use std::io::Write;
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        });
    result.map_err(|source| {
        let _ = std::fs::remove_file(path);
        QueueError::File {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// What one shared sync does: flush sled's log, then fsync the log file
/// (sled only uses `sync_file_range`) and the directory of body files (so
/// new body files' names are durable).
struct Syncer {
    db: sled::Db,
    log: std::fs::File,
    bodies_dir: std::fs::File,
    doomed: Arc<Mutex<Vec<PathBuf>>>,
}

impl Syncer {
    fn new(
        db: sled::Db,
        path: &Path,
        bodies: &Path,
        doomed: Arc<Mutex<Vec<PathBuf>>>,
    ) -> Result<Syncer, QueueError> {
        let open = |p: PathBuf| {
            std::fs::File::open(&p).map_err(|source| QueueError::File { path: p, source })
        };
        Ok(Syncer {
            db,
            log: open(path.join("db"))?,
            bodies_dir: open(bodies.to_path_buf())?,
            doomed,
        })
    }

    fn sync(&self) -> SyncResult {
        // Every removal listed now happened before this flush starts.
        let doomed = std::mem::take(&mut *lock(&self.doomed));
        let result = self.flush();
        if result.is_ok() {
            for path in &doomed {
                if let Err(e) = std::fs::remove_file(path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        // Left behind; removed as an orphan at the next open.
                        tracing::warn!("cannot remove {}: {e}", path.display());
                    }
                }
            }
        } else {
            lock(&self.doomed).extend(doomed);
        }
        result
    }

    fn flush(&self) -> SyncResult {
        let io = |e: std::io::Error| (e.to_string(), io_disk_full(&e));
        self.db.flush().map_err(|e| {
            let full = matches!(&e, sled::Error::Io(io) if io_disk_full(io));
            (e.to_string(), full)
        })?;
        self.log.sync_all().map_err(io)?;
        self.bodies_dir.sync_all().map_err(io)
    }
}

/// The group-commit thread: one sync answers every waiter queued so far.
/// With no waiter for a second, it still syncs when removed bodies wait
/// for their deletion.
fn commit_loop(syncer: Syncer, rx: mpsc::Receiver<Waiter>) {
    loop {
        let first = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(waiter) => waiter,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !lock(&syncer.doomed).is_empty() {
                    let _ = syncer.sync();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = syncer.sync();
        if let Err((e, _)) = &result {
            tracing::error!(error = %e, "queue sync failed");
        }
        for waiter in batch {
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{NewRecipient, RcptState};

    fn message(rcpts: &[&str]) -> NewMessage {
        NewMessage {
            sender: "sender@example.org".into(),
            recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn enqueue_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let store = Store::open(dir.path()).unwrap();
            id = store.new_id().unwrap();
            store
                .enqueue(
                    id.clone(),
                    message(&["a@x", "b@x"]),
                    b"Subject: hi\r\n\r\nbody\r\n",
                )
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let env = store.get(&id).unwrap().unwrap();
        assert_eq!(env.recipients.len(), 2);
        assert_eq!(
            store.body(&id).unwrap().unwrap(),
            b"Subject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(store.due(now_unix() + 1, 10), vec![id]);
    }

    #[tokio::test]
    async fn concurrent_enqueues_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = s.new_id().unwrap();
                s.enqueue(id, message(&["a@x"]), format!("body {i}").as_bytes())
                    .await
                    .unwrap()
                    .id
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 50);
        assert_eq!(store.len(), 50);
    }

    #[tokio::test]
    async fn finished_messages_leave_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(&["a@x", "b@x"]), b"x")
            .await
            .unwrap();
        store
            .update(&id, |e| e.recipients[0].state = RcptState::Delivered)
            .unwrap()
            .unwrap();
        assert!(store.get(&id).unwrap().is_some());
        store
            .update(&id, |e| e.recipients[1].state = RcptState::Failed)
            .unwrap()
            .unwrap();
        assert!(store.get(&id).unwrap().is_none());
        store.sync().await.unwrap();
        assert!(store.body(&id).unwrap().is_none());
        assert!(store.due(u64::MAX, 10).is_empty());
    }

    #[test]
    fn orphan_bodies_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let id = store.new_id().unwrap();
            store
                .enqueue_blocking(id, message(&["a@x"]), b"kept")
                .unwrap();
        }
        std::fs::write(dir.path().join("bodies/ORPHAN"), b"half").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.body("ORPHAN").unwrap().is_none());
        assert!(!dir.path().join("bodies/ORPHAN").exists());
        assert_eq!(store.len(), 1, "the committed message stays");
    }

    #[tokio::test]
    async fn bodies_are_files_and_leave_with_their_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        let big = vec![b'x'; 3 * 1024 * 1024];
        store
            .enqueue(id.clone(), message(&["a@x"]), &big)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("bodies").join(&id)).unwrap(),
            big
        );
        assert_eq!(store.get(&id).unwrap().unwrap().size, big.len() as u64);
        assert!(store.remove(&id).unwrap());
        // Deleted only once the envelope's removal is synced.
        assert!(dir.path().join("bodies").join(&id).exists());
        store.sync().await.unwrap();
        assert!(!dir.path().join("bodies").join(&id).exists());
    }
}
