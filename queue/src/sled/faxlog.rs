//! The portal's fax records in sled: searching the finished faxes
//! (`fax_history`, keyed `finished ‖ id ‖ '/' ‖ recipient`, with
//! `fax_history_ids` from `id/recipient` to the time for a look-up),
//! received faxes (`fax_received`, keyed `received_at ‖ key`, and
//! `fax_received_keys` from the key to the time), usage rows
//! (`fax_usage`, keyed `at ‖ fax ‖ 0 ‖ user ‖ 0 ‖ direction`) and the
//! fax documents (`fax_documents`, the key to the time and the octets,
//! and `fax_document_times`, `at ‖ key`, for pruning). Times are
//! big-endian Unix seconds, so a key range is a time range. Each tree is
//! written without a sync of its own: durable with the next sync — but
//! sled 0.34 keeps a large value (a document of more than a few pages) in
//! a blob file it does not sync (`mod.rs`), so a crash soon after a fax
//! may lose that fax's document (never its record, nor any mail).

use super::SledStore;
use crate::error::QueueError;
use crate::history::{FaxRecord, ReceivedRecord, UsageRecord};
use crate::query::{Cursor, FaxPage, FaxQuery, Page, ReceivedPage, ReceivedQuery};
use serde::de::DeserializeOwned;
use std::ops::Bound;

pub(super) const HISTORY: &str = "fax_history";
pub(super) const HISTORY_IDS: &str = "fax_history_ids";
/// In `fax_history_ids` once the records kept before it are entered (no
/// record's name starts with a NUL).
const BACKFILLED: &[u8] = b"\0backfilled";
const RECEIVED: &str = "fax_received";
const RECEIVED_KEYS: &str = "fax_received_keys";
const USAGE: &str = "fax_usage";
const DOCUMENTS: &str = "fax_documents";
const DOCUMENT_TIMES: &str = "fax_document_times";

/// A key: the time big-endian, then `rest`.
fn timed_key(at: u64, rest: &[u8]) -> Vec<u8> {
    let mut key = at.to_be_bytes().to_vec();
    key.extend_from_slice(rest);
    key
}

