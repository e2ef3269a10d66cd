//! The child side of an async actor (feature `tokio`): the model's child runtime, with room
//! for several requests at once, over a current-thread tokio runtime of the child's own.
//!
//! The loop polls the futures of the requests it started itself, inline, with the loop's own
//! waker; it does not spawn them as tasks. So when one completes, the loop feeds its end to
//! the runtime and writes the reply the runtime queues before it polls any future again: an
//! answer an actor computed is out before any more actor code runs, and a child that dies in
//! a later request (an abort in another future) has lost nothing it answered (property 15).
//! Between two polls of its futures the loop reads the parent channel, so a cancel reaches
//! the runtime while requests run, and the [`CancelToken`] each request was given says so.

use std::fmt;
use std::future::{Future, poll_fn};
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use harrow_model::child::{ChildCommand, ChildRuntime};
use harrow_model::trace::{Hex, TracedChildEvent};
use harrow_model::wire::{FrameError, Message, RemoteError};
use harrow_model::{Flaws, RequestId, exit};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::actor::{Made, registry_ref};
use crate::child::{ChildLimits, catch};
use crate::frame::{FrameIoError, FrameReader, write_frame};
use crate::sys;

/// What a request's work ends with: the reply's payload, or the error its caller gets.
type Reply = Result<Vec<u8>, RemoteError>;

/// One request's work, polled by the child's loop.
type Work = Pin<Box<dyn Future<Output = Reply>>>;

/// Whether the child an async request runs in has been cancelled: what an async handler
/// awaits, or asks, to end its work early.
///
/// The child's loop flips it when its runtime asks in-flight work to stop (a cancel from the
/// parent, the parent gone, a protocol error), and it stays flipped. Cheap to clone; a clone
/// may be moved into a task the handler spawns.
#[derive(Clone, Debug)]
pub struct CancelToken {
    cancelled: watch::Receiver<bool>,
}

impl CancelToken {
    /// Whether the work should stop now.
    pub fn is_cancelled(&self) -> bool {
        // A sender that is gone is a child loop that ended: nothing waits for the work.
        *self.cancelled.borrow() || self.cancelled.has_changed().is_err()
    }

    /// Completes once the work should stop (at once if it already should).
    pub async fn cancelled(&self) {
        let mut cancelled = self.cancelled.clone();
        // `Err`: the child loop ended, which ends the work too.
        let _ = cancelled.wait_for(|c| *c).await;
    }
}

/// An async daemon as its child runs it: how many of its requests may run at once, and what
/// makes a request's work.
pub(crate) struct AsyncActor {
    concurrency: Option<NonZeroU32>,
    handle: Box<dyn Fn(Vec<u8>, CancelToken) -> Work>,
}

impl fmt::Debug for AsyncActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncActor")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl AsyncActor {
    /// An actor running at most `concurrency` requests at once (`None`: as many as the
    /// child accepts), each the work `handle` makes of its payload.
    pub(crate) fn new(
        concurrency: Option<NonZeroU32>,
        handle: impl Fn(Vec<u8>, CancelToken) -> Work + 'static,
    ) -> Self {
        AsyncActor {
            concurrency,
            handle: Box::new(handle),
        }
    }
}

/// Runs the named async actor over `channel` within `limits`, announcing `pid` in its
/// handshake, until the protocol says to exit; returns the code.
///
/// A child forked from a thread that was running a tokio runtime (an `AsyncNursery`'s
/// caller) still has that runtime's context in its thread-local state, and tokio refuses to
/// start a runtime inside another: there the child runs its runtime on a thread of its own.
pub(crate) fn run_async_actor(actor: &str, channel: OwnedFd, pid: u32, limits: ChildLimits) -> i32 {
    let run = move || serve(actor, channel, pid, limits);
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| s.spawn(run).join()).unwrap_or(exit::PANIC)
}

/// [`run_async_actor`] on the thread it runs on.
fn serve(actor: &str, channel: OwnedFd, pid: u32, limits: ChildLimits) -> i32 {
    let Some(Made::Async(made)) = registry_ref().make(actor) else {
        eprintln!("harrow: no async actor named `{actor}` is registered in this program");
        return exit::UNKNOWN_ACTOR;
    };
    let trace = crate::trace::ChildTrace::open(actor);
    match AsyncChild::open(made, channel, pid, limits, trace) {
        Ok((rt, child)) => rt.block_on(child.run()),
        Err(why) => {
            eprintln!("harrow: the async actor `{actor}` cannot run: {why}");
            exit::ACTOR_FAILED
        }
    }
}

/// What the loop learned while it waited.
enum Happened {
    Message(Message),
    Malformed(FrameError),
    ParentEof,
    /// A request's work ended: with its reply, or with a panic's message.
    Done(RequestId, Result<Reply, String>),
}

/// An async child's loop: its runtime, its actor, its channel and its requests' work.
struct AsyncChild {
    runtime: ChildRuntime,
    actor: AsyncActor,
    reader: FrameReader<OwnedReadHalf>,
    /// Whether the channel may still have something to read (not ended, not failed).
    reading: bool,
    writer: OwnedWriteHalf,
    max_frame: u32,
    /// The work of the requests started and not finished: at most the runtime's concurrency.
    running: Vec<(RequestId, Work)>,
    cancel: watch::Sender<bool>,
    /// What the loop read and sent, and its exit, if tracing is on.
    trace: crate::trace::ChildTrace,
}

