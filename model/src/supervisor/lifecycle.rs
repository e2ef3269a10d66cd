//! One child's lifecycle on the parent side: a pure machine from launch to its final outcome.
//!
//! ```text
//!  Launching ──launched──▶ AwaitingHandshake ──handshake──▶ Serving
//!      │                      │   │    │                      │  │
//!   failed          exit ─────┘   │  boot timeout         cancel  EOF / bad frame
//!      ▼                          │    │                      ▼  ▼
//!    Done              EOF / bad frame  │          AwaitingCancelAck ──ack / EOF──▶ AwaitingExit
//!                                 │    │               │ ack timeout                 │ grace over
//!                                 ▼    ▼               ▼                             ▼
//!                            AwaitingExit    hard stop: Kill ──▶ AwaitingKilledExit (reap bound)
//!                                                       Abandon ──▶ Done (thread leaked, counted)
//!
//!  any waiting state ──exit observed──▶ AwaitingReap ──reaped──▶ Draining ──EOF / drain bound──▶ Done
//! ```
//!
//! Every state that waits on the child has a deadline, except `AwaitingReap`, whose answer the
//! driver gives synchronously. A forceful stop (kill or abandon) of a connected child happens
//! only after a cancel was sent, its channel was seen closed, or the user asked for it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::request::{InFlight, RequestEnd};
use crate::error::{ChildErrorKind, ExitStatus, Initiator, ProtocolViolation};
use crate::flaw::{Flaw, Flaws};
use crate::id::RequestId;
use crate::method::{HardStop, SpawnMethod};
use crate::policy::Timeouts;
use crate::time::Timestamp;
use crate::wire::{Message, MessageKind, PROTOCOL_VERSION, RemoteError, Role};

/// Where a child is in its life, named for what the supervisor is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// The launch command is out; waiting for the driver to say it started.
    Launching,
    /// Started; waiting for its handshake, its death, or the boot timeout.
    AwaitingHandshake,
    /// Connected and serving requests.
    Serving,
    /// Cancel sent; waiting for the ack, its exit, or the ack timeout.
    AwaitingCancelAck,
    /// Acked or channel closed; waiting for its exit within the grace.
    AwaitingExit,
    /// SIGKILL sent; waiting for its exit within the reap bound.
    AwaitingKilledExit,
    /// Exit seen; the reap command is out.
    AwaitingReap,
    /// Reaped; reading late messages until end-of-file or the drain bound.
    Draining,
    /// Finished; the outcome is final.
    Done,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 9] = [
        Phase::Launching,
        Phase::AwaitingHandshake,
        Phase::Serving,
        Phase::AwaitingCancelAck,
        Phase::AwaitingExit,
        Phase::AwaitingKilledExit,
        Phase::AwaitingReap,
        Phase::Draining,
        Phase::Done,
    ];

    /// Whether the child is known to be dead, doomed by SIGKILL, or given up on.
    pub fn known_dead(self) -> bool {
        matches!(
            self,
            Phase::AwaitingKilledExit | Phase::AwaitingReap | Phase::Draining | Phase::Done
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Phase::Launching => "launching",
            Phase::AwaitingHandshake => "awaiting its handshake",
            Phase::Serving => "serving",
            Phase::AwaitingCancelAck => "awaiting its cancel-ack",
            Phase::AwaitingExit => "awaiting its exit",
            Phase::AwaitingKilledExit => "awaiting its exit after SIGKILL",
            Phase::AwaitingReap => "awaiting its reap",
            Phase::Draining => "draining its channel",
            Phase::Done => "done",
        };
        f.write_str(s)
    }
}

/// Why a child was stopped forcefully.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ForceReason {
    /// The user asked for a hard stop.
    UserHardStop,
    /// No handshake within the boot timeout, or a stop was asked for before it.
    BeforeHandshake,
    /// The cancel was not acknowledged in time.
    CancelAckTimedOut,
    /// It acked or closed its channel but did not exit within the grace.
    GraceExpired,
}

/// How a child's life ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The launch failed; no process or thread existed.
    LaunchFailed,
    /// It exited (or its thread returned) without being forced.
    Exited(ExitStatus),
    /// It was killed; the reap reported this status.
    Killed {
        /// Why it was killed.
        reason: ForceReason,
        /// What the reap reported.
        status: ExitStatus,
    },
    /// Its thread was abandoned and leaked on purpose.
    Abandoned(ForceReason),
    /// It was killed but its exit never came within the reap bound, or its reap failed:
    /// its status is unknown.
    Unreaped,
}

