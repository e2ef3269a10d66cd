//! Property tests of the protocol.
//!
//! 1. Random sequences of supervisor calls — user calls and driver reports, valid or not, at
//!    non-decreasing times — against `Supervisor`, checked after every call against a small
//!    reference model fed only with the calls and the commands and events the supervisor emits.
//! 2. Random scenarios under random schedules through the pure world, checked against an
//!    oracle of what each child's end may be whatever the schedule.
//!
//! Failing cases are persisted in `corpus/proptest/prop_protocol.txt` and replayed first.

use std::time::Duration;

use harrow_model::error::{ChildOpError, SpawnError};
use harrow_model::supervisor::{
    Command, Event, Lifecycle, NurseryPhase, Outcome, Phase, SpawnSpec, Supervisor,
    SupervisorConfig, TeardownCause,
};
use harrow_model::wire::{FrameError, Message, PROTOCOL_VERSION, RemoteError, Role};
use harrow_model::{
    ChildErrorKind, ChildId, ExitStatus, Initiator, RequestId, Situation, SpawnMethod, Timestamp,
};
use harrow_sim::run;
use harrow_sim::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};
use harrow_sim::world::{Choice, Kid, Proc, World};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../corpus/proptest/prop_protocol.txt"
);

fn config() -> ProptestConfig {
    // `.ci/mutants` sets `HARROW_MUTANTS` when it tests mutants of the protocol: a failure
    // then is the mutant's, so it is neither shrunk nor persisted.
    let mutant = std::env::var_os("HARROW_MUTANTS").is_some();
    ProptestConfig {
        cases: 256,
        failure_persistence: (!mutant)
            .then(|| Box::new(FileFailurePersistence::Direct(CORPUS)) as Box<_>),
        max_shrink_iters: if mutant {
            0
        } else {
            ProptestConfig::default().max_shrink_iters
        },
        // The same cases every CI run; `PROPTEST_RNG_SEED=random` explores new ones.
        rng_seed: match std::env::var("PROPTEST_RNG_SEED").ok().as_deref() {
            Some("random") => proptest::test_runner::RngSeed::Random,
            Some(n) => n
                .parse()
                .unwrap_or(proptest::test_runner::RngSeed::Fixed(0x6861_7272)),
            None => proptest::test_runner::RngSeed::Fixed(0x6861_7272),
        },
        ..ProptestConfig::default()
    }
}

// =======================================================================================
// 1. Random supervisor calls against a reference model.

/// Instance names; few, so that names clash and are reused.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// One call on the supervisor. Child indices may be out of range on purpose.
#[derive(Clone, Debug)]
enum Op {
    Spawn {
        name: usize,
        method: SpawnMethod,
        role: Role,
        threads: usize,
    },
    Request(u32),
    Cancel(u32),
    HardStop(u32),
    Teardown(Cause),
    Interrupt,
    Launched(u32),
    LaunchFailed(u32),
    Message(u32, Message),
    Malformed(u32),
    ChannelClosed(u32),
    Exit(u32),
    Reaped(u32, ExitStatus),
    /// `handle_timeout` this many milliseconds later.
    Advance(u64),
    /// `handle_timeout` at the supervisor's next deadline.
    ToDeadline,
    /// The k-th (modulo) of the driver inputs a well-behaved child and driver would produce
    /// next, chosen when the op runs; it lets sequences get deep into lifecycles.
    Plausible(u16),
}

#[derive(Clone, Copy, Debug)]
enum Cause {
    BodyFinished,
    BodyFailed,
    ChildFailed(u32),
    Interrupted,
}

fn boom() -> RemoteError {
    RemoteError::error("boom")
}

fn result(ok: bool) -> Result<Vec<u8>, RemoteError> {
    if ok { Ok(b"ok".to_vec()) } else { Err(boom()) }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Daemon), Just(Role::RunToResult)]
}

fn method() -> impl Strategy<Value = SpawnMethod> {
    prop::sample::select(SpawnMethod::ALL.to_vec())
}

fn message() -> impl Strategy<Value = Message> {
    let version = prop_oneof![9 => Just(PROTOCOL_VERSION), 1 => Just(99u16)];
    prop_oneof![
        6 => version.prop_map(|version| Message::Handshake { version, pid: 7 }),
        1 => role().prop_map(|role| Message::SpawnSpec { actor: "echo".into(), role }),
        1 => (0..8u64).prop_map(|id| Message::Request { id: RequestId(id), payload: vec![] }),
        1 => Just(Message::Cancel),
        3 => (0..8u64, any::<bool>())
            .prop_map(|(id, ok)| Message::Reply { id: RequestId(id), result: result(ok) }),
        2 => any::<bool>().prop_map(|ok| Message::Finished { result: result(ok) }),
        1 => Just(Message::Failed(boom())),
        2 => Just(Message::CancelAck),
    ]
}

fn cause() -> impl Strategy<Value = Cause> {
    prop_oneof![
        Just(Cause::BodyFinished),
        Just(Cause::BodyFailed),
        (0..7u32).prop_map(Cause::ChildFailed),
        Just(Cause::Interrupted),
    ]
}

fn status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        Just(ExitStatus::Exited(0)),
        Just(ExitStatus::Exited(1)),
        Just(ExitStatus::Signaled(9)),
    ]
}

fn spawn() -> impl Strategy<Value = Op> {
    let threads = prop_oneof![3 => Just(1usize), 1 => 2..8usize];
    (0..NAMES.len(), method(), role(), threads).prop_map(|(name, method, role, threads)| {
        Op::Spawn {
            name,
            method,
            role,
            threads,
        }
    })
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly the first children, sometimes one that does not exist.
    let child = || prop_oneof![6 => 0..3u32, 3 => 0..5u32, 1 => 0..7u32];
    let later = prop_oneof![
        Just(0u64),
        Just(1),
        Just(499),
        Just(500),
        Just(1600),
        Just(3000),
        Just(5000),
        0..12_000u64
    ];
    prop_oneof![
        4 => spawn(),
        2 => child().prop_map(Op::Request),
        1 => child().prop_map(Op::Cancel),
        1 => child().prop_map(Op::HardStop),
        1 => cause().prop_map(Op::Teardown),
        1 => Just(Op::Interrupt),
        5 => child().prop_map(Op::Launched),
        1 => child().prop_map(Op::LaunchFailed),
        10 => (child(), message()).prop_map(|(c, m)| Op::Message(c, m)),
        1 => child().prop_map(Op::Malformed),
        2 => child().prop_map(Op::ChannelClosed),
        3 => child().prop_map(Op::Exit),
        3 => (child(), status()).prop_map(|(c, s)| Op::Reaped(c, s)),
        2 => later.prop_map(Op::Advance),
        2 => Just(Op::ToDeadline),
        16 => any::<u16>().prop_map(Op::Plausible),
    ]
}

