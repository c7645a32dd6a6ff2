//! Lines shared by several nodes: [`SharedLines`] wraps a node's engine
//! so that each call first leases one of the site's lines from the
//! queue's database ([`faxmta_queue::LinePool`]) — N nodes never dial more
//! calls at once than the site has lines. The engine's own lines still
//! bound this node's calls; the lease is renewed while a call lasts (a
//! long fax) and given back when it ends, or expires by itself if the
//! node dies.

use super::{FaxEngine, ReceivedFax, SendRequest, SendResult};
use faxmta_queue::{LineLease, LinePool};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a call waits when the database cannot be asked before it
/// gives up (deferred, tried again later).
const GIVE_UP: Duration = Duration::from_secs(60);

/// Between two looks for a line another node gave back.
const POLL: Duration = Duration::from_secs(1);

/// A node's engine, its calls counted against the site's lines.
pub struct SharedLines {
    inner: Arc<dyn FaxEngine>,
    pool: Arc<dyn LinePool>,
    /// The pool's name in the database: the engine's.
    name: String,
    /// The site's lines.
    lines: usize,
    /// A line lease lasts this long from each renewal.
    ttl: Duration,
    /// A line this node gave back.
    freed: Arc<Notify>,
}

/// A leased line: given back when dropped.
struct Held {
    pool: Arc<dyn LinePool>,
    lease: Option<LineLease>,
    freed: Arc<Notify>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let pool = self.pool.clone();
        let freed = self.freed.clone();
        // Outside a runtime the lease simply expires.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = pool.release_line(&lease).await {
                    tracing::warn!("fax line {} stays leased until it expires: {e}", lease.slot);
                }
                freed.notify_waiters();
            });
        }
    }
}

impl SharedLines {
    /// `inner`'s calls, each on one of the site's `lines` lines leased
    /// from `pool` for `ttl` at a time.
    pub fn new(
        inner: Arc<dyn FaxEngine>,
        pool: Arc<dyn LinePool>,
        lines: usize,
        ttl: Duration,
    ) -> SharedLines {
        SharedLines {
            name: inner.name().to_string(),
            inner,
            pool,
            lines: lines.max(1),
            ttl: ttl.max(Duration::from_secs(3)),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Wait for a free line of the site; an error when the database
    /// cannot be asked for [`GIVE_UP`].
    async fn claim(&self) -> Result<Held, String> {
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.pool.claim_line(&self.name, self.lines, self.ttl).await {
                Ok(Some(lease)) => {
                    return Ok(Held {
                        pool: self.pool.clone(),
                        lease: Some(lease),
                        freed: self.freed.clone(),
                    })
                }
                Ok(None) => failing_since = None,
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > GIVE_UP {
                        return Err(format!("cannot lease one of the site's fax lines: {e}"));
                    }
                    tracing::warn!("cannot lease a fax line (trying again): {e}");
                }
            }
            // A line this node gives back, or a look for other nodes'.
            let freed = self.freed.notified();
            let _ = tokio::time::timeout(POLL, freed).await;
        }
    }
}

#[async_trait::async_trait]
impl FaxEngine for SharedLines {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The site's lines.
    fn lines(&self) -> usize {
        self.lines
    }

    /// This node's calls.
    fn lines_busy(&self) -> usize {
        self.inner.lines_busy()
    }

    fn trunks(&self) -> Vec<super::TrunkReport> {
        self.inner.trunks()
    }

    async fn send(&self, request: SendRequest) -> SendResult {
        let held = match self.claim().await {
            Ok(held) => held,
            Err(reason) => {
                return SendResult::Error {
                    reason,
                    retry: true,
                }
            }
        };
        let job = request.job_id.clone();
        let call = self.inner.send(request);
        tokio::pin!(call);
        let every = self.ttl / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let result = loop {
            tokio::select! {
                result = &mut call => break result,
                _ = renew.tick() => {
                    if let Some(lease) = &held.lease {
                        match self.pool.renew_line(lease, self.ttl).await {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!("{job}: the call outlived its line's lease"),
                            Err(e) => tracing::warn!("{job}: cannot renew the line's lease: {e}"),
                        }
                    }
                }
            }
        };
        drop(held);
        result
    }

    async fn receive(&self) -> Option<ReceivedFax> {
        self.inner.receive().await
    }

    async fn acknowledge(&self, fax: &ReceivedFax) {
        self.inner.acknowledge(fax).await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}
