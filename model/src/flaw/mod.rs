//! The flaw catalogue: switches that put a known hang or race back, so checkers must find it.
//!
//! The shipped protocol runs with [`Flaws::NONE`]. Each switch re-creates one bug class
//! tractor hit; everything said about it (its postmortem, the property it breaks, the engines
//! and scenario that must find it) is its entry in the one [`TABLE`], which `model/FLAWS.md`
//! is rendered from. The real backend never enables one except in its smoke scenarios of
//! expected failures.

use core::fmt;

use serde::{Deserialize, Serialize};

mod table;

pub use table::{Engine, Entry, TABLE};

/// One re-creatable bug class: the switch. What it does and why is its [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flaw {
    /// F1.
    NoChannelAbortOnAbandon,
    /// F2.
    DestroyBeforeJoin,
    /// F3.
    ForkFromBusyProcess,
    /// F4.
    MutualWaitAtTeardown,
    /// F5.
    KillAndReapByPid,
    /// F6.
    NoFdScrub,
    /// F7.
    UnboundedPeerDrain,
    /// F8.
    NoHandshakeOrDeathRace,
    /// F9.
    NoEscalation,
    /// F10.
    SerialTeardown,
    /// F11.
    DroppedWakeups,
    /// F12.
    ControlPathSharesLock,
    /// F13.
    NoDeregistrationOnKill,
    /// F14.
    NoSelfCancelOnParentEof,
    /// F15.
    AcceptEveryFailure,
    /// F16.
    SpawnFromCallersThread,
    /// F17.
    LateReplyAnswersLaterRequest,
    /// F18.
    RepliesQueuedBehindLaterWork,
}

impl Flaw {
    /// How many flaws there are.
    pub const COUNT: usize = TABLE.len();

    /// Every flaw, F1 first, in the order of [`TABLE`].
    pub const ALL: [Flaw; Flaw::COUNT] = {
        let mut all = [Flaw::NoChannelAbortOnAbandon; Flaw::COUNT];
        let mut i = 0;
        while i < Flaw::COUNT {
            all[i] = TABLE[i].flaw;
            i += 1;
        }
        all
    };

    /// Its entry in the table.
    pub fn entry(self) -> &'static Entry {
        &TABLE[self as usize]
    }

    /// The catalogue number, from 1.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The flaw with this catalogue number.
    pub fn from_number(n: u8) -> Option<Flaw> {
        Flaw::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// A short kebab-case name.
    pub fn slug(self) -> &'static str {
        self.entry().slug
    }
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F{} {}", self.number(), self.slug())
    }
}

/// A set of switched-on flaws; the shipped protocol uses [`Flaws::NONE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flaws(u32);

/// One bit per flaw: checked when the crate compiles.
const _: () = assert!(
    Flaw::COUNT <= u32::BITS as usize,
    "Flaws has a bit per flaw"
);

impl Flaws {
    /// No flaw switched on: the shipped protocol.
    pub const NONE: Flaws = Flaws(0);

    /// Exactly one flaw switched on.
    pub const fn only(flaw: Flaw) -> Flaws {
        Flaws(1 << flaw as u32)
    }

    /// This set with `flaw` added.
    pub const fn with(self, flaw: Flaw) -> Flaws {
        Flaws(self.0 | 1 << flaw as u32)
    }

    /// Whether `flaw` is switched on.
    pub const fn has(self, flaw: Flaw) -> bool {
        self.0 & (1 << flaw as u32) != 0
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
            assert_eq!(f.entry().flaw, f);
            assert!(!f.entry().bug.is_empty() && !f.entry().fix.is_empty());
            assert!(!f.entry().engines.is_empty() && !f.entry().breaks.is_empty());
        }
        assert_eq!(Flaw::from_number(0), None);
        assert_eq!(Flaw::from_number(Flaw::COUNT as u8 + 1), None);
        assert!(Flaws::NONE.is_none());
    }
}
