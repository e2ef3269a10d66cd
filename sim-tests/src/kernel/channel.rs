//! Byte channels: socketpairs (message-per-write, both ways, with `shutdown`) and pipes
//! (one way, bounded in bytes, such as the signal self-pipe).
//!
//! EOF is a property of the peer object, and an object lives until its last fd in any
//! process is closed; so a reader misses EOF while any process, however unrelated, still
//! holds a copy of the other end.

use std::collections::VecDeque;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::error::Errno;
use super::event::KernelEvent;
use super::fd::Object;
use super::ids::{Fd, ObjectId, Pid};
use super::process::ProcState;

/// Which direction(s) of a socket end `shutdown` closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Shutdown {
    /// `SHUT_RD`: this end's readers see EOF at once; the peer's sends fail with EPIPE.
    Read,
    /// `SHUT_WR`: the peer sees EOF after draining; this end's sends fail with EPIPE.
    Write,
    /// `SHUT_RDWR`: both.
    Both,
}

/// The result of a non-blocking `recv`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecvOutcome {
    /// One message, exactly as one `send` wrote it.
    Data(Vec<u8>),
    /// Nothing queued and the peer may still write: a blocking recv would wait.
    WouldBlock,
    /// Nothing queued and nothing ever will be.
    Eof,
}

/// One end of a socketpair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct SocketEnd {
    /// The other end (absent from the object table once closed everywhere).
    pub(crate) peer: ObjectId,
    /// Messages the peer sent, waiting to be read here.
    pub(crate) inbound: VecDeque<Vec<u8>>,
    pub(crate) read_shut: bool,
    pub(crate) write_shut: bool,
}

/// The read end of a pipe. The content of the bytes is not modelled, only their count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PipeReader {
    /// The write end (absent from the object table once closed everywhere).
    pub(crate) writer: ObjectId,
    pub(crate) buffered: usize,
    pub(crate) capacity: usize,
}

impl Kernel {
    /// `socketpair()` in `pid`: two connected ends at the two lowest free fds.
    pub fn socketpair(&mut self, pid: Pid) -> Result<(Fd, Fd), Errno> {
        let end = |peer| {
            Object::Socket(SocketEnd {
                peer,
                inbound: VecDeque::new(),
                read_shut: false,
                write_shut: false,
            })
        };
        let [a, b] = self.open_objects(pid, |[x, y]| [end(y), end(x)])?;
        self.record(KernelEvent::SocketPair { pid, fds: [a, b] });
        Ok((a, b))
    }

    /// `pipe()` in `pid` holding at most `capacity` bytes: returns `(read_fd, write_fd)`.
    pub fn pipe(&mut self, pid: Pid, capacity: usize) -> Result<(Fd, Fd), Errno> {
        if capacity == 0 {
            return Err(Errno::EINVAL);
        }
        let [read, write] = self.open_objects(pid, |[r, w]| {
            [
                Object::PipeReader(PipeReader {
                    writer: w,
                    buffered: 0,
                    capacity,
                }),
                Object::PipeWriter { reader: r },
            ]
        })?;
        self.record(KernelEvent::Pipe {
            pid,
            read,
            write,
            capacity,
        });
        Ok((read, write))
    }

    /// Non-blocking `send` of one message on socket end `fd` of `pid`.
    ///
    /// EPIPE if this end is shut for writing or the peer is closed everywhere or shut for
    /// reading; EAGAIN if the peer's queue holds `channel_capacity` messages; EINVAL if the
    /// message exceeds `max_message_bytes`.
    pub fn send(&mut self, pid: Pid, fd: Fd, bytes: &[u8]) -> Result<(), Errno> {
        self.running(pid)?;
        let (capacity, max_len) = (self.config.channel_capacity, self.config.max_message_bytes);
        let me = socket(self.object_of(pid, fd)?)?;
        if me.write_shut {
            return Err(Errno::EPIPE);
        }
        if bytes.len() > max_len {
            return Err(Errno::EINVAL);
        }
        let peer_id = me.peer;
        let peer = match self.objects.get_mut(&peer_id) {
            Some(Object::Socket(peer)) if !peer.read_shut => peer,
            _ => return Err(Errno::EPIPE),
        };
        if peer.inbound.len() >= capacity {
            return Err(Errno::EAGAIN);
        }
        peer.inbound.push_back(bytes.to_vec());
        Ok(())
    }

