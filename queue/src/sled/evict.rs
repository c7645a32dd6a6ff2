//! Moving a waiting message's body out of its segment into a file of its
//! own. A segment is deleted only with its last body, so one message that
//! waits for days (deferred, held, an ETRN domain's) would keep its whole
//! segment — up to 64 MiB of long-delivered mail — on disk. So when a
//! message is saved still undelivered after an attempt, its body is
//! copied to `bodies/ID` (fsynced, the directory too), and only then is
//! its entry in `body-at` removed, which makes the file its body; the old
//! place is released once that removal is synced. The messages that wait
//! are the few; the many that are delivered at once never pay for a file.
//!
//! A move keeps the disk reserve (`[queue] min_free`, as the last writer
//! asked): while the disk is that short, the body stays where it is and
//! is tried again at its message's next update. Once moved, its old place
//! is given back to the filesystem (`Segments::release` punches a hole
//! for a large body), so a waiting message does not take its room twice.
//!
//! A thread of its own does the copying, so neither the sync thread nor
//! the scheduler waits for its fsyncs; it holds the store's `writing`
//! lock across each move, so a reopening never counts a segment's bodies
//! half-way through one. A crash between the copy and the synced removal
//! leaves the body in both places: the next open keeps the segment's
//! (the entry says so) and removes the file.

use super::db::{Doomed, Shared};
use super::segments::Loc;
use crate::envelope::QueueId;
use crate::lock::lock;
use crate::space::check_room;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

/// Move the bodies of the ids received to files, until the channel closes.
pub(crate) fn evict_loop(shared: Arc<Shared>, rx: mpsc::Receiver<QueueId>) {
    while let Ok(first) = rx.recv() {
        let mut ids = vec![first];
        ids.extend(rx.try_iter());
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Err(e) = evict(&shared, &id) {
                // It stays in its segment; tried again at its next update.
                tracing::warn!("{id}: cannot move its body out of its segment: {e}");
            }
        }
    }
}

/// Move the body of `id`, if it lies in a segment.
fn evict(shared: &Shared, id: &str) -> Result<(), String> {
    let _writing = shared.writing.blocking_read();
    let db = shared.current().map_err(|e| e.to_string())?;
    let Some(old) = db.body_at.get(id.as_bytes()).map_err(|e| e.to_string())? else {
        return Ok(()); // in a file already, or gone
    };
    let Some(loc) = Loc::decode(&old) else {
        return Ok(());
    };
    let reserve = shared.reserve.load(Ordering::Relaxed);
    if let Err(e) = check_room(&shared.files.dir, reserve, loc.len) {
        shared.kept_for_room.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("{id}: its body stays in its segment: {e}");
        return Ok(());
    }
    let data = shared.segments.read(loc).map_err(|e| e.to_string())?;
    let path = shared.files.path(id);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&data)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::File::open(&shared.files.dir)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(format!("{}: {e}", path.display()));
    }
    // The file is its body from here, unless the message went meanwhile.
    let swapped = db
        .body_at
        .compare_and_swap(id.as_bytes(), Some(old), None::<&[u8]>)
        .map_err(|e| e.to_string())?;
    match swapped {
        Ok(()) => lock(&shared.doomed).push(Doomed::InSegment(loc)),
        Err(_) => {
            // Removed (its own removal released the segment's place).
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}
