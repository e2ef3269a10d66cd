//! The parent-death signal: a child dies when the *thread* that forked it exits, and when
//! the process that forked it exits.

mod common;

use std::os::fd::AsFd;
use std::process::ExitCode;

use common::{MUST, Test, reap, recv_n, send};
use harrow_real::sys::raw_children::spawn_sleeper;
use harrow_real::sys::{ExitStatus, Pid, Pidfd, Prelude, ReapOutcome, channel_pair, fork_child};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "child_dies_when_the_forking_thread_exits",
            run: child_dies_when_the_forking_thread_exits,
        },
        Test {
            name: "grandchild_dies_when_its_parent_process_exits",
            run: grandchild_dies_when_its_parent_process_exits,
        },
        Test {
            name: "an_orphan_never_survives_whatever_the_timing",
            run: an_orphan_never_survives_whatever_the_timing,
        },
    ])
}

/// A worker thread forks a sleeper (a raw-syscall child, allowed from a multi-threaded
/// process), waits until it is armed, hands it over and exits: the sleeper gets SIGKILL
/// while this process lives on. This is why a fork-server thread must outlive its children.
fn child_dies_when_the_forking_thread_exits() {
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = std::thread::spawn(move || {
        let child = spawn_sleeper(theirs).unwrap();
        assert_eq!(recv_n(ours.as_fd(), 1), b"r");
        child
    })
    .join()
    .unwrap();
    assert_eq!(reap(&mut child), ExitStatus::Signaled(libc::SIGKILL));
}

/// Runs the orphan scenario: middle child M forks grandchild G (which sleeps forever),
/// optionally waits until G's prelude is done (G says so), reports G's pid and exits.
/// This process is a subreaper, so the orphaned G is reparented here and reaped here:
/// nothing is left behind. Returns how G ended.
fn orphaned_grandchild(wait_until_armed: bool) -> ExitStatus {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let (ours, theirs) = channel_pair().unwrap();
    let mut middle = fork_child(Prelude::STANDARD, theirs, |ch| {
        let (g_ours, g_theirs) = channel_pair().unwrap();
        let grandchild = fork_child(Prelude::STANDARD, g_theirs, |g_ch| {
            send(g_ch.as_fd(), b"r");
            loop {
                std::thread::park();
            }
        })
        .unwrap();
        if wait_until_armed {
            assert_eq!(recv_n(g_ours.as_fd(), 1), b"r");
        }
        send(ch.as_fd(), &grandchild.pid().as_raw().to_le_bytes());
        assert_eq!(recv_n(ch.as_fd(), 1), b"q");
        // Exit without dropping the grandchild's handle (its Drop would kill and reap it).
        std::mem::forget((grandchild, g_ours));
        0
    })
    .unwrap();
    let g_pid = i32::from_le_bytes(recv_n(ours.as_fd(), 4).try_into().unwrap());
    // Race-free: until we reap G (as its subreaper), its pid cannot be reused.
    let grandchild = Pidfd::open(Pid::from_raw(g_pid).unwrap()).unwrap();
    send(ours.as_fd(), b"q");
    assert_eq!(reap(&mut middle), ExitStatus::Exited(0));
    assert!(
        grandchild.wait_exited(Some(MUST)).unwrap(),
        "grandchild outlived its parent"
    );
    match grandchild.try_reap().unwrap() {
        ReapOutcome::Reaped(status) => status,
        ReapOutcome::Running => panic!("a readable pidfd but no exit"),
    }
}

/// Once its prelude has armed the death signal, G dies of SIGKILL when M exits.
fn grandchild_dies_when_its_parent_process_exits() {
    assert_eq!(
        orphaned_grandchild(true),
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

/// If M exits before G's prelude arms the signal, the prelude's parent re-check catches it
/// (exit code PARENT_GONE); after, the signal does. Either way G never outlives M.
fn an_orphan_never_survives_whatever_the_timing() {
    let gone = ExitStatus::Exited(harrow_model::exit::prelude::PARENT_GONE);
    for _ in 0..20 {
        let status = orphaned_grandchild(false);
        assert!(
            status == gone || status == ExitStatus::Signaled(libc::SIGKILL),
            "{status}"
        );
    }
}
