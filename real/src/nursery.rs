//! The nursery: spawn actors, talk to them, cancel them, and tear them down with a report.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use harrow_model::driver::{DriveError, Driver, Os};
use harrow_model::error::{ChildError, ChildOpError, SpawnError};
use harrow_model::supervisor::{
    Event, NurseryPhase, Outcome, Phase, RequestEnd, SpawnSpec, Supervisor, SupervisorConfig,
    TeardownCause, TeardownReport,
};
use harrow_model::trace::{Hex, Record};
use harrow_model::wire::{DEFAULT_MAX_FRAME, RemoteError, Role};
use harrow_model::{ChildId, Limits, RequestId, SpawnMethod, Timeouts, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::actor::{decode, encode, registry_ref};
use crate::child::ChildLimits;
use crate::os::RealOs;
use crate::trace::{self, LoopOs};

#[cfg(feature = "tokio")]
mod polled;

/// How a nursery behaves: start from [`NurseryConfig::default`] and change what you need
/// with the `with_*` methods (new settings may come, so it is not built field by field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NurseryConfig {
    /// The spawn method `spawn` uses.
    pub method: SpawnMethod,
    /// The timeout policy.
    pub timeouts: Timeouts,
    /// Table and queue bounds.
    pub limits: Limits,
    /// Whether SIGINT tears the nursery down. The host's own SIGINT disposition (default,
    /// ignored, or its handler, which is still called) is back as it was once the last
    /// nursery that handles SIGINT is dropped, and not before that nursery's `teardown`
    /// has returned.
    ///
    /// Meant for the root of a tree: Ctrl-C reaches the root's process group only (every
    /// process child leads its own), and the root's teardown takes the tree down. In a child
    /// forked (`Fork`) from a process that handled SIGINT itself it has no effect: the
    /// child's prelude resets every signal to its default, and the handler state it inherited
    /// cannot be re-armed safely, so a SIGINT sent to that child directly ends it (and, by
    /// their parent-death signal, its own children), which its parent reports.
    pub handle_sigint: bool,
    /// The largest frame either side of a child's channel sends or accepts, in bytes: a
    /// request, reply or result payload may be up to `harrow_model::wire::max_payload` of
    /// it. The child is given it at launch, with `limits.max_in_flight`. Between
    /// [`NurseryConfig::MIN_FRAME`] and [`NurseryConfig::MAX_FRAME`];
    /// [`harrow_model::wire::DEFAULT_MAX_FRAME`] (1 MiB) by default.
    pub max_frame: u32,
}

