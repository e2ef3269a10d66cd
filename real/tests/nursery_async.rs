//! The async nursery (feature `tokio`): wake-ups on the real reactor, many tasks at once on
//! both runtime flavours, the protocol's deadlines, SIGINT, and what dropping each kind of
//! future does (each row of the table in `AsyncNursery`'s module docs).
//!
//! The wake-up tests drive a future by hand with tokio-test's mock task: it is polled once
//! (`assert_pending!`), the runtime runs meanwhile (a test sleeps on it, so its reactor
//! turns), and `is_woken` says whether what was awaited woke that future, and nothing else.
//! Every test runs on the main thread of its own process (this harness); a current-thread
//! runtime adds no thread, so `Fork` is allowed there.

mod common;

use std::future::Future;
use std::process::ExitCode;
use std::task::Poll;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{MUST, Test};
use harrow_model::error::SpawnError;
use harrow_real::internals::unclaimed_replies_async;
use harrow_real::{
    AsyncNursery, ChildErrorKind, Completion, Error, ForceReason, Initiator, NurseryConfig,
    Outcome, Registry, Role, SpawnMethod, TeardownCause, Timeouts,
};
use tokio::runtime::{Builder, Runtime};
use tokio_test::task::{Spawn, spawn};
use tokio_test::{assert_pending, assert_ready};

/// Sleeps the milliseconds it is sent (the second number), then answers the tag (the first).
const TAGGED: &str = "tagged";
/// A task that sleeps 100 ms, then returns 55.
const SUM: &str = "sum";

/// How long [`SUM`] takes.
const SUM_MS: u64 = 100;

fn registry() -> Registry {
    Registry::new()
        .handler(TAGGED, |(tag, ms): (u64, u64)| {
            sleep(Duration::from_millis(ms));
            Ok::<u64, String>(tag)
        })
        .main(SUM, || {
            sleep(Duration::from_millis(SUM_MS));
            Ok::<u64, String>(55)
        })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "request_is_pending_until_its_reply_wakes_it",
            run: request_is_pending_until_its_reply_wakes_it,
        },
        Test {
            name: "a_reply_seen_by_another_waiter_wakes_its_own",
            run: a_reply_seen_by_another_waiter_wakes_its_own,
        },
        Test {
            name: "waiter_woken_when_its_child_exits",
            run: waiter_woken_when_its_child_exits,
        },
        Test {
            name: "waiter_woken_when_its_child_is_killed",
            run: waiter_woken_when_its_child_is_killed,
        },
        Test {
            name: "wait_child_woken_by_kill_and_a_dropped_one_changes_nothing",
            run: wait_child_woken_by_kill_and_a_dropped_one_changes_nothing,
        },
        Test {
            name: "waiter_woken_when_its_child_is_abandoned",
            run: waiter_woken_when_its_child_is_abandoned,
        },
        Test {
            name: "request_within_ends_at_its_deadline",
            run: request_within_ends_at_its_deadline,
        },
        Test {
            name: "teardown_completes_within_its_bound",
            run: teardown_completes_within_its_bound,
        },
        Test {
            name: "many_tasks_many_requests_current_thread",
            run: || many_tasks_many_requests(current(), SpawnMethod::Fork),
        },
        Test {
            name: "many_tasks_many_requests_multi_thread",
            run: || many_tasks_many_requests(multi(), SpawnMethod::ForkServer),
        },
        Test {
            name: "fork_is_refused_on_a_multi_thread_runtime",
            run: fork_is_refused_on_a_multi_thread_runtime,
        },
        Test {
            name: "sigint_reaches_the_async_nursery",
            run: sigint_reaches_the_async_nursery,
        },
        Test {
            name: "drop_request_abandons_it",
            run: drop_request_abandons_it,
        },
        Test {
            name: "drop_spawn_mid_boot_cancels_the_child",
            run: drop_spawn_mid_boot_cancels_the_child,
        },
        Test {
            name: "drop_result_keeps_the_result",
            run: drop_result_keeps_the_result,
        },
        Test {
            name: "drop_stop_still_stops_the_child",
            run: drop_stop_still_stops_the_child,
        },
        Test {
            name: "drop_wait_any_loses_nothing",
            run: drop_wait_any_loses_nothing,
        },
        Test {
            name: "drop_teardown_goes_on_through_another_handle",
            run: drop_teardown_goes_on_through_another_handle,
        },
        Test {
            name: "drop_of_the_last_handle_ends_every_child",
            run: drop_of_the_last_handle_ends_every_child,
        },
    ])
}

