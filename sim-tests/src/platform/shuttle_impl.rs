//! shuttle: sampled schedules (random, PCT) over any number of threads, replayable.

use std::sync::{Arc, PoisonError};

use shuttle::sync::{Condvar, Mutex, MutexGuard};

use harrow_model::platform::Platform;

/// shuttle's threads and locks (its `Arc` is std's).
#[derive(Debug)]
pub struct Shuttle;

impl Platform for Shuttle {
    type Mutex<T: Send + 'static> = Mutex<T>;
    type Guard<'a, T: Send + 'static>
        = MutexGuard<'a, T>
    where
        T: 'a;
    type Condvar = Condvar;
    type Arc<T: Send + Sync + 'static> = Arc<T>;
    type JoinHandle<T: Send + 'static> = shuttle::thread::JoinHandle<T>;

    fn mutex<T: Send + 'static>(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
    fn lock<'a, T: Send + 'static>(m: &'a Mutex<T>) -> Self::Guard<'a, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn condvar() -> Condvar {
        Condvar::new()
    }
    fn wait<'a, T: Send + 'static>(cv: &Condvar, guard: Self::Guard<'a, T>) -> Self::Guard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }
    fn notify_all(cv: &Condvar) {
        cv.notify_all();
    }
    fn arc<T: Send + Sync + 'static>(value: T) -> Arc<T> {
        Arc::new(value)
    }
    fn spawn<F, T>(f: F) -> shuttle::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        shuttle::thread::spawn(f)
    }
    fn join<T: Send + 'static>(handle: shuttle::thread::JoinHandle<T>) -> T {
        handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
    fn yield_now() {
        shuttle::thread::yield_now();
    }
}
