//! Writing a message's body file as it arrives:
//! [`QueueStore::begin_body`] opens `bodies/ID` and hands out a
//! [`BodyWriter`]; the SMTP session writes what the client sends into it
//! piece by piece, so a message is never held in memory whole;
//! [`QueueStore::enqueue_body`] commits it (the file fsynced, the bodies
//! directory synced, then the envelope — the same two-phase group commit
//! as [`QueueStore::enqueue`], which goes the same way).
//!
//! Backend-neutral: a backend that keeps bodies as files (sled's does)
//! holds a [`BodyFiles`] and hands out its writers.
//!
//! The file is made only when the body outgrows the writer's buffer
//! ([`PIECE`]): a store that keeps small bodies elsewhere (sled's
//! segments, `sled/segments.rs`) takes a smaller one from memory with
//! [`BodyWriter::in_memory`], and no file is ever made for it.
//!
//! A body being written is registered with the store: the orphan scan of
//! a reopening (after a write error) leaves it alone. A writer that is
//! dropped or aborted before its commit (the client timed out, the
//! connection was lost, the message was refused) removes its file.
//!
//! The disk reserve (`[queue] min_free`) is kept while writing: before
//! each piece goes to disk, and at the end for what the envelope, the log
//! and a report need (half the body again, as [`QueueStore::check_room`]).
//!
//! [`QueueStore::begin_body`]: crate::QueueStore::begin_body
//! [`QueueStore::enqueue_body`]: crate::QueueStore::enqueue_body
//! [`QueueStore::enqueue`]: crate::QueueStore::enqueue
//! [`QueueStore::check_room`]: crate::QueueStore::check_room

use crate::envelope::QueueId;
use crate::error::QueueError;
use crate::lock::lock;
use crate::space::available;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Octets gathered before they are written out (on a blocking thread).
const PIECE: usize = 256 * 1024;

/// The directory of the body files, and the bodies being written in it
/// (not orphans, whatever a scan for orphans finds).
pub(crate) struct BodyFiles {
    pub dir: PathBuf,
    pub receiving: Mutex<HashSet<String>>,
    /// Whether a body file is fsynced at its end (it is the message's
    /// durable copy); not for a spool whose files go into a database.
    pub durable: bool,
    /// Whether the store takes a body that never outgrew the buffer from
    /// memory ([`BodyWriter::in_memory`]); otherwise the last flush writes
    /// it to its file.
    pub small_in_memory: bool,
    /// Set when a file is made here: the directory needs a sync.
    pub created: std::sync::atomic::AtomicBool,
}

/// A body file being written; see the module documentation.
pub struct BodyWriter {
    files: Arc<BodyFiles>,
    id: QueueId,
    path: PathBuf,
    /// `None` before the file is made, while a piece is being written on
    /// a blocking thread, or after a failed one.
    file: Option<std::fs::File>,
    /// Whether the file was made.
    made: bool,
    buf: Vec<u8>,
    /// Octets written to the file so far.
    written: u64,
    /// Octets that must stay free on the queue's filesystem (0: no check).
    reserve: u64,
    /// Committed (the envelope holds it) or removed: nothing left to undo.
    settled: bool,
}

