//! The fax records in sled: finished faxes (`fax_history`, keyed by the
//! end time so that they sort oldest first), messages with a recipient
//! that failed for good (`failed_messages`), and the HTTP API's
//! broadcasts (`broadcasts`) — each its own tree of the queue database.

use super::faxlog::{HISTORY, HISTORY_IDS};
use super::SledStore;
use crate::broadcast::{decode, made_at, BroadcastEntry};
use crate::error::QueueError;
use crate::history::FaxRecord;

const FAILED: &str = "failed_messages";
const BROADCASTS: &str = "broadcasts";

impl SledStore {
    pub(super) fn record_fax(&self, record: &FaxRecord) -> Result<(), QueueError> {
        let db = self.db()?;
        let tree = db.open_tree(HISTORY)?;
        let name = format!("{}/{}", record.id, record.recipient);
        let mut key = record.finished.to_be_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        tree.insert(key, value)?;
        db.open_tree(HISTORY_IDS)?
            .insert(name.as_bytes(), &record.finished.to_be_bytes())?;
        Ok(())
    }

    pub(super) fn fax_history(&self, limit: usize) -> Result<Vec<FaxRecord>, QueueError> {
        let tree = self.db()?.open_tree(HISTORY)?;
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

    pub(super) fn record_failure(&self, id: &str, now: u64) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(FAILED)?;
        tree.insert(id.as_bytes(), &now.to_be_bytes())?;
        Ok(())
    }

    pub(super) fn had_failure(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.db()?.open_tree(FAILED)?.contains_key(id.as_bytes())?)
    }

    pub(super) fn prune_failures(&self, before: u64) -> Result<usize, QueueError> {
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

    pub(super) fn prune_fax_history(&self, before: u64) -> Result<usize, QueueError> {
        let db = self.db()?;
        let tree = db.open_tree(HISTORY)?;
        let ids = db.open_tree(HISTORY_IDS)?;
        let mut n = 0;
        for item in tree.range(..before.to_be_bytes().to_vec()) {
            let (key, _) = item?;
            tree.remove(&key)?;
            // The look-up entry, unless it names a later record.
            if let Some(name) = key.get(8..) {
                if ids.get(name)?.is_some_and(|at| at.as_ref() == &key[..8]) {
                    ids.remove(name)?;
                }
            }
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn record_broadcast(
        &self,
        id: &str,
        entries: &[BroadcastEntry],
    ) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(BROADCASTS)?;
        let value = serde_json::to_vec(entries).map_err(QueueError::Encode)?;
        tree.insert(id.as_bytes(), value)?;
        Ok(())
    }

    pub(super) fn remove_broadcast(&self, id: &str) -> Result<(), QueueError> {
        self.db()?.open_tree(BROADCASTS)?.remove(id.as_bytes())?;
        Ok(())
    }

    pub(super) fn broadcast(&self, id: &str) -> Result<Option<Vec<BroadcastEntry>>, QueueError> {
        let tree = self.db()?.open_tree(BROADCASTS)?;
        Ok(tree.get(id.as_bytes())?.and_then(|v| decode(&v)))
    }

    pub(super) fn prune_broadcasts(&self, before: u64) -> Result<usize, QueueError> {
        let tree = self.db()?.open_tree(BROADCASTS)?;
        let mut n = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            if made_at(&id) >= before {
                continue;
            }
            let queued = match decode(&value) {
                Some(entries) => entries
                    .iter()
                    .map(|e| self.get(e.queue_id()).map(|m| m.is_some()))
                    .collect::<Result<Vec<_>, _>>()?
                    .contains(&true),
                // Not readable: nothing can use it.
                None => false,
            };
            if !queued {
                tree.remove(key)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
