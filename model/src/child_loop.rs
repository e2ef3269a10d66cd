//! The child's event loop, step by step: fed one thing at a time, it carries the child
//! runtime's commands out through a [`ChildOs`] and an [`ActorCode`].
//!
//! Every child runs it: on Linux and over the simulated kernel inside the blocking loop
//! [`crate::driver::drive_child`], which waits for the next event and feeds it; in the pure
//! world one step at a time. It holds no IO, clock or thread of its own.
//!
//! Actor code runs inline, one call at a time, and the loop carries out nothing more while it
//! runs: the commands the runtime queues meanwhile wait for it. While it runs, the loop reads
//! the parent channel only when the work asks its [`Cancel`]. Work that does not end inside
//! its call ([`Ends::Later`]) keeps the loop busy the same way until its end is fed
//! ([`ChildLoop::work_ended`], [`ChildLoop::main_ended`]); what is fed meanwhile reaches the
//! runtime, as a [`Cancel`] asked by that work would.

use alloc::string::String;
use alloc::vec::Vec;

use crate::actor::{ActorCode, Cancel, Checkpoint, Ends, Reply};
use crate::child::{ChildCommand, ChildInputError, ChildRuntime};
use crate::driver::{ChildEvent, ChildExit, ChildOs};
use crate::id::RequestId;
use crate::wire::{FrameDecoder, RemoteError};

/// Actor work the loop started that has not ended yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Busy {
    /// The run-to-result actor's main function.
    Main,
    /// This request's handler.
    Request(RequestId),
}

/// A child's event loop: its runtime, the decoder of its parent channel, and the work it is
/// busy with. The operating system and the actor are lent to each step, kept apart so that
/// actor code can be handed a [`Cancel`] that reaches the loop while the loop runs that code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildLoop {
    runtime: ChildRuntime,
    decoder: FrameDecoder,
    max_frame: u32,
    /// This process was killed, or died in its actor's code (the simulator's cooperative
    /// death).
    killed: bool,
    busy: Option<Busy>,
}

impl ChildLoop {
    /// The loop of `runtime` (not yet started), reading frames of at most `max_frame` bytes.
    pub fn new(runtime: ChildRuntime, max_frame: u32) -> Self {
        ChildLoop {
            runtime,
            decoder: FrameDecoder::new(max_frame),
            max_frame,
            killed: false,
            busy: None,
        }
    }

    /// The child runtime.
    pub fn runtime(&self) -> &ChildRuntime {
        &self.runtime
    }

    /// The child runtime, to take what it covered ([`ChildRuntime::take_coverage`]).
    pub fn runtime_mut(&mut self) -> &mut ChildRuntime {
        &mut self.runtime
    }

    /// The work the loop waits for, if any.
    pub fn busy(&self) -> Option<Busy> {
        self.busy
    }

    /// Starts the runtime (its handshake goes out) and carries out its commands; `Some` once
    /// the child must stop running.
    pub fn start<C: ChildOs, A: ActorCode>(
        &mut self,
        os: &mut C,
        actor: &mut A,
    ) -> Option<ChildExit> {
        if self.runtime.start().is_err() {
            return Some(ChildExit::Code(crate::exit::PROTOCOL_ERROR));
        }
        Step { lp: self, os }.execute(actor)
    }

    /// Feeds one event, then carries out the runtime's commands unless work is running;
    /// `Some` once the child must stop running.
    pub fn feed<C: ChildOs, A: ActorCode>(
        &mut self,
        os: &mut C,
        actor: &mut A,
        ev: ChildEvent,
    ) -> Option<ChildExit> {
        let mut step = Step { lp: self, os };
        step.feed(ev);
        step.execute(actor)
    }

    /// The request the loop is busy with ended later: with its reply, or with a panic's
    /// message. Then carries out the runtime's commands.
    ///
    /// `Err` if the loop is not busy with that request.
    pub fn work_ended<C: ChildOs, A: ActorCode>(
        &mut self,
        os: &mut C,
        actor: &mut A,
        id: RequestId,
        ended: Result<Reply, String>,
    ) -> Result<Option<ChildExit>, ChildInputError> {
        self.end_busy(Busy::Request(id), "work_ended")?;
        let _ = match ended {
            Ok(reply) => self.runtime.handle_work_done(id, reply),
            Err(panic) => self
                .runtime
                .handle_work_panicked(id, RemoteError::panic(panic)),
        };
        Ok(Step { lp: self, os }.execute(actor))
    }

