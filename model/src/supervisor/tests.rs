//! Nursery-level rules: one cancels all, shared deadlines, every error once, registry.

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::wire::PROTOCOL_VERSION;

fn sup(flaws: Flaws) -> Supervisor {
    Supervisor::new(SupervisorConfig {
        flaws,
        ..SupervisorConfig::default()
    })
    .unwrap()
}

fn spec(name: &str, method: SpawnMethod, role: Role) -> SpawnSpec {
    SpawnSpec {
        name: name.to_string(),
        actor: "echo".to_string(),
        method,
        role,
    }
}

fn drain(s: &mut Supervisor) -> Vec<Command> {
    core::iter::from_fn(|| s.poll_command()).collect()
}

fn events(s: &mut Supervisor) -> Vec<Event> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

/// Spawns `n` connected daemons at t=0.
fn serving(s: &mut Supervisor, n: u32, method: SpawnMethod) -> Vec<ChildId> {
    let t = Timestamp::ZERO;
    let ids: Vec<ChildId> = (0..n)
        .map(|i| {
            s.spawn(
                t,
                spec(&format!("c{i}"), method, Role::Daemon),
                &Situation::default(),
            )
            .unwrap()
        })
        .collect();
    for &c in &ids {
        s.handle_launched(t, c).unwrap();
        s.handle_message(
            t,
            c,
            Message::Handshake {
                version: PROTOCOL_VERSION,
                pid: 10 + c.0,
            },
        )
        .unwrap();
    }
    drain(s);
    events(s);
    ids
}

#[test]
fn spawn_issues_launch_and_refuses_fork_when_multithreaded() {
    let mut s = sup(Flaws::NONE);
    let c = s
        .spawn(
            Timestamp::ZERO,
            spec("a", SpawnMethod::Fork, Role::Daemon),
            &Situation::default(),
        )
        .unwrap();
    assert_eq!(
        drain(&mut s),
        vec![Command::Launch {
            child: c,
            actor: "echo".into(),
            method: SpawnMethod::Fork
        }]
    );
    let busy = Situation {
        threads: Ok(4),
        can_exec: true,
    };
    let err = s
        .spawn(
            Timestamp::ZERO,
            spec("b", SpawnMethod::Fork, Role::Daemon),
            &busy,
        )
        .unwrap_err();
    assert!(err.to_string().contains("ForkServer"), "{err}");
    let mut flawed = sup(Flaws::only(Flaw::ForkFromBusyProcess));
    assert!(
        flawed
            .spawn(
                Timestamp::ZERO,
                spec("b", SpawnMethod::Fork, Role::Daemon),
                &busy
            )
            .is_ok()
    );
}

