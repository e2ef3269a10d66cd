//! Descriptor numbers in a new child: the fixed channel number, the scrub, and an
//! allocation-free listing of what is open.
//!
//! `O_CLOEXEC` acts only at `execve`; a child forked without exec keeps the whole fd table
//! of its parent, including other children's channel ends, and then those children never
//! see EOF (the lost-EOF bug, flaw F6; `real/LINUX.md` fact 3). So the child prelude moves
//! its channel to [`CHILD_CHANNEL_FD`] and closes everything above it with `close_range(2)`.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags, RawDir};

use super::error::{Op, SysError, rustix_err};

/// The descriptor number where every harrow child finds its channel: 3, the first one
/// after stdin, stdout and stderr.
pub const CHILD_CHANNEL_FD: RawFd = 3;

/// Makes sure `fd` is not one of 0, 1, 2, so that moving it to [`CHILD_CHANNEL_FD`] cannot
/// disturb stdio; a low one is duplicated (close-on-exec) above the fixed number.
pub(crate) fn lift_above_stdio(fd: OwnedFd) -> Result<OwnedFd, SysError> {
    if fd.as_raw_fd() >= CHILD_CHANNEL_FD {
        return Ok(fd);
    }
    rustix::io::fcntl_dupfd_cloexec(&fd, CHILD_CHANNEL_FD + 1).map_err(rustix_err(Op::SetFdFlags))
}

/// In a new child: moves the channel from `raw` to [`CHILD_CHANNEL_FD`], without
/// close-on-exec, and closes `raw` if it was elsewhere. Returns the errno on failure.
///
/// Async-signal-safe: raw `dup2`/`fcntl`/`close` only.
pub(crate) fn place_channel(raw: RawFd) -> Result<(), i32> {
    if raw == CHILD_CHANNEL_FD {
        // dup2(fd, fd) would not clear FD_CLOEXEC, so clear it explicitly (it matters for exec).
        // SAFETY: fcntl(F_SETFD) on a descriptor number only changes that descriptor's flags;
        // it touches no memory (man fcntl(2)).
        let r = unsafe { libc::fcntl(CHILD_CHANNEL_FD, libc::F_SETFD, 0) };
        return if r == -1 { Err(last_errno()) } else { Ok(()) };
    }
    // SAFETY: dup2 (man dup2(2)) replaces whatever was at the fixed number; in a new child
    // nothing of ours owns that number yet, and inherited owners are never dropped there.
    if unsafe { libc::dup2(raw, CHILD_CHANNEL_FD) } == -1 {
        return Err(last_errno());
    }
    // SAFETY: `raw` is the child's own duplicate of its channel, now also at the fixed
    // number; the inherited `OwnedFd` for it is forgotten, never dropped (man close(2)).
    unsafe { libc::close(raw) };
    Ok(())
}

/// Closes every descriptor from `first` up (man close_range(2)).
///
/// Async-signal-safe: one system call.
pub(crate) fn close_from(first: RawFd) -> Result<(), i32> {
    // SAFETY: close_range only closes descriptor numbers; the caller is a new child whose
    // inherited owners of those numbers are never dropped, so nothing closes them twice.
    let r = unsafe { libc::close_range(first as libc::c_uint, libc::c_uint::MAX, 0) };
    if r == -1 { Err(last_errno()) } else { Ok(()) }
}

/// The calling thread's errno, read right after a failed libc call.
pub(crate) fn last_errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Lists this process's open descriptors into `out`, in increasing order, without
/// allocating (so a forked child may call it); returns how many are open, which may exceed
/// `out.len()` (the rest are not stored). The descriptor used for the listing is left out.
pub fn list_open_fds(out: &mut [RawFd]) -> Result<usize, SysError> {
    let dir = rustix::fs::open(
        c"/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rustix_err(Op::ReadProc))?;
    let own = dir.as_fd().as_raw_fd();
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(&dir, &mut buf);
    let mut count = 0;
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(rustix_err(Op::ReadProc))?;
        let Some(fd) = parse_fd(entry.file_name().to_bytes()) else {
            continue;
        };
        if fd == own {
            continue;
        }
        if count < out.len() {
            out[count] = fd;
        }
        count += 1;
    }
    let stored = count.min(out.len());
    out[..stored].sort_unstable();
    Ok(count)
}

/// Parses a decimal descriptor number; `.` and `..` are not numbers.
fn parse_fd(name: &[u8]) -> Option<RawFd> {
    if name.is_empty() || name.len() > 9 {
        return None;
    }
    name.iter().try_fold(0, |acc: RawFd, &b| {
        b.is_ascii_digit().then(|| acc * 10 + RawFd::from(b - b'0'))
    })
}

/// Takes ownership of the descriptor at `raw`.
///
/// # Safety
///
/// `raw` must be open and owned by nothing else in this process, so that it is closed
/// exactly once (man close(2); `OwnedFd::from_raw_fd`).
pub(crate) unsafe fn own_raw(raw: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `raw` is open and has no other owner.
    unsafe { OwnedFd::from_raw_fd(raw) }
}
