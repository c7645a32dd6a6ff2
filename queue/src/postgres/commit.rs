//! Enqueueing on PostgreSQL with group commit: a message's envelope, its
//! ETRN marks and its body (read from the local spool in pieces) go into
//! the database in one transaction, and the enqueue returns once that
//! transaction is committed — synchronously, so the 250 that follows is
//! safe. One task ([`commit_loop`]) takes every enqueue waiting and
//! commits them together: N concurrent sessions cost one commit (one
//! write-ahead-log flush), not N. A batch that fails is tried again a
//! message at a time, so one bad message fails alone.

use super::util::{db_error, pool_error, CHANNEL};
use crate::error::QueueError;
use crate::etrn::Marks;
use deadpool_postgres::Pool;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, Notify};

/// Messages in one transaction at most.
const MAX_BATCH: usize = 128;

/// A body goes into `queue_body` in pieces of this size.
pub(super) const PIECE: usize = 1 << 20;

/// One message waiting for the commit.
pub(super) struct Job {
    pub id: String,
    pub json: Vec<u8>,
    pub due: Option<i64>,
    pub marks: Marks,
    pub body: PathBuf,
    pub reply: oneshot::Sender<Result<(), QueueError>>,
}

/// What the group commit did: messages handed to it, transactions that
/// committed, messages in them.
#[derive(Default)]
pub(super) struct Stats {
    pub submitted: AtomicU64,
    pub batches: AtomicU64,
    pub committed: AtomicU64,
}

/// Take the waiting enqueues in batches and commit each batch; runs
/// until the store goes.
pub(super) async fn commit_loop(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Job>,
    changed: Arc<Notify>,
    stats: Arc<Stats>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match commit(&pool, &jobs).await {
            Ok(()) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .committed
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                for job in jobs {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(job) = jobs.into_iter().next() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(
                    "queue: a commit of {} messages failed ({e}); committing them one by one",
                    jobs.len()
                );
                for job in jobs {
                    let result = commit(&pool, std::slice::from_ref(&job)).await;
                    if result.is_ok() {
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                        stats.committed.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
        changed.notify_one();
    }
}

/// One transaction for `jobs`, committed synchronously.
async fn commit(pool: &Pool, jobs: &[Job]) -> Result<(), QueueError> {
    let context = "committing a message";
    let mut client = pool.get().await.map_err(|e| pool_error(context, e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error(context, e))?;
    // Other writes commit asynchronously (the connections' default);
    // this one is what the 250 stands on.
    tx.batch_execute("SET LOCAL synchronous_commit TO on")
        .await
        .map_err(|e| db_error(context, e))?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO queue_message (id, envelope, due, next_try) VALUES ($1, $2, $3, $3)",
        )
        .await
        .map_err(|e| db_error(context, e))?;
    let mark = tx
        .prepare_cached("INSERT INTO queue_etrn (domain, id, held) VALUES ($1, $2, $3)")
        .await
        .map_err(|e| db_error(context, e))?;
    let piece = tx
        .prepare_cached("INSERT INTO queue_body (id, seq, data) VALUES ($1, $2, $3)")
        .await
        .map_err(|e| db_error(context, e))?;
    for job in jobs {
        tx.execute(&insert, &[&job.id, &job.json, &job.due])
            .await
            .map_err(|e| db_error(&format!("storing the envelope of {}", job.id), e))?;
        for (domain, held) in &job.marks {
            tx.execute(&mark, &[domain, &job.id, held])
                .await
                .map_err(|e| db_error(&format!("storing the ETRN marks of {}", job.id), e))?;
        }
        let mut file =
            tokio::fs::File::open(&job.body)
                .await
                .map_err(|source| QueueError::File {
                    path: job.body.clone(),
                    source,
                })?;
        let mut seq: i32 = 0;
        loop {
            let mut buf = Vec::with_capacity(PIECE);
            let n = (&mut file)
                .take(PIECE as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|source| QueueError::File {
                    path: job.body.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            tx.execute(&piece, &[&job.id, &seq, &buf])
                .await
                .map_err(|e| db_error(&format!("storing the body of {}", job.id), e))?;
            seq += 1;
        }
    }
    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
        .await
        .map_err(|e| db_error(context, e))?;
    tx.commit().await.map_err(|e| db_error(context, e))
}
