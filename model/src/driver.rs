//! The driver: the one event loop that runs the protocol over an operating system.
//!
//! It is written once and runs everywhere: over the simulated kernel under loom and shuttle
//! (`sim::SimOs`) and over Linux in `harrow-real` (`RealOs`). It is deliberately thin: the
//! protocol decides, the driver only carries commands out through an [`Os`] and feeds what
//! the [`Os`] reports back in. The only thing left to get wrong here is ordering, which is
//! exactly what the model checkers explore.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::actor::{Actor, Cancel, Checkpoint};
use crate::child::{ChildCommand, ChildRuntime};
use crate::error::ExitStatus;
use crate::id::{ChildId, RequestId};
use crate::method::{Situation, SpawnMethod};
use crate::supervisor::{Command, Event, Supervisor};
use crate::time::Timestamp;
use crate::wire::{FrameDecoder, FrameError, Message, RemoteError};

/// Something the operating system reports to a supervising process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OsEvent {
    /// Bytes arrived on a child's channel.
    Bytes(ChildId, Vec<u8>),
    /// A child's channel reached end-of-file.
    Eof(ChildId),
    /// A child exited (its pidfd became readable, or its thread returned).
    Exited(ChildId),
    /// SIGINT reached this process.
    Interrupt,
    /// The deadline passed to `wait` was reached.
    Deadline,
}

/// The operating system as a supervising process's driver sees it.
///
/// Every method returns promptly except [`Os::wait`], which blocks until something happens
/// or the deadline passes. Implementations: the simulated kernel and Linux.
pub trait Os {
    /// The current protocol time.
    fn now(&mut self) -> Timestamp;
    /// The facts a spawn method is checked against (threads alive, exec possible).
    fn situation(&mut self) -> Situation;
    /// Starts a child running `actor`; `Err` says why it could not.
    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String>;
    /// Sends bytes on a child's channel; a peer that is gone is not an error here.
    fn send(&mut self, child: ChildId, frame: &[u8]);
    /// Closes our end of a child's channel.
    fn close(&mut self, child: ChildId);
    /// SIGKILLs a child process and its process group.
    fn kill(&mut self, child: ChildId);
    /// Abandons a thread child: detach it and leak its context.
    fn abandon(&mut self, child: ChildId);
    /// Reaps an exited child (joins a thread child) and returns how it ended; `Err` says why
    /// it could not be reaped (a status is never made up).
    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String>;
    /// Forgets a child that is over: frees everything kept for it. Nothing names it again.
    fn retire(&mut self, child: ChildId);
    /// Blocks until at least one event or `deadline`, appending what happened to `out`.
    ///
    /// `Err` when no wait is possible any more and the loop must stop: on Linux, the wait
    /// itself failed for a reason other than an interruption (a loop that went on would
    /// spin); in the simulator, a killed process's thread learns here that it is dead.
    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError>;
}

/// Why [`Os::wait`] cannot wait any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// This process was killed (only the simulator, where a process is a thread, sees this).
    Killed,
    /// The system's wait call failed; the text says what the system said.
    Failed(String),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Killed => f.write_str("this process was killed"),
            WaitError::Failed(why) => write!(f, "the event loop cannot wait: {why}"),
        }
    }
}

/// The most loop turns one `run_until` may take without the condition coming true.
pub const MAX_TURNS: u64 = 1_000_000;

/// Why a driver loop stopped before its condition held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveError {
    /// The nursery closed first; the awaited thing will never happen.
    NurseryClosed,
    /// The loop turned [`MAX_TURNS`] times: a livelock.
    TurnBound,
    /// The operating system could not wait any more.
    Wait(WaitError),
}

impl fmt::Display for DriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::NurseryClosed => f.write_str("the nursery closed before the awaited event"),
            DriveError::TurnBound => write!(
                f,
                "the event loop turned {MAX_TURNS} times without progress"
            ),
            DriveError::Wait(e) => e.fmt(f),
        }
    }
}

/// A supervising process's event loop: the supervisor plus the operating system under it.
#[derive(Debug)]
pub struct Driver<O: Os> {
    /// The protocol.
    pub sup: Supervisor,
    /// The operating system.
    pub os: O,
    /// The frame decoders of the children whose channel is open (or was closed since the
    /// last wait).
    decoders: BTreeMap<ChildId, FrameDecoder>,
    /// Channels closed since the last wait: their decoders are freed before the next one.
    closed: Vec<ChildId>,
    events: VecDeque<Event>,
    scratch: Vec<OsEvent>,
}

