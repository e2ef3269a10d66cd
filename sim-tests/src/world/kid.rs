//! A child in the pure world: its event loop, its actor's script, and both ends of its channel.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};

use harrow_model::child::ChildPhase;
use harrow_model::child_loop::ChildLoop;
use harrow_model::wire::{FrameDecoder, RemoteError};
use harrow_model::{ExitStatus, RequestId, SpawnMethod, Timestamp};

use crate::scenario::{Behaviour, UserAct};

/// The frames written to one end of a channel and not yet read, one per write, oldest first.
///
/// Shown decoded: a state's text names the messages in flight, their request ids included
/// (what the symmetry test renames).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Frames(pub VecDeque<Vec<u8>>);

impl Deref for Frames {
    type Target = VecDeque<Vec<u8>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Frames {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Debug for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decoded = |frame: &Vec<u8>| {
            let mut decoder = FrameDecoder::new(u32::MAX);
            decoder.push(frame).and_then(|()| decoder.next_message())
        };
        let mut list = f.debug_list();
        for frame in &self.0 {
            match decoded(frame) {
                Ok(Some(message)) => list.entry(&message),
                _ => list.entry(frame),
            };
        }
        list.finish()
    }
}

/// Whether the child's actor is refusing to yield.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    /// It yields normally.
    No,
    /// It yields again at this time.
    Until(Timestamp),
    /// It never yields again.
    Forever,
}

/// The child's process (or thread) as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proc {
    /// Alive.
    Running,
    /// Exited, not yet reaped.
    Exited(ExitStatus),
    /// Reaped (or joined).
    Reaped(ExitStatus),
}

/// One child of the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kid {
    /// Its plan's index in the scenario (spawns can be refused, so ids and plans differ).
    pub plan: usize,
    /// How it was started.
    pub method: SpawnMethod,
    /// Its actor's script.
    pub behaviour: Behaviour,
    /// Its event loop: the protocol's child side, the decoder of its channel, the work it
    /// is busy with (a request's or its main function's, which ends at a later step).
    pub child_loop: ChildLoop,
    /// Whether it has booted.
    pub booted: bool,
    /// Its process state.
    pub proc: Proc,
    /// Whether the parent abandoned its thread.
    pub abandoned: bool,
    /// Frames from the parent not yet read.
    pub inbox: Frames,
    /// Frames to the parent not yet read.
    pub outbox: Frames,
    /// Whether the parent's end of the channel is open.
    pub parent_end: bool,
    /// Whether the child's end of the channel is open.
    pub child_end: bool,
    /// Whether the child has seen the parent's EOF.
    pub eof_seen_by_child: bool,
    /// Whether its actor is refusing to yield.
    pub block: Block,
    /// Requests answered by an actor that dies in a later one (`CrashesInRequest`): each
    /// must reach its caller as that answer (property 15).
    pub answered: Vec<RequestId>,
    /// An actor failure about to be raised.
    pub failure: Option<RemoteError>,
    /// How many times it was reaped by its parent.
    pub reaps: u32,
    /// Children forked without the fd scrub, holding a copy of this child's parent end (F6).
    pub parent_end_copies: std::collections::BTreeSet<usize>,
    /// A detached helper holds this child's end of the channel until then (F7).
    pub helper_until: Option<Timestamp>,
    /// Forked while another thread held the allocator lock: it can never boot (F3).
    pub wedged: bool,
    /// Reaped behind the parent's back by a second reaper; its pid now names a bystander (F5).
    pub stolen: bool,
    /// When the work its actor is busy with is over, for an actor that works a while
    /// (`Behaviour::Works`); until then the work only asks its cancel token.
    pub work_until: Option<Timestamp>,
    /// Its parent killed it, or abandoned its thread.
    pub forced: bool,
    /// Its parent forgot it (retired its record).
    pub retired: bool,
    /// How many frames its parent reads before the one its actor wrote out of turn
    /// (`WritesOutOfTurn`), until the parent reads it.
    pub stray_ahead: Option<u32>,
    /// Its parent read that frame while the protocol did not allow it (property 20).
    pub stray_read_out_of_turn: bool,
    /// A protocol violation of its was reported.
    pub violation_reported: bool,
    /// The user's cancel or hard stop of it, and when it was asked: the first cancel, or
    /// the last hard stop (a cancel after a hard stop does not undo the force it allows).
    pub stop_asked: Option<(UserAct, Timestamp)>,
}

