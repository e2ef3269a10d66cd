//! The shipped protocol holds under loom: canonical scenarios, every flaw's scenario with the
//! flaw off, and the matrix of one or two children x every spawn method x every single fault.
//!
//! Budgets (`check::loom_budget`): a preemption bound of 2 where the model has at most one
//! thread besides the root's and the clock, 1 where it has more. Bound 0 degenerates to a
//! single execution, so 1 is the floor. Measured here (release, debug assertions on), with
//! the bound each model gets:
//! - one child, no fault (bound 2): 10k-45k executions, 0.7-4 s;
//! - one child under a fault, or two children with none (bound 1): 1.3k-24k, under 3 s;
//! - two children under a fault (bound 1): 130k-360k executions, 14-42 s each, twelve
//!   models: the bulk of the suite, split into their own tests so nextest spreads them.

use harrow_model::SpawnMethod;
use harrow_sim::check::{Expect, assert_one, loom_fits};
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::{self, Engine};
use harrow_sim::scenario::{self, Behaviour, ChildPlan, Ending, Scenario};

fn holds(scenarios: Vec<Scenario>) {
    let mut checked = 0;
    for sc in scenarios.iter().filter(|s| loom_fits(s)) {
        assert_one(Engine::Loom, sc, Expect::Holds, ShuttleBudget::default());
        checked += 1;
    }
    assert!(checked > 0, "no scenario fits loom");
}

/// The matrix for one method: `pairs` selects two children under a fault (the costly
/// models), otherwise one child under every fault and two children with none.
fn matrix(method: SpawnMethod, pairs: bool) -> Vec<Scenario> {
    let lower = format!("matrix-{}-", method.to_string().to_lowercase());
    scenario::loom_matrix()
        .into_iter()
        .filter(|s| s.name.starts_with(&lower))
        .filter(|s| pairs == (s.children.len() == 2 && !s.faults.is_empty()))
        .collect()
}

/// A child whose handler panics in the first of two pipelined requests: the panic is caught
/// by the simulated child's driver, answered, and the child fails, under every schedule.
#[test]
fn loom_a_panicking_request_holds() {
    let panics = Behaviour::PanicsInRequests {
        message: "boom".into(),
    };
    let sc = Scenario {
        requests: 2,
        ..Scenario::new(
            "loom-panicking-request",
            vec![ChildPlan::daemon("panics", SpawnMethod::Exec, panics)],
            Ending::Finish,
        )
    };
    holds(vec![sc]);
}

#[test]
fn loom_canonical_scenarios_hold() {
    holds(scenario::canonical());
}

#[test]
fn loom_flaw_scenarios_hold_with_the_flaw_off() {
    holds(flaws::catalogue().iter().map(flaws::fixed).collect());
}

#[test]
fn loom_request_scenarios_hold() {
    holds(scenario::requests());
}

macro_rules! matrix_tests {
    ($($single:ident, $pairs:ident => $method:expr;)*) => {$(
        #[test]
        fn $single() {
            holds(matrix($method, false));
        }

        #[test]
        fn $pairs() {
            holds(matrix($method, true));
        }
    )*};
}

matrix_tests! {
    loom_matrix_exec_holds, loom_matrix_exec_pairs_under_faults_hold => SpawnMethod::Exec;
    loom_matrix_fork_holds, loom_matrix_fork_pairs_under_faults_hold => SpawnMethod::Fork;
    loom_matrix_fork_server_holds, loom_matrix_fork_server_pairs_under_faults_hold => SpawnMethod::ForkServer;
    loom_matrix_thread_holds, loom_matrix_thread_pairs_under_faults_hold => SpawnMethod::Thread;
}
