//! One test per lifecycle transition.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::wire::FrameError;

const T0: Timestamp = Timestamp::from_millis(100);

fn cx_with(flaws: Flaws) -> StepContext {
    StepContext {
        timeouts: Timeouts::default(),
        flaws,
        max_in_flight: 2,
    }
}

fn cx() -> StepContext {
    cx_with(Flaws::NONE)
}

fn ok(l: &mut Lifecycle, input: Input) -> Vec<Action> {
    ok_with(l, input, &cx())
}

fn ok_with(l: &mut Lifecycle, input: Input, cx: &StepContext) -> Vec<Action> {
    let name = input.name();
    l.step(T0, input, cx)
        .unwrap_or_else(|r| panic!("{name} refused in {:?}: {r:?}", l.phase))
}

/// The action of request `id` ended by its own reply.
fn answered(id: u64, result: Result<Vec<u8>, RemoteError>) -> Action {
    Action::RequestEnded(
        RequestId(id),
        RequestEnd::Answered {
            reply: RequestId(id),
            result,
        },
    )
}

fn handshake() -> Input {
    Input::Message(Message::Handshake {
        version: PROTOCOL_VERSION,
        pid: 7,
    })
}

fn err(msg: &str) -> RemoteError {
    RemoteError::error(msg)
}

/// A lifecycle driven to `phase` by the usual path, for a child of `method` and `role`.
fn at_with(phase: Phase, method: SpawnMethod, role: Role, cx: &StepContext) -> Lifecycle {
    let mut l = Lifecycle::new(method, role);
    l.deadline = Some(T0 + cx.timeouts.boot);
    let path: Vec<Input> = match phase {
        Phase::Launching => vec![],
        Phase::AwaitingHandshake => vec![Input::Launched],
        Phase::Serving => vec![Input::Launched, handshake()],
        Phase::AwaitingCancelAck => {
            vec![Input::Launched, handshake(), Input::Cancel(Initiator::User)]
        }
        Phase::AwaitingExit => vec![
            Input::Launched,
            handshake(),
            Input::Cancel(Initiator::User),
            Input::Message(Message::CancelAck),
        ],
        Phase::AwaitingKilledExit => vec![Input::Launched, handshake(), Input::HardStop],
        Phase::AwaitingReap => vec![Input::Launched, handshake(), Input::ExitObserved],
        Phase::Draining => vec![
            Input::Launched,
            handshake(),
            Input::HardStop,
            Input::ExitObserved,
            Input::Reaped(ExitStatus::Signaled(9)),
        ],
        Phase::Done => vec![Input::LaunchFailed("no".into())],
    };
    for input in path {
        ok_with(&mut l, input, cx);
    }
    assert_eq!(l.phase, phase, "the path did not reach {phase:?}");
    l
}

fn at(phase: Phase) -> Lifecycle {
    at_with(phase, SpawnMethod::Fork, Role::Daemon, &cx())
}

fn errors(actions: &[Action]) -> Vec<&ChildErrorKind> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Error(k, _) => Some(k),
            _ => None,
        })
        .collect()
}

#[test]
fn launching_launched_sends_the_spec_and_awaits_the_handshake() {
    let mut l = at(Phase::Launching);
    let out = ok(&mut l, Input::Launched);
    assert_eq!(out, vec![Action::SendSpawnSpec]);
    assert_eq!(l.phase, Phase::AwaitingHandshake);
    assert!(l.channel_open);
    assert_eq!(l.specs_sent, 1);
}

#[test]
fn launching_failed_is_done_with_an_error() {
    let mut l = at(Phase::Launching);
    let out = ok(&mut l, Input::LaunchFailed("EAGAIN".into()));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::LaunchFailed("EAGAIN".into())]
    );
    assert_eq!(l.phase, Phase::Done);
    assert!(l.is_finished());
    assert_eq!(l.outcome, Some(Outcome::LaunchFailed));
}

