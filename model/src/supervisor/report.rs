//! The teardown report: how every child ended, every error, and how long it took.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChildRecord, Outcome, Supervisor};
use crate::error::{ChildError, Initiator};
use crate::id::ChildId;
use crate::method::SpawnMethod;
use crate::time::Timestamp;

/// Why the nursery is tearing down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TeardownCause {
    /// The nursery's body finished normally: daemons are cancelled, results awaited.
    BodyFinished,
    /// The nursery's body failed: every child is cancelled.
    BodyFailed,
    /// A child failed: every sibling is cancelled (one cancels all).
    ChildFailed(ChildId),
    /// SIGINT: every child is cancelled.
    Interrupted,
}

impl TeardownCause {
    /// Whether this teardown is because something went wrong.
    pub fn is_error(self) -> bool {
        !matches!(self, TeardownCause::BodyFinished)
    }

    /// Who the children's cancels are attributed to.
    pub fn initiator(self) -> Initiator {
        match self {
            TeardownCause::Interrupted => Initiator::Interrupt,
            _ => Initiator::Nursery,
        }
    }
}

impl fmt::Display for TeardownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TeardownCause::BodyFinished => f.write_str("the nursery body finished"),
            TeardownCause::BodyFailed => f.write_str("the nursery body failed"),
            TeardownCause::ChildFailed(c) => write!(f, "{c} failed"),
            TeardownCause::Interrupted => f.write_str("SIGINT"),
        }
    }
}

/// How one child ended, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildSummary {
    /// Which child.
    pub child: ChildId,
    /// Its instance name.
    pub name: String,
    /// How it was started.
    pub method: SpawnMethod,
    /// How it ended; `None` while it has not.
    pub outcome: Option<Outcome>,
    /// Who started stopping it.
    pub initiator: Option<Initiator>,
    /// When it was spawned.
    pub spawned_at: Timestamp,
    /// From the start of its stop to its end, once both happened.
    pub stop_took: Option<Duration>,
}

/// How many retired children ended each way, over a nursery's whole life.
///
/// A child whose reap was given up on is never retired (it may still be reaped late), so
/// it is not counted here; it is always listed in [`TeardownReport::children`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tally {
    /// Its launch failed.
    pub launch_failed: u64,
    /// It exited (or its thread returned) without being forced.
    pub exited: u64,
    /// It was killed.
    pub killed: u64,
    /// Its thread was abandoned.
    pub abandoned: u64,
}

impl Tally {
    /// Every child counted.
    pub fn total(&self) -> u64 {
        self.launch_failed + self.exited + self.killed + self.abandoned
    }

    /// Counts one retired child's outcome (always known for a retired child).
    pub(super) fn count(&mut self, outcome: Option<Outcome>) {
        match outcome {
            Some(Outcome::LaunchFailed) => self.launch_failed += 1,
            Some(Outcome::Exited(_)) => self.exited += 1,
            Some(Outcome::Killed { .. }) => self.killed += 1,
            Some(Outcome::Abandoned(_)) => self.abandoned += 1,
            Some(Outcome::Unreaped) | None => {}
        }
    }
}

/// The nursery's final account: how its children ended, and their errors.
///
/// It lists every child still held and the [`crate::Limits::max_ended`] retired ones
/// spawned last, which for a nursery that never spawned more than that is every child;
/// `retired` counts the outcomes of every retired child, listed or not.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[must_use = "the report is the only account of how the children ended and which errors they had"]
pub struct TeardownReport {
    /// Why the nursery tore down, if it did.
    pub cause: Option<TeardownCause>,
    /// When teardown started.
    pub started: Option<Timestamp>,
    /// When the last child finished, once all have.
    pub finished: Option<Timestamp>,
    /// The children held and the last retired ones, in spawn order.
    pub children: Vec<ChildSummary>,
    /// The outcomes of every retired child, by kind.
    pub retired: Tally,
    /// The errors of the children listed, each once, in the order reported.
    pub errors: Vec<ChildError>,
    /// Errors of children no longer listed (each was reported once, as it happened).
    pub errors_dropped: u64,
    /// Thread children abandoned (leaked on purpose), over the nursery's whole life.
    pub abandoned: usize,
}

impl TeardownReport {
    /// From the start of teardown to the last child's end.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.finished? - self.started?)
    }
}

pub(super) fn build(s: &Supervisor) -> TeardownReport {
    let mut listed: Vec<(&ChildId, &ChildRecord)> = s.ended.iter().chain(&s.children).collect();
    listed.sort_by_key(|(c, _)| **c);
    let children: Vec<ChildSummary> = listed
        .into_iter()
        .map(|(&child, c)| ChildSummary {
            child,
            name: c.name.clone(),
            method: c.life.method,
            outcome: c.life.outcome.filter(|_| c.life.is_finished()),
            initiator: c.life.stop_initiator,
            spawned_at: c.spawned_at,
            stop_took: c
                .finished_at
                .zip(c.stop_started_at)
                .map(|(end, start)| end - start),
        })
        .collect();
    // The retired ones are counted in the tally; only the held ones are added here.
    let held_abandoned = s
        .children
        .values()
        .filter(|c| c.life.is_finished())
        .filter(|c| matches!(c.life.outcome, Some(Outcome::Abandoned(_))))
        .count();
    let all_done = s.children.values().all(|c| c.life.is_finished());
    let finished = if all_done && s.teardown_started.is_some() {
        s.children
            .values()
            .filter_map(|c| c.finished_at)
            .chain(s.last_retired_at)
            .chain(s.teardown_started)
            .max()
    } else {
        None
    };
    TeardownReport {
        cause: s.cause,
        started: s.teardown_started,
        finished,
        children,
        retired: s.tally,
        errors: s.errors.clone(),
        errors_dropped: s.errors_dropped,
        abandoned: s.tally.abandoned as usize + held_abandoned,
    }
}
