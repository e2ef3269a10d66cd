//! Runs a world to its end under some schedule and checks the properties of `model/PROPERTIES.md`.

use std::fmt;
use std::time::Duration;

use harrow_model::Timestamp;
use harrow_model::coverage::Coverage;
use harrow_model::invariant::Violation;
use harrow_model::supervisor::TeardownReport;

use crate::scenario::{Scenario, UserAct};
use crate::world::{Choice, Proc, World};

/// The most steps one run may take; hitting it is a failure (a livelock).
pub const MAX_STEPS: u64 = 100_000;

/// A property the run broke.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    /// Nothing could happen and the run was not over (property 7, 8, 9 or 11).
    Hang(String),
    /// The run took more than [`MAX_STEPS`] steps.
    StepBound,
    /// A per-step safety invariant broke.
    Invariant(Violation),
    /// Teardown took longer than its bound (property 8).
    TeardownTooSlow {
        /// How long it took.
        took: Duration,
        /// The bound.
        bound: Duration,
    },
    /// A child process was reaped other than exactly once (property 3).
    ReapCount {
        /// Which child.
        child: usize,
        /// How many reaps.
        reaps: u32,
    },
    /// A child outlived its dead parent (property 11).
    Orphan(usize),
    /// Something outside the protocol broke: a signal to a bystander, a wedged fork.
    World(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Hang(why) => write!(f, "hang (properties 7-11): {why}"),
            Problem::StepBound => write!(f, "no end after {MAX_STEPS} steps (livelock)"),
            Problem::Invariant(v) => write!(f, "invariant broken: {v}"),
            Problem::TeardownTooSlow { took, bound } => {
                write!(
                    f,
                    "teardown took {took:?}, over its bound of {bound:?} (property 8)"
                )
            }
            Problem::ReapCount { child, reaps } => {
                write!(
                    f,
                    "child#{child} was reaped {reaps} times, not once (property 3)"
                )
            }
            Problem::Orphan(c) => write!(f, "child#{c} outlived its dead parent (property 11)"),
            Problem::World(v) => f.write_str(v),
        }
    }
}

/// What a run did and what it broke.
#[derive(Debug)]
pub struct RunReport {
    /// Steps taken.
    pub steps: u64,
    /// The choices taken, in order: the schedule that replays this run.
    pub schedule: Vec<Choice>,
    /// Properties broken; empty when the run held.
    pub problems: Vec<Problem>,
    /// The readable trace, if one was recorded.
    pub trace: Vec<String>,
    /// The nursery's report at the end.
    pub report: TeardownReport,
    /// Protocol time at the end.
    pub end: Timestamp,
    /// The protocol-table cells the run reached.
    pub coverage: Coverage,
}

impl RunReport {
    /// Whether every property held.
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A trace as numbered steps, one per line, for a counterexample.
pub fn numbered(trace: &[String]) -> String {
    trace
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{:>4}. {l}\n", i + 1))
        .collect()
}

/// Runs the scenario taking the first enabled choice each time, with a trace.
pub fn deterministic(sc: &Scenario) -> RunReport {
    run(World::traced(sc), |_| 0)
}

/// Runs the scenario with `pick` choosing among the enabled choices (given their count).
pub fn run<'s>(mut world: World<'s>, mut pick: impl FnMut(&[Choice]) -> usize) -> RunReport {
    let mut schedule = Vec::new();
    let mut problems = Vec::new();
    loop {
        if let Some(v) = world.state().sup.violation() {
            problems.push(Problem::Invariant(v.clone()));
            break;
        }
        if world.is_finished() {
            break;
        }
        let enabled = world.enabled();
        if enabled.is_empty() {
            problems.push(Problem::Hang(stuck(&world)));
            break;
        }
        if schedule.len() as u64 >= MAX_STEPS {
            problems.push(Problem::StepBound);
            break;
        }
        let choice = enabled[pick(&enabled) % enabled.len()];
        schedule.push(choice);
        world.apply(choice);
    }
    problems.extend(end_checks(&world));
    let coverage = world.take_coverage();
    let st = world.state();
    let (report, end) = (st.sup.report(), st.now);
    RunReport {
        coverage,
        steps: schedule.len() as u64,
        schedule,
        problems,
        trace: world.take_trace(),
        report,
        end,
    }
}

