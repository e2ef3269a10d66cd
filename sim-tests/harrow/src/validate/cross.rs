//! A nursery's trace against its children's: what the kernel promises across processes.
//!
//! Every line is stamped with `CLOCK_MONOTONIC`, one clock for all processes, so the lines of
//! a parent and its child can be put in one order. A child writes its last line before its
//! channel closes (its exit is that close), so the parent must not be told of end-of-file
//! before it; and what the child's loop reads is what the parent sent, in order.
//!
//! What the parent received is not held against what the child's loop sent: an actor may
//! write to its channel itself, behind its loop (harrow's hostile smoke actors do), and
//! those bytes are in no trace.

use std::collections::BTreeMap;
use std::time::Duration;

use harrow_model::ChildId;
use harrow_model::trace::{Line, Record, TracedChildEvent, TracedEvent};

use super::{Failure, Trace, show};

/// A child trace matched to the launch that started it.
#[derive(Debug)]
pub(super) struct Matched<'t> {
    child: ChildId,
    /// The step of its launch in the nursery's trace.
    launch: usize,
    trace: &'t Trace,
}

/// The child traces by the pid that wrote them, each pid's in the order they started.
pub(super) type ByPid<'t> = BTreeMap<u32, Vec<(u64, &'t Trace)>>;

/// Indexes child traces by pid.
pub(super) fn by_pid<'t>(children: &[&'t Trace]) -> ByPid<'t> {
    let mut index: ByPid<'t> = BTreeMap::new();
    for t in children {
        if let Some(Line {
            t: at,
            rec: Record::ChildStart { pid, .. },
        }) = t.lines.first()
        {
            index.entry(*pid).or_default().push((*at, t));
        }
    }
    for traces in index.values_mut() {
        traces.sort_by_key(|(at, _)| *at);
    }
    index
}

/// What the nursery's trace shows of one child.
#[derive(Debug, Default)]
struct Seen {
    /// The step of its launch, its pid, and the time of the step before (the earliest its
    /// trace can have started).
    launch: Option<(usize, u32, u64)>,
    /// The first time the nursery heard of it (an event) or reaped it: its trace started
    /// before.
    heard: Option<u64>,
    /// What the nursery sent it.
    sent: Vec<u8>,
    /// The step and time of its end-of-file.
    eof: Option<(usize, u64)>,
}

/// What the nursery's trace shows of each child it launched as a process, in one pass.
fn seen(nursery: &Trace) -> BTreeMap<ChildId, Seen> {
    let mut all: BTreeMap<ChildId, Seen> = BTreeMap::new();
    let mut before = 0;
    for (i, line) in nursery.lines.iter().enumerate() {
        let step = i + 1;
        let mut heard = |c: &ChildId| {
            if let Some(s) = all.get_mut(c) {
                s.heard.get_or_insert(line.t);
            }
        };
        match &line.rec {
            Record::Reap { child, .. } => heard(child),
            Record::Wait { events, .. } => {
                for ev in events {
                    if let TracedEvent::Bytes(c, _) | TracedEvent::Eof(c) | TracedEvent::Exited(c) =
                        ev
                    {
                        heard(c);
                    }
                }
            }
            _ => {}
        }
        match &line.rec {
            Record::Launch {
                child,
                result: Ok(()),
                pid: Some(pid),
                ..
            } => {
                let s = all.entry(*child).or_default();
                s.launch = Some((step, *pid, before));
            }
            Record::Send { child, frame } => {
                if let Some(s) = all.get_mut(child) {
                    s.sent.extend_from_slice(&frame.0);
                }
            }
            Record::Wait { events, .. } => {
                for ev in events {
                    if let TracedEvent::Eof(c) = ev
                        && let Some(s) = all.get_mut(c)
                    {
                        s.eof = Some((step, line.t));
                    }
                }
            }
            _ => {}
        }
        before = line.t;
    }
    all
}

/// The trace of the process `s` describes: of the processes of its pid (pids are reused),
/// the first to start after the step before its launch, if that was before the nursery
/// first heard of it. A child never heard of is matched to none: a later process of a
/// reused pid could not be told from it.
fn matched<'t>(s: &Seen, children: &ByPid<'t>) -> Option<&'t Trace> {
    let ((_, pid, before), heard) = (s.launch?, s.heard?);
    let traces = children.get(&pid)?;
    let first = traces.partition_point(|(at, _)| *at < before);
    traces
        .get(first)
        .filter(|(at, _)| *at <= heard)
        .map(|(_, t)| *t)
}

/// Checks the nursery's trace against its children's; returns how many were matched.
pub(super) fn check(nursery: &Trace, children: &ByPid<'_>) -> Result<usize, Failure> {
    let mut count = 0;
    for (child, s) in seen(nursery) {
        let (Some(trace), Some((launch, _, _))) = (matched(&s, children), s.launch) else {
            continue;
        };
        let m = Matched {
            child,
            launch,
            trace,
        };
        eof_after_last_line(&m, &s)?;
        stream_to_child(&m, &s)?;
        count += 1;
    }
    Ok(count)
}

fn eof_after_last_line(m: &Matched<'_>, s: &Seen) -> Result<(), Failure> {
    let (Some((step, t_eof)), Some(last)) = (s.eof, m.trace.lines.last()) else {
        return Ok(());
    };
    if last.t <= t_eof {
        return Ok(());
    }
    Err(Failure {
        step,
        rule: "end-of-file only after the last copy of the write end closed",
        message: format!(
            "the parent was told of {}'s end-of-file, but the child then still wrote step {} of \
             {} ({}) {:?} later: its end was open (unless its actor shut the channel down \
             itself, behind its loop, which the simulated kernel does not model)",
            m.child,
            m.trace.lines.len(),
            m.trace.path,
            show::record(&last.rec, harrow_model::wire::DEFAULT_MAX_FRAME),
            Duration::from_nanos(last.t - t_eof)
        ),
    })
}

/// The bytes the child's loop read are a prefix of what the nursery sent it.
fn stream_to_child(m: &Matched<'_>, s: &Seen) -> Result<(), Failure> {
    let mut at = 0;
    for (i, line) in m.trace.lines.iter().enumerate() {
        let Record::ChildEvents { events } = &line.rec else {
            continue;
        };
        for ev in events {
            let TracedChildEvent::Bytes(b) = ev else {
                continue;
            };
            if s.sent.get(at..at + b.0.len()) != Some(b.0.as_slice()) {
                return Err(Failure {
                    step: m.launch,
                    rule: "a channel delivers the bytes sent, in order",
                    message: format!(
                        "{} (launched here) read bytes {at}..{} at step {} of {}, which the \
                         parent did not send there",
                        m.child,
                        at + b.0.len(),
                        i + 1,
                        m.trace.path
                    ),
                });
            }
            at += b.0.len();
        }
    }
    Ok(())
}
