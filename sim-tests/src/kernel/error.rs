//! What a kernel call can refuse ([`Errno`]) and what it records as broken ([`Violation`]).

use core::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{Pid, ThreadId};
use super::signal::Signal;

/// Why a kernel call failed: the Linux errno it would return, named as in errno(3).
#[allow(
    clippy::upper_case_acronyms,
    reason = "the names are the errno(3) names traces and man pages use"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Errno {
    /// The fd is not open in the calling process, or is out of range.
    EBADF,
    /// No such process or thread (or the pidfd's process has been reaped).
    ESRCH,
    /// Not a child of the caller, or already reaped.
    ECHILD,
    /// A bounded resource is full right now: pid pool, channel queue, pipe, threads, timers.
    EAGAIN,
    /// The other end is closed in every process or shut down.
    EPIPE,
    /// The calling process's fd table is full.
    EMFILE,
    /// The system-wide object id space is exhausted.
    ENFILE,
    /// The arguments make no sense for this object or state.
    EINVAL,
}

impl Errno {
    /// One line saying what the errno means here.
    pub const fn meaning(self) -> &'static str {
        match self {
            Errno::EBADF => "bad file descriptor: not open in this process",
            Errno::ESRCH => "no such process or thread (or it has been reaped)",
            Errno::ECHILD => "not a child of the caller, or already reaped",
            Errno::EAGAIN => "resource temporarily unavailable: a bounded queue or pool is full",
            Errno::EPIPE => "broken pipe: the other end is closed everywhere or shut down",
            Errno::EMFILE => "too many open files in this process",
            Errno::ENFILE => "too many open files in the system",
            Errno::EINVAL => "invalid argument for this object or state",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}: {}", self.meaning())
    }
}

impl core::error::Error for Errno {}

/// A safety violation the kernel observed: something the protocol must never cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Violation {
    /// A signal reached the innocent bystander that now holds a reused pid.
    SignalToBystander {
        /// The bystander's pid (once some other process's).
        pid: Pid,
        /// The signal delivered.
        signal: Signal,
        /// The process that sent it.
        sender: Pid,
    },
    /// A child was killed by its parent-death signal when the thread that forked it exited,
    /// while its parent process lived on: nobody decided that death, and its supervisor
    /// would blame the child for it.
    KilledByThreadExit {
        /// The child killed.
        child: Pid,
        /// Its parent, alive.
        parent: Pid,
        /// The parent's thread that forked it, and exited.
        thread: ThreadId,
    },
}

impl Violation {
    /// The property of `model/PROPERTIES.md` it breaks.
    pub fn property(&self) -> u8 {
        match self {
            Violation::SignalToBystander { .. } => 3,
            Violation::KilledByThreadExit { .. } => 12,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::SignalToBystander {
                pid,
                signal,
                sender,
            } => write!(
                f,
                "{sender} sent {signal} to {pid}, which is now an innocent bystander (pid reuse)"
            ),
            Violation::KilledByThreadExit {
                child,
                parent,
                thread,
            } => write!(
                f,
                "{thread} of {parent} exited and {child}'s parent-death signal killed it, while \
                 {parent} lives on (the signal follows the thread that forked, not the process)"
            ),
        }
    }
}
