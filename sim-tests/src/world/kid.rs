//! A child in the pure world: its runtime, its actor's script, and both ends of its channel.

use std::collections::VecDeque;

use harrow_model::child::{ChildPhase, ChildRuntime};
use harrow_model::wire::{Message, RemoteError};
use harrow_model::{ExitStatus, RequestId, SpawnMethod, Timestamp};

use crate::scenario::Behaviour;

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
    /// The protocol's child side.
    pub runtime: ChildRuntime,
    /// Whether it has booted.
    pub booted: bool,
    /// Its process state.
    pub proc: Proc,
    /// Whether the parent abandoned its thread.
    pub abandoned: bool,
    /// Messages from the parent not yet read.
    pub inbox: VecDeque<Message>,
    /// Messages to the parent not yet read.
    pub outbox: VecDeque<Message>,
    /// Whether the parent's end of the channel is open.
    pub parent_end: bool,
    /// Whether the child's end of the channel is open.
    pub child_end: bool,
    /// Whether the child has seen the parent's EOF.
    pub eof_seen_by_child: bool,
    /// Whether its actor is refusing to yield.
    pub block: Block,
    /// Requests started on the actor, not yet finished. The child's loop runs a request's
    /// work inline, so its runtime's later commands wait until that work is done.
    pub work: VecDeque<RequestId>,
    /// Requests answered by an actor that dies in a later one (`CrashesInRequest`): each
    /// must reach its caller as that answer (property 15).
    pub answered: Vec<RequestId>,
    /// A main function running, with the result it will return.
    pub main: Option<Result<Vec<u8>, RemoteError>>,
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
}

impl Kid {
    /// A freshly launched child.
    pub fn new(
        plan: usize,
        method: SpawnMethod,
        behaviour: Behaviour,
        runtime: ChildRuntime,
    ) -> Self {
        Kid {
            plan,
            method,
            behaviour,
            runtime,
            booted: false,
            proc: Proc::Running,
            abandoned: false,
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            parent_end: true,
            child_end: true,
            eof_seen_by_child: false,
            block: Block::No,
            work: VecDeque::new(),
            answered: Vec::new(),
            main: None,
            failure: None,
            reaps: 0,
            parent_end_copies: std::collections::BTreeSet::new(),
            helper_until: None,
            wedged: false,
            stolen: false,
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

    /// Whether its actor has something to do and is free to do it.
    pub fn can_run(&self, copies_held: bool) -> bool {
        let alive = self.booted && self.proc == Proc::Running && self.block == Block::No;
        let live_runtime = self.runtime.phase() != ChildPhase::Exited;
        let has_work = !self.inbox.is_empty()
            || self.eof_pending(copies_held)
            || !self.work.is_empty()
            || self.main.is_some()
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
        self.work.clear();
        self.main = None;
        self.failure = None;
        self.block = Block::No;
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
