//! Snapshots of the protocol's shape: the child lifecycle's full transition table and dot
//! graph, and the golden traces of the canonical scenarios, each with its properties asserted.

use std::collections::BTreeSet;

use harrow_model::supervisor::{Input, Outcome, Phase};
use harrow_model::wire::{Message, Role};
use harrow_model::{ChildErrorKind, ChildId, Flaw, Flaws, SpawnMethod};
use harrow_sim::run::{self, Problem, RunReport};
use harrow_sim::scenario::{self, Behaviour, ChildPlan, Ending, Scenario};
use harrow_sim::table::{self, Cell, Variant};

/// Which `Input` variant an input is; exhaustive, so a new input kind breaks the build here.
fn input_kind(i: &Input) -> &'static str {
    match i {
        Input::Launched => "Launched",
        Input::LaunchFailed(_) => "LaunchFailed",
        Input::Message(_) => "Message",
        Input::Malformed(_) => "Malformed",
        Input::ChannelClosed => "ChannelClosed",
        Input::ExitObserved => "ExitObserved",
        Input::Reaped(_) => "Reaped",
        Input::ReapFailed(_) => "ReapFailed",
        Input::Deadline => "Deadline",
        Input::Cancel(_) => "Cancel",
        Input::HardStop => "HardStop",
        Input::Request(..) => "Request",
        Input::AbandonRequest(_) => "AbandonRequest",
    }
}

/// Which `Message` variant a message is; exhaustive for the same reason.
fn message_kind(m: &Message) -> &'static str {
    match m {
        Message::SpawnSpec { .. } => "SpawnSpec",
        Message::Request { .. } => "Request",
        Message::Cancel => "Cancel",
        Message::Handshake { .. } => "Handshake",
        Message::Reply { .. } => "Reply",
        Message::Finished { .. } => "Finished",
        Message::Failed(_) => "Failed",
        Message::CancelAck => "CancelAck",
    }
}

const INPUT_KINDS: usize = 13;
const MESSAGE_KINDS: usize = 8;

#[test]
fn lifecycle_probes_cover_every_input_and_message_kind() {
    for v in Variant::SHOWN {
        for s in table::states(v) {
            let probes = table::probes(&s);
            let inputs: BTreeSet<_> = probes.iter().map(|p| input_kind(&p.input)).collect();
            let messages: BTreeSet<_> = probes
                .iter()
                .filter_map(|p| match &p.input {
                    Input::Message(m) => Some(message_kind(m)),
                    _ => None,
                })
                .collect();
            assert_eq!(inputs.len(), INPUT_KINDS, "{}: {inputs:?}", s.key);
            assert_eq!(messages.len(), MESSAGE_KINDS, "{}: {messages:?}", s.key);
            let deadlines: Vec<_> = probes
                .iter()
                .filter(|p| p.input == Input::Deadline)
                .collect();
            assert_eq!(deadlines.len(), 2, "a due and an early deadline");
            if let Some(d) = s.life.deadline {
                assert!(
                    deadlines.iter().any(|p| p.at >= d),
                    "{}: no due probe",
                    s.key
                );
                assert!(
                    deadlines.iter().any(|p| p.at < d),
                    "{}: no early probe",
                    s.key
                );
            }
        }
    }
}

#[test]
fn lifecycle_states_cover_every_phase() {
    for v in Variant::SHOWN {
        let phases: BTreeSet<Phase> = table::states(v).iter().map(|s| s.life.phase).collect();
        let mut expected: BTreeSet<Phase> = Phase::ALL.into_iter().collect();
        if v.method == SpawnMethod::Thread {
            // A thread is abandoned (straight to Done), never killed.
            expected.remove(&Phase::AwaitingKilledExit);
        }
        assert_eq!(phases, expected, "{}", v.name());
    }
    let keys: BTreeSet<String> = table::states(Variant::SHOWN[0])
        .into_iter()
        .map(|s| s.key)
        .collect();
    for pending in [
        "Launching, cancel pending",
        "AwaitingHandshake, cancel pending",
    ] {
        assert!(keys.contains(pending), "missing state {pending}");
    }
}

/// Acceptance: every input in every state is a transition or a typed error; none panics.
#[test]
fn every_input_in_every_state_is_a_transition_or_a_typed_error() {
    let cells = table::explore();
    let expected: usize = Variant::SHOWN
        .iter()
        .flat_map(|&v| table::states(v))
        .map(|s| table::probes(&s).len())
        .sum();
    assert_eq!(cells.len(), expected, "a cell was skipped");
    let panicked: Vec<String> = cells
        .iter()
        .filter_map(|c| match &c.outcome {
            table::Outcome::Panicked(msg) => Some(format!(
                "{} / {}: {} panicked: {msg}",
                c.variant.name(),
                c.state,
                c.input
            )),
            _ => None,
        })
        .collect();
    assert!(panicked.is_empty(), "{panicked:#?}");
    let changed: Vec<String> = cells
        .iter()
        .filter(|c| {
            matches!(
                c.outcome,
                table::Outcome::Refused {
                    unchanged: false,
                    ..
                }
            )
        })
        .map(|c| format!("{} / {}: {}", c.variant.name(), c.state, c.input))
        .collect();
    assert!(
        changed.is_empty(),
        "a refusal changed the state: {changed:#?}"
    );
}

