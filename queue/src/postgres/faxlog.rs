//! The portal's fax records on PostgreSQL: searching the finished faxes
//! (`fax_history`, with the lower-case `sender` and `search` columns),
//! received faxes (`fax_received`), usage rows (`fax_usage`) and the fax
//! documents (`fax_document`) — shared by every node, so any node shows
//! the same. The filters say in SQL what [`FaxQuery::matches`] and
//! [`ReceivedQuery::matches`] say, over columns written from the same
//! functions.

use super::PgStore;
use crate::error::QueueError;
use crate::history::{FaxRecord, ReceivedRecord, UsageRecord};
use crate::query::ReceivedQuery;
use crate::query::{lower_all, lower_text, Cursor, FaxPage, FaxQuery, Page, ReceivedPage};
use serde::de::DeserializeOwned;

/// Unix seconds as a bigint.
fn t(at: u64) -> i64 {
    at.min(i64::MAX as u64) as i64
}

/// A page from rows of one JSON column, fetched one beyond `limit`.
fn page_of<T: DeserializeOwned>(
    rows: Vec<tokio_postgres::Row>,
    limit: usize,
    cursor: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let more = rows.len() > limit;
    // A record that no longer parses is skipped, not fatal.
    let records: Vec<T> = rows
        .iter()
        .take(limit)
        .filter_map(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok())
        .collect();
    let next = if more {
        records.last().map(cursor)
    } else {
        None
    };
    Page { records, next }
}

/// The SQL `LIMIT` that fetches one row beyond `limit`.
fn fetch(limit: usize) -> i64 {
    limit.saturating_add(1).min(i64::MAX as usize) as i64
}

impl PgStore {
    pub(super) fn fax_history_query(&self, query: &FaxQuery) -> Result<FaxPage, QueueError> {
        if query.limit == 0 {
            return Ok(Page::default());
        }
        let after = query.after.as_ref();
        let (id, recipient) = after.map(Cursor::id_and_recipient).unzip();
        let rows = self.query(
            "searching the fax history",
            "SELECT record FROM fax_history \
             WHERE (($1::text[] IS NULL AND $9::text[] IS NULL) OR sender = ANY($1) \
                    OR substring(sender from '@([^@]*)$') = ANY($9)) \
             AND ($2::text IS NULL OR strpos(search, $2) > 0) \
             AND finished >= $3 AND ($4::bigint IS NULL OR finished < $4) \
             AND ($5::bigint IS NULL OR (finished, id, recipient) < ($5, $6::text, $7::text)) \
             ORDER BY finished DESC, id DESC, recipient DESC LIMIT $8",
            vec![
                Box::new(lower_all(&query.senders)),
                Box::new(lower_text(&query.text)),
                Box::new(t(query.since.unwrap_or(0))),
                Box::new(query.until.map(t)),
                Box::new(after.map(|c| t(c.at))),
                Box::new(id.map(str::to_string)),
                Box::new(recipient.map(str::to_string)),
                Box::new(fetch(query.limit)),
                Box::new(lower_all(&query.domains)),
            ],
        )?;
        Ok(page_of(rows, query.limit, FaxQuery::cursor))
    }

    pub(super) fn fax_record(
        &self,
        id: &str,
        recipient: &str,
    ) -> Result<Option<FaxRecord>, QueueError> {
        let rows = self.query(
            "reading a fax record",
            "SELECT record FROM fax_history WHERE id = $1 AND recipient = $2 \
             ORDER BY finished DESC LIMIT 1",
            vec![Box::new(id.to_string()), Box::new(recipient.to_string())],
        )?;
        Ok(rows
            .first()
            .and_then(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok()))
    }

    pub(super) fn record_received(&self, record: &ReceivedRecord) -> Result<(), QueueError> {
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        self.change(
            "recording a received fax",
            "INSERT INTO fax_received (key, received_at, recipients, search, record) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET \
             received_at = EXCLUDED.received_at, recipients = EXCLUDED.recipients, \
             search = EXCLUDED.search, record = EXCLUDED.record",
            vec![
                Box::new(record.key.clone()),
                Box::new(t(record.received_at)),
                Box::new(record.recipients_lower()),
                Box::new(record.search_text()),
                Box::new(value),
            ],
        )?;
        Ok(())
    }

