//! Runs a scenario under one engine and reports what it found, how much it explored, and how
//! long it took.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::flaws::Engine;
use crate::platform::{Loom, Shuttle};
use crate::scenario::Scenario;
use crate::sim::{Outcome, execute};

/// A broken property, with the trace that shows it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The properties broken, each a sentence.
    pub problems: Vec<String>,
    /// The execution as numbered steps.
    pub trace: String,
    /// For shuttle, the encoded schedule that replays it.
    pub schedule: Option<String>,
}

/// What one engine run did.
#[derive(Clone, Debug)]
pub struct EngineRun {
    /// Which engine.
    pub engine: Engine,
    /// Executions (or states, for the explicit engine) explored.
    pub explored: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The first failure found, if any.
    pub failure: Option<Failure>,
}

impl EngineRun {
    /// Explorations per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.explored as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// How hard loom searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoomBudget {
    /// The preemption bound (`None`: unbounded, fully exhaustive).
    pub preemptions: Option<usize>,
}

/// How hard shuttle searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuttleBudget {
    /// Random schedules.
    pub random: usize,
    /// PCT schedules.
    pub pct: usize,
    /// PCT's bug depth.
    pub depth: usize,
    /// The seed of both schedulers.
    pub seed: u64,
}

impl Default for ShuttleBudget {
    fn default() -> Self {
        ShuttleBudget {
            random: 500,
            pct: 500,
            depth: 3,
            seed: 0x6861_7272_6f77,
        }
    }
}

type Slot = Arc<Mutex<Option<Failure>>>;

fn failure_of(out: &Outcome) -> Failure {
    Failure {
        problems: out.problems.clone(),
        trace: out.numbered_trace(),
        schedule: None,
    }
}

/// Runs the scenario under loom, stopping at the first execution that breaks a property.
pub fn loom(sc: &Scenario, budget: LoomBudget) -> EngineRun {
    let slot: Slot = Arc::new(Mutex::new(None));
    let count = Arc::new(AtomicU64::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = budget.preemptions;
    // A checkpoint file left from an earlier run would silently resume from it: use none.
    builder.checkpoint_file = None;
    let (sc2, slot2, count2) = (sc.clone(), slot.clone(), count.clone());
    let start = Instant::now();
    let _ = quietly(|| {
        builder.check(move || {
            count2.fetch_add(1, Ordering::Relaxed);
            let out = execute::<Loom>(&sc2);
            if !out.holds() {
                *slot2.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure_of(&out));
                panic!("harrow: a property broke");
            }
        })
    });
    let failure = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    EngineRun {
        engine: Engine::Loom,
        explored: count.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        failure,
    }
}

/// Runs the scenario under shuttle's random, then PCT scheduler, stopping at the first failure.
pub fn shuttle(sc: &Scenario, budget: ShuttleBudget) -> EngineRun {
    let slot: Slot = Arc::new(Mutex::new(None));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let dir = schedule_dir(sc);
    let random = shuttle::scheduler::RandomScheduler::new_from_seed(budget.seed, budget.random);
    run_shuttle(sc, random, &slot, &count, &dir);
    if slot.lock().unwrap_or_else(|p| p.into_inner()).is_none() && budget.pct > 0 {
        let pct =
            shuttle::scheduler::PctScheduler::new_from_seed(budget.seed, budget.depth, budget.pct);
        run_shuttle(sc, pct, &slot, &count, &dir);
    }
    let mut failure = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(f) = &mut failure {
        f.schedule = newest_schedule(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    EngineRun {
        engine: Engine::Shuttle,
        explored: count.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        failure,
    }
}

fn run_shuttle<S: shuttle::scheduler::Scheduler + 'static>(
    sc: &Scenario,
    scheduler: S,
    slot: &Slot,
    count: &Arc<AtomicU64>,
    dir: &Path,
) {
    let mut config = shuttle::Config::new();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(dir.to_path_buf()));
    let (sc2, slot2, count2) = (sc.clone(), slot.clone(), count.clone());
    let _ = quietly(|| {
        shuttle::Runner::new(scheduler, config).run(move || {
            count2.fetch_add(1, Ordering::Relaxed);
            let out = execute::<Shuttle>(&sc2);
            if !out.holds() {
                *slot2.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure_of(&out));
                panic!("harrow: a property broke");
            }
        })
    });
}

/// A fresh directory for shuttle's failing schedules.
fn schedule_dir(sc: &Scenario) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "harrow-shuttle-{}-{}-{n}",
        std::process::id(),
        sc.name
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn newest_schedule(dir: &Path) -> Option<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.sort();
    std::fs::read_to_string(files.last()?)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs `f`, catching its panic, with the panic message hook silenced meanwhile.
fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r
}
