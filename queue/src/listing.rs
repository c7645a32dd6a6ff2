//! Reading the whole queue one message at a time: `queue list` on a queue
//! of a million messages must not hold them all in memory at once (nor
//! parse and print them again when it only passes them on). A backend
//! hands out [`RawEnvelope`]s ([`crate::QueueStore::envelopes_raw`]).

use crate::envelope::{Envelope, QueueId};
use crate::error::QueueError;

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

/// A lazy stream of stored envelopes, in id order.
pub type RawEnvelopes<'a> = Box<dyn Iterator<Item = Result<RawEnvelope, QueueError>> + 'a>;
