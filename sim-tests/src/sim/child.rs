//! The child side of the simulator: process and thread bodies, and what actors may do.

use std::vec::Vec;

use super::world::{CtxState, Shared, SimProcess};
use super::{ALLOC_LOCK, CHANNEL_FD};
use crate::kernel::{DeadlineOwner, Fd, LockId, LockOutcome, Pid, RecvOutcome, Signal, ThreadId};
use crate::platform::Platform;
use harrow_model::actor::Actor;
use harrow_model::child::ChildRuntime;
use harrow_model::child_loop::ChildLoop;
use harrow_model::driver::{BlockingChildOs, ChildEvent, ChildExit, ChildOs, drive_child};
use harrow_model::exit;
use harrow_model::time::Timestamp;
use harrow_model::wire::DEFAULT_MAX_FRAME;

/// The panic of a scripted actor whose behaviour is to panic, with its message.
///
/// Raised with `resume_unwind`, which calls no panic hook, so a scenario's panics print
/// nothing; [`SimChildOs::catch_panic`] catches this payload and nothing else.
#[derive(Debug)]
pub struct ScriptedPanic(pub std::string::String);

/// Makes the actor a simulated child runs; the scenario decides what it does.
pub trait ActorFactory<P: Platform>: Send + Sync + Sized + 'static {
    /// `Err(code)` if a child running `actor` dies with `code` during boot, before its handshake.
    fn boot(&self, actor: &str) -> Result<(), i32> {
        let _ = actor;
        Ok(())
    }
    /// The actor for a child starting in `env` to run `actor`.
    fn make(&self, env: SimEnv<P, Self>, actor: &str) -> Actor;
}

/// What a simulated actor can do to the simulated world.
pub struct SimEnv<P: Platform, F: ActorFactory<P>> {
    /// The shared world.
    pub shared: P::Arc<Shared<P>>,
    /// The factory, for actors that spawn children of their own.
    pub factory: P::Arc<F>,
    /// The process the actor runs in.
    pub process: SimProcess,
    /// The thread the actor runs on.
    pub thread: ThreadId,
    /// Whether it is a thread child (sharing its parent's process and locks).
    pub is_thread: bool,
    /// The lock a thread child's actor code holds ([`super::actor_lock`]).
    pub actor_lock: LockId,
    /// The thread-context slot and generation of a thread child.
    pub ctx: Option<(usize, u32)>,
}

impl<P: Platform, F: ActorFactory<P>> core::fmt::Debug for SimEnv<P, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SimEnv {{ pid: {}, thread: {} }}",
            self.process.pid, self.thread
        )
    }
}

impl<P: Platform, F: ActorFactory<P>> SimEnv<P, F> {
    /// The operating system of a nursery the actor opens: its own process and thread, seated
    /// as a thread child's or a process child's nursery.
    pub fn nursery_os(&self) -> super::SimOs<P, F> {
        let seat = if self.is_thread {
            super::Seat::Thread
        } else {
            super::Seat::Process
        };
        super::SimOs::new(
            self.shared.clone(),
            self.factory.clone(),
            self.process,
            self.thread,
            seat,
        )
    }

    /// The pid of the process the actor runs in.
    pub fn pid(&self) -> Pid {
        self.process.pid
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.shared.read(|w| w.kernel.now())
    }

    /// Whether the actor's process is alive (and, after the scenario, still wanted).
    pub fn alive(&self) -> bool {
        self.shared.read(|w| w.runs(self.process) && !w.over)
    }

    /// Blocks without yielding until `until` (forever if `None`); `false` if killed meanwhile.
    pub fn block(&self, until: Option<Timestamp>) -> bool {
        let me = self.process;
        let owner = self.shared.with(|w| {
            let owner = DeadlineOwner {
                pid: me.pid,
                slot: w.slot(),
            };
            if let (Some(at), true) = (until, w.runs(me)) {
                let _ = w.kernel.arm(owner, at);
            }
            w.note(me.pid, format_args!("actor stops yielding"));
            owner
        });
        self.shared.wait_for(|w| {
            if !w.runs(me) || w.over {
                return Some(false);
            }
            w.kernel.take_fired(owner).then_some(true)
        })
    }