/// How our end of a child's channel was closed, as far as the reference can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    /// Before the child was reaped.
    BeforeReap,
    /// After the reap, by end-of-file or the drain deadline: the drain is over.
    DrainOver,
    /// After the reap, because a late frame broke the protocol: the drain still waits for
    /// its deadline (the lifecycle's `Draining ──EOF / drain bound──▶ Done`).
    ByViolationWhileDraining,
}

/// What the reference knows of one child: facts read off calls, commands and events only.
#[derive(Clone, Debug)]
struct RefChild {
    name: &'static str,
    method: SpawnMethod,
    role: Role,
    /// Requests sent and not yet answered.
    in_flight: Vec<RequestId>,
    launched: bool,
    launch_failed: bool,
    ready: bool,
    cancel_sent: bool,
    closed: Option<Closed>,
    reap_commands: u32,
    reaped_at: Option<Timestamp>,
    /// What the reap reported.
    status: Option<ExitStatus>,
    forced: bool,
    abandoned: bool,
    reap_timed_out: bool,
    /// A kill, abandon or reap command went out: it left the registry in that step.
    deregistered: bool,
    /// A handshake of our version was accepted without making it ready or cancelling it: it
    /// came after we had begun stopping the child, and still proves that the child booted.
    late_handshake: bool,
    /// The supervisor reported a protocol violation, a version mismatch or a boot timeout of
    /// it, with itself as the initiator: a stop of its own, unless one had begun already.
    supervisor_error: bool,
    /// It reported a failure of its own (`Failed`, or a failed result).
    remote_failed: bool,
    /// It delivered its result (`Event::Finished`).
    result_delivered: bool,
    /// Its launch must be followed at once by a hard stop: the user asked for one, or its
    /// boot timed out, before it was launched.
    stop_at_launch: bool,
    /// Death reports so far: `BootFailed`, `Died` or `LaunchFailed`.
    death_reports: u32,
    /// The user asked it to stop (an accepted cancel or hard stop).
    stop_asked: bool,
    /// The supervisor retired it: nothing may name it after that.
    retired: bool,
    /// Its end was reported (`Event::Ended`): once, when it was done.
    ended: bool,
}

impl RefChild {
    fn new(name: &'static str, method: SpawnMethod, role: Role) -> Self {
        RefChild {
            name,
            method,
            role,
            in_flight: Vec::new(),
            launched: false,
            launch_failed: false,
            ready: false,
            cancel_sent: false,
            closed: None,
            reap_commands: 0,
            reaped_at: None,
            status: None,
            forced: false,
            abandoned: false,
            retired: false,
            ended: false,
            reap_timed_out: false,
            deregistered: false,
            late_handshake: false,
            supervisor_error: false,
            remote_failed: false,
            result_delivered: false,
            stop_at_launch: false,
            death_reports: 0,
            stop_asked: false,
        }
    }

    /// Whether it surely has not begun to stop: nothing that starts a stop has happened to
    /// it (a cancel or hard stop, an error, end-of-file or a bad frame, its exit, a kill).
    fn surely_unstopped(&self) -> bool {
        !(self.stop_asked
            || self.cancel_sent
            || self.forced
            || self.supervisor_error
            || self.launch_failed
            || self.closed.is_some()
            || self.reap_commands > 0)
    }

    /// The death report due when the child finishes (property 5): none if we
    /// stopped it (a cancel went out, a kill, an error of the supervisor's own, or the
    /// supervisor began the stop: `initiator`,
    /// whose first cause the reference cannot always tell), a boot failure if it never
    /// booted, else `Died` unless it reported a failure or its result. A cancel asked for
    /// while it booted, never sent, does not make its death ours.
    fn death_report(&self, initiator: Option<Initiator>) -> Option<ChildErrorKind> {
        if self.launch_failed {
            return Some(ChildErrorKind::LaunchFailed("EAGAIN".into()));
        }
        let status = self.status?;
        // An error of the supervisor's own (a bad frame, a version mismatch, a boot timeout)
        // means it closed or killed the child: that death is ours too. A kill of a child whose
        // channel had ended unasked (its stop's initiator) only finished its own failure.
        let ended_unasked = initiator == Some(Initiator::Child);
        if self.cancel_sent
            || (self.forced && !ended_unasked)
            || self.supervisor_error
            || initiator == Some(Initiator::Supervisor)
        {
            return None;
        }
        if !self.ready && !self.late_handshake {
            return Some(ChildErrorKind::BootFailed(status));
        }
        (!self.remote_failed && !self.result_delivered).then_some(ChildErrorKind::Died(status))
    }

    /// Whether `outcome` is the one its facts imply, once it has finished.
    fn outcome_fits(&self, outcome: Option<Outcome>) -> bool {
        match (outcome, self.status) {
            (Some(Outcome::LaunchFailed), _) => self.launch_failed,
            (Some(Outcome::Abandoned(_)), None) => self.abandoned,
            (Some(Outcome::Unreaped), None) => self.reap_timed_out,
            (Some(Outcome::Killed { status, .. }), Some(s)) => self.forced && status == s,
            (Some(Outcome::Exited(status)), Some(s)) => !self.forced && status == s,
            _ => false,
        }
    }
}

/// The reference model: a few booleans per child and the nursery's teardown flag.
///
/// What it predicts, and why it can:
/// - finished: launch failed, abandoned, reap timed out, or reaped with our end closed
///   (when closed after the reap by a protocol violation, only once the drain bound passed);
/// - the registry: exactly the children whose `Ready` was emitted and for which no kill,
///   abandon or reap command has gone out (the only transitions that deregister);
/// - the nursery: open until a teardown call or the first child error other than a launch
///   failure (the caller's error, which cancels no sibling), closed exactly when teardown has
///   started and every child has finished;
/// - which driver reports are accepted (launch, exit, reap, EOF, malformed frame), which user
///   stops are, which spawns are, and that a request is accepted only by a ready, uncancelled,
///   connected child; a killed child given up on after the reap bound still has its exit
///   accepted and reaped, once;
/// - each child's death report, in the step it finishes, from the facts above (at most one:
///   property 5), and its outcome once finished;
/// - a launch after a hard stop or a boot timeout is stopped hard in the same step;
/// - the teardown clock: set at the first error cause at the latest, and once nothing is left
///   to join after a clean body exit; never moved once set.
#[derive(Clone, Debug, Default)]
struct Reference {
    children: Vec<RefChild>,
    teardown: bool,
    /// When teardown was first asked for, and when first for an error.
    teardown_at: Option<Timestamp>,
    error_cause_at: Option<Timestamp>,
    /// The report's `started`, once seen set.
    started: Option<Timestamp>,
    closed_events: u32,
    drain: Duration,
}

