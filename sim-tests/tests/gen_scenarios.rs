//! Generated scenarios (`harrow_sim::generate`) on the simulated OS under shuttle — trees
//! with grandchildren, every spawn method, behaviour and fault — and, for the same scenario's
//! root children, in the pure world; proptest owns both seeds.
//!
//! (`prop_protocol.rs` checks flat random scenarios in the pure world against an oracle; this
//! file is about the simulated OS and deeper trees.)
//!
//! A failure is shrunk by proptest, its seed persisted in `corpus/proptest/gen_scenarios.txt`,
//! and the shrunk case written to the corpus as a replayable entry (`corpus::record_generated`).

use std::path::Path;
use std::time::Duration;

use harrow_model::Flaw;
use harrow_sim::corpus::{self, Verdict};
use harrow_sim::generate::{self, FlawGen, GenConfig};
use harrow_sim::scenario::{Behaviour, Ending, Scenario};
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

const SEEDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../corpus/proptest/gen_scenarios.txt"
);

/// Random shuttle schedules per generated scenario.
const RANDOM: usize = 8;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether this run tests a mutant of the protocol (`.ci/mutants` sets `HARROW_MUTANTS`): a
/// failure then is the mutant's, so it is neither shrunk nor recorded in the corpus.
fn mutant_run() -> bool {
    std::env::var_os("HARROW_MUTANTS").is_some()
}

/// The seed of the case generator: fixed unless `PROPTEST_RNG_SEED` says otherwise.
fn rng_seed() -> proptest::test_runner::RngSeed {
    match std::env::var("PROPTEST_RNG_SEED").ok().as_deref() {
        Some("random") => proptest::test_runner::RngSeed::Random,
        Some(n) => n
            .parse()
            .unwrap_or(proptest::test_runner::RngSeed::Fixed(0x6861_7272)),
        None => proptest::test_runner::RngSeed::Fixed(0x6861_7272),
    }
}

/// One generated case: the pure world, then shuttle; the first broken property fails it.
fn check_case(sc: &Scenario, seed: u64) -> Result<(), TestCaseError> {
    let world = generate::run_world(sc, seed);
    prop_assert!(
        world.holds(),
        "pure world, picker seed {seed}: {:?}\nschedule {:?}",
        world.problems,
        world.schedule
    );
    let run = generate::run_shuttle(sc, seed, RANDOM);
    if let Some(f) = run.failure {
        return Err(TestCaseError::fail(format!(
            "shuttle, seed {seed}: {}\n{}",
            f.problems.join("\n"),
            f.trace
        )));
    }
    Ok(())
}

#[test]
fn generated_trees_hold_on_the_simulated_os_and_in_the_world() {
    let mutant = mutant_run();
    let config = Config {
        cases: cases(1000),
        failure_persistence: (!mutant)
            .then(|| Box::new(FileFailurePersistence::Direct(SEEDS)) as Box<_>),
        max_shrink_iters: if mutant { 0 } else { 2000 },
        // Scenarios that prove nothing are rejected (`generate::usable`); generating one
        // costs microseconds next to a shuttle run, so let long runs reject freely.
        max_local_rejects: 1_000_000,
        // CI explores the same cases every run, so a red run means a change broke something;
        // `PROPTEST_RNG_SEED=random` (or another number) explores new ground on demand, and
        // what it finds is recorded in the corpus like any other failure.
        rng_seed: rng_seed(),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (generate::scenario(GenConfig::SIM), any::<u64>());
    match runner.run(&strategy, |(sc, seed)| check_case(&sc, seed)) {
        Ok(()) => {}
        Err(TestError::Fail(why, (sc, seed))) if mutant => {
            panic!("a generated scenario breaks this mutant: {why}\nscenario: {sc:?}\nseed {seed}")
        }
        Err(TestError::Fail(why, (sc, seed))) => {
            let written = corpus::record_generated(&sc, seed, RANDOM, Path::new(corpus::DIR))
                .expect("the corpus is writable");
            panic!(
                "a generated scenario breaks the shipped protocol: {why}\nscenario (shrunk): \
                 {sc:?}\nseed {seed}\nrecorded in the corpus as {written:?}: replay with \
                 `harrow replay <file>`, then write its postmortem"
            );
        }
        Err(TestError::Abort(why)) => panic!("proptest gave up: {why}"),
    }
}

/// The generator is worth something only if a flaw switched on is found and shrunk to a
/// small case that replays from the corpus.
#[test]
fn generated_scenarios_find_f9_and_shrink_it_to_one_stuck_child() {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let cfg = GenConfig {
        flaws: FlawGen::Only(Flaw::NoEscalation),
        ..GenConfig::SIM
    };
    let strategy = (generate::scenario(cfg), any::<u64>());
    let (sc, seed) = match runner.run(&strategy, |(sc, seed)| check_case(&sc, seed)) {
        Err(TestError::Fail(_, case)) => case,
        other => panic!("64 generated scenarios with F9 on did not find it: {other:?}"),
    };
    // F9 needs one child that does not yield within the teardown's bound (whatever its
    // method: FLAWS.md says "all"): one that never yields, or one that blocks past the
    // bound (which of the two depends on the seed's path through the shrinking); shrinking
    // must remove everything else.
    assert_eq!(sc.children.len(), 1, "shrunk to one child: {sc:?}");
    let child = &sc.children[0];
    assert!(child.children.is_empty(), "no grandchildren left: {sc:?}");
    assert!(sc.faults.is_empty(), "no faults left: {sc:?}");
    assert!(sc.user.is_empty(), "no user's calls left: {sc:?}");
    let stuck = match child.behaviour {
        Behaviour::BlocksForever => true,
        Behaviour::Blocks { ms } => Duration::from_millis(ms) > sc.teardown_bound(),
        _ => false,
    };
    assert!(
        stuck,
        "a child that does not yield within the bound: {sc:?}"
    );
    assert_eq!(sc.ending, Ending::Finish, "{sc:?}");
    assert_eq!(sc.requests, 0, "{sc:?}");

    let dir = tempdir("f9-gen");
    let written = corpus::record_generated(&sc, seed, RANDOM, &dir).expect("writable");
    assert!(!written.is_empty(), "the shrunk failure is recorded");
    for path in &written {
        let r = corpus::replay_file(path);
        let replayed = r.replayed.as_ref().expect("the entry loads");
        assert_eq!(
            replayed.verdict,
            Verdict::Reproduced,
            "{}",
            corpus::describe(&r)
        );
        assert!(r.result.is_ok(), "{}", corpus::describe(&r));
    }
    // Recording the same failure again (proptest replays its saved seed on every run until
    // the failure is fixed) finds the entries already there.
    let again = corpus::record_generated(&sc, seed, RANDOM, &dir).expect("writable");
    assert_eq!(again, written, "no duplicate entries");
    assert_eq!(corpus::files(&dir).len(), written.len());
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("harrow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}
