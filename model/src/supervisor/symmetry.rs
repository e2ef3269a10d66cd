//! Children's identities exchanged: the support a model checker's symmetry reduction needs.
//!
//! Two children spawned from equal specs (same method, role and actor behaviour) are
//! interchangeable: a state and the same state with their histories exchanged behave alike.
//! An explicit-state search stores one representative of each such class of states; to
//! build it, it exchanges the children's histories here while each id keeps its identity
//! (its name and actor), exactly as if the other child had been spawned under it.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::hash::{Hash, Hasher};

use super::{ChildRecord, Supervisor, TeardownCause};
use crate::id::ChildId;

/// Why a supervisor cannot be relabelled as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelabelError {
    /// The map is not a permutation of the ids it names.
    NotAPermutation,
    /// An id it names has no record (never spawned, or retired and no longer kept).
    Unknown(ChildId),
    /// Commands or events are queued, or children wait to retire: relabel between inputs.
    MidInput,
    /// An invariant violation was recorded; it names children as they were.
    Violated,
}

impl fmt::Display for RelabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelabelError::NotAPermutation => {
                f.write_str("the relabelling maps two ids to one, or to an id it does not move")
            }
            RelabelError::Unknown(c) => write!(f, "{c} has no record to relabel"),
            RelabelError::MidInput => {
                f.write_str("commands or events are still queued: relabel between inputs")
            }
            RelabelError::Violated => {
                f.write_str("an invariant violation is recorded under the old ids")
            }
        }
    }
}

impl core::error::Error for RelabelError {}

impl Supervisor {
    /// Feeds `state` with what happened to `child`, naming no child: its record but for its
    /// name and actor (lifecycle, times, answers, result), whether it is retired, the places
    /// of its errors among the errors, and whether its failure started the teardown. Two
    /// interchangeable children with equal histories are exchanged by
    /// [`Supervisor::relabelled`] to no effect; a checker sorts them by it.
    pub fn hash_history<H: Hasher>(&self, child: ChildId, state: &mut H) {
        let rec = self.record(child);
        if let Some(r) = rec {
            (&r.life, r.spawned_at, r.stop_started_at, r.finished_at).hash(state);
            (&r.answers, &r.result).hash(state);
        }
        (rec.is_some(), self.children.contains_key(&child)).hash(state);
        for (i, e) in self.errors.iter().enumerate() {
            if e.child == child {
                i.hash(state);
            }
        }
        (self.cause == Some(TeardownCause::ChildFailed(child))).hash(state);
    }

