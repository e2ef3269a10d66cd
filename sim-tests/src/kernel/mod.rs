//! The simulated kernel: a pure, deterministic model of the parts of Linux the protocol
//! leans on, precise enough that the real bugs are reachable in it.
//!
//! No IO, no clock reads, no threads, no randomness: a [`Kernel`] is plain data, and every
//! call is a function of its state and arguments. It can be cloned, compared and hashed
//! whole, which is what an explicit-state search needs; `SimOs` wraps it in a mutex so
//! that threads under loom or shuttle can call it.
//!
//! What it models, and the bug each part makes reachable:
//! - processes with threads and one fd table each, copied whole by [`Kernel::fork`]:
//!   a reader sees EOF only when every copy of the peer end, in every process, is closed
//!   (lost EOF);
//! - process-local locks copied by fork with their holders, who do not exist in the child
//!   (fork from a busy process);
//! - pids from a small pool, reused at once after a reap, with an innocent bystander on
//!   the reused pid; pidfds that name the exact process and answer ESRCH once it is
//!   reaped (kill or reap by pid);
//! - kill, killpg, process groups, exactly-once reaping, parent-death signals;
//! - a SIGINT handler writing to a tiny self-pipe that drops bytes when full (lost wakeups);
//! - a virtual clock with named deadlines.
//!
//! Calling contract: every call names the calling process (and thread, where Linux would
//! care) and returns `Err(Errno)` for misuse; no input sequence panics. Every table has a
//! bound from [`KernelConfig`], and hitting it is an error, never a panic. Blocking calls
//! do not exist: a caller that would block asks [`Kernel::readable`] or gets `WouldBlock`,
//! and it is up to the engine to decide what waiting means.

mod channel;
mod clock;
mod error;
mod event;
mod fd;
mod ids;
mod pidfd;
mod process;
mod reap;
#[cfg(test)]
mod sequences;
mod signal;
mod thread;

use std::collections::BTreeMap;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

pub use channel::{RecvOutcome, Shutdown};
pub use clock::{Clock, DeadlineOwner};
pub use error::{Errno, Violation};
pub use event::{EventLog, KernelEvent};
pub use fd::{FdInfo, FdKind};
pub use ids::{Fd, LockId, ObjectId, Pid, ProcessSerial, ThreadId};
pub use process::{ProcState, Role, Spawned};
pub use reap::ReapOutcome;
pub use signal::{ExitStatus, Signal, SignalOutcome, SignalVia};
pub use thread::LockOutcome;

use fd::Object;
use process::Process;

/// The bounds and switches of a simulated kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KernelConfig {
    /// How many pids there are besides init's: pids `2 .. 2 + pid_pool`. Small, so reuse
    /// is immediate; the root process and the bystander take one each.
    pub pid_pool: u32,
    /// The fd limit per process (like `RLIMIT_NOFILE`): fd numbers stay below it.
    pub max_fds_per_process: u32,
    /// The most threads one process may have at once.
    pub max_threads_per_process: usize,
    /// The most locks one process may hold at once.
    pub max_locks_per_process: usize,
    /// The most messages queued towards one socket end.
    pub channel_capacity: usize,
    /// The largest message a socket end accepts, in bytes.
    pub max_message_bytes: usize,
    /// Whether an innocent bystander takes the first pid freed by a reap.
    pub bystander_on_reuse: bool,
    /// The most deadlines armed or fired-but-not-taken at once.
    pub max_deadlines: usize,
    /// The most events the log keeps (0 keeps none, which a search that records its own
    /// path may prefer).
    pub max_log: usize,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            pid_pool: 16,
            max_fds_per_process: 64,
            max_threads_per_process: 16,
            max_locks_per_process: 16,
            channel_capacity: 64,
            max_message_bytes: 64 * 1024,
            bystander_on_reuse: true,
            max_deadlines: 256,
            max_log: 4096,
        }
    }
}