impl fmt::Display for ForceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForceReason::UserHardStop => "a hard stop was asked for",
            ForceReason::BeforeHandshake => "it had not completed its handshake",
            ForceReason::CancelAckTimedOut => "it did not acknowledge its cancel in time",
            ForceReason::GraceExpired => "it did not exit within the grace after its cancel",
        })
    }
}

/// How a child ended, in words: "it exited (exit code 0)", "it was killed (signal 9): it did
/// not acknowledge its cancel in time", ...
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::LaunchFailed => f.write_str("its launch failed"),
            Outcome::Exited(status) => write!(f, "it exited ({status})"),
            Outcome::Killed { reason, status } => write!(f, "it was killed ({status}): {reason}"),
            Outcome::Abandoned(reason) => write!(f, "its thread was abandoned: {reason}"),
            Outcome::Unreaped => f.write_str("it was killed, but its exit was never seen"),
        }
    }
}

/// One input to a child's lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Input {
    /// The driver started it.
    Launched,
    /// The driver could not start it.
    LaunchFailed(String),
    /// A decoded message arrived from it.
    Message(Message),
    /// A frame from it did not decode.
    Malformed(crate::wire::FrameError),
    /// Its channel reached end-of-file.
    ChannelClosed,
    /// Its process exited or its thread returned (pidfd readable, thread finished).
    ExitObserved,
    /// The reap (or join) finished with this status.
    Reaped(ExitStatus),
    /// The reap could not be done (its reaper is gone, or the system refused); the text says
    /// why. The status is unknown, and is never made up.
    ReapFailed(String),
    /// Its deadline passed.
    Deadline,
    /// Someone asked it to stop gracefully.
    Cancel(Initiator),
    /// The user asked for a forceful stop.
    HardStop,
    /// The user wants to send it a request, waiting for its answer until the deadline, if
    /// one is given.
    Request(RequestId, Vec<u8>, Option<Timestamp>),
    /// The user gives up a request it sent: its late reply is to be dropped.
    AbandonRequest(RequestId),
}

/// A kind of [`Input`], without its data, a message split by its kind: a column of the
/// lifecycle's coverage table ([`crate::coverage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum InputKind {
    /// [`Input::Launched`].
    Launched,
    /// [`Input::LaunchFailed`].
    LaunchFailed,
    /// [`Input::Message`] of this kind.
    Message(MessageKind),
    /// [`Input::Malformed`].
    Malformed,
    /// [`Input::ChannelClosed`].
    ChannelClosed,
    /// [`Input::ExitObserved`].
    ExitObserved,
    /// [`Input::Reaped`].
    Reaped,
    /// [`Input::ReapFailed`].
    ReapFailed,
    /// [`Input::Deadline`].
    Deadline,
    /// [`Input::Cancel`].
    Cancel,
    /// [`Input::HardStop`].
    HardStop,
    /// [`Input::Request`].
    Request,
    /// [`Input::AbandonRequest`].
    AbandonRequest,
}

impl InputKind {
    /// Every kind, in table order ([`InputKind::index`]).
    pub const ALL: [InputKind; 20] = [
        InputKind::Launched,
        InputKind::LaunchFailed,
        InputKind::Message(MessageKind::SpawnSpec),
        InputKind::Message(MessageKind::Request),
        InputKind::Message(MessageKind::Cancel),
        InputKind::Message(MessageKind::Handshake),
        InputKind::Message(MessageKind::Reply),
        InputKind::Message(MessageKind::Finished),
        InputKind::Message(MessageKind::Failed),
        InputKind::Message(MessageKind::CancelAck),
        InputKind::Malformed,
        InputKind::ChannelClosed,
        InputKind::ExitObserved,
        InputKind::Reaped,
        InputKind::ReapFailed,
        InputKind::Deadline,
        InputKind::Cancel,
        InputKind::HardStop,
        InputKind::Request,
        InputKind::AbandonRequest,
    ];

    /// Its place in [`InputKind::ALL`].
    pub const fn index(self) -> usize {
        match self {
            InputKind::Launched => 0,
            InputKind::LaunchFailed => 1,
            InputKind::Message(m) => 2 + m as usize,
            InputKind::Malformed => 10,
            InputKind::ChannelClosed => 11,
            InputKind::ExitObserved => 12,
            InputKind::Reaped => 13,
            InputKind::ReapFailed => 14,
            InputKind::Deadline => 15,
            InputKind::Cancel => 16,
            InputKind::HardStop => 17,
            InputKind::Request => 18,
            InputKind::AbandonRequest => 19,
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputKind::Message(m) => write!(f, "Message({m:?})"),
            other => fmt::Debug::fmt(other, f),
        }
    }
}

