//! The supervising side of the simulator: [`Os`] over the simulated kernel.

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use super::child::{ActorFactory, ChildStart, ThreadStart, process_body, thread_body};
use super::world::{CtxState, EnvAction, NurseryChild, Shared, SimProcess, SimWorld};
use super::{ACTOR_LOCK, DRIVER_SLOT, spawns_from_callers_thread};
use crate::kernel::{
    self, DeadlineOwner, Fd, Kernel, LockOutcome, Pid, ReapOutcome, RecvOutcome, Signal, ThreadId,
};
use crate::platform::Platform;
use harrow_model::channels::Channels;
use harrow_model::driver::{Os, OsEvent, WaitError};
use harrow_model::error::ExitStatus;
use harrow_model::flaw::Flaw;
use harrow_model::id::ChildId;
use harrow_model::method::{Situation, SpawnMethod};
use harrow_model::time::Timestamp;

/// What the simulator knows about one child of a supervising process.
struct Child<P: Platform> {
    pid: Pid,
    channel: Option<Fd>,
    pidfd: Option<Fd>,
    server_pidfd: Option<Fd>,
    thread: Option<P::JoinHandle<i32>>,
    ctx: Option<(usize, u32)>,
}

/// Where readiness was seen, consumed by a separate call (as after a real epoll_wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ready {
    Channel(ChildId),
    Exit(ChildId),
    Wake,
}

/// Where a supervising driver runs, which decides what it leaves behind when it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seat {
    /// The root's body: it installs the SIGINT handler, whose self-pipe the root keeps for life.
    Root,
    /// A child process's own nursery: the process exits once it is done, and the exit closes
    /// every fd at once.
    Process,
    /// A thread child's nursery, a second driver inside its parent's process: dropping it
    /// closes every fd it still holds there, as dropping harrow-real's `RealOs` does.
    Thread,
}

/// A supervising simulated process's operating system.
pub struct SimOs<P: Platform, F: ActorFactory<P>> {
    shared: P::Arc<Shared<P>>,
    factory: P::Arc<F>,
    /// The process this driver runs in; every call checks that it still runs.
    me: SimProcess,
    thread: ThreadId,
    children: BTreeMap<ChildId, Child<P>>,
    /// What may still be reported of each child: the rules `RealOs` follows too.
    reports: Channels,
    wake: Option<(Fd, Fd)>,
    fork_server: Option<(SimProcess, ThreadId)>,
    // Immutable for the whole run, or changed only while this thread sleeps: kept here so the
    // driver's frequent reads take no lock (each lock is a scheduling point for loom).
    flaws: harrow_model::flaw::Flaws,
    seat: Seat,
    /// The deadline slot this driver's waits arm.
    slot: u32,
    /// Protocol time as of this thread's last wake-up. Time only moves when every thread is
    /// asleep, so it cannot change while this one runs.
    now: Timestamp,
}

impl<P: Platform, F: ActorFactory<P>> core::fmt::Debug for SimOs<P, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SimOs {{ pid: {}, children: {} }}",
            self.me,
            self.children.len()
        )
    }
}

impl<P: Platform, F: ActorFactory<P>> SimOs<P, F> {
    /// The operating system of process `me`, whose driver runs on `thread` in `seat`.
    ///
    /// The root installs a SIGINT handler with a self-pipe; with flaw F5 a second reaper
    /// thread collects exited children behind the driver's back.
    pub fn new(
        shared: P::Arc<Shared<P>>,
        factory: P::Arc<F>,
        me: SimProcess,
        thread: ThreadId,
        seat: Seat,
    ) -> Self {
        let root = seat == Seat::Root;
        let (wake, second_reaper, slot) = shared.with(|w| {
            // One wake pipe per supervising driver, for SIGINT and thread-child exits alike.
            // Capacity one: a second wakeup before a drain is dropped, as on a full pipe.
            let wake = w.runs(me).then(|| w.kernel.pipe(me.pid, 1).ok()).flatten();
            if let (true, Some((_, wr))) = (root, wake) {
                w.root_ready = w.kernel.install_sigint_handler(me.pid, wr).is_ok();
            }
            let reaper = root && w.config.flaws.has(Flaw::KillAndReapByPid);
            if reaper {
                w.live_threads += 1;
            }
            // A thread child's driver shares its process with another: a deadline slot of
            // its own, so neither re-arms, disarms or takes the other's deadline.
            let slot = match seat {
                Seat::Thread => w.slot(),
                Seat::Root | Seat::Process => DRIVER_SLOT,
            };
            (wake, reaper, slot)
        });
        if second_reaper {
            let s = shared.clone();
            // Detached: it stops by itself when the scenario is over or the root dies.
            drop(P::spawn(move || second_reaper_body::<P>(s, me)));
        }
        let (flaws, now) = shared.read(|w| (w.config.flaws, w.kernel.now()));
        SimOs {
            shared,
            factory,
            me,
            thread,
            children: BTreeMap::new(),
            reports: Channels::new(),
            wake,
            fork_server: None,
            flaws,
            seat,
            slot,
            now,
        }
    }

