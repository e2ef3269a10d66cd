//! The child side on Linux: the shared child event loop over a blocking channel.

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use harrow_model::Flaws;
use harrow_model::child::ChildRuntime;
use harrow_model::driver::{BlockingChildOs, ChildEvent, ChildExit, ChildOs};
use harrow_model::exit;
use harrow_model::wire::DEFAULT_MAX_FRAME;

use crate::actor::{Made, registry_ref};
use crate::sys::{self, RecvOutcome};

/// The receive buffer: a frame larger than this arrives in several reads. Small, and on the
/// stack, on purpose: every page a forked child touches before its handshake is a
/// copy-on-write fault on the spawn path, and a heap allocation of 1 KiB or more makes glibc
/// consolidate its free lists first, touching pages all over the inherited heap.
const RECV_BUF: usize = 4096;

/// Reads one [`ChildOs::poll`] makes, at most: a `Cancel` asked in a loop never gets stuck
/// reading a parent that keeps sending; what is left is read at its next question.
const MAX_POLL_READS: usize = 16;

/// What bounds a child's side of its channel, as its nursery's configuration says: carried
/// to the child at its launch (an argument of the closure, the thread or the re-executed
/// program; the fork server's own arguments, for every child it forks), never assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildLimits {
    /// The largest frame either side sends or accepts.
    pub(crate) max_frame: u32,
    /// Requests the child takes on at once, at most.
    pub(crate) max_in_flight: u32,
}

impl Default for ChildLimits {
    /// The protocol's defaults: [`DEFAULT_MAX_FRAME`] and `Limits::default().max_in_flight`.
    fn default() -> Self {
        ChildLimits {
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: harrow_model::Limits::default().max_in_flight,
        }
    }
}

impl ChildLimits {
    /// The limits as program arguments, for a re-executed child or fork server.
    pub(crate) fn to_args(self) -> [String; 2] {
        [self.max_frame.to_string(), self.max_in_flight.to_string()]
    }

    /// The limits from the program arguments [`ChildLimits::to_args`] made; the defaults if
    /// there are none (a fork server started by hand).
    pub(crate) fn from_args(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let (Some(frame), Some(in_flight)) = (args.next(), args.next()) else {
            return Ok(ChildLimits::default());
        };
        let number = |what: &str, arg: &str| {
            arg.parse::<u32>()
                .map_err(|e| format!("the child's {what} argument `{arg}` is not a number: {e}"))
        };
        Ok(ChildLimits {
            max_frame: number("max_frame", &frame)?,
            max_in_flight: number("max_in_flight", &in_flight)?,
        })
    }
}

/// The limits of every child this process forks as a fork server, from its arguments.
static SERVED_LIMITS: OnceLock<ChildLimits> = OnceLock::new();

/// Sets the limits of the children this fork server forks; the first call wins.
pub(crate) fn serve_with(limits: ChildLimits) {
    let _ = SERVED_LIMITS.set(limits);
}

/// A fork server's child body: [`run_actor_as`] with the limits the server was started with.
pub(crate) fn run_served_actor(actor: &str, channel: OwnedFd) -> i32 {
    let limits = SERVED_LIMITS.get().copied().unwrap_or_default();
    run_actor_as(actor, channel, std::process::id(), limits)
}

/// The channel to the parent, read with blocking calls: a child waits on nothing else.
struct Channel {
    fd: OwnedFd,
    buf: [u8; RECV_BUF],
}

impl ChildOs for Channel {
    fn send(&mut self, frame: &[u8]) {
        // Blocks while the parent's buffer is full: the parent's event loop never blocks on
        // its sends, so it keeps reading. A parent that is gone is not an error here: its
        // EOF comes next.
        let _ = sys::send_all_blocking(self.fd.as_fd(), frame);
    }