#[test]
fn duplicate_live_names_and_capacity_are_refused() {
    let config = SupervisorConfig {
        limits: Limits {
            max_children: 1,
            ..Limits::default()
        },
        ..Default::default()
    };
    let mut s = Supervisor::new(config).unwrap();
    s.spawn(
        Timestamp::ZERO,
        spec("a", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    )
    .unwrap();
    let err = s.spawn(
        Timestamp::ZERO,
        spec("b", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    );
    assert_eq!(err, Err(SpawnError::CapacityExhausted { max: 1 }));
    let mut s = sup(Flaws::NONE);
    s.spawn(
        Timestamp::ZERO,
        spec("a", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    )
    .unwrap();
    let err = s.spawn(
        Timestamp::ZERO,
        spec("a", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    );
    assert_eq!(err, Err(SpawnError::NameTaken("a".into())));
}

#[test]
fn handshake_registers_the_name_and_lookup_finds_it() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 1, SpawnMethod::Fork);
    assert_eq!(s.lookup("c0"), Some(ids[0]));
    s.hard_stop(Timestamp::ZERO, ids[0]).unwrap();
    assert_eq!(
        s.lookup("c0"),
        None,
        "a killed child is deregistered in the same step"
    );
}

#[test]
fn flaw_f13_leaves_a_killed_child_registered_and_the_invariant_catches_it() {
    let mut s = sup(Flaws::only(Flaw::NoDeregistrationOnKill));
    let ids = serving(&mut s, 1, SpawnMethod::Fork);
    s.hard_stop(Timestamp::ZERO, ids[0]).unwrap();
    assert_eq!(s.lookup("c0"), Some(ids[0]));
    let v = s
        .violation()
        .expect("the registry invariant must catch a stale entry");
    assert_eq!(v.property, 6);
}

#[test]
fn flaw_f15_keeps_a_second_failure_and_the_invariant_catches_it() {
    let boom = RemoteError::error;
    for (flaws, kept) in [
        (Flaws::NONE, false),
        (Flaws::only(Flaw::AcceptEveryFailure), true),
    ] {
        let mut s = sup(flaws);
        let ids = serving(&mut s, 1, SpawnMethod::Exec);
        let t = Timestamp::ZERO;
        s.handle_message(t, ids[0], Message::Failed(boom("x")))
            .unwrap();
        // With the flaw off the second report closes the channel; the input is still taken.
        s.handle_message(t, ids[0], Message::Failed(boom("y")))
            .unwrap();
        let own = s
            .errors()
            .iter()
            .filter(|e| matches!(e.kind, crate::error::ChildErrorKind::Remote(_)))
            .count();
        assert_eq!(own, if kept { 2 } else { 1 }, "{flaws:?}");
        assert_eq!(s.violation().map(|v| v.property), kept.then_some(5));
    }
}

#[test]
fn one_child_error_cancels_every_sibling_in_one_step_with_one_deadline() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 5, SpawnMethod::Exec);
    let t = Timestamp::from_millis(7);
    let boom = RemoteError::error("boom");
    s.handle_message(t, ids[2], Message::Failed(boom)).unwrap();
    let cancels: Vec<ChildId> = drain(&mut s)
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Command::Send {
                    message: Message::Cancel,
                    ..
                }
            )
        })
        .map(|c| c.child())
        .collect();
    assert_eq!(
        cancels, ids,
        "every child, the failed one too, is cancelled at once"
    );
    let deadlines: Vec<_> = ids
        .iter()
        .map(|c| s.lifecycle(*c).unwrap().deadline)
        .collect();
    assert!(
        deadlines
            .iter()
            .all(|d| *d == Some(t + Timeouts::default().cancel_ack))
    );
    assert_eq!(s.phase(), NurseryPhase::TearingDown);
    assert_eq!(s.report().cause, Some(TeardownCause::ChildFailed(ids[2])));
}

/// A spawn that the system refused (no descriptor, no process slot) cancelled every serving
/// sibling, as if a child had failed: under fd pressure one refused spawn took the whole
/// nursery down, though no child misbehaved and the caller already had the error from
/// `spawn`. A launch failure is the caller's error: reported once, cancelling no one.
#[test]
fn bug_a_refused_launch_cancels_every_sibling() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 2, SpawnMethod::Exec);
    let t = Timestamp::from_millis(3);
    let c = s
        .spawn(
            t,
            spec("squeezed", SpawnMethod::Exec, Role::Daemon),
            &Situation::default(),
        )
        .unwrap();
    drain(&mut s);
    s.handle_launch_failed(t, c, "out of descriptors".into())
        .unwrap();
    let sent: Vec<Command> = drain(&mut s);
    assert!(
        sent.iter().all(|c| !matches!(c, Command::Send { .. })),
        "a refused launch sent {sent:?}"
    );
    assert_eq!(s.phase(), NurseryPhase::Open);
    for id in ids {
        assert_eq!(s.lifecycle(id).unwrap().phase, Phase::Serving);
    }
    let failed: Vec<Event> = events(&mut s);
    assert!(
        matches!(failed.as_slice(), [Event::Failed(e), Event::Ended(d)] if e.child == c && *d == c),
        "the refusal is reported once, then the child's end: {failed:?}"
    );
}

#[test]
fn flaw_f10_cancels_one_child_at_a_time() {
    let mut s = sup(Flaws::only(Flaw::SerialTeardown));
    let ids = serving(&mut s, 3, SpawnMethod::Exec);
    s.begin_teardown(Timestamp::ZERO, TeardownCause::BodyFailed);
    let cancels = drain(&mut s)
        .into_iter()
        .filter(|c| matches!(c, Command::Send { .. }))
        .count();
    assert_eq!(cancels, 1);
    assert!(s.lifecycle(ids[1]).unwrap().phase == Phase::Serving);
}

