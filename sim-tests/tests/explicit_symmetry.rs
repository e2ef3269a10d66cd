//! Symmetry reduction in the explicit search is sound and bites: it loses no class of states,
//! every flaw is found the same with it on or off, children that are not interchangeable
//! are not merged, and the reduction it gives is pinned.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use harrow_model::{ChildId, Flaw, SpawnMethod};
use harrow_sim::check::{properties_named, shows};
use harrow_sim::explicit::{self, Symmetry};
use harrow_sim::flaws::{self, Engine};
use harrow_sim::scenario::{self, Behaviour, ChildPlan, Ending, Scenario};
use harrow_sim::world::World;

const BOUND: usize = explicit::MAX_STATES;

/// Shipped-protocol scenarios with two or three interchangeable children.
fn symmetric() -> Vec<Scenario> {
    let mut out: Vec<Scenario> = scenario::loom_matrix()
        .into_iter()
        .filter(|s| s.children.len() == 2 && !s.name.contains("sigkill"))
        .collect();
    out.push(flaws::fixed(&flaws::case_for(Flaw::SerialTeardown)));
    let wide = harrow_sim::wide::all();
    for name in [
        "pair-exec-sigint-blocks+2xfails-requests",
        "pair-exec-parent-death-crashes-before-handshake+2xpanics-in-requests",
        "pair-thread-sigint-serves+2xblocks",
        "four-exec-crashes-before-handshake",
    ] {
        let sc = wide
            .iter()
            .find(|s| s.name == name)
            .expect("a wide scenario");
        out.push(sc.clone());
    }
    out
}

/// The classes of the states a search expands. A state's class is named by the least, over
/// every exchange of interchangeable children, of the exchanged state's text with its request
/// ids renamed in order of appearance: request ids are names the protocol only compares,
/// handed out in the order the body sends, so with two interchangeable children exchanged the
/// same requests carry each other's ids. (The search's own representative renames no request
/// ids, which live in the child runtimes too; it may expand two states of one class.)
fn classes(sc: &Scenario, symmetry: Symmetry) -> HashSet<u64> {
    let mut seen = HashSet::new();
    explicit::explore(sc, BOUND, symmetry, |w: &World<'_>| {
        let least = exchanges(&w.symmetric_classes())
            .iter()
            .map(|to| {
                let st = if to.is_empty() {
                    Some(w.state().clone())
                } else {
                    w.permuted(to)
                };
                renamed_requests(&format!("{:?}", st.expect("a permutable state")))
            })
            .min()
            .expect("the identity is an exchange");
        let mut h = DefaultHasher::new();
        least.hash(&mut h);
        seen.insert(h.finish());
    });
    seen
}

/// Every permutation within each class, as the map of the ids it moves.
fn exchanges(classes: &[Vec<usize>]) -> Vec<BTreeMap<ChildId, ChildId>> {
    let mut out = vec![BTreeMap::new()];
    for class in classes {
        let mut next = Vec::new();
        for to in &out {
            for order in orders(class) {
                let mut to = to.clone();
                for (&from, &slot) in order.iter().zip(class) {
                    if from != slot {
                        to.insert(ChildId(from as u32), ChildId(slot as u32));
                    }
                }
                next.push(to);
            }
        }
        out = next;
    }
    out
}

