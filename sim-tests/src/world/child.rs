//! A child's side of one step: the operating system and the actor's script its loop
//! ([`harrow_model::child_loop::ChildLoop`], the one every child runs) is lent for it.
//!
//! The world never blocks: a request's or a main function's work ends at a later step of
//! its own (`run`), so the script says the work ends later and the world feeds its end to
//! the loop then; the parent's frames are steps too (`send` puts them in the inbox, `run`
//! feeds one to the loop), so nothing arrives while actor code runs.

use std::cell::RefCell;
use std::collections::VecDeque;

use harrow_model::actor::{ActorCode, Cancel, Ends, Reply};
use harrow_model::driver::{ChildEvent, ChildOs};
use harrow_model::wire::{Message, RemoteError, RemoteErrorKind};
use harrow_model::{ExitStatus, RequestId, Timestamp};

use super::os::frame_message;
use super::{Block, line};
use crate::scenario::{Behaviour, STOPPED_EARLY};

/// The trace, shared by a step's operating system and script (it is `None` when not kept).
pub(super) type Trace = RefCell<Option<Vec<String>>>;

/// The child's channel end and the trace, as its loop sees them.
pub(super) struct KidOs<'a> {
    pub(super) who: &'a str,
    pub(super) now: Timestamp,
    pub(super) max_frame: u32,
    pub(super) trace: &'a Trace,
    /// Frames written to the parent and not yet read.
    pub(super) outbox: &'a mut VecDeque<Vec<u8>>,
    /// Whether the parent's end is open: a write to a closed one is lost.
    pub(super) parent_end: bool,
    /// The actor writes its failure report once more itself (`ReportsFailureTwice`).
    pub(super) reports_twice: bool,
    /// What the next poll reads from the parent: the frame or end-of-file the step hands to
    /// the cancel token of work in progress (`Behaviour::Works`).
    pub(super) pending: Option<ChildEvent>,
}

impl ChildOs for KidOs<'_> {
    fn send(&mut self, frame: &[u8]) {
        let message = frame_message(frame, self.max_frame);
        note(self.trace, self.now, self.who, || {
            format!("sends {}", message.name())
        });
        if !self.parent_end {
            return;
        }
        // A child that reports its failure twice writes it once more itself.
        if self.reports_twice && matches!(message, Message::Failed(_)) {
            self.outbox.push_back(frame.to_vec());
        }
        self.outbox.push_back(frame.to_vec());
    }

    /// The parent's frames are steps of their own: the one a step hands to a checkpoint of
    /// long work, and none while other actor code runs.
    fn poll(&mut self, out: &mut Vec<ChildEvent>) {
        out.extend(self.pending.take());
    }

    /// A script never ends its process inside a call of the loop's: its deaths are steps of
    /// their own, or follow the call ([`Script::crash`]).
    fn alive(&mut self) -> bool {
        true
    }

    /// A script never panics: its panics are the ends of work it reports.
    fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, String> {
        Ok(code())
    }
}

/// The actor's script, as the loop calls it.
pub(super) struct Script<'a> {
    pub(super) who: &'a str,
    pub(super) now: Timestamp,
    pub(super) trace: &'a Trace,
    pub(super) behaviour: &'a Behaviour,
    pub(super) is_process: bool,
    pub(super) block: &'a mut Block,
    pub(super) helper_until: &'a mut Option<Timestamp>,
    /// An actor failure the script raises at a later step.
    pub(super) failure: &'a mut Option<RemoteError>,
    /// Its actor started (a thread child's start-up, which allocates, is over).
    pub(super) started: bool,
    /// Its process dies, right after the call (`CrashesAfterHandshake`).
    pub(super) crash: Option<ExitStatus>,
    /// When the work it started is over, for an actor that works a while (`Works`).
    pub(super) work_until: &'a mut Option<Timestamp>,
    /// Its work stopped at once, its cancel token saying stop when it started.
    pub(super) stopped_at_start: bool,
    /// What its actor writes on its channel itself as it starts (`WritesOutOfTurn`).
    pub(super) stray: Option<Message>,
    /// Its actor closes its end of the channel as it starts (`ClosesChannel`).
    pub(super) closes_channel: bool,
}

