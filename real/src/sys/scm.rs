//! Passing descriptors over a unix socket (`SCM_RIGHTS`, man unix(7)).
//!
//! Built on rustix's `sendmsg`/`recvmsg`, not nix's: nix refuses to iterate the control
//! messages of a truncated (`MSG_CTRUNC`) receive, which would leave the descriptors that
//! did arrive open with no owner; rustix hands every arrived descriptor over as an
//! `OwnedFd`, so a truncated receive closes them all and says so
//! ([`Received::fds_lost`]). Its data did arrive: a stream stays in step, and the caller
//! decides what the lost descriptors mean. Received descriptors are close-on-exec
//! (`MSG_CMSG_CLOEXEC`) from the moment they exist.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::channel::{RecvOutcome, SendOutcome, send_all};
use super::error::{Op, SysError, rustix_err};

/// The most descriptors one message may carry.
pub const MAX_FDS: usize = 8;

/// Bytes of control-message space for [`MAX_FDS`] descriptors.
const SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// What [`recv_with_fds`] got: the data outcome and the descriptors that came with it.
#[derive(Debug)]
pub struct Received {
    /// The data part, as for a plain receive.
    pub outcome: RecvOutcome,
    /// The descriptors, owned and close-on-exec, in the order they were sent.
    pub fds: Vec<OwnedFd>,
    /// Some descriptors sent with this data could not be received (`MSG_CTRUNC`): the
    /// process is out of descriptors (`RLIMIT_NOFILE`; the kernel drops what it cannot
    /// install), or more were sent than `max_fds`. Those that did arrive were closed, so
    /// `fds` is then empty.
    pub fds_lost: bool,
}

/// Sends `data` (at least one byte) with up to [`MAX_FDS`] descriptors attached, without
/// blocking and without `SIGPIPE` (man sendmsg(2)).
///
/// The descriptors travel with the first chunk sent; if the socket buffer fills after that,
/// the outcome says how much went and the caller sends the rest as plain data.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<SendOutcome, SysError> {
    if fds.len() > MAX_FDS {
        return Err(SysError::TooManyFds {
            given: fds.len(),
            max: MAX_FDS,
        });
    }
    if data.is_empty() {
        // A stream socket cannot carry descriptors without at least one byte of data.
        return Err(SysError::os(Op::Sendmsg, libc::EINVAL));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(SysError::TooManyFds {
            given: fds.len(),
            max: MAX_FDS,
        });
    }
    let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
    let first = loop {
        match rustix::net::sendmsg(sock, &[IoSlice::new(data)], &mut control, flags) {
            Ok(n) => break n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(SendOutcome::WouldBlock { sent: 0 }),
            Err(Errno::PIPE | Errno::CONNRESET) => return Ok(SendOutcome::PeerGone { sent: 0 }),
            Err(e) => return Err(rustix_err(Op::Sendmsg)(e)),
        }
    };
    Ok(match send_all(sock, &data[first..])? {
        SendOutcome::Complete => SendOutcome::Complete,
        SendOutcome::WouldBlock { sent } => SendOutcome::WouldBlock { sent: first + sent },
        SendOutcome::PeerGone { sent } => SendOutcome::PeerGone { sent: first + sent },
    })
}

/// Receives into `buf` without blocking, accepting up to `max_fds` (at most [`MAX_FDS`])
/// attached descriptors (man recvmsg(2), `MSG_CMSG_CLOEXEC`).
///
/// A message whose descriptors could not all be received (no room, or out of descriptors)
/// comes back with its data and [`Received::fds_lost`]; the descriptors that arrived are
/// closed, so that no caller mistakes a partial set for the whole.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<Received, SysError> {
    if max_fds > MAX_FDS {
        return Err(SysError::TooManyFds {
            given: max_fds,
            max: MAX_FDS,
        });
    }
    let mut space = [MaybeUninit::<u8>::uninit(); SPACE];
    let room = if max_fds == 0 {
        0
    } else {
        rustix::cmsg_space!(ScmRights(max_fds))
    };
    let mut control = RecvAncillaryBuffer::new(&mut space[..room]);
    let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
    let msg = loop {
        match rustix::net::recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, flags) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                return Ok(Received {
                    outcome: RecvOutcome::WouldBlock,
                    fds: Vec::new(),
                    fds_lost: false,
                });
            }
            Err(Errno::CONNRESET) => {
                return Ok(Received {
                    outcome: RecvOutcome::PeerGone,
                    fds: Vec::new(),
                    fds_lost: false,
                });
            }
            Err(e) => return Err(rustix_err(Op::Recvmsg)(e)),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(arrived) = message {
            fds.extend(arrived);
        }
    }
    let fds_lost = msg.flags.contains(ReturnFlags::CTRUNC);
    if fds_lost {
        fds.clear();
    }
    let outcome = if msg.bytes == 0 && !buf.is_empty() {
        RecvOutcome::Eof
    } else {
        RecvOutcome::Data(msg.bytes)
    };
    Ok(Received {
        outcome,
        fds,
        fds_lost,
    })
}
