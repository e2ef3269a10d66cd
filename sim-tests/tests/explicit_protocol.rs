//! Every state of the shipped protocol's pure world holds: the loom matrix, and three
//! children x every behaviour. The number of reachable states is pinned, so an accidental
//! change to the state space shows up as a changed number in review.

use harrow_model::SpawnMethod;
use harrow_sim::explicit;
use harrow_sim::scenario::{self, Behaviour, ChildPlan, Ending, Scenario};

fn search_all(scenarios: &[Scenario]) -> String {
    let mut table = String::new();
    for sc in scenarios {
        let s = explicit::search(sc, explicit::MAX_STATES);
        assert!(
            !s.truncated,
            "`{}` has more than {} states",
            sc.name,
            explicit::MAX_STATES
        );
        if let Some(cx) = &s.counterexample {
            let problems: Vec<String> = cx.problems.iter().map(|p| p.to_string()).collect();
            panic!(
                "`{}` breaks: {}\n{}",
                sc.name,
                problems.join("; "),
                cx.trace.join("\n")
            );
        }
        table.push_str(&format!(
            "{:<44} {:>8} states {:>9} transitions\n",
            sc.name, s.states, s.transitions
        ));
    }
    table
}

/// Three children, one of each process method and a thread, all with one behaviour.
fn three_of_each() -> Vec<Scenario> {
    // The wide scopes' behaviours but `leaks-channel`, the set this search has always had.
    let behaviours = harrow_sim::wide::behaviours()
        .into_iter()
        .filter(|(name, _)| *name != "leaks-channel");
    let methods = [
        SpawnMethod::Exec,
        SpawnMethod::ForkServer,
        SpawnMethod::Thread,
    ];
    behaviours
        .into_iter()
        .map(|(name, b)| {
            let children = methods
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let role = if matches!(b, Behaviour::FailsMain { .. }) {
                        harrow_model::wire::Role::RunToResult
                    } else {
                        harrow_model::wire::Role::Daemon
                    };
                    ChildPlan {
                        role,
                        ..ChildPlan::daemon(&format!("k{i}"), *m, b.clone())
                    }
                })
                .collect();
            Scenario {
                requests: 1,
                ..Scenario::new(&format!("three-{name}"), children, Ending::Fail)
            }
        })
        .collect()
}

#[test]
fn explicit_matrix_holds_in_every_state() {
    insta::assert_snapshot!(
        "explicit_matrix_states",
        search_all(&scenario::loom_matrix())
    );
}

#[test]
fn explicit_request_scenarios_hold_in_every_state() {
    insta::assert_snapshot!("explicit_request_states", search_all(&scenario::requests()));
}

#[test]
fn explicit_three_children_every_behaviour_holds_in_every_state() {
    insta::assert_snapshot!(
        "explicit_three_children_states",
        search_all(&three_of_each())
    );
}
