//! `harrow bench`: each figure of PERF.md beside its raw baseline, measured in the same run.
//!
//! Every harrow figure is a median over many rounds, printed with the baseline it is held
//! against (the raw syscall path, or the peer), their ratio, and the target ratio. Absolute
//! times on a shared two-core machine are noisy; ratios measured side by side are not.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harrow_model::wire::{DEFAULT_MAX_FRAME, Message, Role};
use harrow_model::{RequestId, SpawnMethod, Timeouts};

mod asynk;
pub mod traceoff;

use crate::baseline::{self, Echo, PingPong, RawForkServer, median};
use harrow_real::Registry;
use harrow_real::sys::{SocketKind, SysError};
use harrow_real::{Cancel, Completion, Daemon, Error, Nursery, NurseryConfig};

/// The actors the bench spawns; merge them into the registry given to [`harrow_real::init`].
pub fn registry() -> Registry {
    Registry::new()
        .handler("bench-echo", |n: u64| Ok::<u64, String>(n))
        .daemon("bench-spin", || Spin)
}

/// A daemon that never yields once started: teardown must kill it.
struct Spin;

impl Daemon for Spin {
    fn start(&mut self, _name: &str) -> Result<(), harrow_model::wire::RemoteError> {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    fn handle(
        &mut self,
        _: harrow_model::RequestId,
        p: Vec<u8>,
        _: &Cancel<'_>,
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
    NurseryConfig::default()
        .with_method(method)
        .with_handle_sigint(false)
}

/// Untimed pairs of rounds before the timed ones (page caches, the fork server's start).
const WARM_UP: usize = 5;

/// Alternates one harrow round and one baseline round, so that a background load that comes
/// and goes on this shared machine hits both alike; returns both medians. A baseline that
/// fails is reported as not measured (`None`), harrow going on alone.
fn paired(
    rounds: usize,
    harrow: impl FnMut() -> Result<Duration, Error>,
    baseline: impl FnMut() -> Result<Duration, SysError>,
) -> Result<(Duration, Option<Duration>), Error> {
    let (mut ours, theirs) = paired_samples(rounds, harrow, baseline)?;
    Ok((median(&mut ours), theirs.map(|mut s| median(&mut s))))
}

/// [`paired`]'s samples, unsorted: harrow's, and the baseline's unless it failed.
fn paired_samples(
    rounds: usize,
    mut harrow: impl FnMut() -> Result<Duration, Error>,
    mut baseline: impl FnMut() -> Result<Duration, SysError>,
) -> Result<(Vec<Duration>, Option<Vec<Duration>>), Error> {
    let mut ours = Vec::with_capacity(rounds);
    let mut theirs = Some(Vec::with_capacity(rounds));
    for i in 0..WARM_UP + rounds {
        let h = harrow()?;
        let b = theirs.as_ref().map(|_| baseline());
        if i < WARM_UP {
            if let Some(Err(_)) = b {
                theirs = None;
            }
            continue;
        }
        ours.push(h);
        match (b, theirs.as_mut()) {
            (Some(Ok(d)), Some(samples)) => samples.push(d),
            (Some(Err(_)), _) => theirs = None,
            _ => {}
        }
    }
    Ok((ours, theirs))
}

/// Spawn-to-handshake rounds with `method`, each child stopped after its (untimed) round,
/// against `baseline`.
fn spawn_to_handshake(
    method: SpawnMethod,
    rounds: usize,
    baseline: impl FnMut() -> Result<Duration, SysError>,
) -> Result<(Duration, Option<Duration>), Error> {
    let mut n = Nursery::open_with(config(method))?;
    let mut i = 0;
    let measured = paired(
        rounds,
        || {
            i += 1;
            let name = format!("c{i}");
            let t = Instant::now();
            let c = n.spawn(&name, "bench-echo")?;
            let spent = t.elapsed();
            n.stop(c)?;
            Ok(spent)
        },
        baseline,
    );
    // Only the timing matters here.
    let _ = n.teardown();
    measured
}

/// Sessions of the request/reply figure: each a fresh harrow child and a fresh echo child.
/// A round trip costs two to three times as much when the two ends run on different CPUs
/// (each wake-up crosses to the other, perhaps idle, CPU) as on one. Where the scheduler puts
/// a child follows the order the two are forked in (the first tends to take the idle CPU),
/// so the sessions alternate that order, and their samples are pooled.
const SESSIONS: usize = 8;

/// Request/reply round trips to Fork children against 1-byte socketpair ping-pongs.
fn request_reply(rounds: usize) -> Result<(Duration, Option<Duration>), Error> {
    let per_session = rounds.div_ceil(SESSIONS);
    let mut ours = Vec::with_capacity(rounds);
    let mut theirs = Some(Vec::with_capacity(rounds));
    for session in 0..SESSIONS {
        // Which child is forked first decides which CPU each tends to land on: alternate.
        let mut ping = None;
        if session % 2 == 1 {
            ping = PingPong::start(SocketKind::Stream).ok();
        }
        let mut n = Nursery::open_with(config(SpawnMethod::Fork))?;
        let c = n.spawn("echo", "bench-echo")?;
        if session % 2 == 0 {
            ping = PingPong::start(SocketKind::Stream).ok();
        }
        for i in 0..100u64 {
            let _: u64 = n.request(c, &i)?;
        }
        let mut i = 0u64;
        let measured = paired_samples(
            per_session,
            || {
                i += 1;
                let t = Instant::now();
                let _: u64 = n.request(c, &i)?;
                Ok(t.elapsed())
            },
            || match ping.as_mut() {
                Some(p) => p.round(),
                None => Err(SysError::os(harrow_real::sys::Op::Fork, libc::EAGAIN)),
            },
        );
        if let Some(p) = ping {
            let _ = p.finish();
        }
        // Only the timing matters here.
        let _ = n.teardown();
        let (h, b) = measured?;
        ours.extend(h);
        theirs = match (theirs, b) {
            (Some(mut all), Some(b)) => {
                all.extend(b);
                Some(all)
            }
            _ => None,
        };
    }
    Ok((median(&mut ours), theirs.map(|mut s| median(&mut s))))
}

/// One full cycle: 25 children spawned side by side, one request each, graceful teardown.
fn full_cycle_25(method: SpawnMethod) -> Result<Duration, Error> {
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
    let spent = t.elapsed();
    match report.errors.first() {
        Some(e) => Err(Error::Child(e.clone())),
        None => Ok(spent),
    }
}

/// The same work done raw: 25 forked echo children over blocking socketpairs, one round
/// trip each, then end of stream, exit and reap.
fn raw_cycle_25() -> Result<Duration, SysError> {
    let t = Instant::now();
    let mut peers = (0..25)
        .map(|_| PingPong::start(SocketKind::Stream))
        .collect::<Result<Vec<_>, _>>()?;
    for p in &mut peers {
        p.round()?;
    }
    for p in peers {
        p.finish()?;
    }
    Ok(t.elapsed())
}

/// CPU time (user + system) used so far by this process and by its children it has reaped.
fn cpu_used() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let spent = |who| {
        // It fails only for an invalid `who` or buffer (EINVAL, EFAULT): neither is possible here.
        let u = getrusage(who).expect("getrusage of this process and its children");
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
        };
        tv(u.user_time()) + tv(u.system_time())
    };
    spent(UsageWho::RUSAGE_SELF) + spent(UsageWho::RUSAGE_CHILDREN)
}

