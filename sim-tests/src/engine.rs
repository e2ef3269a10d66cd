//! Runs a scenario under one engine and reports what it found, how much it explored, and how
//! long it took.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use harrow_model::coverage::Coverage;

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
    /// The protocol-table cells its executions reached, merged.
    pub coverage: Coverage,
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
    let sc = sc.clone();
    // Outside loom's model: each execution's tally is merged in as it ends.
    let tally = Arc::new(Mutex::new(Coverage::default()));
    let tally2 = tally.clone();
    let mut run = run_loom(budget, move || {
        let out = execute::<Loom>(&sc);
        merge_into(&tally2, &out.coverage);
        (!out.holds()).then(|| failure_of(&out))
    });
    run.coverage = taken(&tally);
    run
}

fn merge_into(tally: &Mutex<Coverage>, coverage: &Coverage) {
    tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(coverage);
}

fn taken(tally: &Mutex<Coverage>) -> Coverage {
    std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Runs `body` in every execution loom explores within `budget`, stopping at the first one
/// that returns a failure or panics.
fn run_loom(
    budget: LoomBudget,
    body: impl Fn() -> Option<Failure> + Send + Sync + 'static,
) -> EngineRun {
    let slot: Slot = Arc::new(Mutex::new(None));
    let count = Arc::new(AtomicU64::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = budget.preemptions;
    // A checkpoint file left from an earlier run would silently resume from it: use none.
    builder.checkpoint_file = None;
    let (slot2, count2) = (slot.clone(), count.clone());
    let start = Instant::now();
    let result = silenced(|| {
        builder.check(move || {
            count2.fetch_add(1, Ordering::Relaxed);
            if let Some(failure) = body() {
                *slot2.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
                panic!("{PROPERTY_BROKE}");
            }
        })
    });
    keep_foreign_panic("loom", result, &slot);
    let failure = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    EngineRun {
        engine: Engine::Loom,
        explored: count.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        failure,
        coverage: Coverage::default(),
    }
}

/// Any panic but ours (the engine's own report of a deadlock or an exceeded bound, a failed
/// assertion in the model) is a failure too, though it leaves no trace of ours: it must never
/// pass as "holds".
fn keep_foreign_panic<R>(engine: &str, result: std::thread::Result<R>, slot: &Slot) {
    if let Err(payload) = result {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Failure {
                problems: vec![format!(
                    "panic under {engine}: {}",
                    panic_message(&*payload)
                )],
                trace: String::new(),
                schedule: None,
            });
        }
    }
}

/// Runs the scenario under shuttle's random, then PCT scheduler, stopping at the first failure.
pub fn shuttle(sc: &Scenario, budget: ShuttleBudget) -> EngineRun {
    let slot: Slot = Arc::new(Mutex::new(None));
    let count = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Coverage::default()));
    let start = Instant::now();
    let dir = schedule_dir(sc);
    let random = shuttle::scheduler::RandomScheduler::new_from_seed(budget.seed, budget.random);
    let shared = (&slot, &count, &tally);
    run_shuttle(sc, random, shared, &dir);
    if slot.lock().unwrap_or_else(|p| p.into_inner()).is_none() && budget.pct > 0 {
        let pct =
            shuttle::scheduler::PctScheduler::new_from_seed(budget.seed, budget.depth, budget.pct);
        run_shuttle(sc, pct, shared, &dir);
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
        coverage: taken(&tally),
    }
}

/// Where a shuttle run leaves its first failure, its execution count and its coverage.
type ShuttleShared<'a> = (&'a Slot, &'a Arc<AtomicU64>, &'a Arc<Mutex<Coverage>>);

fn run_shuttle<S: shuttle::scheduler::Scheduler + Send + 'static>(
    sc: &Scenario,
    scheduler: S,
    (slot, count, tally): ShuttleShared<'_>,
    dir: &Path,
) {
    let mut config = shuttle::Config::new();
    config.failure_persistence = shuttle::FailurePersistence::File(Some(dir.to_path_buf()));
    let (sc2, slot2, count2, tally2) = (sc.clone(), slot.clone(), count.clone(), tally.clone());
    let result = quietly(|| {
        shuttle::Runner::new(scheduler, config).run(move || {
            count2.fetch_add(1, Ordering::Relaxed);
            let out = execute::<Shuttle>(&sc2);
            merge_into(&tally2, &out.coverage);
            if !out.holds() {
                *slot2.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure_of(&out));
                panic!("{PROPERTY_BROKE}");
            }
        })
    });
    keep_foreign_panic("shuttle", result, slot);
}

