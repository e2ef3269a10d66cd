//! Round trips: a flaw produces a failure, the failure is persisted as a corpus file, the
//! file is replayed, and the same failure comes back (in the spirit of shuttle's own
//! `check_replay_roundtrip_file`, written against the persisted file).

use harrow_model::{Flaw, Flaws};
use harrow_sim::corpus::{self, Entry, Expect, Kind, Schedule, Verdict};
use harrow_sim::engine::{self, ShuttleBudget};
use harrow_sim::{explicit, flaws};

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("harrow-rt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Replays the entry at `path` (then removes `dir`), asserting it reproduces its failure.
fn replay_reproduces(path: &std::path::Path, dir: &std::path::Path) -> corpus::Replayed {
    let r = corpus::replay_file(path);
    let _ = std::fs::remove_dir_all(dir);
    assert!(r.result.is_ok(), "{}", corpus::describe(&r));
    let replayed = r.replayed.clone().expect("replayed");
    assert_eq!(
        replayed.verdict,
        Verdict::Reproduced,
        "{}",
        corpus::describe(&r)
    );
    replayed
}

#[test]
fn a_shuttle_failure_round_trips_through_a_corpus_file() {
    let case = flaws::case_for(Flaw::NoEscalation);
    let budget = ShuttleBudget::default();
    let run = engine::shuttle(&case.scenario, budget);
    let failure = run.failure.expect("shuttle finds F9");
    let persisted = failure
        .schedule
        .clone()
        .expect("shuttle persisted the failing schedule to its file");
    let entry = Entry::from_shuttle(&case.scenario, &failure, Some(budget.seed))
        .expect("an entry from a failure with a schedule");

    let dir = tempdir("shuttle");
    let path = corpus::write(&dir, "f9-roundtrip", &entry).expect("writable");
    assert_eq!(path, dir.join("shuttle/0001-f9-roundtrip.json"));
    let loaded = corpus::load(&path).expect("the file reads back");
    assert_eq!(loaded, entry);
    assert_eq!(loaded.engine, Kind::Shuttle);
    assert_eq!(loaded.flaw, Some(9));
    let Schedule::Shuttle(s) = &loaded.schedule else {
        panic!("a shuttle schedule")
    };
    let shuttle_file: String = persisted.split_whitespace().collect();
    assert_eq!(
        s, &shuttle_file,
        "the entry holds shuttle's persisted schedule"
    );

    let replayed = replay_reproduces(&path, &dir);
    assert_eq!(
        replayed.problems, failure.problems,
        "the same failure comes back"
    );
    assert_eq!(replayed.trace, failure.trace, "with the same trace");
    assert!(replayed.trace.contains("   1. "), "numbered steps");

    // The same schedule with the flaw off does not show F9: the replay is of the code.
    let off = Entry {
        scenario: harrow_sim::scenario::Scenario {
            flaws: Flaws::NONE,
            ..entry.scenario.clone()
        },
        flaw: None,
        ..entry
    };
    let r = off.replay();
    assert_ne!(r.verdict, Verdict::Reproduced, "{:?}", r.problems);
}

#[test]
fn an_explicit_counterexample_round_trips_through_a_corpus_file() {
    let case = flaws::case_for(Flaw::KillAndReapByPid);
    let cx = explicit::search(&case.scenario, 100_000)
        .counterexample
        .expect("the explicit search finds F5");
    let entry = Entry::from_counterexample(&case.scenario, &cx);
    let dir = tempdir("explicit");
    let path = corpus::write(&dir, "f5-roundtrip", &entry).expect("writable");
    let loaded = corpus::load(&path).expect("reads back");
    assert_eq!(loaded, entry);
    assert_eq!(loaded.schedule, Schedule::Choices(cx.schedule.clone()));
    let replayed = replay_reproduces(&path, &dir);
    let Expect::Found(key) = &loaded.expect else {
        panic!("a found entry")
    };
    assert!(
        cx.problems
            .iter()
            .any(|p| p.to_string().contains(key.as_str()))
    );
    // The counterexample's own trace is where the replay's trace starts.
    for (i, line) in cx.trace.iter().enumerate() {
        assert!(
            replayed.trace.contains(&format!("{:>4}. {line}\n", i + 1)),
            "step {} of the counterexample: {line}",
            i + 1
        );
    }
}
