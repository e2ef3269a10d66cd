//! The child runtime: the child side of the protocol, from boot to exit, sans-IO.
//!
//! ```text
//!  Booting ──start: send Handshake──▶ AwaitingSpec ──SpawnSpec──▶ Serving
//!                                         │                          │
//!                                  cancel / parent EOF      cancel / parent EOF / actor failure
//!                                         ▼                          ▼
//!                                       Cancelling: in-flight work and own nursery finish
//!                                         │ all done
//!                                         ▼
//!                     send CancelAck (if the parent asked) ──▶ Exiting ──▶ exit
//! ```
//!
//! The child acknowledges a cancel only after its in-flight work has finished and its own
//! nursery (if it supervises children) has closed. EOF on the parent channel without a cancel
//! means the parent is gone: the child cancels itself.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::coverage::{Carried, ChildInputKind, Coverage};
use crate::flaw::{Flaw, Flaws};
use crate::id::RequestId;
use crate::wire::{FrameError, Message, PROTOCOL_VERSION, RemoteError, Role};

/// Where the child runtime is, named for what it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChildPhase {
    /// Not started.
    Booting,
    /// Handshake sent; waiting for the spawn spec.
    AwaitingSpec,
    /// Running its actor and serving requests.
    Serving,
    /// Stopping: waiting for in-flight work and its own nursery to finish.
    Cancelling,
    /// Acked; waiting for the parent's EOF before exiting (only with flaw F4).
    AwaitingParentEof,
    /// The exit command is out.
    Exited,
}

impl ChildPhase {
    /// Every phase, in declaration order.
    pub const ALL: [ChildPhase; 6] = [
        ChildPhase::Booting,
        ChildPhase::AwaitingSpec,
        ChildPhase::Serving,
        ChildPhase::Cancelling,
        ChildPhase::AwaitingParentEof,
        ChildPhase::Exited,
    ];
}

impl fmt::Display for ChildPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why the child is stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopCause {
    /// The parent sent a cancel: acknowledge when done.
    ParentCancel,
    /// The parent channel reached EOF: the parent is gone; no ack is possible.
    ParentGone,
    /// The actor failed; the failure was reported.
    ActorFailed,
    /// The parent sent something that broke the protocol.
    ProtocolError,
}

/// An order from the child runtime to its driver.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChildCommand {
    /// Send this message to the parent.
    Send(Message),
    /// Run the actor's main function (run-to-result); report with `handle_main_done`.
    StartMain {
        /// The actor to run.
        actor: String,
    },
    /// Start the actor (daemon); it serves requests until cancelled.
    StartActor {
        /// The actor to run.
        actor: String,
    },
    /// Run one request on the actor; report with `handle_work_done`.
    StartRequest {
        /// The request's id.
        id: RequestId,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Ask in-flight work to stop at its next checkpoint.
    InterruptWork,
    /// Tear down the child's own nursery; report with `handle_subtree_closed`.
    TeardownSubtree,
    /// Exit the process (or return from the thread) with this code.
    Exit(i32),
}

/// The child side of the protocol.
///
/// # Calling contract
///
/// Call [`ChildRuntime::start`] once, then feed what happens (`handle_message`,
/// `handle_parent_eof`, `handle_work_done`, ...). After each call drain
/// [`ChildRuntime::poll_command`] and execute in order. After `Exit` nothing more is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildRuntime {
    phase: ChildPhase,
    pid: u32,
    flaws: Flaws,
    max_in_flight: u32,
    role: Option<Role>,
    /// How many requests' work may run at once: 1 for an actor that serves one call at a
    /// time (the default), more for one whose calls interleave (an async actor).
    concurrency: u32,
    /// Requests whose work has started and not finished: at most `concurrency` (all of them
    /// with flaw F18).
    in_flight: Vec<RequestId>,
    /// Requests accepted and not started, in arrival order: each starts once the reply of
    /// the one before it is out.
    queued: VecDeque<(RequestId, Vec<u8>)>,
    main_running: bool,
    subtree_open: bool,
    stop: Option<StopCause>,
    commands: VecDeque<ChildCommand>,
    /// The cells its inputs reached since an engine last took them; no part of its identity.
    coverage: Carried,
}