    /// The user hard-stops `child`: the simulator excuses its subtree from property 11's
    /// check at its kill (it is killed by decision, before it could tear anything down).
    pub fn hard_stop_asked(&mut self, child: ChildId) {
        if let Some(c) = self.children.get(&child) {
            let pid = c.pid;
            self.shared.with(|w| w.hard_stopped.push(pid));
        }
    }

    /// Whether it still holds `child`: launched and not yet retired by its supervisor.
    pub fn holds(&self, child: ChildId) -> bool {
        self.children.contains_key(&child)
    }

    /// The body now serves until SIGINT: the user's Ctrl-C may come.
    pub fn serving_until_interrupt(&mut self) {
        self.shared.with(|w| w.awaiting_sigint = true);
        self.release_env();
    }

    /// Starts every environment action whose moment has come (the root's only).
    fn release_env(&self) {
        if self.seat != Seat::Root {
            return;
        }
        let due = self.shared.with(|w| {
            let ready = |a: &EnvAction| match *a {
                EnvAction::KillChild(n) => w.launched.len() > n,
                EnvAction::Interrupt => w.root_ready && !w.launched.is_empty(),
                EnvAction::KillRoot => !w.launched.is_empty(),
                EnvAction::InterruptWhenServing => w.awaiting_sigint,
                EnvAction::RetireSpawningThread(n) => w.launched.len() >= n,
            };
            let (due, rest): (Vec<EnvAction>, Vec<EnvAction>) =
                w.env_pending.iter().partition(|a| ready(a));
            w.env_pending = rest;
            w.env_threads += due.len() as u32;
            due
        });
        for action in due {
            let s = self.shared.clone();
            drop(P::spawn(move || env_strike::<P>(s, action)));
        }
    }

    /// The process this operating system belongs to.
    pub fn pid(&self) -> Pid {
        self.me.pid
    }

    /// The shared world.
    pub fn shared(&self) -> &P::Arc<Shared<P>> {
        &self.shared
    }

    fn flaw(&self, flaw: Flaw) -> bool {
        self.flaws.has(flaw)
    }

    /// The thread a launch is made from: the driver's own, which lives as long as the
    /// nursery, as harrow-real's spawner thread does. With flaw F16 on, the root's launches
    /// are made by the thread that called spawn, a worker that may exit while the nursery
    /// lives (what harrow-real did before its spawner thread). Read inside the launch's own
    /// system call: no extra step for the scheduler.
    fn launching_thread(&self, w: &SimWorld) -> ThreadId {
        match w.spawning_thread {
            Some(t) if self.seat == Seat::Root && spawns_from_callers_thread(self.flaws) => t,
            _ => self.thread,
        }
    }

