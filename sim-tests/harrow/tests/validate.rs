//! `harrow validate` on real traces: an undoctored trace of a real run fits the model, and
//! each doctored one is rejected at the doctored step, by the rule it breaks.
//!
//! The traces are written by the `harrow` binary itself (`harrow smoke --scenario ...
//! --method fork --trace DIR`), in a process of its own, so this test forks nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use harrow::validate::{self, Failure, Kind, Trace};
use harrow_model::ChildId;
use harrow_model::id::RequestId;
use harrow_model::trace::{Hex, Record, TracedEvent};
use harrow_model::wire::{DEFAULT_MAX_FRAME, Message};

/// The traces of one smoke scenario run under `Fork`, written to a fresh folder.
fn traces_of(scenario: &str) -> Vec<Trace> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-{scenario}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = harrow(
        &[
            "smoke",
            "--scenario",
            scenario,
            "--method",
            "fork",
            "--trace",
        ],
        &dir,
    );
    assert!(out.status.success(), "the smoke run failed: {out:?}");
    let mut traces = Vec::new();
    for sub in [dir.clone(), dir.join("children")] {
        for entry in std::fs::read_dir(&sub).expect("the trace folder exists") {
            let path = entry.expect("a readable folder").path();
            if path.extension().is_some_and(|x| x == "ndjson") {
                traces.push(Trace::load(&path).expect("a trace the tracer wrote parses"));
            }
        }
    }
    std::fs::remove_dir_all(&dir).expect("the trace folder is removed");
    traces
}

/// Runs the `harrow` binary with `args` and then `path`.
fn harrow(args: &[&str], path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harrow"))
        .args(args)
        .arg(path)
        .output()
        .expect("the harrow binary runs")
}

/// The one nursery trace among `traces`.
fn nursery(traces: &mut [Trace]) -> &mut Trace {
    let mut nurseries = traces.iter_mut().filter(|t| t.kind() == Ok(Kind::Nursery));
    let n = nurseries.next().expect("the run wrote a nursery trace");
    assert!(nurseries.next().is_none(), "the scenario opens one nursery");
    n
}

/// The failure `validate` reports for the nursery trace.
fn failure(traces: &[Trace]) -> Failure {
    let verdicts = validate::validate(traces);
    let v = verdicts
        .iter()
        .find(|v| v.path.contains("nursery-"))
        .expect("the nursery was validated");
    v.result
        .clone()
        .expect_err("the doctored trace must not fit")
}

/// The step (from 1) of the first line of `t` that `is` picks.
fn step_of(t: &Trace, is: impl Fn(&Record) -> bool) -> usize {
    t.lines
        .iter()
        .position(|l| is(&l.rec))
        .expect("the trace has that step")
        + 1
}

/// The step of the wait in which the child's cancel-ack and exit arrived.
fn ack_wait(t: &Trace) -> usize {
    step_of(
        t,
        |r| matches!(r, Record::Wait { events, .. } if events.contains(&TracedEvent::Exited(ChildId(0)))),
    )
}

fn events(t: &mut Trace, step: usize) -> &mut Vec<TracedEvent> {
    match &mut t.lines[step - 1].rec {
        Record::Wait { events, .. } => events,
        other => panic!("step {step} is no wait: {other:?}"),
    }
}

fn assert_fails(f: &Failure, step: usize, rule: &str, says: &str) {
    assert_eq!(f.step, step, "{f}");
    assert!(f.rule.contains(rule), "{f}");
    assert!(f.message.contains(says), "{f}");
}

#[test]
fn undoctored_real_traces_fit_the_model() {
    for scenario in ["happy-teardown", "never-yields"] {
        let traces = traces_of(scenario);
        assert!(traces.len() >= 2, "a nursery's trace and its child's");
        for v in validate::validate(&traces) {
            assert_eq!(v.result, Ok(()), "{}", v.path);
            if v.path.contains("nursery-") {
                assert_eq!(v.children, 1, "the child's trace was matched and checked");
            }
        }
    }
}

#[test]
fn the_command_exits_0_on_a_real_trace_and_1_on_a_doctored_one() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let smoke = [
        "smoke",
        "--scenario",
        "happy-teardown",
        "--method",
        "fork",
        "--trace",
    ];
    assert!(harrow(&smoke, &dir).status.success());
    let ok = harrow(&["validate"], &dir);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("all fit the model"), "{text}");

    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("nursery-"))
        .unwrap();
    let mut t = Trace::load(&path).unwrap();
    let at = ack_wait(&t);
    events(&mut t, at).push(TracedEvent::Exited(ChildId(0)));
    std::fs::write(&path, t.to_text()).unwrap();
    let bad = harrow(&["validate"], &path);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("step {at}: child#0 exited a second time")),
        "{text}"
    );
    assert!(
        text.contains(&format!(">> {at:>5}")),
        "the numbered trace marks the step: {text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_exit_is_rejected() {
    let mut traces = traces_of("happy-teardown");
    let t = nursery(&mut traces);
    let at = ack_wait(t);
    events(t, at).push(TracedEvent::Exited(ChildId(0)));
    let f = failure(&traces);
    assert_fails(&f, at, "a child exits once", "child#0 exited a second time");
}

