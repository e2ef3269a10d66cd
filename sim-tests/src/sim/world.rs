//! The state every simulated thread shares: the kernel plus what the simulator tracks.

use core::fmt::Write;
use std::string::String;
use std::vec::Vec;

use crate::kernel::{Kernel, KernelConfig, Pid, ProcessSerial, ThreadId};
use crate::platform::Platform;
use harrow_model::coverage::Coverage;
use harrow_model::flaw::Flaws;
use harrow_model::policy::Timeouts;

/// Something the environment does to the system under test, once its moment has come.
///
/// The root's operating system starts each action on a thread of its own at that moment;
/// the action then strikes at whatever point the scheduler picks. Nothing waits for the
/// moment, so no thread wakes on every change only to find it has not come yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnvAction {
    /// SIGKILL to the root's `n`-th launched child (if it is a process).
    KillChild(usize),
    /// SIGINT to the root, once it has a child and its handler.
    Interrupt,
    /// SIGKILL to the root, once it has a child.
    KillRoot,
    /// SIGINT to the root once its body serves until SIGINT: the user's Ctrl-C.
    InterruptWhenServing,
    /// The worker thread the root's spawns came from exits, once the root has launched
    /// this many children.
    RetireSpawningThread(usize),
}

/// What a simulation is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// The kernel's bounds.
    pub kernel: KernelConfig,
    /// Switched-on flaws.
    pub flaws: Flaws,
    /// The protocol's timeouts.
    pub timeouts: Timeouts,
    /// Whether child preludes arm the parent-death signal (`PR_SET_PDEATHSIG`, SIGKILL) and
    /// re-check their parent, as the real backend's do (`real/LINUX.md`, fact 4); off, an
    /// orphan has only the protocol's own defence, its self-cancel on parent EOF, as on a
    /// platform without it.
    pub parent_death_signal: bool,
    /// Lines of trace kept; later lines are counted, not kept.
    pub max_trace: usize,
}

/// The life of a thread child's context (its slot in the simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtxState {
    /// Its thread runs.
    Running,
    /// Its thread returned with this code; it awaits the join.
    Finished(i32),
    /// Abandoned: the thread may still run, so the context is leaked on purpose.
    Leaked,
    /// Freed: the slot may hold another thread child's context.
    Freed,
}

/// One thread child's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadCtx {
    /// Bumped each time the slot is reused.
    pub generation: u32,
    /// Where it is.
    pub state: CtxState,
    /// The thread that runs (or ran) the child.
    pub thread: crate::kernel::ThreadId,
}

/// A simulated process as its own threads name it: its pid, and the serial that tells it
/// from any later process on the same pid.
///
/// A simulated thread learns of its process's death only at its next system call, and by
/// then the pid may have been reaped and reused. Every call a simulated thread makes on
/// behalf of its process first checks [`SimWorld::runs`]: a dead process runs nothing, so a
/// late thread of it must never act on the stranger that holds its pid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimProcess {
    /// The pid it holds (or held).
    pub pid: Pid,
    /// Its serial, never reused.
    pub serial: ProcessSerial,
}

impl core::fmt::Display for SimProcess {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.pid)
    }
}

/// A supervising driver, named by where it runs: the process and the thread of its loop.
///
/// A process child's own nursery runs on its process's first thread; a thread child's, on
/// that thread, inside its parent's process.
pub type NurserySeat = (SimProcess, ThreadId);

/// A child some nursery launched, kept for property 11's subtree check: a supervisor tears
/// its subtree down before it exits (`sim/check.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NurseryChild {
    /// The nursery that launched it.
    pub nursery: NurserySeat,
    /// Its actor's name.
    pub name: String,
    /// Where the child's own nursery runs, if it opens one: its process and its first
    /// thread (a process child), or its parent's process and its own thread (a thread child).
    pub seat: NurserySeat,
    /// A thread child's context slot and generation; `None` for a process child.
    pub ctx: Option<(usize, u32)>,
}

