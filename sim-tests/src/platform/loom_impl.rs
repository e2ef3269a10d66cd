//! loom: every interleaving, exhaustively, for small models (at most five threads).

use loom::sync::{Condvar, Mutex, MutexGuard};

use crate::platform::Platform;

/// loom's threads, locks and leak-tracked `Arc`.
#[derive(Debug)]
pub struct Loom;

/// loom with std's `Arc`: for models expected to fail.
///
/// A deadlock panic that unwinds through the drop of a loom `Arc` panics again inside loom's
/// scheduler, and the double panic aborts the whole test binary (loom#291). With std's
/// `Arc` the panic propagates normally and a test can assert that the checker found the bug.
#[derive(Debug)]
pub struct LoomStdArc;

macro_rules! loom_platform {
    ($name:ident, $arc:ident, $new_arc:path) => {
        impl Platform for $name {
            type Mutex<T: Send + 'static> = Mutex<T>;
            type Guard<'a, T: Send + 'static>
                = MutexGuard<'a, T>
            where
                T: 'a;
            type Condvar = Condvar;
            type Arc<T: Send + Sync + 'static> = $arc<T>;
            type JoinHandle<T: Send + 'static> = loom::thread::JoinHandle<T>;

            fn mutex<T: Send + 'static>(value: T) -> Mutex<T> {
                Mutex::new(value)
            }
            #[track_caller]
            fn lock<'a, T: Send + 'static>(m: &'a Mutex<T>) -> Self::Guard<'a, T> {
                // loom never poisons.
                m.lock().unwrap()
            }
            fn condvar() -> Condvar {
                Condvar::new()
            }
            #[track_caller]
            fn wait<'a, T: Send + 'static>(
                cv: &Condvar,
                guard: Self::Guard<'a, T>,
            ) -> Self::Guard<'a, T> {
                cv.wait(guard).unwrap()
            }
            fn notify_all(cv: &Condvar) {
                cv.notify_all();
            }
            fn arc<T: Send + Sync + 'static>(value: T) -> $arc<T> {
                $new_arc(value)
            }
            fn spawn<F, T>(f: F) -> loom::thread::JoinHandle<T>
            where
                F: FnOnce() -> T + Send + 'static,
                T: Send + 'static,
            {
                loom::thread::spawn(f)
            }
            fn join<T: Send + 'static>(handle: loom::thread::JoinHandle<T>) -> T {
                handle.join().unwrap()
            }
            fn yield_now() {
                loom::thread::yield_now();
            }
        }
    };
}

use loom::sync::Arc as LoomArc;
use std::sync::Arc as StdArc;

loom_platform!(Loom, LoomArc, LoomArc::new);
loom_platform!(LoomStdArc, StdArc, StdArc::new);
