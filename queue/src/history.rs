//! Finished faxes: what `faxmta fax status` shows once a fax has left the
//! queue (sent, or failed with its report queued), newest last, pruned by
//! age; beside them, the ids of messages with a recipient that failed for
//! good, for the fax images' zero retention (an image whose mail failed
//! is kept). The records are kept by the backend
//! ([`crate::QueueStore::record_fax`] and the methods after it).

use crate::envelope::{FaxProgress, QueueId, Reply};
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
