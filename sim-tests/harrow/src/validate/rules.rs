//! What the operating system may report: the simulated kernel's rules, checked on a real
//! trace one step at a time.

use std::collections::BTreeMap;

use harrow_model::ChildId;
use harrow_model::trace::{Line, Record, TracedChildEvent, TracedEvent};
use harrow_model::wire::{FrameDecoder, Message};

use super::{Failure, Trace};

/// What the trace has shown so far of one child, by the step that showed it.
#[derive(Debug)]
struct Facts {
    launched: bool,
    eof: Option<usize>,
    exited: Option<usize>,
    killed: Option<usize>,
    reaped: Option<usize>,
    retired: Option<usize>,
    acked: Option<usize>,
    /// The messages the child sent, decoded from its bytes.
    decoder: FrameDecoder,
}

/// The rules' state over one nursery's trace.
#[derive(Debug)]
pub(super) struct Rules {
    children: BTreeMap<ChildId, Facts>,
    max_frame: u32,
    last_t: u64,
}

fn fail(step: usize, rule: &'static str, message: String) -> Result<(), Failure> {
    Err(Failure {
        step,
        rule,
        message,
    })
}

/// The rule names, as failures carry them.
pub(super) mod rule {
    /// Lines are stamped in order.
    pub(crate) const CLOCK: &str = "the clock goes forward";
    /// Reports only about children that were launched and not yet retired.
    pub(crate) const KNOWN: &str = "reports only about launched, unretired children";
    /// One end-of-file per channel, and nothing after it.
    pub(crate) const EOF: &str = "end-of-file once, and nothing after it";
    /// One exit per child.
    pub(crate) const EXIT: &str = "a child exits once";
    /// A reap only after an exit or a kill, and once.
    pub(crate) const REAP: &str = "a reap after an exit or a kill, once (property 3)";
    /// A deadline event no earlier than the deadline.
    pub(crate) const DEADLINE: &str = "no deadline before its time";
    /// A child sends nothing after its cancel-ack.
    pub(crate) const ACK_LAST: &str = "nothing after a cancel-ack (child protocol)";
}

impl Rules {
    pub(super) fn new(max_frame: u32) -> Self {
        Rules {
            children: BTreeMap::new(),
            max_frame,
            last_t: 0,
        }
    }

    /// Checks line number `step` and notes what it shows.
    pub(super) fn check(&mut self, step: usize, line: &Line) -> Result<(), Failure> {
        if line.t < self.last_t {
            let back = self.last_t - line.t;
            return fail(
                step,
                rule::CLOCK,
                format!("stamped {back} ns before the step above it"),
            );
        }
        self.last_t = line.t;
        match &line.rec {
            Record::Launch { child, result, .. } => {
                let facts = Facts {
                    launched: result.is_ok(),
                    eof: None,
                    exited: None,
                    killed: None,
                    reaped: None,
                    retired: None,
                    acked: None,
                    decoder: FrameDecoder::new(self.max_frame),
                };
                self.children.insert(*child, facts);
                Ok(())
            }
            Record::Wait {
                deadline,
                events,
                now,
                ..
            } => {
                for ev in events {
                    if let TracedEvent::Deadline = ev
                        && deadline.is_none_or(|d| *now < d)
                    {
                        let asked = deadline.map_or_else(|| "none".into(), super::show::time);
                        return fail(
                            step,
                            rule::DEADLINE,
                            format!(
                                "a deadline event at {}, but the deadline asked for was {asked}",
                                super::show::time(*now)
                            ),
                        );
                    }
                    self.event(step, ev)?;
                }
                Ok(())
            }
            Record::Kill { child } => self.note(step, *child, |f| f.killed = Some(step)),
            Record::Retire { child } => self.note(step, *child, |f| f.retired = Some(step)),
            Record::Reap { child, result } => self.reap(step, *child, result.is_ok()),
            _ => Ok(()),
        }
    }

    /// What is known of `child`, which the step reports about (`started`: it must have
    /// started; a command may name a child whose launch failed).
    fn facts(
        &mut self,
        step: usize,
        child: ChildId,
        what: &str,
        started: bool,
    ) -> Result<&mut Facts, Failure> {
        let Some(f) = self
            .children
            .get_mut(&child)
            .filter(|f| f.launched || !started)
        else {
            return Err(Failure {
                step,
                rule: rule::KNOWN,
                message: format!("{what} {child}, which was never launched"),
            });
        };
        if let Some(r) = f.retired {
            return Err(Failure {
                step,
                rule: rule::KNOWN,
                message: format!("{what} {child}, retired at step {r}"),
            });
        }
        Ok(f)
    }

