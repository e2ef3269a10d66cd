//! Determinism and the properties: a nursery's recorded inputs fed to a fresh driver over
//! an operating system that answers as recorded and checks that it is asked for exactly
//! what was recorded.

use std::collections::{BTreeSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use harrow_model::driver::{Driver, Os, OsEvent, WaitError};
use harrow_model::invariant::{self, Stepped};
use harrow_model::supervisor::{Event, Phase, Supervisor, SupervisorConfig};
use harrow_model::trace::{Line, Record};
use harrow_model::{ChildId, ExitStatus, Situation, SpawnMethod, Timestamp};

use super::rules::Rules;
use super::{Failure, Trace, show};

/// What real time may add to a protocol bound: scheduling, the trace's own writes, and the
/// work of a step that is not waiting.
pub const EPSILON: Duration = Duration::from_millis(250);

/// The rule a replay that asks for something else breaks.
const DETERMINISM: &str = "determinism: the model decides as recorded";
/// What a replayed call answers once the replay has failed (the driver only unwinds then).
const STOPPED: &str = "the replay stopped";

/// A child launched in the replay: the step and real time of its launch.
#[derive(Clone, Copy, Debug)]
struct Launched {
    child: ChildId,
    step: usize,
    t: u64,
}

/// The operating system of the replayed driver: it answers from the trace.
#[derive(Debug)]
struct ReplayOs<'t> {
    lines: &'t [Line],
    /// The index of the next line to take.
    pos: usize,
    failure: Option<Failure>,
    rules: Rules,
    now: Timestamp,
    max_frame: u32,
    /// Children launched since the last step was checked.
    launched: Vec<Launched>,
    /// Children launched and not yet retired.
    live: BTreeSet<ChildId>,
    /// The spawn methods of every child launched.
    methods: BTreeSet<SpawnMethod>,
}

impl<'t> ReplayOs<'t> {
    /// Takes the next line if `fits` says it records what the model asks for (`says`);
    /// otherwise notes the mismatch.
    fn take(
        &mut self,
        says: impl FnOnce(u32) -> String,
        fits: impl FnOnce(&Record) -> bool,
    ) -> Option<&'t Record> {
        if self.failure.is_some() {
            return None;
        }
        let step = self.pos + 1;
        let lines = self.lines;
        let Some(line) = lines.get(self.pos) else {
            self.failure = Some(Failure {
                step,
                rule: DETERMINISM,
                message: format!("the trace ends; the model says: {}", says(self.max_frame)),
            });
            return None;
        };
        if !fits(&line.rec) {
            self.failure = Some(Failure {
                step,
                rule: DETERMINISM,
                message: format!(
                    "recorded {}; the model says: {}",
                    show::record(&line.rec, self.max_frame),
                    says(self.max_frame)
                ),
            });
            return None;
        }
        self.pos += 1;
        if let Err(f) = self.rules.check(step, line) {
            self.failure = Some(f);
            return None;
        }
        Some(&line.rec)
    }

    fn command(&mut self, child: ChildId, what: &str, fits: impl FnOnce(&Record) -> bool) {
        self.take(|_| format!("{what} {child}"), fits);
    }
}

impl Os for ReplayOs<'_> {
    fn now(&mut self) -> Timestamp {
        if let Some(Record::Now { now }) = self.take(
            |_| "read the clock".into(),
            |r| matches!(r, Record::Now { .. }),
        ) {
            self.now = *now;
        }
        self.now
    }

    fn situation(&mut self) -> Situation {
        match self.take(
            |_| "read the situation".into(),
            |r| matches!(r, Record::Situation { .. }),
        ) {
            Some(Record::Situation { situation }) => *situation,
            _ => Situation::default(),
        }
    }

    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String> {
        let rec = self.take(
            |_| format!("launch {child} ({actor}, {method:?})"),
            |r| {
                matches!(r, Record::Launch { child: c, actor: a, method: m, .. }
                if *c == child && a == actor && *m == method)
            },
        );
        let Some(Record::Launch { result, .. }) = rec else {
            return Err(STOPPED.into());
        };
        if result.is_ok() {
            self.live.insert(child);
            self.methods.insert(method);
            self.launched.push(Launched {
                child,
                step: self.pos,
                t: self.lines[self.pos - 1].t,
            });
        }
        result.clone()
    }

    fn send(&mut self, child: ChildId, frame: &[u8]) {
        self.take(
            |max| format!("send to {child} [{}]", show::frame(frame, max)),
            |r| matches!(r, Record::Send { child: c, frame: f } if *c == child && f.0 == frame),
        );
    }

    fn close(&mut self, child: ChildId) {
        self.command(
            child,
            "close the channel of",
            |r| matches!(r, Record::Close { child: c } if *c == child),
        );
    }

    fn kill(&mut self, child: ChildId) {
        self.command(
            child,
            "SIGKILL",
            |r| matches!(r, Record::Kill { child: c } if *c == child),
        );
    }

    fn abandon(&mut self, child: ChildId) {
        self.command(
            child,
            "abandon",
            |r| matches!(r, Record::Abandon { child: c } if *c == child),
        );
    }

    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String> {
        match self.take(
            |_| format!("reap {child}"),
            |r| matches!(r, Record::Reap { child: c, .. } if *c == child),
        ) {
            Some(Record::Reap { result, .. }) => result.clone(),
            _ => Err(STOPPED.into()),
        }
    }

    fn retire(&mut self, child: ChildId) {
        self.live.remove(&child);
        self.command(
            child,
            "retire",
            |r| matches!(r, Record::Retire { child: c } if *c == child),
        );
    }

    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError> {
        let rec = self.take(
            |_| match deadline {
                Some(d) => format!("wait until {}", show::time(d)),
                None => "wait with no deadline".into(),
            },
            |r| matches!(r, Record::Wait { deadline: d, .. } if *d == deadline),
        );
        let Some(Record::Wait { events, failed, .. }) = rec else {
            return Err(WaitError::Failed(STOPPED.into()));
        };
        out.extend(events.iter().cloned().map(OsEvent::from));
        match failed {
            Some(why) => Err(WaitError::Failed(why.clone())),
            None => Ok(()),
        }
    }
}

