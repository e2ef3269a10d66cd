//! Requests whose caller gave up, and requests and results whose child ends first: what the
//! nursery keeps for them, for how long, and what their callers are told.
//!
//! The children are forked from the test's main thread (this harness runs every test there,
//! so the process is single-threaded and `Fork` is allowed).

mod common;

use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use common::Test;
use harrow_model::error::{ChildOpError, SpawnError};
use harrow_real::internals::unclaimed_replies;
use harrow_real::sys::fds::CHILD_CHANNEL_FD;
use harrow_real::{
    ChildErrorKind, Error, ForceReason, Nursery, NurseryConfig, Outcome, Registry, Role,
    SpawnMethod, TeardownCause,
};

/// Sleeps the number of milliseconds it is sent, then answers it.
const SLOW: &str = "slow";

/// Its request handler (or main) ends its child's side of the channel while it works, then
/// goes on working: see [`hang_up_then_work`].
const HANGS_UP: &str = "hangs-up";

/// A run-to-result child whose main does what [`HANGS_UP`]'s handler does.
const HANGS_UP_MAIN: &str = "hangs-up-main";

/// How long a [`HANGS_UP`] child goes on after its channel ended, before it exits: the
/// window in which its parent knows it is failing but cannot have reaped it.
const DYING_MS: u64 = 600;

fn registry() -> Registry {
    Registry::new()
        .handler(SLOW, |ms: u64| {
            sleep(Duration::from_millis(ms));
            Ok::<u64, String>(ms)
        })
        .handler(HANGS_UP, |()| hang_up_then_work())
        .main(HANGS_UP_MAIN, hang_up_then_work)
}

/// A child dying in the middle of its work, slowly: 50 ms in, a thread of it shuts the
/// sending side of its channel (its parent reads end of stream), and the work goes on for
/// [`DYING_MS`]; only then can it exit (seeing its parent's end closed). So its end of stream
/// comes long before its exit, as a child's whose handler panicked and whose process takes
/// its time to go.
fn hang_up_then_work() -> Result<u64, String> {
    std::thread::spawn(|| {
        sleep(Duration::from_millis(50));
        // SAFETY: shutdown(2) on the child's own channel descriptor, which stays open.
        unsafe { libc::shutdown(CHILD_CHANNEL_FD, libc::SHUT_WR) };
    });
    sleep(Duration::from_millis(DYING_MS));
    Ok(1)
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "bug_abandoned_requests_forgotten_when_child_ends",
            run: bug_abandoned_requests_forgotten_when_child_ends,
        },
        Test {
            name: "bug_request_to_dying_child_returns_closed",
            run: bug_request_to_dying_child_returns_closed,
        },
        Test {
            name: "bug_result_of_dying_child_returns_closed",
            run: bug_result_of_dying_child_returns_closed,
        },
        Test {
            name: "bug_one_cancels_all_waits_for_the_reap",
            run: bug_one_cancels_all_waits_for_the_reap,
        },
        Test {
            name: "bug_sigint_during_request_returns_closed",
            run: bug_sigint_during_request_returns_closed,
        },
        Test {
            name: "bug_request_to_a_cancelled_child_says_already_finished",
            run: bug_request_to_a_cancelled_child_says_already_finished,
        },
    ])
}

/// A child busy for a minute: no request sent to it is answered within the test.
const BUSY_MS: u64 = 60_000;

/// Short enough that a stuck child is killed within a second of its cancel.
fn quick() -> NurseryConfig {
    NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_timeouts(common::QUICK)
}

