//! A service nursery: one nursery that spawns and stops children for ever.
//!
//! A nursery counts and keeps only its live children (a child that is over is retired), so
//! its descriptors, its memory and the cost of one more spawn do not grow with its history.
//! The scenario spawns and stops children one after another and compares the first
//! thousand with the last, with the bounds of `harrow soak`.

use std::time::{Duration, Instant};

use harrow_model::Timeouts;
use harrow_model::error::ChildOpError;
use harrow_real::Error;

use super::{DOUBLE, Failure, SpawnMethod, Verdict, open, open_fd_count, with_nursery};
use crate::baseline::median;
use crate::soak::{RSS_SLACK, SLOWDOWN, WINDOW, resident_bytes};

/// Children of the full run (`harrow smoke --scenario service-nursery`).
const FULL: usize = 100_000;
/// Children of the scaled-down run of the test suite.
pub const SCALED: usize = 5_000;

/// What one window of spawns cost, and what the process held at its end.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The median time of one spawn (from the call to the child's handshake).
    spawn: Duration,
    /// The median CPU time the spawning thread spent in one spawn: the parent's own cost,
    /// without the wait for the child to be scheduled and answer, which is what the machine's
    /// other load stretches; what grows if a nursery's spawn costs more as it ages.
    spawn_cpu: Duration,
    /// The median time of one spawn and its stop.
    cycle: Duration,
    /// Open descriptors.
    fds: usize,
    /// Resident memory in bytes.
    rss: u64,
}

/// The full scenario: [`FULL`] children.
pub fn service_nursery(method: SpawnMethod) -> Verdict {
    service_nursery_of(method, FULL)
}

/// One nursery spawns and stops `count` children in sequence: descriptors and memory stay
/// flat (the same descriptors, at most [`RSS_SLACK`] more memory after the first
/// window), the last window's median spawn is within [`SLOWDOWN`] of the first's, every
/// child exits 0 and nothing is reported.
pub fn service_nursery_of(method: SpawnMethod, count: usize) -> Verdict {
    if count < 2 * WINDOW {
        return Err(Failure(format!(
            "{count} children cannot make two windows of {WINDOW}; ask for at least {}",
            2 * WINDOW
        )));
    }
    let started = Instant::now();
    let ((first, last), report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
        let first = window(n, 0)?;
        for i in WINDOW..count - WINDOW {
            let c = n.spawn("service", DOUBLE)?;
            n.stop(c)
                .map_err(|e| Failure(format!("stop of child {i}: {e}")))?;
        }
        Ok((first, window(n, count - WINDOW)?))
    })?;
    let took = started.elapsed();
    super::no_errors(&report)?;
    let exited = report.retired.exited;
    if exited != count as u64 || report.retired.total() != exited {
        return Err(Failure(format!(
            "expected {count} children retired after exiting 0, got {:?}",
            report.retired
        )));
    }
    let figures = render(method, count, took, &first, &last);
    judge(&first, &last).map_err(|e| Failure(format!("{e}\n{figures}")))?;
    Ok(figures)
}

/// Spawns and stops [`WINDOW`] children (the `from`th onwards), timing each.
fn window(n: &mut harrow_real::Nursery, from: usize) -> Result<Window, Failure> {
    let mut spawns = Vec::with_capacity(WINDOW);
    let mut spawn_cpus = Vec::with_capacity(WINDOW);
    let mut cycles = Vec::with_capacity(WINDOW);
    for i in from..from + WINDOW {
        let t0 = Instant::now();
        let c0 = thread_cpu_time()?;
        let c = n.spawn("service", DOUBLE)?;
        spawn_cpus.push(thread_cpu_time()?.saturating_sub(c0));
        let t1 = Instant::now();
        n.stop(c)
            .map_err(|e| Failure(format!("stop of child {i}: {e}")))?;
        spawns.push(t1 - t0);
        cycles.push(t0.elapsed());
    }
    Ok(Window {
        spawn: median(&mut spawns),
        spawn_cpu: median(&mut spawn_cpus),
        cycle: median(&mut cycles),
        fds: open_fd_count()?,
        rss: resident_bytes().map_err(Failure)?,
    })
}

