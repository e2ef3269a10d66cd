//! The driver: the one event loop that runs the protocol over an operating system.
//!
//! It is written once and runs everywhere: over the simulated kernel under loom and shuttle
//! (`sim::SimOs`) and over Linux in `harrow-real` (`RealOs`). It is deliberately thin: the
//! protocol decides, the driver only carries commands out through an [`Os`] and feeds what
//! the [`Os`] reports back in. The only thing left to get wrong here is ordering, which is
//! exactly what the model checkers explore.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::actor::{Actor, ActorCode};
use crate::child::ChildRuntime;
use crate::child_loop::ChildLoop;
use crate::error::ExitStatus;
use crate::id::{ChildId, RequestId};
use crate::method::{Situation, SpawnMethod};
use crate::supervisor::{Command, Event, Supervisor};
use crate::time::Timestamp;
use crate::wire::{FrameDecoder, FrameError, Message};

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

/// The operating system as a child's loop ([`ChildLoop`]) sees it.
pub trait ChildOs {
    /// Sends bytes to the parent; a parent that is gone is not an error here.
    fn send(&mut self, frame: &[u8]);
    /// Appends what has arrived from the parent without blocking: nothing if nothing has.
    ///
    /// What a [`Cancel`](crate::actor::Cancel) reads while actor code runs. It may leave part
    /// of what arrived for a later call (its reads are bounded); it never blocks.
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

/// The operating system of a child whose loop waits for its events ([`drive_child`]): on
/// Linux and over the simulated kernel.
pub trait BlockingChildOs: ChildOs {
    /// Blocks until at least one event, appending them to `out`.
    fn wait(&mut self, out: &mut Vec<ChildEvent>);
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
pub fn run_child<C: BlockingChildOs>(
    os: &mut C,
    actor: &mut Actor,
    runtime: ChildRuntime,
    max_frame: u32,
) -> ChildExit {
    drive_child(os, actor, &mut ChildLoop::new(runtime, max_frame))
}

/// [`run_child`] over a loop the caller keeps, to read what its runtime covered afterwards
/// ([`ChildRuntime::take_coverage`]): starts it, then feeds it every event the operating
/// system reports, until it says to stop.
pub fn drive_child<C: BlockingChildOs>(
    os: &mut C,
    actor: &mut impl ActorCode,
    child: &mut ChildLoop,
) -> ChildExit {
    if let Some(exit) = child.start(os, actor) {
        return exit;
    }
    let mut events = Vec::new();
    loop {
        events.clear();
        os.wait(&mut events);
        for ev in events.drain(..) {
            if let Some(exit) = child.feed(os, actor, ev) {
                return exit;
            }
        }
    }
}