/// An input the child runtime cannot take in its current phase.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildInputError {
    /// The input's name.
    pub input: &'static str,
    /// The phase it arrived in.
    pub phase: ChildPhase,
}

impl fmt::Display for ChildInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "child runtime input {} is not valid while {}",
            self.input, self.phase
        )
    }
}

impl core::error::Error for ChildInputError {}

type Accepted = Result<(), ChildInputError>;

impl ChildRuntime {
    /// A runtime for a child with this pid (0 for thread children).
    pub fn new(pid: u32, flaws: Flaws, max_in_flight: u32) -> Self {
        ChildRuntime {
            phase: ChildPhase::Booting,
            pid,
            flaws,
            max_in_flight,
            role: None,
            concurrency: 1,
            in_flight: Vec::new(),
            queued: VecDeque::new(),
            main_running: false,
            subtree_open: false,
            stop: None,
            commands: VecDeque::new(),
            coverage: Carried::default(),
        }
    }

    /// This runtime with up to `concurrency` requests' work running at once (at least 1;
    /// `max_in_flight` still bounds the requests accepted, started or not).
    ///
    /// With more than one, a request's reply goes out when its own work completes, in the
    /// order work completes, not the order requests came. Property 15 (an answer the child
    /// computed is delivered, even if the child dies in a later request) holds as long as
    /// the driver sends each reply before it runs any more actor code: the reply is the
    /// command [`ChildRuntime::handle_work_done`] queues, ahead of any start it queues, so
    /// an answer is out before the code that could kill the child runs again. A cancel is
    /// acknowledged only once every started request has finished.
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Where it is.
    pub fn phase(&self) -> ChildPhase {
        self.phase
    }

    /// Why it is stopping, if it is.
    pub fn stop_cause(&self) -> Option<StopCause> {
        self.stop
    }

    /// The cells its inputs reached since the last call, taken out.
    pub fn take_coverage(&mut self) -> Coverage {
        core::mem::take(&mut self.coverage.0)
    }

    /// Records an input arriving in the current phase (the coverage hook).
    fn arrived(&mut self, input: ChildInputKind) {
        self.coverage.0.child_input(self.phase, input);
    }

    /// The next command for the driver.
    pub fn poll_command(&mut self) -> Option<ChildCommand> {
        self.commands.pop_front()
    }

    /// Boots: sends the handshake.
    pub fn start(&mut self) -> Accepted {
        self.arrived(ChildInputKind::Start);
        self.expect(self.phase == ChildPhase::Booting, "start")?;
        self.phase = ChildPhase::AwaitingSpec;
        let pid = self.pid;
        self.send(Message::Handshake {
            version: PROTOCOL_VERSION,
            pid,
        });
        Ok(())
    }

    /// The child opened its own nursery: a cancel must close it before acknowledging.
    pub fn supervise(&mut self) -> Accepted {
        self.arrived(ChildInputKind::Supervise);
        self.expect(self.phase == ChildPhase::Serving, "supervise")?;
        self.subtree_open = true;
        Ok(())
    }

    /// A message arrived from the parent.
    pub fn handle_message(&mut self, message: Message) -> Accepted {
        self.arrived(ChildInputKind::Message(message.kind()));
        self.expect(self.accepts_input(), "message")?;
        match (self.phase, message) {
            (ChildPhase::AwaitingSpec, Message::SpawnSpec { actor, role }) => {
                self.role = Some(role);
                self.phase = ChildPhase::Serving;
                if role == Role::RunToResult {
                    self.main_running = true;
                    self.commands.push_back(ChildCommand::StartMain { actor });
                } else {
                    self.commands.push_back(ChildCommand::StartActor { actor });
                }
            }
            (ChildPhase::AwaitingSpec | ChildPhase::Serving, Message::Cancel) => {
                self.begin_stop(StopCause::ParentCancel);
            }
            (ChildPhase::Serving, Message::Request { id, payload }) => self.on_request(id, payload),
            (
                ChildPhase::Cancelling | ChildPhase::AwaitingParentEof,
                Message::Request { id, .. },
            ) => {
                let err = RemoteError::refused("the actor is cancelling and takes no new requests");
                self.send(Message::Reply {
                    id,
                    result: Err(err),
                });
            }
            // A second cancel while stopping changes nothing.
            (ChildPhase::Cancelling | ChildPhase::AwaitingParentEof, Message::Cancel) => {}
            (_, _) => self.begin_stop(StopCause::ProtocolError),
        }
        Ok(())
    }

