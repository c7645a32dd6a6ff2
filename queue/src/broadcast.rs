//! Broadcasts of the HTTP fax API: one `sendfax` request to several
//! numbers queues one message with a recipient per number; each
//! recipient has its own transaction id (`QUEUEID-N`), and the broadcast
//! id (`B` and the queue id) names them together so that the status call
//! can answer for all of them, and for each one once the message has
//! left the queue. Kept in their own tree of the queue database, and
//! pruned with the fax history ([`Store::prune_broadcasts`]). Records of
//! older versions list bare queue ids (one message per number).

use crate::store::{QueueError, Store};
use serde::{Deserialize, Serialize};

const TREE: &str = "broadcasts";

/// One transaction of a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastEntry {
    /// `QUEUEID-N`, or a bare queue id (records of older versions).
    pub transaction: String,
    /// The recipient address in the message; empty in older records.
    #[serde(default)]
    pub recipient: String,
}

impl BroadcastEntry {
    /// The queue id of the message the transaction is in.
    pub fn queue_id(&self) -> &str {
        split_transaction(&self.transaction).0
    }
}

/// A transaction id: the queue id and the recipient's number in the
/// message (from 1), or `None` for a bare queue id.
pub fn split_transaction(id: &str) -> (&str, Option<usize>) {
    match id.rsplit_once('-') {
        Some((queue, n)) if !queue.is_empty() => match n.parse::<usize>() {
            Ok(n) if n > 0 => (queue, Some(n)),
            _ => (id, None),
        },
        _ => (id, None),
    }
}

/// The stored form: new records carry the recipients; old ones are a
/// list of queue ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Entries(Vec<BroadcastEntry>),
    Ids(Vec<String>),
}

