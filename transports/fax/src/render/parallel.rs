//! Pages made side by side: a fixed number of scoped threads (the caller's
//! among them) take the next index from a shared counter, and the results
//! come back in index order, so the output is the same whatever the
//! number of threads and however the work was shared out.
//!
//! How many threads: [`threads`] — the `threads` render option (`[fax]
//! render_threads`), 0 meaning the machine's cores, and never more than
//! [`MAX_THREADS`]. Each thread has at most one item in flight, so a
//! render holds at most `threads` pages' working memory at once (the
//! render worker's `RLIMIT_AS` still caps the whole process).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads one render uses at most, whatever the machine.
pub const MAX_THREADS: usize = 8;

/// The threads to use for `wanted` (0: one per core), at most
/// [`MAX_THREADS`], at least 1.
pub fn threads(wanted: usize) -> usize {
    let n = if wanted == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        wanted
    };
    n.clamp(1, MAX_THREADS)
}

/// `f(i)` for every `i` in `0..n` on up to `threads` threads (the calling
/// one included), the results in index order. Once some `f(i)` returns
/// `Err`, indices above `i` not yet started are not started (their slots
/// hold `None`); below it everything runs, so the first error in index
/// order is always among the results.
pub fn map<R: Send, E: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<R, E> + Sync,
) -> Vec<Option<Result<R, E>>> {
    map_with(n, threads, || (), |(), i| f(i))
}

/// [`map`] with a state per thread, made by `init` on the thread (a
/// cache that cannot be shared, for one).
pub fn map_with<S, R: Send, E: Send>(
    n: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> Result<R, E> + Sync,
) -> Vec<Option<Result<R, E>>> {
    let mut slots: Vec<Option<Result<R, E>>> = (0..n).map(|_| None).collect();
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        let mut state = init();
        for (i, slot) in slots.iter_mut().enumerate() {
            let r = f(&mut state, i);
            let stop = r.is_err();
            *slot = Some(r);
            if stop {
                break;
            }
        }
        return slots;
    }
    let next = AtomicUsize::new(0);
    // The lowest index that failed (n: none).
    let failed = AtomicUsize::new(n);
    let done = Mutex::new(Vec::with_capacity(n));
    let work = || {
        let mut state = init();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n || i > failed.load(Ordering::Relaxed) {
                break;
            }
            let r = f(&mut state, i);
            if r.is_err() {
                failed.fetch_min(i, Ordering::Relaxed);
            }
            if let Ok(mut d) = done.lock() {
                d.push((i, r));
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    for (i, r) in done {
        slots[i] = Some(r);
    }
    slots
}

/// [`map`] where every item must succeed: the results in order, or the
/// first error in index order.
pub fn try_map<R: Send, E: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    try_map_with(n, threads, || (), |(), i| f(i))
}

/// [`map_with`] where every item must succeed: the results in order, or
/// the first error in index order.
pub fn try_map_with<S, R: Send, E: Send>(
    n: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let mut out = Vec::with_capacity(n);
    for slot in map_with(n, threads, init, f) {
        match slot {
            Some(Ok(r)) => out.push(r),
            Some(Err(e)) => return Err(e),
            // Only after an error, which comes first.
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_order_whatever_the_threads() {
        for t in [1, 2, 3, 8] {
            let r: Result<Vec<usize>, ()> = try_map(100, t, |i| {
                // Uneven work, so threads finish out of order.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((i * 37) % 11) as u64 * 50,
                ));
                Ok(i * i)
            });
            assert_eq!(
                r.unwrap(),
                (0..100).map(|i| i * i).collect::<Vec<_>>(),
                "{t}"
            );
        }
    }

    #[test]
    fn the_first_error_in_order_wins() {
        for t in [1, 2, 4] {
            let r: Result<Vec<usize>, usize> =
                try_map(50, t, |i| if i == 7 || i == 30 { Err(i) } else { Ok(i) });
            assert_eq!(r, Err(7), "{t}");
        }
        assert_eq!(threads(3), 3);
        assert_eq!(threads(1000), MAX_THREADS);
        assert!(threads(0) >= 1);
    }
}
