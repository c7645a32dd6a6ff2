//! Broadcasts of the HTTP fax API: one `POST /fax/send` to several
//! numbers queues one message per number (its queue id is the
//! transaction id); the broadcast id names them together so that
//! `GET /fax/status/BROADCAST` can answer for all of them. Kept in their
//! own tree of the queue database.

use crate::store::{QueueError, Store};

const TREE: &str = "broadcasts";

impl Store {
    /// A new broadcast id: a queue id with a `B` in front, so it never
    /// names a message.
    pub fn new_broadcast_id(&self) -> Result<String, QueueError> {
        Ok(format!("B{}", self.new_id()?))
    }

    /// Remember the messages of a broadcast (not synced: the caller syncs
    /// before it answers).
    pub fn record_broadcast(&self, id: &str, transactions: &[String]) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        let value = serde_json::to_vec(transactions).map_err(QueueError::Encode)?;
        tree.insert(id.as_bytes(), value)?;
        Ok(())
    }

    /// The messages of a broadcast; `None`: no such broadcast.
    pub fn broadcast(&self, id: &str) -> Result<Option<Vec<String>>, QueueError> {
        let tree = self.db()?.open_tree(TREE)?;
        Ok(tree
            .get(id.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_names_its_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_broadcast_id().unwrap();
        assert!(id.starts_with('B'));
        let ids = vec!["A1".to_string(), "A2".to_string()];
        store.record_broadcast(&id, &ids).unwrap();
        assert_eq!(store.broadcast(&id).unwrap(), Some(ids));
        assert_eq!(store.broadcast("B0").unwrap(), None);
    }
}
