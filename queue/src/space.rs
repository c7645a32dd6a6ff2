//! Room on the queue's filesystem: new mail is refused (452 4.3.1) while
//! less than a reserve is free, so that the database never runs out of
//! room for what the messages already accepted need — the results of
//! deliveries, reports, removals. This is Postfix's `queue_minfree`: a
//! client is told to come back later *before* anything is written, instead
//! of the disk filling up under a half-written message.

use crate::error::QueueError;
use std::path::Path;

/// Bytes free for this process on the filesystem that holds `path`.
pub fn available(path: &Path) -> std::io::Result<u64> {
    fs2::available_space(path)
}

/// Whether a message of `size` octets may be taken while `reserve` octets
/// must stay free on the filesystem of `dir` (see
/// [`crate::QueueStore::check_room`]). `size` counts half again (as
/// Postfix does with a declared SIZE), for the envelope, the database log
/// and the copy a report may make of it. A filesystem that cannot be
/// asked counts as full: refusing for a while is better than failing
/// half-way.
pub(crate) fn check_room(dir: &Path, reserve: u64, size: u64) -> Result<(), QueueError> {
    if reserve == 0 {
        return Ok(());
    }
    let needed = reserve.saturating_add(size.saturating_add(size / 2));
    let free = available(dir).unwrap_or(0);
    if free < needed {
        return Err(QueueError::NoRoom { free, needed });
    }
    Ok(())
}
