//! Many requests in flight: tickets, `wait_any`, the nursery's descriptor in a host loop, the
//! `max_in_flight` bound, tickets of another nursery, and a child killed mid-batch.
//!
//! The children are forked from the test's main thread (this harness runs every test there,
//! so the process is single-threaded and `Fork` is allowed).

mod common;

use std::collections::HashMap;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{MUST, Test};
use harrow_model::RequestId;
use harrow_model::error::ChildOpError;
use harrow_real::internals::unclaimed_replies;
use harrow_real::{
    Child, ChildErrorKind, Completion, Error, Limits, Nursery, NurseryConfig, Registry,
    SpawnMethod, TeardownCause, Ticket,
};

/// Sleeps the milliseconds it is sent (the second number), then answers the tag (the first).
const TAGGED: &str = "tagged";
/// As [`TAGGED`], but its process dies in the request tagged [`FATAL_TAG`], as an `abort`
/// would end it (by SIGKILL to itself: an abort's death without a core file).
const BRITTLE: &str = "brittle";
const FATAL_TAG: u64 = 3;

fn registry() -> Registry {
    let tagged = |(tag, ms): (u64, u64)| {
        sleep(Duration::from_millis(ms));
        Ok::<u64, String>(tag)
    };
    Registry::new()
        .handler(TAGGED, tagged)
        .handler(BRITTLE, move |(tag, ms): (u64, u64)| {
            if tag == FATAL_TAG {
                let me = rustix::process::getpid();
                let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
            }
            tagged((tag, ms))
        })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[
        Test {
            name: "hundred_in_flight_across_ten_children_out_of_order",
            run: hundred_in_flight_across_ten_children_out_of_order,
        },
        Test {
            name: "past_max_in_flight_is_a_typed_error",
            run: past_max_in_flight_is_a_typed_error,
        },
        Test {
            name: "ticket_of_another_nursery_is_refused",
            run: ticket_of_another_nursery_is_refused,
        },
        Test {
            name: "host_loop_polls_the_descriptor",
            run: host_loop_polls_the_descriptor,
        },
        Test {
            name: "child_killed_mid_batch_ends_each_ticket_with_its_error",
            run: child_killed_mid_batch_ends_each_ticket_with_its_error,
        },
        Test {
            name: "bug_replies_lost_when_child_dies_mid_batch",
            run: bug_replies_lost_when_child_dies_mid_batch,
        },
    ])
}

fn config() -> NurseryConfig {
    NurseryConfig::default()
        .with_method(SpawnMethod::Fork)
        .with_timeouts(common::QUICK)
        .with_handle_sigint(false)
}

fn spawn_all(n: &mut Nursery, count: usize) -> Vec<Child> {
    (0..count)
        .map(|i| n.spawn(&format!("c{i}"), TAGGED).unwrap())
        .collect()
}

/// Takes every ticket's answer as `wait_any` reports its request ended, within [`MUST`];
/// returns the tags in the order they completed.
fn drain(n: &mut Nursery, tickets: &HashMap<RequestId, Ticket>) -> Vec<u64> {
    let mut done = Vec::new();
    let until = Instant::now() + MUST;
    while done.len() < tickets.len() {
        let left = until.saturating_duration_since(Instant::now());
        match n.wait_any(Some(left)).unwrap() {
            Some(Completion::Request { id, .. }) => {
                let tag: u64 = n.try_take(tickets[&id]).expect("reported ended").unwrap();
                done.push(tag);
            }
            other => panic!("waiting for {} answers, got {other:?}", tickets.len()),
        }
    }
    done
}

/// 100 requests in flight at once, ten pipelined to each of ten children; the later a child
/// was sent its requests, the faster it answers, so they complete in another order than they
/// were sent in. Every answer is matched to its own ticket.
fn hundred_in_flight_across_ten_children_out_of_order() {
    let mut n = Nursery::open_with(config()).unwrap();
    let children = spawn_all(&mut n, 10);
    let mut tickets = HashMap::new();
    let mut sent = Vec::new();
    for round in 0..10u64 {
        for (i, &c) in children.iter().enumerate() {
            let tag = round * 100 + i as u64;
            let ms = 2 * (10 - i as u64);
            let t = n.start_request(c, &(tag, ms)).unwrap();
            assert_eq!(t.child(), c);
            tickets.insert(t.id(), t);
            sent.push(tag);
        }
    }
    assert_eq!(unclaimed_replies(&n), 100, "all 100 in flight together");
    let done = drain(&mut n, &tickets);
    let (mut a, mut b) = (sent.clone(), done.clone());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "each answer once, with its own tag");
    assert_ne!(
        sent, done,
        "completed in the order sent: nothing was out of order"
    );
    // Each child answers its own requests in order.
    for i in 0..10 {
        let mine: Vec<u64> = done.iter().copied().filter(|t| t % 100 == i).collect();
        assert!(
            mine.is_sorted(),
            "child {i} answered out of its order: {mine:?}"
        );
    }
    assert_eq!(unclaimed_replies(&n), 0);
    assert_eq!(n.wait_any(Some(Duration::ZERO)).unwrap(), None);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// Past `max_in_flight` a request is refused at once with a typed error (answers not taken
