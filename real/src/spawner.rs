//! `Exec` children are spawned from a thread that outlives them.
//!
//! An `Exec` child arms its parent-death signal (`PR_SET_PDEATHSIG`) first thing, and Linux
//! sends it when the *thread* that spawned the child exits, not the process (man
//! PR_SET_PDEATHSIG(2const)): a child spawned from a worker thread (a thread pool, tokio's
//! blocking pool, which retires idle threads) was SIGKILLed when that thread ended. So only a
//! thread that lives as long as the child spawns it: the main thread, which lives as long as
//! the process, spawns directly; any other thread hands the spawn to the spawner thread,
//! which runs while some nursery holds a [`Lease`] on it (taken at the nursery's first such
//! spawn, dropped once its children are gone). The spawner thread dies with the process, so
//! the signal still fires when the parent process dies.
//!
//! While it runs, the process has one more thread, so `Fork` is refused (as it is anyway in
//! the multi-threaded process that spawned off its main thread).

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::thread::JoinHandle;

use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};

use crate::sys::{self, ChildProcess, SysError};

/// [`sys::exec_self`] from a thread that outlives the child: this one if it is the main
/// thread, the spawner thread otherwise (taking a lease into `lease` if it holds none).
pub(crate) fn exec_self(
    role: &str,
    args: &[&OsStr],
    channel: OwnedFd,
    lease: &mut Option<Lease>,
) -> Result<ChildProcess, SysError> {
    if rustix::thread::gettid() == rustix::process::getpid() {
        return sys::exec_self(role, args, channel);
    }
    let lease = match lease {
        Some(lease) => lease,
        None => lease.insert(Lease::take()?),
    };
    let role = role.to_owned();
    let args: Vec<OsString> = args.iter().map(|&a| a.to_owned()).collect();
    lease.run(move || {
        let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        sys::exec_self(&role, &args, channel)
    })?
}

/// A share in the spawner thread: it runs while any lease does.
#[derive(Debug)]
pub(crate) struct Lease(Arc<Spawner>);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
struct Spawner {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// The spawner thread of this process, if one runs.
static SPAWNER: Mutex<Weak<Spawner>> = Mutex::new(Weak::new());

impl Lease {
    /// A lease on the running spawner thread, started if none runs.
    fn take() -> Result<Lease, SysError> {
        let mut current = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(spawner) = current.upgrade() {
            return Ok(Lease(spawner));
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("harrow-spawner".into())
            .spawn(move || {
                // Signals keep going to the host's own threads, as before this one existed.
                let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
                for job in queue {
                    job();
                }
            })
            .map_err(SysError::SpawnerThread)?;
        let spawner = Arc::new(Spawner {
            jobs: Some(jobs),
            thread: Some(thread),
        });
        *current = Arc::downgrade(&spawner);
        Ok(Lease(spawner))
    }

    /// Runs `job` on the spawner thread and returns its result.
    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SysError> {
        let gone = || {
            let why = std::io::Error::other("harrow's spawner thread is gone (it panicked)");
            SysError::SpawnerThread(why)
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let jobs = self.0.jobs.as_ref().ok_or_else(gone)?;
        jobs.send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // The thread ends once its queue is closed and empty: after at most the spawn it is
        // doing, which no lease waits for any more.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
