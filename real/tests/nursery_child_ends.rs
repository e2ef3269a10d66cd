//! One child's end without tearing the nursery down: `kill` now, `outcome` and `wait_child`
//! for how one child ended, and `wait_any` reporting whichever child ends next; and the
//! errors a runtime author meets, which name their child and chain their `source()`; and
//! `max_frame`, configured in the parent and carried to the child by every spawn method.
//!
//! The children are forked from the test's main thread (this harness runs every test there,
//! so the process is single-threaded and `Fork` is allowed).

mod common;

use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{MUST, Test};
use harrow_model::wire::{DEFAULT_MAX_FRAME, max_payload};
use harrow_real::internals::queued_completions;
use harrow_real::{
    Cancel, ChildErrorKind, ChildOpError, Completion, Error, ExitStatus, ForceReason, Limits,
    Nursery, NurseryConfig, Outcome, Registry, RemoteError, SpawnMethod, Task, TeardownCause,
    Timeouts, encode,
};

/// Doubles what it is sent.
const DOUBLE: &str = "double";
/// Ignores its cancel for a minute: only a kill ends it early.
const STUBBORN: &str = "stubborn";
/// Tasks that sleep 800, 40 and 400 ms, then return how long they slept.
const NAPS: [(&str, u64); 3] = [("nap800", 800), ("nap40", 40), ("nap400", 400)];
/// A task that fails with a message.
const BROKEN: &str = "broken";
/// Sleeps the milliseconds it is sent, then answers them.
const SLEEPY: &str = "sleepy";
/// A task that returns 42 at once.
const ANSWER: &str = "answer";
/// Answers as many bytes as it is asked for.
const SIZED: &str = "sized";

/// Sleeps its milliseconds, deaf to its cancel, then returns them.
struct Nap(u64);

impl Task for Nap {
    fn run(&mut self, _cancel: &Cancel<'_>) -> Result<Vec<u8>, RemoteError> {
        sleep(Duration::from_millis(self.0));
        encode(&self.0).map_err(RemoteError::refused)
    }
}

fn registry() -> Registry {
    let mut r = Registry::new()
        .handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
        .main(ANSWER, || Ok::<u64, String>(42))
        .handler(SIZED, |len: u32| {
            Ok::<Vec<u8>, String>(vec![7; len as usize])
        })
        .handler(SLEEPY, |ms: u64| {
            sleep(Duration::from_millis(ms));
            Ok::<u64, String>(ms)
        })
        .task(STUBBORN, || Nap(60_000))
        .main(BROKEN, || -> Result<u64, String> {
            Err("broken on purpose".into())
        });
    for (name, ms) in NAPS {
        r = r.task(name, move || Nap(ms));
    }
    r
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "kill_ends_one_child_now_and_the_nursery_goes_on",
            run: kill_ends_one_child_now_and_the_nursery_goes_on,
        },
        Test {
            name: "wait_child_times_out_on_a_live_child_then_reports_its_exit",
            run: wait_child_times_out_on_a_live_child_then_reports_its_exit,
        },
        Test {
            name: "wait_child_reports_the_error_of_a_failed_child",
            run: wait_child_reports_the_error_of_a_failed_child,
        },
        Test {
            name: "wait_any_reports_whichever_child_ends_next",
            run: wait_any_reports_whichever_child_ends_next,
        },
        Test {
            name: "errors_name_their_child_and_chain_their_source",
            run: errors_name_their_child_and_chain_their_source,
        },
        Test {
            name: "a_small_max_frame_is_carried_to_the_child_by_every_method",
            run: a_small_max_frame_is_carried_to_the_child_by_every_method,
        },
        Test {
            name: "the_default_max_frame_is_unchanged_and_a_bad_one_refused",
            run: the_default_max_frame_is_unchanged_and_a_bad_one_refused,
        },
        Test {
            name: "bug_wait_any_after_a_failure_is_closed_or_none_by_timing",
            run: bug_wait_any_after_a_failure_is_closed_or_none_by_timing,
        },
        Test {
            name: "bug_stale_completions_kept_until_wait_any",
            run: bug_stale_completions_kept_until_wait_any,
        },
        Test {
            name: "a_handle_of_another_nursery_is_refused_by_kill_and_wait_child",
            run: a_handle_of_another_nursery_is_refused_by_kill_and_wait_child,
        },
    ])
}

/// Acknowledgement and grace timeouts far past what the tests wait: a child that ends
/// sooner was not ended by them.
const SLOW: Duration = Duration::from_secs(20);

