//! Requests whose caller gave up: what the nursery keeps for them, and for how long.
//!
//! The children are forked from the test's main thread (this harness runs every test there,
//! so the process is single-threaded and `Fork` is allowed).

mod common;

use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use common::Test;
use harrow_real::internals::unclaimed_replies;
use harrow_real::{Error, Nursery, NurseryConfig, Registry, SpawnMethod, Timeouts};

/// Sleeps the number of milliseconds it is sent, then answers it.
const SLOW: &str = "slow";

fn registry() -> Registry {
    Registry::new().handler(SLOW, |ms: u64| {
        sleep(Duration::from_millis(ms));
        Ok::<u64, String>(ms)
    })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[Test {
        name: "bug_abandoned_requests_forgotten_when_child_ends",
        run: bug_abandoned_requests_forgotten_when_child_ends,
    }])
}

/// A child busy for a minute: no request sent to it is answered within the test.
const BUSY_MS: u64 = 60_000;

/// Short enough that a stuck child is killed within a second of its cancel.
fn quick() -> NurseryConfig {
    NurseryConfig {
        method: SpawnMethod::Fork,
        timeouts: Timeouts {
            cancel_ack: Duration::from_millis(100),
            kill_grace: Duration::from_millis(100),
            ..Timeouts::TRACTOR
        },
        ..NurseryConfig::default()
    }
}

fn give_up(n: &mut Nursery, child: harrow_real::Child) {
    match n.request_within::<u64, u64>(child, &BUSY_MS, Duration::from_millis(20)) {
        Err(Error::TimedOut { .. }) => {}
        other => panic!("a request the child is too busy to answer returned {other:?}"),
    }
}

/// A request whose caller timed out is remembered so that its late reply can be dropped; a
/// child that ends (here, killed while busy) never sends that reply, so what was kept for
/// it must be forgotten, or a long-lived nursery keeps one entry per abandoned request of
/// every child it ever had.
///
/// What went wrong: the abandoned requests of a finished child stayed in the nursery's set
/// for the nursery's life. The fix: each time a request times out, the entries of children
/// that are over are dropped first (they will answer nothing more).
fn bug_abandoned_requests_forgotten_when_child_ends() {
    let mut n = Nursery::open_with(quick()).unwrap();
    let gone = n.spawn("gone", SLOW).unwrap();
    let busy = n.spawn("busy", SLOW).unwrap();
    give_up(&mut n, gone);
    give_up(&mut n, gone);
    assert_eq!(unclaimed_replies(&n), 2, "two abandoned requests of `gone`");
    n.stop(gone).unwrap();
    // The next time-out is where the forgetting happens.
    give_up(&mut n, busy);
    assert_eq!(
        unclaimed_replies(&n),
        1,
        "`gone` ended: only `busy`'s abandoned request may still be kept"
    );
    n.teardown();
}
