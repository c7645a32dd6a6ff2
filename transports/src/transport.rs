//! The contract between the scheduler and every transport.

use faxmta_queue::{Envelope, Reply};
use std::path::PathBuf;

/// One recipient of a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecipient {
    /// Index of the recipient in `Envelope::recipients`.
    pub index: usize,
    /// The address as queued.
    pub address: String,
    /// Where this recipient's copy goes when that differs per recipient
    /// (a Maildir directory for local delivery).
    pub mailbox: Option<PathBuf>,
}

/// One delivery attempt: a message and the recipients that share a hop.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub envelope: &'a Envelope,
    /// The message as queued (our Received header included).
    pub body: &'a [u8],
    pub recipients: &'a [JobRecipient],
}

/// How an attempt ended for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Delivered,
    /// Temporary failure: try again later.
    Deferred,
    /// Permanent failure: report to the sender.
    Failed,
}

impl Status {
    /// The word Postfix logs for it: `sent`, `deferred`, `bounced`.
    pub fn log_word(self) -> &'static str {
        match self {
            Status::Delivered => "sent",
            Status::Deferred => "deferred",
            Status::Failed => "bounced",
        }
    }
}

/// The result of an attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the recipient in `Envelope::recipients`.
    pub index: usize,
    pub status: Status,
    /// Where it went: a host, `local`, a mailbox path.
    pub relay: String,
    /// The reply, or a reply-shaped description of what happened.
    pub reply: Reply,
}

/// A way to move a message one hop further.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// The transport's name in logs and metrics (`local`, `smtp`, `fax` …).
    fn name(&self) -> &'static str;

    /// Attempt delivery; exactly one outcome per job recipient.
    async fn deliver(&self, job: Job<'_>) -> Vec<Outcome>;
}