    fn note(
        &mut self,
        step: usize,
        child: ChildId,
        how: impl FnOnce(&mut Facts),
    ) -> Result<(), Failure> {
        let f = self.facts(step, child, "a command for", false)?;
        how(f);
        Ok(())
    }

    fn reap(&mut self, step: usize, child: ChildId, reaped: bool) -> Result<(), Failure> {
        let f = self.facts(step, child, "a reap of", false)?;
        if !reaped {
            return Ok(());
        }
        if let Some(r) = f.reaped {
            return fail(
                step,
                rule::REAP,
                format!("{child} was reaped a second time (the first at step {r})"),
            );
        }
        if f.exited.is_none() && f.killed.is_none() {
            return fail(
                step,
                rule::REAP,
                format!("{child} was reaped, but had neither exited nor been killed"),
            );
        }
        f.reaped = Some(step);
        Ok(())
    }

    fn event(&mut self, step: usize, ev: &TracedEvent) -> Result<(), Failure> {
        match ev {
            TracedEvent::Bytes(c, bytes) => {
                let f = self.facts(step, *c, "bytes from", true)?;
                if let Some(e) = f.eof {
                    return fail(
                        step,
                        rule::EOF,
                        format!("bytes from {c} after its end-of-file at step {e}"),
                    );
                }
                messages(step, *c, f, &bytes.0)
            }
            TracedEvent::Eof(c) => {
                let f = self.facts(step, *c, "an end-of-file from", true)?;
                if let Some(e) = f.eof {
                    return fail(
                        step,
                        rule::EOF,
                        format!("a second end-of-file from {c} (the first at step {e})"),
                    );
                }
                f.eof = Some(step);
                Ok(())
            }
            TracedEvent::Exited(c) => {
                let f = self.facts(step, *c, "an exit of", true)?;
                if let Some(e) = f.exited {
                    return fail(
                        step,
                        rule::EXIT,
                        format!("{c} exited a second time (the first at step {e})"),
                    );
                }
                f.exited = Some(step);
                Ok(())
            }
            TracedEvent::Interrupt | TracedEvent::Deadline => Ok(()),
        }
    }
}

/// Decodes what a child sent; nothing may follow its cancel-ack. A stream that does not
/// decode is the protocol's to handle (it reports the child), not a kernel rule.
fn messages(step: usize, c: ChildId, f: &mut Facts, bytes: &[u8]) -> Result<(), Failure> {
    if f.decoder.push(bytes).is_err() {
        return Ok(());
    }
    while let Ok(Some(m)) = f.decoder.next_message() {
        if let Some(a) = f.acked {
            let m = super::show::cut(format!("{m:?}"));
            return fail(
                step,
                rule::ACK_LAST,
                format!("{c} sent {m} after its cancel-ack at step {a}"),
            );
        }
        if m == Message::CancelAck {
            f.acked = Some(step);
        }
    }
    Ok(())
}

/// A child's own trace: its loop is told nothing after end-of-file, and ends once.
pub(super) fn check_child(t: &Trace) -> Result<(), Failure> {
    let mut eof = None;
    let mut exit = None;
    let mut last_t = 0;
    for (i, line) in t.lines.iter().enumerate() {
        let step = i + 1;
        if line.t < last_t {
            return fail(
                step,
                rule::CLOCK,
                format!("stamped {} ns before the step above it", last_t - line.t),
            );
        }
        last_t = line.t;
        if let Some(x) = exit {
            return fail(
                step,
                rule::EXIT,
                format!("a step after the child's exit at step {x}"),
            );
        }
        match &line.rec {
            Record::ChildEvents { events } => {
                for ev in events {
                    match (ev, eof) {
                        // A read after end-of-file reads end-of-file again.
                        (TracedChildEvent::Eof, Some(_)) => {}
                        (TracedChildEvent::Eof, None) => eof = Some(step),
                        (_, Some(e)) => {
                            return fail(
                                step,
                                rule::EOF,
                                format!("the child read bytes after its end-of-file at step {e}"),
                            );
                        }
                        (_, None) => {}
                    }
                }
            }
            Record::ChildExit { .. } => exit = Some(step),
            Record::Truncated { limit } => {
                return fail(
                    step,
                    "a trace is complete",
                    format!(
                        "the trace was truncated at its limit of {limit} bytes: raise HARROW_TRACE_MAX_BYTES"
                    ),
                );
            }
            Record::ChildStart { .. } if step == 1 => {}
            Record::ChildSend { .. } => {}
            other => {
                return fail(
                    step,
                    "a child's trace holds child steps",
                    format!(
                        "a {} in a child's trace",
                        super::show::record(other, harrow_model::wire::DEFAULT_MAX_FRAME)
                    ),
                );
            }
        }
    }
    Ok(())
}
