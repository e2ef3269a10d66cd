//! `harrow check`: every engine over the shipped protocol and over each flaw, as a table.

use std::fmt::Write as _;
use std::io::Write as _;

use harrow_model::Flaw;
use harrow_model::coverage::Coverage;

use crate::engine::{self, EngineRun, LoomBudget, ShuttleBudget};
use crate::explicit;
use crate::flaws::{self, Engine};
use crate::scenario::{self, Scenario};
use crate::wide;

/// What a row expects of its engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The shipped protocol: every property holds.
    Holds,
    /// A flaw switched on: the engine must find it, breaking one of the properties its
    /// table entry names.
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
    /// Why the engine stopped before covering its whole space, when it did: a search cut
    /// short has its own verdict and never meets an expectation, whatever it saw first.
    pub cut_short: Option<String>,
    /// How the number of states differs from the one pinned for a wide scope, when it does.
    pub pin: Option<String>,
    /// The protocol-table cells the engine reached on this subject.
    pub coverage: Coverage,
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
    /// The most states one explicit search may visit.
    pub max_states: usize,
    /// Every wide scope for the explicit engine ([`crate::wide::all`]), not only CI's subset.
    pub wide: bool,
    /// Leave out the explicit engine's wide scopes altogether (their pinned counts too): the
    /// quick check's.
    pub no_wide: bool,
    /// Loom only on models with at most two threads besides the root's and the clock, at a
    /// preemption bound of 1 (the quick check's): the larger models take minutes each.
    pub loom_small: bool,
    /// Report progress on stderr: a bar per engine on a terminal, one line per check when
    /// stderr is not a terminal.
    pub progress: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            engines: Engine::ALL.to_vec(),
            flaw: None,
            scenario: None,
            shuttle: ShuttleBudget::default(),
            max_states: explicit::MAX_STATES,
            wide: false,
            no_wide: false,
            loom_small: false,
            progress: true,
        }
    }
}