    /// A frame from the parent did not decode: stop, as for a broken channel.
    pub fn handle_malformed(&mut self, err: FrameError) -> Accepted {
        self.arrived(ChildInputKind::Malformed);
        self.expect(self.accepts_input(), "malformed")?;
        let _ = err;
        self.begin_stop(StopCause::ProtocolError);
        Ok(())
    }

    /// The parent channel reached EOF.
    pub fn handle_parent_eof(&mut self) -> Accepted {
        self.arrived(ChildInputKind::ParentEof);
        self.expect(
            self.phase != ChildPhase::Exited && self.phase != ChildPhase::Booting,
            "parent_eof",
        )?;
        match self.phase {
            ChildPhase::AwaitingParentEof => self.exit(),
            ChildPhase::Serving | ChildPhase::AwaitingSpec
                if self.flaws.has(Flaw::NoSelfCancelOnParentEof) => {}
            ChildPhase::Serving | ChildPhase::AwaitingSpec => {
                self.begin_stop(StopCause::ParentGone)
            }
            _ => {
                // Already stopping; the ack can no longer be delivered.
                if self.stop == Some(StopCause::ParentCancel) {
                    self.stop = Some(StopCause::ParentGone);
                }
            }
        }
        Ok(())
    }

    /// A request finished on the actor.
    pub fn handle_work_done(
        &mut self,
        id: RequestId,
        result: Result<Vec<u8>, RemoteError>,
    ) -> Accepted {
        self.arrived(ChildInputKind::WorkDone);
        let pos = self.in_flight.iter().position(|r| *r == id);
        let Some(pos) = pos.filter(|_| self.phase != ChildPhase::Exited) else {
            return Err(ChildInputError {
                input: "work_done",
                phase: self.phase,
            });
        };
        self.in_flight.remove(pos);
        self.send(Message::Reply { id, result });
        self.start_next_request();
        self.maybe_finish();
        Ok(())
    }

    /// A request's handler panicked: its caller gets the panic as the reply, then the actor
    /// has failed and the child stops, as for [`ChildRuntime::handle_actor_failed`].
    ///
    /// After a panic the actor's state is unknown (it may have been left half-updated), so it
    /// serves nothing more; the failure report makes the panic a child failure, which cancels
    /// the child's siblings (one cancels all). Its reply goes out first, so the caller learns
    /// of the panic from its own request, not from the child's death.
    pub fn handle_work_panicked(&mut self, id: RequestId, err: RemoteError) -> Accepted {
        let pos = self.in_flight.iter().position(|r| *r == id);
        let Some(pos) = pos.filter(|_| self.phase != ChildPhase::Exited) else {
            return Err(ChildInputError {
                input: "work_panicked",
                phase: self.phase,
            });
        };
        self.in_flight.remove(pos);
        self.send(Message::Reply {
            id,
            result: Err(err.clone()),
        });
        self.actor_failed(err);
        // Already stopping (a cancel came first): this work was what it waited for.
        self.maybe_finish();
        Ok(())
    }

    /// The run-to-result main function returned.
    pub fn handle_main_done(&mut self, result: Result<Vec<u8>, RemoteError>) -> Accepted {
        self.arrived(ChildInputKind::MainDone);
        self.expect(
            self.main_running && self.phase != ChildPhase::Exited,
            "main_done",
        )?;
        self.main_running = false;
        self.send(Message::Finished { result });
        self.maybe_finish();
        Ok(())
    }

