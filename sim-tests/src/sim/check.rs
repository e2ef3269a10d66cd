//! What must hold at the end of every execution (properties 3–11 of `model/PROPERTIES.md`),
//! and property 11's subtree check, made as each supervisor ends.

use crate::kernel::{Fd, Pid, ProcState};
use crate::sim::{CtxState, NurseryChild, NurserySeat, SimProcess, SimWorld};
use harrow_model::RequestId;
use harrow_model::supervisor::{RequestEnd, TeardownReport};

use super::RootResult;
use crate::scenario::{Fault, Scenario};

/// What the world held once the root's body returned.
#[derive(Debug)]
pub(super) struct Leftovers {
    live: Vec<Pid>,
    zombies: Vec<Pid>,
    root_alive: bool,
}

impl Leftovers {
    /// A look at the world.
    pub(super) fn of(w: &SimWorld) -> Self {
        let is = |p: Pid, list: &[SimProcess]| list.iter().any(|s| s.pid == p && w.runs(*s));
        let live = w
            .kernel
            .live_processes()
            .into_iter()
            // Fork servers end with their client; detached helpers are not harrow's.
            .filter(|p| !is(*p, &[w.root]) && !is(*p, &w.servers) && !is(*p, &w.helpers))
            .filter(|p| !doomed(w, *p) && !held_by_abandoned(w, *p))
            .collect();
        let zombies = w
            .kernel
            .zombies()
            .into_iter()
            .filter(|p| !held_by_abandoned(w, *p))
            .collect();
        Leftovers {
            live,
            zombies,
            root_alive: w.runs(w.root),
        }
    }
}

/// Whether `pid` is a child whose parent died before its prelude ran: it has not armed its
/// parent-death signal yet (`PR_GET_PDEATHSIG` says none) and init is its parent already,
/// so the prelude's parent re-check ends it at its very next step, with nobody's help. A
/// process just forked need not have run yet when the teardown that doomed it returns.
fn doomed(w: &SimWorld, pid: Pid) -> bool {
    w.config.parent_death_signal
        && w.kernel.getppid(pid) == Ok(Pid::INIT)
        && w.kernel.pdeathsig(pid) == Ok(None)
}

/// Whether `pid` descends from a process that an abandoned thread child started: it is the
/// abandoned child's own subtree, still in the hands of its nursery, which goes on running
/// on the leaked thread. Property 11 leaves abandoned thread children out (they are counted
/// and reported); what they hold is leaked with them.
fn held_by_abandoned(w: &SimWorld, pid: Pid) -> bool {
    let leaked: Vec<_> = w
        .contexts
        .iter()
        .filter(|c| c.state == CtxState::Leaked)
        .map(|c| c.thread)
        .collect();
    if leaked.is_empty() {
        return false;
    }
    let mut p = pid;
    // Each step goes one level up the tree, whose depth is bounded by the pid pool.
    for _ in 0..=w.config.kernel.pid_pool {
        if let Ok(Some(t)) = w.kernel.creator_thread(p)
            && leaked.contains(&t)
        {
            return true;
        }
        match w.kernel.getppid(p) {
            Ok(parent) if parent != Pid::INIT && parent != w.root.pid => p = parent,
            _ => return false,
        }
    }
    false
}

/// Property 11 (nothing outlives teardown) as problems; none if the root died.
pub(super) fn leftovers(l: &Leftovers) -> Vec<String> {
    if !l.root_alive {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if !l.live.is_empty() {
        problems.push(format!(
            "processes outlived teardown (property 11): {:?}",
            l.live
        ));
    }
    if !l.zombies.is_empty() {
        problems.push(format!(
            "zombies left unreaped (property 3): {:?}",
            l.zombies
        ));
    }
    problems
}

/// Property 11 as the supervisor at `seat` ends its own loop (its process exits, or its
/// thread returns): a problem for each child its nursery launched and has not ended. Its
/// cancel (or its own failure) had it tear the nursery down first; whatever is left outlives
/// it, a process handed to init, a thread killed mid-work with its process.
pub(super) fn exited_with_subtree(w: &SimWorld, seat: NurserySeat) -> Vec<String> {
    let branch = seat_name(w, seat);
    untorn(w, seat)
        .map(|child| {
            format!(
                "{child} outlived the nursery of {branch}, which exited without tearing it \
                 down (property 11)"
            )
        })
        .collect()
}

/// Property 11 as the supervisor at `by` kills its process child on `pid`: a problem for each
/// child of that child's own nursery not ended yet, unless that nursery had begun its
/// teardown (`closing`) or the user hard-stopped it. A killed supervisor cannot finish tearing
/// down; one that is killed before it even began did not act on its cancel, and its subtree
/// is left to init.
pub(super) fn killed_before_teardown(
    w: &SimWorld,
    by: NurserySeat,
    pid: Pid,
    closing: impl Fn(NurserySeat) -> bool,
) -> Vec<String> {
    let Some(killed) = w
        .nursery_children
        .iter()
        .find(|c| c.nursery == by && c.ctx.is_none() && c.seat.0.pid == pid && w.runs(c.seat.0))
    else {
        return Vec::new();
    };
    if closing(killed.seat) || w.hard_stopped.contains(&pid) {
        return Vec::new();
    }
    let branch = seat_name(w, killed.seat);
    untorn(w, killed.seat)
        .map(|child| {
            format!(
                "{branch} was killed by its supervisor before it began tearing its nursery \
                 down: {child} outlived it (property 11)"
            )
        })
        .collect()
}

/// The children the nursery at `seat` launched and has not ended, named: a process not
/// reaped yet, a thread neither joined nor abandoned.
fn untorn(w: &SimWorld, seat: NurserySeat) -> impl Iterator<Item = String> + '_ {
    w.nursery_children
        .iter()
        .filter(move |c| c.nursery == seat && !ended(w, c))
        .map(|c| match c.ctx {
            Some(_) => format!("`{}` (a thread)", c.name),
            None => format!("`{}` ({})", c.name, c.seat.0.pid),
        })
}

