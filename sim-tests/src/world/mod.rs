//! The pure world: the supervisor, real child loops and runtimes, scripted actors, no threads.
//!
//! Every step that could happen in either order in reality (a child runs, a message reaches
//! the parent, an exit is noticed, time jumps to the next deadline, a fault strikes) is a
//! [`Choice`]. A deterministic run always takes the first enabled choice, which gives the
//! golden traces; the explicit-state search and proptest take the others. Processes, pipes and
//! reaping are abstract here; the simulated kernel models them precisely.
//!
//! The parent runs the one [`Driver`], as over the simulated kernel and over Linux: each step
//! that reaches it (a frame or end-of-file read, an exit noticed, a deadline, SIGINT) is what
//! the driver's next wait reports, and the user's calls are the driver's; its commands reach
//! the children through `PureOs` (`os.rs`), the frames through the real codec. Each child
//! runs the one child loop ([`harrow_model::child_loop::ChildLoop`]), as over the simulated
//! kernel and over Linux, a step at a time: it reads its parent's frames through its decoder
//! and writes frames the parent's driver decodes; its actor is a script (`child.rs`).

mod child;
mod effects;
mod kid;
mod os;
mod queries;
mod symmetry;
mod user;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use harrow_model::channels::Channels;
use harrow_model::coverage::Coverage;
use harrow_model::driver::{Driver, OsEvent};
use harrow_model::supervisor::{Event, NurseryPhase, RequestEnd, Supervisor, TeardownCause};
use harrow_model::trace::Record;
use harrow_model::{ChildId, Timestamp};
use serde::{Deserialize, Serialize};

pub use kid::{Block, Frames, Kid, Proc};
use os::PureOs;

use crate::scenario::{Ending, Fault, Scenario};

/// One step the world can take next.
///
/// Serialized (in corpus entries) as its [`Display`](fmt::Display) text: `body`, `boot 0`,
/// `run 1`, `deliver 0`, `exit 2`, `fault 0`, `second-reap 0`, `tick`, `user 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Choice {
    /// The nursery's body takes its next step.
    Body,
    /// Child `i` boots: sends its handshake, or crashes.
    Boot(usize),
    /// Child `i` handles one thing: a message, EOF, finished work.
    Run(usize),
    /// The parent reads one thing from child `i`'s channel: a message or EOF.
    Deliver(usize),
    /// The parent notices that child `i` exited.
    Exit(usize),
    /// The environment injects fault `k` of the scenario.
    Fault(usize),
    /// A second reaper (`waitpid(-1)`) reaps child `i` behind the parent's back (flaw F5).
    SecondReap(usize),
    /// Time jumps to the earliest deadline, which fires.
    Tick,
    /// The user makes call `k` of the scenario's (`Scenario::user`).
    User(usize),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Body => f.write_str("body"),
            Choice::Boot(i) => write!(f, "boot {i}"),
            Choice::Run(i) => write!(f, "run {i}"),
            Choice::Deliver(i) => write!(f, "deliver {i}"),
            Choice::Exit(i) => write!(f, "exit {i}"),
            Choice::Fault(k) => write!(f, "fault {k}"),
            Choice::SecondReap(i) => write!(f, "second-reap {i}"),
            Choice::Tick => f.write_str("tick"),
            Choice::User(k) => write!(f, "user {k}"),
        }
    }
}

impl FromStr for Choice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let (word, arg) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err(format!("`{s}` is not a choice: too many words"));
        }
        let index = || -> Result<usize, String> {
            arg.ok_or_else(|| format!("`{s}` needs an index"))?
                .parse()
                .map_err(|_| format!("`{s}`: the index is not a number"))
        };
        let choice = match word {
            "body" => Choice::Body,
            "tick" => Choice::Tick,
            "boot" => Choice::Boot(index()?),
            "run" => Choice::Run(index()?),
            "deliver" => Choice::Deliver(index()?),
            "exit" => Choice::Exit(index()?),
            "fault" => Choice::Fault(index()?),
            "second-reap" => Choice::SecondReap(index()?),
            "user" => Choice::User(index()?),
            _ => return Err(format!("`{s}` is not a choice")),
        };
        if matches!(choice, Choice::Body | Choice::Tick) && arg.is_some() {
            return Err(format!("`{s}` takes no index"));
        }
        Ok(choice)
    }
}

