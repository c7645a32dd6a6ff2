//! The PostgreSQL backend of the queue: several faxmta nodes share one
//! queue in one database ([`PgStore`], `[queue] backend = "postgres"`).
//!
//! What lives where: every message is one row of `queue_message` (its
//! JSON envelope, its recorded next attempt `due`, the schedule's
//! `next_try`, the lease columns) with its body in `queue_body` (pieces of
//! up to 1 MiB) and its ETRN marks in `queue_etrn`; fax history, failed
//! messages, broadcasts, received faxes, usage rows and fax documents
//! have a table each. The schema is created and
//! migrated by faxmta itself (`schema.rs`, `faxmta queue migrate`).
//! Bodies live in the database, not on a shared path: one commit holds
//! the whole message (the one durability promise), and a node needs no
//! shared file system (docs/architecture.md gives the reasons and
//! figures).
//!
//! A body is received into a local spool file first (a slow client never
//! holds a database connection, let alone a transaction) and goes into
//! the database with its envelope in one transaction at the commit.
//! Group commit (`commit.rs`): one task takes every enqueue waiting and
//! commits them in one transaction; the 250 follows the commit
//! (synchronous_commit on). Other writes (outcomes, holds) are committed
//! asynchronously (the connections say `synchronous_commit = off`), as
//! sled's are written but not synced; [`crate::QueueStore::sync`] makes
//! them durable with one synchronous commit, which flushes the write-ahead
//! log past them.
//!
//! Leases are rows: `lease_due` claims due messages with `FOR UPDATE SKIP
//! LOCKED` and stamps a token and an expiry by the database's clock, so
//! nodes never deliver one message at once and a dead node's messages
//! come back when its leases expire. A node's postponements (a parked
//! destination, a pause after storage trouble) change `next_try` only;
//! the node undoes its own at start, as sled forgets them at a restart.
//! Nodes learn of each other's changes by `LISTEN`/`NOTIFY`
//! (`listen.rs`).
//!
//! The trait's synchronous methods run their queries on the store's own
//! small runtime and wait for the answer (`bridge` below), so the store
//! works the same from an async task, a blocking thread or the CLI.
//!
//! Files: `settings.rs` (how to connect), `util.rs` (errors, the bridge
//! for synchronous callers), `schema.rs` (migrations), `commit.rs` (the
//! group commit), `enqueue.rs` (enqueue, sync), `write.rs` (outcomes,
//! removal), `read.rs` (reads, the schedule, leases, ETRN), `records.rs`
//! (fax history, failures, broadcasts), `faxlog.rs` (searching the
//! history; received faxes, usage, documents), `nodes.rs` (liveness),
//! `listen.rs` (notifications), `lines.rs` (the site's fax lines),
//! `accounts.rs` (users and tokens), `api.rs` (the trait).

mod accounts;
mod api;
mod commit;
mod enqueue;
mod faxlog;
mod lines;
mod listen;
mod nodes;
mod read;
mod records;
mod schema;
mod settings;
#[cfg(test)]
mod tests;
mod util;
mod write;

pub use schema::{migrate, MIGRATIONS};
pub use settings::PgSettings;

use crate::body::BodyFiles;
use crate::error::QueueError;
use crate::lock::lock;
use crate::store::Store;
use crate::time::now_unix;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Notify};
use util::{db_error, other_error, pool_error, wait_for, CALL_LIMIT, CHANNEL};

/// Queue ids come in blocks of this many from a database sequence.
const ID_BLOCK: u64 = 256;

struct Inner {
    /// The store's own runtime, where its connections live. Taken (and
    /// shut down in the background) when the store goes.
    rt: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    /// This node's name: leases and postponements are marked with it.
    node: String,
    /// The local spool of bodies being received.
    files: Arc<BodyFiles>,
    commit_tx: mpsc::UnboundedSender<commit::Job>,
    commit_stats: Arc<commit::Stats>,
    changed: Arc<Notify>,
    /// The current block of queue ids: the second it was taken in, the
    /// next number and the end of the block.
    ids: Mutex<(u64, u64, u64)>,
    /// The spool's lock (held while the store lives).
    _spool_lock: std::fs::File,
    /// Remove the spool when the store goes (a passive store's).
    temporary_spool: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = lock(&self.rt).take() {
            rt.shutdown_background();
        }
        if self.temporary_spool {
            let _ = std::fs::remove_dir_all(&self.files.dir);
        }
    }
}

