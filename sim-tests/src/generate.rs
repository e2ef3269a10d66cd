//! Generated scenarios: proptest strategies over [`Scenario`], and the two ways each one runs.
//!
//! The strategies draw the tree (root children, and for the simulated-OS engines one level of
//! grandchildren), each child's spawn method, role and behaviour, the requests, the user's
//! calls on single children, the body's ending, the environment's faults and the flaw
//! switches. Every choice shrinks towards the simplest case: fewer children, no
//! grandchildren, no faults, no calls, `Serves`, `Exec`, `Daemon`, `Finish`, shorter blocks,
//! and (when flaws are drawn) the first flaw.
//!
//! A generated scenario runs in two places:
//! - [`run_world`]: the pure world directly, under a schedule picked by a seeded generator (the
//!   pure world models the root's children only, so grandchildren are dropped: [`root_only`]);
//! - [`run_shuttle`]: the simulated OS under shuttle, with the seed the caller (proptest) owns.

use harrow_model::wire::Role;
use harrow_model::{Flaw, Flaws, SpawnMethod};
use proptest::prelude::*;

use crate::engine::{self, EngineRun, ShuttleBudget};
use crate::run::{self, RunReport};
use crate::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario, UserAct};
use crate::world::{Choice, World};

/// Which flaw switches generated scenarios carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlawGen {
    /// None: the shipped protocol.
    Off,
    /// Always this one.
    Only(Flaw),
    /// At most one, drawn from the catalogue (shrinks towards none).
    AnyOne,
}

/// The shape of generated scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// At most this many root children (at least one).
    pub max_children: usize,
    /// At most this many grandchildren under each child (0: a flat tree).
    pub max_grandchildren: usize,
    /// At most this many environment faults.
    pub max_faults: usize,
    /// Flaw switches.
    pub flaws: FlawGen,
}

impl GenConfig {
    /// Flat trees of up to six children, for the pure world.
    pub const WORLD: GenConfig = GenConfig {
        max_children: 6,
        max_grandchildren: 0,
        max_faults: 2,
        flaws: FlawGen::Off,
    };

    /// Up to three children with up to two grandchildren each, for the simulated OS: every
    /// child and grandchild is a shuttle thread, so trees stay small enough to sample fast.
    pub const SIM: GenConfig = GenConfig {
        max_children: 3,
        max_grandchildren: 2,
        max_faults: 2,
        flaws: FlawGen::Off,
    };
}

/// A spawn method; shrinks towards `Exec`.
pub fn method() -> impl Strategy<Value = SpawnMethod> {
    prop::sample::select(SpawnMethod::ALL.to_vec())
}

/// Daemon or run-to-result; shrinks towards daemon.
pub fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Daemon), Just(Role::RunToResult)]
}

/// A behaviour; shrinks towards `Serves`, and blocks towards shorter ones.
pub fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => Just(Behaviour::Serves),
        1 => (0..3000u64).prop_map(|ms| Behaviour::Blocks { ms }),
        2 => Just(Behaviour::BlocksForever),
        1 => (1..4i32).prop_map(|code| Behaviour::CrashesBeforeHandshake { code }),
        1 => (1..4i32).prop_map(|code| Behaviour::CrashesAfterHandshake { code }),
        1 => Just(Behaviour::FailsMain { message: "main failed".into() }),
        1 => Just(Behaviour::FailsRequests),
        1 => Just(Behaviour::FailsActor { message: "actor failed".into() }),
        1 => (0..2000u64).prop_map(|hold_ms| Behaviour::LeaksChannel { hold_ms }),
        2 => (0..3000u64).prop_map(|ms| Behaviour::Works { ms }),
    ]
}

/// A user's call on one child; the child index is taken modulo the number of children when
/// the scenario is built.
pub fn user_act() -> impl Strategy<Value = UserAct> {
    prop_oneof![
        (0..6usize).prop_map(|child| UserAct::Cancel { child }),
        (0..6usize).prop_map(|child| UserAct::HardStop { child }),
        (0..6usize).prop_map(|child| UserAct::GiveUp { child }),
    ]
}

/// How the body ends; shrinks towards `Finish`.
pub fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Finish),
        Just(Ending::Fail),
        Just(Ending::Interrupt)
    ]
}

/// A fault; the child index is taken modulo the number of children when the scenario is built.
pub fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0..6usize).prop_map(|child| Fault::SigkillChild { child }),
        Just(Fault::SigintRoot),
        Just(Fault::ParentDeath),
    ]
}

/// The flaw switches `which` asks for.
pub fn flaws(which: FlawGen) -> BoxedStrategy<Flaws> {
    match which {
        FlawGen::Off => Just(Flaws::NONE).boxed(),
        FlawGen::Only(f) => Just(Flaws::only(f)).boxed(),
        FlawGen::AnyOne => prop_oneof![
            1 => Just(Flaws::NONE),
            3 => prop::sample::select(Flaw::ALL.to_vec()).prop_map(Flaws::only),
        ]
        .boxed(),
    }
}

type Kid = (
    SpawnMethod,
    Role,
    Behaviour,
    Vec<(SpawnMethod, Role, Behaviour)>,
);

/// A child and its grandchildren: any method, role and behaviour at either level.
fn kid(max_grandchildren: usize) -> impl Strategy<Value = Kid> {
    let grandchild = (method(), role(), behaviour());
    (
        method(),
        role(),
        behaviour(),
        prop::collection::vec(grandchild, 0..=max_grandchildren),
    )
}

