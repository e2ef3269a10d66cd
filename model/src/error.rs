//! Typed errors: each says which child, what happened, who started it, and what to do.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{ChildId, RequestId};
use crate::method::MethodRefused;
use crate::wire::{FrameError, RemoteError};

/// How a process ended, as the reap reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// A signal with this number ended it.
    Signaled(i32),
}

impl ExitStatus {
    /// Whether it exited with code zero.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// Who started the stopping of a child or of a whole nursery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Initiator {
    /// The user asked for it (cancel or hard stop of one child).
    User,
    /// The nursery: its body ended, or a sibling failed (one cancels all).
    Nursery,
    /// SIGINT reached the supervising process.
    Interrupt,
    /// The supervisor itself: a timeout expired or the child broke the protocol.
    Supervisor,
    /// The child: it failed, closed its channel or exited by itself.
    Child,
}

impl fmt::Display for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Initiator::User => "the user",
            Initiator::Nursery => "the nursery",
            Initiator::Interrupt => "SIGINT",
            Initiator::Supervisor => "the supervisor",
            Initiator::Child => "the child",
        })
    }
}

/// What went wrong with one child.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildErrorKind {
    /// The spawn method could not start it.
    LaunchFailed(String),
    /// It exited before its handshake.
    BootFailed(ExitStatus),
    /// No handshake arrived within the boot timeout; it was stopped hard.
    BootTimedOut,
    /// Its handshake carried another protocol version.
    VersionMismatch {
        /// The version it announced.
        got: u16,
    },
    /// It exited by itself while it was expected to serve.
    Died(ExitStatus),
    /// Its actor failed; the remote error is attached.
    Remote(RemoteError),
    /// It sent a malformed frame or a message out of order.
    Protocol(ProtocolViolation),
    /// It was killed but its exit was not seen within the reap timeout.
    ReapTimedOut,
    /// It exited but could not be reaped; the text says why (its exit status is unknown).
    ReapFailed(String),
}

impl ChildErrorKind {
    /// Whether this error cancels the nursery (one cancels all). A launch failure does not:
    /// no child ever ran, the system refused a resource (descriptors, processes), and the
    /// caller already has the error from `spawn`; its siblings keep serving.
    pub fn cancels_nursery(&self) -> bool {
        !matches!(self, ChildErrorKind::LaunchFailed(_))
    }
}

/// A message a child may not send where it sent it, or a frame that did not decode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// The frame did not decode.
    Malformed(FrameError),
    /// A message that this state does not allow.
    Unexpected {
        /// The message's name.
        message: String,
        /// The state the child was in.
        phase: String,
    },
    /// A reply to a request that was never sent or already answered.
    UnknownReply(RequestId),
    /// A second report of the child's own failure (`Failed`, or `Failed` after a failed
    /// result). A child fails once; what follows is not trusted, and not kept.
    SecondFailure,
}

/// A frame that did not decode has the decoder's error underneath.
impl core::error::Error for ProtocolViolation {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ProtocolViolation::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::Malformed(e) => write!(f, "malformed frame: {e}"),
            ProtocolViolation::Unexpected { message, phase } => {
                write!(f, "unexpected {message} while {phase}")
            }
            ProtocolViolation::UnknownReply(id) => write!(f, "reply to unknown {id}"),
            ProtocolViolation::SecondFailure => f.write_str(
                "a second failure report; a child reports its own failure once, so the parent \
                 stopped reading it",
            ),
        }
    }
}

/// One child's error, reported to the nursery's caller exactly once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildError {
    /// Which child.
    pub child: ChildId,
    /// Its actor name.
    pub name: String,
    /// What happened.
    pub kind: ChildErrorKind,
    /// Who started the chain of events that ended here.
    pub initiator: Initiator,
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = alloc::format!("{} `{}`", self.child, self.name);
        match &self.kind {
            ChildErrorKind::LaunchFailed(why) => write!(
                f,
                "{who} could not be launched: {why}; check the spawn method and system limits"
            ),
            ChildErrorKind::BootFailed(status) => write!(
                f,
                "{who} died during boot ({status}) before its handshake; run it alone to see \
                 why it fails to start"
            ),
            ChildErrorKind::BootTimedOut => write!(
                f,
                "{who} sent no handshake within the boot timeout and was stopped; raise the \
                 boot timeout or find what blocks its start-up"
            ),
            ChildErrorKind::VersionMismatch { got } => write!(
                f,
                "{who} speaks protocol version {got}, not {}; rebuild parent and child from the \
                 same harrow version",
                crate::wire::PROTOCOL_VERSION
            ),
            ChildErrorKind::Died(status) => write!(
                f,
                "{who} exited by itself ({status}) while it should have been serving; look at \
                 its own output for the cause"
            ),
            ChildErrorKind::Remote(err) => write!(f, "{who} failed: {err}"),
            ChildErrorKind::Protocol(v) => write!(
                f,
                "{who} broke the protocol ({v}) and was torn down; parent and child must use the \
                 same codec"
            ),
            ChildErrorKind::ReapTimedOut => write!(
                f,
                "{who} was killed but did not exit within the reap timeout (stuck in the \
                 kernel?); it is reported and left to init"
            ),
            ChildErrorKind::ReapFailed(why) => write!(
                f,
                "{who} exited but could not be reaped ({why}), so its exit status is unknown; \
                 it is reported as unreaped"
            ),
        }?;
        write!(f, " (initiated by {})", self.initiator)
    }
}