/// Everything the simulated threads share.
#[derive(Debug)]
pub struct SimWorld {
    /// The kernel.
    pub kernel: Kernel,
    /// The root process.
    pub root: SimProcess,
    /// The configuration.
    pub config: SimConfig,
    /// Readable lines, one per system call or decision, for counterexamples.
    pub trace: Vec<String>,
    /// Trace lines not kept because of the bound.
    pub trace_dropped: usize,
    /// Properties the simulator saw broken (beyond the kernel's own violations).
    pub violations: Vec<String>,
    /// Thread children's contexts.
    pub contexts: Vec<ThreadCtx>,
    /// Thread children the root's nursery abandoned so far (its report must count them).
    pub abandoned: u32,
    /// Requests a child that dies in a later request answered first: their handlers returned
    /// (behaviour `CrashesInRequest`), so each must reach its caller (property 15).
    pub answered_before_crash: Vec<harrow_model::RequestId>,
    /// Platform threads started and not yet finished (the clock excluded).
    pub live_threads: u32,
    /// The scenario is over: abandoned threads and the clock may stop.
    pub over: bool,
    /// Statuses taken by a second reaper (flaw F5), by pid.
    pub stolen: Vec<(Pid, harrow_model::error::ExitStatus)>,
    /// The next free deadline slot.
    pub next_slot: u32,
    /// Children launched by the root, by spawn order, if they are processes (for faults that
    /// target one).
    pub launched: Vec<Option<SimProcess>>,
    /// Every child any nursery launched, in launch order.
    pub nursery_children: Vec<NurseryChild>,
    /// The root's process children the user hard-stopped: killed by decision, with no
    /// chance to tear their own nurseries down (property 11 excuses them).
    pub hard_stopped: Vec<Pid>,
    /// Fork-server processes started so far.
    pub servers: Vec<SimProcess>,
    /// The worker thread of the root's process that its body's spawn calls come from, until
    /// it exits (fault `SpawningThreadExits`).
    pub spawning_thread: Option<ThreadId>,
    /// Environment threads still running.
    pub env_threads: u32,
    /// Environment actions whose moment has not come yet.
    pub env_pending: Vec<EnvAction>,
    /// Set when every thread was asleep with no deadline pending: the trace shows the hang.
    pub hung: Option<String>,
    /// The root's SIGINT handler is installed.
    pub root_ready: bool,
    /// The root's body is serving until SIGINT.
    pub awaiting_sigint: bool,
    /// Helper processes an actor started outside harrow (detached; they end by themselves).
    pub helpers: Vec<SimProcess>,
    /// Bumped by every change to the world.
    pub epoch: u64,
    /// Threads asleep that have re-checked their wait condition since the last change.
    pub settled: u32,
}

impl SimWorld {
    /// A world with a fresh kernel.
    pub fn new(config: SimConfig) -> Self {
        let kernel =
            Kernel::new(config.kernel).expect("the kernel config leaves room for the root");
        let pid = kernel.root();
        let serial = kernel.serial_of(pid).expect("the root was just started");
        SimWorld {
            kernel,
            root: SimProcess { pid, serial },
            config,
            trace: Vec::new(),
            trace_dropped: 0,
            violations: Vec::new(),
            contexts: Vec::new(),
            abandoned: 0,
            answered_before_crash: Vec::new(),
            live_threads: 0,
            over: false,
            stolen: Vec::new(),
            next_slot: 1,
            launched: Vec::new(),
            nursery_children: Vec::new(),
            hard_stopped: Vec::new(),
            servers: Vec::new(),
            spawning_thread: None,
            env_threads: 0,
            env_pending: Vec::new(),
            hung: None,
            root_ready: false,
            awaiting_sigint: false,
            helpers: Vec::new(),
            epoch: 0,
            settled: 0,
        }
    }

    /// Appends one trace line, stamped with the time and the acting process.
    pub fn note(&mut self, who: Pid, what: core::fmt::Arguments<'_>) {
        if self.trace.len() >= self.config.max_trace {
            self.trace_dropped += 1;
            return;
        }
        let mut line = String::new();
        let _ = write!(
            line,
            "[{:>10}] {who:<7} {what}",
            format!("{}", self.kernel.now())
        );
        self.trace.push(line);
    }