    fn launch_process(
        &mut self,
        child: ChildId,
        actor: &str,
        method: SpawnMethod,
    ) -> Result<Child<P>, String> {
        let me = self.me;
        let (scrub, raw_pid) = (
            !self.flaw(Flaw::NoFdScrub),
            self.flaw(Flaw::KillAndReapByPid),
        );
        let server = match method {
            SpawnMethod::ForkServer => Some(self.fork_server()?),
            _ => None,
        };
        let (start, channel, pidfd, server_pidfd) = self.shared.with(|w| -> Result<_, String> {
            let thread = self.launching_thread(w);
            let (forker, forker_thread) = server.unwrap_or((me, thread));
            if !w.runs(me) || !w.runs(forker) {
                return Err(kernel::Errno::ESRCH.to_string());
            }
            let (me, forker) = (me.pid, forker.pid);
            let k = &mut w.kernel;
            let (ours, theirs) = k.socketpair(forker).map_err(|e| e.to_string())?;
            let spawned = match method {
                SpawnMethod::Exec => k.spawn_exec(me, thread, &[theirs]),
                _ => k.fork(forker, forker_thread),
            };
            let spawned = match spawned {
                Ok(s) => s,
                Err(e) => {
                    let _ = k.close(forker, ours);
                    let _ = k.close(forker, theirs);
                    return Err(e.to_string());
                }
            };
            let process = SimProcess {
                pid: spawned.pid,
                serial: k.serial_of(spawned.pid).map_err(|e| e.to_string())?,
            };
            let _ = k.setpgid(forker, spawned.pid, spawned.pid);
            let _ = k.close(forker, theirs);
            let (channel, pidfd, server_pidfd) =
                hand_over(k, forker, me, ours, spawned.pid, raw_pid)?;
            w.note(
                me,
                format_args!(
                    "launch {child} by {method}: {} (channel {channel})",
                    spawned.pid
                ),
            );
            w.live_threads += 1;
            w.nursery_children.push(NurseryChild {
                nursery: (self.me, self.thread),
                name: actor.into(),
                seat: (process, spawned.thread),
                ctx: None,
            });
            let forked = method != SpawnMethod::Exec;
            let start = ChildStart {
                actor: actor.into(),
                process,
                thread: spawned.thread,
                parent: forker,
                fd: theirs,
                forked,
                scrub,
            };
            Ok((start, channel, pidfd, server_pidfd))
        })?;
        let (s, f, pid) = (self.shared.clone(), self.factory.clone(), start.process.pid);
        drop(P::spawn(move || process_body::<P, F>(s, f, start)));
        Ok(Child {
            pid,
            channel: Some(channel),
            pidfd,
            server_pidfd,
            thread: None,
            ctx: None,
        })
    }

    fn fork_server(&mut self) -> Result<(SimProcess, ThreadId), String> {
        if let Some(s) = self.fork_server {
            return Ok(s);
        }
        let me = self.me;
        let server = self.shared.with(|w| {
            if !w.runs(me) {
                return Err(kernel::Errno::ESRCH.to_string());
            }
            let thread = self.launching_thread(w);
            let s = w
                .kernel
                .spawn_exec(me.pid, thread, &[])
                .map_err(|e| e.to_string())?;
            let server = w
                .process(s.pid)
                .ok_or_else(|| kernel::Errno::ESRCH.to_string())?;
            // The server is exec'd with the child prelude too (harrow-real's `exec_self`): it
            // dies with the thread that started it, and its children die with it. It has no
            // simulated thread of its own, so its prelude runs here, its parent alive.
            if w.config.parent_death_signal {
                let _ = w.kernel.set_pdeathsig(s.pid, Some(Signal::Kill));
            }
            w.note(me.pid, format_args!("start the fork server: {}", s.pid));
            w.servers.push(server);
            Ok::<_, String>((server, s.thread))
        })?;
        self.fork_server = Some(server);
        Ok(server)
    }

