//! Changing and removing messages on PostgreSQL. A change is a
//! read-modify-write under the row's lock (`SELECT … FOR UPDATE`), so
//! changes of one message made by different nodes (a delivery's outcome
//! and an administrator's hold) never overwrite each other; the schedule
//! and the ETRN marks are rewritten with the envelope. These commits are
//! asynchronous (see the module documentation of `postgres`).

use super::{db_error, other_error, PgStore, CHANNEL};
use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::etrn::envelope_marks;
use crate::time::now_unix;
use deadpool_postgres::Object;

/// A connection inside an open transaction, carried between the steps of
/// [`PgStore::update`]. Dropped without [`InTransaction::done`] (an error,
/// a timeout), the connection is closed rather than handed back to the
/// pool with the transaction open.
struct InTransaction(Option<Object>);

impl InTransaction {
    /// The connection (present until `done` or drop).
    fn client(&self) -> Result<&Object, QueueError> {
        self.0
            .as_ref()
            .ok_or_else(|| other_error("changing an envelope", "the connection was given back"))
    }

    /// The transaction ended: the connection goes back to the pool.
    fn done(mut self) {
        self.0.take();
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

impl PgStore {
    /// Change a message's envelope under its row lock and write it back;
    /// a message whose recipients are all final is removed. `None`: no
    /// such message.
    pub(super) fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Envelope),
    ) -> Result<Option<Envelope>, QueueError> {
        let pool = self.inner.pool.clone();
        let key = id.to_string();
        let (held, found) = self.block("reading an envelope to change", async move {
            let client = PgStore::client(&pool, "changing an envelope").await?;
            let held = InTransaction(Some(client));
            held.client()?
                .batch_execute("BEGIN")
                .await
                .map_err(|e| db_error("changing an envelope", e))?;
            let row = held
                .client()?
                .query_opt(
                    "SELECT envelope FROM queue_message WHERE id = $1 FOR UPDATE",
                    &[&key],
                )
                .await
                .map_err(|e| db_error("reading an envelope to change", e))?;
            Ok((held, row.map(|r| r.get::<_, Vec<u8>>(0))))
        })?;
        let Some(json) = found else {
            self.block("changing an envelope", async move {
                held.client()?
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| db_error("changing an envelope", e))?;
                held.done();
                Ok(())
            })?;
            return Ok(None);
        };
        let mut env: Envelope =
            serde_json::from_slice(&json).map_err(|source| QueueError::Corrupt {
                id: id.to_string(),
                source,
            })?;
        change(&mut env);
        let done = env.is_done();
        let encoded = serde_json::to_vec(&env).map_err(QueueError::Encode)?;
        let due = env.due().map(|t| t.min(i64::MAX as u64) as i64);
        let marks = envelope_marks(&env);
        let key = id.to_string();
        self.block("writing an envelope", async move {
            let c = held.client()?;
            let fail = |e| db_error("writing an envelope", e);
            if done {
                c.execute("DELETE FROM queue_message WHERE id = $1", &[&key])
                    .await
                    .map_err(fail)?;
            } else {
                c.execute(
                    "UPDATE queue_message SET envelope = $2, due = $3, next_try = $3, \
                     postponed_by = NULL, releasing = false WHERE id = $1",
                    &[&key, &encoded, &due],
                )
                .await
                .map_err(fail)?;
                c.execute("DELETE FROM queue_etrn WHERE id = $1", &[&key])
                    .await
                    .map_err(fail)?;
                for (domain, held) in &marks {
                    c.execute(
                        "INSERT INTO queue_etrn (domain, id, held) VALUES ($1, $2, $3)",
                        &[domain, &key, held],
                    )
                    .await
                    .map_err(fail)?;
                }
                // Due now (a release, a flush): every node may take it.
                if due.is_some_and(|t| t <= now_unix() as i64) {
                    c.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                        .await
                        .map_err(fail)?;
                }
            }
            c.batch_execute("COMMIT").await.map_err(fail)?;
            held.done();
            Ok(())
        })?;
        self.inner.changed.notify_one();
        Ok(Some(env))
    }

    /// Delete a message (its body and marks go with it). Returns whether
    /// it existed.
    pub(super) fn remove(&self, id: &str) -> Result<bool, QueueError> {
        let pool = self.inner.pool.clone();
        let key = id.to_string();
        let n = self.block("removing a message", async move {
            let client = PgStore::client(&pool, "removing a message").await?;
            client
                .execute("DELETE FROM queue_message WHERE id = $1", &[&key])
                .await
                .map_err(|e| db_error("removing a message", e))
        })?;
        self.inner.changed.notify_one();
        Ok(n > 0)
    }
}