/// The CPU time per round of `rounds` sequential rounds, both processes together: the
/// child is started and reaped inside the measured span, so its whole life counts (a
/// spawn and an exit, spread over the rounds).
fn cpu_per_round<E>(
    rounds: usize,
    session: impl FnOnce(usize) -> Result<(), E>,
) -> Result<Duration, E> {
    let before = cpu_used();
    session(rounds)?;
    Ok(cpu_used().saturating_sub(before) / rounds as u32)
}

/// A request / reply session: a forked echo child, `requests` round trips, teardown.
fn harrow_session(requests: usize) -> Result<(), Error> {
    let mut n = Nursery::open_with(config(SpawnMethod::Fork))?;
    let c = n.spawn("echo", "bench-echo")?;
    for i in 0..requests as u64 {
        let _: u64 = n.request(c, &i)?;
    }
    match n.teardown().errors.first() {
        Some(e) => Err(Error::Child(e.clone())),
        None => Ok(()),
    }
}

/// The raw session it is held against: a forked echo child over a socketpair.
fn raw_session(requests: usize) -> Result<(), SysError> {
    let mut p = PingPong::start(SocketKind::Stream)?;
    for _ in 0..requests {
        p.round()?;
    }
    p.finish()
}

/// The sequential round trip's CPU cost, harrow's and the raw ping-pong's: the median of
/// `sessions` alternating sessions of `requests` each.
fn round_trip_cpu(sessions: usize, requests: usize) -> Result<(Duration, Option<Duration>), Error> {
    let mut ours = Vec::with_capacity(sessions);
    let mut theirs = Some(Vec::with_capacity(sessions));
    for _ in 0..sessions {
        ours.push(cpu_per_round(requests, harrow_session)?);
        let raw = cpu_per_round(requests, raw_session);
        theirs = match (theirs, raw) {
            (Some(mut all), Ok(d)) => {
                all.push(d);
                Some(all)
            }
            _ => None,
        };
    }
    Ok((median(&mut ours), theirs.map(|mut s| median(&mut s))))
}