fn plan(name: String, (method, role, behaviour): (SpawnMethod, Role, Behaviour)) -> ChildPlan {
    ChildPlan {
        name,
        method,
        role,
        behaviour,
        children: Vec::new(),
    }
}

/// Generated scenarios of the given shape that [`usable`] accepts.
pub fn scenario(cfg: GenConfig) -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(kid(cfg.max_grandchildren), 1..=cfg.max_children.max(1)),
        0..3u32,
        ending(),
        prop::collection::vec(fault(), 0..=cfg.max_faults),
        flaws(cfg.flaws),
        prop::collection::vec(user_act(), 0..=2),
    )
        .prop_map(|(kids, requests, ending, faults, flaws, user)| {
            let n = kids.len();
            let children = kids
                .into_iter()
                .enumerate()
                .map(|(i, (method, role, behaviour, grand))| ChildPlan {
                    children: grand
                        .into_iter()
                        .enumerate()
                        .map(|(j, g)| plan(format!("c{i}g{j}"), g))
                        .collect(),
                    ..plan(format!("c{i}"), (method, role, behaviour))
                })
                .collect();
            let faults = faults
                .into_iter()
                .map(|f| match f {
                    Fault::SigkillChild { child } => Fault::SigkillChild { child: child % n },
                    other => other,
                })
                .collect();
            let user = user
                .into_iter()
                .map(|a| match a {
                    UserAct::Cancel { child } => UserAct::Cancel { child: child % n },
                    UserAct::HardStop { child } => UserAct::HardStop { child: child % n },
                    UserAct::GiveUp { child } => UserAct::GiveUp { child: child % n },
                })
                .collect();
            Scenario {
                name: "gen".into(),
                flaws,
                requests,
                faults,
                user,
                ..Scenario::new("gen", children, ending)
            }
        })
        .prop_filter(
            "a body that waits forever by design, or a fork refused",
            |sc| usable(sc).is_ok(),
        )
}

/// Whether a generated scenario proves anything; if not, why.
///
/// - [`Scenario::check`]: a clean body exit joins run-to-result children; one that never
///   returns makes that join endless by design.
/// - The same one level down: a supervising child closes its nursery with a clean exit when it
///   is torn down, so a run-to-result grandchild that never returns makes that close endless.
/// - A `Fork` after a thread child in the same nursery is refused (the process is
///   multi-threaded); a refused spawn takes no child id, so a `SigkillChild` fault (by launch
///   order) would name another child than the one `Scenario::check` reasons about.
pub fn usable(sc: &Scenario) -> Result<(), String> {
    sc.check()?;
    let endless = |c: &ChildPlan| {
        c.role == Role::RunToResult
            && matches!(
                c.behaviour,
                Behaviour::BlocksForever | Behaviour::LeaksChannel { .. }
            )
    };
    if let Some(g) = sc
        .children
        .iter()
        .flat_map(|c| c.children.iter())
        .find(|g| endless(g))
    {
        return Err(format!(
            "grandchild `{}` is run-to-result and never returns: its parent's nursery close \
             joins it forever by design",
            g.name
        ));
    }
    if fork_after_thread(&sc.children) || sc.children.iter().any(|c| fork_after_thread(&c.children))
    {
        return Err("a Fork after a thread child in the same nursery is refused".into());
    }
    Ok(())
}

fn fork_after_thread(plans: &[ChildPlan]) -> bool {
    plans.iter().enumerate().any(|(i, p)| {
        p.method == SpawnMethod::Fork && plans[..i].iter().any(|q| q.method == SpawnMethod::Thread)
    })
}

/// The scenario as the pure world runs it: the root's children only (it models no grandchildren).
pub fn root_only(sc: &Scenario) -> Scenario {
    let mut out = sc.clone();
    for c in &mut out.children {
        c.children.clear();
    }
    out
}

/// A small deterministic generator for schedules (xorshift64*).
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from this seed.
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Picks one of the enabled choices. Every choice stays possible, but time jumps and faults
    /// are weighted down so that runs get far before a deadline or a fault cuts them short.
    pub fn pick(&mut self, choices: &[Choice]) -> usize {
        let weight = |c: &Choice| match c {
            Choice::Tick | Choice::Fault(_) => 1,
            _ => 6,
        };
        let total: u64 = choices.iter().map(weight).sum();
        let mut x = self.next_u64() % total.max(1);
        for (i, c) in choices.iter().enumerate() {
            if x < weight(c) {
                return i;
            }
            x -= weight(c);
        }
        0
    }
}

/// Runs `sc` (its root's children; see [`root_only`]) through the pure world under the schedule
/// that `seed` picks, with a trace.
pub fn run_world(sc: &Scenario, seed: u64) -> RunReport {
    let flat = root_only(sc);
    let mut rng = XorShift::new(seed);
    run::run(World::traced(&flat), |c| rng.pick(c))
}

/// Runs `sc` on the simulated OS under shuttle: `random` random schedules from `seed`, no PCT.
pub fn run_shuttle(sc: &Scenario, seed: u64, random: usize) -> EngineRun {
    engine::shuttle(
        sc,
        ShuttleBudget {
            random,
            pct: 0,
            seed,
            ..ShuttleBudget::default()
        },
    )
}