#[test]
fn launching_cancel_is_remembered_and_waits_for_the_handshake_under_the_ack_deadline() {
    let mut l = at(Phase::Launching);
    assert!(ok(&mut l, Input::Cancel(Initiator::Nursery)).is_empty());
    assert_eq!(ok(&mut l, Input::Launched), vec![Action::SendSpawnSpec]);
    assert_eq!(l.deadline, Some(T0 + Timeouts::default().cancel_ack));
}

#[test]
fn launching_hard_stop_kills_at_launch() {
    let mut l = at(Phase::Launching);
    assert!(ok(&mut l, Input::HardStop).is_empty());
    let out = ok(&mut l, Input::Launched);
    assert!(out.contains(&Action::Kill));
    assert_eq!(l.force, Some(ForceReason::UserHardStop));
}

#[test]
fn cancel_while_booting_sends_the_cancel_at_handshake_keeping_its_deadline() {
    let mut l = at(Phase::AwaitingHandshake);
    assert!(ok(&mut l, Input::Cancel(Initiator::Nursery)).is_empty());
    let ack_by = T0 + Timeouts::default().cancel_ack;
    assert_eq!(l.deadline, Some(ack_by));
    let later = T0 + Duration::from_millis(100);
    let out = l.step(later, handshake(), &cx()).unwrap();
    assert_eq!(
        out,
        vec![Action::Send(Message::Cancel)],
        "no registration, no ready"
    );
    assert_eq!(
        (l.phase, l.deadline),
        (Phase::AwaitingCancelAck, Some(ack_by))
    );
}

#[test]
fn cancel_while_booting_stops_hard_if_no_handshake_comes_in_time() {
    let mut l = at(Phase::AwaitingHandshake);
    ok(&mut l, Input::Cancel(Initiator::Nursery));
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert!(
        errors(&out).is_empty(),
        "a stop we started is not a boot timeout"
    );
    assert!(out.contains(&Action::Kill));
}

#[test]
fn a_late_handshake_or_ack_from_a_child_being_stopped_is_ignored() {
    let mut l = at(Phase::AwaitingHandshake);
    ok(&mut l, Input::Cancel(Initiator::Nursery));
    let due = l.deadline.unwrap();
    l.step(due, Input::Deadline, &cx()).unwrap();
    assert!(ok(&mut l, handshake()).is_empty());
    let mut k = at(Phase::AwaitingCancelAck);
    let due = k.deadline.unwrap();
    k.step(due, Input::Deadline, &cx()).unwrap();
    assert!(ok(&mut k, Input::Message(Message::CancelAck)).is_empty());
}

#[test]
fn handshake_registers_and_serves() {
    let mut l = at(Phase::AwaitingHandshake);
    let out = ok(&mut l, handshake());
    assert_eq!(out, vec![Action::Register, Action::Ready]);
    assert_eq!(l.phase, Phase::Serving);
    assert_eq!(l.deadline, None);
}

#[test]
fn handshake_with_another_version_is_refused_and_killed() {
    let mut l = at(Phase::AwaitingHandshake);
    let out = ok(
        &mut l,
        Input::Message(Message::Handshake {
            version: 99,
            pid: 1,
        }),
    );
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::VersionMismatch { got: 99 }]
    );
    assert!(out.contains(&Action::Kill));
    assert_eq!(l.phase, Phase::AwaitingKilledExit);
}

#[test]
fn death_before_handshake_is_a_boot_failure_with_its_status() {
    let mut l = at(Phase::AwaitingHandshake);
    let out = ok(&mut l, Input::ExitObserved);
    assert!(out.contains(&Action::Reap));
    assert_eq!(l.phase, Phase::AwaitingReap);
    assert!(errors(&ok(&mut l, Input::Reaped(ExitStatus::Exited(3)))).is_empty());
    assert_eq!(
        l.phase,
        Phase::Draining,
        "our end is still open, so late bytes are drained"
    );
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::BootFailed(ExitStatus::Exited(3))]
    );
}

#[test]
fn a_handshake_queued_behind_the_exit_means_it_booted_and_died() {
    let mut l = at(Phase::AwaitingHandshake);
    ok(&mut l, Input::ExitObserved);
    ok(&mut l, Input::Reaped(ExitStatus::Exited(1)));
    assert!(ok(&mut l, handshake()).is_empty());
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::Died(ExitStatus::Exited(1))]
    );
}