/// Children of the pipelined figure, and the requests in flight to each.
const PIPELINED_CHILDREN: usize = 25;
const PIPELINE_DEPTH: usize = 64;

/// Pipelined throughput, as time per request: 25 Fork echo children with 64 requests in
/// flight to each, against a raw epoll-driven echo of frames of the same size over as many
/// socketpairs; the median of a few alternating runs of `total` requests each.
fn pipelined_figure(table: &mut Table, rounds: usize) -> Result<(), Error> {
    let total = (rounds * 200).max(PIPELINED_CHILDREN * PIPELINE_DEPTH * 4);
    let frame = Message::Request {
        id: RequestId(u64::from(u32::MAX)),
        payload: harrow_real::encode(&(total as u64)).unwrap_or_default(),
    }
    .encode_fitted(DEFAULT_MAX_FRAME)
    .len();
    let raw =
        |echo| baseline::pipelined_echo(PIPELINED_CHILDREN, PIPELINE_DEPTH, frame, total, echo);
    let per_request = |mut runs: Vec<Duration>| median(&mut runs) / total as u32;
    let (ours, theirs) = paired_samples(5, || pipelined(total), || raw(Echo::Batched))?;
    table.speedup(
        "pipelined, 25 children x 64 in flight, per request",
        per_request(ours),
        ("raw pipelined echo, same frames", theirs.map(per_request)),
        0.7,
    );
    // The same, against an echo that writes each frame back on its own, as a harrow child
    // must (property 15): what harrow costs beyond that one send per reply.
    let (ours, theirs) = paired_samples(5, || pipelined(total), || raw(Echo::PerFrame))?;
    table.speedup(
        "pipelined, as above, per request",
        per_request(ours),
        (
            "raw pipelined echo, one write per frame",
            theirs.map(per_request),
        ),
        0.7,
    );
    Ok(())
}

/// `total` requests to 25 ready Fork echo children, 64 in flight to each: a new one to a
/// child for each of its answers taken, until all are answered. The spawns and the teardown
/// are outside the span.
fn pipelined(total: usize) -> Result<Duration, Error> {
    let mut n = Nursery::open_with(config(SpawnMethod::Fork))?;
    let kids = (0..PIPELINED_CHILDREN)
        .map(|i| n.spawn(&format!("p{i}"), "bench-echo"))
        .collect::<Result<Vec<_>, _>>()?;
    for &k in &kids {
        n.ready(k)?;
    }
    let t = Instant::now();
    let mut tickets = std::collections::HashMap::with_capacity(total.min(4096));
    let mut sent = 0;
    for &k in &kids {
        for _ in 0..PIPELINE_DEPTH.min(total - sent) {
            let ticket = n.start_request(k, &(sent as u64))?;
            tickets.insert(ticket.id(), ticket);
            sent += 1;
        }
    }
    let mut back = 0;
    while back < total {
        let Some(Completion::Request { id, child }) = n.wait_any(Some(MAX_WAIT))? else {
            return Err(Error::Closed);
        };
        let ticket = tickets.remove(&id).ok_or(Error::Closed)?;
        let _: u64 = n.try_take(ticket).ok_or(Error::Closed)??;
        back += 1;
        if sent < total {
            let ticket = n.start_request(child, &(sent as u64))?;
            tickets.insert(ticket.id(), ticket);
            sent += 1;
        }
    }
    let spent = t.elapsed();
    match n.teardown().errors.first() {
        Some(e) => Err(Error::Child(e.clone())),
        None => Ok(spent),
    }
}

