//! The supervisor: the parent side of the protocol, one nursery and a lifecycle per child.

mod lifecycle;
mod report;
mod request;
mod symmetry;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub use lifecycle::{
    Action, ForceReason, Input, InputKind, Lifecycle, Outcome, Phase, Refusal, StepContext,
};
pub use report::{ChildSummary, Tally, TeardownCause, TeardownReport};
pub use request::{InFlight, RequestEnd};
pub use symmetry::RelabelError;

use crate::coverage::{Carried, Coverage};
use crate::error::{ChildError, ChildOpError, ExitStatus, Initiator, InputError, SpawnError};
use crate::flaw::{Flaw, Flaws};
use crate::id::{ChildId, RequestId};
use crate::invariant::{self, Stepped, Violation};
use crate::method::{Situation, SpawnMethod};
use crate::policy::{Limits, PolicyError, Timeouts};
use crate::time::Timestamp;
use crate::wire::{DEFAULT_MAX_FRAME, FrameError, Message, RemoteError, Role};

/// Everything a supervisor is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SupervisorConfig {
    /// The timeout policy.
    pub timeouts: Timeouts,
    /// Table and queue bounds.
    pub limits: Limits,
    /// Switched-on flaws; [`Flaws::NONE`] in the shipped protocol.
    pub flaws: Flaws,
    /// The frame size limit used on every channel.
    pub max_frame: u32,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            flaws: Flaws::NONE,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// What to spawn: a named instance of a registered actor, by a method, in a role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpawnSpec {
    /// The instance name, unique among the nursery's live children; the registry key.
    pub name: String,
    /// The registered actor to run.
    pub actor: String,
    /// How to start it.
    pub method: SpawnMethod,
    /// Daemon or run-to-result.
    pub role: Role,
}

/// An order for the driver; it executes them in the order polled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Start the child, then call `handle_launched` or `handle_launch_failed`.
    Launch {
        /// Which child.
        child: ChildId,
        /// The actor to run.
        actor: String,
        /// How to start it.
        method: SpawnMethod,
    },
    /// Encode and send a message on the child's channel.
    Send {
        /// Which child.
        child: ChildId,
        /// What to send.
        message: Message,
    },
    /// Close our end of the child's channel; feed nothing more from it.
    CloseChannel {
        /// Which child.
        child: ChildId,
    },
    /// SIGKILL the child and its process group, through its pidfd.
    Kill {
        /// Which child.
        child: ChildId,
    },
    /// Detach the thread child and leak its context; count it.
    Abandon {
        /// Which child.
        child: ChildId,
    },
    /// Reap the exited child (or join its thread), then call `handle_reaped`.
    Reap {
        /// Which child.
        child: ChildId,
    },
    /// The child is over: free everything kept for it. No command names it again, and no
    /// report about it is taken any more.
    Retire {
        /// Which child.
        child: ChildId,
    },
}

impl Command {
    /// The child the command is for.
    pub fn child(&self) -> ChildId {
        match self {
            Command::Launch { child, .. }
            | Command::Send { child, .. }
            | Command::CloseChannel { child }
            | Command::Kill { child }
            | Command::Abandon { child }
            | Command::Reap { child }
            | Command::Retire { child } => *child,
        }
    }
}

/// News for the nursery's user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// The child completed its handshake; requests may go to it.
    Ready(ChildId),
    /// A request ended (answered, timed out, given up, or by the child's end). Unless it was
    /// given up, how it ended is kept until [`Supervisor::claim_reply`] takes it.
    RequestEnded {
        /// To which child it went.
        child: ChildId,
        /// Which request.
        id: RequestId,
    },
    /// A run-to-result child delivered its result, kept until [`Supervisor::claim_result`]
    /// takes it.
    Finished(ChildId),
    /// A child error, reported exactly once.
    Failed(ChildError),
    /// The child's life is over (it is done): its outcome is final, except that of a child
    /// given up on as unreaped, which a late reap may still name. Reported exactly once per
    /// child, after every error of its own ([`Event::Failed`]).
    Ended(ChildId),
    /// The nursery has closed; nothing more will happen.
    Closed(TeardownReport),
}

