//! Pidfds: fds that name one exact process (by serial, not by pid), so signalling and
//! waiting through them can never reach a stranger that inherited the pid.

use super::Kernel;
use super::error::Errno;
use super::event::KernelEvent;
use super::fd::Object;
use super::ids::{Fd, Pid, ProcessSerial};
use super::process::ProcState;
use super::reap::ReapOutcome;
use super::signal::{Signal, SignalVia};

impl Kernel {
    /// `pidfd_open(target)` by `caller`: an fd naming the process that holds `target` now.
    ///
    /// ESRCH unless that process is running or a zombie.
    pub fn pidfd_open(&mut self, caller: Pid, target: Pid) -> Result<Fd, Errno> {
        self.running(caller)?;
        let serial = self.process(target)?.serial;
        let [fd] = self.open_objects(caller, |_| {
            [Object::Pidfd {
                pid: target,
                serial,
            }]
        })?;
        self.record(KernelEvent::PidfdOpened {
            pid: caller,
            fd,
            target,
        });
        Ok(fd)
    }

    /// `pidfd_send_signal(fd, signal)` by `caller`.
    ///
    /// ESRCH once the named process has been reaped, even if its pid now belongs to someone
    /// else; a zombie target is a successful no-op.
    pub fn pidfd_send_signal(&mut self, caller: Pid, fd: Fd, signal: Signal) -> Result<(), Errno> {
        self.running(caller)?;
        let target = self.pidfd_target(caller, fd)?;
        if self.live_serial(target) == ProcState::Reaped {
            return Err(Errno::ESRCH);
        }
        self.signal_process(caller, target.0, signal, SignalVia::Pidfd);
        Ok(())
    }

    /// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)` by `caller`: reaps the named process if it is
    /// a zombie child of the caller.
    ///
    /// ECHILD if it is not the caller's child or was already reaped (by anyone).
    pub fn waitid_pidfd(&mut self, caller: Pid, fd: Fd) -> Result<ReapOutcome, Errno> {
        self.running(caller)?;
        let (pid, serial) = self.pidfd_target(caller, fd)?;
        let parent = self.process(pid).map(|p| p.parent);
        match (self.live_serial((pid, serial)), parent) {
            (ProcState::Reaped, _) => Err(Errno::ECHILD),
            (_, Ok(parent)) if parent != caller => Err(Errno::ECHILD),
            (ProcState::Running, _) => Ok(ReapOutcome::StillRunning),
            _ => self.reap_by(caller, pid).ok_or(Errno::ECHILD),
        }
    }

    /// Whether the process named by pidfd `fd` of `caller` has exited (zombie or reaped):
    /// what polling a pidfd reports. EINVAL if `fd` is not a pidfd.
    pub fn pidfd_readable(&self, caller: Pid, fd: Fd) -> Result<bool, Errno> {
        let target = self.pidfd_target(caller, fd)?;
        Ok(self.live_serial(target) != ProcState::Running)
    }

    /// The process a pidfd of `caller` names. EBADF if not open, EINVAL if not a pidfd.
    fn pidfd_target(&self, caller: Pid, fd: Fd) -> Result<(Pid, ProcessSerial), Errno> {
        match self.object_of(caller, fd)? {
            Object::Pidfd { pid, serial } => Ok((*pid, *serial)),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The state of the process named by `(pid, serial)`: reaped if its pid is free or
    /// held by another process.
    pub(crate) fn live_serial(&self, (pid, serial): (Pid, ProcessSerial)) -> ProcState {
        match self.processes.get(&pid) {
            Some(p) if p.serial == serial => p.state,
            _ => ProcState::Reaped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ExitStatus, KernelConfig};
    use super::*;

    #[test]
    fn a_process_is_reaped_exactly_once() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        let child = k.fork(root, t).unwrap().pid;
        let serial = k.serial_of(child).unwrap();
        let fd = k.pidfd_open(root, child).unwrap();
        assert_eq!(k.readable(root, fd), Ok(false));
        k.exit(child, 7).unwrap();
        assert_eq!(k.pidfd_readable(root, fd), Ok(true));
        // A signal to a zombie is a harmless no-op.
        assert_eq!(k.pidfd_send_signal(root, fd, Signal::Kill), Ok(()));
        let reaped = ReapOutcome::Reaped {
            pid: child,
            status: ExitStatus::Exited(7),
        };
        assert_eq!(k.waitid_pidfd(root, fd), Ok(reaped));
        assert_eq!(k.waitid_pidfd(root, fd), Err(Errno::ECHILD));
        assert_eq!(k.waitpid(root, child), Err(Errno::ECHILD));
        assert_eq!(k.reap_count(serial), 1);
        assert_eq!(k.readable(root, fd), Ok(true));
        assert_eq!(k.serial_state(serial), Some(ProcState::Reaped));
    }

    #[test]
    fn pidfd_misuse_is_typed() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let (a, _) = k.socketpair(root).unwrap();
        assert_eq!(k.pidfd_open(root, Pid(77)), Err(Errno::ESRCH));
        assert_eq!(
            k.pidfd_send_signal(root, a, Signal::Kill),
            Err(Errno::EINVAL)
        );
        assert_eq!(k.waitid_pidfd(root, Fd(60)), Err(Errno::EBADF));
    }
}