/// The longest the pipelined figure waits for any one answer.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Runs `f` with this thread (and so every process it forks meanwhile) pinned to one CPU,
/// the first it may run on; the thread's own affinity is back afterwards. `None` if the
/// affinity could not be read or set.
fn pinned<T>(f: impl FnOnce() -> T) -> Option<T> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let mine = sched_getaffinity(None).ok()?;
    let cpu = (0..CpuSet::MAX_CPU).find(|&c| mine.is_set(c))?;
    let mut one = CpuSet::new();
    one.set(cpu);
    sched_setaffinity(None, &one).ok()?;
    let out = f();
    let _ = sched_setaffinity(None, &mine);
    Some(out)
}

/// The teardown of 25 children that never yield, in the report's own time.
fn stuck_teardown_25(timeouts: Timeouts) -> Result<Duration, Error> {
    let mut n = Nursery::open_with(config(SpawnMethod::Fork).with_timeouts(timeouts))?;
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
    let mut n = Nursery::open_with(config(SpawnMethod::Fork).with_limits(harrow_model::Limits {
        max_children: count as u32 + 1,
        ..Default::default()
    }))?;
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
    // Only the timing matters here.
    let _ = n.teardown();
    Ok(t.elapsed() / count as u32)
}

/// Python multiprocessing (fork), the peer: a Python process that runs one cycle of the
/// same work (25 children, one round trip each, joined) per line it reads and answers with
/// the seconds it took, so its rounds interleave with harrow's.
#[derive(Debug)]
struct PythonPeer {
    child: std::process::Child,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl PythonPeer {
    const SCRIPT: &str = "import multiprocessing as mp, sys, time\n\
        def child(conn):\n    conn.send(conn.recv())\n\
        ctx = mp.get_context('fork')\n\
        for _ in sys.stdin:\n\
        \x20   t = time.perf_counter()\n\
        \x20   ps = []\n\
        \x20   for i in range(25):\n\
        \x20       a, b = ctx.Pipe()\n\
        \x20       p = ctx.Process(target=child, args=(b,)); p.start(); ps.append((p, a))\n\
        \x20   for i, (p, a) in enumerate(ps):\n\
        \x20       a.send(i); a.recv()\n\
        \x20   for p, a in ps:\n\
        \x20       p.join()\n\
        \x20   print(time.perf_counter() - t, flush=True)\n";

    /// Starts `python3`; `None` if there is none.
    fn start() -> Option<PythonPeer> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(Self::SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let answers = std::io::BufReader::new(child.stdout.take()?);
        Some(PythonPeer { child, answers })
    }

    /// One cycle, timed by Python itself.
    fn round(&mut self) -> Result<Duration, SysError> {
        use std::io::{BufRead, Write};
        let failed = |e: std::io::Error| SysError::Spawn(e);
        let stdin =
            self.child.stdin.as_mut().ok_or_else(|| {
                SysError::Spawn(std::io::Error::other("python3's stdin is closed"))
            })?;
        stdin.write_all(b"go\n").map_err(failed)?;
        let mut line = String::new();
        self.answers.read_line(&mut line).map_err(failed)?;
        let secs: f64 = line.trim().parse().map_err(|_| {
            SysError::Spawn(std::io::Error::other(format!("python3 answered {line:?}")))
        })?;
        Ok(Duration::from_secs_f64(secs))
    }

    /// Closes its stdin (it exits at end of input) and waits for it.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The figures measured so far.
#[derive(Default)]
struct Table(Vec<Figure>);

impl Table {
    /// Adds `name` = `harrow`, held to at most `target` times `baseline`.
    fn at_most(
        &mut self,
        name: &str,
        harrow: Duration,
        baseline: (&str, Option<Duration>),
        target: f64,
    ) {
        self.push(name, harrow, baseline, target, false);
    }

    /// Adds `name` = `harrow`, held to at least `target` times faster than `baseline`.
    fn speedup(
        &mut self,
        name: &str,
        harrow: Duration,
        baseline: (&str, Option<Duration>),
        target: f64,
    ) {
        self.push(name, harrow, baseline, target, true);
    }

    fn push(
        &mut self,
        name: &str,
        harrow: Duration,
        (baseline_name, baseline): (&str, Option<Duration>),
        target: f64,
        speedup: bool,
    ) {
        self.0.push(Figure {
            name: name.into(),
            harrow,
            baseline_name: baseline_name.into(),
            baseline,
            target,
            speedup,
        });
    }
}

/// Runs every measurement; `rounds` scales them all.
pub fn run(rounds: usize) -> Result<(Vec<Figure>, Vec<String>), Error> {
    let mut table = Table::default();
    // Fork first: it needs a single-threaded process (thread children come later).
    spawn_figures(&mut table, rounds)?;
    // Fork children on a current-thread runtime: before any thread of exec_figures.
    asynk::figures(&mut table, rounds * 10)?;
    exec_figures(&mut table, rounds / 4 + 1)?;
    teardown_figures(&mut table, rounds)?;
    protocol_figures(&mut table, rounds);
    let mut notes = Vec::new();
    for count in [250, 500, 1000] {
        let cost = per_child(count)?;
        notes.push(format!(
            "{count:>5} children spawned side by side and torn down: {:>8.1} µs per child",
            cost.as_secs_f64() * 1e6
        ));
    }
    Ok((table.0, notes))
}

/// Fork and ForkServer to handshake, and the request round trip.
fn spawn_figures(table: &mut Table, rounds: usize) -> Result<(), Error> {
    let (fork, fork_base) = spawn_to_handshake(SpawnMethod::Fork, rounds, baseline::fork_round)?;
    table.at_most(
        "Fork: spawn to handshake",
        fork,
        ("fork + _exit + waitid", fork_base),
        1.5,
    );
    let (rr, rr_base) = request_reply(rounds * 10)?;
    table.at_most(
        "request / reply round trip",
        rr,
        ("socketpair ping-pong", rr_base),
        1.5,
    );
    // Where the scheduler puts the two processes swings the wall figure 1x-3x; pinned to
    // one CPU, and in CPU time, it does not.
    if let Some(pinned_rr) = pinned(|| request_reply(rounds * 10)) {
        let (rr, rr_base) = pinned_rr?;
        table.at_most(
            "round trip, pinned to one CPU",
            rr,
            ("socketpair ping-pong, pinned", rr_base),
            1.5,
        );
    }
    let (cpu, cpu_base) = round_trip_cpu(3, rounds * 50)?;
    table.at_most(
        "round trip CPU time, both sides",
        cpu,
        ("socketpair ping-pong CPU time", cpu_base),
        1.3,
    );
    pipelined_figure(table, rounds)?;
    let mut raw_server = RawForkServer::start().ok();
    let served = spawn_to_handshake(SpawnMethod::ForkServer, rounds, || {
        match raw_server.as_mut() {
            Some(s) => s.round(),
            None => Err(SysError::os(harrow_real::sys::Op::Fork, libc::EAGAIN)),
        }
    });
    if let Some(s) = raw_server {
        let _ = s.finish();
    }
    let (served, served_base) = served?;
    table.at_most(
        "ForkServer: spawn to handshake",
        served,
        ("raw fork-server round trip", served_base),
        1.5,
    );
    Ok(())
}

/// Exec to handshake against `/bin/true`, against re-executing this program, and from a
/// worker thread; `rounds` each.
fn exec_figures(table: &mut Table, rounds: usize) -> Result<(), Error> {
    let (exec, exec_base) =
        spawn_to_handshake(SpawnMethod::Exec, rounds, baseline::spawn_true_round)?;
    table.at_most(
        "Exec: spawn to handshake",
        exec,
        ("posix_spawn /bin/true + wait", exec_base),
        1.2,
    );
    // The same, against re-executing this program (its loading and start-up included).
    let (exec, exec_self_base) =
        spawn_to_handshake(SpawnMethod::Exec, rounds, baseline::exec_self_round)?;
    let self_base = "posix_spawn of this program + wait";
    table.at_most(
        "Exec: spawn to handshake",
        exec,
        (self_base, exec_self_base),
        1.2,
    );
    // The same from a worker thread, which hands each spawn to harrow's spawner thread.
    let from_worker = std::thread::scope(|s| {
        s.spawn(|| spawn_to_handshake(SpawnMethod::Exec, rounds, baseline::exec_self_round))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    let (exec, exec_self_base) = from_worker?;
    table.at_most(
        "Exec off main thread: to handshake",
        exec,
        (self_base, exec_self_base),
        1.2,
    );
    Ok(())
}

/// The 25-child full cycle against Python, and the teardown of 25 stuck children against
/// its bound.
fn teardown_figures(table: &mut Table, rounds: usize) -> Result<(), Error> {
    let (cycle, raw) = paired(
        (rounds / 20).max(3),
        || full_cycle_25(SpawnMethod::Fork),
        raw_cycle_25,
    )?;
    table.at_most(
        "25 children, full cycle (Fork)",
        cycle,
        ("25 raw forks, one ping each, exit, reap", raw),
        1.5,
    );
    let mut python = PythonPeer::start();
    let cycle = paired(
        (rounds / 20).max(3),
        || full_cycle_25(SpawnMethod::Fork),
        || match python.as_mut() {
            Some(p) => p.round(),
            None => Err(SysError::Spawn(std::io::Error::other("no python3"))),
        },
    );
    if let Some(p) = python {
        p.finish();
    }
    let (cycle, cycle_base) = cycle?;
    table.speedup(
        "25 children, full cycle (Fork)",
        cycle,
        ("Python multiprocessing fork, same work", cycle_base),
        10.0,
    );
    let timeouts = Timeouts {
        cancel_ack: Duration::from_millis(100),
        kill_grace: Duration::from_millis(100),
        ..Timeouts::default()
    };
    let stuck = stuck_teardown_25(timeouts)?;
    let bound = timeouts.cancel_ack + timeouts.kill_grace + Duration::from_millis(25);
    table.at_most(
        "teardown of 25 stuck children",
        stuck,
        ("cancel_ack + kill_grace + 25 ms", Some(bound)),
        1.0,
    );
    Ok(())
}

/// The protocol's own costs: decoding frames in bulk, and a step deep into a nursery's life.
fn protocol_figures(table: &mut Table, rounds: usize) {
    for read in [4 * 1024, 64 * 1024] {
        let (batch, single) = decode_per_frame(read, rounds);
        table.at_most(
            &format!("decode {} KiB of frames in one read", read / 1024),
            batch,
            ("one frame per read (per frame, both)", Some(single)),
            1.5,
        );
    }
    let (deep, fresh) = step_behind_history(4000, rounds * 10);
    table.at_most(
        "supervisor request step, 4000 behind",
        deep,
        ("the same, no child behind it", Some(fresh)),
        1.5,
    );
}

/// The median cost per frame of decoding `read` bytes of small frames pushed as one read, and
/// of the same frames pushed one per read: flat in the frames per read when a read's frames
/// cost what they cost alone (they once cost each a shift of the rest of the read).
fn decode_per_frame(read: usize, rounds: usize) -> (Duration, Duration) {
    use harrow_model::wire::{DEFAULT_MAX_FRAME, FrameDecoder, Message};
    let frame = Message::Request {
        id: harrow_model::RequestId(1),
        payload: vec![0; 8],
    }
    .encode(DEFAULT_MAX_FRAME)
    .expect("a small frame");
    let frames = read / frame.len();
    let stream = frame.repeat(frames);
    let per_frame = |t: Instant| t.elapsed() / u32::try_from(frames).unwrap_or(u32::MAX);
    let drain = |dec: &mut FrameDecoder| {
        while let Ok(Some(m)) = dec.next_message() {
            std::hint::black_box(m);
        }
    };
    let (mut batch, mut single) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(WARM_UP) {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let t = Instant::now();
        let _ = dec.push(&stream);
        drain(&mut dec);
        batch.push(per_frame(t));
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let t = Instant::now();
        for _ in 0..frames {
            let _ = dec.push(&frame);
            drain(&mut dec);
        }
        single.push(per_frame(t));
    }
    (median(&mut batch), median(&mut single))
}

/// The median cost of one request and its reply through a bare supervisor with `history`
/// hard-stopped, finished children behind its one serving child, and with none: flat when a
/// step costs what it touches. In a build with debug assertions each step also runs the
/// per-step invariant checks, which once scanned every child the nursery ever had.
fn step_behind_history(history: u32, rounds: usize) -> (Duration, Duration) {
    use harrow_model::supervisor::{Supervisor, SupervisorConfig};
    use harrow_model::{ExitStatus, Limits, Timestamp};
    let now = Timestamp::ZERO;
    let setup = |history: u32| {
        let config = SupervisorConfig {
            limits: Limits {
                max_children: history + 1,
                ..Limits::default()
            },
            ..SupervisorConfig::default()
        };
        let mut s = Supervisor::new(config).expect("the default timeouts are valid");
        for _ in 0..history {
            let c = bare_serving(&mut s);
            let _ = s.hard_stop(now, c);
            let _ = s.handle_exit(now, c);
            let _ = s.handle_reaped(now, c, ExitStatus::Signaled(9));
            let _ = s.handle_channel_closed(now, c);
        }
        let c = bare_serving(&mut s);
        while s.poll_command().is_some() || s.poll_event().is_some() {}
        (s, c)
    };
    let time = |(mut s, c): (Supervisor, harrow_model::ChildId)| {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let id = s.request(now, c, vec![1], None).expect("the child serves");
            let reply = harrow_model::wire::Message::Reply {
                id,
                result: Ok(vec![2]),
            };
            let _ = s.handle_message(now, c, reply);
            while s.poll_command().is_some() || s.poll_event().is_some() {}
            let _ = s.claim_reply(c, id);
            samples.push(t.elapsed());
        }
        median(&mut samples)
    };
    (time(setup(history)), time(setup(0)))
}

/// Spawns one daemon in a bare supervisor and brings it to serving.
fn bare_serving(s: &mut harrow_model::supervisor::Supervisor) -> harrow_model::ChildId {
    use harrow_model::Timestamp;
    use harrow_model::supervisor::SpawnSpec;
    use harrow_model::wire::{Message, PROTOCOL_VERSION};
    let now = Timestamp::ZERO;
    let spec = SpawnSpec {
        name: format!("c{}", s.child_count()),
        actor: "echo".into(),
        method: SpawnMethod::Exec,
        role: Role::Daemon,
    };
    let c = s
        .spawn(now, spec, &Default::default())
        .expect("within the limits");
    let _ = s.handle_launched(now, c);
    let _ = s.handle_message(
        now,
        c,
        Message::Handshake {
            version: PROTOCOL_VERSION,
            pid: 1,
        },
    );
    c
}

/// The table.
pub fn render(figures: &[Figure], notes: &[String]) -> String {
    // Columns as wide as their longest entry, so that every row lines up.
    let width = |name: fn(&Figure) -> &str, title: &str| {
        figures
            .iter()
            .map(|f| name(f).chars().count())
            .fold(title.chars().count(), usize::max)
    };
    let w = width(|f| &f.name, "harrow");
    let bw = width(|f| &f.baseline_name, "baseline (same run)");
    let mut out = format!(
        "{:<w$} {:>12}   {:<bw$} {:>12} {:>8} {:>9}  {}\n",
        "harrow", "median", "baseline (same run)", "median", "ratio", "target", "meets"
    );
    // Sub-microsecond figures (a frame's decoding) in nanoseconds, the rest in microseconds.
    let us = |d: Duration| match d.as_nanos() {
        n if n < 1000 => format!("{n} ns"),
        _ => format!("{:.1} µs", d.as_secs_f64() * 1e6),
    };
    for f in figures {
        let ratio = f
            .ratio()
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into());
        let target = if f.speedup {
            format!(">= {}x", f.target)
        } else {
            format!("<= {}x", f.target)
        };
        let meets = match f.meets() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not measured",
        };
        let baseline = f.baseline.map(us).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<w$} {:>12}   {:<bw$} {:>12} {:>8} {:>9}  {meets}\n",
            f.name,
            us(f.harrow),
            f.baseline_name,
            baseline,
            ratio,
            target
        ));
    }
    if cfg!(debug_assertions) {
        out.push_str(
            "note: built with debug assertions, so every protocol step re-checks the invariants; \
             a user's release build does not: build with `--profile perf` for its figures\n",
        );
    }
    for n in notes {
        out.push_str(n);
        out.push('\n');
    }
    out
}
