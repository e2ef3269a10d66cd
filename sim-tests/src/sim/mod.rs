//! Scenarios on the simulated operating system: one execution per call, on any platform.
//!
//! [`execute`] is the body of one loom or shuttle execution: it starts the clock and the
//! environment's fault threads, runs the root's driver with the scenario's body on the
//! calling thread, lets the rest of the world finish, and checks what is left.
//!
//! The simulated operating system: the driver's [`Os`](harrow_model::driver::Os) over the
//! simulated kernel, on any [`Platform`] (std, loom, shuttle).
//!
//! A simulated process is a platform thread running a driver; a thread child is a platform
//! thread inside its parent's simulated process. Every system call takes the world's lock
//! once, so the model checker can interleave other threads between any two calls, just as a
//! real kernel would. Time moves only when the clock thread fires the earliest deadline, which
//! it may do at any point the scheduler picks; when every thread is blocked and no deadline is
//! pending, loom and shuttle report a deadlock: that is a hang.

mod actor;
mod check;
mod child;
mod clock;
mod os;
mod user;
mod world;

pub use child::{ActorFactory, ScriptedPanic, SimChildOs, SimEnv};
pub use clock::clock_thread;
pub use os::{Seat, SimOs};
pub use world::{
    CtxState, EnvAction, NurseryChild, NurserySeat, Shared, SimConfig, SimProcess, SimWorld,
    ThreadCtx,
};

use crate::kernel::{Fd, LockId, ThreadId};
use harrow_model::flaw::{Flaw, Flaws};

/// The fd a child finds its parent channel on.
pub const CHANNEL_FD: Fd = Fd(3);

/// A lock every allocation takes: models malloc's arena lock, which fork copies as it is.
pub const ALLOC_LOCK: LockId = LockId(0);

/// With flaw F12, the one lock every thread actor holds while its code runs and the event
/// loop takes too: tractor's shared GIL.
pub const ACTOR_LOCK: LockId = LockId(1);

/// The lock a thread actor holds while its code runs.
///
/// Its own: the real backend runs each thread child on an OS thread of its own and shares
/// no lock between actors, so one that never yields starves nobody. With flaw F12 it is
/// [`ACTOR_LOCK`], shared by every thread actor of the process and its event loop.
pub fn actor_lock(thread: ThreadId, flaws: Flaws) -> LockId {
    if flaws.has(Flaw::ControlPathSharesLock) {
        ACTOR_LOCK
    } else {
        // Past ALLOC_LOCK and ACTOR_LOCK; thread ids are never reused, so neither is this.
        LockId(thread.0.saturating_add(2))
    }
}

/// Whether the root's launches are made by the thread that called spawn (flaw F16) rather
/// than by one that lives as long as the nursery.
pub fn spawns_from_callers_thread(flaws: Flaws) -> bool {
    flaws.has(Flaw::SpawnFromCallersThread)
}

/// The deadline slot of a process's own driver.
pub const DRIVER_SLOT: u32 = 0;

use std::collections::BTreeMap;

use crate::kernel::KernelConfig;
use crate::platform::Platform;
use harrow_model::driver::Driver;
use harrow_model::supervisor::{
    Event, NurseryPhase, RequestEnd, SpawnSpec, Supervisor, TeardownCause, TeardownReport,
};
use harrow_model::wire::Role;
use harrow_model::{ChildId, RequestId, Timestamp};

pub use actor::ScriptFactory;
pub use check::Outcome;

use crate::scenario::{ChildPlan, Ending, Fault, Scenario};

/// The kernel every simulation uses: a small pid pool, so pids are reused quickly.
pub const KERNEL: KernelConfig = KernelConfig {
    pid_pool: 12,
    max_fds_per_process: 64,
    channel_capacity: 64,
    bystander_on_reuse: true,
    max_log: 0,
    max_threads_per_process: 16,
    max_locks_per_process: 16,
    max_message_bytes: 64 * 1024,
    max_deadlines: 256,
};

/// Runs one execution of `sc` on platform `P` and checks the properties at its end.
pub fn execute<P: Platform>(sc: &Scenario) -> Outcome {
    execute_with::<P, ScriptFactory>(sc, ScriptFactory::new(sc))
}

