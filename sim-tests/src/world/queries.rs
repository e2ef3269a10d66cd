//! Property 18: the nursery's answers to the user's queries agree with its events. A user
//! of the backend waits on them (`live_count`, `has_result`, `peek_reply`, `requests_held`,
//! `teardown_cause`, `errors`, `name`): a query that lies hangs or misleads its caller though
//! every event is right. The world asks each query where its answer is known from the events.

use harrow_model::supervisor::NurseryPhase;
use harrow_model::{ChildId, RequestId};

use super::{World, kid_name};
use crate::accounts;

impl World<'_> {
    /// Records a broken query's problem.
    fn query_lies(&mut self, what: String) {
        self.st.violations.push(format!(
            "{what}: the nursery's answer disagrees with its events (property 18)"
        ));
    }

    /// After each step of the parent: as many children live as were spawned and not
    /// retired; each live one is known by its plan's name; teardown has a cause once the
    /// nursery left `Open`, and only then.
    pub(super) fn check_queries(&mut self) {
        let sup = &self.st.sup;
        let live = self.st.kids.iter().filter(|k| !k.retired).count();
        let mut lies = Vec::new();
        if sup.live_count() != live {
            lies.push(format!(
                "live_count() is {}, but {live} children are spawned and not retired",
                sup.live_count()
            ));
        }
        // Property 19: the retired children's records kept are the last-spawned ones.
        let retired: Vec<ChildId> = (0..self.st.kids.len())
            .filter(|&i| self.st.kids[i].retired)
            .map(|i| ChildId(i as u32))
            .collect();
        let kept = accounts::kept_window(&retired, sup.config().limits.max_ended);
        let mut window = Vec::new();
        for (i, kid) in self.st.kids.iter().enumerate() {
            let plan = &self.sc.children[kid.plan].name;
            let name = sup.name(ChildId(i as u32));
            let known = !kid.retired || kept.contains(&ChildId(i as u32));
            if known && name != Some(plan.as_str()) {
                lies.push(format!("name({}) is {name:?}, not `{plan}`", kid_name(i)));
            }
            if !known && name.is_some() {
                window.push(format!(
                    "name({}) is {name:?}, but its record is older than the last {} retired \
                     and must be dropped (property 19)",
                    kid_name(i),
                    sup.config().limits.max_ended
                ));
            }
        }
        let tearing_down = sup.phase() != NurseryPhase::Open;
        if sup.teardown_cause().is_some() != tearing_down {
            lies.push(format!(
                "teardown_cause() is {:?} while the nursery is {:?}",
                sup.teardown_cause(),
                sup.phase()
            ));
        }
        for what in lies {
            self.query_lies(what);
        }
        self.st.violations.extend(window);
    }

    /// A request ended: before the user claims its end, `peek_reply` shows that end and
    /// `requests_held` counts it (if its child is live); after, neither does.
    pub(super) fn claim_reply_checked(
        &mut self,
        child: ChildId,
        id: RequestId,
    ) -> Option<harrow_model::supervisor::RequestEnd> {
        let peeked = self.st.sup.peek_reply(child, id).cloned();
        let held = self.st.sup.requests_held();
        let end = self.st.sup.claim_reply(child, id);
        let held_after = self.st.sup.requests_held();
        if peeked != end {
            self.query_lies(format!(
                "peek_reply({child}, {id}) was {peeked:?}, but the claim took {end:?}"
            ));
        }
        if self.st.sup.peek_reply(child, id).is_some() {
            self.query_lies(format!(
                "peek_reply({child}, {id}) still shows an end once it was claimed"
            ));
        }
        // Property 19: nothing is kept for a caller who stopped listening; a kept give-up
        // would count against the child's limit until a claim that never comes.
        if end == Some(harrow_model::supervisor::RequestEnd::Abandoned) {
            self.st.violations.push(format!(
                "{id} to {child} was given up, but its end was kept for a claim: its caller \
                 stopped listening, so nothing may be kept for it (property 19)"
            ));
        }
        // A retired child's answers are kept apart from what the live children hold.
        let live = !self.st.kids[child.0 as usize].retired;
        if end.is_some() && live && held_after + 1 != held {
            self.query_lies(format!(
                "requests_held() went from {held} to {held_after} when the user claimed {id}'s end"
            ));
        }
        end
    }

    /// Across a step, the teardown's cause changes only from none to one, or from a clean
    /// body exit to an error: the report names the first thing that went wrong, which a
    /// later failure in the teardown it started must not hide.
    pub(super) fn cause_kept(&mut self, before: Option<harrow_model::supervisor::TeardownCause>) {
        let after = self.st.sup.teardown_cause();
        let upgrade = before.is_some_and(|b| !b.is_error()) && after.is_some_and(|a| a.is_error());
        if before.is_some() && after != before && !upgrade {
            self.st.violations.push(format!(
                "teardown_cause() went from {before:?} to {after:?}: once set, it changes only \
                 from a clean body exit to the first error (property 19)"
            ));
        }
    }

    /// After a step, the user claims the errors it reported: `claim_errors` hands out each
    /// once, in order, except those whose child's record the window has dropped since.
    pub(super) fn claim_errors_checked(&mut self, failed: Vec<harrow_model::ChildError>) {
        let sup = &mut self.st.sup;
        let expected: Vec<_> = failed
            .into_iter()
            .filter(|e| sup.name(e.child).is_some())
            .collect();
        let claimed = sup.claim_errors();
        if claimed != expected {
            let show = |errs: &[harrow_model::ChildError]| {
                let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                format!("[{}]", all.join("; "))
            };
            self.query_lies(format!(
                "claim_errors() handed out {}, but the step reported {} (of children still kept)",
                show(&claimed),
                show(&expected)
            ));
        }
    }

    /// A child error was reported: `errors` keeps it.
    pub(super) fn error_kept(&mut self, err: &harrow_model::ChildError) {
        // Unless the window dropped its child's record (and its errors) in the same step.
        let kept = self.st.sup.name(err.child).is_some();
        if kept && !self.st.sup.errors().contains(err) {
            self.query_lies(format!("errors() lacks the error just reported: {err}"));
        }
    }

    /// A run-to-result child finished: `has_result` says so until the user claims it.
    pub(super) fn claim_result_checked(
        &mut self,
        child: ChildId,
    ) -> Option<harrow_model::actor::Reply> {
        let had = self.st.sup.has_result(child);
        let result = self.st.sup.claim_result(child);
        if had != result.is_some() || self.st.sup.has_result(child) {
            self.query_lies(format!(
                "has_result({child}) was {had} before its claim and {} after, but the claim took {}",
                self.st.sup.has_result(child),
                if result.is_some() { "a result" } else { "none" }
            ));
        }
        result
    }
}
