//! Threads and the process-local locks they hold. A lock whose holder no longer exists in
//! the process (it stayed behind in the parent at fork, or exited holding it) is wedged:
//! whoever waits for it waits forever.

use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::{Errno, Violation};
use super::event::KernelEvent;
use super::ids::{LockId, Pid, ThreadId};
use super::process::ProcState;
use super::signal::SignalVia;

/// The result of a non-blocking lock attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[must_use = "a lock attempt may not have acquired the lock"]
pub enum LockOutcome {
    /// The caller now holds the lock.
    Acquired,
    /// A live thread of this process holds it: a blocking acquire would wait for it.
    WouldBlock {
        /// The thread holding it.
        holder: ThreadId,
    },
    /// The holder does not exist in this process: a blocking acquire would never return.
    Wedged {
        /// The thread recorded as holding it.
        holder: ThreadId,
    },
}

impl Kernel {
    /// Starts a new thread in `pid`. EAGAIN past `max_threads_per_process`.
    pub fn spawn_thread(&mut self, pid: Pid) -> Result<ThreadId, Errno> {
        let limit = self.config.max_threads_per_process;
        let thread = self.peek_thread()?;
        let p = self.running_mut(pid)?;
        if p.threads.len() >= limit {
            return Err(Errno::EAGAIN);
        }
        p.threads.insert(thread);
        self.next_thread = thread.0.saturating_add(1);
        self.record(KernelEvent::ThreadSpawned { pid, thread });
        Ok(thread)
    }

    /// Ends `thread` of `pid`. Locks it holds stay held (and so wedge). Children it forked
    /// get their parent-death signal, as on Linux. Ending the last thread exits the
    /// process with status 0.
    pub fn exit_thread(&mut self, pid: Pid, thread: ThreadId) -> Result<(), Errno> {
        let p = self.running_mut(pid)?;
        if !p.threads.remove(&thread) {
            return Err(Errno::ESRCH);
        }
        let last = p.threads.is_empty();
        self.record(KernelEvent::ThreadExited { pid, thread });
        let mut deaths = Vec::new();
        for child in self.children(pid) {
            let Some(c) = self.processes.get_mut(&child) else {
                continue;
            };
            if c.creator_thread != Some(thread) || c.state != ProcState::Running {
                continue;
            }
            // Linux hands the child to another thread of the group; the process as a
            // whole stays its parent, so only the process's own death fires the signal again.
            c.creator_thread = None;
            if let Some(signal) = c.pdeathsig
                && let Some(status) = self.deliver(pid, child, signal, SignalVia::ParentDeath)
            {
                deaths.push((child, status));
                // The last thread's exit is the process's death, for which the signal is meant.
                if !last {
                    self.note_violation(Violation::KilledByThreadExit {
                        child,
                        parent: pid,
                        thread,
                    });
                }
            }
        }
        self.terminate(deaths);
        if last {
            self.exit(pid, 0)?;
        }
        Ok(())
    }

    /// The live threads of `pid`, in order (empty for a zombie).
    pub fn threads(&self, pid: Pid) -> Result<Vec<ThreadId>, Errno> {
        Ok(self.process(pid)?.threads.iter().copied().collect())
    }

    /// Tries to take `lock` in `pid` for `thread`, without blocking.
    ///
    /// EINVAL if `thread` already holds it (relocking would deadlock itself); EAGAIN past
    /// `max_locks_per_process` held locks.
    pub fn lock_acquire(
        &mut self,
        pid: Pid,
        thread: ThreadId,
        lock: LockId,
    ) -> Result<LockOutcome, Errno> {
        let limit = self.config.max_locks_per_process;
        let p = self.running_mut(pid)?;
        if !p.threads.contains(&thread) {
            return Err(Errno::ESRCH);
        }
        let outcome = match p.locks.get(&lock).copied() {
            Some(holder) if holder == thread => return Err(Errno::EINVAL),
            Some(holder) if p.threads.contains(&holder) => LockOutcome::WouldBlock { holder },
            Some(holder) => LockOutcome::Wedged { holder },
            None if p.locks.len() >= limit => return Err(Errno::EAGAIN),
            None => {
                p.locks.insert(lock, thread);
                LockOutcome::Acquired
            }
        };
        if let LockOutcome::Wedged { holder } = outcome {
            self.record(KernelEvent::LockWedged {
                pid,
                thread,
                lock,
                holder,
            });
        }
        Ok(outcome)
    }

    /// Releases `lock` in `pid`; EINVAL unless `thread` holds it.
    pub fn lock_release(&mut self, pid: Pid, thread: ThreadId, lock: LockId) -> Result<(), Errno> {
        let p = self.running_mut(pid)?;
        if p.locks.get(&lock) != Some(&thread) {
            return Err(Errno::EINVAL);
        }
        p.locks.remove(&lock);
        Ok(())
    }

    /// The thread recorded as holding `lock` in `pid`, alive or not.
    pub fn lock_holder(&self, pid: Pid, lock: LockId) -> Result<Option<ThreadId>, Errno> {
        Ok(self.process(pid)?.locks.get(&lock).copied())
    }