    fn poll(&mut self, out: &mut Vec<ChildEvent>) {
        for _ in 0..MAX_POLL_READS {
            match sys::recv(self.fd.as_fd(), &mut self.buf) {
                Ok(RecvOutcome::Data(n)) => out.push(ChildEvent::Bytes(self.buf[..n].to_vec())),
                Ok(RecvOutcome::WouldBlock) => return,
                Ok(RecvOutcome::Eof | RecvOutcome::PeerGone) | Err(_) => {
                    out.push(ChildEvent::Eof);
                    return;
                }
            }
        }
    }

    fn alive(&mut self) -> bool {
        true
    }

    /// Unwind safety: after a panic the actor is not asked to serve again (its child reports
    /// the failure and stops); only a daemon's own nursery is still torn down through it.
    fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, String> {
        catch(code)
    }
}

impl BlockingChildOs for Channel {
    fn wait(&mut self, out: &mut Vec<ChildEvent>) {
        match sys::recv_blocking(self.fd.as_fd(), &mut self.buf) {
            Ok(RecvOutcome::Data(n)) => out.push(ChildEvent::Bytes(self.buf[..n].to_vec())),
            Ok(RecvOutcome::Eof | RecvOutcome::PeerGone | RecvOutcome::WouldBlock) | Err(_) => {
                out.push(ChildEvent::Eof)
            }
        }
    }
}

/// Runs actor code, catching a panic in it: `Err` with the panic's message if it panicked.
pub(crate) fn catch<R>(code: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(AssertUnwindSafe(code)).map_err(|payload| {
        let message = panic_message(payload.as_ref());
        // Dropping the payload runs code of the actor's (its destructor), which could panic
        // in turn, and a panic there would abort: forget it, as a child's own panic guard
        // does.
        std::mem::forget(payload);
        message
    })
}

/// A panic's message: the text `panic!` was given, as the remote error's text.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (
        payload.downcast_ref::<&str>(),
        payload.downcast_ref::<String>(),
    ) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "the actor panicked with a value that is not a message".to_owned(),
    }
}

/// Runs the named actor over `channel` within `limits`, announcing `pid` in the handshake
/// (0 for a thread child), until the protocol says to exit; returns the code.
///
/// The entry of every child: forked, served by the fork server, re-executed, or on a thread.
pub(crate) fn run_actor_as(actor: &str, channel: OwnedFd, pid: u32, limits: ChildLimits) -> i32 {
    let mut actor_impl = match registry_ref().make(actor) {
        Some(Made::Actor(actor_impl)) => actor_impl,
        // Made again where it runs: its child may run it on a thread of its own, and an
        // async actor's work is not `Send`.
        #[cfg(feature = "tokio")]
        Some(Made::Async(_)) => {
            return crate::async_child::run_async_actor(actor, channel, pid, limits);
        }
        None => {
            eprintln!(
                "harrow: no actor named `{actor}` is registered in this program; register it \
                 in the Registry passed to harrow_real::init"
            );
            return exit::UNKNOWN_ACTOR;
        }
    };
    let _ = sys::set_nonblocking(channel.as_fd(), false);
    let mut os = Channel {
        fd: channel,
        buf: [0; RECV_BUF],
    };

    let runtime = ChildRuntime::new(pid, Flaws::NONE, limits.max_in_flight);
    match crate::trace::run_child(&mut os, &mut actor_impl, runtime, limits.max_frame, actor) {
        ChildExit::Code(code) => code,
        ChildExit::Killed => exit::KILLED,
    }
}

#[cfg(test)]
mod tests {
    use super::ChildLimits;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn limits_round_trip_through_the_arguments_and_a_bad_one_says_which() {
        let limits = ChildLimits {
            max_frame: 4096,
            max_in_flight: 8,
        };
        let [frame, in_flight] = limits.to_args();
        assert_eq!(
            ChildLimits::from_args(args(&[&frame, &in_flight])),
            Ok(limits)
        );
        assert_eq!(
            ChildLimits::from_args(args(&[])),
            Ok(ChildLimits::default())
        );
        let err = ChildLimits::from_args(args(&["4096", "many"])).unwrap_err();
        assert!(
            err.contains("max_in_flight") && err.contains("`many`"),
            "{err}"
        );
    }
}
