//! The flaw catalogue: switches that put a known hang or race back, so checkers must find it.
//!
//! The shipped protocol runs with [`Flaws::NONE`]. Each switch re-creates one bug class
//! tractor hit (the catalogue is `model/FLAWS.md`); its postmortem is beside it in
//! [`Flaw::postmortem`]. The real backend never enables one except in its smoke scenarios
//! of expected failures.

use core::fmt;

use serde::{Deserialize, Serialize};

/// One re-creatable bug class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flaw {
    /// F1: abandoning a thread child leaves our end of its channel open.
    NoChannelAbortOnAbandon,
    /// F2: a thread child's context is destroyed before its thread is joined.
    DestroyBeforeJoin,
    /// F3: `Fork` is allowed from a multi-threaded process.
    ForkFromBusyProcess,
    /// F4: the child waits for parent EOF to exit; the parent closes only after exit.
    MutualWaitAtTeardown,
    /// F5: kill and reap by raw pid, with a second reaper.
    KillAndReapByPid,
    /// F6: a forked child keeps every inherited fd.
    NoFdScrub,
    /// F7: draining a child's channel waits for end-of-file with no deadline.
    UnboundedPeerDrain,
    /// F8: the handshake wait ignores the child's death and has no boot timeout.
    NoHandshakeOrDeathRace,
    /// F9: a cancel-ack timeout leads to nothing; the child is never killed.
    NoEscalation,
    /// F10: children are cancelled one after another.
    SerialTeardown,
    /// F11: the signal self-pipe is read before the pending flags, so a wakeup can be lost.
    DroppedWakeups,
    /// F12: the event loop takes a lock that thread actors also hold.
    ControlPathSharesLock,
    /// F13: a killed or abandoned child stays in the name registry.
    NoDeregistrationOnKill,
    /// F14: a child whose parent channel reaches EOF keeps serving.
    NoSelfCancelOnParentEof,
}

impl Flaw {
    /// Every flaw, F1 to F14.
    pub const ALL: [Flaw; 14] = [
        Flaw::NoChannelAbortOnAbandon,
        Flaw::DestroyBeforeJoin,
        Flaw::ForkFromBusyProcess,
        Flaw::MutualWaitAtTeardown,
        Flaw::KillAndReapByPid,
        Flaw::NoFdScrub,
        Flaw::UnboundedPeerDrain,
        Flaw::NoHandshakeOrDeathRace,
        Flaw::NoEscalation,
        Flaw::SerialTeardown,
        Flaw::DroppedWakeups,
        Flaw::ControlPathSharesLock,
        Flaw::NoDeregistrationOnKill,
        Flaw::NoSelfCancelOnParentEof,
    ];

    /// The catalogue number, 1 to 14.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The flaw with this catalogue number.
    pub fn from_number(n: u8) -> Option<Flaw> {
        Flaw::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// A short kebab-case name.
    pub fn slug(self) -> &'static str {
        match self {
            Flaw::NoChannelAbortOnAbandon => "no-channel-abort-on-abandon",
            Flaw::DestroyBeforeJoin => "destroy-before-join",
            Flaw::ForkFromBusyProcess => "fork-from-busy-process",
            Flaw::MutualWaitAtTeardown => "mutual-wait-at-teardown",
            Flaw::KillAndReapByPid => "kill-and-reap-by-pid",
            Flaw::NoFdScrub => "no-fd-scrub",
            Flaw::UnboundedPeerDrain => "unbounded-peer-drain",
            Flaw::NoHandshakeOrDeathRace => "no-handshake-or-death-race",
            Flaw::NoEscalation => "no-escalation",
            Flaw::SerialTeardown => "serial-teardown",
            Flaw::DroppedWakeups => "dropped-wakeups",
            Flaw::ControlPathSharesLock => "control-path-shares-lock",
            Flaw::NoDeregistrationOnKill => "no-deregistration-on-kill",
            Flaw::NoSelfCancelOnParentEof => "no-self-cancel-on-parent-eof",
        }
    }

