//! The regression corpus: failures the checkers found (and schedules the shipped protocol
//! passes), one JSON file per entry, replayed on every test run.
//!
//! An entry is `corpus/<engine>/<NNNN>-<slug>.json`, where `NNNN` is unique across the corpus.
//! It records the engine that replays it, the scenario (inline), the payload (a shuttle
//! schedule as shuttle persists it, or the pure world's choices), the commit it was found at,
//! what its replay must show (`found` a problem containing a text, or `passes`) and a one-line
//! postmortem. [`Entry::replay`] runs it again and sorts it into reproduced, passes or stale;
//! [`Entry::judge`] compares that with the expectation. See `corpus/README.md`.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use harrow_model::{Flaw, Flaws};
use serde::{Deserialize, Serialize};

use crate::engine::{self, Failure, ShuttleBudget, ShuttleReplay};
use crate::explicit::{self, Counterexample};
use crate::flaws;
use crate::generate;
use crate::run::{self, RunReport};
use crate::scenario::{self, Scenario};
use crate::world::{Choice, World};

/// The corpus folder of this workspace, found from the manifest directory (never the cwd).
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus");

/// The engine that replays an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The simulated OS under shuttle, on a recorded shuttle schedule.
    Shuttle,
    /// The pure world on a shortest counterexample of the explicit-state search.
    Explicit,
    /// The pure world on a schedule a seeded picker chose (generated scenarios).
    World,
}

impl Kind {
    /// Every kind, in folder order.
    pub const ALL: [Kind; 3] = [Kind::Explicit, Kind::Shuttle, Kind::World];

    /// Its name, which is also its folder.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shuttle => "shuttle",
            Kind::Explicit => "explicit",
            Kind::World => "world",
        }
    }

    /// The kind with this name.
    pub fn parse(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown corpus engine `{s}`: use shuttle, explicit or world"))
    }
}

/// The payload that replays an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Schedule {
    /// Shuttle's encoded schedule, as its `FailurePersistence::File` writes it (whitespace
    /// removed; shuttle ignores it).
    Shuttle(String),
    /// The pure world's choices, from its initial state.
    Choices(Vec<Choice>),
}

/// What the replay must show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// A broken property whose text contains this.
    Found(String),
    /// Every property holds.
    Passes,
}

/// One corpus entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The engine that replays it.
    pub engine: Kind,
    /// The flaw the scenario switches on, by number, if it is one of the catalogue's; checked
    /// against the scenario's switches when the entry is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaw: Option<u8>,
    /// What the replay must show.
    pub expect: Expect,
    /// The commit it was found (or recorded) at.
    pub found_at: String,
    /// One line: what the failure is and why (or what the passing run covers).
    pub postmortem: String,
    /// The seed the schedule came from (shuttle's scheduler, or the world's picker); a note
    /// for people, not used by the replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The scenario, inline.
    pub scenario: Scenario,
    /// The payload.
    pub schedule: Schedule,
}

/// How a replay came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A property broke.
    Reproduced,
    /// Every property held.
    Passes,
    /// The schedule no longer fits the code; the text says where.
    Stale(String),
}

impl Verdict {
    /// One word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Passes => "passes",
            Verdict::Stale(_) => "STALE",
        }
    }
}

/// One replay: its verdict, what broke, and the trace as numbered steps.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Reproduced, passes or stale.
    pub verdict: Verdict,
    /// Properties broken.
    pub problems: Vec<String>,
    /// The execution as numbered steps.
    pub trace: String,
}

/// A stable part of a problem's text, to expect in later replays: what kind of property broke,
/// without the pids, times and details that follow. It is the words before the first `:` or
/// `(`, from the first run of words with no digit in them (`child#0 was reaped 0 times` gives
/// `was reaped`; `teardown took 3.1s, over its bound` gives `teardown took`).
pub fn key(problem: &str) -> String {
    let head = problem.split([':', '(']).next().unwrap_or(problem);
    let words: Vec<&str> = head.split_whitespace().collect();
    let start = words
        .iter()
        .position(|w| !w.contains(|c: char| c.is_ascii_digit()));
    let run: Vec<&str> = match start {
        Some(i) => words[i..]
            .iter()
            .take_while(|w| !w.contains(|c: char| c.is_ascii_digit()))
            .copied()
            .collect(),
        None => Vec::new(),
    };
    let text = run.join(" ");
    let text = text.trim_end_matches([',', ';', '.']);
    if text.is_empty() {
        problem.trim().to_string()
    } else {
        text.to_string()
    }
}

