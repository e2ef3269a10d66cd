//! Waiting on many descriptors at once: a bounded epoll wrapper (man epoll(7)).
//!
//! Level-triggered, one `u64` token per descriptor. A channel is ready when it has data, end
//! of stream or a hangup; a pidfd is ready once its process has exited (it stays ready after
//! the reap, so deregister a pidfd before or right after reaping). Register a descriptor only
//! while you own it and deregister it before closing it: epoll watches the open file
//! description, which a forked child's copy can keep alive after our close.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use harrow_model::Timestamp;
use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
use rustix::io::Errno;

use super::error::{Op, SysError, rustix_err};

/// The largest event buffer a [`Poller`] may have; more ready descriptors are returned by the
/// next wait (level-triggered, nothing is lost).
pub const MAX_EVENTS: usize = 1024;

/// One ready descriptor, by its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The token it was registered with.
    pub token: u64,
    /// Data, end of stream, or (for a pidfd) the process has exited.
    pub readable: bool,
    /// The peer hung up (`EPOLLHUP` / `EPOLLRDHUP`): no more data will ever come.
    pub hangup: bool,
    /// There is room to write (`EPOLLOUT`), for a descriptor watched with
    /// [`Poller::watch_writable`].
    pub writable: bool,
    /// An error is pending on the descriptor (`EPOLLERR`).
    pub error: bool,
}

/// An epoll instance with a bounded event buffer.
pub struct Poller {
    epoll: OwnedFd,
    events: Vec<Event>,
}

// SAFETY: `Event`'s data is a union of a `u64` and a raw pointer, which makes it `!Send`; this
// poller only ever registers and reads `u64` tokens, never a pointer, so the buffer is plain
// data the kernel fills in, owned by this value alone. Moving it to another thread is sound,
// and it is what lets a `Nursery` be held by an actor (which must be `Send`).
unsafe impl Send for Poller {}

impl core::fmt::Debug for Poller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .field("capacity", &self.events.capacity())
            .finish()
    }
}

impl AsFd for Poller {
    /// The epoll descriptor: readable while any descriptor it watches is ready (level
    /// semantics), so a host loop may wait on it with its own `poll`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl Poller {
    /// A poller returning up to `capacity` events per wait (clamped to 1..=[`MAX_EVENTS`]).
    pub fn new(capacity: usize) -> Result<Poller, SysError> {
        let epoll = epoll::create(CreateFlags::CLOEXEC).map_err(rustix_err(Op::EpollCreate))?;
        Ok(Poller {
            epoll,
            events: Vec::with_capacity(capacity.clamp(1, MAX_EVENTS)),
        })
    }

    /// Watches `fd` for readability and hangup, reporting it as `token`.
    pub fn register(&self, fd: BorrowedFd<'_>, token: u64) -> Result<(), SysError> {
        let flags = EventFlags::IN | EventFlags::RDHUP;
        epoll::add(&self.epoll, fd, EventData::new_u64(token), flags)
            .map_err(rustix_err(Op::EpollCtl))
    }

    /// Adds (`true`) or removes (`false`) interest in `fd` having room to write, keeping
    /// readability and hangup; `fd` must be registered, with `token`.
    pub fn watch_writable(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        writable: bool,
    ) -> Result<(), SysError> {
        let mut flags = EventFlags::IN | EventFlags::RDHUP;
        if writable {
            flags |= EventFlags::OUT;
        }
        epoll::modify(&self.epoll, fd, EventData::new_u64(token), flags)
            .map_err(rustix_err(Op::EpollCtl))
    }

    /// Stops watching `fd`.
    pub fn deregister(&self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        epoll::delete(&self.epoll, fd).map_err(rustix_err(Op::EpollCtl))
    }

    /// Waits up to `timeout` (`None`: forever) and appends what is ready to `out`; returns how
    /// many were appended. A signal interrupting the wait returns 0 (a spurious wakeup), so
    /// the caller's loop gets to look at its signal flags.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> Result<usize, SysError> {
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(0),
            Err(e) => return Err(rustix_err(Op::EpollWait)(e)),
        }
        out.extend(self.events.iter().map(|event| {
            let flags = event.flags;
            Readiness {
                token: event.data.u64(),
                readable: flags.intersects(EventFlags::IN),
                hangup: flags.intersects(EventFlags::HUP | EventFlags::RDHUP),
                writable: flags.intersects(EventFlags::OUT),
                error: flags.intersects(EventFlags::ERR),
            }
        }));
        Ok(self.events.len())
    }

    /// Waits until `deadline` (`None`: forever); see [`Poller::wait`].
    pub fn wait_until(
        &mut self,
        deadline: Option<Instant>,
        out: &mut Vec<Readiness>,
    ) -> Result<usize, SysError> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        self.wait(timeout, out)
    }

    /// Waits until the protocol time `deadline`, given that it is `now`; see [`Poller::wait`].
    pub fn wait_until_timestamp(
        &mut self,
        deadline: Option<Timestamp>,
        now: Timestamp,
        out: &mut Vec<Readiness>,
    ) -> Result<usize, SysError> {
        self.wait(deadline.map(|d| d.saturating_since(now)), out)
    }
}
