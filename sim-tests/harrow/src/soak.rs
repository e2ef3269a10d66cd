//! `harrow soak`: many spawn → request → teardown cycles, and what they leave behind.
//!
//! Two runs per spawn method: `cycles` opens a fresh nursery each cycle (spawn, one
//! request, teardown); `long-lived` keeps one nursery and spawns, asks and stops a child in
//! it each cycle. Each run is bounded in count and time, and prints what this process holds
//! after its first window of cycles and at its end (descriptors, zombie children, threads,
//! resident memory) and the median cycle time of the first and of the last window. A run
//! holds when nothing grew: no descriptor, zombie or thread gained, resident memory within
//! [`RSS_SLACK`], and the last window's median within [`SLOWDOWN`] of the first's.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use harrow_model::{SpawnMethod, Timeouts};
use harrow_real::{Error, ExitStatus, Nursery, NurseryConfig, Outcome, TeardownReport, sys};

use crate::baseline::median;

/// The actor every cycle spawns: doubles a number (from [`crate::smoke::registry`]).
const ACTOR: &str = crate::smoke::DOUBLE;

/// How much resident memory a run may gain between its first window and its end.
pub const RSS_SLACK: u64 = 1024 * 1024;

/// How much slower the last window's median cycle may be than the first window's.
pub const SLOWDOWN: f64 = 1.2;

/// The longest window whose median is compared: the first and last thousand cycles.
pub const WINDOW: usize = 1000;

/// Which soak runs to make.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// Cycles per run.
    pub cycles: usize,
    /// The spawn methods, each with its two runs.
    pub methods: Vec<SpawnMethod>,
    /// Whether to make the long-lived runs too.
    pub long_lived: bool,
    /// Each run stops after this long, whatever its count (and fails: it did not finish).
    pub time_limit: Duration,
    /// Progress on stderr when it is a terminal.
    pub progress: bool,
}

/// What this process holds at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Open descriptors.
    pub fds: usize,
    /// Children that exited and nobody reaped.
    pub zombies: usize,
    /// Threads of this process.
    pub threads: usize,
    /// Resident memory, bytes.
    pub rss: u64,
}

/// One run's figures.
#[derive(Clone, Debug)]
pub struct SoakRun {
    /// `cycles` or `long-lived`, and the method.
    pub label: String,
    /// Cycles done (fewer than asked if the time limit or an error came first).
    pub done: usize,
    /// Cycles asked for.
    pub asked: usize,
    /// The cycles in each compared window.
    pub window: usize,
    /// After the first window.
    pub start: Holdings,
    /// At the end.
    pub end: Holdings,
    /// Median cycle time of the first window.
    pub first: Duration,
    /// Median cycle time of the last window.
    pub last: Duration,
    /// The error that stopped the run, if one did.
    pub error: Option<String>,
}

impl SoakRun {
    /// What grew, one phrase each; empty when the run holds.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(format!("stopped after {} cycles: {e}", self.done));
        } else if self.done < self.asked {
            out.push(format!(
                "only {} of {} cycles within the time limit",
                self.done, self.asked
            ));
        }
        out.extend(self.growth());
        if self.slowdown() > SLOWDOWN {
            out.push(format!(
                "the last {} cycles took {:.2}x the first {} (limit {SLOWDOWN}x)",
                self.window,
                self.slowdown(),
                self.window
            ));
        }
        out
    }

    /// What this process holds more of at the end than after the first window: the checks
    /// that do not depend on timing (the CI run asserts these).
    pub fn growth(&self) -> Vec<String> {
        let (s, e) = (self.start, self.end);
        let mut out = Vec::new();
        if e.fds > s.fds {
            out.push(format!("{} descriptors gained", e.fds - s.fds));
        }
        if e.zombies > 0 {
            out.push(format!("{} zombie children", e.zombies));
        }
        if e.threads > s.threads {
            out.push(format!("{} threads gained", e.threads - s.threads));
        }
        if e.rss > s.rss + RSS_SLACK {
            out.push(format!(
                "resident memory grew by {} KiB",
                (e.rss - s.rss) / 1024
            ));
        }
        out
    }

    /// The last window's median over the first's.
    pub fn slowdown(&self) -> f64 {
        self.last.as_secs_f64() / self.first.as_secs_f64().max(1e-9)
    }
}

/// Makes every run the options ask for, one after another.
pub fn run(opts: &SoakOptions) -> Vec<SoakRun> {
    let mut runs = Vec::new();
    for &method in &opts.methods {
        runs.push(soak(opts, &format!("cycles {method}"), || {
            fresh_cycle(method)
        }));
        if opts.long_lived {
            runs.push(long_lived(opts, method));
        }
    }
    runs
}

/// The nursery configuration of every cycle: SIGINT left to the host.
fn config(method: SpawnMethod) -> NurseryConfig {
    NurseryConfig::default()
        .with_method(method)
        .with_timeouts(Timeouts::TRACTOR)
        .with_handle_sigint(false)
}

/// One child, one request: the doubled number must come back.
fn ask(n: &mut Nursery, name: &str) -> Result<harrow_real::Child, String> {
    let c = n.spawn(name, ACTOR).map_err(|e| e.to_string())?;
    let four: u64 = n.request(c, &2u64).map_err(|e: Error| e.to_string())?;
    if four != 4 {
        return Err(format!("2 * 2 came back as {four}"));
    }
    Ok(c)
}

/// Every child of the report exited 0.
fn clean(report: &TeardownReport) -> Result<(), String> {
    let ok = Some(Outcome::Exited(ExitStatus::Exited(0)));
    match report.children.iter().find(|c| c.outcome != ok) {
        None if report.errors.is_empty() => Ok(()),
        None => Err(format!("teardown reported {:?}", report.errors)),
        Some(c) => Err(format!("a child ended {:?}", c.outcome)),
    }
}

