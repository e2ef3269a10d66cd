//! The `harrow` command: model-check the protocol, print its scenarios and tables.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use harrow::exit;
use harrow_model::Flaw;
use harrow_sim::check::{self, CheckOptions};
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::{self, Engine};
use harrow_sim::{corpus, run, scenario, table};

/// harrow: a spawn / cancel / teardown protocol, checked for hangs and races.
#[derive(Debug, Parser)]
#[command(name = "harrow", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every engine over the shipped protocol and every flaw; exit 1 unless the
    /// protocol holds everywhere and every flaw is found.
    ///
    /// Progress goes to stderr: a bar per engine on a terminal, one line per check when
    /// stderr is not a terminal (CI logs). The table and every counterexample go to stdout.
    /// The selections combine: `--engine` (repeatable) picks engines, `--flaw` keeps only
    /// that flaw's rows (no shipped-protocol rows), `--scenario` keeps only rows of that
    /// scenario; a selection that matches nothing exits 2 and lists the scenario names.
    #[command(after_help = "Examples:\n  \
        harrow check                                  every engine, every scenario and flaw\n  \
        harrow check --engine explicit                the explicit-state search only\n  \
        harrow check --engine shuttle --engine loom   two engines\n  \
        harrow check --flaw 9                         F9 on every engine named for it\n  \
        harrow check --engine shuttle --scenario tree-3-sigint --shuttle-random 20000\n  \
        harrow check --quiet > report.txt             no progress, table only\n  \
        harrow check --coverage                       and which protocol-table cells were reached\n  \
        harrow check --engine explicit --wide         every wide scope, against its pinned count\n  \
        harrow check --quick                          every row at a budget of seconds")]
    Check(CheckArgs),
    /// Run the canonical scenarios in the pure world and print their traces.
    Scenarios {
        /// Only the scenario with this name.
        name: Option<String>,
    },
    /// Print the child lifecycle's state x input table and its dot graph.
    Table,
    /// List the flaw catalogue: each flaw, the properties it breaks, the engines that must
    /// find it and its scenario.
    #[command(after_help = "Examples:\n  \
        harrow flaws                              one line per flaw\n  \
        harrow flaws --markdown > model/FLAWS.md  regenerate the catalogue page")]
    Flaws {
        /// Print the whole catalogue page (`model/FLAWS.md`) as Markdown instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Replay a corpus entry and print its trace as numbered steps; given a folder, replay
    /// every entry under it and print a table. Exit 0 when every expectation is met, 1 when
    /// not, 2 when an entry is stale or invalid.
    Replay {
        /// An entry (`corpus/<engine>/<NNNN>-<slug>.json`) or a corpus folder.
        path: PathBuf,
    },
    /// Make corpus entries.
    #[command(subcommand)]
    Corpus(CorpusCommand),
    /// Run the real backend's smoke scenarios (tractor's test scenarios and the expected
    /// failures) under each spawn method they apply to. Exit 0 when each had its expected
    /// outcome, expected failures included; 1 when one did not; 2 on a usage error.
    #[command(after_help = "Examples:\n  \
        harrow smoke --list                                  the scenarios and their methods\n  \
        harrow smoke --all                                   every scenario, every method\n  \
        harrow smoke --scenario never-yields                 one scenario, every method\n  \
        harrow smoke --scenario never-yields --method exec   one scenario, one method")]
    Smoke(SmokeCli),
    /// Measure the real backend: each figure of sim-tests/harrow/PERF.md beside its raw
    /// baseline from the same run, their ratio and the target. Exit 1 if a target is missed.
    #[command(
        after_help = "The trace points' cost when tracing is off, in one run:\n  \
        cargo build --profile perf -p harrow --no-default-features\n  \
        cp target/perf/harrow /tmp/harrow-untraced\n  \
        cargo build --profile perf -p harrow\n  \
        target/perf/harrow bench --against /tmp/harrow-untraced --rounds 15"
    )]
    Bench {
        /// Timed rounds for each spawn figure (request/reply gets ten times as many); with
        /// --against, the alternating rounds of each figure.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        /// Instead of the table: each hot figure with the trace points compiled in (tracing
        /// off) beside the same figure measured, alternately, by the harrow at this path,
        /// built `--no-default-features` (compiled out).
        #[arg(long)]
        against: Option<PathBuf>,
    },
    /// Measure batches of a hot figure on request, for `harrow bench --against` (internal).
    #[command(hide = true)]
    BenchPeer,
    /// Soak the real backend: spawn → request → teardown cycles per spawn method (a fresh
    /// nursery each cycle, and one long-lived nursery), bounded in count and time. Prints
    /// descriptors, zombies, threads and resident memory after the first window and at the
    /// end, and the median cycle time of the first and last window (1000 cycles at most);
    /// exit 1 if anything grew or the last window is over 1.2x slower.
    #[command(after_help = "Examples:\n  \
        harrow soak --cycles 10000                       every process method, both runs\n  \
        harrow soak --cycles 2000 --method fork          one method\n  \
        harrow soak --cycles 10000 --no-long-lived       fresh nurseries only")]
    Soak(SoakArgs),
    /// Check traces of real runs (written with HARROW_TRACE_DIR set, see real/README.md)
    /// against the model: each nursery's replayed on a fresh supervisor (determinism), what
    /// the kernel reported against the simulated kernel's rules, the invariants after every
    /// step and the liveness bounds in real time. Exit 0 when every trace fits, 1 when one
    /// does not (its first failing step is printed in the numbered trace), 2 when one cannot
    /// be read.
    #[command(after_help = "Examples:\n  \
        harrow smoke --all --trace /tmp/t && harrow validate /tmp/t/*\n  \
        harrow validate /tmp/t                         every .ndjson in the folder")]
    Validate {
        /// Trace files, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CorpusCommand {
    /// Regenerate the seeded entries: each flaw's minimised counterexample (ids 1-14), then
    /// the shipped protocol's passing schedules (ids 15 on).
    Seed {
        /// The corpus folder.
        #[arg(long, default_value = corpus::DIR)]
        dir: PathBuf,
    },
    /// Run an engine over a scenario and write what it finds as a new entry: the failure
    /// (expect found), or a schedule the protocol passes (expect passes).
    Add(AddArgs),
    /// Turn a real nursery's trace (written with HARROW_TRACE_DIR) into a `world` entry the
    /// simulator replays: the scenario it is a run of, and the world's choices that give each
    /// child the trace's commands. Expects `passes` if the trace fits `harrow validate`,
    /// `found` if it does not and the world breaks the same way; otherwise says why not.
    #[command(after_help = "Examples:\n  \
        harrow smoke --scenario serve-crash-stuck --method fork --trace /tmp/t\n  \
        harrow corpus from-trace /tmp/t/nursery-*.ndjson --dir /tmp/corpus")]
    FromTrace {
        /// Nursery traces, or folders of traces; the children's traces are read from the
        /// `children` folder beside each.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// The corpus folder.
        #[arg(long, default_value = corpus::DIR)]
        dir: PathBuf,
        /// The entry's scenario name and file slug (default: `trace-<the trace's file name>`).
        #[arg(long)]
        slug: Option<String>,
    },
}

/// `harrow check`'s options.
#[derive(Debug, Args)]
struct CheckArgs {
    /// Only this engine (loom, shuttle, explicit); repeat for several.
    #[arg(long = "engine", value_parser = parse_engine)]
    engines: Vec<Engine>,
    /// Only this flaw, by number (see `harrow flaws`); no shipped-protocol rows.
    #[arg(long, value_parser = parse_flaw)]
    flaw: Option<Flaw>,
    /// Only the scenario with this name.
    #[arg(long)]
    scenario: Option<String>,
    /// Random schedules per scenario for shuttle.
    #[arg(long, default_value_t = ShuttleBudget::default().random)]
    shuttle_random: usize,
    /// PCT schedules per scenario for shuttle.
    #[arg(long, default_value_t = ShuttleBudget::default().pct)]
    shuttle_pct: usize,
    /// The seed of shuttle's schedulers (vary it for long runs).
    #[arg(long, default_value_t = ShuttleBudget::default().seed)]
    shuttle_seed: u64,
    /// The most states one explicit search may visit; a search that reaches it is
    /// reported CUT-SHORT and fails the check.
    #[arg(long, default_value_t = harrow_sim::explicit::MAX_STATES)]
    max_states: usize,
    /// Every wide scope for the explicit engine (three children x every pair of behaviours
    /// x every fault and method; four children x every behaviour and method), not only
    /// CI's subset; each count is checked against its pin.
    #[arg(long)]
    wide: bool,
    /// Write the explicit searches' counts of the wide scopes that ran as the new pins
    /// (sim-tests/wide-states.txt; run from the workspace's root, with --wide).
    #[arg(long, requires = "wide")]
    write_pins: bool,
    /// Every row at a budget of seconds, for use while editing the protocol: no wide
    /// scopes, 40 random and 40 PCT shuttle schedules per scenario, loom at a preemption
    /// bound of at most 1. The full check stays the verdict.
    #[arg(long, conflicts_with_all = ["wide", "shuttle_random", "shuttle_pct"])]
    quick: bool,
    /// No progress bars or lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// After the table, the coverage of the protocol's two state × input tables by the
    /// shipped-protocol rows: per engine and in union, the cells never reached, and the
    /// cells no run can reach with the reason.
    #[arg(long)]
    coverage: bool,
}

/// `harrow smoke`'s options.
#[derive(Debug, Args)]
struct SmokeCli {
    /// List the scenarios, what each expects, and the methods it runs under.
    #[arg(long)]
    list: bool,
    /// Run every scenario.
    #[arg(long, conflicts_with = "scenario")]
    all: bool,
    /// Run the scenario with this name.
    #[arg(long)]
    scenario: Option<String>,
    /// Only under this spawn method: fork, fork-server, exec or thread.
    #[arg(long)]
    method: Option<String>,
    /// Write the run's traces (every nursery's and every child's) to this folder, for
    /// `harrow validate`: the run is re-executed with HARROW_TRACE_DIR set to it.
    #[arg(long)]
    trace: Option<PathBuf>,
}

/// `harrow soak`'s options.
#[derive(Debug, Args)]
struct SoakArgs {
    /// Cycles per run.
    #[arg(long, default_value_t = 10_000)]
    cycles: usize,
    /// Only this spawn method (fork, fork-server, exec, thread); default: the three
    /// process methods.
    #[arg(long)]
    method: Option<String>,
    /// Skip the long-lived-nursery runs.
    #[arg(long)]
    no_long_lived: bool,
    /// Stop each run after this many seconds, finished or not.
    #[arg(long, default_value_t = 600)]
    time_limit: u64,
}

/// `harrow corpus add`'s options.
#[derive(Debug, Args)]
struct AddArgs {
    /// shuttle, explicit or world.
    #[arg(long, value_parser = corpus::Kind::parse)]
    engine: corpus::Kind,
    /// A scenario by name: canonical, loom matrix, large, or a flaw's case (`f9-...`).
    #[arg(long, conflicts_with = "from")]
    scenario: Option<String>,
    /// The scenario of this entry or scenario JSON file.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Shuttle's seed (else several are tried), or the world's picker seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Delete the --from entry and give the new one its id: re-minimising a stale entry.
    #[arg(long, requires = "from")]
    replace: bool,
    /// The one-line postmortem, instead of the default.
    #[arg(long)]
    postmortem: Option<String>,
    /// The corpus folder (default: with --replace, the --from entry's; else the
    /// workspace's).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn parse_engine(s: &str) -> Result<Engine, String> {
    Engine::ALL
        .into_iter()
        .find(|e| e.name() == s)
        .ok_or_else(|| format!("unknown engine `{s}`: use loom, shuttle or explicit"))
}

fn parse_flaw(s: &str) -> Result<Flaw, String> {
    let n: u8 = s
        .trim_start_matches(['F', 'f'])
        .parse()
        .map_err(|_| format!("`{s}` is not a flaw number"))?;
    Flaw::from_number(n).ok_or_else(|| {
        format!(
            "there is no flaw F{n}: flaws are numbered 1 to {}",
            Flaw::COUNT
        )
    })
}

fn main() -> ExitCode {
    // First: `smoke` re-executes this binary (Exec children, the fork server, and the
    // scenarios' parent processes), and the re-executed process finds its role here.
    harrow_real::init(harrow::smoke::registry().merge(harrow::bench::registry()));
    if let Some(code) = harrow::smoke::run_parent_role() {
        return code;
    }
    match Cli::parse().command {
        Some(Command::Check(args)) => check(args),
        Some(Command::Table) => {
            let explored = table::explore();
            print!(
                "{}\n{}",
                table::render_table(&explored),
                table::render_dot(&explored)
            );
            ExitCode::SUCCESS
        }
        Some(Command::Flaws { markdown }) => {
            if markdown {
                print!("{}", flaws::render_markdown());
            } else {
                print!("{}", flaws::render_list());
            }
            ExitCode::SUCCESS
        }
        Some(Command::Scenarios { name }) => scenarios(name.as_deref()),
        Some(Command::Replay { path }) => replay(&path),
        Some(Command::Corpus(CorpusCommand::Seed { dir })) => corpus_seed(&dir),
        Some(Command::Corpus(CorpusCommand::Add(args))) => corpus_add(args),
        Some(Command::Corpus(CorpusCommand::FromTrace { traces, dir, slug })) => {
            harrow::fromtrace::command(&traces, &dir, slug.as_deref())
        }
        Some(Command::Smoke(args))
            if args.trace.is_some() && !tracing_to(args.trace.as_deref()) =>
        {
            traced_again(args.trace.as_deref().unwrap_or(std::path::Path::new(".")))
        }
        Some(Command::Smoke(args)) => harrow::smoke::smoke(&harrow::smoke::SmokeArgs {
            list: args.list,
            all: args.all,
            scenario: args.scenario,
            method: args.method,
        }),
        Some(Command::Bench {
            rounds,
            against: Some(path),
        }) => bench_against(&path, rounds),
        Some(Command::Bench { rounds, .. }) => bench(rounds),
        Some(Command::BenchPeer) => harrow::bench::traceoff::serve(),
        Some(Command::Soak(args)) => soak(&args),
        Some(Command::Validate { paths }) => harrow::validate::command(&paths),
        None => scenarios(None),
    }
}

/// Whether this process already writes its traces to `dir`.
fn tracing_to(dir: Option<&std::path::Path>) -> bool {
    std::env::var_os(harrow_real::trace::DIR_VAR)
        .is_some_and(|d| Some(std::path::Path::new(&d)) == dir)
}

/// Runs this command again with tracing on into `dir` (tracing is read from the
/// environment, once, and every process of the run inherits it), and exits as it did.
fn traced_again(dir: &std::path::Path) -> ExitCode {
    if !cfg!(feature = "trace") {
        eprintln!(
            "harrow smoke: --trace needs the trace points, and this harrow was built without \
             them (--no-default-features): build it with its default features"
        );
        return exit::usage();
    }
    let run = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(harrow_real::trace::DIR_VAR, dir)
            .status()
    });
    match run {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("harrow smoke: cannot run the traced smoke run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let base = if args.quick {
        CheckOptions::quick()
    } else {
        CheckOptions {
            shuttle: ShuttleBudget {
                random: args.shuttle_random,
                pct: args.shuttle_pct,
                ..ShuttleBudget::default()
            },
            wide: args.wide,
            ..CheckOptions::default()
        }
    };
    let opts = CheckOptions {
        engines: if args.engines.is_empty() {
            base.engines.clone()
        } else {
            args.engines
        },
        flaw: args.flaw,
        scenario: args.scenario,
        shuttle: ShuttleBudget {
            seed: args.shuttle_seed,
            ..base.shuttle
        },
        max_states: args.max_states,
        progress: !args.quiet,
        ..base
    };
    let rows = check::run(&opts);
    check::flush();
    if args.write_pins {
        return write_pins(&rows);
    }
    if rows.is_empty() {
        eprintln!(
            "harrow: nothing matched the selection; the selected engines check: {}",
            check::scenario_names(&opts.engines).join(", ")
        );
        return exit::usage();
    }
    print!("{}", check::render(&rows));
    if args.coverage {
        print!(
            "\n{}",
            harrow_sim::coverage::render(&harrow_sim::coverage::by_engine(&rows))
        );
    }
    exit::verdict(check::all_ok(&rows))
}

/// Writes the wide scopes' state counts from `rows` as the new pins.
fn write_pins(rows: &[check::Row]) -> ExitCode {
    let wide: Vec<String> = harrow_sim::wide::all()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let counts: Vec<(String, u64)> = rows
        .iter()
        .filter(|r| r.engine == Engine::Explicit && r.cut_short.is_none())
        .filter(|r| wide.contains(&r.subject))
        .map(|r| (r.subject.clone(), r.explored))
        .collect();
    let path = harrow_sim::wide::PINS_PATH;
    match std::fs::write(path, harrow_sim::wide::render_pins(&counts)) {
        Ok(()) => {
            println!("wrote {} pins to {path}", counts.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("harrow: cannot write {path}: {e}; run from the workspace's root");
            ExitCode::FAILURE
        }
    }
}

fn corpus_seed(dir: &std::path::Path) -> ExitCode {
    match corpus::seed(dir, |p| eprintln!("wrote {}", p.display())) {
        Ok(paths) => {
            println!("{} seeded entries in {}", paths.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("harrow: {e}");
            ExitCode::FAILURE
        }
    }
}

fn corpus_add(args: AddArgs) -> ExitCode {
    let opts = corpus::AddOptions {
        kind: args.engine,
        scenario: args.scenario,
        from: args.from,
        seed: args.seed,
        replace: args.replace,
        postmortem: args.postmortem,
        dir: args.dir,
    };
    match corpus::add(&opts) {
        Ok(path) => {
            print!("{}", corpus::describe(&corpus::replay_file(&path)));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("harrow: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(rounds: usize) -> ExitCode {
    match harrow::bench::run(rounds) {
        Ok((figures, notes)) => {
            print!("{}", harrow::bench::render(&figures, &notes));
            exit::verdict(figures.iter().all(|f| f.meets() != Some(false)))
        }
        Err(e) => {
            eprintln!("harrow bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench_against(path: &std::path::Path, rounds: usize) -> ExitCode {
    match harrow::bench::traceoff::run(path, rounds) {
        Ok((figures, notes)) => {
            print!("{}", harrow::bench::render(&figures, &notes));
            exit::verdict(figures.iter().all(|f| f.meets() != Some(false)))
        }
        Err(e) => {
            eprintln!("harrow bench --against: {e}");
            exit::usage()
        }
    }
}

fn soak(args: &SoakArgs) -> ExitCode {
    use harrow_model::SpawnMethod;
    let methods = match args.method.as_deref().map(harrow::smoke::parse_method) {
        None => vec![
            SpawnMethod::Fork,
            SpawnMethod::ForkServer,
            SpawnMethod::Exec,
        ],
        Some(Some(m)) => vec![m],
        Some(None) => {
            eprintln!("harrow soak: unknown method; use fork, fork-server, exec or thread");
            return exit::usage();
        }
    };
    let opts = harrow::soak::SoakOptions {
        cycles: args.cycles,
        methods,
        long_lived: !args.no_long_lived,
        time_limit: std::time::Duration::from_secs(args.time_limit),
        progress: true,
    };
    let runs = harrow::soak::run(&opts);
    print!("{}", harrow::soak::render(&runs));
    exit::verdict(runs.iter().all(|r| r.problems().is_empty()))
}

fn scenarios(only: Option<&str>) -> ExitCode {
    let all = scenario::canonical();
    let chosen: Vec<_> = all
        .iter()
        .filter(|s| only.is_none_or(|n| s.name == n))
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "harrow: no scenario named `{}`; known: {}",
            only.unwrap_or(""),
            names.join(", ")
        );
        return exit::usage();
    }
    let mut failed = 0;
    for sc in chosen {
        let r = run::deterministic(sc);
        println!("== {sc}");
        for line in &r.trace {
            println!("{line}");
        }
        let took = r
            .report
            .duration()
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|| "-".into());
        let verdict = if r.holds() {
            "holds".to_string()
        } else {
            format!("FAILS: {:?}", r.problems)
        };
        println!(
            "-- {} steps, teardown took {took} (bound {:?}), {} errors reported: {verdict}\n",
            r.steps,
            sc.teardown_bound(),
            r.report.errors.len()
        );
        failed += usize::from(!r.holds());
    }
    exit::verdict(failed == 0)
}

fn replay(path: &std::path::Path) -> ExitCode {
    let reports = if path.is_dir() {
        let reports = corpus::replay_dir(path);
        print!("{}", corpus::render(&reports));
        for r in reports.iter().filter(|r| r.result.is_err()) {
            println!("\n{}", corpus::describe(r));
        }
        reports
    } else {
        let r = corpus::replay_file(path);
        print!("{}", corpus::describe(&r));
        vec![r]
    };
    let stale = reports.iter().any(|r| {
        r.replayed
            .as_ref()
            .is_none_or(|x| matches!(x.verdict, corpus::Verdict::Stale(_)))
    });
    if stale {
        exit::usage()
    } else {
        exit::verdict(reports.iter().all(|r| r.result.is_ok()) && !reports.is_empty())
    }
}
