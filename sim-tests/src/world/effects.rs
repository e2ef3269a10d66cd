//! What each choice does: the user's calls and the deliveries go to the parent's driver, the
//! rest is the children's side and the actors' scripts.

use harrow_model::child::{ChildCommand, ChildInputError};
use harrow_model::driver::OsEvent;
use harrow_model::supervisor::SpawnSpec;
use harrow_model::wire::{Message, RemoteError, RemoteErrorKind};
use harrow_model::{ChildId, ExitStatus, RequestId};

use super::{Block, Kid, Proc, World, kid_name};
use crate::scenario::{ABORTED, Behaviour};

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
        self.with_driver(None, |d| {
            for i in daemons {
                for r in 0..sc.requests {
                    let payload = format!("ping {r}").into_bytes();
                    let deadline = crate::sim::request_deadline(sc, r, now);
                    match d.request(ChildId(i as u32), payload, deadline) {
                        Ok(id) => {
                            d.os.note("user", || format!("request {id} to {}", kid_name(i)))
                        }
                        Err(e) => d.os.note("user", || format!("request refused: {e}")),
                    }
                }
            }
        });
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
        self.st.kids[i]
            .runtime
            .start()
            .expect("a new runtime starts");
        self.drive_child(i);
    }

    pub(super) fn run_kid(&mut self, i: usize) {
        let kid = &mut self.st.kids[i];
        let result = if let Some(err) = kid.failure.take() {
            kid.runtime.handle_actor_failed(err)
        } else if let Some(msg) = kid.inbox.pop_front() {
            let name = msg.name();
            let r = kid.runtime.handle_message(msg);
            self.note(&kid_name(i), || format!("reads {name}"));
            r
        } else if let Some(id) = self.st.kids[i].work.pop_front() {
            self.work_done(i, id)
        } else if let Some(result) = self.st.kids[i].main.take() {
            self.st.kids[i].runtime.handle_main_done(result)
        } else {
            let kid = &mut self.st.kids[i];
            kid.eof_seen_by_child = true;
            let r = kid.runtime.handle_parent_eof();
            self.note(&kid_name(i), || "reads EOF from its parent".into());
            r
        };
        result.expect("the world only feeds inputs the child runtime accepts");
        self.drive_child(i);
    }

    /// Child `i` finishes request `id` as its behaviour says.
    fn work_done(&mut self, i: usize, id: RequestId) -> Result<(), ChildInputError> {
        let kid = &mut self.st.kids[i];
        let result = match &kid.behaviour {
            Behaviour::FailsRequests => {
                Err(RemoteError::new(RemoteErrorKind::Error, "request failed"))
            }
            Behaviour::CrashesInRequest { nth } if kid.is_process() => {
                if kid.answered.len() == *nth as usize {
                    self.note(&kid_name(i), || "aborts in a request".into());
                    self.exit_kid(i, ExitStatus::Exited(ABORTED));
                    return Ok(());
                }
                kid.answered.push(id);
                Ok(b"pong".to_vec())
            }
            Behaviour::PanicsInRequests { message } => {
                let panic = RemoteError::new(RemoteErrorKind::Panic, message);
                // The failed actor runs nothing more: the runtime refuses the rest.
                kid.work.clear();
                let accepted = kid.runtime.handle_work_panicked(id, panic);
                self.note(&kid_name(i), || "panics in a request".into());
                return accepted;
            }
            _ => Ok(b"pong".to_vec()),
        };
        kid.runtime.handle_work_done(id, result)
    }

    /// Executes the child runtime's commands, as its loop does: in order, none while a
    /// request's work runs (the loop runs it inline, so the ones behind a start wait for it),
    /// and none once its process has died (a dead process sends nothing).
    fn drive_child(&mut self, i: usize) {
        while self.st.kids[i].work.is_empty()
            && self.st.kids[i].proc == Proc::Running
            && let Some(cmd) = self.st.kids[i].runtime.poll_command()
        {
            match cmd {
                ChildCommand::Send(msg) => {
                    self.note(&kid_name(i), || format!("sends {}", msg.name()));
                    let kid = &mut self.st.kids[i];
                    // A child that reports its failure twice writes it once more itself.
                    let again = matches!(msg, Message::Failed(_))
                        && matches!(kid.behaviour, Behaviour::ReportsFailureTwice { .. });
                    if kid.parent_end && again {
                        kid.outbox.push_back(msg.clone());
                    }
                    if kid.parent_end {
                        kid.outbox.push_back(msg);
                    }
                }
                ChildCommand::StartMain { .. } | ChildCommand::StartActor { .. } => {
                    self.start_actor(i)
                }
                ChildCommand::StartRequest { id, .. } => self.st.kids[i].work.push_back(id),
                ChildCommand::InterruptWork => {}
                ChildCommand::TeardownSubtree => {
                    self.st.kids[i]
                        .runtime
                        .handle_subtree_closed()
                        .expect("subtree was open");
                }
                ChildCommand::Exit(code) => self.exit_kid(i, ExitStatus::Exited(code)),
            }
        }
    }

    fn start_actor(&mut self, i: usize) {
        let now = self.st.now;
        if self.st.alloc_held_by == Some(i) {
            self.st.alloc_held_by = None;
        }
        let kid = &mut self.st.kids[i];
        let role = self.sc.children[kid.plan].role;
        let main_result = |kid: &Kid| match &kid.behaviour {
            Behaviour::FailsMain { message } => {
                Err(RemoteError::new(RemoteErrorKind::Error, message))
            }
            _ => Ok(b"done".to_vec()),
        };
        match kid.behaviour.clone() {
            Behaviour::Blocks { ms } => {
                kid.block = Block::Until(now + std::time::Duration::from_millis(ms))
            }
            Behaviour::BlocksForever => kid.block = Block::Forever,
            Behaviour::LeaksChannel { hold_ms } => {
                // A detached helper in its own group keeps the channel open; the actor hangs.
                if kid.is_process() {
                    kid.helper_until = Some(now + std::time::Duration::from_millis(hold_ms));
                }
                kid.block = Block::Forever;
            }
            Behaviour::CrashesAfterHandshake { code } => {
                self.note(&kid_name(i), || "crashes after its handshake".into());
                self.exit_kid(i, ExitStatus::Exited(code));
                return;
            }
            Behaviour::FailsActor { message } | Behaviour::ReportsFailureTwice { message } => {
                kid.failure = Some(RemoteError::new(RemoteErrorKind::Panic, &message))
            }
            _ => {}
        }
        let kid = &mut self.st.kids[i];
        if role == harrow_model::wire::Role::RunToResult {
            kid.main = Some(main_result(kid));
        }
        let blocked = kid.block != Block::No;
        self.note(&kid_name(i), || {
            if blocked {
                "starts its actor, which stops yielding".into()
            } else {
                "starts its actor".into()
            }
        });
    }

    /// The parent reads one thing from child `i`'s channel: the next frame its child wrote,
    /// encoded as the child's loop encodes it, or end-of-file.
    pub(super) fn deliver(&mut self, i: usize) {
        let child = ChildId(i as u32);
        let max_frame = self.st.sup.config().max_frame;
        let kid = &mut self.st.kids[i];
        let event = if let Some(msg) = kid.outbox.pop_front() {
            self.note("parent", || format!("reads {} from {child}", msg.name()));
            OsEvent::Bytes(child, msg.encode_fitted(max_frame))
        } else {
            self.note("parent", || format!("reads EOF from {child}"));
            OsEvent::Eof(child)
        };
        self.turn_with(event);
    }

    pub(super) fn report_exit(&mut self, i: usize) {
        let child = ChildId(i as u32);
        self.note("parent", || format!("sees {child} exit (pidfd readable)"));
        self.turn_with(OsEvent::Exited(child));
    }
}