fn current() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(method: SpawnMethod) -> NurseryConfig {
    NurseryConfig::default()
        .with_method(method)
        .with_timeouts(Timeouts {
            thread_abandon: Duration::from_millis(200),
            ..common::QUICK
        })
        .with_handle_sigint(false)
}

fn open(method: SpawnMethod) -> AsyncNursery {
    AsyncNursery::open_with(config(method)).unwrap()
}

/// Lets the runtime run (its reactor turns) until `task` is woken; panics past `within`.
/// Returns how long it took.
async fn until_woken<F: Future>(task: &Spawn<F>, within: Duration) -> Duration {
    let start = Instant::now();
    while !task.is_woken() {
        assert!(start.elapsed() < within, "not woken within {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// Lets the runtime run for `d`.
async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Whether process `pid` still exists in any state (a zombie included).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A request future stays pending (and is not woken) while its child works, and the reply
/// wakes it: then it is ready with that reply.
fn request_is_pending_until_its_reply_wakes_it() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("c", TAGGED).await.unwrap();
        let sent = Instant::now();
        let mut req = spawn(n.request::<_, u64>(c, &(7u64, 300u64)));
        assert_pending!(req.poll());
        pause(Duration::from_millis(100)).await;
        assert!(!req.is_woken(), "woken before the reply came");
        assert_pending!(req.poll());
        until_woken(&req, MUST).await;
        assert!(sent.elapsed() >= Duration::from_millis(300), "woken early");
        assert_eq!(assert_ready!(req.poll()).unwrap(), 7);
        drop(req);
        assert_eq!(unclaimed_replies_async(&n), 0);
        let _ = n.teardown().await;
    });
}

/// Property 9 on the real reactor (the lost-wakeup class): the reply of B's request reaches
/// the nursery while A is the waiter tokio wakes on readiness. A turns the loop and finds B's
/// reply: B must be woken (and A not completed), and B then takes its own reply.
fn a_reply_seen_by_another_waiter_wakes_its_own() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let fast = n.spawn("fast", TAGGED).await.unwrap();
        let slow = n.spawn("slow", TAGGED).await.unwrap();
        let mut b = spawn(n.request::<_, u64>(fast, &(1u64, 50u64)));
        let mut a = spawn(n.request::<_, u64>(slow, &(2u64, 60_000u64)));
        assert_pending!(b.poll());
        // Polled last: A is the waiter tokio wakes when the descriptor is readable.
        assert_pending!(a.poll());
        until_woken(&a, MUST).await;
        assert!(
            !b.is_woken(),
            "B's waker is not tokio's: only A learns of readiness"
        );
        assert_pending!(a.poll(), "A's own request is still running");
        assert!(
            b.is_woken(),
            "A saw B's reply and did not wake B: a lost wake-up"
        );
        assert_eq!(assert_ready!(b.poll()).unwrap(), 1);
        drop((a, b));
        let report = n.teardown().await;
        assert_eq!(report.children.len(), 2);
    });
}

/// A `result` waiter is woken when its run-to-result child exits with its result.
fn waiter_woken_when_its_child_exits() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("sum", SUM).await.unwrap();
        let mut result = spawn(n.result::<u64>(c));
        assert_pending!(result.poll());
        until_woken(&result, MUST).await;
        assert_eq!(assert_ready!(result.poll()).unwrap(), 55);
        drop(result);
        let report = n.teardown().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    });
}

