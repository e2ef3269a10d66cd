//! The explicit search's wide scopes: many children, every behaviour, every fault.
//!
//! Two families, each scenario small enough to search whole in under a minute here:
//! - **pairs**: three children of one spawn method, one with behaviour `a` and two with `b`,
//!   for every pair `a`, `b` of behaviours (unordered; `a` may equal `b`), under no fault and
//!   each single fault of loom's matrix (SIGKILL to the first child, SIGINT to the root, the
//!   root's death), for every kind of spawn method (`pair-<method>-<fault>-<a>+2x<b>`);
//! - **fours**: four children of one spawn method and one behaviour, for every behaviour but
//!   `reports-failure-twice` (more than 2,000,000 classes of states) and every kind of spawn
//!   method (`four-<method>-<behaviour>`).
//!
//! The kinds of spawn method are a process (`Exec`) and a thread. In the pure world the three
//! process methods differ only in what a fork leaves behind under flaws F3 and F6, so with the
//! shipped protocol their state spaces are one (loom's matrix pins equal counts for them, and
//! `tests/explicit_wide.rs` checks it on a sample of these scopes).
//!
//! Every daemon gets one request; the body finishes normally. Their reachable-state counts
//! (with symmetry reduction) are pinned in [`PINNED`]; CI searches the [`ci`] subset, and
//! `harrow check --wide` all of them, each against its pin.

use harrow_model::SpawnMethod;
use harrow_model::wire::Role;

use crate::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};

/// The pinned reachable-state counts: `name states` per line.
pub const PINNED: &str = include_str!("../wide-states.txt");

/// Where [`PINNED`] lives, from the workspace's root.
pub const PINS_PATH: &str = "sim-tests/wide-states.txt";

/// A process and a thread: the spawn methods whose children differ in the pure world.
const METHODS: [SpawnMethod; 2] = [SpawnMethod::Exec, SpawnMethod::Thread];

/// Every behaviour, by the name the scenarios use.
pub fn behaviours() -> Vec<(&'static str, Behaviour)> {
    let text = |s: &str| s.to_string();
    vec![
        ("serves", Behaviour::Serves),
        ("blocks", Behaviour::Blocks { ms: 700 }),
        ("blocks-forever", Behaviour::BlocksForever),
        (
            "crashes-before-handshake",
            Behaviour::CrashesBeforeHandshake { code: 3 },
        ),
        (
            "crashes-after-handshake",
            Behaviour::CrashesAfterHandshake { code: 4 },
        ),
        (
            "fails-main",
            Behaviour::FailsMain {
                message: text("boom"),
            },
        ),
        ("fails-requests", Behaviour::FailsRequests),
        (
            "panics-in-requests",
            Behaviour::PanicsInRequests {
                message: text("boom"),
            },
        ),
        (
            "fails-actor",
            Behaviour::FailsActor {
                message: text("oops"),
            },
        ),
        (
            "reports-failure-twice",
            Behaviour::ReportsFailureTwice {
                message: text("again"),
            },
        ),
        ("leaks-channel", Behaviour::LeaksChannel { hold_ms: 2000 }),
    ]
}

/// Child `i`: run-to-result if its main function is what fails, else a daemon.
fn child(i: usize, method: SpawnMethod, behaviour: &Behaviour) -> ChildPlan {
    let role = match behaviour {
        Behaviour::FailsMain { .. } => Role::RunToResult,
        _ => Role::Daemon,
    };
    ChildPlan {
        role,
        ..ChildPlan::daemon(&format!("k{i}"), method, behaviour.clone())
    }
}

fn scenario(name: String, children: Vec<ChildPlan>, fault: Option<Fault>) -> Scenario {
    Scenario {
        requests: 1,
        faults: fault.into_iter().collect(),
        ..Scenario::new(&name, children, Ending::Finish)
    }
}

