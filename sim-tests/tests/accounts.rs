//! Property 19, the nursery's bounds and accounts (`scenario::limits`): what a run of each
//! scenario does, and that each of the report's checks can fail.

use harrow_model::ChildId;
use harrow_sim::accounts::report_problems;
use harrow_sim::run;
use harrow_sim::scenario::{self, Scenario};

fn shipped(name: &str) -> Scenario {
    scenario::limits()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a shipped limits scenario")
}

#[test]
fn requests_past_the_limit_are_refused_exactly_there() {
    let r = run::deterministic(&shipped("request-limit"));
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    let sent = r
        .trace
        .iter()
        .filter(|l| l.contains("user      request req#"));
    let refused = r.trace.iter().filter(|l| l.contains("request refused"));
    // Three requests to each of two children with a limit of two: two go out to each, the
    // third is refused.
    assert_eq!(sent.count(), 4, "{}", r.trace.join("\n"));
    let refused: Vec<&String> = refused.collect();
    assert_eq!(refused.len(), 2, "{}", r.trace.join("\n"));
    assert!(
        refused[0].contains("already has 2 requests"),
        "{}",
        refused[0]
    );
}

#[test]
fn the_window_keeps_the_last_retired_and_the_report_counts_the_rest() {
    let sc = shipped("ended-window");
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    let report = &r.report;
    // Three children retired, one record kept: the last spawned.
    let listed: Vec<ChildId> = report.children.iter().map(|c| c.child).collect();
    assert_eq!(listed, vec![ChildId(2)], "{report:?}");
    assert_eq!(report.retired.total(), 3, "{report:?}");
    assert!(report.errors_dropped >= 1, "{report:?}");
    let failures = report.errors.len() as u64 + report.errors_dropped;
    let retired = [ChildId(0), ChildId(1), ChildId(2)];
    assert_eq!(
        report_problems(report, 3, &retired, failures, 1),
        Vec::<String>::new()
    );

    // Each doctored account is caught.
    let mut kept_too_many = report.clone();
    kept_too_many.children.insert(0, report.children[0].clone());
    kept_too_many.children[0].child = ChildId(1);
    let p = report_problems(&kept_too_many, 3, &retired, failures, 1);
    assert!(
        p[0].contains("lists child#1, child#2 but must list child#2"),
        "{p:?}"
    );
    let mut miscounted = report.clone();
    miscounted.retired.exited += 1;
    let p = report_problems(&miscounted, 3, &retired, failures, 1);
    assert!(p[0].contains("counts 4 children retired, but 3"), "{p:?}");
    let mut lost = report.clone();
    lost.errors_dropped -= 1;
    let p = report_problems(&lost, 3, &retired, failures, 1);
    assert!(p[0].contains("but the user was told of"), "{p:?}");
    let p = report_problems(report, 3, &retired[..2], failures, 1);
    assert!(
        p.iter()
            .any(|p| p.contains("but must list child#1, child#2")),
        "{p:?}"
    );
}

#[test]
fn an_error_of_a_child_not_listed_is_caught() {
    // A window as large as the nursery keeps every record, and the failed children's errors.
    let sc = Scenario {
        max_ended: Some(3),
        ..shipped("ended-window")
    };
    let r = run::deterministic(&sc);
    assert!(r.holds(), "{:?}\n{}", r.problems, r.trace.join("\n"));
    assert_eq!(r.report.errors_dropped, 0, "{:?}", r.report);
    assert!(
        r.report.errors.iter().any(|e| e.child == ChildId(0)),
        "{:?}",
        r.report
    );
    let failures = r.report.errors.len() as u64;
    let retired = [ChildId(0), ChildId(1), ChildId(2)];
    assert_eq!(
        report_problems(&r.report, 3, &retired, failures, 3),
        Vec::<String>::new()
    );
    let mut report = r.report.clone();
    report.children.retain(|c| c.child != ChildId(0));
    let p = report_problems(&report, 3, &retired, failures, 3);
    assert!(
        p.iter()
            .any(|p| p.contains("keeps an error of child#0, which it does not list")),
        "{p:?}"
    );
}
