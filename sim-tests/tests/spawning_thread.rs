//! A parent-death signal follows the thread that forked (issue #14, fault 2): the root's
//! spawns come from a worker thread that exits while the nursery lives, and no child may die
//! of it (property 12). The shipped protocol holds under every engine.

use harrow_model::SpawnMethod;
use harrow_sim::check::{Expect, assert_one};
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::Engine;
use harrow_sim::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};

/// An `Exec` child spawned from a worker thread that exits once it is launched, and asked
/// once: the child must live to answer and be torn down by its supervisor.
fn spawned_by_a_worker() -> Scenario {
    let children = vec![ChildPlan::daemon(
        "exec",
        SpawnMethod::Exec,
        Behaviour::Serves,
    )];
    Scenario {
        requests: 1,
        faults: vec![Fault::SpawningThreadExits],
        ..Scenario::new("spawned-by-a-worker", children, Ending::Finish)
    }
}

#[test]
fn children_outlive_the_thread_that_spawned_them_under_every_engine() {
    let sc = spawned_by_a_worker();
    for engine in [Engine::Explicit, Engine::Shuttle, Engine::Loom] {
        let row = assert_one(engine, &sc, Expect::Holds, ShuttleBudget::default());
        assert!(row.explored > 0, "{} explored nothing", engine.name());
    }
}