#[test]
fn clean_body_exit_waits_for_run_to_result_children_and_cancels_daemons() {
    let mut s = sup(Flaws::NONE);
    let t = Timestamp::ZERO;
    let d = s
        .spawn(
            t,
            spec("d", SpawnMethod::Exec, Role::Daemon),
            &Situation::default(),
        )
        .unwrap();
    let r = s
        .spawn(
            t,
            spec("r", SpawnMethod::Exec, Role::RunToResult),
            &Situation::default(),
        )
        .unwrap();
    for c in [d, r] {
        s.handle_launched(t, c).unwrap();
        s.handle_message(
            t,
            c,
            Message::Handshake {
                version: PROTOCOL_VERSION,
                pid: 1,
            },
        )
        .unwrap();
    }
    drain(&mut s);
    s.begin_teardown(t, TeardownCause::BodyFinished);
    assert_eq!(s.lifecycle(d).unwrap().phase, Phase::AwaitingCancelAck);
    assert_eq!(s.lifecycle(r).unwrap().phase, Phase::Serving);
    s.handle_message(
        t,
        r,
        Message::Finished {
            result: Ok(vec![1]),
        },
    )
    .unwrap();
    assert_eq!(s.lifecycle(r).unwrap().phase, Phase::AwaitingCancelAck);
}

#[test]
fn teardown_of_stuck_children_costs_one_timeout_and_reports_every_outcome() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 25, SpawnMethod::Fork);
    let t0 = Timestamp::from_millis(10);
    s.begin_teardown(t0, TeardownCause::BodyFailed);
    let ack = s.poll_deadline().unwrap();
    assert_eq!(ack, t0 + Timeouts::default().cancel_ack);
    s.handle_timeout(ack);
    let kills = drain(&mut s)
        .into_iter()
        .filter(|c| matches!(c, Command::Kill { .. }))
        .count();
    assert_eq!(
        kills, 25,
        "every stuck child escalates at the one shared deadline"
    );
    for &c in &ids {
        s.handle_exit(ack, c).unwrap();
        s.handle_reaped(ack, c, ExitStatus::Signaled(9)).unwrap();
        s.handle_channel_closed(ack, c).unwrap();
    }
    assert!(s.is_closed());
    let report = match events(&mut s).pop() {
        Some(Event::Closed(r)) => r,
        other => panic!("expected the closing report, got {other:?}"),
    };
    assert_eq!(report.duration(), Some(Timeouts::default().cancel_ack));
    assert!(
        report
            .children
            .iter()
            .all(|c| matches!(c.outcome, Some(Outcome::Killed { .. })))
    );
    assert!(
        report.errors.is_empty(),
        "kills we asked for are not child errors"
    );
}

#[test]
fn every_error_is_reported_once_even_during_teardown() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 3, SpawnMethod::Exec);
    let t = Timestamp::ZERO;
    for &c in &ids {
        let e = RemoteError::panic(format!("{c}"));
        s.handle_message(t, c, Message::Failed(e)).unwrap();
    }
    let failed = events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, Event::Failed(_)))
        .count();
    assert_eq!(failed, 3);
    assert_eq!(s.errors().len(), 3);
}

/// Property 5's count and order halves can fail: a supervisor state whose failure event was
/// lost, doubled or replaced by another error's, made by hand after a real failure, breaks
/// it, and says what it saw. (The "two reports of its own" half is flaw F15's.)
#[test]
fn property_5_catches_a_failure_event_lost_doubled_or_replaced() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 2, SpawnMethod::Exec);
    let t = Timestamp::ZERO;
    let errors_from = s.errors().len();
    s.handle_message(t, ids[0], Message::Failed(RemoteError::error("x")))
        .unwrap();
    let stepped = Stepped {
        child: ids[0],
        errors_from,
    };
    assert_eq!(invariant::check_step(&s, stepped), Ok(()));
    let broken = |edit: &dyn Fn(&mut VecDeque<Event>)| {
        let mut b = s.clone();
        edit(&mut b.events);
        let v = invariant::check_step(&b, stepped).expect_err("property 5 must break");
        assert_eq!(v.property, 5, "{v}");
        v.detail
    };
    let is_failed = |e: &Event| matches!(e, Event::Failed(_));
    let lost = broken(&|q| q.retain(|e| !is_failed(e)));
    assert!(
        lost.contains("1 errors recorded but 0 failure events"),
        "{lost}"
    );
    let doubled = broken(&|q| {
        let f = q.iter().find(|e| is_failed(e)).cloned().unwrap();
        q.push_back(f);
    });
    assert!(
        doubled.contains("1 errors recorded but 2 failure events"),
        "{doubled}"
    );
    let replaced = broken(&|q| {
        for e in q.iter_mut() {
            if let Event::Failed(err) = e {
                err.child = ids[1];
            }
        }
    });
    assert!(
        replaced.contains("are not the last failure events queued"),
        "{replaced}"
    );
}