impl CheckOptions {
    /// `harrow check --quick`: every row of the full check (each engine over the shipped
    /// protocol and over every flaw named for it) at a budget that takes seconds, not
    /// minutes: the explicit search without its wide scopes, shuttle with 40 random and 40
    /// PCT schedules per scenario, loom at a preemption bound of 1 on the models with at
    /// most two threads besides the root's and the clock. Fast enough to
    /// run after every edit of the protocol, and for each mutant of a mutation run
    /// (README, "Mutation testing"); the full check stays the verdict.
    pub fn quick() -> CheckOptions {
        CheckOptions {
            // The explicit search first: it is exhaustive over its scopes, and a broken
            // protocol usually fails there in its first rows.
            engines: vec![Engine::Explicit, Engine::Shuttle, Engine::Loom],
            shuttle: ShuttleBudget {
                random: 40,
                pct: 40,
                ..ShuttleBudget::default()
            },
            no_wide: true,
            loom_small: true,
            ..CheckOptions::default()
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

/// Whether a loom model is small enough for the quick check: at most two threads besides the
/// root's and the clock.
fn loom_small(sc: &Scenario) -> bool {
    extra_threads(sc) <= 2
}

/// The shipped-protocol scenarios each engine checks.
pub fn shipped_for(engine: Engine) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = scenario::canonical();
    out.extend(flaws::catalogue().iter().map(flaws::fixed));
    out.extend(scenario::requests());
    out.extend(scenario::user());
    out.extend(scenario::limits());
    out.extend(scenario::out_of_turn());
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

/// What one engine run over one scenario saw.
#[derive(Debug)]
pub struct Outcome {
    /// Executions (loom, shuttle) or states (explicit) explored.
    pub explored: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The counterexample, when a property broke.
    pub counterexample: Option<String>,
    /// Why the run stopped before covering its whole space, when it did.
    pub cut_short: Option<String>,
    /// The protocol-table cells it reached.
    pub coverage: Coverage,
}

/// Runs one engine over one scenario.
pub fn run_one(engine: Engine, sc: &Scenario, opts: &CheckOptions) -> Outcome {
    match engine {
        Engine::Loom => {
            let budget = if opts.loom_small {
                LoomBudget {
                    preemptions: Some(1),
                }
            } else {
                loom_budget(sc)
            };
            summarize(engine::loom(sc, budget))
        }
        Engine::Shuttle => summarize(engine::shuttle(sc, opts.shuttle)),
        Engine::Explicit => {
            let s = explicit::search(sc, opts.max_states);
            let counterexample = s.counterexample.map(|c| {
                let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
                format!(
                    "{}\n{}",
                    problems.join("\n"),
                    crate::run::numbered(&c.trace)
                )
            });
            let cut_short = s.truncated.then(|| {
                format!(
                    "explored {} states, not all: the search stopped at its bound of {}; \
                     shrink the scenario or raise the bound",
                    s.states, opts.max_states
                )
            });
            Outcome {
                explored: s.states as u64,
                seconds: s.seconds,
                counterexample,
                cut_short,
                coverage: s.coverage,
            }
        }
    }
}

fn summarize(run: EngineRun) -> Outcome {
    let cx = run.failure.map(|f| {
        let schedule = f
            .schedule
            .map(|s| format!("\nshuttle schedule: {s}"))
            .unwrap_or_default();
        format!("{}\n{}{schedule}", f.problems.join("\n"), f.trace)
    });
    Outcome {
        explored: run.explored,
        seconds: run.seconds,
        counterexample: cx,
        cut_short: None,
        coverage: run.coverage,
    }
}

/// The checks the options select, in table order, without running them.
pub fn plan(opts: &CheckOptions) -> Vec<(Engine, Scenario, Expect)> {
    let mut out = Vec::new();
    let wanted = |name: &str| opts.scenario.as_deref().is_none_or(|n| n == name);
    for &engine in &opts.engines {
        if opts.flaw.is_none() {
            let small = |s: &Scenario| engine != Engine::Loom || !opts.loom_small || loom_small(s);
            for sc in shipped_for(engine)
                .into_iter()
                .filter(|s| wanted(&s.name) && small(s))
            {
                out.push((engine, sc, Expect::Holds));
            }
            if engine == Engine::Explicit && !opts.no_wide {
                let wide = if opts.wide { wide::all() } else { wide::ci() };
                for sc in wide.into_iter().filter(|s| wanted(&s.name)) {
                    out.push((engine, sc, Expect::Holds));
                }
            }
        }
        for case in flaws::catalogue() {
            let selected = opts.flaw.is_none_or(|f| f == case.flaw) && wanted(&case.scenario.name);
            if selected && case.engines.contains(&engine) {
                out.push((engine, case.scenario, Expect::Found(case.flaw)));
            }
        }
    }
    out
}

/// The names of every scenario an engine would check (for a `--scenario` that matched none).
pub fn scenario_names(engines: &[Engine]) -> Vec<String> {
    let mut names: Vec<String> = engines
        .iter()
        .flat_map(|&e| {
            let flawed = flaws::catalogue()
                .into_iter()
                .filter(move |c| c.engines.contains(&e))
                .map(|c| c.scenario);
            shipped_for(e).into_iter().chain(flawed)
        })
        .map(|s| s.name)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Runs the checks the options select, in table order, reporting progress on stderr: a
/// progress bar per engine on a terminal, else one line per check.
pub fn run(opts: &CheckOptions) -> Vec<Row> {
    let planned = plan(opts);
    let mut rows = Vec::new();
    let mut i = 0;
    while i < planned.len() {
        let engine = planned[i].0;
        let n = planned[i..].iter().take_while(|p| p.0 == engine).count();
        let mut progress = Progress::start(opts.progress, engine, n as u64);
        for (_, sc, expect) in &planned[i..i + n] {
            progress.begin(&sc.name);
            let r = row(engine, sc, *expect, opts);
            progress.done(&r);
            rows.push(r);
        }
        progress.finish(&rows[rows.len() - n..]);
        i += n;
    }
    rows
}

/// Progress on stderr: a bar per engine on a terminal, plain lines otherwise, or nothing.
enum Progress {
    Off,
    Lines { engine: Engine, n: u64, k: u64 },
    Bar(indicatif::ProgressBar),
}

impl Progress {
    fn start(enabled: bool, engine: Engine, n: u64) -> Progress {
        use std::io::IsTerminal as _;
        if !enabled {
            return Progress::Off;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { engine, n, k: 0 };
        }
        let bar = indicatif::ProgressBar::new(n);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:<8} [{bar:32}] {pos:>3}/{len:<3} {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(engine.name());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress::Bar(bar)
    }

    fn begin(&mut self, subject: &str) {
        if let Progress::Bar(bar) = self {
            bar.set_message(subject.to_string());
        }
    }

    fn done(&mut self, r: &Row) {
        match self {
            Progress::Off => {}
            Progress::Lines { engine, n, k } => {
                *k += 1;
                let _ = writeln!(
                    std::io::stderr(),
                    "[{:<8} {:>3}/{:<3}] {:<44} {}",
                    engine.name(),
                    k,
                    n,
                    r.subject,
                    verdict(r)
                );
            }
            Progress::Bar(bar) => {
                if !r.ok {
                    bar.println(format!("{:<44} {}", r.subject, verdict(r)));
                }
                bar.inc(1);
            }
        }
    }

    fn finish(self, rows: &[Row]) {
        if let Progress::Bar(bar) = self {
            let bad = rows.iter().filter(|r| !r.ok).count();
            let secs: f64 = rows.iter().map(|r| r.seconds).sum();
            bar.finish_with_message(format!("{} ok, {bad} not ({secs:.1}s)", rows.len() - bad));
            // The finished bar stays on its line, the cursor after it: move on.
            let _ = writeln!(std::io::stderr());
        }
    }
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
    if let Some(why) = &r.cut_short {
        panic!("{} on `{}` was cut short: {why}", engine.name(), r.subject);
    }
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
            "{} did NOT find {f} (a broken property {:?}) in `{}` after exploring {}: the \
             checker has regressed; what it found instead, if anything:\n{cx}",
            engine.name(),
            f.entry().breaks,
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
        "the flaw table does not name {} for {flaw}",
        engine.name()
    );
    assert_one(engine, &case.scenario, Expect::Found(flaw), shuttle);
    assert_one(engine, &flaws::fixed(&case), Expect::Holds, shuttle);
}

/// The properties a counterexample's problems name, by number: `(property N)`,
/// `property N (` and `(properties A-B)`, in the order they appear.
pub fn properties_named(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("propert") {
        let rest = &text[i..];
        let numbers = rest
            .strip_prefix("property ")
            .or_else(|| rest.strip_prefix("properties "))
            .unwrap_or("");
        let span: String = numbers
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        let mut ends = span.split('-').map(str::parse::<u8>);
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), None) => out.push(a),
            (Some(Ok(a)), Some(Ok(b))) => out.extend(a..=b),
            _ => {}
        }
    }
    out
}

