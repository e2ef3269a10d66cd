//! `harrow bench`: each figure of PERF.md beside its raw baseline, measured in the same run.
//!
//! Every harrow figure is a median over many rounds, printed with the baseline it is held
//! against (the raw syscall path, or the peer), their ratio, and the target ratio. Absolute
//! times on a shared two-core machine are noisy; ratios measured side by side are not.

use std::process::Command;
use std::time::{Duration, Instant};

use harrow_model::wire::Role;
use harrow_model::{SpawnMethod, Timeouts};

use crate::Registry;
use crate::bench_baseline::{self, median};
use crate::nursery::{Error, Nursery, NurseryConfig};
use crate::sys::SocketKind;

/// The actors the bench spawns; merge them into the registry given to [`crate::init`].
pub fn registry() -> Registry {
    Registry::new()
        .handler("bench-echo", |n: u64| Ok::<u64, String>(n))
        .actor("bench-spin", || Spin)
}

/// A daemon that never yields once started: teardown must kill it.
struct Spin;

impl harrow_model::driver::Actor for Spin {
    fn start(&mut self, _name: &str) -> Result<(), harrow_model::wire::RemoteError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    fn main(&mut self) -> Result<Vec<u8>, harrow_model::wire::RemoteError> {
        Ok(Vec::new())
    }
    fn handle(
        &mut self,
        _: harrow_model::RequestId,
        p: Vec<u8>,
    ) -> Result<Vec<u8>, harrow_model::wire::RemoteError> {
        Ok(p)
    }
}

/// One line of the bench table.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What harrow did.
    pub name: String,
    /// harrow's median.
    pub harrow: Duration,
    /// The baseline it is held against.
    pub baseline_name: String,
    /// The baseline's median, measured in the same run (`None` if it could not be).
    pub baseline: Option<Duration>,
    /// The target: harrow / baseline at most this (or, with `at_least`, at least).
    pub target: f64,
    /// The target is a lower bound on baseline / harrow (a speed-up), not an upper bound.
    pub speedup: bool,
}

impl Figure {
    /// harrow / baseline (or baseline / harrow for a speed-up).
    pub fn ratio(&self) -> Option<f64> {
        let b = self.baseline?.as_secs_f64();
        let h = self.harrow.as_secs_f64();
        if self.speedup {
            (h > 0.0).then(|| b / h)
        } else {
            (b > 0.0).then(|| h / b)
        }
    }

    /// Whether the ratio meets the target.
    pub fn meets(&self) -> Option<bool> {
        let r = self.ratio()?;
        Some(if self.speedup {
            r >= self.target
        } else {
            r <= self.target
        })
    }
}

fn config(method: SpawnMethod) -> NurseryConfig {
    NurseryConfig {
        method,
        handle_sigint: false,
        ..NurseryConfig::default()
    }
}

/// Median time from `spawn` to the handshake, children stopped between rounds (untimed).
fn spawn_to_handshake(method: SpawnMethod, rounds: usize) -> Result<Duration, Error> {
    let mut n = Nursery::open_with(config(method))?;
    // Warm up: the fork server starts on the first spawn; page caches fill.
    for i in 0..5 {
        let c = n.spawn(&format!("warm{i}"), "bench-echo")?;
        n.stop(c)?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        let c = n.spawn(&format!("c{i}"), "bench-echo")?;
        samples.push(t.elapsed());
        n.stop(c)?;
    }
    n.teardown();
    Ok(median(&mut samples))
}

/// Median request/reply round trip to one Fork child.
fn request_reply(rounds: usize) -> Result<Duration, Error> {
    let mut n = Nursery::open_with(config(SpawnMethod::Fork))?;
    let c = n.spawn("echo", "bench-echo")?;
    for i in 0..1000u64 {
        let _: u64 = n.request(c, &i)?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds as u64 {
        let t = Instant::now();
        let _: u64 = n.request(c, &i)?;
        samples.push(t.elapsed());
    }
    n.teardown();
    Ok(median(&mut samples))
}

/// 25 children: spawn side by side, one request each, graceful teardown; median of `rounds`.
fn full_cycle_25(method: SpawnMethod, rounds: usize) -> Result<Duration, Error> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut n = Nursery::open_with(config(method))?;
        let kids: Vec<_> = (0..25)
            .map(|i| n.start_with(&format!("c{i}"), "bench-echo", method, Role::Daemon))
            .collect::<Result<_, _>>()?;
        for &k in &kids {
            n.ready(k)?;
        }
        for (i, &k) in kids.iter().enumerate() {
            let _: u64 = n.request(k, &(i as u64))?;
        }
        let report = n.teardown();
        samples.push(t.elapsed());
        if !report.errors.is_empty() {
            return Err(Error::Child(report.errors[0].clone()));
        }
    }
    Ok(median(&mut samples))
}

/// The teardown of 25 children that never yield, in the report's own time.
fn stuck_teardown_25(timeouts: Timeouts) -> Result<Duration, Error> {
    let mut n = Nursery::open_with(NurseryConfig {
        timeouts,
        ..config(SpawnMethod::Fork)
    })?;
    let kids: Vec<_> = (0..25)
        .map(|i| {
            n.start_with(
                &format!("s{i}"),
                "bench-spin",
                SpawnMethod::Fork,
                Role::Daemon,
            )
        })
        .collect::<Result<_, _>>()?;
    for &k in &kids {
        n.ready(k)?;
    }
    let report = n.teardown();
    report.duration().ok_or(Error::Closed)
}

