//! Real threads and locks: for quick runs and for debugging a trace by hand.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use harrow_model::platform::Platform;

/// The standard library's threads and locks.
#[derive(Debug)]
pub struct Std;

impl Platform for Std {
    type Mutex<T: Send + 'static> = Mutex<T>;
    type Guard<'a, T: Send + 'static>
        = MutexGuard<'a, T>
    where
        T: 'a;
    type Condvar = Condvar;
    type Arc<T: Send + Sync + 'static> = Arc<T>;
    type JoinHandle<T: Send + 'static> = std::thread::JoinHandle<T>;

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
    fn spawn<F, T>(f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        std::thread::spawn(f)
    }
    fn join<T: Send + 'static>(handle: std::thread::JoinHandle<T>) -> T {
        handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
    fn yield_now() {
        std::thread::yield_now();
    }
}
