//! Exec: re-running the current executable as a child, with its channel at the fixed
//! descriptor and an environment variable naming its role.
//!
//! Uses std's `Command` with a `pre_exec` hook, which makes std fork and exec (instead of
//! `posix_spawn`). The hook runs in the forked child between fork and exec, so it must be
//! async-signal-safe: it only makes raw system calls. It moves the channel to
//! [`CHILD_CHANNEL_FD`], marks every other descriptor close-on-exec
//! (`close_range(4, ~0, CLOSE_RANGE_CLOEXEC)`; std's own error-report pipe keeps working
//! until the exec), arms the parent-death signal and re-checks the parent, and resets signal
//! dispositions. std itself joins the child to its own process group (`process_group(0)`)
//! and empties the signal mask. The death signal survives the exec (it is cleared only by a
//! set-user-ID exec) and fires when the *thread* that called [`exec_self`] exits.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{Op, SysError, nix_err};
use super::fds::{
    CHILD_CHANNEL_FD, CloseMode, close_from, lift_above_stdio, own_raw, place_channel,
};
use super::fork::{arm_death_signal, open_pidfd_or_reap, reset_signals};
use super::pidfd::{ChildProcess, Pid};

/// The environment variable that marks an exec'd harrow child: `<role>:<parent pid>`.
pub const ROLE_ENV: &str = "HARROW_CHILD_ROLE";

/// The path of the running executable, valid even if the file was replaced since.
const SELF_EXE: &str = "/proc/self/exe";

/// Spawns the current executable with `args`, [`ROLE_ENV`] set to `<role>:<our pid>`, and
/// `channel` at [`CHILD_CHANNEL_FD`]; returns the child with a pidfd opened right after the
/// spawn. stdin, stdout and stderr are inherited; the parent's copy of `channel` is closed.
pub fn exec_self(role: &str, args: &[&OsStr], channel: OwnedFd) -> Result<ChildProcess, SysError> {
    let channel = lift_above_stdio(channel)?;
    let raw = channel.as_raw_fd();
    let parent = Pid::current();
    let mut cmd = Command::new(SELF_EXE);
    cmd.args(args)
        .env(ROLE_ENV, format!("{role}:{parent}"))
        .process_group(0);
    // SAFETY: the hook runs in the forked child before exec and only makes raw system calls
    // (dup2, fcntl, close_range, prctl, getppid, sigaction): it allocates nothing, takes no
    // lock and touches no shared state, as pre_exec requires (async-signal-safe).
    unsafe { cmd.pre_exec(move || exec_prelude(raw, parent)) };
    let child = cmd.spawn().map_err(SysError::Spawn)?;
    let pid = Pid::from_raw(child.id() as i32).expect("spawn returns a positive pid");
    // std's Child neither waits nor kills on drop; from here the pidfd is the only handle.
    drop(child);
    let pidfd = open_pidfd_or_reap(pid)?;
    let raw_pid = nix::unistd::Pid::from_raw(pid.as_raw());
    // Closes the race with the child's own setpgid; EACCES once it has exec'd is fine.
    let _ = nix::unistd::setpgid(raw_pid, raw_pid);
    drop(channel);
    Ok(ChildProcess::new(pid, pidfd))
}

/// The pre-exec hook: the fork prelude's steps that still matter before an exec.
fn exec_prelude(channel: RawFd, parent: Pid) -> std::io::Result<()> {
    let fail = std::io::Error::from_raw_os_error; // no allocation for OS errors
    place_channel(channel).map_err(fail)?;
    close_from(CHILD_CHANNEL_FD + 1, CloseMode::CloseOnExec).map_err(fail)?;
    arm_death_signal(parent).map_err(|_| fail(libc::ESRCH))?;
    reset_signals().map_err(fail)
}

/// The role this process was exec'd in by [`exec_self`], if any.
///
/// `None` when [`ROLE_ENV`] is unset, malformed, or names another parent (an environment
/// inherited through an unrelated spawn): only a direct child of the spawning process counts.
pub fn inherited_role() -> Option<String> {
    let value = std::env::var(ROLE_ENV).ok()?;
    let (role, parent) = value.rsplit_once(':')?;
    let parent: i32 = parent.parse().ok()?;
    let ppid = rustix::process::getppid()?.as_raw_pid();
    (ppid == parent).then(|| role.to_owned())
}

/// Set once the inherited channel has an owner, so it never gets two.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the channel [`exec_self`] left at [`CHILD_CHANNEL_FD`], and marks it
/// close-on-exec so it does not leak into this process's own children.
///
/// Succeeds at most once per process, and only if [`inherited_role`] is `Some` and the
/// descriptor is an open socket. It assumes, like std does for 0, 1 and 2, that no other
/// code in this process claims descriptor 3 by number.
pub fn adopt_inherited_channel() -> Result<OwnedFd, SysError> {
    let refuse = |reason| Err(SysError::NoInheritedChannel { reason });
    if inherited_role().is_none() {
        return refuse(
            "this process was not spawned by exec_self (HARROW_CHILD_ROLE unset or not ours)",
        );
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return refuse("the inherited channel was already adopted");
    }
    if !is_socket(CHILD_CHANNEL_FD)? {
        return refuse("descriptor 3 is not an open socket");
    }
    // SAFETY: descriptor 3 is open (fstat succeeded), was placed by our parent's pre-exec
    // hook, and ADOPTED guarantees this is its only owner in this process.
    let fd = unsafe { own_raw(CHILD_CHANNEL_FD) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| SysError::os(Op::AdoptChannel, e.raw_os_error()))?;
    Ok(fd)
}

/// A second descriptor for this process child's channel (close-on-exec, above 3).
///
/// For a test actor that must write to its channel behind the protocol's back (the
/// malformed-frame scenario); a real actor never needs it. Refused unless descriptor 3 is an
/// open socket, which it is in every forked or re-executed harrow child (not in a thread
/// child, whose process's descriptor 3 belongs to someone else).
pub fn duplicate_child_channel() -> Result<OwnedFd, SysError> {
    if !is_socket(CHILD_CHANNEL_FD)? {
        return Err(SysError::NoInheritedChannel {
            reason: "descriptor 3 is not an open socket",
        });
    }
    // SAFETY: descriptor 3 is open (fstat succeeded just above) and stays open for this call:
    // it is only borrowed to be duplicated, never closed or owned here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(CHILD_CHANNEL_FD) };
    rustix::io::fcntl_dupfd_cloexec(fd, CHILD_CHANNEL_FD + 1)
        .map_err(|e| SysError::os(Op::AdoptChannel, e.raw_os_error()))
}

/// Whether descriptor `raw` is open and a socket; `Ok(false)` if it is closed.
fn is_socket(raw: RawFd) -> Result<bool, SysError> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only into `st`, which is valid for writes (man fstat(2)); it
    // takes a descriptor number and neither closes nor keeps it.
    if unsafe { libc::fstat(raw, &mut st) } == -1 {
        let errno = nix::errno::Errno::last();
        return if errno == nix::errno::Errno::EBADF {
            Ok(false)
        } else {
            Err(nix_err(Op::AdoptChannel)(errno))
        };
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}
