//! [`PureOs`]: the operating system the one [`harrow_model::driver::Driver`] runs over in the
//! pure world.
//!
//! The world builds a driver over the supervisor and a `PureOs` for each step that reaches
//! the parent, sets what the next wait reports (the frame or end-of-file the step delivers, an
//! exit, a signal, a deadline) and turns it; the driver decodes the bytes with the real codec
//! and carries the protocol's commands out through this `Os`, which does to the kids what the
//! simulated kernel would. The driver is then taken apart again: between steps every frame
//! has been delivered whole, so its decoders hold nothing and nothing of it is state.

use harrow_model::channels::Channels;
use harrow_model::child::ChildRuntime;
use harrow_model::child_loop::ChildLoop;
use harrow_model::driver::{Os, OsEvent, WaitError};
use harrow_model::method::Situation;
use harrow_model::trace::{Hex, Record};
use harrow_model::wire::{FrameDecoder, Message};
use harrow_model::{ChildId, ExitStatus, Flaw, SpawnMethod, Timestamp};

use super::{Kid, Proc, kid_name};
use crate::scenario::Scenario;

/// The most requests a child runtime of the pure world keeps in flight.
const MAX_IN_FLIGHT: u32 = 64;

/// The pid every process child announces in its handshake. The pure world does not model
/// pids (the protocol only reports the one it is told), so one number serves all: two
/// children of equal plans then differ in nothing but their history, which is what makes
/// them interchangeable for the search's symmetry reduction.
const PROCESS_PID: u32 = 100;

/// The pure world's processes, channels and clock, as the parent's driver sees them: the
/// world's state without the supervisor, borrowed for one step.
pub(super) struct PureOs<'a> {
    pub(super) sc: &'a Scenario,
    pub(super) now: Timestamp,
    /// The frame size limit of every channel, the supervisor's.
    pub(super) max_frame: u32,
    pub(super) kids: &'a mut Vec<Kid>,
    /// What may still be reported of each child: the rules every `Os` follows.
    pub(super) reports: &'a mut Channels,
    pub(super) alloc_held_by: &'a mut Option<usize>,
    pub(super) violations: &'a mut Vec<String>,
    pub(super) root_dead: bool,
    pub(super) trace: &'a mut Option<Vec<String>>,
    /// The parent's calls, as a real trace records them, if they are logged.
    pub(super) log: &'a mut Option<Vec<Record>>,
    /// What the next wait reports: the step being taken.
    pub(super) staged: Vec<OsEvent>,
}

impl PureOs<'_> {
    /// Adds a line to the trace, if one is recorded.
    pub(super) fn note(&mut self, who: &str, what: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            trace.push(super::line(self.now, who, &what()));
        }
    }

    /// Logs a call of the parent's driver, if calls are logged.
    fn log(&mut self, rec: impl FnOnce() -> Record) {
        if let Some(log) = self.log.as_mut() {
            log.push(rec());
        }
    }

    /// Child `i`'s process (or thread) ends with `status`, if it still runs.
    pub(super) fn exit_kid(&mut self, i: usize, status: ExitStatus) {
        if self.kids[i].proc != Proc::Running {
            return;
        }
        let what = if self.kids[i].is_process() {
            "exits"
        } else {
            "thread returns"
        };
        self.note(&kid_name(i), || format!("{what} ({status})"));
        self.kids[i].exit(status);
        if self.root_dead {
            // Orphans are reaped by init.
            self.kids[i].parent_died();
        }
    }

    fn violate(&mut self, v: String) {
        self.note("driver", || v.clone());
        self.violations.push(v);
    }

    /// What the fork leaves behind: without the scrub (F6) the new child holds a copy of
    /// every parent end open at that moment, its own included; forking while a thread holds
    /// the allocator lock wedges the child (F3).
    fn after_fork(&mut self, i: usize, method: SpawnMethod) {
        use SpawnMethod::{Fork, ForkServer};
        if !matches!(method, Fork | ForkServer) {
            return;
        }
        if self.sc.flaws.has(Flaw::NoFdScrub) {
            for kid in self.kids.iter_mut().filter(|k| k.parent_end) {
                kid.parent_end_copies.insert(i);
            }
        }
        if let (Fork, Some(holder)) = (method, *self.alloc_held_by) {
            self.violate(format!(
                "fork from a busy process (property 7): {} was forked while {}'s thread held \
                 the allocator lock; it wedges before its handshake",
                kid_name(i),
                kid_name(holder)
            ));
            self.kids[i].wedged = true;
        }
    }
}

