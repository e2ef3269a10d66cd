//! The two platforms whose locks can poison (std and shuttle), from one definition.
//!
//! std: real threads and locks, for quick runs and for debugging a trace by hand. shuttle:
//! sampled schedules (random, PCT) over any number of threads, replayable; its `Arc` is
//! std's. Both absorb poisoning the same way, so one macro states them both (loom's pair,
//! which never poisons but has its own `Arc`, shares another).

use shuttle::{sync as shuttle_sync, thread as shuttle_thread};
use std::sync::{Arc, PoisonError};
use std::{sync as std_sync, thread as std_thread};

use crate::platform::Platform;

/// The standard library's threads and locks.
#[derive(Debug)]
pub struct Std;

/// shuttle's threads and locks (its `Arc` is std's).
#[derive(Debug)]
pub struct Shuttle;

macro_rules! poisoning_platform {
    ($name:ident, $sync:ident, $thread:ident) => {
        impl Platform for $name {
            type Mutex<T: Send + 'static> = $sync::Mutex<T>;
            type Guard<'a, T: Send + 'static>
                = $sync::MutexGuard<'a, T>
            where
                T: 'a;
            type Condvar = $sync::Condvar;
            type Arc<T: Send + Sync + 'static> = Arc<T>;
            type JoinHandle<T: Send + 'static> = $thread::JoinHandle<T>;

            fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T> {
                <$sync::Mutex<T>>::new(value)
            }
            fn lock<'a, T: Send + 'static>(m: &'a Self::Mutex<T>) -> Self::Guard<'a, T> {
                m.lock().unwrap_or_else(PoisonError::into_inner)
            }
            fn condvar() -> Self::Condvar {
                <$sync::Condvar>::new()
            }
            fn wait<'a, T: Send + 'static>(
                cv: &Self::Condvar,
                guard: Self::Guard<'a, T>,
            ) -> Self::Guard<'a, T> {
                cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
            }
            fn notify_all(cv: &Self::Condvar) {
                cv.notify_all();
            }
            fn arc<T: Send + Sync + 'static>(value: T) -> Arc<T> {
                Arc::new(value)
            }
            fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
            where
                F: FnOnce() -> T + Send + 'static,
                T: Send + 'static,
            {
                $thread::spawn(f)
            }
            fn join<T: Send + 'static>(handle: Self::JoinHandle<T>) -> T {
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
            fn yield_now() {
                $thread::yield_now();
            }
        }
    };
}

poisoning_platform!(Std, std_sync, std_thread);
poisoning_platform!(Shuttle, shuttle_sync, shuttle_thread);