/// A fresh nursery: spawn, one request, teardown.
fn fresh_cycle(method: SpawnMethod) -> Result<(), String> {
    let mut n = Nursery::open_with(config(method)).map_err(|e| e.to_string())?;
    let asked = ask(&mut n, "soak");
    let report = n.teardown();
    asked?;
    clean(&report)
}

/// One nursery for the whole run, with the default limits: spawn, one request and stop per
/// cycle (a stopped child is retired, so `max_children` never runs out).
fn long_lived(opts: &SoakOptions, method: SpawnMethod) -> SoakRun {
    let mut nursery = match Nursery::open_with(config(method)) {
        Ok(n) => n,
        Err(e) => return failed_to_open(opts, method, e),
    };
    let mut run = soak(opts, &format!("long-lived {method}"), || {
        let c = ask(&mut nursery, "soak")?;
        nursery.stop(c).map_err(|e| e.to_string())
    });
    let report = nursery.teardown();
    if run.error.is_none()
        && let Err(e) = clean(&report)
    {
        run.error = Some(e);
    }
    run
}

fn failed_to_open(opts: &SoakOptions, method: SpawnMethod, e: Error) -> SoakRun {
    let now = Holdings::default();
    SoakRun {
        label: format!("long-lived {method}"),
        done: 0,
        asked: opts.cycles,
        window: 0,
        start: now,
        end: now,
        first: Duration::ZERO,
        last: Duration::ZERO,
        error: Some(e.to_string()),
    }
}

/// Runs `cycle` up to `opts.cycles` times within the time limit, timing each.
fn soak(opts: &SoakOptions, label: &str, mut cycle: impl FnMut() -> Result<(), String>) -> SoakRun {
    let window = WINDOW.min(opts.cycles / 3).max(1);
    let started = Instant::now();
    let mut times = Vec::with_capacity(opts.cycles);
    let mut error = None;
    let measure = |error: &mut Option<String>| {
        holdings().unwrap_or_else(|e| {
            error.get_or_insert(e);
            Holdings::default()
        })
    };
    let mut start = measure(&mut error);
    let terminal = opts.progress && std::io::stderr().is_terminal();
    for i in 0..opts.cycles {
        if started.elapsed() > opts.time_limit {
            break;
        }
        let t = Instant::now();
        if let Err(e) = cycle() {
            error = Some(e);
            break;
        }
        times.push(t.elapsed());
        if i + 1 == window {
            start = measure(&mut error);
        }
        if terminal && (i % 50 == 0 || i + 1 == opts.cycles) {
            eprint!("\r{label}: {}/{}", i + 1, opts.cycles);
            let _ = std::io::stderr().flush();
        }
    }
    if terminal {
        eprintln!();
    }
    let end = measure(&mut error);
    let done = times.len();
    let window = window.min(done / 2).max(1).min(done.max(1));
    let med = |part: &[Duration]| median(&mut part.to_vec());
    SoakRun {
        label: label.to_owned(),
        done,
        asked: opts.cycles,
        window,
        start,
        end,
        first: if done > 0 {
            med(&times[..window])
        } else {
            Duration::ZERO
        },
        last: if done > 0 {
            med(&times[done - window..])
        } else {
            Duration::ZERO
        },
        error,
    }
}

/// What this process holds now, or what could not be read.
pub fn holdings() -> Result<Holdings, String> {
    let mut fds = [0; 4096];
    Ok(Holdings {
        fds: sys::list_open_fds(&mut fds).map_err(|e| format!("count descriptors: {e}"))?,
        zombies: zombie_children()?,
        threads: sys::thread_count().map_err(|e| format!("count threads: {e}"))?,
        rss: resident_bytes()?,
    })
}

/// Children of this process in state `Z`, from `/proc/self/task/*/children`.
fn zombie_children() -> Result<usize, String> {
    let tasks = std::fs::read_dir("/proc/self/task").map_err(|e| format!("list threads: {e}"))?;
    let mut zombies = 0;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children"))
            .map_err(|e| format!("list children: {e}"))?;
        for pid in children.split_whitespace() {
            // A child reaped meanwhile has no stat: it is no zombie.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            zombies += usize::from(state == Some("Z"));
        }
    }
    Ok(zombies)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub(crate) fn resident_bytes() -> Result<u64, String> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|e| format!("read status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmRSS line in /proc/self/status".into())
}

/// The runs as a table, then one line per run that did not hold.
pub fn render(runs: &[SoakRun]) -> String {
    let mut out = format!(
        "{:<24} {:>7} {:>10} {:>8} {:>8} {:>13} {:>11} {:>11} {:>6}\n",
        "run", "cycles", "fds", "zombies", "threads", "rss KiB", "first med", "last med", "ratio"
    );
    for r in runs {
        let kib = |b: u64| b / 1024;
        out += &format!(
            "{:<24} {:>7} {:>4} -> {:<3} {:>8} {:>3} -> {:<3} {:>6}->{:<6} {:>11} {:>11} {:>5.2}x\n",
            r.label,
            r.done,
            r.start.fds,
            r.end.fds,
            r.end.zombies,
            r.start.threads,
            r.end.threads,
            kib(r.start.rss),
            kib(r.end.rss),
            format!("{:.1?}", r.first),
            format!("{:.1?}", r.last),
            r.slowdown()
        );
    }
    for r in runs {
        let problems = r.problems();
        if !problems.is_empty() {
            out += &format!("{}: {}\n", r.label, problems.join("; "));
        }
    }
    out
}
