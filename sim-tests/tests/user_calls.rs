//! The user's calls on single children and the actor that cooperates with a cancel
//! (`scenario::user`, `Behaviour::Works`): what a run of each does, and that the checks of
//! properties 16 and 17 can fail.

use std::time::Duration;

use harrow_model::SpawnMethod;
use harrow_sim::run::{self, Problem};
use harrow_sim::scenario::{self, Behaviour, Scenario, UserAct};
use harrow_sim::user::{late_stop, stop_bound};
use harrow_sim::world::World;

fn shipped(name: &str) -> Scenario {
    scenario::user()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a shipped user scenario")
}

fn trace_has(trace: &[String], what: &str) -> bool {
    trace.iter().any(|l| l.contains(what))
}

#[test]
fn a_worker_the_user_cancels_stops_its_work_early_and_nobody_is_killed() {
    let r = run::deterministic(&shipped("user-cancels-a-worker"));
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    let t = &r.trace;
    assert!(trace_has(t, "cancel child#0"), "{}", t.join("\n"));
    assert!(
        trace_has(t, "its work asks its cancel token: stop; it returns early"),
        "the cancel reached the work through its token:\n{}",
        t.join("\n")
    );
    assert!(
        !trace_has(t, "SIGKILL") && !trace_has(t, "abandon child#"),
        "a cooperating child is never forced:\n{}",
        t.join("\n")
    );
}

#[test]
fn a_hard_stop_kills_at_once_and_a_request_given_up_ends_at_once() {
    let r = run::deterministic(&shipped("user-hard-stops"));
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    assert!(
        trace_has(&r.trace, "SIGKILL child#0"),
        "{}",
        r.trace.join("\n")
    );
    assert!(
        trace_has(&r.trace, "abandon child#1's thread"),
        "{}",
        r.trace.join("\n")
    );
    let r = run::deterministic(&shipped("user-gives-up-a-request"));
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    assert!(
        trace_has(&r.trace, "req#0 to child#0 ended, given up"),
        "{}",
        r.trace.join("\n")
    );
}

/// Property 16's end check, on a finished run doctored so that the parent killed a child:
/// it fails for an actor that cooperates, and not for one that never yields or one the user
/// hard-stopped.
#[test]
fn property_16_fails_when_a_cooperating_child_was_forced() {
    let sc = shipped("user-cancels-a-worker");
    let r = run::deterministic(&sc);
    let mut world = World::new(&sc);
    for &c in &r.schedule {
        world.apply(c);
    }
    assert!(world.is_finished() && run::end_checks(&world).is_empty());
    let mut st = world.into_state();
    st.kids[1].forced = true;
    let forced = World::resume(&sc, st.clone());
    let problems = run::end_checks(&forced);
    assert!(
        matches!(problems.as_slice(), [Problem::World(p)]
            if p.starts_with("child#1 was killed though its actor (Works { ms: 2000 })")
                && p.ends_with("force only when needed (property 16)")),
        "{problems:?}"
    );
    st.kids[1].behaviour = Behaviour::BlocksForever;
    assert!(run::end_checks(&World::resume(&sc, st.clone())).is_empty());
    st.kids[1].behaviour = Behaviour::Works { ms: 2000 };
    st.kids[1].stop_asked = Some((UserAct::HardStop { child: 1 }, st.now));
    assert!(run::end_checks(&World::resume(&sc, st)).is_empty());
}

/// Property 17's bound: a cancel's is the ack time-out plus the method's grace, a hard
/// stop's nothing, each plus the drain bound; over it is a problem naming the property.
#[test]
fn property_17_bounds_a_cancel_by_its_ack_and_grace_and_a_hard_stop_by_nothing() {
    let sc = shipped("user-cancels-a-worker");
    let t = sc.timeouts;
    let cancel = stop_bound(&sc, UserAct::Cancel { child: 0 }, SpawnMethod::Fork);
    assert_eq!(cancel, ("cancel", t.cancel_ack + t.kill_grace + t.drain));
    let hard = stop_bound(&sc, UserAct::HardStop { child: 0 }, SpawnMethod::Thread);
    assert_eq!(hard, ("hard stop", t.drain));
    assert_eq!(late_stop("child#0", t.drain, hard), None);
    let late = late_stop("child#0", t.drain + Duration::from_millis(1), hard);
    assert_eq!(
        late.as_deref(),
        Some(
            "child#0 ended 501ms after the user's hard stop, over its bound of 500ms (property 17)"
        )
    );
}
