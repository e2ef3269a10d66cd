//! The fork child prelude: descriptors, process group, signals, exit paths, and the refusal
//! to fork a multi-threaded process.

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;

use common::{Test, encode_fds, exit_at_eof, expected_child_fds, reap, recv_fds, recv_n, send};
use harrow_real::sys::{
    self, ExitStatus, Prelude, SysError, channel_pair, fork_child, list_open_fds,
};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "prelude_leaves_exactly_stdio_and_the_channel",
            run: prelude_leaves_exactly_stdio_and_the_channel,
        },
        Test {
            name: "channel_already_at_the_fixed_fd_is_kept",
            run: channel_already_at_the_fixed_fd_is_kept,
        },
        Test {
            name: "prelude_resets_signals_and_joins_its_own_group",
            run: prelude_resets_signals_and_joins_its_own_group,
        },
        Test {
            name: "body_return_and_panic_become_exit_codes",
            run: body_return_and_panic_become_exit_codes,
        },
        Test {
            name: "fork_is_refused_in_a_multithreaded_process",
            run: fork_is_refused_in_a_multithreaded_process,
        },
    ])
}

/// A child body: lists its descriptors from inside, reports them, then waits for EOF.
fn report_fds(ch: OwnedFd) -> i32 {
    let mut fds = [0; 64];
    let Ok(n) = list_open_fds(&mut fds) else {
        return 2;
    };
    common::send(ch.as_fd(), &encode_fds(&fds[..n.min(fds.len())]));
    exit_at_eof(ch)
}

/// The child sees 0, 1, 2 and 3 only, although the parent holds extra descriptors (and the
/// test runner's own); without the scrub it sees them all.
fn prelude_leaves_exactly_stdio_and_the_channel() {
    let extra = [
        std::fs::File::open("/dev/null").unwrap(),
        std::fs::File::open("/proc/self/status").unwrap(),
    ];
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, report_fds).unwrap();
    assert_eq!(recv_fds(ours.as_fd()), expected_child_fds());
    drop(ours);
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));

    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::UNSCRUBBED_LOSES_EOF, theirs, report_fds).unwrap();
    let seen = recv_fds(ours.as_fd());
    for f in &extra {
        assert!(
            seen.contains(&f.as_raw_fd()),
            "unscrubbed child lacks {}: {seen:?}",
            f.as_raw_fd()
        );
    }
    // It even holds a copy of our end of its own channel, so our close is no EOF for it.
    drop(ours);
    let outcome = child.wait_timeout(Some(common::MUST_NOT)).unwrap();
    assert_eq!(outcome, sys::ReapOutcome::Running);
    assert_eq!(
        child.kill_and_reap().unwrap(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

/// A channel that already is descriptor 3 stays there (dup2 onto itself is skipped; only
/// its close-on-exec flag is cleared).
fn channel_already_at_the_fixed_fd_is_kept() {
    // Take number 3 first (the lowest free one), then make it a copy of the child's end.
    let mut at_three: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    assert_eq!(
        at_three.as_raw_fd(),
        sys::CHILD_CHANNEL_FD,
        "descriptor 3 must be free"
    );
    let (ours, theirs) = channel_pair().unwrap();
    rustix::io::dup2(&theirs, &mut at_three).unwrap();
    drop(theirs);
    let mut child = fork_child(Prelude::STANDARD, at_three, report_fds).unwrap();
    assert_eq!(recv_fds(ours.as_fd()), expected_child_fds());
    drop(ours);
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));
}

/// The parent catches SIGUSR1 and ignores SIGPIPE (std does); the child has no caught,
/// ignored or blocked signal, and leads its own process group.
fn prelude_resets_signals_and_joins_its_own_group() {
    let usr1 = sys::SignalPipe::install(libc::SIGUSR1).unwrap();
    assert_ne!(
        common::status_mask("SigCgt:") & (1 << (libc::SIGUSR1 - 1)),
        0
    );
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |ch| {
        let own_group = rustix::process::getpgrp() == rustix::process::getpid();
        let masks = [
            common::status_mask("SigCgt:"),
            common::status_mask("SigIgn:"),
            common::status_mask("SigBlk:"),
        ];
        let mut report = vec![u8::from(own_group)];
        for m in masks {
            report.extend_from_slice(&m.to_le_bytes());
        }
        send(ch.as_fd(), &report);
        exit_at_eof(ch)
    })
    .unwrap();
    let report = recv_n(ours.as_fd(), 25);
    assert_eq!(
        report[0], 1,
        "the child does not lead its own process group"
    );
    // glibc reserves signals 32 and 33 for itself and refuses to change them: not ours.
    let glibc_reserved = (1u64 << 31) | (1 << 32);
    let masks: Vec<u64> = report[1..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()) & !glibc_reserved)
        .collect();
    assert_eq!(
        masks,
        [0, 0, 0],
        "caught/ignored/blocked signal masks must be empty"
    );
    let pgid =
        rustix::process::getpgid(rustix::process::Pid::from_raw(child.pid().as_raw())).unwrap();
    assert_eq!(pgid.as_raw_pid(), child.pid().as_raw());
    drop(ours);
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));
    usr1.uninstall();
}

/// A body's return value is its exit code; a panic is exit code 101.
fn body_return_and_panic_become_exit_codes() {
    let (_ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |_| 42).unwrap();
    assert_eq!(reap(&mut child), ExitStatus::Exited(42));
    let (_ours, theirs) = channel_pair().unwrap();
    let mut child = fork_child(Prelude::STANDARD, theirs, |_| {
        panic!("expected panic in a forked child")
    })
    .unwrap();
    assert_eq!(
        reap(&mut child),
        ExitStatus::Exited(harrow_model::exit::PANIC)
    );
}

/// With a second thread alive, plain fork is refused with a typed error naming the way out.
fn fork_is_refused_in_a_multithreaded_process() {
    assert_eq!(sys::thread_count().unwrap(), 1);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    assert_eq!(sys::thread_count().unwrap(), 2);
    let (_ours, theirs) = channel_pair().unwrap();
    let err = fork_child(Prelude::STANDARD, theirs, |_| 0).unwrap_err();
    assert!(
        matches!(err, SysError::MultiThreaded { threads: 2 }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ForkServer") && text.contains("Exec"),
        "{text}"
    );
    tx.send(()).unwrap();
    other.join().unwrap().unwrap();
    // join returns once the thread cleared its tid; its /proc/self/task entry goes a moment
    // later, so wait (bounded) for the count to come back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while sys::thread_count().unwrap() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(sys::thread_count().unwrap(), 1);
}