/// The catch the acceptance test relies on is real: a panicking step is recorded as one, and
/// a refusal that changed the state would be flagged.
#[test]
fn the_table_catches_a_panicking_step_and_a_refusal_that_changes_state() {
    let life = table::states(Variant::SHOWN[0]).remove(0).life;
    let out = table::guarded(&life, |_| panic!("boom"));
    assert_eq!(out, table::Outcome::Panicked("boom".into()));
    let out = table::guarded(&life, |l| {
        l.cancel_sent = true;
        Err(harrow_model::supervisor::Refusal::Invalid)
    });
    assert!(matches!(
        out,
        table::Outcome::Refused {
            unchanged: false,
            ..
        }
    ));
}

/// Spawn methods that are killed behave identically; only the thread method differs.
#[test]
fn every_killed_method_has_the_fork_table() {
    let strip = |cells: Vec<Cell>| -> Vec<(String, &'static str, (String, String))> {
        cells
            .iter()
            .map(|c| (c.state.clone(), c.input, table::show_outcome(c)))
            .collect()
    };
    for role in [Role::Daemon, Role::RunToResult] {
        let fork = strip(table::explore_variant(Variant::new(
            SpawnMethod::Fork,
            role,
        )));
        for m in [SpawnMethod::Exec, SpawnMethod::ForkServer] {
            let other = strip(table::explore_variant(Variant::new(m, role)));
            assert_eq!(other, fork, "{m} differs from Fork");
        }
        let thread = strip(table::explore_variant(Variant::new(
            SpawnMethod::Thread,
            role,
        )));
        assert_ne!(
            thread, fork,
            "the thread method must differ (it is abandoned)"
        );
    }
}

#[test]
fn snapshot_lifecycle_transition_table() {
    insta::assert_snapshot!("lifecycle_table", table::render_table(&table::explore()));
}

#[test]
fn snapshot_lifecycle_dot_graph() {
    let cells = table::explore();
    for p in Phase::ALL {
        let reach = table::reachable(&cells, p);
        assert!(reach.contains(&Phase::Done), "no way from {p:?} to Done");
        if p != Phase::Launching {
            assert!(
                table::reachable(&cells, Phase::Launching).contains(&p),
                "{p:?} is unreachable from Launching"
            );
        }
    }
    assert_eq!(
        table::reachable(&cells, Phase::Done).len(),
        1,
        "Done is final"
    );
    insta::assert_snapshot!("lifecycle_dot", table::render_dot(&cells));
}

// ---------------------------------------------------------------------------------------
// Golden traces.

fn canonical(name: &str) -> Scenario {
    scenario::canonical()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no canonical scenario `{name}`"))
}

fn render(sc: &Scenario, r: &RunReport) -> String {
    let mut out = format!("== {sc}\n");
    for line in &r.trace {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "-- {} steps; teardown {:?} (bound {:?}); {} errors; {} abandoned; problems {:?}\n",
        r.steps,
        r.report.duration(),
        sc.teardown_bound(),
        r.report.errors.len(),
        r.report.abandoned,
        r.problems
    ));
    for c in &r.report.children {
        out.push_str(&format!(
            "-- {} `{}` by {}: {:?}, stopped by {:?}, stop took {:?}\n",
            c.child, c.name, c.method, c.outcome, c.initiator, c.stop_took
        ));
    }
    out
}

fn outcome(r: &RunReport, i: u32) -> Option<Outcome> {
    r.report.children[i as usize].outcome
}

#[test]
fn golden_happy_spawn_one_request_teardown() {
    let sc = canonical("happy");
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    assert!(r.report.errors.is_empty(), "{:?}", r.report.errors);
    assert!(matches!(outcome(&r, 0), Some(Outcome::Exited(s)) if s.success()));
    assert!(
        r.trace
            .iter()
            .any(|l| l.contains("reply from child#0 to req#0: ok"))
    );
    insta::assert_snapshot!("trace_happy", render(&sc, &r));
}

#[test]
fn golden_stuck_fork_child_is_cancelled_then_killed_and_reaped() {
    let sc = canonical("stuck-fork");
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    assert!(
        matches!(
            outcome(&r, 0),
            Some(Outcome::Killed {
                reason: harrow_model::supervisor::ForceReason::CancelAckTimedOut,
                ..
            })
        ),
        "{:?}",
        outcome(&r, 0)
    );
    assert_eq!(r.report.abandoned, 0);
    assert_eq!(r.report.duration(), Some(sc.timeouts.cancel_ack));
    insta::assert_snapshot!("trace_stuck_fork", render(&sc, &r));
}

