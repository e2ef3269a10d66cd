//! `harrow check`: every engine over the shipped protocol and over each flaw, as a table.

use std::fmt::Write as _;
use std::io::Write as _;

use harrow_model::Flaw;

use crate::engine::{self, EngineRun, LoomBudget, ShuttleBudget};
use crate::explicit;
use crate::flaws::{self, Engine};
use crate::scenario::{self, Scenario};

/// What a row expects of its engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The shipped protocol: every property holds.
    Holds,
    /// A flaw switched on: the engine must find it.
    Found(Flaw),
}

/// One engine run over one subject.
#[derive(Debug)]
pub struct Row {
    /// The engine.
    pub engine: Engine,
    /// The scenario's name.
    pub subject: String,
    /// What is expected.
    pub expect: Expect,
    /// Whether the expectation was met.
    pub ok: bool,
    /// Executions (loom, shuttle) or states (explicit) explored.
    pub explored: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The counterexample, when a property broke.
    pub counterexample: Option<String>,
}

/// Which checks to run.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Engines to run (all by default).
    pub engines: Vec<Engine>,
    /// Only this flaw (and no shipped-protocol rows), if set.
    pub flaw: Option<Flaw>,
    /// Only the scenario with this name, if set.
    pub scenario: Option<String>,
    /// How hard shuttle searches each scenario.
    pub shuttle: ShuttleBudget,
    /// Print one line per row to stderr as rows complete.
    pub progress: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            engines: Engine::ALL.to_vec(),
            flaw: None,
            scenario: None,
            shuttle: ShuttleBudget::default(),
            progress: true,
        }
    }
}

/// Threads besides the root's and the clock: children, environment, helpers, reaper.
fn extra_threads(sc: &Scenario) -> usize {
    let reaper = usize::from(sc.flaws.has(Flaw::KillAndReapByPid));
    let helpers = sc
        .children
        .iter()
        .filter(|c| matches!(c.behaviour, scenario::Behaviour::LeaksChannel { .. }))
        .count();
    let env = sc.faults.len() + usize::from(sc.ending == scenario::Ending::Interrupt);
    sc.children.len() + env + reaper + helpers
}

/// The loom budget for a scenario: a preemption bound of 2 with one extra thread, 1 beyond.
///
/// Measured here (release, debug assertions on): one child and no fault explores 10k-45k
/// executions in 0.7-3.3 s at bound 2; a second thread multiplies that by 10-50, so those
/// models get bound 1 (hundreds to a few thousand executions).
pub fn loom_budget(sc: &Scenario) -> LoomBudget {
    LoomBudget {
        preemptions: Some(if extra_threads(sc) <= 1 { 2 } else { 1 }),
    }
}

/// Whether loom can run the scenario at all: at most five threads, main included.
pub fn loom_fits(sc: &Scenario) -> bool {
    let nested = sc.children.iter().any(|c| !c.children.is_empty());
    // main (the root's driver) + the clock + the rest; loom's share is one or two children,
    // larger nurseries are shuttle's.
    !nested && sc.children.len() <= 2 && 2 + extra_threads(sc) <= 5
}

/// The shipped-protocol scenarios each engine checks.
pub fn shipped_for(engine: Engine) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = scenario::canonical();
    out.extend(flaws::catalogue().iter().map(flaws::fixed));
    match engine {
        Engine::Loom => {
            out.extend(scenario::loom_matrix());
            out.retain(loom_fits);
        }
        Engine::Shuttle => out.extend(scenario::large()),
        // Breadth-first search covers every state of small trees; 25 interleaved children
        // are shuttle's job.
        Engine::Explicit => {
            out.extend(scenario::loom_matrix());
            out.retain(|s| {
                s.children.len() <= 3 && s.children.iter().all(|c| c.children.is_empty())
            });
        }
    }
    out
}

/// Runs one engine over one scenario.
pub fn run_one(
    engine: Engine,
    sc: &Scenario,
    shuttle: ShuttleBudget,
) -> (u64, f64, Option<String>) {
    match engine {
        Engine::Loom => summarize(engine::loom(sc, loom_budget(sc))),
        Engine::Shuttle => summarize(engine::shuttle(sc, shuttle)),
        Engine::Explicit => {
            let s = explicit::search(sc, explicit::MAX_STATES);
            let cx = s.counterexample.map(|c| {
                let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
                format!("{}\n{}", problems.join("\n"), numbered(&c.trace))
            });
            let cx = if s.truncated && cx.is_none() {
                Some(format!(
                    "the search stopped at {} states before covering everything",
                    explicit::MAX_STATES
                ))
            } else {
                cx
            };
            (s.states as u64, s.seconds, cx)
        }
    }
}

fn summarize(run: EngineRun) -> (u64, f64, Option<String>) {
    let cx = run.failure.map(|f| {
        let schedule = f
            .schedule
            .map(|s| format!("\nshuttle schedule: {s}"))
            .unwrap_or_default();
        format!("{}\n{}{schedule}", f.problems.join("\n"), f.trace)
    });
    (run.explored, run.seconds, cx)
}

fn numbered(trace: &[String]) -> String {
    trace
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{:>4}. {l}\n", i + 1))
        .collect()
}