    /// Non-blocking `recv` on socket end `fd` of `pid`: every byte queued, across the sends
    /// that queued them, as a `SOCK_STREAM` read with a large enough buffer returns them (a
    /// reader that gets a batch of frames in one read handles them before it runs any).
    pub fn recv(&mut self, pid: Pid, fd: Fd) -> Result<RecvOutcome, Errno> {
        self.running(pid)?;
        let eof = self.socket_at_eof(socket(self.object_of(pid, fd)?)?);
        let Object::Socket(me) = self.object_mut(pid, fd)? else {
            return Err(Errno::EINVAL);
        };
        if !me.read_shut && !me.inbound.is_empty() {
            return Ok(RecvOutcome::Data(me.inbound.drain(..).flatten().collect()));
        }
        Ok(if eof {
            RecvOutcome::Eof
        } else {
            RecvOutcome::WouldBlock
        })
    }

    /// `shutdown(fd, how)` on socket end `fd` of `pid`. It acts on the object, so it is
    /// seen through every copy of the fd, in every process.
    pub fn shutdown(&mut self, pid: Pid, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        self.running(pid)?;
        let Object::Socket(me) = self.object_mut(pid, fd)? else {
            return Err(Errno::EINVAL);
        };
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            // Queued messages are discarded so that EOF, once seen, stays seen.
            me.read_shut = true;
            me.inbound.clear();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            me.write_shut = true;
        }
        self.record(KernelEvent::Shutdown { pid, fd, how });
        Ok(())
    }

    /// Whether a read on `fd` of `pid` would not block: data queued or end of stream for a
    /// socket end or pipe read end; exited (zombie or reaped) for a pidfd.
    pub fn readable(&self, pid: Pid, fd: Fd) -> Result<bool, Errno> {
        Ok(match self.object_of(pid, fd)? {
            Object::Socket(me) => !me.inbound.is_empty() || self.socket_at_eof(me),
            Object::PipeReader(r) => r.buffered > 0 || !self.objects.contains_key(&r.writer),
            Object::Pidfd { pid, serial } => {
                self.live_serial((*pid, *serial)) != ProcState::Running
            }
            Object::PipeWriter { .. } => return Err(Errno::EINVAL),
        })
    }

    /// Non-blocking write of one byte to pipe write end `fd` of `pid`: EAGAIN (and the
    /// byte is dropped) when the pipe is full, EPIPE when the read end is closed everywhere.
    pub fn write_nonblocking(&mut self, pid: Pid, fd: Fd) -> Result<(), Errno> {
        self.running(pid)?;
        self.pipe_push(pid, fd)
    }

    /// Drains pipe read end `fd` of `pid`: returns how many bytes were buffered (0 if none).
    pub fn drain(&mut self, pid: Pid, fd: Fd) -> Result<usize, Errno> {
        self.running(pid)?;
        match self.object_mut(pid, fd)? {
            Object::PipeReader(r) => Ok(core::mem::take(&mut r.buffered)),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Writes one byte to pipe write end `fd` of `pid`, as a signal handler does.
    pub(crate) fn pipe_push(&mut self, pid: Pid, fd: Fd) -> Result<(), Errno> {
        let Object::PipeWriter { reader } = *self.object_of(pid, fd)? else {
            return Err(Errno::EINVAL);
        };
        let Some(Object::PipeReader(r)) = self.objects.get_mut(&reader) else {
            return Err(Errno::EPIPE);
        };
        if r.buffered >= r.capacity {
            return Err(Errno::EAGAIN);
        }
        r.buffered = r.buffered.saturating_add(1);
        Ok(())
    }

    /// Whether `end` will never receive again, once its queue is drained: shut for reading,
    /// or its peer is shut for writing or closed in every process.
    fn socket_at_eof(&self, end: &SocketEnd) -> bool {
        end.read_shut
            || match self.objects.get(&end.peer) {
                Some(Object::Socket(peer)) => peer.write_shut,
                _ => true,
            }
    }
}

/// The socket end an object is. EINVAL for any other kind of object.
fn socket(object: &Object) -> Result<&SocketEnd, Errno> {
    match object {
        Object::Socket(end) => Ok(end),
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::super::KernelConfig;
    use super::*;

    fn kernel() -> (Kernel, Pid) {
        let k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        (k, root)
    }

    #[test]
    fn a_read_returns_every_byte_queued_in_order_as_a_stream_does() {
        let (mut k, pid) = kernel();
        let (a, b) = k.socketpair(pid).unwrap();
        k.send(pid, a, b"one").unwrap();
        k.send(pid, a, b"two").unwrap();
        k.send(pid, b, b"back").unwrap();
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::Data(b"onetwo".to_vec())));
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::WouldBlock));
        assert_eq!(k.recv(pid, a), Ok(RecvOutcome::Data(b"back".to_vec())));
        k.send(pid, a, b"three").unwrap();
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::Data(b"three".to_vec())));
    }

    #[test]
    fn shutdown_read_wakes_the_same_ends_reader_with_eof() {
        let (mut k, pid) = kernel();
        let (a, b) = k.socketpair(pid).unwrap();
        k.send(pid, b, b"queued").unwrap();
        k.shutdown(pid, a, Shutdown::Read).unwrap();
        assert_eq!(k.readable(pid, a), Ok(true));
        assert_eq!(k.recv(pid, a), Ok(RecvOutcome::Eof));
        assert_eq!(k.send(pid, b, b"late"), Err(Errno::EPIPE));
        // The other direction still works.
        k.send(pid, a, b"out").unwrap();
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::Data(b"out".to_vec())));
    }

    #[test]
    fn shutdown_write_gives_the_peer_eof_after_draining() {
        let (mut k, pid) = kernel();
        let (a, b) = k.socketpair(pid).unwrap();
        k.send(pid, a, b"last").unwrap();
        k.shutdown(pid, a, Shutdown::Write).unwrap();
        assert_eq!(k.send(pid, a, b"more"), Err(Errno::EPIPE));
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::Data(b"last".to_vec())));
        assert_eq!(k.readable(pid, b), Ok(true));
        assert_eq!(k.recv(pid, b), Ok(RecvOutcome::Eof));
        assert_eq!(k.readable(pid, a), Ok(false));
    }

    #[test]
    fn a_full_channel_is_eagain_and_a_closed_peer_is_epipe() {
        let config = KernelConfig {
            channel_capacity: 2,
            max_message_bytes: 4,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let pid = k.root();
        let (a, b) = k.socketpair(pid).unwrap();
        k.send(pid, a, b"1").unwrap();
        k.send(pid, a, b"2").unwrap();
        assert_eq!(k.send(pid, a, b"3"), Err(Errno::EAGAIN));
        assert_eq!(k.send(pid, b, b"12345"), Err(Errno::EINVAL));
        k.close(pid, b).unwrap();
        assert_eq!(k.send(pid, a, b"4"), Err(Errno::EPIPE));
        assert_eq!(k.recv(pid, a), Ok(RecvOutcome::Eof));
    }

    #[test]
    fn pipes_are_bounded_in_bytes_and_see_eof_when_the_writer_is_gone() {
        let (mut k, pid) = kernel();
        let (r, w) = k.pipe(pid, 2).unwrap();
        assert_eq!(k.readable(pid, r), Ok(false));
        k.write_nonblocking(pid, w).unwrap();
        k.write_nonblocking(pid, w).unwrap();
        assert_eq!(k.write_nonblocking(pid, w), Err(Errno::EAGAIN));
        assert_eq!(k.readable(pid, r), Ok(true));
        assert_eq!(k.drain(pid, r), Ok(2));
        assert_eq!(k.drain(pid, r), Ok(0));
        assert_eq!(k.readable(pid, w), Err(Errno::EINVAL));
        assert_eq!(k.recv(pid, r), Err(Errno::EINVAL));
        k.close(pid, w).unwrap();
        assert_eq!(k.readable(pid, r), Ok(true));
        let (r2, w2) = k.pipe(pid, 1).unwrap();
        k.close(pid, r2).unwrap();
        assert_eq!(k.write_nonblocking(pid, w2), Err(Errno::EPIPE));
        assert_eq!(k.pipe(pid, 0), Err(Errno::EINVAL));
    }
}
