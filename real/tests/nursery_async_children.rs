//! Async children (feature `tokio`): an actor registered with `Registry::async_handler` runs
//! its requests concurrently on a tokio runtime of its child's own, acknowledges a cancel
//! only once they have finished, lets a handler that awaits its `CancelToken` end early,
//! and answers a panic with `RemoteErrorKind::Panic`; a sync actor still serves one request
//! at a time. Each scenario runs through the blocking `Nursery` (a child forked from a plain
//! thread) and through the `AsyncNursery` on a current-thread runtime (a child forked from
//! inside that runtime, which must start its own runtime apart from the one it inherited).
//!
//! How many handlers ran at once is counted inside the child, not timed: each counted
//! handler adds itself to a count of running handlers when it starts and answers the highest
//! count its child has seen by the time it ends.

mod common;

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::{MUST, Test};
use harrow_real::{
    AsyncNursery, CancelToken, Child, ChildErrorKind, Error, ExitStatus, Nursery, NurseryConfig,
    Outcome, Registry, RemoteErrorKind, Role, SpawnMethod, TeardownCause, TeardownReport, Timeouts,
};
use tokio::runtime::{Builder, Runtime};

/// Async: sleeps the milliseconds it is sent, then answers the most handlers its child has
/// seen running at once.
const COUNTED: &str = "counted";
/// As [`COUNTED`], with at most [`LIMIT`] requests running at once.
const LIMITED: &str = "limited";
const LIMIT: u32 = 2;
/// Sync: as [`COUNTED`], through `Registry::handler`.
const SYNC_COUNTED: &str = "sync_counted";
/// Async: sleeps the milliseconds it is sent whatever happens, then answers them.
const DEAF: &str = "deaf";
/// Async: works until its child is cancelled, then answers `true`.
const COOPERATIVE: &str = "cooperative";
/// Async: panics on 7; sleeps the milliseconds of anything else, then answers them.
const TOUCHY: &str = "touchy";
/// Async: [`FATAL_TAG`] marks itself started and waits for another request to have its
/// answer, then kills its own process (as an abort would end it); any other tag waits for the
/// fatal one to have started, then answers itself.
const BRITTLE: &str = "brittle";
const FATAL_TAG: u64 = 3;

/// How long each counted request sleeps.
const NAP_MS: u64 = 200;
/// How long a [`DEAF`] request works.
const DEAF_MS: u64 = 300;

/// Handlers of this process running now, and the most that ever ran at once. A child is a
/// process of its own: its counts start at zero, as the parent's are (it never serves).
static RUNNING: AtomicU32 = AtomicU32::new(0);
static PEAK: AtomicU32 = AtomicU32::new(0);
/// [`BRITTLE`]'s fatal request has started; another has its answer.
static FATAL_STARTED: AtomicBool = AtomicBool::new(false);
static ANSWERED: AtomicBool = AtomicBool::new(false);

/// Yields to the child's loop until `flag` is set.
async fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
}

async fn brittle(tag: u64) -> Result<u64, String> {
    if tag == FATAL_TAG {
        FATAL_STARTED.store(true, Ordering::SeqCst);
        until(&ANSWERED).await;
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
    }
    until(&FATAL_STARTED).await;
    ANSWERED.store(true, Ordering::SeqCst);
    Ok(tag)
}

