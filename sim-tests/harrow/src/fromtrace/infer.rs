//! The scenario a nursery's trace is a run of: its timeouts, each child's method, role and
//! behaviour (read from what the parent saw of it), the requests and the ending.

use std::collections::BTreeMap;

use harrow_model::supervisor::{SpawnSpec, TeardownCause};
use harrow_model::trace::{Record, TracedEvent};
use harrow_model::wire::{Message, RemoteErrorKind, Role};
use harrow_model::{ChildId, ExitStatus};
use harrow_sim::scenario::{ABORTED, Behaviour, ChildPlan, Ending, Fault, Scenario};

use super::Refusal;
use super::seen::{Reader, Seen};
use crate::validate::Trace;

/// A nursery's trace read as a scenario, with what its parent saw.
#[derive(Debug)]
pub(super) struct Inferred {
    /// The scenario.
    pub(super) scenario: Scenario,
    /// What the parent did with and heard from each child, in the trace's order.
    pub(super) seen: Vec<(ChildId, Seen)>,
}

/// What the user's calls in a trace say: the spawns, the launched children's specs, the
/// requests per child and how the body ended.
#[derive(Debug, Default)]
struct Body {
    spawns: Vec<SpawnSpec>,
    launched: BTreeMap<ChildId, SpawnSpec>,
    requests: BTreeMap<ChildId, u32>,
    ending: Option<Ending>,
}

/// Reads `trace` (a nursery's) as a scenario named `name`.
pub(super) fn infer(trace: &Trace, name: &str) -> Result<Inferred, Refusal> {
    let Some(Record::Open { config, .. }) = trace.lines.first().map(|l| &l.rec) else {
        return Err(Refusal::Input(format!(
            "{}: not a nursery's trace",
            trace.path
        )));
    };
    let body = body(trace)?;
    let mut reader = Reader::new(config.max_frame);
    for line in &trace.lines {
        reader.read(&line.rec).map_err(Refusal::Inexpressible)?;
    }
    let ending = body.ending.ok_or_else(|| {
        Refusal::Input(format!(
            "{}: the nursery never began its teardown in this trace (cut short?)",
            trace.path
        ))
    })?;
    let mut sc = Scenario::new(name, Vec::new(), ending);
    sc.timeouts = config.timeouts;
    sc.flaws = config.flaws;
    sc.requests = uniform_requests(&body)?;
    let child_of: BTreeMap<&str, ChildId> = body
        .launched
        .iter()
        .map(|(c, s)| (s.name.as_str(), *c))
        .collect();
    for (i, spec) in body.spawns.iter().enumerate() {
        let behaviour = match child_of.get(spec.name.as_str()) {
            Some(&c) => {
                let (b, killed) = behaviour(c, spec, &reader)?;
                if killed {
                    sc.faults.push(Fault::SigkillChild { child: i });
                }
                b
            }
            // Never launched: refused by the nursery, so it never ran.
            None => Behaviour::Serves,
        };
        sc.children.push(ChildPlan {
            name: spec.name.clone(),
            method: spec.method,
            role: spec.role,
            behaviour,
            children: Vec::new(),
        });
    }
    Ok(Inferred {
        scenario: sc,
        seen: reader.seen,
    })
}

/// The user's calls of the trace; a call the scenario's body never makes is refused.
fn body(trace: &Trace) -> Result<Body, Refusal> {
    let mut b = Body::default();
    let mut spawning: Option<SpawnSpec> = None;
    for (n, line) in trace.lines.iter().enumerate() {
        let at = || format!("{}:{}", trace.path, n + 1);
        match &line.rec {
            Record::Spawn { spec } => {
                if b.spawns.iter().any(|s| s.name == spec.name) {
                    return Err(Refusal::Body(format!(
                        "{}: a second child named `{}`: a scenario's children have one name each",
                        at(),
                        spec.name
                    )));
                }
                b.spawns.push(spec.clone());
                spawning = Some(spec.clone());
            }
            Record::Launch { child, result, .. } => {
                if let Err(e) = result {
                    return Err(Refusal::Body(format!(
                        "{}: the launch of {child} failed ({e}): the simulator's launches do not fail",
                        at()
                    )));
                }
                let spec = spawning.take().expect("a launch is made by a spawn");
                b.launched.insert(*child, spec);
            }
            Record::Request {
                child, deadline, ..
            } => {
                if deadline.is_some() {
                    return Err(Refusal::Body(format!(
                        "{}: a request to {child} has a timeout: the scenario's requests from a \
                         trace have none",
                        at()
                    )));
                }
                *b.requests.entry(*child).or_default() += 1;
            }
            Record::Cancel { child }
            | Record::HardStop { child }
            | Record::AbandonRequest { child, .. } => {
                return Err(Refusal::Body(format!(
                    "{}: the user's call `{}` on {child}: the scenario's body only spawns, \
                     requests and ends",
                    at(),
                    super::op(&line.rec)
                )));
            }
            Record::BeginTeardown { cause } if b.ending.is_none() => {
                b.ending = match cause {
                    TeardownCause::BodyFinished => Some(Ending::Finish),
                    TeardownCause::BodyFailed => Some(Ending::Fail),
                    TeardownCause::Interrupted => Some(Ending::Interrupt),
                    TeardownCause::ChildFailed(_) => None,
                };
            }
            Record::Wait { events, .. } if events.contains(&TracedEvent::Interrupt) => {
                b.ending.get_or_insert(Ending::Interrupt);
            }
            Record::Truncated { limit } => {
                return Err(Refusal::Input(format!(
                    "{}: the trace was cut at its limit of {limit} bytes",
                    at()
                )));
            }
            _ => {}
        }
    }
    Ok(b)
}