fn forking() -> Nursery {
    let timeouts = Timeouts {
        cancel_ack: SLOW,
        kill_grace: SLOW,
        ..Timeouts::default()
    };
    let config = NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_timeouts(timeouts)
        .with_handle_sigint(false);
    Nursery::open_with(config).expect("open a nursery")
}

/// A child killed with `kill` is SIGKILLed now, not after the cancel timeouts; its outcome
/// is `Killed` by `UserHardStop`, which is no failure: a sibling keeps answering and new
/// spawns are accepted.
fn kill_ends_one_child_now_and_the_nursery_goes_on() {
    let mut n = forking();
    let stubborn = n.spawn("stubborn", STUBBORN).unwrap();
    let double = n.spawn("double", DOUBLE).unwrap();
    assert_eq!(n.outcome(stubborn).unwrap(), None, "it works for a minute");
    let started = Instant::now();
    n.kill(stubborn).unwrap();
    let outcome = n.wait_child(stubborn, Some(MUST)).unwrap();
    let took = started.elapsed();
    assert_eq!(
        outcome,
        Some(Outcome::Killed {
            reason: ForceReason::UserHardStop,
            status: ExitStatus::Signaled(9),
        })
    );
    assert!(took < SLOW / 2, "the kill took {took:?}");
    // Asked again, it says the same.
    assert_eq!(n.outcome(stubborn).unwrap(), outcome);
    assert_eq!(n.request::<u64, u64>(double, &21).unwrap(), 42);
    let again = n.spawn("double-2", DOUBLE).unwrap();
    assert_eq!(n.request::<u64, u64>(again, &5).unwrap(), 10);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// `wait_child` on a child that lives past its timeout says `None` after that timeout; on
/// a task that returned, its clean exit.
fn wait_child_times_out_on_a_live_child_then_reports_its_exit() {
    let mut n = forking();
    let nap = n.spawn("nap", NAPS[2].0).unwrap();
    let wait = Duration::from_millis(50);
    let started = Instant::now();
    assert_eq!(n.wait_child(nap, Some(wait)).unwrap(), None);
    let took = started.elapsed();
    assert!(took >= wait, "gave up after {took:?}, before {wait:?}");
    assert_eq!(n.result::<u64>(nap).unwrap(), 400);
    assert_eq!(
        n.wait_child(nap, Some(MUST)).unwrap(),
        Some(Outcome::Exited(ExitStatus::Exited(0)))
    );
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A child that failed is `Error::Child` with its own error, from `wait_child` and
/// `outcome` alike; `take_failures` hands that error out once.
fn wait_child_reports_the_error_of_a_failed_child() {
    let mut n = forking();
    let broken = n.spawn("broken", BROKEN).unwrap();
    let is_its_error = |e: &Error| {
        matches!(e, Error::Child(c) if c.child == broken.id()
            && matches!(&c.kind, ChildErrorKind::Remote(r) if r.message.contains("broken on purpose")))
    };
    match n.wait_child(broken, Some(MUST)) {
        Err(e) if is_its_error(&e) => {}
        other => panic!("a failed task's end: {other:?}"),
    }
    match n.outcome(broken) {
        Err(e) if is_its_error(&e) => {}
        other => panic!("a failed task's end, asked again: {other:?}"),
    }
    // Its error is also among the failures, taken once.
    let failures = n.take_failures();
    assert!(
        matches!(&failures[..], [e] if is_its_error(&Error::Child(e.clone()))),
        "{failures:?}"
    );
    assert!(n.take_failures().is_empty());
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(broken.id())));
}