impl Default for NurseryConfig {
    /// `ForkServer` (safe from any thread), tractor's timeouts, SIGINT handled.
    fn default() -> Self {
        NurseryConfig {
            method: SpawnMethod::ForkServer,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            handle_sigint: true,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl NurseryConfig {
    /// The smallest `max_frame`: room for every message of the protocol's own, and for an
    /// error that says a payload was too large.
    pub const MIN_FRAME: u32 = 1024;
    /// The largest `max_frame` (1 GiB): a frame is held whole in memory on both sides.
    pub const MAX_FRAME: u32 = 1 << 30;

    /// This configuration with its frame limit set to `max_frame` bytes.
    #[must_use]
    pub fn with_max_frame(self, max_frame: u32) -> Self {
        NurseryConfig { max_frame, ..self }
    }

    /// What the child is told at its launch.
    fn child_limits(&self) -> ChildLimits {
        ChildLimits {
            max_frame: self.max_frame,
            max_in_flight: self.limits.max_in_flight,
        }
    }

    /// This configuration with `spawn`'s method set to `method`.
    #[must_use]
    pub fn with_method(self, method: SpawnMethod) -> Self {
        NurseryConfig { method, ..self }
    }

    /// This configuration with its timeout policy set to `timeouts`.
    #[must_use]
    pub fn with_timeouts(self, timeouts: Timeouts) -> Self {
        NurseryConfig { timeouts, ..self }
    }

    /// This configuration with its table and queue bounds set to `limits`.
    #[must_use]
    pub fn with_limits(self, limits: Limits) -> Self {
        NurseryConfig { limits, ..self }
    }

    /// This configuration with SIGINT handled or not (see [`NurseryConfig::handle_sigint`]).
    #[must_use]
    pub fn with_handle_sigint(self, handle_sigint: bool) -> Self {
        NurseryConfig {
            handle_sigint,
            ..self
        }
    }
}

/// What went wrong, typed, with what to do in its message (new kinds may come: match it
/// with a last `_` arm).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The nursery could not be opened: its configuration is invalid (a timeout), or the
    /// system refused a resource; the error underneath is its `source()`.
    Open(Box<dyn std::error::Error + Send + Sync>),
    /// The spawn was refused before anything started.
    Spawn(SpawnError),
    /// The spawn was refused: no actor of this name is registered in this program (the same
    /// registry serves every spawn method), so no child could run it. The nursery stays open.
    UnknownActor {
        /// The name asked for.
        actor: String,
        /// The names registered, in order.
        known: Vec<String>,
    },
    /// The spawn was refused: the actor is registered with another role (a daemon, from
    /// `Registry::handler` or `daemon`; a task, from `main` or `task`), which its child must
    /// have. The nursery stays open.
    WrongRole {
        /// The actor asked for.
        actor: String,
        /// The role it is registered with.
        registered: Role,
    },
    /// The operation on a child was refused.
    Op(ChildOpError),
    /// The child failed (boot failure, death, protocol violation, ...).
    Child(ChildError),
    /// The child's handler (or its `main`) failed: returned an error or panicked. The child
    /// itself may go on (a daemon keeps serving after a failed request).
    Remote {
        /// The child whose handler failed.
        child: ChildId,
        /// Its instance name (empty once the protocol keeps no record of it).
        name: String,
        /// What the handler said: an error it returned, or its panic.
        error: RemoteError,
    },
    /// A payload could not be encoded or decoded.
    Payload(String),
    /// SIGINT arrived: the nursery is tearing down; call `teardown` for the report.
    Interrupted,
    /// The nursery closed before the awaited answer came.
    Closed,
    /// The child was stopped, without a failure of its own, before it gave the awaited
    /// answer: a cancel, `stop` or `kill` asked for it, or the nursery is tearing down (a
    /// sibling failed, or `fail` was called). `outcome` says how it ended.
    Stopped {
        /// The child.
        child: ChildId,
        /// Its instance name (empty once the protocol keeps no record of it).
        name: String,
        /// How it ended.
        outcome: Outcome,
    },
    /// The child's handle comes from another nursery; it is refused, never taken for this
    /// nursery's child of the same number.
    OtherNursery(ChildId),
    /// `result` was called on a daemon: it serves requests and never produces a result.
    NoResult(ChildId),
    /// No reply within the caller's timeout; the child keeps running (it is not cancelled)
    /// and its late reply is dropped when it comes.
    TimedOut {
        /// How long the caller waited.
        waited: Duration,
        /// The child the request went to.
        child: ChildId,
        /// Its instance name (empty once the protocol keeps no record of it).
        name: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(why) => write!(f, "cannot open the nursery: {why}"),
            Error::Spawn(e) => e.fmt(f),
            Error::UnknownActor { actor, known } => unknown_actor(f, actor, known),
            Error::WrongRole { actor, registered } => write!(f, "spawn refused: actor `{actor}` is registered as {}; spawn it as Role::{registered:?}, or with spawn(), which takes the role from the registry", role_name(*registered)),
            Error::Op(e) => e.fmt(f),
            Error::Child(e) => e.fmt(f),
            Error::Remote { child, name, error } => write!(f, "the handler of {child} `{name}` failed: {error}"),
            Error::Payload(why) => write!(f, "{why}; both sides must use the same request and reply types"),
            Error::Interrupted => f.write_str("interrupted by SIGINT: the nursery is tearing down; call teardown() for the report"),
            Error::Closed => f.write_str("the nursery closed before the answer came; call teardown() for the report"),
            Error::Stopped { child, name, outcome } => write!(f, "{child} `{name}` was stopped before it answered: {outcome}. A cancel, stop or kill asked for it, or the nursery is tearing down; spawn a new child to go on"),
            Error::OtherNursery(c) => write!(f, "the handle of {c} comes from another nursery; use it on the nursery that spawned it"),
            Error::NoResult(c) => write!(f, "{c} is a daemon: it serves requests and has no result; talk to it with request(), end it with stop() or cancel(), or spawn it as Role::RunToResult"),
            Error::TimedOut { waited, child, name } => write!(f, "no reply from {child} `{name}` within {waited:?}; the child still runs and its late reply will be dropped: wait longer, or cancel the child if it is stuck"),
        }
    }
}

/// Every message stands alone; `source()` gives the error underneath to reporters that
/// walk the chain: the system's or the configuration's for [`Error::Open`], the handler's
/// [`RemoteError`] for [`Error::Remote`], and for the protocol's own errors, which this one
/// shows as they are ([`Error::Spawn`], [`Error::Op`], [`Error::Child`]), what is beneath
/// them (a child's remote error or protocol violation).
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open(e) => Some(e.as_ref()),
            Error::Remote { error, .. } => Some(error),
            Error::Child(e) => e.source(),
            Error::Spawn(e) => e.source(),
            Error::Op(e) => e.source(),
            _ => None,
        }
    }
}

/// What a role is called in an error message.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Daemon => "a daemon (it serves requests)",
        Role::RunToResult => "a task (it runs to a result)",
    }
}

/// Registered names an [`Error::UnknownActor`] message lists, at most.
const KNOWN_LISTED: usize = 16;

fn unknown_actor(f: &mut fmt::Formatter<'_>, actor: &str, known: &[String]) -> fmt::Result {
    write!(f, "spawn refused: no actor named `{actor}` is registered")?;
    if known.is_empty() {
        return f.write_str(
            "; this program registers none: pass your Registry to harrow_real::init first thing in main",
        );
    }
    f.write_str("; the registered ones are")?;
    for name in known.iter().take(KNOWN_LISTED) {
        write!(f, " `{name}`")?;
    }
    if known.len() > KNOWN_LISTED {
        write!(f, " and {} more", known.len() - KNOWN_LISTED)?;
    }
    f.write_str("; check the name, or register the actor in the Registry passed to init")
}

/// A child of a nursery, as its handle: it works on the nursery that spawned it only
/// ([`Error::OtherNursery`] elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child {
    nursery: u64,
    id: ChildId,
}

impl Child {
    /// The child's id in its nursery, as reports and child errors name it.
    pub fn id(self) -> ChildId {
        self.id
    }
}

/// A request in flight, as [`Nursery::start_request`] returns it: it is answered on the
/// nursery that sent it only ([`Error::OtherNursery`] elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a request's answer is kept until it is taken or given up (`Nursery::abandon`)"]
pub struct Ticket {
    nursery: u64,
    child: ChildId,
    id: RequestId,
    /// The caller's timeout, which an [`Error::TimedOut`] reports.
    timeout: Option<Duration>,
}

impl Ticket {
    /// The child the request went to.
    pub fn child(self) -> Child {
        Child {
            nursery: self.nursery,
            id: self.child,
        }
    }

    /// The request's id, as [`Completion::Request`] names it.
    pub fn id(self) -> RequestId {
        self.id
    }
}

