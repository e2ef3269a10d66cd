//! `harrow check --coverage`: how much of the two protocol tables the engines exercised.
//!
//! The tables are the child lifecycle's [`Phase`] × [`InputKind`] and the child runtime's
//! [`ChildPhase`] × [`ChildInputKind`], both derived from the enums' `ALL` lists, so a new
//! phase or input shows up here by itself. A cell no run can reach is listed, with the reason,
//! in [`LIFECYCLE_UNREACHABLE`] or [`CHILD_UNREACHABLE`] (and nowhere else); every other cell
//! is reachable, and an engine's coverage is the share of those its runs reached. Only runs of
//! the shipped protocol count: a flaw changes the transitions.

use std::fmt::{self, Write as _};

use harrow_model::child::ChildPhase;
use harrow_model::coverage::{ChildInputKind, Coverage};
use harrow_model::supervisor::{InputKind, Phase};
use harrow_model::wire::MessageKind;

/// One cell of either table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    /// A cell of the child lifecycle's table (the parent's side).
    Lifecycle(Phase, InputKind),
    /// A cell of the child runtime's table.
    Child(ChildPhase, ChildInputKind),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Lifecycle(p, i) => write!(f, "lifecycle {p:?} × {i}"),
            Cell::Child(p, i) => write!(f, "child {p:?} × {i}"),
        }
    }
}

impl Cell {
    /// Every cell of both tables, lifecycle first, phase by phase.
    pub fn all() -> impl Iterator<Item = Cell> {
        let lifecycle = Phase::ALL.into_iter().flat_map(|p| {
            InputKind::ALL
                .into_iter()
                .map(move |i| Cell::Lifecycle(p, i))
        });
        let child = ChildPhase::ALL.into_iter().flat_map(|p| {
            ChildInputKind::ALL
                .into_iter()
                .map(move |i| Cell::Child(p, i))
        });
        lifecycle.chain(child)
    }

    /// Whether `coverage` reached it.
    pub fn reached_in(self, coverage: &Coverage) -> bool {
        match self {
            Cell::Lifecycle(p, i) => coverage.reached(p, i),
            Cell::Child(p, i) => coverage.child_reached(p, i),
        }
    }

    /// Records it in `coverage`.
    pub fn record(self, coverage: &mut Coverage) {
        match self {
            Cell::Lifecycle(p, i) => coverage.lifecycle_input(p, i),
            Cell::Child(p, i) => coverage.child_input(p, i),
        }
    }

    /// Why no run can reach it, if none can.
    pub fn unreachable(self) -> Option<&'static str> {
        match self {
            Cell::Lifecycle(p, i) => reason(LIFECYCLE_UNREACHABLE, p, i),
            Cell::Child(p, i) => reason(CHILD_UNREACHABLE, p, i),
        }
    }
}

/// Cells no run can reach: every phase listed × every input listed, and why.
#[derive(Clone, Copy, Debug)]
pub struct Unreachable<P: 'static, I: 'static> {
    /// The phases.
    pub phases: &'static [P],
    /// The inputs.
    pub inputs: Inputs<I>,
    /// Why none of these inputs can arrive in any of these phases.
    pub reason: &'static str,
}

/// Which inputs of a table a line of the unreachable tables is about.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<I: 'static> {
    /// These.
    Only(&'static [I]),
    /// Every input but these (so an input added later is counted in).
    AllBut(&'static [I]),
}

impl<I: PartialEq> Inputs<I> {
    fn contains(&self, i: &I) -> bool {
        match self {
            Inputs::Only(these) => these.contains(i),
            Inputs::AllBut(these) => !these.contains(i),
        }
    }
}

impl<I: fmt::Display> fmt::Display for Inputs<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |these: &[I]| these.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        match self {
            Inputs::Only(these) => write!(f, "{{{}}}", names(these).join(", ")),
            Inputs::AllBut([]) => f.write_str("every input"),
            Inputs::AllBut(these) => write!(f, "every input but {{{}}}", names(these).join(", ")),
        }
    }
}

fn reason<P: PartialEq, I: PartialEq>(
    table: &[Unreachable<P, I>],
    p: P,
    i: I,
) -> Option<&'static str> {
    table
        .iter()
        .find(|u| u.phases.contains(&p) && u.inputs.contains(&i))
        .map(|u| u.reason)
}