    /// Starts a detached helper process that inherits every fd of the actor's process (its
    /// channel end included), sits in its own process group, and exits after `hold`.
    ///
    /// This is the classic `cmd &` that keeps a pipe open behind its parent's back: harrow
    /// does not own it and cannot kill it, so a reader waiting for that channel's end-of-file
    /// must bound its wait.
    pub fn spawn_helper(&self, hold: core::time::Duration) {
        if self.is_thread {
            return;
        }
        let (me, pid, thread) = (self.process, self.process.pid, self.thread);
        let started = self.shared.with(|w| {
            if !w.runs(me) {
                return None;
            }
            let helper = w.kernel.fork(pid, thread).ok()?;
            let _ = w.kernel.setpgid(helper.pid, helper.pid, helper.pid);
            let owner = DeadlineOwner {
                pid: helper.pid,
                slot: w.slot(),
            };
            let until = w.kernel.now() + hold;
            let _ = w.kernel.arm(owner, until);
            let helper_process = w.process(helper.pid)?;
            w.helpers.push(helper_process);
            w.live_threads += 1;
            w.note(
                pid,
                format_args!(
                    "actor starts detached helper {} holding its fds until {until}",
                    helper.pid
                ),
            );
            Some((helper_process, owner))
        });
        let Some((helper, owner)) = started else {
            return;
        };
        let shared = self.shared.clone();
        drop(P::spawn(move || {
            shared.wait_for(|w| {
                (w.over || !w.runs(helper) || w.kernel.take_fired(owner)).then_some(())
            });
            shared.with(|w| {
                if w.runs(helper) {
                    w.note(helper.pid, format_args!("helper exits"));
                    let _ = w.kernel.exit(helper.pid, 0);
                }
                w.live_threads -= 1;
            });
        }));
    }

    /// Writes `frame` on the process child's channel, behind its runtime's back (a thread
    /// child has no channel descriptor of its own, and writes nothing).
    pub fn send_raw(&self, frame: &[u8]) {
        if self.is_thread {
            return;
        }
        let (me, pid) = (self.process, self.process.pid);
        self.shared.with(|w| {
            if w.runs(me) && w.kernel.send(pid, CHANNEL_FD, frame).is_ok() {
                w.note(
                    pid,
                    format_args!("actor writes {} bytes on its channel itself", frame.len()),
                );
            }
        });
    }

    /// Closes the process child's end of its channel, behind its runtime's back (a thread
    /// child shares its parent's descriptors, and closes nothing).
    pub fn close_channel(&self) {
        if self.is_thread {
            return;
        }
        let (me, pid) = (self.process, self.process.pid);
        self.shared.with(|w| {
            if w.runs(me) && w.kernel.close(pid, CHANNEL_FD).is_ok() {
                w.note(pid, format_args!("actor closes its channel"));
            }
        });
    }

    /// Ends the actor's process with `code`, as a crash would (a thread child cannot).
    pub fn exit_process(&self, code: i32) {
        if self.is_thread {
            return;
        }
        let me = self.process;
        self.shared.with(|w| {
            if w.runs(me) {
                w.note(
                    me.pid,
                    format_args!("actor crashes: process exits with code {code}"),
                );
                let _ = w.kernel.exit(me.pid, code);
            }
        });
    }

    /// Runs `f` as actor code: a thread actor holds its actor lock and allocates meanwhile.
    pub fn actor_code<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.is_thread {
            self.acquire(self.actor_lock);
            self.acquire(ALLOC_LOCK);
            self.release(ALLOC_LOCK);
        }
        let r = f();
        if self.is_thread {
            self.release(self.actor_lock);
        }
        r
    }

    fn acquire(&self, lock: crate::kernel::LockId) {
        let me = self.process;
        self.shared.wait_for(|w| {
            if !w.runs(me) || w.over {
                return Some(());
            }
            match w.kernel.lock_acquire(me.pid, self.thread, lock) {
                Ok(LockOutcome::WouldBlock { .. }) => None,
                _ => Some(()),
            }
        });
    }

    fn release(&self, lock: crate::kernel::LockId) {
        let me = self.process;
        self.shared.with(|w| {
            if w.runs(me) {
                let _ = w.kernel.lock_release(me.pid, self.thread, lock);
            }
        });
    }
}

