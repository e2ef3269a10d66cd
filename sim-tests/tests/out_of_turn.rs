//! Property 20, a message out of turn is a violation (`scenario::out_of_turn`,
//! `Behaviour::WritesOutOfTurn`): what a run of each hostile child does, and that the check
//! fails when its violation goes unreported.

use harrow_sim::run::{self, Problem};
use harrow_sim::scenario;
use harrow_sim::world::World;

#[test]
fn each_message_out_of_turn_is_reported_and_its_child_stopped() {
    for (sc, name) in
        scenario::out_of_turn()
            .into_iter()
            .zip(["Handshake", "Finished", "CancelAck"])
    {
        let r = run::deterministic(&sc);
        assert!(
            r.holds(),
            "{}: {:?}\n{}",
            sc.name,
            r.problems,
            r.trace.join("\n")
        );
        let t = r.trace.join("\n");
        assert!(
            t.contains(&format!("its actor writes a {name} on its channel itself")),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "child#0 `rogue` broke the protocol (unexpected {name} while serving)"
            )),
            "{t}"
        );
        // Stopped gracefully: our end closed, it cancels itself and exits, unforced.
        assert!(t.contains("child#0   reads EOF from its parent"), "{t}");
        assert!(!t.contains("SIGKILL child#0"), "{t}");
    }
}

#[test]
fn property_20_fails_when_the_violation_goes_unreported() {
    let sc = &scenario::out_of_turn()[0];
    let mut world = World::new(sc);
    while !world.is_finished() {
        let first = world.enabled()[0];
        world.apply(first);
    }
    assert!(world.state().kids[0].stray_read_out_of_turn);
    assert!(world.state().kids[0].violation_reported);
    assert!(run::end_checks(&world).is_empty());
    let mut st = world.state().clone();
    st.kids[0].violation_reported = false;
    let doctored = World::resume(sc, st);
    let problems = run::end_checks(&doctored);
    assert!(
        problems.iter().any(|p| matches!(p, Problem::World(w)
            if w.contains("no protocol violation of child#0 was reported") && w.contains("(property 20)"))),
        "{problems:?}"
    );
}

#[test]
fn a_main_that_closes_its_channel_and_lives_on_is_killed_and_the_join_ends() {
    let sc = scenario::out_of_turn()
        .into_iter()
        .find(|s| s.name == "main-closes-its-channel")
        .expect("a shipped scenario");
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    let t = r.trace.join("\n");
    assert!(t.contains("its actor closes its end of the channel"), "{t}");
    assert!(t.contains("parent    reads EOF from child#0"), "{t}");
    assert!(t.contains("SIGKILL child#0"), "{t}");
    assert!(t.contains("nursery closed"), "{t}");
}
