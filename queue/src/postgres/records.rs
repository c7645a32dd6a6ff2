//! The fax records on PostgreSQL: finished faxes (`fax_history`), the
//! messages with a recipient that failed for good (`failed_message`),
//! and the HTTP API's broadcasts (`broadcast`) — shared by every node, so
//! any node answers `faxmta fax status` and the API the same.

use super::{db_error, PgStore};
use crate::broadcast::{decode, made_at, BroadcastEntry};
use crate::error::QueueError;
use crate::history::FaxRecord;
use tokio_postgres::types::ToSql;

type Params = Vec<Box<dyn ToSql + Send + Sync>>;

impl PgStore {
    /// One statement for a synchronous caller; the rows it changed.
    pub(super) fn change(
        &self,
        context: &'static str,
        sql: &'static str,
        params: Params,
    ) -> Result<u64, QueueError> {
        let pool = self.inner.pool.clone();
        self.block(context, async move {
            let client = PgStore::client(&pool, context).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client
                .execute(sql, &refs)
                .await
                .map_err(|e| db_error(context, e))
        })
    }

    pub(super) fn record_fax(&self, record: &FaxRecord) -> Result<(), QueueError> {
        let value = serde_json::to_vec(record).map_err(QueueError::Encode)?;
        self.change(
            "recording a fax",
            "INSERT INTO fax_history (finished, id, recipient, record, sender, search) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (finished, id, recipient) DO UPDATE SET record = EXCLUDED.record, \
             sender = EXCLUDED.sender, search = EXCLUDED.search",
            vec![
                Box::new(record.finished.min(i64::MAX as u64) as i64),
                Box::new(record.id.clone()),
                Box::new(record.recipient.clone()),
                Box::new(value),
                Box::new(record.sender.to_lowercase()),
                Box::new(record.search_text()),
            ],
        )?;
        Ok(())
    }

    pub(super) fn fax_history(&self, limit: usize) -> Result<Vec<FaxRecord>, QueueError> {
        let rows = self.query(
            "reading the fax history",
            "SELECT record FROM fax_history ORDER BY finished DESC, id DESC, recipient DESC LIMIT $1",
            vec![Box::new(limit.min(i64::MAX as usize) as i64)],
        )?;
        // A record that no longer parses is skipped, not fatal.
        let mut out: Vec<FaxRecord> = rows
            .iter()
            .filter_map(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    pub(super) fn prune_fax_history(&self, before: u64) -> Result<usize, QueueError> {
        let n = self.change(
            "pruning the fax history",
            "DELETE FROM fax_history WHERE finished < $1",
            vec![Box::new(before.min(i64::MAX as u64) as i64)],
        )?;
        Ok(n as usize)
    }

    pub(super) fn record_failure(&self, id: &str, now: u64) -> Result<(), QueueError> {
        self.change(
            "recording a failure",
            "INSERT INTO failed_message (id, at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
            vec![
                Box::new(id.to_string()),
                Box::new(now.min(i64::MAX as u64) as i64),
            ],
        )?;
        Ok(())
    }

    pub(super) fn had_failure(&self, id: &str) -> Result<bool, QueueError> {
        let rows = self.query(
            "reading the failures",
            "SELECT 1 FROM failed_message WHERE id = $1",
            vec![Box::new(id.to_string())],
        )?;
        Ok(!rows.is_empty())
    }

    pub(super) fn prune_failures(&self, before: u64) -> Result<usize, QueueError> {
        let n = self.change(
            "pruning the failures",
            "DELETE FROM failed_message WHERE at < $1",
            vec![Box::new(before.min(i64::MAX as u64) as i64)],
        )?;
        Ok(n as usize)
    }

    pub(super) fn record_broadcast(
        &self,
        id: &str,
        entries: &[BroadcastEntry],
    ) -> Result<(), QueueError> {
        let value = serde_json::to_vec(entries).map_err(QueueError::Encode)?;
        self.change(
            "recording a broadcast",
            "INSERT INTO broadcast (id, made, entries) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET entries = EXCLUDED.entries",
            vec![
                Box::new(id.to_string()),
                Box::new(made_at(id).min(i64::MAX as u64) as i64),
                Box::new(value),
            ],
        )?;
        Ok(())
    }

    pub(super) fn remove_broadcast(&self, id: &str) -> Result<(), QueueError> {
        self.change(
            "removing a broadcast",
            "DELETE FROM broadcast WHERE id = $1",
            vec![Box::new(id.to_string())],
        )?;
        Ok(())
    }

    pub(super) fn broadcast(&self, id: &str) -> Result<Option<Vec<BroadcastEntry>>, QueueError> {
        let rows = self.query(
            "reading a broadcast",
            "SELECT entries FROM broadcast WHERE id = $1",
            vec![Box::new(id.to_string())],
        )?;
        Ok(rows.first().and_then(|r| decode(r.get::<_, &[u8]>(0))))
    }

    /// Broadcasts made before `before` none of whose messages is queued
    /// (an unreadable one goes too).
    pub(super) fn prune_broadcasts(&self, before: u64) -> Result<usize, QueueError> {
        let rows = self.query(
            "reading old broadcasts",
            "SELECT id, entries FROM broadcast WHERE made < $1",
            vec![Box::new(before.min(i64::MAX as u64) as i64)],
        )?;
        let mut n = 0;
        for row in rows {
            let id: String = row.get(0);
            let queued = match decode(row.get::<_, &[u8]>(1)) {
                Some(entries) => {
                    let ids: Vec<String> =
                        entries.iter().map(|e| e.queue_id().to_string()).collect();
                    !self
                        .query(
                            "reading old broadcasts",
                            "SELECT 1 FROM queue_message WHERE id = ANY($1) LIMIT 1",
                            vec![Box::new(ids)],
                        )?
                        .is_empty()
                }
                None => false,
            };
            if !queued {
                self.remove_broadcast(&id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
