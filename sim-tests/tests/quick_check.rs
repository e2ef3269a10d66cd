//! `harrow check --quick` as tests: every row of the check (each engine over the shipped
//! protocol and over every flaw named for it) at the quick budget, one test per engine, each
//! stopping at its first row that misses its expectation.
//!
//! These are the engines alone — properties and flaws, no pinned count, no snapshot — and
//! the test command of the mutation run's engines-only count (README, "Mutation testing"):
//! a mutant they do not kill is a protocol change no property notices.

use harrow_sim::check::{self, CheckOptions, Expect};
use harrow_sim::flaws::Engine;

/// Runs the quick check's rows for `engine` in table order; panics at the first that misses
/// its expectation, with its verdict and counterexample.
fn quick(engine: Engine) {
    let opts = CheckOptions {
        engines: vec![engine],
        progress: false,
        ..CheckOptions::quick()
    };
    let planned = check::plan(&opts);
    let flaws = planned
        .iter()
        .filter(|p| matches!(p.2, Expect::Found(_)))
        .count();
    assert!(
        flaws > 0 && planned.len() > flaws,
        "{} has shipped-protocol and flaw rows",
        engine.name()
    );
    for (engine, sc, expect) in &planned {
        let r = check::row(*engine, sc, *expect, &opts);
        assert!(
            r.ok,
            "{} on `{}`: {}\n{}",
            engine.name(),
            r.subject,
            check::verdict(&r),
            r.counterexample.as_deref().unwrap_or("")
        );
    }
    println!("{}: {} rows as expected", engine.name(), planned.len());
}

#[test]
fn quick_explicit() {
    quick(Engine::Explicit);
}

#[test]
fn quick_shuttle() {
    quick(Engine::Shuttle);
}

#[test]
fn quick_loom() {
    quick(Engine::Loom);
}