#[test]
fn eof_then_exit_before_the_handshake_is_still_a_boot_failure() {
    let mut l = at(Phase::AwaitingHandshake);
    ok(&mut l, Input::ChannelClosed);
    ok(&mut l, Input::ExitObserved);
    let out = ok(&mut l, Input::Reaped(ExitStatus::Exited(3)));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::BootFailed(ExitStatus::Exited(3))]
    );
}

#[test]
fn a_boot_deadline_while_launching_stops_the_child_hard_once_launched() {
    let mut l = at(Phase::Launching);
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert_eq!(errors(&out), vec![&ChildErrorKind::BootTimedOut]);
    assert_eq!(l.deadline, None, "nothing stays armed in the past");
    let out = l.step(due, Input::Launched, &cx()).unwrap();
    assert!(out.contains(&Action::Kill));
}

#[test]
fn a_late_exit_after_the_reap_bound_is_still_reaped() {
    let mut l = at(Phase::AwaitingKilledExit);
    let due = l.deadline.unwrap();
    l.step(due, Input::Deadline, &cx()).unwrap();
    assert_eq!(l.outcome, Some(Outcome::Unreaped));
    assert_eq!(ok(&mut l, Input::ExitObserved), vec![Action::Reap]);
    assert!(ok(&mut l, Input::Reaped(ExitStatus::Signaled(9))).is_empty());
    assert_eq!(l.reaps, 1);
    assert!(matches!(l.outcome, Some(Outcome::Killed { .. })));
}

#[test]
fn flaw_f8_ignores_death_before_handshake() {
    let cx = cx_with(Flaws::only(Flaw::NoHandshakeOrDeathRace));
    let mut l = at_with(
        Phase::AwaitingHandshake,
        SpawnMethod::Fork,
        Role::Daemon,
        &cx,
    );
    assert!(ok_with(&mut l, Input::ExitObserved, &cx).is_empty());
    assert!(ok_with(&mut l, Input::ChannelClosed, &cx).is_empty());
    assert_eq!(l.phase, Phase::AwaitingHandshake);
}

#[test]
fn boot_timeout_kills_a_process_and_abandons_a_thread() {
    let mut l = at(Phase::AwaitingHandshake);
    let late = l.deadline.unwrap();
    let out = l.step(late, Input::Deadline, &cx()).unwrap();
    assert_eq!(errors(&out), vec![&ChildErrorKind::BootTimedOut]);
    assert!(out.contains(&Action::Kill));
    assert_eq!(l.deadline, Some(late + Timeouts::default().reap));

    let mut t = at_with(
        Phase::AwaitingHandshake,
        SpawnMethod::Thread,
        Role::Daemon,
        &cx(),
    );
    let out = t.step(late, Input::Deadline, &cx()).unwrap();
    assert!(out.contains(&Action::Abandon) && out.contains(&Action::CloseChannel));
    assert!(t.is_finished());
}

#[test]
fn a_deadline_that_is_not_due_changes_nothing() {
    let mut l = at(Phase::AwaitingHandshake);
    let before = l.clone();
    assert!(l.step(T0, Input::Deadline, &cx()).unwrap().is_empty());
    assert_eq!(l, before);
    let mut s = at(Phase::Serving);
    assert!(ok(&mut s, Input::Deadline).is_empty());
}

#[test]
fn eof_before_handshake_waits_for_exit_within_the_grace() {
    let mut l = at(Phase::AwaitingHandshake);
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(out, vec![Action::FailureKnown, Action::CloseChannel]);
    assert_eq!(l.phase, Phase::AwaitingExit);
    assert_eq!(l.deadline, Some(T0 + Timeouts::default().kill_grace));
}

#[test]
fn a_message_before_the_handshake_is_a_protocol_violation() {
    let mut l = at(Phase::AwaitingHandshake);
    let out = ok(&mut l, Input::Message(Message::CancelAck));
    assert!(matches!(errors(&out)[..], [ChildErrorKind::Protocol(_)]));
    assert!(out.contains(&Action::CloseChannel));
    assert_eq!(l.phase, Phase::AwaitingExit);
}