/// Every lifecycle input is recorded as a cell of its phase, with the close calls, and taken
/// out by the engine; what a state covered is no part of its identity.
#[test]
fn steps_record_their_cells_and_close_calls_outside_the_state_identity() {
    use crate::wire::MessageKind;
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 1, SpawnMethod::Fork);
    let fresh = {
        let mut f = s.clone();
        f.take_coverage();
        f
    };
    assert_eq!(s, fresh, "coverage must not tell states apart");
    let cov = s.take_coverage();
    assert!(cov.reached(Phase::Launching, InputKind::Launched));
    assert!(cov.reached(
        Phase::AwaitingHandshake,
        InputKind::Message(MessageKind::Handshake)
    ));
    assert!(!cov.reached(Phase::Serving, InputKind::HardStop));
    assert_eq!(cov.close, crate::coverage::CloseCalls::default());
    s.hard_stop(Timestamp::ZERO, ids[0]).unwrap();
    let cov = s.take_coverage();
    assert!(cov.reached(Phase::Serving, InputKind::HardStop));
    assert!(
        !cov.reached(Phase::Launching, InputKind::Launched),
        "taken out before"
    );
    assert_eq!(cov.close.kills, 1);
    let t = s.poll_deadline().expect("the reap bound is armed");
    s.handle_timeout(t);
    assert_eq!(s.take_coverage().close.deadlines, 1);
}

#[test]
fn interrupt_tears_everything_down_with_its_initiator() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 2, SpawnMethod::Thread);
    s.handle_interrupt(Timestamp::ZERO);
    for c in ids {
        assert_eq!(
            s.lifecycle(c).unwrap().stop_initiator,
            Some(Initiator::Interrupt)
        );
    }
}

#[test]
fn user_operations_on_unknown_or_finished_children_are_typed_errors() {
    let mut s = sup(Flaws::NONE);
    assert_eq!(
        s.cancel(Timestamp::ZERO, ChildId(9)),
        Err(ChildOpError::UnknownChild(ChildId(9)))
    );
    let c = s
        .spawn(
            Timestamp::ZERO,
            spec("a", SpawnMethod::Exec, Role::Daemon),
            &Situation::default(),
        )
        .unwrap();
    s.handle_launch_failed(Timestamp::ZERO, c, "ENOMEM".into())
        .unwrap();
    assert_eq!(
        s.cancel(Timestamp::ZERO, c),
        Err(ChildOpError::AlreadyFinished(c))
    );
    assert!(matches!(
        s.request(Timestamp::ZERO, c, vec![], None),
        Err(ChildOpError::AlreadyFinished(_))
    ));
    let err = s.handle_launched(Timestamp::ZERO, c).unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
}