/// Whether teardown for `cause` should cancel a child in this state now.
fn wants_cancel(life: &Lifecycle, cause: TeardownCause) -> bool {
    if life.is_stopping() || life.phase == Phase::Done {
        return false;
    }
    // A clean body exit waits for run-to-result children to deliver their result.
    cause.is_error() || life.role != Role::RunToResult || life.result_delivered
}

/// Where the nursery is in its own life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NurseryPhase {
    /// Accepting spawns; the body runs.
    Open,
    /// Every child is being stopped; no spawns.
    TearingDown,
    /// Every child has finished; the report is out.
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChildRecord {
    pub(crate) name: String,
    pub(crate) actor: String,
    pub(crate) life: Lifecycle,
    pub(crate) spawned_at: Timestamp,
    pub(crate) stop_started_at: Option<Timestamp>,
    pub(crate) finished_at: Option<Timestamp>,
    /// How its requests ended, oldest first, until their callers claim them; with its
    /// requests in flight, at most `max_in_flight`.
    pub(crate) answers: Vec<(RequestId, RequestEnd)>,
    /// A run-to-result child's result, until claimed.
    pub(crate) result: Option<Result<Vec<u8>, RemoteError>>,
}

/// The parent side of the protocol: one nursery of children, sans-IO.
///
/// # A long life
///
/// A child that is over ([`Lifecycle::is_over`]) is retired at the end of the input that
/// made it so: its record leaves the live table, a [`Command::Retire`] tells the driver to
/// free what it keeps for it, and its outcome is counted in the report's [`Tally`]. The
/// records (and errors) of the [`Limits::max_ended`] retired children spawned last are kept
/// for [`Supervisor::lifecycle`] and the report; older ones are only counted. So a
/// nursery's memory and per-step cost follow its live children, not its history. Child ids
/// are never reused: a retired child's id is refused with [`ChildOpError::AlreadyFinished`].
///
/// # Calling contract
///
/// Feed inputs as they happen: the user's calls (`spawn`, `request`, `abandon_request`,
/// `cancel`, `hard_stop`, `begin_teardown`) and the driver's reports (`handle_*`). After each input, drain
/// [`Supervisor::poll_command`] and execute the commands in order, feeding back what they
/// produce (`Launch` → `handle_launched`, `Reap` → `handle_reaped`); drain
/// [`Supervisor::poll_event`] for the user; then sleep until [`Supervisor::poll_deadline`] or
/// the next input, and call [`Supervisor::handle_timeout`] when the deadline passes. `now`
/// must never go backwards. Nothing here blocks, reads a clock or does IO.
///
/// # Requests and results
///
/// A request ends exactly once (property 14), announced by [`Event::RequestEnded`]: answered,
/// timed out at its deadline, given up, or ended with its child when the child's channel
/// ends. How it ended is kept until [`Supervisor::claim_reply`] takes it, and counts against
/// `max_in_flight` until then; a run-to-result child's result likewise waits for
/// [`Supervisor::claim_result`]. A request that ended before its reply came stays in flight
/// until that late reply arrives, which is dropped: it answers nothing (property 13).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Supervisor {
    pub(crate) config: SupervisorConfig,
    /// The live children: spawned and not yet retired.
    pub(crate) children: BTreeMap<ChildId, ChildRecord>,
    /// The children a turn must look at: those not finished, and any with a deadline armed.
    /// An index over `children`, updated after every step.
    attended: BTreeSet<ChildId>,
    /// The `max_ended` retired children spawned last. By id, not by the order they ended
    /// in: two states that differ only in that order are one state.
    pub(crate) ended: BTreeMap<ChildId, ChildRecord>,
    /// The outcomes of every retired child.
    pub(crate) tally: Tally,
    /// When the last retired child finished.
    pub(crate) last_retired_at: Option<Timestamp>,
    /// Errors dropped with children that left `ended`.
    pub(crate) errors_dropped: u64,
    /// The id the next spawn gets; ids are never reused.
    next_child: u32,
    /// Children the current input made over: retired once it is done (and checked).
    /// Empty between inputs.
    retiring: Vec<ChildId>,
    pub(crate) registry: BTreeMap<String, ChildId>,
    pub(crate) phase: NurseryPhase,
    pub(crate) cause: Option<TeardownCause>,
    pub(crate) teardown_started: Option<Timestamp>,
    pub(crate) errors: Vec<ChildError>,
    /// How many [`Event::Failed`] the user has taken with [`Supervisor::poll_event`]: with
    /// those still queued, what property 5 compares with the recorded errors.
    pub(crate) failures_taken: u64,
    /// How many of `errors`, from the front, the user has claimed with
    /// [`Supervisor::claim_errors`]: those after it are reported and not yet claimed.
    errors_claimed: usize,
    commands: VecDeque<Command>,
    pub(crate) events: VecDeque<Event>,
    next_request: u64,
    now: Timestamp,
    violation: Option<Violation>,
    /// The lifecycle cells its steps reached and its close calls, since an engine last took
    /// them; no part of the state's identity.
    coverage: Carried,
}

