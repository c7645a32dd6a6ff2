//! Finished faxes: what `faxmta fax status` shows once a fax has left the
//! queue (sent, or failed with its report queued). Kept in their own tree
//! of the queue database, newest last, and pruned by age. Beside them, the
//! ids of messages with a recipient that failed for good, for the fax
//! images' zero retention (an image whose mail failed is kept).

use crate::envelope::{FaxProgress, QueueId, Reply};
use crate::store::{QueueError, Store};
use serde::{Deserialize, Serialize};

/// One fax recipient's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaxRecord {
    /// The message it came in.
    pub id: QueueId,
    pub recipient: String,
    pub sender: String,
    /// `sent` or `failed`.
    pub outcome: String,
    /// Unix seconds: arrival in the queue, and the end.
    pub arrival: u64,
    pub finished: u64,
    pub progress: FaxProgress,
    /// The last reply (what the report says).
    pub reply: Option<Reply>,
}

const TREE: &str = "fax_history";
const FAILED: &str = "failed_messages";

impl Store {
    /// Remember a finished fax.
    pub fn record_fax(&self, record: &FaxRecord) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let mut key = record.finished.to_be_bytes().to_vec();
        key.extend_from_slice(record.id.as_bytes());
        key.push(b'/');
        key.extend_from_slice(record.recipient.as_bytes());
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        tree.insert(key, value)?;
        Ok(())
    }

    /// The finished faxes, oldest first; at most the last `limit`.
    pub fn fax_history(&self, limit: usize) -> Result<Vec<FaxRecord>, QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let mut out = Vec::new();
        for item in tree.iter().rev().take(limit) {
            let (_, value) = item?;
            // A record that no longer parses is skipped, not fatal.
            if let Ok(record) = serde_json::from_slice(&value) {
                out.push(record);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Remember that a recipient of message `id` failed for good at `now`.
    pub fn record_failure(&self, id: &str, now: u64) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(FAILED)?;
        tree.insert(id.as_bytes(), &now.to_be_bytes())?;
        Ok(())
    }

    /// Whether a recipient of message `id` failed for good (within the
    /// time such records are kept).
    pub fn had_failure(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.db()?.open_tree(FAILED)?.contains_key(id.as_bytes())?)
    }

    /// Forget failures recorded before `before` (Unix seconds).
    pub fn prune_failures(&self, before: u64) -> Result<usize, QueueError> {
        let tree = self.db()?.open_tree(FAILED)?;
        let mut n = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            let at = <[u8; 8]>::try_from(value.as_ref()).map_or(0, u64::from_be_bytes);
            if at < before {
                tree.remove(key)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Forget faxes finished before `before` (Unix seconds); returns how
    /// many.
    pub fn prune_fax_history(&self, before: u64) -> Result<usize, QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let mut n = 0;
        for item in tree.range(..before.to_be_bytes().to_vec()) {
            let (key, _) = item?;
            tree.remove(key)?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, finished: u64) -> FaxRecord {
        FaxRecord {
            id: id.into(),
            recipient: "+15551234567@fax.test".into(),
            sender: "alice@example.test".into(),
            outcome: "sent".into(),
            arrival: finished - 10,
            finished,
            progress: FaxProgress {
                number: "+15551234567".into(),
                pages_sent: 2,
                pages_total: 2,
                ..Default::default()
            },
            reply: None,
        }
    }

    #[tokio::test]
    async fn kept_in_order_limited_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, t) in [("B", 200), ("A", 100), ("C", 300)] {
            store.record_fax(&record(id, t)).unwrap();
        }
        let ids = |v: Vec<FaxRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(store.fax_history(10).unwrap()), ["A", "B", "C"]);
        assert_eq!(ids(store.fax_history(2).unwrap()), ["B", "C"]);
        assert_eq!(store.prune_fax_history(250).unwrap(), 2);
        assert_eq!(ids(store.fax_history(10).unwrap()), ["C"]);
    }

    #[tokio::test]
    async fn failures_are_remembered_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.record_failure("A", 100).unwrap();
        store.record_failure("B", 300).unwrap();
        assert!(store.had_failure("A").unwrap() && !store.had_failure("C").unwrap());
        assert_eq!(store.prune_failures(200).unwrap(), 1);
        assert!(!store.had_failure("A").unwrap() && store.had_failure("B").unwrap());
    }
}