impl Kid {
    /// A freshly launched child.
    pub fn new(
        plan: usize,
        method: SpawnMethod,
        behaviour: Behaviour,
        child_loop: ChildLoop,
    ) -> Self {
        Kid {
            plan,
            method,
            behaviour,
            child_loop,
            booted: false,
            proc: Proc::Running,
            abandoned: false,
            inbox: Frames::default(),
            outbox: Frames::default(),
            parent_end: true,
            child_end: true,
            eof_seen_by_child: false,
            block: Block::No,
            answered: Vec::new(),
            failure: None,
            reaps: 0,
            parent_end_copies: std::collections::BTreeSet::new(),
            helper_until: None,
            wedged: false,
            stolen: false,
            work_until: None,
            forced: false,
            retired: false,
            stray_ahead: None,
            stray_read_out_of_turn: false,
            violation_reported: false,
            stop_asked: None,
        }
    }

    /// Whether it is a process (not a thread child).
    pub fn is_process(&self) -> bool {
        self.method != SpawnMethod::Thread
    }

    /// Whether it can boot now.
    pub fn can_boot(&self) -> bool {
        !self.booted && !self.wedged && self.proc == Proc::Running
    }

    /// Whether EOF from the parent is waiting to be read, given whether some other process
    /// still holds a copy of the parent's end.
    pub fn eof_pending(&self, copies_held: bool) -> bool {
        !self.parent_end && !copies_held && self.inbox.is_empty() && !self.eof_seen_by_child
    }

    /// Whether its actor has something to do at `now` and is free to do it. Long work
    /// (`Behaviour::Works`) has something to do when it is over, or when its cancel token has
    /// something to read.
    pub fn can_run(&self, copies_held: bool, now: Timestamp) -> bool {
        let alive = self.booted && self.proc == Proc::Running && self.block == Block::No;
        let live_runtime = self.child_loop.runtime().phase() != ChildPhase::Exited;
        let has_work = !self.inbox.is_empty()
            || self.eof_pending(copies_held)
            || self.child_loop.busy().is_some() && self.work_until.is_none_or(|t| t <= now)
            || self.failure.is_some();
        alive && live_runtime && has_work
    }

    /// Whether the parent has something to read from its channel, given whether its
    /// operating system still reads it (open, its end-of-file not yet reported).
    pub fn can_deliver(&self, read: bool) -> bool {
        let eof = !self.child_end && self.helper_until.is_none();
        read && (!self.outbox.is_empty() || eof)
    }

    /// Whether its exit is there for the parent to notice (its pidfd, or the stolen status),
    /// given whether the parent's operating system still watches it.
    pub fn can_report_exit(&self, watched: bool) -> bool {
        let exited = matches!(self.proc, Proc::Exited(_)) || self.stolen;
        exited && watched
    }

    /// Whether nothing of it remains: reaped, or an abandoned thread (leaked on purpose).
    pub fn is_gone(&self) -> bool {
        matches!(self.proc, Proc::Reaped(_)) || self.abandoned
    }

    /// Ends the process: its fds close, its actor stops.
    pub fn exit(&mut self, status: ExitStatus) {
        if self.proc != Proc::Running {
            return;
        }
        self.proc = Proc::Exited(status);
        self.child_end = false;
        self.inbox.clear();
        self.child_loop.kill();
        self.failure = None;
        self.block = Block::No;
        self.work_until = None;
    }

    /// The root died: its end of every channel closes, and init reaps whatever exits.
    pub fn parent_died(&mut self) {
        self.parent_end = false;
        self.outbox.clear();
        if let Proc::Exited(s) = self.proc {
            self.proc = Proc::Reaped(s);
        }
    }
}
