//! The queue's public surface: the [`QueueStore`] trait, and [`Store`],
//! the handle every caller holds (a shared trait object).
//!
//! A backend keeps envelopes, bodies and the fax records, and promises
//! what the methods below say: sled ([`crate::sled::SledStore`], the
//! embedded default) and PostgreSQL ([`crate::postgres::PgStore`], shared
//! by several nodes). Every backend runs the same test suite
//! (`queue/src/tests/`, one line per backend).
//!
//! The promises, in short:
//!
//! - **Durability.** [`QueueStore::enqueue`], [`QueueStore::enqueue_body`]
//!   and [`QueueStore::enqueue_blocking`] return only once the body and
//!   the envelope are durable (synced to disk or committed): the caller
//!   may then acknowledge (250). Concurrent enqueues share syncs (group
//!   commit). A body is durable before its envelope can be; a message
//!   whose enqueue failed is not in the queue (no second copy when the
//!   client retries). Other writes ([`QueueStore::update_with`],
//!   [`QueueStore::remove`], the fax records) are made durable by the
//!   next [`QueueStore::sync`] (or by the backend's own flush, earlier).
//! - **Leases.** A deliverer takes due messages with
//!   [`QueueStore::lease_due`]: each is leased to it alone until the
//!   lease expires, renewed ([`QueueStore::renew_lease`]) during a long
//!   delivery (a fax call) and ended ([`QueueStore::end_lease`]) after
//!   the outcome is recorded. A message leased and not expired is not
//!   handed out again; an expired one is (its holder crashed or hung:
//!   a repeated delivery rather than a lost one). On sled a lease lives
//!   in memory (one process owns the queue); a shared database keeps it
//!   in a row (`FOR UPDATE SKIP LOCKED`, an expiry column).
//! - **Outcomes.** [`QueueStore::update_with`] is a read-modify-write of
//!   one envelope, serialised with every other write of it; a message
//!   whose recipients are all finished leaves the queue there and then
//!   (its body after the next sync).
//! - **Schedule.** [`QueueStore::due`], [`QueueStore::next_due`],
//!   [`QueueStore::counts`] and [`QueueStore::len`] answer from an index,
//!   without reading every envelope; [`QueueStore::changed`] wakes a
//!   waiting scheduler after any change.
//! - **Errors.** A full disk is told apart
//!   ([`QueueError::is_disk_full`]); after a write error the backend may
//!   refuse for a while ([`QueueError::Reopening`]) and recovers by
//!   itself ([`QueueStore::is_broken`], [`QueueStore::recover`]).
//!
//! Sync methods must be quick or run where blocking is allowed: the
//! callers run the slow ones (listings, the control socket's commands,
//! reading bodies) on blocking threads already.

use crate::accounts::Accounts;
use crate::body::BodyWriter;
use crate::broadcast::BroadcastEntry;
use crate::envelope::{Envelope, NewMessage, QueueId};
use crate::error::QueueError;
use crate::etrn::EtrnStart;
use crate::history::{FaxRecord, ReceivedRecord, UsageRecord};
use crate::lines::LinePool;
use crate::listing::RawEnvelopes;
use crate::query::{FaxPage, FaxQuery, ReceivedPage, ReceivedQuery};
use std::sync::Arc;
use std::time::Duration;

/// Messages by where they stand (see [`QueueStore::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueCounts {
    pub due: usize,
    pub waiting: usize,
    pub held: usize,
}

/// One message leased to one deliverer (see [`QueueStore::lease_due`]).
/// Give it back with [`QueueStore::end_lease`]; a lease dropped without
/// that ends when it expires.
#[derive(Debug, PartialEq, Eq)]
pub struct Lease {
    id: QueueId,
    token: u64,
}

impl Lease {
    /// A lease on `id`; `token` tells this lease from earlier and later
    /// ones on the same message (for the backend).
    pub fn new(id: QueueId, token: u64) -> Lease {
        Lease { id, token }
    }

    /// The leased message.
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// The backend's token of this lease.
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// The durable message queue; see the module documentation for what every
/// backend promises.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync + 'static {
    // ---- ids, room, enqueueing ----

    /// A fresh queue id: unique in this queue, upper-case hex, roughly
    /// sorted by time.
    fn new_id(&self) -> Result<QueueId, QueueError>;