    fn launch_thread(&mut self, child: ChildId, actor: &str) -> Result<Child<P>, String> {
        let process = self.me;
        let me = process.pid;
        let wake_end = self.wake.map(|(_, wr)| wr);
        let nursery = (process, self.thread);
        let (tid, ours, theirs, ctx, wake) = self.shared.with(|w| -> Result<_, String> {
            if !w.runs(process) {
                return Err(kernel::Errno::ESRCH.to_string());
            }
            let (ours, theirs) = w.kernel.socketpair(me).map_err(|e| e.to_string())?;
            let tid = match w.kernel.spawn_thread(me) {
                Ok(tid) => tid,
                Err(e) => {
                    let _ = w.kernel.close(me, ours);
                    let _ = w.kernel.close(me, theirs);
                    return Err(e.to_string());
                }
            };
            // The thread's own copy of the wake pipe's write end (harrow-real shares it by
            // `Arc`): an abandoned thread that returns after this driver is gone still writes
            // to a pipe, never to whatever object reuses the fd number.
            let wake = wake_end.and_then(|wr| w.kernel.dup(me, wr).ok());
            let ctx = w.claim_context(tid);
            w.note(
                me,
                format_args!(
                    "launch {child} on {tid} (context slot {}, channel {ours})",
                    ctx.0
                ),
            );
            w.live_threads += 1;
            w.nursery_children.push(NurseryChild {
                nursery,
                name: actor.into(),
                seat: (process, tid),
                ctx: Some(ctx),
            });
            Ok((tid, ours, theirs, ctx, wake))
        })?;
        let (s, f) = (self.shared.clone(), self.factory.clone());
        let name = String::from(actor);
        let start = ThreadStart {
            actor: name,
            process,
            thread: tid,
            fd: theirs,
            ctx,
            wake,
            actor_lock: super::actor_lock(tid, self.flaws),
        };
        let handle = P::spawn(move || thread_body::<P, F>(s, f, start));
        Ok(Child {
            pid: me,
            channel: Some(ours),
            pidfd: None,
            server_pidfd: None,
            thread: Some(handle),
            ctx: Some(ctx),
        })
    }

    /// Where something is ready, seen under one lock, as epoll_wait would report it.
    /// The caller has checked that this process still runs.
    fn readiness(&self, w: &SimWorld) -> Vec<Ready> {
        let (k, me) = (&w.kernel, self.me.pid);
        let mut ready = Vec::new();
        for (&id, c) in &self.children {
            if let Some(fd) = c.channel
                && self.reports.reads(id)
                && k.readable(me, fd).unwrap_or(false)
            {
                ready.push(Ready::Channel(id));
            }
            // Thread children announce their exit through the wake pipe, not here.
            if self.reports.watches_exit(id) && c.ctx.is_none() && exited(w, me, c) {
                ready.push(Ready::Exit(id));
            }
        }
        if let Some((rd, _)) = self.wake
            && k.readable(me, rd).unwrap_or(false)
        {
            ready.push(Ready::Wake);
        }
        ready
    }

    fn consume(&mut self, ready: Ready, out: &mut Vec<OsEvent>) {
        let (process, me) = (self.me, self.me.pid);
        match ready {
            Ready::Channel(id) => {
                let Some(fd) = self.children.get(&id).and_then(|c| c.channel) else {
                    return;
                };
                let got = self.shared.with(|w| {
                    if !w.runs(process) {
                        return Err(kernel::Errno::ESRCH);
                    }
                    w.kernel.recv(me, fd)
                });
                match got {
                    Ok(RecvOutcome::Data(bytes)) => self.reports.bytes(id, bytes, out),
                    Ok(RecvOutcome::Eof) | Err(_) => {
                        if self.reports.end_of_stream(id, out) {
                            self.shared
                                .with(|w| w.note(me, format_args!("parent reads EOF from {id}")));
                        }
                    }
                    Ok(RecvOutcome::WouldBlock) => {}
                }
            }
            Ready::Exit(id) => {
                if self.reports.exited(id, out) {
                    self.shared
                        .with(|w| w.note(me, format_args!("parent sees {id} exit")));
                }
            }
            Ready::Wake => self.take_signals(out),
        }
    }

    /// Drains the wake pipe, then takes every level flag: SIGINT and finished threads.
    ///
    /// The order matters (flaw F11): a flag set after the drain leaves a byte in the pipe
    /// for the next wait; a reader that takes the flags first and drains after can swallow
    /// the byte of a flag it has already looked at, and the wakeup is lost.
    fn take_signals(&mut self, out: &mut Vec<OsEvent>) {
        let Some((rd, _)) = self.wake else { return };
        let me = self.me;
        let drain = |w: &mut SimWorld| {
            if w.runs(me) {
                let _ = w.kernel.drain(me.pid, rd);
            }
        };
        if self.flaw(Flaw::DroppedWakeups) {
            self.take_flags(out);
            self.shared.with(drain);
        } else {
            self.shared.with(drain);
            self.take_flags(out);
        }
    }

