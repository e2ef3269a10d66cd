//! Processes: creation by fork or spawn-and-exec, pid allocation, process groups, and death
//! with everything it sets off (fds closed, children orphaned, parent-death signals).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::Errno;
use super::event::KernelEvent;
use super::ids::{Fd, LockId, ObjectId, Pid, ProcessSerial, ThreadId};
use super::signal::{ExitStatus, Signal, SignalVia};

/// Where a process is in its life.
///
/// ```text
/// Running --exit / fatal signal--> Zombie(status) --reap (exactly once)--> Reaped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProcState {
    /// Alive: it has threads and an fd table.
    Running,
    /// Dead but not yet reaped: it still holds its pid (and pgid); its fds are closed.
    Zombie(ExitStatus),
    /// Reaped: its pid is free for reuse; only a pidfd still names it.
    Reaped,
}

/// What part a process plays in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Pid 1: never exits, ignores signals, reaps every zombie reparented to it.
    Init,
    /// An innocent process started on a reused pid: any signal it receives is a violation.
    Bystander,
    /// A process of the system under test.
    Ordinary,
}

/// A process just created by [`Kernel::fork`] or [`Kernel::spawn_exec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spawned {
    /// The child's pid.
    pub pid: Pid,
    /// The child's single thread.
    pub thread: ThreadId,
}

/// One process's kernel-side state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Process {
    pub(crate) serial: ProcessSerial,
    pub(crate) parent: Pid,
    pub(crate) pgid: Pid,
    pub(crate) state: ProcState,
    pub(crate) role: Role,
    /// The parent's thread that created this process: its exit fires the parent-death
    /// signal, as on Linux (the signal follows the creating thread, not the process).
    pub(crate) creator_thread: Option<ThreadId>,
    pub(crate) fds: BTreeMap<Fd, ObjectId>,
    pub(crate) threads: BTreeSet<ThreadId>,
    /// Held locks only. A holder that is not in `threads` is gone for good: the lock is
    /// wedged (inherited across fork, or its holder exited).
    pub(crate) locks: BTreeMap<LockId, ThreadId>,
    pub(crate) pdeathsig: Option<Signal>,
    pub(crate) sigint_wake: Option<Fd>,
    pub(crate) sigint_pending: bool,
}

impl Process {
    /// A running process with no fds, no locks and default signal dispositions.
    pub(crate) fn new(serial: ProcessSerial, parent: Pid, pgid: Pid, role: Role) -> Self {
        Process {
            serial,
            parent,
            pgid,
            state: ProcState::Running,
            role,
            creator_thread: None,
            fds: BTreeMap::new(),
            threads: BTreeSet::new(),
            locks: BTreeMap::new(),
            pdeathsig: None,
            sigint_wake: None,
            sigint_pending: false,
        }
    }
}

/// The ids a new process needs, reserved without changing the kernel so that a failure
/// part-way leaves no trace.
struct Reservation {
    pid: Pid,
    serial: ProcessSerial,
    thread: ThreadId,
}

impl Kernel {
    /// `fork()` by `thread` of `parent`: the child gets a copy of the whole fd table and of
    /// the lock table, but only the forking thread survives in it (under a fresh id).
    ///
    /// Locks held by other threads stay held in the child by threads that do not exist
    /// there, so acquiring them reports [`super::LockOutcome::Wedged`]. The parent-death
    /// signal is cleared; the SIGINT handler and its pending flag are inherited.
    pub fn fork(&mut self, parent: Pid, thread: ThreadId) -> Result<Spawned, Errno> {
        let p = self.running(parent)?;
        if !p.threads.contains(&thread) {
            return Err(Errno::ESRCH);
        }
        let mut child = p.clone();
        let r = self.reserve_process()?;
        for holder in child.locks.values_mut() {
            if *holder == thread {
                *holder = r.thread;
            }
        }
        child.serial = r.serial;
        child.parent = parent;
        child.state = ProcState::Running;
        child.role = Role::Ordinary;
        child.creator_thread = Some(thread);
        child.threads = BTreeSet::from([r.thread]);
        child.pdeathsig = None;
        self.commit_process(&r, child);
        self.record(KernelEvent::Forked {
            parent,
            thread,
            child: r.pid,
        });
        Ok(Spawned {
            pid: r.pid,
            thread: r.thread,
        })
    }