/// The name [`Input::name`] gives, from its [`Input::name_parts`].
pub(crate) fn input_name(parts: (&'static str, Option<&'static str>)) -> String {
    match parts {
        (kind, Some(message)) => alloc::format!("{kind}({message})"),
        (kind, None) => kind.into(),
    }
}

impl Input {
    /// Its kind.
    pub fn kind(&self) -> InputKind {
        match self {
            Input::Launched => InputKind::Launched,
            Input::LaunchFailed(_) => InputKind::LaunchFailed,
            Input::Message(m) => InputKind::Message(m.kind()),
            Input::Malformed(_) => InputKind::Malformed,
            Input::ChannelClosed => InputKind::ChannelClosed,
            Input::ExitObserved => InputKind::ExitObserved,
            Input::Reaped(_) => InputKind::Reaped,
            Input::ReapFailed(_) => InputKind::ReapFailed,
            Input::Deadline => InputKind::Deadline,
            Input::Cancel(_) => InputKind::Cancel,
            Input::HardStop => InputKind::HardStop,
            Input::Request(..) => InputKind::Request,
            Input::AbandonRequest(_) => InputKind::AbandonRequest,
        }
    }

    /// A short name for tables and errors.
    pub fn name(&self) -> String {
        input_name(self.name_parts())
    }

    /// [`Input::name`] in parts, without allocating: the input's kind and, for a message,
    /// the message's name. The step loop keeps these, and formats them only on a refusal.
    pub fn name_parts(&self) -> (&'static str, Option<&'static str>) {
        let kind = match self {
            Input::Launched => "Launched",
            Input::LaunchFailed(_) => "LaunchFailed",
            Input::Message(m) => return ("Message", Some(m.name())),
            Input::Malformed(_) => "Malformed",
            Input::ChannelClosed => "ChannelClosed",
            Input::ExitObserved => "ExitObserved",
            Input::Reaped(_) => "Reaped",
            Input::ReapFailed(_) => "ReapFailed",
            Input::Deadline => "Deadline",
            Input::Cancel(_) => "Cancel",
            Input::HardStop => "HardStop",
            Input::Request(..) => "Request",
            Input::AbandonRequest(_) => "AbandonRequest",
        };
        (kind, None)
    }
}

/// What the supervisor must do as a result of one lifecycle step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Send this message on the child's channel.
    Send(Message),
    /// Send the spawn spec (the supervisor fills in the actor name).
    SendSpawnSpec,
    /// Close our end of the child's channel.
    CloseChannel,
    /// SIGKILL the child (and its process group) through its pidfd.
    Kill,
    /// Abandon the thread: detach it and leak its context.
    Abandon,
    /// Reap the child (or join its thread) exactly once.
    Reap,
    /// Put the child's name in the registry.
    Register,
    /// Take the child's name out of the registry.
    Deregister,
    /// The child is connected and ready for requests.
    Ready,
    /// A request ended, as this says; the supervisor keeps the answer for its caller to
    /// claim (unless the caller gave the request up).
    RequestEnded(RequestId, RequestEnd),
    /// The child is ending on its own (its channel ended, or it exited, unasked and with no
    /// result or failure report): a failure, whose report (with its status) comes once it
    /// is reaped. The nursery's one-cancels-all starts now, not at the reap.
    FailureKnown,
    /// A run-to-result child's result for the user.
    Finished(Result<Vec<u8>, RemoteError>),
    /// An error to report to the user exactly once.
    Error(ChildErrorKind, Initiator),
    /// The child's life is over with this outcome.
    Outcome(Outcome),
}

/// Why an input was refused by the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The input makes no sense in this phase (a driver bug).
    Invalid,
    /// A request while the child is not serving.
    NotServing,
    /// A request beyond the in-flight limit.
    TooManyInFlight,
    /// The child is done.
    Finished,
}

/// The per-child settings a step needs from its supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StepContext {
    /// The timeout policy.
    pub timeouts: Timeouts,
    /// Switched-on flaws (none in the shipped protocol).
    pub flaws: Flaws,
    /// The in-flight request limit.
    pub max_in_flight: u32,
}