impl Supervisor {
    /// A supervisor with an open, empty nursery.
    pub fn new(config: SupervisorConfig) -> Result<Self, PolicyError> {
        config.timeouts.validate()?;
        Ok(Supervisor {
            config,
            children: BTreeMap::new(),
            attended: BTreeSet::new(),
            ended: BTreeMap::new(),
            tally: Tally::default(),
            last_retired_at: None,
            errors_dropped: 0,
            next_child: 0,
            retiring: Vec::new(),
            registry: BTreeMap::new(),
            phase: NurseryPhase::Open,
            cause: None,
            teardown_started: None,
            errors: Vec::new(),
            failures_taken: 0,
            errors_claimed: 0,
            commands: VecDeque::new(),
            events: VecDeque::new(),
            next_request: 0,
            now: Timestamp::ZERO,
            violation: None,
            coverage: Carried::default(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    /// Starts a child; the `Launch` command follows in `poll_command`.
    pub fn spawn(
        &mut self,
        now: Timestamp,
        spec: SpawnSpec,
        situation: &Situation,
    ) -> Result<ChildId, SpawnError> {
        self.advance(now);
        if self.phase != NurseryPhase::Open {
            return Err(SpawnError::NurseryClosing);
        }
        let max = self.config.limits.max_children;
        if self.children.len() >= max as usize {
            return Err(SpawnError::CapacityExhausted { max });
        }
        let Some(next) = self.next_child.checked_add(1) else {
            return Err(SpawnError::IdsExhausted);
        };
        if self.commands.len() >= self.config.limits.max_queued as usize {
            return Err(SpawnError::Backlogged);
        }
        if !self.config.flaws.has(Flaw::ForkFromBusyProcess) {
            spec.method
                .check(situation)
                .map_err(SpawnError::MethodRefused)?;
        }
        // Only attended children can be unfinished (a finished one leaves the set once it has
        // no deadline): the check costs the live children, not the nursery's history.
        let live_name = |c: &ChildId| {
            let r = &self.children[c];
            r.name == spec.name && !r.life.is_finished()
        };
        if self.attended.iter().any(live_name) {
            return Err(SpawnError::NameTaken(spec.name));
        }
        let child = ChildId(self.next_child);
        self.next_child = next;
        let mut life = Lifecycle::new(spec.method, spec.role);
        if !self.config.flaws.has(Flaw::NoHandshakeOrDeathRace) {
            life.deadline = Some(now + self.config.timeouts.boot);
        }
        let record = ChildRecord {
            name: spec.name,
            actor: spec.actor.clone(),
            life,
            spawned_at: now,
            stop_started_at: None,
            finished_at: None,
            answers: Vec::new(),
            result: None,
        };
        self.children.insert(child, record);
        self.attended.insert(child);
        self.commands.push_back(Command::Launch {
            child,
            actor: spec.actor,
            method: spec.method,
        });
        self.check(Stepped {
            child,
            errors_from: self.errors.len(),
        });
        Ok(child)
    }

    /// Sends a request to a serving child, whose caller waits until `deadline` at most (as
    /// long as the child lives if `None`). It ends as an [`Event::RequestEnded`]; how, the
    /// caller claims with [`Supervisor::claim_reply`]. Until then its answer counts against
    /// `max_in_flight`, with the requests in flight.
    pub fn request(
        &mut self,
        now: Timestamp,
        child: ChildId,
        payload: Vec<u8>,
        deadline: Option<Timestamp>,
    ) -> Result<RequestId, ChildOpError> {
        self.advance(now);
        let max = crate::wire::max_payload(self.config.max_frame);
        if payload.len() > max as usize {
            return Err(ChildOpError::PayloadTooLarge {
                len: payload.len() as u64,
                max,
            });
        }
        let max = self.config.limits.max_in_flight;
        if let Some(rec) = self.children.get(&child)
            && rec.life.in_flight.len() + rec.answers.len() >= max as usize
        {
            return Err(ChildOpError::TooManyInFlight { child, max });
        }
        let id = RequestId(self.next_request);
        self.user_op(child, Input::Request(id, payload, deadline))?;
        self.next_request += 1;
        Ok(id)
    }

    /// Gives up a request: it ends now (if it has not), its late reply is dropped when it
    /// comes, and an answer kept for it is dropped. A request to a retired child has nothing
    /// left to give up.
    pub fn abandon_request(
        &mut self,
        now: Timestamp,
        child: ChildId,
        id: RequestId,
    ) -> Result<(), ChildOpError> {
        self.advance(now);
        if self.claim_reply(child, id).is_some() {
            return Ok(());
        }
        let waiting = self
            .children
            .get(&child)
            .is_some_and(|r| r.life.in_flight.iter().any(|f| f.id == id));
        if !waiting {
            return Err(ChildOpError::UnknownRequest { child, id });
        }
        self.user_op(child, Input::AbandonRequest(id))
    }

    /// Takes how a request ended, once it has (see [`Event::RequestEnded`]): each answer is
    /// handed out once. Kept for a retired child while its record is.
    pub fn claim_reply(&mut self, child: ChildId, id: RequestId) -> Option<RequestEnd> {
        let answers = &mut self.record_mut(child)?.answers;
        let i = answers.iter().position(|(r, _)| *r == id)?;
        Some(answers.remove(i).1)
    }

    /// How a request ended, if it has and its answer is kept, without taking it.
    pub fn peek_reply(&self, child: ChildId, id: RequestId) -> Option<&RequestEnd> {
        let answers = &self.record(child)?.answers;
        answers.iter().find(|(r, _)| *r == id).map(|(_, end)| end)
    }

    /// Whether a run-to-result child's result is kept, waiting for its claim.
    pub fn has_result(&self, child: ChildId) -> bool {
        self.record(child).is_some_and(|r| r.result.is_some())
    }

    /// What the live children hold for requests: those in flight (waiting, or ended and
    /// waiting only for a late reply to drop) and the answers not claimed. Zero whenever
    /// every answer was claimed and no late reply is due. Costs the live children.
    pub fn requests_held(&self) -> usize {
        let held = |r: &ChildRecord| r.life.in_flight.len() + r.answers.len();
        self.children.values().map(held).sum()
    }

    /// Takes a run-to-result child's result, once delivered (see [`Event::Finished`]): it is
    /// handed out once. Kept for a retired child while its record is.
    pub fn claim_result(&mut self, child: ChildId) -> Option<Result<Vec<u8>, RemoteError>> {
        self.record_mut(child)?.result.take()
    }

    /// Asks one child to stop gracefully; escalation follows its timeouts.
    pub fn cancel(&mut self, now: Timestamp, child: ChildId) -> Result<(), ChildOpError> {
        self.advance(now);
        self.user_op(child, Input::Cancel(Initiator::User))
    }

    /// Stops one child forcefully now: SIGKILL, or abandonment for a thread.
    pub fn hard_stop(&mut self, now: Timestamp, child: ChildId) -> Result<(), ChildOpError> {
        self.advance(now);
        self.user_op(child, Input::HardStop)
    }

    /// Starts tearing the nursery down; idempotent, but an error cause upgrades a clean one.
    pub fn begin_teardown(&mut self, now: Timestamp, cause: TeardownCause) {
        self.advance(now);
        self.teardown(cause);
        self.retire_over();
    }

    /// SIGINT reached this process: tear the whole nursery down.
    pub fn handle_interrupt(&mut self, now: Timestamp) {
        self.begin_teardown(now, TeardownCause::Interrupted);
    }

    /// The driver started the child.
    pub fn handle_launched(&mut self, now: Timestamp, child: ChildId) -> Result<(), InputError> {
        self.driver_input(now, child, Input::Launched)
    }

    /// The driver could not start the child; `why` says what the system said.
    pub fn handle_launch_failed(
        &mut self,
        now: Timestamp,
        child: ChildId,
        why: String,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::LaunchFailed(why))
    }

    /// A message arrived from the child.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        child: ChildId,
        message: Message,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::Message(message))
    }

    /// A frame from the child did not decode.
    pub fn handle_malformed(
        &mut self,
        now: Timestamp,
        child: ChildId,
        err: FrameError,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::Malformed(err))
    }