/// [`execute`] with the actors `factory` makes instead of the scenario's scripted ones: a
/// test's own actors, to show a check fails on a behaviour no scenario scripts.
pub fn execute_with<P: Platform, F: ActorFactory<P>>(sc: &Scenario, factory: F) -> Outcome {
    let config = SimConfig {
        kernel: KERNEL,
        flaws: sc.flaws,
        timeouts: sc.timeouts,
        parent_death_signal: sc.parent_death_signal,
        max_trace: 400,
    };
    let shared = Shared::<P>::new(config);
    let factory = P::arc(factory);
    let clock = {
        let s = shared.clone();
        P::spawn(move || clock_thread::<P>(s))
    };
    shared.with(|w| w.env_pending = env_actions(sc));
    let root = root_body::<P, F>(shared.clone(), factory, sc);
    let root_dead = shared.read(|w| !w.runs(w.root));
    if root_dead {
        // Orphans must end by themselves: waiting here for them is a hang if they do not.
        shared.wait_for(|w| (w.live_threads == 0).then_some(()));
    }
    let mut leftovers = check::leftovers(&shared.read(check::Leftovers::of));
    shared.with(|w| w.over = true);
    shared.wait_for(|w| (w.live_threads == 0 && w.env_threads == 0).then_some(()));
    // Abandoned threads held their own channel ends until now; ours must all be closed.
    leftovers.extend(shared.read(check::leaked_fds));
    P::join(clock);
    let mut out = shared.with(|w| check::outcome(sc, w, root, leftovers));
    out.coverage = shared.take_coverage();
    out
}

/// The environment's actions: the scenario's faults, and its SIGINT ending.
fn env_actions(sc: &Scenario) -> Vec<EnvAction> {
    let mut actions: Vec<EnvAction> = sc
        .faults
        .iter()
        .map(|f| match *f {
            Fault::SigkillChild { child } => EnvAction::KillChild(child),
            Fault::SigintRoot => EnvAction::Interrupt,
            Fault::ParentDeath => EnvAction::KillRoot,
            Fault::SpawningThreadExits => EnvAction::RetireSpawningThread(sc.children.len()),
        })
        .collect();
    if sc.ending == Ending::Interrupt {
        actions.push(EnvAction::InterruptWhenServing);
    }
    actions
}

/// What the root's body produced.
#[derive(Debug, Default)]
pub struct RootResult {
    /// The nursery's report, if the root lived to close it.
    pub report: Option<TeardownReport>,
    /// A protocol invariant broken in the root (only with a flaw on).
    pub violation: Option<harrow_model::invariant::Violation>,
    /// Spawns the protocol refused, as its messages.
    pub refused: Vec<String>,
    /// Why the body stopped early, if it did.
    pub stopped: Option<String>,
    /// How each request the body sent ended, claimed from the nursery's events at the end.
    pub ends: Vec<(RequestId, Option<RequestEnd>)>,
    /// What the user's calls on single children broke (`Scenario::user`), and the body's
    /// requests (property 19).
    pub problems: Vec<String>,
    /// The failure events the nursery emitted, all taken at the end.
    pub failures: u64,
    /// The children it spawned, by id from zero.
    pub spawned: usize,
    /// The children it retired (its operating system let go of them).
    pub retired: Vec<ChildId>,
}

/// The root's driver running the scenario's body: spawn, settle, request, end, close.
fn root_body<P: Platform, F: ActorFactory<P>>(
    shared: P::Arc<Shared<P>>,
    factory: P::Arc<F>,
    sc: &Scenario,
) -> RootResult {
    let (root, thread) = shared.with(|w| {
        let root = w.root;
        (
            root,
            w.kernel
                .threads(root.pid)
                .ok()
                .and_then(|t| t.first().copied())
                .filter(|_| w.runs(root)),
        )
    });
    let Some(thread) = thread else {
        return RootResult {
            stopped: Some("the root was killed before it started".into()),
            ..RootResult::default()
        };
    };
    if sc.faults.contains(&Fault::SpawningThreadExits) {
        shared.with(|w| w.spawning_thread = w.kernel.spawn_thread(root.pid).ok());
    }
    let os = SimOs::<P, F>::new(shared.clone(), factory, root, thread, Seat::Root);
    let mut d = Driver::new(
        Supervisor::new(sc.config()).expect("scenario timeouts are valid"),
        os,
    );
    let mut result = RootResult::default();
    let outcome = nursery_body(&mut d, sc, &mut result.refused, &mut result.problems);
    if let Err(e) = outcome {
        result.stopped = Some(e.to_string());
    }
    result.violation = d.sup.violation().cloned();
    while let Some(ev) = d.poll_event() {
        match ev {
            Event::RequestEnded { child, id } => {
                result.ends.push((id, d.sup.claim_reply(child, id)));
            }
            Event::Failed(_) => result.failures += 1,
            _ => {}
        }
    }
    result.spawned = d.sup.child_count();
    result.retired = (0..d.sup.child_count() as u32)
        .map(ChildId)
        .filter(|c| !d.os.holds(*c))
        .collect();
    shared.hand_in(&d.sup.take_coverage());
    if d.sup.is_closed() {
        result.report = Some(d.sup.report());
    }
    result
}