#[test]
fn spawning_while_tearing_down_is_refused() {
    let mut s = sup(Flaws::NONE);
    s.begin_teardown(Timestamp::ZERO, TeardownCause::BodyFinished);
    assert!(s.is_closed(), "an empty nursery closes at once");
    let err = s.spawn(
        Timestamp::ZERO,
        spec("a", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    );
    assert_eq!(err, Err(SpawnError::NurseryClosing));
}

#[test]
fn a_request_payload_over_the_frame_limit_is_refused_before_anything_is_sent() {
    let mut s = Supervisor::new(SupervisorConfig {
        max_frame: 64,
        ..SupervisorConfig::default()
    })
    .unwrap();
    let c = serving(&mut s, 1, SpawnMethod::Fork)[0];
    let max = crate::wire::max_payload(64);
    let err = s
        .request(Timestamp::ZERO, c, vec![0; max as usize + 1], None)
        .unwrap_err();
    assert_eq!(
        err,
        ChildOpError::PayloadTooLarge {
            len: u64::from(max) + 1,
            max
        }
    );
    assert!(err.to_string().contains("max_frame"), "{err}");
    assert!(
        drain(&mut s).is_empty(),
        "nothing may be sent for a refused request"
    );
    // The largest payload that fits is sent, and its frame is within the limit.
    let id = s
        .request(Timestamp::ZERO, c, vec![7; max as usize], None)
        .unwrap();
    let sent = drain(&mut s);
    let [Command::Send { message, .. }] = sent.as_slice() else {
        panic!("expected one send, got {sent:?}");
    };
    assert!(matches!(message, Message::Request { id: i, .. } if *i == id));
    assert!(message.encode(64).is_ok());
}

/// Runs one service cycle at `t`: spawn `name`, boot it, cancel it, and see it ack, exit, get
/// reaped and close its channel. Returns its id.
fn service_cycle(s: &mut Supervisor, t: Timestamp, name: &str) -> Result<ChildId, SpawnError> {
    let c = s.spawn(
        t,
        spec(name, SpawnMethod::ForkServer, Role::Daemon),
        &Situation::default(),
    )?;
    s.handle_launched(t, c).unwrap();
    let hello = Message::Handshake {
        version: PROTOCOL_VERSION,
        pid: 10,
    };
    s.handle_message(t, c, hello).unwrap();
    s.cancel(t, c).unwrap();
    s.handle_message(t, c, Message::CancelAck).unwrap();
    s.handle_exit(t, c).unwrap();
    s.handle_reaped(t, c, ExitStatus::Exited(0)).unwrap();
    drain(s);
    events(s);
    Ok(c)
}

/// `Limits::max_children` counted every child a nursery had ever held, so a long-lived
/// service nursery refused its 4,097th spawn (`CapacityExhausted`) although it held no child
/// at all, and kept every finished child's record for ever. It counts live children now: a
/// child that is over is retired (its record leaves the live table), so the cap is never hit
/// by a nursery that stops what it starts.
#[test]
fn bug_a_long_lived_nursery_refuses_its_4097th_spawn() {
    let mut s = sup(Flaws::NONE);
    let cap = Limits::default().max_children;
    for i in 0..=cap {
        let t = Timestamp::from_nanos(u64::from(i) * 1_000);
        let c = service_cycle(&mut s, t, "svc")
            .unwrap_or_else(|e| panic!("spawn {} of a nursery holding no child: {e}", i + 1));
        assert_eq!(c, ChildId(i), "ids count up and are never reused");
        assert_eq!(s.live_count(), 0, "{c} is over and retired");
    }
    assert_eq!(s.child_count(), cap as usize + 1);
}

#[test]
fn retired_children_are_counted_and_only_the_last_max_ended_are_listed() {
    let mut s = sup(Flaws::NONE);
    let max_ended = Limits::default().max_ended as usize;
    let n = max_ended as u32 + 10;
    for i in 0..n {
        service_cycle(&mut s, Timestamp::from_nanos(u64::from(i)), "svc").unwrap();
    }
    // The oldest are forgotten, with a typed answer for a stale handle; the last are kept.
    assert_eq!(s.lifecycle(ChildId(0)), None);
    assert_eq!(
        s.cancel(Timestamp::from_nanos(u64::from(n)), ChildId(0)),
        Err(ChildOpError::AlreadyFinished(ChildId(0)))
    );
    assert_eq!(
        s.cancel(Timestamp::from_nanos(u64::from(n)), ChildId(n)),
        Err(ChildOpError::UnknownChild(ChildId(n)))
    );
    let last = ChildId(n - 1);
    assert_eq!(s.lifecycle(last).map(|l| l.phase), Some(Phase::Done));
    s.begin_teardown(
        Timestamp::from_nanos(u64::from(n)),
        TeardownCause::BodyFinished,
    );
    let report = s.report();
    assert_eq!(report.retired.exited, u64::from(n));
    assert_eq!(report.retired.total(), u64::from(n));
    let listed: Vec<ChildId> = report.children.iter().map(|c| c.child).collect();
    let expected: Vec<ChildId> = (n - max_ended as u32..n).map(ChildId).collect();
    assert_eq!(listed, expected, "the last max_ended, in spawn order");
}

#[test]
fn max_children_bounds_live_children_and_a_retired_one_frees_its_place() {
    let config = SupervisorConfig {
        limits: Limits {
            max_children: 1,
            ..Limits::default()
        },
        ..Default::default()
    };
    let mut s = Supervisor::new(config).unwrap();
    let t = Timestamp::ZERO;
    let a = s
        .spawn(
            t,
            spec("a", SpawnMethod::Exec, Role::Daemon),
            &Situation::default(),
        )
        .unwrap();
    let refused = s.spawn(
        t,
        spec("b", SpawnMethod::Exec, Role::Daemon),
        &Situation::default(),
    );
    assert_eq!(refused, Err(SpawnError::CapacityExhausted { max: 1 }));
    let msg = refused.unwrap_err().to_string();
    assert!(
        msg.contains("live children") && msg.contains("stop one"),
        "{msg}"
    );
    s.handle_launch_failed(t, a, "ENOMEM".into()).unwrap();
    assert_eq!(s.live_count(), 0);
    assert_eq!(drain(&mut s).last(), Some(&Command::Retire { child: a }));
    assert!(
        s.spawn(
            t,
            spec("b", SpawnMethod::Exec, Role::Daemon),
            &Situation::default()
        )
        .is_ok()
    );
}

/// A child whose reap was given up on may still exit: it stays live (its process is held)
/// until its late reap, and only then is it retired.
#[test]
fn a_child_given_up_on_is_held_until_its_late_reap() {
    let mut s = sup(Flaws::NONE);
    let c = serving(&mut s, 1, SpawnMethod::Fork)[0];
    let t = Timestamp::ZERO;
    s.hard_stop(t, c).unwrap();
    let after_reap_bound = t + Timeouts::default().reap;
    s.handle_timeout(after_reap_bound);
    assert_eq!(s.lifecycle(c).unwrap().outcome, Some(Outcome::Unreaped));
    assert_eq!(
        s.live_count(),
        1,
        "its process may still exit, and is still ours to reap"
    );
    drain(&mut s);
    s.handle_exit(after_reap_bound, c).unwrap();
    assert_eq!(drain(&mut s), vec![Command::Reap { child: c }]);
    s.handle_reaped(after_reap_bound, c, ExitStatus::Signaled(9))
        .unwrap();
    assert_eq!(s.live_count(), 0);
    assert_eq!(drain(&mut s), vec![Command::Retire { child: c }]);
}

fn reply(s: &mut Supervisor, t: Timestamp, c: ChildId, id: RequestId, byte: u8) {
    let message = Message::Reply {
        id,
        result: Ok(vec![byte]),
    };
    s.handle_message(t, c, message).unwrap();
}

fn answered(id: RequestId, byte: u8) -> Option<RequestEnd> {
    Some(RequestEnd::Answered {
        reply: id,
        result: Ok(vec![byte]),
    })
}

#[test]
fn an_answer_is_kept_until_claimed_once_and_holds_its_place_in_flight() {
    let mut s = Supervisor::new(SupervisorConfig {
        limits: Limits {
            max_in_flight: 2,
            ..Limits::default()
        },
        ..SupervisorConfig::default()
    })
    .unwrap();
    let c = serving(&mut s, 1, SpawnMethod::Exec)[0];
    let t = Timestamp::ZERO;
    let a = s.request(t, c, vec![1], None).unwrap();
    let b = s.request(t, c, vec![2], None).unwrap();
    reply(&mut s, t, c, a, 10);
    assert_eq!(
        events(&mut s),
        vec![Event::RequestEnded { child: c, id: a }]
    );
    assert_eq!(
        s.request(t, c, vec![3], None),
        Err(ChildOpError::TooManyInFlight { child: c, max: 2 }),
        "an unclaimed answer counts with the requests in flight"
    );
    assert_eq!(s.claim_reply(c, b), None, "not ended yet");
    assert_eq!(s.claim_reply(c, a), answered(a, 10));
    assert_eq!(s.claim_reply(c, a), None, "handed out once");
    s.request(t, c, vec![3], None).unwrap();
}

#[test]
fn a_request_times_out_by_the_supervisors_deadline_and_its_late_reply_is_dropped() {
    let mut s = sup(Flaws::NONE);
    let c = serving(&mut s, 1, SpawnMethod::Exec)[0];
    let t = Timestamp::ZERO;
    let by = t + core::time::Duration::from_millis(30);
    let a = s.request(t, c, vec![1], Some(by)).unwrap();
    assert_eq!(s.poll_deadline(), Some(by));
    s.handle_timeout(by);
    assert_eq!(
        events(&mut s),
        vec![Event::RequestEnded { child: c, id: a }]
    );
    assert_eq!(s.claim_reply(c, a), Some(RequestEnd::TimedOut));
    let b = s.request(by, c, vec![2], None).unwrap();
    reply(&mut s, by, c, a, 10);
    assert!(events(&mut s).is_empty(), "the late reply answers nothing");
    reply(&mut s, by, c, b, 20);
    assert_eq!(s.claim_reply(c, b), answered(b, 20));
    assert_eq!(s.phase(), NurseryPhase::Open);
}

#[test]
fn a_given_up_request_keeps_no_answer_and_an_unknown_one_is_a_typed_error() {
    let mut s = sup(Flaws::NONE);
    let c = serving(&mut s, 1, SpawnMethod::Exec)[0];
    let t = Timestamp::ZERO;
    let a = s.request(t, c, vec![1], None).unwrap();
    s.abandon_request(t, c, a).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::RequestEnded { child: c, id: a }]
    );
    assert_eq!(s.claim_reply(c, a), None);
    // Still in flight until its late reply: giving it up again changes nothing.
    s.abandon_request(t, c, a).unwrap();
    reply(&mut s, t, c, a, 10);
    assert_eq!(
        s.abandon_request(t, c, a),
        Err(ChildOpError::UnknownRequest { child: c, id: a })
    );
    // An answer already kept is dropped by giving its request up.
    let b = s.request(t, c, vec![2], None).unwrap();
    reply(&mut s, t, c, b, 20);
    s.abandon_request(t, c, b).unwrap();
    assert_eq!(s.claim_reply(c, b), None);
}