impl<O: Os> Driver<O> {
    /// A driver for `sup` over `os`.
    pub fn new(sup: Supervisor, os: O) -> Self {
        Driver {
            sup,
            os,
            decoders: BTreeMap::new(),
            closed: Vec::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Spawns a child; see [`Supervisor::spawn`].
    pub fn spawn(
        &mut self,
        spec: crate::supervisor::SpawnSpec,
    ) -> Result<ChildId, crate::error::SpawnError> {
        let now = self.os.now();
        let situation = self.os.situation();
        let child = self.sup.spawn(now, spec, &situation)?;
        self.execute();
        Ok(child)
    }

    /// Sends a request; see [`Supervisor::request`].
    pub fn request(
        &mut self,
        child: ChildId,
        payload: Vec<u8>,
        deadline: Option<Timestamp>,
    ) -> Result<RequestId, crate::error::ChildOpError> {
        let now = self.os.now();
        let id = self.sup.request(now, child, payload, deadline)?;
        self.execute();
        Ok(id)
    }

    /// Gives a request up; see [`Supervisor::abandon_request`].
    pub fn abandon_request(
        &mut self,
        child: ChildId,
        id: RequestId,
    ) -> Result<(), crate::error::ChildOpError> {
        let now = self.os.now();
        self.sup.abandon_request(now, child, id)?;
        self.execute();
        Ok(())
    }

    /// Cancels one child; see [`Supervisor::cancel`].
    pub fn cancel(&mut self, child: ChildId) -> Result<(), crate::error::ChildOpError> {
        let now = self.os.now();
        self.sup.cancel(now, child)?;
        self.execute();
        Ok(())
    }

    /// Stops one child hard; see [`Supervisor::hard_stop`].
    pub fn hard_stop(&mut self, child: ChildId) -> Result<(), crate::error::ChildOpError> {
        let now = self.os.now();
        self.sup.hard_stop(now, child)?;
        self.execute();
        Ok(())
    }

    /// Starts teardown; see [`Supervisor::begin_teardown`].
    pub fn begin_teardown(&mut self, cause: crate::supervisor::TeardownCause) {
        let now = self.os.now();
        self.sup.begin_teardown(now, cause);
        self.execute();
    }

    /// Turns the loop until `done` holds; fails if the nursery closes first or on livelock.
    pub fn run_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> Result<(), DriveError> {
        for _ in 0..MAX_TURNS {
            if done(self) {
                return Ok(());
            }
            if self.sup.is_closed() {
                return Err(DriveError::NurseryClosed);
            }
            self.turn()?;
        }
        Err(DriveError::TurnBound)
    }

    /// Turns the loop until the nursery has closed.
    pub fn run_to_close(&mut self) -> Result<(), DriveError> {
        for _ in 0..MAX_TURNS {
            if self.sup.is_closed() {
                return Ok(());
            }
            self.turn()?;
        }
        Err(DriveError::TurnBound)
    }

    /// One loop turn: wait for the operating system, feed what happened, execute commands.
    pub fn turn(&mut self) -> Result<(), DriveError> {
        self.turn_until(None)
    }

    /// [`Driver::turn`], but the wait also ends at `until` (a caller's own deadline, such as
    /// a request's), whichever of it and the protocol's next deadline comes first.
    ///
    /// What happened before a failed wait is still fed to the protocol.
    pub fn turn_until(&mut self, until: Option<Timestamp>) -> Result<(), DriveError> {
        let deadline = match (self.sup.poll_deadline(), until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.free_closed_decoders();
        let mut happened = core::mem::take(&mut self.scratch);
        let waited = self.os.wait(deadline, &mut happened);
        for ev in happened.drain(..) {
            self.feed(ev);
        }
        self.scratch = happened;
        waited.map_err(DriveError::Wait)?;
        let now = self.os.now();
        if self.sup.poll_deadline().is_some_and(|d| d <= now) {
            self.sup.handle_timeout(now);
        }
        self.execute();
        Ok(())
    }

    fn feed(&mut self, ev: OsEvent) {
        let now = self.os.now();
        if let OsEvent::Bytes(child, _) | OsEvent::Eof(child) = ev
            && self.sup.lifecycle(child).is_none_or(|l| l.is_over())
        {
            // A retired child: nothing of it is kept, not even a decoder to make one for.
            return;
        }
        // Inputs the supervisor refuses are reports about children it no longer listens
        // to (a late byte after we closed our end); they change nothing, so they are dropped.
        match ev {
            OsEvent::Bytes(child, bytes) => self.feed_bytes(now, child, &bytes),
            OsEvent::Eof(child) => {
                if let Err(e) = self.decoder(child).finish() {
                    let _ = self.sup.handle_malformed(now, child, e);
                }
                let _ = self.sup.handle_channel_closed(now, child);
            }
            OsEvent::Exited(child) => {
                let _ = self.sup.handle_exit(now, child);
            }
            OsEvent::Interrupt => self.sup.handle_interrupt(now),
            OsEvent::Deadline => {}
        }
        self.execute();
    }

    fn feed_bytes(&mut self, now: Timestamp, child: ChildId, bytes: &[u8]) {
        let dec = self.decoder(child);
        let mut decoded: Vec<Result<Message, FrameError>> = Vec::new();
        match dec.push(bytes) {
            Err(e) => decoded.push(Err(e)),
            Ok(()) => loop {
                match dec.next_message() {
                    Ok(Some(m)) => decoded.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => {
                        decoded.push(Err(e));
                        break;
                    }
                }
            },
        }
        for m in decoded {
            let _ = match m {
                Ok(m) => self.sup.handle_message(now, child, m),
                Err(e) => self.sup.handle_malformed(now, child, e),
            };
            self.execute();
        }
    }

    /// Frees the decoders whose channel was closed: a closed channel reports nothing after
    /// the wait that follows its close (bytes already read in the batch that closed it still
    /// went through its decoder), so a long-lived nursery keeps no decoder per finished child.
    fn free_closed_decoders(&mut self) {
        for child in self.closed.drain(..) {
            self.decoders.remove(&child);
        }
    }

    fn decoder(&mut self, child: ChildId) -> &mut FrameDecoder {
        let max = self.sup.config().max_frame;
        self.decoders
            .entry(child)
            .or_insert_with(|| FrameDecoder::new(max))
    }

    /// Carries out every queued command, then moves the protocol's events to the user queue.
    fn execute(&mut self) {
        while let Some(cmd) = self.sup.poll_command() {
            let now = self.os.now();
            match cmd {
                Command::Launch {
                    child,
                    actor,
                    method,
                } => {
                    let result = self.os.launch(child, &actor, method);
                    let now = self.os.now();
                    let _ = match result {
                        Ok(()) => self.sup.handle_launched(now, child),
                        Err(why) => self.sup.handle_launch_failed(now, child, why),
                    };
                }
                Command::Send { child, message } => {
                    let max = self.sup.config().max_frame;
                    // Our own messages are bounded by construction, request payloads by
                    // `Supervisor::request`, which refuses one over `wire::max_payload`.
                    if let Ok(frame) = message.encode(max) {
                        self.os.send(child, &frame);
                    }
                }
                Command::CloseChannel { child } => {
                    self.os.close(child);
                    self.closed.push(child);
                }
                Command::Kill { child } => self.os.kill(child),
                Command::Retire { child } => self.os.retire(child),
                Command::Abandon { child } => self.os.abandon(child),
                Command::Reap { child } => {
                    let _ = match self.os.reap(child) {
                        Ok(status) => self.sup.handle_reaped(now, child, status),
                        Err(why) => self.sup.handle_reap_failed(now, child, why),
                    };
                }
            }
        }
        while let Some(ev) = self.sup.poll_event() {
            self.events.push_back(ev);
        }
    }
}

/// Something the operating system reports to a child process about its parent channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildEvent {
    /// Bytes arrived from the parent.
    Bytes(Vec<u8>),
    /// The parent channel reached end-of-file.
    Eof,
    /// This process was killed (the simulator's cooperative death; never seen on Linux).
    Killed,
}

/// The operating system as a child's driver sees it.
pub trait ChildOs {
    /// Sends bytes to the parent; a parent that is gone is not an error here.
    fn send(&mut self, frame: &[u8]);
    /// Blocks until at least one event, appending them to `out`.
    fn wait(&mut self, out: &mut Vec<ChildEvent>);
    /// Appends what has arrived from the parent without blocking: nothing if nothing has.
    ///
    /// What a [`Cancel`] reads while actor code runs. It may leave part of what arrived for
    /// a later call (its reads are bounded); it never blocks.
    fn poll(&mut self, out: &mut Vec<ChildEvent>);
    /// Whether this process may go on after its actor's code returned.
    ///
    /// On Linux, always: a killed process runs no code, so nothing runs to ask. The
    /// simulator runs a process as a thread, which must be told that its process was killed
    /// while it ran the actor, so as not to act for a dead process.
    fn alive(&mut self) -> bool;
    /// Runs actor code, catching a panic in it: `Err` with the panic's message if it panicked.
    ///
    /// This crate has no `std` and cannot catch a panic; the platform can. Linux does
    /// (`catch_unwind`); the simulator's scripted actors never panic, so it runs the code as
    /// is (a panic there is the checker's own failure and must stay one).
    fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, String>
    where
        Self: Sized;
}

/// How a child's event loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// The runtime asked to exit with this code.
    Code(i32),
    /// The process was killed while running.
    Killed,
}

/// Runs a child's event loop until its runtime exits or it is killed.
pub fn run_child<C: ChildOs>(
    os: &mut C,
    actor: &mut Actor,
    mut runtime: ChildRuntime,
    max_frame: u32,
) -> ChildExit {
    drive_child(os, actor, &mut runtime, max_frame)
}

/// [`run_child`] over a runtime the caller keeps, to read what it covered afterwards
/// ([`ChildRuntime::take_coverage`]).
pub fn drive_child<C: ChildOs>(
    os: &mut C,
    actor: &mut Actor,
    runtime: &mut ChildRuntime,
    max_frame: u32,
) -> ChildExit {
    let mut child = ChildLoop {
        os,
        runtime,
        decoder: FrameDecoder::new(max_frame),
        max_frame,
        killed: false,
    };
    if child.runtime.start().is_err() {
        return ChildExit::Code(crate::exit::PROTOCOL_ERROR);
    }
    if let Some(exit) = child.execute(actor) {
        return exit;
    }
    let mut events = Vec::new();
    loop {
        events.clear();
        child.os.wait(&mut events);
        for ev in events.drain(..) {
            child.feed(ev);
            if let Some(exit) = child.execute(actor) {
                return exit;
            }
        }
    }
}

/// A child's event loop: its runtime, the decoder of its parent channel, and the operating
/// system under them. The actor is kept apart, so that its code can be handed a [`Cancel`]
/// that reaches the loop while the loop runs that code.
struct ChildLoop<'o, C: ChildOs> {
    os: &'o mut C,
    runtime: &'o mut ChildRuntime,
    decoder: FrameDecoder,
    max_frame: u32,
    /// This process was killed, or died in its actor's code (the simulator's cooperative death).
    killed: bool,
}

