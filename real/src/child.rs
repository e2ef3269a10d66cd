//! The child side on Linux: the shared child event loop over a blocking channel.

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::AssertUnwindSafe;

use harrow_model::Flaws;
use harrow_model::child::ChildRuntime;
use harrow_model::driver::{ChildEvent, ChildExit, ChildOs, run_child};
use harrow_model::exit;
use harrow_model::wire::DEFAULT_MAX_FRAME;

use crate::actor::registry_ref;
use crate::sys::{self, RecvOutcome};

/// The receive buffer: a frame larger than this arrives in several reads. Small, and on the
/// stack, on purpose: every page a forked child touches before its handshake is a
/// copy-on-write fault on the spawn path, and a heap allocation of 1 KiB or more makes glibc
/// consolidate its free lists first, touching pages all over the inherited heap.
const RECV_BUF: usize = 4096;

/// Reads one [`ChildOs::poll`] makes, at most: a `Cancel` asked in a loop never gets stuck
/// reading a parent that keeps sending; what is left is read at its next question.
const MAX_POLL_READS: usize = 16;

/// Requests a child runs at once, at most.
const MAX_IN_FLIGHT: u32 = 256;

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

    fn wait(&mut self, out: &mut Vec<ChildEvent>) {
        match sys::recv_blocking(self.fd.as_fd(), &mut self.buf) {
            Ok(RecvOutcome::Data(n)) => out.push(ChildEvent::Bytes(self.buf[..n].to_vec())),
            Ok(RecvOutcome::Eof | RecvOutcome::PeerGone | RecvOutcome::WouldBlock) | Err(_) => {
                out.push(ChildEvent::Eof)
            }
        }
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
        std::panic::catch_unwind(AssertUnwindSafe(code)).map_err(|payload| {
            let message = panic_message(payload.as_ref());
            // Dropping the payload runs code of the actor's (its destructor), which could
            // panic in turn, and a panic there would abort: forget it, as a child's own
            // panic guard does.
            std::mem::forget(payload);
            message
        })
    }
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

/// Runs the named actor over `channel` until the protocol says to exit; returns the code.
///
/// The entry of every child: forked, served by the fork server, re-executed, or on a thread.
pub fn run_actor(actor: &str, channel: OwnedFd) -> i32 {
    run_actor_as(actor, channel, std::process::id())
}

/// [`run_actor`] announcing `pid` in the handshake (0 for a thread child).
pub(crate) fn run_actor_as(actor: &str, channel: OwnedFd, pid: u32) -> i32 {
    let Some(mut actor_impl) = registry_ref().make(actor) else {
        eprintln!(
            "harrow: no actor named `{actor}` is registered in this program; register it in the \
             Registry passed to harrow_real::init"
        );
        return exit::UNKNOWN_ACTOR;
    };
    let _ = sys::set_nonblocking(channel.as_fd(), false);
    let mut os = Channel {
        fd: channel,
        buf: [0; RECV_BUF],
    };

    let runtime = ChildRuntime::new(pid, Flaws::NONE, MAX_IN_FLIGHT);
    match run_child(&mut os, &mut actor_impl, runtime, DEFAULT_MAX_FRAME) {
        ChildExit::Code(code) => code,
        ChildExit::Killed => exit::KILLED,
    }
}