/// One child's lifecycle state, with the facts the invariants are checked against.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Where it is.
    pub phase: Phase,
    /// How it was started.
    pub method: SpawnMethod,
    /// Daemon or run-to-result.
    pub role: Role,
    /// When the current wait ends, if it is bounded.
    pub deadline: Option<Timestamp>,
    /// Whether our end of its channel is open.
    pub channel_open: bool,
    /// Whether its handshake arrived.
    pub handshake_done: bool,
    /// Whether a cancel was sent.
    pub cancel_sent: bool,
    /// Whether its channel was seen at end-of-file or broken.
    pub channel_seen_closed: bool,
    /// Whether the user asked for a hard stop.
    pub user_hard_stop: bool,
    /// Whether SIGKILL was sent.
    pub kill_sent: bool,
    /// Whether its exit was observed.
    pub exit_observed: bool,
    /// How many reaps happened (must end at exactly one for a launched process).
    pub reaps: u8,
    /// Spawn specs sent (at most one).
    pub specs_sent: u8,
    /// Requests sent on its channel so far.
    pub requests_sent: u32,
    /// `requests_sent` when the cancel went out; no request may follow a cancel.
    pub requests_at_cancel: Option<u32>,
    /// Whether a run-to-result child delivered its result.
    pub result_delivered: bool,
    /// Requests sent whose replies have not arrived, oldest first, including those that
    /// ended before their reply came (whose late replies are dropped).
    pub in_flight: Vec<InFlight>,
    /// When the callers of the requests in flight that still wait and set a time stop
    /// waiting, in the order the requests were sent: kept apart from `in_flight` so that
    /// finding the next deadline does not walk every request in flight (usually none is
    /// timed).
    pub timed: Vec<(RequestId, Timestamp)>,
    /// Requests ended so far: each exactly once.
    pub requests_ended: u32,
    /// Who started stopping it.
    pub stop_initiator: Option<Initiator>,
    /// Why it was forced, if it was.
    pub force: Option<ForceReason>,
    /// Its final outcome, once done.
    pub outcome: Option<Outcome>,
    /// A handshake that arrived after we had given up on the child: it did boot.
    pub late_handshake: bool,
    /// Whether it reported a failure of its own (`Failed`, or a failed result).
    pub remote_failed: bool,
    /// Whether the boot deadline passed while it was still launching.
    pub boot_timed_out: bool,
    /// Whether it broke the protocol (we closed its channel for it).
    pub violated: bool,
    /// What the reap reported, once it happened.
    pub reaped_status: Option<ExitStatus>,
}

type Step = Result<Vec<Action>, Refusal>;

impl Lifecycle {
    /// A lifecycle for a child whose launch command is being issued.
    pub fn new(method: SpawnMethod, role: Role) -> Self {
        Lifecycle {
            phase: Phase::Launching,
            method,
            role,
            deadline: None,
            channel_open: false,
            handshake_done: false,
            cancel_sent: false,
            channel_seen_closed: false,
            user_hard_stop: false,
            kill_sent: false,
            exit_observed: false,
            reaps: 0,
            specs_sent: 0,
            requests_sent: 0,
            requests_at_cancel: None,
            result_delivered: false,
            in_flight: Vec::new(),
            timed: Vec::new(),
            requests_ended: 0,
            stop_initiator: None,
            force: None,
            outcome: None,
            late_handshake: false,
            remote_failed: false,
            boot_timed_out: false,
            violated: false,
            reaped_status: None,
        }
    }

