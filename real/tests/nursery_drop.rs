//! Dropping an open nursery, with children stuck in a request, leaves no process behind: no
//! child, no grandchild of the fork server, no zombie, and the drop returns within a bound.
//!
//! Each method runs in its own test process (nextest runs one per test), so the harness's
//! after-test check — no child process of ours, live or zombie, and no descriptor left open —
//! covers the children this process forked itself (`Fork`, `Exec`, and the fork server).

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{MUST, Test};
use harrow_real::{Child, Error, Nursery, NurseryConfig, Registry, SpawnMethod, Timeouts};

/// A daemon whose handler sleeps for as many seconds as it is asked.
const SLEEPER: &str = "sleeper";

fn registry() -> Registry {
    Registry::new().handler(SLEEPER, |secs: u64| {
        std::thread::sleep(Duration::from_secs(secs));
        Ok::<u64, String>(secs)
    })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "drop_of_an_open_fork_nursery_leaves_no_process",
            run: || dropped_leaves_no_process(SpawnMethod::Fork),
        },
        Test {
            name: "drop_of_an_open_fork_server_nursery_leaves_no_process",
            run: || dropped_leaves_no_process(SpawnMethod::ForkServer),
        },
        Test {
            name: "drop_of_an_open_exec_nursery_leaves_no_process",
            run: || dropped_leaves_no_process(SpawnMethod::Exec),
        },
        Test {
            name: "drop_of_an_open_thread_nursery_returns_and_its_threads_end_later",
            run: dropped_thread_nursery,
        },
    ])
}

/// Whether process `pid` still exists in any state (a zombie included).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Three children of `method`, each busy in a request that will not end for an hour; the
/// nursery is dropped without `teardown`. The drop must return within the teardown bound,
/// and every child process must be gone — not running, not a zombie, here or (for the fork
/// server's children, which are not ours) anywhere.
fn dropped_leaves_no_process(method: SpawnMethod) {
    let (nursery, children) = busy_nursery(method, 3600);
    let pids: Vec<i32> = children.iter().filter_map(|&c| nursery.pid(c)).collect();
    assert_eq!(pids.len(), 3, "a process child has a pid");
    drop_within_bound(nursery);
    // A fork server's children are its own: it kills and reaps them before it exits, which
    // its drop waits for; a moment's grace for /proc to catch up.
    settle(|| pids.iter().any(|&p| exists(p)));
    let left: Vec<i32> = pids.into_iter().filter(|&p| exists(p)).collect();
    assert!(
        left.is_empty(),
        "{method}: processes left after the drop: {left:?}"
    );
}

/// A thread cannot be killed: a thread child busy in its handler when its nursery is dropped
/// is abandoned, and keeps its own end of the channel until the handler returns; then it sees
/// the end of stream and ends, and every descriptor is closed. The drop itself returns within
/// the bound.
fn dropped_thread_nursery() {
    let before = common::open_fds();
    let (nursery, _) = busy_nursery(SpawnMethod::Thread, 2);
    drop_within_bound(nursery);
    settle(|| common::open_fds() != before);
    assert_eq!(
        common::open_fds(),
        before,
        "descriptors left once the handlers returned"
    );
}

/// Drops `nursery`, asserting the drop returned within [`bound`].
fn drop_within_bound(nursery: Nursery) {
    let started = Instant::now();
    drop(nursery);
    let took = started.elapsed();
    assert!(
        took <= bound(),
        "the drop took {took:?}, over {:?}",
        bound()
    );
}

/// Waits while `pending` holds, for [`MUST`] at most: what is left afterwards the caller
/// asserts.
fn settle(mut pending: impl FnMut() -> bool) {
    let deadline = Instant::now() + MUST;
    while pending() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The timeouts of these nurseries: short, so that a graceful path would show in the time.
fn timeouts() -> Timeouts {
    Timeouts {
        cancel_ack: Duration::from_millis(200),
        kill_grace: Duration::from_millis(200),
        ..Timeouts::default()
    }
}

/// How long a drop may take at most: the whole teardown's bound, with room to spare.
fn bound() -> Duration {
    let t = timeouts();
    t.cancel_ack + t.kill_grace + t.reap + MUST
}

/// A nursery of `method` with three children, each busy in a request that takes `secs`.
fn busy_nursery(method: SpawnMethod, secs: u64) -> (Nursery, Vec<Child>) {
    let mut nursery = Nursery::open_with(
        NurseryConfig::default()
            .with_method(method)
            .with_timeouts(timeouts())
            .with_handle_sigint(false),
    )
    .expect("open a nursery");
    let mut children = Vec::new();
    for i in 0..3 {
        let child = nursery
            .spawn(&format!("s{i}"), SLEEPER)
            .expect("spawn a sleeper");
        let busy = nursery.request_within::<u64, u64>(child, &secs, Duration::from_millis(50));
        assert!(
            matches!(busy, Err(Error::TimedOut { .. })),
            "the sleeper answered: {busy:?}"
        );
        children.push(child);
    }
    (nursery, children)
}