/// A request in flight when its child is cancelled, and the child, busy, is killed for not
/// acknowledging the cancel: its caller must learn that the child was stopped and how.
///
/// What went wrong: the caller got `Error::Op(AlreadyFinished)`, "has already finished;
/// spawn a new child to go on", as if it had addressed a child long gone, with nothing about
/// the cancel or the kill (found by a first-hour program that cancelled a busy child). The
/// fix: a request or result whose child ended without a failure of its own, while the
/// nursery was not interrupted, ends in `Error::Stopped`, which names the child and carries
/// its outcome (here killed: it did not acknowledge its cancel in time).
fn bug_request_to_a_cancelled_child_says_already_finished() {
    let mut n = Nursery::open_with(quick()).unwrap();
    let busy = n.spawn("busy", SLOW).unwrap();
    let ticket = n.start_request(busy, &BUSY_MS).unwrap();
    n.cancel(busy).unwrap();
    match n.wait::<u64>(ticket) {
        Err(err @ Error::Stopped { .. }) => {
            let shown = err.to_string();
            let Error::Stopped {
                child,
                name,
                outcome,
            } = err
            else {
                unreachable!()
            };
            assert_eq!((child, name.as_str()), (busy.id(), "busy"), "{shown}");
            assert!(
                matches!(
                    outcome,
                    Outcome::Killed {
                        reason: ForceReason::CancelAckTimedOut,
                        ..
                    }
                ),
                "{shown}"
            );
            assert!(shown.contains("did not acknowledge its cancel"), "{shown}");
        }
        other => panic!("a request to a child killed after its cancel returned {other:?}"),
    }
    let report = n.teardown();
    assert!(
        report.errors.is_empty(),
        "a cancel asked for is no failure: {:?}",
        report.errors
    );
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
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A nursery spawning by `Fork` with the default timeouts (whose kill grace outlasts a
/// [`HANGS_UP`] child's dying), SIGINT left to the test process.
fn patient() -> NurseryConfig {
    NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_handle_sigint(false)
}

fn assert_died(err: Error, what: &str) {
    match err {
        Error::Child(e) if matches!(e.kind, ChildErrorKind::Died(_)) => {}
        other => panic!("{what} returned {other:?}, not the child's death"),
    }
}

/// A request whose child died while handling it returned `Error::Closed` ("the nursery
/// closed before the answer came") though the nursery was open; the child's `Died` error
/// appeared only in the teardown report.
///
/// What went wrong: the wait for the reply stopped as soon as the child was stopping (at its
/// end of stream), but the child's error is known only once it is reaped, so there was none
/// to return yet. The fix: the request ends, once, at the child's end of stream, as ended by
/// its child (`RequestEnd::ChildEnded`), and the caller then waits (bounded by the
/// protocol's timeouts) until the child is done and returns its own error.
fn bug_request_to_dying_child_returns_closed() {
    let mut n = Nursery::open_with(patient()).unwrap();
    let child = n.spawn("dying", HANGS_UP).unwrap();
    let err = n.request::<(), u64>(child, &()).unwrap_err();
    assert_died(err, "a request to a child that died handling it");
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(child.id())));
}

/// The same for `result`: a run-to-result child that died before its result came made
/// `result` return `Error::Closed`. The fix is the same: the caller waits until the child is
/// done and returns its error.
fn bug_result_of_dying_child_returns_closed() {
    let mut n = Nursery::open_with(patient()).unwrap();
    let child = n
        .spawn_with("dying", HANGS_UP_MAIN, SpawnMethod::Fork, Role::RunToResult)
        .unwrap();
    let err = n.result::<u64>(child).unwrap_err();
    assert_died(err, "result() of a child that died before its result");
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(child.id())));
}

/// One-cancels-all took effect only when the failed child was reaped: for as long as it took
/// to exit after its stream ended (about 300 ms after a handler panicked), a sibling still
/// took requests and a new spawn was accepted.
///
/// What went wrong: the supervisor started the error teardown on the child's error report,
/// which needs its exit status, so it came at the reap. The fix teaches the lifecycle that
/// a child whose channel ends (or who exits) before any stop began is failing, then and
/// there (`Action::FailureKnown`), and the nursery tears down at that step.
fn bug_one_cancels_all_waits_for_the_reap() {
    let mut n = Nursery::open_with(patient()).unwrap();
    let dying = n.spawn("dying", HANGS_UP).unwrap();
    let sibling = n.spawn("sibling", SLOW).unwrap();
    match n.request_within::<(), u64>(dying, &(), Duration::from_millis(10)) {
        Err(Error::TimedOut { .. }) => {}
        other => panic!("a request to a busy child returned {other:?}"),
    }
    // Its end of stream is waiting to be read; its exit is ~500 ms away.
    sleep(Duration::from_millis(150));
    // Sent before the end of stream is read, so answered before the sibling's cancel.
    let _: u64 = n.request(sibling, &0u64).unwrap();
    // Cancelled with the failing child: stopping, or already gone.
    match n.request::<u64, u64>(sibling, &0u64) {
        Err(Error::Op(ChildOpError::NotServing { .. } | ChildOpError::AlreadyFinished(_))) => {}
        other => panic!("a sibling of a failing child took a request: {other:?}"),
    }
    match n.spawn("late", SLOW) {
        Err(Error::Spawn(SpawnError::NurseryClosing)) => {}
        other => panic!("a nursery with a failing child accepted a spawn: {other:?}"),
    }
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(dying.id())));
}

/// SIGINT during a request returned `Error::Closed`, not the documented `Interrupted`: the
/// wait for the reply stopped as soon as SIGINT's teardown had cancelled the child.
///
/// The fix: the wait ends when the request ends, and SIGINT's teardown is run to its end
/// and reported as `Interrupted` before that.
fn bug_sigint_during_request_returns_closed() {
    let mut n = Nursery::open_with(
        quick()
            .with_method(SpawnMethod::ForkServer)
            .with_handle_sigint(true),
    )
    .unwrap();
    let child = n.spawn("busy", SLOW).unwrap();
    let pid = std::process::id() as libc::pid_t;
    let interrupter = std::thread::spawn(move || {
        sleep(Duration::from_millis(200));
        // SAFETY: kill(2) of our own process with SIGINT, which the nursery handles.
        unsafe { libc::kill(pid, libc::SIGINT) };
    });
    match n.request::<u64, u64>(child, &BUSY_MS) {
        Err(Error::Interrupted) => {}
        other => panic!("a request interrupted by SIGINT returned {other:?}"),
    }
    interrupter.join().unwrap();
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::Interrupted));
}
