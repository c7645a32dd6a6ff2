//! faxmta-queue: the envelope types of faxmta and its durable message queue.
//!
//! The queue is the one place where mail is kept. Everything that accepts
//! mail (the SMTP server, the fax receiver, the report generator) hands a
//! [`NewMessage`] and its body to [`Store::enqueue`], which returns only once
//! both are flushed and synced to disk (several callers share one sync:
//! group commit). Everything that delivers mail asks the store for due
//! messages and records one [`Outcome`] per recipient back into it.
//!
//! This crate does no networking and knows nothing of transports.

mod admin;
mod body;
mod broadcast;
mod commit;
mod db;
mod envelope;
mod etrn_index;
mod history;
mod index;
mod listing;
mod retry;
mod space;
mod store;
mod time;

pub use admin::{EtrnRelease, EtrnStart};
pub use body::BodyWriter;
pub use broadcast::{split_transaction, BroadcastEntry};
pub use envelope::{
    BodyType, ClientInfo, Envelope, Etrn, FaxProgress, NewMessage, NewRecipient, Notify, QueueId,
    RcptState, Recipient, Reply, Ret,
};
pub use history::FaxRecord;
pub use listing::RawEnvelope;
pub use retry::RetryPolicy;
pub use space::available;
pub use store::{QueueCounts, QueueError, Store, DEFAULT_CACHE};
pub use time::{format_duration, now_unix};
