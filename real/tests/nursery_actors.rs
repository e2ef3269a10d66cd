//! The child side as a runtime author meets it: a panicking handler, a long request and a
//! long task that watch their `Cancel`, actors of one's own, and the role the registry gives.
//!
//! The children are forked from the test's main thread (this harness runs every test there,
//! so the process is single-threaded and `Fork` is allowed).

mod common;

use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Test;
use harrow_real::{
    Cancel, Child, ChildErrorKind, Daemon, Error, ExitStatus, ForceReason, Nursery, NurseryConfig,
    Outcome, Registry, RemoteError, RemoteErrorKind, RequestId, Role, SpawnMethod, Task,
    TeardownCause, TeardownReport, Timeouts, encode,
};

/// Panics on 7, doubles anything else.
const TOUCHY: &str = "touchy";
/// A request that works until its child is cancelled, then answers how long it worked.
const PATIENT: &str = "patient";
/// A request that works for a minute whatever happens.
const DEAF: &str = "deaf";
/// A task that works until its child is cancelled, then returns how long it worked.
const VIGIL: &str = "vigil";
/// A task that panics.
const FRAGILE: &str = "fragile";
/// A task that returns 42 at once.
const ANSWER: &str = "answer";

fn registry() -> Registry {
    Registry::new()
        .handler(TOUCHY, |n: u64| {
            assert_ne!(n, 7, "touchy cannot stand seven");
            Ok::<u64, String>(n * 2)
        })
        .daemon(PATIENT, || Busy { listens: true })
        .daemon(DEAF, || Busy { listens: false })
        .task(VIGIL, || Vigil)
        .main(ANSWER, || Ok::<u64, String>(42))
        .main(FRAGILE, || -> Result<u64, String> {
            panic!("fragile broke")
        })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "bug_handler_panic_kills_child_without_remote_error",
            run: bug_handler_panic_kills_child_without_remote_error,
        },
        Test {
            name: "a_panicking_task_fails_its_child_with_the_panic",
            run: a_panicking_task_fails_its_child_with_the_panic,
        },
        Test {
            name: "a_request_watching_its_cancel_ends_gracefully_at_cancel",
            run: a_request_watching_its_cancel_ends_gracefully_at_cancel,
        },
        Test {
            name: "a_request_deaf_to_its_cancel_is_killed_at_the_grace",
            run: a_request_deaf_to_its_cancel_is_killed_at_the_grace,
        },
        Test {
            name: "a_task_watching_its_cancel_ends_gracefully_with_its_result",
            run: a_task_watching_its_cancel_ends_gracefully_with_its_result,
        },
        Test {
            name: "the_registry_gives_the_role_and_another_is_refused",
            run: the_registry_gives_the_role_and_another_is_refused,
        },
        Test {
            name: "the_spawner_takes_the_role_from_the_registry_and_a_method_per_child",
            run: the_spawner_takes_the_role_from_the_registry_and_a_method_per_child,
        },
    ])
}

/// The longest a busy actor works: far past every timeout here.
const MINUTE: Duration = Duration::from_secs(60);

/// Works (sleeps a millisecond at a time) until a minute has passed or, if it `listens`,
/// until its cancel says stop; answers the milliseconds it worked.
struct Busy {
    listens: bool,
}

impl Daemon for Busy {
    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        let worked = work_until(|| self.listens && cancel.is_cancelled());
        encode(&worked).map_err(RemoteError::refused)
    }
}

/// Works until its cancel says stop (or a minute has passed); its result is how long.
struct Vigil;

impl Task for Vigil {
    fn run(&mut self, cancel: &Cancel<'_>) -> Result<Vec<u8>, RemoteError> {
        encode(&work_until(|| cancel.is_cancelled())).map_err(RemoteError::refused)
    }
}

/// Sleeps a millisecond at a time until `stop` or a minute; the milliseconds it took.
fn work_until(stop: impl Fn() -> bool) -> u64 {
    let started = Instant::now();
    while !stop() && started.elapsed() < MINUTE {
        sleep(Duration::from_millis(1));
    }
    started.elapsed().as_millis() as u64
}

fn forking() -> Nursery {
    open(Timeouts::default())
}

/// A forking nursery whose cancel is acknowledged within `grace`, or the child killed after
/// twice that at most.
fn graceful(grace: Duration) -> Nursery {
    open(Timeouts {
        cancel_ack: grace,
        kill_grace: grace,
        ..Timeouts::default()
    })
}

