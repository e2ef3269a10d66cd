//! The user's calls on single children (`Scenario::user`) as the root's body makes them over
//! the simulated OS, once its requests are sent: each cancel or hard stop waited for, each
//! checked against what it must bring about (properties 14 and 17, `crate::user`).

use harrow_model::ChildId;
use harrow_model::driver::{DriveError, Driver, Os};

use super::BodyEnv;
use crate::scenario::{Scenario, UserAct};
use crate::user::{ended, give_up_problem, late_stop, stop_bound, waiting_request};

/// Makes the scenario's calls in order; what they broke goes to `problems`.
pub(super) fn user_calls<O: Os + BodyEnv>(
    d: &mut Driver<O>,
    sc: &Scenario,
    problems: &mut Vec<String>,
) -> Result<(), DriveError> {
    for &act in &sc.user {
        let child = ChildId(act.child() as u32);
        let Some(method) = d.sup.lifecycle(child).map(|l| l.method) else {
            continue;
        };
        match act {
            UserAct::Cancel { .. } | UserAct::HardStop { .. } => {
                let asked = d.os.now();
                let result = if matches!(act, UserAct::Cancel { .. }) {
                    d.cancel(child)
                } else {
                    d.os.hard_stop_asked(child);
                    d.hard_stop(child)
                };
                if result.is_err() {
                    continue;
                }
                match d.run_until(|d| ended(&d.sup, child)) {
                    Ok(()) | Err(DriveError::NurseryClosed) => {}
                    Err(e) => return Err(e),
                }
                let took = d.os.now().saturating_since(asked);
                problems.extend(late_stop(child, took, stop_bound(sc, act, method)));
            }
            UserAct::GiveUp { .. } => {
                if let Some(id) = waiting_request(&d.sup, child) {
                    let result = d.abandon_request(child, id);
                    problems.extend(give_up_problem(&d.sup, child, child, id, result));
                }
            }
        }
    }
    Ok(())
}