/// The panic message the body raises when a property broke (shuttle then persists the schedule).
const PROPERTY_BROKE: &str = "harrow: a property broke";

/// The panic message the body raises to make shuttle persist a passing schedule.
const RECORDING: &str = "harrow: recording a passing schedule";

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".into()
    }
}

/// One execution replayed from a recorded shuttle schedule.
#[derive(Clone, Debug)]
pub enum ShuttleReplay {
    /// The schedule fitted; this is what the execution did.
    Ran {
        /// Properties broken; empty when it held.
        problems: Vec<String>,
        /// The numbered trace.
        trace: String,
    },
    /// The schedule no longer fits the code (shuttle's replay scheduler gave up), or does not
    /// decode; the text says how.
    Stale(String),
}

/// Messages of shuttle's replay scheduler when a schedule does not fit the execution.
const STALE_SIGNS: [&str; 5] = [
    "schedule ended early",
    "expected context switch",
    "expected random choice",
    "scheduled task is not runnable",
    "invalid schedule",
];

/// Shuttle's replay scheduler, held to the schedule until the body returns.
///
/// A recorded schedule covers the body: a failing one ends where the body panicked, and a
/// passing one is recorded the same way (see [`shuttle_record_passing`]). After a body that
/// returns normally, shuttle switches once more (so that threads still finishing can end)
/// and those steps are not in the recording; past the body's end the schedule may therefore
/// run out, and the remaining steps are taken in task order. Before it, running out means
/// the schedule no longer fits the code.
#[derive(Debug)]
struct BodyReplay {
    inner: shuttle::scheduler::ReplayScheduler,
    body_done: Arc<std::sync::atomic::AtomicBool>,
    off_script: bool,
}

