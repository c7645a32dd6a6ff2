//! Enqueueing on PostgreSQL: a message whose body is in the local spool
//! is handed to the group commit (`commit.rs`) and the caller waits for
//! that commit; and the shared sync of the asynchronous writes.

use super::commit::Job;
use super::{db_error, other_error, PgStore, CALL_LIMIT};
use crate::body::BodyWriter;
use crate::envelope::{Envelope, NewMessage};
use crate::error::QueueError;
use crate::etrn::envelope_marks;
use crate::time::now_unix;
use deadpool_postgres::Pool;
use tokio::sync::oneshot;

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
        self.inner
            .commit_stats
            .submitted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