fn begin() {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

fn end() -> Result<u32, String> {
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(PEAK.load(Ordering::SeqCst))
}

async fn counted(ms: u64) -> Result<u32, String> {
    begin();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    end()
}

fn registry() -> Registry {
    let limit = NonZeroU32::new(LIMIT).unwrap();
    Registry::new()
        .async_handler(COUNTED, |ms: u64, _: CancelToken| counted(ms))
        .async_handler_limited(LIMITED, limit, |ms: u64, _: CancelToken| counted(ms))
        .handler(SYNC_COUNTED, |ms: u64| {
            begin();
            std::thread::sleep(Duration::from_millis(ms));
            end()
        })
        .async_handler(DEAF, |ms: u64, _: CancelToken| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<u64, String>(ms)
        })
        .async_handler(COOPERATIVE, |(): (), cancel: CancelToken| async move {
            cancel.cancelled().await;
            Ok::<bool, String>(cancel.is_cancelled())
        })
        .async_handler(BRITTLE, |tag: u64, _: CancelToken| brittle(tag))
        .async_handler(TOUCHY, |n: u64, _: CancelToken| async move {
            assert_ne!(n, 7, "touchy cannot stand seven");
            tokio::time::sleep(Duration::from_millis(n)).await;
            Ok::<u64, String>(n)
        })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "three_requests_run_at_once_blocking",
            run: || assert_eq!(blocking_peaks(COUNTED), [3, 3, 3]),
        },
        Test {
            name: "three_requests_run_at_once_async",
            run: || assert_eq!(async_peaks(COUNTED), [3, 3, 3]),
        },
        Test {
            name: "three_requests_run_at_once_by_every_other_method",
            run: three_requests_run_at_once_by_every_other_method,
        },
        Test {
            name: "a_limited_actor_runs_no_more_than_its_limit_blocking",
            run: || assert_eq!(blocking_peaks(LIMITED).iter().max(), Some(&LIMIT)),
        },
        Test {
            name: "a_limited_actor_runs_no_more_than_its_limit_async",
            run: || assert_eq!(async_peaks(LIMITED).iter().max(), Some(&LIMIT)),
        },
        Test {
            name: "a_sync_actor_still_serves_one_at_a_time_blocking",
            run: || assert_eq!(blocking_peaks(SYNC_COUNTED), [1, 1, 1]),
        },
        Test {
            name: "a_sync_actor_still_serves_one_at_a_time_async",
            run: || assert_eq!(async_peaks(SYNC_COUNTED), [1, 1, 1]),
        },
        Test {
            name: "a_cancel_is_acked_after_the_running_requests_finish_blocking",
            run: a_cancel_is_acked_after_the_running_requests_finish_blocking,
        },
        Test {
            name: "a_cancel_is_acked_after_the_running_requests_finish_async",
            run: a_cancel_is_acked_after_the_running_requests_finish_async,
        },
        Test {
            name: "a_cooperative_handler_ends_at_the_cancel_blocking",
            run: a_cooperative_handler_ends_at_the_cancel_blocking,
        },
        Test {
            name: "a_cooperative_handler_ends_at_the_cancel_async",
            run: a_cooperative_handler_ends_at_the_cancel_async,
        },
        Test {
            name: "an_answer_is_out_before_another_request_kills_the_child",
            run: an_answer_is_out_before_another_request_kills_the_child,
        },
        Test {
            name: "a_panicking_async_handler_answers_panic_blocking",
            run: a_panicking_async_handler_answers_panic_blocking,
        },
        Test {
            name: "a_panicking_async_handler_answers_panic_async",
            run: a_panicking_async_handler_answers_panic_async,
        },
    ])
}

/// Long enough for a cancel's acknowledgement and the exit after it that a child killed at
/// the grace is a failure of the test, not of the machine.
const GRACE: Duration = Duration::from_secs(2);

fn config() -> NurseryConfig {
    NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_timeouts(Timeouts {
            cancel_ack: GRACE,
            kill_grace: GRACE,
            ..common::QUICK
        })
        .with_handle_sigint(false)
}

fn blocking() -> Nursery {
    Nursery::open_with(config()).expect("open a nursery")
}

fn current() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// A child ended by a cancel it acknowledged: it exited 0, and was not killed.
fn assert_acked(outcome: Result<Option<Outcome>, Error>) {
    match outcome {
        Ok(Some(Outcome::Exited(ExitStatus::Exited(0)))) => {}
        other => panic!("a cancelled child ended with {other:?}, not an acknowledged exit"),
    }
}

/// A report whose one error is `child`'s panic, which tore the nursery down.
fn assert_failed_with_the_panic(report: &TeardownReport, child: Child) {
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(child.id())));
    assert!(
        matches!(&report.errors[..], [e] if matches!(&e.kind,
            ChildErrorKind::Remote(r) if r.kind == RemoteErrorKind::Panic)),
        "the panic is the child's one error: {:?}",
        report.errors
    );
}