/// The queue on PostgreSQL. Cheap to clone; clones share one pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl PgStore {
    /// Connect to the database of `settings`, create or migrate its
    /// schema, undo this node's postponements (a restart) and start the
    /// commit and notification tasks. The local spool directory is
    /// created and locked (one process per spool).
    pub fn open(settings: &PgSettings) -> Result<PgStore, QueueError> {
        let spool = settings.spool.clone();
        std::fs::create_dir_all(&spool).map_err(|source| QueueError::File {
            path: spool.clone(),
            source,
        })?;
        let spool_lock = settings::lock_spool(&spool)?;
        settings::clear_spool(&spool);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("queue-pg")
            .enable_all()
            .build()
            .map_err(|e| other_error("starting the store's runtime", e))?;
        let handle = rt.handle().clone();
        let config = settings.config()?;
        let tls = settings::connector(settings)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| other_error("building the connection pool", e))?;
        let changed = Arc::new(Notify::new());
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let node = settings.node.clone();
        // The schema first: nothing runs on a database we do not know.
        {
            let pool = pool.clone();
            let node = node.clone();
            let passive = settings.passive;
            wait_for(&handle, "opening the queue database", async move {
                let mut client = pool.get().await.map_err(|e| pool_error("connecting", e))?;
                schema::migrate(&mut client).await?;
                if passive {
                    return Ok(());
                }
                let alive = client
                    .query_opt(
                        "SELECT 1 FROM faxmta_node WHERE name = $1 AND alive_until > clock_timestamp()",
                        &[&node],
                    )
                    .await
                    .map_err(|e| db_error("reading the nodes", e))?;
                if alive.is_some() {
                    // Two nodes of one name undo each other's parking.
                    tracing::warn!(
                        "queue database: node {node} is still alive: another node has this name \
                         ([queue] node must differ), or this one restarted within lease_time"
                    );
                }
                client
                    .execute(
                        "UPDATE queue_message SET next_try = due, postponed_by = NULL \
                         WHERE postponed_by = $1",
                        &[&node],
                    )
                    .await
                    .map_err(|e| db_error("undoing this node's postponements", e))?;
                Ok::<(), QueueError>(())
            })?;
        }
        let commit_stats = Arc::new(commit::Stats::default());
        handle.spawn(commit::commit_loop(
            pool.clone(),
            commit_rx,
            changed.clone(),
            commit_stats.clone(),
        ));
        handle.spawn(listen::listen_loop(config, tls, changed.clone()));
        if !settings.passive {
            handle.spawn(nodes::heartbeat_loop(
                pool.clone(),
                node.clone(),
                settings.node_ttl,
                changed.clone(),
            ));
        }
        Ok(PgStore {
            inner: Arc::new(Inner {
                rt: Mutex::new(Some(rt)),
                handle,
                pool,
                node,
                files: Arc::new(BodyFiles::spool(spool)),
                commit_tx,
                commit_stats,
                changed,
                ids: Mutex::new((0, 0, 0)),
                _spool_lock: spool_lock,
                temporary_spool: settings.passive,
            }),
        })
    }

    /// Run `work` on the store's runtime and wait for it, from any
    /// thread: on a worker of a multi-threaded runtime the wait moves the
    /// worker's other tasks elsewhere (`block_in_place`).
    pub(super) fn block<T, F>(&self, context: &str, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        wait_for(&self.inner.handle, context, work)
    }

    /// Run `work` on the store's runtime and await it.
    pub(super) async fn run<T, F>(&self, context: &str, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        match self
            .inner
            .handle
            .spawn(tokio::time::timeout(CALL_LIMIT, work))
            .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(other_error(context, "the database did not answer in time")),
            Err(e) => Err(other_error(context, e)),
        }
    }

    /// A connection from the pool (on the store's runtime).
    pub(super) async fn client(pool: &Pool, context: &str) -> Result<Object, QueueError> {
        pool.get().await.map_err(|e| pool_error(context, e))
    }

    /// A fresh queue id: the time in seconds and a number from the
    /// current block, 13 upper-case hex digits like sled's. A block is
    /// used only in the second it was taken in, so two nodes never make
    /// the same id (the numbers of one second are all different).
    fn new_id(&self) -> Result<String, QueueError> {
        let now = now_unix();
        {
            let mut ids = lock(&self.inner.ids);
            let (second, next, end) = *ids;
            if second == now && next < end {
                ids.1 += 1;
                return Ok(format_id(now, next));
            }
        }
        let pool = self.inner.pool.clone();
        let block: i64 = self.block("taking queue ids", async move {
            let client = PgStore::client(&pool, "taking queue ids").await?;
            let row = client
                .query_one("SELECT nextval('queue_id_block')", &[])
                .await
                .map_err(|e| db_error("taking queue ids", e))?;
            Ok(row.get(0))
        })?;
        let start = (block.max(0) as u64).wrapping_mul(ID_BLOCK);
        *lock(&self.inner.ids) = (now, start + 1, start + ID_BLOCK);
        Ok(format_id(now, start))
    }

    /// The group commit so far: transactions, messages committed in
    /// them, and messages handed to it.
    pub fn commit_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.inner.commit_stats;
        (
            s.batches.load(Relaxed),
            s.committed.load(Relaxed),
            s.submitted.load(Relaxed),
        )
    }

    /// The spool of bodies being received.
    pub(super) fn files(&self) -> &Arc<BodyFiles> {
        &self.inner.files
    }
}

fn format_id(now: u64, n: u64) -> String {
    format!("{:08X}{:05X}", now & 0xFFFF_FFFF, n & 0xF_FFFF)
}

impl Store {
    /// Open the queue on PostgreSQL ([`PgStore::open`]).
    pub fn open_postgres(settings: &PgSettings) -> Result<Store, QueueError> {
        Ok(Store::new(PgStore::open(settings)?))
    }
}

/// Create or migrate the schema of the database of `settings` (`faxmta
/// queue migrate`): every migration known, with whether it was applied
/// now (`true`) or found applied.
pub fn migrate_database(settings: &PgSettings) -> Result<Vec<(i32, String, bool)>, QueueError> {
    let config = settings.config()?;
    let tls = settings::connector(settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| other_error("starting a runtime", e))?;
    rt.block_on(async move {
        let (mut client, conn) = config
            .connect(tls)
            .await
            .map_err(|e| db_error("connecting", e))?;
        let task = tokio::spawn(conn);
        let applied = schema::migrate(&mut client).await?;
        drop(client);
        let _ = task.await;
        Ok(applied)
    })
}