/// The deadline of the body's `r`-th request to a daemon, sent at `now` (see
/// [`Scenario::request_timeout_ms`]).
pub fn request_deadline(sc: &Scenario, r: u32, now: Timestamp) -> Option<Timestamp> {
    let ms = sc.request_timeout_ms.filter(|_| r == 0)?;
    Some(now + std::time::Duration::from_millis(ms))
}

/// The root's nursery body: spawn and settle, send the requests, make the user's calls on
/// single children, end as the scenario says. Spawns refused go to `refused`, what the
/// user's calls broke to `problems`.
pub fn nursery_body<O: harrow_model::driver::Os + BodyEnv>(
    d: &mut Driver<O>,
    sc: &Scenario,
    refused: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Result<(), harrow_model::driver::DriveError> {
    let ids = spawn_and_settle(d, &sc.children, refused)?;
    for (&child, &role) in &ids {
        let serving = d
            .sup
            .lifecycle(child)
            .is_some_and(|l| l.phase == harrow_model::supervisor::Phase::Serving);
        if role == Role::Daemon && serving {
            let max = d.sup.config().limits.max_in_flight;
            let mut accepted = 0;
            for r in 0..sc.requests {
                let deadline = request_deadline(sc, r, d.os.now());
                let result = d.request(child, format!("ping {r}").into_bytes(), deadline);
                problems.extend(crate::accounts::request_limit(
                    child, accepted, max, &result,
                ));
                accepted += u32::from(result.is_ok());
            }
        }
    }
    user::user_calls(d, sc, problems)?;
    match sc.ending {
        Ending::Finish => d.begin_teardown(TeardownCause::BodyFinished),
        Ending::Fail => d.begin_teardown(TeardownCause::BodyFailed),
        // The body serves until SIGINT starts the teardown; a lost SIGINT is a hang.
        Ending::Interrupt => {
            d.os.serving_until_interrupt();
            d.run_until(|d| d.sup.phase() != NurseryPhase::Open)
                .or_else(ignore_closed)?
        }
    }
    d.run_to_close()
}

/// What the root's body tells its environment (the simulator) of what its user does.
pub trait BodyEnv {
    /// The body now serves until SIGINT: the user's Ctrl-C may come.
    fn serving_until_interrupt(&mut self) {}
    /// The user hard-stops `child`: its kill is the user's decision, which leaves it no
    /// chance to tear its own nursery down.
    fn hard_stop_asked(&mut self, child: ChildId) {
        let _ = child;
    }
}

impl<P: Platform, F: crate::sim::ActorFactory<P>> BodyEnv for SimOs<P, F> {
    fn serving_until_interrupt(&mut self) {
        SimOs::serving_until_interrupt(self);
    }

    fn hard_stop_asked(&mut self, child: ChildId) {
        SimOs::hard_stop_asked(self, child);
    }
}

/// Spawns every plan, then waits until each child is serving, stopping or done.
pub fn spawn_and_settle<O: harrow_model::driver::Os>(
    d: &mut Driver<O>,
    plans: &[ChildPlan],
    refused: &mut Vec<String>,
) -> Result<BTreeMap<ChildId, Role>, harrow_model::driver::DriveError> {
    let mut ids = BTreeMap::new();
    for plan in plans {
        let spec = SpawnSpec {
            name: plan.name.clone(),
            actor: plan.name.clone(),
            method: plan.method,
            role: plan.role,
        };
        match d.spawn(spec) {
            Ok(id) => {
                ids.insert(id, plan.role);
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    d.run_until(|d| d.sup.phase() != NurseryPhase::Open || ids.keys().all(|c| settled(&d.sup, *c)))
        .or_else(ignore_closed)?;
    Ok(ids)
}

fn ignore_closed(
    e: harrow_model::driver::DriveError,
) -> Result<(), harrow_model::driver::DriveError> {
    match e {
        harrow_model::driver::DriveError::NurseryClosed => Ok(()),
        other => Err(other),
    }
}

/// Whether the body can stop waiting for this child: it is serving, stopping or done.
fn settled(sup: &Supervisor, child: ChildId) -> bool {
    sup.lifecycle(child)
        .is_none_or(|l| l.handshake_done || l.is_stopping())
}