impl From<Choice> for String {
    fn from(c: Choice) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Choice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Where the nursery's body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// Spawning the child with this index next.
    Spawning(usize),
    /// Waiting until every child is ready or has failed.
    Settling,
    /// Sending requests.
    Requesting,
    /// About to end.
    Ending,
    /// Finished.
    Done,
}

/// Everything that changes during a run; cloned, hashed and compared by the state search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Protocol time.
    pub now: Timestamp,
    /// The root's supervisor.
    pub sup: Supervisor,
    /// The children, by spawn order.
    pub kids: Vec<Kid>,
    /// What the root's operating system may still report of each child's channel and exit.
    pub reports: Channels,
    /// The body's progress.
    pub body: Body,
    /// Children that reported ready.
    pub ready: BTreeSet<usize>,
    /// Faults already injected.
    pub faults_done: BTreeSet<usize>,
    /// The user's calls already made.
    pub user_done: BTreeSet<usize>,
    /// Whether the root was killed.
    pub root_dead: bool,
    /// The thread child holding the root's allocator lock during its start-up (F3).
    pub alloc_held_by: Option<usize>,
    /// Failure events the user has taken (property 19: the report accounts for each).
    pub failures: u64,
    /// Properties broken outside the protocol (bystanders signalled, wedged forks).
    pub violations: Vec<String>,
}

/// A scenario being run, with an optional trace of readable lines and an optional log of
/// the parent's operating-system calls.
#[derive(Debug)]
pub struct World<'s> {
    sc: &'s Scenario,
    st: State,
    trace: Option<Vec<String>>,
    log: Option<Vec<Record>>,
}

impl<'s> World<'s> {
    /// The scenario's initial state.
    pub fn new(sc: &'s Scenario) -> Self {
        let sup = Supervisor::new(sc.config()).expect("scenario timeouts are valid");
        let st = State {
            now: Timestamp::ZERO,
            sup,
            kids: Vec::new(),
            reports: Channels::new(),
            body: Body::Spawning(0),
            ready: BTreeSet::new(),
            faults_done: BTreeSet::new(),
            user_done: BTreeSet::new(),
            root_dead: false,
            alloc_held_by: None,
            failures: 0,
            violations: Vec::new(),
        };
        World {
            sc,
            st,
            trace: None,
            log: None,
        }
    }

    /// The same, recording a trace.
    pub fn traced(sc: &'s Scenario) -> Self {
        World {
            trace: Some(Vec::new()),
            ..World::new(sc)
        }
    }

    /// A world resumed from a state of this scenario.
    pub fn resume(sc: &'s Scenario, st: State) -> Self {
        World {
            sc,
            st,
            trace: None,
            log: None,
        }
    }

    /// The same world, logging every call its parent's driver makes on the operating system
    /// from now on, as the real backend's trace records them (`launch`, `send`, `close`,
    /// `kill`, `abandon`, `reap`, `retire`, and each `wait` with what it reported).
    pub fn logged(self) -> Self {
        World {
            log: Some(Vec::new()),
            ..self
        }
    }

