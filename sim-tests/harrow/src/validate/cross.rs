//! A nursery's trace against its children's: what the kernel promises across processes.
//!
//! Every line is stamped with `CLOCK_MONOTONIC`, one clock for all processes, so the lines of
//! a parent and its child can be put in one order. A child writes its last line before its
//! channel closes (its exit is that close), so the parent must not be told of end-of-file
//! before it; and each direction of a channel is a byte stream, delivered in order, with
//! nothing lost before an end-of-file the reader saw.

use std::time::Duration;

use harrow_model::ChildId;
use harrow_model::trace::{Record, TracedChildEvent, TracedEvent};

use super::{Failure, Trace, show};

/// A child trace matched to the launch that started it.
#[derive(Debug)]
pub(super) struct Matched<'t> {
    child: ChildId,
    /// The step of its launch in the nursery's trace.
    launch: usize,
    trace: &'t Trace,
}

/// The traces of the process children `nursery` launched: by pid, and of the processes of
/// that pid (pids are reused), the first to start after the step before the launch.
pub(super) fn children_of<'t>(nursery: &Trace, children: &[&'t Trace]) -> Vec<Matched<'t>> {
    let start = |t: &Trace| match t.lines.first().map(|l| (&l.rec, l.t)) {
        Some((Record::ChildStart { pid, .. }, at)) => Some((*pid, at)),
        _ => None,
    };
    let mut found = Vec::new();
    for (i, line) in nursery.lines.iter().enumerate().skip(1) {
        let Record::Launch {
            child,
            result: Ok(()),
            pid: Some(pid),
            ..
        } = &line.rec
        else {
            continue;
        };
        let before = nursery.lines[i - 1].t;
        let first = children
            .iter()
            .filter_map(|t| start(t).map(|s| (s, *t)))
            .filter(|((p, at), _)| p == pid && *at >= before)
            .min_by_key(|((_, at), _)| *at);
        if let Some((_, trace)) = first {
            found.push(Matched {
                child: *child,
                launch: i + 1,
                trace,
            });
        }
    }
    found
}

/// What the nursery's trace shows of one child's channel.
#[derive(Debug, Default)]
struct Seen {
    /// The bytes received, each run with the step it arrived at.
    received: Vec<(usize, Vec<u8>)>,
    sent: Vec<u8>,
    /// The step and time of its end-of-file.
    eof: Option<(usize, u64)>,
    /// Whether our end was closed before that end-of-file.
    closed_first: bool,
}

fn seen(nursery: &Trace, c: ChildId) -> Seen {
    let mut s = Seen::default();
    for (i, line) in nursery.lines.iter().enumerate() {
        match &line.rec {
            Record::Send { child, frame } if *child == c => s.sent.extend_from_slice(&frame.0),
            Record::Close { child } if *child == c && s.eof.is_none() => s.closed_first = true,
            Record::Wait { events, .. } => {
                for ev in events {
                    match ev {
                        TracedEvent::Bytes(child, b) if *child == c => {
                            s.received.push((i + 1, b.0.clone()));
                        }
                        TracedEvent::Eof(child) if *child == c => s.eof = Some((i + 1, line.t)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// Checks every matched child's trace against the nursery's.
pub(super) fn check(nursery: &Trace, children: &[Matched<'_>]) -> Result<(), Failure> {
    for m in children {
        let s = seen(nursery, m.child);
        eof_after_last_line(m, &s)?;
        stream_from_child(m, &s)?;
        stream_to_child(m, &s)?;
    }
    Ok(())
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
             {} ({}) {:?} later: its end was open",
            m.child,
            m.trace.lines.len(),
            m.trace.path,
            show::record(&last.rec, harrow_model::wire::DEFAULT_MAX_FRAME),
            Duration::from_nanos(last.t - t_eof)
        ),
    })
}

/// The bytes the nursery received from the child are what the child sent, in order; all of
/// it, if the nursery read to the end-of-file without closing first.
fn stream_from_child(m: &Matched<'_>, s: &Seen) -> Result<(), Failure> {
    let sent: Vec<u8> = m
        .trace
        .lines
        .iter()
        .filter_map(|l| match &l.rec {
            Record::ChildSend { frame } => Some(frame.0.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    let rule = "a channel delivers the bytes sent, in order";
    let mut at = 0;
    for (step, run) in &s.received {
        let want = sent.get(at..at + run.len());
        if want != Some(run.as_slice()) {
            return Err(Failure {
                step: *step,
                rule,
                message: format!(
                    "the parent received bytes {at}..{} from {}, which its child ({}) did not \
                     send there (it sent {} bytes in all)",
                    at + run.len(),
                    m.child,
                    m.trace.path,
                    sent.len()
                ),
            });
        }
        at += run.len();
    }
    match s.eof {
        Some((step, _)) if !s.closed_first && at != sent.len() => Err(Failure {
            step,
            rule,
            message: format!(
                "end-of-file from {} after {at} of the {} bytes its child sent: the rest was lost",
                m.child,
                sent.len()
            ),
        }),
        _ => Ok(()),
    }
}

/// The bytes the child read are a prefix of what the nursery sent it.
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
