//! Raw baselines: what the bare system calls cost on this machine, measured in the same run
//! as harrow's own figures so that every figure can be reported as a ratio (see PERF.md).
//!
//! Each function runs a few warm-up rounds, then `iterations` timed rounds, and returns the
//! median. They time, they never assert: a timed test is not a benchmark. The children they
//! fork have raw-syscall bodies ([`harrow_real::sys::raw_children`]), so every function here works
//! from a multi-threaded process too.

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use harrow_real::sys::ChildProcess;
use harrow_real::sys::raw_children::{
    fork_exit_reap, spawn_echo, spawn_fork_server, spawn_pipe_echo,
};
use harrow_real::sys::{IoMode, Op, SocketKind, SysError, pipe_pair, socket_pair};

/// Untimed rounds before the timed ones (page faults, caches, first-use costs).
const WARM_UP: usize = 20;

/// One measured baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// What was measured, for the bench table.
    pub name: &'static str,
    /// The median of the timed rounds.
    pub median: Duration,
    /// How many rounds were timed.
    pub iterations: usize,
}

/// The median of `samples` (the upper middle one for an even count); zero if empty.
pub fn median(samples: &mut [Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Runs `round` `WARM_UP` times untimed, then `iterations` times; returns the median of the
/// times the rounds report.
pub fn measure(
    iterations: usize,
    mut round: impl FnMut() -> Result<Duration, SysError>,
) -> Result<Duration, SysError> {
    for _ in 0..WARM_UP {
        round()?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        samples.push(round()?);
    }
    Ok(median(&mut samples))
}

/// Times `f`.
fn timed(f: impl FnOnce() -> Result<(), SysError>) -> Result<Duration, SysError> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// fork + `_exit(0)` in the child + `waitid` in the parent: one raw round trip, the cost
/// `Fork` is held against.
pub fn fork_round() -> Result<Duration, SysError> {
    timed(|| fork_exit_reap(0).map(drop))
}

/// fork + `_exit` + `waitid`, median of `iterations` rounds.
pub fn fork_round_trip(iterations: usize) -> Result<Duration, SysError> {
    measure(iterations, fork_round)
}

/// One `Command::new("/bin/true").status()` (std uses `posix_spawn`) and its wait: the
/// cost `Exec` is held against.
pub fn spawn_true_round() -> Result<Duration, SysError> {
    timed(|| {
        let status = Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(SysError::Spawn)?;
        if status.success() {
            Ok(())
        } else {
            let why = format!("/bin/true ended with {status}");
            Err(SysError::Spawn(std::io::Error::other(why)))
        }
    })
}

/// `posix_spawn` of `/bin/true` and its wait, median of `iterations` rounds.
pub fn spawn_true_round_trip(iterations: usize) -> Result<Duration, SysError> {
    measure(iterations, spawn_true_round)
}

/// `posix_spawn` of this very program, which exits as soon as [`harrow_real::init`] runs, and its
/// wait: the raw cost of re-executing the current binary (its loading and start-up), which
/// `Exec` cannot avoid. Needs `init` first thing in `main`.
pub fn exec_self_round() -> Result<Duration, SysError> {
    timed(|| {
        let (_ours, theirs) = socket_pair(SocketKind::Stream, IoMode::Blocking)?;
        let mut child =
            harrow_real::sys::exec_self(harrow_real::internals::ROLE_START_ONLY, &[], theirs)?;
        match child.wait_timeout(Some(Duration::from_secs(5)))? {
            harrow_real::sys::ReapOutcome::Reaped(harrow_real::sys::ExitStatus::Exited(0)) => {
                Ok(())
            }
            other => {
                let _ = child.kill_and_reap();
                let why = format!("the start-only child ended with {other:?}");
                Err(SysError::Spawn(std::io::Error::other(why)))
            }
        }
    })
}

/// Writes one byte to `to` and reads one back from `from`, both blocking.
fn ping(to: &OwnedFd, from: &OwnedFd) -> Result<(), SysError> {
    let mut byte = [b'x'];
    loop {
        match rustix::io::write(to, &byte) {
            Ok(1) => break,
            Ok(_) | Err(Errno::INTR) => continue,
            Err(e) => return Err(SysError::os(Op::Send, e.raw_os_error())),
        }
    }
    loop {
        match rustix::io::read(from, &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(SysError::os(Op::Recv, libc::EPIPE)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(SysError::os(Op::Recv, e.raw_os_error())),
        }
    }
}

/// A forked echo child at the other end of a blocking socketpair: 1-byte round trips, the
/// cost a request / reply is held against.
#[derive(Debug)]
pub struct PingPong {
    ours: OwnedFd,
    child: ChildProcess,
}

impl PingPong {
    /// Forks the echo child over a socketpair of `kind`.
    pub fn start(kind: SocketKind) -> Result<PingPong, SysError> {
        let (ours, theirs) = socket_pair(kind, IoMode::Blocking)?;
        let child = spawn_echo(theirs)?;
        Ok(PingPong { ours, child })
    }

    /// Forks an echo child that writes back each whole `frame`-byte frame on its own.
    fn start_frame_echo(frame: usize) -> Result<PingPong, SysError> {
        let (ours, theirs) = socket_pair(SocketKind::Stream, IoMode::Blocking)?;
        let child = harrow_real::sys::raw_children::spawn_frame_echo(theirs, frame)?;
        Ok(PingPong { ours, child })
    }

    /// One timed round trip.
    pub fn round(&mut self) -> Result<Duration, SysError> {
        timed(|| ping(&self.ours, &self.ours))
    }

    /// Closes the socket (the echo child exits 0 at end of stream) and reaps the child.
    pub fn finish(self) -> Result<(), SysError> {
        let PingPong { ours, mut child } = self;
        drop(ours);
        let _ = child.wait_timeout(Some(Duration::from_secs(5)))?;
        child.kill_and_reap().map(drop)
    }
}

/// A 1-byte round trip to a forked echo child over a blocking socketpair of `kind`.
pub fn socketpair_ping_pong(kind: SocketKind, iterations: usize) -> Result<Duration, SysError> {
    let mut pp = PingPong::start(kind)?;
    let median = measure(iterations, || pp.round());
    pp.finish()?;
    median
}

/// A 1-byte round trip to a forked echo child over two blocking pipes.
pub fn pipe_ping_pong(iterations: usize) -> Result<Duration, SysError> {
    let (child_reads, we_write) = pipe_pair(IoMode::Blocking)?;
    let (we_read, child_writes) = pipe_pair(IoMode::Blocking)?;
    let mut child = spawn_pipe_echo(child_reads, child_writes)?;
    let median = measure(iterations, || timed(|| ping(&we_write, &we_read)));
    // The child kept copies of our pipe ends (no scrub), so it would never see EOF.
    child.kill_and_reap()?;
    median
}

/// A single-threaded raw fork-server process: request → fork → `_exit` → reap → reply over
/// a socketpair, the cost `ForkServer` is held against.
#[derive(Debug)]
pub struct RawForkServer {
    ours: OwnedFd,
    server: ChildProcess,
}

impl RawForkServer {
    /// Forks the server.
    pub fn start() -> Result<RawForkServer, SysError> {
        let (ours, theirs) = socket_pair(SocketKind::Stream, IoMode::Blocking)?;
        let server = spawn_fork_server(theirs)?;
        Ok(RawForkServer { ours, server })
    }

    /// One timed request → reply.
    pub fn round(&mut self) -> Result<Duration, SysError> {
        timed(|| {
            let mut reply = [0u8; 4];
            let mut got = 0;
            rustix::io::write(&self.ours, b"f")
                .map_err(|e| SysError::os(Op::Send, e.raw_os_error()))?;
            while got < reply.len() {
                match rustix::io::read(self.ours.as_fd(), &mut reply[got..]) {
                    Ok(0) => return Err(SysError::os(Op::Recv, libc::EPIPE)),
                    Ok(n) => got += n,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(SysError::os(Op::Recv, e.raw_os_error())),
                }
            }
            Ok(())
        })
    }

    /// Closes the socket (the server exits 0 at end of stream) and reaps it.
    pub fn finish(self) -> Result<(), SysError> {
        let RawForkServer { ours, mut server } = self;
        drop(ours);
        let _ = server.wait_timeout(Some(Duration::from_secs(5)))?;
        server.kill_and_reap().map(drop)
    }
}

/// The raw fork-server round trip, median of `iterations` rounds.
pub fn fork_server_round_trip(iterations: usize) -> Result<Duration, SysError> {
    let mut server = RawForkServer::start()?;
    let median = measure(iterations, || server.round());
    server.finish()?;
    median
}

/// Every baseline, `iterations` rounds each (ping-pongs get 10× as many: they are cheap).
pub fn all(iterations: usize) -> Result<Vec<Baseline>, SysError> {
    let pings = iterations.saturating_mul(10);
    let row = |name, iterations, median| Baseline {
        name,
        median,
        iterations,
    };
    Ok(vec![
        row(
            "fork + _exit + waitid",
            iterations,
            fork_round_trip(iterations)?,
        ),
        row(
            "fork-server round trip",
            iterations,
            fork_server_round_trip(iterations)?,
        ),
        row(
            "posix_spawn /bin/true + wait",
            iterations,
            spawn_true_round_trip(iterations)?,
        ),
        row(
            "ping-pong socketpair (stream)",
            pings,
            socketpair_ping_pong(SocketKind::Stream, pings)?,
        ),
        row(
            "ping-pong socketpair (seqpacket)",
            pings,
            socketpair_ping_pong(SocketKind::SeqPacket, pings)?,
        ),
        row("ping-pong pipe pair", pings, pipe_ping_pong(pings)?),
    ])
}

/// How a pipelined echo child writes back what it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// All it read in one write: the cheapest echo there is.
    Batched,
    /// Each whole frame with a write of its own, as a harrow child sends each reply before
    /// it starts the next request.
    PerFrame,
}

/// A raw pipelined echo: `peers` forked echo children over socketpairs, `depth` frames of
/// `frame` bytes in flight to each, driven by one epoll loop that sends a frame for each one
/// echoed back until `total` have come back. Returns the time from the first send to the
/// last frame back: what harrow's pipelined requests are held against.
pub fn pipelined_echo(
    peers: usize,
    depth: usize,
    frame: usize,
    total: usize,
    echo: Echo,
) -> Result<Duration, SysError> {
    let mut poller = harrow_real::sys::Poller::new(peers)?;
    let mut ends = Vec::with_capacity(peers);
    for token in 0..peers {
        let p = match echo {
            Echo::Batched => PingPong::start(SocketKind::Stream)?,
            Echo::PerFrame => PingPong::start_frame_echo(frame)?,
        };
        harrow_real::sys::set_nonblocking(p.ours.as_fd(), true)?;
        poller.register(p.ours.as_fd(), token as u64)?;
        ends.push((p, 0usize));
    }
    let out = vec![b'x'; frame];
    let t = Instant::now();
    let mut sent = 0;
    for (p, _) in &ends {
        for _ in 0..depth.min(total - sent) {
            send_frame(&p.ours, &out)?;
            sent += 1;
        }
    }
    let (mut back, mut ready, mut buf) = (0, Vec::new(), vec![0u8; 4096]);
    while back < total {
        ready.clear();
        poller.wait(Some(Duration::from_secs(10)), &mut ready)?;
        for r in &ready {
            let (p, partial) = &mut ends[r.token as usize];
            let n = read_available(&p.ours, &mut buf)?;
            *partial += n;
            let frames = *partial / frame;
            *partial %= frame;
            back += frames;
            for _ in 0..frames.min(total - sent) {
                send_frame(&p.ours, &out)?;
                sent += 1;
            }
        }
    }
    let spent = t.elapsed();
    for (p, _) in ends {
        harrow_real::sys::set_nonblocking(p.ours.as_fd(), false)?;
        p.finish()?;
    }
    Ok(spent)
}

/// Sends one whole frame on a non-blocking socket (the depth keeps it far below the buffer).
fn send_frame(to: &OwnedFd, frame: &[u8]) -> Result<(), SysError> {
    match harrow_real::sys::send_all(to.as_fd(), frame)? {
        harrow_real::sys::SendOutcome::Complete => Ok(()),
        _ => Err(SysError::os(Op::Send, libc::EAGAIN)),
    }
}

/// Reads what is there on a non-blocking socket, into `buf` (once: level-triggered epoll
/// reports the rest); end of stream is an error here.
fn read_available(from: &OwnedFd, buf: &mut [u8]) -> Result<usize, SysError> {
    loop {
        match rustix::io::read(from, &mut *buf) {
            Ok(0) => return Err(SysError::os(Op::Recv, libc::EPIPE)),
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(SysError::os(Op::Recv, e.raw_os_error())),
        }
    }
}
