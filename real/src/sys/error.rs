//! [`SysError`]: what a system call failed at, with its errno and what to do about it.

use core::fmt;

/// The operation a [`SysError`] comes from; each one names a system call or a short sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `socketpair(2)` for a parent-child channel.
    Socketpair,
    /// `pipe2(2)`.
    Pipe,
    /// `send(2)` on a channel.
    Send,
    /// `recv(2)` on a channel.
    Recv,
    /// `poll(2)` for readability.
    Poll,
    /// `fcntl(2)` / `ioctl(2)` to change a descriptor's flags.
    SetFdFlags,
    /// `pidfd_open(2)` right after a fork.
    PidfdOpen,
    /// `pidfd_send_signal(2)`.
    PidfdSendSignal,
    /// `waitid(2)` with `P_PIDFD` or `P_PID`.
    Waitid,
    /// `killpg(2)` on a child's process group.
    Killpg,
    /// `fork(2)`.
    Fork,
    /// `posix_spawn`/`fork`+`execve` of the current executable.
    SpawnExec,
    /// Reading `/proc/self/...` (thread count, open descriptors, environment).
    ReadProc,
    /// `sendmsg(2)` with `SCM_RIGHTS`.
    Sendmsg,
    /// `recvmsg(2)` with `SCM_RIGHTS`.
    Recvmsg,
    /// `epoll_create1(2)`.
    EpollCreate,
    /// `epoll_ctl(2)`.
    EpollCtl,
    /// `epoll_wait(2)`.
    EpollWait,
    /// Installing a signal handler.
    SignalInstall,
    /// Adopting the channel a parent left on the fixed descriptor.
    AdoptChannel,
    /// Draining a signal self-pipe.
    SignalDrain,
}

impl Op {
    /// What was being done, as a phrase after "could not".
    pub fn what(self) -> &'static str {
        match self {
            Op::Socketpair => "create a socketpair for a child channel",
            Op::Pipe => "create a pipe",
            Op::Send => "send on a channel",
            Op::Recv => "receive from a channel",
            Op::Poll => "poll a descriptor",
            Op::SetFdFlags => "change a descriptor's flags",
            Op::PidfdOpen => "open a pidfd for a new child",
            Op::PidfdSendSignal => "signal a child through its pidfd",
            Op::Waitid => "reap a child (waitid)",
            Op::Killpg => "kill a child's process group",
            Op::Fork => "fork a child",
            Op::SpawnExec => "spawn the current executable",
            Op::ReadProc => "read /proc/self",
            Op::Sendmsg => "send descriptors over a unix socket",
            Op::Recvmsg => "receive descriptors over a unix socket",
            Op::EpollCreate => "create an epoll instance",
            Op::EpollCtl => "register a descriptor with epoll",
            Op::EpollWait => "wait on epoll",
            Op::SignalInstall => "install a signal handler",
            Op::AdoptChannel => "adopt the inherited channel",
            Op::SignalDrain => "drain the signal wake pipe",
        }
    }
}

/// A failure of the system layer, typed by operation; `Display` says what failed and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum SysError {
    /// A system call failed with an errno.
    Os {
        /// What was being done.
        op: Op,
        /// The raw errno.
        errno: i32,
    },
    /// Plain fork was refused because the process has more than one thread.
    MultiThreaded {
        /// How many threads the process had.
        threads: usize,
    },
    /// More descriptors were given to one message than [`crate::sys::scm::MAX_FDS`].
    TooManyFds {
        /// How many were given.
        given: usize,
        /// The limit.
        max: usize,
    },
    /// `killpg` refused: the group leader was already reaped, so its pid may name another group.
    LeaderReaped,
    /// The inherited channel cannot be adopted; the text says why.
    NoInheritedChannel {
        /// Why.
        reason: &'static str,
    },
    /// The executable could not be spawned; std's error says why.
    Spawn(std::io::Error),
    /// harrow's spawner thread could not be started, or is gone.
    SpawnerThread(std::io::Error),
    /// As many signal pipes as there may be already watch signals.
    TooManySignalWatchers {
        /// The limit.
        max: usize,
    },
}