/// A daemon whose channel ends unasked is failing: its death report needs its status, which
/// comes at the reap, but the nursery's one-cancels-all starts at the end of its stream, and
/// its requests end then, each once, with the child's end.
#[test]
fn a_childs_unasked_end_cancels_its_siblings_and_ends_its_requests_at_once() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 2, SpawnMethod::Exec);
    let t = Timestamp::ZERO;
    let a = s.request(t, ids[0], vec![1], None).unwrap();
    let b = s.request(t, ids[0], vec![2], None).unwrap();
    s.handle_channel_closed(t, ids[0]).unwrap();
    assert_eq!(s.phase(), NurseryPhase::TearingDown);
    assert_eq!(s.teardown_cause(), Some(TeardownCause::ChildFailed(ids[0])));
    let cancelled = drain(&mut s).contains(&Command::Send {
        child: ids[1],
        message: Message::Cancel,
    });
    assert!(cancelled, "the sibling is cancelled before any reap");
    assert_eq!(
        events(&mut s),
        vec![
            Event::RequestEnded {
                child: ids[0],
                id: a
            },
            Event::RequestEnded {
                child: ids[0],
                id: b
            },
        ]
    );
    assert_eq!(s.claim_reply(ids[0], a), Some(RequestEnd::ChildEnded));
    assert_eq!(s.claim_reply(ids[0], b), Some(RequestEnd::ChildEnded));
}

