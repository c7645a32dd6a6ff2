//! Fax lines shared by the nodes of a site: when several faxmta nodes
//! share one queue (PostgreSQL), the site's lines are a pool in the
//! database and every call holds a lease on one line ([`LinePool`]), so
//! N nodes never dial more calls at once than the site has lines. The
//! lease expires by itself when a node dies in the middle of a call; a
//! call renews it while it lasts.
//!
//! A backend that is one process's alone (sled) has no pool: that
//! process's own count of lines is the site's.

use crate::error::QueueError;
use std::time::Duration;

/// One line of a pool, leased to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineLease {
    /// The pool (the engine's name).
    pub pool: String,
    /// Which line of the pool (0-based).
    pub slot: u32,
    /// Tells this lease from earlier and later ones on the same line.
    pub token: u64,
}

/// The site's fax lines, leased per call.
#[async_trait::async_trait]
pub trait LinePool: Send + Sync {
    /// Lease a free line of `pool`, which has `lines` lines, for `ttl`;
    /// `None`: every line is leased.
    async fn claim_line(
        &self,
        pool: &str,
        lines: usize,
        ttl: Duration,
    ) -> Result<Option<LineLease>, QueueError>;

    /// Extend a lease by `ttl` from now; `false`: it was lost (it expired
    /// and another call may hold the line).
    async fn renew_line(&self, lease: &LineLease, ttl: Duration) -> Result<bool, QueueError>;

    /// Give a line back once its call ended.
    async fn release_line(&self, lease: &LineLease) -> Result<(), QueueError>;

    /// Lines of `pool` leased now (by every node).
    async fn lines_leased(&self, pool: &str) -> Result<usize, QueueError>;
}