impl Reference {
    fn get(&self, i: u32) -> Option<&RefChild> {
        self.children.get(i as usize)
    }

    fn finished(&self, c: &RefChild, now: Timestamp) -> bool {
        let drained = match (c.reaped_at, c.closed) {
            (Some(_), Some(Closed::BeforeReap | Closed::DrainOver)) => true,
            (Some(at), Some(Closed::ByViolationWhileDraining)) => now >= at + self.drain,
            _ => false,
        };
        c.launch_failed || c.abandoned || c.reap_timed_out || drained
    }

    fn begin_teardown(&mut self, now: Timestamp, error: bool) {
        self.teardown = true;
        self.teardown_at.get_or_insert(now);
        if error {
            self.error_cause_at.get_or_insert(now);
        }
    }

    fn all_finished(&self, now: Timestamp) -> bool {
        self.children.iter().all(|c| self.finished(c, now))
    }

    fn registered(&self, name: &str) -> Vec<ChildId> {
        let live = |c: &&RefChild| c.name == name && c.ready && !c.deregistered;
        (0..self.children.len())
            .filter(|&i| live(&&self.children[i]))
            .map(|i| ChildId(i as u32))
            .collect()
    }

    /// Whether the call should be accepted; `None` where the reference cannot tell.
    fn predict(&self, op: &Op, now: Timestamp) -> Option<bool> {
        let child = |i: &u32| self.get(*i);
        let unfinished = |i: &u32| child(i).is_some_and(|c| !self.finished(c, now));
        Some(match op {
            Op::Launched(i) | Op::LaunchFailed(i) => {
                child(i).is_some_and(|c| !c.launched && !c.launch_failed)
            }
            // Before the reap; once finished, only by a child given up on after the reap
            // bound, whose late exit is still reaped, once.
            Op::Exit(i) => child(i).is_some_and(|c| {
                let late = c.reap_timed_out && c.reap_commands == 0;
                c.launched && c.reaped_at.is_none() && (!self.finished(c, now) || late)
            }),
            Op::Reaped(i, _) => {
                child(i).is_some_and(|c| c.reap_commands == 1 && c.reaped_at.is_none())
            }
            Op::ChannelClosed(i) | Op::Malformed(i) => {
                child(i).is_some_and(|c| c.launched && c.closed.is_none())
            }
            Op::Message(i, _) if !child(i).is_some_and(|c| c.launched) => false,
            Op::Cancel(i) | Op::HardStop(i) => unfinished(i),
            Op::Request(i) if !child(i).is_some_and(|c| c.ready) => false,
            _ => return None,
        })
    }
}

struct Harness {
    sup: Supervisor,
    now: Timestamp,
    r: Reference,
    /// The calls so far, for failure messages.
    log: Vec<String>,
}

type Checked = Result<(), TestCaseError>;

impl Harness {
    fn new() -> Self {
        Harness::with(SupervisorConfig::default())
    }

    fn with(config: SupervisorConfig) -> Self {
        Harness {
            sup: Supervisor::new(config).expect("the default policy is valid"),
            now: Timestamp::ZERO,
            r: Reference {
                drain: config.timeouts.drain,
                ..Reference::default()
            },
            log: Vec::new(),
        }
    }

    fn trail(&self) -> String {
        self.log.join("\n  ")
    }

    /// Applies one call; `Ok(accepted)`.
    fn call(&mut self, op: &Op) -> Result<bool, TestCaseError> {
        let (now, s) = (self.now, &mut self.sup);
        let c = |i: &u32| ChildId(*i);
        let accepted = match op {
            Op::Spawn {
                name,
                method,
                role,
                threads,
            } => {
                let spec = SpawnSpec {
                    name: NAMES[*name].into(),
                    actor: "echo".into(),
                    method: *method,
                    role: *role,
                };
                let situation = Situation {
                    threads: Ok(*threads),
                    can_exec: true,
                };
                let got = s.spawn(now, spec, &situation);
                self.check_spawn(op, got)?
            }
            Op::Request(i) => {
                let got = s.request(now, c(i), b"ping".to_vec(), None);
                if let Err(ChildOpError::UnknownChild(_)) = &got {
                    prop_assert!(self.r.get(*i).is_none());
                }
                got.is_ok()
            }
            Op::Cancel(i) => s.cancel(now, c(i)).is_ok(),
            Op::HardStop(i) => s.hard_stop(now, c(i)).is_ok(),
            Op::Teardown(cause) => {
                let cause = match *cause {
                    Cause::BodyFinished => TeardownCause::BodyFinished,
                    Cause::BodyFailed => TeardownCause::BodyFailed,
                    Cause::ChildFailed(i) => TeardownCause::ChildFailed(c(&i)),
                    Cause::Interrupted => TeardownCause::Interrupted,
                };
                s.begin_teardown(now, cause);
                true
            }
            Op::Interrupt => {
                s.handle_interrupt(now);
                true
            }
            Op::Launched(i) => s.handle_launched(now, c(i)).is_ok(),
            Op::LaunchFailed(i) => s.handle_launch_failed(now, c(i), "EAGAIN".into()).is_ok(),
            Op::Message(i, m) => s.handle_message(now, c(i), m.clone()).is_ok(),
            Op::Malformed(i) => s
                .handle_malformed(now, c(i), FrameError::UnknownTag(0))
                .is_ok(),
            Op::ChannelClosed(i) => s.handle_channel_closed(now, c(i)).is_ok(),
            Op::Exit(i) => s.handle_exit(now, c(i)).is_ok(),
            Op::Reaped(i, st) => s.handle_reaped(now, c(i), *st).is_ok(),
            Op::Advance(ms) => {
                self.now = now + Duration::from_millis(*ms);
                s.handle_timeout(self.now);
                true
            }
            Op::ToDeadline => {
                self.now = s.poll_deadline().map_or(now, |d| d.max(now));
                s.handle_timeout(self.now);
                true
            }
            Op::Plausible(_) => unreachable!("resolved in `step`"),
        };
        Ok(accepted)
    }

