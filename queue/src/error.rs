//! The queue's error type, the same for every backend: what went wrong
//! (a file, the database behind the store, the shared sync, no room) and
//! whether it means a full disk — the one thing callers decide on (452
//! 4.3.1 to the client, try again later).
//!
//! A backend's own errors (sled's today) are carried as a boxed source in
//! [`QueueError::Backend`], with the backend's verdict on `disk_full`, so
//! nothing outside the backend's module names its types.

use std::path::PathBuf;

/// A backend's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the queue store.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database behind the store failed (opening it, reading or
    /// writing); `context` says where.
    #[error("queue store{}{context}: {source}", if context.is_empty() { "" } else { " " })]
    Backend {
        context: String,
        source: BoxError,
        /// Whether the failure comes from a full disk (or quota).
        disk_full: bool,
    },
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

/// Whether an I/O error means a full disk (ENOSPC) or quota (EDQUOT).
pub(crate) fn io_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

impl QueueError {
    /// Whether the error comes from a full disk (or quota): the sender
    /// should get 452 4.3.1 and try again later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            QueueError::Backend { disk_full, .. } => *disk_full,
            QueueError::File { source, .. } => io_disk_full(source),
            QueueError::Sync { disk_full, .. } => *disk_full,
            QueueError::NoRoom { .. } | QueueError::Reopening => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_error_says_where_and_keeps_its_verdict() {
        let e = QueueError::Backend {
            context: "/var/spool/faxmta".into(),
            source: "no luck".into(),
            disk_full: true,
        };
        assert_eq!(e.to_string(), "queue store /var/spool/faxmta: no luck");
        assert!(e.is_disk_full());
        let e = QueueError::Backend {
            context: String::new(),
            source: "no luck".into(),
            disk_full: false,
        };
        assert_eq!(e.to_string(), "queue store: no luck");
        assert!(!e.is_disk_full());
    }
}
