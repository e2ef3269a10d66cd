//! loom finds every flaw FLAWS.md names it for, and the same scenario with the flaw off holds.
//!
//! One process per test (cargo-nextest): loom keeps global state per model.

use harrow_model::Flaw;
use harrow_sim::check::assert_flaw_pair;
use harrow_sim::engine::ShuttleBudget;
use harrow_sim::flaws::Engine;

fn loom(flaw: Flaw) {
    assert_flaw_pair(Engine::Loom, flaw, ShuttleBudget::default());
}

#[test]
fn loom_finds_f1_no_channel_abort_on_abandon() {
    loom(Flaw::NoChannelAbortOnAbandon);
}

#[test]
fn loom_finds_f2_destroy_before_join() {
    loom(Flaw::DestroyBeforeJoin);
}

#[test]
fn loom_finds_f4_mutual_wait_at_teardown() {
    loom(Flaw::MutualWaitAtTeardown);
}

#[test]
fn loom_finds_f5_kill_and_reap_by_pid() {
    loom(Flaw::KillAndReapByPid);
}

#[test]
fn loom_finds_f6_no_fd_scrub() {
    loom(Flaw::NoFdScrub);
}

#[test]
fn loom_finds_f8_no_handshake_or_death_race() {
    loom(Flaw::NoHandshakeOrDeathRace);
}

#[test]
fn loom_finds_f9_no_escalation() {
    loom(Flaw::NoEscalation);
}

#[test]
fn loom_finds_f11_dropped_wakeups() {
    loom(Flaw::DroppedWakeups);
}

#[test]
fn loom_finds_f13_no_deregistration_on_kill() {
    loom(Flaw::NoDeregistrationOnKill);
}

#[test]
fn loom_finds_f15_accept_every_failure() {
    loom(Flaw::AcceptEveryFailure);
}

#[test]
fn loom_finds_f16_spawn_from_callers_thread() {
    loom(Flaw::SpawnFromCallersThread);
}

#[test]
fn loom_finds_f17_late_reply_answers_later_request() {
    loom(Flaw::LateReplyAnswersLaterRequest);
}

#[test]
fn loom_finds_f18_replies_queued_behind_later_work() {
    loom(Flaw::RepliesQueuedBehindLaterWork);
}
