//! Signals: delivery by raw pid, process group or parent death, the SIGINT handler with its
//! self-pipe, and what each delivery did.

use core::fmt;

use std::vec;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::{Errno, Violation};
use super::event::KernelEvent;
use super::fd::Object;
use super::ids::{Fd, Pid};
use super::process::{ProcState, Role};

/// The signals the protocol sends or suffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Signal {
    /// SIGINT (2): the user's interrupt; caught when a handler is installed.
    Int,
    /// SIGKILL (9): cannot be caught; the process dies at once.
    Kill,
    /// SIGTERM (15): never caught here, so it kills like SIGKILL.
    Term,
}

impl Signal {
    /// The Linux signal number.
    pub const fn number(self) -> u8 {
        match self {
            Signal::Int => 2,
            Signal::Kill => 9,
            Signal::Term => 15,
        }
    }

    /// The conventional name, such as `SIGKILL`.
    pub const fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
            Signal::Term => "SIGTERM",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a process ended, as `waitpid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It called `exit` (or its last thread ended) with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(Signal),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by {sig}"),
        }
    }
}

/// The route a signal took to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignalVia {
    /// `kill(pid, sig)`: by raw pid, reaching whoever holds that pid now.
    Kill,
    /// `killpg(pgid, sig)`: to every member of the group.
    Killpg {
        /// The process group addressed.
        pgid: Pid,
    },
    /// `pidfd_send_signal`: to the exact process the pidfd names.
    Pidfd,
    /// The parent-death signal, sent when the parent (or the thread that forked) died.
    ParentDeath,
}

/// What a delivered signal did to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignalOutcome {
    /// The target dies with `Signaled(signal)`.
    Killed,
    /// The SIGINT handler ran: it set the pending flag and tried to write a wake byte.
    Handled {
        /// Whether the wake byte went in; false when the self-pipe was full (or gone).
        woke: bool,
    },
    /// The target is a zombie: delivery succeeds and does nothing.
    IgnoredByZombie,
    /// The target is init, which ignores signals it has no handler for.
    IgnoredByInit,
}

impl fmt::Display for SignalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignalOutcome::Killed => "killed",
            SignalOutcome::Handled { woke: true } => "handled, wake byte written",
            SignalOutcome::Handled { woke: false } => "handled, wake byte dropped",
            SignalOutcome::IgnoredByZombie => "ignored (zombie)",
            SignalOutcome::IgnoredByInit => "ignored (init)",
        })
    }
}

/// Most violations a kernel keeps; later ones are only counted, since the first one already
/// fails the run.
pub(crate) const MAX_VIOLATIONS: usize = 64;

impl Kernel {
    /// `kill(target, signal)` from `sender`: reaches whichever process holds `target` now.
    ///
    /// ESRCH if no process holds the pid. After a reap that may be the bystander, which is
    /// recorded as a [`Violation`]. A zombie target is a successful no-op.
    pub fn kill(&mut self, sender: Pid, target: Pid, signal: Signal) -> Result<(), Errno> {
        self.running(sender)?;
        self.process(target)?;
        self.signal_process(sender, target, signal, SignalVia::Kill);
        Ok(())
    }

    /// `killpg(pgid, signal)` from `sender`: every process of the group, at once.
    pub fn killpg(&mut self, sender: Pid, pgid: Pid, signal: Signal) -> Result<(), Errno> {
        self.running(sender)?;
        let members: Vec<Pid> = self
            .processes
            .iter()
            .filter(|(_, p)| p.pgid == pgid)
            .map(|(pid, _)| *pid)
            .collect();
        if members.is_empty() {
            return Err(Errno::ESRCH);
        }
        // Deliver to every member before anyone dies, as the kernel does: a death's
        // parent-death signals must not change who is in the group mid-delivery.
        let via = SignalVia::Killpg { pgid };
        let deaths = members
            .into_iter()
            .filter_map(|m| self.deliver(sender, m, signal, via).map(|st| (m, st)))
            .collect();
        self.terminate(deaths);
        Ok(())
    }

    /// Installs a SIGINT handler in `pid` that sets the pending flag and writes one byte,
    /// non-blocking, to `wake_fd` (a pipe write end), dropping it if the pipe is full.
    pub fn install_sigint_handler(&mut self, pid: Pid, wake_fd: Fd) -> Result<(), Errno> {
        let object = self.object_of(pid, wake_fd)?;
        if !matches!(object, Object::PipeWriter { .. }) {
            return Err(Errno::EINVAL);
        }
        self.running_mut(pid)?.sigint_wake = Some(wake_fd);
        Ok(())
    }

    /// Restores default dispositions in `pid` and clears its pending-SIGINT flag, as a
    /// forked child's prelude does with what it inherited.
    pub fn reset_signal_handlers(&mut self, pid: Pid) -> Result<(), Errno> {
        let p = self.running_mut(pid)?;
        p.sigint_wake = None;
        p.sigint_pending = false;
        Ok(())
    }

    /// Tests and clears `pid`'s pending-SIGINT flag: the reader side of the handler.
    pub fn take_pending_sigint(&mut self, pid: Pid) -> Result<bool, Errno> {
        let p = self.running_mut(pid)?;
        Ok(core::mem::take(&mut p.sigint_pending))
    }

    /// Sets (or clears) `pid`'s parent-death signal, like `prctl(PR_SET_PDEATHSIG)`.
    pub fn set_pdeathsig(&mut self, pid: Pid, signal: Option<Signal>) -> Result<(), Errno> {
        self.running_mut(pid)?.pdeathsig = signal;
        Ok(())
    }

    /// `pid`'s parent-death signal, like `prctl(PR_GET_PDEATHSIG)`.
    pub fn pdeathsig(&self, pid: Pid) -> Result<Option<Signal>, Errno> {
        Ok(self.running(pid)?.pdeathsig)
    }

    /// Delivers `signal` to the live process `target` and runs any death it causes.
    pub(crate) fn signal_process(&mut self, sender: Pid, target: Pid, sig: Signal, via: SignalVia) {
        if let Some(status) = self.deliver(sender, target, sig, via) {
            self.terminate(vec![(target, status)]);
        }
    }

    /// Applies `signal` to `target` short of killing it: returns the exit status when the
    /// signal is fatal, leaving the death itself to [`Kernel::terminate`].
    pub(crate) fn deliver(
        &mut self,
        sender: Pid,
        target: Pid,
        signal: Signal,
        via: SignalVia,
    ) -> Option<ExitStatus> {
        let p = self.processes.get_mut(&target)?;
        let bystander = p.role == Role::Bystander;
        let outcome = match (p.state, p.role, signal, p.sigint_wake) {
            (ProcState::Zombie(_) | ProcState::Reaped, ..) => SignalOutcome::IgnoredByZombie,
            (_, Role::Init, ..) => SignalOutcome::IgnoredByInit,
            (_, _, Signal::Int, Some(wake_fd)) => {
                // A real handler sets its flag before writing, so a dropped byte never
                // loses the signal itself.
                p.sigint_pending = true;
                SignalOutcome::Handled {
                    woke: self.pipe_push(target, wake_fd).is_ok(),
                }
            }
            _ => SignalOutcome::Killed,
        };
        if bystander {
            self.note_violation(Violation::SignalToBystander {
                pid: target,
                signal,
                sender,
            });
        }
        self.record(KernelEvent::Signal {
            sender,
            target,
            signal,
            via,
            outcome,
            bystander,
        });
        (outcome == SignalOutcome::Killed).then_some(ExitStatus::Signaled(signal))
    }

    pub(super) fn note_violation(&mut self, violation: Violation) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(violation);
        } else {
            self.violations_dropped = self.violations_dropped.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::super::{Kernel, KernelConfig};
    use super::*;

    #[test]
    fn self_pipe_of_capacity_one_drops_the_second_byte_but_not_the_signal() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let (r, w) = k.pipe(root, 1).unwrap();
        k.install_sigint_handler(root, w).unwrap();
        k.kill(Pid::INIT, root, Signal::Int).unwrap();
        k.kill(Pid::INIT, root, Signal::Int).unwrap();
        let woke: Vec<bool> = k
            .log()
            .iter()
            .filter_map(|e| match e {
                KernelEvent::Signal {
                    outcome: SignalOutcome::Handled { woke },
                    ..
                } => Some(*woke),
                _ => None,
            })
            .collect();
        assert_eq!(woke, [true, false]);
        assert_eq!(k.drain(root, r), Ok(1));
        assert_eq!(k.take_pending_sigint(root), Ok(true));
        assert_eq!(k.take_pending_sigint(root), Ok(false));
        assert_eq!(k.process_state(root), Some(ProcState::Running));
    }

    #[test]
    fn sigint_without_a_handler_kills_and_sigterm_always_kills() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let a = k.fork(root, k.threads(root).unwrap()[0]).unwrap().pid;
        let b = k.fork(root, k.threads(root).unwrap()[0]).unwrap().pid;
        k.kill(root, a, Signal::Int).unwrap();
        k.kill(root, b, Signal::Term).unwrap();
        assert_eq!(
            k.process_state(a),
            Some(ProcState::Zombie(ExitStatus::Signaled(Signal::Int)))
        );
        assert_eq!(
            k.process_state(b),
            Some(ProcState::Zombie(ExitStatus::Signaled(Signal::Term)))
        );
        k.kill(root, a, Signal::Kill).unwrap();
        assert_eq!(
            k.process_state(a),
            Some(ProcState::Zombie(ExitStatus::Signaled(Signal::Int)))
        );
    }

    #[test]
    fn init_ignores_signals_and_killpg_reaches_the_whole_group() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        k.kill(root, Pid::INIT, Signal::Kill).unwrap();
        assert_eq!(k.process_state(Pid::INIT), Some(ProcState::Running));
        let child = k.fork(root, t).unwrap();
        k.setpgid(root, child.pid, child.pid).unwrap();
        let grandchild = k.fork(child.pid, child.thread).unwrap().pid;
        assert_eq!(k.pgid(grandchild), Ok(child.pid));
        k.killpg(root, child.pid, Signal::Kill).unwrap();
        assert!(k.live_processes().iter().all(|p| *p == root));
        assert_eq!(k.killpg(root, Pid(99), Signal::Kill), Err(Errno::ESRCH));
    }
}
