//! Pidfds: signalling after the reap answers ESRCH and never reaches the process that
//! inherited the pid; reaping happens exactly once; the group kill refuses after the reap.

mod common;

use std::process::ExitCode;

use common::{Test, exit_at_eof, reap};
use harrow_real::sys::{
    ChildProcess, ExitStatus, Pid, Prelude, ReapOutcome, Signal, SignalOutcome, SysError,
    channel_pair, fork_child,
};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "signal_after_reap_is_esrch_and_never_hits_a_reused_pid",
            run: signal_after_reap_is_esrch_and_never_hits_a_reused_pid,
        },
        Test {
            name: "a_child_is_reaped_exactly_once",
            run: a_child_is_reaped_exactly_once,
        },
        Test {
            name: "group_kill_works_before_the_reap_and_is_refused_after",
            run: group_kill_works_before_the_reap_and_is_refused_after,
        },
    ])
}

/// Forks a child that exits with `code` at once.
fn exiting_child(code: i32) -> ChildProcess {
    let (_ours, theirs) = channel_pair().unwrap();
    fork_child(Prelude::STANDARD, theirs, move |_| code).unwrap()
}

/// Forks a bystander that lives until its channel closes, trying to land it on `pid` by
/// setting `/proc/sys/kernel/ns_last_pid` (root only; other forks may race us, so retry).
fn bystander_on(pid: Pid) -> Option<(ChildProcess, std::os::fd::OwnedFd)> {
    for _ in 0..50 {
        let (ours, theirs) = channel_pair().unwrap();
        if std::fs::write(
            "/proc/sys/kernel/ns_last_pid",
            (pid.as_raw() - 1).to_string(),
        )
        .is_err()
        {
            return None;
        }
        let child = fork_child(Prelude::STANDARD, theirs, exit_at_eof).unwrap();
        if child.pid() == pid {
            return Some((child, ours));
        }
        drop(ours);
        drop(child); // kills and reaps the miss
    }
    None
}

/// After the reap, the pidfd answers ESRCH. Then a bystander is made to take over the very
/// same pid: signalling through the old pidfd still answers ESRCH and the bystander lives.
fn signal_after_reap_is_esrch_and_never_hits_a_reused_pid() {
    let mut child = exiting_child(7);
    let old_pid = child.pid();
    assert_eq!(reap(&mut child), ExitStatus::Exited(7));
    assert_eq!(child.signal(Signal::KILL).unwrap(), SignalOutcome::Gone);
    assert_eq!(
        child.pidfd().send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );

    let Some((mut bystander, channel)) = bystander_on(old_pid) else {
        eprintln!(
            "note: could not force pid reuse (needs root and a quiet machine); ESRCH checked"
        );
        return;
    };
    eprintln!("pid {old_pid} now belongs to a bystander");
    assert_eq!(
        child.pidfd().send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );
    assert!(
        !bystander
            .pidfd()
            .wait_exited(Some(common::MUST_NOT))
            .unwrap(),
        "bystander was hit"
    );
    assert_eq!(bystander.try_reap().unwrap(), ReapOutcome::Running);
    drop(channel);
    assert_eq!(reap(&mut bystander), ExitStatus::Exited(0));
}

/// `try_reap` keeps answering the cached status; a second raw `waitid` on the pidfd is
/// ECHILD, reported as a typed error that says why.
fn a_child_is_reaped_exactly_once() {
    let mut child = exiting_child(3);
    assert!(child.pidfd().wait_exited(Some(common::MUST)).unwrap());
    assert_eq!(
        child.try_reap().unwrap(),
        ReapOutcome::Reaped(ExitStatus::Exited(3))
    );
    assert_eq!(
        child.try_reap().unwrap(),
        ReapOutcome::Reaped(ExitStatus::Exited(3))
    );
    let err = child.pidfd().try_reap().unwrap_err();
    assert_eq!(err.errno(), Some(libc::ECHILD));
    assert!(err.to_string().contains("already reaped"), "{err}");
}

/// Before the reap, `kill_group` reaches the child (its own group); after, it is refused,
/// because the pgid number could then name another group.
fn group_kill_works_before_the_reap_and_is_refused_after() {
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, exit_at_eof).unwrap();
    // The parent's own setpgid(child, child) made the group exist before fork_child returned.
    assert_eq!(child.kill_group().unwrap(), SignalOutcome::Delivered);
    assert_eq!(reap(&mut child), ExitStatus::Signaled(libc::SIGKILL));
    assert!(matches!(child.kill_group(), Err(SysError::LeaderReaped)));
    assert_eq!(child.kill().unwrap(), SignalOutcome::Gone);
    drop(ours);
}