fn assert_the_panic(answer: Result<u64, Error>) {
    match answer {
        Err(Error::Remote { error: e, .. }) => {
            assert_eq!(e.kind, RemoteErrorKind::Panic, "{e}");
            assert!(e.message.contains("touchy cannot stand seven"), "{e}");
        }
        other => panic!("a panicking async handler answered {other:?}"),
    }
}

/// Three requests of [`NAP_MS`] each sent at once to one child of `actor` through the
/// blocking nursery: what each answered, in the order they were sent.
fn blocking_peaks(actor: &str) -> Vec<u32> {
    peaks_by(SpawnMethod::Fork, actor)
}

/// [`blocking_peaks`] of a child spawned by `method`.
fn peaks_by(method: SpawnMethod, actor: &str) -> Vec<u32> {
    let mut n = blocking();
    let c = n.spawn_with("c", actor, method, Role::Daemon).unwrap();
    let tickets: Vec<_> = (0..3)
        .map(|_| n.start_request(c, &NAP_MS).unwrap())
        .collect();
    let peaks = tickets
        .into_iter()
        .map(|t| n.wait::<u32>(t).unwrap())
        .collect();
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    peaks
}

/// An async child serves its requests at once however it was started: served by the fork
/// server, re-executed, or on a thread of the nursery's process (which runs its own
/// runtime there). The thread child is the only one that counts in this process, so its
/// counts start at zero as a child process's do.
fn three_requests_run_at_once_by_every_other_method() {
    for method in [
        SpawnMethod::ForkServer,
        SpawnMethod::Exec,
        SpawnMethod::Thread,
    ] {
        assert_eq!(peaks_by(method, COUNTED), [3, 3, 3], "{method:?}");
    }
}

/// [`blocking_peaks`] through the async nursery: three tasks, one request each.
fn async_peaks(actor: &str) -> Vec<u32> {
    current().block_on(async {
        let n = AsyncNursery::open_with(config()).unwrap();
        let c = n.spawn("c", actor).await.unwrap();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let n = n.clone();
                tokio::spawn(async move { n.request::<u64, u32>(c, &NAP_MS).await })
            })
            .collect();
        let mut peaks = Vec::new();
        for task in tasks {
            peaks.push(task.await.unwrap().unwrap());
        }
        let report = n.teardown().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        peaks
    })
}

/// Two requests that ignore the cancel are running when it comes: both are answered, and
/// the child acknowledges and exits 0 once they have (an ack before them would have ended
/// the child with their work dropped and no answers).
fn a_cancel_is_acked_after_the_running_requests_finish_blocking() {
    let mut n = blocking();
    let c = n.spawn("deaf", DEAF).unwrap();
    let first = n.start_request(c, &DEAF_MS).unwrap();
    let second = n.start_request(c, &DEAF_MS).unwrap();
    n.cancel(c).unwrap();
    assert_eq!(n.wait::<u64>(first).unwrap(), DEAF_MS);
    assert_eq!(n.wait::<u64>(second).unwrap(), DEAF_MS);
    assert_acked(n.wait_child(c, Some(MUST)));
    assert!(n.teardown().errors.is_empty());
}

fn a_cancel_is_acked_after_the_running_requests_finish_async() {
    current().block_on(async {
        let n = AsyncNursery::open_with(config()).unwrap();
        let c = n.spawn("deaf", DEAF).await.unwrap();
        let requests: Vec<_> = (0..2)
            .map(|_| {
                let n = n.clone();
                tokio::spawn(async move { n.request::<u64, u64>(c, &DEAF_MS).await })
            })
            .collect();
        // Both requests are out once the spawned tasks have run to their first wait, which
        // they do before this task runs again.
        tokio::task::yield_now().await;
        n.cancel(c).unwrap();
        for request in requests {
            assert_eq!(request.await.unwrap().unwrap(), DEAF_MS);
        }
        assert_acked(n.wait_child(c).await.map(Some));
        assert!(n.teardown().await.errors.is_empty());
    });
}