    /// The main function the loop is busy with returned later (with its result), or
    /// panicked (with the panic's message). Then carries out the runtime's commands.
    ///
    /// `Err` if the loop is not busy with a main function.
    pub fn main_ended<C: ChildOs, A: ActorCode>(
        &mut self,
        os: &mut C,
        actor: &mut A,
        ended: Result<Reply, String>,
    ) -> Result<Option<ChildExit>, ChildInputError> {
        self.end_busy(Busy::Main, "main_ended")?;
        let mut step = Step { lp: self, os };
        let _ = match ended {
            Ok(result) => step.lp.runtime.handle_main_done(result).map_err(drop),
            Err(panic) => step.fail(RemoteError::panic(panic)),
        };
        Ok(step.execute(actor))
    }

    /// The actor failed outside any request, later than a call of the loop's: the work it
    /// was busy with is dropped (a failed actor runs nothing more), the runtime told. Then
    /// carries out the runtime's commands.
    pub fn actor_failed<C: ChildOs, A: ActorCode>(
        &mut self,
        os: &mut C,
        actor: &mut A,
        err: RemoteError,
    ) -> Result<Option<ChildExit>, ChildInputError> {
        self.runtime.handle_actor_failed(err)?;
        self.busy = None;
        Ok(Step { lp: self, os }.execute(actor))
    }

    /// The work the loop is busy with asks its [`Cancel`] at a checkpoint, later than the
    /// call that started it (a step-wise world's long work): what the operating system has
    /// from the parent is read and fed to the runtime, and the answer is whether the work
    /// should stop. The runtime's commands wait for the work's end, as they do while work
    /// runs inline.
    pub fn checkpoint<C: ChildOs>(&mut self, os: &mut C) -> bool {
        Step { lp: self, os }.interrupted()
    }

    /// This process was killed between the loop's steps (a step-wise world ends it): it
    /// runs nothing more, and the work it was busy with is gone.
    pub fn kill(&mut self) {
        self.killed = true;
        self.busy = None;
    }

    /// Ends the work the loop is busy with, if it is `busy`.
    fn end_busy(&mut self, busy: Busy, input: &'static str) -> Result<(), ChildInputError> {
        if self.busy != Some(busy) {
            return Err(ChildInputError {
                input,
                phase: self.runtime.phase(),
            });
        }
        self.busy = None;
        Ok(())
    }
}

/// The loop with the operating system lent to it for one step.
struct Step<'a, C: ChildOs> {
    lp: &'a mut ChildLoop,
    os: &'a mut C,
}