/// Whether a counterexample shows `flaw`: one of its problems breaks a property the flaw's
/// table entry names (a flaw found by breaking something else is not that flaw found).
pub fn shows(flaw: Flaw, counterexample: &str) -> bool {
    properties_named(counterexample)
        .iter()
        .any(|p| flaw.entry().breaks.contains(p))
}

/// Runs one check of a [`plan`] and says whether it met its expectation.
pub fn row(engine: Engine, sc: &Scenario, expect: Expect, opts: &CheckOptions) -> Row {
    let Outcome {
        explored,
        seconds,
        counterexample,
        cut_short,
        coverage,
    } = run_one(engine, sc, opts);
    let pin = match engine {
        Engine::Explicit => pin_mismatch(&sc.name, explored, wide::PINNED),
        Engine::Loom | Engine::Shuttle => None,
    };
    let ok = cut_short.is_none()
        && pin.is_none()
        && match expect {
            Expect::Holds => counterexample.is_none(),
            Expect::Found(f) => counterexample.as_deref().is_some_and(|cx| shows(f, cx)),
        };
    Row {
        engine,
        subject: sc.name.clone(),
        expect,
        ok,
        explored,
        seconds,
        counterexample,
        cut_short,
        pin,
        coverage,
    }
}

/// How `states` differs from the count `pins` holds for the scenario `name`, if it has one.
pub fn pin_mismatch(name: &str, states: u64, pins: &str) -> Option<String> {
    let pinned = wide::pinned_in(pins, name)?;
    (pinned != states).then(|| {
        format!(
            "{states} reachable states, pinned {pinned}: if the change is meant, say why in \
             the commit and update {}",
            wide::PINS_PATH
        )
    })
}