    /// The child's channel reached end-of-file.
    pub fn handle_channel_closed(
        &mut self,
        now: Timestamp,
        child: ChildId,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::ChannelClosed)
    }

    /// The child's process exited or its thread returned; a `Reap` command follows.
    pub fn handle_exit(&mut self, now: Timestamp, child: ChildId) -> Result<(), InputError> {
        self.driver_input(now, child, Input::ExitObserved)
    }

    /// The reap (or join) ordered by a `Reap` command finished.
    pub fn handle_reaped(
        &mut self,
        now: Timestamp,
        child: ChildId,
        status: ExitStatus,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::Reaped(status))
    }

    /// The reap ordered by a `Reap` command could not be done; `why` says what failed.
    pub fn handle_reap_failed(
        &mut self,
        now: Timestamp,
        child: ChildId,
        why: String,
    ) -> Result<(), InputError> {
        self.driver_input(now, child, Input::ReapFailed(why))
    }

    /// Time has reached `now`: every deadline at or before it fires.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
        let due: Vec<ChildId> = self
            .attended
            .iter()
            .copied()
            .filter(|c| {
                self.life_of(*c)
                    .next_deadline()
                    .is_some_and(|d| d <= self.now)
            })
            .collect();
        for child in due {
            // A due deadline is valid in every phase that arms one; a refusal would be a
            // protocol bug, which the step's invariant check reports.
            let _ = self.step(child, Input::Deadline);
        }
        self.retire_over();
    }

    /// The next command for the driver.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if matches!(event, Some(Event::Failed(_))) {
            self.failures_taken += 1;
        }
        event
    }

    /// The earliest deadline, if any wait is bounded right now.
    pub fn poll_deadline(&self) -> Option<Timestamp> {
        self.attended
            .iter()
            .filter_map(|c| self.life_of(*c).next_deadline())
            .min()
    }

    /// The lifecycle of a live child.
    fn life_of(&self, child: ChildId) -> &Lifecycle {
        &self.children[&child].life
    }

    /// A live child's record, or a retired one's while it is kept.
    fn record(&self, child: ChildId) -> Option<&ChildRecord> {
        self.children.get(&child).or_else(|| self.ended.get(&child))
    }

    fn record_mut(&mut self, child: ChildId) -> Option<&mut ChildRecord> {
        if self.children.contains_key(&child) {
            self.children.get_mut(&child)
        } else {
            self.ended.get_mut(&child)
        }
    }

    /// The live child registered under `name`; never a child known to be dead.
    pub fn lookup(&self, name: &str) -> Option<ChildId> {
        self.registry.get(name).copied()
    }

    /// The nursery's phase.
    pub fn phase(&self) -> NurseryPhase {
        self.phase
    }

    /// Why teardown started, once it has (what the report's `cause` will say).
    pub fn teardown_cause(&self) -> Option<TeardownCause> {
        self.cause
    }

    /// Whether the nursery has closed.
    pub fn is_closed(&self) -> bool {
        self.phase == NurseryPhase::Closed
    }

    /// How many children it has spawned over its life.
    pub fn child_count(&self) -> usize {
        self.next_child as usize
    }

    /// How many children it holds now: spawned and not retired.
    pub fn live_count(&self) -> usize {
        self.children.len()
    }

    /// One child's lifecycle, for inspection: a live child's, or one of the `max_ended`
    /// retired children spawned last; `None` for an older one.
    pub fn lifecycle(&self, child: ChildId) -> Option<&Lifecycle> {
        self.record(child).map(|c| &c.life)
    }

    /// One child's instance name, as long as [`Supervisor::lifecycle`] knows it.
    pub fn name(&self, child: ChildId) -> Option<&str> {
        self.record(child).map(|c| c.name.as_str())
    }

    /// The child errors kept, in the order reported: those of live children and of the
    /// retired ones still kept (each error was also an [`Event::Failed`]).
    pub fn errors(&self) -> &[ChildError] {
        &self.errors
    }

    /// Takes the kept errors ([`Supervisor::errors`]) reported since the last call, in the
    /// order reported, each once: a user's list of failures to deal with, which an error
    /// dropped with its child's record (past [`Limits::max_ended`]) leaves unclaimed.
    pub fn claim_errors(&mut self) -> Vec<ChildError> {
        let new = self.errors[self.errors_claimed..].to_vec();
        self.errors_claimed = self.errors.len();
        new
    }

    /// The first invariant violation seen (only possible with a flaw switched on).
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The teardown report so far (final once the nursery is closed).
    pub fn report(&self) -> TeardownReport {
        report::build(self)
    }

    /// What its steps reached since the last call, taken out (a fresh tally stays).
    pub fn take_coverage(&mut self) -> Coverage {
        core::mem::take(&mut self.coverage.0)
    }

    fn advance(&mut self, now: Timestamp) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    fn user_op(&mut self, child: ChildId, input: Input) -> Result<(), ChildOpError> {
        if child.0 >= self.next_child {
            return Err(ChildOpError::UnknownChild(child));
        }
        if !self.children.contains_key(&child) {
            return Err(ChildOpError::AlreadyFinished(child));
        }
        if self.commands.len() >= self.config.limits.max_queued as usize {
            return Err(ChildOpError::Backlogged);
        }
        let result = self.step(child, input).map_err(|r| self.op_error(child, r));
        self.retire_over();
        result
    }

    fn op_error(&self, child: ChildId, r: Refusal) -> ChildOpError {
        match r {
            Refusal::TooManyInFlight => ChildOpError::TooManyInFlight {
                child,
                max: self.config.limits.max_in_flight,
            },
            Refusal::Finished => ChildOpError::AlreadyFinished(child),
            Refusal::NotServing | Refusal::Invalid => {
                let phase = self.life_of(child).phase.to_string();
                ChildOpError::NotServing { child, phase }
            }
        }
    }

    fn driver_input(
        &mut self,
        now: Timestamp,
        child: ChildId,
        input: Input,
    ) -> Result<(), InputError> {
        self.advance(now);
        let Some(rec) = self.children.get(&child) else {
            let phase = if child.0 < self.next_child {
                "retired"
            } else {
                "unknown"
            };
            return Err(InputError {
                child,
                input: input.name(),
                phase: phase.to_string(),
            });
        };
        // Named only on a refusal: this runs for every byte of every child.
        let (parts, phase) = (input.name_parts(), rec.life.phase);
        let result = self.step(child, input).map_err(|_| InputError {
            child,
            input: lifecycle::input_name(parts),
            phase: phase.to_string(),
        });
        self.retire_over();
        result
    }

    fn context(&self) -> StepContext {
        StepContext {
            timeouts: self.config.timeouts,
            flaws: self.config.flaws,
            max_in_flight: self.config.limits.max_in_flight,
        }
    }

    /// Steps one child's lifecycle, carries out what it asks for, and checks the invariants
    /// over what the step touched (a refused step too: a refusal must change nothing).
    fn step(&mut self, child: ChildId, input: Input) -> Result<(), Refusal> {
        if !self.children.contains_key(&child) {
            // Retired: nothing can happen to it any more.
            return Err(Refusal::Finished);
        }
        let errors_from = self.errors.len();
        let cov = &mut self.coverage.0;
        cov.lifecycle_input(self.children[&child].life.phase, input.kind());
        cov.close.deadlines += u64::from(matches!(input, Input::Deadline));
        let result = self.transition(child, input, errors_from);
        self.check(Stepped { child, errors_from });
        result
    }

    /// One child's transition and its consequences for the nursery; `errors_from` is where
    /// the errors it reports begin.
    fn transition(
        &mut self,
        child: ChildId,
        input: Input,
        errors_from: usize,
    ) -> Result<(), Refusal> {
        let cx = self.context();
        let now = self.now;
        let rec = self
            .children
            .get_mut(&child)
            .expect("a stepped child is live");
        let was_stopping = rec.life.is_stopping();
        let actions = rec.life.step(now, input, &cx)?;
        if !was_stopping && rec.life.is_stopping() {
            rec.stop_started_at = Some(now);
        }
        let failing = actions.contains(&Action::FailureKnown);
        for action in actions {
            self.absorb(child, action);
        }
        self.after_step(child, errors_from, failing);
        Ok(())
    }

    fn absorb(&mut self, child: ChildId, action: Action) {
        let rec = &self.children[&child];
        match action {
            Action::Send(message) => self.commands.push_back(Command::Send { child, message }),
            Action::SendSpawnSpec => {
                let message = Message::SpawnSpec {
                    actor: rec.actor.clone(),
                    role: rec.life.role,
                };
                self.commands.push_back(Command::Send { child, message });
            }
            Action::CloseChannel => self.commands.push_back(Command::CloseChannel { child }),
            Action::Kill => {
                self.coverage.0.close.kills += 1;
                self.commands.push_back(Command::Kill { child });
            }
            Action::Abandon => {
                self.coverage.0.close.abandons += 1;
                self.commands.push_back(Command::Abandon { child });
            }
            Action::Reap => self.commands.push_back(Command::Reap { child }),
            Action::Register => {
                self.registry.insert(rec.name.clone(), child);
            }
            Action::Deregister => {
                if self.registry.get(&rec.name) == Some(&child) {
                    self.registry.remove(&rec.name);
                }
            }
            Action::Ready => self.events.push_back(Event::Ready(child)),
            Action::RequestEnded(id, end) => {
                if end.is_kept() {
                    self.record_mut(child)
                        .expect("a stepped child is live")
                        .answers
                        .push((id, end));
                }
                self.events.push_back(Event::RequestEnded { child, id });
            }
            Action::Finished(result) => {
                self.record_mut(child)
                    .expect("a stepped child is live")
                    .result = Some(result);
                self.events.push_back(Event::Finished(child));
            }
            Action::FailureKnown => {}
            Action::Error(kind, initiator) => self.report_error(child, kind, initiator),
            Action::Outcome(_) => self.events.push_back(Event::Ended(child)),
        }
    }

    fn report_error(
        &mut self,
        child: ChildId,
        kind: crate::error::ChildErrorKind,
        initiator: Initiator,
    ) {
        let name = self.children[&child].name.clone();
        let err = ChildError {
            child,
            name,
            kind,
            initiator,
        };
        self.errors.push(err.clone());
        self.events.push_back(Event::Failed(err));
    }

    /// What a step means for the nursery; `failing` says it made a child's failure known
    /// before its report (which comes once it is reaped).
    fn after_step(&mut self, child: ChildId, errors_from: usize, failing: bool) {
        let now = self.now;
        let rec = self
            .children
            .get_mut(&child)
            .expect("a stepped child is live");
        if rec.life.is_finished() && rec.finished_at.is_none() {
            rec.finished_at = Some(now);
        }
        if rec.life.is_finished() && rec.life.deadline.is_none() {
            self.attended.remove(&child);
        } else {
            self.attended.insert(child);
        }
        if rec.life.is_over() {
            self.retiring.push(child);
        }
        // Only a failure this step made known or reported can newly fail the nursery: an
        // earlier one already made the cause an error (which nothing downgrades) or found the
        // nursery closed (which it stays), so the step costs what it reported, not every
        // error so far.
        let failed = failing
            || self.errors[errors_from..]
                .iter()
                .any(|e| e.kind.cancels_nursery());
        if failed && self.cause.is_none_or(|c| !c.is_error()) {
            self.teardown(TeardownCause::ChildFailed(child));
        }
        if self.phase == NurseryPhase::TearingDown {
            if self.config.flaws.has(Flaw::SerialTeardown) {
                self.cancel_next_serially();
            }
            self.start_teardown_clock();
            self.close_if_done();
        }
    }

    fn teardown(&mut self, cause: TeardownCause) {
        match self.phase {
            NurseryPhase::Closed => return,
            NurseryPhase::TearingDown if !cause.is_error() => return,
            NurseryPhase::TearingDown if self.cause.is_some_and(|c| c.is_error()) => return,
            _ => {}
        }
        self.phase = NurseryPhase::TearingDown;
        self.cause = Some(cause);
        self.start_teardown_clock();
        if self.config.flaws.has(Flaw::SerialTeardown) {
            self.cancel_next_serially();
        } else {
            // Every cancel goes out in this one step, at one `now`: one shared deadline.
            // A finished child wants none, so only the attended ones are asked.
            let attended: Vec<ChildId> = self.attended.iter().copied().collect();
            for child in attended {
                self.cancel_for_teardown(child, cause);
            }
        }
        self.close_if_done();
    }

    fn cancel_for_teardown(&mut self, child: ChildId, cause: TeardownCause) {
        if wants_cancel(self.life_of(child), cause) {
            // Cancel is valid in every phase `wants_cancel` admits.
            let _ = self.step(child, Input::Cancel(cause.initiator()));
        }
    }

    fn cancel_next_serially(&mut self) {
        let busy = self
            .children
            .values()
            .any(|c| c.life.is_stopping() && !c.life.is_finished());
        let Some(cause) = self.cause else { return };
        if busy {
            return;
        }
        let next = self
            .children
            .iter()
            .find(|(_, c)| wants_cancel(&c.life, cause));
        if let Some((&child, _)) = next {
            self.cancel_for_teardown(child, cause);
        }
    }

    /// Starts the teardown bound once nothing is left to join.
    ///
    /// A clean body exit first joins run-to-result children: waiting for their results is
    /// the user's computation, like joining a thread, and no timeout of the protocol's. The
    /// bound runs from the moment the last result is in (at once when none is awaited).
    fn start_teardown_clock(&mut self) {
        let cause = self.cause.expect("tearing down has a cause");
        // A child that is not attended is Done.
        let joining = !cause.is_error()
            && self.attended.iter().any(|c| {
                let l = self.life_of(*c);
                l.role == Role::RunToResult
                    && !l.result_delivered
                    && !l.is_stopping()
                    && l.phase != Phase::Done
            });
        if !joining {
            self.teardown_started.get_or_insert(self.now);
        }
    }

    fn close_if_done(&mut self) {
        if self.phase == NurseryPhase::TearingDown
            && self.attended.iter().all(|c| self.life_of(*c).is_finished())
        {
            self.phase = NurseryPhase::Closed;
            let report = report::build(self);
            self.events.push_back(Event::Closed(report));
        }
    }

    /// Ends a user or driver input: retires the children it made over. Not earlier: a step's
    /// consequences (a teardown cancelling siblings) and its invariant check run while every
    /// child it touched is live, and the errors a step reported keep their places.
    fn retire_over(&mut self) {
        for child in core::mem::take(&mut self.retiring) {
            self.retire(child);
        }
    }

    /// Moves an over child's record from the live table to the `ended` window (which drops
    /// its oldest-spawned records, and their errors, past `max_ended`), counts its outcome,
    /// and tells the driver to free what it keeps for it.
    fn retire(&mut self, child: ChildId) {
        let Some(rec) = self.children.remove(&child) else {
            return;
        };
        debug_assert!(rec.life.is_over() && !self.attended.contains(&child));
        self.tally.count(rec.life.outcome);
        self.last_retired_at = self.last_retired_at.max(rec.finished_at);
        self.commands.push_back(Command::Retire { child });
        self.ended.insert(child, rec);
        while self.ended.len() > self.config.limits.max_ended as usize {
            let Some((old, _)) = self.ended.pop_first() else {
                break;
            };
            let before = self.errors.len();
            let claimed_dropped = self.errors[..self.errors_claimed]
                .iter()
                .filter(|e| e.child == old)
                .count();
            self.errors.retain(|e| e.child != old);
            self.errors_claimed -= claimed_dropped;
            self.errors_dropped += (before - self.errors.len()) as u64;
        }
    }

    /// Checks the per-step invariants over what one step touched; a violation with no flaw
    /// on is a protocol bug.
    fn check(&mut self, stepped: Stepped) {
        if !cfg!(debug_assertions) || self.violation.is_some() {
            return;
        }
        // Only a step moves a child in or out of the index, so the stepped child is the one
        // whose place in it can be wrong.
        let l = self.life_of(stepped.child);
        assert_eq!(
            self.attended.contains(&stepped.child),
            !l.is_finished() || l.deadline.is_some(),
            "the attended-children index is out of step for {}",
            stepped.child
        );
        if let Err(v) = invariant::check_step(self, stepped) {
            assert!(
                !self.config.flaws.is_none(),
                "protocol invariant violated: {v}"
            );
            self.violation = Some(v);
        }
    }
}

#[cfg(test)]
mod tests;