/// When a broadcast (or queue) id was made: its first 8 hex digits after
/// the `B` are the Unix time (mod 2^32); 0 when it has none.
fn made_at(id: &str) -> u64 {
    id.strip_prefix('B')
        .and_then(|rest| rest.get(..8))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

impl Store {
    /// The broadcast id of the message `queue_id`: `B` in front, so it
    /// never names a message.
    pub fn broadcast_id(queue_id: &str) -> String {
        format!("B{queue_id}")
    }

    /// Remember the transactions of a broadcast (not synced: the caller
    /// syncs before it answers; enqueueing the message does).
    pub fn record_broadcast(&self, id: &str, entries: &[BroadcastEntry]) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let value = serde_json::to_vec(entries).map_err(QueueError::Encode)?;
        tree.insert(id.as_bytes(), value)?;
        Ok(())
    }

    /// Forget a broadcast (its message could not be queued).
    pub fn remove_broadcast(&self, id: &str) -> Result<(), QueueError> {
        self.db()?.open_tree(TREE)?.remove(id.as_bytes())?;
        Ok(())
    }

    /// The transactions of a broadcast; `None`: no such broadcast.
    pub fn broadcast(&self, id: &str) -> Result<Option<Vec<BroadcastEntry>>, QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        Ok(tree
            .get(id.as_bytes())?
            .and_then(|v| serde_json::from_slice::<Stored>(&v).ok())
            .map(|stored| match stored {
                Stored::Entries(e) => e,
                Stored::Ids(ids) => ids
                    .into_iter()
                    .map(|transaction| BroadcastEntry {
                        transaction,
                        recipient: String::new(),
                    })
                    .collect(),
            }))
    }

    /// Forget broadcasts made before `before` (Unix seconds) none of
    /// whose messages is still in the queue; returns how many. Run with
    /// the fax history's pruning, so a broadcast lives as long as its
    /// faxes are told.
    pub fn prune_broadcasts(&self, before: u64) -> Result<usize, QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let mut n = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            if made_at(&id) >= before {
                continue;
            }
            let entries = serde_json::from_slice::<Stored>(&value).ok();
            let queued = match entries {
                Some(Stored::Entries(e)) => e
                    .iter()
                    .map(|e| self.get(e.queue_id()).map(|m| m.is_some()))
                    .collect::<Result<Vec<_>, _>>()?
                    .contains(&true),
                Some(Stored::Ids(ids)) => ids
                    .iter()
                    .map(|id| self.get(split_transaction(id).0).map(|m| m.is_some()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::NewMessage;

    fn entry(transaction: &str, recipient: &str) -> BroadcastEntry {
        BroadcastEntry {
            transaction: transaction.into(),
            recipient: recipient.into(),
        }
    }

    #[test]
    fn a_broadcast_names_its_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queue_id = store.new_id().unwrap();
        let id = Store::broadcast_id(&queue_id);
        assert!(id.starts_with('B'));
        let entries = vec![
            entry(&format!("{queue_id}-1"), "5551@fax.test"),
            entry(&format!("{queue_id}-2"), "5552@fax.test"),
        ];
        store.record_broadcast(&id, &entries).unwrap();
        assert_eq!(store.broadcast(&id).unwrap(), Some(entries.clone()));
        assert_eq!(entries[1].queue_id(), queue_id);
        assert_eq!(store.broadcast("B0").unwrap(), None);
        store.remove_broadcast(&id).unwrap();
        assert_eq!(store.broadcast(&id).unwrap(), None);
    }

    #[test]
    fn records_of_older_versions_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tree = store.db().unwrap().open_tree(TREE).unwrap();
        tree.insert("B1", br#"["A1","A2"]"#.to_vec()).unwrap();
        let got = store.broadcast("B1").unwrap().unwrap();
        assert_eq!(got, vec![entry("A1", ""), entry("A2", "")]);
        assert_eq!(got[0].queue_id(), "A1");
    }

    #[test]
    fn transaction_ids_split() {
        assert_eq!(
            split_transaction("69A1B2C300001-2"),
            ("69A1B2C300001", Some(2))
        );
        assert_eq!(split_transaction("69A1B2C300001"), ("69A1B2C300001", None));
        assert_eq!(split_transaction("X-0"), ("X-0", None));
        assert_eq!(split_transaction("-1"), ("-1", None));
        assert_eq!(split_transaction("X-y"), ("X-y", None));
    }

    #[tokio::test]
    async fn old_broadcasts_are_pruned_unless_their_message_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Made at t=0x100 (old), and at t=0x300 (recent).
        store
            .record_broadcast("B0000010000001", &[entry("0000010000001-1", "a@fax.test")])
            .unwrap();
        store
            .record_broadcast("B0000030000001", &[entry("0000030000001-1", "a@fax.test")])
            .unwrap();
        // An old broadcast (of the older form) whose message is still
        // queued stays until it leaves.
        let queued = store.new_id().unwrap();
        let body = b"Subject: x\r\n\r\nx\r\n";
        let message = NewMessage::local("a@b.test", &["5551@fax.test".into()], "h", body);
        store.enqueue(queued.clone(), message, body).await.unwrap();
        let old_ids = serde_json::to_vec(std::slice::from_ref(&queued)).unwrap();
        let tree = store.db().unwrap().open_tree(TREE).unwrap();
        tree.insert("B0000010000002", old_ids).unwrap();
        // And an unreadable old one.
        tree.insert("B0000010000003", b"garbage".to_vec()).unwrap();

        assert_eq!(store.prune_broadcasts(0x200).unwrap(), 2);
        assert_eq!(store.broadcast("B0000010000001").unwrap(), None);
        assert!(store.broadcast("B0000030000001").unwrap().is_some());
        assert!(store.broadcast("B0000010000002").unwrap().is_some());
        assert!(!tree.contains_key("B0000010000003").unwrap());

        store.remove(&queued).unwrap();
        assert_eq!(store.prune_broadcasts(0x200).unwrap(), 1);
        assert_eq!(store.broadcast("B0000010000002").unwrap(), None);
    }
}
