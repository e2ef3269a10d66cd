//! Replays every entry of `corpus/` and sorts it into reproduced / passes / stale; an entry
//! whose replay does not meet its expectation, or whose schedule no longer fits the code,
//! fails the run with what to do about it (see `corpus/README.md`).

use std::path::{Path, PathBuf};

use harrow_model::{Flaw, Flaws};
use harrow_sim::corpus::{self, Entry, Expect, Kind, Schedule, Verdict};
use harrow_sim::world::Choice;

fn corpus_dir() -> &'static Path {
    Path::new(corpus::DIR)
}

#[test]
fn every_corpus_entry_meets_its_expectation() {
    let reports = corpus::replay_dir(corpus_dir());
    println!("{}", corpus::render(&reports));
    assert!(
        !reports.is_empty(),
        "no entries under {}",
        corpus_dir().display()
    );
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.result.is_err())
        .map(corpus::describe)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} corpus entries failed:\n\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    );
}

#[test]
fn the_corpus_keeps_every_flaw_and_the_shipped_protocol() {
    let entries: Vec<(PathBuf, Entry)> = corpus::files(corpus_dir())
        .into_iter()
        .map(|p| {
            let e = corpus::load(&p).unwrap_or_else(|e| panic!("{e}"));
            (p, e)
        })
        .collect();
    for flaw in Flaw::ALL {
        assert!(
            entries.iter().any(|(_, e)| e.flaw == Some(flaw.number())
                && e.scenario.flaws == Flaws::only(flaw)
                && matches!(e.expect, Expect::Found(_))),
            "no corpus entry expects {flaw} to be found: run `harrow corpus seed`"
        );
    }
    for kind in Kind::ALL {
        assert!(
            entries.iter().any(|(_, e)| e.engine == kind
                && e.expect == Expect::Passes
                && e.scenario.flaws.is_none()),
            "no {} entry expects the shipped protocol to pass",
            kind.name()
        );
    }
    let mut ids: Vec<u32> = entries
        .iter()
        .map(|(p, _)| corpus::id_of(p).unwrap_or_else(|| panic!("{} has no id", p.display())))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "two corpus entries share an id");
}