    /// Takes the calls logged since the last take (none unless [`World::logged`]).
    pub fn take_log(&mut self) -> Vec<Record> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.st
    }

    /// The current state, taken out of the world.
    pub fn into_state(self) -> State {
        self.st
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        self.sc
    }

    /// Takes out the cells the supervisor and the child runtimes reached since the last call.
    pub fn take_coverage(&mut self) -> Coverage {
        let mut coverage = self.st.sup.take_coverage();
        for k in &mut self.st.kids {
            coverage.merge(&k.child_loop.runtime_mut().take_coverage());
        }
        coverage
    }

    /// Takes the recorded trace.
    pub fn take_trace(&mut self) -> Vec<String> {
        self.trace.take().unwrap_or_default()
    }

    /// Every choice enabled now, in the deterministic run's order of preference.
    pub fn enabled(&self) -> Vec<Choice> {
        let mut out = Vec::new();
        if self.body_enabled() {
            out.push(Choice::Body);
        }
        let n = self.st.kids.len();
        out.extend(
            (0..n)
                .filter(|&i| self.st.kids[i].can_boot())
                .map(Choice::Boot),
        );
        out.extend(
            (0..n)
                .filter(|&i| self.st.kids[i].can_run(self.copies_held(i), self.st.now))
                .map(Choice::Run),
        );
        if !self.st.root_dead {
            let (kids, reports) = (&self.st.kids, &self.st.reports);
            let id = |i: usize| ChildId(i as u32);
            out.extend(
                (0..n)
                    .filter(|&i| kids[i].can_deliver(reports.reads(id(i))))
                    .map(Choice::Deliver),
            );
            out.extend(
                (0..n)
                    .filter(|&i| kids[i].can_report_exit(reports.watches_exit(id(i))))
                    .map(Choice::Exit),
            );
        }
        // Time moves on only when nothing else can happen; a deadline already due races
        // with everything (as in the simulator's clock).
        let idle = out.is_empty();
        out.extend(
            (0..self.sc.faults.len())
                .filter(|&k| self.fault_enabled(k))
                .map(Choice::Fault),
        );
        out.extend(
            (0..self.sc.user.len())
                .filter(|&k| self.user_enabled(k))
                .map(Choice::User),
        );
        if self.sc.flaws.has(harrow_model::Flaw::KillAndReapByPid) {
            let stealable =
                |k: &Kid| k.is_process() && matches!(k.proc, Proc::Exited(_)) && !k.stolen;
            out.extend(
                (0..n)
                    .filter(|&i| stealable(&self.st.kids[i]))
                    .map(Choice::SecondReap),
            );
        }
        if self
            .next_deadline()
            .is_some_and(|t| idle || t <= self.st.now)
        {
            out.push(Choice::Tick);
        }
        out
    }

    /// Whether the run is over: the nursery closed (or the root died) and every child is gone.
    pub fn is_finished(&self) -> bool {
        let kids_gone = self.st.kids.iter().all(|k| k.is_gone());
        kids_gone && (self.st.root_dead || self.st.sup.phase() == NurseryPhase::Closed)
    }

    /// Takes one enabled step.
    pub fn apply(&mut self, choice: Choice) {
        match choice {
            Choice::Body => self.body_step(),
            Choice::Boot(i) => self.boot(i),
            Choice::Run(i) => self.run_kid(i),
            Choice::Deliver(i) => self.deliver(i),
            Choice::Exit(i) => self.report_exit(i),
            Choice::Fault(k) => self.inject(k),
            Choice::Tick => self.tick(),
            Choice::SecondReap(i) => self.second_reap(i),
            Choice::User(k) => self.user_call(k),
        }
    }

    fn note(&mut self, who: &str, what: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            trace.push(line(self.st.now, who, &what()));
        }
    }

    /// Whether a process other than the parent still holds a copy of child `i`'s parent end.
    pub fn copies_held(&self, i: usize) -> bool {
        self.st.kids[i]
            .parent_end_copies
            .iter()
            .any(|&j| self.st.kids[j].proc == Proc::Running)
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let sup = if self.st.root_dead {
            None
        } else {
            self.st.sup.poll_deadline()
        };
        let kids = self.st.kids.iter().filter_map(|k| match k.block {
            Block::Until(t) if k.proc == Proc::Running => Some(t),
            _ => k.work_until,
        });
        let helpers = self.st.kids.iter().filter_map(|k| k.helper_until);
        sup.into_iter().chain(kids).chain(helpers).min()
    }

    fn tick(&mut self) {
        let Some(t) = self.next_deadline() else {
            return;
        };
        self.st.now = self.st.now.max(t);
        let now = self.st.now;
        for i in 0..self.st.kids.len() {
            if matches!(self.st.kids[i].block, Block::Until(u) if u <= now) {
                self.st.kids[i].block = Block::No;
                self.note(&kid_name(i), || "stops blocking and yields".into());
            }
            if self.st.kids[i].helper_until.is_some_and(|u| u <= now) {
                self.st.kids[i].helper_until = None;
                self.note(&kid_name(i), || {
                    "its detached helper exits, closing its channel copy".into()
                });
            }
        }
        if !self.st.root_dead && self.st.sup.poll_deadline().is_some_and(|d| d <= now) {
            self.note("clock", || "deadline fires".into());
            self.turn_with(OsEvent::Deadline);
        }
    }

    fn body_enabled(&self) -> bool {
        if self.st.root_dead {
            return false;
        }
        match self.st.body {
            Body::Settling => (0..self.st.kids.len()).all(|i| self.settled(i)),
            Body::Ending => self.user_calls_over(),
            Body::Done => false,
            _ => true,
        }
    }

    fn settled(&self, i: usize) -> bool {
        // A child whose record the window of retired ones dropped is long over.
        let stopping = self
            .st
            .sup
            .lifecycle(ChildId(i as u32))
            .is_none_or(|life| life.is_stopping());
        self.st.ready.contains(&i) || stopping || self.st.sup.phase() != NurseryPhase::Open
    }

    fn body_step(&mut self) {
        match self.st.body {
            Body::Spawning(i) => {
                self.spawn(i);
                let next = i + 1;
                self.st.body = if next < self.sc.children.len() {
                    Body::Spawning(next)
                } else {
                    Body::Settling
                };
            }
            Body::Settling => self.st.body = Body::Requesting,
            Body::Requesting => {
                self.send_requests();
                self.st.body = Body::Ending;
            }
            Body::Ending => {
                self.end_body();
                self.st.body = Body::Done;
            }
            Body::Done => {}
        }
    }

    fn end_body(&mut self) {
        match self.sc.ending {
            Ending::Finish => {
                self.note("user", || "body finishes: begin teardown".into());
                self.with_driver(None, |d| d.begin_teardown(TeardownCause::BodyFinished));
            }
            Ending::Fail => {
                self.note("user", || "body fails: begin teardown".into());
                self.with_driver(None, |d| d.begin_teardown(TeardownCause::BodyFailed));
            }
            Ending::Interrupt => {
                self.note("signal", || "SIGINT reaches the root".into());
                self.turn_with(OsEvent::Interrupt);
            }
        }
    }

    fn fault_enabled(&self, k: usize) -> bool {
        if self.st.faults_done.contains(&k) || self.st.root_dead {
            return false;
        }
        match self.sc.faults[k] {
            Fault::SigkillChild { child } => self
                .st
                .kids
                .get(child)
                .is_some_and(|kid| kid.proc == Proc::Running && kid.is_process()),
            Fault::SigintRoot | Fault::ParentDeath => true,
            // The worker thread retires once it has made every spawn.
            Fault::SpawningThreadExits => self.st.kids.len() == self.sc.children.len(),
        }
    }

    fn inject(&mut self, k: usize) {
        self.st.faults_done.insert(k);
        match self.sc.faults[k] {
            Fault::SigkillChild { child } => {
                self.note("env", || format!("SIGKILL to {}", kid_name(child)));
                self.exit_kid(child, harrow_model::ExitStatus::Signaled(9));
            }
            Fault::SigintRoot => {
                self.note("signal", || "SIGINT reaches the root".into());
                self.turn_with(OsEvent::Interrupt);
            }
            Fault::SpawningThreadExits => {
                self.note("env", || "the thread that made the spawns exits".into());
                for i in 0..self.st.kids.len() {
                    self.dies_with_the_spawning_thread(i);
                }
            }
            Fault::ParentDeath => {
                self.note("env", || "the root is SIGKILLed".into());
                self.st.root_dead = true;
                for (i, kid) in self.st.kids.iter_mut().enumerate() {
                    kid.parent_died();
                    // A dead root watches nothing: init reaps its orphans.
                    self.st.reports.unwatch_exit(ChildId(i as u32));
                }
                for i in 0..self.st.kids.len() {
                    self.dies_with_the_root(i);
                }
            }
        }
    }

    /// What the root's death does to child `i` at once: a thread dies with the process it
    /// runs in; a process dies of its parent-death signal, or leaves in its prelude when the
    /// parent re-check finds the root gone (if the scenario's preludes arm that signal).
    fn dies_with_the_root(&mut self, i: usize) {
        let kid = &self.st.kids[i];
        if kid.proc != Proc::Running || (kid.is_process() && !self.sc.parent_death_signal) {
            return;
        }
        // A wedged child (F3) is stuck past its prelude, so its signal is armed.
        let (status, why) = if kid.is_process() && !kid.booted && !kid.wedged {
            (
                harrow_model::ExitStatus::Exited(harrow_model::exit::prelude::PARENT_GONE),
                "its prelude finds the root gone",
            )
        } else if kid.is_process() {
            (
                harrow_model::ExitStatus::Signaled(9),
                "its parent-death signal kills it",
            )
        } else {
            (
                harrow_model::ExitStatus::Signaled(9),
                "its thread dies with the root's process",
            )
        };
        self.note(&kid_name(i), || why.into());
        self.exit_kid(i, status);
    }

    /// What the exit of the thread that made the spawns does to child `i`: nothing, unless
    /// that thread also launched it (flaw F16) and it is an `Exec` child whose prelude armed
    /// its parent-death signal, which follows the thread that forked; then that signal kills
    /// it while the root lives, a death nobody decided (property 12). (`Fork` is refused in
    /// the root, multi-threaded by the worker; a `ForkServer` child is its server's.)
    fn dies_with_the_spawning_thread(&mut self, i: usize) {
        let kid = &self.st.kids[i];
        if !crate::sim::spawns_from_callers_thread(self.sc.flaws)
            || kid.method != harrow_model::SpawnMethod::Exec
            || kid.proc != Proc::Running
            || !kid.booted
            || !self.sc.parent_death_signal
        {
            return;
        }
        self.note(&kid_name(i), || {
            "its parent-death signal kills it: the thread that spawned it exited".into()
        });
        self.st.violations.push(format!(
            "{} was killed by the exit of the thread that spawned it, while its parent lives \
             (property 12)",
            kid_name(i)
        ));
        self.exit_kid(i, harrow_model::ExitStatus::Signaled(9));
    }

    /// The pure world's processes, channels and clock, borrowed as an operating system.
    fn os(&mut self) -> PureOs<'_> {
        PureOs {
            sc: self.sc,
            now: self.st.now,
            max_frame: self.st.sup.config().max_frame,
            kids: &mut self.st.kids,
            reports: &mut self.st.reports,
            alloc_held_by: &mut self.st.alloc_held_by,
            violations: &mut self.st.violations,
            root_dead: self.st.root_dead,
            trace: &mut self.trace,
            log: &mut self.log,
            staged: Vec::new(),
        }
    }

    /// Runs `step` on the parent's driver: the supervisor over the pure world's operating
    /// system, whose next wait reports `staged`. Then records the events the step produced,
    /// as the user who reads them would.
    ///
    /// The driver lives for this step only. Between steps it holds nothing: every frame was
    /// delivered whole, so its decoders are empty, and its commands and events are drained.
    fn with_driver<R>(
        &mut self,
        staged: Option<OsEvent>,
        step: impl FnOnce(&mut Driver<PureOs<'_>>) -> R,
    ) -> R {
        let cause_before = self.st.sup.teardown_cause();
        let blank = Supervisor::new(*self.st.sup.config()).expect("its config is valid");
        let sup = std::mem::replace(&mut self.st.sup, blank);
        let (sup, result, events) = {
            let mut os = self.os();
            os.staged.extend(staged);
            let mut driver = Driver::new(sup, os);
            let result = step(&mut driver);
            let events: Vec<Event> = std::iter::from_fn(|| driver.poll_event()).collect();
            (driver.sup, result, events)
        };
        self.st.sup = sup;
        let mut failed = Vec::new();
        for ev in events {
            if let Event::Failed(err) = &ev {
                failed.push(err.clone());
            }
            self.record(ev);
        }
        self.check_queries();
        self.cause_kept(cause_before);
        self.claim_errors_checked(failed);
        result
    }

    /// One turn of the parent's event loop, its wait reporting `event`.
    fn turn_with(&mut self, event: OsEvent) {
        self.with_driver(Some(event), |d| d.turn())
            .expect("the pure world's wait never fails");
    }

    fn record(&mut self, ev: Event) {
        match &ev {
            Event::Ready(c) => {
                self.st.ready.insert(c.0 as usize);
                self.note("user", || format!("{c} is ready"));
            }
            // The user claims every answer as it comes, as a caller would.
            Event::RequestEnded { child, id } => {
                let end = self.claim_reply_checked(*child, *id);
                self.answer_kept(*child, *id, end.as_ref());
                self.note("user", || show_end(*child, *id, end));
            }
            Event::Finished(child) => {
                let result = self.claim_result_checked(*child);
                self.note("user", || {
                    let shown = result.as_ref().map_or("none".into(), show_result);
                    format!("result of {child}: {shown}")
                });
            }
            Event::Failed(err) => {
                self.st.failures += 1;
                if matches!(err.kind, harrow_model::ChildErrorKind::Protocol(_))
                    && let Some(kid) = self.st.kids.get_mut(err.child.0 as usize)
                {
                    kid.violation_reported = true;
                }
                self.note("user", || format!("error: {err}"));
                self.error_kept(err);
            }
            Event::Ended(c) => {
                self.note("user", || format!("{c} ended"));
                self.stop_carried_out(c.0 as usize);
            }
            Event::Closed(report) => self.note("user", || {
                let took = report
                    .duration()
                    .map(|d| format!("{d:?}"))
                    .unwrap_or_default();
                format!(
                    "nursery closed after {took}: {} errors, {} abandoned",
                    report.errors.len(),
                    report.abandoned
                )
            }),
        }
    }
}