/// Whether its nursery has ended the child: reaped it, or joined or abandoned its thread
/// (a context slot given to another child was freed by the join first).
fn ended(w: &SimWorld, c: &NurseryChild) -> bool {
    match c.ctx {
        Some((slot, generation)) => {
            let ctx = w.contexts[slot];
            ctx.generation != generation || matches!(ctx.state, CtxState::Freed | CtxState::Leaked)
        }
        None => w.kernel.serial_state(c.seat.0.serial) == Some(ProcState::Reaped),
    }
}

/// The supervisor at `seat`, named by the child it is (the root launched by no nursery).
fn seat_name(w: &SimWorld, seat: NurserySeat) -> String {
    match w.nursery_children.iter().find(|c| c.seat == seat) {
        Some(c) if c.ctx.is_some() => format!("`{}` (a thread of {})", c.name, seat.0.pid),
        Some(c) => format!("`{}` ({})", c.name, seat.0.pid),
        None => format!("the root ({})", seat.0.pid),
    }
}

/// Once every thread has ended, the root keeps exactly its SIGINT self-pipe.
pub(super) fn leaked_fds(w: &SimWorld) -> Vec<String> {
    let fds: Vec<Fd> = w.kernel.fds(w.root.pid).unwrap_or_default();
    if !w.runs(w.root) || fds.len() <= 2 {
        return Vec::new();
    }
    vec![format!(
        "the root leaks fds after teardown (property 11): {fds:?}"
    )]
}

/// The result of one execution: what broke, and the trace that shows it.
#[derive(Debug)]
pub struct Outcome {
    /// Properties broken, each a sentence; empty when the execution held.
    pub problems: Vec<String>,
    /// The numbered trace of the execution.
    pub trace: Vec<String>,
    /// The root nursery's report, if it closed.
    pub report: Option<TeardownReport>,
    /// Spawns the protocol refused.
    pub refused: Vec<String>,
    /// The protocol-table cells the execution reached (filled in by `execute`, from what
    /// was handed in to the shared world).
    pub coverage: harrow_model::coverage::Coverage,
}

impl Outcome {
    /// Whether every property held.
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
    }

    /// The trace as numbered steps, for a counterexample.
    pub fn numbered_trace(&self) -> String {
        crate::run::numbered(&self.trace)
    }
}

/// Every end-of-execution check, in one list.
pub(super) fn outcome(
    sc: &Scenario,
    w: &SimWorld,
    root: RootResult,
    leftovers: Vec<String>,
) -> Outcome {
    let mut problems = Vec::new();
    if let Some(hang) = &w.hung {
        problems.push(format!("hang (properties 7-11): {hang}"));
    }
    if let Some(v) = &root.violation {
        problems.push(format!("protocol invariant broken: {v}"));
    }
    problems.extend(w.violations.iter().cloned());
    problems.extend(
        w.kernel
            .violations()
            .iter()
            .map(|v| format!("kernel: {v} (property {})", v.property())),
    );
    let root_may_die = sc.faults.contains(&Fault::ParentDeath);
    if let Some(why) = &root.stopped
        && !(root_may_die && why.contains("killed"))
        && w.hung.is_none()
    {
        problems.push(format!("the root's body stopped early: {why}"));
    }
    problems.extend(answers_lost_in_a_crash(w, &root));
    problems.extend(root.problems.iter().cloned());
    if let Some(report) = &root.report {
        check_report(sc, w, &root, report, &mut problems);
    } else if !root_may_die && w.hung.is_none() {
        problems.push("the root's nursery never closed".to_string());
    }
    problems.extend(leftovers);
    let trace = w.trace.clone();
    Outcome {
        problems,
        trace,
        report: root.report,
        refused: root.refused,
        coverage: harrow_model::coverage::Coverage::default(),
    }
}

/// Property 15: every request a child answered before it died in a later one reached its
/// caller as that answer.
fn answers_lost_in_a_crash(w: &SimWorld, root: &RootResult) -> Vec<String> {
    let answered = |id: RequestId| {
        root.ends.iter().any(|(r, end)| {
            *r == id && matches!(end, Some(RequestEnd::Answered { reply, .. }) if *reply == id)
        })
    };
    w.answered_before_crash
        .iter()
        .filter(|id| !answered(**id))
        .map(|id| {
            format!(
                "the child answered {id} before it died in a later request, but its caller \
                 never got that answer (property 15)"
            )
        })
        .collect()
}

fn check_report(
    sc: &Scenario,
    w: &SimWorld,
    root: &RootResult,
    report: &TeardownReport,
    problems: &mut Vec<String>,
) {
    if let Some(took) = report.duration() {
        // ε: a reaped child's channel may take up to the drain bound to reach EOF.
        let bound = sc.teardown_bound() + sc.timeouts.drain;
        if took > bound {
            problems.push(format!(
                "teardown took {took:?} of protocol time, over its bound of {bound:?} (property 8)"
            ));
        }
    }
    if report.abandoned != w.abandoned as usize {
        problems.push(format!(
            "{} threads abandoned but {} reported (property 4)",
            w.abandoned, report.abandoned
        ));
    }
    problems.extend(crate::accounts::report_problems(
        report,
        root.spawned,
        &root.retired,
        root.failures,
        sc.config().limits.max_ended,
    ));
}
