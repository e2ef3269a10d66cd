//! What an operating system layer may still report about each child: the rules every [`Os`]
//! follows for channels and exits, written once.
//!
//! An [`Os`] reads each child's channel and watches its exit (a pidfd, a thread's flag), then
//! tells its driver what happened as [`OsEvent`]s. How it reads differs (epoll over Linux, the
//! simulated kernel's readiness); what it may report does not, and lives here:
//!
//! - bytes are reported only while the channel is open and its end-of-file not yet reported:
//!   a closed channel's late bytes are dropped;
//! - end-of-file is reported once, after which the channel is silent (a level-triggered
//!   reader would otherwise see it at every wait);
//! - an exit is reported once, and never for a child whose exit is no longer watched (a thread
//!   abandoned, a process already reaped);
//! - nothing at all is reported for a child that was never launched or was retired.
//!
//! [`Os`]: crate::driver::Os

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::{Hash, Hasher};

use crate::driver::OsEvent;
use crate::id::ChildId;

/// The state of a child's channel, as far as reporting goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Channel {
    /// Open, and its end-of-file not yet reported: it is read and its bytes reported.
    Open,
    /// Its end-of-file was reported: it is silent, though our end may still be open.
    Ended,
    /// Our end was closed: nothing of it is reported.
    Closed,
}

/// What is still reported of one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Watch {
    channel: Channel,
    /// Whether its exit is still to be reported.
    exit: bool,
}

/// The per-child table of what an [`crate::driver::Os`] may still report, fed what its reads
/// and its user's commands did, handing back the events to report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Channels {
    children: BTreeMap<ChildId, Watch>,
}

impl Channels {
    /// An empty table.
    pub fn new() -> Self {
        Channels::default()
    }

    /// `child` was launched: its channel is open and its exit watched.
    pub fn launched(&mut self, child: ChildId) {
        let watch = Watch {
            channel: Channel::Open,
            exit: true,
        };
        self.children.insert(child, watch);
    }

    /// Whether `child`'s channel is worth reading (and watching): open, its end-of-file not
    /// yet reported. Sending on a channel that is not is pointless: nobody reads it any more.
    pub fn reads(&self, child: ChildId) -> bool {
        self.children
            .get(&child)
            .is_some_and(|w| w.channel == Channel::Open)
    }

    /// Bytes were read from `child`'s channel: reported if it [reads](Channels::reads).
    pub fn bytes(&mut self, child: ChildId, bytes: Vec<u8>, out: &mut Vec<OsEvent>) {
        if self.reads(child) && !bytes.is_empty() {
            out.push(OsEvent::Bytes(child, bytes));
        }
    }

    /// A read of `child`'s channel hit end-of-file (or failed for good): reported once.
    /// `true` if it was reported now, when the reader stops watching the channel.
    pub fn end_of_stream(&mut self, child: ChildId, out: &mut Vec<OsEvent>) -> bool {
        match self.children.get_mut(&child) {
            Some(w) if w.channel == Channel::Open => {
                w.channel = Channel::Ended;
                out.push(OsEvent::Eof(child));
                true
            }
            _ => false,
        }
    }

    /// Our end of `child`'s channel was closed. `true` if the channel was still watched
    /// (its end-of-file not reported), when the reader stops watching it.
    pub fn closed(&mut self, child: ChildId) -> bool {
        match self.children.get_mut(&child) {
            Some(w) => core::mem::replace(&mut w.channel, Channel::Closed) == Channel::Open,
            None => false,
        }
    }

    /// Whether `child`'s exit is still to be reported.
    pub fn watches_exit(&self, child: ChildId) -> bool {
        self.children.get(&child).is_some_and(|w| w.exit)
    }

    /// `child`'s exit became visible (its pidfd readable, its thread returned): reported
    /// once. `true` if it was reported now, when the watcher stops watching it.
    pub fn exited(&mut self, child: ChildId, out: &mut Vec<OsEvent>) -> bool {
        match self.children.get_mut(&child) {
            Some(w) if w.exit => {
                w.exit = false;
                out.push(OsEvent::Exited(child));
                true
            }
            _ => false,
        }
    }

    /// `child`'s exit is no longer to be reported: its thread was abandoned, or it was reaped.
    pub fn unwatch_exit(&mut self, child: ChildId) {
        if let Some(w) = self.children.get_mut(&child) {
            w.exit = false;
        }
    }