    fn take_flags(&mut self, out: &mut Vec<OsEvent>) {
        let (process, me) = (self.me, self.me.pid);
        // The pending-SIGINT flag is the process's: only the driver whose handler sets it
        // takes it. A thread child's nursery in the same process must leave it to the root.
        let handles_sigint = self.seat == Seat::Root;
        let sigint = self.shared.with(|w| {
            handles_sigint && w.runs(process) && w.kernel.take_pending_sigint(me).unwrap_or(false)
        });
        if sigint {
            self.shared
                .with(|w| w.note(me, format_args!("the driver takes SIGINT")));
            out.push(OsEvent::Interrupt);
        }
        let finished: Vec<ChildId> = self.shared.read(|w| {
            self.children
                .iter()
                .filter(|(id, c)| {
                    self.reports.watches_exit(**id) && c.ctx.is_some() && exited(w, me, c)
                })
                .map(|(id, _)| *id)
                .collect()
        });
        for id in finished {
            self.consume(Ready::Exit(id), out);
        }
    }
}

/// Whether a child's exit is visible to its parent (pidfd readable, or thread returned).
fn exited<P: Platform>(w: &SimWorld, me: Pid, c: &Child<P>) -> bool {
    if let Some((slot, generation)) = c.ctx {
        let ctx = w.contexts[slot];
        return ctx.generation == generation && matches!(ctx.state, CtxState::Finished(_));
    }
    match c.pidfd {
        Some(fd) => w.kernel.pidfd_readable(me, fd).unwrap_or(false),
        // Flaw F5: no pidfd; the pid's zombie state, or a status the second reaper took.
        None => {
            w.stolen.iter().any(|(p, _)| *p == c.pid)
                || matches!(
                    w.kernel.process_state(c.pid),
                    Some(kernel::ProcState::Zombie(_))
                )
        }
    }
}

fn to_status(s: kernel::ExitStatus) -> ExitStatus {
    match s {
        kernel::ExitStatus::Exited(code) => ExitStatus::Exited(code),
        kernel::ExitStatus::Signaled(sig) => ExitStatus::Signaled(i32::from(sig.number())),
    }
}

/// An environment action striking once.
fn env_strike<P: Platform>(shared: P::Arc<Shared<P>>, action: EnvAction) {
    shared.with(|w| {
        let root = w.root;
        let target = match action {
            EnvAction::KillChild(n) => w
                .launched
                .get(n)
                .copied()
                .flatten()
                .map(|p| (p, Signal::Kill)),
            EnvAction::Interrupt | EnvAction::InterruptWhenServing => Some((root, Signal::Int)),
            EnvAction::KillRoot => Some((root, Signal::Kill)),
            EnvAction::RetireSpawningThread(_) => {
                if let Some(t) = w.spawning_thread.take()
                    && w.runs(root)
                    && !w.over
                {
                    w.note(Pid::INIT, format_args!("environment: {t} of {root} exits"));
                    let _ = w.kernel.exit_thread(root.pid, t);
                }
                None
            }
        };
        // The fault names a process, not a pid: once that process is gone, it misses.
        if let Some((p, signal)) = target
            && w.runs(p)
            && !w.over
        {
            let _ = w.kernel.kill(Pid::INIT, p.pid, signal);
            w.note(Pid::INIT, format_args!("environment: {signal} to {p}"));
        }
        w.env_threads -= 1;
    });
}

/// Flaw F5's second reaper: `waitpid(-1)` whenever a child of `me` is a zombie.
fn second_reaper_body<P: Platform>(shared: P::Arc<Shared<P>>, process: SimProcess) {
    let me = process.pid;
    loop {
        let done = shared.wait_for(|w| {
            if w.over || !w.runs(process) {
                return Some(true);
            }
            let zombie = w.kernel.children(me).into_iter().any(|c| {
                matches!(
                    w.kernel.process_state(c),
                    Some(kernel::ProcState::Zombie(_))
                ) && w.kernel.role(c) == Ok(kernel::Role::Ordinary)
            });
            zombie.then_some(false)
        });
        if done {
            break;
        }
        shared.with(|w| {
            if !w.runs(process) {
                return;
            }
            if let Ok(ReapOutcome::Reaped { pid, status }) = w.kernel.waitpid_any(me) {
                w.note(me, format_args!("second reaper: waitpid(-1) reaps {pid}"));
                w.stolen.push((pid, to_status(status)));
            }
        });
    }
    shared.with(|w| w.live_threads -= 1);
}