/// Something that completed, as [`Nursery::wait_any`] reports it (new kinds may come: match
/// it with a last `_` arm).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// A request ended: its answer waits for [`Nursery::try_take`] with the ticket of the
    /// request `id` to `child` (see [`Ticket::id`]).
    Request {
        /// The child the request went to.
        child: Child,
        /// Which request.
        id: RequestId,
    },
    /// A run-to-result child's result is ready for [`Nursery::result`].
    Result(Child),
    /// A child failed (also kept for [`Nursery::take_failures`]).
    Failed(ChildError),
    /// A child's life is over (after its failure, if it failed): [`Nursery::outcome`] says
    /// how it ended. Not reported for a child whose end its caller already learned
    /// ([`Nursery::stop`], [`Nursery::wait_child`], [`Nursery::outcome`]).
    Ended(Child),
}

/// A spawn being set up, from [`Nursery::spawner`]: the role comes from the registry, the
/// rest has defaults that its methods change.
///
/// ```no_run
/// # use harrow_real::{Nursery, SpawnMethod};
/// # fn f(nursery: &mut Nursery) -> Result<(), harrow_real::Error> {
/// let child = nursery.spawner("upper").name("upper-1").method(SpawnMethod::Exec).spawn()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "nothing is spawned until `spawn` or `start` is called"]
pub struct SpawnBuilder<'n> {
    nursery: &'n mut Nursery,
    actor: String,
    name: Option<String>,
    method: SpawnMethod,
}

impl SpawnBuilder<'_> {
    /// Names the child `name` (unique among the nursery's live children; the actor's name
    /// if not set).
    pub fn name(self, name: &str) -> Self {
        SpawnBuilder {
            name: Some(name.into()),
            ..self
        }
    }

    /// Spawns the child by `method` rather than by the nursery's.
    pub fn method(self, method: SpawnMethod) -> Self {
        SpawnBuilder { method, ..self }
    }

    /// Spawns the child; returns once it has completed its handshake (or failed, within the
    /// boot timeout). See [`Nursery::start_with`] for what is refused before anything starts.
    pub fn spawn(self) -> Result<Child, Error> {
        let nursery = &mut *self.nursery;
        let child = Self::start_in(nursery, &self.actor, self.name.as_deref(), self.method)?;
        nursery.ready(child)?;
        Ok(child)
    }

    /// Starts the child and returns at once, before its handshake ([`Nursery::ready`] waits
    /// for it).
    pub fn start(self) -> Result<Child, Error> {
        Self::start_in(self.nursery, &self.actor, self.name.as_deref(), self.method)
    }

    fn start_in(
        nursery: &mut Nursery,
        actor: &str,
        name: Option<&str>,
        method: SpawnMethod,
    ) -> Result<Child, Error> {
        // An actor the registry does not know has no role: `start_with` refuses it by name.
        let role = registry_ref().role(actor).unwrap_or(Role::Daemon);
        nursery.start_with(name.unwrap_or(actor), actor, method, role)
    }
}

/// The shortest completion queue that is swept before it grows (see
/// `Nursery::push_completion`).
const MIN_SWEEP: usize = 64;

/// The identity the next nursery of this process takes.
static NEXT_NURSERY: AtomicU64 = AtomicU64::new(0);

/// A set of supervised children, torn down together.
///
/// Every decision is the protocol's: how each request ended (answer, remote error, time-out,
/// abandonment, its child's end), when a child is cancelled, killed, reaped or retired,
/// when the nursery closes; the one `Driver` carries them out, as it does under every
/// engine that checks them. Beside the protocol a nursery keeps only how it hands the
/// protocol's announcements to its user: the queue of what [`Nursery::wait_any`] has yet to
/// report (the protocol's own events, in the order it announced them, each dropped once
/// reported or taken another way) and the report the protocol gave at close, kept for
/// [`Nursery::teardown`].
#[derive(Debug)]
pub struct Nursery {
    /// This nursery's identity in the process, carried by its handles.
    id: u64,
    driver: Driver<LoopOs>,
    method: SpawnMethod,
    /// What [`Nursery::wait_any`] has yet to report, in the order it happened: an entry
    /// leaves when reported, or when what it announces is taken another way; failures, the
    /// last `Limits::max_ended` of them.
    completions: VecDeque<Completion>,
    /// The requests among `completions`, so that taking an answer `wait_any` already
    /// reported (the common case) does not scan the queue to find it absent.
    queued_requests: HashSet<RequestId>,
    /// The length of `completions` at which the next completion queued sweeps it first.
    sweep_at: usize,
    report: Option<TeardownReport>,
}

impl Nursery {
    /// A nursery with the default configuration.
    pub fn open() -> Result<Nursery, Error> {
        Nursery::open_with(NurseryConfig::default())
    }

    /// A nursery with this configuration.
    pub fn open_with(config: NurseryConfig) -> Result<Nursery, Error> {
        let frames = NurseryConfig::MIN_FRAME..=NurseryConfig::MAX_FRAME;
        if !frames.contains(&config.max_frame) {
            let why = format!(
                "max_frame is {} bytes; it must be between {} and {} bytes: set it within those",
                config.max_frame,
                frames.start(),
                frames.end()
            );
            return Err(Error::Open(why.into()));
        }
        let sup_config = SupervisorConfig {
            timeouts: config.timeouts,
            limits: config.limits,
            max_frame: config.max_frame,
            ..SupervisorConfig::default()
        };
        let sup = Supervisor::new(sup_config).map_err(|e| Error::Open(Box::new(e)))?;
        let mut os = RealOs::new(config.handle_sigint).map_err(|e| Error::Open(Box::new(e)))?;
        os.set_child_limits(config.child_limits());
        // Killing and reaping what is left is the server's last act: the reap bound fits it.
        os.set_fork_server_timeout(config.timeouts.reap);
        let id = NEXT_NURSERY.fetch_add(1, Ordering::Relaxed);
        let os = trace::wrap(os, &sup_config, id).map_err(|e| Error::Open(e.into()))?;
        Ok(Nursery {
            id,
            driver: Driver::new(sup, os),
            method: config.method,
            completions: VecDeque::new(),
            queued_requests: HashSet::new(),
            sweep_at: MIN_SWEEP,
            report: None,
        })
    }