    /// The same nursery with the histories of some children moved: the child with id `j`
    /// becomes `to[&j]`, keeping everything that happened to it (its lifecycle, times,
    /// answers, result, errors, its place in the registry), while every id keeps its own
    /// name and actor. Ids `to` does not name stay as they are.
    ///
    /// `to` must be a permutation of the ids it names, each with a record, and the
    /// supervisor must be between inputs (no command or event queued).
    pub fn relabelled(&self, to: &BTreeMap<ChildId, ChildId>) -> Result<Supervisor, RelabelError> {
        let mut targets: Vec<ChildId> = to.values().copied().collect();
        targets.sort_unstable();
        if !targets.iter().eq(to.keys()) {
            return Err(RelabelError::NotAPermutation);
        }
        if !self.commands.is_empty() || !self.events.is_empty() || !self.retiring.is_empty() {
            return Err(RelabelError::MidInput);
        }
        if self.violation.is_some() {
            return Err(RelabelError::Violated);
        }
        let mut identity: BTreeMap<ChildId, (String, String)> = BTreeMap::new();
        for &c in to.keys() {
            let rec = self.record(c).ok_or(RelabelError::Unknown(c))?;
            identity.insert(c, (rec.name.clone(), rec.actor.clone()));
        }
        let map = |c: ChildId| to.get(&c).copied().unwrap_or(c);
        let moved = |(c, rec): (&ChildId, &ChildRecord)| {
            let mut rec = rec.clone();
            if let Some((name, actor)) = identity.get(&map(*c)) {
                rec.name.clone_from(name);
                rec.actor.clone_from(actor);
            }
            (map(*c), rec)
        };
        let mut out = self.clone();
        out.children = self.children.iter().map(moved).collect();
        out.ended = self.ended.iter().map(moved).collect();
        out.attended = self.attended.iter().map(|c| map(*c)).collect();
        out.registry = self
            .registry
            .iter()
            .map(|(name, c)| match identity.get(&map(*c)) {
                Some((new, _)) => (new.clone(), map(*c)),
                None => (name.clone(), *c),
            })
            .collect();
        for e in &mut out.errors {
            e.child = map(e.child);
            if let Some((name, _)) = identity.get(&e.child) {
                e.name.clone_from(name);
            }
        }
        if let Some(TeardownCause::ChildFailed(c)) = &mut out.cause {
            *c = map(*c);
        }
        out.coverage = Default::default();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;
    use crate::method::{Situation, SpawnMethod};
    use crate::supervisor::{SpawnSpec, SupervisorConfig};
    use crate::time::Timestamp;
    use crate::wire::{Message, PROTOCOL_VERSION, Role};

    /// Two daemons `a` and `b`; `a` connected and serving, `b` still awaiting its handshake.
    fn two() -> Supervisor {
        let mut s = Supervisor::new(SupervisorConfig::default()).unwrap();
        let t = Timestamp::ZERO;
        let situation = Situation {
            threads: Ok(1),
            can_exec: true,
        };
        for name in ["a", "b"] {
            let spec = SpawnSpec {
                name: name.to_string(),
                actor: name.to_string(),
                method: SpawnMethod::Exec,
                role: Role::Daemon,
            };
            let c = s.spawn(t, spec, &situation).unwrap();
            while s.poll_command().is_some() {}
            s.handle_launched(t, c).unwrap();
        }
        let hello = Message::Handshake {
            version: PROTOCOL_VERSION,
            pid: 1,
        };
        s.handle_message(t, ChildId(0), hello).unwrap();
        while s.poll_command().is_some() {}
        while s.poll_event().is_some() {}
        s
    }

    fn swap() -> BTreeMap<ChildId, ChildId> {
        [(ChildId(0), ChildId(1)), (ChildId(1), ChildId(0))].into()
    }

    #[test]
    fn histories_move_and_names_stay_with_their_ids() {
        let s = two();
        let r = s.relabelled(&swap()).unwrap();
        assert_eq!(r.lifecycle(ChildId(1)), s.lifecycle(ChildId(0)));
        assert_eq!(r.lifecycle(ChildId(0)), s.lifecycle(ChildId(1)));
        assert_eq!(r.name(ChildId(0)), Some("a"));
        assert_eq!(r.name(ChildId(1)), Some("b"));
        // The connected child is registered under the name of the id it now has.
        assert_eq!(s.lookup("a"), Some(ChildId(0)));
        assert_eq!(r.lookup("b"), Some(ChildId(1)));
        assert_eq!(r.lookup("a"), None);
        assert_ne!(r, s);
        assert_eq!(
            r.relabelled(&swap()).unwrap(),
            s,
            "a swap undone is no change"
        );
    }

    #[test]
    fn a_relabelling_that_is_not_a_permutation_of_known_children_is_refused() {
        let s = two();
        let onto: BTreeMap<_, _> = [(ChildId(0), ChildId(1)), (ChildId(1), ChildId(1))].into();
        assert_eq!(s.relabelled(&onto), Err(RelabelError::NotAPermutation));
        let unknown: BTreeMap<_, _> = [(ChildId(0), ChildId(7)), (ChildId(7), ChildId(0))].into();
        assert_eq!(
            s.relabelled(&unknown),
            Err(RelabelError::Unknown(ChildId(7)))
        );
        let mut busy = two();
        busy.cancel(Timestamp::ZERO, ChildId(0)).unwrap();
        assert_eq!(busy.relabelled(&swap()), Err(RelabelError::MidInput));
    }
}
