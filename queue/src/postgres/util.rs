//! What every part of the PostgreSQL backend shares: error conversion,
//! the notification channel's name, the time limit of a call, and the
//! bridge that lets a synchronous caller wait for the store's runtime.

use crate::error::{BoxError, QueueError};
use std::future::Future;
use std::time::Duration;
use tokio::runtime::RuntimeFlavor;

/// The channel of `LISTEN`/`NOTIFY` between nodes.
pub(super) const CHANNEL: &str = "faxmta_queue";

/// How long one call of the store may take before it fails (a database
/// that does not answer must not hang an SMTP session or the scheduler).
pub(super) const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A database error with its context, and whether the database said its
/// disk is full (SQLSTATE 53100) — the client then hears 452.
pub(super) fn db_error(context: &str, e: tokio_postgres::Error) -> QueueError {
    let disk_full = e
        .code()
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::DISK_FULL);
    // The whole chain: "error performing tls handshake" alone does not
    // say that the certificate was not trusted.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    QueueError::Backend {
        context: context.to_string(),
        source: text.into(),
        disk_full,
    }
}

/// A failure to get a connection from the pool.
pub(super) fn pool_error(context: &str, e: deadpool_postgres::PoolError) -> QueueError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(context, e),
        other => QueueError::Backend {
            context: context.to_string(),
            source: Box::new(other),
            disk_full: false,
        },
    }
}

pub(super) fn other_error(context: &str, source: impl Into<BoxError>) -> QueueError {
    QueueError::Backend {
        context: context.to_string(),
        source: source.into(),
        disk_full: false,
    }
}

/// Run `work` on the runtime of `handle` and wait for it, from any
/// thread: on a worker of a multi-threaded runtime the wait moves the
/// worker's other tasks elsewhere (`block_in_place`).
pub(super) fn wait_for<T, F>(
    handle: &tokio::runtime::Handle,
    context: &str,
    work: F,
) -> Result<T, QueueError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, QueueError>> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(tokio::time::timeout(CALL_LIMIT, work).await);
    });
    let wait = move || rx.recv();
    let answer = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    match answer {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(other_error(context, "the database did not answer in time")),
        Err(_) => Err(other_error(context, "the store's runtime is gone")),
    }
}