#[test]
fn golden_stuck_thread_child_is_cancelled_then_abandoned() {
    let sc = canonical("stuck-thread");
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    assert_eq!(
        outcome(&r, 0),
        Some(Outcome::Abandoned(
            harrow_model::supervisor::ForceReason::CancelAckTimedOut
        ))
    );
    assert_eq!(r.report.abandoned, 1);
    assert_eq!(r.report.duration(), Some(sc.timeouts.cancel_ack));
    insta::assert_snapshot!("trace_stuck_thread", render(&sc, &r));
}

/// A child whose handler panics in its first request and a serving sibling, two requests
/// each; the body finishes at once, so the cancels are queued right behind the requests.
fn panicking_request() -> Scenario {
    let panics = Behaviour::PanicsInRequests {
        message: "boom".into(),
    };
    Scenario {
        requests: 2,
        ..Scenario::new(
            "panicking-request",
            vec![
                ChildPlan::daemon("panics", SpawnMethod::Fork, panics),
                ChildPlan::daemon("serves", SpawnMethod::Exec, Behaviour::Serves),
            ],
            Ending::Finish,
        )
    }
}

/// The caller of a request whose handler panicked gets the panic; the failed actor runs
/// nothing more (its other request is refused) and the child reports the panic as its one
/// error. The cancel had come first, so the child still acknowledges it and exits 0; its
/// sibling serves both requests.
#[test]
fn golden_a_panicking_request_answers_its_caller_then_fails_its_child() {
    let sc = panicking_request();
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    let says = |line: &str| r.trace.iter().any(|l| l.contains(line));
    assert!(says("reply from child#0 to req#0: remote panic: boom"));
    assert!(says(
        "reply from child#0 to req#1: remote refused: the actor failed before this request ran"
    ));
    assert!(says("reply from child#1 to req#3: ok"));
    let panic = harrow_model::wire::RemoteError::panic("boom");
    assert!(
        matches!(&r.report.errors[..], [e] if e.child == ChildId(0)
            && e.kind == ChildErrorKind::Remote(panic.clone())),
        "{:#?}",
        r.report.errors
    );
    for i in 0..2 {
        assert!(
            matches!(outcome(&r, i), Some(Outcome::Exited(s)) if s.success()),
            "{}",
            render(&sc, &r)
        );
    }
}

#[test]
fn golden_25_failing_children_are_torn_down_together() {
    let sc = canonical("errorers-25");
    assert_eq!(sc.children.len(), 25);
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    let errors = &r.report.errors;
    assert_eq!(errors.len(), 25, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e.kind, ChildErrorKind::Remote(_))),
        "{errors:#?}"
    );
    let failed: BTreeSet<ChildId> = errors.iter().map(|e| e.child).collect();
    let all: BTreeSet<ChildId> = (0..25).map(ChildId).collect();
    assert_eq!(failed, all, "one error per child");
    let took = r.report.duration().expect("teardown ended");
    let bound = sc.timeouts.cancel_ack + sc.timeouts.kill_grace;
    assert!(took <= bound, "25-child teardown took {took:?} > {bound:?}");
    insta::assert_snapshot!("trace_errorers_25", render(&sc, &r));
}

fn blockers(n: usize, flaws: Flaws) -> Scenario {
    let children = (0..n)
        .map(|i| {
            ChildPlan::daemon(
                &format!("spinner{i}"),
                SpawnMethod::Fork,
                Behaviour::BlocksForever,
            )
        })
        .collect();
    Scenario {
        flaws,
        ..Scenario::new(&format!("blockers-{n}"), children, Ending::Finish)
    }
}

/// Teardown of 25 stuck children costs one ack timeout, not 25.
#[test]
fn golden_25_stuck_children_cost_one_timeout() {
    let sc = blockers(25, Flaws::NONE);
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}", r.problems);
    assert_eq!(r.report.duration(), Some(sc.timeouts.cancel_ack));
    let one = run::deterministic(&blockers(1, Flaws::NONE));
    assert_eq!(
        r.report.duration(),
        one.report.duration(),
        "25 cost as much as 1"
    );
    for i in 0..25 {
        assert!(
            matches!(outcome(&r, i), Some(Outcome::Killed { .. })),
            "child#{i}: {:?}",
            outcome(&r, i)
        );
    }
    insta::assert_snapshot!("trace_blockers_25", render(&sc, &r));
}

/// The checker of the test above, paired with its flaw: serial teardown is caught.
#[test]
fn flaw_serial_teardown_makes_25_stuck_children_cost_25_timeouts() {
    let sc = blockers(25, Flaws::only(Flaw::SerialTeardown));
    let r = run::deterministic(&sc);
    let took = r.report.duration().expect("teardown ended");
    assert!(
        took >= 3 * sc.timeouts.cancel_ack,
        "serial teardown took only {took:?}"
    );
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, Problem::TeardownTooSlow { .. })),
        "the checker missed the slow teardown: {:?}",
        r.problems
    );
}