/// A flaw's postmortem as one line: the flaw, the tractor bug, and what goes wrong (the fix
/// follows in its table entry and `model/FLAWS.md`).
pub fn flaw_line(flaw: Flaw) -> String {
    let e = flaw.entry();
    format!("{flaw}: tractor {}: {}", e.tractor, e.bug)
}

/// The single catalogue flaw a set of switches holds, if exactly one.
fn single_flaw(flaws: Flaws) -> Option<Flaw> {
    let mut it = flaws.iter();
    match (it.next(), it.next()) {
        (Some(f), None) => Some(f),
        _ => None,
    }
}

/// The current commit of the workspace, or `unknown` outside a git checkout.
pub fn git_head() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

impl Entry {
    fn new(engine: Kind, sc: &Scenario, schedule: Schedule, problems: &[String]) -> Entry {
        let flaw = single_flaw(sc.flaws);
        let expect = match problems.first() {
            Some(p) => Expect::Found(key(p)),
            None => Expect::Passes,
        };
        let postmortem = match (&expect, flaw) {
            (Expect::Found(_), Some(f)) => flaw_line(f),
            (Expect::Found(_), None) => {
                "TODO: found by a checker and not yet understood; write the postmortem".into()
            }
            (Expect::Passes, _) => format!(
                "the shipped protocol holds on this schedule of `{}`",
                sc.name
            ),
        };
        Entry {
            engine,
            flaw: flaw.map(Flaw::number),
            expect,
            found_at: git_head(),
            postmortem,
            seed: None,
            scenario: sc.clone(),
            schedule,
        }
    }

    /// An entry from a shuttle failure (which must carry its persisted schedule).
    pub fn from_shuttle(sc: &Scenario, failure: &Failure, seed: Option<u64>) -> Option<Entry> {
        let schedule = compact(failure.schedule.as_deref()?);
        Some(Entry {
            seed,
            ..Entry::new(
                Kind::Shuttle,
                sc,
                Schedule::Shuttle(schedule),
                &failure.problems,
            )
        })
    }

    /// An entry that expects `sc` to pass on a recorded shuttle schedule.
    pub fn shuttle_passing(sc: &Scenario, schedule: &str, seed: u64) -> Entry {
        Entry {
            seed: Some(seed),
            ..Entry::new(Kind::Shuttle, sc, Schedule::Shuttle(compact(schedule)), &[])
        }
    }

    /// An entry from the explicit search's shortest counterexample.
    pub fn from_counterexample(sc: &Scenario, cx: &Counterexample) -> Entry {
        let problems: Vec<String> = cx.problems.iter().map(|p| p.to_string()).collect();
        Entry::new(
            Kind::Explicit,
            sc,
            Schedule::Choices(cx.schedule.clone()),
            &problems,
        )
    }

    /// An entry from a run of the pure world (which runs the root's children only).
    pub fn from_world_run(sc: &Scenario, r: &RunReport, seed: Option<u64>) -> Entry {
        let problems: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        let flat = generate::root_only(sc);
        Entry {
            seed,
            ..Entry::new(
                Kind::World,
                &flat,
                Schedule::Choices(r.schedule.clone()),
                &problems,
            )
        }
    }

    /// Checks that the parts agree: the payload suits the engine, the flaw is the scenario's.
    pub fn validate(&self) -> Result<(), String> {
        match (self.engine, &self.schedule) {
            (Kind::Shuttle, Schedule::Shuttle(_))
            | (Kind::Explicit | Kind::World, Schedule::Choices(_)) => {}
            (k, _) => {
                return Err(format!(
                    "a {} entry needs {} as its schedule",
                    k.name(),
                    if k == Kind::Shuttle {
                        "shuttle's encoded string"
                    } else {
                        "a list of choices"
                    }
                ));
            }
        }
        if let Some(n) = self.flaw {
            let f = Flaw::from_number(n).ok_or_else(|| format!("there is no flaw F{n}"))?;
            if self.scenario.flaws != Flaws::only(f) {
                return Err(format!(
                    "the entry names {f} but its scenario switches on {:?}",
                    self.scenario.flaws.iter().collect::<Vec<_>>()
                ));
            }
        }
        if let Expect::Found(s) = &self.expect
            && s.trim().is_empty()
        {
            return Err("`expect.found` must name a part of the problem".into());
        }
        Ok(())
    }

