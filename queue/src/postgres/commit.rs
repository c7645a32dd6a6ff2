//! Enqueueing on PostgreSQL with group commit: a message's envelope, its
//! ETRN marks and its body (read from the local spool in pieces) go into
//! the database in one transaction, and the enqueue returns once that
//! transaction is committed — synchronously, so the 250 that follows is
//! safe. One task ([`commit_loop`]) takes every enqueue waiting and
//! commits them together: N concurrent sessions cost one commit (one
//! write-ahead-log flush), not N. A batch that fails is tried again a
//! message at a time, so one bad message fails alone.

use super::{db_error, other_error, pool_error, PgStore, CALL_LIMIT, CHANNEL};
use crate::body::BodyWriter;
use crate::envelope::{Envelope, NewMessage};
use crate::error::QueueError;
use crate::etrn::{envelope_marks, Marks};
use crate::time::now_unix;
use deadpool_postgres::Pool;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, Notify};

/// Messages in one transaction at most.
const MAX_BATCH: usize = 128;

/// A body goes into `queue_body` in pieces of this size.
pub(super) const PIECE: usize = 1 << 20;

/// One message waiting for the commit.
pub(super) struct Job {
    id: String,
    json: Vec<u8>,
    due: Option<i64>,
    marks: Marks,
    body: PathBuf,
    reply: oneshot::Sender<Result<(), QueueError>>,
}

/// Take the waiting enqueues in batches and commit each batch; runs
/// until the store goes.
pub(super) async fn commit_loop(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Job>,
    changed: Arc<Notify>,
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

impl PgStore {
    /// Commit a message whose body is in the spool: its envelope goes
    /// with it into the next group commit; returns once committed. The
    /// spool file goes either way.
    pub(super) async fn enqueue_body(
        &self,
        msg: NewMessage,
        mut body: BodyWriter,
        head: String,
    ) -> Result<Envelope, QueueError> {
        if let Some(bad) = msg.unsafe_address() {
            return Err(QueueError::BadAddress(bad.to_string()));
        }
        body.flush(true).await?;
        let size = head.len() as u64 + body.len();
        let mut env = msg.into_envelope(body.id().clone(), size, now_unix());
        env.head = head;
        let json = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            id: env.id.clone(),
            json,
            due: env.due().map(|t| t.min(i64::MAX as u64) as i64),
            marks: envelope_marks(&env),
            body: body.path().to_path_buf(),
            reply,
        };
        let sent = self.inner.commit_tx.send(job);
        let result = match sent {
            Err(_) => Err(QueueError::CommitterGone),
            // Bounded: a database that never answers gets a 451, not a
            // session that hangs (a commit that lands later makes a
            // duplicate when the client sends again, never a loss).
            Ok(()) => match tokio::time::timeout(CALL_LIMIT * 2, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(QueueError::CommitterGone),
                Err(_) => Err(other_error(
                    "committing a message",
                    "the database did not answer in time",
                )),
            },
        };
        // The database holds the body now (or nothing does).
        body.abort();
        result.map(|()| env)
    }

    /// [`PgStore::enqueue_body`] for a body in memory, outside an async
    /// runtime.
    pub(super) fn enqueue_blocking(
        &self,
        id: String,
        msg: NewMessage,
        body: &[u8],
    ) -> Result<Envelope, QueueError> {
        let mut writer = self.files().begin(&id, 0)?;
        writer.write_blocking(body)?;
        let me = self.clone();
        self.block("enqueueing", async move {
            me.enqueue_body(msg, writer, String::new()).await
        })
    }

    /// Make everything committed so far durable: one synchronous commit
    /// flushes the write-ahead log past every earlier (asynchronous)
    /// commit.
    pub(super) async fn sync(&self) -> Result<(), QueueError> {
        let pool = self.inner.pool.clone();
        self.run("syncing", async move { sync_on(&pool).await })
            .await
    }

    /// [`PgStore::sync`] outside an async runtime.
    pub(super) fn sync_blocking(&self) -> Result<(), QueueError> {
        let pool = self.inner.pool.clone();
        self.block("syncing", async move { sync_on(&pool).await })
    }
}

async fn sync_on(pool: &Pool) -> Result<(), QueueError> {
    let client = PgStore::client(pool, "syncing").await?;
    // txid_current() gives the transaction an id, so its commit is
    // written and flushed (synchronous_commit is on for it).
    client
        .batch_execute("BEGIN; SET LOCAL synchronous_commit TO on; SELECT txid_current(); COMMIT")
        .await
        .map_err(|e| db_error("syncing", e))
}