#[test]
fn a_request_before_the_handshake_is_refused() {
    let mut l = at(Phase::AwaitingHandshake);
    let before = l.clone();
    assert_eq!(
        l.step(T0, Input::Request(RequestId(1), vec![], None), &cx()),
        Err(Refusal::NotServing)
    );
    assert_eq!(l, before, "a refusal leaves the state unchanged");
}

#[test]
fn serving_request_is_sent_and_tracked_up_to_the_limit() {
    let mut l = at(Phase::Serving);
    let out = ok(&mut l, Input::Request(RequestId(1), vec![5], None));
    assert_eq!(
        out,
        vec![Action::Send(Message::Request {
            id: RequestId(1),
            payload: vec![5]
        })]
    );
    ok(&mut l, Input::Request(RequestId(2), vec![], None));
    assert_eq!(
        l.step(T0, Input::Request(RequestId(3), vec![], None), &cx()),
        Err(Refusal::TooManyInFlight)
    );
    let ids: Vec<RequestId> = l.in_flight.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![RequestId(1), RequestId(2)]);
}

#[test]
fn serving_reply_is_delivered_once() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::Request(RequestId(1), vec![], None));
    let reply = Input::Message(Message::Reply {
        id: RequestId(1),
        result: Ok(vec![9]),
    });
    assert_eq!(ok(&mut l, reply.clone()), vec![answered(1, Ok(vec![9]))]);
    let out = ok(&mut l, reply);
    assert!(matches!(
        errors(&out)[..],
        [ChildErrorKind::Protocol(ProtocolViolation::UnknownReply(_))]
    ));
}

#[test]
fn run_to_result_finished_delivers_and_cancels() {
    let mut l = at_with(Phase::Serving, SpawnMethod::Exec, Role::RunToResult, &cx());
    let out = ok(
        &mut l,
        Input::Message(Message::Finished {
            result: Ok(vec![1]),
        }),
    );
    assert_eq!(
        out,
        vec![Action::Finished(Ok(vec![1])), Action::Send(Message::Cancel)]
    );
    assert_eq!(l.phase, Phase::AwaitingCancelAck);
    assert_eq!(l.stop_initiator, Some(Initiator::Supervisor));
}

#[test]
fn run_to_result_failure_is_an_error_and_a_result() {
    let mut l = at_with(Phase::Serving, SpawnMethod::Exec, Role::RunToResult, &cx());
    let out = ok(
        &mut l,
        Input::Message(Message::Finished {
            result: Err(err("assert 0")),
        }),
    );
    assert_eq!(errors(&out), vec![&ChildErrorKind::Remote(err("assert 0"))]);
    assert!(out.contains(&Action::Finished(Err(err("assert 0")))));
}

#[test]
fn a_daemon_may_not_send_finished() {
    let mut l = at(Phase::Serving);
    let out = ok(
        &mut l,
        Input::Message(Message::Finished { result: Ok(vec![]) }),
    );
    assert!(matches!(errors(&out)[..], [ChildErrorKind::Protocol(_)]));
    assert_eq!(l.phase, Phase::AwaitingExit);
}

#[test]
fn serving_failed_is_reported_and_the_child_keeps_its_state() {
    let mut l = at(Phase::Serving);
    let out = ok(&mut l, Input::Message(Message::Failed(err("x"))));
    assert_eq!(errors(&out), vec![&ChildErrorKind::Remote(err("x"))]);
    assert_eq!(l.phase, Phase::Serving);
}