impl Os for PureOs<'_> {
    fn now(&mut self) -> Timestamp {
        self.now
    }

    /// Thread children are threads of this process: `Fork` must see them.
    fn situation(&mut self) -> Situation {
        let threads = self.kids.iter().filter(|k| !k.is_process() && !k.is_gone());
        Situation {
            threads: Ok(1 + threads.count()),
            can_exec: true,
        }
    }

    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String> {
        let i = child.0 as usize;
        // A refused spawn takes no child id, so ids and plans can differ: go by name.
        let plan = self
            .sc
            .children
            .iter()
            .position(|p| p.name == actor)
            .ok_or_else(|| format!("no actor named `{actor}` is planned"))?;
        let behaviour = self.sc.children[plan].behaviour.clone();
        let pid = if method == SpawnMethod::Thread {
            0
        } else {
            PROCESS_PID
        };
        let runtime = ChildRuntime::new(pid, self.sc.flaws, MAX_IN_FLIGHT);
        let child_loop = ChildLoop::new(runtime, self.max_frame);
        assert_eq!(self.kids.len(), i, "children launch in spawn order");
        self.kids
            .push(Kid::new(plan, method, behaviour, child_loop));
        self.reports.launched(child);
        self.note("driver", || format!("launch {child} by {method}"));
        self.log(|| Record::Launch {
            child,
            actor: actor.into(),
            method,
            result: Ok(()),
            pid: None,
        });
        self.after_fork(i, method);
        Ok(())
    }

    /// Puts the frame in the child's inbox, for its loop to read at a later step.
    fn send(&mut self, child: ChildId, frame: &[u8]) {
        let i = child.0 as usize;
        let max_frame = self.max_frame;
        self.note("driver", || {
            let name = frame_message(frame, max_frame).name();
            format!("send {name} to {}", kid_name(i))
        });
        self.log(|| Record::Send {
            child,
            frame: Hex(frame.to_vec()),
        });
        let kid = &mut self.kids[i];
        // A send to a child whose end is gone fails with EPIPE; its EOF and exit are what the
        // parent acts on, so the lost message is of no consequence.
        if kid.child_end {
            kid.inbox.push_back(frame.to_vec());
        }
    }

    fn close(&mut self, child: ChildId) {
        let i = child.0 as usize;
        self.note("driver", || {
            format!("close our end of {}'s channel", kid_name(i))
        });
        self.log(|| Record::Close { child });
        let kid = &mut self.kids[i];
        kid.parent_end = false;
        kid.outbox.clear();
        self.reports.closed(child);
    }

    fn kill(&mut self, child: ChildId) {
        let i = child.0 as usize;
        self.log(|| Record::Kill { child });
        if self.kids[i].stolen {
            self.violate(format!(
                "SIGKILL by raw pid to {} after a second reaper took it: the pid now names an \
                 innocent bystander (property 3)",
                kid_name(i)
            ));
            return;
        }
        self.note("driver", || {
            format!("SIGKILL {} via its pidfd", kid_name(i))
        });
        self.kids[i].forced |= self.kids[i].proc == Proc::Running;
        self.exit_kid(i, ExitStatus::Signaled(9));
    }

    fn abandon(&mut self, child: ChildId) {
        let i = child.0 as usize;
        self.note("driver", || {
            format!("abandon {}'s thread (leaked, counted)", kid_name(i))
        });
        self.log(|| Record::Abandon { child });
        self.kids[i].forced |= self.kids[i].proc == Proc::Running;
        self.kids[i].abandoned = true;
        self.reports.unwatch_exit(child);
    }

    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String> {
        let kid = &mut self.kids[child.0 as usize];
        let status = match kid.proc {
            Proc::Exited(status) => status,
            // The second reaper already took it; its stored status is all that is left.
            Proc::Reaped(status) if kid.stolen => status,
            _ => panic!("the protocol ordered a reap of {child}, which has not exited"),
        };
        kid.proc = Proc::Reaped(status);
        self.reports.unwatch_exit(child);
        if !kid.stolen {
            kid.reaps += 1;
        }
        let what = if kid.is_process() {
            "reap"
        } else {
            "join the thread of"
        };
        self.note("driver", || format!("{what} {child}: {status}"));
        self.log(|| Record::Reap {
            child,
            result: Ok(status),
        });
        Ok(status)
    }

    /// The protocol forgets a child: it must be over here too, its channel closed and its
    /// process reaped (or its thread abandoned), or the driver would drop what it still holds.
    fn retire(&mut self, child: ChildId) {
        self.note("driver", || format!("retire {child}"));
        self.log(|| Record::Retire { child });
        self.reports.retired(child);
        self.kids[child.0 as usize].retired = true;
        let kid = &self.kids[child.0 as usize];
        let ended = matches!(kid.proc, Proc::Reaped(_)) || kid.abandoned;
        if kid.parent_end || !ended {
            let v = format!(
                "{child} retired while the parent still holds it: channel open {}, process {:?} \
                 (property 3)",
                kid.parent_end, kid.proc
            );
            self.violate(v);
        }
    }

    /// Hands back what the world staged for this step, as far as [`Channels`] lets it be
    /// reported; the pure world never blocks.
    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError> {
        let start = out.len();
        for ev in self.staged.drain(..) {
            match ev {
                OsEvent::Bytes(child, bytes) => self.reports.bytes(child, bytes, out),
                OsEvent::Eof(child) => {
                    self.reports.end_of_stream(child, out);
                }
                OsEvent::Exited(child) => {
                    self.reports.exited(child, out);
                }
                OsEvent::Interrupt | OsEvent::Deadline => out.push(ev),
            }
        }
        if let Some(log) = self.log.as_mut() {
            log.push(Record::Wait {
                deadline,
                events: out[start..].iter().map(Into::into).collect(),
                now: self.now,
                failed: None,
            });
        }
        Ok(())
    }
}

/// The message of one whole frame, decoded with the real codec: what the trace names, and
/// what the symmetry reduction reads. Both sides write whole, well-formed frames, one a write.
pub(super) fn frame_message(frame: &[u8], max_frame: u32) -> Message {
    let mut decoder = FrameDecoder::new(max_frame);
    let message = decoder
        .push(frame)
        .and_then(|()| decoder.next_message())
        .ok()
        .flatten()
        .expect("the pure world writes whole, well-formed frames");
    assert_eq!(decoder.next_message(), Ok(None), "one frame a write");
    message
}
