//! Reading the queue on PostgreSQL: envelopes and bodies, the whole
//! queue page by page, the schedule (`next_try`), the counts, leases and
//! the first half of an ETRN. Every answer is the database's, so every
//! node sees the same queue.

use super::{db_error, PgStore};
use crate::envelope::{Envelope, QueueId};
use crate::error::QueueError;
use crate::etrn::{normalise_domains, EtrnStart};
use crate::listing::{RawEnvelope, RawEnvelopes};
use crate::store::{Lease, QueueCounts};
use crate::time::now_unix;
use std::collections::VecDeque;
use std::time::Duration;

/// Envelopes read per query while listing the queue.
const PAGE: i64 = 500;

/// Unix seconds as the database keeps them.
fn secs(t: u64) -> i64 {
    t.min(i64::MAX as u64) as i64
}

impl PgStore {
    /// Run one query for a synchronous caller.
    pub(super) fn query(
        &self,
        context: &'static str,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<Vec<tokio_postgres::Row>, QueueError> {
        let pool = self.inner.pool.clone();
        self.block(context, async move {
            let client = PgStore::client(&pool, context).await?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            client
                .query(sql, &refs)
                .await
                .map_err(|e| db_error(context, e))
        })
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        let rows = self.query(
            "reading an envelope",
            "SELECT envelope FROM queue_message WHERE id = $1",
            vec![Box::new(id.to_string())],
        )?;
        match rows.first() {
            Some(row) => serde_json::from_slice(row.get::<_, &[u8]>(0))
                .map(Some)
                .map_err(|source| QueueError::Corrupt {
                    id: id.to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// The head kept in the envelope, then the body's pieces in order
    /// (one query: the envelope comes with every piece).
    pub(super) fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let rows = self.query(
            "reading a body",
            "SELECT m.envelope, b.data FROM queue_message m \
             LEFT JOIN queue_body b ON b.id = m.id WHERE m.id = $1 ORDER BY b.seq",
            vec![Box::new(id.to_string())],
        )?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(default)]
            head: String,
        }
        let head: Head = serde_json::from_slice(first.get::<_, &[u8]>(0)).map_err(|source| {
            QueueError::Corrupt {
                id: id.to_string(),
                source,
            }
        })?;
        let pieces: Vec<&[u8]> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<&[u8]>>(1))
            .collect();
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let mut data = Vec::with_capacity(head.head.len() + len);
        data.extend_from_slice(head.head.as_bytes());
        for piece in pieces {
            data.extend_from_slice(piece);
        }
        Ok(Some(data))
    }

