//! The determinism self-check: each engine runs the same seed (or the same search) twice and
//! the two runs must agree step by step. A model that reads a clock, iterates a randomly
//! seeded hash map or races a real thread would make counterexamples that do not replay; this
//! catches it where it starts, with the first step at which the runs differ.
//!
//! One process per test (cargo-nextest): loom keeps global state per model.

use harrow_model::Flaw;
use harrow_sim::check;
use harrow_sim::engine::{self, ShuttleBudget};
use harrow_sim::explicit;
use harrow_sim::flaws;
use harrow_sim::generate;
use harrow_sim::scenario::{self, Scenario};

/// Panics with the first step at which two traces of the same run differ.
fn same_steps(what: &str, a: &[String], b: &[String]) {
    assert!(!a.is_empty(), "{what}: the run left no trace to compare");
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!(
            "{what} is not deterministic: the two runs differ first at step {}:\n  first:  {}\n  second: {}",
            i + 1,
            a.get(i).map_or("(ended)", String::as_str),
            b.get(i).map_or("(ended)", String::as_str),
        );
    }
}

/// A scenario with several children, so that the schedule has choices to make.
fn busy() -> Scenario {
    scenario::canonical()
        .into_iter()
        .max_by_key(|s| s.children.len())
        .expect("canonical scenarios")
}

#[test]
fn shuttle_runs_one_seed_twice_alike() {
    let sc = busy();
    let seed = ShuttleBudget::default().seed;
    let a = engine::shuttle_trace(&sc, seed);
    let b = engine::shuttle_trace(&sc, seed);
    same_steps(&format!("shuttle on `{}`", sc.name), &a, &b);
}

#[test]
fn explicit_search_runs_twice_alike() {
    let case = flaws::case_for(Flaw::NoEscalation);
    let a = explicit::search(&case.scenario, explicit::MAX_STATES);
    let b = explicit::search(&case.scenario, explicit::MAX_STATES);
    assert_eq!(
        (a.states, a.transitions),
        (b.states, b.transitions),
        "the explicit search explored different spaces"
    );
    let (a, b) = (
        a.counterexample.expect("F9 is found"),
        b.counterexample.expect("F9 is found"),
    );
    assert_eq!(a.schedule, b.schedule, "different shortest schedules");
    same_steps("the explicit search's counterexample", &a.trace, &b.trace);
}

#[test]
fn loom_runs_twice_alike() {
    let case = flaws::case_for(Flaw::NoEscalation);
    let budget = check::loom_budget(&case.scenario);
    let a = engine::loom(&case.scenario, budget);
    let b = engine::loom(&case.scenario, budget);
    assert_eq!(
        a.explored, b.explored,
        "loom explored different numbers of executions"
    );
    let (a, b) = (
        a.failure.expect("F9 is found"),
        b.failure.expect("F9 is found"),
    );
    let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    same_steps("loom's counterexample", &lines(&a.trace), &lines(&b.trace));
}

#[test]
fn the_generated_scenarios_world_runs_one_seed_twice_alike() {
    let sc = busy();
    let a = generate::run_world(&sc, 7);
    let b = generate::run_world(&sc, 7);
    assert_eq!(
        a.schedule, b.schedule,
        "the same seed picked different schedules"
    );
    same_steps(
        &format!("the world run of `{}`", sc.name),
        &a.trace,
        &b.trace,
    );
}