impl BodyReplay {
    fn past_the_body<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.off_script {
            return None;
        }
        if !self.body_done.load(Ordering::SeqCst) {
            return Some(step(self));
        }
        match catch_unwind(AssertUnwindSafe(|| step(self))) {
            Ok(t) => Some(t),
            Err(p) if panic_message(&*p).contains("schedule ended early") => {
                self.off_script = true;
                None
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl shuttle::scheduler::Scheduler for BodyReplay {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        current: Option<shuttle::scheduler::TaskId>,
        is_yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        self.past_the_body(|s| s.inner.next_task(runnable, current, is_yielding))
            .unwrap_or_else(|| runnable.first().map(|t| t.id()))
    }

    fn next_u64(&mut self) -> u64 {
        self.past_the_body(|s| s.inner.next_u64()).unwrap_or(0)
    }
}

/// Replays `sc` on one recorded shuttle schedule (the encoded string shuttle persists).
pub fn shuttle_replay(sc: &Scenario, schedule: &str) -> ShuttleReplay {
    type Ran = Arc<Mutex<Option<(Vec<String>, String)>>>;
    let ran: Ran = Arc::new(Mutex::new(None));
    let body_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sc2, ran2, done2) = (sc.clone(), ran.clone(), body_done.clone());
    // Shuttle's decoder panics on a schedule it cannot read (with "invalid schedule", or an
    // index out of bounds on a cut-short one).
    let inner = match silenced(|| shuttle::scheduler::ReplayScheduler::new_from_encoded(schedule)) {
        Ok(inner) => inner,
        Err(p) => {
            return ShuttleReplay::Stale(format!(
                "invalid schedule: it does not decode ({})",
                panic_message(&*p)
            ));
        }
    };
    let result = quietly(|| {
        let scheduler = BodyReplay {
            inner,
            body_done,
            off_script: false,
        };
        let mut config = shuttle::Config::new();
        config.failure_persistence = shuttle::FailurePersistence::None;
        shuttle::Runner::new(scheduler, config).run(move || {
            let out = execute::<Shuttle>(&sc2);
            let holds = out.holds();
            *ran2.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((out.problems.clone(), out.numbered_trace()));
            if !holds {
                panic!("{PROPERTY_BROKE}");
            }
            done2.store(true, Ordering::SeqCst);
        })
    });
    let ran = ran.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (result, ran) {
        (Ok(_), Some((problems, trace))) => ShuttleReplay::Ran { problems, trace },
        (Ok(_), None) => ShuttleReplay::Stale("the replay ran no execution".into()),
        (Err(payload), ran) => {
            let msg = panic_message(&*payload);
            match ran {
                Some((problems, trace)) if msg == PROPERTY_BROKE => {
                    ShuttleReplay::Ran { problems, trace }
                }
                _ if STALE_SIGNS.iter().any(|s| msg.contains(s)) => {
                    // Shuttle lists every runnable task in full; the first clause says it all.
                    let short = msg.split(", but choices were").next().unwrap_or(&msg);
                    ShuttleReplay::Stale(short.to_string())
                }
                // Shuttle's own failure report (a deadlock, a panic in the model): a failure
                // that the schedule still reproduces.
                ran => ShuttleReplay::Ran {
                    problems: vec![format!("panic under shuttle: {msg}")],
                    trace: ran.map(|r| r.1).unwrap_or_default(),
                },
            }
        }
    }
}

/// The trace of the one random execution of `sc` that shuttle runs from `seed`, whatever it
/// broke: the same seed must give the same trace, step by step (the determinism self-check).
pub fn shuttle_trace(sc: &Scenario, seed: u64) -> Vec<String> {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let (sc2, trace2) = (sc.clone(), trace.clone());
    let _ = quietly(|| {
        let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(seed, 1);
        let mut config = shuttle::Config::new();
        config.failure_persistence = shuttle::FailurePersistence::None;
        shuttle::Runner::new(scheduler, config).run(move || {
            let out = execute::<Shuttle>(&sc2);
            *trace2.lock().unwrap_or_else(|p| p.into_inner()) = out.trace;
        })
    });
    let trace = trace.lock().unwrap_or_else(|p| p.into_inner());
    trace.clone()
}

/// Runs one random execution of `sc` from `seed` and, if every property held, returns the
/// schedule shuttle persisted for it (the body fails on purpose at its very end so that
/// shuttle records it), for corpus entries that expect the shipped protocol to pass.
pub fn shuttle_record_passing(sc: &Scenario, seed: u64) -> Option<String> {
    let dir = schedule_dir(sc);
    let held = Arc::new(Mutex::new(false));
    let (sc2, held2) = (sc.clone(), held.clone());
    let _ = quietly(|| {
        let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(seed, 1);
        let mut config = shuttle::Config::new();
        config.failure_persistence = shuttle::FailurePersistence::File(Some(dir.clone()));
        shuttle::Runner::new(scheduler, config).run(move || {
            let out = execute::<Shuttle>(&sc2);
            *held2.lock().unwrap_or_else(|p| p.into_inner()) = out.holds();
            panic!("{RECORDING}");
        })
    });
    let held = *held.lock().unwrap_or_else(|p| p.into_inner());
    let schedule = newest_schedule(&dir).filter(|_| held);
    let _ = std::fs::remove_dir_all(&dir);
    schedule
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

/// Runs `f` on a fresh thread (see below), catching its panic, with the panic message hook
/// silenced meanwhile.
///
/// Shuttle skips persisting a failing schedule when its thread already persisted one of the
/// same length (a thread-local guard against persisting one failure twice), so a second
/// failure on the same thread, in another run, would lose its schedule; a fresh thread per
/// run starts with a fresh guard.
fn quietly<R: Send>(f: impl FnOnce() -> R + Send) -> std::thread::Result<R> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("harrow-shuttle".into())
            .spawn_scoped(s, || silenced(f))
            .map_or_else(
                |e| Err(Box::new(e.to_string()) as _),
                |h| h.join().and_then(|r| r),
            )
    })
}

/// Runs `f`, catching its panic, with the panic message hook silenced meanwhile.
fn silenced<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `engine::loom` threw away what `Builder::check` returned, so a panic of loom's own (a
    /// deadlock it detected, its branch bound exceeded) or of the model outside our property
    /// check left no failure behind, and the row read "holds" (shuttle's runner already kept
    /// such panics). The result is now kept, as for shuttle.
    #[test]
    fn bug_loom_panic_of_its_own_passes_as_holds() {
        let run = run_loom(
            LoomBudget {
                preemptions: Some(1),
            },
            || {
                panic!("not a property of ours");
            },
        );
        let failure = run.failure.expect("a panic in the model is a failure");
        assert_eq!(
            failure.problems,
            vec!["panic under loom: not a property of ours".to_string()]
        );
    }

    /// A body that reports a failure is stopped at its first execution, with that failure.
    #[test]
    fn loom_keeps_the_first_failure_the_body_reports() {
        let run = run_loom(
            LoomBudget {
                preemptions: Some(1),
            },
            || {
                Some(Failure {
                    problems: vec!["property 9 broke".into()],
                    trace: "1. step".into(),
                    schedule: None,
                })
            },
        );
        assert_eq!(run.explored, 1);
        let failure = run.failure.expect("the reported failure");
        assert_eq!(failure.problems, vec!["property 9 broke".to_string()]);
    }
}
