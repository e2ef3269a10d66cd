//! `harrow corpus from-trace`: a real run's trace becomes a corpus entry the simulator
//! replays and passes; a trace that does not fit, or that the scenario language cannot
//! express, is refused saying why.
//!
//! The traces are written by the `harrow` binary itself (`harrow smoke --scenario
//! serve-crash-stuck --method fork --trace DIR`), in a process of its own, so this test
//! forks nothing.

use std::path::PathBuf;
use std::process::Command;

use harrow::fromtrace::{self, Refusal};
use harrow::validate::Trace;
use harrow_model::ChildId;
use harrow_model::trace::Record;
use harrow_sim::corpus::{self, Expect};
use harrow_sim::scenario::Behaviour;

/// A fresh folder under the test's temporary directory.
fn folder(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fromtrace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The nursery's trace and its children's, of one run of `serve-crash-stuck` under `Fork`.
fn traces() -> (Trace, Vec<Trace>) {
    let dir = folder("run");
    let out = Command::new(env!("CARGO_BIN_EXE_harrow"))
        .args([
            "smoke",
            "--scenario",
            "serve-crash-stuck",
            "--method",
            "fork",
        ])
        .arg("--trace")
        .arg(&dir)
        .output()
        .expect("the harrow binary runs");
    assert!(out.status.success(), "the smoke run failed: {out:?}");
    let (mut nurseries, children) =
        fromtrace::load(std::slice::from_ref(&dir)).expect("the traces load");
    std::fs::remove_dir_all(&dir).expect("the trace folder is removed");
    assert_eq!(nurseries.len(), 1, "the scenario opens one nursery");
    assert_eq!(children.len(), 3, "each child wrote its trace");
    (nurseries.remove(0), children)
}

#[test]
fn a_real_trace_becomes_an_entry_that_replays_and_passes() {
    let (nursery, children) = traces();
    let made = fromtrace::make(&nursery, &children, "real-serve-crash-stuck")
        .unwrap_or_else(|e| panic!("refused: {e}"));
    let e = &made.entry;
    assert_eq!(e.expect, Expect::Passes);
    let behaviours: Vec<&Behaviour> = e.scenario.children.iter().map(|c| &c.behaviour).collect();
    assert_eq!(
        behaviours,
        [
            &Behaviour::Serves,
            &Behaviour::CrashesAfterHandshake { code: 3 },
            &Behaviour::BlocksForever
        ]
    );
    assert!(made.commands >= 15, "{} commands compared", made.commands);
    let file = PathBuf::from(&nursery.path);
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(e.postmortem.contains(&*name), "{}", e.postmortem);

    let dir = folder("corpus");
    let path = corpus::write(&dir, "real-serve-crash-stuck", e).expect("the entry is written");
    let report = corpus::replay_file(&path);
    assert_eq!(report.result, Ok(()), "{}", corpus::describe(&report));
    std::fs::remove_dir_all(&dir).expect("the corpus folder is removed");
}

#[test]
fn a_trace_over_its_teardown_bound_is_refused_as_out_of_the_simulators_reach() {
    let (mut nursery, children) = traces();
    // Teardown took ten seconds more: every line from the body's teardown on is later.
    let from = nursery
        .lines
        .iter()
        .position(|l| matches!(l.rec, Record::BeginTeardown { .. }))
        .expect("the body tears down");
    for line in &mut nursery.lines[from..] {
        line.t += 10_000_000_000;
    }
    match fromtrace::make(&nursery, &children, "late") {
        Err(Refusal::NotReproduced(why)) => {
            assert!(why.contains("does not fit the model"), "{why}");
            assert!(why.contains("teardown"), "{why}");
            assert!(why.contains("holds every property"), "{why}");
        }
        other => panic!("expected the simulator to say it cannot reproduce it: {other:?}"),
    }
}

#[test]
fn a_user_cancel_the_scenario_language_lacks_is_refused_naming_the_child() {
    let (mut nursery, children) = traces();
    let at = nursery
        .lines
        .iter()
        .position(|l| matches!(l.rec, Record::BeginTeardown { .. }))
        .expect("the body tears down");
    let mut cancel = nursery.lines[at].clone();
    cancel.rec = Record::Cancel { child: ChildId(2) };
    nursery.lines.insert(at, cancel);
    match fromtrace::make(&nursery, &children, "cancelled") {
        Err(Refusal::Body(why)) => {
            assert!(why.contains("`cancel` on child#2"), "{why}");
            assert!(
                why.contains(&format!(":{}", at + 1)),
                "names the line: {why}"
            );
        }
        other => panic!("expected a refusal of the user's cancel: {other:?}"),
    }
}

#[test]
fn a_child_that_ended_in_a_way_no_behaviour_does_is_refused_naming_it() {
    let (mut nursery, children) = traces();
    // The stuck child, SIGKILLed by its parent, is made to have exited 5 instead.
    for line in &mut nursery.lines {
        if let Record::Reap { child, result } = &mut line.rec
            && *child == ChildId(2)
        {
            *result = Ok(harrow_model::ExitStatus::Exited(5));
        }
    }
    match fromtrace::make(&nursery, &children, "odd") {
        Err(Refusal::Inexpressible(why)) => {
            assert!(why.contains("child#2 (`stuck`"), "{why}");
            assert!(why.contains("Exited(5)"), "{why}");
        }
        other => panic!("expected the child to be refused: {other:?}"),
    }
}

/// `from-trace` read the `children` folder beside a nursery's trace as one more path to
/// load, and loading a folder with no trace in it is an error ("no traces given"): a nursery
/// whose only child died before it could write its trace (its folder is empty) was refused
/// before anything was read. The folder is now read only if it holds a trace.
#[test]
fn bug_a_nursery_whose_children_wrote_no_trace_is_still_read() {
    let dir = folder("boot-dies");
    let out = Command::new(env!("CARGO_BIN_EXE_harrow"))
        .args(["smoke", "--scenario", "boot-dies", "--method", "fork"])
        .arg("--trace")
        .arg(&dir)
        .output()
        .expect("the harrow binary runs");
    assert!(out.status.success(), "the smoke run failed: {out:?}");
    let loaded = fromtrace::load(std::slice::from_ref(&dir));
    std::fs::remove_dir_all(&dir).expect("the trace folder is removed");
    let (nurseries, children) = loaded.expect("the nursery's trace loads");
    assert_eq!((nurseries.len(), children.len()), (1, 0));
    let made = fromtrace::make(&nurseries[0], &children, "boot-dies")
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(
        made.entry.scenario.children[0].behaviour,
        Behaviour::CrashesBeforeHandshake { code: 7 }
    );
    assert_eq!(made.entry.expect, Expect::Passes);
}