#[test]
fn a_second_end_of_file_is_rejected() {
    let mut traces = traces_of("never-yields");
    let t = nursery(&mut traces);
    let at = step_of(
        t,
        |r| matches!(r, Record::Wait { events, .. } if events.contains(&TracedEvent::Eof(ChildId(0)))),
    );
    events(t, at).push(TracedEvent::Eof(ChildId(0)));
    let f = failure(&traces);
    assert_fails(
        &f,
        at,
        "end-of-file once",
        "a second end-of-file from child#0",
    );
}

#[test]
fn an_end_of_file_before_the_child_closed_is_rejected() {
    let mut traces = traces_of("never-yields");
    let at = step_of(
        nursery(&mut traces),
        |r| matches!(r, Record::Wait { events, .. } if events.contains(&TracedEvent::Eof(ChildId(0)))),
    );
    let eof_t = nursery(&mut traces).lines[at - 1].t;
    // The child's trace says it still wrote a line after the parent read its end-of-file.
    let child = traces
        .iter_mut()
        .find(|t| t.kind() == Ok(Kind::Child))
        .expect("the child's trace");
    child.lines.last_mut().unwrap().t = eof_t + 1_000_000;
    let f = failure(&traces);
    assert_fails(
        &f,
        at,
        "end-of-file only after the last copy of the write end closed",
        "the child then still wrote",
    );
}

#[test]
fn a_reply_after_the_cancel_ack_is_rejected() {
    let mut traces = traces_of("happy-teardown");
    let t = nursery(&mut traces);
    let at = ack_wait(t);
    let reply = Message::Reply {
        id: RequestId(0),
        result: Ok(vec![42]),
    };
    let frame = reply.encode(DEFAULT_MAX_FRAME).unwrap();
    events(t, at).insert(1, TracedEvent::Bytes(ChildId(0), Hex(frame)));
    let f = failure(&traces);
    assert_fails(&f, at, "nothing after a cancel-ack", "child#0 sent Reply");
}

#[test]
fn a_teardown_over_its_bound_is_rejected() {
    let mut traces = traces_of("happy-teardown");
    let t = nursery(&mut traces);
    let from = step_of(t, |r| matches!(r, Record::BeginTeardown { .. }));
    // Ten seconds pass in real time between teardown's start and its next step.
    for line in &mut t.lines[from..] {
        line.t += 10_000_000_000;
    }
    let f = failure(&traces);
    assert!(f.step > from, "{f}");
    assert_fails(
        &f,
        f.step,
        "teardown ends within cancel_ack + grace (property 8)",
        "teardown took 10.",
    );
}

#[test]
fn a_reordered_command_is_rejected() {
    let mut traces = traces_of("happy-teardown");
    let t = nursery(&mut traces);
    let close = step_of(t, |r| matches!(r, Record::Close { .. }));
    let reap = step_of(t, |r| matches!(r, Record::Reap { .. }));
    assert!(close < reap, "the shipped protocol closes, then reaps");
    t.lines.swap(close - 1, reap - 1);
    let f = failure(&traces);
    assert_fails(&f, close, "determinism", "recorded reap child#0");
    assert!(
        f.message
            .contains("the model says: close the channel of child#0"),
        "{f}"
    );
}

/// Runs the `harrow` binary's traced smoke run of `scenario` under `Fork` into `dir`, with
/// each trace bounded by `max_bytes`.
fn bounded_run(scenario: &str, dir: &Path, max_bytes: &str) -> std::process::Output {
    let _ = std::fs::remove_dir_all(dir);
    Command::new(env!("CARGO_BIN_EXE_harrow"))
        .args([
            "smoke",
            "--scenario",
            scenario,
            "--method",
            "fork",
            "--trace",
        ])
        .arg(dir)
        .env("HARROW_TRACE_MAX_BYTES", max_bytes)
        .output()
        .expect("the harrow binary runs")
}

#[test]
fn a_trace_over_its_bound_ends_truncated_and_does_not_fit() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-bound-{}", std::process::id()));
    // Its payloads go up to the frame limit: a megabyte a frame, two hex digits a byte.
    let out = bounded_run("large-payloads", &dir, "65536");
    assert!(out.status.success(), "{out:?}");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("nursery-"))
        .unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let t = Trace::load(&path).unwrap();
    let last = t.lines.last().unwrap();
    assert_eq!(
        last.rec,
        Record::Truncated { limit: 65536 },
        "{bytes} bytes"
    );
    // The bound holds but for the final line that says it was reached.
    let before: usize = t.to_text().lines().rev().skip(1).map(|l| l.len() + 1).sum();
    assert!(before <= 65536, "{before} bytes before the truncated line");
    let v = validate::validate(&[t]);
    let f = v[0]
        .result
        .clone()
        .expect_err("a truncated trace does not fit");
    assert_eq!(f.step, v[0].steps, "{f}");
    assert!(
        f.message.contains("truncated at its limit of 65536 bytes"),
        "{f}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_trace_bound_fails_the_nursery_open_naming_the_variable() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("validate-bad-bound-{}", std::process::id()));
    let out = bounded_run("happy-teardown", &dir, "lots");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("HARROW_TRACE_MAX_BYTES=`lots` is not a number of bytes"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
