//! The safety properties (1–6, 13 and 14 of `model/PROPERTIES.md`) in per-step form: named
//! predicates.
//!
//! The supervisor checks them after every transition in debug builds. With no flaw switched
//! on a violation is a protocol bug and panics; with a flaw on it is recorded, and the
//! checkers report it as the flaw found.

use alloc::format;
use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ChildError, ChildErrorKind};
use crate::id::ChildId;
use crate::method::SpawnMethod;
use crate::supervisor::{Event, Lifecycle, Outcome, Phase, RequestEnd, Supervisor};

/// What one transition touched: the only state a per-step check needs to look at.
///
/// A transition changes one child's lifecycle, the registry entry under that child's name,
/// and appends to the errors; every other child is as it was when it was last checked. So
/// the checks cost what the step did, not what the nursery's history holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stepped {
    /// The child whose lifecycle took the input (or was just spawned).
    pub child: ChildId,
    /// Where in the supervisor's errors those the step added begin.
    pub errors_from: usize,
}

/// One named safety predicate over a supervisor state, as a transition left it.
#[derive(Clone, Copy, Debug)]
pub struct Invariant {
    /// The predicate's name.
    pub name: &'static str,
    /// The property (numbered as in `PROPERTIES.md`) it is the per-step form of.
    pub property: u8,
    /// `Err` with a sentence naming the child and what is wrong.
    pub check: fn(&Supervisor, Stepped) -> Result<(), String>,
}

/// A broken invariant: which one, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The predicate's name.
    pub invariant: String,
    /// The property's number, as in `PROPERTIES.md`.
    pub property: u8,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "property {} ({}): {}",
            self.property, self.invariant, self.detail
        )
    }
}

/// Every supervisor invariant.
pub const SUPERVISOR: [Invariant; 8] = [
    Invariant {
        name: "handshake_before_request",
        property: 1,
        check: handshake_before_request,
    },
    Invariant {
        name: "graceful_before_forceful",
        property: 2,
        check: graceful_before_forceful,
    },
    Invariant {
        name: "reaped_at_most_once",
        property: 3,
        check: reaped_at_most_once,
    },
    Invariant {
        name: "abandoned_threads_counted",
        property: 4,
        check: abandoned_threads_counted,
    },
    Invariant {
        name: "every_error_reported_once",
        property: 5,
        check: every_error_reported_once,
    },
    Invariant {
        name: "registry_holds_only_live",
        property: 6,
        check: registry_holds_only_live,
    },
    Invariant {
        name: "late_reply_answers_nothing_later",
        property: 13,
        check: late_reply_answers_nothing_later,
    },
    Invariant {
        name: "every_request_ends_once",
        property: 14,
        check: every_request_ends_once,
    },
];

/// Runs every supervisor invariant over what one transition touched; the first failure is
/// returned.
pub fn check_step(s: &Supervisor, stepped: Stepped) -> Result<(), Violation> {
    for inv in SUPERVISOR {
        (inv.check)(s, stepped).map_err(|detail| Violation {
            invariant: inv.name.into(),
            property: inv.property,
            detail,
        })?;
    }
    Ok(())
}

/// The lifecycle of the child stepped (live: a child is retired only once the input that
/// made it over is done and checked).
fn life(s: &Supervisor, t: Stepped) -> &Lifecycle {
    &s.children[&t.child].life
}

/// Property 1: handshake before any request, one spawn spec, no request after cancel.
fn handshake_before_request(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let (l, c) = (life(s, t), t.child);
    if l.requests_sent > 0 && !l.handshake_done {
        return Err(format!("{c} was sent a request before its handshake"));
    }
    if l.specs_sent > 1 {
        return Err(format!("{c} was sent {} spawn specs", l.specs_sent));
    }
    if l.requests_at_cancel.is_some_and(|n| n != l.requests_sent) {
        return Err(format!("{c} was sent a request after its cancel"));
    }
    Ok(())
}

/// Property 2: no kill or abandon of a connected child before a graceful attempt.
fn graceful_before_forceful(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let l = life(s, t);
    let forced = l.kill_sent || matches!(l.outcome, Some(Outcome::Abandoned(_)));
    let allowed = l.cancel_sent || l.channel_seen_closed || l.user_hard_stop || !l.handshake_done;
    if forced && !allowed {
        return Err(format!(
            "{} was stopped forcefully before any cancel was attempted",
            t.child
        ));
    }
    Ok(())
}

/// Property 3: every child reaped at most once, and never signalled after it.
fn reaped_at_most_once(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let l = life(s, t);
    if l.reaps > 1 {
        return Err(format!("{} was reaped {} times", t.child, l.reaps));
    }
    if l.method == SpawnMethod::Thread && l.kill_sent {
        return Err(format!("thread {} was sent a signal", t.child));
    }
    Ok(())
}

/// Property 4: an abandoned thread is never also joined, and every abandonment is counted.
fn abandoned_threads_counted(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let l = life(s, t);
    if matches!(l.outcome, Some(Outcome::Abandoned(_))) && l.reaps > 0 {
        return Err(format!("thread {} was both abandoned and joined", t.child));
    }
    Ok(())
}