#[test]
fn a_result_is_kept_until_claimed_once() {
    let mut s = sup(Flaws::NONE);
    let t = Timestamp::ZERO;
    let c = s
        .spawn(
            t,
            spec("r", SpawnMethod::Exec, Role::RunToResult),
            &Situation::default(),
        )
        .unwrap();
    s.handle_launched(t, c).unwrap();
    let hs = Message::Handshake {
        version: PROTOCOL_VERSION,
        pid: 7,
    };
    s.handle_message(t, c, hs).unwrap();
    s.handle_message(
        t,
        c,
        Message::Finished {
            result: Ok(vec![4]),
        },
    )
    .unwrap();
    assert!(events(&mut s).contains(&Event::Finished(c)));
    assert_eq!(s.claim_result(c), Some(Ok(vec![4])));
    assert_eq!(s.claim_result(c), None);
}

/// A hard stop the user asked for (`Nursery::kill`) SIGKILLs the child at once, is no
/// failure (the nursery stays open, a sibling keeps serving), and the child's end is
/// reported once, when it is done, with its outcome `Killed` by `UserHardStop`.
#[test]
fn a_hard_stop_kills_at_once_ends_the_child_once_and_fails_nothing() {
    let mut s = sup(Flaws::NONE);
    let ids = serving(&mut s, 2, SpawnMethod::Fork);
    let (c, sibling) = (ids[0], ids[1]);
    let t = Timestamp::ZERO;
    drain(&mut s);
    events(&mut s);
    s.hard_stop(t, c).unwrap();
    assert_eq!(drain(&mut s), vec![Command::Kill { child: c }]);
    s.handle_exit(t, c).unwrap();
    assert_eq!(drain(&mut s), vec![Command::Reap { child: c }]);
    assert!(events(&mut s).is_empty(), "not ended before it is reaped");
    s.handle_reaped(t, c, ExitStatus::Signaled(9)).unwrap();
    s.handle_channel_closed(t, c).unwrap();
    assert_eq!(events(&mut s), vec![Event::Ended(c)]);
    assert_eq!(
        s.lifecycle(c).unwrap().outcome,
        Some(Outcome::Killed {
            reason: ForceReason::UserHardStop,
            status: ExitStatus::Signaled(9),
        })
    );
    assert!(s.errors().is_empty(), "{:?}", s.errors());
    assert_eq!(s.phase(), NurseryPhase::Open);
    assert!(s.request(t, sibling, vec![1], None).is_ok());
    assert_eq!(s.hard_stop(t, c), Err(ChildOpError::AlreadyFinished(c)));
}