    /// Spawns a child of `parent` that execs at once (posix_spawn): its fd table holds only
    /// `keep` (at the same numbers), since exec closes every close-on-exec fd.
    pub fn spawn_exec(
        &mut self,
        parent: Pid,
        thread: ThreadId,
        keep: &[Fd],
    ) -> Result<Spawned, Errno> {
        let p = self.running(parent)?;
        if !p.threads.contains(&thread) {
            return Err(Errno::ESRCH);
        }
        let mut fds = BTreeMap::new();
        for fd in keep {
            fds.insert(*fd, *p.fds.get(fd).ok_or(Errno::EBADF)?);
        }
        let pgid = p.pgid;
        let r = self.reserve_process()?;
        let mut child = Process::new(r.serial, parent, pgid, Role::Ordinary);
        child.creator_thread = Some(thread);
        child.fds = fds;
        child.threads.insert(r.thread);
        self.commit_process(&r, child);
        let kept = keep.to_vec();
        self.record(KernelEvent::SpawnedExec {
            parent,
            child: r.pid,
            kept,
        });
        Ok(Spawned {
            pid: r.pid,
            thread: r.thread,
        })
    }

    /// `_exit(code)` of the whole process `pid`, init excepted (EINVAL).
    ///
    /// It becomes a zombie; all its fds are closed (peers may now see EOF), its threads and
    /// deadlines end, its children go to init (which reaps the zombies among them at once)
    /// and those with a parent-death signal receive it, dying in turn. If its parent is
    /// init it is reaped at once.
    pub fn exit(&mut self, pid: Pid, code: i32) -> Result<(), Errno> {
        if self.running(pid)?.role == Role::Init {
            return Err(Errno::EINVAL);
        }
        self.terminate(vec![(pid, ExitStatus::Exited(code))]);
        Ok(())
    }

    /// `setpgid(target, pgid)` called by `caller`, which must be `target` or its parent.
    ///
    /// `pgid` must be `target` itself (a new group) or an existing group.
    pub fn setpgid(&mut self, caller: Pid, target: Pid, pgid: Pid) -> Result<(), Errno> {
        self.running(caller)?;
        let t = self.running(target)?;
        if target != caller && t.parent != caller {
            return Err(Errno::ESRCH);
        }
        if pgid != target && !self.processes.values().any(|p| p.pgid == pgid) {
            return Err(Errno::EINVAL);
        }
        self.running_mut(target)?.pgid = pgid;
        Ok(())
    }

    /// The parent pid of `pid` (init after its parent died).
    pub fn getppid(&self, pid: Pid) -> Result<Pid, Errno> {
        Ok(self.process(pid)?.parent)
    }

    /// The thread of its parent that created `pid`, whose exit fires its parent-death signal;
    /// `None` once it was reparented (or for init and the root).
    pub fn creator_thread(&self, pid: Pid) -> Result<Option<ThreadId>, Errno> {
        Ok(self.process(pid)?.creator_thread)
    }

    /// The process group of `pid`.
    pub fn pgid(&self, pid: Pid) -> Result<Pid, Errno> {
        Ok(self.process(pid)?.pgid)
    }

    /// Kills each `(pid, status)` and everything that follows from it, until nothing more
    /// dies: a worklist rather than recursion, so a deep tree cannot overflow the stack.
    ///
    /// A death closes all the process's fds (peers may now see EOF), ends its threads and
    /// timers, reparents its children to init (which reaps the zombies among them at once)
    /// and sends each running child its parent-death signal. A dead child of init is
    /// reaped at once.
    pub(crate) fn terminate(&mut self, deaths: Vec<(Pid, ExitStatus)>) {
        let mut dying: VecDeque<(Pid, ExitStatus)> = deaths.into();
        while let Some((pid, status)) = dying.pop_front() {
            let Some(parent) = self.become_zombie(pid, status) else {
                continue;
            };
            for (child, signal) in self.orphan_children(pid) {
                if let Some(st) = self.deliver(pid, child, signal, SignalVia::ParentDeath) {
                    dying.push_back((child, st));
                }
            }
            if parent == Pid::INIT {
                self.reap_by(Pid::INIT, pid);
            }
        }
    }

    /// Turns a running, non-init process into a zombie; returns its parent, or `None` if
    /// it was not running.
    fn become_zombie(&mut self, pid: Pid, status: ExitStatus) -> Option<Pid> {
        let p = self.processes.get_mut(&pid)?;
        if p.state != ProcState::Running || p.role == Role::Init {
            return None;
        }
        p.state = ProcState::Zombie(status);
        let fds = core::mem::take(&mut p.fds);
        p.threads.clear();
        p.locks.clear();
        p.sigint_wake = None;
        p.sigint_pending = false;
        p.pdeathsig = None;
        let parent = p.parent;
        self.clock.forget_pid(pid);
        self.record(KernelEvent::Exited { pid, status });
        for (fd, object) in fds {
            self.release_if_unreferenced(pid, fd, object);
        }
        Some(parent)
    }

