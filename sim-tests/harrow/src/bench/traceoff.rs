//! `harrow bench --against PATH`: what the trace points cost when tracing is off, measured
//! in one run. A Cargo feature cannot be both on and off in one binary, so two measuring
//! processes run side by side, each `harrow bench-peer`, which measures a batch of a hot
//! figure on request: this `harrow` (built with its default feature `trace`: the points
//! compiled in) and the one at `PATH` (built `--no-default-features`: compiled out), both
//! with `HARROW_TRACE_DIR` unset, both children of this process in the same state. Each
//! round the two take turns (which goes first alternates), so that drift on this shared
//! machine hits both alike; a figure is the median of its rounds' batches.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use harrow_model::SpawnMethod;
use harrow_real::{Error, Nursery};

use super::{Figure, Table, config, cpu_per_round, harrow_session, pinned, pipelined};
use crate::baseline::median;

/// The hot figures, each a batch either process measures: its name on the peer's stdin,
/// what it is called in the table, and the batch's size.
const FIGURES: [(&str, &str, usize); 5] = [
    ("fork-spawn", "Fork: spawn to handshake", 40),
    ("round-trip", "request / reply round trip", 2_000),
    ("round-trip-pinned", "round trip, pinned to one CPU", 2_000),
    ("round-trip-cpu", "round trip CPU time, both sides", 5_000),
    (
        "pipelined",
        "pipelined, 25 children x 64 in flight, per request",
        6_400,
    ),
];

/// The ratio (compiled in and off / compiled out) each figure is held to.
const TARGET: f64 = 1.05;

/// Whether this build has the trace points compiled in.
const COMPILED_IN: bool = cfg!(feature = "trace");

/// One batch of `figure`, `n` samples: its median (per request for the pipelined figure,
/// CPU per round trip for the CPU figure).
fn batch(figure: &str, n: usize) -> Result<Duration, String> {
    let e = |e: Error| format!("{figure}: {e}");
    match figure {
        "fork-spawn" => spawns(n).map_err(e),
        "round-trip" => round_trips(n).map_err(e),
        "round-trip-pinned" => pinned(|| round_trips(n))
            .ok_or_else(|| format!("{figure}: cannot pin this thread to one CPU"))?
            .map_err(e),
        "round-trip-cpu" => cpu_per_round(n, harrow_session).map_err(e),
        "pipelined" => pipelined(n).map(|d| d / n as u32).map_err(e),
        other => Err(format!("no figure named `{other}`")),
    }
}

/// `n` Fork spawns to handshake, each child stopped after its (untimed) round.
fn spawns(n: usize) -> Result<Duration, Error> {
    let mut nursery = Nursery::open_with(config(SpawnMethod::Fork))?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let c = nursery.spawn(&format!("c{i}"), "bench-echo")?;
        times.push(t.elapsed());
        nursery.stop(c)?;
    }
    let _ = nursery.teardown();
    Ok(median(&mut times))
}

/// `n` sequential round trips to one Fork child, after 100 untimed ones.
fn round_trips(n: usize) -> Result<Duration, Error> {
    let mut nursery = Nursery::open_with(config(SpawnMethod::Fork))?;
    let c = nursery.spawn("echo", "bench-echo")?;
    for i in 0..100u64 {
        let _: u64 = nursery.request(c, &i)?;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        let _: u64 = nursery.request(c, &i)?;
        times.push(t.elapsed());
    }
    let _ = nursery.teardown();
    Ok(median(&mut times))
}

/// `harrow bench-peer`: says whether the trace points are compiled in, then answers each
/// line `<figure> <n>` of its stdin with the batch's median in nanoseconds (or `error: ...`),
/// until end of input.
pub fn serve() -> std::process::ExitCode {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "trace-compiled-in {COMPILED_IN}").is_err() {
        return crate::exit::verdict(false);
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let (figure, n) = (words.next().unwrap_or(""), words.next());
        let answer = match n.and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => batch(figure, n).map(|d| d.as_nanos().to_string()),
            None => Err(format!("`{line}` is not `<figure> <samples>`")),
        };
        let text = answer.unwrap_or_else(|e| format!("error: {e}"));
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    crate::exit::verdict(true)
}