/// Three tasks that end in another order than they were spawned in: `wait_any` reports each
/// one's end as it happens (after its result), so the ends come shortest nap first.
fn wait_any_reports_whichever_child_ends_next() {
    let mut n = forking();
    let naps: Vec<_> = NAPS
        .iter()
        .map(|(name, _)| n.spawn(name, name).unwrap())
        .collect();
    let mut ended = Vec::new();
    while ended.len() < naps.len() {
        match n.wait_any(Some(MUST)).unwrap() {
            Some(Completion::Result(_)) => {}
            Some(Completion::Ended(child)) => {
                assert_eq!(
                    n.outcome(child).unwrap(),
                    Some(Outcome::Exited(ExitStatus::Exited(0)))
                );
                ended.push(child);
            }
            other => panic!("waiting for the naps to end, got {other:?}"),
        }
    }
    assert_eq!(ended, vec![naps[1], naps[2], naps[0]]);
    assert_eq!(n.wait_any(Some(Duration::ZERO)).unwrap(), None);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// `kill` and `wait_child` with a handle from another nursery are refused: they never reach
/// this nursery's child of the same number.
fn a_handle_of_another_nursery_is_refused_by_kill_and_wait_child() {
    let mut a = forking();
    let mut b = forking();
    let in_a = a.spawn("double", DOUBLE).unwrap();
    let in_b = b.spawn("double", DOUBLE).unwrap();
    assert_eq!(in_a.id(), in_b.id());
    assert!(matches!(b.kill(in_a), Err(Error::OtherNursery(_))));
    assert!(matches!(
        b.wait_child(in_a, Some(Duration::ZERO)),
        Err(Error::OtherNursery(_))
    ));
    assert_eq!(b.request::<u64, u64>(in_b, &1).unwrap(), 2);
    for report in [a.teardown(), b.teardown()] {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}

/// A timed-out request names the child it went to (id and instance name); a child's failure
/// has the child's own remote error as its `source()`; a nursery refused for its timeouts
/// has the policy's error as its `source()`.
fn errors_name_their_child_and_chain_their_source() {
    let zero = Timeouts {
        cancel_ack: Duration::ZERO,
        ..Timeouts::default()
    };
    match Nursery::open_with(NurseryConfig::default().with_timeouts(zero)) {
        Err(e @ Error::Open(_)) => {
            let policy = std::error::Error::source(&e).expect("the policy's error");
            assert!(policy.to_string().contains("cancel_ack"), "{policy}");
        }
        other => panic!("a zero timeout opened {other:?}"),
    }
    let mut n = forking();
    let sleepy = n.spawn("dozy", SLEEPY).unwrap();
    match n.request_within::<u64, u64>(sleepy, &500, Duration::from_millis(20)) {
        Err(e @ Error::TimedOut { .. }) => {
            let Error::TimedOut { child, name, .. } = &e else {
                unreachable!()
            };
            assert_eq!((*child, name.as_str()), (sleepy.id(), "dozy"));
            assert!(e.to_string().contains("`dozy`"), "{e}");
        }
        other => panic!("a request past its timeout returned {other:?}"),
    }
    let broken = n.spawn("broken", BROKEN).unwrap();
    match n.wait_child(broken, Some(MUST)) {
        Err(e @ Error::Child(_)) => {
            assert!(e.to_string().contains("`broken`"), "{e}");
            let remote = std::error::Error::source(&e).expect("the child's remote error");
            let remote = remote.downcast_ref::<RemoteError>().expect("a RemoteError");
            assert_eq!(remote.message, "broken on purpose");
        }
        other => panic!("a failed task's end: {other:?}"),
    }
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(broken.id())));
}

/// With `max_frame` set to 1 KiB, a request over its payload limit is refused before it is
/// sent, and a child asked for a reply over it answers with a remote error that says so and
/// keeps serving: the child knows the configured limit (with the default one it would have
/// sent the 2,000 bytes, a frame its parent refuses as malformed). For every spawn method.
fn a_small_max_frame_is_carried_to_the_child_by_every_method() {
    let limit = max_payload(NurseryConfig::MIN_FRAME);
    for method in [
        SpawnMethod::Fork,
        SpawnMethod::Exec,
        SpawnMethod::ForkServer,
        SpawnMethod::Thread,
    ] {
        let config = NurseryConfig::default()
            .with_method(method)
            .with_handle_sigint(false)
            .with_max_frame(NurseryConfig::MIN_FRAME);
        let mut n = Nursery::open_with(config).expect("open a nursery");
        let sized = n.spawn("sized", SIZED).unwrap();
        match n.request::<Vec<u8>, Vec<u8>>(sized, &vec![0; 2000]) {
            Err(Error::Op(ChildOpError::PayloadTooLarge { max, .. })) => assert_eq!(max, limit),
            other => panic!("{method:?}: a request over the limit gave {other:?}"),
        }
        match n.request::<u32, Vec<u8>>(sized, &2000) {
            Err(Error::Remote { child, error, .. }) => {
                assert_eq!(child, sized.id(), "{method:?}: the error names its child");
                assert!(
                    error
                        .message
                        .contains(&format!("{limit}-byte payload limit")),
                    "{error}"
                )
            }
            other => panic!("{method:?}: a reply over the limit gave {other:?}"),
        }
        let fits = n.request::<u32, Vec<u8>>(sized, &900).unwrap();
        assert_eq!(fits.len(), 900, "{method:?}");
        let report = n.teardown();
        assert!(report.errors.is_empty(), "{method:?}: {:?}", report.errors);
    }
}