    /// Reparents `parent`'s children to init, reaping the zombies among them; returns the
    /// running ones that asked for a parent-death signal.
    fn orphan_children(&mut self, parent: Pid) -> Vec<(Pid, Signal)> {
        let children = self.children(parent);
        let mut to_signal = Vec::new();
        for child in children {
            let Some(c) = self.processes.get_mut(&child) else {
                continue;
            };
            c.parent = Pid::INIT;
            c.creator_thread = None;
            let (state, pdeathsig) = (c.state, c.pdeathsig);
            self.record(KernelEvent::Reparented {
                pid: child,
                old_parent: parent,
            });
            match (state, pdeathsig) {
                (ProcState::Zombie(_), _) => {
                    self.reap_by(Pid::INIT, child);
                }
                (ProcState::Running, Some(signal)) => to_signal.push((child, signal)),
                _ => {}
            }
        }
        to_signal
    }

    /// The lowest pool pid that no process holds as its pid or its process group.
    fn free_pid(&self) -> Result<Pid, Errno> {
        self.pool()
            .find(|pid| !self.pid_in_use(*pid))
            .ok_or(Errno::EAGAIN)
    }

    /// Reserves a pid, a serial and a thread id for a new process.
    fn reserve_process(&self) -> Result<Reservation, Errno> {
        let pid = self.free_pid()?;
        let serial = ProcessSerial(self.next_serial);
        self.next_serial.checked_add(1).ok_or(Errno::EAGAIN)?;
        let thread = self.peek_thread()?;
        Ok(Reservation {
            pid,
            serial,
            thread,
        })
    }

    /// Inserts a process built from a [`Reservation`], consuming its ids.
    fn commit_process(&mut self, r: &Reservation, process: Process) {
        self.next_serial = r.serial.0.saturating_add(1);
        self.next_thread = r.thread.0.saturating_add(1);
        self.processes.insert(r.pid, process);
    }

    /// Starts the innocent bystander on `pid` (a child of init that never exits by itself).
    pub(crate) fn start_bystander(&mut self, pid: Pid) {
        let Some(next) = self.next_serial.checked_add(1) else {
            return;
        };
        let process = Process::new(
            ProcessSerial(self.next_serial),
            Pid::INIT,
            pid,
            Role::Bystander,
        );
        self.next_serial = next;
        self.processes.insert(pid, process);
        self.record(KernelEvent::BystanderStarted { pid });
    }

