//! The concurrency primitives the simulator runs on: std, loom or shuttle, chosen by type.
//!
//! One build holds all three: code is generic over `P: Platform` instead of switching with
//! `cfg(loom)`. The trait uses free functions (`P::lock(&m)`) rather than methods on the
//! associated types, so each implementation can absorb its own API differences (poisoning,
//! loom's own `Arc`). Time is deliberately absent: neither loom nor shuttle models it, so the
//! simulator makes deadlines explicit events fired by a clock thread.

mod loom_impl;
mod std_impl;

pub use loom_impl::{Loom, LoomStdArc};
pub use std_impl::{Shuttle, Std};

use core::ops::{Deref, DerefMut};

/// Mutex, condition variable, shared pointer and threads of one execution platform.
pub trait Platform: Sized + Send + Sync + 'static {
    /// A mutual-exclusion lock that never poisons.
    type Mutex<T: Send + 'static>: Send + Sync;
    /// The guard of a held lock.
    type Guard<'a, T: Send + 'static>: Deref<Target = T> + DerefMut
    where
        T: 'a;
    /// A condition variable.
    type Condvar: Send + Sync;
    /// A shared, reference-counted pointer (loom tracks leaks of its own).
    type Arc<T: Send + Sync + 'static>: Clone + Deref<Target = T> + Send + Sync;
    /// A handle to join a spawned thread.
    type JoinHandle<T: Send + 'static>: Send;

    /// A new lock around `value`.
    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T>;
    /// Locks, blocking until the lock is free.
    fn lock<'a, T: Send + 'static>(m: &'a Self::Mutex<T>) -> Self::Guard<'a, T>;
    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Releases the guard, waits for a notification, and locks again.
    fn wait<'a, T: Send + 'static>(
        cv: &Self::Condvar,
        guard: Self::Guard<'a, T>,
    ) -> Self::Guard<'a, T>;
    /// Wakes every waiter.
    fn notify_all(cv: &Self::Condvar);
    /// A new shared pointer.
    fn arc<T: Send + Sync + 'static>(value: T) -> Self::Arc<T>;
    /// Starts a thread.
    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
    /// Waits for a thread to finish and returns its result.
    fn join<T: Send + 'static>(handle: Self::JoinHandle<T>) -> T;
    /// Lets another thread run.
    fn yield_now();
}