    /// Records a broken property.
    pub fn violate(&mut self, what: String) {
        let who = self.kernel.root();
        self.note(who, format_args!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// A context for a thread child running on `thread`: a freed slot, reused under a new
    /// generation, or a new one. Returns its slot and generation.
    pub(crate) fn claim_context(&mut self, thread: crate::kernel::ThreadId) -> (usize, u32) {
        let running = |generation| ThreadCtx {
            generation,
            state: CtxState::Running,
            thread,
        };
        match self
            .contexts
            .iter()
            .position(|c| c.state == CtxState::Freed)
        {
            Some(i) => {
                let generation = self.contexts[i].generation + 1;
                self.contexts[i] = running(generation);
                (i, generation)
            }
            None => {
                self.contexts.push(running(0));
                (self.contexts.len() - 1, 0)
            }
        }
    }

    /// A fresh deadline slot.
    pub fn slot(&mut self) -> u32 {
        self.next_slot += 1;
        self.next_slot
    }

    /// Threads taking part besides the clock: the root's, the children's, the environment's.
    pub fn participants(&self) -> u32 {
        1 + self.live_threads + self.env_threads
    }

    /// Whether nothing can happen without time moving: every participant is asleep and has
    /// seen the latest change.
    pub fn quiescent(&self) -> bool {
        self.settled >= self.participants()
    }

    /// Whether the clock may have something to do: the end, or a deadline already due.
    pub(crate) fn clock_has_work(&self) -> bool {
        self.over
            || self
                .kernel
                .next_deadline()
                .is_some_and(|(at, _)| at <= self.kernel.now())
    }

    /// Records a change: every sleeper must re-check its condition before time may move.
    pub(crate) fn changed(&mut self) {
        self.epoch += 1;
        self.settled = 0;
    }

    /// Whether whichever process holds `pid` now is a running process of the system under
    /// test. Threads asking about their own process use [`SimWorld::runs`].
    pub fn alive(&self, pid: Pid) -> bool {
        self.kernel.process_state(pid) == Some(crate::kernel::ProcState::Running)
            && self.kernel.role(pid) == Ok(crate::kernel::Role::Ordinary)
    }

    /// Whether the exact process `p` still runs: alive, and still the holder of its pid.
    pub fn runs(&self, p: SimProcess) -> bool {
        self.alive(p.pid) && self.kernel.serial_of(p.pid) == Ok(p.serial)
    }

    /// The process holding `pid` now, as its threads will name it.
    pub fn process(&self, pid: Pid) -> Option<SimProcess> {
        let serial = self.kernel.serial_of(pid).ok()?;
        Some(SimProcess { pid, serial })
    }
}

/// The world behind the platform's lock, with the condition variable every wait uses.
pub struct Shared<P: Platform> {
    /// The world.
    pub world: P::Mutex<SimWorld>,
    /// Notified after every change to the world.
    pub cv: P::Condvar,
    /// Notified only when the clock may have work: everyone asleep, a deadline due, the end.
    pub clock_cv: P::Condvar,
    /// What the execution's supervisors and child runtimes covered, handed in as each one
    /// finishes. Behind a std mutex, outside the simulation: handing coverage in is no
    /// scheduling point for loom or shuttle and no change to the world, so it leaves every
    /// schedule (and the corpus's recorded ones) as it was.
    coverage: std::sync::Mutex<Coverage>,
    /// The nested nurseries whose teardown has begun, recorded by the actors that own them
    /// (property 11's subtree check excuses a supervisor killed while tearing down). Outside
    /// the simulation too, as the coverage is: an observation for the checks, no scheduling
    /// point.
    closing: std::sync::Mutex<Vec<NurserySeat>>,
}

impl<P: Platform> core::fmt::Debug for Shared<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Shared { .. }")
    }
}