/// Issue #14, fault 3: every `Failed` was accepted and reported, so a child that sent them
/// in a loop grew its parent's errors, report and memory without bound (2,000 errors in one
/// report; 1,000 frames of 256 KiB grew the parent by 751 MiB). A child fails once: the
/// second report is a protocol violation, which closes the channel, so nothing more from
/// that child is read or kept.
#[test]
fn bug_failed_flood_grows_the_report() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::Message(Message::Failed(err("x"))));
    let out = ok(&mut l, Input::Message(Message::Failed(err("y"))));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::Protocol(ProtocolViolation::SecondFailure)]
    );
    assert!(out.contains(&Action::CloseChannel), "{out:?}");
    assert!(!l.channel_open);
    // Nothing further is taken from it.
    assert!(
        l.step(T0, Input::Message(Message::Failed(err("z"))), &cx())
            .is_err()
    );
}

#[test]
fn serving_cancel_sends_cancel_under_the_ack_deadline() {
    let mut l = at(Phase::Serving);
    let out = ok(&mut l, Input::Cancel(Initiator::Nursery));
    assert_eq!(out, vec![Action::Send(Message::Cancel)]);
    assert_eq!(l.phase, Phase::AwaitingCancelAck);
    assert_eq!(l.deadline, Some(T0 + Duration::from_millis(500)));
    assert_eq!(l.stop_initiator, Some(Initiator::Nursery));
}

#[test]
fn serving_hard_stop_kills_and_deregisters() {
    let mut l = at(Phase::Serving);
    let out = ok(&mut l, Input::HardStop);
    assert_eq!(out, vec![Action::Deregister, Action::Kill]);
    assert!(l.user_hard_stop && l.kill_sent);
}

#[test]
fn serving_eof_waits_for_exit() {
    let mut l = at(Phase::Serving);
    assert_eq!(
        ok(&mut l, Input::ChannelClosed),
        vec![Action::FailureKnown, Action::CloseChannel]
    );
    assert_eq!(l.phase, Phase::AwaitingExit);
    assert_eq!(l.stop_initiator, Some(Initiator::Child));
}

#[test]
fn serving_exit_is_an_unexpected_death() {
    let mut l = at(Phase::Serving);
    assert_eq!(
        ok(&mut l, Input::ExitObserved),
        vec![Action::FailureKnown, Action::Deregister, Action::Reap]
    );
    ok(&mut l, Input::Reaped(ExitStatus::Exited(1)));
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::Died(ExitStatus::Exited(1))]
    );
}

#[test]
fn a_child_that_reported_its_failure_is_not_also_reported_dead() {
    let mut l = at(Phase::Serving);
    let boom = RemoteError::panic("boom");
    ok(&mut l, Input::Message(Message::Failed(boom)));
    ok(&mut l, Input::ExitObserved);
    ok(&mut l, Input::Reaped(ExitStatus::Exited(1)));
    assert!(errors(&ok(&mut l, Input::ChannelClosed)).is_empty());
}

#[test]
fn serving_malformed_frame_is_a_typed_error_and_closes_the_channel() {
    let mut l = at(Phase::Serving);
    let out = ok(&mut l, Input::Malformed(FrameError::UnknownTag(200)));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::Protocol(ProtocolViolation::Malformed(
            FrameError::UnknownTag(200)
        ))]
    );
    assert!(out.contains(&Action::CloseChannel));
    assert_eq!(l.phase, Phase::AwaitingExit);
}

#[test]
fn ack_closes_our_end_and_arms_the_grace() {
    let mut l = at(Phase::AwaitingCancelAck);
    assert_eq!(
        ok(&mut l, Input::Message(Message::CancelAck)),
        vec![Action::CloseChannel]
    );
    assert_eq!(l.phase, Phase::AwaitingExit);
    assert_eq!(l.deadline, Some(T0 + Timeouts::default().kill_grace));
}

#[test]
fn flaw_f4_keeps_our_end_open_and_waits_unbounded() {
    let cx = cx_with(Flaws::only(Flaw::MutualWaitAtTeardown));
    let mut l = at_with(
        Phase::AwaitingCancelAck,
        SpawnMethod::Fork,
        Role::Daemon,
        &cx,
    );
    assert!(ok_with(&mut l, Input::Message(Message::CancelAck), &cx).is_empty());
    assert!(l.channel_open);
    assert_eq!(l.deadline, None);
}

