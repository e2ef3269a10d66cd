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
            send(channel.as_fd(), &[u8::from(own_group), u8::from(second)]);
            send(channel.as_fd(), &encode_fds(&fds[..n]));
            exit_at_eof(channel) as u8
        }
        _ => 91,
    }
}

/// The exec'd child finds its channel at 3, has nothing else but stdio, leads its own
/// process group, cannot adopt twice, and exits 0 on our EOF.
fn exec_child_has_exactly_stdio_and_the_channel() {
    let extra = std::fs::File::open("/dev/null").unwrap();
    let (ours, theirs) = channel_pair().unwrap();
    let mut child = exec_self("report", &[], theirs).unwrap();
    assert_eq!(
        recv_n(ours.as_fd(), 2),
        [1, 1],
        "own process group; second adoption refused"
    );
    assert_eq!(recv_fds(ours.as_fd()), expected_child_fds());
    drop(ours);
    assert_eq!(reap(&mut child), ExitStatus::Exited(0));
    drop(extra);
}

fn outside_an_exec_child_there_is_nothing_to_adopt() {
    assert_eq!(inherited_role(), None);
    let err = adopt_inherited_channel().unwrap_err();
    assert!(
        matches!(err, SysError::NoInheritedChannel { .. }),
        "{err:?}"
    );
}
