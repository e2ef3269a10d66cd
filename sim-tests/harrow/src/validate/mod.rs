//! `harrow validate`: real traces replayed against the model.
//!
//! A nursery's trace (written by `harrow-real` with its `trace` feature) is checked three
//! ways, and the first step that does not fit is reported with the numbered trace around it:
//!
//! - **determinism** ([`replay`]): the recorded user calls and operating-system answers are
//!   fed to a fresh driver and supervisor of the recorded configuration, which must ask the
//!   operating system for exactly what was recorded, in order, and queue the same events;
//! - **the operating system** ([`rules`]): what the system reported is something the
//!   simulated kernel could report (no bytes after end-of-file, one end-of-file and one exit
//!   per child, nothing for a retired child, no reap before an exit or a kill, no deadline
//!   before its time), and, with the children's own traces, that an end-of-file came only
//!   after the child wrote its last line and that each channel's bytes arrived as sent
//!   ([`cross`]);
//! - **the properties**: the model's per-step invariants after every step, and the liveness
//!   bounds in the trace's real time (teardown within cancel-ack + grace + drain + ε, boot
//!   within its timeout + ε).

mod cross;
mod replay;
mod rules;
mod show;

use std::fmt;
use std::path::Path;

use harrow_model::trace::{Line, Record, VERSION};

pub use replay::EPSILON;

/// A trace read from a file.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where it was read from.
    pub path: String,
    /// Its lines, in order.
    pub lines: Vec<Line>,
}

/// Which kind of process wrote a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A nursery.
    Nursery,
    /// A child.
    Child,
}

impl Trace {
    /// Reads and parses the trace at `path`.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        Trace::parse(&path.display().to_string(), &text)
    }

    /// Parses a trace's text; `path` names it in messages.
    pub fn parse(path: &str, text: &str) -> Result<Trace, String> {
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<Line>(l).map_err(|e| {
                    format!("{path}:{}: not a trace line ({e}); was it written by harrow-real's trace feature?", i + 1)
                })
            })
            .collect::<Result<Vec<Line>, String>>()?;
        let trace = Trace {
            path: path.into(),
            lines,
        };
        trace.kind()?;
        Ok(trace)
    }

    /// What wrote it, from its first line; `Err` if that is no header of this version.
    pub fn kind(&self) -> Result<Kind, String> {
        let (kind, version) = match self.lines.first().map(|l| &l.rec) {
            Some(Record::Open { version, .. }) => (Kind::Nursery, *version),
            Some(Record::ChildStart { version, .. }) => (Kind::Child, *version),
            _ => {
                return Err(format!(
                    "{}: its first line is no trace header (`open` or `child_start`)",
                    self.path
                ));
            }
        };
        if version != VERSION {
            return Err(format!(
                "{}: written in trace format {version}; this harrow reads format {VERSION}",
                self.path
            ));
        }
        Ok(kind)
    }

    /// The text of the trace as written back (for doctoring it in tests).
    pub fn to_text(&self) -> String {
        self.lines
            .iter()
            .map(|l| serde_json::to_string(l).expect("a line serializes") + "\n")
            .collect()
    }
}

/// The first step of a trace that does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Its line number, from 1 (the header).
    pub step: usize,
    /// The rule it breaks.
    pub rule: &'static str,
    /// What was recorded and what was expected.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {} [{}]", self.step, self.message, self.rule)
    }
}

/// The verdict on one trace.
#[derive(Debug)]
pub struct Verdict {
    /// The trace's path.
    pub path: String,
    /// Its steps.
    pub steps: usize,
    /// The child traces checked against it (a nursery's), or 0.
    pub children: usize,
    /// `Err` with the first step that does not fit.
    pub result: Result<(), Failure>,
}

/// Checks every trace: each nursery's by replay, with the traces of the children it
/// launched (matched by pid and time); each child's by its own rules.
pub fn validate(traces: &[Trace]) -> Vec<Verdict> {
    let children: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.kind() == Ok(Kind::Child))
        .collect();
    let children = cross::by_pid(&children);
    traces
        .iter()
        .map(|t| match t.kind() {
            Ok(Kind::Nursery) => {
                match replay::replay(t).and_then(|()| cross::check(t, &children)) {
                    Ok(matched) => verdict(t, matched, Ok(())),
                    Err(f) => verdict(t, 0, Err(f)),
                }
            }
            _ => verdict(t, 0, rules::check_child(t)),
        })
        .collect()
}

fn verdict(t: &Trace, children: usize, result: Result<(), Failure>) -> Verdict {
    Verdict {
        path: t.path.clone(),
        steps: t.lines.len(),
        children,
        result,
    }
}

/// The steps of `trace` around `step`, numbered, the failing one marked: what
/// `harrow validate` prints under a failure.
pub fn around(trace: &Trace, step: usize) -> String {
    const BEFORE: usize = 8;
    const AFTER: usize = 2;
    let max_frame = match trace.lines.first().map(|l| &l.rec) {
        Some(Record::Open { config, .. }) => config.max_frame,
        _ => harrow_model::wire::DEFAULT_MAX_FRAME,
    };
    let from = step.saturating_sub(BEFORE).max(1);
    let to = (step + AFTER).min(trace.lines.len());
    let t0 = trace.lines.first().map_or(0, |l| l.t);
    (from..=to)
        .map(|n| {
            let line = &trace.lines[n - 1];
            let mark = if n == step { ">>" } else { "  " };
            let ms = line.t.saturating_sub(t0) as f64 / 1e6;
            format!(
                "{mark} {n:>5} {ms:>10.3}ms  {}\n",
                show::record(&line.rec, max_frame)
            )
        })
        .collect()
}

/// `harrow validate PATH...`: checks every trace (a folder: every `.ndjson` in it), prints
/// a line per trace and each failure with the numbered trace around it. 0 when every trace
/// fits, 1 when one does not, 2 when one cannot be read.
pub fn command(paths: &[std::path::PathBuf]) -> std::process::ExitCode {
    let traces = match load_all(paths) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("harrow validate: {e}");
            return crate::exit::usage();
        }
    };
    let verdicts = validate(&traces);
    let mut failed = 0;
    for (v, t) in verdicts.iter().zip(&traces) {
        match &v.result {
            Ok(()) if v.children > 0 => println!(
                "ok    {} ({} steps, {} child traces matched)",
                v.path, v.steps, v.children
            ),
            Ok(()) => println!("ok    {} ({} steps)", v.path, v.steps),
            Err(f) => {
                failed += 1;
                println!("FAIL  {}\n      {f}\n{}", v.path, around(t, f.step));
            }
        }
    }
    let nurseries = traces
        .iter()
        .filter(|t| t.kind() == Ok(Kind::Nursery))
        .count();
    println!(
        "{} traces ({nurseries} nurseries, {} children): {}",
        traces.len(),
        traces.len() - nurseries,
        if failed == 0 {
            "all fit the model".to_string()
        } else {
            format!("{failed} do not fit")
        }
    );
    crate::exit::verdict(failed == 0)
}

/// Every trace named: a file, or the `.ndjson` files under a folder (and its folders), in
/// name order.
pub(crate) fn load_all(paths: &[std::path::PathBuf]) -> Result<Vec<Trace>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files_under(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err("no traces given (no .ndjson file in the folders named)".into());
    }
    files.iter().map(|f| Trace::load(f)).collect()
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let mut inside: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot list it: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    inside.sort();
    for p in inside {
        if p.is_dir() {
            files_under(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "ndjson") {
            out.push(p);
        }
    }
    Ok(())
}