/// The child lifecycle's cells that no run of the shipped protocol can reach, with the reason:
/// the one place they are listed. (The lifecycle still answers them: its unit tests and the
/// `harrow table` snapshot pin those answers, for a driver or a peer that behaves otherwise.)
pub const LIFECYCLE_UNREACHABLE: &[Unreachable<Phase, InputKind>] = &[
    Unreachable {
        phases: &[Phase::Launching],
        inputs: Inputs::AllBut(&[InputKind::Launched, InputKind::LaunchFailed]),
        reason: "the driver carries out the Launch command as soon as spawn issues it and \
                 reports at once: no other input comes between",
    },
    Unreachable {
        phases: &[
            Phase::AwaitingHandshake,
            Phase::Serving,
            Phase::AwaitingCancelAck,
            Phase::AwaitingExit,
            Phase::AwaitingKilledExit,
            Phase::AwaitingReap,
            Phase::Draining,
            Phase::Done,
        ],
        inputs: Inputs::Only(&[InputKind::Launched, InputKind::LaunchFailed]),
        reason: "a launch is reported once, answering the Launch command, and only that report \
                 moves a child out of Launching",
    },
    Unreachable {
        phases: &[
            Phase::AwaitingHandshake,
            Phase::Serving,
            Phase::AwaitingCancelAck,
            Phase::AwaitingExit,
            Phase::AwaitingKilledExit,
            Phase::Draining,
        ],
        inputs: Inputs::Only(&[InputKind::Reaped, InputKind::ReapFailed]),
        reason: "a reap is ordered only on the exit, which moves the child to AwaitingReap (or \
                 keeps one given up on in Done), and the driver reports it at once",
    },
    Unreachable {
        phases: &[Phase::AwaitingReap],
        inputs: Inputs::AllBut(&[
            InputKind::Launched,
            InputKind::LaunchFailed,
            InputKind::Reaped,
            InputKind::ReapFailed,
        ]),
        reason: "the driver carries out the Reap command in the turn of the exit that ordered \
                 it, before any other input",
    },
    Unreachable {
        phases: &[Phase::AwaitingHandshake],
        inputs: Inputs::Only(&[
            InputKind::Message(MessageKind::Reply),
            InputKind::Message(MessageKind::Finished),
            InputKind::Message(MessageKind::Failed),
            InputKind::Message(MessageKind::CancelAck),
        ]),
        reason: "the child runtime sends its handshake first, and the handshake ends this phase",
    },
    Unreachable {
        phases: &[Phase::AwaitingExit],
        inputs: Inputs::Only(&[InputKind::Message(MessageKind::Handshake)]),
        reason: "the child runtime sends one handshake, and a second one written out of turn \
                 comes after it: this phase begins at the end of the channel, or at a \
                 violation, which closes our end",
    },
    Unreachable {
        phases: &[
            Phase::AwaitingHandshake,
            Phase::Serving,
            Phase::AwaitingCancelAck,
            Phase::AwaitingExit,
            Phase::AwaitingKilledExit,
            Phase::Draining,
            Phase::Done,
        ],
        inputs: Inputs::Only(&[
            InputKind::Message(MessageKind::SpawnSpec),
            InputKind::Message(MessageKind::Request),
            InputKind::Message(MessageKind::Cancel),
        ]),
        reason: "no simulated child sends a parent's message: the child runtime sends only \
                 Handshake, Reply, Finished, Failed and CancelAck",
    },
    Unreachable {
        phases: &[Phase::Done],
        inputs: Inputs::Only(&[
            InputKind::Message(MessageKind::Handshake),
            InputKind::Message(MessageKind::Reply),
            InputKind::Message(MessageKind::Finished),
            InputKind::Message(MessageKind::Failed),
            InputKind::Message(MessageKind::CancelAck),
            InputKind::Malformed,
            InputKind::ChannelClosed,
        ]),
        reason: "our end of its channel is closed by the time it is done, no message finishes \
                 a child, and a closed channel reports nothing after the wait that follows \
                 its close",
    },
];