impl<C: ChildOs> ChildLoop<'_, C> {
    /// Feeds one event to the runtime.
    fn feed(&mut self, ev: ChildEvent) {
        // An input the runtime refuses arrives only after it has asked to exit.
        let _ = match ev {
            ChildEvent::Killed => {
                self.killed = true;
                Ok(())
            }
            ChildEvent::Bytes(bytes) => feed_child_bytes(self.runtime, &mut self.decoder, &bytes),
            ChildEvent::Eof => self.runtime.handle_parent_eof().map_err(drop),
        };
    }

    /// Executes the runtime's commands; `Some` once the child must stop running.
    fn execute(&mut self, actor: &mut Actor) -> Option<ChildExit> {
        while let Some(cmd) = self.runtime.poll_command() {
            if self.killed {
                return Some(ChildExit::Killed);
            }
            // A refused input can only follow the runtime's own exit, which returns here.
            let _ = match cmd {
                ChildCommand::Send(m) => {
                    self.os.send(&m.encode_fitted(self.max_frame));
                    Ok(())
                }
                ChildCommand::StartActor { actor: name } => self.start_daemon(actor, &name),
                ChildCommand::StartMain { actor: name } => self.run_task(actor, &name),
                ChildCommand::StartRequest { id, payload } => self.run_request(actor, id, payload),
                // Work runs inline, so by the time this command is read the work it concerns
                // has returned; while it ran, its `Cancel` asked the runtime directly.
                ChildCommand::InterruptWork => Ok(()),
                ChildCommand::TeardownSubtree => self.teardown_subtree(actor),
                ChildCommand::Exit(code) => return Some(ChildExit::Code(code)),
            };
        }
        self.killed.then_some(ChildExit::Killed)
    }

    fn start_daemon(&mut self, actor: &mut Actor, name: &str) -> Result<(), ()> {
        let Actor::Daemon(daemon) = actor else {
            return self.fail(RemoteError::refused(format!(
                "actor `{name}` runs to a result: spawn it with Role::RunToResult"
            )));
        };
        match C::catch_panic(|| daemon.start(name).map(|()| daemon.supervises())) {
            Ok(Ok(true)) => self.runtime.supervise().map_err(drop),
            Ok(Ok(false)) => Ok(()),
            Ok(Err(e)) => self.fail(e),
            Err(panic) => self.fail(RemoteError::panic(panic)),
        }
    }

    fn run_task(&mut self, actor: &mut Actor, name: &str) -> Result<(), ()> {
        let Actor::Task(task) = actor else {
            return self.fail(RemoteError::refused(format!(
                "actor `{name}` is a daemon: spawn it with Role::Daemon"
            )));
        };
        match C::catch_panic(|| task.start(name)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.fail(e),
            Err(panic) => return self.fail(RemoteError::panic(panic)),
        }
        let result = C::catch_panic(|| task.run(&Cancel::new(self)));
        if self.died_in_actor_code() {
            return Ok(());
        }
        match result {
            Ok(result) => self.runtime.handle_main_done(result).map_err(drop),
            Err(panic) => self.fail(RemoteError::panic(panic)),
        }
    }

    fn run_request(
        &mut self,
        actor: &mut Actor,
        id: RequestId,
        payload: Vec<u8>,
    ) -> Result<(), ()> {
        let Actor::Daemon(daemon) = actor else {
            let refused = RemoteError::refused("a run-to-result actor takes no requests");
            return self
                .runtime
                .handle_work_done(id, Err(refused))
                .map_err(drop);
        };
        let result = C::catch_panic(|| daemon.handle(id, payload, &Cancel::new(self)));
        if self.died_in_actor_code() {
            return Ok(());
        }
        match result {
            Ok(result) => self.runtime.handle_work_done(id, result),
            Err(panic) => self
                .runtime
                .handle_work_panicked(id, RemoteError::panic(panic)),
        }
        .map_err(drop)
    }

    fn teardown_subtree(&mut self, actor: &mut Actor) -> Result<(), ()> {
        if let Actor::Daemon(daemon) = actor
            && let Err(panic) = C::catch_panic(|| daemon.teardown_subtree())
        {
            let _ = self.fail(RemoteError::panic(panic));
        }
        self.runtime.handle_subtree_closed().map_err(drop)
    }

    /// Whether this process died while its actor's code ran: then it runs nothing more, not
    /// even the commands its runtime queued before (a dead process sends nothing).
    fn died_in_actor_code(&mut self) -> bool {
        if !self.os.alive() {
            self.killed = true;
        }
        self.killed
    }

    /// The actor failed outside any request.
    fn fail(&mut self, err: RemoteError) -> Result<(), ()> {
        self.runtime.handle_actor_failed(err).map_err(drop)
    }
}

impl<C: ChildOs> Checkpoint for ChildLoop<'_, C> {
    fn interrupted(&mut self) -> bool {
        let mut events = Vec::new();
        self.os.poll(&mut events);
        for ev in events {
            self.feed(ev);
        }
        self.killed || self.runtime.stop_cause().is_some()
    }
}

fn feed_child_bytes(
    runtime: &mut ChildRuntime,
    decoder: &mut FrameDecoder,
    bytes: &[u8],
) -> Result<(), ()> {
    if let Err(e) = decoder.push(bytes) {
        return runtime.handle_malformed(e).map_err(|_| ());
    }
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => runtime.handle_message(m).map_err(|_| ())?,
            Ok(None) => return Ok(()),
            Err(e) => return runtime.handle_malformed(e).map_err(|_| ()),
        }
    }
}
