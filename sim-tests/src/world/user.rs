//! The user's calls on single children (`Scenario::user`): a cancel, a hard stop, a request
//! given up; and what each must bring about (properties 14, 16 and 17).

use harrow_model::ChildId;

use super::{Body, World, kid_name};
use crate::scenario::UserAct;
use crate::user::{ended, give_up_problem, late_stop, stop_bound, waiting_request};

impl World<'_> {
    /// Whether the user can make call `k` now: once, while the root lives and its body runs,
    /// on a child already spawned; a request is given up while one to that child waits.
    pub(super) fn user_enabled(&self, k: usize) -> bool {
        let act = self.sc.user[k];
        let spawned = act.child() < self.st.kids.len();
        let open = !self.st.root_dead && self.st.body != Body::Done;
        let possible = match act {
            UserAct::Cancel { .. } | UserAct::HardStop { .. } => true,
            UserAct::GiveUp { child } => {
                waiting_request(&self.st.sup, ChildId(child as u32)).is_some()
            }
        };
        !self.st.user_done.contains(&k) && open && spawned && possible
    }

    /// Makes the user's call `k`.
    pub(super) fn user_call(&mut self, k: usize) {
        self.st.user_done.insert(k);
        let act = self.sc.user[k];
        let i = act.child();
        let child = ChildId(i as u32);
        let result = match act {
            UserAct::Cancel { .. } => {
                self.note("user", || format!("cancel {}", kid_name(i)));
                self.with_driver(None, |d| d.cancel(child))
            }
            UserAct::HardStop { .. } => {
                self.note("user", || format!("hard-stop {}", kid_name(i)));
                self.with_driver(None, |d| d.hard_stop(child))
            }
            UserAct::GiveUp { .. } => return self.give_up(i),
        };
        match result {
            // A hard stop is what allows force (property 16): a cancel after it keeps it.
            Ok(()) => {
                let kid = &mut self.st.kids[i];
                if kid.stop_asked.is_none() || matches!(act, UserAct::HardStop { .. }) {
                    kid.stop_asked = Some((act, self.st.now));
                }
            }
            Err(e) => self.note("user", || format!("refused: {e}")),
        }
    }

    /// The caller of the first waiting request to child `i` gives it up: the request must
    /// end at once (property 14).
    fn give_up(&mut self, i: usize) {
        let child = ChildId(i as u32);
        let id = waiting_request(&self.st.sup, child).expect("enabled only while one waits");
        self.note("user", || format!("give up {id} to {}", kid_name(i)));
        let result = self.with_driver(None, |d| d.abandon_request(child, id));
        let problem = give_up_problem(&self.st.sup, kid_name(i), child, id, result);
        self.st.violations.extend(problem);
    }

    /// Whether the body may end: every child the user cancelled or hard-stopped has ended
    /// (the body waits for it, as a caller of `cancel` then `wait` does), and every request
    /// the user gives up has been given up, unless it ended first.
    pub(super) fn user_calls_over(&self) -> bool {
        self.sc.user.iter().enumerate().all(|(k, act)| {
            let child = ChildId(act.child() as u32);
            let done = self.st.user_done.contains(&k);
            if act.child() >= self.st.kids.len() {
                return true;
            }
            match act {
                UserAct::Cancel { .. } | UserAct::HardStop { .. } => {
                    done && ended(&self.st.sup, child)
                }
                UserAct::GiveUp { .. } => done || waiting_request(&self.st.sup, child).is_none(),
            }
        })
    }

    /// Property 17: child `i` has ended; if the user stopped it, within the bound
    /// ([`stop_bound`]).
    pub(super) fn stop_carried_out(&mut self, i: usize) {
        let Some((act, asked)) = self.st.kids[i].stop_asked else {
            return;
        };
        let took = self.st.now.saturating_since(asked);
        let bound = stop_bound(self.sc, act, self.st.kids[i].method);
        self.st
            .violations
            .extend(late_stop(kid_name(i), took, bound));
    }
}