    /// Every envelope, a page at a time in id order.
    pub(super) fn envelopes_raw(&self) -> RawEnvelopes<'_> {
        Box::new(Pages {
            store: self,
            after: String::new(),
            page: VecDeque::new(),
            end: false,
        })
    }

    pub(super) fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        let rows = self.query(
            "reading the schedule",
            "SELECT id FROM queue_message WHERE next_try <= $1 ORDER BY next_try, id LIMIT $2",
            vec![
                Box::new(secs(now)),
                Box::new(limit.min(i64::MAX as usize) as i64),
            ],
        );
        match rows {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    pub(super) fn next_due(&self) -> Option<u64> {
        let rows = self.query(
            "reading the schedule",
            "SELECT min(next_try) FROM queue_message",
            Vec::new(),
        );
        match rows {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.get::<_, Option<i64>>(0))
                .map(|t| t.max(0) as u64),
            Err(e) => {
                tracing::warn!("{e}");
                // Look again soon rather than never.
                Some(now_unix() + 5)
            }
        }
    }

    pub(super) fn scheduled(&self) -> Vec<QueueId> {
        let rows = self.query(
            "reading the schedule",
            "SELECT id FROM queue_message WHERE next_try IS NOT NULL ORDER BY id",
            Vec::new(),
        );
        match rows {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    pub(super) fn counts(&self, now: u64) -> QueueCounts {
        let rows = self.query(
            "counting the queue",
            "SELECT count(*) FILTER (WHERE next_try <= $1), \
                    count(*) FILTER (WHERE next_try > $1), \
                    count(*) FILTER (WHERE next_try IS NULL) FROM queue_message",
            vec![Box::new(secs(now))],
        );
        match rows {
            Ok(rows) => rows
                .first()
                .map_or_else(QueueCounts::default, |r| QueueCounts {
                    due: r.get::<_, i64>(0) as usize,
                    waiting: r.get::<_, i64>(1) as usize,
                    held: r.get::<_, i64>(2) as usize,
                }),
            Err(e) => {
                tracing::warn!("{e}");
                QueueCounts::default()
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        match self.query(
            "counting the queue",
            "SELECT count(*) FROM queue_message",
            Vec::new(),
        ) {
            Ok(rows) => rows.first().map_or(0, |r| r.get::<_, i64>(0) as usize),
            Err(e) => {
                tracing::warn!("{e}");
                0
            }
        }
    }

    /// Move a message's next attempt in the schedule only, marked as this
    /// node's (undone when the node starts again).
    pub(super) fn postpone(&self, id: &str, due: u64) -> bool {
        let rows = self.query(
            "postponing a message",
            "UPDATE queue_message SET next_try = $2, postponed_by = $3 \
             WHERE id = $1 AND next_try IS NOT NULL RETURNING id",
            vec![
                Box::new(id.to_string()),
                Box::new(secs(due)),
                Box::new(self.inner.node.clone()),
            ],
        );
        match rows {
            Ok(rows) => !rows.is_empty(),
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    /// Lease up to `limit` due messages no unexpired lease holds: claimed
    /// with `FOR UPDATE SKIP LOCKED`, so nodes asking at once get
    /// different messages; the expiry is by the database's clock.
    pub(super) async fn lease_due(
        &self,
        now: u64,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Lease>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = self.inner.pool.clone();
        let node = self.inner.node.clone();
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = self
            .run("leasing due messages", async move {
                let client = PgStore::client(&pool, "leasing due messages").await?;
                client
                    .query(
                        "UPDATE queue_message m SET lease_token = nextval('queue_lease_token'), \
                           lease_node = $3, \
                           lease_until = clock_timestamp() + $4::float8 * interval '1 second' \
                         FROM (SELECT id FROM queue_message \
                               WHERE next_try <= $1 \
                                 AND (lease_until IS NULL OR lease_until < clock_timestamp()) \
                               ORDER BY next_try, id LIMIT $2 \
                               FOR UPDATE SKIP LOCKED) c \
                         WHERE m.id = c.id \
                         RETURNING m.id, m.lease_token, m.next_try",
                        &[&secs(now), &limit, &node, &ttl.as_secs_f64()],
                    )
                    .await
                    .map_err(|e| db_error("leasing due messages", e))
            })
            .await?;
        let mut leased: Vec<(i64, String, i64)> = rows
            .iter()
            .map(|r| (r.get(2), r.get(0), r.get(1)))
            .collect();
        leased.sort();
        Ok(leased
            .into_iter()
            .map(|(_, id, token)| Lease::new(id, token as u64))
            .collect())
    }

    /// Extend a lease still held (its token unchanged).
    pub(super) async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<bool, QueueError> {
        let pool = self.inner.pool.clone();
        let id = lease.id().clone();
        let token = lease.token() as i64;
        let n = self
            .run("renewing a lease", async move {
                let client = PgStore::client(&pool, "renewing a lease").await?;
                client
                    .execute(
                        "UPDATE queue_message \
                         SET lease_until = clock_timestamp() + $3::float8 * interval '1 second' \
                         WHERE id = $1 AND lease_token = $2",
                        &[&id, &token, &ttl.as_secs_f64()],
                    )
                    .await
                    .map_err(|e| db_error("renewing a lease", e))
            })
            .await?;
        Ok(n == 1)
    }

    /// Give a lease back, if it is still this one.
    pub(super) fn end_lease(&self, lease: Lease) {
        let ended = self.query(
            "ending a lease",
            "UPDATE queue_message SET lease_token = NULL, lease_node = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_token = $2 RETURNING id",
            vec![Box::new(lease.id().clone()), Box::new(lease.token() as i64)],
        );
        if let Err(e) = ended {
            // It expires by itself.
            tracing::warn!("{e}");
        }
    }

    /// The first half of an ETRN: the messages marked for the domains,
    /// each with whether it waits (a recipient still held, or not due
    /// before now) and is not being released by an earlier ETRN; those
    /// that wait are marked as being released — under the rows' locks,
    /// so two ETRNs on two nodes do not both release one message.
    pub(super) fn etrn_start(&self, domains: &[String]) -> EtrnStart {
        let domains = normalise_domains(domains);
        let pool = self.inner.pool.clone();
        let wanted = domains.clone();
        let now = secs(now_unix());
        let pending = self.block("starting an ETRN", async move {
            let mut client = PgStore::client(&pool, "starting an ETRN").await?;
            let fail = |e| db_error("starting an ETRN", e);
            let tx = client.transaction().await.map_err(fail)?;
            let rows = tx
                .query(
                    "WITH marked AS (SELECT id, bool_or(held) AS held FROM queue_etrn \
                                     WHERE domain = ANY($1) GROUP BY id) \
                     SELECT m.id, marked.held, m.releasing, m.next_try \
                     FROM queue_message m JOIN marked ON marked.id = m.id \
                     ORDER BY m.id FOR UPDATE OF m",
                    &[&wanted],
                )
                .await
                .map_err(fail)?;
            let mut pending = Vec::new();
            let mut starting = Vec::new();
            for row in rows {
                let id: String = row.get(0);
                let held: bool = row.get(1);
                let releasing: bool = row.get(2);
                let next: Option<i64> = row.get(3);
                let waits = !releasing && (held || next.is_some_and(|t| t > now));
                if waits {
                    starting.push(id.clone());
                }
                pending.push((id, waits));
            }
            tx.execute(
                "UPDATE queue_message SET releasing = true WHERE id = ANY($1)",
                &[&starting],
            )
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            Ok(pending)
        });
        let pending = pending.unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        EtrnStart::new(domains, pending)
    }
}

/// The queue a page at a time (keyset paging by id).
struct Pages<'a> {
    store: &'a PgStore,
    after: String,
    page: VecDeque<RawEnvelope>,
    end: bool,
}

impl Iterator for Pages<'_> {
    type Item = Result<RawEnvelope, QueueError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.end {
            let rows = self.store.query(
                "listing the queue",
                "SELECT id, envelope FROM queue_message WHERE id > $1 ORDER BY id LIMIT $2",
                vec![Box::new(self.after.clone()), Box::new(PAGE)],
            );
            match rows {
                Ok(rows) => {
                    self.end = (rows.len() as i64) < PAGE;
                    self.page = rows
                        .into_iter()
                        .map(|r| RawEnvelope {
                            id: r.get(0),
                            json: r.get(1),
                        })
                        .collect();
                    if let Some(last) = self.page.back() {
                        self.after = last.id.clone();
                    }
                }
                Err(e) => {
                    self.end = true;
                    return Some(Err(e));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}
