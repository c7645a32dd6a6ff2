//! The nodes sharing a queue: each node renews its row in `faxmta_node`
//! (alive for one lease time from each renewal, renewed every third of
//! it) and takes back what a node that stopped renewing had postponed.
//! A node parks messages for a busy destination by postponing them
//! (`next_try` later than `due`, marked with its name); if it dies, its
//! leases expire by themselves, and this is what frees its parked
//! messages — after the same lease time, not after the park limit.
//! The row of a node not alive for [`FORGET_AFTER`] goes (nodes come and
//! go by name: containers, renamed hosts); a node that comes back later
//! simply makes a new one.

use super::util::{db_error, CHANNEL};
use crate::error::QueueError;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long the row of a node that stopped renewing is kept.
pub(super) const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Say this node is alive for `ttl`, and give the postponed messages of
/// nodes that are not back to the schedule. Returns how many were given
/// back.
pub(super) async fn beat(pool: &Pool, node: &str, ttl: Duration) -> Result<u64, QueueError> {
    let context = "renewing this node's liveness";
    let client = pool
        .get()
        .await
        .map_err(|e| super::util::pool_error(context, e))?;
    client
        .execute(
            "INSERT INTO faxmta_node (name, started, alive_until) \
             VALUES ($1, clock_timestamp(), clock_timestamp() + $2::float8 * interval '1 second') \
             ON CONFLICT (name) DO UPDATE SET alive_until = EXCLUDED.alive_until",
            &[&node, &ttl.as_secs_f64()],
        )
        .await
        .map_err(|e| db_error(context, e))?;
    let freed = client
        .execute(
            "UPDATE queue_message SET next_try = due, postponed_by = NULL \
             WHERE postponed_by IS NOT NULL AND postponed_by <> $1 \
               AND postponed_by NOT IN \
                   (SELECT name FROM faxmta_node WHERE alive_until > clock_timestamp())",
            &[&node],
        )
        .await
        .map_err(|e| db_error("taking back a dead node's postponements", e))?;
    // After the postponements above were given back (a node without a
    // row counts as dead there too).
    client
        .execute(
            "DELETE FROM faxmta_node WHERE name <> $1 \
               AND alive_until < clock_timestamp() - $2::float8 * interval '1 second'",
            &[&node, &FORGET_AFTER.as_secs_f64()],
        )
        .await
        .map_err(|e| db_error("forgetting nodes gone for a day", e))?;
    if freed > 0 {
        client
            .execute("SELECT pg_notify($1, '')", &[&CHANNEL])
            .await
            .map_err(|e| db_error(context, e))?;
    }
    Ok(freed)
}

/// Renew every third of `ttl` until the store goes.
pub(super) async fn heartbeat_loop(pool: Pool, node: String, ttl: Duration, changed: Arc<Notify>) {
    let every = (ttl / 3).max(Duration::from_millis(500));
    let mut failing = false;
    loop {
        match beat(&pool, &node, ttl).await {
            Ok(freed) => {
                if freed > 0 {
                    tracing::info!(
                        "queue: {freed} message(s) parked by a node that stopped are due again"
                    );
                    changed.notify_one();
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("{e}");
                }
                failing = true;
            }
        }
        tokio::time::sleep(every).await;
    }
}