/// Per-child cost of spawning `count` children side by side and tearing them down.
fn per_child(count: usize) -> Result<Duration, Error> {
    let t = Instant::now();
    let mut n = Nursery::open_with(NurseryConfig {
        limits: harrow_model::Limits {
            max_children: count as u32 + 1,
            ..Default::default()
        },
        ..config(SpawnMethod::Fork)
    })?;
    let kids: Vec<_> = (0..count)
        .map(|i| {
            n.start_with(
                &format!("c{i}"),
                "bench-echo",
                SpawnMethod::Fork,
                Role::Daemon,
            )
        })
        .collect::<Result<_, _>>()?;
    for &k in &kids {
        n.ready(k)?;
    }
    n.teardown();
    Ok(t.elapsed() / count as u32)
}

/// Python multiprocessing (fork): 25 children, one round trip each, joined; the peer figure.
fn python_mp_fork_25(rounds: usize) -> Option<Duration> {
    let script = format!(
        "import multiprocessing as mp, time\n\
         def child(conn):\n    conn.send(conn.recv())\n\
         ctx = mp.get_context('fork')\n\
         ts = []\n\
         for _ in range({rounds}):\n\
         \x20   t = time.perf_counter()\n\
         \x20   ps = []\n\
         \x20   for i in range(25):\n\
         \x20       a, b = ctx.Pipe()\n\
         \x20       p = ctx.Process(target=child, args=(b,)); p.start(); ps.append((p, a))\n\
         \x20   for i, (p, a) in enumerate(ps):\n\
         \x20       a.send(i); a.recv()\n\
         \x20   for p, a in ps:\n\
         \x20       p.join()\n\
         \x20   ts.append(time.perf_counter() - t)\n\
         ts.sort(); print(ts[len(ts)//2])\n"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// Runs every measurement; `rounds` scales them all.
pub fn run(rounds: usize) -> Result<(Vec<Figure>, Vec<String>), Error> {
    let base = |r: Result<Duration, crate::sys::SysError>| r.ok();
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let mut fig = |name: &str,
                   harrow: Duration,
                   baseline_name: &str,
                   baseline: Option<Duration>,
                   target: f64,
                   speedup: bool| {
        figures.push(Figure {
            name: name.into(),
            harrow,
            baseline_name: baseline_name.into(),
            baseline,
            target,
            speedup,
        });
    };
    // Fork first: it needs a single-threaded process (thread children come later).
    let fork = spawn_to_handshake(SpawnMethod::Fork, rounds)?;
    fig(
        "Fork: spawn to handshake",
        fork,
        "fork + _exit + waitid",
        base(bench_baseline::fork_round_trip(rounds)),
        1.5,
        false,
    );
    let rr = request_reply(rounds * 10)?;
    fig(
        "request / reply round trip",
        rr,
        "socketpair ping-pong",
        base(bench_baseline::socketpair_ping_pong(
            SocketKind::Stream,
            rounds * 10,
        )),
        1.5,
        false,
    );
    let served = spawn_to_handshake(SpawnMethod::ForkServer, rounds)?;
    fig(
        "ForkServer: spawn to handshake",
        served,
        "raw fork-server round trip",
        base(bench_baseline::fork_server_round_trip(rounds)),
        1.5,
        false,
    );
    let exec = spawn_to_handshake(SpawnMethod::Exec, rounds / 4 + 1)?;
    fig(
        "Exec: spawn to handshake",
        exec,
        "posix_spawn /bin/true + wait",
        base(bench_baseline::spawn_true_round_trip(rounds / 4 + 1)),
        1.2,
        false,
    );
    let cycle_rounds = (rounds / 20).max(3);
    let cycle = full_cycle_25(SpawnMethod::Fork, cycle_rounds)?;
    fig(
        "25 children, full cycle (Fork)",
        cycle,
        "Python multiprocessing fork, same work",
        python_mp_fork_25(cycle_rounds),
        10.0,
        true,
    );
    let timeouts = Timeouts {
        cancel_ack: Duration::from_millis(100),
        kill_grace: Duration::from_millis(100),
        ..Timeouts::default()
    };
    let stuck = stuck_teardown_25(timeouts)?;
    let bound = timeouts.cancel_ack + timeouts.kill_grace + Duration::from_millis(25);
    fig(
        "teardown of 25 stuck children",
        stuck,
        "cancel_ack + kill_grace + 25 ms",
        Some(bound),
        1.0,
        false,
    );
    for count in [250, 500, 1000] {
        let cost = per_child(count)?;
        notes.push(format!(
            "{count:>5} children spawned side by side and torn down: {:>8.1} µs per child",
            cost.as_secs_f64() * 1e6
        ));
    }
    Ok((figures, notes))
}

/// The table.
pub fn render(figures: &[Figure], notes: &[String]) -> String {
    let mut out = format!(
        "{:<34} {:>12}   {:<40} {:>12} {:>8} {:>9}  {}\n",
        "harrow", "median", "baseline (same run)", "median", "ratio", "target", "meets"
    );
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    for f in figures {
        let ratio = f
            .ratio()
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into());
        let target = if f.speedup {
            format!(">= {:.1}x", f.target)
        } else {
            format!("<= {:.1}x", f.target)
        };
        let meets = match f.meets() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not measured",
        };
        let baseline = f.baseline.map(us).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<34} {:>12}   {:<40} {:>12} {:>8} {:>9}  {meets}\n",
            f.name,
            us(f.harrow),
            f.baseline_name,
            baseline,
            ratio,
            target
        ));
    }
    for n in notes {
        out.push_str(n);
        out.push('\n');
    }
    out
}