/// The time at the start of a key or value.
fn time_of(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// One page of a time-keyed tree, newest first: keys in
/// `[since, until)` before `after`, those `keep` takes, at most `limit`.
fn page<T: DeserializeOwned>(
    tree: &sled::Tree,
    since: Option<u64>,
    until: Option<u64>,
    after: Option<&Cursor>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
    cursor: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, QueueError> {
    let low = Bound::Included(since.unwrap_or(0).to_be_bytes().to_vec());
    let mut high = until.map(|u| u.to_be_bytes().to_vec());
    if let Some(after) = after.map(Cursor::to_key) {
        if high.as_ref().is_none_or(|h| after < *h) {
            high = Some(after);
        }
    }
    let high = high.map_or(Bound::Unbounded, Bound::Excluded);
    if limit == 0 {
        return Ok(Page::default());
    }
    let mut records = Vec::new();
    for item in tree.range::<Vec<u8>, _>((low, high)).rev() {
        let (_, value) = item?;
        // A record that no longer parses is skipped, not fatal.
        let Ok(record) = serde_json::from_slice::<T>(&value) else {
            continue;
        };
        if !keep(&record) {
            continue;
        }
        if records.len() == limit {
            let next = records.last().map(&cursor);
            return Ok(Page { records, next });
        }
        records.push(record);
    }
    Ok(Page {
        records,
        next: None,
    })
}

impl SledStore {
    pub(super) fn fax_history_query(&self, query: &FaxQuery) -> Result<FaxPage, QueueError> {
        let tree = self.db()?.open_tree(HISTORY)?;
        page(
            &tree,
            query.since,
            query.until,
            query.after.as_ref(),
            query.limit,
            |r| query.matches(r),
            FaxQuery::cursor,
        )
    }

    pub(super) fn fax_record(
        &self,
        id: &str,
        recipient: &str,
    ) -> Result<Option<FaxRecord>, QueueError> {
        let db = self.db()?;
        let tree = db.open_tree(HISTORY)?;
        let ids = db.open_tree(HISTORY_IDS)?;
        let name = format!("{id}/{recipient}");
        if ids.get(name.as_bytes())?.is_none() && !ids.contains_key(BACKFILLED)? {
            // Records kept before the look-up tree was: enter them all,
            // once (a miss after that is an answer, not a search).
            for item in tree.iter() {
                let (key, _) = item?;
                if let Some(rest) = key.get(8..) {
                    ids.insert(rest, &key[..8])?;
                }
            }
            ids.insert(BACKFILLED, &[])?;
        }
        let Some(at) = ids.get(name.as_bytes())? else {
            return Ok(None);
        };
        let value = tree.get(timed_key(time_of(&at), name.as_bytes()))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    pub(super) fn record_received(&self, record: &ReceivedRecord) -> Result<(), QueueError> {
        let db = self.db()?;
        let tree = db.open_tree(RECEIVED)?;
        let keys = db.open_tree(RECEIVED_KEYS)?;
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        let at = record.received_at.to_be_bytes();
        if let Some(old) = keys.insert(record.key.as_bytes(), &at)? {
            tree.remove(timed_key(time_of(&old), record.key.as_bytes()))?;
        }
        tree.insert(timed_key(record.received_at, record.key.as_bytes()), value)?;
        Ok(())
    }

    pub(super) fn received_query(&self, query: &ReceivedQuery) -> Result<ReceivedPage, QueueError> {
        let tree = self.db()?.open_tree(RECEIVED)?;
        page(
            &tree,
            query.since,
            query.until,
            query.after.as_ref(),
            query.limit,
            |r| query.matches(r),
            ReceivedQuery::cursor,
        )
    }

    pub(super) fn received_record(&self, key: &str) -> Result<Option<ReceivedRecord>, QueueError> {
        let db = self.db()?;
        let Some(at) = db.open_tree(RECEIVED_KEYS)?.get(key.as_bytes())? else {
            return Ok(None);
        };
        let value = db
            .open_tree(RECEIVED)?
            .get(timed_key(time_of(&at), key.as_bytes()))?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    pub(super) fn prune_received(&self, before: u64) -> Result<usize, QueueError> {
        let db = self.db()?;
        let tree = db.open_tree(RECEIVED)?;
        let keys = db.open_tree(RECEIVED_KEYS)?;
        let mut n = 0;
        for item in tree.range(..before.to_be_bytes().to_vec()) {
            let (key, _) = item?;
            tree.remove(&key)?;
            if let Some(name) = key.get(8..) {
                keys.remove(name)?;
            }
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn record_usage(&self, record: &UsageRecord) -> Result<(), QueueError> {
        let tree = self.db()?.open_tree(USAGE)?;
        let mut rest = record.fax.as_bytes().to_vec();
        for part in [&record.user, &record.direction] {
            rest.push(0);
            rest.extend_from_slice(part.as_bytes());
        }
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        tree.insert(timed_key(record.at, &rest), value)?;
        Ok(())
    }

    pub(super) fn usage(&self, since: u64, until: u64) -> Result<Vec<UsageRecord>, QueueError> {
        let tree = self.db()?.open_tree(USAGE)?;
        let mut out = Vec::new();
        if since >= until {
            return Ok(out);
        }
        for item in tree.range(since.to_be_bytes().to_vec()..until.to_be_bytes().to_vec()) {
            let (_, value) = item?;
            if let Ok(record) = serde_json::from_slice(&value) {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub(super) fn prune_usage(&self, before: u64) -> Result<usize, QueueError> {
        prune_range(&self.db()?.open_tree(USAGE)?, before)
    }

    pub(super) fn put_document(&self, key: &str, at: u64, data: &[u8]) -> Result<(), QueueError> {
        let db = self.db()?;
        let documents = db.open_tree(DOCUMENTS)?;
        let times = db.open_tree(DOCUMENT_TIMES)?;
        let mut value = at.to_be_bytes().to_vec();
        value.extend_from_slice(data);
        // The time first: a crash between the two leaves a time without a
        // document (pruned later), never a document that is never pruned.
        times.insert(timed_key(at, key.as_bytes()), &[])?;
        if let Some(old) = documents.insert(key.as_bytes(), value)? {
            if time_of(&old) != at {
                times.remove(timed_key(time_of(&old), key.as_bytes()))?;
            }
        }
        Ok(())
    }

    pub(super) fn document(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let value = self.db()?.open_tree(DOCUMENTS)?.get(key.as_bytes())?;
        Ok(value.and_then(|v| v.get(8..).map(<[u8]>::to_vec)))
    }

    pub(super) fn prune_documents(&self, before: u64) -> Result<usize, QueueError> {
        let db = self.db()?;
        let documents = db.open_tree(DOCUMENTS)?;
        let times = db.open_tree(DOCUMENT_TIMES)?;
        let mut n = 0;
        for item in times.range(..before.to_be_bytes().to_vec()) {
            let (key, _) = item?;
            times.remove(&key)?;
            let Some(name) = key.get(8..) else { continue };
            // Only if it was not written again since.
            let current = documents.get(name)?;
            if current.is_some_and(|v| time_of(&v) == time_of(&key)) {
                documents.remove(name)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Remove the keys of `tree` before time `before`; how many.
fn prune_range(tree: &sled::Tree, before: u64) -> Result<usize, QueueError> {
    let mut n = 0;
    for item in tree.range(..before.to_be_bytes().to_vec()) {
        let (key, _) = item?;
        tree.remove(key)?;
        n += 1;
    }
    Ok(n)
}
