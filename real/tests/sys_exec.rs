//! Exec of the current executable: this very test binary re-runs itself as a child.
//!
//! How the child path runs: this file has its own `main` (`harness = false`), whose first
//! act is to ask `sys::inherited_role()`. In a child spawned by `exec_self` that is
//! `Some(role)`, and `main` runs the role instead of the tests. No libtest filter tricks, and
//! it works the same under nextest and cargo test.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;

use common::{Test, encode_fds, exit_at_eof, expected_child_fds, reap, recv_fds, recv_n, send};
use harrow_real::sys::{
    self, ExitStatus, SysError, adopt_inherited_channel, channel_pair, exec_self, inherited_role,
};

fn main() -> ExitCode {
    if let Some(role) = inherited_role() {
        return ExitCode::from(child_main(&role));
    }
    common::main(&[
        Test {
            name: "exec_child_has_exactly_stdio_and_the_channel",
            run: exec_child_has_exactly_stdio_and_the_channel,
        },
        Test {
            name: "outside_an_exec_child_there_is_nothing_to_adopt",
            run: outside_an_exec_child_there_is_nothing_to_adopt,
        },
        Test {
            name: "a_child_whose_named_parent_is_not_its_parent_ends_before_main_runs",
            run: a_child_whose_named_parent_is_not_its_parent_ends_before_main_runs,
        },
    ])
}

/// The child side: adopts the channel and runs `role`.
fn child_main(role: &str) -> u8 {
    let channel: OwnedFd = match adopt_inherited_channel() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("exec child: {e}");
            return 90;
        }
    };
    match role {
        "report" => {
            let mut fds = [0; 64];
            let n = sys::list_open_fds(&mut fds).unwrap();
            let own_group = rustix::process::getpgrp() == rustix::process::getpid();
            let second = adopt_inherited_channel().is_err();
            let death_signal = rustix::process::parent_process_death_signal()
                .is_ok_and(|s| s == Some(rustix::process::Signal::KILL));
            let env_gone = std::env::var_os(sys::ROLE_ENV).is_none();
            let mask_empty = nix::sys::signal::SigSet::thread_get_mask()
                .is_ok_and(|m| m.iter().next().is_none());
            send(
                channel.as_fd(),
                &[
                    u8::from(own_group),
                    u8::from(second),
                    u8::from(death_signal),
                    u8::from(env_gone),
                    u8::from(mask_empty),
                ],
            );
            send(channel.as_fd(), &encode_fds(&fds[..n]));
            exit_at_eof(channel) as u8
        }
        _ => 91,
    }
}

/// The exec'd child finds its channel at 3, has nothing else but stdio (not even a
/// descriptor we opened without close-on-exec), leads its own process group, cannot adopt
/// twice, has armed its parent-death signal, no longer has the role variable (its own
/// children will not inherit it), has an empty signal mask, and exits 0 on our EOF.
fn exec_child_has_exactly_stdio_and_the_channel() {
    let extra = std::fs::File::open("/dev/null").unwrap();
    let inheritable = rustix::io::dup(&extra).unwrap(); // dup: no close-on-exec
    // A blocked signal in the parent must not stay blocked in the child.
    let mut blocked = nix::sys::signal::SigSet::empty();
    blocked.add(nix::sys::signal::Signal::SIGUSR1);
    let old = blocked
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .unwrap();
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = exec_self("report", &[], theirs).unwrap();
    old.thread_set_mask().unwrap();
    assert_eq!(
        recv_n(ours.as_fd(), 5),
        [1, 1, 1, 1, 1],
        "own process group; second adoption refused; death signal SIGKILL; role variable \
         removed; signal mask empty"
    );
    assert_eq!(recv_fds(ours.as_fd()), expected_child_fds());
    drop(ours);
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));
    drop((extra, inheritable));
}

/// A process started with the role variable naming a parent that is not its parent (the
/// parent died between the spawn and the child's start-up) ends with `PARENT_GONE` before
/// its `main` does anything: it does not run as an orphan.
fn a_child_whose_named_parent_is_not_its_parent_ends_before_main_runs() {
    let status = std::process::Command::new("/proc/self/exe")
        .env(sys::ROLE_ENV, "report:1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(harrow_model::exit::prelude::PARENT_GONE),
        "{status}"
    );
}

fn outside_an_exec_child_there_is_nothing_to_adopt() {
    assert_eq!(inherited_role(), None);
    let err = adopt_inherited_channel().unwrap_err();
    assert!(
        matches!(err, SysError::NoInheritedChannel { .. }),
        "{err:?}"
    );
}