impl AsyncChild {
    /// The child's loop over `channel` and the runtime it runs on.
    fn open(
        actor: AsyncActor,
        channel: OwnedFd,
        pid: u32,
        limits: ChildLimits,
        trace: crate::trace::ChildTrace,
    ) -> Result<(tokio::runtime::Runtime, AsyncChild), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build its tokio runtime: {e}"))?;
        sys::set_nonblocking(channel.as_fd(), true)
            .map_err(|e| format!("cannot make its channel non-blocking: {e}"))?;
        let stream = std::os::unix::net::UnixStream::from(channel);
        let stream = {
            let _in_rt = rt.enter();
            UnixStream::from_std(stream)
                .map_err(|e| format!("cannot register its channel with tokio: {e}"))?
        };
        let (read, writer) = stream.into_split();
        let concurrency = actor.concurrency.map_or(limits.max_in_flight, u32::from);
        let runtime = ChildRuntime::new(pid, Flaws::NONE, limits.max_in_flight)
            .with_concurrency(concurrency.min(limits.max_in_flight));
        let child = AsyncChild {
            runtime,
            actor,
            reader: FrameReader::new(read, limits.max_frame),
            reading: true,
            writer,
            max_frame: limits.max_frame,
            running: Vec::new(),
            cancel: watch::Sender::new(false),
            trace,
        };
        Ok((rt, child))
    }

    /// Runs until the runtime says to exit; returns the code.
    async fn run(mut self) -> i32 {
        if self.runtime.start().is_err() {
            return exit::PROTOCOL_ERROR;
        }
        loop {
            if let Some(code) = self.execute().await {
                return code;
            }
            let happened = poll_fn(|cx| self.poll_next(cx)).await;
            self.feed(happened);
        }
    }

    /// The next thing that happens: a request's work ending first (the first of them polled
    /// that has), then something from the parent.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Happened> {
        for i in 0..self.running.len() {
            let work = &mut self.running[i].1;
            let ended = match catch(|| work.as_mut().poll(cx)) {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(reply)) => Ok(reply),
                Err(panic) => Err(panic),
            };
            let (id, _) = self.running.swap_remove(i);
            return Poll::Ready(Happened::Done(id, ended));
        }
        if !self.reading {
            return Poll::Pending;
        }
        let Poll::Ready(read) = self.reader.poll_frame(cx) else {
            return Poll::Pending;
        };
        self.reading = matches!(read, Ok(Some(_)));
        Poll::Ready(match read {
            Ok(Some(message)) => Happened::Message(message),
            Err(FrameIoError::Frame(e)) if !matches!(e, FrameError::EofInsideFrame { .. }) => {
                Happened::Malformed(e)
            }
            // A clean end, an end inside a frame, a broken channel: the parent is gone.
            Ok(None) | Err(_) => Happened::ParentEof,
        })
    }

    /// Feeds what happened to the runtime.
    ///
    /// A panic fails the actor: the runtime refuses the requests still running (their
    /// callers learn that their work was dropped) and says to exit at once, so their futures
    /// are never polled again; they are dropped with the loop.
    fn feed(&mut self, happened: Happened) {
        let max = self.max_frame;
        match &happened {
            // As the parent wrote it: a frame's encoding is the message's one encoding.
            Happened::Message(m) => self
                .trace
                .read(|| TracedChildEvent::Bytes(Hex(m.encode_fitted(max)))),
            Happened::ParentEof => self.trace.read(|| TracedChildEvent::Eof),
            Happened::Malformed(_) | Happened::Done(..) => {}
        }
        // An input the runtime refuses arrives only after it has asked to exit.
        let _ = match happened {
            Happened::Message(m) => self.runtime.handle_message(m),
            Happened::Malformed(e) => self.runtime.handle_malformed(e),
            Happened::ParentEof => self.runtime.handle_parent_eof(),
            Happened::Done(id, Ok(reply)) => self.runtime.handle_work_done(id, reply),
            Happened::Done(id, Err(panic)) => self
                .runtime
                .handle_work_panicked(id, RemoteError::panic(panic)),
        };
    }

    /// Carries out the runtime's commands; `Some` with the exit code once it says to exit.
    async fn execute(&mut self) -> Option<i32> {
        while let Some(command) = self.runtime.poll_command() {
            match command {
                // A parent that is gone is not an error here: its EOF comes next.
                ChildCommand::Send(m) => {
                    let _ = write_frame(&mut self.writer, &m, self.max_frame).await;
                    let max = self.max_frame;
                    self.trace.sent(|| m.encode_fitted(max));
                }
                // An async daemon has no start of its own and opens no nursery.
                ChildCommand::StartActor { .. } => {}
                ChildCommand::TeardownSubtree => {
                    let _ = self.runtime.handle_subtree_closed();
                }
                ChildCommand::StartMain { actor } => {
                    let err = RemoteError::refused(format!(
                        "actor `{actor}` is a daemon: spawn it with Role::Daemon"
                    ));
                    let _ = self.runtime.handle_actor_failed(err);
                }
                ChildCommand::StartRequest { id, payload } => {
                    let cancelled = self.cancel.subscribe();
                    let work = (self.actor.handle)(payload, CancelToken { cancelled });
                    self.running.push((id, work));
                }
                ChildCommand::InterruptWork => {
                    self.cancel.send_replace(true);
                }
                ChildCommand::Exit(code) => {
                    // Before the loop drops the channel: the parent's end-of-file comes after.
                    self.trace.exit(code);
                    return Some(code);
                }
            }
        }
        None
    }
}
