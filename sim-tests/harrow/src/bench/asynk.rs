//! The async nursery's figures, on one current-thread tokio runtime: its request round trip
//! against the blocking nursery's and a raw tokio `UnixStream` ping-pong with a forked echo
//! child, rounds alternated in the same run; and 1,000 requests in flight from 100 tasks over
//! 25 children against the blocking nursery's pipelined loop (`start_request`, `wait_any`).

use std::io;
use std::os::unix::net::UnixStream as StdStream;
use std::time::{Duration, Instant};

use harrow_model::SpawnMethod;
use harrow_real::sys::raw_children::spawn_echo;
use harrow_real::sys::{IoMode, SocketKind, socket_pair};
use harrow_real::{AsyncNursery, Completion, Error, Nursery};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

use super::{Table, config, pinned};
use crate::baseline::median;

/// Children of the concurrency figure.
const CHILDREN: usize = 25;
/// Tasks of the concurrency figure, and requests each has in flight.
const TASKS: usize = 100;
const PER_TASK: usize = 10;

/// The async rows: round trips (unpinned, and pinned to one CPU) and the concurrency figure.
pub(super) fn figures(table: &mut Table, rounds: usize) -> Result<(), Error> {
    let rt = runtime()?;
    let (ours, blocking, raw) = rt.block_on(round_trips(rounds))?;
    table.at_most(
        "async round trip (tokio)",
        ours,
        ("blocking round trip", Some(blocking)),
        1.3,
    );
    table.at_most(
        "async round trip (tokio)",
        ours,
        ("tokio UnixStream ping-pong", raw),
        1.3,
    );
    if let Some(pinned_rt) = pinned(|| rt.block_on(round_trips(rounds))) {
        let (ours, _, raw) = pinned_rt?;
        table.at_most(
            "async round trip, pinned to one CPU",
            ours,
            ("tokio UnixStream ping-pong, pinned", raw),
            1.3,
        );
    }
    let (ours, blocking) = concurrent(&rt, rounds / 20 + 3)?;
    // A throughput: the blocking time over the async time, for the same 1,000 requests.
    table.speedup(
        "1,000 async requests, 100 tasks",
        ours,
        ("blocking pipelined (throughput)", Some(blocking)),
        0.8,
    );
    Ok(())
}

fn runtime() -> Result<Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Open(Box::new(e)))
}