    /// Whether nothing more will happen: done, and our end of its channel closed.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done && !self.channel_open
    }

    /// Whether nothing more can happen to it, so its records may be retired: finished, no
    /// wait armed, and its end known. A child whose reap was given up on is never over: it
    /// may still exit and be reaped late, and until then its process is held.
    pub fn is_over(&self) -> bool {
        self.is_finished()
            && self.deadline.is_none()
            && self.outcome.is_some_and(|o| o != Outcome::Unreaped)
    }

    /// Whether a stop (graceful or forced) has begun.
    pub fn is_stopping(&self) -> bool {
        self.stop_initiator.is_some() || self.phase > Phase::Serving
    }

    /// Applies one input at `now`; on refusal the state is unchanged.
    pub fn step(&mut self, now: Timestamp, input: Input, cx: &StepContext) -> Step {
        let mut next = self.clone();
        let mut out = Vec::new();
        next.apply(now, input, cx, &mut out)?;
        *self = next;
        Ok(out)
    }

    fn apply(
        &mut self,
        now: Timestamp,
        input: Input,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match input {
            Input::Launched => self.on_launched(now, cx, out),
            Input::LaunchFailed(why) => self.on_launch_failed(why, out),
            Input::Message(msg) => self.on_message(now, msg, cx, out),
            Input::Malformed(err) => {
                self.on_violation(now, ProtocolViolation::Malformed(err), cx, out)
            }
            Input::ChannelClosed => self.on_channel_closed(now, cx, out),
            Input::ExitObserved => self.on_exit(cx, out),
            Input::Reaped(status) => self.on_reaped(now, status, cx, out),
            Input::ReapFailed(why) => self.on_reap_failed(now, why, cx, out),
            Input::Deadline => self.on_deadline(now, cx, out),
            Input::Cancel(who) => self.on_cancel(now, who, cx, out),
            Input::HardStop => self.on_hard_stop(now, cx, out),
            Input::Request(id, payload, deadline) => {
                self.on_request(id, payload, deadline, cx, out)
            }
            Input::AbandonRequest(id) => self.on_abandon_request(id, out),
        }
    }

    fn on_launched(
        &mut self,
        now: Timestamp,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        if self.phase != Phase::Launching {
            return Err(Refusal::Invalid);
        }
        self.phase = Phase::AwaitingHandshake;
        self.channel_open = true;
        self.specs_sent += 1;
        out.push(Action::SendSpawnSpec);
        if self.user_hard_stop {
            self.force_stop(now, ForceReason::UserHardStop, cx, out);
        } else if self.boot_timed_out {
            self.force_stop(now, ForceReason::BeforeHandshake, cx, out);
        } else if self.stop_initiator.is_some() {
            self.await_handshake_to_cancel(now, cx);
        }
        Ok(())
    }

    fn on_launch_failed(&mut self, why: String, out: &mut Vec<Action>) -> Result<(), Refusal> {
        if self.phase != Phase::Launching {
            return Err(Refusal::Invalid);
        }
        self.phase = Phase::Done;
        self.deadline = None;
        self.outcome = Some(Outcome::LaunchFailed);
        out.push(Action::Error(
            ChildErrorKind::LaunchFailed(why),
            Initiator::Child,
        ));
        out.push(Action::Outcome(Outcome::LaunchFailed));
        Ok(())
    }

    fn on_message(
        &mut self,
        now: Timestamp,
        msg: Message,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match (self.phase, msg) {
            (Phase::Launching | Phase::Done, _) if !self.channel_open => Err(Refusal::Invalid),
            (Phase::AwaitingHandshake, Message::Handshake { version, .. }) => {
                self.on_handshake(now, version, cx, out);
                Ok(())
            }
            // A handshake already in flight when we gave up on the child: it did boot.
            (_, Message::Handshake { version, .. })
                if !self.handshake_done && self.is_stopping() =>
            {
                self.late_handshake |= version == PROTOCOL_VERSION;
                Ok(())
            }
            (Phase::AwaitingHandshake, other) => {
                let v = self.unexpected(&other);
                self.on_violation(now, v, cx, out)
            }
            (_, Message::Reply { id, result }) => self.on_reply(now, id, result, cx, out),
            (_, Message::Finished { result })
                if self.role == Role::RunToResult && !self.result_delivered =>
            {
                self.on_finished(now, result, cx, out);
                Ok(())
            }
            // One failure per child: a second is a violation, so a hostile child cannot grow
            // its parent's report (or memory) by repeating itself.
            (_, Message::Failed(_))
                if self.remote_failed && !cx.flaws.has(Flaw::AcceptEveryFailure) =>
            {
                self.on_violation(now, ProtocolViolation::SecondFailure, cx, out)
            }
            (_, Message::Failed(err)) => {
                self.remote_failed = true;
                out.push(Action::Error(ChildErrorKind::Remote(err), Initiator::Child));
                Ok(())
            }
            (Phase::AwaitingCancelAck, Message::CancelAck) => {
                self.on_ack(now, cx, out);
                Ok(())
            }
            // An ack that crossed our escalation or the child's EOF: nothing left to do.
            (_, Message::CancelAck) if self.cancel_sent => Ok(()),
            (_, other) => {
                let v = self.unexpected(&other);
                self.on_violation(now, v, cx, out)
            }
        }
    }

    fn unexpected(&self, msg: &Message) -> ProtocolViolation {
        ProtocolViolation::Unexpected {
            message: msg.name().to_string(),
            phase: self.phase.to_string(),
        }
    }

    fn on_handshake(
        &mut self,
        now: Timestamp,
        version: u16,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) {
        if version != PROTOCOL_VERSION {
            out.push(Action::Error(
                ChildErrorKind::VersionMismatch { got: version },
                Initiator::Supervisor,
            ));
            self.stop_initiator.get_or_insert(Initiator::Supervisor);
            self.force_stop(now, ForceReason::BeforeHandshake, cx, out);
            return;
        }
        self.handshake_done = true;
        if let Some(who) = self.stop_initiator {
            // Cancelled while booting: cancel now, keeping the deadline the cancel started,
            // so a booting child costs no more time than a serving one.
            let ack_by = self.deadline;
            self.begin_cancel(now, who, cx, out);
            self.deadline = ack_by;
            return;
        }
        self.phase = Phase::Serving;
        self.deadline = None;
        out.push(Action::Register);
        out.push(Action::Ready);
    }

    fn on_finished(
        &mut self,
        now: Timestamp,
        result: Result<Vec<u8>, RemoteError>,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) {
        self.result_delivered = true;
        if let Err(err) = &result {
            self.remote_failed = true;
            out.push(Action::Error(
                ChildErrorKind::Remote(err.clone()),
                Initiator::Child,
            ));
        }
        out.push(Action::Finished(result));
        // tractor's cancel_on_completion: a run-to-result child is cancelled once it has answered.
        if self.phase == Phase::Serving {
            self.begin_cancel(now, Initiator::Supervisor, cx, out);
        }
    }

    fn on_ack(&mut self, now: Timestamp, cx: &StepContext, out: &mut Vec<Action>) {
        self.phase = Phase::AwaitingExit;
        if cx.flaws.has(Flaw::MutualWaitAtTeardown) {
            // The flaw: keep our end open until the child exits, and wait for that unbounded.
            self.deadline = None;
            return;
        }
        self.close_channel(out);
        self.deadline = Some(now + cx.timeouts.grace(self.method));
    }

    pub(super) fn on_violation(
        &mut self,
        now: Timestamp,
        v: ProtocolViolation,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        if !self.channel_open {
            return Err(Refusal::Invalid);
        }
        out.push(Action::Error(
            ChildErrorKind::Protocol(v),
            Initiator::Supervisor,
        ));
        self.stop_initiator.get_or_insert(Initiator::Supervisor);
        self.violated = true;
        // The stream is out of step: nothing more on it can be trusted. Closing our end is the
        // graceful stop (the child sees EOF and cancels itself); the grace bounds it.
        self.channel_seen_closed = true;
        self.close_channel(out);
        if matches!(
            self.phase,
            Phase::AwaitingHandshake | Phase::Serving | Phase::AwaitingCancelAck
        ) {
            self.await_exit(now, cx);
        }
        Ok(())
    }

    fn on_channel_closed(
        &mut self,
        now: Timestamp,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        if !self.channel_open || self.phase == Phase::Launching {
            return Err(Refusal::Invalid);
        }
        // The flaw: the handshake wait listens for the handshake and nothing else.
        if self.phase == Phase::AwaitingHandshake && cx.flaws.has(Flaw::NoHandshakeOrDeathRace) {
            return Ok(());
        }
        self.channel_seen_closed = true;
        self.failure_known_if_unasked(out);
        self.close_channel(out);
        match self.phase {
            Phase::AwaitingHandshake | Phase::Serving | Phase::AwaitingCancelAck => {
                self.stop_initiator.get_or_insert(Initiator::Child);
                self.await_exit(now, cx);
            }
            Phase::Draining => self.finish(out),
            _ => {}
        }
        Ok(())
    }

    fn on_exit(&mut self, cx: &StepContext, out: &mut Vec<Action>) -> Result<(), Refusal> {
        match self.phase {
            // Killed, given up on after the reap bound, and dead after all: reap it now.
            Phase::Done if self.outcome == Some(Outcome::Unreaped) && !self.exit_observed => {
                self.exit_observed = true;
                out.push(Action::Reap);
                return Ok(());
            }
            Phase::Launching | Phase::Done | Phase::Draining => return Err(Refusal::Invalid),
            // A second readiness report of the same exit: the reap is already out.
            Phase::AwaitingReap => return Ok(()),
            Phase::AwaitingHandshake if cx.flaws.has(Flaw::NoHandshakeOrDeathRace) => return Ok(()),
            _ => {}
        }
        self.failure_known_if_unasked(out);
        self.exit_observed = true;
        self.phase = Phase::AwaitingReap;
        self.deadline = None;
        self.deregister(cx, out);
        out.push(Action::Reap);
        Ok(())
    }

    fn on_reaped(
        &mut self,
        now: Timestamp,
        status: ExitStatus,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let late = self.phase == Phase::Done && self.exit_observed && self.reaped_status.is_none();
        if self.phase != Phase::AwaitingReap && !late {
            return Err(Refusal::Invalid);
        }
        self.reaps += 1;
        self.reaped_status = Some(status);
        if late {
            let reason = self.force.unwrap_or(ForceReason::CancelAckTimedOut);
            self.outcome = Some(Outcome::Killed { reason, status });
            return Ok(());
        }
        self.outcome = Some(match self.force {
            Some(reason) => Outcome::Killed { reason, status },
            None => Outcome::Exited(status),
        });
        self.drain_or_finish(now, cx, out);
        Ok(())
    }

    /// After the reap (done or failed): read what the channel still holds, within the drain
    /// bound, or finish if our end is closed.
    fn drain_or_finish(&mut self, now: Timestamp, cx: &StepContext, out: &mut Vec<Action>) {
        if self.channel_open {
            self.phase = Phase::Draining;
            self.deadline = if cx.flaws.has(Flaw::UnboundedPeerDrain) {
                None
            } else {
                Some(now + cx.timeouts.drain)
            };
        } else {
            self.finish(out);
        }
    }

    /// The reap ordered at the exit could not be done: the child is reported unreaped with
    /// why, and the drain goes on as after a reap (its channel may still hold messages).
    fn on_reap_failed(
        &mut self,
        now: Timestamp,
        why: String,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let late = self.phase == Phase::Done && self.exit_observed && self.reaped_status.is_none();
        if late {
            // Given up on already (reported as a reap timeout): nothing new to say.
            return Ok(());
        }
        if self.phase != Phase::AwaitingReap {
            return Err(Refusal::Invalid);
        }
        out.push(Action::Error(
            ChildErrorKind::ReapFailed(why),
            Initiator::Supervisor,
        ));
        self.outcome = Some(Outcome::Unreaped);
        self.drain_or_finish(now, cx, out);
        Ok(())
    }

    fn on_deadline(
        &mut self,
        now: Timestamp,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        self.expire_requests(now, out);
        match self.deadline {
            Some(at) if at <= now => {}
            // Not due (or none armed): a request's deadline, or a harmless early wake-up.
            _ => return Ok(()),
        }
        self.deadline = None;
        match self.phase {
            // The launch itself outlasted the boot timeout: stop it hard once it exists.
            Phase::Launching => {
                out.push(Action::Error(
                    ChildErrorKind::BootTimedOut,
                    Initiator::Supervisor,
                ));
                self.stop_initiator = Some(Initiator::Supervisor);
                self.boot_timed_out = true;
            }
            // A cancel was pending and the handshake did not come in time: ours, not an error.
            Phase::AwaitingHandshake if self.stop_initiator.is_some() => {
                self.force_stop(now, ForceReason::BeforeHandshake, cx, out);
            }
            Phase::AwaitingHandshake => {
                out.push(Action::Error(
                    ChildErrorKind::BootTimedOut,
                    Initiator::Supervisor,
                ));
                self.stop_initiator = Some(Initiator::Supervisor);
                self.force_stop(now, ForceReason::BeforeHandshake, cx, out);
            }
            Phase::AwaitingCancelAck if cx.flaws.has(Flaw::NoEscalation) => {}
            Phase::AwaitingCancelAck => {
                self.force_stop(now, ForceReason::CancelAckTimedOut, cx, out)
            }
            Phase::AwaitingExit => self.force_stop(now, ForceReason::GraceExpired, cx, out),
            Phase::AwaitingKilledExit => {
                out.push(Action::Error(
                    ChildErrorKind::ReapTimedOut,
                    Initiator::Supervisor,
                ));
                self.close_channel(out);
                self.outcome = Some(Outcome::Unreaped);
                self.finish(out);
            }
            Phase::Draining => {
                self.close_channel(out);
                self.finish(out);
            }
            _ => return Err(Refusal::Invalid),
        }
        Ok(())
    }

    fn on_cancel(
        &mut self,
        now: Timestamp,
        who: Initiator,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match self.phase {
            Phase::Launching => {
                self.stop_initiator.get_or_insert(who);
            }
            Phase::AwaitingHandshake if self.stop_initiator.is_none() => {
                // Not connected yet: the cancel goes out when the handshake arrives, and the
                // ack deadline runs from now, so the teardown bound is the same as for a
                // serving child.
                self.stop_initiator = Some(who);
                self.await_handshake_to_cancel(now, cx);
            }
            Phase::Serving => self.begin_cancel(now, who, cx, out),
            Phase::Done => return Err(Refusal::Finished),
            // Already stopping: cancelling again changes nothing.
            _ => {}
        }
        Ok(())
    }

    fn on_hard_stop(
        &mut self,
        now: Timestamp,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match self.phase {
            Phase::Done => Err(Refusal::Finished),
            Phase::Launching => {
                self.user_hard_stop = true;
                self.stop_initiator.get_or_insert(Initiator::User);
                Ok(())
            }
            Phase::AwaitingHandshake
            | Phase::Serving
            | Phase::AwaitingCancelAck
            | Phase::AwaitingExit => {
                self.user_hard_stop = true;
                self.stop_initiator.get_or_insert(Initiator::User);
                self.force_stop(now, ForceReason::UserHardStop, cx, out);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn begin_cancel(
        &mut self,
        now: Timestamp,
        who: Initiator,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) {
        self.stop_initiator.get_or_insert(who);
        self.cancel_sent = true;
        self.requests_at_cancel = Some(self.requests_sent);
        self.phase = Phase::AwaitingCancelAck;
        self.deadline = Some(now + cx.timeouts.cancel_ack);
        out.push(Action::Send(Message::Cancel));
    }

    fn await_handshake_to_cancel(&mut self, now: Timestamp, cx: &StepContext) {
        let ack_by = now + cx.timeouts.cancel_ack;
        self.deadline = Some(self.deadline.map_or(ack_by, |d| d.min(ack_by)));
    }

    fn await_exit(&mut self, now: Timestamp, cx: &StepContext) {
        self.phase = Phase::AwaitingExit;
        self.deadline = Some(now + cx.timeouts.grace(self.method));
    }

    /// Kills or abandons, by method. Callers have established that force is allowed.
    fn force_stop(
        &mut self,
        now: Timestamp,
        reason: ForceReason,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) {
        self.force = Some(reason);
        match self.method.hard_stop() {
            HardStop::Kill => {
                self.kill_sent = true;
                self.deregister(cx, out);
                out.push(Action::Kill);
                self.phase = Phase::AwaitingKilledExit;
                self.deadline = Some(now + cx.timeouts.reap);
            }
            HardStop::Abandon => {
                self.deregister(cx, out);
                if !cx.flaws.has(Flaw::NoChannelAbortOnAbandon) {
                    self.close_channel(out);
                }
                out.push(Action::Abandon);
                self.outcome = Some(Outcome::Abandoned(reason));
                self.phase = Phase::Done;
                self.deadline = None;
                out.push(Action::Outcome(Outcome::Abandoned(reason)));
            }
        }
    }

    /// A child whose channel ends or who exits before any stop began ends on its own: that
    /// is a failure (its death, or the failure it already reported), known now.
    fn failure_known_if_unasked(&self, out: &mut Vec<Action>) {
        if !self.is_stopping() {
            out.push(Action::FailureKnown);
        }
    }

    fn deregister(&mut self, cx: &StepContext, out: &mut Vec<Action>) {
        // The flaw: a child that was forced keeps its registry entry.
        if self.force.is_some() && cx.flaws.has(Flaw::NoDeregistrationOnKill) {
            return;
        }
        if !out.contains(&Action::Deregister) {
            out.push(Action::Deregister);
        }
    }

    fn close_channel(&mut self, out: &mut Vec<Action>) {
        if self.channel_open {
            self.channel_open = false;
            out.push(Action::CloseChannel);
            self.end_requests_at_close(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Done;
        self.deadline = None;
        if let Some(kind) = self.death_report() {
            out.push(Action::Error(kind, Initiator::Child));
        }
        if let Some(outcome) = self.outcome {
            out.push(Action::Outcome(outcome));
        }
    }

    /// How a child that exited by itself died, decided once its channel is drained, so that
    /// a handshake or failure report still queued behind the exit is taken into account.
    fn death_report(&self) -> Option<ChildErrorKind> {
        let status = self.reaped_status?;
        // Ours: it answered our cancel, we killed it, or we closed its channel on a protocol
        // violation. A cancel still pending when it died never reached it: its death is its own.
        // So is a kill that only ended a child whose channel had ended unasked (the failure
        // already known, `Action::FailureKnown`), when it did not exit within the grace.
        let ended_unasked = self.stop_initiator == Some(Initiator::Child);
        let we_stopped = self.cancel_sent
            || (self.kill_sent && !ended_unasked)
            || self.violated
            || self.stop_initiator == Some(Initiator::Supervisor);
        if we_stopped {
            return None;
        }
        if !self.handshake_done && !self.late_handshake {
            return Some(ChildErrorKind::BootFailed(status));
        }
        // A child that already reported its failure, or delivered its result, died of that.
        (!self.remote_failed && !self.result_delivered).then_some(ChildErrorKind::Died(status))
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
