//! Virtual time with named deadlines. Time moves only when a deadline fires, so timeouts
//! are just one more event a scheduler or a search may choose.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::Errno;
use super::event::KernelEvent;
use super::ids::Pid;
use harrow_model::time::Timestamp;

/// Who armed a deadline: a process and one of its timer slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadlineOwner {
    /// The process whose timer this is; its deadlines vanish when it dies.
    pub pid: Pid,
    /// Which of that process's timers.
    pub slot: u32,
}

impl core::fmt::Display for DeadlineOwner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} timer {}", self.pid, self.slot)
    }
}

/// The virtual clock: the current time, armed deadlines and fired ones not yet taken.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Clock {
    now: Timestamp,
    armed: BTreeMap<DeadlineOwner, Timestamp>,
    /// Fired but not yet taken by their owner; disjoint from `armed`.
    fired: BTreeSet<DeadlineOwner>,
    max_deadlines: usize,
}

impl Clock {
    /// A clock at time zero holding at most `max_deadlines` armed-or-fired deadlines.
    pub(crate) fn new(max_deadlines: usize) -> Self {
        Clock {
            now: Timestamp::ZERO,
            armed: BTreeMap::new(),
            fired: BTreeSet::new(),
            max_deadlines,
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The earliest armed deadline (ties by owner order), when it is due and whose it is.
    ///
    /// A deadline already in the past is due now, so the time returned is never before
    /// [`Clock::now`].
    pub fn next_deadline(&self) -> Option<(Timestamp, DeadlineOwner)> {
        let (at, owner) = self.armed.iter().map(|(owner, at)| (*at, *owner)).min()?;
        Some((at.max(self.now), owner))
    }

    /// Whether `owner` has a deadline armed.
    pub fn is_armed(&self, owner: DeadlineOwner) -> bool {
        self.armed.contains_key(&owner)
    }

    /// Arms (or re-arms, replacing) `owner`'s deadline at `at`, clearing a fired one not
    /// yet taken, which re-arming makes stale.
    pub(crate) fn arm(&mut self, owner: DeadlineOwner, at: Timestamp) -> Result<(), Errno> {
        let known = self.armed.contains_key(&owner) || self.fired.contains(&owner);
        if !known && self.armed.len().saturating_add(self.fired.len()) >= self.max_deadlines {
            return Err(Errno::EAGAIN);
        }
        self.fired.remove(&owner);
        self.armed.insert(owner, at);
        Ok(())
    }

    /// Removes `owner`'s deadline, fired or not.
    pub(crate) fn disarm(&mut self, owner: DeadlineOwner) {
        self.armed.remove(&owner);
        self.fired.remove(&owner);
    }

    /// Fires the earliest deadline: moves `now` up to it (never back) and marks it fired.
    pub(crate) fn fire_next(&mut self) -> Option<(DeadlineOwner, Timestamp)> {
        let (at, owner) = self.next_deadline()?;
        self.armed.remove(&owner);
        self.fired.insert(owner);
        self.now = at;
        Some((owner, at))
    }

    /// Tests and clears `owner`'s fired flag.
    pub(crate) fn take_fired(&mut self, owner: DeadlineOwner) -> bool {
        self.fired.remove(&owner)
    }

    /// Drops every deadline of a process that died: a reused pid must not inherit them.
    pub(crate) fn forget_pid(&mut self, pid: Pid) {
        self.armed.retain(|owner, _| owner.pid != pid);
        self.fired.retain(|owner| owner.pid != pid);
    }
}

impl Kernel {
    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock, for queries.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Arms (or re-arms, replacing) `owner`'s deadline at `at`; a time in the past fires at
    /// the current time. ESRCH unless `owner.pid` is running; EAGAIN past `max_deadlines`.
    pub fn arm(&mut self, owner: DeadlineOwner, at: Timestamp) -> Result<(), Errno> {
        self.running(owner.pid)?;
        self.clock.arm(owner, at)
    }

    /// Cancels `owner`'s deadline, including a fired one not yet taken.
    pub fn disarm(&mut self, owner: DeadlineOwner) {
        self.clock.disarm(owner);
    }

    /// The earliest armed deadline: when it is due and whose it is.
    pub fn next_deadline(&self) -> Option<(Timestamp, DeadlineOwner)> {
        self.clock.next_deadline()
    }

    /// Fires the earliest deadline, advancing time to it; `None` if none is armed.
    pub fn fire_next(&mut self) -> Option<DeadlineOwner> {
        let (owner, at) = self.clock.fire_next()?;
        self.record(KernelEvent::DeadlineFired { owner, at });
        Some(owner)
    }

    /// Tests and clears whether `owner`'s deadline has fired since it was armed.
    pub fn take_fired(&mut self, owner: DeadlineOwner) -> bool {
        self.clock.take_fired(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::super::KernelConfig;
    use super::*;

    fn owner(pid: Pid, slot: u32) -> DeadlineOwner {
        DeadlineOwner { pid, slot }
    }

    #[test]
    fn deadlines_fire_in_time_order_with_ties_by_owner_and_time_never_goes_back() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let (a, b, c) = (owner(root, 2), owner(root, 1), owner(Pid::INIT, 0));
        k.arm(a, Timestamp::from_millis(5)).unwrap();
        k.arm(b, Timestamp::from_millis(5)).unwrap();
        k.arm(c, Timestamp::from_millis(9)).unwrap();
        k.arm(c, Timestamp::from_millis(7)).unwrap();
        assert_eq!(k.next_deadline(), Some((Timestamp::from_millis(5), b)));
        assert_eq!(k.fire_next(), Some(b));
        assert_eq!(k.fire_next(), Some(a));
        assert_eq!(k.now(), Timestamp::from_millis(5));
        assert!(k.take_fired(a));
        assert!(!k.take_fired(a));
        // Re-arming replaced 9 ms with 7 ms.
        assert_eq!(k.fire_next(), Some(c));
        assert_eq!(k.now(), Timestamp::from_millis(7));
        // A deadline in the past fires now, without moving time back.
        k.arm(a, Timestamp::from_millis(1)).unwrap();
        assert_eq!(k.next_deadline(), Some((Timestamp::from_millis(7), a)));
        assert_eq!(k.fire_next(), Some(a));
        assert_eq!(k.now(), Timestamp::from_millis(7));
        assert_eq!(k.fire_next(), None);
    }

    #[test]
    fn rearm_and_disarm_clear_a_stale_fired_flag_and_death_drops_deadlines() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let child = k.fork(root, k.threads(root).unwrap()[0]).unwrap().pid;
        k.arm(owner(root, 0), Timestamp::from_millis(1)).unwrap();
        k.fire_next();
        k.arm(owner(root, 0), Timestamp::from_millis(3)).unwrap();
        assert!(!k.take_fired(owner(root, 0)));
        k.disarm(owner(root, 0));
        assert_eq!(k.next_deadline(), None);
        k.arm(owner(child, 0), Timestamp::from_millis(2)).unwrap();
        k.exit(child, 0).unwrap();
        assert_eq!(k.next_deadline(), None);
        assert_eq!(k.arm(owner(child, 0), Timestamp::ZERO), Err(Errno::ESRCH));
    }

    #[test]
    fn the_deadline_table_is_bounded() {
        let config = KernelConfig {
            max_deadlines: 2,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let root = k.root();
        k.arm(owner(root, 0), Timestamp::from_millis(1)).unwrap();
        k.arm(owner(root, 1), Timestamp::from_millis(1)).unwrap();
        assert_eq!(
            k.arm(owner(root, 2), Timestamp::from_millis(1)),
            Err(Errno::EAGAIN)
        );
        assert_eq!(k.arm(owner(root, 1), Timestamp::from_millis(2)), Ok(()));
        k.fire_next();
        // A fired deadline not yet taken still occupies its place.
        assert_eq!(
            k.arm(owner(root, 2), Timestamp::from_millis(1)),
            Err(Errno::EAGAIN)
        );
        assert!(k.take_fired(owner(root, 0)));
        assert_eq!(k.arm(owner(root, 2), Timestamp::from_millis(1)), Ok(()));
    }
}