impl World<'_> {
    /// Property 15: a request its child answered before dying in a later one ends as that
    /// answer.
    fn answer_kept(
        &mut self,
        child: ChildId,
        id: harrow_model::RequestId,
        end: Option<&RequestEnd>,
    ) {
        let answered = self
            .st
            .kids
            .get(child.0 as usize)
            .is_some_and(|k| k.answered.contains(&id));
        let got_it = matches!(end, Some(RequestEnd::Answered { reply, .. }) if *reply == id);
        if answered && !got_it {
            self.st.violations.push(format!(
                "{} answered {id} before it died in a later request, but its caller never got \
                 that answer (property 15)",
                kid_name(child.0 as usize)
            ));
        }
    }
}

/// A line of the trace: at `now`, `who` did `what`.
fn line(now: Timestamp, who: &str, what: &str) -> String {
    format!("[{:>10}] {who:<9} {what}", now.to_string())
}

fn kid_name(i: usize) -> String {
    format!("child#{i}")
}

/// How a request ended, as the trace says it.
fn show_end(child: ChildId, id: harrow_model::RequestId, end: Option<RequestEnd>) -> String {
    match end {
        Some(RequestEnd::Answered { reply, result }) if reply == id => {
            format!("reply from {child} to {id}: {}", show_result(&result))
        }
        Some(RequestEnd::Answered { reply, result }) => format!(
            "reply from {child} to {id}, by the reply to {reply}: {}",
            show_result(&result)
        ),
        Some(other) => format!("{id} to {child} ended: {other:?}"),
        None => format!("{id} to {child} ended, given up"),
    }
}

fn show_result(r: &Result<Vec<u8>, harrow_model::wire::RemoteError>) -> String {
    match r {
        Ok(bytes) => format!("ok {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => e.to_string(),
    }
}