/// The whole simulated kernel: processes, objects, clock, violations and the event log.
///
/// Equality and hashing cover the state but not the event log (see [`EventLog`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kernel {
    config: KernelConfig,
    root: Pid,
    /// Running and zombie processes, by the pid they hold; reaped ones are gone.
    processes: BTreeMap<Pid, Process>,
    objects: BTreeMap<ObjectId, Object>,
    clock: Clock,
    next_serial: u64,
    next_object: u64,
    next_thread: u32,
    violations: Vec<Violation>,
    violations_dropped: u64,
    log: EventLog,
}

impl Kernel {
    /// A kernel with init (pid 1) and a root process (the first pool pid, a child of init
    /// with one thread, leading its own process group). EAGAIN if the pid pool is empty.
    pub fn new(config: KernelConfig) -> Result<Kernel, Errno> {
        let init = Process::new(ProcessSerial(0), Pid::KERNEL, Pid::INIT, Role::Init);
        let mut kernel = Kernel {
            config,
            root: Pid::INIT,
            processes: BTreeMap::from([(Pid::INIT, init)]),
            objects: BTreeMap::new(),
            clock: Clock::new(config.max_deadlines),
            next_serial: 1,
            next_object: 0,
            next_thread: 1,
            violations: Vec::new(),
            violations_dropped: 0,
            log: EventLog::new(config.max_log),
        };
        kernel.root = kernel.start_root()?;
        Ok(kernel)
    }

    /// The configuration this kernel runs with.
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    /// The root process created by [`Kernel::new`].
    pub fn root(&self) -> Pid {
        self.root
    }

    /// The state of whichever process holds `pid` now; `None` if the pid is free.
    pub fn process_state(&self, pid: Pid) -> Option<ProcState> {
        self.processes.get(&pid).map(|p| p.state)
    }

    /// The state of the exact process `serial`; `None` if no such process ever existed.
    pub fn serial_state(&self, serial: ProcessSerial) -> Option<ProcState> {
        if let Some(p) = self.processes.values().find(|p| p.serial == serial) {
            return Some(p.state);
        }
        (serial.0 < self.next_serial).then_some(ProcState::Reaped)
    }

    /// The serial of the process holding `pid` now.
    pub fn serial_of(&self, pid: Pid) -> Result<ProcessSerial, Errno> {
        Ok(self.process(pid)?.serial)
    }

    /// The role of the process holding `pid` now.
    pub fn role(&self, pid: Pid) -> Result<Role, Errno> {
        Ok(self.process(pid)?.role)
    }

    /// The children (running or zombie) of `pid`, in pid order.
    pub fn children(&self, pid: Pid) -> Vec<Pid> {
        self.processes
            .iter()
            .filter(|(_, p)| p.parent == pid)
            .map(|(c, _)| *c)
            .collect()
    }

    /// Running processes of the system under test: neither init nor the bystander.
    pub fn live_processes(&self) -> Vec<Pid> {
        self.pids_where(|p| p.state == ProcState::Running && p.role == Role::Ordinary)
    }

    /// Processes that died and are not yet reaped.
    pub fn zombies(&self) -> Vec<Pid> {
        self.pids_where(|p| matches!(p.state, ProcState::Zombie(_)))
    }

    /// The pid of the live bystander, if one is running.
    pub fn bystander(&self) -> Option<Pid> {
        self.pids_where(|p| p.role == Role::Bystander)
            .first()
            .copied()
    }