    /// Replays the entry.
    pub fn replay(&self) -> Replayed {
        match &self.schedule {
            Schedule::Shuttle(s) => match engine::shuttle_replay(&self.scenario, s) {
                ShuttleReplay::Ran { problems, trace } => Replayed {
                    verdict: if problems.is_empty() {
                        Verdict::Passes
                    } else {
                        Verdict::Reproduced
                    },
                    problems,
                    trace,
                },
                ShuttleReplay::Stale(why) => Replayed {
                    verdict: Verdict::Stale(format!("shuttle's replay stopped: {why}")),
                    problems: Vec::new(),
                    trace: String::new(),
                },
            },
            Schedule::Choices(c) => replay_choices(&self.scenario, c),
        }
    }

    /// Whether the replay meets the expectation; if not, a message saying what to do.
    pub fn judge(&self, r: &Replayed, path: &Path) -> Result<(), String> {
        let at = path.display();
        match (&r.verdict, &self.expect) {
            (Verdict::Stale(why), _) => Err(format!(
                "STALE corpus entry {at}: its schedule no longer fits the code ({why}).\n  \
                 Re-minimise it on the current code:\n    \
                 cargo run --release -p harrow -- corpus add --engine {e} \
                 --from {at} --replace\n  \
                 (seeded entries: `harrow corpus seed` regenerates them all), or retire it: once \
                 its failure is pinned as a literal scenario test, delete the file.",
                e = self.engine.name()
            )),
            (Verdict::Reproduced, Expect::Found(s)) if r.problems.iter().any(|p| p.contains(s)) => {
                Ok(())
            }
            (Verdict::Reproduced, Expect::Found(s)) => Err(format!(
                "corpus entry {at} expects a problem containing `{s}`, but its replay broke \
                 something else:\n  {}",
                r.problems.join("\n  ")
            )),
            (Verdict::Passes, Expect::Found(s)) => Err(format!(
                "corpus entry {at} expects a problem containing `{s}`, but its replay passes: the \
                 failure is gone. If it was fixed on purpose, set `\"expect\": \"passes\"` to keep \
                 it as a regression check, or retire it (delete the file); if not, the checker \
                 has lost it."
            )),
            (Verdict::Passes, Expect::Passes) => Ok(()),
            (Verdict::Reproduced, Expect::Passes) => Err(format!(
                "REGRESSION: corpus entry {at} expects the protocol to pass, but its replay \
                 broke:\n  {}",
                r.problems.join("\n  ")
            )),
        }
    }
}

fn compact(schedule: &str) -> String {
    schedule.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Replays the pure world's choices, then runs on (first enabled choice) to the end.
fn replay_choices(sc: &Scenario, choices: &[Choice]) -> Replayed {
    let stale = |why: String| Replayed {
        verdict: Verdict::Stale(why),
        problems: Vec::new(),
        trace: String::new(),
    };
    if sc.timeouts.validate().is_err() {
        return stale("the scenario's timeouts are not valid".into());
    }
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let mut world = World::traced(sc);
        for (k, &c) in choices.iter().enumerate() {
            let enabled = world.enabled();
            if !enabled.contains(&c) {
                let list: Vec<String> = enabled.iter().map(|c| c.to_string()).collect();
                return Err(format!(
                    "step {} of {}, `{c}`, is not enabled; the world offers [{}]",
                    k + 1,
                    choices.len(),
                    list.join(", ")
                ));
            }
            world.apply(c);
        }
        Ok(run::run(world, |_| 0))
    }));
    match ran {
        Ok(Err(why)) => stale(why),
        Ok(Ok(r)) => Replayed {
            verdict: if r.holds() {
                Verdict::Passes
            } else {
                Verdict::Reproduced
            },
            problems: r.problems.iter().map(|p| p.to_string()).collect(),
            trace: crate::run::numbered(&r.trace),
        },
        Err(payload) => Replayed {
            verdict: Verdict::Reproduced,
            problems: vec![format!(
                "panic in the pure world: {}",
                engine::panic_message(&*payload)
            )],
            trace: String::new(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Files.

/// Reads and validates one entry.
pub fn load(path: &Path) -> Result<Entry, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let entry: Entry = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a corpus entry: {e}", path.display()))?;
    entry
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    if folder != Some(entry.engine.name()) {
        return Err(format!(
            "{}: a {} entry belongs in the `{}` folder",
            path.display(),
            entry.engine.name(),
            entry.engine.name()
        ));
    }
    Ok(entry)
}

/// Every entry file under `dir` (`<dir>/<engine>/*.json`), sorted by path.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let Ok(rd) = std::fs::read_dir(dir.join(kind.name())) else {
            continue;
        };
        out.extend(
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json")),
        );
    }
    out.sort();
    out
}

