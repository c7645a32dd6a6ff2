//! Locking a mutex whose holder panicked: the queue's state stays usable
//! (every critical section leaves it consistent before it can panic).

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, taking the guard over from a poisoned lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
