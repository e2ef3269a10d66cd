//! `harrow corpus from-trace`: a real nursery's trace becomes a corpus entry the simulator
//! replays, so that a run seen in production becomes a checked regression.
//!
//! The trace is read as a [`Scenario`] (module `infer`): the nursery's timeouts, each child's
//! spawn method, role and a behaviour that does what the child did as its parent saw it
//! (answered its requests, failed them, failed its main, crashed before or after its
//! handshake with its code, ignored its cancel and was killed, ...), the requests and the
//! ending. The pure world of that scenario is then searched (module `search`) for the choices
//! whose parent gives each child the trace's commands and hears from it what the trace's
//! heard, in the trace's order, to the end of the run. The entry is a `world` entry on those
//! choices: it expects `passes` when the trace fits `harrow validate`, and `found` with the
//! property that broke when it does not and the world breaks it too. Before it is written
//! the entry is replayed as `harrow replay` replays it, and its parent's commands compared
//! with the trace's, child by child.
//!
//! What cannot become an entry is a [`Refusal`] saying why: a child that did what no
//! behaviour does, a user's call the scenario's body never makes, a trace no schedule of the
//! world reproduces, or a failure the simulator cannot reproduce.

mod infer;
mod search;
mod seen;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use harrow_model::ChildId;
use harrow_model::trace::Record;
use harrow_sim::corpus::{self, Entry, Expect, Kind, Schedule, Verdict};
use harrow_sim::scenario::Scenario;
use harrow_sim::world::{Choice, World};

pub use seen::Seen;

use crate::validate::{self, Trace};