impl<C: ChildOs> Step<'_, C> {
    /// Feeds one event to the runtime.
    fn feed(&mut self, ev: ChildEvent) {
        let lp = &mut *self.lp;
        // An input the runtime refuses arrives only after it has asked to exit.
        let _ = match ev {
            ChildEvent::Killed => {
                lp.kill();
                Ok(())
            }
            ChildEvent::Bytes(bytes) => feed_bytes(&mut lp.runtime, &mut lp.decoder, &bytes),
            ChildEvent::Eof => lp.runtime.handle_parent_eof().map_err(drop),
        };
    }

    /// Executes the runtime's commands until it has none or work is running; `Some` once the
    /// child must stop running.
    fn execute(&mut self, actor: &mut impl ActorCode) -> Option<ChildExit> {
        while self.lp.busy.is_none()
            && let Some(cmd) = self.lp.runtime.poll_command()
        {
            if self.lp.killed {
                return Some(ChildExit::Killed);
            }
            // A refused input can only follow the runtime's own exit, which returns here.
            let _ = match cmd {
                ChildCommand::Send(m) => {
                    self.os.send(&m.encode_fitted(self.lp.max_frame));
                    Ok(())
                }
                ChildCommand::StartActor { actor: name } => self.start_daemon(actor, &name),
                ChildCommand::StartMain { actor: name } => self.run_main(actor, &name),
                ChildCommand::StartRequest { id, payload } => self.run_request(actor, id, payload),
                // Work runs inline, so by the time this command is read the work it concerns
                // has ended; while it ran, its `Cancel` asked the runtime directly.
                ChildCommand::InterruptWork => Ok(()),
                ChildCommand::TeardownSubtree => self.teardown_subtree(actor),
                ChildCommand::Exit(code) => return Some(ChildExit::Code(code)),
            };
        }
        self.lp.killed.then_some(ChildExit::Killed)
    }

    fn start_daemon(&mut self, actor: &mut impl ActorCode, name: &str) -> Result<(), ()> {
        match C::catch_panic(|| actor.start_daemon(name)) {
            Ok(Ok(true)) => self.supervise(actor),
            Ok(Ok(false)) => Ok(()),
            Ok(Err(e)) => self.fail(e),
            Err(panic) => self.fail(RemoteError::panic(panic)),
        }
    }

    /// The daemon's start opened a nursery: the runtime is told, so that a cancel closes it
    /// before the acknowledgement.
    ///
    /// A stop the runtime read with the spawn spec (a cancel in the same bytes, or the
    /// parent's end) came before this start ran: the runtime, knowing of no nursery, refuses
    /// the report and has queued its acknowledgement and exit behind this start. The nursery
    /// is torn down here, inline, so it is closed before they go out.
    fn supervise(&mut self, actor: &mut impl ActorCode) -> Result<(), ()> {
        match self.lp.runtime.supervise() {
            Ok(()) => Ok(()),
            // A process that died in its start runs nothing more.
            Err(_) if self.died_in_actor_code() => Ok(()),
            Err(_) if self.lp.runtime.stop_cause().is_some() => {
                if let Err(panic) = C::catch_panic(|| actor.teardown_subtree()) {
                    let _ = self.fail(RemoteError::panic(panic));
                }
                Ok(())
            }
            Err(_) => Err(()),
        }
    }

    fn run_main(&mut self, actor: &mut impl ActorCode, name: &str) -> Result<(), ()> {
        match C::catch_panic(|| actor.start_main(name)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.fail(e),
            Err(panic) => return self.fail(RemoteError::panic(panic)),
        }
        let ends = C::catch_panic(|| actor.run_main(&Cancel::new(self)));
        if self.died_in_actor_code() {
            return Ok(());
        }
        match ends {
            Ok(Ends::Now(result)) => self.lp.runtime.handle_main_done(result).map_err(drop),
            Ok(Ends::Later) => {
                self.lp.busy = Some(Busy::Main);
                Ok(())
            }
            Err(panic) => self.fail(RemoteError::panic(panic)),
        }
    }

    fn run_request(
        &mut self,
        actor: &mut impl ActorCode,
        id: RequestId,
        payload: Vec<u8>,
    ) -> Result<(), ()> {
        let ends = C::catch_panic(|| actor.handle(id, payload, &Cancel::new(self)));
        if self.died_in_actor_code() {
            return Ok(());
        }
        let runtime = &mut self.lp.runtime;
        match ends {
            Ok(Ends::Now(reply)) => runtime.handle_work_done(id, reply),
            Ok(Ends::Later) => {
                self.lp.busy = Some(Busy::Request(id));
                Ok(())
            }
            Err(panic) => runtime.handle_work_panicked(id, RemoteError::panic(panic)),
        }
        .map_err(drop)
    }

    fn teardown_subtree(&mut self, actor: &mut impl ActorCode) -> Result<(), ()> {
        if let Err(panic) = C::catch_panic(|| actor.teardown_subtree()) {
            let _ = self.fail(RemoteError::panic(panic));
        }
        self.lp.runtime.handle_subtree_closed().map_err(drop)
    }

    /// Whether this process died while its actor's code ran: then it runs nothing more, not
    /// even the commands its runtime queued before (a dead process sends nothing).
    fn died_in_actor_code(&mut self) -> bool {
        if !self.os.alive() {
            self.lp.killed = true;
        }
        self.lp.killed
    }

    /// The actor failed outside any request.
    fn fail(&mut self, err: RemoteError) -> Result<(), ()> {
        self.lp.runtime.handle_actor_failed(err).map_err(drop)
    }
}

impl<C: ChildOs> Checkpoint for Step<'_, C> {
    fn interrupted(&mut self) -> bool {
        let mut events = Vec::new();
        self.os.poll(&mut events);
        for ev in events {
            self.feed(ev);
        }
        self.lp.killed || self.lp.runtime.stop_cause().is_some()
    }
}