/// A request waiter is woken when its child is SIGKILLed mid-request, with the child's death.
fn waiter_woken_when_its_child_is_killed() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("victim", TAGGED).await.unwrap();
        let mut req = spawn(n.request::<_, u64>(c, &(1u64, 60_000u64)));
        assert_pending!(req.poll());
        let pid = n.pid(c).unwrap();
        // SAFETY: kill(2) of our own child process, which is alive (not yet reaped).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        until_woken(&req, MUST).await;
        match assert_ready!(req.poll()) {
            Err(Error::Child(e)) if matches!(e.kind, ChildErrorKind::Died(_)) => {}
            other => panic!("a request of a killed child ended with {other:?}"),
        }
        drop(req);
        let _ = n.teardown().await;
    });
}

/// `kill` ends a busy child at once and wakes its `wait_child` waiter with the outcome; an
/// earlier `wait_child` future dropped while it waited changed nothing. The nursery goes on
/// (a kill asked for is no failure).
fn wait_child_woken_by_kill_and_a_dropped_one_changes_nothing() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("victim", TAGGED).await.unwrap();
        let mut busy = spawn(n.request::<_, u64>(c, &(1u64, 60_000u64)));
        assert_pending!(busy.poll());
        let mut dropped = spawn(n.wait_child(c));
        assert_pending!(dropped.poll());
        drop(dropped);
        let mut end = spawn(n.wait_child(c));
        assert_pending!(end.poll());
        n.kill(c).unwrap();
        match until_woken_ready(&mut end, MUST).await.0 {
            Ok(Outcome::Killed {
                reason: ForceReason::UserHardStop,
                ..
            }) => {}
            other => panic!("wait_child of a killed child returned {other:?}"),
        }
        drop(end);
        match n.outcome(c) {
            Ok(Some(Outcome::Killed {
                reason: ForceReason::UserHardStop,
                ..
            })) => {}
            other => panic!("a killed child's outcome: {other:?}"),
        }
        assert!(assert_ready!(busy.poll()).is_err());
        drop(busy);
        let sibling = n.spawn("sibling", TAGGED).await.unwrap();
        assert_eq!(
            n.request::<_, u64>(sibling, &(2u64, 0u64)).await.unwrap(),
            2
        );
        let _ = n.teardown().await;
    });
}

/// A `stop` waiter is woken when its thread child, stuck in a request, is abandoned: the
/// protocol's deadlines (no descriptor says they passed) are a tokio sleep.
fn waiter_woken_when_its_child_is_abandoned() {
    let before = common::open_fds();
    current().block_on(async {
        let n = open(SpawnMethod::Thread);
        let c = n.spawn("stuck", TAGGED).await.unwrap();
        let mut req = spawn(n.request::<_, u64>(c, &(1u64, 1_500u64)));
        assert_pending!(req.poll());
        let mut stop = spawn(n.stop(c));
        let asked = Instant::now();
        assert_pending!(stop.poll());
        // Woken at each turn of the loop (the cancel's deadline first), ready once abandoned.
        until_woken_ready(&mut stop, MUST).await.0.unwrap();
        assert!(
            asked.elapsed() < Duration::from_millis(1_000),
            "the stop waited for the handler ({:?}), not for the abandonment",
            asked.elapsed()
        );
        drop((req, stop));
        let report = n.teardown().await;
        let outcome = report.children[0].outcome;
        assert!(
            matches!(
                outcome,
                Some(Outcome::Abandoned(ForceReason::CancelAckTimedOut))
            ),
            "{outcome:?}"
        );
    });
    // The abandoned thread holds its channel until its handler returns.
    let until = Instant::now() + MUST;
    while common::open_fds() != before && Instant::now() < until {
        sleep(Duration::from_millis(20));
    }
}

