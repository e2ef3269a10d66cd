//! The control socket's frames: encoding, bounded reads and writes with descriptors.
//!
//! The format is documented in the parent module (`# Wire format`); the constants here are
//! its single source.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use crate::sys::channel::wait_for;
use crate::sys::{
    ExitStatus, MAX_FDS, RecvOutcome, SendOutcome, SysError, recv_with_fds, send_all,
    send_with_fds, wait_readable,
};

/// The version the server announces in its hello; the client accepts only its own.
pub(super) const VERSION: u32 = 1;

/// Bytes before the payload: the kind and the payload length.
pub(super) const HEADER: usize = 5;

/// The largest payload a frame may announce; a larger one is a protocol error.
pub(super) const MAX_PAYLOAD: usize = 4096;

/// The longest actor name a spawn request may carry, in bytes.
pub const MAX_ACTOR_LEN: usize = 1024;

/// Server → client, once at start: ready to serve.
pub(super) const HELLO: u8 = b'H';
/// Client → server: fork a child running the named actor.
pub(super) const SPAWN: u8 = b'S';
/// Client → server: reap a child if it has exited (waiting up to the given bound).
pub(super) const REAP: u8 = b'R';
/// Server → client: the child was forked; its channel end and pidfd are attached.
pub(super) const CHILD: u8 = b'C';
/// Server → client: the child exited and is reaped.
pub(super) const EXITED: u8 = b'X';
/// Server → client: the child has not exited yet.
pub(super) const RUNNING: u8 = b'W';
/// Server → client: the request failed; errno and text follow.
pub(super) const ERROR: u8 = b'E';

/// One received frame and the descriptors that came with it.
#[derive(Debug)]
pub(super) struct Frame {
    /// The kind byte.
    pub(super) kind: u8,
    /// The payload, at most [`MAX_PAYLOAD`] bytes.
    pub(super) payload: Vec<u8>,
    /// Descriptors received with it, in the order sent.
    pub(super) fds: Vec<OwnedFd>,
    /// Descriptors sent with it could not be received (this process is out of descriptors):
    /// `fds` is then empty. The frame's bytes all arrived, so the stream is still in step.
    pub(super) fds_lost: bool,
}

/// What reading a frame came to.
#[derive(Debug)]
pub(super) enum Read {
    /// A whole frame.
    Frame(Frame),
    /// The peer closed its end (before or inside a frame).
    Closed,
    /// The deadline passed before the frame was complete.
    TimedOut,
    /// The header announced more than [`MAX_PAYLOAD`] bytes; the stream cannot be resynced.
    Oversized(u32),
}

/// What sending a frame came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// Every byte went out.
    Complete,
    /// The peer closed its end.
    PeerGone,
    /// The deadline passed with the socket buffer still full.
    TimedOut,
}

/// A frame of `kind` with `payload` (at most [`MAX_PAYLOAD`] bytes; the caller keeps it so).
pub(super) fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD, "frame payload over the limit");
    let len = u32::try_from(payload.len()).expect("payload fits the length field");
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Time left until `deadline` (`None`: no deadline).
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Sends `frame` with `fds` attached to its first byte, waiting for buffer space until
/// `deadline`.
pub(super) fn send_frame(
    sock: BorrowedFd<'_>,
    frame: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<Sent, SysError> {
    let mut sent = 0;
    while sent < frame.len() {
        // Until the first byte is out the descriptors have not gone either: keep attaching them.
        let outcome = if sent == 0 && !fds.is_empty() {
            send_with_fds(sock, frame, fds)?
        } else {
            send_all(sock, &frame[sent..])?
        };
        match outcome {
            SendOutcome::Complete => return Ok(Sent::Complete),
            SendOutcome::PeerGone { .. } => return Ok(Sent::PeerGone),
            SendOutcome::WouldBlock { sent: more } => {
                sent += more;
                if !wait_for(sock, PollFlags::OUT, remaining(deadline))? {
                    return Ok(Sent::TimedOut);
                }
            }
        }
    }
    Ok(Sent::Complete)
}

/// How filling a buffer ended.
enum Fill {
    Full,
    Closed,
    TimedOut,
}

/// The descriptors that came with a frame's bytes, and whether some were lost on the way.
#[derive(Default)]
struct Attached {
    fds: Vec<OwnedFd>,
    lost: bool,
}

/// Fills `buf` from `sock`, collecting any descriptors that arrive, until `deadline`.
fn fill(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    attached: &mut Attached,
    deadline: Option<Instant>,
) -> Result<Fill, SysError> {
    let mut got = 0;
    while got < buf.len() {
        let received = recv_with_fds(sock, &mut buf[got..], MAX_FDS)?;
        attached.fds.extend(received.fds);
        attached.lost |= received.fds_lost;
        match received.outcome {
            RecvOutcome::Data(n) => got += n,
            RecvOutcome::Eof | RecvOutcome::PeerGone => return Ok(Fill::Closed),
            RecvOutcome::WouldBlock => {
                if !wait_readable(sock, remaining(deadline))? {
                    return Ok(Fill::TimedOut);
                }
            }
        }
    }
    Ok(Fill::Full)
}

/// Reads one whole frame, waiting until `deadline` (`None`: without bound).
///
/// Two receives: the header, then exactly the payload, so nothing of a following frame is
/// ever consumed. Descriptors arriving with either part are kept in the frame.
pub(super) fn read_frame(
    sock: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<Read, SysError> {
    let mut attached = Attached::default();
    let mut header = [0u8; HEADER];
    match fill(sock, &mut header, &mut attached, deadline)? {
        Fill::Full => {}
        Fill::Closed => return Ok(Read::Closed),
        Fill::TimedOut => return Ok(Read::TimedOut),
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let Some(len) = usize::try_from(len).ok().filter(|&n| n <= MAX_PAYLOAD) else {
        return Ok(Read::Oversized(len));
    };
    let mut payload = vec![0u8; len];
    match fill(sock, &mut payload, &mut attached, deadline)? {
        Fill::Full => Ok(Read::Frame(Frame {
            kind: header[0],
            payload,
            // A partial set is no set: whatever arrived is closed with the frame's loss.
            fds: if attached.lost {
                Vec::new()
            } else {
                attached.fds
            },
            fds_lost: attached.lost,
        })),
        Fill::Closed => Ok(Read::Closed),
        Fill::TimedOut => Ok(Read::TimedOut),
    }
}

/// The little-endian `i32` at `at`, if the payload is long enough.
pub(super) fn i32_at(payload: &[u8], at: usize) -> Option<i32> {
    let bytes = payload.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes(bytes.try_into().ok()?))
}

/// The little-endian `u32` at `at`, if the payload is long enough.
pub(super) fn u32_at(payload: &[u8], at: usize) -> Option<u32> {
    let bytes = payload.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The payload of an `X` reply.
pub(super) fn encode_status(status: ExitStatus) -> [u8; 5] {
    let (how, value) = match status {
        ExitStatus::Exited(code) => (0u8, code),
        ExitStatus::Signaled(sig) => (1u8, sig),
    };
    let v = value.to_le_bytes();
    [how, v[0], v[1], v[2], v[3]]
}

/// Reads the payload of an `X` reply.
pub(super) fn decode_status(payload: &[u8]) -> Option<ExitStatus> {
    if payload.len() != 5 {
        return None;
    }
    let value = i32_at(payload, 1)?;
    match payload[0] {
        0 => Some(ExitStatus::Exited(value)),
        1 => Some(ExitStatus::Signaled(value)),
        _ => None,
    }
}