/// A child that dies unasked is reported failed first, then ended: whoever learns of its end
/// knows its error already.
#[test]
fn a_death_is_reported_before_the_end() {
    let mut s = sup(Flaws::NONE);
    let c = serving(&mut s, 1, SpawnMethod::Fork)[0];
    let t = Timestamp::ZERO;
    events(&mut s);
    s.handle_exit(t, c).unwrap();
    s.handle_reaped(t, c, ExitStatus::Signaled(9)).unwrap();
    s.handle_channel_closed(t, c).unwrap();
    let evs = events(&mut s);
    let failed = evs.iter().position(|e| matches!(e, Event::Failed(_)));
    let ended: Vec<usize> = (0..evs.len())
        .filter(|&i| evs[i] == Event::Ended(c))
        .collect();
    assert!(
        matches!((failed, &ended[..]), (Some(f), [e]) if f < *e),
        "{evs:?}"
    );
}

/// `claim_errors` hands out each kept error once, in order, and an error dropped with its
/// child's record (past `max_ended`) moves the claimed mark with it: nothing is handed out
/// twice, and nothing kept is skipped.
#[test]
fn claimed_errors_are_handed_out_once_across_retirement() {
    let mut s = Supervisor::new(SupervisorConfig {
        limits: Limits {
            max_ended: 1,
            ..Limits::default()
        },
        ..SupervisorConfig::default()
    })
    .unwrap();
    let t = Timestamp::ZERO;
    let fail = |s: &mut Supervisor, name: &str| {
        let c = s
            .spawn(
                t,
                spec(name, SpawnMethod::Exec, Role::Daemon),
                &Situation::default(),
            )
            .unwrap();
        s.handle_launch_failed(t, c, "no".into()).unwrap();
        c
    };
    let a = fail(&mut s, "a");
    let claimed: Vec<ChildId> = s.claim_errors().iter().map(|e| e.child).collect();
    assert_eq!(claimed, vec![a]);
    assert!(s.claim_errors().is_empty(), "each error once");
    // b's retirement drops a's record and its claimed error; b's error is still to claim.
    let b = fail(&mut s, "b");
    assert_eq!(
        s.errors().iter().map(|e| e.child).collect::<Vec<_>>(),
        vec![b]
    );
    let claimed: Vec<ChildId> = s.claim_errors().iter().map(|e| e.child).collect();
    assert_eq!(claimed, vec![b]);
    // d's retirement drops c's record, and c's error with it, unclaimed.
    let c = fail(&mut s, "c");
    let d = fail(&mut s, "d");
    let claimed: Vec<ChildId> = s.claim_errors().iter().map(|e| e.child).collect();
    assert_eq!(
        claimed,
        vec![d],
        "{c} was dropped with its record, unclaimed"
    );
}