    /// Whether `lock` in `pid` is held by a thread that does not exist there.
    pub fn lock_wedged(&self, pid: Pid, lock: LockId) -> Result<bool, Errno> {
        let p = self.process(pid)?;
        Ok(p.locks
            .get(&lock)
            .is_some_and(|holder| !p.threads.contains(holder)))
    }

    /// The next thread id, without consuming it. EAGAIN once the id space is used up.
    pub(crate) fn peek_thread(&self) -> Result<ThreadId, Errno> {
        self.next_thread.checked_add(1).ok_or(Errno::EAGAIN)?;
        Ok(ThreadId(self.next_thread))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{KernelConfig, Signal};
    use super::*;

    #[test]
    fn a_lock_held_by_another_thread_at_fork_is_wedged_in_the_child() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let main = k.threads(root).unwrap()[0];
        let busy = k.spawn_thread(root).unwrap();
        let (stdout, own) = (LockId(1), LockId(2));
        assert_eq!(
            k.lock_acquire(root, busy, stdout),
            Ok(LockOutcome::Acquired)
        );
        assert_eq!(k.lock_acquire(root, main, own), Ok(LockOutcome::Acquired));
        assert_eq!(
            k.lock_acquire(root, main, stdout),
            Ok(LockOutcome::WouldBlock { holder: busy })
        );
        let child = k.fork(root, main).unwrap();
        assert_eq!(
            k.lock_acquire(child.pid, child.thread, stdout),
            Ok(LockOutcome::Wedged { holder: busy })
        );
        assert_eq!(k.lock_wedged(child.pid, stdout), Ok(true));
        // The forking thread's own lock survives as the child thread's.
        assert_eq!(k.lock_holder(child.pid, own), Ok(Some(child.thread)));
        assert_eq!(k.lock_release(child.pid, child.thread, own), Ok(()));
        // In the parent nothing is wedged: the holder is alive.
        assert_eq!(k.lock_wedged(root, stdout), Ok(false));
        assert!(
            k.log()
                .iter()
                .any(|e| matches!(e, KernelEvent::LockWedged { .. }))
        );
    }

    #[test]
    fn lock_misuse_is_typed_and_a_lock_held_by_an_exited_thread_wedges() {
        let config = KernelConfig {
            max_locks_per_process: 1,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let root = k.root();
        let main = k.threads(root).unwrap()[0];
        let worker = k.spawn_thread(root).unwrap();
        assert_eq!(
            k.lock_acquire(root, worker, LockId(1)),
            Ok(LockOutcome::Acquired)
        );
        assert_eq!(k.lock_acquire(root, worker, LockId(1)), Err(Errno::EINVAL));
        assert_eq!(k.lock_acquire(root, main, LockId(2)), Err(Errno::EAGAIN));
        assert_eq!(k.lock_release(root, main, LockId(1)), Err(Errno::EINVAL));
        assert_eq!(
            k.lock_acquire(root, ThreadId(99), LockId(1)),
            Err(Errno::ESRCH)
        );
        k.exit_thread(root, worker).unwrap();
        assert_eq!(
            k.lock_acquire(root, main, LockId(1)),
            Ok(LockOutcome::Wedged { holder: worker })
        );
    }

    #[test]
    fn thread_bounds_and_the_last_thread_exiting_ends_the_process() {
        let config = KernelConfig {
            max_threads_per_process: 2,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let root = k.root();
        let child = k.fork(root, k.threads(root).unwrap()[0]).unwrap();
        let second = k.spawn_thread(child.pid).unwrap();
        assert_eq!(k.spawn_thread(child.pid), Err(Errno::EAGAIN));
        k.exit_thread(child.pid, second).unwrap();
        assert_eq!(k.exit_thread(child.pid, second), Err(Errno::ESRCH));
        k.exit_thread(child.pid, child.thread).unwrap();
        let exited = super::super::ExitStatus::Exited(0);
        assert_eq!(k.process_state(child.pid), Some(ProcState::Zombie(exited)));
    }

    #[test]
    fn the_forking_threads_exit_fires_the_childs_parent_death_signal() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let server = k.spawn_thread(root).unwrap();
        let child = k.fork(root, server).unwrap();
        k.set_pdeathsig(child.pid, Some(Signal::Kill)).unwrap();
        k.exit_thread(root, server).unwrap();
        let killed = super::super::ExitStatus::Signaled(Signal::Kill);
        assert_eq!(k.process_state(child.pid), Some(ProcState::Zombie(killed)));
        assert_eq!(k.process_state(root), Some(ProcState::Running));
        // Nobody decided that death: the protocol must never let it happen (property 12).
        assert_eq!(
            k.violations(),
            [Violation::KilledByThreadExit {
                child: child.pid,
                parent: root,
                thread: server,
            }]
        );
    }

    #[test]
    fn the_last_threads_exit_is_the_process_death_the_signal_is_for() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let parent = k.fork(root, k.threads(root).unwrap()[0]).unwrap();
        let child = k.fork(parent.pid, parent.thread).unwrap();
        k.set_pdeathsig(child.pid, Some(Signal::Kill)).unwrap();
        k.exit_thread(parent.pid, parent.thread).unwrap();
        // The child died with its parent (init reaped it at once); nothing else runs.
        assert_eq!(k.live_processes(), vec![root]);
        assert!(k.violations().is_empty(), "{:?}", k.violations());
    }
}