/// Replays a recorded schedule; `None` if it no longer fits the scenario (stale).
pub fn replay(sc: &Scenario, schedule: &[Choice]) -> Option<RunReport> {
    let mut world = World::traced(sc);
    for &c in schedule {
        if !world.enabled().contains(&c) {
            return None;
        }
        world.apply(c);
    }
    let mut r = run(world, |_| 0);
    let mut full = schedule.to_vec();
    full.append(&mut r.schedule);
    r.steps = full.len() as u64;
    r.schedule = full;
    Some(r)
}

fn stuck(world: &World<'_>) -> String {
    let st = world.state();
    let waiting: Vec<String> = st
        .kids
        .iter()
        .enumerate()
        .filter(|(_, k)| !k.is_gone())
        .map(|(i, k)| {
            let phase = st
                .sup
                .lifecycle(harrow_model::ChildId(i as u32))
                .map(|l| l.phase.to_string());
            format!(
                "child#{i} is {:?} with the parent {}",
                k.proc,
                phase.unwrap_or_default()
            )
        })
        .collect();
    format!(
        "every actor is blocked with no deadline pending; nursery {:?}; {}",
        st.sup.phase(),
        if waiting.is_empty() {
            "no child left".into()
        } else {
            waiting.join("; ")
        }
    )
}

/// Every property checked at the end of a run (or at a state the search cannot leave).
pub fn end_checks(world: &World<'_>) -> Vec<Problem> {
    let st = world.state();
    let mut problems: Vec<Problem> = st.violations.iter().cloned().map(Problem::World).collect();
    if let Some(took) = st.sup.report().duration() {
        // ε: a reaped child's channel may take up to the drain bound to reach EOF.
        let bound = world.scenario().teardown_bound() + world.scenario().timeouts.drain;
        if took > bound {
            problems.push(Problem::TeardownTooSlow { took, bound });
        }
    }
    if let Some(p) = records_outlive_teardown(world) {
        problems.push(Problem::World(p));
    }
    if st.sup.is_closed() {
        let retired: Vec<harrow_model::ChildId> = (0..st.kids.len())
            .filter(|&i| st.kids[i].retired)
            .map(|i| harrow_model::ChildId(i as u32))
            .collect();
        let max_ended = st.sup.config().limits.max_ended;
        let report = st.sup.report();
        let found = crate::accounts::report_problems(
            &report,
            st.sup.child_count(),
            &retired,
            st.failures,
            max_ended,
        );
        problems.extend(found.into_iter().map(Problem::World));
    }
    for (i, k) in st.kids.iter().enumerate() {
        if st.root_dead && k.proc == Proc::Running && !k.abandoned {
            problems.push(Problem::Orphan(i));
        }
        let hard_stopped = matches!(k.stop_asked, Some((UserAct::HardStop { .. }, _)));
        if k.forced && k.behaviour.cooperates() && !hard_stopped {
            problems.push(Problem::World(format!(
                "child#{i} was {} though its actor ({:?}) cooperates with its cancel, and no \
                 hard stop was asked: force only when needed (property 16)",
                if k.is_process() {
                    "killed"
                } else {
                    "abandoned"
                },
                k.behaviour
            )));
        }
        if k.stray_read_out_of_turn && !k.violation_reported {
            problems.push(Problem::World(format!(
                "child#{i}'s actor wrote a message out of turn ({:?}) and its parent read it \
                 there, but no protocol violation of child#{i} was reported: a message out of \
                 turn is a violation (property 20)",
                k.behaviour
            )));
        }
        if !st.root_dead && !k.abandoned && world.is_finished() && k.reaps != 1 {
            problems.push(Problem::ReapCount {
                child: i,
                reaps: k.reaps,
            });
        }
    }
    problems
}

/// Property 11 for the supervisor's own tables: once the nursery has closed it holds no
/// live child's record (each was retired when it was over), except those of children killed
/// whose exit was never seen, which stay until a late reap. A nursery that keeps the records
/// of ended children grows with every child it ever ran.
fn records_outlive_teardown(world: &World<'_>) -> Option<String> {
    let sup = &world.state().sup;
    if !sup.is_closed() {
        return None;
    }
    let held: Vec<String> = (0..world.state().kids.len())
        .map(|i| harrow_model::ChildId(i as u32))
        .filter(|&c| !world.state().kids[c.0 as usize].retired)
        .filter(|&c| {
            sup.lifecycle(c)
                .is_some_and(|l| l.outcome != Some(harrow_model::supervisor::Outcome::Unreaped))
        })
        .map(|c| c.to_string())
        .collect();
    (!held.is_empty()).then(|| {
        format!(
            "the nursery closed still holding the records of {}: nothing outlives teardown, \
             the supervisor's own tables included (property 11)",
            held.join(", ")
        )
    })
}