fn feed_bytes(
    runtime: &mut ChildRuntime,
    decoder: &mut FrameDecoder,
    bytes: &[u8],
) -> Result<(), ()> {
    if let Err(e) = decoder.push(bytes) {
        return runtime.handle_malformed(e).map_err(|_| ());
    }
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => runtime.handle_message(m).map_err(|_| ())?,
            Ok(None) => return Ok(()),
            Err(e) => return runtime.handle_malformed(e).map_err(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flaws;
    use crate::exit;
    use crate::wire::{DEFAULT_MAX_FRAME, Message, Role};
    use alloc::vec;

    /// Keeps what the loop sent, decoded; nothing arrives while actor code runs.
    #[derive(Default)]
    struct Sent(Vec<Message>);

    impl ChildOs for Sent {
        fn send(&mut self, frame: &[u8]) {
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
            decoder.push(frame).unwrap();
            self.0.push(decoder.next_message().unwrap().unwrap());
        }
        fn poll(&mut self, _: &mut Vec<ChildEvent>) {}
        fn alive(&mut self) -> bool {
            true
        }
        fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, String> {
            Ok(code())
        }
    }

    /// An actor whose requests and main function all end later.
    struct Slow;

    impl ActorCode for Slow {
        fn start_daemon(&mut self, _: &str) -> Result<bool, RemoteError> {
            Ok(false)
        }
        fn start_main(&mut self, _: &str) -> Result<(), RemoteError> {
            Ok(())
        }
        fn run_main(&mut self, _: &Cancel<'_>) -> Ends<Reply> {
            Ends::Later
        }
        fn handle(&mut self, _: RequestId, _: Vec<u8>, _: &Cancel<'_>) -> Ends<Reply> {
            Ends::Later
        }
        fn teardown_subtree(&mut self) {}
    }

    fn bytes(m: Message) -> ChildEvent {
        ChildEvent::Bytes(m.encode(DEFAULT_MAX_FRAME).unwrap())
    }

    fn request(id: u64) -> Message {
        Message::Request {
            id: RequestId(id),
            payload: vec![7],
        }
    }

    /// A started loop that has read its spawn spec; what it sent so far is cleared.
    fn serving(role: Role) -> (ChildLoop, Sent) {
        let mut lp = ChildLoop::new(ChildRuntime::new(9, Flaws::NONE, 4), DEFAULT_MAX_FRAME);
        let mut os = Sent::default();
        assert_eq!(lp.start(&mut os, &mut Slow), None);
        let spec = Message::SpawnSpec {
            actor: "a".into(),
            role,
        };
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(spec)), None);
        os.0.clear();
        (lp, os)
    }

    #[test]
    fn work_that_ends_later_holds_the_commands_behind_it_until_it_ends() {
        let (mut lp, mut os) = serving(Role::Daemon);
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(request(1))), None);
        assert_eq!(lp.busy(), Some(Busy::Request(RequestId(1))));
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(Message::Cancel)), None);
        assert!(
            lp.runtime().stop_cause().is_some(),
            "the cancel reached the runtime"
        );
        assert!(
            os.0.is_empty(),
            "nothing goes out while the work runs: {:?}",
            os.0
        );
        let ended = lp.work_ended(&mut os, &mut Slow, RequestId(1), Ok(Ok(vec![1])));
        assert_eq!(ended, Ok(Some(ChildExit::Code(exit::CLEAN))));
        let reply = Message::Reply {
            id: RequestId(1),
            result: Ok(vec![1]),
        };
        assert_eq!(os.0, vec![reply, Message::CancelAck]);
    }

    #[test]
    fn an_end_of_work_the_loop_is_not_busy_with_is_refused_and_changes_nothing() {
        let (mut lp, mut os) = serving(Role::Daemon);
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(request(1))), None);
        let before = lp.clone();
        let wrong = lp.work_ended(&mut os, &mut Slow, RequestId(2), Ok(Ok(vec![])));
        assert_eq!(wrong.unwrap_err().input, "work_ended");
        assert_eq!(
            lp.main_ended(&mut os, &mut Slow, Ok(Ok(vec![])))
                .unwrap_err()
                .input,
            "main_ended"
        );
        assert_eq!(lp, before);
        assert!(os.0.is_empty(), "{:?}", os.0);
    }

    #[test]
    fn a_main_that_ends_later_reports_its_result_when_it_ends() {
        let (mut lp, mut os) = serving(Role::RunToResult);
        assert_eq!(lp.busy(), Some(Busy::Main));
        assert_eq!(lp.main_ended(&mut os, &mut Slow, Ok(Ok(vec![5]))), Ok(None));
        assert_eq!(lp.busy(), None);
        assert_eq!(
            os.0,
            vec![Message::Finished {
                result: Ok(vec![5])
            }]
        );
    }

    #[test]
    fn an_actor_failure_drops_the_work_it_was_busy_with() {
        let (mut lp, mut os) = serving(Role::Daemon);
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(request(1))), None);
        let err = RemoteError::panic("boom");
        let ended = lp.actor_failed(&mut os, &mut Slow, err.clone());
        assert_eq!(ended, Ok(Some(ChildExit::Code(exit::ACTOR_FAILED))));
        assert_eq!(lp.busy(), None);
        assert!(
            matches!(&os.0[..], [Message::Reply { id: RequestId(1), result: Err(_) }, Message::Failed(e)] if *e == err),
            "{:?}",
            os.0
        );
    }

    /// A daemon whose start opens a nursery of its own; counts the nurseries it opened and
    /// those it tore down.
    #[derive(Default)]
    struct Branch {
        opened: u32,
        torn_down: u32,
    }

    impl ActorCode for Branch {
        fn start_daemon(&mut self, _: &str) -> Result<bool, RemoteError> {
            self.opened += 1;
            Ok(true)
        }
        fn start_main(&mut self, _: &str) -> Result<(), RemoteError> {
            Ok(())
        }
        fn run_main(&mut self, _: &Cancel<'_>) -> Ends<Reply> {
            Ends::Now(Ok(Vec::new()))
        }
        fn handle(&mut self, _: RequestId, _: Vec<u8>, _: &Cancel<'_>) -> Ends<Reply> {
            Ends::Now(Ok(Vec::new()))
        }
        fn teardown_subtree(&mut self) {
            self.torn_down += 1;
        }
    }

    /// A cancel read in the same bytes as the spawn spec (the parent sends both before the
    /// child reads, and a read takes every byte queued) reached the runtime before the queued
    /// start of the actor ran: the runtime, still unaware of any nursery, acknowledged and
    /// asked to exit; then the start ran and opened a nursery, whose report (`supervise`) it
    /// refused, and the child exited without tearing that nursery down, its children left to
    /// init. Found by property 11's subtree check on shuttle's three-level trees. The fix: a
    /// start that opened a nursery after the stop was decided tears it down at once, inside
    /// its own step, ahead of the acknowledgement and exit queued behind it.
    #[test]
    fn bug_cancel_read_with_the_spawn_spec_left_a_nursery_open() {
        let mut lp = ChildLoop::new(ChildRuntime::new(9, Flaws::NONE, 4), DEFAULT_MAX_FRAME);
        let (mut os, mut actor) = (Sent::default(), Branch::default());
        assert_eq!(lp.start(&mut os, &mut actor), None);
        let mut both = Message::SpawnSpec {
            actor: "a".into(),
            role: Role::Daemon,
        }
        .encode(DEFAULT_MAX_FRAME)
        .unwrap();
        both.extend(Message::Cancel.encode(DEFAULT_MAX_FRAME).unwrap());
        let ended = lp.feed(&mut os, &mut actor, ChildEvent::Bytes(both));
        assert_eq!(ended, Some(ChildExit::Code(exit::CLEAN)));
        assert_eq!(actor.opened, 1, "the actor started");
        assert_eq!(
            actor.torn_down, 1,
            "the child exited with the nursery its actor opened still open"
        );
        assert_eq!(os.0.last(), Some(&Message::CancelAck));
    }

    #[test]
    fn a_loop_killed_between_steps_runs_nothing_more() {
        let (mut lp, mut os) = serving(Role::Daemon);
        assert_eq!(lp.feed(&mut os, &mut Slow, bytes(request(1))), None);
        lp.kill();
        assert_eq!(lp.busy(), None, "its work is gone");
        let ended = lp.feed(&mut os, &mut Slow, bytes(Message::Cancel));
        assert_eq!(ended, Some(ChildExit::Killed));
        assert!(os.0.is_empty(), "a dead process sends nothing: {:?}", os.0);
    }
}