/// The replay of one nursery's trace.
struct Replay<'t> {
    d: Driver<ReplayOs<'t>>,
    config: SupervisorConfig,
    /// Events the model queued that the trace has not shown the nursery taking yet.
    pending: VecDeque<Event>,
    /// When teardown's bound started: its step and real time.
    teardown: Option<(usize, u64)>,
    closed: bool,
    /// Launched children not yet out of their boot.
    booting: Vec<Launched>,
}

/// Replays a nursery's trace: `Err` with the first step that does not fit.
pub(super) fn replay(trace: &Trace) -> Result<(), Failure> {
    let Some(Record::Open { config, .. }) = trace.lines.first().map(|l| &l.rec) else {
        return Err(Failure {
            step: 1,
            rule: "a nursery's trace opens with its configuration",
            message: "the first line is no `open`".into(),
        });
    };
    let sup = Supervisor::new(*config).map_err(|e| Failure {
        step: 1,
        rule: "a valid configuration",
        message: e.to_string(),
    })?;
    let os = ReplayOs {
        lines: &trace.lines,
        pos: 1,
        failure: None,
        rules: Rules::new(config.max_frame),
        now: Timestamp::ZERO,
        max_frame: config.max_frame,
        launched: Vec::new(),
        live: BTreeSet::new(),
        methods: BTreeSet::new(),
    };
    let mut r = Replay {
        d: Driver::new(sup, os),
        config: *config,
        pending: VecDeque::new(),
        teardown: None,
        closed: false,
        booting: Vec::new(),
    };
    match catch_unwind(AssertUnwindSafe(|| r.run())) {
        Ok(result) => result,
        Err(panic) => Err(Failure {
            step: r.d.os.pos,
            rule: "the model accepts every input the kernel can produce",
            message: format!("the model panicked here: {}", panic_text(panic.as_ref())),
        }),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => (*s).into(),
        (_, Some(s)) => s.clone(),
        _ => "a panic with no message".into(),
    }
}

