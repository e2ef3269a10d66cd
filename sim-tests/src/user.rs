//! What the user's calls on single children (`Scenario::user`) must bring about, as the pure
//! world and the simulated OS check it: the bound on a stop's end (property 17), a request
//! given up ending at once (property 14), in the same words in both.

use std::fmt::Display;
use std::time::Duration;

use harrow_model::supervisor::{Phase, Supervisor};
use harrow_model::{ChildId, RequestId, SpawnMethod};

use crate::scenario::{Scenario, UserAct};

/// How long after the user's cancel or hard stop its child may end at most: `cancel_ack` plus
/// its grace for a cancel, nothing for a hard stop, each plus the `drain` bound as ε (a
/// reaped child's channel may take that long to reach end-of-file, as in teardown). With the
/// call's name, for the problem's text.
pub fn stop_bound(sc: &Scenario, act: UserAct, method: SpawnMethod) -> (&'static str, Duration) {
    let t = &sc.timeouts;
    let (what, bound) = match act {
        UserAct::Cancel { .. } => ("cancel", t.cancel_ack + t.grace(method)),
        UserAct::HardStop { .. } | UserAct::GiveUp { .. } => ("hard stop", Duration::ZERO),
    };
    (what, bound + t.drain)
}

/// Property 17's problem, if a stopped child took longer than the bound to end.
pub fn late_stop(
    who: impl Display,
    took: Duration,
    (what, bound): (&str, Duration),
) -> Option<String> {
    (took > bound).then(|| {
        format!("{who} ended {took:?} after the user's {what}, over its bound of {bound:?} (property 17)")
    })
}

/// The first request to `child` whose caller still waits for it.
pub fn waiting_request(sup: &Supervisor, child: ChildId) -> Option<RequestId> {
    let life = sup.lifecycle(child)?;
    life.in_flight.iter().find(|r| !r.ended).map(|r| r.id)
}

/// Whether `child`'s life is over, as its supervisor says (or forgotten, once retired).
pub fn ended(sup: &Supervisor, child: ChildId) -> bool {
    sup.lifecycle(child).is_none_or(|l| l.phase == Phase::Done)
}

/// Property 14's problem, if giving up `id` (which waited) failed or left it waiting.
pub fn give_up_problem<E: Display>(
    sup: &Supervisor,
    who: impl Display,
    child: ChildId,
    id: RequestId,
    result: Result<(), E>,
) -> Option<String> {
    match result {
        Err(e) => Some(format!(
            "giving up {id}, which still waited for {who}'s answer, was refused: {e} (property 14)"
        )),
        Ok(()) if waiting_request(sup, child) == Some(id) => Some(format!(
            "{id} to {who} was given up but still waits: a request given up ends at once \
             (property 14)"
        )),
        Ok(()) => None,
    }
}