/// The scenario sends each serving daemon the same number of requests: the trace's must
/// agree.
fn uniform_requests(b: &Body) -> Result<u32, Refusal> {
    let mut counts = b.requests.iter();
    let Some((first, &n)) = counts.next() else {
        return Ok(0);
    };
    match counts.find(|(_, k)| **k != n) {
        Some((other, k)) => Err(Refusal::Body(format!(
            "{first} was sent {n} requests and {other} {k}: the scenario sends each daemon as \
             many"
        ))),
        None => Ok(n),
    }
}

/// How a SIGKILLed process ends.
const KILLED: ExitStatus = ExitStatus::Signaled(9);

/// What the parent saw of child `c`.
struct Seen1<'r> {
    got: &'r [Message],
    cancelled: bool,
    killed: bool,
    status: Option<ExitStatus>,
}

/// Child `c`'s behaviour, read from what its parent saw of it, and whether something
/// outside the nursery SIGKILLed it.
fn behaviour(c: ChildId, spec: &SpawnSpec, r: &Reader) -> Result<(Behaviour, bool), Refusal> {
    let mine = r.seen.iter().filter(|(k, _)| *k == c).map(|(_, s)| s);
    let s = Seen1 {
        got: r.got.get(&c).map_or(&[], Vec::as_slice),
        cancelled: mine.clone().any(|s| *s == Seen::Send("Cancel".into())),
        killed: mine.clone().any(|s| *s == Seen::Kill),
        status: mine
            .filter_map(|s| match s {
                Seen::Reap(Ok(st)) => Some(*st),
                _ => None,
            })
            .next(),
    };
    let did = |what: String| {
        Err(Refusal::Inexpressible(format!(
            "{c} (`{}`, {}) {what}: no behaviour of the scenario language does that",
            spec.name, spec.actor
        )))
    };
    let outside_kill = !s.killed && s.status == Some(KILLED);
    if !s.got.iter().any(|m| matches!(m, Message::Handshake { .. })) {
        return match s.status {
            Some(ExitStatus::Exited(code)) if !s.killed => {
                Ok((Behaviour::CrashesBeforeHandshake { code }, false))
            }
            other => did(format!(
                "never completed its handshake (it ended {other:?})"
            )),
        };
    }
    if let Some(b) = failed(&s)? {
        return Ok((b, outside_kill));
    }
    let b = match spec.role {
        Role::RunToResult => run_to_result(&s),
        Role::Daemon => daemon(&s),
    };
    match b {
        Ok(b) => Ok((b, outside_kill)),
        Err(what) => did(what),
    }
}

/// A child whose actor reported a failure.
fn failed(s: &Seen1<'_>) -> Result<Option<Behaviour>, Refusal> {
    let failures: Vec<&str> = s
        .got
        .iter()
        .filter_map(|m| match m {
            Message::Failed(e) => Some(e.message.as_str()),
            _ => None,
        })
        .collect();
    Ok(match failures.as_slice() {
        [] => None,
        [one] => Some(Behaviour::FailsActor {
            message: (*one).into(),
        }),
        [one, ..] => Some(Behaviour::ReportsFailureTwice {
            message: (*one).into(),
        }),
    })
}

fn run_to_result(s: &Seen1<'_>) -> Result<Behaviour, String> {
    let result = s.got.iter().find_map(|m| match m {
        Message::Finished { result } => Some(result),
        _ => None,
    });
    match (result, s.status) {
        (Some(Ok(_)), _) => Ok(Behaviour::Serves),
        (Some(Err(e)), _) => Ok(Behaviour::FailsMain {
            message: e.message.clone(),
        }),
        (None, Some(ExitStatus::Exited(code))) if !s.killed && code != 0 => {
            Ok(Behaviour::CrashesAfterHandshake { code })
        }
        (None, Some(KILLED)) if s.killed && s.cancelled => Ok(Behaviour::BlocksForever),
        (None, status) => Err(format!(
            "returned no result and ended {status:?} without being killed"
        )),
    }
}

fn daemon(s: &Seen1<'_>) -> Result<Behaviour, String> {
    let replies: Vec<_> = s
        .got
        .iter()
        .filter_map(|m| match m {
            Message::Reply { result, .. } => Some(result),
            _ => None,
        })
        .collect();
    let acked = s.got.contains(&Message::CancelAck);
    let errs = replies.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = replies
        .iter()
        .find(|r| matches!(r, Err(e) if e.kind == RemoteErrorKind::Panic))
    {
        return Ok(Behaviour::PanicsInRequests {
            message: e.message.clone(),
        });
    }
    let serving = match errs {
        0 => Behaviour::Serves,
        n if n == replies.len() => Behaviour::FailsRequests,
        n => {
            return Err(format!(
                "answered {} of its requests and failed {n}",
                replies.len() - n
            ));
        }
    };
    match s.status {
        _ if acked => Ok(serving),
        Some(ExitStatus::Exited(ABORTED)) if !s.killed && serving == Behaviour::Serves => {
            Ok(Behaviour::CrashesInRequest {
                nth: replies.len() as u32,
            })
        }
        Some(ExitStatus::Exited(code)) if !s.killed && replies.is_empty() => {
            Ok(Behaviour::CrashesAfterHandshake { code })
        }
        Some(KILLED) if s.killed && s.cancelled && replies.is_empty() => {
            Ok(Behaviour::BlocksForever)
        }
        Some(KILLED) if !s.killed => Ok(serving),
        status => Err(format!(
            "answered {} requests, then ended {status:?} without acknowledging a cancel",
            replies.len()
        )),
    }
}