/// Why a trace did not become an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The traces cannot be used as given (unreadable, no nursery, cut short).
    Input(String),
    /// A child did something no behaviour of the scenario language does.
    Inexpressible(String),
    /// The nursery's user made a call the scenario's body never makes.
    Body(String),
    /// No schedule of the simulator does what the trace's parent did.
    NoSchedule(String),
    /// The trace does not fit the model, and the simulator does not break it the same way.
    NotReproduced(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Input(e) => write!(f, "cannot use the traces: {e}"),
            Refusal::Inexpressible(e) => {
                write!(f, "a child cannot be expressed as a scenario: {e}")
            }
            Refusal::Body(e) => write!(f, "the nursery's body cannot be expressed: {e}"),
            Refusal::NoSchedule(e) => {
                write!(f, "the simulator cannot reproduce the trace: {e}")
            }
            Refusal::NotReproduced(e) => {
                write!(f, "the simulator cannot reproduce the trace's failure: {e}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// An entry made from a trace, and what was checked of it.
#[derive(Debug)]
pub struct Made {
    /// The entry.
    pub entry: Entry,
    /// `None` if the replay also follows the trace's events and its order across children;
    /// else why only each child's commands, in order, could be followed.
    pub order: Option<String>,
    /// How many commands the replay's parent gave, all equal to the trace's.
    pub commands: usize,
}

/// The name of a record's operation, as a trace writes it.
fn op(rec: &Record) -> String {
    serde_json::to_value(rec)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(String::from))
        .unwrap_or_default()
}

/// Makes an entry of the nursery trace `nursery`, with the children's traces `children`
/// (for `harrow validate`'s cross-checks), for a scenario named `name`.
pub fn make(nursery: &Trace, children: &[Trace], name: &str) -> Result<Made, Refusal> {
    let inferred = infer::infer(nursery, name)?;
    let sc = inferred.scenario;
    sc.check().map_err(Refusal::Body)?;
    let fits = fits(nursery, children);
    let strict = search::Target::new(&inferred.seen, true);
    let (schedule, order) = match search::search(&sc, &strict) {
        Ok(s) => (s, None),
        Err(strict_why) => {
            let loose = search::Target::new(&inferred.seen, false);
            let s = search::search(&sc, &loose).map_err(|why| {
                Refusal::NoSchedule(format!(
                    "with its events: {strict_why}; with its commands only: {why}"
                ))
            })?;
            (s, Some(strict_why))
        }
    };
    let commands = same_commands(&sc, &schedule, &inferred.seen)?;
    let entry = entry(nursery, &sc, schedule, &fits, order.is_none())?;
    Ok(Made {
        entry,
        order,
        commands,
    })
}

/// `Ok` if the trace fits `harrow validate`, else its first failure.
fn fits(nursery: &Trace, children: &[Trace]) -> Result<(), String> {
    let mut all = vec![nursery.clone()];
    all.extend(children.iter().cloned());
    let verdicts = validate::validate(&all);
    match verdicts.into_iter().next().map(|v| v.result) {
        Some(Err(f)) => Err(f.to_string()),
        _ => Ok(()),
    }
}

/// The entry on `schedule`: replayed as `harrow replay` does, its expectation set from
/// whether the trace fits, and met.
fn entry(
    nursery: &Trace,
    sc: &Scenario,
    schedule: Vec<Choice>,
    fits: &Result<(), String>,
    same_order: bool,
) -> Result<Entry, Refusal> {
    let mut entry = Entry {
        engine: Kind::World,
        flaw: None,
        expect: Expect::Passes,
        found_at: corpus::git_head(),
        postmortem: String::new(),
        seed: None,
        scenario: sc.clone(),
        schedule: Schedule::Choices(schedule),
    };
    let replayed = entry.replay();
    let order = if same_order {
        "in the trace's order"
    } else {
        "each child's commands in the trace's order (not the order across children)"
    };
    let file = Path::new(&nursery.path)
        .file_name()
        .map_or(nursery.path.clone(), |f| f.to_string_lossy().into_owned());
    let children = describe_children(sc);
    match (&replayed.verdict, fits) {
        (Verdict::Passes, Ok(())) => {
            entry.postmortem = format!(
                "from the real trace {file}, which fits the model: {children}, ending {:?}; the \
                 world replays it {order} and every property holds",
                sc.ending
            );
        }
        (Verdict::Reproduced, Err(why)) => {
            let first = replayed.problems.first().cloned().unwrap_or_default();
            entry.expect = Expect::Found(corpus::key(&first));
            entry.postmortem = format!(
                "from the real trace {file}, which does not fit the model ({why}): {children}; \
                 the world replays it {order} and breaks: {first}"
            );
        }
        (Verdict::Passes, Err(why)) => {
            return Err(Refusal::NotReproduced(format!(
                "{file} does not fit the model ({why}), but the world's replay of the same \
                 steps holds every property: the failure is outside what the simulator \
                 models (real time, or the operating system's own behaviour)"
            )));
        }
        (Verdict::Reproduced, Ok(())) => {
            return Err(Refusal::NotReproduced(format!(
                "{file} fits the model, but the world's replay of the same steps breaks: {}; \
                 the simulator and the real backend disagree here",
                replayed.problems.join("; ")
            )));
        }
        (Verdict::Stale(why), _) => {
            return Err(Refusal::NoSchedule(format!(
                "the schedule found does not replay: {why}"
            )));
        }
    }
    entry
        .judge(&replayed, Path::new(&nursery.path))
        .map_err(Refusal::NotReproduced)?;
    Ok(entry)
}

/// The children of a scenario in one phrase: `server (Fork, serves), ...`.
fn describe_children(sc: &Scenario) -> String {
    let all: Vec<String> = sc
        .children
        .iter()
        .map(|c| format!("{} ({}, {:?})", c.name, c.method, c.behaviour))
        .collect();
    all.join(", ")
}

/// Replays `schedule` and compares its parent's commands with the trace's, child by child:
/// how many there were, or which child's differ and how.
fn same_commands(
    sc: &Scenario,
    schedule: &[Choice],
    traced: &[(ChildId, Seen)],
) -> Result<usize, Refusal> {
    let mut world = World::new(sc).logged();
    let mut reader = seen::Reader::new(harrow_model::wire::DEFAULT_MAX_FRAME);
    for &c in schedule {
        world.apply(c);
        for rec in world.take_log() {
            reader.read(&rec).map_err(Refusal::NoSchedule)?;
        }
    }
    let by_child = |seen: &[(ChildId, Seen)]| {
        let mut m: BTreeMap<ChildId, Vec<Seen>> = BTreeMap::new();
        for (c, s) in seen.iter().filter(|(_, s)| s.is_command()) {
            m.entry(*c).or_default().push(s.clone());
        }
        m
    };
    let (ours, theirs) = (by_child(&reader.seen), by_child(traced));
    let differ: Vec<String> = theirs
        .keys()
        .chain(ours.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|c| ours.get(c) != theirs.get(c))
        .map(|c| {
            let show = |m: &BTreeMap<ChildId, Vec<Seen>>| {
                m.get(c).map_or(String::new(), |v| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            };
            format!(
                "{c}: the trace [{}], the replay [{}]",
                show(&theirs),
                show(&ours)
            )
        })
        .collect();
    if differ.is_empty() {
        Ok(ours.values().map(Vec::len).sum())
    } else {
        Err(Refusal::NoSchedule(format!(
            "the replay's commands differ from the trace's: {}",
            differ.join("; ")
        )))
    }
}

/// The traces named (files, or folders of them), with the children's traces found in the
/// `children` folder beside each nursery's: the nurseries, and the children.
pub fn load(paths: &[PathBuf]) -> Result<(Vec<Trace>, Vec<Trace>), String> {
    let mut all = validate::load_all(paths)?;
    // A folder of children's traces may be empty: children that died before writing one.
    let holds_traces = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|mut r| {
            r.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ndjson")))
        })
    };
    let beside: Vec<PathBuf> = all
        .iter()
        .filter(|t| t.kind() == Ok(validate::Kind::Nursery))
        .filter_map(|t| Path::new(&t.path).parent().map(|d| d.join("children")))
        .filter(|d| holds_traces(d))
        .collect();
    if !beside.is_empty() {
        all.extend(validate::load_all(&beside)?);
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all.dedup_by(|a, b| a.path == b.path);
    let (nurseries, children): (Vec<Trace>, Vec<Trace>) = all
        .into_iter()
        .partition(|t| t.kind() == Ok(validate::Kind::Nursery));
    if nurseries.is_empty() {
        return Err("no nursery's trace among those named".into());
    }
    Ok((nurseries, children))
}

/// `harrow corpus from-trace TRACE... [--dir D] [--slug S]`: an entry per nursery trace,
/// written to `dir` and replayed from there. 0 when every trace became an entry, 1 when one
/// was refused, 2 when the traces cannot be read.
pub fn command(paths: &[PathBuf], dir: &Path, slug: Option<&str>) -> std::process::ExitCode {
    let (nurseries, children) = match load(paths) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("harrow corpus from-trace: {e}");
            return crate::exit::usage();
        }
    };
    let mut refused = 0;
    for (k, n) in nurseries.iter().enumerate() {
        let name = match (slug, nurseries.len()) {
            (Some(s), 1) => s.to_string(),
            (Some(s), _) => format!("{s}-{k}"),
            (None, _) => default_name(n),
        };
        match make(n, &children, &name).and_then(|m| write(dir, &name, m)) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                refused += 1;
                println!("REFUSED  {}\n  {e}", n.path);
            }
        }
    }
    crate::exit::verdict(refused == 0)
}

/// `trace-<file stem>`.
fn default_name(t: &Trace) -> String {
    let stem = Path::new(&t.path)
        .file_stem()
        .map_or("nursery".into(), |s| s.to_string_lossy().into_owned());
    format!("trace-{stem}")
}

/// Writes the entry and replays it from its file; what to print.
fn write(dir: &Path, name: &str, m: Made) -> Result<String, Refusal> {
    let path = corpus::write(dir, name, &m.entry)
        .map_err(|e| Refusal::Input(format!("cannot write to {}: {e}", dir.display())))?;
    let report = corpus::replay_file(&path);
    report.result.clone().map_err(Refusal::NotReproduced)?;
    Ok(format!(
        "wrote {}: {} choices, {} commands equal to the trace's, child by child{}\n{}",
        path.display(),
        match &m.entry.schedule {
            Schedule::Choices(c) => c.len(),
            Schedule::Shuttle(_) => 0,
        },
        m.commands,
        match &m.order {
            None => ", events in the trace's order".into(),
            Some(why) => format!(" (not the trace's events across children: {why})"),
        },
        corpus::describe(&report)
    ))
}
