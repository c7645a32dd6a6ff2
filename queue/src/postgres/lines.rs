//! The site's fax lines on PostgreSQL ([`crate::LinePool`]): a row of
//! `fax_line` per line in use, with the node, a token and an expiry by
//! the database's clock. Claims of one pool take turns (a
//! transaction-level advisory lock on the pool's name), so two nodes
//! never take the same line, nor more lines than the pool has.

use super::{db_error, PgStore};
use crate::error::QueueError;
use crate::lines::{LineLease, LinePool};
use std::time::Duration;

#[async_trait::async_trait]
impl LinePool for PgStore {
    async fn claim_line(
        &self,
        pool: &str,
        lines: usize,
        ttl: Duration,
    ) -> Result<Option<LineLease>, QueueError> {
        let db = self.inner.pool.clone();
        let node = self.inner.node.clone();
        let name = pool.to_string();
        let lines = lines.min(i32::MAX as usize) as i32;
        self.run("leasing a fax line", async move {
            let context = "leasing a fax line";
            let mut client = PgStore::client(&db, context).await?;
            let fail = |e| db_error(context, e);
            let tx = client.transaction().await.map_err(fail)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('faxmta fax_line ' || $1))",
                &[&name],
            )
            .await
            .map_err(fail)?;
            let row = tx
                .query_opt(
                    "SELECT s FROM generate_series(0, $2 - 1) s \
                     WHERE NOT EXISTS (SELECT 1 FROM fax_line f \
                                       WHERE f.pool = $1 AND f.slot = s \
                                         AND f.until > clock_timestamp()) \
                     ORDER BY s LIMIT 1",
                    &[&name, &lines],
                )
                .await
                .map_err(fail)?;
            let Some(row) = row else {
                tx.commit().await.map_err(fail)?;
                return Ok(None);
            };
            let slot: i32 = row.get(0);
            let token: i64 = tx
                .query_one(
                    "INSERT INTO fax_line (pool, slot, node, token, until) \
                     VALUES ($1, $2, $3, nextval('queue_lease_token'), \
                             clock_timestamp() + $4::float8 * interval '1 second') \
                     ON CONFLICT (pool, slot) DO UPDATE SET node = EXCLUDED.node, \
                         token = EXCLUDED.token, until = EXCLUDED.until \
                     RETURNING token",
                    &[&name, &slot, &node, &ttl.as_secs_f64()],
                )
                .await
                .map_err(fail)?
                .get(0);
            tx.commit().await.map_err(fail)?;
            Ok(Some(LineLease {
                pool: name,
                slot: slot as u32,
                token: token as u64,
            }))
        })
        .await
    }

    async fn renew_line(&self, lease: &LineLease, ttl: Duration) -> Result<bool, QueueError> {
        let db = self.inner.pool.clone();
        let lease = lease.clone();
        let n = self
            .run("renewing a fax line", async move {
                let client = PgStore::client(&db, "renewing a fax line").await?;
                client
                    .execute(
                        "UPDATE fax_line \
                         SET until = clock_timestamp() + $4::float8 * interval '1 second' \
                         WHERE pool = $1 AND slot = $2 AND token = $3",
                        &[
                            &lease.pool,
                            &(lease.slot as i32),
                            &(lease.token as i64),
                            &ttl.as_secs_f64(),
                        ],
                    )
                    .await
                    .map_err(|e| db_error("renewing a fax line", e))
            })
            .await?;
        Ok(n == 1)
    }

    async fn release_line(&self, lease: &LineLease) -> Result<(), QueueError> {
        let db = self.inner.pool.clone();
        let lease = lease.clone();
        self.run("giving a fax line back", async move {
            let client = PgStore::client(&db, "giving a fax line back").await?;
            client
                .execute(
                    "DELETE FROM fax_line WHERE pool = $1 AND slot = $2 AND token = $3",
                    &[&lease.pool, &(lease.slot as i32), &(lease.token as i64)],
                )
                .await
                .map_err(|e| db_error("giving a fax line back", e))?;
            Ok(())
        })
        .await
    }

    async fn lines_leased(&self, pool: &str) -> Result<usize, QueueError> {
        let db = self.inner.pool.clone();
        let name = pool.to_string();
        self.run("counting fax lines", async move {
            let client = PgStore::client(&db, "counting fax lines").await?;
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM fax_line WHERE pool = $1 AND until > clock_timestamp()",
                    &[&name],
                )
                .await
                .map_err(|e| db_error("counting fax lines", e))?
                .get(0);
            Ok(n as usize)
        })
        .await
    }
}
