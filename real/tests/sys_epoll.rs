//! The poller wakes on a child's exit through its pidfd, and on its channel's hangup.

mod common;

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{MUST, Test, reap};
use harrow_real::sys::{ExitStatus, Poller, Prelude, Readiness, channel_pair, fork_child};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "epoll_wakes_on_child_exit_via_its_pidfd",
            run: epoll_wakes_on_child_exit_via_its_pidfd,
        },
        Test {
            name: "a_wait_with_nothing_ready_times_out",
            run: a_wait_with_nothing_ready_times_out,
        },
    ])
}

const PIDFD: u64 = 1;
const CHANNEL: u64 = 2;

/// Nothing is ready at first; once the child exits, its pidfd turns readable and its
/// channel end reports a hangup.
fn epoll_wakes_on_child_exit_via_its_pidfd() {
    let mut poller = Poller::new(8).unwrap();
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |_| {
        std::thread::sleep(Duration::from_millis(100));
        3
    })
    .unwrap();
    poller.register(child.pidfd().as_fd(), PIDFD).unwrap();
    poller.register(ours.as_fd(), CHANNEL).unwrap();
    let mut ready: Vec<Readiness> = Vec::new();
    assert_eq!(
        poller.wait(Some(Duration::ZERO), &mut ready).unwrap(),
        0,
        "{ready:?}"
    );

    let deadline = Instant::now() + MUST;
    let (mut exited, mut hung_up) = (false, false);
    while !(exited && hung_up) && Instant::now() < deadline {
        ready.clear();
        poller.wait_until(Some(deadline), &mut ready).unwrap();
        for r in &ready {
            exited |= r.token == PIDFD && r.readable;
            hung_up |= r.token == CHANNEL && r.hangup;
        }
    }
    assert!(
        exited && hung_up,
        "exit seen: {exited}, hangup seen: {hung_up}"
    );
    // A pidfd stays ready after the reap: deregister it first.
    poller.deregister(child.pidfd().as_fd()).unwrap();
    poller.deregister(ours.as_fd()).unwrap();
    assert_eq!(reap(&mut child), ExitStatus::Exited(3));
}

/// Waiting until a protocol timestamp 30 ms ahead returns nothing, and not early.
fn a_wait_with_nothing_ready_times_out() {
    let mut poller = Poller::new(4).unwrap();
    let (ours, _theirs) = channel_pair().unwrap();
    poller.register(ours.as_fd(), CHANNEL).unwrap();
    let mut ready = Vec::new();
    let start = Instant::now();
    let t0 = harrow_model::Timestamp::from_millis(5);
    let deadline = harrow_model::Timestamp::from_millis(35);
    assert_eq!(
        poller
            .wait_until_timestamp(Some(deadline), t0, &mut ready)
            .unwrap(),
        0
    );
    assert!(
        start.elapsed() >= Duration::from_millis(25),
        "returned early: {:?}",
        start.elapsed()
    );
}