/// A row's verdict in words: `as expected`, `FOUND …`, `CUT-SHORT …` and so on.
pub fn verdict(r: &Row) -> String {
    let word = match (r.expect, r.ok) {
        _ if r.cut_short.is_some() => "CUT-SHORT",
        _ if r.pin.is_some() => "CHANGED",
        (Expect::Holds, true) => "holds",
        (Expect::Holds, false) => "FAILS",
        (Expect::Found(_), true) => "found",
        (Expect::Found(_), false) if r.counterexample.is_some() => "MISMATCH",
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
    for r in rows {
        if let Some(why) = &r.cut_short {
            let _ = writeln!(
                out,
                "\n== CUT SHORT: {} on {}: {why}",
                r.engine.name(),
                r.subject
            );
        }
    }
    for r in rows {
        if let Some(why) = &r.pin {
            let _ = writeln!(out, "\n== STATE COUNT CHANGED: {}: {why}", r.subject);
        }
    }
    for r in rows.iter().filter(|r| r.counterexample.is_some()) {
        let head = match (r.expect, r.ok) {
            (Expect::Found(f), _) => format!(
                "counterexample for {f} ({}), found by {}",
                f.entry().title,
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
    out.push_str(&throughput(rows));
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

/// Each engine's total: what it explored, in how long, and how fast (states per second for
/// the explicit search, executions per second for loom and shuttle).
fn throughput(rows: &[Row]) -> String {
    let mut out = String::from("\n");
    for engine in Engine::ALL {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.engine == engine).collect();
        if mine.is_empty() {
            continue;
        }
        let explored: u64 = mine.iter().map(|r| r.explored).sum();
        let seconds: f64 = mine.iter().map(|r| r.seconds).sum();
        let unit = match engine {
            Engine::Explicit => "states",
            Engine::Loom | Engine::Shuttle => "executions",
        };
        let rate = if seconds > 0.0 {
            explored as f64 / seconds
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<8}  {explored} {unit} in {seconds:.2}s: {rate:.0} {unit}/s",
            engine.name()
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flaw_is_found_only_by_breaking_a_property_its_entry_names() {
        let hang = "hang (properties 7-11): every thread is blocked\nstep 1: body";
        let registry = "protocol invariant broken: property 6 (registry_holds_only_live): x";
        let slow = "teardown took 60s, over its bound of 2.6s (property 8)";
        assert_eq!(properties_named(hang), vec![7, 8, 9, 10, 11]);
        assert_eq!(properties_named(registry), vec![6]);
        assert_eq!(properties_named(&format!("{slow}\n{registry}")), vec![8, 6]);
        assert!(properties_named("nothing named here").is_empty());
        assert!(shows(Flaw::NoChannelAbortOnAbandon, hang));
        assert!(shows(Flaw::NoDeregistrationOnKill, registry));
        assert!(!shows(Flaw::NoDeregistrationOnKill, hang));
        assert!(!shows(Flaw::NoEscalation, registry));
        assert!(shows(Flaw::SerialTeardown, slow));
    }

    /// A search that stops at its state bound meets no expectation: not "holds" (it did not
    /// look everywhere) and not "found" (even if it saw a broken property on the way).
    #[test]
    fn a_search_cut_short_is_its_own_verdict_and_fails() {
        let cut = CheckOptions {
            max_states: 3,
            ..opts(&[Engine::Explicit], None, None)
        };
        let happy = scenario::canonical()
            .into_iter()
            .find(|s| s.name == "happy")
            .expect("the happy scenario");
        let r = row(Engine::Explicit, &happy, Expect::Holds, &cut);
        assert!(!r.ok, "a cut-short search was counted as holding");
        let why = r.cut_short.as_deref().expect("cut short");
        assert!(why.starts_with("explored 4 states, not all"), "{why}");
        assert!(verdict(&r).starts_with("CUT-SHORT"), "{}", verdict(&r));
        assert!(render(&[r]).contains("== CUT SHORT: explicit on happy"));

        let case = flaws::case_for(Flaw::NoEscalation);
        let r = row(
            Engine::Explicit,
            &case.scenario,
            Expect::Found(Flaw::NoEscalation),
            &cut,
        );
        assert!(!r.ok, "a cut-short search was counted as finding F9");
        assert!(verdict(&r).starts_with("CUT-SHORT"));
        // With its full bound the same search does find it: the verdict above is the cut.
        let full = opts(&[Engine::Explicit], None, None);
        let r = row(
            Engine::Explicit,
            &case.scenario,
            Expect::Found(Flaw::NoEscalation),
            &full,
        );
        assert!(r.ok && r.cut_short.is_none(), "{}", verdict(&r));
    }

    /// A wide scope's search that reaches another number of states than its pin fails,
    /// saying both numbers; a scenario without a pin is not compared.
    #[test]
    fn a_state_count_that_differs_from_its_pin_fails() {
        let pins = "four-exec-serves 100\n";
        assert_eq!(pin_mismatch("four-exec-serves", 100, pins), None);
        let why = pin_mismatch("four-exec-serves", 101, pins).expect("a mismatch");
        assert!(why.starts_with("101 reachable states, pinned 100"), "{why}");
        assert_eq!(pin_mismatch("happy", 27, pins), None);
    }

    fn opts(engines: &[Engine], flaw: Option<Flaw>, scenario: Option<&str>) -> CheckOptions {
        CheckOptions {
            engines: engines.to_vec(),
            flaw,
            scenario: scenario.map(str::to_string),
            progress: false,
            ..CheckOptions::default()
        }
    }

    fn rows(o: &CheckOptions) -> Vec<(Engine, String, Expect)> {
        plan(o)
            .into_iter()
            .map(|(e, s, x)| (e, s.name, x))
            .collect()
    }

    #[test]
    fn one_flaw_selects_only_its_rows_on_the_engines_flaws_md_names() {
        let f9 = Flaw::NoEscalation;
        let all = rows(&opts(&Engine::ALL, Some(f9), None));
        let engines: Vec<Engine> = all.iter().map(|r| r.0).collect();
        assert_eq!(
            engines,
            vec![Engine::Loom, Engine::Shuttle, Engine::Explicit]
        );
        assert!(
            all.iter()
                .all(|r| r.2 == Expect::Found(f9) && r.1 == "f9-no-escalation")
        );
        // F2 is loom's and shuttle's only.
        assert!(
            rows(&opts(
                &[Engine::Explicit],
                Some(Flaw::DestroyBeforeJoin),
                None
            ))
            .is_empty()
        );
    }

    #[test]
    fn one_scenario_and_one_engine_select_one_row() {
        let r = rows(&opts(&[Engine::Shuttle], None, Some("happy")));
        assert_eq!(
            r,
            vec![(Engine::Shuttle, "happy".to_string(), Expect::Holds)]
        );
        let r = rows(&opts(&[Engine::Explicit], None, Some("f9-no-escalation")));
        assert_eq!(
            r,
            vec![(
                Engine::Explicit,
                "f9-no-escalation".to_string(),
                Expect::Found(Flaw::NoEscalation)
            )]
        );
        assert!(rows(&opts(&Engine::ALL, None, Some("no-such-scenario"))).is_empty());
        // A flaw and a shipped scenario select nothing: --flaw drops shipped rows.
        assert!(rows(&opts(&Engine::ALL, Some(Flaw::NoEscalation), Some("happy"))).is_empty());
    }

    #[test]
    fn the_full_plan_groups_rows_by_engine_in_the_order_asked() {
        let r = rows(&opts(&[Engine::Explicit, Engine::Loom], None, None));
        let first_loom = r
            .iter()
            .position(|x| x.0 == Engine::Loom)
            .expect("loom rows");
        assert!(first_loom > 0);
        assert!(r[..first_loom].iter().all(|x| x.0 == Engine::Explicit));
        assert!(r[first_loom..].iter().all(|x| x.0 == Engine::Loom));
        let names = scenario_names(&[Engine::Explicit]);
        assert!(names.contains(&"happy".to_string()));
        assert!(!names.contains(&"f2-destroy-before-join".to_string()));
    }
}
