//! What a child runs: a daemon that serves requests, or a task that runs to a result; and the
//! [`Cancel`] token through which either learns that its work should stop.
//!
//! The child's event loop ([`crate::driver::run_child`], over
//! [`crate::child_loop::ChildLoop`]) calls actor code inline, one call at a time, through
//! [`ActorCode`]. While a call runs, the loop reads nothing from the parent by itself: only a
//! [`Cancel`] the code asks looks at the channel. A call that panics is caught by the
//! platform ([`crate::driver::ChildOs::catch_panic`]): in a request, its caller gets the
//! panic as a remote error of kind `Panic`; anywhere, the actor has failed, and the child
//! reports it and stops, which cancels its siblings (its state is unknown after a panic, so
//! it serves nothing more).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;

use crate::id::RequestId;
use crate::wire::{RemoteError, Role};

/// An actor that serves requests until its child is stopped ([`Role::Daemon`]).
pub trait Daemon {
    /// Starts the daemon, before any request. `Err` is a failure outside any request: the
    /// child reports it and stops.
    fn start(&mut self, name: &str) -> Result<(), RemoteError> {
        let _ = name;
        Ok(())
    }

    /// Answers one request: `Ok` is the reply's payload; `Err` reaches the caller as a remote
    /// error, and the daemon keeps serving.
    ///
    /// A long request should ask `cancel` at its checkpoints and return once it says the
    /// child is cancelled: its reply still goes out, and the child can then acknowledge its
    /// cancel and exit before the kill grace. One that does not is killed at the grace.
    fn handle(
        &mut self,
        id: RequestId,
        payload: Vec<u8>,
        cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError>;

    /// Whether the daemon opened its own nursery, which a cancel must close before the child
    /// acknowledges. Asked once, right after [`Daemon::start`].
    fn supervises(&self) -> bool {
        false
    }

    /// Tears the daemon's own nursery down, blocking until it has closed.
    fn teardown_subtree(&mut self) {}
}

/// An actor that runs once to a result ([`Role::RunToResult`]); it takes no requests.
pub trait Task {
    /// Prepares the task. `Err` is a failure outside the result: the child reports it and
    /// stops.
    fn start(&mut self, name: &str) -> Result<(), RemoteError> {
        let _ = name;
        Ok(())
    }

