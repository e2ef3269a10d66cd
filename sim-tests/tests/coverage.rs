//! The engines' union coverage of the protocol tables, pinned: a change that lowers it fails,
//! naming the cells lost. The engines run in fast configurations (loom without preemption,
//! shuttle with eight random schedules, the whole explicit search) over their shipped-protocol
//! scenarios; `harrow check --coverage` reports the full configurations.

use harrow_model::coverage::Coverage;
use harrow_model::supervisor::{InputKind, Phase};
use harrow_model::wire::MessageKind;
use harrow_sim::coverage::{self, Cell};

/// The cells the fast configurations reach, one a line.
const PINNED: &str = include_str!("coverage_pinned.txt");

fn fast_union() -> Coverage {
    let mut union = Coverage::default();
    for (_, c) in coverage::fast() {
        union.merge(&c);
    }
    union
}

#[test]
fn the_engines_reach_every_pinned_cell_and_no_unreachable_one() {
    let union = fast_union();
    let wrong = coverage::contradictions(&union);
    assert!(
        wrong.is_empty(),
        "cells listed unreachable were reached (fix the reason or the protocol): {}",
        wrong
            .iter()
            .map(Cell::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    if let Err(msg) = coverage::against_pin(PINNED, &union) {
        panic!("{msg}\n{}", coverage::render(&coverage::fast()));
    }
}

#[test]
fn a_lowered_coverage_fails_the_pin_naming_the_cells_lost() {
    let union = fast_union();
    let dropped = Cell::Lifecycle(Phase::Serving, InputKind::Message(MessageKind::Reply));
    assert!(dropped.reached_in(&union));
    let mut fewer = Coverage::default();
    for c in Cell::all().filter(|c| c.reached_in(&union) && *c != dropped) {
        c.record(&mut fewer);
    }
    let msg = coverage::against_pin(PINNED, &fewer).unwrap_err();
    assert!(
        msg.starts_with("coverage lowered: 1 pinned cells no longer reached:\n  lifecycle Serving × Message(Reply)\n"),
        "{msg}"
    );
    assert!(!msg.contains("the pin lacks"), "{msg}");
}
