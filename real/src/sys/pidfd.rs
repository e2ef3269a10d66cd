//! Pidfds: once forked, a child is signalled, watched and reaped only through its pidfd.
//!
//! A [`Pid`] is only a name: once its process is reaped the number can be handed to anyone
//! (measured here: reused after ~32k forks in 4 s). So harrow opens a pidfd right after fork,
//! while the child cannot have been reaped (nobody else reaps it: harrow never calls
//! `waitpid(-1)` and never sets `SIGCHLD` to `SIG_IGN`), and from then on signals with
//! `pidfd_send_signal`, waits with `poll`/`epoll` on the pidfd, and reaps with
//! `waitid(P_PIDFD)`. A pidfd whose process was reaped answers `ESRCH`: it can never reach a
//! stranger that inherited the number.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

pub use harrow_model::ExitStatus;
use rustix::io::Errno;
pub use rustix::process::Signal;
use rustix::process::{PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use super::channel::wait_readable;
use super::error::{Op, SysError, rustix_err};

/// A process id: a name only, not a handle. It is not a pidfd, and once the process is
/// reaped the number can belong to anyone; never signal or wait by it after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(i32);

impl Pid {
    /// The pid of the calling process.
    pub fn current() -> Pid {
        Pid(rustix::process::getpid().as_raw_pid())
    }

    /// The raw number, for display and for `/proc/<pid>` paths.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// A pid from a raw number; `None` unless it is positive.
    pub fn from_raw(raw: i32) -> Option<Pid> {
        (raw > 0).then_some(Pid(raw))
    }

    pub(crate) fn to_rustix(self) -> rustix::process::Pid {
        rustix::process::Pid::from_raw(self.0).expect("a Pid is always positive")
    }
}

impl core::fmt::Display for Pid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What sending a signal achieved.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The signal was queued (a zombie accepts it as a no-op).
    Delivered,
    /// The process (or group) is gone: already reaped. Nothing else was hit.
    Gone,
}

/// What a non-blocking reap found.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReapOutcome {
    /// The process has not exited yet.
    Running,
    /// It had exited and is now reaped; this is how it ended.
    Reaped(ExitStatus),
}