impl SysError {
    /// A [`SysError::Os`] from an operation and a raw errno.
    pub fn os(op: Op, errno: i32) -> SysError {
        SysError::Os { op, errno }
    }

    /// The errno, when the failure came from a system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SysError::Os { errno, .. } => Some(*errno),
            SysError::Spawn(e) => e.raw_os_error(),
            _ => None,
        }
    }

    /// The operation, when the failure came from a system call.
    pub fn op(&self) -> Option<Op> {
        match self {
            SysError::Os { op, .. } => Some(*op),
            SysError::Spawn(_) => Some(Op::SpawnExec),
            _ => None,
        }
    }
}

/// What a user can do about `errno` during `op`.
fn hint(op: Op, errno: i32) -> &'static str {
    match (op, errno) {
        (_, libc::EMFILE | libc::ENFILE) => {
            "the process or system is out of file descriptors: close unused channels or raise \
             RLIMIT_NOFILE"
        }
        (Op::Fork | Op::SpawnExec, libc::EAGAIN) => {
            "the process limit was hit (RLIMIT_NPROC, pid_max or cgroup pids.max): reap exited \
             children or raise the limit"
        }
        (_, libc::ENOMEM) => "the kernel is out of memory: reduce the number of children",
        (_, libc::ENOSYS) => {
            "this kernel lacks the system call: harrow-real needs Linux 5.11 or later"
        }
        (Op::Waitid, libc::ECHILD) => {
            "the child was already reaped or is not ours: exactly one owner may reap a child"
        }
        (_, libc::EPERM | libc::EACCES) => {
            "permission denied: the target belongs to another user or the call needs privileges"
        }
        (_, libc::ESRCH) => "the process no longer exists (it was reaped)",
        _ => "this is unexpected here: report it together with the errno",
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::Os { op, errno } => {
                let text = std::io::Error::from_raw_os_error(*errno);
                write!(f, "could not {}: {text}; {}", op.what(), hint(*op, *errno))
            }
            SysError::MultiThreaded { threads } => write!(
                f,
                "plain fork refused: this process has {threads} threads, and a forked child could \
                 wedge on a lock another thread held at fork time; use the fork-server method \
                 (ForkServer) or the exec method (Exec) instead"
            ),
            SysError::TooManyFds { given, max } => write!(
                f,
                "cannot send {given} file descriptors in one message; the limit is {max}: split \
                 them over several messages"
            ),
            SysError::LeaderReaped => f.write_str(
                "refusing killpg: the group leader was already reaped, so its pid may now name \
                 another process group; kill the group before reaping its leader",
            ),
            SysError::NoInheritedChannel { reason } => {
                write!(f, "could not adopt the inherited channel: {reason}")
            }
            SysError::SpawnerThread(e) => write!(
                f,
                "could not spawn an Exec child through harrow's spawner thread ({e}): a child \
                 spawned off the main thread is spawned there, so that it outlives the thread \
                 that asked; spawn from the main thread, or raise the thread limit \
                 (RLIMIT_NPROC)"
            ),
            SysError::TooManySignalWatchers { max } => write!(
                f,
                "cannot watch another signal: {max} signal pipes (one per nursery that handles \
                 SIGINT) already exist; tear some of those nurseries down, or open this one with \
                 handle_sigint: false"
            ),
            SysError::Spawn(e) => write!(
                f,
                "could not spawn a child program: {e}; check that the program (for exec_self: \
                 /proc/self/exe) exists and is executable"
            ),
        }
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SysError::Spawn(e) | SysError::SpawnerThread(e) => Some(e),
            _ => None,
        }
    }
}

/// Maps a rustix errno to a [`SysError`] for `op`.
pub(crate) fn rustix_err(op: Op) -> impl FnOnce(rustix::io::Errno) -> SysError {
    move |e| SysError::os(op, e.raw_os_error())
}

/// Maps a nix errno to a [`SysError`] for `op`.
pub(crate) fn nix_err(op: Op) -> impl FnOnce(nix::errno::Errno) -> SysError {
    move |e| SysError::os(op, e as i32)
}
