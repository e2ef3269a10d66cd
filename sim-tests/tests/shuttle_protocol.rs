//! The shipped protocol holds under shuttle's random and PCT schedulers, from the canonical
//! scenarios up to 25-child nurseries and three-level trees.
//!
//! The schedule counts here add up to more than 10,000 per CI run; `SHUTTLE_SCALE=N`
//! multiplies them for long runs.

use harrow_sim::check::{Expect, assert_one};
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::{self, Engine};
use harrow_sim::scenario::{self, Scenario};

fn scale() -> usize {
    std::env::var("SHUTTLE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Runs every scenario with `random` + `pct` schedules each; returns the schedules run.
fn holds(scenarios: &[Scenario], random: usize, pct: usize) -> u64 {
    let budget = ShuttleBudget {
        random: random * scale(),
        pct: pct * scale(),
        ..ShuttleBudget::default()
    };
    let explored: u64 = scenarios
        .iter()
        .map(|sc| assert_one(Engine::Shuttle, sc, Expect::Holds, budget).explored)
        .sum();
    let expected = (scenarios.len() * (budget.random + budget.pct)) as u64;
    assert_eq!(explored, expected, "every schedule ran: none was cut short");
    explored
}

#[test]
fn shuttle_canonical_and_flaw_scenarios_hold() {
    let mut all = scenario::canonical();
    all.extend(flaws::catalogue().iter().map(flaws::fixed));
    all.extend(scenario::requests());
    holds(&all, 150, 150);
}

#[test]
fn shuttle_nursery_of_25_holds() {
    let large: Vec<_> = scenario::large()
        .into_iter()
        .filter(|s| s.name == "nursery-25")
        .collect();
    assert_eq!(holds(&large, 1500, 1500), 3000 * scale() as u64);
}

#[test]
fn shuttle_three_level_trees_hold() {
    let trees: Vec<_> = scenario::large()
        .into_iter()
        .filter(|s| s.name.starts_with("tree-3"))
        .collect();
    assert_eq!(trees.len(), 3);
    assert_eq!(holds(&trees, 1000, 1000), 6000 * scale() as u64);
}
