//! The flaw catalogue as test cases: for each flaw, the smallest scenario that shows it and
//! the engines that must find it (FLAWS.md).

use std::time::Duration;

use harrow_model::{Flaw, Flaws, SpawnMethod};

use crate::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};

/// A checking engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// loom: every interleaving, for small models.
    Loom,
    /// shuttle: sampled schedules, random and PCT.
    Shuttle,
    /// Breadth-first search over every state of the pure world.
    Explicit,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 3] = [Engine::Loom, Engine::Shuttle, Engine::Explicit];

    /// Its lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Loom => "loom",
            Engine::Shuttle => "shuttle",
            Engine::Explicit => "explicit",
        }
    }
}

/// One flaw, its smallest scenario, and the engines that must find it.
#[derive(Clone, Debug)]
pub struct FlawCase {
    /// The flaw switched on.
    pub flaw: Flaw,
    /// The scenario, with the flaw switched on.
    pub scenario: Scenario,
    /// The engines FLAWS.md names for it.
    pub engines: &'static [Engine],
}

use Engine::{Explicit, Loom, Shuttle};

fn one(name: &str, method: SpawnMethod, behaviour: Behaviour) -> Vec<ChildPlan> {
    vec![ChildPlan::daemon(name, method, behaviour)]
}

fn case(
    flaw: Flaw,
    children: Vec<ChildPlan>,
    ending: Ending,
    engines: &'static [Engine],
) -> FlawCase {
    let mut sc = Scenario::new(
        &format!("f{}-{}", flaw.number(), flaw.slug()),
        children,
        ending,
    );
    sc.flaws = Flaws::only(flaw);
    FlawCase {
        flaw,
        scenario: sc,
        engines,
    }
}

/// Every flaw, F1 to F14, with its scenario.
pub fn catalogue() -> Vec<FlawCase> {
    use Behaviour::*;
    use SpawnMethod::*;
    let mut cases = vec![
        case(
            Flaw::NoChannelAbortOnAbandon,
            one("spinner", Thread, BlocksForever),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::DestroyBeforeJoin,
            one("slow", Thread, Blocks { ms: 5000 }),
            Ending::Finish,
            &[Loom, Shuttle],
        ),
        case(
            Flaw::ForkFromBusyProcess,
            vec![
                ChildPlan::daemon("worker", Thread, Serves),
                ChildPlan::daemon("forked", Fork, Serves),
            ],
            Ending::Finish,
            &[Shuttle, Explicit],
        ),
        case(
            Flaw::MutualWaitAtTeardown,
            one("echo", Fork, Serves),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::KillAndReapByPid,
            one("late", Fork, Blocks { ms: 500 }),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::NoFdScrub,
            one("echo", Fork, Serves),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::UnboundedPeerDrain,
            one("leaky", Fork, LeaksChannel { hold_ms: 60_000 }),
            Ending::Finish,
            &[Shuttle, Explicit],
        ),
        case(
            Flaw::NoHandshakeOrDeathRace,
            one("dud", Fork, CrashesBeforeHandshake { code: 3 }),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::NoEscalation,
            one("spinner", Fork, BlocksForever),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::SerialTeardown,
            (0..3)
                .map(|i| ChildPlan::daemon(&format!("spinner{i}"), Exec, BlocksForever))
                .collect(),
            Ending::Finish,
            &[Shuttle, Explicit],
        ),
        case(
            Flaw::DroppedWakeups,
            vec![ChildPlan::run_to_result("quick", Thread, Serves)],
            Ending::Interrupt,
            &[Loom, Shuttle],
        ),
        case(
            Flaw::ControlPathSharesLock,
            one("spinner", Thread, BlocksForever),
            Ending::Interrupt,
            &[Shuttle],
        ),
        case(
            Flaw::NoDeregistrationOnKill,
            one("spinner", Fork, BlocksForever),
            Ending::Finish,
            &[Loom, Shuttle, Explicit],
        ),
        case(
            Flaw::NoSelfCancelOnParentEof,
            one("orphan", Fork, Serves),
            Ending::Finish,
            &[Shuttle, Explicit],
        ),
    ];
    for c in &mut cases {
        match c.flaw {
            // The orphan must see its parent's EOF to stop: these flaws take that away. With a
            // parent-death signal armed in its prelude (the real backend on Linux) it would die
            // with its parent whatever the protocol does, so these cases run without one, where
            // the protocol's own defence is all there is.
            Flaw::NoFdScrub | Flaw::NoSelfCancelOnParentEof => {
                c.scenario.faults = vec![Fault::ParentDeath];
                c.scenario.parent_death_signal = false;
            }
            // Three stuck children cost three ack timeouts serially: past a tighter bound.
            Flaw::SerialTeardown => {
                c.scenario.timeouts.kill_grace = Duration::from_millis(200);
                c.scenario.timeouts.drain = Duration::from_millis(200);
            }
            _ => {}
        }
    }
    cases
}

/// The case for one flaw.
pub fn case_for(flaw: Flaw) -> FlawCase {
    catalogue()
        .into_iter()
        .find(|c| c.flaw == flaw)
        .expect("every flaw has a case")
}

/// The same scenario with the flaw switched off: the shipped protocol must pass it.
pub fn fixed(case: &FlawCase) -> Scenario {
    Scenario {
        flaws: Flaws::NONE,
        name: format!("{}-fixed", case.scenario.name),
        ..case.scenario.clone()
    }
}