/// The child side of a channel in the simulator.
pub struct SimChildOs<P: Platform> {
    shared: P::Arc<Shared<P>>,
    process: SimProcess,
    fd: Fd,
    ctx: Option<(usize, u32)>,
    /// End-of-file was reported once; it is not reported again.
    eof_reported: bool,
}

impl<P: Platform> core::fmt::Debug for SimChildOs<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SimChildOs {{ pid: {}, fd: {} }}",
            self.process.pid, self.fd
        )
    }
}

impl<P: Platform> SimChildOs<P> {
    /// Checks that a thread child's context still belongs to it (property 4).
    fn touch(&self, w: &mut super::SimWorld) {
        let Some((slot, generation)) = self.ctx else {
            return;
        };
        let ctx = w.contexts[slot];
        if ctx.generation != generation || ctx.state == CtxState::Freed {
            w.violate(format!(
                "destroy race (property 4): the thread of context slot {slot} touched its \
                 context after it was destroyed{}",
                if ctx.generation != generation {
                    " and reused by another child"
                } else {
                    ""
                }
            ));
        }
    }
}

impl<P: Platform> ChildOs for SimChildOs<P> {
    fn send(&mut self, frame: &[u8]) {
        let (me, pid) = (self.process, self.process.pid);
        self.shared.with(|w| {
            self.touch(w);
            if !w.runs(me) {
                return;
            }
            match w.kernel.send(pid, self.fd, frame) {
                Ok(()) => w.note(
                    pid,
                    format_args!("child sends {} bytes to its parent", frame.len()),
                ),
                Err(e) => w.note(pid, format_args!("child send fails: {e}")),
            }
        });
    }

    fn poll(&mut self, out: &mut Vec<ChildEvent>) {
        if let Some(ev) = self.shared.with(|w| self.next_event(w)) {
            self.report(ev, out);
        }
    }

    fn alive(&mut self) -> bool {
        self.shared.read(|w| w.runs(self.process) && !w.over)
    }

    /// Catches only a scripted actor's own panic ([`ScriptedPanic`]): any other panic is the
    /// checker's own failure and goes on unwinding.
    fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, std::string::String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(code)).map_err(
            |payload| match payload.downcast::<ScriptedPanic>() {
                Ok(scripted) => scripted.0,
                Err(other) => std::panic::resume_unwind(other),
            },
        )
    }
}

impl<P: Platform> BlockingChildOs for SimChildOs<P> {
    fn wait(&mut self, out: &mut Vec<ChildEvent>) {
        let ev = self.shared.wait_for(|w| self.next_event(w));
        self.report(ev, out);
    }
}

impl<P: Platform> SimChildOs<P> {
    /// The next event for the child, if one is there now.
    fn next_event(&self, w: &mut super::SimWorld) -> Option<ChildEvent> {
        let (me, pid) = (self.process, self.process.pid);
        if !w.runs(me) || w.over {
            return Some(ChildEvent::Killed);
        }
        if self.eof_reported {
            return None;
        }
        match w.kernel.recv(pid, self.fd) {
            Ok(RecvOutcome::Data(bytes)) => Some(ChildEvent::Bytes(bytes)),
            Ok(RecvOutcome::Eof) | Err(_) => {
                w.note(pid, format_args!("child reads EOF from its parent"));
                Some(ChildEvent::Eof)
            }
            Ok(RecvOutcome::WouldBlock) => None,
        }
    }

