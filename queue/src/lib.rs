//! faxmta-queue: the envelope types of faxmta and its durable message queue.
//!
//! The queue is the one place where mail is kept. Everything that accepts
//! mail (the SMTP server, the fax receiver, the report generator) hands a
//! [`NewMessage`] and its body to [`QueueStore::enqueue`], which returns
//! only once both are durable (several callers share one sync: group
//! commit). Everything that delivers mail leases due messages from the
//! store and records one outcome per recipient back into it.
//!
//! The store is a trait, [`QueueStore`] (`store.rs`, which says what every
//! backend promises); callers hold a [`Store`], a shared handle on one.
//! sled is the embedded default (`sled/`); PostgreSQL (`postgres/`) lets
//! several nodes share one queue. A test suite every backend runs is in
//! `tests/`.
//!
//! Layers, bottom up (no file imports from a layer above its own; a unit
//! test checks it): `error`, `lock`, `time`, `envelope`, `retry`; then
//! `space`, `body`, `listing`, `history`, `query`, `broadcast`, `etrn`, `lines`, `accounts`;
//! then
//! `store` (the trait); then `admin` (operations written over the trait);
//! then the backends (`sled`, `postgres`).
//!
//! This crate does no networking and knows nothing of transports.

mod accounts;
mod admin;
mod body;
mod broadcast;
mod envelope;
mod error;
mod etrn;
mod history;
mod lines;
mod listing;
mod lock;
pub mod postgres;
mod query;
mod retry;
pub mod sled;
mod space;
mod store;
#[cfg(test)]
mod tests;
mod time;

pub use self::postgres::{PgSettings, PgStore};
pub use self::sled::{SledStore, DEFAULT_CACHE};
pub use accounts::{Account, Accounts, API_TOKENS, SMTP_USERS};
pub use body::BodyWriter;
pub use broadcast::{broadcast_id, split_transaction, BroadcastEntry};
pub use envelope::{
    BodyType, ClientInfo, Envelope, Etrn, FaxProgress, NewMessage, NewRecipient, Notify, QueueId,
    RcptState, Recipient, Reply, Ret,
};
pub use error::{BoxError, QueueError};
pub use etrn::{EtrnRelease, EtrnStart};
pub use history::{
    received_document_key, sent_document_key, FaxRecord, ReceivedRecord, UsageRecord,
    USAGE_RECEIVED, USAGE_SENT,
};
pub use lines::{LineLease, LinePool};
pub use listing::{RawEnvelope, RawEnvelopes};
pub use query::{Cursor, FaxPage, FaxQuery, Page, ReceivedPage, ReceivedQuery};
pub use retry::RetryPolicy;
pub use space::available;
pub use store::{Lease, QueueCounts, QueueStore, Store};
pub use time::{format_duration, now_unix};