    /// Creates the root process: the first pool pid, a child of init, leading its own group.
    pub(crate) fn start_root(&mut self) -> Result<Pid, Errno> {
        let r = self.reserve_process()?;
        let mut root = Process::new(r.serial, Pid::INIT, r.pid, Role::Ordinary);
        root.threads.insert(r.thread);
        self.commit_process(&r, root);
        Ok(r.pid)
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::super::{KernelConfig, RecvOutcome};
    use super::*;

    fn kernel() -> (Kernel, Pid, ThreadId) {
        let k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        (k, root, t)
    }

    #[test]
    fn exit_closes_fds_reparents_children_and_fires_parent_death_signals() {
        let (mut k, root, t) = kernel();
        let mid = k.fork(root, t).unwrap();
        let (keep, lost) = k.socketpair(mid.pid).unwrap();
        let (zombie, orphan) = (
            k.fork(mid.pid, mid.thread).unwrap(),
            k.fork(mid.pid, mid.thread).unwrap(),
        );
        let doomed = k.fork(mid.pid, mid.thread).unwrap();
        k.set_pdeathsig(doomed.pid, Some(Signal::Kill)).unwrap();
        k.close_all_except(zombie.pid, &[]).unwrap();
        k.close_all_except(doomed.pid, &[]).unwrap();
        k.close_all_except(orphan.pid, &[keep]).unwrap();
        k.exit(zombie.pid, 3).unwrap();
        k.close(mid.pid, keep).unwrap();
        assert_eq!(k.recv(orphan.pid, keep), Ok(RecvOutcome::WouldBlock));

        k.exit(mid.pid, 0).unwrap();
        assert_eq!(k.fds(mid.pid), Ok(vec![]));
        assert!(k.fd_info(mid.pid, lost).is_err());
        // The orphan holds `keep`; its peer `lost` was held only by `mid`.
        assert_eq!(k.recv(orphan.pid, keep), Ok(RecvOutcome::Eof));
        assert_eq!(k.getppid(orphan.pid), Ok(Pid::INIT));
        assert_eq!(k.process_state(orphan.pid), Some(ProcState::Running));
        assert_eq!(
            k.serial_state(k_serial(&k, orphan.pid)),
            Some(ProcState::Running)
        );
        // The zombie child was reaped by init, the doomed one died of SIGKILL and was too.
        assert_ne!(k.role(zombie.pid), Ok(Role::Ordinary));
        assert_ne!(k.role(doomed.pid), Ok(Role::Ordinary));
        assert_eq!(
            k.process_state(mid.pid),
            Some(ProcState::Zombie(ExitStatus::Exited(0)))
        );
        assert_eq!(k.zombies(), vec![mid.pid]);
        assert_eq!(k.live_processes(), vec![root, orphan.pid]);
    }

    fn k_serial(k: &Kernel, pid: Pid) -> ProcessSerial {
        k.serial_of(pid).unwrap()
    }

    #[test]
    fn fork_copies_the_fd_table_clears_pdeathsig_and_keeps_the_group() {
        let (mut k, root, t) = kernel();
        let (a, b) = k.socketpair(root).unwrap();
        k.set_pdeathsig(root, Some(Signal::Kill)).unwrap();
        let child = k.fork(root, t).unwrap();
        assert_eq!(k.pdeathsig(root), Ok(Some(Signal::Kill)));
        assert_eq!(k.pdeathsig(child.pid), Ok(None));
        assert_eq!(k.fds(child.pid), Ok(vec![a, b]));
        assert_eq!(
            k.fd_info(child.pid, a).unwrap().object,
            k.fd_info(root, a).unwrap().object
        );
        assert_eq!(k.pgid(child.pid), Ok(root));
        assert_eq!(k.creator_thread(child.pid), Ok(Some(t)));
        assert_eq!(k.threads(child.pid), Ok(vec![child.thread]));
        assert_ne!(child.thread, t);
        k.exit(root, 0).unwrap();
        // The child's own pdeathsig was cleared by fork, so its parent's death spares it.
        assert_eq!(k.process_state(child.pid), Some(ProcState::Running));
    }

    #[test]
    fn spawn_exec_keeps_only_the_listed_fds() {
        let (mut k, root, t) = kernel();
        let (a, b) = k.socketpair(root).unwrap();
        let (r, _w) = k.pipe(root, 4).unwrap();
        let child = k.spawn_exec(root, t, &[b]).unwrap();
        assert_eq!(k.fds(child.pid), Ok(vec![b]));
        k.close(root, b).unwrap();
        assert_eq!(k.send(root, a, b"hi"), Ok(()));
        assert_eq!(k.recv(child.pid, b), Ok(RecvOutcome::Data(b"hi".to_vec())));
        assert_eq!(k.spawn_exec(root, t, &[Fd(40)]), Err(Errno::EBADF));
        assert_eq!(k.spawn_exec(root, ThreadId(999), &[r]), Err(Errno::ESRCH));
    }

    #[test]
    fn pid_pool_exhaustion_is_eagain_and_failed_forks_change_nothing() {
        let config = KernelConfig {
            pid_pool: 3,
            bystander_on_reuse: false,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        k.fork(root, t).unwrap();
        k.fork(root, t).unwrap();
        let before = k.clone();
        assert_eq!(k.fork(root, t), Err(Errno::EAGAIN));
        assert_eq!(k, before);
    }

    #[test]
    fn setpgid_is_limited_to_self_and_children() {
        let (mut k, root, t) = kernel();
        let child = k.fork(root, t).unwrap();
        let other = k.fork(root, t).unwrap();
        assert_eq!(
            k.setpgid(child.pid, other.pid, other.pid),
            Err(Errno::ESRCH)
        );
        assert_eq!(k.setpgid(root, child.pid, Pid(40)), Err(Errno::EINVAL));
        assert_eq!(k.setpgid(child.pid, child.pid, child.pid), Ok(()));
        assert_eq!(k.setpgid(root, other.pid, child.pid), Ok(()));
        assert_eq!(k.pgid(other.pid), Ok(child.pid));
    }
}
