//! The wide scopes CI searches (a subset of `harrow check --wide`'s): every state holds, and
//! each search reaches exactly the number of states pinned for it.

use harrow_model::SpawnMethod;
use harrow_sim::explicit;
use harrow_sim::wide;

#[test]
fn explicit_wide_ci_scopes_hold_with_their_pinned_counts() {
    let mut states = 0;
    for sc in wide::ci() {
        let s = explicit::search(&sc, explicit::MAX_STATES);
        assert!(!s.truncated, "`{}` was cut short", sc.name);
        if let Some(cx) = &s.counterexample {
            let problems: Vec<String> = cx.problems.iter().map(|p| p.to_string()).collect();
            panic!(
                "`{}` breaks: {}\n{}",
                sc.name,
                problems.join("; "),
                cx.trace.join("\n")
            );
        }
        let pinned = wide::pinned_in(wide::PINNED, &sc.name);
        assert_eq!(
            Some(s.states as u64),
            pinned,
            "`{}`: reachable states against its pin",
            sc.name
        );
        println!("{:<56} {:>8} states {:>6.2}s", sc.name, s.states, s.seconds);
        states += s.states;
    }
    assert!(states > 100_000, "CI's wide scopes reach {states} states");
}

/// The three process methods have one state space in the pure world, so the wide scopes
/// search `Exec` for them: a sample of its scenarios reaches as many states by `Fork` and
/// `ForkServer`.
#[test]
fn the_process_methods_reach_the_same_number_of_states() {
    let sample = [
        "pair-exec-sigkill-blocks+2xcrashes-before-handshake",
        "pair-exec-parent-death-serves+2xleaks-channel",
        "four-exec-fails-requests",
    ];
    for name in sample {
        let exec = wide::all()
            .into_iter()
            .find(|s| s.name == name)
            .expect("a wide scenario");
        let states = |method: SpawnMethod| {
            let mut sc = exec.clone();
            for c in &mut sc.children {
                c.method = method;
            }
            explicit::search(&sc, explicit::MAX_STATES).states
        };
        let by_exec = states(SpawnMethod::Exec);
        assert_eq!(states(SpawnMethod::Fork), by_exec, "`{name}` by Fork");
        assert_eq!(
            states(SpawnMethod::ForkServer),
            by_exec,
            "`{name}` by ForkServer"
        );
    }
}