/// The error underneath, for reporters that walk the chain: the child's own remote error,
/// or the protocol violation it committed. The message says it too: it stands alone.
impl core::error::Error for ChildError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match &self.kind {
            ChildErrorKind::Remote(err) => Some(err),
            ChildErrorKind::Protocol(v) => Some(v),
            _ => None,
        }
    }
}

/// Why `spawn` was refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SpawnError {
    /// The nursery is tearing down or closed and takes no new children.
    NurseryClosing,
    /// The nursery already holds its maximum number of live children.
    CapacityExhausted {
        /// The limit in force.
        max: u32,
    },
    /// The nursery has given out every child id it has (2^32); ids are never reused.
    IdsExhausted,
    /// The spawn method cannot work in the caller's situation.
    MethodRefused(MethodRefused),
    /// The command queue to the driver is full: the driver is not draining it.
    Backlogged,
    /// A live child of this nursery already has this instance name.
    NameTaken(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NurseryClosing => {
                f.write_str("spawn refused: the nursery is tearing down; open a new nursery")
            }
            SpawnError::CapacityExhausted { max } => write!(
                f,
                "spawn refused: the nursery holds its limit of {max} live children; wait for \
                 one to end or stop one, raise `Limits::max_children`, or use several nurseries"
            ),
            SpawnError::IdsExhausted => f.write_str(
                "spawn refused: the nursery has given out all 2^32 child ids; open a new nursery",
            ),
            SpawnError::MethodRefused(r) => r.fmt(f),
            SpawnError::Backlogged => f.write_str(
                "spawn refused: the driver has not drained the protocol's command queue; \
                 poll commands after every input",
            ),
            SpawnError::NameTaken(name) => write!(
                f,
                "spawn refused: a live child is already named `{name}`; pick a unique name"
            ),
        }
    }
}

impl core::error::Error for SpawnError {}

/// Why a user operation on one child (request, cancel, hard stop) was refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildOpError {
    /// No child has this id in this nursery.
    UnknownChild(ChildId),
    /// The child is not serving (still booting, or stopping); the state is named.
    NotServing {
        /// Which child.
        child: ChildId,
        /// Its current phase.
        phase: String,
    },
    /// The child already has the maximum number of requests awaiting replies.
    TooManyInFlight {
        /// Which child.
        child: ChildId,
        /// The limit in force.
        max: u32,
    },
    /// The child has already finished (its records may be retired); there is nothing to stop.
    AlreadyFinished(ChildId),
    /// The request payload does not fit in one frame.
    PayloadTooLarge {
        /// Its length in bytes.
        len: u64,
        /// The largest payload the nursery's frame limit allows.
        max: u32,
    },
    /// The command queue to the driver is full: the driver is not draining it.
    Backlogged,
    /// No request of this id is waiting for its answer from this child, and no answer of
    /// it is kept: it was never sent to it, or its answer was claimed or given up already.
    UnknownRequest {
        /// Which child.
        child: ChildId,
        /// The request.
        id: RequestId,
    },
}

impl fmt::Display for ChildOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildOpError::UnknownChild(c) => write!(f, "{c} does not belong to this nursery"),
            ChildOpError::NotServing { child, phase } => write!(
                f,
                "{child} is {phase}, not serving; wait for its handshake, or stop sending once \
                 it is cancelled"
            ),
            ChildOpError::TooManyInFlight { child, max } => write!(
                f,
                "{child} already has {max} requests awaiting replies or unclaimed answers; \
                 claim some answers, or raise `Limits::max_in_flight`"
            ),
            ChildOpError::AlreadyFinished(c) => {
                write!(f, "{c} has already finished; spawn a new child to go on")
            }
            ChildOpError::PayloadTooLarge { len, max } => write!(
                f,
                "a request payload of {len} bytes exceeds the {max}-byte limit of one frame; \
                 send it in parts, or raise the nursery's `max_frame`"
            ),
            ChildOpError::Backlogged => f.write_str(
                "refused: the driver has not drained the protocol's command queue; poll \
                 commands after every input",
            ),
            ChildOpError::UnknownRequest { child, id } => write!(
                f,
                "{child} owes no answer to {id}: it was not sent to it, or its answer was \
                 already claimed or given up"
            ),
        }
    }
}

impl core::error::Error for ChildOpError {}

/// A driver input that does not fit the child's current state: a driver bug, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputError {
    /// Which child the input was for.
    pub child: ChildId,
    /// The input's name.
    pub input: String,
    /// The phase it arrived in.
    pub phase: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "driver input {} is not valid for {} while {}; the driver fed an event the \
             protocol did not ask for",
            self.input, self.child, self.phase
        )
    }
}

impl core::error::Error for InputError {}