/// The peer process: the other `harrow`, running `bench-peer`.
struct Peer {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `path bench-peer`, with tracing off; refuses a peer whose points are not
    /// compiled in as `compiled_in` says.
    fn start(path: &Path, compiled_in: bool) -> Result<Peer, String> {
        let mut child = Command::new(path)
            .arg("bench-peer")
            .env_remove(harrow_real::trace::DIR_VAR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the peer's pipes were not made".into());
        };
        let mut peer = Peer {
            child,
            to,
            from: BufReader::new(from),
        };
        let line = peer.line()?;
        let (with, without) = ("trace-compiled-in true", "trace-compiled-in false");
        match line.as_str() {
            l if l == if compiled_in { with } else { without } => Ok(peer),
            l if l == with || l == without => Err(format!(
                "{} has the trace points compiled {}: build the one to compare with \
                 `cargo build --profile perf -p harrow --no-default-features`, copy it aside, \
                 and run `bench --against` from the default build",
                path.display(),
                if compiled_in { "out" } else { "in" }
            )),
            other => Err(format!(
                "{} answered `{other}`: is it a harrow with `bench-peer`?",
                path.display()
            )),
        }
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(0) => Err("the peer exited".into()),
            Ok(_) => Ok(line.trim().to_string()),
            Err(e) => Err(format!("cannot read the peer: {e}")),
        }
    }

    /// One batch measured by the peer.
    fn batch(&mut self, figure: &str, n: usize) -> Result<Duration, String> {
        writeln!(self.to, "{figure} {n}")
            .and_then(|()| self.to.flush())
            .map_err(|e| format!("cannot write to the peer: {e}"))?;
        let line = self.line()?;
        line.parse::<u64>()
            .map(Duration::from_nanos)
            .map_err(|_| format!("the peer: {line}"))
    }

    /// Closes its stdin (it exits at end of input) and waits for it.
    fn finish(mut self) {
        drop(self.to);
        let _ = self.child.wait();
    }
}

/// Measures each hot figure `rounds` times in this harrow and in the one at `against`,
/// alternately, each in a `bench-peer` process: the table's rows, and a note per figure with
/// the range of its rounds' ratios.
pub fn run(against: &Path, rounds: usize) -> Result<(Vec<Figure>, Vec<String>), String> {
    let me = std::env::current_exe().map_err(|e| format!("where is this harrow? {e}"))?;
    let mut traced = Peer::start(&me, true)?;
    let mut untraced = match Peer::start(against, false) {
        Ok(p) => p,
        Err(e) => {
            traced.finish();
            return Err(e);
        }
    };
    let measured = figures(&mut traced, &mut untraced, rounds.max(1));
    traced.finish();
    untraced.finish();
    measured
}

/// Each figure's rounds, `traced` and `untraced` taking turns.
fn figures(
    traced: &mut Peer,
    untraced: &mut Peer,
    rounds: usize,
) -> Result<(Vec<Figure>, Vec<String>), String> {
    let mut table = Table::default();
    let mut notes = Vec::new();
    for (figure, name, n) in FIGURES {
        // One untimed pair first: page caches, the child's first faults.
        traced.batch(figure, n.min(100))?;
        untraced.batch(figure, n.min(100))?;
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = traced.batch(figure, n)?;
                (a, untraced.batch(figure, n)?)
            } else {
                let b = untraced.batch(figure, n)?;
                (traced.batch(figure, n)?, b)
            };
            ratios.push(a.as_secs_f64() / b.as_secs_f64().max(1e-12));
            ours.push(a);
            theirs.push(b);
        }
        ratios.sort_by(f64::total_cmp);
        notes.push(format!(
            "{name}: the ratio of each of {rounds} rounds ranged {:.2}x to {:.2}x",
            ratios[0],
            ratios[ratios.len() - 1]
        ));
        table.at_most(
            &format!("{name}, trace compiled in (off)"),
            median(&mut ours),
            (
                &format!("{name}, trace compiled out"),
                Some(median(&mut theirs)),
            ),
            TARGET,
        );
    }
    Ok((table.0, notes))
}