    /// The actor failed outside any request: refuse the requests it has not run, report the
    /// failure, then stop.
    pub fn handle_actor_failed(&mut self, err: RemoteError) -> Accepted {
        self.arrived(ChildInputKind::ActorFailed);
        self.expect(
            matches!(self.phase, ChildPhase::Serving | ChildPhase::Cancelling),
            "actor_failed",
        )?;
        self.main_running = false;
        self.actor_failed(err);
        Ok(())
    }

    /// The child's own nursery closed.
    pub fn handle_subtree_closed(&mut self) -> Accepted {
        self.arrived(ChildInputKind::SubtreeClosed);
        self.expect(self.subtree_open, "subtree_closed")?;
        self.subtree_open = false;
        self.maybe_finish();
        Ok(())
    }

    fn accepts_input(&self) -> bool {
        !matches!(self.phase, ChildPhase::Booting | ChildPhase::Exited)
    }

    fn on_request(&mut self, id: RequestId, payload: Vec<u8>) {
        if self.in_flight.len() + self.queued.len() >= self.max_in_flight as usize {
            let err = RemoteError::refused("too many requests in flight");
            self.send(Message::Reply {
                id,
                result: Err(err),
            });
            return;
        }
        self.queued.push_back((id, payload));
        if self.flaws.has(Flaw::RepliesQueuedBehindLaterWork) {
            while !self.queued.is_empty() {
                self.start_request();
            }
        } else {
            self.start_next_request();
        }
    }

    /// Starts the oldest queued requests while fewer than `concurrency` are running: the
    /// reply of the request that just finished is already among the commands, ahead of these
    /// starts, so a child that dies in their work has sent every answer it computed before
    /// (property 15).
    fn start_next_request(&mut self) {
        while self.in_flight.len() < self.concurrency as usize && !self.queued.is_empty() {
            self.start_request();
        }
    }

    fn start_request(&mut self) {
        if let Some((id, payload)) = self.queued.pop_front() {
            self.in_flight.push(id);
            self.commands
                .push_back(ChildCommand::StartRequest { id, payload });
        }
    }

    /// The actor failed: it runs nothing more. Every other request accepted is answered
    /// with a refusal, then the failure is reported and the child stops. With one call at a
    /// time none of them has begun (with flaw F18 their starts are among the commands and are
    /// taken back); with more, the work of those started is dropped unfinished (the driver
    /// drops it once the actor has failed).
    fn actor_failed(&mut self, err: RemoteError) {
        self.commands
            .retain(|c| !matches!(c, ChildCommand::StartRequest { .. }));
        let not_begun = "the actor failed before this request ran";
        let started = match self.concurrency {
            1 => not_begun,
            _ => "the actor failed while this request ran; its work was dropped",
        };
        for id in core::mem::take(&mut self.in_flight) {
            self.refuse(id, started);
        }
        while let Some((id, _)) = self.queued.pop_front() {
            self.refuse(id, not_begun);
        }
        self.send(Message::Failed(err));
        self.begin_stop(StopCause::ActorFailed);
    }