#[test]
fn ack_timeout_escalates_to_kill() {
    let mut l = at(Phase::AwaitingCancelAck);
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert_eq!(out, vec![Action::Deregister, Action::Kill]);
    assert_eq!(l.force, Some(ForceReason::CancelAckTimedOut));
}

#[test]
fn ack_timeout_abandons_a_thread_and_closes_our_end() {
    let mut l = at_with(
        Phase::AwaitingCancelAck,
        SpawnMethod::Thread,
        Role::Daemon,
        &cx(),
    );
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert!(out.contains(&Action::CloseChannel) && out.contains(&Action::Abandon));
    assert!(l.is_finished());
}

#[test]
fn flaw_f1_abandons_without_closing_so_the_child_never_finishes() {
    let cx = cx_with(Flaws::only(Flaw::NoChannelAbortOnAbandon));
    let mut l = at_with(
        Phase::AwaitingCancelAck,
        SpawnMethod::Thread,
        Role::Daemon,
        &cx,
    );
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx).unwrap();
    assert!(!out.contains(&Action::CloseChannel));
    assert_eq!(l.phase, Phase::Done);
    assert!(
        !l.is_finished(),
        "our end stays open until the abandoned thread closes its own"
    );
}

#[test]
fn flaw_f9_lets_the_ack_timeout_pass_without_escalation() {
    let cx = cx_with(Flaws::only(Flaw::NoEscalation));
    let mut l = at_with(
        Phase::AwaitingCancelAck,
        SpawnMethod::Fork,
        Role::Daemon,
        &cx,
    );
    let due = l.deadline.unwrap();
    assert!(l.step(due, Input::Deadline, &cx).unwrap().is_empty());
    assert_eq!((l.phase, l.deadline), (Phase::AwaitingCancelAck, None));
}

#[test]
fn cancelling_refuses_requests_and_ignores_a_second_cancel() {
    let mut l = at(Phase::AwaitingCancelAck);
    assert_eq!(
        l.step(T0, Input::Request(RequestId(1), vec![], None), &cx()),
        Err(Refusal::NotServing)
    );
    assert!(ok(&mut l, Input::Cancel(Initiator::User)).is_empty());
}

#[test]
fn replies_still_arrive_while_cancelling() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::Request(RequestId(4), vec![], None));
    ok(&mut l, Input::Cancel(Initiator::User));
    let out = ok(
        &mut l,
        Input::Message(Message::Reply {
            id: RequestId(4),
            result: Ok(vec![]),
        }),
    );
    assert_eq!(out, vec![answered(4, Ok(vec![]))]);
}

#[test]
fn exit_after_ack_is_reaped_and_exited() {
    let mut l = at(Phase::AwaitingExit);
    assert_eq!(
        ok(&mut l, Input::ExitObserved),
        vec![Action::Deregister, Action::Reap]
    );
    let out = ok(&mut l, Input::Reaped(ExitStatus::Exited(0)));
    assert!(errors(&out).is_empty());
    assert_eq!(
        out,
        vec![Action::Outcome(Outcome::Exited(ExitStatus::Exited(0)))]
    );
    assert!(l.is_finished());
}

#[test]
fn grace_expiry_kills() {
    let mut l = at(Phase::AwaitingExit);
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert!(out.contains(&Action::Kill));
    assert_eq!(l.force, Some(ForceReason::GraceExpired));
}

#[test]
fn killed_child_is_reaped_with_a_killed_outcome_then_drained() {
    let mut l = at(Phase::AwaitingKilledExit);
    ok(&mut l, Input::ExitObserved);
    let out = ok(&mut l, Input::Reaped(ExitStatus::Signaled(9)));
    assert!(
        errors(&out).is_empty(),
        "a kill we asked for is not a child error"
    );
    assert_eq!(l.phase, Phase::Draining);
    assert_eq!(l.deadline, Some(T0 + Timeouts::default().drain));
    let out = ok(&mut l, Input::ChannelClosed);
    let killed = Outcome::Killed {
        reason: ForceReason::UserHardStop,
        status: ExitStatus::Signaled(9),
    };
    assert_eq!(out, vec![Action::CloseChannel, Action::Outcome(killed)]);
    assert!(l.is_finished());
}