/// Flat: the same descriptors, bounded memory growth, and no slowdown past the bound.
fn judge(first: &Window, last: &Window) -> Result<(), String> {
    if last.fds != first.fds {
        return Err(format!(
            "{} descriptors open after the first {WINDOW} children, {} at the end: finished \
             children keep descriptors",
            first.fds, last.fds
        ));
    }
    let grew = last.rss.saturating_sub(first.rss);
    if grew > RSS_SLACK {
        return Err(format!(
            "the resident set grew {} KiB after the first {WINDOW} children, over the bound \
             of {} KiB: finished children keep memory",
            grew / 1024,
            RSS_SLACK / 1024
        ));
    }
    // Judged on the spawning thread's CPU time: the wall-clock median also holds the wait
    // for each child's handshake, which other load on the machine stretches at random (the
    // suite runs tests side by side: 1.32x was seen so, with no growth in CPU time).
    let slowdown = ratio(last.spawn_cpu, first.spawn_cpu);
    if slowdown > SLOWDOWN {
        return Err(format!(
            "the last {WINDOW} spawns took {slowdown:.2}x the first {WINDOW}'s CPU time in the \
             spawning thread (median), over {SLOWDOWN}x: spawning costs more as the nursery ages"
        ));
    }
    Ok(())
}

/// The CPU time this thread has used so far.
fn thread_cpu_time() -> Result<Duration, Failure> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_err(|e| Failure(format!("clock_gettime(CLOCK_THREAD_CPUTIME_ID): {e}")))?;
    Ok(Duration::from(t))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn render(
    method: SpawnMethod,
    count: usize,
    took: Duration,
    first: &Window,
    last: &Window,
) -> String {
    let row = |w: &Window, what: &str| {
        format!(
            "  {what:<16} spawn {:>9.1?} (CPU {:>9.1?})  spawn+stop {:>9.1?}  fds {:>3}  rss \
             {:>7} KiB",
            w.spawn,
            w.spawn_cpu,
            w.cycle,
            w.fds,
            w.rss / 1024
        )
    };
    format!(
        "{count} children spawned and stopped in sequence by {method} in {took:.1?} \
         ({:.1?} a child on average; medians below)\n{}\n{}\n  last/first spawn CPU {:.2}x \
         (bound {SLOWDOWN}x; wall-clock {:.2}x), rss {:+} KiB (bound {} KiB), fds {:+}",
        took / u32::try_from(count).unwrap_or(u32::MAX),
        row(first, &format!("first {WINDOW}")),
        row(last, &format!("last {WINDOW}")),
        ratio(last.spawn_cpu, first.spawn_cpu),
        ratio(last.spawn, first.spawn),
        (last.rss as i64 - first.rss as i64) / 1024,
        RSS_SLACK / 1024,
        last.fds as i64 - first.fds as i64,
    )
}

/// A nursery of at most two live children spawns and stops five, one after another, and a
/// handle to the first (stopped) child gets a typed error, never another child.
pub fn spawns_past_max_children_ever_held(method: SpawnMethod) -> Verdict {
    let mut config = super::config(method, Timeouts::TRACTOR);
    config.limits.max_children = 2;
    let nursery =
        harrow_real::Nursery::open_with(config).map_err(|e| Failure(format!("open: {e}")))?;
    let ((first, asked), report) = with_nursery(nursery, |n| {
        let first = n.spawn("service", DOUBLE)?;
        n.stop(first)?;
        for i in 2..=5 {
            let c = n
                .spawn("service", DOUBLE)
                .map_err(|e| Failure(format!("spawn {i} with no child live: {e}")))?;
            n.stop(c)?;
        }
        Ok((first, n.request::<u64, u64>(first, &2)))
    })?;
    super::no_errors(&report)?;
    match asked {
        Err(Error::Op(ChildOpError::AlreadyFinished(c))) if c == first.id() => Ok(format!(
            "5 children through a nursery of 2; a stale handle: {c} has already finished"
        )),
        other => Err(Failure(format!(
            "a request to a stopped child's handle should be AlreadyFinished, got {other:?}"
        ))),
    }
}