    fn begin_stop(&mut self, cause: StopCause) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(cause);
        self.phase = ChildPhase::Cancelling;
        if !self.in_flight.is_empty() || !self.queued.is_empty() || self.main_running {
            self.commands.push_back(ChildCommand::InterruptWork);
        }
        if self.subtree_open {
            self.commands.push_back(ChildCommand::TeardownSubtree);
        }
        self.maybe_finish();
    }

    fn maybe_finish(&mut self) {
        let idle = self.in_flight.is_empty()
            && self.queued.is_empty()
            && !self.main_running
            && !self.subtree_open;
        if self.phase != ChildPhase::Cancelling || !idle {
            return;
        }
        match self.stop {
            Some(StopCause::ParentCancel) => {
                self.send(Message::CancelAck);
                if self.flaws.has(Flaw::MutualWaitAtTeardown) {
                    self.phase = ChildPhase::AwaitingParentEof;
                } else {
                    self.exit();
                }
            }
            _ => self.exit(),
        }
    }

    fn exit(&mut self) {
        let code = match self.stop {
            Some(StopCause::ActorFailed) => crate::exit::ACTOR_FAILED,
            Some(StopCause::ProtocolError) => crate::exit::PROTOCOL_ERROR,
            _ => crate::exit::CLEAN,
        };
        self.phase = ChildPhase::Exited;
        self.commands.push_back(ChildCommand::Exit(code));
    }

    fn refuse(&mut self, id: RequestId, why: &str) {
        self.send(Message::Reply {
            id,
            result: Err(RemoteError::refused(why)),
        });
    }

    fn send(&mut self, message: Message) {
        self.commands.push_back(ChildCommand::Send(message));
    }

    fn expect(&self, ok: bool, input: &'static str) -> Accepted {
        if ok {
            Ok(())
        } else {
            Err(ChildInputError {
                input,
                phase: self.phase,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn drain(c: &mut ChildRuntime) -> Vec<ChildCommand> {
        core::iter::from_fn(|| c.poll_command()).collect()
    }

    fn serving(role: Role, flaws: Flaws) -> ChildRuntime {
        let mut c = ChildRuntime::new(42, flaws, 2);
        c.start().unwrap();
        c.handle_message(Message::SpawnSpec {
            actor: "echo".into(),
            role,
        })
        .unwrap();
        drain(&mut c);
        c
    }

    fn send(m: Message) -> ChildCommand {
        ChildCommand::Send(m)
    }

    #[test]
    fn start_sends_the_handshake_with_version_and_pid() {
        let mut c = ChildRuntime::new(42, Flaws::NONE, 2);
        c.start().unwrap();
        assert_eq!(
            drain(&mut c),
            vec![send(Message::Handshake {
                version: PROTOCOL_VERSION,
                pid: 42
            })]
        );
        assert_eq!(
            c.start(),
            Err(ChildInputError {
                input: "start",
                phase: ChildPhase::AwaitingSpec
            })
        );
    }

    #[test]
    fn the_spec_starts_a_daemon_or_a_main() {
        let mut c = ChildRuntime::new(1, Flaws::NONE, 2);
        c.start().unwrap();
        drain(&mut c);
        c.handle_message(Message::SpawnSpec {
            actor: "a".into(),
            role: Role::RunToResult,
        })
        .unwrap();
        assert_eq!(
            drain(&mut c),
            vec![ChildCommand::StartMain { actor: "a".into() }]
        );
        assert_eq!(c.phase(), ChildPhase::Serving);
    }

    #[test]
    fn requests_run_and_reply_and_the_limit_refuses_more() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        for i in 0..3 {
            c.handle_message(Message::Request {
                id: RequestId(i),
                payload: vec![],
            })
            .unwrap();
        }
        // Two accepted (the limit is 2), the first started; the third refused at once.
        let cmds = drain(&mut c);
        assert_eq!(
            cmds,
            vec![
                ChildCommand::StartRequest {
                    id: RequestId(0),
                    payload: vec![]
                },
                send(Message::Reply {
                    id: RequestId(2),
                    result: Err(RemoteError::refused("too many requests in flight"))
                }),
            ]
        );
        // The next starts only once the first's reply is out, and behind it.
        c.handle_work_done(RequestId(0), Ok(vec![1])).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![
                send(Message::Reply {
                    id: RequestId(0),
                    result: Ok(vec![1])
                }),
                ChildCommand::StartRequest {
                    id: RequestId(1),
                    payload: vec![]
                },
            ]
        );
        assert!(
            c.handle_work_done(RequestId(0), Ok(vec![])).is_err(),
            "a request completes once"
        );
    }

    /// A daemon runtime serving with `concurrency` and room for `max_in_flight` requests.
    fn concurrent(concurrency: u32, max_in_flight: u32) -> ChildRuntime {
        let mut c = ChildRuntime::new(42, Flaws::NONE, max_in_flight).with_concurrency(concurrency);
        c.start().unwrap();
        c.handle_message(Message::SpawnSpec {
            actor: "echo".into(),
            role: Role::Daemon,
        })
        .unwrap();
        drain(&mut c);
        c
    }

    fn request(c: &mut ChildRuntime, id: u64) {
        c.handle_message(Message::Request {
            id: RequestId(id),
            payload: vec![],
        })
        .unwrap();
    }

    fn start(id: u64) -> ChildCommand {
        ChildCommand::StartRequest {
            id: RequestId(id),
            payload: vec![],
        }
    }

    fn reply(id: u64, byte: u8) -> ChildCommand {
        send(Message::Reply {
            id: RequestId(id),
            result: Ok(vec![byte]),
        })
    }

    #[test]
    fn with_concurrency_two_requests_start_at_once_and_reply_as_they_complete() {
        let mut c = concurrent(2, 8);
        request(&mut c, 0);
        request(&mut c, 1);
        assert_eq!(drain(&mut c), vec![start(0), start(1)]);
        // The second finishes first: its reply goes out first, the first still runs.
        c.handle_work_done(RequestId(1), Ok(vec![1])).unwrap();
        assert_eq!(drain(&mut c), vec![reply(1, 1)]);
        c.handle_work_done(RequestId(0), Ok(vec![0])).unwrap();
        assert_eq!(drain(&mut c), vec![reply(0, 0)]);
    }

    #[test]
    fn with_concurrency_the_bound_holds_and_a_finished_request_makes_room_behind_its_reply() {
        let mut c = concurrent(2, 8);
        for id in 0..4 {
            request(&mut c, id);
        }
        assert_eq!(drain(&mut c), vec![start(0), start(1)], "two at most");
        c.handle_work_done(RequestId(0), Ok(vec![0])).unwrap();
        assert_eq!(drain(&mut c), vec![reply(0, 0), start(2)]);
        c.handle_work_done(RequestId(2), Ok(vec![2])).unwrap();
        assert_eq!(drain(&mut c), vec![reply(2, 2), start(3)]);
    }

    #[test]
    fn with_concurrency_max_in_flight_still_refuses_past_it() {
        let mut c = concurrent(4, 3);
        for id in 0..4 {
            request(&mut c, id);
        }
        assert_eq!(
            drain(&mut c),
            vec![
                start(0),
                start(1),
                start(2),
                send(Message::Reply {
                    id: RequestId(3),
                    result: Err(RemoteError::refused("too many requests in flight"))
                }),
            ]
        );
    }

    #[test]
    fn with_concurrency_a_cancel_is_acked_only_after_every_started_request_finished() {
        let mut c = concurrent(2, 8);
        request(&mut c, 0);
        request(&mut c, 1);
        drain(&mut c);
        c.handle_message(Message::Cancel).unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::InterruptWork]);
        c.handle_work_done(RequestId(0), Ok(vec![0])).unwrap();
        assert_eq!(drain(&mut c), vec![reply(0, 0)], "one still runs: no ack");
        c.handle_work_done(RequestId(1), Ok(vec![1])).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![reply(1, 1), send(Message::CancelAck), ChildCommand::Exit(0)]
        );
    }

    #[test]
    fn with_concurrency_a_panic_refuses_the_work_still_running_and_what_waits() {
        let mut c = concurrent(2, 8);
        for id in 0..3 {
            request(&mut c, id);
        }
        drain(&mut c);
        let err = RemoteError::panic("boom");
        c.handle_work_panicked(RequestId(0), err.clone()).unwrap();
        let refused = |id, why: &str| {
            send(Message::Reply {
                id: RequestId(id),
                result: Err(RemoteError::refused(why)),
            })
        };
        assert_eq!(
            drain(&mut c),
            vec![
                send(Message::Reply {
                    id: RequestId(0),
                    result: Err(err.clone())
                }),
                refused(
                    1,
                    "the actor failed while this request ran; its work was dropped"
                ),
                refused(2, "the actor failed before this request ran"),
                send(Message::Failed(err)),
                ChildCommand::Exit(1)
            ]
        );
        assert!(c.handle_work_done(RequestId(1), Ok(vec![])).is_err());
    }

    #[test]
    fn concurrency_zero_is_one() {
        let mut c = concurrent(0, 8);
        request(&mut c, 0);
        request(&mut c, 1);
        assert_eq!(drain(&mut c), vec![start(0)]);
    }

    #[test]
    fn flaw_f18_starts_every_request_at_once_so_replies_wait_behind_later_work() {
        let mut c = serving(
            Role::Daemon,
            Flaws::only(Flaw::RepliesQueuedBehindLaterWork),
        );
        for i in 0..2 {
            c.handle_message(Message::Request {
                id: RequestId(i),
                payload: vec![],
            })
            .unwrap();
        }
        let starts = drain(&mut c);
        assert!(
            starts
                .iter()
                .all(|c| matches!(c, ChildCommand::StartRequest { .. }))
                && starts.len() == 2
        );
    }

    #[test]
    fn cancel_acks_only_after_in_flight_work_finishes() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_message(Message::Request {
            id: RequestId(1),
            payload: vec![],
        })
        .unwrap();
        drain(&mut c);
        c.handle_message(Message::Cancel).unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::InterruptWork]);
        c.handle_message(Message::Request {
            id: RequestId(2),
            payload: vec![],
        })
        .unwrap();
        assert!(matches!(
            drain(&mut c)[..],
            [ChildCommand::Send(Message::Reply { result: Err(_), .. })]
        ));
        c.handle_work_done(RequestId(1), Ok(vec![])).unwrap();
        let cmds = drain(&mut c);
        assert_eq!(cmds[1..], [send(Message::CancelAck), ChildCommand::Exit(0)]);
    }

    #[test]
    fn cancel_with_an_own_nursery_tears_it_down_first() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.supervise().unwrap();
        c.handle_message(Message::Cancel).unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::TeardownSubtree]);
        c.handle_subtree_closed().unwrap();
        assert_eq!(
            drain(&mut c),
            vec![send(Message::CancelAck), ChildCommand::Exit(0)]
        );
    }

    #[test]
    fn parent_eof_means_the_parent_is_gone_and_the_child_cancels_itself() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_parent_eof().unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::Exit(0)]);
        assert_eq!(c.stop_cause(), Some(StopCause::ParentGone));
    }

    #[test]
    fn flaw_f14_keeps_serving_after_parent_eof() {
        let mut c = serving(Role::Daemon, Flaws::only(Flaw::NoSelfCancelOnParentEof));
        c.handle_parent_eof().unwrap();
        assert!(drain(&mut c).is_empty());
        assert_eq!(c.phase(), ChildPhase::Serving);
    }

    #[test]
    fn flaw_f4_waits_for_parent_eof_after_the_ack() {
        let mut c = serving(Role::Daemon, Flaws::only(Flaw::MutualWaitAtTeardown));
        c.handle_message(Message::Cancel).unwrap();
        assert_eq!(drain(&mut c), vec![send(Message::CancelAck)]);
        assert_eq!(c.phase(), ChildPhase::AwaitingParentEof);
        // Acked: a request now is refused, never started.
        c.handle_message(Message::Request {
            id: RequestId(3),
            payload: vec![],
        })
        .unwrap();
        assert!(matches!(
            drain(&mut c)[..],
            [ChildCommand::Send(Message::Reply {
                id: RequestId(3),
                result: Err(_)
            })]
        ));
        c.handle_parent_eof().unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::Exit(0)]);
    }

    #[test]
    fn main_result_is_sent_and_actor_failure_reports_then_exits_nonzero() {
        let mut c = serving(Role::RunToResult, Flaws::NONE);
        c.handle_main_done(Ok(vec![7])).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![send(Message::Finished {
                result: Ok(vec![7])
            })]
        );
        let err = RemoteError::refused("x");
        c.handle_actor_failed(err.clone()).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![send(Message::Failed(err)), ChildCommand::Exit(1)]
        );
        assert!(
            c.handle_message(Message::Cancel).is_err(),
            "nothing is accepted after exit"
        );
    }

    #[test]
    fn a_panicked_request_replies_with_the_panic_then_the_actor_fails() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_message(Message::Request {
            id: RequestId(3),
            payload: vec![],
        })
        .unwrap();
        drain(&mut c);
        let err = RemoteError::panic("boom");
        c.handle_work_panicked(RequestId(3), err.clone()).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![
                send(Message::Reply {
                    id: RequestId(3),
                    result: Err(err.clone())
                }),
                send(Message::Failed(err.clone())),
                ChildCommand::Exit(1)
            ]
        );
        assert_eq!(c.stop_cause(), Some(StopCause::ActorFailed));
        assert!(
            c.handle_work_panicked(RequestId(3), err).is_err(),
            "a request ends once"
        );
    }

    #[test]
    fn after_a_panic_the_requests_not_yet_run_are_refused_and_never_start() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        for i in 1..=2 {
            c.handle_message(Message::Request {
                id: RequestId(i),
                payload: vec![],
            })
            .unwrap();
        }
        // The driver has taken the first request's start; the second's is still queued.
        assert!(matches!(
            c.poll_command(),
            Some(ChildCommand::StartRequest {
                id: RequestId(1),
                ..
            })
        ));
        let err = RemoteError::panic("boom");
        c.handle_work_panicked(RequestId(1), err.clone()).unwrap();
        let cmds = drain(&mut c);
        assert!(
            !cmds
                .iter()
                .any(|c| matches!(c, ChildCommand::StartRequest { .. })),
            "the failed actor runs nothing more: {cmds:?}"
        );
        assert_eq!(
            cmds[..2],
            [
                send(Message::Reply {
                    id: RequestId(1),
                    result: Err(err.clone())
                }),
                send(Message::Reply {
                    id: RequestId(2),
                    result: Err(RemoteError::refused(
                        "the actor failed before this request ran"
                    ))
                }),
            ]
        );
        assert_eq!(
            cmds[2..],
            [send(Message::Failed(err)), ChildCommand::Exit(1)]
        );
        assert!(c.handle_work_done(RequestId(2), Ok(vec![])).is_err());
    }

    #[test]
    fn a_request_panicking_during_a_cancel_still_reports_the_failure_before_the_ack() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_message(Message::Request {
            id: RequestId(1),
            payload: vec![],
        })
        .unwrap();
        c.handle_message(Message::Cancel).unwrap();
        drain(&mut c);
        let err = RemoteError::panic("boom");
        c.handle_work_panicked(RequestId(1), err.clone()).unwrap();
        assert_eq!(
            drain(&mut c),
            vec![
                send(Message::Reply {
                    id: RequestId(1),
                    result: Err(err.clone())
                }),
                send(Message::Failed(err)),
                send(Message::CancelAck),
                ChildCommand::Exit(0)
            ]
        );
    }

    #[test]
    fn every_input_is_recorded_as_a_cell_of_the_phase_it_arrived_in() {
        use crate::wire::MessageKind;
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_message(Message::Cancel).unwrap();
        let cov = c.take_coverage();
        assert!(cov.child_reached(ChildPhase::Booting, ChildInputKind::Start));
        let spec = ChildInputKind::Message(MessageKind::SpawnSpec);
        assert!(cov.child_reached(ChildPhase::AwaitingSpec, spec));
        let cancel = ChildInputKind::Message(MessageKind::Cancel);
        assert!(cov.child_reached(ChildPhase::Serving, cancel));
        assert!(!cov.child_reached(ChildPhase::Cancelling, cancel));
        assert!(c.handle_message(Message::Cancel).is_err(), "exited");
        assert!(c.take_coverage().child_reached(ChildPhase::Exited, cancel));
    }

    #[test]
    fn a_protocol_error_from_the_parent_stops_the_child() {
        let mut c = serving(Role::Daemon, Flaws::NONE);
        c.handle_message(Message::CancelAck).unwrap();
        assert_eq!(drain(&mut c), vec![ChildCommand::Exit(2)]);
        let mut d = serving(Role::Daemon, Flaws::NONE);
        d.handle_malformed(FrameError::UnknownTag(0)).unwrap();
        assert_eq!(drain(&mut d), vec![ChildCommand::Exit(2)]);
    }
}