fn open(timeouts: Timeouts) -> Nursery {
    Nursery::open_with(
        NurseryConfig::default()
            .with_method(SpawnMethod::Fork)
            .with_timeouts(timeouts)
            .with_handle_sigint(false),
    )
    .expect("open a nursery")
}

/// How long the graceful nurseries wait for an acknowledgement, and then for the exit.
const GRACE: Duration = Duration::from_secs(2);

/// Sends a request the child will be busy with, and leaves it running.
fn keep_busy(n: &mut Nursery, child: Child) {
    match n.request_within::<(), u64>(child, &(), Duration::from_millis(50)) {
        Err(Error::TimedOut { .. }) => {}
        other => panic!("a request that works for a minute returned {other:?}"),
    }
}

/// Stops `child`, then tears the nursery down: the report, and how long the stop took.
fn stop_and_report(mut n: Nursery, child: Child) -> (TeardownReport, Duration) {
    let started = Instant::now();
    n.stop(child).expect("stop");
    let took = started.elapsed();
    (n.teardown(), took)
}

/// A handler that panics answers its caller with a remote error of kind `Panic` carrying the
/// panic's message; then its child fails (an actor whose code panicked is in a state nobody
/// knows), which is a child failure like any other: one cancels all.
///
/// What went wrong: nothing caught the panic, so it unwound out of the child's event loop
/// and the process died (exit 101) without a word; the caller got no reply at all, only the
/// child's death, and `RemoteErrorKind::Panic` was never produced. The fix: the child's
/// event loop runs actor code under `catch_unwind` (the platform's `ChildOs::catch_panic`)
/// and feeds a panic to the child runtime as its own input, `handle_work_panicked`, which
/// replies to the request with the panic and then reports the actor's failure and stops.
fn bug_handler_panic_kills_child_without_remote_error() {
    let mut n = forking();
    let touchy = n.spawn("touchy", TOUCHY).unwrap();
    assert_eq!(n.request::<u64, u64>(touchy, &3).unwrap(), 6);
    match n.request::<u64, u64>(touchy, &7) {
        Err(err @ Error::Remote { .. }) => {
            let shown = err.to_string();
            let Error::Remote { child, name, error } = err else {
                unreachable!()
            };
            assert_eq!((child, name.as_str()), (touchy.id(), "touchy"), "{shown}");
            assert!(
                shown.contains("`touchy`"),
                "the message names the child: {shown}"
            );
            assert_eq!(error.kind, RemoteErrorKind::Panic, "{error}");
            assert!(
                error.message.contains("touchy cannot stand seven"),
                "{error}"
            );
        }
        other => panic!("a panicking handler answered {other:?}"),
    }
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(touchy.id())));
    assert!(
        matches!(&report.errors[..], [e] if matches!(&e.kind,
            ChildErrorKind::Remote(r) if r.kind == RemoteErrorKind::Panic)),
        "the panic is the child's one error: {:?}",
        report.errors
    );
}

/// A run-to-result actor that panics fails its child with the panic as the child's error;
/// the result the caller asked for is that failure.
fn a_panicking_task_fails_its_child_with_the_panic() {
    let mut n = forking();
    let fragile = n.spawn("fragile", FRAGILE).unwrap();
    let is_the_panic =
        |r: &RemoteError| r.kind == RemoteErrorKind::Panic && r.message.contains("fragile broke");
    match n.result::<u64>(fragile) {
        Err(Error::Child(e)) => assert!(
            matches!(&e.kind, ChildErrorKind::Remote(r) if is_the_panic(r)),
            "{e}"
        ),
        other => panic!("a panicking task returned {other:?}"),
    }
    let report = n.teardown();
    assert!(
        matches!(&report.errors[..], [e] if matches!(&e.kind, ChildErrorKind::Remote(r) if is_the_panic(r))),
        "{:?}",
        report.errors
    );
}

/// A request that asks its `Cancel` ends when the child is cancelled, well within the
/// acknowledgement timeout: the child acknowledges and exits 0, and is not killed.
fn a_request_watching_its_cancel_ends_gracefully_at_cancel() {
    let mut n = graceful(GRACE);
    let patient = n.spawn("patient", PATIENT).unwrap();
    keep_busy(&mut n, patient);
    let (report, took) = stop_and_report(n, patient);
    let summary = &report.children[0];
    assert_eq!(
        summary.outcome,
        Some(Outcome::Exited(ExitStatus::Exited(0))),
        "{summary:?}"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        took < GRACE,
        "the stop took {took:?}, past the ack timeout {GRACE:?}"
    );
}