    pub(super) fn received_query(&self, query: &ReceivedQuery) -> Result<ReceivedPage, QueueError> {
        if query.limit == 0 {
            return Ok(Page::default());
        }
        let after = query.after.as_ref();
        let rows = self.query(
            "searching the received faxes",
            "SELECT record FROM fax_received \
             WHERE (($1::text[] IS NULL AND $8::text[] IS NULL) OR recipients && $1 \
                    OR EXISTS (SELECT 1 FROM unnest(recipients) AS r \
                               WHERE substring(r from '@([^@]*)$') = ANY($8))) \
             AND ($2::text IS NULL OR strpos(search, $2) > 0) \
             AND received_at >= $3 AND ($4::bigint IS NULL OR received_at < $4) \
             AND ($5::bigint IS NULL OR (received_at, key) < ($5, $6::text)) \
             ORDER BY received_at DESC, key DESC LIMIT $7",
            vec![
                Box::new(lower_all(&query.recipients)),
                Box::new(lower_text(&query.text)),
                Box::new(t(query.since.unwrap_or(0))),
                Box::new(query.until.map(t)),
                Box::new(after.map(|c| t(c.at))),
                Box::new(after.map(|c| c.key.clone())),
                Box::new(fetch(query.limit)),
                Box::new(lower_all(&query.domains)),
            ],
        )?;
        Ok(page_of(rows, query.limit, ReceivedQuery::cursor))
    }

    pub(super) fn received_record(&self, key: &str) -> Result<Option<ReceivedRecord>, QueueError> {
        let rows = self.query(
            "reading a received fax",
            "SELECT record FROM fax_received WHERE key = $1",
            vec![Box::new(key.to_string())],
        )?;
        Ok(rows
            .first()
            .and_then(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok()))
    }

    pub(super) fn prune_received(&self, before: u64) -> Result<usize, QueueError> {
        let n = self.change(
            "pruning the received faxes",
            "DELETE FROM fax_received WHERE received_at < $1",
            vec![Box::new(t(before))],
        )?;
        Ok(n as usize)
    }

    pub(super) fn record_usage(&self, record: &UsageRecord) -> Result<(), QueueError> {
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        self.change(
            "recording fax usage",
            "INSERT INTO fax_usage (at, fax, usr, direction, record) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (at, fax, usr, direction) DO UPDATE SET record = EXCLUDED.record",
            vec![
                Box::new(t(record.at)),
                Box::new(record.fax.clone()),
                Box::new(record.user.clone()),
                Box::new(record.direction.clone()),
                Box::new(value),
            ],
        )?;
        Ok(())
    }

    pub(super) fn usage(&self, since: u64, until: u64) -> Result<Vec<UsageRecord>, QueueError> {
        let rows = self.query(
            "reading fax usage",
            "SELECT record FROM fax_usage WHERE at >= $1 AND at < $2 \
             ORDER BY at, fax, usr, direction",
            vec![Box::new(t(since)), Box::new(t(until))],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok())
            .collect())
    }

    pub(super) fn prune_usage(&self, before: u64) -> Result<usize, QueueError> {
        let n = self.change(
            "pruning fax usage",
            "DELETE FROM fax_usage WHERE at < $1",
            vec![Box::new(t(before))],
        )?;
        Ok(n as usize)
    }

    pub(super) fn put_document(&self, key: &str, at: u64, data: &[u8]) -> Result<(), QueueError> {
        self.change(
            "keeping a fax document",
            "INSERT INTO fax_document (key, at, data) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at, data = EXCLUDED.data",
            vec![
                Box::new(key.to_string()),
                Box::new(t(at)),
                Box::new(data.to_vec()),
            ],
        )?;
        Ok(())
    }

    pub(super) fn document(&self, key: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let rows = self.query(
            "reading a fax document",
            "SELECT data FROM fax_document WHERE key = $1",
            vec![Box::new(key.to_string())],
        )?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub(super) fn prune_documents(&self, before: u64) -> Result<usize, QueueError> {
        let n = self.change(
            "pruning fax documents",
            "DELETE FROM fax_document WHERE at < $1",
            vec![Box::new(t(before))],
        )?;
        Ok(n as usize)
    }
}