/// `request_within` ends with `TimedOut` at its deadline, woken by the tokio sleep.
fn request_within_ends_at_its_deadline() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("c", TAGGED).await.unwrap();
        let asked = Instant::now();
        match n
            .request_within::<_, u64>(c, &(1u64, 60_000u64), Duration::from_millis(50))
            .await
        {
            Err(Error::TimedOut { waited, .. }) => assert_eq!(waited, Duration::from_millis(50)),
            other => panic!("expected a time-out, got {other:?}"),
        }
        let took = asked.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let _ = n.teardown().await;
    });
}

/// Three children busy in requests awaited by three tasks: the teardown completes within the
/// teardown bound (plus a margin), and every waiting task gets an answer.
fn teardown_completes_within_its_bound() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let mut tasks = Vec::new();
        for i in 0..3 {
            let c = n.spawn(&format!("c{i}"), TAGGED).await.unwrap();
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                n.request::<_, u64>(c, &(i, 60_000u64)).await
            }));
        }
        pause(Duration::from_millis(50)).await;
        let bound = config(SpawnMethod::Fork)
            .timeouts
            .teardown_bound(SpawnMethod::Fork);
        let mut teardown = spawn(n.teardown());
        assert_pending!(teardown.poll());
        let (report, took) = until_woken_ready(&mut teardown, bound + Duration::from_secs(2)).await;
        assert_eq!(report.children.len(), 3);
        assert!(took < bound + Duration::from_secs(2), "{took:?}");
        for t in tasks {
            assert!(
                t.await.unwrap().is_err(),
                "a request of a torn-down child answered"
            );
        }
    });
}

/// Polls `task` whenever it is woken until it is ready; returns its output and how long that
/// took.
async fn until_woken_ready<F: Future>(
    task: &mut Spawn<F>,
    within: Duration,
) -> (F::Output, Duration) {
    let start = Instant::now();
    loop {
        until_woken(task, within.saturating_sub(start.elapsed())).await;
        if let Poll::Ready(out) = task.poll() {
            return (out, start.elapsed());
        }
    }
}

/// Eight tasks, each with twenty-five requests in flight over four children: every answer
/// comes back to the task and request that asked for it.
fn many_tasks_many_requests(rt: Runtime, method: SpawnMethod) {
    rt.block_on(async {
        let n = open(method);
        let mut children = Vec::new();
        for i in 0..4 {
            children.push(n.spawn(&format!("c{i}"), TAGGED).await.unwrap());
        }
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8u64 {
            let n = n.clone();
            let children = children.clone();
            tasks.spawn(async move {
                let mut requests = tokio::task::JoinSet::new();
                for r in 0..25u64 {
                    let n = n.clone();
                    let child = children[((t + r) % 4) as usize];
                    let tag = t * 1000 + r;
                    requests.spawn(async move {
                        (tag, n.request::<_, u64>(child, &(tag, r % 3)).await)
                    });
                }
                let mut answered = 0;
                while let Some(done) = requests.join_next().await {
                    let (tag, answer) = done.unwrap();
                    assert_eq!(answer.unwrap(), tag);
                    answered += 1;
                }
                answered
            });
        }
        let mut total = 0;
        let until = Instant::now() + MUST;
        while let Some(done) = tasks.join_next().await {
            total += done.unwrap();
            assert!(Instant::now() < until, "the requests took too long");
        }
        assert_eq!(total, 200);
        assert_eq!(unclaimed_replies_async(&n), 0);
        let report = n.teardown().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    });
}