impl Script<'_> {
    /// Starts the actor as its behaviour says: it may stop yielding, leak its channel, crash,
    /// or fail at its next step.
    fn start(&mut self) {
        self.started = true;
        let now = self.now;
        match self.behaviour.clone() {
            Behaviour::Blocks { ms } => {
                *self.block = Block::Until(now + std::time::Duration::from_millis(ms))
            }
            Behaviour::BlocksForever => *self.block = Block::Forever,
            Behaviour::LeaksChannel { hold_ms } => {
                // A detached helper in its own group keeps the channel open; the actor hangs.
                if self.is_process {
                    *self.helper_until = Some(now + std::time::Duration::from_millis(hold_ms));
                }
                *self.block = Block::Forever;
            }
            Behaviour::CrashesAfterHandshake { code } => {
                note(self.trace, now, self.who, || {
                    "crashes after its handshake".into()
                });
                self.crash = Some(ExitStatus::Exited(code));
                return;
            }
            Behaviour::FailsActor { message } | Behaviour::ReportsFailureTwice { message } => {
                *self.failure = Some(RemoteError::new(RemoteErrorKind::Panic, &message))
            }
            Behaviour::ClosesChannel => {
                self.closes_channel = self.is_process;
                *self.block = Block::Forever;
            }
            Behaviour::WritesOutOfTurn { message } if self.is_process => {
                self.stray = Some(message.message());
            }
            _ => {}
        }
        let blocked = *self.block != Block::No;
        note(self.trace, now, self.who, || {
            if blocked {
                "starts its actor, which stops yielding".into()
            } else {
                "starts its actor".into()
            }
        });
    }
}

impl Script<'_> {
    /// Starts a request's or the main function's work, which ends at a later step. Long work
    /// (`Works`) asks its cancel token first, and stops at once if it says stop.
    fn work(&mut self, cancel: &Cancel<'_>) -> Ends<Reply> {
        let Behaviour::Works { ms } = *self.behaviour else {
            return Ends::Later;
        };
        if cancel.is_cancelled() {
            self.stopped_at_start = true;
            note(self.trace, self.now, self.who, || {
                "its work asks its cancel token: stop; it returns at once".into()
            });
            return Ends::Now(Ok(STOPPED_EARLY.to_vec()));
        }
        *self.work_until = Some(self.now + std::time::Duration::from_millis(ms));
        Ends::Later
    }
}

impl ActorCode for Script<'_> {
    fn start_daemon(&mut self, _: &str) -> Result<bool, RemoteError> {
        self.start();
        Ok(false)
    }

    fn start_main(&mut self, _: &str) -> Result<(), RemoteError> {
        self.start();
        Ok(())
    }

    /// Its main function returns at a later step ([`main_result`]).
    fn run_main(&mut self, cancel: &Cancel<'_>) -> Ends<Reply> {
        self.work(cancel)
    }

    /// Its requests end at a later step.
    fn handle(&mut self, _: RequestId, _: Vec<u8>, cancel: &Cancel<'_>) -> Ends<Reply> {
        self.work(cancel)
    }

    /// A scripted actor opens no nursery of its own.
    fn teardown_subtree(&mut self) {}
}

/// What a main function running `behaviour` returns.
pub(super) fn main_result(behaviour: &Behaviour) -> Reply {
    match behaviour {
        Behaviour::FailsMain { message } => Err(RemoteError::new(RemoteErrorKind::Error, message)),
        _ => Ok(b"done".to_vec()),
    }
}

/// Adds a line to the trace, if one is kept.
pub(super) fn note(trace: &Trace, now: Timestamp, who: &str, what: impl FnOnce() -> String) {
    if let Some(lines) = trace.borrow_mut().as_mut() {
        lines.push(line(now, who, &what()));
    }
}