#[test]
fn a_kill_that_is_never_reaped_is_reported_after_the_reap_bound() {
    let mut l = at(Phase::AwaitingKilledExit);
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert_eq!(errors(&out), vec![&ChildErrorKind::ReapTimedOut]);
    assert_eq!(l.outcome, Some(Outcome::Unreaped));
    assert!(l.is_finished());
}

/// A reap that could not be done (the fork server that is a served child's reaper is gone)
/// is reported as such, with why, and the outcome is unreaped: no status is made up.
#[test]
fn a_failed_reap_is_an_error_and_an_unreaped_outcome_never_a_status() {
    let mut l = at(Phase::AwaitingReap);
    let out = ok(&mut l, Input::ReapFailed("the fork server is gone".into()));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::ReapFailed(
            "the fork server is gone".into()
        )]
    );
    assert_eq!(l.outcome, Some(Outcome::Unreaped));
    assert_eq!(l.reaped_status, None);
    assert_eq!(l.phase, Phase::Draining, "late messages are still read");
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(
        out,
        vec![Action::CloseChannel, Action::Outcome(Outcome::Unreaped)]
    );
    assert!(
        at(Phase::Serving)
            .step(T0, Input::ReapFailed("no".into()), &cx())
            .is_err(),
        "only an ordered reap can fail"
    );
}

#[test]
fn a_second_exit_report_while_awaiting_the_reap_is_ignored() {
    let mut l = at(Phase::AwaitingReap);
    assert!(ok(&mut l, Input::ExitObserved).is_empty());
    assert_eq!(l.reaps, 0);
}

#[test]
fn the_drain_ends_at_its_deadline() {
    let mut l = at(Phase::Draining);
    let due = l.deadline.unwrap();
    let out = l.step(due, Input::Deadline, &cx()).unwrap();
    assert_eq!(out[0], Action::CloseChannel);
    assert!(l.is_finished());
}

#[test]
fn flaw_f7_drains_without_a_deadline() {
    let cx = cx_with(Flaws::only(Flaw::UnboundedPeerDrain));
    let l = at_with(Phase::Draining, SpawnMethod::Fork, Role::Daemon, &cx);
    assert_eq!(l.deadline, None);
}

#[test]
fn flaw_f13_keeps_a_killed_child_registered() {
    let cx = cx_with(Flaws::only(Flaw::NoDeregistrationOnKill));
    let mut l = at_with(Phase::Serving, SpawnMethod::Fork, Role::Daemon, &cx);
    assert_eq!(ok_with(&mut l, Input::HardStop, &cx), vec![Action::Kill]);
}

#[test]
fn done_refuses_everything_it_cannot_take() {
    let mut l = at(Phase::Done);
    assert_eq!(
        l.step(T0, Input::Cancel(Initiator::User), &cx()),
        Err(Refusal::Finished)
    );
    assert_eq!(l.step(T0, Input::HardStop, &cx()), Err(Refusal::Finished));
    assert_eq!(l.step(T0, Input::Launched, &cx()), Err(Refusal::Invalid));
    assert_eq!(
        l.step(T0, Input::Reaped(ExitStatus::Exited(0)), &cx()),
        Err(Refusal::Invalid)
    );
}

fn reply(id: u64, payload: Vec<u8>) -> Input {
    Input::Message(Message::Reply {
        id: RequestId(id),
        result: Ok(payload),
    })
}

