//! Reaping: collecting a zombie's status exactly once, by raw pid or for any child, and the
//! pid reuse (with its innocent bystander) that a reap makes possible.

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::Errno;
use super::event::KernelEvent;
use super::ids::{Pid, ProcessSerial};
use super::process::{ProcState, Role};
use super::signal::ExitStatus;

/// The result of a non-blocking wait (`WNOHANG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReapOutcome {
    /// A zombie was reaped: its pid is now free (and may already be someone else's).
    Reaped {
        /// The pid it had.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },
    /// The child (or every child) is still running: a blocking wait would wait.
    StillRunning,
}

impl Kernel {
    /// `waitpid(pid, WNOHANG)` by `caller`: reaps `pid` if it is a zombie child of the caller.
    ///
    /// ECHILD if whoever holds `pid` now is not the caller's child. After pid reuse that
    /// check can pass for the wrong process: this is the raw-pid hazard, kept on purpose.
    pub fn waitpid(&mut self, caller: Pid, pid: Pid) -> Result<ReapOutcome, Errno> {
        self.running(caller)?;
        let state = match self.processes.get(&pid) {
            Some(p) if p.parent == caller => p.state,
            _ => return Err(Errno::ECHILD),
        };
        match state {
            ProcState::Running => Ok(ReapOutcome::StillRunning),
            _ => self.reap_by(caller, pid).ok_or(Errno::ECHILD),
        }
    }

    /// `waitpid(-1, WNOHANG)` by `caller`: reaps its lowest-numbered zombie child, whoever
    /// else meant to reap it (the "second reaper" pattern). ECHILD if it has no children.
    pub fn waitpid_any(&mut self, caller: Pid) -> Result<ReapOutcome, Errno> {
        self.running(caller)?;
        let children = self.children(caller);
        if children.is_empty() {
            return Err(Errno::ECHILD);
        }
        let zombie = children
            .into_iter()
            .find(|c| matches!(self.process_state(*c), Some(ProcState::Zombie(_))));
        match zombie {
            Some(pid) => self.reap_by(caller, pid).ok_or(Errno::ECHILD),
            None => Ok(ReapOutcome::StillRunning),
        }
    }

    /// How many times the process `serial` has been reaped: 0 or 1, never more.
    pub fn reap_count(&self, serial: ProcessSerial) -> u32 {
        u32::from(self.serial_state(serial) == Some(ProcState::Reaped))
    }

    /// Reaps the zombie `pid` on behalf of `reaper`; `None` if it is not a zombie.
    ///
    /// Removing the process is what makes a second reap impossible: the serial is gone, so
    /// every later wait on it answers ECHILD.
    pub(crate) fn reap_by(&mut self, reaper: Pid, pid: Pid) -> Option<ReapOutcome> {
        let p = self.processes.get(&pid)?;
        let ProcState::Zombie(status) = p.state else {
            return None;
        };
        let (pgid, role) = (p.pgid, p.role);
        self.processes.remove(&pid);
        self.record(KernelEvent::Reaped {
            reaper,
            pid,
            status,
        });
        self.after_reap(pid, pgid, role);
        Some(ReapOutcome::Reaped { pid, status })
    }

    /// Starts the bystander on a pid this reap freed, if the config asks for one and none
    /// is alive: the pid is reused at once, so a late kill by pid hits an innocent.
    fn after_reap(&mut self, pid: Pid, pgid: Pid, role: Role) {
        if !self.config.bystander_on_reuse || role == Role::Bystander || self.bystander().is_some()
        {
            return;
        }
        // The pgid counts too: a group id stays in use until its last member is reaped.
        let freed = [pid, pgid]
            .into_iter()
            .filter(|p| self.in_pool(*p) && !self.pid_in_use(*p))
            .min();
        if let Some(free) = freed {
            self.start_bystander(free);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;
    use std::vec;

    use super::super::{KernelConfig, Signal, Violation};
    use super::*;

    #[test]
    fn a_reaped_pid_is_reused_by_the_bystander_and_kill_by_pid_hits_it() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        let child = k.fork(root, t).unwrap().pid;
        let pidfd = k.pidfd_open(root, child).unwrap();
        let serial = k.serial_of(child).unwrap();
        k.exit(child, 0).unwrap();
        let reaped = ReapOutcome::Reaped {
            pid: child,
            status: ExitStatus::Exited(0),
        };
        assert_eq!(k.waitpid(root, child), Ok(reaped));
        assert_eq!(k.bystander(), Some(child));
        assert_eq!(k.role(child), Ok(Role::Bystander));
        assert_eq!(k.reap_count(serial), 1);

        // The pidfd names the reaped process, not the pid: ESRCH, and nothing recorded.
        assert_eq!(
            k.pidfd_send_signal(root, pidfd, Signal::Kill),
            Err(Errno::ESRCH)
        );
        assert!(k.violations().is_empty());

        // The raw pid reaches the bystander.
        assert_eq!(k.kill(root, child, Signal::Term), Ok(()));
        let v = Violation::SignalToBystander {
            pid: child,
            signal: Signal::Term,
            sender: root,
        };
        assert_eq!(k.violations(), [v]);
        assert!(
            k.log()
                .iter()
                .any(|e| e.to_string().contains("hit bystander"))
        );
        // It died and init reaped it; the violation stays.
        assert_eq!(k.bystander(), None);
        assert_eq!(k.violations().len(), 1);
        assert_eq!(k.waitpid(root, child), Err(Errno::ECHILD));
    }

    #[test]
    fn waitpid_any_steals_the_zombie_from_its_pidfd_owner() {
        let config = KernelConfig {
            bystander_on_reuse: false,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        assert_eq!(k.waitpid_any(root), Err(Errno::ECHILD));
        let child = k.fork(root, t).unwrap().pid;
        let pidfd = k.pidfd_open(root, child).unwrap();
        assert_eq!(k.waitpid_any(root), Ok(ReapOutcome::StillRunning));
        assert_eq!(k.waitid_pidfd(root, pidfd), Ok(ReapOutcome::StillRunning));
        k.kill(root, child, Signal::Kill).unwrap();
        assert!(matches!(
            k.waitpid_any(root),
            Ok(ReapOutcome::Reaped { .. })
        ));
        assert_eq!(k.waitid_pidfd(root, pidfd), Err(Errno::ECHILD));
        // Without the bystander the freed pid goes to the next fork.
        assert_eq!(k.fork(root, t).unwrap().pid, child);
    }

    #[test]
    fn only_the_parent_can_reap() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        let a = k.fork(root, t).unwrap();
        let b = k.fork(root, t).unwrap().pid;
        k.exit(b, 1).unwrap();
        assert_eq!(k.waitpid(a.pid, b), Err(Errno::ECHILD));
        let fd = k.pidfd_open(a.pid, b).unwrap();
        assert_eq!(k.waitid_pidfd(a.pid, fd), Err(Errno::ECHILD));
        assert_eq!(k.zombies(), vec![b]);
    }
}
