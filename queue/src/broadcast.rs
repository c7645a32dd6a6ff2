//! Broadcasts of the HTTP fax API: one `sendfax` request to several
//! numbers queues one message with a recipient per number; each
//! recipient has its own transaction id (`QUEUEID-N`), and the broadcast
//! id (`B` and the queue id) names them together so that the status call
//! can answer for all of them, and for each one once the message has
//! left the queue. Kept by the backend, and pruned with the fax history
//! ([`crate::QueueStore::prune_broadcasts`]). Records of older versions
//! list bare queue ids (one message per number); [`decode`] reads both.

use serde::{Deserialize, Serialize};

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
pub(crate) fn made_at(id: &str) -> u64 {
    id.strip_prefix('B')
        .and_then(|rest| rest.get(..8))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

/// The broadcast id of the message `queue_id`: `B` in front, so it never
/// names a message.
pub fn broadcast_id(queue_id: &str) -> String {
    format!("B{queue_id}")
}

/// A stored broadcast record, read: `None` if it does not parse.
pub(crate) fn decode(value: &[u8]) -> Option<Vec<BroadcastEntry>> {
    serde_json::from_slice::<Stored>(value)
        .ok()
        .map(|stored| match stored {
            Stored::Entries(e) => e,
            Stored::Ids(ids) => ids
                .into_iter()
                .map(|transaction| BroadcastEntry {
                    transaction,
                    recipient: String::new(),
                })
                .collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn records_of_older_versions_are_read() {
        let entry = |t: &str| BroadcastEntry {
            transaction: t.into(),
            recipient: String::new(),
        };
        let got = decode(br#"["A1","A2"]"#).unwrap();
        assert_eq!(got, vec![entry("A1"), entry("A2")]);
        assert_eq!(got[0].queue_id(), "A1");
        assert_eq!(decode(b"garbage"), None);
        assert_eq!(made_at("B0000010000001"), 0x100);
        assert_eq!(made_at("X"), 0);
    }
}