/// Property 5: every recorded child error is emitted to the user once: the errors recorded
/// (kept, and dropped with retired children) are as many as the [`Event::Failed`] the user
/// has taken plus those still queued, and the errors this step recorded are the last failure
/// events queued, in order. And no child dies twice or reports its own failure twice.
///
/// Only a step that records errors can break this (taking an event moves it from the queue
/// to the count), so only then is the queue counted, and only the errors the step added are
/// compared with the earlier errors of the same child: a step that reports nothing costs
/// nothing here.
fn every_error_reported_once(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let added = s.errors.get(t.errors_from..).unwrap_or_default();
    if added.is_empty() {
        return Ok(());
    }
    let queued = s.events.iter().filter_map(failure).count() as u64;
    // Errors of retired children that left the kept window were dropped, and are counted.
    let recorded = s.errors.len() as u64 + s.errors_dropped;
    if s.failures_taken + queued != recorded {
        return Err(format!(
            "{recorded} errors recorded but {} failure events emitted ({} taken, {queued} queued)",
            s.failures_taken + queued,
            s.failures_taken
        ));
    }
    let last = s.events.iter().rev().filter_map(failure).take(added.len());
    if !last.eq(added.iter().rev()) {
        return Err(format!(
            "the {} errors this step recorded are not the last failure events queued",
            added.len()
        ));
    }
    // A child can fail remotely, time out and be unreapable, but it dies only once...
    let death = |e: &ChildError| {
        matches!(
            e.kind,
            ChildErrorKind::BootFailed(_)
                | ChildErrorKind::Died(_)
                | ChildErrorKind::LaunchFailed(_)
        )
    };
    // ...and it reports its own failure at most once (a second is a protocol violation).
    let own = |e: &ChildError| matches!(e.kind, ChildErrorKind::Remote(_));
    for (i, a) in s.errors.iter().enumerate().skip(t.errors_from) {
        let mut earlier = s.errors[..i].iter().filter(|b| b.child == a.child);
        if death(a) && earlier.clone().any(death) {
            return Err(format!(
                "{} has two death reports; the second: {a}",
                a.child
            ));
        }
        if own(a) && earlier.any(own) {
            return Err(format!(
                "{} has two failure reports of its own; the second: {a}",
                a.child
            ));
        }
    }
    Ok(())
}

/// The error an event reports, if it is a failure.
fn failure(e: &Event) -> Option<&ChildError> {
    match e {
        Event::Failed(err) => Some(err),
        _ => None,
    }
}

/// Property 6: the registry returns no child that is known to be dead.
///
/// A step changes only the entry under the stepped child's name (registering or
/// deregistering it), and only the stepped child's phase; so that entry is the one to check.
fn registry_holds_only_live(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let name = &s.children[&t.child].name;
    let Some(id) = s.registry.get(name) else {
        return Ok(());
    };
    let Some(c) = s.children.get(id) else {
        return Err(format!(
            "registry entry `{name}` names {id}, which is not live"
        ));
    };
    if c.life.phase.known_dead() || c.life.phase == Phase::Launching {
        return Err(format!(
            "registry entry `{name}` returns {id}, which is {}",
            c.life.phase
        ));
    }
    Ok(())
}

/// Property 13: a late reply never answers a later request. Every answer kept for the
/// stepped child's callers came from the reply to that very request. (At most
/// `max_in_flight` answers are kept per child.)
fn late_reply_answers_nothing_later(s: &Supervisor, t: Stepped) -> Result<(), String> {
    for (id, end) in &s.children[&t.child].answers {
        if let RequestEnd::Answered { reply, .. } = end
            && reply != id
        {
            return Err(format!(
                "{id} to {} was answered by the reply to {reply}",
                t.child
            ));
        }
    }
    Ok(())
}

/// Property 14: every request ends exactly once: by its answer, its time-out, its caller
/// giving it up, or its child's end. The requests sent are those ended plus those still
/// waiting, and none is left waiting once our end of the child's channel is closed.
fn every_request_ends_once(s: &Supervisor, t: Stepped) -> Result<(), String> {
    let l = life(s, t);
    let waiting = l.open_requests().count() as u32;
    if l.requests_ended + waiting != l.requests_sent {
        return Err(format!(
            "{} was sent {} requests, but {} ended and {waiting} wait",
            t.child, l.requests_sent, l.requests_ended
        ));
    }
    if !l.channel_open && waiting > 0 {
        return Err(format!(
            "{waiting} requests to {} still wait after its channel closed",
            t.child
        ));
    }
    // A deadline armed for a request that no longer waits would end it a second time.
    if let Some((id, _)) = l
        .timed
        .iter()
        .find(|(id, _)| !l.open_requests().any(|r| r.id == *id))
    {
        return Err(format!(
            "{id} to {} has a deadline armed but no longer waits",
            t.child
        ));
    }
    Ok(())
}
