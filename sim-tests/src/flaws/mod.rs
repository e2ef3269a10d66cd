//! The flaw catalogue as test cases, derived from the model's one table
//! ([`harrow_model::flaw::TABLE`]): for each flaw, its smallest scenario with the flaw switched
//! on, and the engines that must find it.
//!
//! The table names each flaw's scenario by the name of a *shape* (children, ending, faults);
//! [`shape`] builds it. Several flaws may share a shape.

use std::time::Duration;

use harrow_model::{Flaw, Flaws, SpawnMethod};

use crate::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};

mod doc;

pub use doc::{DOC_PATH, render_list, render_markdown};
pub use harrow_model::flaw::Engine;

/// One flaw, its smallest scenario, and the engines that must find it.
#[derive(Clone, Debug)]
pub struct FlawCase {
    /// The flaw switched on.
    pub flaw: Flaw,
    /// The scenario, with the flaw switched on.
    pub scenario: Scenario,
    /// The engines the table names for it.
    pub engines: &'static [Engine],
}

fn one(name: &str, method: SpawnMethod, behaviour: Behaviour) -> Vec<ChildPlan> {
    vec![ChildPlan::daemon(name, method, behaviour)]
}

/// The scenario shape with this name, called `name`, with no flaw switched on; `None` if no
/// shape has that name.
pub fn shape(shape: &str, name: &str) -> Option<Scenario> {
    use Behaviour::*;
    use SpawnMethod::*;
    let (children, ending) = match shape {
        "thread-never-yields" => (one("spinner", Thread, BlocksForever), Ending::Finish),
        "thread-never-yields-sigint" => (one("spinner", Thread, BlocksForever), Ending::Interrupt),
        "thread-slow" => (one("slow", Thread, Blocks { ms: 5000 }), Ending::Finish),
        "thread-beside-fork" => (
            vec![
                ChildPlan::daemon("worker", Thread, Serves),
                ChildPlan::daemon("forked", Fork, Serves),
            ],
            Ending::Finish,
        ),
        "thread-quick-sigint" => (
            vec![ChildPlan::run_to_result("quick", Thread, Serves)],
            Ending::Interrupt,
        ),
        "fork-serves" | "fork-serves-parent-dies" => (one("echo", Fork, Serves), Ending::Finish),
        "orphan-serves" => (one("orphan", Fork, Serves), Ending::Finish),
        "fork-slow" => (one("late", Fork, Blocks { ms: 500 }), Ending::Finish),
        "fork-leaks-channel" => (
            one("leaky", Fork, LeaksChannel { hold_ms: 60_000 }),
            Ending::Finish,
        ),
        "fork-dies-at-boot" => (
            one("dud", Fork, CrashesBeforeHandshake { code: 3 }),
            Ending::Finish,
        ),
        "fork-never-yields" => (one("spinner", Fork, BlocksForever), Ending::Finish),
        "three-exec-never-yield" => (
            (0..3)
                .map(|i| ChildPlan::daemon(&format!("spinner{i}"), Exec, BlocksForever))
                .collect(),
            Ending::Finish,
        ),
        "exec-reports-failure-twice" => (
            one(
                "liar",
                Exec,
                ReportsFailureTwice {
                    message: "boom".into(),
                },
            ),
            Ending::Finish,
        ),
        "exec-spawned-by-a-worker" => (one("echo", Exec, Serves), Ending::Finish),
        "fork-slow-request-gives-up" => (one("late", Fork, Blocks { ms: 300 }), Ending::Finish),
        "exec-crashes-mid-batch" => (
            one("brittle", Exec, CrashesInRequest { nth: 2 }),
            Ending::Finish,
        ),
        _ => return None,
    };
    let mut sc = Scenario::new(name, children, ending);
    match shape {
        // The orphan must see its parent's EOF to stop. With a parent-death signal armed in
        // its prelude (the real backend on Linux) it would die with its parent whatever the
        // protocol does, so these shapes run without one, where the protocol's own defence is
        // all there is.
        "fork-serves-parent-dies" | "orphan-serves" => {
            sc.faults = vec![Fault::ParentDeath];
            sc.parent_death_signal = false;
        }
        // The body's spawns come from a worker thread that exits once they are made.
        "exec-spawned-by-a-worker" => sc.faults = vec![Fault::SpawningThreadExits],
        // Two requests pipelined to a child that answers only after the first one's caller
        // has stopped waiting: its late reply comes while the second still waits.
        "fork-slow-request-gives-up" => {
            sc.requests = 2;
            sc.request_timeout_ms = Some(100);
        }
        // Three requests pipelined to a child that answers two and dies in the third.
        "exec-crashes-mid-batch" => sc.requests = 3,
        // Three stuck children cost three ack timeouts serially: past a tighter bound.
        "three-exec-never-yield" => {
            sc.timeouts.kill_grace = Duration::from_millis(200);
            sc.timeouts.drain = Duration::from_millis(200);
        }
        _ => {}
    }
    Some(sc)
}

/// The case for one flaw: its table entry's shape, named `f<number>-<slug>`, with the flaw on.
pub fn case_for(flaw: Flaw) -> FlawCase {
    let entry = flaw.entry();
    let name = format!("f{}-{}", flaw.number(), flaw.slug());
    let mut scenario = shape(entry.scenario, &name).unwrap_or_else(|| {
        panic!(
            "{flaw}'s table entry names the scenario shape `{}`, which flaws::shape lacks",
            entry.scenario
        )
    });
    scenario.flaws = Flaws::only(flaw);
    FlawCase {
        flaw,
        scenario,
        engines: entry.engines,
    }
}

/// Every flaw, F1 first, with its scenario.
pub fn catalogue() -> Vec<FlawCase> {
    Flaw::ALL.into_iter().map(case_for).collect()
}

/// The same scenario with the flaw switched off: the shipped protocol must pass it.
pub fn fixed(case: &FlawCase) -> Scenario {
    Scenario {
        flaws: Flaws::NONE,
        name: format!("{}-fixed", case.scenario.name),
        ..case.scenario.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_names_a_shape_that_is_built() {
        for case in catalogue() {
            assert_eq!(case.scenario.flaws, Flaws::only(case.flaw));
            assert!(
                case.scenario
                    .name
                    .starts_with(&format!("f{}-", case.flaw.number()))
            );
        }
        assert!(shape("no-such-shape", "x").is_none());
    }
}
