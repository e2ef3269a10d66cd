//! shuttle finds every flaw FLAWS.md names it for, and the same scenario with the flaw off holds.
//!
//! shuttle persists failing schedules; the engine reads them back into the counterexample.

use harrow_model::Flaw;
use harrow_sim::check::assert_flaw_pair;
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::Engine;

fn shuttle(flaw: Flaw) {
    assert_flaw_pair(Engine::Shuttle, flaw, ShuttleBudget::default());
}

#[test]
fn shuttle_finds_f1_no_channel_abort_on_abandon() {
    shuttle(Flaw::NoChannelAbortOnAbandon);
}

#[test]
fn shuttle_finds_f2_destroy_before_join() {
    shuttle(Flaw::DestroyBeforeJoin);
}

#[test]
fn shuttle_finds_f4_mutual_wait_at_teardown() {
    shuttle(Flaw::MutualWaitAtTeardown);
}

#[test]
fn shuttle_finds_f5_kill_and_reap_by_pid() {
    shuttle(Flaw::KillAndReapByPid);
}

#[test]
fn shuttle_finds_f6_no_fd_scrub() {
    shuttle(Flaw::NoFdScrub);
}

#[test]
fn shuttle_finds_f8_no_handshake_or_death_race() {
    shuttle(Flaw::NoHandshakeOrDeathRace);
}

#[test]
fn shuttle_finds_f9_no_escalation() {
    shuttle(Flaw::NoEscalation);
}

#[test]
fn shuttle_finds_f11_dropped_wakeups() {
    shuttle(Flaw::DroppedWakeups);
}

#[test]
fn shuttle_finds_f13_no_deregistration_on_kill() {
    shuttle(Flaw::NoDeregistrationOnKill);
}

#[test]
fn shuttle_finds_f3_fork_from_busy_process() {
    shuttle(Flaw::ForkFromBusyProcess);
}

#[test]
fn shuttle_finds_f7_unbounded_peer_drain() {
    shuttle(Flaw::UnboundedPeerDrain);
}

#[test]
fn shuttle_finds_f10_serial_teardown() {
    shuttle(Flaw::SerialTeardown);
}

#[test]
fn shuttle_finds_f12_control_path_shares_lock() {
    shuttle(Flaw::ControlPathSharesLock);
}

#[test]
fn shuttle_finds_f14_no_self_cancel_on_parent_eof() {
    shuttle(Flaw::NoSelfCancelOnParentEof);
}

#[test]
fn shuttle_finds_f15_accept_every_failure() {
    shuttle(Flaw::AcceptEveryFailure);
}

#[test]
fn shuttle_finds_f16_spawn_from_callers_thread() {
    shuttle(Flaw::SpawnFromCallersThread);
}

#[test]
fn shuttle_finds_f17_late_reply_answers_later_request() {
    shuttle(Flaw::LateReplyAnswersLaterRequest);
}

#[test]
fn shuttle_finds_f18_replies_queued_behind_later_work() {
    shuttle(Flaw::RepliesQueuedBehindLaterWork);
}