    /// The postmortem: the bug, its tractor class, and why the shipped fix works.
    pub fn postmortem(self) -> &'static str {
        match self {
            Flaw::NoChannelAbortOnAbandon => {
                "tractor H2 (cancel-delivery hang): a subint thread that never checkpoints is \
                 abandoned after its join timeout, but the parent's channel to it stays open and \
                 the parent task reading it waits forever. Fix: abandoning a thread child closes \
                 our end of its channel in the same transition, so no reader of ours depends on \
                 the abandoned thread ever closing its end."
            }
            Flaw::DestroyBeforeJoin => {
                "tractor H3 (destroy race): a subinterpreter was destroyed, and its thread state \
                 recycled, while its driver thread still ran; the thread's late write landed in \
                 state that now belonged to someone else. Fix: a thread child's context is freed \
                 only by the join; an abandoned thread's context is leaked on purpose and counted \
                 in the teardown report."
            }
            Flaw::ForkFromBusyProcess => {
                "tractor H4: fork() from a process with other threads copies their held locks \
                 into a child that has no thread to release them; the child wedges before its \
                 handshake. Fix: plain Fork is refused in a multi-threaded process with an error \
                 naming ForkServer, whose single-threaded server forks safely."
            }
            Flaw::MutualWaitAtTeardown => {
                "tractor H7: the child's parent-channel loop exits only on EOF, while the parent \
                 waits for the child's exit before closing its end; each waits for the other. \
                 Fix: the child exits right after its cancel-ack without waiting for EOF, and the \
                 parent closes its end on the ack and bounds the wait for exit by the kill grace."
            }
            Flaw::KillAndReapByPid => {
                "tractor H8: poll() and wait() both reaped the same pid, and a kill by raw pid \
                 after the reap could hit an unrelated process that reused it. Fix: a pidfd is \
                 opened at spawn; signals and the single reap go through it, so a late signal \
                 gets ESRCH instead of a bystander."
            }
            Flaw::NoFdScrub => {
                "tractor H9: forked children inherited every fd, including their siblings' and \
                 their own parent-side channel ends, so an EOF that should have woken a reader \
                 never came. Fix: the forked child moves its channel to a fixed fd and closes \
                 every other inherited fd before running any runtime code."
            }
            Flaw::UnboundedPeerDrain => {
                "tractor H11: teardown waited for every peer channel to close with no deadline; \
                 one stuck peer held everyone. Fix: after a child exits, its channel is drained \
                 for late messages only until the drain deadline, then our end is closed."
            }
            Flaw::NoHandshakeOrDeathRace => {
                "tractor H12 (boot death): a child died before its handshake and the parent \
                 waited on the handshake event forever. Fix: the handshake wait also ends on the \
                 child's exit (a boot failure carrying its status) and on the boot timeout."
            }
            Flaw::NoEscalation => {
                "tractor H13: when the cancel-ack timed out, the parent logged it and went on \
                 waiting for a child that would never exit. Fix: an ack timeout escalates at once \
                 to SIGKILL (or abandonment for a thread child)."
            }
            Flaw::SerialTeardown => {
                "tractor L2: cancelling children one after another makes teardown of N stuck \
                 children cost N timeouts. Fix: every cancel goes out in one step and all share \
                 one deadline, so N children cost one timeout."
            }
            Flaw::DroppedWakeups => {
                "tractor H1 (SIGINT starvation): a wakeup byte written to a full self-pipe is \
                 dropped, and a reader that checks the flags before draining the pipe can miss \
                 a signal that arrives between the two. Fix: signals are level flags; the pipe \
                 only wakes; the reader drains the pipe first, then takes every flag."
            }
            Flaw::ControlPathSharesLock => {
                "tractor H1: an abandoned subint kept the shared GIL, and the event loop that \
                 had to handle SIGINT starved behind it. Fix: the control path takes no lock that \
                 actor threads hold, so an abandoned thread cannot stall it."
            }
            Flaw::NoDeregistrationOnKill => {
                "tractor H6 (stale entry): a killed child's name stayed in the registry and \
                 lookups returned a dead actor. Fix: a child is deregistered in the very \
                 transition that kills, abandons or reaps it."
            }
            Flaw::NoSelfCancelOnParentEof => {
                "tractor L8 (orphans): a child whose parent died kept serving forever; nothing \
                 in the protocol told it to stop. Fix: EOF on the parent channel without a prior \
                 cancel means the parent is gone, and the child cancels itself."
            }
        }
    }
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F{} {}", self.number(), self.slug())
    }
}

/// A set of switched-on flaws; the shipped protocol uses [`Flaws::NONE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flaws(u16);

impl Flaws {
    /// No flaw switched on: the shipped protocol.
    pub const NONE: Flaws = Flaws(0);

    /// Exactly one flaw switched on.
    pub const fn only(flaw: Flaw) -> Flaws {
        Flaws(1 << flaw as u16)
    }

    /// This set with `flaw` added.
    pub const fn with(self, flaw: Flaw) -> Flaws {
        Flaws(self.0 | 1 << flaw as u16)
    }

    /// Whether `flaw` is switched on.
    pub const fn has(self, flaw: Flaw) -> bool {
        self.0 & (1 << flaw as u16) != 0
    }

    /// Whether no flaw is switched on.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The switched-on flaws, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Flaw> {
        Flaw::ALL.into_iter().filter(move |f| self.has(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_sets_hold_exactly_their_members() {
        for f in Flaw::ALL {
            assert_eq!(Flaw::from_number(f.number()), Some(f));
            let set = Flaws::only(f);
            assert!(Flaw::ALL.iter().all(|g| set.has(*g) == (*g == f)));
            assert!(!f.postmortem().is_empty());
        }
        assert_eq!(Flaw::from_number(0), None);
        assert_eq!(Flaw::from_number(15), None);
        assert!(Flaws::NONE.is_none());
    }
}