impl<P: Platform, F: ActorFactory<P>> Drop for SimOs<P, F> {
    fn drop(&mut self) {
        if self.seat != Seat::Thread {
            return;
        }
        let mut fds: Vec<Fd> = self
            .wake
            .take()
            .into_iter()
            .flat_map(|(r, w)| [r, w])
            .collect();
        // harrow-real's children kill and reap their processes when dropped (through the
        // pidfd: a reaped child's pid may be someone else's by now); a fork server's child is
        // its server's to reap.
        let processes: Vec<(Fd, bool)> = self
            .children
            .values()
            .filter(|c| c.thread.is_none())
            .filter_map(|c| c.pidfd.map(|fd| (fd, c.server_pidfd.is_none())))
            .collect();
        for c in self.children.values_mut() {
            fds.extend(c.channel.take());
            fds.extend(c.pidfd.take());
        }
        let (me, server) = (self.me, self.fork_server.take());
        let seat = (self.me, self.thread);
        self.shared.with(|w| {
            if !w.runs(me) {
                return;
            }
            // Its thread child's loop has ended, by the protocol's decision unless the
            // scenario is over: its nursery must have been torn down.
            if !w.over {
                for problem in super::check::exited_with_subtree(w, seat) {
                    w.violate(problem);
                }
            }
            for &(pidfd, ours) in &processes {
                if w.kernel
                    .pidfd_send_signal(me.pid, pidfd, Signal::Kill)
                    .is_ok()
                    && ours
                {
                    let _ = w.kernel.waitid_pidfd(me.pid, pidfd);
                }
            }
            for fd in &fds {
                let _ = w.kernel.close(me.pid, *fd);
            }
            w.note(
                me.pid,
                format_args!(
                    "a thread child's nursery is dropped: it kills its {} live process \
                     children and closes {fds:?}",
                    processes.len()
                ),
            );
            // harrow-real's ForkServer, dropped with it, ends its server and reaps it. Our
            // own unreaped child: its pid cannot have been reused.
            if let Some((server, _)) = server
                && w.runs(server)
            {
                let _ = w.kernel.kill(me.pid, server.pid, Signal::Kill);
                let _ = w.kernel.waitpid(me.pid, server.pid);
                w.note(
                    me.pid,
                    format_args!("it stops and reaps its fork server {server}"),
                );
            }
        });
    }
}

impl<P: Platform, F: ActorFactory<P>> SimOs<P, F> {
    /// Flaw F12: at the top of every wait, the event loop takes the lock thread actors hold
    /// while they run (tractor's shared GIL), so an actor that never yields starves it.
    fn take_actor_lock_if_flawed(&mut self) {
        if !self.flaw(Flaw::ControlPathSharesLock) {
            return;
        }
        let (me, thread) = (self.me, self.thread);
        self.shared.wait_for(|w| {
            if !w.runs(me) {
                return Some(());
            }
            match w.kernel.lock_acquire(me.pid, thread, ACTOR_LOCK) {
                Ok(LockOutcome::WouldBlock { .. }) => None,
                _ => Some(()),
            }
        });
        self.shared.with(|w| {
            if w.runs(me) {
                let _ = w.kernel.lock_release(me.pid, thread, ACTOR_LOCK);
            }
        });
    }
}

impl<P: Platform, F: ActorFactory<P>> Os for SimOs<P, F> {
    fn now(&mut self) -> Timestamp {
        self.now
    }

    fn situation(&mut self) -> Situation {
        let threads = self
            .shared
            .read(|w| w.kernel.threads(self.me.pid).map(|t| t.len()).unwrap_or(1));
        Situation {
            threads: Ok(threads),
            can_exec: true,
        }
    }

    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String> {
        let c = match method {
            SpawnMethod::Thread => self.launch_thread(child, actor)?,
            _ => self.launch_process(child, actor, method)?,
        };
        if self.seat == Seat::Root {
            let is_process = method != SpawnMethod::Thread;
            self.shared.with(|w| {
                let p = w.process(c.pid).filter(|_| is_process);
                w.launched.push(p);
            });
            self.release_env();
        }
        self.children.insert(child, c);
        self.reports.launched(child);
        Ok(())
    }

