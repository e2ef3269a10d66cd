//! What each choice does: the user's calls and the deliveries go to the parent's driver, the
//! children's steps to their loops, over their actors' scripts (`child.rs`).

use std::cell::RefCell;

use harrow_model::child::ChildInputError;
use harrow_model::child_loop::{Busy, ChildLoop};
use harrow_model::driver::{ChildEvent, ChildExit, OsEvent};
use harrow_model::supervisor::SpawnSpec;
use harrow_model::wire::{RemoteError, RemoteErrorKind};
use harrow_model::{ChildId, ExitStatus, RequestId};

use super::child::{KidOs, Script, Trace, main_result};
use super::os::frame_message;
use super::{Proc, World, kid_name};
use crate::scenario::{ABORTED, Behaviour, OutOfTurn, STOPPED_EARLY};

impl World<'_> {
    pub(super) fn spawn(&mut self, i: usize) {
        let plan = &self.sc.children[i];
        let spec = SpawnSpec {
            name: plan.name.clone(),
            actor: plan.name.clone(),
            method: plan.method,
            role: plan.role,
        };
        self.note("user", || {
            format!(
                "spawn {} `{}` by {} as {:?}",
                kid_name(i),
                plan.name,
                plan.method,
                plan.role
            )
        });
        if let Err(e) = self.with_driver(None, |d| d.spawn(spec)) {
            self.note("user", || format!("spawn refused: {e}"));
        }
    }

    pub(super) fn send_requests(&mut self) {
        let daemons: Vec<usize> = (0..self.st.kids.len())
            .filter(|&i| {
                self.st.ready.contains(&i)
                    && self.sc.children[self.st.kids[i].plan].role
                        == harrow_model::wire::Role::Daemon
            })
            .collect();
        let (sc, now) = (self.sc, self.st.now);
        let max = self.st.sup.config().limits.max_in_flight;
        let mut problems = Vec::new();
        self.with_driver(None, |d| {
            for i in daemons {
                let child = ChildId(i as u32);
                let mut accepted = 0;
                for r in 0..sc.requests {
                    let payload = format!("ping {r}").into_bytes();
                    let deadline = crate::sim::request_deadline(sc, r, now);
                    let result = d.request(child, payload, deadline);
                    problems.extend(crate::accounts::request_limit(
                        child, accepted, max, &result,
                    ));
                    match result {
                        Ok(id) => {
                            accepted += 1;
                            d.os.note("user", || format!("request {id} to {}", kid_name(i)))
                        }
                        Err(e) => d.os.note("user", || format!("request refused: {e}")),
                    }
                }
            }
        });
        self.st.violations.extend(problems);
    }

    /// Child `i`'s process (or thread) ends with `status`, if it still runs.
    pub(super) fn exit_kid(&mut self, i: usize, status: ExitStatus) {
        self.os().exit_kid(i, status);
    }

    /// Flaw F5's second reaper takes an exited child behind the parent's back.
    pub(super) fn second_reap(&mut self, i: usize) {
        let kid = &mut self.st.kids[i];
        if let Proc::Exited(status) = kid.proc {
            kid.proc = Proc::Reaped(status);
            kid.stolen = true;
            self.note("reaper", || {
                format!(
                    "waitpid(-1) reaps {}; its pid goes to a bystander",
                    kid_name(i)
                )
            });
        }
    }

    pub(super) fn boot(&mut self, i: usize) {
        self.st.kids[i].booted = true;
        if !self.st.kids[i].is_process() && self.st.alloc_held_by.is_none() {
            // A thread child allocates during its start-up, until its actor runs.
            self.st.alloc_held_by = Some(i);
        }
        if let Behaviour::CrashesBeforeHandshake { code } = self.st.kids[i].behaviour {
            self.note(&kid_name(i), || "crashes during boot".into());
            self.exit_kid(i, ExitStatus::Exited(code));
            return;
        }
        self.note(&kid_name(i), || "boots".into());
        self.step_child(i, None, |lp, os, script| Ok(lp.start(os, script)));
    }

    /// Child `i`'s loop takes one thing: an actor failure its script raises, a checkpoint of
    /// the long work it is busy with, the next frame from its parent, the end of the work it
    /// is busy with, or its parent's end-of-file.
    pub(super) fn run_kid(&mut self, i: usize) {
        let kid = &mut self.st.kids[i];
        if let Some(err) = kid.failure.take() {
            self.step_child(i, None, |lp, os, script| lp.actor_failed(os, script, err));
        } else if kid.work_until.is_some() {
            self.checkpoint(i);
        } else if let Some(frame) = kid.inbox.pop_front() {
            self.note_read(i, &frame);
            let ev = ChildEvent::Bytes(frame);
            self.step_child(i, None, |lp, os, script| Ok(lp.feed(os, script, ev)));
        } else if let Some(Busy::Request(id)) = kid.child_loop.busy() {
            self.work_done(i, id);
        } else if let Some(Busy::Main) = kid.child_loop.busy() {
            let result = main_result(&kid.behaviour);
            self.step_child(i, None, |lp, os, script| {
                lp.main_ended(os, script, Ok(result))
            });
        } else {
            kid.eof_seen_by_child = true;
            self.note(&kid_name(i), || "reads EOF from its parent".into());
            self.step_child(i, None, |lp, os, script| {
                Ok(lp.feed(os, script, ChildEvent::Eof))
            });
        }
    }

    fn note_read(&mut self, i: usize, frame: &[u8]) {
        let max_frame = self.st.sup.config().max_frame;
        self.note(&kid_name(i), || {
            format!("reads {}", frame_message(frame, max_frame).name())
        });
    }

    /// Child `i`'s long work (`Behaviour::Works`) asks its cancel token, which reads what
    /// came from the parent (one frame, or end-of-file); the work stops early if the token
    /// says stop, ends if its time is over, and goes on otherwise.
    fn checkpoint(&mut self, i: usize) {
        let copies_held = self.copies_held(i);
        let kid = &mut self.st.kids[i];
        let pending = if let Some(frame) = kid.inbox.pop_front() {
            self.note_read(i, &frame);
            Some(ChildEvent::Bytes(frame))
        } else if kid.eof_pending(copies_held) {
            kid.eof_seen_by_child = true;
            self.note(&kid_name(i), || "reads EOF from its parent".into());
            Some(ChildEvent::Eof)
        } else {
            None
        };
        let mut stop = false;
        self.step_child(i, pending, |lp, os, _| {
            stop = lp.checkpoint(os);
            Ok(None)
        });
        let now = self.st.now;
        let kid = &mut self.st.kids[i];
        if stop {
            self.note(&kid_name(i), || {
                "its work asks its cancel token: stop; it returns early".into()
            });
            self.token_said_stop(i);
            self.end_long_work(i, STOPPED_EARLY.to_vec());
        } else if kid.work_until.is_some_and(|t| t <= now) {
            self.end_long_work(i, b"pong".to_vec());
        } else {
            self.note(&kid_name(i), || {
                "its work asks its cancel token: go on".into()
            });
        }
    }

    /// Child `i`'s long work ends, its request answered (or its main function returning)
    /// with `payload`.
    fn end_long_work(&mut self, i: usize, payload: Vec<u8>) {
        let kid = &mut self.st.kids[i];
        kid.work_until = None;
        match kid.child_loop.busy() {
            Some(Busy::Request(id)) => self.step_child(i, None, |lp, os, script| {
                lp.work_ended(os, script, id, Ok(Ok(payload)))
            }),
            Some(Busy::Main) => self.step_child(i, None, |lp, os, script| {
                lp.main_ended(os, script, Ok(Ok(payload)))
            }),
            None => {}
        }
    }

    /// Property 16: a cancel token says stop only once something asked the child to stop
    /// (a cancel, its parent's end, a broken protocol, its actor's failure), as its runtime
    /// records.
    fn token_said_stop(&mut self, i: usize) {
        if self.st.kids[i].child_loop.runtime().stop_cause().is_none() {
            self.st.violations.push(format!(
                "{}'s cancel token told its work to stop, but nothing asked the child to stop \
                 (property 16)",
                kid_name(i)
            ));
        }
    }

    /// Child `i` finishes request `id` as its behaviour says.
    fn work_done(&mut self, i: usize, id: RequestId) {
        let kid = &mut self.st.kids[i];
        let ended = match &kid.behaviour {
            Behaviour::FailsRequests => Ok(Err(RemoteError::new(
                RemoteErrorKind::Error,
                "request failed",
            ))),
            Behaviour::CrashesInRequest { nth } if kid.is_process() => {
                if kid.answered.len() == *nth as usize {
                    self.note(&kid_name(i), || "aborts in a request".into());
                    self.exit_kid(i, ExitStatus::Exited(ABORTED));
                    return;
                }
                kid.answered.push(id);
                Ok(Ok(b"pong".to_vec()))
            }
            Behaviour::PanicsInRequests { message } => {
                let message = message.clone();
                self.note(&kid_name(i), || "panics in a request".into());
                Err(message)
            }
            _ => Ok(Ok(b"pong".to_vec())),
        };
        self.step_child(i, None, |lp, os, script| {
            lp.work_ended(os, script, id, ended)
        });
    }

    /// Runs one step of child `i`'s loop, lent its channel end (whose next poll reads
    /// `pending`) and its actor's script; then ends its process if the script crashed it or
    /// the loop says to exit.
    fn step_child(
        &mut self,
        i: usize,
        pending: Option<ChildEvent>,
        step: impl FnOnce(
            &mut ChildLoop,
            &mut KidOs<'_>,
            &mut Script<'_>,
        ) -> Result<Option<ChildExit>, ChildInputError>,
    ) {
        let (now, max_frame) = (self.st.now, self.st.sup.config().max_frame);
        let trace: Trace = RefCell::new(self.trace.take());
        let who = kid_name(i);
        let kid = &mut self.st.kids[i];
        let mut os = KidOs {
            who: &who,
            now,
            max_frame,
            trace: &trace,
            outbox: &mut kid.outbox.0,
            parent_end: kid.parent_end,
            reports_twice: matches!(kid.behaviour, Behaviour::ReportsFailureTwice { .. }),
            pending,
        };
        let mut script = Script {
            who: &who,
            now,
            trace: &trace,
            behaviour: &kid.behaviour,
            is_process: kid.method != harrow_model::SpawnMethod::Thread,
            block: &mut kid.block,
            helper_until: &mut kid.helper_until,
            failure: &mut kid.failure,
            started: false,
            crash: None,
            work_until: &mut kid.work_until,
            stopped_at_start: false,
            stray: None,
            closes_channel: false,
        };
        let ended = step(&mut kid.child_loop, &mut os, &mut script)
            .expect("the world only feeds inputs the child's loop accepts");
        let (started, crash, stopped) = (script.started, script.crash, script.stopped_at_start);
        if script.closes_channel {
            // What it wrote before stays readable; then its parent reads the end.
            kid.child_end = false;
            kid.inbox.clear();
            super::child::note(&trace, now, &who, || {
                "its actor closes its end of the channel".into()
            });
        }
        if let Some(message) = script.stray.take() {
            // Behind its runtime's back: the frame goes after whatever the runtime sent.
            if kid.parent_end {
                kid.stray_ahead = Some(kid.outbox.0.len() as u32);
                kid.outbox.0.push_back(message.encode_fitted(max_frame));
            }
            let name = message.name();
            super::child::note(&trace, now, &who, || {
                format!("its actor writes a {name} on its channel itself, out of turn")
            });
        }
        self.trace = trace.into_inner();
        if stopped {
            self.token_said_stop(i);
        }
        if started && self.st.alloc_held_by == Some(i) {
            self.st.alloc_held_by = None;
        }
        let status = match ended {
            Some(ChildExit::Code(code)) => Some(ExitStatus::Exited(code)),
            Some(ChildExit::Killed) => unreachable!("the world kills a child between its steps"),
            None => crash,
        };
        if let Some(status) = status {
            self.exit_kid(i, status);
        }
    }

    /// The parent reads one thing from child `i`'s channel: the next frame its child wrote,
    /// encoded as the child's loop encodes it, or end-of-file.
    pub(super) fn deliver(&mut self, i: usize) {
        let child = ChildId(i as u32);
        let max_frame = self.st.sup.config().max_frame;
        self.stray_read(i);
        let kid = &mut self.st.kids[i];
        let event = if let Some(frame) = kid.outbox.pop_front() {
            self.note("parent", || {
                let name = frame_message(&frame, max_frame).name();
                format!("reads {name} from {child}")
            });
            OsEvent::Bytes(child, frame)
        } else {
            self.note("parent", || format!("reads EOF from {child}"));
            OsEvent::Eof(child)
        };
        self.turn_with(event);
    }

    /// Before the parent reads child `i`'s next frame: if it is the one its actor wrote out
    /// of turn, whether the protocol allowed it there (property 20). A second handshake never
    /// is (unless the first came too late to count), nor a daemon's result; an unasked cancel
    /// ack is, once the cancel it answers went out (the two crossed).
    fn stray_read(&mut self, i: usize) {
        let kid = &mut self.st.kids[i];
        match kid.stray_ahead {
            Some(0) => kid.stray_ahead = None,
            Some(n) => {
                kid.stray_ahead = Some(n - 1);
                return;
            }
            None => return,
        }
        let Behaviour::WritesOutOfTurn { message } = kid.behaviour else {
            return;
        };
        let Some(life) = self.st.sup.lifecycle(ChildId(i as u32)) else {
            return;
        };
        let out_of_turn = match message {
            OutOfTurn::Handshake => life.handshake_done,
            OutOfTurn::Finished => true,
            OutOfTurn::CancelAck => !life.cancel_sent,
        };
        self.st.kids[i].stray_read_out_of_turn |= out_of_turn;
    }

    pub(super) fn report_exit(&mut self, i: usize) {
        let child = ChildId(i as u32);
        self.note("parent", || format!("sees {child} exit (pidfd readable)"));
        self.turn_with(OsEvent::Exited(child));
    }
}
