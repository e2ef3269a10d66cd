//! The `harrow` command: runs the protocol's scenarios and prints what happened.

use std::process::ExitCode;

use harrow_sim_tests::{run, scenario};

const USAGE: &str = "usage: harrow [scenarios [NAME]]

  scenarios [NAME]   run the protocol's canonical scenarios (or the one named) in the
                     pure world, print each trace, and check the properties";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("scenarios") => scenarios(args.get(1).map(String::as_str)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("harrow: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
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