    /// The operating system underneath, for the smoke scenarios that need to reach into it.
    #[cfg(feature = "internals")]
    pub(crate) fn os_mut(&mut self) -> &mut RealOs {
        &mut self.driver.os
    }

    /// A child running `actor` to be spawned, in the role the registry gives the actor (a
    /// daemon, or a task that runs to a result), named after the actor and by the nursery's
    /// method unless [`SpawnBuilder::name`] and [`SpawnBuilder::method`] say otherwise.
    pub fn spawner<'n>(&'n mut self, actor: &str) -> SpawnBuilder<'n> {
        SpawnBuilder {
            method: self.method,
            nursery: self,
            actor: actor.into(),
            name: None,
        }
    }

    /// Spawns a child named `name` running `actor` by the nursery's method, in the role the
    /// registry gives the actor (a daemon, or a task that runs to a result); returns once it
    /// has completed its handshake (or failed, within the boot timeout). Short for
    /// `spawner(actor).name(name).spawn()`.
    pub fn spawn(&mut self, name: &str, actor: &str) -> Result<Child, Error> {
        self.spawner(actor).name(name).spawn()
    }

    /// Spawns by a given method and role; returns once the child is ready or has failed.
    pub fn spawn_with(
        &mut self,
        name: &str,
        actor: &str,
        method: SpawnMethod,
        role: Role,
    ) -> Result<Child, Error> {
        let child = self.start_with(name, actor, method, role)?;
        self.ready(child)?;
        Ok(child)
    }

    /// Starts a child and returns at once, before its handshake: many can boot side by
    /// side. [`Nursery::ready`] waits for one. An actor name the program's [`crate::Registry`]
    /// does not know is refused here ([`Error::UnknownActor`]), before anything starts, and
    /// so is a role other than the one it is registered with ([`Error::WrongRole`]).
    pub fn start_with(
        &mut self,
        name: &str,
        actor: &str,
        method: SpawnMethod,
        role: Role,
    ) -> Result<Child, Error> {
        let registry = registry_ref();
        match registry.role(actor) {
            None => {
                return Err(Error::UnknownActor {
                    actor: actor.into(),
                    known: registry.names().map(String::from).collect(),
                });
            }
            Some(registered) if registered != role => {
                return Err(Error::WrongRole {
                    actor: actor.into(),
                    registered,
                });
            }
            Some(_) => {}
        }
        let spec = SpawnSpec {
            name: name.into(),
            actor: actor.into(),
            method,
            role,
        };
        self.driver.os.note(|| Record::Spawn { spec: spec.clone() });
        let id = self.driver.spawn(spec).map_err(Error::Spawn)?;
        Ok(self.handle(id))
    }

    /// Waits until a started child has completed its handshake, or fails if it cannot.
    pub fn ready(&mut self, child: Child) -> Result<(), Error> {
        let id = self.own(child)?;
        // Until it has booted, or is over: a child that died during boot is reported (as a
        // boot failure with its status) only once it is reaped, which may come a turn after
        // its channel's end of stream.
        self.pump(|n| n.handshake_done(id) || n.ended(id))?;
        // Booted is enough: a run-to-result child may already be answering, or done.
        if self.handshake_done(id) {
            return Ok(());
        }
        Err(self
            .failure_of(id)
            .map(Error::Child)
            .unwrap_or(Error::Closed))
    }

    /// Sends a typed request and waits for the typed reply: [`Nursery::start_request`], then
    /// [`Nursery::wait`].
    pub fn request<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        child: Child,
        req: &Req,
    ) -> Result<Resp, Error> {
        let ticket = self.start_request(child, req)?;
        self.wait(ticket)
    }

    /// Sends a typed request and waits at most `timeout` for the typed reply; see
    /// [`Error::TimedOut`].
    pub fn request_within<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        child: Child,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error> {
        let ticket = self.start_request_within(child, req, timeout)?;
        self.wait(ticket)
    }

    /// Sends raw request bytes and waits for the raw reply bytes.
    pub fn request_bytes(&mut self, child: Child, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        let ticket = self.start_request_bytes(child, payload, None)?;
        self.wait_bytes(ticket)
    }

    /// Sends a typed request at once and returns its ticket, without waiting for the reply.
    ///
    /// Requests to many children, and several to one child, are in flight together: at most
    /// `Limits::max_in_flight` per child (answers not yet taken count too), past which the
    /// request is refused with [`ChildOpError::TooManyInFlight`]. Take the answer with
    /// [`Nursery::try_take`] or [`Nursery::wait`], learn which request ended with
    /// [`Nursery::wait_any`], or give it up with [`Nursery::abandon`].
    pub fn start_request<Req: Serialize>(
        &mut self,
        child: Child,
        req: &Req,
    ) -> Result<Ticket, Error> {
        let payload = encode(req).map_err(Error::Payload)?;
        self.start_request_bytes(child, payload, None)
    }

    /// [`Nursery::start_request`], whose request ends with [`Error::TimedOut`] if no reply
    /// has come within `timeout` (the protocol ends it, and drops its late reply).
    pub fn start_request_within<Req: Serialize>(
        &mut self,
        child: Child,
        req: &Req,
        timeout: Duration,
    ) -> Result<Ticket, Error> {
        let payload = encode(req).map_err(Error::Payload)?;
        self.start_request_bytes(child, payload, Some(timeout))
    }

    /// [`Nursery::start_request`] with raw bytes, and an optional timeout.
    pub fn start_request_bytes(
        &mut self,
        child: Child,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Ticket, Error> {
        let child = self.own(child)?;
        let deadline = timeout.map(|t| self.driver.os.now() + t);
        self.driver.os.note(|| Record::Request {
            child,
            payload: Hex(payload.clone()),
            deadline,
        });
        let id = self
            .driver
            .request(child, payload, deadline)
            .map_err(Error::Op)?;
        Ok(Ticket {
            nursery: self.id,
            child,
            id,
            timeout,
        })
    }

    /// The typed answer of `ticket`'s request if it has ended, without blocking: one turn of
    /// the event loop that does not wait, then `None` if it has not ended yet. An answer is
    /// handed out once; see [`Nursery::wait`] for the errors.
    pub fn try_take<Resp: DeserializeOwned>(
        &mut self,
        ticket: Ticket,
    ) -> Option<Result<Resp, Error>> {
        self.try_take_bytes(ticket)
            .map(|r| r.and_then(|b| decode(&b).map_err(Error::Payload)))
    }

    /// [`Nursery::try_take`] with the raw reply bytes.
    pub fn try_take_bytes(&mut self, ticket: Ticket) -> Option<Result<Vec<u8>, Error>> {
        if let Err(e) = self.own_ticket(ticket).and_then(|()| self.turn_now()) {
            return Some(Err(e));
        }
        if self.settled(ticket.child, ticket.id) {
            return Some(self.take_settled(ticket));
        }
        self.interrupted().then_some(Err(Error::Interrupted))
    }

    /// Waits until `ticket`'s request ends and hands over its typed answer: the reply, the
    /// handler's error ([`Error::Remote`]), [`Error::TimedOut`], or the error of its child if
    /// the child ended first; [`ChildOpError::UnknownRequest`] if it was already taken or
    /// given up. Bounded by the request's timeout and the protocol's.
    pub fn wait<Resp: DeserializeOwned>(&mut self, ticket: Ticket) -> Result<Resp, Error> {
        let reply = self.wait_bytes(ticket)?;
        decode(&reply).map_err(Error::Payload)
    }

    /// [`Nursery::wait`] with the raw reply bytes.
    pub fn wait_bytes(&mut self, ticket: Ticket) -> Result<Vec<u8>, Error> {
        self.own_ticket(ticket)?;
        self.pump(|n| n.settled(ticket.child, ticket.id))?;
        self.take_settled(ticket)
    }

    /// Gives `ticket`'s request up: its answer, kept or to come, is dropped (a late reply
    /// answers nothing), and it no longer counts against `max_in_flight` once that reply
    /// has come or its child has ended.
    pub fn abandon(&mut self, ticket: Ticket) -> Result<(), Error> {
        self.own_ticket(ticket)?;
        self.forget_completion(&Completion::Request {
            child: self.handle(ticket.child),
            id: ticket.id,
        });
        let (child, id) = (ticket.child, ticket.id);
        self.driver.os.note(|| Record::AbandonRequest { child, id });
        self.driver
            .abandon_request(ticket.child, ticket.id)
            .map_err(Error::Op)
    }

    /// The next completion: a request ended (take its answer with [`Nursery::try_take`]), a
    /// run-to-result child's result is ready ([`Nursery::result`]), a child failed, or a
    /// child's life is over ([`Nursery::outcome`] says how). Each is reported once, in the
    /// order it happened; a request's only once its answer can be taken without blocking
    /// (ended with its child: once that child's error is known).
    ///
    /// Waits at most `timeout` (`None`: until something completes); `Ok(None)` when it
    /// passed first, or at once when nothing is left that could complete (no child lives, or
    /// the nursery has closed, and nothing is queued): after a child's failure tore the
    /// nursery down, what is left is reported, then `Ok(None)`. `Some(Duration::ZERO)` turns
    /// the event loop once without waiting: what a host loop calls when the nursery's
    /// descriptor ([`AsFd`]) is readable.
    /// SIGINT: [`Error::Interrupted`], once the teardown it started is over.
    pub fn wait_any(&mut self, timeout: Option<Duration>) -> Result<Option<Completion>, Error> {
        let until = timeout.map(|t| self.driver.os.now() + t);
        let mut turned = false;
        loop {
            self.absorb_events();
            if let Some(c) = self.next_completion() {
                return Ok(Some(c));
            }
            // Closed, everything reported: nothing can complete (SIGINT's close says so).
            if self.driver.sup.is_closed() && !self.interrupted() {
                return Ok(None);
            }
            self.check_open()?;
            let expired = until.is_some_and(|u| self.driver.os.now() >= u);
            if (turned && expired) || self.driver.sup.live_count() == 0 {
                return Ok(None);
            }
            self.driver.turn_until(until)?;
            turned = true;
        }
    }

    /// How long until the protocol's next deadline (a timeout, an escalation), if it has
    /// one: a host loop waiting on the nursery's descriptor must wake by then and call
    /// [`Nursery::wait_any`] with `Some(Duration::ZERO)`, since no descriptor becomes
    /// readable when a deadline passes. `Some(Duration::ZERO)` if it has passed.
    pub fn next_deadline(&mut self) -> Option<Duration> {
        let now = self.driver.os.now();
        self.driver
            .sup
            .poll_deadline()
            .map(|d| d.saturating_since(now))
    }

    /// Whether the request `id` to `child` has ended and how it ended is known without
    /// waiting: kept for its caller (ended with its child: once the child's error is known,
    /// or the child is done), or not kept at all (taken, given up, never sent).
    fn settled(&self, child: ChildId, id: RequestId) -> bool {
        match self.driver.sup.peek_reply(child, id) {
            Some(RequestEnd::ChildEnded) => self.failure_of(child).is_some() || self.ended(child),
            Some(_) => true,
            None => !self
                .driver
                .sup
                .lifecycle(child)
                .is_some_and(|l| l.open_requests().any(|f| f.id == id)),
        }
    }

    /// Takes the answer of a settled request.
    fn take_settled(&mut self, ticket: Ticket) -> Result<Vec<u8>, Error> {
        let (child, id) = (ticket.child, ticket.id);
        self.forget_completion(&Completion::Request {
            child: self.handle(child),
            id,
        });
        self.driver.os.note(|| Record::ClaimReply { child, id });
        match self.driver.sup.claim_reply(child, id) {
            Some(RequestEnd::Answered { result: Ok(b), .. }) => Ok(b),
            Some(RequestEnd::Answered { result: Err(e), .. }) => Err(self.remote(child, e)),
            Some(RequestEnd::TimedOut) => Err(Error::TimedOut {
                waited: ticket.timeout.unwrap_or_default(),
                child,
                name: self.name_of(child),
            }),
            Some(RequestEnd::ChildEnded) => Err(self.end_known(child)),
            Some(RequestEnd::Abandoned) | None => {
                Err(Error::Op(ChildOpError::UnknownRequest { child, id }))
            }
        }
    }

    /// `child`'s instance name, as an error names it: empty once the protocol keeps no
    /// record of the child.
    fn name_of(&self, child: ChildId) -> String {
        self.driver.sup.name(child).unwrap_or_default().into()
    }

    /// The error of `child`'s handler, naming the child.
    pub(crate) fn remote(&self, child: ChildId, error: RemoteError) -> Error {
        Error::Remote {
            child,
            name: self.name_of(child),
            error,
        }
    }

    /// Why a child ended without the answer awaited of it, once known: its own error,
    /// SIGINT's teardown, or a stop that was asked for (the user's, or the teardown's).
    fn end_known(&self, id: ChildId) -> Error {
        if let Some(err) = self.failure_of(id) {
            Error::Child(err)
        } else if self.interrupted() {
            Error::Interrupted
        } else if let Some(outcome) = self.driver.sup.lifecycle(id).and_then(|l| l.outcome) {
            Error::Stopped {
                child: id,
                name: self.name_of(id),
                outcome,
            }
        } else {
            Error::Op(ChildOpError::AlreadyFinished(id))
        }
    }

    /// Why a child ended without the answer awaited of it: waits until its error is known or
    /// it is done (a death is reported with its status, at its reap), which the protocol's
    /// timeouts bound.
    fn end_of(&mut self, id: ChildId) -> Error {
        let done = self.pump(|n| n.failure_of(id).is_some() || n.ended(id));
        match done {
            Err(e) if self.failure_of(id).is_none() => e,
            _ => self.end_known(id),
        }
    }

    /// Waits for a run-to-result child's typed result, and hands it over: it is claimed once.
    ///
    /// A result is kept until claimed while the protocol keeps a record of its child (live,
    /// or among the last `Limits::max_ended` to end); a later call is
    /// [`ChildOpError::AlreadyFinished`]. A daemon has no result: [`Error::NoResult`] at once.
    pub fn result<Out: DeserializeOwned>(&mut self, child: Child) -> Result<Out, Error> {
        let child = self.own(child)?;
        let role = self.driver.sup.lifecycle(child).map(|l| l.role);
        if role == Some(Role::Daemon) {
            return Err(Error::NoResult(child));
        }
        if self.forgotten(child) {
            return Err(Error::Op(ChildOpError::AlreadyFinished(child)));
        }
        self.pump(|n| n.driver.sup.has_result(child) || n.lifecycle_done(child))?;
        self.forget_completion(&Completion::Result(self.handle(child)));
        self.driver.os.note(|| Record::ClaimResult { child });
        match self.driver.sup.claim_result(child) {
            Some(Ok(bytes)) => decode(&bytes).map_err(Error::Payload),
            Some(Err(e)) => Err(self.remote(child, e)),
            None => Err(self.end_of(child)),
        }
    }

    /// Cancels one child: graceful first, then SIGKILL (or abandonment) by the timeouts.
    pub fn cancel(&mut self, child: Child) -> Result<(), Error> {
        let id = self.own(child)?;
        self.driver.os.note(|| Record::Cancel { child: id });
        self.driver.cancel(id).map_err(Error::Op)
    }

    /// Cancels one child and waits until it is gone (exited, killed or abandoned, and reaped).
    pub fn stop(&mut self, child: Child) -> Result<(), Error> {
        self.cancel(child)?;
        let id = child.id;
        self.pump(|n| n.ended(id))?;
        self.forget_completion(&Completion::Ended(child));
        Ok(())
    }

    /// Stops one child forcefully now, without asking it first: SIGKILL to its process group
    /// (a thread child, which cannot be killed, is abandoned), through the same path as a
    /// cancel that was not acknowledged in time. Returns at once; [`Nursery::wait_child`]
    /// waits for its end. A kill asked for is no failure: its outcome is [`Outcome::Killed`]
    /// with [`crate::ForceReason::UserHardStop`], and the nursery and its other children go
    /// on.
    pub fn kill(&mut self, child: Child) -> Result<(), Error> {
        let id = self.own(child)?;
        self.driver.os.note(|| Record::HardStop { child: id });
        self.driver.hard_stop(id).map_err(Error::Op)
    }

    /// How `child` ended, if it has, after one turn of the event loop that does not wait:
    /// `Ok(None)` while it lives; see [`Nursery::wait_child`] for the rest.
    pub fn outcome(&mut self, child: Child) -> Result<Option<Outcome>, Error> {
        let id = self.own(child)?;
        self.turn_now()?;
        self.end_of_child(id)
    }

    /// Waits at most `timeout` (`None`: as long as it lives) for `child` to end, and says
    /// how: `Ok(Some(outcome))` if it ended without an error of its own (it exited, or was
    /// stopped or killed as asked), [`Error::Child`] with its error if it failed, `Ok(None)`
    /// if it still lives when the timeout passes. The nursery is not torn down by this
    /// (though a child's failure tears it down by itself: one cancels all). Asked again, it
    /// says the same while the protocol keeps the child's record (the last
    /// `Limits::max_ended` children to end); later, [`ChildOpError::AlreadyFinished`].
    pub fn wait_child(
        &mut self,
        child: Child,
        timeout: Option<Duration>,
    ) -> Result<Option<Outcome>, Error> {
        let id = self.own(child)?;
        let until = timeout.map(|t| self.driver.os.now() + t);
        self.pump_until(until, |n| n.ended(id))?;
        self.end_of_child(id)
    }

    /// How a child ended, without waiting: `None` while it lives; its error if it failed.
    fn end_of_child(&mut self, id: ChildId) -> Result<Option<Outcome>, Error> {
        if self.forgotten(id) {
            return Err(Error::Op(ChildOpError::AlreadyFinished(id)));
        }
        let Some(life) = self.driver.sup.lifecycle(id) else {
            return Err(Error::Op(ChildOpError::UnknownChild(id)));
        };
        let Some(outcome) = life.outcome.filter(|_| life.phase == Phase::Done) else {
            return Ok(None);
        };
        self.forget_completion(&Completion::Ended(self.handle(id)));
        match self.failure_of(id) {
            Some(err) => Err(Error::Child(err)),
            None => Ok(Some(outcome)),
        }
    }

    /// The live child registered under `name`; never one known to be dead.
    pub fn lookup(&self, name: &str) -> Option<Child> {
        self.driver.sup.lookup(name).map(|id| self.handle(id))
    }

    /// The pid of a process child (a name only; harrow acts through its pidfd); `None` for a
    /// thread child, one that is gone, or a handle from another nursery.
    pub fn pid(&self, child: Child) -> Option<i32> {
        self.own(child).ok().and_then(|id| self.driver.os.pid(id))
    }

    /// Completions queued for `wait_any`, including those announcing what was since dropped.
    #[cfg(feature = "internals")]
    pub(crate) fn queued_completions(&self) -> usize {
        self.completions.len()
    }

    /// Answers held for no caller plus requests whose caller gave up and whose reply has not
    /// come yet: zero whenever every answer has been claimed or dropped.
    #[cfg(feature = "internals")]
    pub(crate) fn unclaimed_replies(&self) -> usize {
        self.driver.sup.requests_held()
    }

    /// Child errors reported and not yet taken, oldest first, each once: those of live
    /// children and of the `Limits::max_ended` retired ones spawned last (a long-lived
    /// nursery that never takes them keeps no more). The protocol keeps them
    /// ([`Supervisor::claim_errors`]).
    pub fn take_failures(&mut self) -> Vec<ChildError> {
        self.driver.os.note(|| Record::ClaimErrors);
        self.driver.sup.claim_errors()
    }

    /// Ends the body normally: daemons are cancelled, run-to-result children joined; returns
    /// the report once every child is gone.
    pub fn teardown(self) -> TeardownReport {
        self.close(TeardownCause::BodyFinished)
    }

    /// Ends the body with an error: every child is cancelled; returns the report.
    pub fn fail(self) -> TeardownReport {
        self.close(TeardownCause::BodyFailed)
    }

    fn close(mut self, cause: TeardownCause) -> TeardownReport {
        self.driver.os.note(|| Record::BeginTeardown { cause });
        self.driver.begin_teardown(cause);
        // Every wait on this path is bounded by the protocol's timeouts.
        let _ = self.pump(|n| n.report.is_some());
        self.report
            .take()
            .unwrap_or_else(|| self.driver.sup.report())
    }

    /// This nursery's handle of its child `id`.
    fn handle(&self, id: ChildId) -> Child {
        Child {
            nursery: self.id,
            id,
        }
    }

    /// The id of `child`, whose handle must come from this nursery.
    fn own(&self, child: Child) -> Result<ChildId, Error> {
        if child.nursery == self.id {
            Ok(child.id)
        } else {
            Err(Error::OtherNursery(child.id))
        }
    }

    /// Checks that `ticket` comes from this nursery.
    fn own_ticket(&self, ticket: Ticket) -> Result<(), Error> {
        self.own(ticket.child()).map(|_| ())
    }

    /// Whether `id` was spawned here and the protocol keeps no record of it any more.
    fn forgotten(&self, id: ChildId) -> bool {
        let sup = &self.driver.sup;
        (id.0 as usize) < sup.child_count() && sup.lifecycle(id).is_none()
    }

    /// Whether `id` is done (or so long done that the protocol keeps no record of it).
    fn ended(&self, id: ChildId) -> bool {
        self.phase_of(id).is_none_or(|p| p == Phase::Done)
    }

    fn phase_of(&self, id: ChildId) -> Option<Phase> {
        self.driver.sup.lifecycle(id).map(|l| l.phase)
    }

    fn handshake_done(&self, id: ChildId) -> bool {
        self.driver
            .sup
            .lifecycle(id)
            .is_some_and(|l| l.handshake_done)
    }

    fn lifecycle_done(&self, id: ChildId) -> bool {
        self.driver
            .sup
            .lifecycle(id)
            .is_none_or(|l| l.is_stopping() || l.phase == Phase::Done)
    }

    fn failure_of(&self, id: ChildId) -> Option<ChildError> {
        self.driver
            .sup
            .errors()
            .iter()
            .rev()
            .find(|e| e.child == id)
            .cloned()
    }

    /// Turns the event loop until `done`; SIGINT and a closed nursery end the wait early.
    fn pump(&mut self, mut done: impl FnMut(&Self) -> bool) -> Result<(), Error> {
        loop {
            self.absorb_events();
            if done(self) {
                return Ok(());
            }
            self.check_open()?;
            self.driver.turn()?;
        }
    }

    /// [`Nursery::pump`] that also ends, with `Ok`, once `until` has passed (after at least
    /// one turn of the event loop).
    fn pump_until(
        &mut self,
        until: Option<Timestamp>,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), Error> {
        let mut turned = false;
        loop {
            self.absorb_events();
            if done(self) {
                return Ok(());
            }
            self.check_open()?;
            if turned && until.is_some_and(|u| self.driver.os.now() >= u) {
                return Ok(());
            }
            self.driver.turn_until(until)?;
            turned = true;
        }
    }

    /// `Ok` while the nursery is open; after a SIGINT, finishes the teardown it started
    /// (bounded by the protocol's timeouts) and says [`Error::Interrupted`].
    fn check_open(&mut self) -> Result<(), Error> {
        if self.interrupted()
            && self.report.is_none()
            && self.driver.sup.phase() != NurseryPhase::Closed
        {
            // Keep turning: the teardown SIGINT started must finish; the caller learns of it.
            self.driver.run_to_close().map_err(|_| Error::Closed)?;
            self.absorb_events();
            return Err(Error::Interrupted);
        }
        if self.driver.sup.is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// One turn of the event loop that does not wait (none once the nursery has closed).
    fn turn_now(&mut self) -> Result<(), Error> {
        if !self.driver.sup.is_closed() {
            let now = self.driver.os.now();
            self.driver.turn_until(Some(now))?;
        }
        self.absorb_events();
        Ok(())
    }

    /// Takes the first completion that can be reported: a request's once settled (one not
    /// yet settled keeps its place), a result while it is kept; drops those whose answer
    /// or result was taken another way.
    fn next_completion(&mut self) -> Option<Completion> {
        let mut i = 0;
        while i < self.completions.len() {
            let c = &self.completions[i];
            let live = self.announces_something(c);
            let ready = live
                && match c {
                    Completion::Request { child, id } => self.settled(child.id, *id),
                    _ => true,
                };
            if ready || !live {
                let c = self.completions.remove(i);
                if let Some(Completion::Request { id, .. }) = &c {
                    self.queued_requests.remove(id);
                }
                if ready {
                    return c;
                }
            } else {
                i += 1;
            }
        }
        None
    }

    /// Whether what `c` announces is still there: a request's answer or a result is kept
    /// until taken, and while its child's record is (see [`Limits::max_ended`]).
    fn announces_something(&self, c: &Completion) -> bool {
        match c {
            Completion::Request { child, id } => {
                self.driver.sup.peek_reply(child.id, *id).is_some()
            }
            Completion::Result(child) => self.driver.sup.has_result(child.id),
            Completion::Failed(_) | Completion::Ended(_) => true,
        }
    }

    /// Queues a completion; first, once the queue has doubled since it was last swept,
    /// drops those that announce nothing any more (answers and results dropped with their
    /// child's record), so a nursery whose user never calls `wait_any` holds at most twice
    /// what is still announced, at an amortized constant cost per completion.
    fn push_completion(&mut self, c: Completion) {
        if self.completions.len() >= self.sweep_at {
            let mut queue = std::mem::take(&mut self.completions);
            queue.retain(|c| self.announces_something(c));
            self.queued_requests = queue
                .iter()
                .filter_map(|c| match c {
                    Completion::Request { id, .. } => Some(*id),
                    _ => None,
                })
                .collect();
            self.completions = queue;
            self.sweep_at = (2 * self.completions.len()).max(MIN_SWEEP);
        }
        if let Completion::Request { id, .. } = &c {
            self.queued_requests.insert(*id);
        }
        self.completions.push_back(c);
    }

    /// Drops the completion `c` announces, taken another way.
    fn forget_completion(&mut self, c: &Completion) {
        if let Completion::Request { id, .. } = c
            && !self.queued_requests.remove(id)
        {
            return;
        }
        if let Some(i) = self.completions.iter().position(|x| x == c) {
            self.completions.remove(i);
        }
    }

    /// Queues a completion of which each child has at most one (a failure, an end), keeping
    /// the last `Limits::max_ended` of its kind: a nursery whose user never asks keeps no
    /// more over its life.
    fn push_per_child(&mut self, c: Completion) {
        let max = self.driver.sup.config().limits.max_ended as usize;
        let same = |x: &Completion| core::mem::discriminant(x) == core::mem::discriminant(&c);
        if self.completions.iter().filter(|x| same(x)).count() >= max
            && let Some(i) = self.completions.iter().position(same)
        {
            self.completions.remove(i);
        }
        self.push_completion(c);
    }

    fn absorb_events(&mut self) {
        while let Some(ev) = self.driver.poll_event() {
            self.driver.os.note(|| Record::Event { event: ev.clone() });
            match ev {
                // Answers and results are kept by the protocol until claimed.
                Event::Ready(_) => {}
                // A request given up keeps no answer, and is announced to nobody.
                Event::RequestEnded { child, id } => {
                    if self.driver.sup.peek_reply(child, id).is_some() {
                        let child = self.handle(child);
                        self.push_completion(Completion::Request { child, id });
                    }
                }
                Event::Finished(child) => {
                    let child = self.handle(child);
                    self.push_completion(Completion::Result(child));
                }
                Event::Failed(err) => self.push_per_child(Completion::Failed(err)),
                Event::Ended(child) => self.push_per_child(Completion::Ended(self.handle(child))),
                Event::Closed(report) => self.report = Some(report),
            }
        }
    }

    /// Whether SIGINT started the teardown (an error cause like this one, once set, is never
    /// replaced).
    fn interrupted(&self) -> bool {
        self.driver.sup.teardown_cause() == Some(TeardownCause::Interrupted)
    }
}

/// The nursery's event loop descriptor (an epoll instance), for a host loop that waits on
/// many things at once.
///
/// It is readable (level semantics) while any of the nursery's children's channels, exit
/// descriptors or its signal and wake pipes is ready; then call [`Nursery::wait_any`] with
/// `Some(Duration::ZERO)` until it returns `Ok(None)` (each call turns the loop once without
/// waiting and reports what completed), or [`Nursery::try_take`]. Readiness means input for
/// the nursery, not necessarily a completion. A deadline of the protocol (a request's
/// timeout, a cancel's escalation) makes nothing readable: wait at most
/// [`Nursery::next_deadline`], and turn the loop then too. Only wait for readability on
/// it; reading from it or adding to it is not supported.
impl AsFd for Nursery {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.driver.os.poll_fd()
    }
}

impl From<DriveError> for Error {
    fn from(_: DriveError) -> Self {
        Error::Closed
    }
}