/// The id of an entry file: the `NNNN` its name starts with.
pub fn id_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.split('-').next()?.parse().ok()
}

/// The id a new entry takes: one more than the largest in the corpus.
pub fn next_id(dir: &Path) -> u32 {
    files(dir)
        .iter()
        .filter_map(|p| id_of(p))
        .max()
        .unwrap_or(0)
        + 1
}

/// A slug for file names: lower-case words joined by dashes.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(64).collect()
}

/// Writes `entry` as `<dir>/<engine>/<id>-<slug>.json`, replacing any entry with that id.
pub fn write_as(dir: &Path, id: u32, slug_text: &str, entry: &Entry) -> std::io::Result<PathBuf> {
    for old in files(dir).into_iter().filter(|p| id_of(p) == Some(id)) {
        std::fs::remove_file(old)?;
    }
    let folder = dir.join(entry.engine.name());
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{id:04}-{}.json", slug(slug_text)));
    let mut text = serde_json::to_string_pretty(entry).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Writes `entry` under the next free id.
pub fn write(dir: &Path, slug_text: &str, entry: &Entry) -> std::io::Result<PathBuf> {
    write_as(dir, next_id(dir), slug_text, entry)
}

// ---------------------------------------------------------------------------------------
// Replaying a folder.

/// What happened to one entry file.
#[derive(Debug)]
pub struct Report {
    /// The file.
    pub path: PathBuf,
    /// The entry, if it loaded.
    pub entry: Option<Entry>,
    /// The replay, if it ran.
    pub replayed: Option<Replayed>,
    /// `Ok` when the expectation was met; else what to do.
    pub result: Result<(), String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Replays one file.
pub fn replay_file(path: &Path) -> Report {
    let start = std::time::Instant::now();
    let (entry, replayed, result) = match load(path) {
        Err(e) => (None, None, Err(e)),
        Ok(entry) => {
            let r = entry.replay();
            let result = entry.judge(&r, path);
            (Some(entry), Some(r), result)
        }
    };
    Report {
        path: path.to_path_buf(),
        entry,
        replayed,
        result,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Replays every entry under `dir`.
pub fn replay_dir(dir: &Path) -> Vec<Report> {
    files(dir).iter().map(|p| replay_file(p)).collect()
}

/// A table of the reports: one line per entry, then the count per verdict.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<52}  {:<8}  {:<34}  {:<10}  {:<4}  {:>6}",
        "entry", "engine", "expect", "replay", "ok", "secs"
    );
    let mut counts = [0usize; 4];
    for r in reports {
        let name = r
            .path
            .strip_prefix(r.path.ancestors().nth(2).unwrap_or(Path::new("")))
            .unwrap_or(&r.path)
            .display()
            .to_string();
        let (engine, expect) = match &r.entry {
            Some(e) => (
                e.engine.name(),
                match &e.expect {
                    Expect::Found(s) => {
                        format!("found `{}`", s.chars().take(26).collect::<String>())
                    }
                    Expect::Passes => "passes".into(),
                },
            ),
            None => ("?", "?".into()),
        };
        let verdict = r.replayed.as_ref().map_or("INVALID", |x| x.verdict.word());
        let slot = match verdict {
            "reproduced" => 0,
            "passes" => 1,
            "STALE" => 2,
            _ => 3,
        };
        counts[slot] += 1;
        let ok = if r.result.is_ok() { "ok" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{name:<52}  {engine:<8}  {expect:<34}  {verdict:<10}  {ok:<4}  {:>6.2}",
            r.seconds
        );
    }
    let failed = reports.iter().filter(|r| r.result.is_err()).count();
    let _ = writeln!(
        out,
        "{} entries: {} reproduced, {} pass, {} stale, {} invalid; {} as expected, {} not",
        reports.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        reports.len() - failed,
        failed
    );
    out
}

/// The messages of every entry whose expectation was not met.
pub fn failures(reports: &[Report]) -> Vec<String> {
    reports
        .iter()
        .filter_map(|r| r.result.as_ref().err().cloned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Making entries.

/// How many shuttle seeds [`make`] tries for a failure.
pub const SHUTTLE_SEEDS: u64 = 8;

/// Shuttle's failure with the shortest schedule over these seeds (each a full default budget,
/// stopping at its first failure): shuttle cannot shrink a schedule, so the corpus keeps the
/// shortest of several.
pub fn shortest_shuttle_failure(
    sc: &Scenario,
    seeds: impl IntoIterator<Item = u64>,
) -> Option<(Failure, u64)> {
    seeds
        .into_iter()
        .filter_map(|seed| {
            let run = engine::shuttle(
                sc,
                ShuttleBudget {
                    seed,
                    ..ShuttleBudget::default()
                },
            );
            run.failure
                .filter(|f| f.schedule.is_some())
                .map(|f| (f, seed))
        })
        .min_by_key(|(f, _)| {
            f.schedule
                .as_deref()
                .map_or(usize::MAX, |s| compact(s).len())
        })
}

/// Runs `engine` over `sc` and makes an entry of what it found: the failure (expect found) or,
/// if every property held, a schedule it passes on (expect passes).
pub fn make(kind: Kind, sc: &Scenario, seed: Option<u64>) -> Result<Entry, String> {
    match kind {
        Kind::Explicit => {
            let s = explicit::search(sc, explicit::MAX_STATES);
            match s.counterexample {
                Some(cx) => Ok(Entry::from_counterexample(sc, &cx)),
                None => {
                    let r = run::deterministic(sc);
                    Ok(Entry::new(
                        Kind::Explicit,
                        sc,
                        Schedule::Choices(r.schedule.clone()),
                        &[],
                    ))
                }
            }
        }
        Kind::World => {
            let r = match seed {
                Some(s) => generate::run_world(sc, s),
                None => run::deterministic(&generate::root_only(sc)),
            };
            Ok(Entry::from_world_run(sc, &r, seed))
        }
        Kind::Shuttle => {
            let base = ShuttleBudget::default().seed;
            let seeds: Vec<u64> = match seed {
                Some(s) => vec![s],
                None => (0..SHUTTLE_SEEDS).map(|k| base.wrapping_add(k)).collect(),
            };
            if let Some((f, seed)) = shortest_shuttle_failure(sc, seeds) {
                return Entry::from_shuttle(sc, &f, Some(seed))
                    .ok_or_else(|| "shuttle found a failure but persisted no schedule".into());
            }
            let seed = seed.unwrap_or(base);
            let schedule = engine::shuttle_record_passing(sc, seed)
                .ok_or("the recorded execution broke a property shuttle's search missed")?;
            Ok(Entry::shuttle_passing(sc, &schedule, seed))
        }
    }
}

/// Every scenario `harrow` knows by name: canonical, loom's matrix, the large trees, each
/// flaw's case and its fixed twin.
pub fn known_scenarios() -> Vec<Scenario> {
    let mut out = scenario::canonical();
    out.extend(scenario::loom_matrix());
    out.extend(scenario::large());
    for case in flaws::catalogue() {
        out.push(flaws::fixed(&case));
        out.push(case.scenario);
    }
    out
}

/// The corpus's seeded entries, regenerated: for each flaw (ids 1 to the number of flaws) its
/// minimised counterexample (the explicit search's shortest where FLAWS.md names that engine,
/// else the shortest of several shuttle schedules); then the shipped protocol's passing
/// entries (the ids after). Writes them into `dir`, replacing entries with the same ids.
pub fn seed(dir: &Path, mut progress: impl FnMut(&Path)) -> Result<Vec<PathBuf>, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut written = Vec::new();
    let mut fixed_on_same = Vec::new();
    for case in flaws::catalogue() {
        let id = u32::from(case.flaw.number());
        let kind = if case.engines.contains(&flaws::Engine::Explicit) {
            Kind::Explicit
        } else {
            Kind::Shuttle
        };
        let entry = make(kind, &case.scenario, None)?;
        if entry.expect == Expect::Passes {
            return Err(format!("{} did not find {}", kind.name(), case.flaw));
        }
        fixed_on_same.push((flaws::fixed(&case), kind, entry.schedule.clone()));
        let path = write_as(dir, id, &case.scenario.name, &entry).map_err(io)?;
        progress(&path);
        written.push(path);
    }
    let mut id = Flaw::COUNT as u32 + 1;
    let mut put = |entry: Entry, slug_text: &str| -> Result<(), String> {
        let path = write_as(dir, id, slug_text, &entry).map_err(io)?;
        progress(&path);
        written.push(path);
        id += 1;
        Ok(())
    };
    // Each flaw's counterexample with the flaw switched off, where the schedule still fits.
    for (sc, kind, schedule) in fixed_on_same {
        let mut e = Entry::new(kind, &sc, schedule, &[]);
        let r = e.replay();
        if r.verdict != Verdict::Passes {
            continue;
        }
        e.postmortem = format!(
            "the shipped protocol passes the schedule of `{}`'s counterexample",
            sc.name.trim_end_matches("-fixed")
        );
        put(e, &format!("{}-on-the-flaw-schedule", sc.name))?;
    }
    // The canonical scenarios: the golden traces' schedules in the pure world, and a recorded
    // shuttle execution of each small one and of a three-level tree.
    for sc in scenario::canonical() {
        let mut e = make(Kind::World, &sc, None)?;
        e.postmortem = format!(
            "the shipped protocol holds on `{}`'s golden-trace schedule",
            sc.name
        );
        put(e, &sc.name)?;
    }
    let large = scenario::large();
    let catalogue = flaws::catalogue();
    let shuttle_passing = scenario::canonical()
        .into_iter()
        .filter(|s| s.children.len() <= 2)
        .chain(large.into_iter().filter(|s| s.name == "tree-3-sigint"))
        .chain(
            catalogue
                .iter()
                .filter(|c| !c.engines.contains(&flaws::Engine::Explicit))
                .map(flaws::fixed),
        );
    for sc in shuttle_passing {
        let mut e = make(Kind::Shuttle, &sc, Some(ShuttleBudget::default().seed))?;
        if e.expect != Expect::Passes {
            return Err(format!(
                "shuttle broke the shipped protocol in `{}`",
                sc.name
            ));
        }
        e.postmortem = format!(
            "the shipped protocol holds on a recorded shuttle execution of `{}`",
            sc.name
        );
        put(e, &sc.name)?;
    }
    Ok(written)
}

/// What `harrow corpus add` does.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// The engine to run and record with.
    pub kind: Kind,
    /// A scenario by name (see [`known_scenarios`]).
    pub scenario: Option<String>,
    /// Or the scenario of this entry (or plain scenario JSON file).
    pub from: Option<PathBuf>,
    /// The seed: shuttle's scheduler (else several are tried), or the world's picker (else
    /// the deterministic schedule).
    pub seed: Option<u64>,
    /// Delete `from` and give the new entry its id (re-minimising a stale entry).
    pub replace: bool,
    /// The postmortem, instead of the default line.
    pub postmortem: Option<String>,
    /// The corpus folder; by default the one `from` is in when replacing it, else [`DIR`].
    pub dir: Option<PathBuf>,
}

/// Runs the engine over the scenario and writes what it found as an entry; returns its path.
pub fn add(opts: &AddOptions) -> Result<PathBuf, String> {
    let (sc, old) = match (&opts.scenario, &opts.from) {
        (Some(name), None) => {
            let all = known_scenarios();
            let sc = all
                .iter()
                .find(|s| &s.name == name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                    format!("no scenario named `{name}`; known: {}", names.join(", "))
                })?;
            (sc, None)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let sc = match serde_json::from_str::<Entry>(&text) {
                Ok(e) => e.scenario,
                Err(_) => serde_json::from_str::<Scenario>(&text).map_err(|e| {
                    format!("{} is neither an entry nor a scenario: {e}", path.display())
                })?,
            };
            (sc, Some(path.clone()))
        }
        _ => return Err("name a scenario with --scenario, or an entry with --from".into()),
    };
    let mut entry = make(opts.kind, &sc, opts.seed)?;
    if let Some(p) = &opts.postmortem {
        entry.postmortem = p.clone();
    }
    let home = old
        .as_deref()
        .filter(|_| opts.replace)
        .and_then(|p| p.parent()?.parent())
        .map(Path::to_path_buf);
    let dir = opts
        .dir
        .clone()
        .or(home)
        .unwrap_or_else(|| PathBuf::from(DIR));
    let id = match (&old, opts.replace) {
        (Some(path), true) => {
            let id = id_of(path).ok_or("--replace needs an entry named <NNNN>-<slug>.json")?;
            std::fs::remove_file(path).map_err(|e| e.to_string())?;
            id
        }
        (None, true) => return Err("--replace needs --from".into()),
        _ => next_id(&dir),
    };
    write_as(&dir, id, &sc.name, &entry).map_err(|e| e.to_string())
}

/// A replayed entry, for people: what it is, its numbered trace, what broke, and the verdict.
pub fn describe(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {}", r.path.display());
    if let Some(e) = &r.entry {
        let payload = match &e.schedule {
            Schedule::Shuttle(s) => format!("shuttle schedule of {} hex digits", s.len()),
            Schedule::Choices(c) => format!("{} choices", c.len()),
        };
        let flaws: Vec<String> = e.scenario.flaws.iter().map(|f| f.to_string()).collect();
        let expect = match &e.expect {
            Expect::Found(s) => format!("found: a problem containing `{s}`"),
            Expect::Passes => "passes".into(),
        };
        let _ = writeln!(out, "engine      {} ({payload})", e.engine.name());
        let _ = writeln!(
            out,
            "scenario    {}; flaws: {}",
            e.scenario,
            if flaws.is_empty() {
                "none (the shipped protocol)".into()
            } else {
                flaws.join(", ")
            }
        );
        let _ = writeln!(out, "expect      {expect}");
        let _ = writeln!(out, "found at    {}", e.found_at);
        let _ = writeln!(out, "postmortem  {}", e.postmortem);
    }
    if let Some(x) = &r.replayed {
        if !x.trace.is_empty() {
            let _ = writeln!(out, "-- trace\n{}", x.trace.trim_end());
        }
        if !x.problems.is_empty() {
            let _ = writeln!(out, "-- problems\n  {}", x.problems.join("\n  "));
        }
        let _ = write!(out, "-- {}", x.verdict.word());
        if let Verdict::Stale(why) = &x.verdict {
            let _ = write!(out, ": {why}");
        }
        let _ = writeln!(out);
    }
    match &r.result {
        Ok(()) => {
            let _ = writeln!(out, "-- as expected ({:.2}s)", r.seconds);
        }
        Err(e) => {
            let _ = writeln!(out, "-- NOT as expected: {e}");
        }
    }
    out
}

/// Records a generated scenario's failure: re-runs it in the pure world (picker `seed`) and
/// under shuttle (`random` schedules from `seed`), and writes an entry for each run that
/// breaks a property, with a postmortem still to write, unless the corpus already holds it.
/// Returns the entries' files.
pub fn record_generated(
    sc: &Scenario,
    seed: u64,
    random: usize,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    let name = format!("gen-{}", summary_slug(sc));
    let mut entries = Vec::new();
    let world = generate::run_world(sc, seed);
    if !world.holds() {
        entries.push(Entry::from_world_run(sc, &world, Some(seed)));
    }
    let run = generate::run_shuttle(sc, seed, random);
    if let Some(e) = run
        .failure
        .as_ref()
        .and_then(|f| Entry::from_shuttle(sc, f, Some(seed)))
    {
        entries.push(e);
    }
    // proptest replays its saved seed first on every run until the failure is fixed: the
    // entry it found then is already here.
    let existing: Vec<(PathBuf, Entry)> = files(dir)
        .into_iter()
        .filter_map(|p| load(&p).ok().map(|e| (p, e)))
        .collect();
    let mut written = Vec::new();
    for e in entries {
        let same = |o: &Entry| {
            o.engine == e.engine && o.scenario == e.scenario && o.schedule == e.schedule
        };
        match existing.iter().find(|(_, o)| same(o)) {
            Some((p, _)) => written.push(p.clone()),
            None => written.push(write(dir, &name, &e)?),
        }
    }
    Ok(written)
}

/// A slug that says what a scenario is: its children's methods and behaviours, and its flaws.
fn summary_slug(sc: &Scenario) -> String {
    let mut parts: Vec<String> = sc
        .flaws
        .iter()
        .map(|f| format!("f{}", f.number()))
        .collect();
    for c in sc.children.iter().take(2) {
        let b = format!("{:?}", c.behaviour);
        let b = b.split([' ', '{', '(']).next().unwrap_or("").to_string();
        parts.push(format!("{}-{b}", c.method));
    }
    if sc.children.len() > 2 {
        parts.push(format!("{}-children", sc.children.len()));
    }
    slug(&parts.join("-"))
}