    /// Whether a message of `size` octets may be taken while `reserve`
    /// octets must stay free for the queue (`[queue] min_free`): else
    /// [`QueueError::NoRoom`] (a full disk). `size` counts half again,
    /// for the envelope, the log and a report's copy; `reserve` 0: no
    /// check.
    fn check_room(&self, reserve: u64, size: u64) -> Result<(), QueueError>;

    /// Start the body of message `id` (a fresh id from
    /// [`QueueStore::new_id`]), keeping `reserve` octets free while it is
    /// written. Commit it with [`QueueStore::enqueue_body`]; a writer
    /// dropped before that leaves nothing behind.
    fn begin_body(&self, id: &QueueId, reserve: u64) -> Result<BodyWriter, QueueError>;

    /// Commit a message whose body was written with a [`BodyWriter`]:
    /// `head` is header fields the receiver puts above the body (its
    /// trace and authentication results), kept in the envelope — the
    /// message is `head` followed by the body. Returns only once body and
    /// envelope are durable; the caller may then acknowledge. Refuses an
    /// address with a control character ([`QueueError::BadAddress`]). On
    /// an error nothing of the message stays.
    async fn enqueue_body(
        &self,
        msg: NewMessage,
        body: BodyWriter,
        head: String,
    ) -> Result<Envelope, QueueError>;

    /// Store a message whose body is in memory: [`QueueStore::begin_body`]
    /// and [`QueueStore::enqueue_body`] in one, with the same promises.
    async fn enqueue(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        let mut writer = self.begin_body(&id, 0)?;
        for piece in body.chunks(1 << 20) {
            writer.write(piece).await?;
        }
        self.enqueue_body(msg, writer, String::new()).await
    }

    /// [`QueueStore::enqueue`] for callers outside an async runtime.
    fn enqueue_blocking(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError>;

    /// Wait until everything written so far is durable (a shared sync).
    async fn sync(&self) -> Result<(), QueueError>;

    /// [`QueueStore::sync`] for callers outside an async runtime.
    fn sync_blocking(&self) -> Result<(), QueueError>;

    /// Whether a write error left the store to be recovered (it then
    /// refuses new mail until [`QueueStore::recover`], which the backend
    /// also runs by itself once it can).
    fn is_broken(&self) -> bool;

    /// After a write error: recover now (blocking; may read the whole
    /// queue). Does nothing when the store is healthy.
    fn recover(&self) -> Result<(), QueueError>;

    // ---- reading ----

    /// The envelope of a message; `None`: not in the queue.
    fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError>;

    /// The stored octets of a message: the header fields the receiver
    /// put above it ([`Envelope::head`]), then its body.
    fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError>;

    /// Every message's envelope as stored, ordered by id (by arrival),
    /// read lazily: memory stays flat however long the queue is.
    /// Messages added or removed meanwhile may or may not show.
    fn envelopes_raw(&self) -> RawEnvelopes<'_>;

    /// [`QueueStore::envelopes_raw`], parsed.
    fn envelopes(&self) -> Box<dyn Iterator<Item = Result<Envelope, QueueError>> + '_> {
        Box::new(self.envelopes_raw().map(|raw| raw?.parse()))
    }

