//! The explicit-state search finds every flaw FLAWS.md names it for, with a shortest
//! counterexample, and covers every state of the same scenario with the flaw off.

use harrow_model::Flaw;
use harrow_sim::check::assert_flaw_pair;
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::{self, Engine};

#[test]
fn explicit_finds_every_flaw_named_for_it() {
    let mut checked = 0;
    for case in flaws::catalogue()
        .into_iter()
        .filter(|c| c.engines.contains(&Engine::Explicit))
    {
        assert_flaw_pair(Engine::Explicit, case.flaw, ShuttleBudget::default());
        checked += 1;
    }
    assert_eq!(
        checked, 15,
        "FLAWS.md names the explicit engine for 15 flaws"
    );
}

#[test]
fn explicit_counterexamples_replay_to_the_same_failure() {
    for flaw in [Flaw::NoEscalation, Flaw::NoFdScrub, Flaw::KillAndReapByPid] {
        let case = flaws::case_for(flaw);
        let search = harrow_sim::explicit::search(&case.scenario, 100_000);
        let cx = search
            .counterexample
            .unwrap_or_else(|| panic!("{flaw} is found"));
        let replayed = harrow_sim::run::replay(&case.scenario, &cx.schedule)
            .unwrap_or_else(|| panic!("{flaw}'s schedule fits its scenario"));
        assert!(
            !replayed.holds(),
            "replaying {flaw}'s counterexample reproduces a failure"
        );
        assert_eq!(
            replayed.trace, cx.trace,
            "{flaw}'s replay prints the same trace"
        );
    }
}