    fn send(&mut self, child: ChildId, frame: &[u8]) {
        let Some(fd) = self.children.get(&child).and_then(|c| c.channel) else {
            return;
        };
        let (process, me) = (self.me, self.me.pid);
        self.shared.with(|w| match w.kernel.send(me, fd, frame) {
            _ if !w.runs(process) => {}
            Ok(()) => w.note(
                me,
                format_args!("parent sends {} bytes to {child}", frame.len()),
            ),
            Err(kernel::Errno::EAGAIN) => {
                w.violate(format!("bound hit: {child}'s channel is full"))
            }
            Err(e) => w.note(me, format_args!("parent send to {child} fails: {e}")),
        });
    }

    fn close(&mut self, child: ChildId) {
        let Some(c) = self.children.get_mut(&child) else {
            return;
        };
        self.reports.closed(child);
        if let Some(fd) = c.channel.take() {
            let (process, me) = (self.me, self.me.pid);
            self.shared.with(|w| {
                if !w.runs(process) {
                    return;
                }
                let _ = w.kernel.close(me, fd);
                w.note(
                    me,
                    format_args!("parent closes its end of {child}'s channel"),
                );
            });
        }
    }

    fn kill(&mut self, child: ChildId) {
        let Some(c) = self.children.get(&child) else {
            return;
        };
        let (process, me, pid, pidfd) = (self.me, self.me.pid, c.pid, c.pidfd);
        let (seat, shared) = ((self.me, self.thread), &self.shared);
        shared.with(|w| {
            if !w.runs(process) {
                return;
            }
            let closing = |s| shared.is_closing(s);
            for problem in super::check::killed_before_teardown(w, seat, pid, closing) {
                w.violate(problem);
            }
            match pidfd {
                Some(fd) => {
                    let r = w.kernel.pidfd_send_signal(me, fd, Signal::Kill);
                    // The group leader is not reaped yet, so its pgid cannot have been reused.
                    let _ = w.kernel.killpg(me, pid, Signal::Kill);
                    w.note(me, format_args!("SIGKILL {child} via its pidfd: {r:?}"));
                }
                None => {
                    let r = w.kernel.kill(me, pid, Signal::Kill);
                    w.note(me, format_args!("SIGKILL {child} by raw pid {pid}: {r:?}"));
                }
            }
        });
    }

    fn abandon(&mut self, child: ChildId) {
        let destroy = self.flaw(Flaw::DestroyBeforeJoin);
        let root = self.seat == Seat::Root;
        let Some(c) = self.children.get_mut(&child) else {
            return;
        };
        self.reports.unwatch_exit(child);
        // Detach: the thread may never return, and nobody will join it.
        drop(c.thread.take());
        let me = self.me.pid;
        let ctx = c.ctx;
        self.shared.with(|w| {
            // The root's report counts the root's abandonments; a nested nursery's report
            // counts its own.
            if root {
                w.abandoned += 1;
            }
            if let Some((slot, _)) = ctx {
                w.contexts[slot].state = if destroy {
                    CtxState::Freed
                } else {
                    CtxState::Leaked
                };
            }
            w.note(
                me,
                format_args!(
                    "abandon {child}'s thread ({})",
                    if destroy {
                        "context destroyed"
                    } else {
                        "context leaked, counted"
                    }
                ),
            );
        });
    }