/// A pidfd (man pidfd_open(2)): a handle on one process that never refers to another.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a pidfd for `pid` (close-on-exec, blocking mode).
    ///
    /// Race-free only while `pid` cannot be reused: for our own child before we reap it, or
    /// for an orphan that will be reparented to us as subreaper. Otherwise the pid may
    /// already name a stranger.
    pub fn open(pid: Pid) -> Result<Pidfd, SysError> {
        rustix::process::pidfd_open(pid.to_rustix(), PidfdFlags::empty())
            .map(Pidfd)
            .map_err(rustix_err(Op::PidfdOpen))
    }

    /// Wraps a descriptor that is a pidfd, for example one received over `SCM_RIGHTS`.
    ///
    /// Any other kind of descriptor makes every call fail with `EBADF`/`EINVAL`.
    pub fn from_owned(fd: OwnedFd) -> Pidfd {
        Pidfd(fd)
    }

    /// Sends `sig` (man pidfd_send_signal(2)); `ESRCH` (already reaped) is [`SignalOutcome::Gone`].
    pub fn send_signal(&self, sig: Signal) -> Result<SignalOutcome, SysError> {
        match rustix::process::pidfd_send_signal(&self.0, sig) {
            Ok(()) => Ok(SignalOutcome::Delivered),
            Err(Errno::SRCH) => Ok(SignalOutcome::Gone),
            Err(e) => Err(rustix_err(Op::PidfdSendSignal)(e)),
        }
    }

    /// Reaps the process if it has exited (man waitid(2), `P_PIDFD`, `WEXITED | WNOHANG`).
    ///
    /// Only its parent (or subreaper, after reparenting) may reap; others get `ECHILD`, as does
    /// a second reap.
    pub fn try_reap(&self) -> Result<ReapOutcome, SysError> {
        loop {
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
            return match rustix::process::waitid(WaitId::PidFd(self.0.as_fd()), options) {
                Ok(None) => Ok(ReapOutcome::Running),
                Ok(Some(status)) => Ok(ReapOutcome::Reaped(exit_status(&status))),
                Err(Errno::INTR) => continue,
                Err(e) => Err(rustix_err(Op::Waitid)(e)),
            };
        }
    }

    /// Blocks until the process exits and reaps it (`P_PIDFD`, `WEXITED`).
    ///
    /// Bounded only by the kernel: use it after `SIGKILL`, which guarantees an exit.
    pub fn reap_blocking(&self) -> Result<ExitStatus, SysError> {
        loop {
            match rustix::process::waitid(WaitId::PidFd(self.0.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(status)) => return Ok(exit_status(&status)),
                Ok(None) | Err(Errno::INTR) => continue,
                Err(e) => return Err(rustix_err(Op::Waitid)(e)),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit: a pidfd turns readable at exit.
    pub fn wait_exited(&self, timeout: Option<Duration>) -> Result<bool, SysError> {
        wait_readable(self.0.as_fd(), timeout)
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<Pidfd> for OwnedFd {
    fn from(p: Pidfd) -> OwnedFd {
        p.0
    }
}

/// Converts a `waitid(WEXITED)` result into an exit status.
fn exit_status(status: &WaitIdStatus) -> ExitStatus {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => ExitStatus::Exited(code),
        (None, Some(sig)) => ExitStatus::Signaled(sig),
        // WEXITED reports only exits, kills and dumps; anything else would be a kernel change.
        (None, None) => ExitStatus::Exited(status.raw_code()),
    }
}

/// A child process we forked or spawned: its pid (a name), its pidfd (the handle), and
/// whether we reaped it. One `ChildProcess` is the one owner that reaps.
///
/// The child leads its own process group (pgid = pid), so [`ChildProcess::kill_group`] also
/// reaches its descendants that did not leave the group. Dropping an unreaped child kills it
/// through the pidfd and reaps it (a safety net; the driver reaps explicitly).
#[derive(Debug)]
pub struct ChildProcess {
    pid: Pid,
    pidfd: Pidfd,
    status: Option<ExitStatus>,
}

impl ChildProcess {
    pub(crate) fn new(pid: Pid, pidfd: Pidfd) -> ChildProcess {
        ChildProcess {
            pid,
            pidfd,
            status: None,
        }
    }

    /// Its pid: for logs and `/proc`; never for signalling (use the methods here).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its pidfd, to register with epoll (readable once the child has exited).
    pub fn pidfd(&self) -> &Pidfd {
        &self.pidfd
    }

    /// How it ended, once reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Sends `sig` through the pidfd; after our reap this is [`SignalOutcome::Gone`] without a call.
    pub fn signal(&self, sig: Signal) -> Result<SignalOutcome, SysError> {
        if self.status.is_some() {
            return Ok(SignalOutcome::Gone);
        }
        self.pidfd.send_signal(sig)
    }

    /// `SIGKILL` through the pidfd.
    pub fn kill(&self) -> Result<SignalOutcome, SysError> {
        self.signal(Signal::KILL)
    }

    /// `SIGKILL` to the child's whole process group (man killpg(2)).
    ///
    /// Safe only while the group leader (this child) is not reaped: until then its pid, and
    /// so the pgid, cannot name anyone else. After our reap this refuses with
    /// [`SysError::LeaderReaped`]; kill the group first, then reap.
    pub fn kill_group(&self) -> Result<SignalOutcome, SysError> {
        if self.status.is_some() {
            return Err(SysError::LeaderReaped);
        }
        match rustix::process::kill_process_group(self.pid.to_rustix(), Signal::KILL) {
            Ok(()) => Ok(SignalOutcome::Delivered),
            Err(Errno::SRCH) => Ok(SignalOutcome::Gone),
            Err(e) => Err(rustix_err(Op::Killpg)(e)),
        }
    }

    /// Reaps it if it has exited; after the reap, keeps answering the same status.
    pub fn try_reap(&mut self) -> Result<ReapOutcome, SysError> {
        if let Some(status) = self.status {
            return Ok(ReapOutcome::Reaped(status));
        }
        let outcome = self.pidfd.try_reap()?;
        if let ReapOutcome::Reaped(status) = outcome {
            self.status = Some(status);
        }
        Ok(outcome)
    }

    /// Waits up to `timeout` for it to exit, then reaps it if it did.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<ReapOutcome, SysError> {
        if self.status.is_none() && !self.pidfd.wait_exited(timeout)? {
            return Ok(ReapOutcome::Running);
        }
        self.try_reap()
    }

    /// Kills it through the pidfd (if not yet reaped) and reaps it, blocking until it is gone.
    pub fn kill_and_reap(&mut self) -> Result<ExitStatus, SysError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let _ = self.pidfd.send_signal(Signal::KILL)?;
        let status = self.pidfd.reap_blocking()?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Never leave a zombie: SIGKILL guarantees the exit the blocking reap waits for.
        let _ = self.kill_and_reap();
    }
}
