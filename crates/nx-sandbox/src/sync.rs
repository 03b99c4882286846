//! Locking that survives a panicked holder: the sandbox's shared maps stay usable (a handler
//! that panicked cannot have left them half-updated, as every update is one call under the lock).

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
