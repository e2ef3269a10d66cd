//! The teardown report: how every child ended, every error, and how long it took.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Outcome, Supervisor};
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

/// The nursery's final account: every child's outcome and every error.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TeardownReport {
    /// Why the nursery tore down, if it did.
    pub cause: Option<TeardownCause>,
    /// When teardown started.
    pub started: Option<Timestamp>,
    /// When the last child finished, once all have.
    pub finished: Option<Timestamp>,
    /// Every child, in spawn order.
    pub children: Vec<ChildSummary>,
    /// Every child error, each once, in the order reported.
    pub errors: Vec<ChildError>,
    /// Thread children abandoned (leaked on purpose).
    pub abandoned: usize,
}

impl TeardownReport {
    /// From the start of teardown to the last child's end.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.finished? - self.started?)
    }
}

pub(super) fn build(s: &Supervisor) -> TeardownReport {
    let children: Vec<ChildSummary> = s
        .children
        .iter()
        .enumerate()
        .map(|(i, c)| ChildSummary {
            child: ChildId(i as u32),
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
    let abandoned = children
        .iter()
        .filter(|c| matches!(c.outcome, Some(Outcome::Abandoned(_))))
        .count();
    let all_done = s.children.iter().all(|c| c.life.is_finished());
    let finished = if all_done && s.teardown_started.is_some() {
        s.children
            .iter()
            .filter_map(|c| c.finished_at)
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
        errors: s.errors.clone(),
        abandoned,
    }
}
