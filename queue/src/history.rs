//! Finished faxes: what `faxmta fax status` and the portal show once a
//! fax has left the queue (sent, or failed with its report queued);
//! received faxes and what they were routed to; one usage row per fax
//! and user for billing; beside them, the ids of messages with a
//! recipient that failed for good, for the fax images' zero retention (an
//! image whose mail failed is kept). The records are kept by the backend
//! ([`crate::QueueStore::record_fax`] and the methods after it); how they
//! are searched is in `query.rs`.

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

impl FaxRecord {
    /// What a text search looks in, lower case: recipient, number,
    /// remote CSID and sender, one a line.
    pub fn search_text(&self) -> String {
        [
            self.recipient.as_str(),
            self.progress.number.as_str(),
            self.progress.remote_csid.as_deref().unwrap_or(""),
            self.sender.as_str(),
        ]
        .join("\n")
        .to_lowercase()
    }

    /// The key of its document ([`sent_document_key`]).
    pub fn document_key(&self) -> String {
        sent_document_key(&self.id, &self.recipient)
    }
}

/// One received fax: what came in on the line and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceivedRecord {
    /// Unique: the stem of its stored image.
    pub key: String,
    /// Unix seconds: the end of the call.
    pub received_at: u64,
    /// The number called (our DID), as the line gave it.
    #[serde(default)]
    pub called: String,
    /// The caller's number (ANI), if the line gave one.
    #[serde(default)]
    pub caller: String,
    /// The remote's TSI.
    #[serde(default)]
    pub remote_tsi: String,
    pub pages: u32,
    pub duration_ms: u64,
    /// `received`, or `partial: REASON` …
    pub status: String,
    /// The addresses it was routed to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// The mail made from it, once queued.
    #[serde(default)]
    pub queue_id: Option<QueueId>,
}

impl ReceivedRecord {
    /// What a text search looks in, lower case: called and calling
    /// number, TSI and recipients, one a line.
    pub fn search_text(&self) -> String {
        let mut parts = vec![
            self.called.as_str(),
            self.caller.as_str(),
            self.remote_tsi.as_str(),
        ];
        parts.extend(self.recipients.iter().map(String::as_str));
        parts.join("\n").to_lowercase()
    }

    /// Its recipients in lower case (what a recipients filter matches).
    pub fn recipients_lower(&self) -> Vec<String> {
        self.recipients.iter().map(|r| r.to_lowercase()).collect()
    }

    /// The key of its document ([`received_document_key`]).
    pub fn document_key(&self) -> String {
        received_document_key(&self.key)
    }
}

/// The direction of a [`UsageRecord`] of a sent fax.
pub const USAGE_SENT: &str = "sent";
/// The direction of a [`UsageRecord`] of a received fax.
pub const USAGE_RECEIVED: &str = "received";

/// One fax for one user, for billing: a sent fax counts once per
/// recipient (for its sender), a received one once per address it was
/// routed to. Written again for the same fax, user and direction at the
/// same time, it replaces the first (a repeat after a crash counts once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UsageRecord {
    /// Unix seconds: when the fax ended.
    pub at: u64,
    /// [`USAGE_SENT`] or [`USAGE_RECEIVED`].
    pub direction: String,
    /// The user's address: the sender of a sent fax, a recipient of a
    /// received one.
    pub user: String,
    /// The user's fax groups at that time (from the directory).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The remote number (sent), or the number called (received).
    pub number: String,
    /// Pages sent (confirmed) or received.
    pub pages: u32,
    /// Time on the line, milliseconds.
    pub line_ms: u64,
    /// `sent`, `failed`, `received`, `partial: …`.
    pub outcome: String,
    /// The fax it counts: the queue id (sent) or the received record's
    /// key (received).
    #[serde(default)]
    pub fax: String,
}

/// The document key of a sent fax: `sent/<queue id>/<recipient>`.
pub fn sent_document_key(id: &str, recipient: &str) -> String {
    format!("sent/{id}/{recipient}")
}

/// The document key of a received fax: `received/<key>`.
pub fn received_document_key(key: &str) -> String {
    format!("received/{key}")
}