/// count too), and accepted again once an answer is taken.
fn past_max_in_flight_is_a_typed_error() {
    let mut n = Nursery::open_with(config().with_limits(Limits {
        max_in_flight: 4,
        ..Limits::default()
    }))
    .unwrap();
    let c = n.spawn("c", TAGGED).unwrap();
    let mut tickets: Vec<Ticket> = (0..4u64)
        .map(|t| n.start_request(c, &(t, 0u64)).unwrap())
        .collect();
    // Let all four be answered: kept answers still count.
    let first: u64 = n.wait(tickets[3]).unwrap();
    assert_eq!(first, 3);
    tickets.pop();
    let fifth = n.start_request(c, &(4u64, 0u64)).unwrap();
    match n.start_request(c, &(5u64, 0u64)) {
        Err(Error::Op(ChildOpError::TooManyInFlight { max: 4, .. })) => {}
        other => panic!("a fifth request past max_in_flight 4 returned {other:?}"),
    }
    tickets.push(fifth);
    let tags: Vec<u64> = tickets.iter().map(|&t| n.wait(t).unwrap()).collect();
    assert_eq!(tags, [0, 1, 2, 4]);
    match n.wait::<u64>(fifth) {
        Err(Error::Op(ChildOpError::UnknownRequest { .. })) => {}
        other => panic!("a ticket taken twice returned {other:?}"),
    }
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A ticket is answered on the nursery that sent its request only, never taken for the
/// request of the same number to the child of the same number of another nursery.
fn ticket_of_another_nursery_is_refused() {
    let mut a = Nursery::open_with(config()).unwrap();
    let mut b = Nursery::open_with(config()).unwrap();
    let ca = a.spawn("c", TAGGED).unwrap();
    let cb = b.spawn("c", TAGGED).unwrap();
    assert_eq!(ca.id(), cb.id());
    let ta = a.start_request(ca, &(1u64, 0u64)).unwrap();
    let tb = b.start_request(cb, &(2u64, 0u64)).unwrap();
    assert_eq!(ta.id(), tb.id(), "the same request number in both");
    assert!(matches!(b.wait::<u64>(ta), Err(Error::OtherNursery(_))));
    assert!(matches!(
        b.try_take::<u64>(ta),
        Some(Err(Error::OtherNursery(_)))
    ));
    assert!(matches!(b.abandon(ta), Err(Error::OtherNursery(_))));
    assert_eq!(b.wait::<u64>(tb).unwrap(), 2);
    assert_eq!(a.wait::<u64>(ta).unwrap(), 1);
    let report = b.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let report = a.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A host loop that waits on the nursery's descriptor with poll(2), its timeout the
/// nursery's next deadline, and drains the completions whenever it wakes: twenty answers
/// come, and a request with a timeout ends as timed out (a deadline, which no descriptor
/// announces).
fn host_loop_polls_the_descriptor() {
    let mut n = Nursery::open_with(config()).unwrap();
    let children = spawn_all(&mut n, 4);
    let mut tickets = HashMap::new();
    for tag in 0..20u64 {
        let t = n
            .start_request(children[tag as usize % 3], &(tag, tag % 5))
            .unwrap();
        tickets.insert(t.id(), t);
    }
    let late = n
        .start_request_within(children[3], &(99u64, 60_000u64), Duration::from_millis(50))
        .unwrap();
    tickets.insert(late.id(), late);
    let mut answered = Vec::new();
    let mut timed_out = false;
    let until = Instant::now() + MUST;
    while answered.len() < 20 || !timed_out {
        assert!(
            Instant::now() < until,
            "the host loop did not get every answer"
        );
        let wait = n.next_deadline().unwrap_or(MUST).min(MUST);
        let mut fds = [rustix::event::PollFd::new(&n, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec::try_from(wait).unwrap();
        rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
        while let Some(c) = n.wait_any(Some(Duration::ZERO)).unwrap() {
            let Completion::Request { id, .. } = c else {
                panic!("only requests complete here, got {c:?}");
            };
            match n.try_take::<u64>(tickets[&id]).expect("reported ended") {
                Ok(tag) => answered.push(tag),
                Err(Error::TimedOut { waited, .. }) if id == late.id() => {
                    assert_eq!(waited, Duration::from_millis(50));
                    timed_out = true;
                }
                Err(e) => panic!("request {id:?} failed: {e}"),
            }
        }
    }
    answered.sort_unstable();
    assert_eq!(answered, (0..20).collect::<Vec<_>>());
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A child SIGKILLed with ten requests in flight: each of its tickets ends with the child's
/// death, reported by `wait_any` once that error is known, and the failure itself too.
fn child_killed_mid_batch_ends_each_ticket_with_its_error() {
    let mut n = Nursery::open_with(config()).unwrap();
    let c = n.spawn("victim", TAGGED).unwrap();
    let tickets: HashMap<RequestId, Ticket> = (0..10u64)
        .map(|tag| n.start_request(c, &(tag, 60_000u64)).unwrap())
        .map(|t| (t.id(), t))
        .collect();
    assert!(
        n.try_take::<u64>(*tickets.values().next().unwrap())
            .is_none()
    );
    let pid = n.pid(c).unwrap();
    // SAFETY: kill(2) of our own child process, which is alive (not yet reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (mut ended, mut failed) = (0, false);
    while ended < 10 || !failed {
        match n.wait_any(Some(MUST)).unwrap() {
            Some(Completion::Request { id, child }) => {
                assert_eq!(child, c);
                match n.try_take::<u64>(tickets[&id]).expect("reported ended") {
                    Err(Error::Child(e)) if matches!(e.kind, ChildErrorKind::Died(_)) => {}
                    other => panic!("a request of a killed child ended with {other:?}"),
                }
                ended += 1;
            }
            Some(Completion::Failed(e)) => {
                assert_eq!(e.child, c.id());
                failed = true;
            }
            other => panic!("waiting for the killed child's ends, got {other:?}"),
        }
    }
    // Its end follows its failure; the failure tore the nursery down (one cancels all), and
    // nothing else is left.
    assert_eq!(n.wait_any(Some(MUST)).unwrap(), Some(Completion::Ended(c)));
    assert_eq!(n.wait_any(Some(MUST)).unwrap(), None);
    let report = n.teardown();
    assert_eq!(report.cause, Some(TeardownCause::ChildFailed(c.id())));
}

/// A child that dies in the fourth of six pipelined requests has answered the first three,
/// and their callers get those answers; only the requests from the fatal one on end with the
/// child's death.
///
/// What went wrong: the child runtime turned every request it read into a start command at
/// once, and its loop runs a request's work inline, so the reply of a finished request was
/// queued behind the starts of the requests read with it and went out only after all their
/// handlers had run. The first request is slow, so the other five arrive during it and are
/// read as one batch; the second and third answers then waited behind the fourth request's
/// work, died with the process, and their callers saw `Died` instead. The checkers could not
/// see it: the simulated kernel handed a reader one write at a time, never a batch of frames.
///
/// Why the fix works: the runtime queues accepted requests itself and starts the next only
/// when the work before it has finished, after its reply is among the commands; the
/// simulated kernel now reads a stream's queued bytes at once, and flaw F18 puts the old
/// order back for the checkers to find (property 15).
fn bug_replies_lost_when_child_dies_mid_batch() {
    let mut n = Nursery::open_with(config()).unwrap();
    let c = n.spawn("brittle", BRITTLE).unwrap();
    n.ready(c).unwrap();
    let tickets: Vec<Ticket> = (0..6u64)
        .map(|tag| {
            let ms = if tag == 0 { 200 } else { 0 };
            n.start_request(c, &(tag, ms)).unwrap()
        })
        .collect();
    for (tag, &t) in tickets.iter().enumerate() {
        let got = n.wait::<u64>(t);
        if (tag as u64) < FATAL_TAG {
            assert_eq!(
                got.unwrap(),
                tag as u64,
                "request {tag} was answered before the crash"
            );
        } else {
            match got {
                Err(Error::Child(e)) if matches!(e.kind, ChildErrorKind::Died(_)) => {}
                other => panic!("request {tag}, at or after the fatal one, ended with {other:?}"),
            }
        }
    }
    let report = n.teardown();
    assert!(
        report.errors.len() == 1 && matches!(report.errors[0].kind, ChildErrorKind::Died(_)),
        "the child's death is its one error: {:?}",
        report.errors
    );
}
