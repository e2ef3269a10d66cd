//! What a run exercised: the cells of the two protocol tables it reached, and its close calls.
//!
//! The child lifecycle's table is [`Phase`] × [`InputKind`]; the child runtime's is
//! [`ChildPhase`] × [`ChildInputKind`]. A cell is reached when that input arrives in that phase,
//! taken or refused. The supervisor records every lifecycle input at its one step function, the
//! child runtime at each of its inputs; both only set a bit, in a [`Coverage`] they carry and an
//! engine takes out ([`crate::supervisor::Supervisor::take_coverage`],
//! [`crate::child::ChildRuntime::take_coverage`]) and merges over its runs. Nothing here is
//! global: the engine owns the tally.
//!
//! The close calls are the moments a run with no flaw came near a property's limit: a deadline
//! fired, a child had to be killed, a thread had to be abandoned.

use core::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::child::ChildPhase;
use crate::supervisor::{InputKind, Phase};
use crate::wire::MessageKind;

/// A kind of input to the child runtime: one of its entry points, a message split by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChildInputKind {
    /// `start`: it boots.
    Start,
    /// `supervise`: it opened its own nursery.
    Supervise,
    /// `handle_message`: a message of this kind from the parent.
    Message(MessageKind),
    /// `handle_malformed`: a frame from the parent did not decode.
    Malformed,
    /// `handle_parent_eof`: the parent channel reached end-of-file.
    ParentEof,
    /// `handle_work_done`: a request finished.
    WorkDone,
    /// `handle_main_done`: the run-to-result main function returned.
    MainDone,
    /// `handle_actor_failed`: the actor failed outside any request.
    ActorFailed,
    /// `handle_subtree_closed`: its own nursery closed.
    SubtreeClosed,
}

impl ChildInputKind {
    /// Every kind, in table order ([`ChildInputKind::index`]).
    pub const ALL: [ChildInputKind; 16] = [
        ChildInputKind::Start,
        ChildInputKind::Supervise,
        ChildInputKind::Message(MessageKind::SpawnSpec),
        ChildInputKind::Message(MessageKind::Request),
        ChildInputKind::Message(MessageKind::Cancel),
        ChildInputKind::Message(MessageKind::Handshake),
        ChildInputKind::Message(MessageKind::Reply),
        ChildInputKind::Message(MessageKind::Finished),
        ChildInputKind::Message(MessageKind::Failed),
        ChildInputKind::Message(MessageKind::CancelAck),
        ChildInputKind::Malformed,
        ChildInputKind::ParentEof,
        ChildInputKind::WorkDone,
        ChildInputKind::MainDone,
        ChildInputKind::ActorFailed,
        ChildInputKind::SubtreeClosed,
    ];

    /// Its place in [`ChildInputKind::ALL`].
    pub const fn index(self) -> usize {
        match self {
            ChildInputKind::Start => 0,
            ChildInputKind::Supervise => 1,
            ChildInputKind::Message(m) => 2 + m as usize,
            ChildInputKind::Malformed => 10,
            ChildInputKind::ParentEof => 11,
            ChildInputKind::WorkDone => 12,
            ChildInputKind::MainDone => 13,
            ChildInputKind::ActorFailed => 14,
            ChildInputKind::SubtreeClosed => 15,
        }
    }
}

impl core::fmt::Display for ChildInputKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChildInputKind::Message(m) => write!(f, "Message({m:?})"),
            other => core::fmt::Debug::fmt(other, f),
        }
    }
}

/// The moments a run came near a property's limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CloseCalls {
    /// Deadlines that fired on a child (boot, cancel-ack, grace, reap, drain).
    pub deadlines: u64,
    /// Children killed (SIGKILL ordered).
    pub kills: u64,
    /// Thread children abandoned.
    pub abandons: u64,
}

/// The cells reached and the close calls seen, by one run or merged over many.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Per [`Phase`] (by its place in [`Phase::ALL`]), a bit per [`InputKind::index`].
    lifecycle: [u32; Phase::ALL.len()],
    /// Per [`ChildPhase`], a bit per [`ChildInputKind::index`].
    child: [u32; ChildPhase::ALL.len()],
    /// The close calls.
    pub close: CloseCalls,
}

const _: () = assert!(InputKind::ALL.len() <= 32 && ChildInputKind::ALL.len() <= 32);