#[test]
fn a_request_times_out_at_its_deadline_and_its_late_reply_is_dropped() {
    let mut l = at(Phase::Serving);
    let by = T0 + Duration::from_millis(50);
    ok(&mut l, Input::Request(RequestId(1), vec![], Some(by)));
    ok(&mut l, Input::Request(RequestId(2), vec![], None));
    assert_eq!(l.next_deadline(), Some(by));
    assert!(l.step(T0, Input::Deadline, &cx()).unwrap().is_empty());
    assert_eq!(
        l.step(by, Input::Deadline, &cx()).unwrap(),
        vec![Action::RequestEnded(RequestId(1), RequestEnd::TimedOut)]
    );
    assert_eq!(l.next_deadline(), None);
    // Still in flight, and counted, until its late reply comes.
    assert_eq!(l.in_flight.len(), 2);
    assert_eq!(
        l.step(T0, Input::Request(RequestId(3), vec![], None), &cx()),
        Err(Refusal::TooManyInFlight)
    );
    assert!(
        ok(&mut l, reply(1, vec![1])).is_empty(),
        "the late reply is dropped"
    );
    assert_eq!(
        ok(&mut l, reply(2, vec![2])),
        vec![answered(2, Ok(vec![2]))]
    );
    assert_eq!((l.requests_sent, l.requests_ended), (2, 2));
    assert!(l.in_flight.is_empty());
}

#[test]
fn a_given_up_request_ends_once_and_its_late_reply_answers_nothing() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::Request(RequestId(1), vec![], None));
    assert_eq!(
        ok(&mut l, Input::AbandonRequest(RequestId(1))),
        vec![Action::RequestEnded(RequestId(1), RequestEnd::Abandoned)]
    );
    assert!(ok(&mut l, Input::AbandonRequest(RequestId(1))).is_empty());
    assert_eq!(
        l.step(T0, Input::AbandonRequest(RequestId(9)), &cx()),
        Err(Refusal::Invalid)
    );
    ok(&mut l, Input::Request(RequestId(2), vec![], None));
    assert!(ok(&mut l, reply(1, vec![1])).is_empty());
    assert_eq!(
        l.requests_ended, 1,
        "request 2 still waits for its own reply"
    );
}

#[test]
fn requests_still_waiting_end_with_the_child_when_its_channel_ends() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::Request(RequestId(1), vec![], None));
    ok(&mut l, Input::Request(RequestId(2), vec![], None));
    ok(&mut l, Input::AbandonRequest(RequestId(1)));
    let out = ok(&mut l, Input::ChannelClosed);
    assert_eq!(
        out,
        vec![
            Action::FailureKnown,
            Action::CloseChannel,
            Action::RequestEnded(RequestId(2), RequestEnd::ChildEnded)
        ]
    );
    assert!(l.in_flight.is_empty());
    assert_eq!((l.requests_sent, l.requests_ended), (2, 2));
}

#[test]
fn with_the_flaw_a_late_reply_answers_the_next_request_waiting() {
    let cx = cx_with(Flaws::only(Flaw::LateReplyAnswersLaterRequest));
    let mut l = at(Phase::Serving);
    ok_with(&mut l, Input::Request(RequestId(1), vec![], None), &cx);
    ok_with(&mut l, Input::Request(RequestId(2), vec![], None), &cx);
    ok_with(&mut l, Input::AbandonRequest(RequestId(1)), &cx);
    assert_eq!(
        ok_with(&mut l, reply(1, vec![1]), &cx),
        vec![Action::RequestEnded(
            RequestId(2),
            RequestEnd::Answered {
                reply: RequestId(1),
                result: Ok(vec![1])
            }
        )]
    );
}

/// A child whose channel ended unasked, and who then did not exit within the grace, was
/// killed and reported nowhere: its kill made its death "ours", so no error came, while the
/// nursery had been torn down for it (`FailureKnown`) with no error of it in the report.
/// Its channel's unasked end was its failure; our kill only finished it: it is `Died`.
#[test]
fn bug_child_ending_unasked_then_killed_is_reported_nowhere() {
    let mut l = at(Phase::Serving);
    ok(&mut l, Input::ChannelClosed);
    let grace = l.deadline.expect("the grace is armed");
    let out = l.step(grace, Input::Deadline, &cx()).unwrap();
    assert!(out.contains(&Action::Kill));
    ok(&mut l, Input::ExitObserved);
    let out = ok(&mut l, Input::Reaped(ExitStatus::Signaled(9)));
    assert_eq!(
        errors(&out),
        vec![&ChildErrorKind::Died(ExitStatus::Signaled(9))]
    );
}