    /// Every message in the queue, ordered by id (by arrival). Holds them
    /// all at once: prefer [`QueueStore::envelopes`] where the queue may
    /// be long.
    fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        self.envelopes().collect()
    }

    // ---- the schedule and leases ----

    /// Ids of messages due at or before `now`, earliest first, at most
    /// `limit` (leased ones included).
    fn due(&self, now: u64, limit: usize) -> Vec<QueueId>;

    /// The earliest due time of any message, if any is scheduled.
    fn next_due(&self) -> Option<u64>;

    /// Lease up to `limit` messages due at or before `now`, earliest
    /// first, that no unexpired lease holds, each for `ttl`.
    async fn lease_due(
        &self,
        now: u64,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, QueueError>;

    /// Extend `lease` by `ttl` from now. `false`: it was lost (it expired
    /// and the store let it go; another deliverer may hold the message).
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, QueueError>;

    /// Give `lease` back (after the outcome is recorded).
    fn end_lease(&self, lease: Lease);

    /// Move a message's next attempt to `due` in the schedule only, not
    /// in its envelope: for a message whose results could not be written
    /// (a full disk), or one parked until its destination has a free
    /// slot. A restart or a recovery makes it due at its recorded time
    /// again. Returns whether it is scheduled (not held, not gone).
    fn postpone(&self, id: &str, due: u64) -> bool;

    /// Resolves when the queue changed (a message arrived, was released,
    /// rescheduled or updated, or the queue was read again).
    async fn changed(&self);

    // ---- outcomes and the administrator's operations ----

    /// Read, change and write back a message's envelope, serialised with
    /// every other change of it; a message all of whose recipients are
    /// finished is removed. Returns the envelope after the change, or
    /// `None` if there is no such message. The change is written, not
    /// yet durable (a crash before the next sync repeats a delivery: a
    /// duplicate, never a loss). Callers use `update` (on
    /// `dyn QueueStore`) with a closure.
    fn update_with(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Envelope),
    ) -> Result<Option<Envelope>, QueueError>;

    /// Delete a message (envelope first: a crash leaves only an orphan
    /// body, removed later). Returns whether it existed.
    fn remove(&self, id: &str) -> Result<bool, QueueError>;

    /// Hold a message: it stays queued but is not delivered.
    fn hold(&self, id: &str) -> Result<bool, QueueError>;

    /// Release a held message; its active recipients become due now.
    fn release(&self, id: &str) -> Result<bool, QueueError>;

    /// Make the deferred recipients of one message (or of all messages
    /// that are not held) due now, like `postqueue -f`. Returns how many
    /// messages were rescheduled.
    fn flush_now(&self, id: Option<&str>) -> Result<usize, QueueError>;

    /// Make every active recipient in `domain` (exactly, any case; not
    /// its subdomains) due now in every message that is not held —
    /// `postqueue -s`; a recipient held for ETRN is released. Returns how
    /// many messages were rescheduled.
    fn flush_domain(&self, domain: &str) -> Result<usize, QueueError>;

    /// The first half of an ETRN for `domains` (each exactly, any case),
    /// at once, without reading the queue: what waits and how many
    /// messages that is — enough for the answer; the messages found are
    /// marked as being released, so a second ETRN meanwhile finds them
    /// under way. The release ([`EtrnStart::release`]) can run after the
    /// answer.
    fn etrn_start(&self, domains: &[String]) -> EtrnStart;

    // ---- counts ----

    /// How many messages are due now, waiting for a later attempt, or
    /// held — from the index, no read of the queue.
    fn counts(&self, now: u64) -> QueueCounts;

    /// Number of messages in the queue (from the index).
    fn len(&self) -> usize;

    /// Whether the queue is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // ---- fax history and broadcasts ----

    /// Remember a finished fax.
    fn record_fax(&self, record: &FaxRecord) -> Result<(), QueueError>;

    /// The finished faxes, oldest first; at most the last `limit`.
    /// Records that no longer parse are skipped.
    fn fax_history(&self, limit: usize) -> Result<Vec<FaxRecord>, QueueError>;

    /// Forget faxes finished before `before` (Unix seconds); returns how
    /// many.
    fn prune_fax_history(&self, before: u64) -> Result<usize, QueueError>;

    /// Finished faxes newest first, filtered and a page at a time
    /// ([`FaxQuery`]): at most `query.limit`, and where the next page
    /// starts if more may follow. Records that no longer parse are
    /// skipped.
    fn fax_history_query(&self, query: &FaxQuery) -> Result<FaxPage, QueueError>;

    /// The finished fax `id` to `recipient` (exactly as recorded); the
    /// latest if it was recorded twice.
    fn fax_record(&self, id: &str, recipient: &str) -> Result<Option<FaxRecord>, QueueError>;

    // ---- received faxes, usage, documents ----

    /// Remember a received fax (a record with the same key is replaced).
    fn record_received(&self, record: &ReceivedRecord) -> Result<(), QueueError>;

    /// Received faxes newest first, filtered and a page at a time
    /// ([`ReceivedQuery`]).
    fn received_query(&self, query: &ReceivedQuery) -> Result<ReceivedPage, QueueError>;

    /// The received fax with this key.
    fn received_record(&self, key: &str) -> Result<Option<ReceivedRecord>, QueueError>;

    /// Forget faxes received before `before` (Unix seconds); returns how
    /// many.
    fn prune_received(&self, before: u64) -> Result<usize, QueueError>;

    /// Write a usage row (one with the same time, fax, user and
    /// direction is replaced).
    fn record_usage(&self, record: &UsageRecord) -> Result<(), QueueError>;

    /// The usage rows at or after `since` and before `until` (Unix
    /// seconds), oldest first. Rows that no longer parse are skipped.
    fn usage(&self, since: u64, until: u64) -> Result<Vec<UsageRecord>, QueueError>;

    /// Forget usage rows from before `before`; returns how many.
    fn prune_usage(&self, before: u64) -> Result<usize, QueueError>;

    /// Keep a fax document (TIFF-F) under `key`
    /// ([`crate::sent_document_key`], [`crate::received_document_key`]),
    /// stamped `at` (Unix seconds) for [`QueueStore::prune_documents`];
    /// one under the same key is replaced.
    fn put_document(&self, key: &str, at: u64, data: &[u8]) -> Result<(), QueueError>;

    /// The document kept under `key`.
    fn document(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError>;

    /// Forget documents stamped before `before`; returns how many.
    fn prune_documents(&self, before: u64) -> Result<usize, QueueError>;

    // ---- failures and broadcasts ----

    /// Remember that a recipient of message `id` failed for good at `now`.
    fn record_failure(&self, id: &str, now: u64) -> Result<(), QueueError>;

    /// Whether a recipient of message `id` failed for good (within the
    /// time such records are kept).
    fn had_failure(&self, id: &str) -> Result<bool, QueueError>;

    /// Forget failures recorded before `before` (Unix seconds); returns
    /// how many.
    fn prune_failures(&self, before: u64) -> Result<usize, QueueError>;

    /// Remember the transactions of a broadcast (durable with the next
    /// sync; enqueueing its message does one).
    fn record_broadcast(&self, id: &str, entries: &[BroadcastEntry]) -> Result<(), QueueError>;

    /// Forget a broadcast (its message could not be queued).
    fn remove_broadcast(&self, id: &str) -> Result<(), QueueError>;

    /// The transactions of a broadcast; `None`: no such broadcast.
    fn broadcast(&self, id: &str) -> Result<Option<Vec<BroadcastEntry>>, QueueError>;

    /// Forget broadcasts made before `before` (Unix seconds) none of
    /// whose messages is still in the queue (an unreadable record goes
    /// too); returns how many.
    fn prune_broadcasts(&self, before: u64) -> Result<usize, QueueError>;

    // ---- shared fax lines ----

    /// The site's fax lines, when nodes share them through this store
    /// ([`LinePool`]); `None` (the default): this process's lines are
    /// the site's.
    fn line_pool(&self) -> Option<Arc<dyn LinePool>> {
        None
    }

    /// The SMTP AUTH users and API tokens kept in this store's database
    /// ([`Accounts`]); `None` (the default): the store keeps none.
    fn accounts(&self) -> Option<Arc<dyn Accounts>> {
        None
    }
}

impl dyn QueueStore {
    /// [`QueueStore::update_with`] with a closure called once.
    pub fn update<F>(&self, id: &str, change: F) -> Result<Option<Envelope>, QueueError>
    where
        F: FnOnce(&mut Envelope),
    {
        let mut change = Some(change);
        self.update_with(id, &mut |env| {
            if let Some(change) = change.take() {
                change(env)
            }
        })
    }
}

/// A handle on the queue, whatever its backend: cheap to clone, shared by
/// every part of the server. It dereferences to [`QueueStore`].
#[derive(Clone)]
pub struct Store(Arc<dyn QueueStore>);

impl Store {
    /// A handle on `backend`.
    pub fn new(backend: impl QueueStore) -> Store {
        Store(Arc::new(backend))
    }

    /// The broadcast id of the message `queue_id`
    /// ([`crate::broadcast_id`]).
    pub fn broadcast_id(queue_id: &str) -> String {
        crate::broadcast::broadcast_id(queue_id)
    }
}

impl From<Arc<dyn QueueStore>> for Store {
    fn from(backend: Arc<dyn QueueStore>) -> Store {
        Store(backend)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn QueueStore;

    fn deref(&self) -> &(dyn QueueStore + 'static) {
        &*self.0
    }
}