/// Alternated round trips: the async nursery's, the blocking nursery's (each to its own
/// Fork echo child) and a tokio `UnixStream`'s to a raw echo child; their medians, the
/// last `None` if the raw echo child could not be started.
async fn round_trips(rounds: usize) -> Result<(Duration, Duration, Option<Duration>), Error> {
    let n = AsyncNursery::open_with(config(SpawnMethod::Fork))?;
    let c = n.spawn("echo", "bench-echo").await?;
    let mut b = Nursery::open_with(config(SpawnMethod::Fork))?;
    let bc = b.spawn("echo", "bench-echo")?;
    let mut raw = RawEcho::start().ok();
    let (mut ours, mut blocking, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..(super::WARM_UP * 20 + rounds) as u64 {
        let t = Instant::now();
        let _: u64 = n.request(c, &i).await?;
        let a = t.elapsed();
        let t = Instant::now();
        let _: u64 = b.request(bc, &i)?;
        let s = t.elapsed();
        let r = match raw.as_mut() {
            Some(echo) => echo.round().await.ok(),
            None => None,
        };
        if i >= (super::WARM_UP * 20) as u64 {
            ours.push(a);
            blocking.push(s);
            theirs.extend(r);
        }
    }
    if let Some(echo) = raw {
        echo.finish();
    }
    let _ = b.teardown();
    let _ = n.teardown().await;
    let raw = (theirs.len() == ours.len()).then(|| median(&mut theirs));
    Ok((median(&mut ours), median(&mut blocking), raw))
}

/// A raw echo child at the other end of a tokio `UnixStream`.
struct RawEcho {
    stream: UnixStream,
    child: harrow_real::sys::ChildProcess,
}

impl RawEcho {
    fn start() -> io::Result<RawEcho> {
        let (ours, theirs) =
            socket_pair(SocketKind::Stream, IoMode::NonBlocking).map_err(io::Error::other)?;
        let child = spawn_echo(theirs).map_err(io::Error::other)?;
        let stream = UnixStream::from_std(StdStream::from(ours))?;
        Ok(RawEcho { stream, child })
    }

    /// One timed 1-byte round trip through tokio's reactor.
    async fn round(&mut self) -> io::Result<Duration> {
        let t = Instant::now();
        loop {
            self.stream.writable().await?;
            match self.stream.try_write(b"x") {
                Ok(1) => break,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
        let mut byte = [0u8];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut byte) {
                Ok(1) => return Ok(t.elapsed()),
                Ok(_) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Closes the stream (the child exits 0 at end of stream) and reaps the child.
    fn finish(self) {
        let RawEcho { stream, mut child } = self;
        drop(stream);
        let _ = child.wait_timeout(Some(Duration::from_secs(5)));
        let _ = child.kill_and_reap();
    }
}

/// `rounds` alternated rounds of 1,000 requests over 25 children: from 100 tasks of an
/// async nursery, and pipelined on a blocking one; the medians.
fn concurrent(rt: &Runtime, rounds: usize) -> Result<(Duration, Duration), Error> {
    let n = rt.block_on(async_children())?;
    let mut b = Nursery::open_with(config(SpawnMethod::Fork))?;
    let bc = (0..CHILDREN)
        .map(|i| b.spawn(&format!("echo-{i}"), "bench-echo"))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..super::WARM_UP + rounds {
        let a = rt.block_on(async_round(&n.0, &n.1))?;
        let s = pipelined_round(&mut b, &bc)?;
        if round >= super::WARM_UP {
            ours.push(a);
            theirs.push(s);
        }
    }
    let _ = b.teardown();
    let _ = rt.block_on(n.0.teardown());
    Ok((median(&mut ours), median(&mut theirs)))
}

async fn async_children() -> Result<(AsyncNursery, Vec<harrow_real::Child>), Error> {
    let n = AsyncNursery::open_with(config(SpawnMethod::Fork))?;
    let mut children = Vec::with_capacity(CHILDREN);
    for i in 0..CHILDREN {
        children.push(n.spawn(&format!("echo-{i}"), "bench-echo").await?);
    }
    Ok((n, children))
}

/// 100 tasks, each with 10 requests in flight; how long until all 1,000 are answered.
async fn async_round(n: &AsyncNursery, children: &[harrow_real::Child]) -> Result<Duration, Error> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        for r in 0..PER_TASK {
            let n = n.clone();
            let child = children[(task * PER_TASK + r) % CHILDREN];
            let tag = (task * PER_TASK + r) as u64;
            tasks.spawn(async move {
                matches!(n.request::<u64, u64>(child, &tag).await, Ok(t) if t == tag)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        if !done.unwrap_or(false) {
            return Err(Error::Payload(
                "an async request answered another's tag".into(),
            ));
        }
    }
    Ok(t.elapsed())
}

/// The same 1,000 requests sent at once on a blocking nursery, answers taken as `wait_any`
/// reports them.
fn pipelined_round(b: &mut Nursery, children: &[harrow_real::Child]) -> Result<Duration, Error> {
    let t = Instant::now();
    let mut tickets = std::collections::HashMap::new();
    for i in 0..TASKS * PER_TASK {
        let ticket = b.start_request(children[i % CHILDREN], &(i as u64))?;
        tickets.insert(ticket.id(), ticket);
    }
    let mut answered = 0;
    while answered < TASKS * PER_TASK {
        match b.wait_any(Some(Duration::from_secs(10)))? {
            Some(Completion::Request { id, .. }) => {
                let _: u64 = b.try_take(tickets[&id]).ok_or(Error::Closed)??;
                answered += 1;
            }
            other => return Err(Error::Payload(format!("unexpected completion {other:?}"))),
        }
    }
    Ok(t.elapsed())
}