/// A handler that awaits its token ends when the cancel comes, answers, and its child
/// acknowledges and exits 0: it is not killed at the grace (which a handler that never ends
/// would be, after [`GRACE`] twice).
fn a_cooperative_handler_ends_at_the_cancel_blocking() {
    let mut n = blocking();
    let c = n.spawn("coop", COOPERATIVE).unwrap();
    let working = n.start_request(c, &()).unwrap();
    n.cancel(c).unwrap();
    assert!(n.wait::<bool>(working).unwrap(), "the token said cancelled");
    assert_acked(n.wait_child(c, Some(MUST)));
    assert!(n.teardown().errors.is_empty());
}

fn a_cooperative_handler_ends_at_the_cancel_async() {
    current().block_on(async {
        let n = AsyncNursery::open_with(config()).unwrap();
        let c = n.spawn("coop", COOPERATIVE).await.unwrap();
        let working = {
            let n = n.clone();
            tokio::spawn(async move { n.request::<(), bool>(c, &()).await })
        };
        tokio::task::yield_now().await;
        n.cancel(c).unwrap();
        assert!(working.await.unwrap().unwrap(), "the token said cancelled");
        assert_acked(n.wait_child(c).await.map(Some));
        assert!(n.teardown().await.errors.is_empty());
    });
}

/// The request of a minute that was running when another request's handler panicked: its
/// work was dropped with the failed actor, and its caller is told so at once.
fn assert_dropped(answer: Result<u64, Error>) {
    match answer {
        Err(Error::Remote { error: e, .. }) => {
            assert_eq!(e.kind, RemoteErrorKind::Refused, "{e}");
            assert!(e.message.contains("its work was dropped"), "{e}");
        }
        other => panic!("a request running beside a panic answered {other:?}"),
    }
}

/// A panic in an async handler answers its caller with a remote error of kind `Panic`, and
/// its child fails with it, as a sync handler's panic does; a request running beside it is
/// refused, its work dropped.
fn a_panicking_async_handler_answers_panic_blocking() {
    let mut n = blocking();
    let c = n.spawn("touchy", TOUCHY).unwrap();
    assert_eq!(n.request::<u64, u64>(c, &3).unwrap(), 3);
    let beside = n.start_request(c, &60_000u64).unwrap();
    assert_the_panic(n.request::<u64, u64>(c, &7));
    assert_dropped(n.wait::<u64>(beside));
    assert_failed_with_the_panic(&n.teardown(), c);
}

fn a_panicking_async_handler_answers_panic_async() {
    current().block_on(async {
        let n = AsyncNursery::open_with(config()).unwrap();
        let c = n.spawn("touchy", TOUCHY).await.unwrap();
        assert_eq!(n.request::<u64, u64>(c, &3).await.unwrap(), 3);
        let beside = {
            let n = n.clone();
            tokio::spawn(async move { n.request::<u64, u64>(c, &60_000).await })
        };
        tokio::task::yield_now().await;
        assert_the_panic(n.request::<u64, u64>(c, &7).await);
        assert_dropped(beside.await.unwrap());
        assert_failed_with_the_panic(&n.teardown().await, c);
    });
}

/// Property 15 with requests at once: one request computes its answer while another is
/// running, and that other kills the child as soon as it runs again after the answer exists.
/// The answer must reach its caller: the child's loop writes a reply before it polls any
/// other request's future. (A loop that polled every future before writing what completed,
/// or that ran them as tasks of their own, would let the fatal request run first.)
fn an_answer_is_out_before_another_request_kills_the_child() {
    let mut n = blocking();
    let c = n.spawn("brittle", BRITTLE).unwrap();
    let answer = n.start_request(c, &1u64).unwrap();
    let fatal = n.start_request(c, &FATAL_TAG).unwrap();
    assert_eq!(
        n.wait::<u64>(answer).unwrap(),
        1,
        "the computed answer was lost"
    );
    match n.wait::<u64>(fatal) {
        Err(Error::Child(e)) if matches!(e.kind, ChildErrorKind::Died(_)) => {}
        other => panic!("the request the child died in answered {other:?}"),
    }
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(c.id())));
}