    /// Hands `ev` to the child's loop, checking a thread child's context on the way.
    fn report(&mut self, ev: ChildEvent, out: &mut Vec<ChildEvent>) {
        if self.ctx.is_some() {
            self.shared.with(|w| self.touch(w));
        }
        self.eof_reported |= ev == ChildEvent::Eof;
        out.push(ev);
    }
}

/// How a simulated child starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChildStart {
    pub(crate) actor: std::string::String,
    pub(crate) process: SimProcess,
    pub(crate) thread: ThreadId,
    /// The process that forked it (a fork server, for `ForkServer`): its parent at birth.
    pub(crate) parent: Pid,
    pub(crate) fd: Fd,
    pub(crate) forked: bool,
    pub(crate) scrub: bool,
}

/// The body of a simulated child process: the prelude, then the child's event loop.
pub(crate) fn process_body<P: Platform, F: ActorFactory<P>>(
    shared: P::Arc<Shared<P>>,
    factory: P::Arc<F>,
    start: ChildStart,
) {
    let (me, pid, thread) = (start.process, start.process.pid, start.thread);
    let booted = shared.with(|w| prelude(w, &start));
    let crash = factory.boot(&start.actor).err();
    if let (true, Some(code)) = (booted, crash) {
        shared.with(|w| {
            if w.runs(me) {
                w.note(pid, format_args!("child dies during boot with code {code}"));
                let _ = w.kernel.exit(pid, code);
            }
        });
    } else if booted {
        let env = SimEnv {
            shared: shared.clone(),
            factory: factory.clone(),
            process: me,
            thread,
            is_thread: false,
            // A process's actor code runs alone in it and takes no lock.
            actor_lock: super::actor_lock(thread, harrow_model::flaw::Flaws::NONE),
            ctx: None,
        };
        let mut actor = factory.make(env, &start.actor);
        let mut os = SimChildOs::<P> {
            shared: shared.clone(),
            process: me,
            fd: CHANNEL_FD,
            ctx: None,
            eof_reported: false,
        };
        let flaws = shared.read(|w| w.config.flaws);
        let mut child = ChildLoop::new(ChildRuntime::new(pid.0, flaws, 64), DEFAULT_MAX_FRAME);
        let ended = drive_child(&mut os, &mut actor, &mut child);
        shared.hand_in(&child.runtime_mut().take_coverage());
        shared.with(|w| {
            if let ChildExit::Code(code) = ended
                && w.runs(me)
            {
                for problem in super::check::exited_with_subtree(w, (me, thread)) {
                    w.violate(problem);
                }
                w.note(pid, format_args!("child exits with code {code}"));
                let _ = w.kernel.exit(pid, code);
            }
        });
    } else {
        // Wedged before its handshake: it can do nothing until it is killed.
        shared.wait_for(|w| (!w.runs(me) || w.over).then_some(()));
    }
    shared.with(|w| w.live_threads -= 1);
}

/// The child's start-up, in the real backend's order (`real/LINUX.md`): channel to a fixed fd,
/// scrub, parent-death signal and parent re-check, own group; a forked child then allocates.
fn prelude(w: &mut super::SimWorld, start: &ChildStart) -> bool {
    if !w.runs(start.process) {
        return false;
    }
    let s = Prelude {
        pid: start.process.pid,
        thread: start.thread,
        parent: start.parent,
        fd: start.fd,
        forked: start.forked,
        scrub: start.scrub,
    };
    if s.fd != CHANNEL_FD {
        let _ = w.kernel.dup2(s.pid, s.fd, CHANNEL_FD);
        let _ = w.kernel.close(s.pid, s.fd);
    }
    if s.forked && s.scrub {
        let _ = w.kernel.close_all_except(s.pid, &[CHANNEL_FD]);
    }
    if w.config.parent_death_signal && !arm_death_signal(w, &s) {
        return false;
    }
    let _ = w.kernel.setpgid(s.pid, s.pid, s.pid);
    let fds = w.kernel.fds(s.pid).unwrap_or_default();
    w.note(s.pid, format_args!("child prelude done; open fds {fds:?}"));
    if !s.forked {
        return true;
    }
    match w.kernel.lock_acquire(s.pid, s.thread, ALLOC_LOCK) {
        Ok(LockOutcome::Wedged { holder }) => {
            w.violate(format!(
                "fork from a busy process (property 7): {} wedged before its handshake on the \
                 allocator lock, held at fork time by {holder}, a thread that does not exist \
                 in the child",
                s.pid
            ));
            false
        }
        _ => {
            let _ = w.kernel.lock_release(s.pid, s.thread, ALLOC_LOCK);
            true
        }
    }
}