impl BodyFiles {
    pub fn new(dir: PathBuf) -> BodyFiles {
        BodyFiles {
            dir,
            receiving: Mutex::new(HashSet::new()),
            durable: true,
            small_in_memory: false,
            created: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Files of a store that keeps small bodies elsewhere (see
    /// [`BodyWriter::in_memory`]).
    pub fn with_small_in_memory(dir: PathBuf) -> BodyFiles {
        BodyFiles {
            small_in_memory: true,
            ..BodyFiles::new(dir)
        }
    }

    /// Files of a spool: bodies on their way into a database, not synced.
    pub fn spool(dir: PathBuf) -> BodyFiles {
        BodyFiles {
            durable: false,
            ..BodyFiles::new(dir)
        }
    }

    /// The path of the body of `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Start the body of message `id`, keeping `reserve` octets free
    /// while it is written (see [`crate::QueueStore::begin_body`]). Its
    /// file is made when the first piece is written out.
    pub fn begin(self: &Arc<Self>, id: &QueueId, reserve: u64) -> Result<BodyWriter, QueueError> {
        let files = self.clone();
        let path = files.path(id);
        // Registered before the file exists: a reopening's orphan scan
        // never sees the file unregistered before its envelope is in.
        lock(&files.receiving).insert(id.clone());
        Ok(BodyWriter {
            files,
            id: id.clone(),
            path,
            file: None,
            made: false,
            buf: Vec::new(),
            written: 0,
            reserve,
            settled: false,
        })
    }
}

impl BodyWriter {
    /// The queue id the body is for.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// The file the body is written to (made by the last flush at the
    /// latest, unless the store takes it [`BodyWriter::in_memory`]).
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The whole body, when it never outgrew the buffer and the store
    /// takes small bodies from memory: then no file was made, and after
    /// the last flush (which keeps the reserve) this is the body.
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        (!self.made && self.files.small_in_memory).then_some(&self.buf[..])
    }

    /// Octets taken so far (written or gathered).
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Whether nothing was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`. Written out a piece at a time on a blocking thread.
    /// After an error the file is gone; drop the writer.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), QueueError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// [`BodyWriter::write`] for callers outside an async runtime.
    pub fn write_blocking(&mut self, data: &[u8]) -> Result<(), QueueError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush_blocking(false)?;
        }
        Ok(())
    }

    /// Write out what is gathered (and with `last`, fsync the file and
    /// check the room left for the envelope) on a blocking thread.
    pub(crate) async fn flush(&mut self, last: bool) -> Result<(), QueueError> {
        if self.stays_in_memory(last)? {
            return Ok(());
        }
        let mut piece = Piece::take(self)?;
        let piece = tokio::task::spawn_blocking(move || {
            piece.run(last);
            piece
        })
        .await
        .map_err(|e| QueueError::Sync {
            message: e.to_string(),
            disk_full: false,
        })?;
        self.settle(piece)
    }

    pub(crate) fn flush_blocking(&mut self, last: bool) -> Result<(), QueueError> {
        if self.stays_in_memory(last)? {
            return Ok(());
        }
        let mut piece = Piece::take(self)?;
        piece.run(last);
        self.settle(piece)
    }

    /// At the last flush of a body the store takes from memory: keep the
    /// reserve, and leave the body where it is (true). Otherwise make the
    /// file if it is not made yet (false: write the piece out).
    fn stays_in_memory(&mut self, last: bool) -> Result<bool, QueueError> {
        if self.made {
            return Ok(false);
        }
        if last && self.files.small_in_memory {
            let n = self.buf.len() as u64;
            let result = room(self.reserve, &self.files.dir, n, n);
            if result.is_err() {
                self.remove();
            }
            return result.map(|()| true);
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path);
        match file {
            Ok(file) => {
                self.file = Some(file);
                self.made = true;
                self.files
                    .created
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(false)
            }
            Err(source) => {
                let path = self.path.clone();
                self.remove();
                Err(QueueError::File { path, source })
            }
        }
    }

    fn settle(&mut self, piece: Piece) -> Result<(), QueueError> {
        let Piece {
            file,
            mut buf,
            result,
            written,
            ..
        } = piece;
        self.file = Some(file);
        self.written = written;
        buf.clear();
        self.buf = buf;
        if let Err(e) = result {
            self.remove();
            return Err(e);
        }
        Ok(())
    }

    /// Give the message up: its file is removed.
    pub fn abort(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        self.file = None;
        self.buf = Vec::new();
        if !self.made {
            lock(&self.files.receiving).remove(&self.id);
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                // Left behind: an orphan, removed at the next open.
                tracing::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
        lock(&self.files.receiving).remove(&self.id);
    }

    /// The envelope holds the body now: nothing to undo any more.
    pub(crate) fn committed(mut self) {
        self.settled = true;
        lock(&self.files.receiving).remove(&self.id);
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One piece on its way to the disk (moved to a blocking thread and back).
struct Piece {
    file: std::fs::File,
    buf: Vec<u8>,
    written: u64,
    reserve: u64,
    dir: PathBuf,
    durable: bool,
    result: Result<(), QueueError>,
    path: PathBuf,
}

impl Piece {
    fn take(w: &mut BodyWriter) -> Result<Piece, QueueError> {
        let file = w.file.take().ok_or_else(|| QueueError::File {
            path: w.path.clone(),
            source: std::io::Error::other("the body file was given up after an error"),
        })?;
        Ok(Piece {
            file,
            buf: std::mem::take(&mut w.buf),
            written: w.written,
            reserve: w.reserve,
            dir: w.files.dir.clone(),
            durable: w.files.durable,
            result: Ok(()),
            path: w.path.clone(),
        })
    }

    /// Keep the reserve, write, and with `last` fsync.
    fn run(&mut self, last: bool) {
        let n = self.buf.len() as u64;
        let total = self.written + n;
        if let Err(e) = room(self.reserve, &self.dir, n, total) {
            self.result = Err(e);
            return;
        }
        let io = self.file.write_all(&self.buf).and_then(|()| {
            if last && self.durable {
                self.file.sync_all()
            } else {
                Ok(())
            }
        });
        match io {
            Ok(()) => self.written = total,
            Err(source) => {
                self.result = Err(QueueError::File {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

/// Whether a piece of `n` octets of a body `total` octets long so far may
/// be written while `reserve` octets must stay free on the filesystem of
/// `dir`: the piece itself, and half the whole again for the rest of the
/// message's life (envelope, log, report). No check with no reserve.
fn room(reserve: u64, dir: &std::path::Path, n: u64, total: u64) -> Result<(), QueueError> {
    if reserve == 0 {
        return Ok(());
    }
    let needed = reserve.saturating_add(n).saturating_add(total / 2);
    let free = available(dir).unwrap_or(0);
    if free < needed {
        return Err(QueueError::NoRoom { free, needed });
    }
    Ok(())
}