/// A request that never asks its `Cancel` keeps its child from acknowledging: the child is
/// killed once the acknowledgement timeout passes, and the stop is over within the bound.
fn a_request_deaf_to_its_cancel_is_killed_at_the_grace() {
    let grace = Duration::from_millis(300);
    let mut n = graceful(grace);
    let deaf = n.spawn("deaf", DEAF).unwrap();
    keep_busy(&mut n, deaf);
    let (report, took) = stop_and_report(n, deaf);
    let summary = &report.children[0];
    assert!(
        matches!(
            summary.outcome,
            Some(Outcome::Killed {
                reason: ForceReason::CancelAckTimedOut,
                status: ExitStatus::Signaled(9),
            })
        ),
        "{summary:?}"
    );
    assert!(
        took >= grace,
        "killed after {took:?}, before the ack timeout {grace:?}"
    );
    assert!(took < MINUTE / 2, "the stop took {took:?}");
}

/// A task that asks its `Cancel` returns its result when cancelled, and its child exits 0.
fn a_task_watching_its_cancel_ends_gracefully_with_its_result() {
    let mut n = graceful(GRACE);
    let vigil = n.spawn("vigil", VIGIL).unwrap();
    // It is busy: no result within a moment.
    sleep(Duration::from_millis(50));
    let (report, took) = stop_and_report(n, vigil);
    let summary = &report.children[0];
    assert_eq!(
        summary.outcome,
        Some(Outcome::Exited(ExitStatus::Exited(0))),
        "{summary:?}"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        took < GRACE,
        "the stop took {took:?}, past the ack timeout {GRACE:?}"
    );
}

/// `spawn` gives a child the role its actor is registered with; another role is refused
/// before anything starts, and the nursery stays open.
fn the_registry_gives_the_role_and_another_is_refused() {
    let mut n = forking();
    match n.spawn_with("touchy", TOUCHY, SpawnMethod::Fork, Role::RunToResult) {
        Err(Error::WrongRole { actor, registered }) => {
            assert_eq!((actor.as_str(), registered), (TOUCHY, Role::Daemon));
        }
        other => panic!("a daemon spawned to run to a result gave {other:?}"),
    }
    let touchy = n.spawn("touchy", TOUCHY).unwrap();
    assert_eq!(n.request::<u64, u64>(touchy, &4).unwrap(), 8);
    let vigil = n.spawn("vigil", VIGIL).unwrap();
    assert!(matches!(n.result::<u64>(touchy), Err(Error::NoResult(_))));
    n.stop(vigil).unwrap();
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// `spawner(actor)` spawns in the role the registry gives the actor, named after the actor
/// unless named, by the method set for that child (the nursery's otherwise): here a daemon
/// re-executed and a task on a thread, in a nursery that forks. An unknown actor is refused
/// by name, and the nursery stays open.
fn the_spawner_takes_the_role_from_the_registry_and_a_method_per_child() {
    let mut n = forking();
    let touchy = n.spawner(TOUCHY).method(SpawnMethod::Exec).spawn().unwrap();
    assert_eq!(n.lookup(TOUCHY), Some(touchy), "named after its actor");
    assert!(n.pid(touchy).is_some(), "a process");
    assert_eq!(n.request::<u64, u64>(touchy, &4).unwrap(), 8);
    // Forked (the nursery's method) before the thread child makes the process threaded.
    let forked = n.spawner(TOUCHY).name("forked").start().unwrap();
    n.ready(forked).unwrap();
    assert!(n.pid(forked).is_some());
    let answer = n
        .spawner(ANSWER)
        .name("the-answer")
        .method(SpawnMethod::Thread)
        .spawn()
        .unwrap();
    assert_eq!(n.pid(answer), None, "a thread");
    assert_eq!(n.result::<u64>(answer).unwrap(), 42);
    match n.spawner("no-such-actor").spawn() {
        Err(Error::UnknownActor { actor, .. }) => assert_eq!(actor, "no-such-actor"),
        other => panic!("an unknown actor spawned: {other:?}"),
    }
    assert_eq!(n.request::<u64, u64>(forked, &5).unwrap(), 10);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
