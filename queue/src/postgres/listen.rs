//! How a node hears of the others' changes: one connection of its own
//! `LISTEN`s on the queue's channel; every notification (a message
//! committed, released or made due by any node) wakes the node's
//! scheduler. When the connection is lost it is made again, and the
//! scheduler is woken once (it may have missed something meanwhile).

use super::util::CHANNEL;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;

/// Listen until the store goes (its runtime is shut down).
pub(super) async fn listen_loop(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    changed: Arc<Notify>,
) {
    let mut failures = 0u32;
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<()>();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => {
                                if tx.send(()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(
                                    "queue database: the listening connection failed: {e}"
                                );
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        failures = 0;
                        changed.notify_one();
                        while rx.recv().await.is_some() {
                            changed.notify_one();
                        }
                    }
                    Err(e) => tracing::warn!("queue database: cannot listen: {e}"),
                }
                driver.abort();
                drop(client);
            }
            Err(e) => {
                // Said once per outage, not every second.
                if failures == 0 {
                    tracing::warn!("queue database: cannot connect to listen: {e}");
                }
                failures += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
