//! Room on the queue's filesystem: new mail is refused (452 4.3.1) while
//! less than a reserve is free, so that the database never runs out of
//! room for what the messages already accepted need — the results of
//! deliveries, reports, removals. This is Postfix's `queue_minfree`: a
//! client is told to come back later *before* anything is written, instead
//! of the disk filling up under a half-written message.

use crate::store::{QueueError, Store};
use std::path::Path;

/// Bytes free for this process on the filesystem that holds `path`.
pub fn available(path: &Path) -> std::io::Result<u64> {
    fs2::available_space(path)
}

impl Store {
    /// Whether a message of `size` octets may be taken while `reserve`
    /// octets must stay free. `size` counts half again (as Postfix does
    /// with a declared SIZE), for the envelope, the database log and the
    /// copy a report may make of it. A filesystem that cannot be asked
    /// counts as full: refusing for a while is better than failing
    /// half-way.
    pub fn check_room(&self, reserve: u64, size: u64) -> Result<(), QueueError> {
        if reserve == 0 {
            return Ok(());
        }
        let needed = reserve.saturating_add(size.saturating_add(size / 2));
        let free = available(self.bodies_dir()).unwrap_or(0);
        if free < needed {
            return Err(QueueError::NoRoom { free, needed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_checked_against_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let free = available(dir.path()).unwrap();
        assert!(
            store.check_room(0, u64::MAX).is_ok(),
            "no reserve: no check"
        );
        assert!(store.check_room(1, 1024).is_ok());
        let err = store.check_room(free + 1, 0).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        assert!(matches!(err, QueueError::NoRoom { .. }));
        // The size counts half again on top of the reserve.
        let err = store.check_room(1, free).unwrap_err();
        assert!(err.is_disk_full());
    }
}