impl<P: Platform> Shared<P> {
    /// A shared world.
    pub fn new(config: SimConfig) -> P::Arc<Self> {
        P::arc(Shared {
            world: P::mutex(SimWorld::new(config)),
            cv: P::condvar(),
            clock_cv: P::condvar(),
            coverage: std::sync::Mutex::default(),
            closing: std::sync::Mutex::default(),
        })
    }

    /// The nursery at `seat` begins its teardown.
    pub fn begin_closing(&self, seat: NurserySeat) {
        let mut closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        if !closing.contains(&seat) {
            closing.push(seat);
        }
    }

    /// Whether the nursery at `seat` has begun its teardown.
    pub fn is_closing(&self, seat: NurserySeat) -> bool {
        let closing = self.closing.lock().unwrap_or_else(|p| p.into_inner());
        closing.contains(&seat)
    }

    /// Adds what a supervisor or a child runtime covered to the execution's tally.
    pub fn hand_in(&self, coverage: &Coverage) {
        self.tally().merge(coverage);
    }

    /// Takes the execution's tally out.
    pub fn take_coverage(&self) -> Coverage {
        core::mem::take(&mut *self.tally())
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Coverage> {
        self.coverage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the locked world without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&SimWorld) -> R) -> R {
        let w = P::lock(&self.world);
        f(&w)
    }

    /// Runs `f` on the locked world, then wakes every waiter.
    pub fn with<R>(&self, f: impl FnOnce(&mut SimWorld) -> R) -> R {
        let mut w = P::lock(&self.world);
        let r = f(&mut w);
        w.changed();
        let clock = w.clock_has_work();
        drop(w);
        P::notify_all(&self.cv);
        if clock {
            P::notify_all(&self.clock_cv);
        }
        r
    }

    /// Blocks until `ready` returns `Some`, re-checking after every change to the world.
    ///
    /// `ready` must not change the world when it returns `None`. A waiter counts itself as
    /// settled once per change it has seen, so the clock knows when time may move.
    pub fn wait_for<R>(&self, mut ready: impl FnMut(&mut SimWorld) -> Option<R>) -> R {
        let mut w = P::lock(&self.world);
        let mut counted = None;
        loop {
            if let Some(r) = ready(&mut w) {
                w.changed();
                let clock = w.clock_has_work();
                drop(w);
                P::notify_all(&self.cv);
                if clock {
                    P::notify_all(&self.clock_cv);
                }
                return r;
            }
            if counted != Some(w.epoch) {
                counted = Some(w.epoch);
                w.settled += 1;
                if w.quiescent() {
                    // Only the clock can act now: wake it.
                    P::notify_all(&self.clock_cv);
                }
            }
            w = P::wait(&self.cv, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{ReapOutcome, Signal};

    #[test]
    fn a_process_that_was_reaped_does_not_run_on_the_stranger_that_reuses_its_pid() {
        let config = SimConfig {
            kernel: KernelConfig {
                bystander_on_reuse: false,
                ..KernelConfig::default()
            },
            flaws: Flaws::NONE,
            timeouts: harrow_model::policy::Timeouts::default(),
            parent_death_signal: true,
            max_trace: 0,
        };
        let mut w = SimWorld::new(config);
        let root = w.root;
        assert!(w.runs(root));
        let t = w.kernel.threads(root.pid).unwrap()[0];
        let first = w.kernel.fork(root.pid, t).unwrap();
        let old = w.process(first.pid).unwrap();
        assert!(w.runs(old));
        w.kernel.kill(root.pid, old.pid, Signal::Kill).unwrap();
        assert!(!w.runs(old), "a zombie runs nothing");
        assert!(matches!(
            w.kernel.waitpid(root.pid, old.pid),
            Ok(ReapOutcome::Reaped { .. })
        ));
        let second = w.kernel.fork(root.pid, t).unwrap();
        assert_eq!(second.pid, old.pid, "the pid is reused at once");
        let new = w.process(second.pid).unwrap();
        assert!(w.alive(old.pid), "the pid names a live process again");
        assert!(!w.runs(old), "but not the one that held it before");
        assert!(w.runs(new));
    }
}