impl Coverage {
    /// Records an input of this kind arriving at a child's lifecycle in this phase.
    pub fn lifecycle_input(&mut self, phase: Phase, input: InputKind) {
        self.lifecycle[phase as usize] |= 1 << input.index();
    }

    /// Records an input of this kind arriving at a child runtime in this phase.
    pub fn child_input(&mut self, phase: ChildPhase, input: ChildInputKind) {
        self.child[phase as usize] |= 1 << input.index();
    }

    /// Whether the lifecycle cell was reached.
    pub fn reached(&self, phase: Phase, input: InputKind) -> bool {
        self.lifecycle[phase as usize] & (1 << input.index()) != 0
    }

    /// Whether the child runtime's cell was reached.
    pub fn child_reached(&self, phase: ChildPhase, input: ChildInputKind) -> bool {
        self.child[phase as usize] & (1 << input.index()) != 0
    }

    /// Adds another tally: the union of the cells, the sum of the close calls.
    pub fn merge(&mut self, other: &Coverage) {
        for (a, b) in self.lifecycle.iter_mut().zip(other.lifecycle) {
            *a |= b;
        }
        for (a, b) in self.child.iter_mut().zip(other.child) {
            *a |= b;
        }
        self.close.deadlines += other.close.deadlines;
        self.close.kills += other.close.kills;
        self.close.abandons += other.close.abandons;
    }
}

/// A [`Coverage`] carried inside a protocol state that takes no part in the state's identity:
/// any two are equal and hash alike. A state search that merges equal states must not tell
/// them apart by what the paths to them exercised.
#[derive(Clone, Debug, Default)]
pub struct Carried(pub Coverage);

impl PartialEq for Carried {
    fn eq(&self, _: &Carried) -> bool {
        true
    }
}

impl Eq for Carried {}

impl Hash for Carried {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use serde::de::{self, Deserializer, Visitor};

    /// The variant names serde knows for an enum: the compiler's list, not a hand-kept one.
    fn variants<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        let mut names = Names(None);
        let _ = T::deserialize(&mut names);
        names.0.expect("an enum")
    }

    struct Names(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut Names {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(variants);
            Err(de::Error::custom("names taken"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    /// The top-level variant name of each value, as serde writes it.
    fn names_of<T: core::fmt::Debug>(all: &[T]) -> Vec<alloc::string::String> {
        let mut out: Vec<_> = all
            .iter()
            .map(|v| {
                let s = alloc::format!("{v:?}");
                s.split('(').next().unwrap_or_default().into()
            })
            .collect();
        out.dedup();
        out
    }

    #[test]
    fn every_all_list_holds_every_variant_once_in_index_order() {
        assert_eq!(names_of(&Phase::ALL), variants::<Phase>());
        assert_eq!(names_of(&ChildPhase::ALL), variants::<ChildPhase>());
        assert_eq!(names_of(&MessageKind::ALL), variants::<MessageKind>());
        assert_eq!(names_of(&InputKind::ALL), variants::<InputKind>());
        assert_eq!(names_of(&ChildInputKind::ALL), variants::<ChildInputKind>());
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{p:?}");
        }
        for (i, p) in ChildPhase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{p:?}");
        }
        for (i, m) in MessageKind::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i, "{m:?}");
        }
        for (i, k) in InputKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
        }
        for (i, k) in ChildInputKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
        }
    }

    #[test]
    fn cells_are_recorded_one_by_one_and_merged_as_a_union() {
        let mut a = Coverage::default();
        a.lifecycle_input(Phase::Serving, InputKind::Message(MessageKind::Reply));
        a.close.kills = 1;
        assert!(a.reached(Phase::Serving, InputKind::Message(MessageKind::Reply)));
        assert!(!a.reached(Phase::Serving, InputKind::Message(MessageKind::Failed)));
        assert!(!a.reached(Phase::Draining, InputKind::Message(MessageKind::Reply)));
        let mut b = Coverage::default();
        b.child_input(ChildPhase::Cancelling, ChildInputKind::WorkDone);
        b.close.kills = 2;
        a.merge(&b);
        assert!(a.reached(Phase::Serving, InputKind::Message(MessageKind::Reply)));
        assert!(a.child_reached(ChildPhase::Cancelling, ChildInputKind::WorkDone));
        assert!(!a.child_reached(ChildPhase::Serving, ChildInputKind::WorkDone));
        assert_eq!(a.close.kills, 3);
        assert_eq!(Carried(a), Carried(Coverage::default()));
    }
}