    /// The violations observed so far (the first 64 of them).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// How many violations were observed beyond those kept.
    pub fn violations_dropped(&self) -> u64 {
        self.violations_dropped
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Appends to the event log.
    pub(crate) fn record(&mut self, event: KernelEvent) {
        self.log.push(event);
    }

    /// The live (running or zombie) process holding `pid`. ESRCH if none.
    pub(crate) fn process(&self, pid: Pid) -> Result<&Process, Errno> {
        self.processes.get(&pid).ok_or(Errno::ESRCH)
    }

    /// The running process holding `pid`: only those can make calls. ESRCH otherwise.
    pub(crate) fn running(&self, pid: Pid) -> Result<&Process, Errno> {
        let p = self.process(pid)?;
        if p.state == ProcState::Running {
            Ok(p)
        } else {
            Err(Errno::ESRCH)
        }
    }

    /// The running process holding `pid`, for changing it. ESRCH otherwise.
    pub(crate) fn running_mut(&mut self, pid: Pid) -> Result<&mut Process, Errno> {
        let p = self.processes.get_mut(&pid).ok_or(Errno::ESRCH)?;
        if p.state == ProcState::Running {
            Ok(p)
        } else {
            Err(Errno::ESRCH)
        }
    }

    /// The pids of the pool, lowest first.
    pub(crate) fn pool(&self) -> impl Iterator<Item = Pid> + use<> {
        (2..2u32.saturating_add(self.config.pid_pool)).map(Pid)
    }

    /// Whether `pid` belongs to the pool.
    pub(crate) fn in_pool(&self, pid: Pid) -> bool {
        pid.0 >= 2 && pid.0 - 2 < self.config.pid_pool
    }

    /// Whether some process holds `pid` as its pid or its process group.
    pub(crate) fn pid_in_use(&self, pid: Pid) -> bool {
        self.processes.contains_key(&pid) || self.processes.values().any(|p| p.pgid == pid)
    }

    fn pids_where(&self, keep: impl Fn(&Process) -> bool) -> Vec<Pid> {
        self.processes
            .iter()
            .filter(|(_, p)| keep(p))
            .map(|(pid, _)| *pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use core::hash::{Hash, Hasher};
    use std::collections::hash_map::DefaultHasher;
    use std::vec;

    use super::*;

    fn hash(k: &Kernel) -> u64 {
        let mut h = DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn kernels_clone_compare_and_hash_as_state() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let copy = k.clone();
        assert_eq!(copy, k);
        assert_eq!(hash(&copy), hash(&k));
        k.socketpair(root).unwrap();
        assert_ne!(copy, k);
        assert_ne!(hash(&copy), hash(&k));

        // The log is history: two paths to the same state are the same state.
        let mut a = copy.clone();
        let owner = DeadlineOwner { pid: root, slot: 0 };
        a.arm(owner, harrow_model::time::Timestamp::from_millis(1))
            .unwrap();
        a.disarm(owner);
        a.spawn_thread(root).unwrap();
        let mut b = copy.clone();
        b.spawn_thread(root).unwrap();
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn a_new_kernel_has_init_and_a_root() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        assert_eq!(k.root(), Pid(2));
        assert_eq!(k.role(Pid::INIT), Ok(Role::Init));
        assert_eq!(k.getppid(k.root()), Ok(Pid::INIT));
        assert_eq!(k.live_processes(), vec![Pid(2)]);
        assert_eq!(k.threads(k.root()).map(|t| t.len()), Ok(1));
        assert_eq!(k.exit_thread(Pid::INIT, ThreadId(0)), Err(Errno::ESRCH));
        assert_eq!(k.exit(Pid::INIT, 0), Err(Errno::EINVAL));
        let empty = KernelConfig {
            pid_pool: 0,
            ..KernelConfig::default()
        };
        assert_eq!(Kernel::new(empty), Err(Errno::EAGAIN));
    }

    #[test]
    fn calls_from_dead_or_unknown_processes_are_esrch() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        let child = k.fork(root, t).unwrap();
        k.exit(child.pid, 0).unwrap();
        assert_eq!(k.socketpair(child.pid), Err(Errno::ESRCH));
        assert_eq!(k.fork(child.pid, child.thread), Err(Errno::ESRCH));
        assert_eq!(k.kill(child.pid, root, Signal::Kill), Err(Errno::ESRCH));
        assert_eq!(k.exit(child.pid, 1), Err(Errno::ESRCH));
        assert_eq!(k.socketpair(Pid(40)), Err(Errno::ESRCH));
        assert_eq!(k.kill(root, Pid(40), Signal::Kill), Err(Errno::ESRCH));
        assert_eq!(k.fds(child.pid), Ok(vec![]));
    }
}
