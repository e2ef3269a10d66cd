//! Property 19: the nursery's bounds hold exactly, and its accounts add up. The pure world and
//! the simulated OS check it in the same words.
//!
//! A bound that refuses too early loses a user's work; one that refuses too late is no bound.
//! The request limit (`Limits::max_in_flight`) must refuse a request exactly when its child
//! already holds that many; the window of retired records (`Limits::max_ended`) must keep
//! exactly the last-spawned ones; and what it drops must still be counted: the teardown
//! report lists every child held and every record kept, its tally counts every child retired,
//! and its errors plus those dropped are every failure the user was told of.

use harrow_model::error::ChildOpError;
use harrow_model::supervisor::TeardownReport;
use harrow_model::{ChildId, RequestId};

/// The problem, if the `k`-th request of the body's one burst to `child` (which held none
/// before it) was refused as over the limit though `accepted` went out before it, fewer than
/// `max`, or went out past the limit.
pub fn request_limit(
    child: ChildId,
    accepted: u32,
    max: u32,
    result: &Result<RequestId, ChildOpError>,
) -> Option<String> {
    let refused = matches!(result, Err(ChildOpError::TooManyInFlight { .. }));
    match (accepted >= max, refused) {
        (true, false) => Some(format!(
            "{child} already held {accepted} requests, its limit of {max}, but the next one was \
             not refused as over it ({}) (property 19)",
            show(result)
        )),
        (false, true) => Some(format!(
            "a request to {child} was refused as over its limit of {max}, but it held only \
             {accepted} (property 19)"
        )),
        _ => None,
    }
}

fn show(result: &Result<RequestId, ChildOpError>) -> String {
    match result {
        Ok(id) => format!("{id} went out"),
        Err(e) => format!("refused: {e}"),
    }
}

/// The children whose records the nursery must keep once `retired` (in any order) are
/// retired: the `max_ended` of them spawned last. Every child not retired is kept too.
pub fn kept_window(retired: &[ChildId], max_ended: u32) -> Vec<ChildId> {
    let mut kept = retired.to_vec();
    kept.sort_unstable();
    let drop = kept.len().saturating_sub(max_ended as usize);
    kept.drain(..drop);
    kept
}

/// The problems of a closed nursery's report, given the children it spawned (`spawned` ids
/// from zero), those it retired, the failure events the user took, and `max_ended`.
pub fn report_problems(
    report: &TeardownReport,
    spawned: usize,
    retired: &[ChildId],
    failures: u64,
    max_ended: u32,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed_expected: Vec<ChildId> = (0..spawned as u32)
        .map(ChildId)
        .filter(|c| !retired.contains(c))
        .chain(kept_window(retired, max_ended))
        .collect();
    listed_expected.sort_unstable();
    let listed: Vec<ChildId> = report.children.iter().map(|c| c.child).collect();
    if listed != listed_expected {
        problems.push(format!(
            "the report lists {} but must list {}: every child held, and the last {max_ended} \
             retired (property 19)",
            ids(&listed),
            ids(&listed_expected)
        ));
    }
    if report.retired.total() != retired.len() as u64 {
        problems.push(format!(
            "the report counts {} children retired, but {} were (property 19)",
            report.retired.total(),
            retired.len()
        ));
    }
    if let Some(e) = report.errors.iter().find(|e| !listed.contains(&e.child)) {
        problems.push(format!(
            "the report keeps an error of {}, which it does not list: {e} (property 19)",
            e.child
        ));
    }
    let accounted = report.errors.len() as u64 + report.errors_dropped;
    if accounted != failures {
        problems.push(format!(
            "the report accounts for {accounted} errors ({} kept, {} dropped), but the user \
             was told of {failures} failures (property 19)",
            report.errors.len(),
            report.errors_dropped
        ));
    }
    problems
}

fn ids(children: &[ChildId]) -> String {
    if children.is_empty() {
        return "none".into();
    }
    let all: Vec<String> = children.iter().map(|c| c.to_string()).collect();
    all.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_last_spawned_retired() {
        let r = [ChildId(3), ChildId(0), ChildId(2)];
        assert_eq!(kept_window(&r, 2), vec![ChildId(2), ChildId(3)]);
        assert_eq!(kept_window(&r, 5), vec![ChildId(0), ChildId(2), ChildId(3)]);
        assert_eq!(kept_window(&r, 0), Vec::<ChildId>::new());
    }

    #[test]
    fn a_refusal_is_right_only_at_the_limit() {
        let c = ChildId(0);
        let over = Err(ChildOpError::TooManyInFlight { child: c, max: 2 });
        assert!(request_limit(c, 2, 2, &over).is_none());
        assert!(
            request_limit(c, 1, 2, &over)
                .unwrap()
                .contains("held only 1")
        );
        assert!(
            request_limit(c, 2, 2, &Ok(RequestId(7)))
                .unwrap()
                .contains("req#7 went out")
        );
        assert!(request_limit(c, 0, 2, &Ok(RequestId(0))).is_none());
        // Refused for another reason below the limit: not this property's business.
        let gone = Err(ChildOpError::AlreadyFinished(c));
        assert!(request_limit(c, 0, 2, &gone).is_none());
    }
}