/// The child runtime's cells that no run of the shipped protocol can reach, with the reason.
pub const CHILD_UNREACHABLE: &[Unreachable<ChildPhase, ChildInputKind>] = &[
    Unreachable {
        phases: &[ChildPhase::Booting],
        inputs: Inputs::AllBut(&[ChildInputKind::Start]),
        reason: "start is the driver's first call, and it leaves Booting",
    },
    Unreachable {
        phases: &[
            ChildPhase::AwaitingSpec,
            ChildPhase::Serving,
            ChildPhase::Cancelling,
            ChildPhase::Exited,
        ],
        inputs: Inputs::Only(&[ChildInputKind::Start]),
        reason: "the driver calls start once",
    },
    Unreachable {
        phases: &[ChildPhase::AwaitingParentEof],
        inputs: Inputs::AllBut(&[]),
        reason: "entered only with flaw F4, and coverage counts runs of the shipped protocol",
    },
    Unreachable {
        phases: &[
            ChildPhase::AwaitingSpec,
            ChildPhase::Serving,
            ChildPhase::Cancelling,
            ChildPhase::Exited,
        ],
        inputs: Inputs::Only(&[
            ChildInputKind::Message(MessageKind::Handshake),
            ChildInputKind::Message(MessageKind::Reply),
            ChildInputKind::Message(MessageKind::Finished),
            ChildInputKind::Message(MessageKind::Failed),
            ChildInputKind::Message(MessageKind::CancelAck),
        ]),
        reason: "the parent's supervisor sends only SpawnSpec, Request and Cancel",
    },
    Unreachable {
        phases: &[ChildPhase::AwaitingSpec],
        inputs: Inputs::Only(&[
            ChildInputKind::Supervise,
            ChildInputKind::WorkDone,
            ChildInputKind::MainDone,
            ChildInputKind::ActorFailed,
            ChildInputKind::SubtreeClosed,
        ]),
        reason: "the actor starts only on the spawn spec: before it there is no work, main, \
                 actor or nursery to report on",
    },
    Unreachable {
        phases: &[ChildPhase::Serving],
        inputs: Inputs::Only(&[
            ChildInputKind::Message(MessageKind::SpawnSpec),
            ChildInputKind::SubtreeClosed,
        ]),
        reason: "the one spawn spec is what starts Serving, and the child's own nursery is torn \
                 down only by a stop, which leaves Serving for good",
    },
];

/// Coverage of one table's reachable cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Reachable cells reached.
    pub reached: usize,
    /// Reachable cells.
    pub reachable: usize,
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = 100.0 * self.reached as f64 / self.reachable.max(1) as f64;
        write!(f, "{:>3}/{:<3} {pct:>5.1} %", self.reached, self.reachable)
    }
}

/// The share of each table's reachable cells that `coverage` reached: lifecycle, child.
pub fn shares(coverage: &Coverage) -> (Share, Share) {
    let share = |lifecycle: bool| {
        let cells = Cell::all()
            .filter(|c| matches!(c, Cell::Lifecycle(..)) == lifecycle)
            .filter(|c| c.unreachable().is_none());
        let (reached, reachable) = cells.fold((0, 0), |(r, n), c| {
            (r + usize::from(c.reached_in(coverage)), n + 1)
        });
        Share { reached, reachable }
    };
    (share(true), share(false))
}

/// The reachable cells `coverage` never reached.
pub fn never_reached(coverage: &Coverage) -> Vec<Cell> {
    Cell::all()
        .filter(|c| c.unreachable().is_none() && !c.reached_in(coverage))
        .collect()
}

/// Cells listed as unreachable that `coverage` reached: each a wrong reason.
pub fn contradictions(coverage: &Coverage) -> Vec<Cell> {
    Cell::all()
        .filter(|c| c.unreachable().is_some() && c.reached_in(coverage))
        .collect()
}

/// The coverage table: a line per engine and the union, the close calls, the reachable cells
/// the union never reached, any cell listed unreachable that was reached, and the unreachable
/// cells with their reasons.
pub fn render(per_engine: &[(&str, Coverage)]) -> String {
    let mut union = Coverage::default();
    for (_, c) in per_engine {
        union.merge(c);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "coverage of the shipped protocol's tables (reachable cells reached)\n{:<8}  {:<17}  {:<17}  close calls",
        "engine", "child lifecycle", "child runtime"
    );
    for (name, c) in per_engine.iter().chain([&("union", union.clone())]) {
        let (l, r) = shares(c);
        let k = c.close;
        let _ = writeln!(
            out,
            "{name:<8}  {l}  {r}  {} deadlines fired, {} kills, {} abandons",
            k.deadlines, k.kills, k.abandons
        );
    }
    let missed = never_reached(&union);
    let _ = writeln!(out, "\nreachable, never reached ({}):", missed.len());
    for c in &missed {
        let _ = writeln!(out, "  {c}");
    }
    let wrong = contradictions(&union);
    if !wrong.is_empty() {
        let _ = writeln!(out, "\nLISTED UNREACHABLE BUT REACHED ({}):", wrong.len());
        for c in &wrong {
            let _ = writeln!(out, "  {c}");
        }
    }
    out.push_str(&render_unreachable());
    out
}

/// The unreachable cells, grouped by reason.
pub fn render_unreachable() -> String {
    let mut out = String::from("\nunreachable, by reason:\n");
    for u in LIFECYCLE_UNREACHABLE {
        let _ = writeln!(
            out,
            "  lifecycle {} × {}: {}",
            list(u.phases),
            u.inputs,
            u.reason
        );
    }
    for u in CHILD_UNREACHABLE {
        let _ = writeln!(
            out,
            "  child {} × {}: {}",
            list(u.phases),
            u.inputs,
            u.reason
        );
    }
    out
}