    /// `child` was retired: nothing of it is reported again.
    pub fn retired(&mut self, child: ChildId) {
        self.children.remove(&child);
    }

    /// Hashes what is still reported of `child` (nothing, for a child not in the table) into
    /// `state`: the part of a search's state that is `child`'s, named by no id.
    pub fn hash_child<H: Hasher>(&self, child: ChildId, state: &mut H) {
        self.children.get(&child).hash(state);
    }

    /// The same table with some children's entries moved: the entry of `j` becomes `to[&j]`'s
    /// (`to` a permutation of the ids it names). Ids `to` does not name keep their own.
    pub fn relabelled(&self, to: &BTreeMap<ChildId, ChildId>) -> Channels {
        let moved = |id: &ChildId| to.get(id).copied().unwrap_or(*id);
        Channels {
            children: self
                .children
                .iter()
                .map(|(id, w)| (moved(id), *w))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const C: ChildId = ChildId(3);

    fn launched() -> Channels {
        let mut t = Channels::new();
        t.launched(C);
        t
    }

    #[test]
    fn bytes_are_reported_while_the_channel_is_open() {
        let mut t = launched();
        let mut out = Vec::new();
        t.bytes(C, vec![1, 2], &mut out);
        assert_eq!(out, vec![OsEvent::Bytes(C, vec![1, 2])]);
    }

    #[test]
    fn end_of_file_is_reported_once_then_the_channel_is_silent() {
        let mut t = launched();
        let mut out = Vec::new();
        assert!(t.end_of_stream(C, &mut out));
        assert!(!t.end_of_stream(C, &mut out), "a second EOF is not news");
        t.bytes(C, vec![9], &mut out);
        assert_eq!(out, vec![OsEvent::Eof(C)]);
        assert!(!t.reads(C));
        assert!(!t.closed(C), "an ended channel is no longer watched");
    }

    #[test]
    fn a_closed_channels_late_bytes_and_eof_are_dropped() {
        let mut t = launched();
        assert!(t.closed(C), "an open channel was watched until its close");
        let mut out = Vec::new();
        t.bytes(C, vec![1], &mut out);
        assert!(!t.end_of_stream(C, &mut out));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_exit_is_reported_once() {
        let mut t = launched();
        let mut out = Vec::new();
        assert!(t.watches_exit(C));
        assert!(t.exited(C, &mut out));
        assert!(!t.exited(C, &mut out));
        assert_eq!(out, vec![OsEvent::Exited(C)]);
        assert!(!t.watches_exit(C));
    }

    #[test]
    fn an_unwatched_exit_is_not_reported() {
        let mut t = launched();
        t.unwatch_exit(C);
        let mut out = Vec::new();
        assert!(!t.exited(C, &mut out));
        assert!(out.is_empty(), "{out:?}");
        t.bytes(C, vec![4], &mut out);
        assert_eq!(
            out,
            vec![OsEvent::Bytes(C, vec![4])],
            "the channel is apart"
        );
    }

    #[test]
    fn nothing_is_reported_of_a_retired_or_unknown_child() {
        let mut t = launched();
        t.retired(C);
        assert_eq!(t, Channels::new(), "nothing is kept of it");
        let mut out = Vec::new();
        for child in [C, ChildId(7)] {
            t.bytes(child, vec![1], &mut out);
            assert!(!t.end_of_stream(child, &mut out));
            assert!(!t.exited(child, &mut out));
            assert!(!t.closed(child));
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_relabelled_table_moves_entries_and_keeps_the_rest() {
        let mut t = launched();
        t.launched(ChildId(4));
        t.launched(ChildId(5));
        let mut out = Vec::new();
        assert!(t.end_of_stream(C, &mut out));
        let to = BTreeMap::from([(C, ChildId(4)), (ChildId(4), C)]);
        let r = t.relabelled(&to);
        assert!(!r.reads(ChildId(4)), "3's ended channel is now 4's");
        assert!(r.reads(C) && r.reads(ChildId(5)));
        assert_eq!(r.relabelled(&to), t, "a swap undone");
    }

    #[test]
    fn children_are_apart() {
        let mut t = launched();
        t.launched(ChildId(4));
        let mut out = Vec::new();
        assert!(t.end_of_stream(C, &mut out));
        assert!(t.reads(ChildId(4)));
        assert!(t.exited(ChildId(4), &mut out));
        assert!(t.watches_exit(C));
        assert_eq!(out, vec![OsEvent::Eof(C), OsEvent::Exited(ChildId(4))]);
    }
}
