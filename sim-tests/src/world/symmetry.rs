//! Symmetry: children spawned from equal plans are interchangeable.
//!
//! Two children whose plans differ only in their names (same method, role and behaviour,
//! and no fault or user's call aimed at either) behave alike: a state and the same state with their
//! histories exchanged have the same futures, exchanged. The explicit search stores one
//! representative of each such class, as stateright's `symmetry()` does: the state with the
//! interchangeable children sorted by what happened to each, every reference to a child
//! (the supervisor's tables, the body's ready set, the descriptor copies, the spawn specs in
//! flight, re-encoded) relabelled to match, while each slot keeps its own plan and name.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use harrow_model::ChildId;
use harrow_model::supervisor::Supervisor;
use harrow_model::wire::Message;

use super::os::frame_message;
use super::{State, World};
use crate::scenario::{ChildPlan, Fault};

impl World<'_> {
    /// The children interchangeable now, in classes of two or more slots, each ascending.
    pub fn symmetric_classes(&self) -> Vec<Vec<usize>> {
        // A window of retired records smaller than the nursery drops the lowest ids first: an
        // exchange of two children changes which record a later retirement drops, so no two
        // are interchangeable.
        if self
            .sc
            .max_ended
            .is_some_and(|k| (k as usize) < self.sc.children.len())
        {
            return Vec::new();
        }
        let faults = self.sc.faults.iter().filter_map(|f| match *f {
            Fault::SigkillChild { child } => Some(child),
            _ => None,
        });
        // The user's calls name their children too (they are never exchanged, so the calls
        // made need no relabelling).
        let aimed: BTreeSet<usize> = faults
            .chain(self.sc.user.iter().map(|a| a.child()))
            .collect();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        for (i, kid) in self.st.kids.iter().enumerate() {
            if aimed.contains(&i) {
                continue;
            }
            let plan = &self.sc.children[kid.plan];
            let twin = |c: &&mut Vec<usize>| {
                interchangeable(&self.sc.children[self.st.kids[c[0]].plan], plan)
            };
            match classes.iter_mut().find(twin) {
                Some(class) => class.push(i),
                None => classes.push(vec![i]),
            }
        }
        classes.retain(|c| c.len() > 1);
        classes
    }

    /// This state's representative among the states that differ from it only by an exchange
    /// of interchangeable children, or `None` when it is its own (no two children are
    /// interchangeable, they are already in order, or the state is one the search stops at).
    pub fn canonical(&self) -> Option<State> {
        if !self.st.violations.is_empty() || self.st.sup.violation().is_some() {
            return None;
        }
        let mut to: BTreeMap<ChildId, ChildId> = BTreeMap::new();
        for class in self.symmetric_classes() {
            let mut order = class.clone();
            order.sort_by_cached_key(|&i| self.history_key(i));
            for (&from, &slot) in order.iter().zip(&class) {
                if from != slot {
                    to.insert(ChildId(from as u32), ChildId(slot as u32));
                }
            }
        }
        if to.is_empty() {
            return None;
        }
        self.permuted(&to)
    }

    /// The state with child `j`'s history moved to slot `to[j]` (a permutation of
    /// interchangeable children; see [`World::symmetric_classes`]), or `None` if the
    /// supervisor cannot be relabelled so (see [`Supervisor::relabelled`]).
    pub fn permuted(&self, to: &BTreeMap<ChildId, ChildId>) -> Option<State> {
        let sup = self.st.sup.relabelled(to).ok()?;
        Some(self.relabelled(to, sup))
    }

    /// What happened to child `i`, as a sort key that names no slot: its own state without
    /// its plan, its descriptor copies and the name in its spawn spec, and the supervisor's
    /// history of it.
    fn history_key(&self, i: usize) -> u64 {
        let mut kid = self.st.kids[i].clone();
        kid.plan = 0;
        kid.parent_end_copies.clear();
        let max_frame = self.st.sup.config().max_frame;
        for frame in kid.inbox.iter_mut() {
            respell(frame, max_frame, "");
        }
        let mut h = DefaultHasher::new();
        kid.hash(&mut h);
        self.st.sup.hash_history(ChildId(i as u32), &mut h);
        self.st.reports.hash_child(ChildId(i as u32), &mut h);
        self.st.ready.contains(&i).hash(&mut h);
        (self.st.alloc_held_by == Some(i)).hash(&mut h);
        h.finish()
    }

    /// The state with child `j`'s history moved to slot `to[j]`, over the relabelled `sup`.
    fn relabelled(&self, to: &BTreeMap<ChildId, ChildId>, sup: Supervisor) -> State {
        let map = |i: usize| to.get(&ChildId(i as u32)).map_or(i, |c| c.0 as usize);
        let old = &self.st.kids;
        let mut kids = old.clone();
        for (from, slot) in to {
            let (from, slot) = (from.0 as usize, slot.0 as usize);
            let mut kid = old[from].clone();
            kid.plan = old[slot].plan;
            let name = &self.sc.children[kid.plan].name;
            for frame in kid.inbox.iter_mut() {
                respell(frame, self.st.sup.config().max_frame, name);
            }
            kids[slot] = kid;
        }
        for kid in &mut kids {
            kid.parent_end_copies = kid.parent_end_copies.iter().map(|&j| map(j)).collect();
        }
        let st = &self.st;
        State {
            now: st.now,
            sup,
            kids,
            reports: st.reports.relabelled(to),
            body: st.body,
            ready: st.ready.iter().map(|&i| map(i)).collect(),
            faults_done: st.faults_done.clone(),
            user_done: st.user_done.clone(),
            root_dead: st.root_dead,
            alloc_held_by: st.alloc_held_by.map(map),
            failures: st.failures,
            violations: Vec::new(),
        }
    }
}

/// Rewrites a frame that carries a spawn spec to name the actor `name`; leaves any other
/// frame as it is.
fn respell(frame: &mut Vec<u8>, max_frame: u32, name: &str) {
    if let Message::SpawnSpec { role, .. } = frame_message(frame, max_frame) {
        let spec = Message::SpawnSpec {
            actor: name.to_owned(),
            role,
        };
        *frame = spec.encode_fitted(max_frame);
    }
}

/// Whether two plans differ in nothing but their names.
fn interchangeable(a: &ChildPlan, b: &ChildPlan) -> bool {
    a.method == b.method
        && a.role == b.role
        && a.behaviour == b.behaviour
        && a.children == b.children
}
