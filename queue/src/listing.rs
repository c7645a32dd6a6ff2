//! Reading the whole queue one message at a time: `queue list` on a queue
//! of a million messages must not hold them all in memory at once (nor
//! parse and print them again when it only passes them on).

use crate::envelope::{Envelope, QueueId};
use crate::store::{QueueError, Store};

/// One stored envelope as its JSON text, unparsed.
#[derive(Debug, Clone)]
pub struct RawEnvelope {
    pub id: QueueId,
    /// The envelope as stored: compact JSON, one line (no raw newline).
    pub json: Vec<u8>,
}

impl RawEnvelope {
    /// The envelope, parsed.
    pub fn parse(&self) -> Result<Envelope, QueueError> {
        serde_json::from_slice(&self.json).map_err(|source| QueueError::Corrupt {
            id: self.id.clone(),
            source,
        })
    }
}

impl Store {
    /// Every message's envelope as stored, ordered by id (by arrival),
    /// read lazily from the database: memory stays flat however long the
    /// queue is. Messages added or removed meanwhile may or may not show.
    pub fn envelopes_raw(&self) -> impl Iterator<Item = Result<RawEnvelope, QueueError>> + '_ {
        let (iter, failed) = match self.handles() {
            Ok(db) => (Some(db.envelopes.iter()), None),
            Err(e) => (None, Some(Err(e))),
        };
        failed
            .into_iter()
            .chain(iter.into_iter().flatten().map(|item| {
                let (key, value) = item.map_err(|e| self.sled_error(e))?;
                Ok(RawEnvelope {
                    id: String::from_utf8_lossy(&key).into_owned(),
                    json: value.to_vec(),
                })
            }))
    }

    /// [`Store::envelopes_raw`], parsed.
    pub fn envelopes(&self) -> impl Iterator<Item = Result<Envelope, QueueError>> + '_ {
        self.envelopes_raw().map(|raw| raw?.parse())
    }

    /// Every message in the queue, ordered by id (that is, by arrival).
    /// Holds them all at once: prefer [`Store::envelopes`] where the queue
    /// may be long.
    pub fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        self.envelopes().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::envelope::{NewMessage, NewRecipient};
    use crate::store::Store;

    #[test]
    fn envelopes_stream_in_id_order_and_raw_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            let msg = NewMessage {
                sender: "s@example.org".into(),
                recipients: vec![NewRecipient::new(format!("r{i}@x.test"))],
                envid: Some("line\nbreak".into()),
                ..Default::default()
            };
            let id = store.new_id().unwrap();
            store.enqueue_blocking(id.clone(), msg, b"x").unwrap();
            ids.push(id);
        }
        let listed: Vec<String> = store.envelopes().map(|e| e.unwrap().id).collect();
        assert_eq!(listed, ids);
        for raw in store.envelopes_raw() {
            let raw = raw.unwrap();
            assert!(!raw.json.contains(&b'\n'), "one line per envelope");
            assert_eq!(raw.parse().unwrap().id, raw.id);
        }
        assert_eq!(store.list().unwrap().len(), 5);
    }
}
