//! An engine's lines: a call waits for a free one, and a line in use is
//! counted (for `lines_busy` and the metrics) until its call ends — even
//! when the future that asked for it was dropped while the call goes on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A fixed number of lines.
#[derive(Debug)]
pub struct Lines {
    free: Arc<Semaphore>,
    busy: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// A line in use: counted as busy until dropped.
#[derive(Debug)]
pub struct Line {
    _permit: OwnedSemaphorePermit,
    busy: Arc<AtomicUsize>,
}

impl Drop for Line {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lines {
    pub fn new(lines: usize) -> Lines {
        Lines {
            free: Arc::new(Semaphore::new(lines)),
            busy: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits for a free line; `None` only once closed by [`Lines::close`].
    pub async fn take(&self) -> Option<Line> {
        let permit = self.free.clone().acquire_owned().await.ok()?;
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Some(Line {
            _permit: permit,
            busy: self.busy.clone(),
        })
    }

    /// No more lines: waiting and later calls of [`Lines::take`] get `None`.
    pub fn close(&self) {
        self.free.close();
    }

    /// Lines in use now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// The most lines ever in use at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_counted_until_dropped() {
        let lines = Lines::new(2);
        let a = lines.take().await.unwrap();
        let b = lines.take().await.unwrap();
        assert_eq!((lines.busy(), lines.peak()), (2, 2));
        // A third waits until one is free.
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), lines.take());
        assert!(third.await.is_err());
        drop(a);
        assert_eq!(lines.busy(), 1);
        let c = lines.take().await.unwrap();
        assert_eq!((lines.busy(), lines.peak()), (2, 2));
        drop((b, c));
        assert_eq!(lines.busy(), 0);
        lines.close();
        assert!(lines.take().await.is_none());
    }
}
