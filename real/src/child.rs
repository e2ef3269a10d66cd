//! The child side on Linux: the shared child event loop over a blocking channel.

use std::os::fd::{AsFd, OwnedFd};

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

    fn alive(&mut self) -> bool {
        true
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
