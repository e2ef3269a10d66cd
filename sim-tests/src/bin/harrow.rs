//! The `harrow` command: model-check the protocol, print its scenarios and tables.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harrow_model::Flaw;
use harrow_sim_tests::check::{self, CheckOptions};
use harrow_sim_tests::engine::ShuttleBudget;
use harrow_sim_tests::flaws::Engine;
use harrow_sim_tests::{run, scenario, table};

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
    Check {
        /// Only this engine (loom, shuttle, explicit); repeat for several.
        #[arg(long = "engine", value_parser = parse_engine)]
        engines: Vec<Engine>,
        /// Only this flaw, by number (1-14); no shipped-protocol rows.
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
        /// No progress lines on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Run the canonical scenarios in the pure world and print their traces.
    Scenarios {
        /// Only the scenario with this name.
        name: Option<String>,
    },
    /// Print the child lifecycle's state x input table and its dot graph.
    Table,
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
    Flaw::from_number(n).ok_or_else(|| format!("there is no flaw F{n}: flaws are numbered 1 to 14"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check {
            engines,
            flaw,
            scenario,
            shuttle_random,
            shuttle_pct,
            quiet,
        }) => {
            let opts = CheckOptions {
                engines: if engines.is_empty() {
                    Engine::ALL.to_vec()
                } else {
                    engines
                },
                flaw,
                scenario,
                shuttle: ShuttleBudget {
                    random: shuttle_random,
                    pct: shuttle_pct,
                    ..ShuttleBudget::default()
                },
                progress: !quiet,
            };
            let rows = check::run(&opts);
            check::flush();
            print!("{}", check::render(&rows));
            if rows.is_empty() {
                eprintln!("harrow: nothing matched the selection");
                return ExitCode::from(2);
            }
            if check::all_ok(&rows) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Table) => {
            let explored = table::explore();
            print!(
                "{}\n{}",
                table::render_table(&explored),
                table::render_dot(&explored)
            );
            ExitCode::SUCCESS
        }
        Some(Command::Scenarios { name }) => scenarios(name.as_deref()),
        None => scenarios(None),
    }
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
        return ExitCode::from(2);
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
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