/// What the prelude needs, once its process is known to run.
struct Prelude {
    pid: Pid,
    thread: ThreadId,
    parent: Pid,
    fd: Fd,
    forked: bool,
    scrub: bool,
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then the parent re-check: a parent that died before the
/// signal was armed has already handed the child to init, and the child leaves at once.
/// `false` if it left.
fn arm_death_signal(w: &mut super::SimWorld, s: &Prelude) -> bool {
    let _ = w.kernel.set_pdeathsig(s.pid, Some(Signal::Kill));
    if w.kernel.getppid(s.pid) == Ok(s.parent) {
        return true;
    }
    w.note(
        s.pid,
        format_args!("child prelude: its parent {} is gone; it exits", s.parent),
    );
    let _ = w.kernel.exit(s.pid, exit::prelude::PARENT_GONE);
    false
}

/// How a simulated thread child starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ThreadStart {
    pub(crate) actor: std::string::String,
    /// The process the thread runs in: its parent's.
    pub(crate) process: SimProcess,
    pub(crate) thread: ThreadId,
    pub(crate) fd: Fd,
    pub(crate) ctx: (usize, u32),
    /// The thread's own copy of its parent driver's wake pipe write end; it closes it last.
    pub(crate) wake: Option<Fd>,
    pub(crate) actor_lock: LockId,
}

/// The body of a thread child: the child's event loop on a thread of its parent's process.
pub(crate) fn thread_body<P: Platform, F: ActorFactory<P>>(
    shared: P::Arc<Shared<P>>,
    factory: P::Arc<F>,
    start: ThreadStart,
) -> i32 {
    let ThreadStart {
        actor: name,
        process,
        thread,
        fd,
        ctx,
        wake,
        actor_lock,
    } = start;
    let pid = process.pid;
    let env = SimEnv {
        shared: shared.clone(),
        factory: factory.clone(),
        process,
        thread,
        is_thread: true,
        actor_lock,
        ctx: Some(ctx),
    };
    let mut os = SimChildOs::<P> {
        shared: shared.clone(),
        process,
        fd,
        ctx: Some(ctx),
        eof_reported: false,
    };
    let code = match factory.boot(&name) {
        Err(code) => code,
        Ok(()) => {
            let mut actor = factory.make(env, &name);
            let flaws = shared.read(|w| w.config.flaws);
            let mut child = ChildLoop::new(ChildRuntime::new(0, flaws, 64), DEFAULT_MAX_FRAME);
            let ended = drive_child(&mut os, &mut actor, &mut child);
            shared.hand_in(&child.runtime_mut().take_coverage());
            match ended {
                ChildExit::Code(c) => c,
                ChildExit::Killed => exit::KILLED,
            }
        }
    };
    shared.with(|w| {
        os.touch(w);
        let runs = w.runs(process);
        if runs {
            let _ = w.kernel.close(pid, fd);
            let _ = w.kernel.exit_thread(pid, thread);
        }
        let (slot, generation) = ctx;
        let c = &mut w.contexts[slot];
        if c.generation == generation && c.state == CtxState::Running {
            c.state = CtxState::Finished(code);
        }
        // Wake the parent's loop; a full pipe drops the byte, the flag above stays set.
        if let (Some(fd), true) = (wake, runs && w.runs(process)) {
            let _ = w.kernel.write_nonblocking(pid, fd);
            let _ = w.kernel.close(pid, fd);
        }
        w.note(pid, format_args!("thread child returns with code {code}"));
        w.live_threads -= 1;
    });
    code
}