impl Replay<'_> {
    fn run(&mut self) -> Result<(), Failure> {
        let lines = self.d.os.lines;
        while let Some(line) = lines.get(self.d.os.pos) {
            let step = self.d.os.pos + 1;
            if let Record::Wait { deadline, .. } = line.rec {
                // The wait's deadline is the protocol's or the caller's, whichever is first:
                // passed as the caller's, the model's own must not be earlier.
                let _ = self.d.turn_until(deadline);
            } else {
                self.d.os.rules.check(step, line)?;
                self.d.os.pos += 1;
                self.user(step, &line.rec)?;
            }
            if let Some(f) = self.d.os.failure.take() {
                return Err(f);
            }
            let last = self.d.os.pos;
            self.after((step, line.t), (last, lines[last - 1].t))?;
        }
        Ok(())
    }

    /// Replays a line recorded outside any call of the driver: the user's calls.
    fn user(&mut self, step: usize, rec: &Record) -> Result<(), Failure> {
        let d = &mut self.d;
        match rec {
            // The nursery reads the clock for its own deadlines.
            Record::Now { .. } => {}
            Record::Spawn { spec } => drop(d.spawn(spec.clone())),
            Record::Request {
                child,
                payload,
                deadline,
            } => drop(d.request(*child, payload.0.clone(), *deadline)),
            Record::AbandonRequest { child, id } => drop(d.abandon_request(*child, *id)),
            Record::Cancel { child } => drop(d.cancel(*child)),
            Record::HardStop { child } => drop(d.hard_stop(*child)),
            Record::BeginTeardown { cause } => d.begin_teardown(*cause),
            Record::ClaimReply { child, id } => drop(d.sup.claim_reply(*child, *id)),
            Record::ClaimResult { child } => drop(d.sup.claim_result(*child)),
            Record::ClaimErrors => drop(d.sup.claim_errors()),
            Record::Event { event } => return self.event(step, event),
            Record::Truncated { limit } => {
                return Err(Failure {
                    step,
                    rule: "a trace is complete",
                    message: format!(
                        "the trace was truncated at its limit of {limit} bytes: raise \
                         HARROW_TRACE_MAX_BYTES"
                    ),
                });
            }
            other => {
                return Err(Failure {
                    step,
                    rule: DETERMINISM,
                    message: format!(
                        "recorded {}; the model says: nothing (no call of the driver is under \
                         way that would do it)",
                        show::record(other, self.config.max_frame)
                    ),
                });
            }
        }
        Ok(())
    }

    /// The nursery took an event: the model must have queued the same one next.
    fn event(&mut self, step: usize, event: &Event) -> Result<(), Failure> {
        self.drain();
        match self.pending.pop_front() {
            Some(e) if e == *event => Ok(()),
            other => Err(Failure {
                step,
                rule: DETERMINISM,
                message: show::cut(format!(
                    "recorded the event {event:?}; the model queued {}",
                    other.map_or_else(|| "none".into(), |e| format!("{e:?}"))
                )),
            }),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.d.poll_event() {
            self.pending.push_back(e);
        }
    }

    /// After each step (a user's call or a loop turn, and what it made the driver do): the
    /// invariants, and the liveness bounds in real time. `first` and `last` are the step
    /// numbers and times of its first and last lines.
    fn after(&mut self, first: (usize, u64), last: (usize, u64)) -> Result<(), Failure> {
        self.drain();
        self.invariants(last.0)?;
        self.boot(last.0, last.1)?;
        self.teardown(first, last)
    }

    fn invariants(&self, step: usize) -> Result<(), Failure> {
        let (sup, os) = (&self.d.sup, &self.d.os);
        let errors_from = sup.errors().len();
        for child in &os.live {
            let stepped = Stepped {
                child: *child,
                errors_from,
            };
            invariant::check_step(sup, stepped).map_err(|v| Failure {
                step,
                rule: "the model's invariants",
                message: v.to_string(),
            })?;
        }
        Ok(())
    }

    /// Property 7 in real time: every launched child leaves its boot within the boot
    /// timeout (+ ε): by its handshake, its death, or being stopped.
    fn boot(&mut self, step: usize, t: u64) -> Result<(), Failure> {
        self.booting.append(&mut self.d.os.launched);
        let sup = &self.d.sup;
        self.booting.retain(|l| {
            sup.lifecycle(l.child)
                .is_some_and(|life| in_boot(life.phase))
        });
        let bound = self.config.timeouts.boot + EPSILON;
        match self
            .booting
            .iter()
            .find(|l| t.saturating_sub(l.t) > bound.as_nanos() as u64)
        {
            Some(l) => Err(Failure {
                step,
                rule: "every spawn leaves its boot within the boot timeout (property 7)",
                message: format!(
                    "{} is still booting {:?} of real time after its launch at step {}, over \
                     its bound of {bound:?} (boot {:?} + ε {EPSILON:?})",
                    l.child,
                    Duration::from_nanos(t - l.t),
                    l.step,
                    self.config.timeouts.boot
                ),
            }),
            None => Ok(()),
        }
    }

    /// Property 8 in real time: from the step that started teardown's bound to the one
    /// that closed the nursery.
    fn teardown(&mut self, first: (usize, u64), (step, t): (usize, u64)) -> Result<(), Failure> {
        let sup = &self.d.sup;
        if self.teardown.is_none()
            && sup.teardown_cause().is_some()
            && sup.report().started.is_some()
        {
            self.teardown = Some(first);
        }
        let Some((from, t0)) = self.teardown else {
            return Ok(());
        };
        if self.closed || !sup.is_closed() {
            return Ok(());
        }
        self.closed = true;
        let timeouts = self.config.timeouts;
        let grace = self
            .d
            .os
            .methods
            .iter()
            .map(|m| timeouts.grace(*m))
            .max()
            .unwrap_or_default();
        let bound = timeouts.cancel_ack + grace + timeouts.drain + EPSILON;
        let took = Duration::from_nanos(t.saturating_sub(t0));
        if took > bound {
            return Err(Failure {
                step,
                rule: "teardown ends within cancel_ack + grace (property 8)",
                message: format!(
                    "teardown took {took:?} of real time (from step {from}), over its bound of \
                     {bound:?} (cancel_ack {:?} + grace {grace:?} + drain {:?} + ε {EPSILON:?})",
                    timeouts.cancel_ack, timeouts.drain
                ),
            });
        }
        Ok(())
    }
}

/// Whether a child is still in its boot: launched, its handshake not yet done.
fn in_boot(phase: Phase) -> bool {
    matches!(phase, Phase::Launching | Phase::AwaitingHandshake)
}
