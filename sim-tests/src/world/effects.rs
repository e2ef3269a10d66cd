//! What each choice does: the driver's side of the protocol, and the actors' scripts.

use harrow_model::child::{ChildCommand, ChildInputError, ChildRuntime};
use harrow_model::method::Situation;
use harrow_model::supervisor::{Command, SpawnSpec};
use harrow_model::wire::{Message, RemoteError, RemoteErrorKind};
use harrow_model::{ChildId, ExitStatus, Flaws, RequestId};

use super::{Block, Kid, Proc, World, kid_name};
use crate::scenario::{ABORTED, Behaviour};

const MAX_IN_FLIGHT: u32 = 64;

/// The pid every process child announces in its handshake. The pure world does not model
/// pids (the protocol only reports the one it is told), so one number serves all: two
/// children of equal plans then differ in nothing but their history, which is what makes
/// them interchangeable for the search's symmetry reduction.
const PROCESS_PID: u32 = 100;

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
        // Thread children are threads of this process: Fork must see them.
        let threads = 1 + self
            .st
            .kids
            .iter()
            .filter(|k| !k.is_process() && !k.is_gone())
            .count();
        let situation = Situation {
            threads: Ok(threads),
            can_exec: true,
        };
        match self.st.sup.spawn(self.st.now, spec, &situation) {
            Ok(_) => self.drive_parent(),
            Err(e) => self.note("user", || format!("spawn refused: {e}")),
        }
    }

    pub(super) fn send_requests(&mut self) {
        for i in 0..self.st.kids.len() {
            if !self.st.ready.contains(&i)
                || self.sc.children[self.st.kids[i].plan].role != harrow_model::wire::Role::Daemon
            {
                continue;
            }
            for r in 0..self.sc.requests {
                let payload = format!("ping {r}").into_bytes();
                let deadline = crate::sim::request_deadline(self.sc, r, self.st.now);
                let child = ChildId(i as u32);
                match self.st.sup.request(self.st.now, child, payload, deadline) {
                    Ok(id) => self.note("user", || format!("request {id} to {}", kid_name(i))),
                    Err(e) => self.note("user", || format!("request refused: {e}")),
                }
            }
        }
        self.drive_parent();
    }

    pub(super) fn execute(&mut self, cmd: Command) {
        let i = cmd.child().0 as usize;
        let now = self.st.now;
        match cmd {
            Command::Launch {
                child,
                method,
                actor,
            } => {
                // A refused spawn takes no child id, so ids and plans can differ: go by name.
                let plan = self
                    .sc
                    .children
                    .iter()
                    .position(|p| p.name == actor)
                    .expect("a planned actor");
                let behaviour = self.sc.children[plan].behaviour.clone();
                let pid = if method == harrow_model::SpawnMethod::Thread {
                    0
                } else {
                    PROCESS_PID
                };
                let runtime = ChildRuntime::new(pid, self.child_flaws(), MAX_IN_FLIGHT);
                debug_assert_eq!(self.st.kids.len(), i, "children launch in spawn order");
                self.st
                    .kids
                    .push(Kid::new(plan, method, behaviour, runtime));
                self.note("driver", || format!("launch {child} by {method}"));
                self.after_fork(i, method);
                self.st
                    .sup
                    .handle_launched(now, child)
                    .expect("launch is awaited");
            }
            Command::Send { message, .. } => {
                self.note("driver", || {
                    format!("send {} to {}", message.name(), kid_name(i))
                });
                let kid = &mut self.st.kids[i];
                // A send to a child whose end is gone fails with EPIPE; its EOF and exit are
                // what the parent acts on, so the lost message is of no consequence.
                if kid.child_end {
                    kid.inbox.push_back(message);
                }
            }
            Command::CloseChannel { .. } => {
                self.note("driver", || {
                    format!("close our end of {}'s channel", kid_name(i))
                });
                let kid = &mut self.st.kids[i];
                kid.parent_end = false;
                kid.outbox.clear();
            }
            Command::Kill { .. } => self.kill(i),
            Command::Abandon { .. } => {
                self.note("driver", || {
                    format!("abandon {}'s thread (leaked, counted)", kid_name(i))
                });
                self.st.kids[i].abandoned = true;
            }
            Command::Reap { child } => self.reap(i, child),
            Command::Retire { child } => self.retire(i, child),
        }
    }

    /// The protocol forgets a child: it must be over here too, its channel closed and its
    /// process reaped (or its thread abandoned), or the driver would drop what it still holds.
    fn retire(&mut self, i: usize, child: ChildId) {
        self.note("driver", || format!("retire {child}"));
        let kid = &self.st.kids[i];
        let ended = matches!(kid.proc, Proc::Reaped(_)) || kid.abandoned;
        if kid.parent_end || !ended {
            let v = format!(
                "{child} retired while the parent still holds it: channel open {}, process {:?} \
                 (property 3)",
                kid.parent_end, kid.proc
            );
            self.note("driver", || v.clone());
            self.st.violations.push(v);
        }
    }

    fn reap(&mut self, i: usize, child: ChildId) {
        let kid = &mut self.st.kids[i];
        let status = match kid.proc {
            Proc::Exited(status) => status,
            // The second reaper already took it; its stored status is all that is left.
            Proc::Reaped(status) if kid.stolen => status,
            _ => panic!("the protocol ordered a reap of {child}, which has not exited"),
        };
        kid.proc = Proc::Reaped(status);
        if !kid.stolen {
            kid.reaps += 1;
        }
        let what = if kid.is_process() {
            "reap"
        } else {
            "join the thread of"
        };
        self.note("driver", || format!("{what} {child}: {status}"));
        self.st
            .sup
            .handle_reaped(self.st.now, child, status)
            .expect("reap is awaited");
    }

    fn child_flaws(&self) -> Flaws {
        self.sc.flaws
    }

    pub(super) fn exit_kid(&mut self, i: usize, status: ExitStatus) {
        if self.st.kids[i].proc != Proc::Running {
            return;
        }
        let what = if self.st.kids[i].is_process() {
            "exits"
        } else {
            "thread returns"
        };
        self.note(&kid_name(i), || format!("{what} ({status})"));
        self.st.kids[i].exit(status);
        if self.st.root_dead {
            // Orphans are reaped by init.
            self.st.kids[i].parent_died();
        }
    }

    fn kill(&mut self, i: usize) {
        if self.st.kids[i].stolen {
            let v = format!(
                "SIGKILL by raw pid to {} after a second reaper took it: the pid now names an \
                 innocent bystander (property 3)",
                kid_name(i)
            );
            self.note("driver", || v.clone());
            self.st.violations.push(v);
            return;
        }
        self.note("driver", || {
            format!("SIGKILL {} via its pidfd", kid_name(i))
        });
        self.exit_kid(i, ExitStatus::Signaled(9));
    }

    /// What the fork leaves behind: without the scrub (F6) the new child holds a copy of
    /// every parent end open at that moment, its own included; forking while a thread holds
    /// the allocator lock wedges the child (F3).
    fn after_fork(&mut self, i: usize, method: harrow_model::SpawnMethod) {
        use harrow_model::SpawnMethod::{Fork, ForkServer};
        if !matches!(method, Fork | ForkServer) {
            return;
        }
        if self.sc.flaws.has(harrow_model::Flaw::NoFdScrub) {
            for k in 0..self.st.kids.len() {
                if self.st.kids[k].parent_end {
                    self.st.kids[k].parent_end_copies.insert(i);
                }
            }
        }
        if let (Fork, Some(holder)) = (method, self.st.alloc_held_by) {
            let v = format!(
                "fork from a busy process (property 7): {} was forked while {}'s thread held \
                 the allocator lock; it wedges before its handshake",
                kid_name(i),
                kid_name(holder)
            );
            self.note("driver", || v.clone());
            self.st.violations.push(v);
            self.st.kids[i].wedged = true;
        }
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

    pub(super) fn deliver(&mut self, i: usize) {
        let now = self.st.now;
        let child = ChildId(i as u32);
        let kid = &mut self.st.kids[i];
        let result = if let Some(msg) = kid.outbox.pop_front() {
            self.note("parent", || format!("reads {} from {child}", msg.name()));
            self.st.sup.handle_message(now, child, msg)
        } else {
            kid.eof_delivered = true;
            self.note("parent", || format!("reads EOF from {child}"));
            self.st.sup.handle_channel_closed(now, child)
        };
        if let Err(e) = result {
            self.note("parent", || format!("input refused: {e}"));
        }
        self.drive_parent();
    }

    pub(super) fn report_exit(&mut self, i: usize) {
        self.st.kids[i].exit_delivered = true;
        let child = ChildId(i as u32);
        self.note("parent", || format!("sees {child} exit (pidfd readable)"));
        if let Err(e) = self.st.sup.handle_exit(self.st.now, child) {
            self.note("parent", || format!("input refused: {e}"));
        }
        self.drive_parent();
    }
}