    /// The driver inputs a well-behaved child and driver would produce next.
    fn plausible(&self, k: u16) -> Op {
        let mut options = Vec::new();
        for (i, c) in self.r.children.iter().enumerate() {
            let i = i as u32;
            let open = c.launched && c.closed.is_none();
            if !c.launched && !c.launch_failed {
                options.push(Op::Launched(i));
            }
            if open && !c.ready && !c.forced {
                let hs = Message::Handshake {
                    version: PROTOCOL_VERSION,
                    pid: 7,
                };
                options.push(Op::Message(i, hs));
            }
            if let (true, Some(&id)) = (open, c.in_flight.first()) {
                let reply = Message::Reply {
                    id,
                    result: Ok(b"pong".to_vec()),
                };
                options.push(Op::Message(i, reply));
            }
            if open && c.ready && !c.cancel_sent && !c.deregistered {
                options.push(Op::Request(i));
                if c.role == Role::RunToResult {
                    let done = Message::Finished {
                        result: result(true),
                    };
                    options.push(Op::Message(i, done));
                }
            }
            if open && c.cancel_sent && !c.forced {
                options.push(Op::Message(i, Message::CancelAck));
            }
            let stopping = c.forced || c.cancel_sent || c.closed.is_some();
            if c.launched && stopping && c.reap_commands == 0 && !c.abandoned {
                options.push(Op::Exit(i));
            }
            if c.reap_commands == 1 && c.reaped_at.is_none() {
                let status = if c.forced {
                    ExitStatus::Signaled(9)
                } else {
                    ExitStatus::Exited(0)
                };
                options.push(Op::Reaped(i, status));
            }
            if c.reaped_at.is_some() && c.closed.is_none() {
                options.push(Op::ChannelClosed(i));
            }
        }
        if options.is_empty() {
            return Op::ToDeadline;
        }
        options.swap_remove(usize::from(k) % options.len())
    }

    fn check_spawn(
        &self,
        op: &Op,
        got: Result<ChildId, SpawnError>,
    ) -> Result<bool, TestCaseError> {
        let Op::Spawn {
            name,
            method,
            threads,
            ..
        } = op
        else {
            unreachable!()
        };
        let taken = self
            .r
            .children
            .iter()
            .any(|c| c.name == NAMES[*name] && !self.r.finished(c, self.now));
        let expected = if self.r.teardown {
            "NurseryClosing"
        } else if *method == SpawnMethod::Fork && *threads > 1 {
            "MethodRefused"
        } else if taken {
            "NameTaken"
        } else {
            "Ok"
        };
        let actual = match &got {
            Ok(id) => {
                prop_assert_eq!(*id, ChildId(self.r.children.len() as u32));
                "Ok"
            }
            Err(SpawnError::NurseryClosing) => "NurseryClosing",
            Err(SpawnError::MethodRefused(_)) => "MethodRefused",
            Err(SpawnError::NameTaken(_)) => "NameTaken",
            Err(other) => return Err(TestCaseError::fail(format!("spawn: {other:?}"))),
        };
        prop_assert_eq!(actual, expected, "spawn\n  {}", self.trail());
        Ok(got.is_ok())
    }

    fn step(&mut self, op: &Op) -> Checked {
        let resolved;
        let op = match op {
            Op::Plausible(k) => {
                resolved = self.plausible(*k);
                &resolved
            }
            other => other,
        };
        self.log.push(format!("{:?} @ {}", op, self.now));
        let before = self.sup.clone();
        let predicted = self.r.predict(op, self.now);
        let finished_before: Vec<bool> = self
            .r
            .children
            .iter()
            .map(|c| self.r.finished(c, self.now))
            .collect();
        // A child whose channel ends or who exits before any stop began is failing: the
        // nursery's one-cancels-all starts then, before its death report.
        let unasked_end = match op {
            Op::ChannelClosed(i) | Op::Exit(i) => before
                .lifecycle(ChildId(*i))
                .is_some_and(|l| !l.is_stopping()),
            _ => false,
        };
        let accepted = self.call(op)?;
        if accepted && unasked_end {
            self.r.begin_teardown(self.now, true);
        }
        let commands: Vec<Command> = std::iter::from_fn(|| self.sup.poll_command()).collect();
        let events: Vec<Event> = std::iter::from_fn(|| self.sup.poll_event()).collect();
        if !accepted {
            prop_assert!(
                self.sup == before,
                "a refused call changed the supervisor\n  {}",
                self.trail()
            );
            prop_assert!(commands.is_empty() && events.is_empty());
        }
        if let Some(p) = predicted {
            prop_assert_eq!(accepted, p, "acceptance of {:?}\n  {}", op, self.trail());
        }
        if let (Op::Request(i), true) = (op, accepted) {
            let c = &self.r.children[*i as usize];
            prop_assert!(
                c.ready && !c.cancel_sent && !c.deregistered && c.closed.is_none(),
                "request accepted by a child that cannot take it: {:?}\n  {}",
                c,
                self.trail()
            );
        }
        if let (
            Op::Spawn {
                name, method, role, ..
            },
            true,
        ) = (op, accepted)
        {
            self.r
                .children
                .push(RefChild::new(NAMES[*name], *method, *role));
        }
        self.absorb_input(op, accepted);
        for cmd in &commands {
            self.absorb_command(op, cmd)?;
        }
        for ev in &events {
            self.absorb_event(ev)?;
        }
        self.absorb_late_handshake(op, accepted, &commands, &events);
        self.check_launch(op, accepted, &commands)?;
        self.check_death_reports(&finished_before, &events)?;
        self.check_state()?;
        self.check_teardown_clock()?;
        self.check_deadline(op)
    }

    /// A handshake of our version that neither made the child ready, nor released a pending
    /// cancel, nor broke the protocol came late: the child did boot.
    fn absorb_late_handshake(
        &mut self,
        op: &Op,
        accepted: bool,
        commands: &[Command],
        events: &[Event],
    ) {
        let (Op::Message(i, Message::Handshake { version, .. }), true) = (op, accepted) else {
            return;
        };
        let child = ChildId(*i);
        let answered = events.iter().any(|e| match e {
            Event::Ready(c) => *c == child,
            Event::Failed(err) => err.child == child,
            _ => false,
        }) || commands.iter().any(
            |c| matches!(c, Command::Send { child: c, message: Message::Cancel } if *c == child),
        );
        if *version == PROTOCOL_VERSION && !answered {
            self.r.children[*i as usize].late_handshake = true;
        }
    }

    /// A launch after a hard stop or a boot timeout is stopped hard at once; any other is not.
    fn check_launch(&self, op: &Op, accepted: bool, commands: &[Command]) -> Checked {
        let (Op::Launched(i), true) = (op, accepted) else {
            return Ok(());
        };
        let c = &self.r.children[*i as usize];
        let hard = commands.iter().any(|cmd| {
            matches!(cmd, Command::Kill { child } | Command::Abandon { child } if child.0 == *i)
        });
        prop_assert_eq!(
            hard,
            c.stop_at_launch,
            "hard stop at launch\n  {}",
            self.trail()
        );
        Ok(())
    }