    fn retire(&mut self, child: ChildId) {
        // Anything it still held (an fd) would leak from here: the end checks would see it.
        self.children.remove(&child);
        self.reports.retired(child);
    }

    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String> {
        let (process, me) = (self.me, self.me.pid);
        let Some(c) = self.children.get_mut(&child) else {
            return Err(format!("{child} was never launched here"));
        };
        // Reaped (or joined), it has no exit left to report, as on Linux.
        self.reports.unwatch_exit(child);
        if let Some(handle) = c.thread.take() {
            let code = P::join(handle);
            let ctx = c.ctx;
            self.shared.with(|w| {
                if let Some((slot, _)) = ctx {
                    w.contexts[slot].state = CtxState::Freed;
                }
                w.note(me, format_args!("join {child}'s thread: code {code}"));
            });
            return Ok(ExitStatus::Exited(code));
        }
        let (pid, pidfd, server_pidfd) = (c.pid, c.pidfd.take(), c.server_pidfd.take());
        let server = self.fork_server.map(|s| s.0);
        self.shared.with(|w| {
            // A dead process runs nothing: its reap never happens.
            if !w.runs(process) {
                return Err("this process is dead".into());
            }
            let _ = w.kernel.killpg(me, pid, Signal::Kill);
            let outcome = match (server_pidfd, server, pidfd) {
                (Some(_), Some(server), _) if !w.runs(server) => Err(kernel::Errno::ESRCH),
                (Some(spid), Some(server), _) => w.kernel.waitid_pidfd(server.pid, spid),
                (None, _, Some(fd)) => w.kernel.waitid_pidfd(me, fd),
                _ => match w.stolen.iter().position(|(p, _)| *p == pid) {
                    Some(i) => {
                        let (_, status) = w.stolen.remove(i);
                        w.note(me, format_args!("reap {child}: the second reaper had it"));
                        return Ok(status);
                    }
                    None => w.kernel.waitpid(me, pid),
                },
            };
            for fd in pidfd.into_iter() {
                let _ = w.kernel.close(me, fd);
            }
            if let (Some(spid), Some(server)) = (server_pidfd, server)
                && w.runs(server)
            {
                let _ = w.kernel.close(server.pid, spid);
            }
            match outcome {
                Ok(ReapOutcome::Reaped { status, .. }) => {
                    w.note(me, format_args!("reap {child}: {status}"));
                    Ok(to_status(status))
                }
                other => {
                    w.violate(format!("reap of {child} failed: {other:?}"));
                    Err(format!("the reap failed: {other:?}"))
                }
            }
        })
    }

    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError> {
        self.take_actor_lock_if_flawed();
        let owner = DeadlineOwner {
            pid: self.me.pid,
            slot: self.slot,
        };
        let me = self.me;
        let shared = self.shared.clone();
        shared.with(|w| match deadline {
            _ if !w.runs(me) => {}
            // A deadline already past fires at once; re-arming replaces the previous one.
            Some(at) => {
                let _ = w.kernel.arm(owner, at);
            }
            None => w.kernel.disarm(owner),
        });
        let mut fired = false;
        let (mut now, mut dead) = (self.now, false);
        let ready = shared.wait_for(|w| {
            now = w.kernel.now();
            if !w.runs(me) || w.over {
                dead = true;
                return Some(Vec::new());
            }
            let ready = self.readiness(w);
            if !ready.is_empty() {
                return Some(ready);
            }
            fired = w.kernel.take_fired(owner);
            fired.then(Vec::new)
        });
        self.now = now;
        if dead {
            return Err(WaitError::Killed);
        }
        if fired {
            out.push(OsEvent::Deadline);
        }
        for r in ready {
            self.consume(r, out);
        }
        Ok(())
    }
}

/// What the parent holds of a child `forker` just made, whose channel end is `ours` in
/// `forker`: that end and a pidfd of the child (none with `raw_pid`: F5 acts by pid), moved
/// into `parent`; and the pidfd the forker keeps to reap with when it is the fork server.
fn hand_over(
    k: &mut Kernel,
    forker: Pid,
    parent: Pid,
    ours: Fd,
    child: Pid,
    raw_pid: bool,
) -> Result<(Fd, Option<Fd>, Option<Fd>), String> {
    if forker == parent {
        let pidfd = (!raw_pid)
            .then(|| k.pidfd_open(parent, child).ok())
            .flatten();
        return Ok((ours, pidfd, None));
    }
    // The fork server passes the parent end and a pidfd over SCM_RIGHTS, keeps a pidfd of
    // its own to reap with, and closes its copy of the channel.
    let spid = k.pidfd_open(forker, child).map_err(|e| e.to_string())?;
    let ours_here = k.pass_fd(forker, ours, parent).map_err(|e| e.to_string())?;
    let pidfd_here = k.pass_fd(forker, spid, parent).ok();
    let _ = k.close(forker, ours);
    Ok((ours_here, pidfd_here.filter(|_| !raw_pid), Some(spid)))
}
