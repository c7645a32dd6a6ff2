//! [`QueueStore`] for [`SledStore`]: each method is the store's own (in
//! `write.rs`, `read.rs`, `trees.rs`), or the backend-neutral operation
//! of `crate::admin` over it.

use super::SledStore;
use crate::admin;
use crate::body::BodyWriter;
use crate::broadcast::BroadcastEntry;
use crate::envelope::{Envelope, NewMessage, QueueId};
use crate::error::QueueError;
use crate::etrn::EtrnStart;
use crate::history::{FaxRecord, ReceivedRecord, UsageRecord};
use crate::listing::RawEnvelopes;
use crate::query::{FaxPage, FaxQuery, ReceivedPage, ReceivedQuery};
use crate::space::check_room;
use crate::store::{Lease, QueueCounts, QueueStore};
use std::time::Duration;

#[async_trait::async_trait]
impl QueueStore for SledStore {
    fn new_id(&self) -> Result<QueueId, QueueError> {
        SledStore::new_id(self)
    }

    fn check_room(&self, reserve: u64, size: u64) -> Result<(), QueueError> {
        self.keep_reserve(reserve);
        check_room(&self.files().dir, reserve, size)
    }

    fn begin_body(&self, id: &QueueId, reserve: u64) -> Result<BodyWriter, QueueError> {
        self.keep_reserve(reserve);
        self.files().begin(id, reserve)
    }

    async fn enqueue_body(
        &self,
        msg: NewMessage,
        body: BodyWriter,
        head: String,
    ) -> Result<Envelope, QueueError> {
        SledStore::enqueue_body(self, msg, body, head).await
    }

    fn enqueue_blocking(
        &self,
        id: QueueId,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        SledStore::enqueue_blocking(self, id, msg, body)
    }

    async fn sync(&self) -> Result<(), QueueError> {
        SledStore::sync(self).await
    }

    fn sync_blocking(&self) -> Result<(), QueueError> {
        SledStore::sync_blocking(self)
    }

    fn is_broken(&self) -> bool {
        SledStore::is_broken(self)
    }

    fn recover(&self) -> Result<(), QueueError> {
        SledStore::recover(self)
    }

    fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        SledStore::get(self, id)
    }

    fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError> {
        SledStore::body(self, id)
    }

    fn envelopes_raw(&self) -> RawEnvelopes<'_> {
        SledStore::envelopes_raw(self)
    }

    fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        SledStore::due(self, now, limit)
    }

    fn next_due(&self) -> Option<u64> {
        SledStore::next_due(self)
    }

    async fn lease_due(
        &self,
        now: u64,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, QueueError> {
        Ok(SledStore::lease_due(self, now, limit, ttl))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, QueueError> {
        Ok(SledStore::renew_lease(self, lease, ttl))
    }

    fn end_lease(&self, lease: Lease) {
        SledStore::end_lease(self, lease)
    }

    fn postpone(&self, id: &str, due: u64) -> bool {
        SledStore::postpone(self, id, due)
    }

    async fn changed(&self) {
        self.inner.shared.changed.notified().await
    }

    fn update_with(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Envelope),
    ) -> Result<Option<Envelope>, QueueError> {
        SledStore::update(self, id, change)
    }

    fn remove(&self, id: &str) -> Result<bool, QueueError> {
        SledStore::remove(self, id)
    }

    fn hold(&self, id: &str) -> Result<bool, QueueError> {
        admin::hold(self, id)
    }

    fn release(&self, id: &str) -> Result<bool, QueueError> {
        admin::release(self, id)
    }

    fn flush_now(&self, id: Option<&str>) -> Result<usize, QueueError> {
        admin::flush_now(self, id, || self.scheduled())
    }

    fn flush_domain(&self, domain: &str) -> Result<usize, QueueError> {
        admin::flush_domain(self, domain)
    }

    fn etrn_start(&self, domains: &[String]) -> EtrnStart {
        SledStore::etrn_start(self, domains)
    }

    fn counts(&self, now: u64) -> QueueCounts {
        SledStore::counts(self, now)
    }

    fn len(&self) -> usize {
        SledStore::len(self)
    }

    fn record_fax(&self, record: &FaxRecord) -> Result<(), QueueError> {
        SledStore::record_fax(self, record)
    }

    fn fax_history(&self, limit: usize) -> Result<Vec<FaxRecord>, QueueError> {
        SledStore::fax_history(self, limit)
    }

    fn prune_fax_history(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_fax_history(self, before)
    }

    fn fax_history_query(&self, query: &FaxQuery) -> Result<FaxPage, QueueError> {
        SledStore::fax_history_query(self, query)
    }

    fn fax_record(&self, id: &str, recipient: &str) -> Result<Option<FaxRecord>, QueueError> {
        SledStore::fax_record(self, id, recipient)
    }

    fn record_received(&self, record: &ReceivedRecord) -> Result<(), QueueError> {
        SledStore::record_received(self, record)
    }

    fn received_query(&self, query: &ReceivedQuery) -> Result<ReceivedPage, QueueError> {
        SledStore::received_query(self, query)
    }

    fn received_record(&self, key: &str) -> Result<Option<ReceivedRecord>, QueueError> {
        SledStore::received_record(self, key)
    }

    fn prune_received(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_received(self, before)
    }

    fn record_usage(&self, record: &UsageRecord) -> Result<(), QueueError> {
        SledStore::record_usage(self, record)
    }

    fn usage(&self, since: u64, until: u64) -> Result<Vec<UsageRecord>, QueueError> {
        SledStore::usage(self, since, until)
    }

    fn prune_usage(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_usage(self, before)
    }

    fn put_document(&self, key: &str, at: u64, data: &[u8]) -> Result<(), QueueError> {
        SledStore::put_document(self, key, at, data)
    }

    fn document(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        SledStore::document(self, key)
    }

    fn prune_documents(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_documents(self, before)
    }

    fn record_failure(&self, id: &str, now: u64) -> Result<(), QueueError> {
        SledStore::record_failure(self, id, now)
    }

    fn had_failure(&self, id: &str) -> Result<bool, QueueError> {
        SledStore::had_failure(self, id)
    }

    fn prune_failures(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_failures(self, before)
    }

    fn record_broadcast(&self, id: &str, entries: &[BroadcastEntry]) -> Result<(), QueueError> {
        SledStore::record_broadcast(self, id, entries)
    }

    fn remove_broadcast(&self, id: &str) -> Result<(), QueueError> {
        SledStore::remove_broadcast(self, id)
    }

    fn broadcast(&self, id: &str) -> Result<Option<Vec<BroadcastEntry>>, QueueError> {
        SledStore::broadcast(self, id)
    }

    fn prune_broadcasts(&self, before: u64) -> Result<usize, QueueError> {
        SledStore::prune_broadcasts(self, before)
    }
}