/// A copy of a corpus entry in a fresh temporary corpus, changed by `edit`.
fn edited_copy(name: &str, entry: &str, edit: impl FnOnce(&mut Entry)) -> (PathBuf, PathBuf) {
    let src = corpus::files(corpus_dir())
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(entry))
        })
        .unwrap_or_else(|| panic!("the corpus holds an entry named *{entry}*"));
    let mut e = corpus::load(&src).expect("a valid entry");
    edit(&mut e);
    let dir = std::env::temp_dir().join(format!("harrow-corpus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = corpus::write(&dir, name, &e).expect("a temp corpus");
    (dir, path)
}

fn replay_alone(dir: &Path) -> corpus::Report {
    let mut reports = corpus::replay_dir(dir);
    assert_eq!(reports.len(), 1, "one entry in {}", dir.display());
    let _ = std::fs::remove_dir_all(dir);
    reports.remove(0)
}

fn assert_stale(r: &corpus::Report) {
    let replayed = r.replayed.as_ref().expect("it loads");
    assert!(
        matches!(replayed.verdict, Verdict::Stale(_)),
        "{}",
        corpus::describe(r)
    );
    let msg = r.result.as_ref().expect_err("a stale entry fails the run");
    for part in [
        "STALE",
        "Re-minimise",
        "corpus add",
        "--replace",
        "retire",
        "delete",
    ] {
        assert!(msg.contains(part), "`{part}` in: {msg}");
    }
}

#[test]
fn a_stale_explicit_schedule_fails_the_run_with_the_reminimise_message() {
    // A step the world never offers there: the code moved on under the schedule.
    let (dir, _) = edited_copy("stale-explicit", "f9-no-escalation.json", |e| {
        let Schedule::Choices(c) = &mut e.schedule else {
            panic!("an explicit entry has choices")
        };
        c.insert(1, Choice::Exit(0));
    });
    let r = replay_alone(&dir);
    assert_stale(&r);
    let msg = r.result.unwrap_err();
    assert!(msg.contains("step 2 of"), "{msg}");
    assert!(msg.contains("`exit 0`, is not enabled"), "{msg}");
}

#[test]
fn a_stale_shuttle_schedule_fails_the_run_with_the_reminimise_message() {
    // The scenario grew two threads the schedule knows nothing of.
    let (dir, _) = edited_copy("stale-shuttle", "f2-destroy-before-join.json", |e| {
        let c = e.scenario.children[0].clone();
        e.scenario.children = (0..3)
            .map(|i| harrow_sim::scenario::ChildPlan {
                name: format!("k{i}"),
                ..c.clone()
            })
            .collect();
    });
    let r = replay_alone(&dir);
    assert_stale(&r);
    let msg = r.result.unwrap_err();
    assert!(
        msg.contains("shuttle's replay stopped"),
        "shuttle's own complaint is quoted: {msg}"
    );
}

#[test]
fn a_shuttle_schedule_cut_short_is_stale() {
    let (dir, _) = edited_copy("short-shuttle", "f11-dropped-wakeups.json", |e| {
        let Schedule::Shuttle(s) = &mut e.schedule else {
            panic!("a shuttle entry has an encoded schedule")
        };
        s.truncate(s.len() / 2);
    });
    assert_stale(&replay_alone(&dir));
}

#[test]
fn an_entry_whose_failure_went_away_fails_the_run() {
    // F9's counterexample with F9 switched off: the schedule still fits, the hang is gone.
    let (dir, _) = edited_copy("gone", "f9-no-escalation.json", |e| {
        e.scenario.flaws = Flaws::NONE;
        e.flaw = None;
    });
    let r = replay_alone(&dir);
    assert_eq!(
        r.replayed.as_ref().map(|x| x.verdict.clone()),
        Some(Verdict::Passes)
    );
    let msg = r.result.unwrap_err();
    assert!(msg.contains("the failure is gone"), "{msg}");
    assert!(msg.contains("\"expect\": \"passes\""), "{msg}");
}

#[test]
fn a_passing_entry_that_breaks_is_a_regression() {
    // The shipped protocol's entry on F9's schedule, with F9 switched back on.
    let (dir, _) = edited_copy(
        "regression",
        "f9-no-escalation-fixed-on-the-flaw-schedule",
        |e| {
            e.scenario.flaws = Flaws::only(Flaw::NoEscalation);
        },
    );
    let r = replay_alone(&dir);
    assert_eq!(
        r.replayed.as_ref().map(|x| x.verdict.clone()),
        Some(Verdict::Reproduced)
    );
    let msg = r.result.unwrap_err();
    assert!(msg.starts_with("REGRESSION"), "{msg}");
    assert!(msg.contains("hang"), "{msg}");
}

#[test]
fn an_entry_that_breaks_something_else_fails_the_run() {
    let (dir, _) = edited_copy("else", "f9-no-escalation.json", |e| {
        e.expect = Expect::Found("teardown took".into());
    });
    let msg = replay_alone(&dir).result.unwrap_err();
    assert!(msg.contains("broke something else"), "{msg}");
    assert!(msg.contains("hang"), "what it did break is shown: {msg}");
}

#[test]
fn an_entry_that_does_not_parse_or_disagrees_with_itself_fails_the_run() {
    let dir = std::env::temp_dir().join(format!("harrow-corpus-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("explicit")).unwrap();
    std::fs::write(
        dir.join("explicit/0001-junk.json"),
        "{ \"engine\": \"explicit\" }",
    )
    .unwrap();
    let (dir2, path) = edited_copy("mismatch", "f9-no-escalation.json", |e| {
        e.flaw = Some(3);
    });
    let bad = corpus::replay_dir(&dir);
    let mismatch = corpus::replay_file(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0]
            .result
            .as_ref()
            .unwrap_err()
            .contains("is not a corpus entry")
    );
    let msg = mismatch.result.unwrap_err();
    assert!(msg.contains("names F3"), "{msg}");
}