    /// Each child's death report comes in the step it finishes, as its facts say, and never
    /// in another step.
    fn check_death_reports(&self, finished_before: &[bool], events: &[Event]) -> Checked {
        for (i, c) in self.r.children.iter().enumerate() {
            let reports: Vec<&ChildErrorKind> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Failed(err) if err.child.0 as usize == i => Some(&err.kind),
                    _ => None,
                })
                .filter(|k| {
                    matches!(
                        k,
                        ChildErrorKind::BootFailed(_)
                            | ChildErrorKind::Died(_)
                            | ChildErrorKind::LaunchFailed(_)
                    )
                })
                .collect();
            let finishes =
                !finished_before.get(i).copied().unwrap_or(false) && self.r.finished(c, self.now);
            let life = self.sup.lifecycle(ChildId(i as u32)).expect("child exists");
            let initiator = life.stop_initiator;
            // The supervisor begins a stop of its own only on an error of its own, or to
            // cancel a run-to-result child once it has answered; it stops on such errors.
            prop_assert!(
                initiator != Some(Initiator::Supervisor) || c.supervisor_error || c.cancel_sent,
                "child#{} stopped by the supervisor for no reason\n  {}",
                i,
                self.trail()
            );
            prop_assert!(!c.supervisor_error || initiator.is_some());
            let expected = if finishes {
                c.death_report(initiator)
            } else {
                None
            };
            prop_assert_eq!(
                reports.first().copied(),
                expected.as_ref(),
                "death report of child#{} {:?}\n  {}",
                i,
                c,
                self.trail()
            );
        }
        Ok(())
    }

    fn absorb_input(&mut self, op: &Op, accepted: bool) {
        let now = self.now;
        match op {
            Op::Teardown(Cause::BodyFinished) => self.r.begin_teardown(now, false),
            Op::Teardown(_) | Op::Interrupt => self.r.begin_teardown(now, true),
            _ => {}
        }
        if !accepted {
            return;
        }
        match op {
            Op::Launched(i) => self.r.children[*i as usize].launched = true,
            Op::LaunchFailed(i) => self.r.children[*i as usize].launch_failed = true,
            Op::Reaped(i, status) => {
                let c = &mut self.r.children[*i as usize];
                c.reaped_at = Some(now);
                c.status = Some(*status);
            }
            Op::HardStop(i) => {
                let c = &mut self.r.children[*i as usize];
                c.stop_at_launch |= !c.launched;
                c.stop_asked = true;
            }
            Op::Cancel(i) => self.r.children[*i as usize].stop_asked = true,
            _ => {}
        }
    }

    fn absorb_command(&mut self, op: &Op, cmd: &Command) -> Checked {
        let trail = self.trail();
        let i = cmd.child().0 as usize;
        prop_assert!(i < self.r.children.len(), "{:?} for an unknown child", cmd);
        let c = &mut self.r.children[i];
        prop_assert!(!c.retired, "{:?} for a retired child\n  {}", cmd, trail);
        match cmd {
            Command::Retire { .. } => {
                // Only once it is over: never started or its end known, and its channel shut.
                let ended = c.launch_failed || c.abandoned || c.status.is_some();
                let shut = !c.launched || c.closed.is_some();
                prop_assert!(
                    ended && shut,
                    "retired before it was over: {:?}\n  {}",
                    c,
                    trail
                );
                c.retired = true;
            }
            Command::Launch { .. } => {
                prop_assert!(matches!(op, Op::Spawn { .. }), "launch outside a spawn");
            }
            Command::Send { message, .. } => match message {
                Message::Request { id, .. } => {
                    // (v) No request before the child's `Ready`.
                    prop_assert!(c.ready, "request sent before Ready\n  {}", trail);
                    c.in_flight.push(*id);
                }
                Message::Cancel => c.cancel_sent = true,
                Message::SpawnSpec { .. } => {
                    prop_assert!(matches!(op, Op::Launched(_)), "spec outside launch");
                }
                other => prop_assert!(false, "the parent sent {:?}", other),
            },
            Command::CloseChannel { .. } => {
                prop_assert!(c.launched && c.closed.is_none(), "close twice\n  {}", trail);
                c.closed = Some(match (c.reaped_at, op) {
                    (None, _) => Closed::BeforeReap,
                    (Some(_), Op::Message(..) | Op::Malformed(_)) => {
                        Closed::ByViolationWhileDraining
                    }
                    (Some(_), _) => Closed::DrainOver,
                });
            }
            Command::Kill { .. } => {
                // (iv) A thread is never signalled.
                prop_assert!(
                    c.method != SpawnMethod::Thread,
                    "Kill of a thread\n  {}",
                    trail
                );
                prop_assert!(!c.forced, "second kill\n  {}", trail);
                c.forced = true;
                c.deregistered = true;
            }
            Command::Abandon { .. } => {
                prop_assert!(c.method == SpawnMethod::Thread, "abandon of a process");
                c.abandoned = true;
                c.forced = true;
                c.deregistered = true;
            }
            Command::Reap { .. } => {
                // (iii) Reaped at most once.
                c.reap_commands += 1;
                prop_assert!(c.reap_commands == 1, "second Reap\n  {}", trail);
                c.deregistered = true;
            }
        }
        Ok(())
    }

    fn absorb_event(&mut self, ev: &Event) -> Checked {
        match ev {
            Event::Ready(child) => {
                let c = &mut self.r.children[child.0 as usize];
                prop_assert!(c.launched && !c.ready, "Ready twice or unlaunched");
                c.ready = true;
            }
            Event::Failed(err) => {
                if err.kind.cancels_nursery() {
                    self.r.begin_teardown(self.now, true);
                }
                let c = &mut self.r.children[err.child.0 as usize];
                match &err.kind {
                    ChildErrorKind::ReapTimedOut => c.reap_timed_out = true,
                    ChildErrorKind::Remote(_) => c.remote_failed = true,
                    ChildErrorKind::BootFailed(_)
                    | ChildErrorKind::Died(_)
                    | ChildErrorKind::LaunchFailed(_) => {
                        c.death_reports += 1;
                        // (vi) Property 5: a child dies once.
                        prop_assert!(c.death_reports == 1, "second death report: {}", err);
                    }
                    ChildErrorKind::BootTimedOut => c.stop_at_launch |= !c.launched,
                    _ => {}
                }
                if err.initiator == Initiator::Supervisor
                    && matches!(
                        err.kind,
                        ChildErrorKind::Protocol(_)
                            | ChildErrorKind::VersionMismatch { .. }
                            | ChildErrorKind::BootTimedOut
                    )
                {
                    c.supervisor_error = true;
                }
            }
            Event::Closed(_) => self.r.closed_events += 1,
            Event::RequestEnded { child, id } => {
                let c = &mut self.r.children[child.0 as usize];
                let pos = c.in_flight.iter().position(|r| r == id);
                prop_assert!(pos.is_some(), "{} ended, which is not in flight", id);
                c.in_flight.retain(|r| r != id);
                // No request is given up here: every end is kept, for one claim.
                prop_assert!(self.sup.claim_reply(*child, *id).is_some());
                prop_assert!(self.sup.claim_reply(*child, *id).is_none());
            }
            Event::Finished(child) => {
                self.r.children[child.0 as usize].result_delivered = true;
                prop_assert!(self.sup.claim_result(*child).is_some());
            }
            Event::Ended(child) => {
                let c = &mut self.r.children[child.0 as usize];
                prop_assert!(!c.ended, "{} ended twice", child);
                c.ended = true;
                let done = self.sup.lifecycle(*child).map(|l| l.phase);
                prop_assert!(
                    done.is_none_or(|p| p == Phase::Done),
                    "{} ended {:?}",
                    child,
                    done
                );
            }
        }
        Ok(())
    }

    fn check_state(&self) -> Checked {
        let (s, r, now) = (&self.sup, &self.r, self.now);
        let trail = self.trail();
        prop_assert_eq!(s.child_count(), r.children.len());
        // (i) The registry is what the reference predicts, and never holds the dead.
        for name in NAMES {
            let expected = r.registered(name);
            prop_assert!(expected.len() <= 1, "two live children named {}", name);
            prop_assert_eq!(
                s.lookup(name),
                expected.first().copied(),
                "lookup({})\n  {}",
                name,
                trail
            );
            if let Some(id) = s.lookup(name) {
                let phase = s.lifecycle(id).expect("registered child exists").phase;
                prop_assert!(
                    !phase.known_dead(),
                    "lookup({}) returned a dead child",
                    name
                );
            }
        }
        // Finished children, as the reference sees them, are the supervisor's.
        for (i, c) in r.children.iter().enumerate() {
            let life = s.lifecycle(ChildId(i as u32)).expect("child exists");
            prop_assert_eq!(
                life.is_finished(),
                r.finished(c, now),
                "child#{} finished? {:?}\n  {}",
                i,
                life,
                trail
            );
            // Its end is reported (`Event::Ended`) exactly when it is done.
            prop_assert_eq!(
                c.ended,
                life.phase == Phase::Done,
                "child#{} ended? {:?}\n  {}",
                i,
                life,
                trail
            );
        }
        // Its outcome, once finished, is what its facts imply.
        for (i, c) in r.children.iter().enumerate() {
            let life = s.lifecycle(ChildId(i as u32)).expect("child exists");
            if life.is_finished() {
                prop_assert!(
                    c.outcome_fits(life.outcome),
                    "child#{} outcome {:?}, facts {:?}\n  {}",
                    i,
                    life.outcome,
                    c,
                    trail
                );
            }
        }
        // (ii) The nursery closes exactly when teardown started and every child finished.
        let expected = match (r.teardown, r.all_finished(now)) {
            (false, _) => NurseryPhase::Open,
            (true, false) => NurseryPhase::TearingDown,
            (true, true) => NurseryPhase::Closed,
        };
        prop_assert_eq!(s.phase(), expected, "nursery phase\n  {}", trail);
        let closed = u32::from(s.phase() == NurseryPhase::Closed);
        prop_assert_eq!(r.closed_events, closed, "Closed events\n  {}", trail);
        Ok(())
    }

    /// The teardown clock starts at the first error cause at the latest, and after a clean body
    /// exit once no run-to-result child is left to join, not while one surely is (joining is
    /// the user's computation, not bounded by the protocol); once set, it stays.
    fn check_teardown_clock(&mut self) -> Checked {
        let (r, now) = (&self.r, self.now);
        let started = self.sup.report().started;
        let trail = self.trail();
        if let Some(at) = r.started {
            prop_assert_eq!(started, Some(at), "the teardown clock moved\n  {}", trail);
        }
        match (r.teardown_at, started) {
            (None, None) => {}
            (None, Some(at)) => {
                let why = format!("teardown clock at {at} without teardown\n  {trail}");
                return Err(TestCaseError::fail(why));
            }
            (Some(asked), Some(at)) => {
                prop_assert!(asked <= at && at <= now, "teardown clock at {}", at);
                if let Some(error) = r.error_cause_at {
                    prop_assert!(at <= error, "teardown clock at {} after {}", at, error);
                } else {
                    let joining = r.children.iter().any(|c| {
                        c.role == Role::RunToResult && !c.result_delivered && c.surely_unstopped()
                    });
                    prop_assert!(!joining, "teardown clock during the join\n  {}", trail);
                }
            }
            (Some(_), None) => {
                let joined = r.children.iter().all(|c| {
                    c.role != Role::RunToResult || c.result_delivered || r.finished(c, now)
                });
                prop_assert!(
                    r.error_cause_at.is_none() && !joined,
                    "no teardown clock after an error or the join\n  {}",
                    trail
                );
            }
        }
        self.r.started = started;
        Ok(())
    }

    /// After `handle_timeout(now)` every due deadline has fired: the next one is later, so a
    /// driver sleeping until `poll_deadline` neither spins nor misses one.
    fn check_deadline(&self, op: &Op) -> Checked {
        if matches!(op, Op::Advance(_) | Op::ToDeadline) {
            let next = self.sup.poll_deadline();
            prop_assert!(
                next.is_none_or(|d| d > self.now),
                "deadline {:?} is still due after handle_timeout({})\n  {}",
                next,
                self.now,
                self.trail()
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any sequence of calls: no panic, refusals change nothing, the reference agrees.
    #[test]
    fn supervisor_random_calls_agree_with_the_reference(
        spawns in prop::collection::vec(spawn(), 0..6),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut h = Harness::new();
        for op in spawns.iter().chain(&ops) {
            h.step(op)?;
        }
    }
}

/// The reference's checks can fail: each flaw below breaks one, on a fixed sequence.
#[test]
fn the_reference_catches_flaws_that_break_what_it_predicts() {
    use harrow_model::{Flaw, Flaws};
    let hs = Message::Handshake {
        version: PROTOCOL_VERSION,
        pid: 7,
    };
    let cases = [
        (Flaw::NoDeregistrationOnKill, SpawnMethod::Fork, "lookup"),
        (
            Flaw::NoChannelAbortOnAbandon,
            SpawnMethod::Thread,
            "finished?",
        ),
    ];
    for (flaw, method, broken) in cases {
        let config = SupervisorConfig {
            flaws: Flaws::only(flaw),
            ..SupervisorConfig::default()
        };
        let mut h = Harness::with(config);
        let ops = [
            Op::Spawn {
                name: 0,
                method,
                role: Role::Daemon,
                threads: 1,
            },
            Op::Launched(0),
            Op::Message(0, hs.clone()),
            Op::HardStop(0),
        ];
        let result = ops.iter().try_for_each(|op| h.step(op));
        let err = format!("{result:?}");
        assert!(
            err.contains(broken),
            "{flaw}: expected `{broken}`, got {err}"
        );
    }
}

// =======================================================================================
// 2. Random scenarios × random schedules through the pure world.

/// A small deterministic generator for schedules (xorshift64*).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Picks one of the enabled choices. Every choice stays possible, but time jumps and faults
/// are weighted down so that runs get far before a deadline or a fault cuts them short.
fn pick(rng: &mut XorShift, choices: &[Choice]) -> usize {
    let weight = |c: &Choice| match c {
        Choice::Tick | Choice::Fault(_) => 1,
        _ => 6,
    };
    let total: u64 = choices.iter().map(weight).sum();
    let mut x = rng.next() % total;
    for (i, c) in choices.iter().enumerate() {
        if x < weight(c) {
            return i;
        }
        x -= weight(c);
    }
    unreachable!("x < total")
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        3 => Just(Behaviour::Serves),
        1 => (0..3000u64).prop_map(|ms| Behaviour::Blocks { ms }),
        2 => Just(Behaviour::BlocksForever),
        1 => (1..4i32).prop_map(|code| Behaviour::CrashesBeforeHandshake { code }),
        1 => (1..4i32).prop_map(|code| Behaviour::CrashesAfterHandshake { code }),
        1 => Just(Behaviour::FailsMain { message: "main failed".into() }),
        1 => Just(Behaviour::FailsRequests),
        1 => Just(Behaviour::PanicsInRequests { message: "request panicked".into() }),
        1 => Just(Behaviour::FailsActor { message: "actor failed".into() }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let child = (method(), role(), behaviour());
    let ending = prop_oneof![
        Just(Ending::Finish),
        Just(Ending::Fail),
        Just(Ending::Interrupt)
    ];
    let fault = prop_oneof![
        (0..6usize).prop_map(|child| Fault::SigkillChild { child }),
        Just(Fault::SigintRoot),
    ];
    (
        prop::collection::vec(child, 1..=6),
        0..3u32,
        ending,
        prop_oneof![2 => Just(vec![]), 1 => prop::collection::vec(fault, 1..=2)],
    )
        .prop_map(|(kids, requests, ending, faults)| {
            let n = kids.len();
            let children = kids
                .into_iter()
                .enumerate()
                .map(|(i, (method, role, behaviour))| ChildPlan {
                    role,
                    ..ChildPlan::daemon(&format!("c{i}"), method, behaviour)
                })
                .collect();
            let faults = faults
                .into_iter()
                .map(|f| match f {
                    Fault::SigkillChild { child } => Fault::SigkillChild { child: child % n },
                    other => other,
                })
                .collect();
            Scenario {
                requests,
                faults,
                ..Scenario::new("random", children, ending)
            }
        })
        // A clean body exit that joins a run-to-result child which never returns waits
        // forever by design (`Scenario::check`); such a run hangs and proves nothing.
        .prop_filter("the body joins a child that never returns", |sc| {
            sc.check().is_ok()
        })
        .prop_filter("a Fork after a thread child", |sc| !fork_after_thread(sc))
}

/// Whether a Fork spawn may be refused because a thread child already runs in the root.
///
/// A refused spawn takes no child id, so the children launched after it shift down: a
/// `SigkillChild { child }` fault (by launch order) then names another plan than
/// `Scenario::check` assumes when it decides whether the fault rescues an endless join.
fn fork_after_thread(sc: &Scenario) -> bool {
    let methods: Vec<SpawnMethod> = sc.children.iter().map(|c| c.method).collect();
    methods
        .iter()
        .enumerate()
        .any(|(i, m)| *m == SpawnMethod::Fork && methods[..i].contains(&SpawnMethod::Thread))
}

fn sigkilled(sc: &Scenario, i: usize) -> bool {
    sc.faults.contains(&Fault::SigkillChild { child: i })
}

/// The oracle: what each child's end may be, whatever the schedule. Returns the first breach.
fn oracle(sc: &Scenario, r: &run::RunReport, kids: &[Kid], sup: &Supervisor) -> Checked {
    let report = &r.report;
    // A teardown during the spawns (a fault, an early child error) refuses the later ones.
    prop_assert!(kids.len() <= sc.children.len());
    prop_assert_eq!(
        report.children.len(),
        kids.len(),
        "a spawned child was not launched"
    );
    let abandoned = report
        .children
        .iter()
        .filter(|c| matches!(c.outcome, Some(Outcome::Abandoned(_))))
        .count();
    prop_assert_eq!(report.abandoned, abandoned);
    prop_assert!(
        report
            .errors
            .iter()
            .all(|e| (e.child.0 as usize) < kids.len())
    );
    for (i, kid) in kids.iter().enumerate() {
        let plan = &sc.children[kid.plan];
        let outcome = report.children[i].outcome;
        let errors: Vec<&ChildErrorKind> = report
            .errors
            .iter()
            .filter(|e| e.child.0 as usize == i)
            .map(|e| &e.kind)
            .collect();
        let ctx = format!("child#{i} {plan:?}: outcome {outcome:?}, errors {errors:?}");
        // The world's children speak the protocol and every launch succeeds.
        let foreign = |e: &&&ChildErrorKind| {
            matches!(
                e,
                ChildErrorKind::Protocol(_)
                    | ChildErrorKind::LaunchFailed(_)
                    | ChildErrorKind::VersionMismatch { .. }
            )
        };
        prop_assert!(!errors.iter().any(|e| foreign(&e)), "{}", ctx);
        if let Some(status) = check_end(plan, kid, outcome, &ctx)? {
            let unforced = matches!(outcome, Some(Outcome::Exited(_)));
            check_behaviour(sc, plan, i, status, unforced, &errors, &ctx)?;
        }
        let life = sup
            .lifecycle(ChildId(i as u32))
            .expect("every kid has a lifecycle");
        check_death(plan, kid, life, outcome, &errors, &ctx)?;
    }
    Ok(())
}

/// Its death report, decided once its channel is drained (property 5: at most one).
///
/// Whether it handshook is the world's fact: the parent reads a handshake that was sent
/// before it ends the drain, so one queued behind the exit still counts. Whether a cancel
/// went out, and whether a result came, are what the schedule decided; they are read off
/// the lifecycle, and what follows from them is checked.
fn check_death(
    plan: &ChildPlan,
    kid: &Kid,
    life: &Lifecycle,
    outcome: Option<Outcome>,
    errors: &[&ChildErrorKind],
    ctx: &str,
) -> Checked {
    let deaths: Vec<&ChildErrorKind> = errors
        .iter()
        .copied()
        .filter(|e| matches!(e, ChildErrorKind::BootFailed(_) | ChildErrorKind::Died(_)))
        .collect();
    prop_assert!(deaths.len() <= 1, "two death reports: {}", ctx);
    let handshook =
        kid.booted && !matches!(plan.behaviour, Behaviour::CrashesBeforeHandshake { .. });
    let remote = errors
        .iter()
        .any(|e| matches!(e, ChildErrorKind::Remote(_)));
    // Killed or abandoned: ours. Else its own, unless it answered a cancel; a cancel only
    // asked for while it booted never reached it.
    let expected = match outcome {
        Some(Outcome::Exited(s)) if !handshook => Some(ChildErrorKind::BootFailed(s)),
        Some(Outcome::Exited(_)) if life.cancel_sent => None,
        Some(Outcome::Exited(_)) if remote || life.result_delivered => None,
        Some(Outcome::Exited(s)) => Some(ChildErrorKind::Died(s)),
        _ => None,
    };
    prop_assert_eq!(deaths.first().copied(), expected.as_ref(), "{}", ctx);
    Ok(())
}

/// A launched child is reaped exactly once with the status the kernel reported, or (a thread
/// only) abandoned and never joined. Returns the reaped status.
fn check_end(
    plan: &ChildPlan,
    kid: &Kid,
    outcome: Option<Outcome>,
    ctx: &str,
) -> Result<Option<ExitStatus>, TestCaseError> {
    match outcome {
        Some(Outcome::Exited(s)) | Some(Outcome::Killed { status: s, .. }) => {
            prop_assert_eq!(kid.reaps, 1, "{}", ctx);
            prop_assert_eq!(kid.proc, Proc::Reaped(s), "{}", ctx);
            prop_assert!(!kid.abandoned, "{}", ctx);
            let killed = matches!(outcome, Some(Outcome::Killed { .. }));
            prop_assert!(!(killed && plan.method == SpawnMethod::Thread), "{}", ctx);
            Ok(Some(s))
        }
        Some(Outcome::Abandoned(_)) => {
            prop_assert_eq!(plan.method, SpawnMethod::Thread, "{}", ctx);
            prop_assert!(kid.abandoned && kid.reaps == 0, "{}", ctx);
            Ok(None)
        }
        other => Err(TestCaseError::fail(format!("{ctx}: ended as {other:?}"))),
    }
}

/// What the child's behaviour implies about its exit and its errors, whatever the schedule.
fn check_behaviour(
    sc: &Scenario,
    plan: &ChildPlan,
    i: usize,
    status: ExitStatus,
    unforced: bool,
    errors: &[&ChildErrorKind],
    ctx: &str,
) -> Checked {
    let by_itself = unforced && !sigkilled(sc, i);
    let remote = errors
        .iter()
        .filter(|e| matches!(e, ChildErrorKind::Remote(_)))
        .count();
    match (&plan.behaviour, plan.role) {
        // It never yields, so never exits by itself: killed (or SIGKILLed by a fault) or
        // abandoned.
        (Behaviour::BlocksForever, _) if unforced => {
            prop_assert!(sigkilled(sc, i), "{}", ctx);
            prop_assert_eq!(status, ExitStatus::Signaled(9), "{}", ctx);
        }
        // Died before its handshake, by itself: a boot failure with its status.
        (Behaviour::CrashesBeforeHandshake { code }, _)
            if unforced && status == ExitStatus::Exited(*code) =>
        {
            let boot = ChildErrorKind::BootFailed(status);
            let n = errors.iter().filter(|e| ***e == boot).count();
            prop_assert_eq!(n, 1, "{}", ctx);
        }
        // Its main failed and it exited by itself, after its result (property 5: one error).
        (Behaviour::FailsMain { .. }, Role::RunToResult) if by_itself => {
            prop_assert_eq!(remote, 1, "{}", ctx);
            prop_assert_eq!(status, ExitStatus::Exited(0), "{}", ctx);
        }
        // Its actor failed, which it reports before it exits (property 5: one error).
        (Behaviour::FailsActor { .. }, _) if by_itself => {
            prop_assert_eq!(remote, 1, "{}", ctx);
            prop_assert_eq!(status, ExitStatus::Exited(1), "{}", ctx);
        }
        // A request panicked (if one came): it reports the failure and exits 1, or, if a
        // cancel came first, reports it and acknowledges (exit 0). No request, no failure.
        (Behaviour::PanicsInRequests { .. }, _) if by_itself => {
            prop_assert!(matches!(status, ExitStatus::Exited(0 | 1)), "{}", ctx);
            if status == ExitStatus::Exited(1) {
                prop_assert_eq!(remote, 1, "{}", ctx);
            }
        }
        (Behaviour::CrashesAfterHandshake { code }, _) if by_itself => {
            prop_assert_eq!(status, ExitStatus::Exited(*code), "{}", ctx);
        }
        // Well-behaved actors exit cleanly when they exit by themselves.
        (_, _) if by_itself => prop_assert_eq!(status, ExitStatus::Exited(0), "{}", ctx),
        _ => {}
    }
    // Remote errors come only from actors that fail, once each.
    let fails = matches!(
        (&plan.behaviour, plan.role),
        (Behaviour::FailsMain { .. }, Role::RunToResult)
            | (Behaviour::FailsActor { .. }, _)
            | (Behaviour::PanicsInRequests { .. }, Role::Daemon)
    );
    prop_assert!(remote <= usize::from(fails), "{}", ctx);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any scenario under any schedule: the run holds and every child ends as the oracle says.
    #[test]
    fn world_random_scenarios_and_schedules_hold(sc in scenario(), seed in any::<u64>()) {
        let mut rng = XorShift::new(seed);
        let r = run::run(World::new(&sc), |choices| pick(&mut rng, choices));
        prop_assert!(r.holds(), "{:?}\nschedule {:?}", r.problems, r.schedule);
        // Replay the schedule to see the world's own end: its kernel's view of each child.
        let mut world = World::new(&sc);
        for &c in &r.schedule {
            world.apply(c);
        }
        oracle(&sc, &r, &world.state().kids, &world.state().sup)?;
    }
}