/// Every order of `items`.
fn orders(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in orders(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

/// `text` with each `RequestId(n)` renamed to its rank of first appearance.
fn renamed_requests(text: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("RequestId(") {
        let (head, tail) = rest.split_at(at + "RequestId(".len());
        let end = tail.find(')').expect("a closed RequestId");
        let id = &tail[..end];
        let rank = names.iter().position(|n| *n == id).unwrap_or_else(|| {
            names.push(id);
            names.len() - 1
        });
        out.push_str(head);
        out.push_str(&rank.to_string());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Every class of states the full search reaches, the reduced search reaches too.
#[test]
fn symmetry_loses_no_class_of_states() {
    for sc in symmetric() {
        let on = classes(&sc, Symmetry::On);
        let off = classes(&sc, Symmetry::Off);
        let lost = off.difference(&on).count();
        assert_eq!(lost, 0, "`{}`: symmetry lost {lost} classes", sc.name);
        assert_eq!(
            on.len(),
            off.len(),
            "`{}`: the reduction saw a class the full search did not",
            sc.name
        );
    }
}

#[test]
fn request_ids_are_renamed_by_first_appearance() {
    let a = renamed_requests("x RequestId(7) y RequestId(3) z RequestId(7)");
    assert_eq!(a, "x RequestId(0) y RequestId(1) z RequestId(0)");
    assert_eq!(
        a,
        renamed_requests("x RequestId(3) y RequestId(9) z RequestId(3)")
    );
    assert_eq!(orders(&[1, 2, 3]).len(), 6);
    assert_eq!(exchanges(&[vec![0, 1], vec![2, 3, 4]]).len(), 12);
}

/// Each single-child flaw scenario with its child doubled: two interchangeable children.
fn twinned(sc: &Scenario) -> Option<Scenario> {
    let [only] = sc.children.as_slice() else {
        return None;
    };
    let twin = ChildPlan {
        name: format!("{}-twin", only.name),
        ..only.clone()
    };
    Some(Scenario {
        name: format!("{}-twinned", sc.name),
        children: vec![only.clone(), twin],
        ..sc.clone()
    })
}

/// What a search found, as the properties its counterexample names and its length.
fn verdict(sc: &Scenario, symmetry: Symmetry) -> Option<(Vec<u8>, usize, String)> {
    let s = explicit::search_with(sc, BOUND, symmetry);
    assert!(!s.truncated, "`{}` was cut short", sc.name);
    s.counterexample.map(|c| {
        let text: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
        let text = text.join("\n");
        let mut named = properties_named(&text);
        named.sort_unstable();
        named.dedup();
        (named, c.schedule.len(), text)
    })
}

/// Every flaw the explicit engine is named for is found with symmetry on as with it off:
/// the same properties broken, by a counterexample of the same (shortest) length; and so
/// for its scenario with the child doubled, where the reduction merges states.
#[test]
fn symmetry_finds_every_flaw_as_the_full_search_does() {
    let mut twins = 0;
    for case in flaws::catalogue()
        .into_iter()
        .filter(|c| c.engines.contains(&Engine::Explicit))
    {
        let on = verdict(&case.scenario, Symmetry::On);
        let (named, _, text) = on
            .clone()
            .unwrap_or_else(|| panic!("{} is found", case.flaw));
        assert!(
            shows(case.flaw, &text),
            "{} found by the wrong property: {text}",
            case.flaw
        );
        assert_eq!(on, verdict(&case.scenario, Symmetry::Off), "{}", case.flaw);
        assert!(!named.is_empty());
        if let Some(sc) = twinned(&case.scenario) {
            let on = verdict(&sc, Symmetry::On);
            let off = verdict(&sc, Symmetry::Off);
            assert_eq!(
                on.as_ref().map(|v| (&v.0, v.1)),
                off.as_ref().map(|v| (&v.0, v.1)),
                "`{}`",
                sc.name
            );
            twins += 1;
        }
    }
    assert!(twins >= 10, "only {twins} flaw scenarios were twinned");
}

/// Where no two children are interchangeable (different methods, or a fault aimed at one),
/// the search is the full one, state for state.
#[test]
fn children_that_differ_are_not_merged() {
    let methods = [
        SpawnMethod::Exec,
        SpawnMethod::ForkServer,
        SpawnMethod::Thread,
    ];
    let three = Scenario {
        requests: 1,
        ..Scenario::new(
            "three-methods-fail-actor",
            methods
                .iter()
                .enumerate()
                .map(|(i, &m)| {
                    ChildPlan::daemon(
                        &format!("k{i}"),
                        m,
                        Behaviour::FailsActor {
                            message: "oops".into(),
                        },
                    )
                })
                .collect(),
            Ending::Fail,
        )
    };
    let aimed = scenario::loom_matrix()
        .into_iter()
        .find(|s| s.name == "matrix-exec-2-sigkill")
        .expect("in the matrix");
    for sc in [three, aimed] {
        let on = explicit::search_with(&sc, BOUND, Symmetry::On);
        let off = explicit::search_with(&sc, BOUND, Symmetry::Off);
        assert_eq!(
            (on.states, on.transitions),
            (off.states, off.transitions),
            "`{}`",
            sc.name
        );
    }
}

/// The reduction symmetry gives, pinned: states with it off, with it on, and their ratio.
#[test]
fn symmetry_reduction_is_pinned() {
    let mut table = String::new();
    for sc in symmetric() {
        let on = explicit::search_with(&sc, BOUND, Symmetry::On);
        let off = explicit::search_with(&sc, BOUND, Symmetry::Off);
        assert!(
            on.states < off.states,
            "`{}`: the reduction merged nothing",
            sc.name
        );
        table.push_str(&format!(
            "{:<68} {:>8} without {:>8} with  x{:.2}\n",
            sc.name,
            off.states,
            on.states,
            off.states as f64 / on.states as f64
        ));
    }
    insta::assert_snapshot!("symmetry_reduction", table);
}
