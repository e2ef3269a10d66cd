//! Raw baselines: what the bare system calls cost on this machine, measured in the same run
//! as harrow's own figures so that every figure can be reported as a ratio (PERF.md).
//!
//! Each function runs a few warm-up rounds, then `iterations` timed rounds, and returns the
//! median. They time, they never assert: a timed test is not a benchmark. The children they
//! fork have raw-syscall bodies ([`crate::sys::raw_children`]), so every function here works
//! from a multi-threaded process too.

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::sys::raw_children::{fork_exit_reap, spawn_echo, spawn_fork_server, spawn_pipe_echo};
use crate::sys::{IoMode, Op, SocketKind, SysError, pipe_pair, socket_pair};

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

/// Runs `round` `WARM_UP` times untimed, then `iterations` times timed; returns the median.
fn measure(
    iterations: usize,
    mut round: impl FnMut() -> Result<(), SysError>,
) -> Result<Duration, SysError> {
    for _ in 0..WARM_UP {
        round()?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        round()?;
        samples.push(start.elapsed());
    }
    Ok(median(&mut samples))
}

/// fork + `_exit(0)` in the child + `waitid` in the parent: the raw cost of `Fork`.
pub fn fork_round_trip(iterations: usize) -> Result<Duration, SysError> {
    measure(iterations, || fork_exit_reap(0).map(drop))
}

/// `Command::new("/bin/true").status()` (std uses `posix_spawn`) and its wait: the raw cost
/// of `Exec`.
pub fn spawn_true_round_trip(iterations: usize) -> Result<Duration, SysError> {
    measure(iterations, || {
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

/// A 1-byte round trip to a forked echo child over a blocking socketpair of `kind`.
pub fn socketpair_ping_pong(kind: SocketKind, iterations: usize) -> Result<Duration, SysError> {
    let (ours, theirs) = socket_pair(kind, IoMode::Blocking)?;
    let mut child = spawn_echo(theirs)?;
    let median = measure(iterations, || ping(&ours, &ours));
    drop(ours); // end of stream: the echo child exits 0
    let _ = child.wait_timeout(Some(Duration::from_secs(5)))?;
    child.kill_and_reap()?;
    median
}

/// A 1-byte round trip to a forked echo child over two blocking pipes.
pub fn pipe_ping_pong(iterations: usize) -> Result<Duration, SysError> {
    let (child_reads, we_write) = pipe_pair(IoMode::Blocking)?;
    let (we_read, child_writes) = pipe_pair(IoMode::Blocking)?;
    let mut child = spawn_pipe_echo(child_reads, child_writes)?;
    let median = measure(iterations, || ping(&we_write, &we_read));
    // The child kept copies of our pipe ends (no scrub), so it would never see EOF.
    child.kill_and_reap()?;
    median
}

/// Request → fork → `_exit` → reap → reply through a single-threaded fork-server process
/// over a socketpair: the raw cost of `ForkServer`.
pub fn fork_server_round_trip(iterations: usize) -> Result<Duration, SysError> {
    let (ours, theirs) = socket_pair(SocketKind::Stream, IoMode::Blocking)?;
    let mut server = spawn_fork_server(theirs)?;
    let median = measure(iterations, || {
        let mut reply = [0u8; 4];
        let mut got = 0;
        rustix::io::write(&ours, b"f").map_err(|e| SysError::os(Op::Send, e.raw_os_error()))?;
        while got < reply.len() {
            match rustix::io::read(ours.as_fd(), &mut reply[got..]) {
                Ok(0) => return Err(SysError::os(Op::Recv, libc::EPIPE)),
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SysError::os(Op::Recv, e.raw_os_error())),
            }
        }
        Ok(())
    });
    drop(ours);
    let _ = server.wait_timeout(Some(Duration::from_secs(5)))?;
    server.kill_and_reap()?;
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