/// The faults of loom's matrix, by name: none, SIGKILL to the first child, SIGINT, the
/// root's death.
fn faults() -> [(&'static str, Option<Fault>); 4] {
    [
        ("none", None),
        ("sigkill", Some(Fault::SigkillChild { child: 0 })),
        ("sigint", Some(Fault::SigintRoot)),
        ("parent-death", Some(Fault::ParentDeath)),
    ]
}

/// Three children, behaviours `a`, `b`, `b`, for every pair, fault and method.
pub fn pairs() -> Vec<Scenario> {
    let bs = behaviours();
    let mut out = Vec::new();
    for method in METHODS {
        let m = method.to_string().to_lowercase();
        for (f, fault) in faults() {
            // A thread child has no pid of its own to SIGKILL.
            if method == SpawnMethod::Thread && matches!(fault, Some(Fault::SigkillChild { .. })) {
                continue;
            }
            for (i, (a, ba)) in bs.iter().enumerate() {
                for (b, bb) in &bs[i..] {
                    let kids = vec![
                        child(0, method, ba),
                        child(1, method, bb),
                        child(2, method, bb),
                    ];
                    out.push(scenario(format!("pair-{m}-{f}-{a}+2x{b}"), kids, fault));
                }
            }
        }
    }
    out
}

/// Four children of one behaviour, for every behaviour that fits and every method.
pub fn fours() -> Vec<Scenario> {
    let mut out = Vec::new();
    for method in METHODS {
        let m = method.to_string().to_lowercase();
        for (b, behaviour) in behaviours() {
            if b == "reports-failure-twice" {
                continue;
            }
            let kids = (0..4).map(|i| child(i, method, &behaviour)).collect();
            out.push(scenario(format!("four-{m}-{b}"), kids, None));
        }
    }
    out
}

/// Both families.
pub fn all() -> Vec<Scenario> {
    let mut out = pairs();
    out.extend(fours());
    out
}

/// The subset CI searches: the pairs of process children with no fault in which the
/// single child serves, and four process children of each behaviour whose search stays
/// under 100,000 states.
pub fn ci() -> Vec<Scenario> {
    let small = [
        "serves",
        "blocks",
        "blocks-forever",
        "crashes-before-handshake",
        "crashes-after-handshake",
        "fails-requests",
        "leaks-channel",
    ];
    all()
        .into_iter()
        .filter(|s| {
            s.name.starts_with("pair-exec-none-serves+")
                || small.iter().any(|b| s.name == format!("four-exec-{b}"))
        })
        .collect()
}

/// The pinned count of scenario `name` in `pins` (lines of `name states`), if it has one.
pub fn pinned_in(pins: &str, name: &str) -> Option<u64> {
    pins.lines().find_map(|l| {
        let (n, states) = l.split_once(' ')?;
        (n == name).then(|| states.trim().parse().ok())?
    })
}

/// The pins for these searches' counts, in the format of [`PINNED`].
pub fn render_pins(counts: &[(String, u64)]) -> String {
    counts.iter().map(|(n, s)| format!("{n} {s}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every wide scenario is well formed, named once, and pinned; every pin names one.
    #[test]
    fn every_wide_scenario_has_one_pin_and_every_pin_a_scenario() {
        let names: Vec<String> = all().into_iter().map(|s| s.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "two wide scenarios share a name");
        for sc in all() {
            sc.check().expect("a wide scenario is well formed");
            assert!(
                pinned_in(PINNED, &sc.name).is_some(),
                "`{}` has no pin in {PINS_PATH}",
                sc.name
            );
        }
        for line in PINNED.lines() {
            let name = line.split(' ').next().unwrap_or("");
            assert!(
                names.iter().any(|n| n == name),
                "{PINS_PATH} pins `{name}`, no wide scenario"
            );
        }
        assert!(ci().len() < names.len() / 10, "CI's subset is a small part");
    }

    #[test]
    fn a_pin_is_read_by_its_whole_name() {
        let pins = "four-exec-serves 10\nfour-exec-serves-x 20\n";
        assert_eq!(pinned_in(pins, "four-exec-serves"), Some(10));
        assert_eq!(pinned_in(pins, "four-exec-serves-x"), Some(20));
        assert_eq!(pinned_in(pins, "four-exec"), None);
        assert_eq!(
            render_pins(&[("a".into(), 1), ("b".into(), 2)]),
            "a 1\nb 2\n"
        );
    }
}
