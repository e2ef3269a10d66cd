//! The process-group kill: killing a child by its pidfd leaves its own children running;
//! `kill_group` takes them out too.

mod common;

use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};

use common::{MUST, MUST_NOT, Test, reap, recv_n, send};
use harrow_real::sys::{
    ExitStatus, Pid, Pidfd, Prelude, ReapOutcome, SignalOutcome, channel_pair, fork_child,
};

fn main() -> ExitCode {
    common::main(&[Test {
        name: "group_kill_takes_out_a_grandchild_that_a_plain_kill_misses",
        run: group_kill_takes_out_a_grandchild_that_a_plain_kill_misses,
    }])
}

/// Child C spawns `sleep` (which stays in C's process group) and reports its pid. Killing
/// C alone leaves the grandchild running; `kill_group` — still allowed, since C is a zombie
/// but not reaped — kills it. This process is a subreaper, so it reaps the orphan.
fn group_kill_takes_out_a_grandchild_that_a_plain_kill_misses() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |ch| {
        let sleeper = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn();
        let Ok(sleeper) = sleeper else { return 2 };
        send(ch.as_fd(), &(sleeper.id() as i32).to_le_bytes());
        loop {
            std::thread::park();
        }
    })
    .unwrap();
    let g_pid = i32::from_le_bytes(recv_n(ours.as_fd(), 4).try_into().unwrap());
    // Race-free: G's parent C never reaps it, and after C dies we are its reaper.
    let grandchild = Pidfd::open(Pid::from_raw(g_pid).unwrap()).unwrap();

    assert_eq!(child.kill().unwrap(), SignalOutcome::Delivered);
    assert!(child.pidfd().wait_exited(Some(MUST)).unwrap());
    assert!(
        !grandchild.wait_exited(Some(MUST_NOT)).unwrap(),
        "a plain kill reached the grandchild"
    );

    assert_eq!(child.kill_group().unwrap(), SignalOutcome::Delivered);
    assert!(
        grandchild.wait_exited(Some(MUST)).unwrap(),
        "the group kill missed the grandchild"
    );
    assert_eq!(reap(&mut child), ExitStatus::Signaled(libc::SIGKILL));
    let reaped = grandchild.try_reap().unwrap();
    assert_eq!(
        reaped,
        ReapOutcome::Reaped(ExitStatus::Signaled(libc::SIGKILL))
    );
}