    /// Runs the task: its result is the child's result. A long task should ask `cancel` at
    /// its checkpoints, as a long request does ([`Daemon::handle`]).
    fn run(&mut self, cancel: &Cancel<'_>) -> Result<Vec<u8>, RemoteError>;
}

/// A child's actor, by its role.
pub enum Actor {
    /// It serves requests until stopped.
    Daemon(Box<dyn Daemon + Send>),
    /// It runs once to a result.
    Task(Box<dyn Task + Send>),
}

impl Actor {
    /// The role a child running this actor must be spawned with.
    pub fn role(&self) -> Role {
        match self {
            Actor::Daemon(_) => Role::Daemon,
            Actor::Task(_) => Role::RunToResult,
        }
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor::{:?}", self.role())
    }
}

/// What a request's or a main function's work ends with: the reply's payload (the result),
/// or the error its caller gets.
pub type Reply = Result<Vec<u8>, RemoteError>;

/// When actor work the child's loop started ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ends<T> {
    /// It has ended, with this.
    Now(T),
    /// It goes on: whoever runs it tells the loop how it ended, later
    /// ([`crate::child_loop::ChildLoop::work_ended`], `main_ended`).
    Later,
}

/// The actor as the child's event loop ([`crate::child_loop::ChildLoop`]) runs it: one call
/// per runtime command, each actor code, run under the platform's panic catch.
///
/// [`Actor`] runs every call to its end, inline; a scripted actor of a step-wise world may
/// let a request's or a main function's work end later.
pub trait ActorCode {
    /// Starts a daemon ([`Daemon::start`]): whether it opened a nursery of its own
    /// ([`Daemon::supervises`]), or why it failed.
    fn start_daemon(&mut self, name: &str) -> Result<bool, RemoteError>;
    /// Prepares a run-to-result actor ([`Task::start`]).
    fn start_main(&mut self, name: &str) -> Result<(), RemoteError>;
    /// Runs a run-to-result actor's main function ([`Task::run`]).
    fn run_main(&mut self, cancel: &Cancel<'_>) -> Ends<Reply>;
    /// Serves one request ([`Daemon::handle`]).
    fn handle(&mut self, id: RequestId, payload: Vec<u8>, cancel: &Cancel<'_>) -> Ends<Reply>;
    /// Tears a daemon's own nursery down, blocking until it has closed.
    fn teardown_subtree(&mut self);
}

impl ActorCode for Actor {
    /// A run-to-result actor refuses to start as a daemon.
    fn start_daemon(&mut self, name: &str) -> Result<bool, RemoteError> {
        match self {
            Actor::Daemon(daemon) => daemon.start(name).map(|()| daemon.supervises()),
            Actor::Task(_) => Err(RemoteError::refused(format!(
                "actor `{name}` runs to a result: spawn it with Role::RunToResult"
            ))),
        }
    }

    /// A daemon refuses to run to a result.
    fn start_main(&mut self, name: &str) -> Result<(), RemoteError> {
        match self {
            Actor::Task(task) => task.start(name),
            Actor::Daemon(_) => Err(RemoteError::refused(format!(
                "actor `{name}` is a daemon: spawn it with Role::Daemon"
            ))),
        }
    }

    /// Only a task that started runs (the loop runs a main only after its start).
    fn run_main(&mut self, cancel: &Cancel<'_>) -> Ends<Reply> {
        match self {
            Actor::Task(task) => Ends::Now(task.run(cancel)),
            Actor::Daemon(_) => {
                Ends::Now(Err(RemoteError::refused("a daemon has no main function")))
            }
        }
    }

    /// A run-to-result actor answers every request with a refusal.
    fn handle(&mut self, id: RequestId, payload: Vec<u8>, cancel: &Cancel<'_>) -> Ends<Reply> {
        match self {
            Actor::Daemon(daemon) => Ends::Now(daemon.handle(id, payload, cancel)),
            Actor::Task(_) => Ends::Now(Err(RemoteError::refused(
                "a run-to-result actor takes no requests",
            ))),
        }
    }

    fn teardown_subtree(&mut self) {
        if let Actor::Daemon(daemon) = self {
            daemon.teardown_subtree();
        }
    }
}

/// Where a [`Cancel`] asks: the child's event loop.
pub(crate) trait Checkpoint {
    /// Reads what arrived from the parent without blocking, feeds it to the child runtime,
    /// and says whether the runtime wants work in progress to stop.
    fn interrupted(&mut self) -> bool;
}

/// Whether the work an actor is doing should stop: its child was cancelled, its parent is
/// gone, or the parent broke the protocol.
///
/// [`Cancel::is_cancelled`] is where the child's event loop meets its actor's long work: it
/// reads what the parent sent meanwhile (one non-blocking read, or a few), feeds it to the
/// child runtime, and answers whether the runtime has asked in-flight work to stop (the
/// moment it issues `ChildCommand::InterruptWork`). Once it has said yes it says yes for
/// good, without reading again. Ask it at checkpoints (every few milliseconds of work), not
/// in an innermost loop: each call that has not yet said yes costs a system call.
pub struct Cancel<'a> {
    checkpoint: Option<RefCell<&'a mut dyn Checkpoint>>,
    cancelled: Cell<bool>,
}

impl<'a> Cancel<'a> {
    /// The token of work run by the child's event loop.
    pub(crate) fn new(checkpoint: &'a mut dyn Checkpoint) -> Self {
        Cancel {
            checkpoint: Some(RefCell::new(checkpoint)),
            cancelled: Cell::new(false),
        }
    }

    /// Whether the work should stop now.
    pub fn is_cancelled(&self) -> bool {
        if !self.cancelled.get()
            && let Some(checkpoint) = &self.checkpoint
            // The checkpoint runs no actor code, so it is never asked while it answers.
            && let Ok(mut checkpoint) = checkpoint.try_borrow_mut()
        {
            self.cancelled.set(checkpoint.interrupted());
        }
        self.cancelled.get()
    }
}

impl Cancel<'static> {
    /// A token that is never cancelled: for calling an actor outside a child, as a unit test
    /// of the actor does.
    pub fn never() -> Self {
        Cancel {
            checkpoint: None,
            cancelled: Cell::new(false),
        }
    }
}

impl fmt::Debug for Cancel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.cancelled.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says yes from its third question on; counts the questions.
    struct Third(u32);

    impl Checkpoint for Third {
        fn interrupted(&mut self) -> bool {
            self.0 += 1;
            self.0 >= 3
        }
    }

    #[test]
    fn a_token_asks_until_it_is_cancelled_then_stays_cancelled() {
        let mut third = Third(0);
        {
            let cancel = Cancel::new(&mut third);
            assert!(!cancel.is_cancelled());
            assert!(!cancel.is_cancelled());
            assert!(cancel.is_cancelled());
            assert!(cancel.is_cancelled());
        }
        assert_eq!(third.0, 3, "not asked again once it said yes");
    }

    #[test]
    fn the_never_token_is_never_cancelled() {
        assert!(!Cancel::never().is_cancelled());
    }
}