/// The default frame limit is still 1 MiB, on both sides: a 100,000-byte reply comes back
/// whole. A `max_frame` outside the bounds is refused when the nursery opens.
fn the_default_max_frame_is_unchanged_and_a_bad_one_refused() {
    assert_eq!(NurseryConfig::default().max_frame, DEFAULT_MAX_FRAME);
    assert_eq!(DEFAULT_MAX_FRAME, 1 << 20);
    let mut n = forking();
    let sized = n.spawn("sized", SIZED).unwrap();
    let big = n.request::<u32, Vec<u8>>(sized, &100_000).unwrap();
    assert_eq!(big.len(), 100_000);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for bad in [NurseryConfig::MIN_FRAME - 1, NurseryConfig::MAX_FRAME + 1] {
        match Nursery::open_with(NurseryConfig::default().with_max_frame(bad)) {
            Err(e @ Error::Open(_)) => assert!(e.to_string().contains("max_frame"), "{e}"),
            other => panic!("max_frame {bad} opened {other:?}"),
        }
    }
}

/// After a child's failure tore the nursery down, `wait_any` reports what is left (the
/// failure, the failed task's result, each child's end) and then `Ok(None)`, every time it
/// is asked: nothing is left that could complete.
///
/// What went wrong: once the teardown was over, `wait_any` said `Err(Closed)`, but while it
/// still ran, `Ok(None)` when its timeout passed: what a host loop saw after a failure
/// depended on how fast the siblings went. The fix: a closed nursery has nothing left that
/// could complete, like one whose children have all ended, so `wait_any` says `Ok(None)`
/// once it has reported everything (`Closed` stays the answer to a wait for a particular
/// answer that cannot come; SIGINT's `Interrupted` is unchanged).
fn bug_wait_any_after_a_failure_is_closed_or_none_by_timing() {
    let mut n = forking();
    let double = n.spawn("double", DOUBLE).unwrap();
    let broken = n.spawn("broken", BROKEN).unwrap();
    let (mut failed, mut ended) = (false, Vec::new());
    while let Some(c) = n.wait_any(Some(MUST)).unwrap() {
        match c {
            Completion::Failed(e) => {
                assert_eq!(e.child, broken.id());
                failed = true;
            }
            Completion::Result(c) => assert_eq!(c, broken),
            Completion::Ended(c) => ended.push(c),
            other => panic!("after a failure, {other:?}"),
        }
    }
    assert!(failed, "the failure was reported");
    ended.sort();
    assert_eq!(ended, vec![double, broken]);
    for _ in 0..3 {
        assert_eq!(n.wait_any(Some(Duration::ZERO)).unwrap(), None);
        assert_eq!(n.wait_any(None).unwrap(), None);
    }
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(broken.id())));
}

/// A long-lived nursery whose user never calls `wait_any` keeps its completion queue
/// bounded: a completion whose result was dropped with its child's record (past
/// `Limits::max_ended`) is dropped too, and what is still announced is still reported.
///
/// What went wrong: such stale completions left the queue only when `wait_any` came upon
/// them, so a nursery that spawned tasks and never claimed their results (nor called
/// `wait_any`) kept one entry per task it ever ran. The fix: queuing a completion sweeps the
/// stale ones first whenever the queue has doubled since its last sweep.
fn bug_stale_completions_kept_until_wait_any() {
    let limits = Limits {
        max_ended: 2,
        ..Limits::default()
    };
    let config = NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_handle_sigint(false)
        .with_limits(limits);
    let mut n = Nursery::open_with(config).expect("open a nursery");
    let mut last = Vec::new();
    for i in 0..200 {
        let c = n.spawner(ANSWER).name(&format!("a{i}")).spawn().unwrap();
        assert!(n.wait_child(c, Some(MUST)).unwrap().is_some());
        last.push(c);
    }
    let queued = queued_completions(&n);
    assert!(
        queued <= 64,
        "{queued} completions queued for 200 ended tasks, of which 2 keep a result"
    );
    match n.wait_any(Some(Duration::ZERO)).unwrap() {
        Some(Completion::Result(c)) => assert!(last[198..].contains(&c), "{c:?}"),
        other => panic!("the kept results are still announced: {other:?}"),
    }
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
