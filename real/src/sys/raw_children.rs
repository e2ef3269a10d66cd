//! Tiny children whose bodies are raw system calls only, so they may be forked from any
//! process, even a multi-threaded one; used by the raw baselines and by tests.
//!
//! Each body uses only `read`, `write`, `poll`, `fork`, `waitid` and `_exit` on
//! descriptors it owns, allocates nothing and cannot panic, which makes it
//! async-signal-safe: the contract of [`fork_child_unchecked`].

use std::os::fd::{AsFd, OwnedFd};

use nix::unistd::ForkResult;
use rustix::io::Errno;
use rustix::process::{WaitId, WaitIdOptions};

use super::error::{Op, SysError, nix_err, rustix_err};
use super::fork::{Prelude, exit_now, fork_child_unchecked};
use super::pidfd::{ChildProcess, ExitStatus, Pid};

/// Forks a child that calls `_exit(code)` at once, then reaps it by pid; returns its pid and
/// status. The bare fork round trip, without pidfd or prelude: the raw baseline for `Fork`.
///
/// Reaping by pid is safe here: the child is ours and unreaped, and its pid never leaves
/// this function.
pub fn fork_exit_reap(code: i32) -> Result<(Pid, ExitStatus), SysError> {
    // SAFETY: the child only calls `_exit`, which is async-signal-safe, so this is sound in
    // any process, single- or multi-threaded.
    let forked = unsafe { nix::unistd::fork() }.map_err(nix_err(Op::Fork))?;
    match forked {
        ForkResult::Child => exit_now(code),
        ForkResult::Parent { child } => {
            let pid = rustix::process::Pid::from_raw(child.as_raw())
                .expect("fork returns a positive pid");
            loop {
                match rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED) {
                    Ok(Some(status)) => {
                        let status = match (status.exit_status(), status.terminating_signal()) {
                            (Some(code), _) => ExitStatus::Exited(code),
                            (None, sig) => ExitStatus::Signaled(sig.unwrap_or(0)),
                        };
                        return Ok((Pid::from_raw(child.as_raw()).expect("positive"), status));
                    }
                    Ok(None) | Err(Errno::INTR) => continue,
                    Err(e) => return Err(rustix_err(Op::Waitid)(e)),
                }
            }
        }
    }
}

/// Reads once with `EINTR` retried; `None` on end of stream or error.
fn read_some(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Writes all of `buf` with `EINTR` retried; `false` on error.
fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Forks (standard prelude) a child that echoes everything it reads on its channel, in
/// blocking mode, until end of stream; it then exits 0. It reads up to 4 KiB at a time, as a
/// harrow child does, so a pipelined batch costs it the reads it costs a harrow child.
pub fn spawn_echo(channel: OwnedFd) -> Result<ChildProcess, SysError> {
    let body = |ch: OwnedFd| {
        if rustix::io::ioctl_fionbio(&ch, false).is_err() {
            return 1;
        }
        let mut buf = [0u8; 4096];
        while let Some(n) = read_some(ch.as_fd(), &mut buf) {
            if !write_all(ch.as_fd(), &buf[..n]) {
                return 1;
            }
        }
        0
    };
    // SAFETY: the body only calls ioctl, read and write on its own channel: async-signal-safe.
    unsafe { fork_child_unchecked(Prelude::STANDARD, channel, body) }
}

/// [`spawn_echo`], but it writes each whole `frame`-byte frame it has read back with a write
/// of its own, as a harrow child sends each reply before it starts the next request (so that
/// an answer computed is delivered even if the child dies in a later request). `frame` is
/// between 1 and 4096 bytes; it exits 1 on any other.
pub fn spawn_frame_echo(channel: OwnedFd, frame: usize) -> Result<ChildProcess, SysError> {
    let body = move |ch: OwnedFd| {
        let mut buf = [0u8; 4096];
        if !(1..=buf.len()).contains(&frame) || rustix::io::ioctl_fionbio(&ch, false).is_err() {
            return 1;
        }
        let mut held = 0;
        while let Some(n) = read_some(ch.as_fd(), &mut buf[held..]) {
            held += n;
            let whole = held - held % frame;
            for one in buf[..whole].chunks(frame) {
                if !write_all(ch.as_fd(), one) {
                    return 1;
                }
            }
            buf.copy_within(whole..held, 0);
            held -= whole;
        }
        0
    };
    // SAFETY: the body only calls ioctl, read and write on its own channel and copies within
    // its stack buffer: async-signal-safe.
    unsafe { fork_child_unchecked(Prelude::STANDARD, channel, body) }
}

/// Forks a child that echoes what it reads from `from_parent` (a pipe read end, placed at
/// fd 3) into `to_parent` (a pipe write end). The descriptor scrub is skipped so that
/// `to_parent` survives: the child also keeps the parent's other descriptors, so it never
/// sees end of stream; stop it with [`ChildProcess::kill_and_reap`].
pub fn spawn_pipe_echo(from_parent: OwnedFd, to_parent: OwnedFd) -> Result<ChildProcess, SysError> {
    let body = move |ch: OwnedFd| {
        let mut buf = [0u8; 256];
        while let Some(n) = read_some(ch.as_fd(), &mut buf) {
            if !write_all(to_parent.as_fd(), &buf[..n]) {
                return 1;
            }
        }
        0
    };
    // SAFETY: the body only calls read and write: async-signal-safe. `to_parent` stays valid
    // in the child because the scrub is skipped; it is dropped only in the parent.
    unsafe { fork_child_unchecked(Prelude::UNSCRUBBED_LOSES_EOF, from_parent, body) }
}

/// Forks a single-threaded fork server: for every byte it reads on its channel it forks a
/// child that exits at once, reaps it, and replies with the child's pid (4 bytes, little
/// endian). It exits 0 at end of stream. The raw baseline for `ForkServer`.
pub fn spawn_fork_server(channel: OwnedFd) -> Result<ChildProcess, SysError> {
    let body = |ch: OwnedFd| {
        if rustix::io::ioctl_fionbio(&ch, false).is_err() {
            return 1;
        }
        let mut request = [0u8; 1];
        while read_some(ch.as_fd(), &mut request).is_some() {
            let Ok((pid, _)) = fork_exit_reap(0) else {
                return 2;
            };
            if !write_all(ch.as_fd(), &pid.as_raw().to_le_bytes()) {
                return 1;
            }
        }
        0
    };
    // SAFETY: the body only calls read, write, fork (whose child only calls `_exit`) and
    // waitid: async-signal-safe.
    unsafe { fork_child_unchecked(Prelude::STANDARD, channel, body) }
}

/// Forks a child that writes one byte (`r`, "ready": its prelude, death signal included,
/// is done) on its channel and then sleeps in `poll` until a signal kills it. Tests use it
/// for the parent-death signal, which fires when the forking *thread* exits.
pub fn spawn_sleeper(channel: OwnedFd) -> Result<ChildProcess, SysError> {
    let body = |ch: OwnedFd| {
        let _ = write_all(ch.as_fd(), b"r");
        loop {
            let _ = rustix::event::poll(&mut [], None);
        }
    };
    // SAFETY: the body only calls write and poll: async-signal-safe.
    unsafe { fork_child_unchecked(Prelude::STANDARD, channel, body) }
}