/// Runs the checks the options select, in table order.
pub fn run(opts: &CheckOptions) -> Vec<Row> {
    let mut rows = Vec::new();
    let wanted = |name: &str| opts.scenario.as_deref().is_none_or(|n| n == name);
    for &engine in &opts.engines {
        if opts.flaw.is_none() {
            for sc in shipped_for(engine).into_iter().filter(|s| wanted(&s.name)) {
                rows.push(row(engine, &sc, Expect::Holds, opts));
            }
        }
        for case in flaws::catalogue() {
            let selected = opts.flaw.is_none_or(|f| f == case.flaw) && wanted(&case.scenario.name);
            if selected && case.engines.contains(&engine) {
                rows.push(row(engine, &case.scenario, Expect::Found(case.flaw), opts));
            }
        }
    }
    rows
}

/// Runs one check and panics with its counterexample (or its absence) unless it meets its
/// expectation: the body of every engine test.
pub fn assert_one(engine: Engine, sc: &Scenario, expect: Expect, shuttle: ShuttleBudget) -> Row {
    let opts = CheckOptions {
        shuttle,
        progress: false,
        ..CheckOptions::default()
    };
    let r = row(engine, sc, expect, &opts);
    let cx = r.counterexample.as_deref().unwrap_or("");
    match expect {
        Expect::Holds => assert!(
            r.ok,
            "{} broke the shipped protocol in `{}`:\n{cx}",
            engine.name(),
            r.subject
        ),
        Expect::Found(f) => assert!(
            r.ok,
            "{} did NOT find {f} in `{}` after exploring {}: the checker has regressed",
            engine.name(),
            r.subject,
            r.explored
        ),
    }
    println!("{} `{}`: {}\n{cx}", engine.name(), r.subject, verdict(&r));
    r
}

/// Checks that `engine` finds `flaw` in its scenario, and that the same scenario with the
/// flaw off holds: a checker that finds nothing proves nothing.
pub fn assert_flaw_pair(engine: Engine, flaw: Flaw, shuttle: ShuttleBudget) {
    let case = flaws::case_for(flaw);
    assert!(
        case.engines.contains(&engine),
        "FLAWS.md does not name {} for {flaw}",
        engine.name()
    );
    assert_one(engine, &case.scenario, Expect::Found(flaw), shuttle);
    assert_one(engine, &flaws::fixed(&case), Expect::Holds, shuttle);
}

fn row(engine: Engine, sc: &Scenario, expect: Expect, opts: &CheckOptions) -> Row {
    let (explored, seconds, counterexample) = run_one(engine, sc, opts.shuttle);
    let ok = match expect {
        Expect::Holds => counterexample.is_none(),
        Expect::Found(_) => counterexample.is_some(),
    };
    let r = Row {
        engine,
        subject: sc.name.clone(),
        expect,
        ok,
        explored,
        seconds,
        counterexample,
    };
    if opts.progress {
        let _ = writeln!(
            std::io::stderr(),
            "[{:<8}] {:<44} {}",
            engine.name(),
            r.subject,
            verdict(&r)
        );
    }
    r
}

fn verdict(r: &Row) -> String {
    let word = match (r.expect, r.ok) {
        (Expect::Holds, true) => "holds",
        (Expect::Holds, false) => "FAILS",
        (Expect::Found(_), true) => "found",
        (Expect::Found(_), false) => "NOT FOUND",
    };
    format!("{word:<9} {:>9} explored {:>8.2}s", r.explored, r.seconds)
}

/// The table, then every found flaw's counterexample and every failure.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<44}  {:<22}  {:<9}  {:>10}  {:>8}  {:>9}",
        "engine", "scenario", "expected", "verdict", "explored", "seconds", "per sec"
    );
    for r in rows {
        let expect = match r.expect {
            Expect::Holds => "shipped protocol holds".to_string(),
            Expect::Found(f) => format!("F{} found", f.number()),
        };
        let rate = if r.seconds > 0.0 {
            r.explored as f64 / r.seconds
        } else {
            0.0
        };
        let word = verdict(r);
        let word = word.split_whitespace().next().unwrap_or("");
        let _ = writeln!(
            out,
            "{:<8}  {:<44}  {:<22}  {:<9}  {:>10}  {:>8.2}  {:>9.0}",
            r.engine.name(),
            r.subject,
            expect,
            word,
            r.explored,
            r.seconds,
            rate
        );
    }
    for r in rows.iter().filter(|r| r.counterexample.is_some()) {
        let head = match (r.expect, r.ok) {
            (Expect::Found(f), _) => format!(
                "counterexample for {f} ({}), found by {}",
                f.postmortem().split('.').next().unwrap_or(""),
                r.engine.name()
            ),
            (Expect::Holds, _) => format!(
                "FAILURE of the shipped protocol in {}, found by {}",
                r.subject,
                r.engine.name()
            ),
        };
        let _ = writeln!(
            out,
            "\n== {head}\n{}",
            r.counterexample.as_deref().unwrap_or("")
        );
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    let _ = writeln!(
        out,
        "\n{} checks: {} as expected, {} not",
        rows.len(),
        rows.len() - failed,
        failed
    );
    out
}

/// Whether every row met its expectation.
pub fn all_ok(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.ok)
}

/// Flushes stderr progress before the table goes to stdout.
pub fn flush() {
    let _ = std::io::stderr().flush();
}