/// On a multi-thread runtime the process has several threads: plain `Fork` is refused, with
/// the error that names `ForkServer`, and the nursery stays usable.
fn fork_is_refused_on_a_multi_thread_runtime() {
    multi().block_on(async {
        let n = open(SpawnMethod::Fork);
        match n.spawn("forked", TAGGED).await {
            Err(e @ Error::Spawn(SpawnError::MethodRefused(_))) => {
                assert!(e.to_string().contains("use ForkServer"), "{e}");
            }
            other => panic!("Fork on a multi-thread runtime returned {other:?}"),
        }
        let c = n
            .spawn_with("served", TAGGED, SpawnMethod::ForkServer, Role::Daemon)
            .await
            .unwrap();
        assert_eq!(n.request::<_, u64>(c, &(5u64, 0u64)).await.unwrap(), 5);
        let _ = n.teardown().await;
    });
}

/// SIGINT during an awaited request: the request returns `Interrupted` once SIGINT's teardown
/// is over, and the report says the cause.
fn sigint_reaches_the_async_nursery() {
    current().block_on(async {
        let n =
            AsyncNursery::open_with(config(SpawnMethod::Fork).with_handle_sigint(true)).unwrap();
        let c = n.spawn("busy", TAGGED).await.unwrap();
        let interrupter = tokio::spawn(async {
            pause(Duration::from_millis(100)).await;
            // SAFETY: kill(2) of our own process with SIGINT, which the nursery handles.
            unsafe { libc::kill(std::process::id() as libc::pid_t, libc::SIGINT) };
        });
        match n.request::<_, u64>(c, &(1u64, 60_000u64)).await {
            Err(Error::Interrupted) => {}
            other => panic!("a request interrupted by SIGINT returned {other:?}"),
        }
        interrupter.await.unwrap();
        let report = n.teardown().await;
        assert_eq!(report.cause, Some(TeardownCause::Interrupted));
        assert_eq!(report.children[0].initiator, Some(Initiator::Interrupt));
    });
}

/// A request future dropped while it waits abandons its request: the late reply is dropped
/// when it comes (nothing stays held), and never answers the next request.
fn drop_request_abandons_it() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("c", TAGGED).await.unwrap();
        let mut req = spawn(n.request::<_, u64>(c, &(1u64, 200u64)));
        assert_pending!(req.poll());
        drop(req);
        assert_eq!(
            unclaimed_replies_async(&n),
            1,
            "in flight until its reply comes"
        );
        // The child answers in order: the abandoned request first.
        assert_eq!(n.request::<_, u64>(c, &(2u64, 0u64)).await.unwrap(), 2);
        assert_eq!(unclaimed_replies_async(&n), 0, "the late reply was kept");
        let _ = n.teardown().await;
    });
}

/// A spawn future dropped while its child boots cancels that child. (Polled once, the future
/// has started the child; the runtime has not run since, so no handshake has been read.)
fn drop_spawn_mid_boot_cancels_the_child() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let mut boot = spawn(n.spawn("booting", TAGGED));
        assert_pending!(boot.poll());
        drop(boot);
        let report = n.teardown().await;
        let summary = &report.children[0];
        assert_eq!(summary.initiator, Some(Initiator::User), "{summary:?}");
        // Stopped by the drop's cancel (the user's), not by the teardown (the nursery's).
        assert!(summary.outcome.is_some(), "{summary:?}");
        // The harness checks that no child process is left.
    });
}

/// A result future dropped while it waits leaves the result kept: a later `result` gets it.
fn drop_result_keeps_the_result() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("sum", SUM).await.unwrap();
        let mut result = spawn(n.result::<u64>(c));
        assert_pending!(result.poll());
        until_woken(&result, MUST).await;
        drop(result);
        assert_eq!(n.result::<u64>(c).await.unwrap(), 55);
        let _ = n.teardown().await;
    });
}