fn list<T: fmt::Debug>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("{{{}}}", names.join(", "))
}

/// The shipped-protocol rows' coverage, merged per engine, in engine order.
pub fn by_engine(rows: &[crate::check::Row]) -> Vec<(&'static str, Coverage)> {
    let mut out: Vec<(&'static str, Coverage)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.expect == crate::check::Expect::Holds)
    {
        let name = r.engine.name();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => c.merge(&r.coverage),
            None => out.push((name, r.coverage.clone())),
        }
    }
    out
}

/// Each engine's coverage over its shipped-protocol scenarios in a fast configuration (the
/// pinning test's): loom with no preemption, shuttle with a few random schedules, the whole
/// explicit search.
pub fn fast() -> Vec<(&'static str, Coverage)> {
    use crate::engine::{self, LoomBudget, ShuttleBudget};
    use crate::flaws::Engine;
    let union = |engine: Engine, run: &dyn Fn(&crate::scenario::Scenario) -> Coverage| {
        let mut c = Coverage::default();
        for sc in crate::check::shipped_for(engine) {
            c.merge(&run(&sc));
        }
        (engine.name(), c)
    };
    let shuttle = ShuttleBudget {
        random: 8,
        pct: 0,
        ..ShuttleBudget::default()
    };
    vec![
        union(Engine::Loom, &|sc| {
            let budget = LoomBudget {
                preemptions: Some(0),
            };
            engine::loom(sc, budget).coverage
        }),
        union(Engine::Shuttle, &|sc| engine::shuttle(sc, shuttle).coverage),
        union(Engine::Explicit, &|sc| {
            crate::explicit::search(sc, crate::explicit::MAX_STATES).coverage
        }),
    ]
}

/// Compares the cells `coverage` reached with a pinned list (one [`Cell`] a line, as it
/// displays): `Err` names the pinned cells lost, and the cells reached that the list lacks.
pub fn against_pin(pinned: &str, coverage: &Coverage) -> Result<(), String> {
    let pinned: Vec<&str> = pinned
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let reached: Vec<String> = Cell::all()
        .filter(|c| c.reached_in(coverage))
        .map(|c| c.to_string())
        .collect();
    let lost: Vec<&str> = pinned
        .iter()
        .copied()
        .filter(|p| !reached.iter().any(|r| r == p))
        .collect();
    let new: Vec<&str> = reached
        .iter()
        .map(String::as_str)
        .filter(|r| !pinned.contains(r))
        .collect();
    if lost.is_empty() && new.is_empty() {
        return Ok(());
    }
    let mut msg = String::new();
    if !lost.is_empty() {
        let _ = writeln!(
            msg,
            "coverage lowered: {} pinned cells no longer reached:",
            lost.len()
        );
        for c in &lost {
            let _ = writeln!(msg, "  {c}");
        }
    }
    if !new.is_empty() {
        let _ = writeln!(
            msg,
            "{} cells reached that the pin lacks (add them to it):",
            new.len()
        );
        for c in &new {
            let _ = writeln!(msg, "  {c}");
        }
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches<P: PartialEq + Copy, I: PartialEq + Copy>(
        table: &[Unreachable<P, I>],
        p: P,
        i: I,
    ) -> usize {
        table
            .iter()
            .filter(|u| u.phases.contains(&p) && u.inputs.contains(&i))
            .count()
    }

    #[test]
    fn each_unreachable_cell_has_one_reason() {
        for c in Cell::all() {
            let n = match c {
                Cell::Lifecycle(p, i) => matches(LIFECYCLE_UNREACHABLE, p, i),
                Cell::Child(p, i) => matches(CHILD_UNREACHABLE, p, i),
            };
            assert!(n <= 1, "{c} is listed unreachable {n} times");
        }
    }

    #[test]
    fn the_shares_count_reachable_cells_only() {
        let mut c = Coverage::default();
        Cell::Lifecycle(Phase::Serving, InputKind::Request).record(&mut c);
        // Listed unreachable: reached, it is a contradiction, not a share.
        let listed = Cell::Lifecycle(Phase::AwaitingReap, InputKind::Deadline);
        listed.record(&mut c);
        let (lifecycle, child) = shares(&c);
        assert_eq!(lifecycle.reached, 1);
        assert_eq!(child.reached, 0);
        let all = Phase::ALL.len() * InputKind::ALL.len();
        let listed_n = Cell::all()
            .filter(|c| matches!(c, Cell::Lifecycle(..)) && c.unreachable().is_some())
            .count();
        assert_eq!(lifecycle.reachable, all - listed_n);
        assert_eq!(contradictions(&c), vec![listed]);
        assert!(!never_reached(&c).contains(&listed));
    }
}
