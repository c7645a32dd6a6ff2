//! The sled store's writes: committing a message (body, envelope, then
//! the shared sync that makes both durable), changing and removing
//! envelopes.

use super::commit::{SyncKind, SyncResult};
use super::db::Doomed;
use super::etrn_index::envelope_marks;
use super::segments::Loc;
use super::SledStore;
use crate::body::BodyWriter;
use crate::envelope::{Envelope, NewMessage, QueueId};
use crate::error::QueueError;
use crate::lock::lock;
use crate::time::now_unix;
use tokio::sync::oneshot;

impl SledStore {
    /// Commit a message whose body was written with a [`BodyWriter`]: a
    /// small body is appended to a segment and synced with its envelope
    /// in one shared sync (group commit); a large one's file is fsynced
    /// and its name synced before the envelope is inserted. On an error
    /// the body is given up.
    pub(super) async fn enqueue_body(
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
        let loc = self.append(&body)?;
        // A body in a file of its own: its name is durable before its
        // envelope can be. One in a segment is synced with the envelope
        // (`commit.rs`).
        let synced = match loc {
            Some(_) => Ok(()),
            None => match self.request_sync(SyncKind::Bodies) {
                Ok(answer) => sync_outcome(answer.await),
                Err(e) => Err(e),
            },
        };
        let env = synced.and_then(|()| self.write_envelope(&body, loc, msg, head));
        let env = match env {
            Ok(env) => env,
            Err(e) => {
                self.give_up(loc);
                return Err(e);
            }
        };
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

    /// [`SledStore::enqueue_body`] for a body in memory, outside an async
    /// runtime.
    pub(super) fn enqueue_blocking(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        if let Some(bad) = msg.unsafe_address() {
            return Err(QueueError::BadAddress(bad.to_string()));
        }
        let mut writer = self.files().begin(&id, 0)?;
        writer.write_blocking(body)?;
        writer.flush_blocking(true)?;
        let writing = self.inner.shared.writing.blocking_read();
        let loc = self.append(&writer)?;
        let synced = match loc {
            Some(_) => Ok(()),
            None => match self.request_sync(SyncKind::Bodies) {
                Ok(answer) => sync_outcome(answer.blocking_recv()),
                Err(e) => Err(e),
            },
        };
        let env = synced.and_then(|()| self.write_envelope(&writer, loc, msg, String::new()));
        let env = match env {
            Ok(env) => env,
            Err(e) => {
                self.give_up(loc);
                return Err(e);
            }
        };
        writer.committed();
        drop(writing);
        if let Err(e) = self.sync_blocking() {
            let _ = self.remove(&env.id);
            return Err(e);
        }
        self.publish(&env);
        Ok(env)
    }

    /// A body the writer kept in memory goes to a segment; `None`: the
    /// body is in its own file.
    fn append(&self, body: &BodyWriter) -> Result<Option<Loc>, QueueError> {
        let Some(data) = body.in_memory() else {
            return Ok(None);
        };
        self.inner
            .shared
            .segments
            .append(data)
            .map(Some)
            .map_err(|source| QueueError::File {
                path: self.files().dir.clone(),
                source,
            })
    }

    /// An enqueue that failed after its body went to a segment: the body
    /// no longer counts (a file is left to its writer, which removes it).
    fn give_up(&self, loc: Option<Loc>) {
        if let Some(loc) = loc {
            self.inner.shared.segments.release(loc);
        }
    }

    /// Insert the envelope: the commit record, written after the body
    /// (and after where it lies, when in a segment: sled recovers a prefix
    /// of its log, so an envelope never comes back without it). On an
    /// error the body is left to the caller.
    fn write_envelope(
        &self,
        body: &BodyWriter,
        loc: Option<Loc>,
        msg: NewMessage,
        head: String,
    ) -> Result<Envelope, QueueError> {
        let size = head.len() as u64 + body.len();
        let mut env = msg.into_envelope(body.id().clone(), size, now_unix());
        env.head = head;
        let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
        let handles = self.handles()?;
        if let Some(loc) = loc {
            handles
                .body_at
                .insert(env.id.as_bytes(), &loc.encode()[..])
                .map_err(|e| self.sled_error(e))?;
        }
        let inserted = handles
            .envelopes
            .insert(env.id.as_bytes(), encoded)
            .map_err(|e| self.sled_error(e));
        let inserted = match inserted {
            Ok(inserted) => inserted,
            Err(e) => {
                if loc.is_some() {
                    let _ = handles.body_at.remove(env.id.as_bytes());
                }
                return Err(e);
            }
        };
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
    pub(super) async fn sync(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync(SyncKind::Full)?.await)
    }

    /// [`SledStore::sync`] for callers outside an async runtime.
    pub(super) fn sync_blocking(&self) -> Result<(), QueueError> {
        sync_outcome(self.request_sync(SyncKind::Full)?.blocking_recv())
    }

    /// Change a message's envelope under the store's write lock and save
    /// it. A message whose recipients are all final is removed. Returns
    /// the envelope as saved, or `None` if the message is not (or no
    /// longer) in the queue. The change is written but not synced: losing
    /// it in a crash repeats a delivery, which is allowed, rather than
    /// losing one.
    pub(super) fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Envelope),
    ) -> Result<Option<Envelope>, QueueError> {
        let _guard = lock(&self.inner.write);
        let Some(mut env) = self.get(id)? else {
            return Ok(None);
        };
        change(&mut env);
        if env.is_done() {
            self.remove_locked(id)?;
        } else {
            let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
            let handles = self.handles()?;
            handles
                .envelopes
                .insert(id.as_bytes(), encoded)
                .map_err(|e| self.sled_error(e))?;
            // It waits: its body leaves the shared segment (`evict.rs`).
            if handles.body_at.contains_key(id.as_bytes()).unwrap_or(false) {
                if let Some(tx) = lock(&self.inner.evict_tx).as_ref() {
                    let _ = tx.send(id.to_string());
                }
            }
            let mut index = lock(&self.inner.shared.index);
            index.set(id, env.due());
            index.etrn.set(id, envelope_marks(&env));
        }
        self.inner.shared.changed.notify_one();
        Ok(Some(env))
    }

    /// Delete a message (envelope first, so a crash leaves only an orphan
    /// body, which the next open removes). Returns whether it existed.
    pub(super) fn remove(&self, id: &str) -> Result<bool, QueueError> {
        let _guard = lock(&self.inner.write);
        self.remove_locked(id)
    }

    fn remove_locked(&self, id: &str) -> Result<bool, QueueError> {
        let handles = self.handles()?;
        let existed = handles
            .envelopes
            .remove(id.as_bytes())
            .map_err(|e| self.sled_error(e))?
            .is_some();
        // Where its body lies goes after the envelope (a crash between
        // leaves an entry without envelope, dropped at the next open).
        let at = handles
            .body_at
            .remove(id.as_bytes())
            .map_err(|e| self.sled_error(e))?
            .and_then(|v| Loc::decode(&v));
        // The body goes only after the envelope's removal is durable: a
        // crash before that must find the message whole, not an envelope
        // without its body.
        if existed {
            let doomed = match at {
                Some(loc) => Doomed::InSegment(loc),
                None => Doomed::File(self.files().path(id)),
            };
            lock(&self.inner.shared.doomed).push(doomed);
        }
        let mut index = lock(&self.inner.shared.index);
        index.set(id, None);
        index.etrn.set(id, Vec::new());
        if existed {
            index.removed();
        }
        Ok(existed)
    }
}

fn sync_outcome(answer: Result<SyncResult, oneshot::error::RecvError>) -> Result<(), QueueError> {
    answer
        .map_err(|_| QueueError::CommitterGone)?
        .map_err(|(message, disk_full)| QueueError::Sync { message, disk_full })
}