/// A stop future dropped while it waits: the child is stopped all the same, by the user's
/// cancel (not the teardown's).
fn drop_stop_still_stops_the_child() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("c", TAGGED).await.unwrap();
        let mut stop = spawn(n.stop(c));
        assert_pending!(stop.poll());
        drop(stop);
        // Another wait turns the loop meanwhile: the child is gone by then.
        let sibling = n.spawn("sibling", TAGGED).await.unwrap();
        let until = Instant::now() + MUST;
        while n.lookup("c").is_some() {
            assert!(Instant::now() < until, "the child was not stopped");
            n.request::<_, u64>(sibling, &(0u64, 10u64)).await.unwrap();
        }
        let report = n.teardown().await;
        assert_eq!(report.children[0].initiator, Some(Initiator::User));
    });
}

/// A `wait_any` future woken for a result and dropped before it looked loses nothing: the
/// completion, routed to it by another waiter's turn of the loop, is there for the next one.
fn drop_wait_any_loses_nothing() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let sum = n.spawn("sum", SUM).await.unwrap();
        let other = n.spawn("other", TAGGED).await.unwrap();
        let mut any = spawn(n.wait_any());
        let mut req = spawn(n.request::<_, u64>(other, &(1u64, 60_000u64)));
        assert_pending!(any.poll());
        // Polled last: the request's future turns the loop when the result comes.
        assert_pending!(req.poll());
        until_woken(&req, MUST).await;
        assert_pending!(req.poll());
        assert!(any.is_woken(), "the result did not wake wait_any");
        drop(any);
        drop(req);
        match n.wait_any().await {
            Ok(Some(Completion::Result(c))) => assert_eq!(c, sum),
            other => panic!("the result was lost: {other:?}"),
        }
        assert_eq!(n.result::<u64>(sum).await.unwrap(), 55);
        let _ = n.teardown().await;
    });
}

/// A teardown future dropped while another handle lives: the teardown goes on as that
/// handle's waits turn the loop, and they learn of the child's end and that the nursery
/// closed.
fn drop_teardown_goes_on_through_another_handle() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let c = n.spawn("c", TAGGED).await.unwrap();
        let other = n.clone();
        let mut teardown = spawn(n.teardown());
        assert_pending!(teardown.poll());
        drop(teardown);
        match other.request::<_, u64>(c, &(1u64, 0u64)).await {
            Err(Error::Op(_)) => {}
            other => panic!("a request to a nursery tearing down returned {other:?}"),
        }
        // The teardown goes on as this wait turns the loop: the child ends, then it closes.
        match tokio::time::timeout(MUST, other.wait_any()).await.unwrap() {
            Ok(Some(Completion::Ended(ended))) => assert_eq!(ended, c),
            other => panic!("the torn-down child's end was not reported: {other:?}"),
        }
        match tokio::time::timeout(MUST, other.wait_any()).await.unwrap() {
            Err(Error::Closed) | Ok(None) => {}
            other => panic!("wait_any on a torn-down nursery returned {other:?}"),
        }
        let report = other.teardown().await;
        assert_eq!(report.cause, Some(TeardownCause::BodyFinished));
        assert_eq!(report.children[0].initiator, Some(Initiator::Nursery));
    });
}

/// Dropping the last handle (here, inside a teardown future) ends every child at once, as
/// the blocking nursery's drop does: no process is left.
fn drop_of_the_last_handle_ends_every_child() {
    current().block_on(async {
        let n = open(SpawnMethod::Fork);
        let mut pids = Vec::new();
        let mut busy = Vec::new();
        for i in 0..3 {
            let c = n.spawn(&format!("c{i}"), TAGGED).await.unwrap();
            pids.push(n.pid(c).unwrap());
            let mut req = spawn(n.request::<_, u64>(c, &(i, 60_000u64)));
            assert_pending!(req.poll());
            busy.push(req);
        }
        drop(busy);
        let mut teardown = spawn(n.teardown());
        assert_pending!(teardown.poll());
        let dropped = Instant::now();
        drop(teardown);
        assert!(dropped.elapsed() < MUST);
        let left: Vec<i32> = pids.into_iter().filter(|&p| exists(p)).collect();
        assert!(left.is_empty(), "processes left after the drop: {left:?}");
    });
}
