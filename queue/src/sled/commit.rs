//! Group commit: one thread runs the shared syncs of the store. Each
//! enqueue registers a waiter after its writes; the thread takes every
//! waiter queued so far, runs one flush and fsync, and answers them all.
//!
//! One sync makes a message durable: its body's segment is
//! `fdatasync`ed on a second thread while sled's log is flushed and
//! fsynced, and the enqueue is answered once both are done. sled may
//! write an envelope out before its body is on disk (its own background
//! flush can, at any time); what keeps that safe is the checksum in the
//! body's location and the mark each sync records before its flush,
//! [`UNSYNCED_FROM`]: the lowest segment that may hold octets not yet
//! synced. An open after a crash checks every body from that segment on
//! and drops the messages whose body fails (`index.rs`): none of them was
//! acknowledged, since the answer waits for the segment's sync.
//!
//! A body too large for a segment has a file of its own, fsynced by its
//! writer; its enqueue waits for a light sync first (the bodies directory,
//! for the file's name) and only then inserts its envelope, so that
//! envelope never becomes durable before its body's name does.
//!
//! The full sync also fsyncs the blob files sled 0.34 writes for large
//! items (an envelope over about 128 KiB: hundreds of recipients), which
//! sled itself never syncs, and their directory — before the log that
//! refers to them.

use super::db::{is_sticky, Doomed, Shared};
use super::segments::UNSYNCED_FROM;
use crate::error::{io_disk_full, QueueError};
use crate::lock::lock;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// What the sync thread answers: the error text and whether the disk was full.
pub(crate) type SyncResult = Result<(), (String, bool)>;
pub(crate) type Waiter = (SyncKind, oneshot::Sender<SyncResult>);

/// What a waiter needs synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// The bodies: segments appended to, new body files' names.
    Bodies,
    /// Everything: the bodies beside sled's log and blobs.
    Full,
}

/// What one shared sync does: sync the bodies (see [`SyncKind::Bodies`])
/// on a second thread while it flushes sled's log and fsyncs the log
/// file (sled only uses `sync_file_range`).
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    bodies_dir: std::fs::File,
    /// sled's blob files synced so far (by name), so each is synced once.
    synced_blobs: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
}

impl Syncer {
    pub fn new(shared: Arc<Shared>) -> Result<Syncer, QueueError> {
        let bodies_dir =
            std::fs::File::open(&shared.files.dir).map_err(|source| QueueError::File {
                path: shared.files.dir.clone(),
                source,
            })?;
        Ok(Syncer {
            shared,
            bodies_dir,
            synced_blobs: Default::default(),
        })
    }

    fn sync(&self) -> SyncResult {
        // Every removal listed now happened before this flush starts.
        let doomed = std::mem::take(&mut *lock(&self.shared.doomed));
        let result = self.flush();
        if result.is_ok() {
            for body in doomed {
                match body {
                    Doomed::InSegment(loc) => self.shared.segments.release(loc),
                    Doomed::File(path) => {
                        if let Err(e) = std::fs::remove_file(&path) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                // Left behind; removed as an orphan at the
                                // next open.
                                tracing::warn!("cannot remove {}: {e}", path.display());
                            }
                        }
                    }
                }
            }
        } else {
            lock(&self.shared.doomed).extend(doomed);
        }
        result
    }

    fn flush(&self) -> SyncResult {
        let io = |e: std::io::Error| (e.to_string(), io_disk_full(&e));
        let db = self
            .shared
            .current()
            .map_err(|e| (e.to_string(), e.is_disk_full()))?;
        // Before anything this flush writes: where an open after a crash
        // starts checking bodies (see the module documentation).
        let from = self.shared.segments.unsynced_from();
        db.db
            .insert(UNSYNCED_FROM, &from.to_be_bytes()[..])
            .map_err(|e| self.sled_failed(e))?;
        std::thread::scope(|scope| {
            let bodies = scope.spawn(|| self.sync_bodies());
            let log = db
                .db
                .flush()
                .map(drop)
                .map_err(|e| self.sled_failed(e))
                .and_then(|()| self.sync_blobs().map_err(io))
                .and_then(|()| db.log.sync_all().map_err(io));
            let bodies = bodies
                .join()
                .unwrap_or_else(|_| Err(("syncing the bodies panicked".to_string(), false)));
            bodies.and(log)
        })
    }

    /// A sled error of the flush, noting whether it poisoned the database.
    fn sled_failed(&self, e: sled::Error) -> (String, bool) {
        if is_sticky(&e) {
            self.shared.broken.store(true, Ordering::SeqCst);
        }
        let full = matches!(&e, sled::Error::Io(io) if io_disk_full(io));
        (e.to_string(), full)
    }

    /// The light sync: the segments written since the last sync, and the
    /// bodies directory if a file (a segment or a large body's) was made
    /// in it since.
    fn sync_bodies(&self) -> SyncResult {
        let io = |e: std::io::Error| (e.to_string(), io_disk_full(&e));
        let fresh_segment = self.shared.segments.sync().map_err(io)?;
        let made = self.shared.files.created.swap(false, Ordering::SeqCst);
        if fresh_segment || made {
            if let Err(e) = self.bodies_dir.sync_all() {
                self.shared.files.created.store(true, Ordering::SeqCst);
                return Err(io(e));
            }
        }
        Ok(())
    }

    /// fsync sled's blob files not synced yet, then their directory.
    /// Names sled removed since are forgotten.
    fn sync_blobs(&self) -> std::io::Result<()> {
        let dir = self.shared.path.join("blobs");
        let listing = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = std::collections::HashSet::new();
        let mut synced = lock(&self.synced_blobs);
        let mut new = false;
        for entry in listing {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match std::fs::File::open(dir.join(&name)) {
                    Ok(f) => f.sync_all()?,
                    // Removed by sled meanwhile: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            std::fs::File::open(&dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}

/// The group-commit thread: one sync answers every waiter queued so far.
/// With no waiter for a second, it still syncs when removed bodies wait
/// for their deletion. It also reopens a database poisoned by a write
/// error, once there is room again.
pub(crate) fn commit_loop(syncer: Syncer, rx: mpsc::Receiver<Waiter>) {
    loop {
        if syncer.shared.reopen_due() {
            let _ = syncer.shared.reopen();
        }
        let first = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(waiter) => waiter,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !lock(&syncer.shared.doomed).is_empty() {
                    let _ = syncer.sync();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = if batch.iter().any(|(kind, _)| *kind == SyncKind::Full) {
            syncer.sync()
        } else {
            syncer.sync_bodies()
        };
        if let Err((e, _)) = &result {
            tracing::error!(error = %e, "queue sync failed");
        }
        for (_, waiter) in batch {
            let _ = waiter.send(result.clone());
        }
    }
}
