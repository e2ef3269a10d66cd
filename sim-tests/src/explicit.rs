//! The explicit-state engine: breadth-first search over every state of the pure world.
//!
//! Each state is the whole pure world (supervisor, child runtimes, channels, time); its
//! successors are the states reached by each enabled choice. States are deduplicated by a
//! 64-bit fingerprint of their hash, as TLC does, so each is expanded once. Breadth-first
//! order makes the first counterexample found a shortest one.
//!
//! With [`Symmetry::On`] (the default) a state is deduplicated by the fingerprint of its
//! representative among the states that differ from it only by an exchange of
//! interchangeable children ([`World::canonical`]), as stateright's `symmetry()` does: one
//! state of each such class is expanded. The search still walks the states it reached, not
//! their representatives, so every path it records replays from the initial state.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use harrow_model::coverage::Coverage;

use crate::run::{self, Problem};
use crate::scenario::Scenario;
use crate::world::{Choice, State, World};

/// The most states one search may visit; hitting it fails loudly.
pub const MAX_STATES: usize = 2_000_000;

/// Whether a search merges states that differ only by an exchange of interchangeable
/// children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symmetry {
    /// One state of each class is expanded.
    On,
    /// Every state is expanded.
    Off,
}

/// What a search found.
#[derive(Debug)]
pub struct Search {
    /// Distinct states reached (with symmetry on, distinct classes of states).
    pub states: usize,
    /// Transitions taken (edges, including into known states).
    pub transitions: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The shortest path to a broken property, with what broke and its trace.
    pub counterexample: Option<Counterexample>,
    /// Whether the search stopped at [`MAX_STATES`] before covering everything.
    pub truncated: bool,
    /// The protocol-table cells its transitions reached.
    pub coverage: Coverage,
}

/// A shortest run that breaks a property.
#[derive(Debug)]
pub struct Counterexample {
    /// The choices, from the initial state.
    pub schedule: Vec<Choice>,
    /// What broke.
    pub problems: Vec<Problem>,
    /// The run, replayed with a trace.
    pub trace: Vec<String>,
}

fn fingerprint(st: &State) -> u64 {
    let mut h = DefaultHasher::new();
    st.hash(&mut h);
    h.finish()
}

/// The fingerprint the visited set keeps for `world`'s state.
fn key(world: &World<'_>, symmetry: Symmetry) -> u64 {
    match symmetry {
        Symmetry::On => fingerprint(world.canonical().as_ref().unwrap_or(world.state())),
        Symmetry::Off => fingerprint(world.state()),
    }
}

/// What is wrong in `world` as it stands, if the search should stop here.
fn problems_at(world: &World<'_>) -> Vec<Problem> {
    let st = world.state();
    if let Some(v) = st.sup.violation() {
        return vec![Problem::Invariant(v.clone())];
    }
    if !st.violations.is_empty() {
        return run::end_checks(world);
    }
    if world.is_finished() {
        return run::end_checks(world);
    }
    if world.enabled().is_empty() {
        let mut p = vec![Problem::Hang(
            "no step is possible and the run is not over".into(),
        )];
        p.extend(run::end_checks(world));
        return p;
    }
    Vec::new()
}

/// Searches every state of `sc`'s pure world, up to `max_states`, with symmetry reduction.
pub fn search(sc: &Scenario, max_states: usize) -> Search {
    search_with(sc, max_states, Symmetry::On)
}

/// Searches every state of `sc`'s pure world, up to `max_states`.
pub fn search_with(sc: &Scenario, max_states: usize, symmetry: Symmetry) -> Search {
    explore(sc, max_states, symmetry, |_| {})
}

/// The search, calling `visit` on every state it expands (the way to look at what a search
/// covered, state by state).
pub fn explore(
    sc: &Scenario,
    max_states: usize,
    symmetry: Symmetry,
    mut visit: impl FnMut(&World<'_>),
) -> Search {
    let start = Instant::now();
    let mut seen: HashSet<u64> = HashSet::new();
    // Parent links let the path to any state be rebuilt without storing it per state.
    let mut links: Vec<(usize, Choice)> = Vec::new();
    let mut queue: VecDeque<(State, usize)> = VecDeque::new();
    let mut coverage = Coverage::default();
    let mut first = World::new(sc);
    coverage.merge(&first.take_coverage());
    let init = first.state().clone();
    seen.insert(key(&first, symmetry));
    links.push((usize::MAX, Choice::Tick));
    queue.push_back((init, 0));
    let mut transitions = 0u64;
    let mut truncated = false;
    while let Some((st, id)) = queue.pop_front() {
        let world = World::resume(sc, st);
        visit(&world);
        let problems = problems_at(&world);
        if !problems.is_empty() {
            let schedule = path(&links, id);
            let trace = replay_trace(sc, &schedule);
            let counterexample = Some(Counterexample {
                schedule,
                problems,
                trace,
            });
            return Search {
                states: seen.len(),
                transitions,
                seconds: start.elapsed().as_secs_f64(),
                counterexample,
                truncated,
                coverage,
            };
        }
        for choice in world.enabled() {
            transitions += 1;
            let mut next = World::resume(sc, world.state().clone());
            next.apply(choice);
            // Taken out of every successor, so a stored state carries none to pass on twice.
            coverage.merge(&next.take_coverage());
            let fp = key(&next, symmetry);
            if !seen.insert(fp) {
                continue;
            }
            if seen.len() > max_states {
                truncated = true;
                break;
            }
            links.push((id, choice));
            queue.push_back((next.into_state(), links.len() - 1));
        }
        if truncated {
            break;
        }
    }
    Search {
        states: seen.len(),
        transitions,
        seconds: start.elapsed().as_secs_f64(),
        counterexample: None,
        truncated,
        coverage,
    }
}

fn path(links: &[(usize, Choice)], mut id: usize) -> Vec<Choice> {
    let mut out = Vec::new();
    while id != 0 {
        let (parent, choice) = links[id];
        out.push(choice);
        id = parent;
    }
    out.reverse();
    out
}

fn replay_trace(sc: &Scenario, schedule: &[Choice]) -> Vec<String> {
    let mut world = World::traced(sc);
    for &c in schedule {
        world.apply(c);
    }
    world.take_trace()
}
