//! Fd tables and the objects they point at: one table per process, copied whole by fork;
//! an object lives until the last fd referring to it, in any process, is closed.

use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Kernel;
use super::channel::{PipeReader, SocketEnd};
use super::error::Errno;
use super::event::KernelEvent;
use super::ids::{Fd, ObjectId, Pid, ProcessSerial};

/// An open kernel object. Objects live in one table shared by all processes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Object {
    /// One end of a socketpair, holding the messages waiting to be read from it.
    Socket(SocketEnd),
    /// The read end of a pipe, holding its buffered bytes.
    PipeReader(PipeReader),
    /// The write end of a pipe.
    PipeWriter {
        /// The read end it feeds.
        reader: ObjectId,
    },
    /// A pidfd naming one exact process.
    Pidfd {
        /// The pid that process had (and keeps until it is reaped).
        pid: Pid,
        /// Which process, exactly.
        serial: ProcessSerial,
    },
}

/// What kind of object an fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FdKind {
    /// One end of a socketpair.
    SocketEnd,
    /// The read end of a pipe.
    PipeReader,
    /// The write end of a pipe.
    PipeWriter,
    /// A pidfd.
    Pidfd {
        /// The pid its process had.
        pid: Pid,
        /// Which process, exactly.
        serial: ProcessSerial,
    },
}

impl FdKind {
    fn of(object: &Object) -> FdKind {
        match object {
            Object::Socket(_) => FdKind::SocketEnd,
            Object::PipeReader(_) => FdKind::PipeReader,
            Object::PipeWriter { .. } => FdKind::PipeWriter,
            Object::Pidfd { pid, serial } => FdKind::Pidfd {
                pid: *pid,
                serial: *serial,
            },
        }
    }
}

/// What one fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FdInfo {
    /// The object; equal ids mean the same object (shared by dup or fork).
    pub object: ObjectId,
    /// What kind of object it is.
    pub kind: FdKind,
}

impl Kernel {
    /// `close(fd)` in `pid`. Closing the last copy of an object frees it.
    pub fn close(&mut self, pid: Pid, fd: Fd) -> Result<(), Errno> {
        let object = self.running_mut(pid)?.fds.remove(&fd).ok_or(Errno::EBADF)?;
        self.release_if_unreferenced(pid, fd, object);
        Ok(())
    }

    /// `dup2(old, new)` in `pid`: `new` refers to `old`'s object, closing what it held.
    ///
    /// EBADF if `old` is not open or `new` is beyond the fd limit.
    pub fn dup2(&mut self, pid: Pid, old: Fd, new: Fd) -> Result<Fd, Errno> {
        let limit = self.config.max_fds_per_process;
        let p = self.running_mut(pid)?;
        let object = *p.fds.get(&old).ok_or(Errno::EBADF)?;
        if new.0 >= limit {
            return Err(Errno::EBADF);
        }
        if old != new
            && let Some(previous) = p.fds.insert(new, object)
        {
            self.release_if_unreferenced(pid, new, previous);
        }
        Ok(new)
    }

    /// `dup(fd)` in `pid`: the lowest free fd refers to `fd`'s object too.
    ///
    /// EBADF if `fd` is not open; EMFILE if the table is full.
    pub fn dup(&mut self, pid: Pid, fd: Fd) -> Result<Fd, Errno> {
        let limit = self.config.max_fds_per_process;
        let p = self.running_mut(pid)?;
        let object = *p.fds.get(&fd).ok_or(Errno::EBADF)?;
        let new = (Fd::FIRST_ALLOCATED.0..limit)
            .map(Fd)
            .find(|f| !p.fds.contains_key(f))
            .ok_or(Errno::EMFILE)?;
        p.fds.insert(new, object);
        Ok(new)
    }

    /// `close_range(first, last)` in `pid` (inclusive); fds not open are skipped.
    pub fn close_range(&mut self, pid: Pid, first: Fd, last: Fd) -> Result<(), Errno> {
        let doomed: Vec<Fd> = self
            .running(pid)?
            .fds
            .range(first..=last)
            .map(|(fd, _)| *fd)
            .collect();
        doomed.into_iter().try_for_each(|fd| self.close(pid, fd))
    }

    /// Closes every fd of `pid` except `keep`: the forked child's scrub, modelling
    /// `close_range` after the keepers were moved low.
    pub fn close_all_except(&mut self, pid: Pid, keep: &[Fd]) -> Result<(), Errno> {
        let doomed: Vec<Fd> = self
            .running(pid)?
            .fds
            .keys()
            .filter(|fd| !keep.contains(fd))
            .copied()
            .collect();
        doomed.into_iter().try_for_each(|fd| self.close(pid, fd))
    }

    /// Passes a copy of `from`'s `fd` to `to` at its lowest free fd, as SCM_RIGHTS does.
    ///
    /// EMFILE if `to`'s table is full; nothing changes on failure.
    pub fn pass_fd(&mut self, from: Pid, fd: Fd, to: Pid) -> Result<Fd, Errno> {
        let object = self
            .running(from)?
            .fds
            .get(&fd)
            .copied()
            .ok_or(Errno::EBADF)?;
        let limit = self.config.max_fds_per_process;
        let table = &self.running(to)?.fds;
        let new = (Fd::FIRST_ALLOCATED.0..limit)
            .map(Fd)
            .find(|f| !table.contains_key(f))
            .ok_or(Errno::EMFILE)?;
        self.running_mut(to)?.fds.insert(new, object);
        self.record(KernelEvent::Passed { from, fd, to, new });
        Ok(new)
    }

    /// The open fds of `pid`, in order (empty for a zombie).
    pub fn fds(&self, pid: Pid) -> Result<Vec<Fd>, Errno> {
        Ok(self.process(pid)?.fds.keys().copied().collect())
    }

    /// What `fd` of `pid` refers to.
    pub fn fd_info(&self, pid: Pid, fd: Fd) -> Result<FdInfo, Errno> {
        let object = self.fd_object(pid, fd)?;
        let kind = FdKind::of(self.objects.get(&object).ok_or(Errno::EBADF)?);
        Ok(FdInfo { object, kind })
    }

    /// Every `(pid, fd)` referring to `object`: who keeps a peer from seeing EOF.
    pub fn holders(&self, object: ObjectId) -> Vec<(Pid, Fd)> {
        let mut holders = Vec::new();
        for (pid, p) in &self.processes {
            holders.extend(
                p.fds
                    .iter()
                    .filter(|(_, o)| **o == object)
                    .map(|(fd, _)| (*pid, *fd)),
            );
        }
        holders
    }

    /// Installs `N` new objects in `pid` at its lowest free fds, all or nothing.
    ///
    /// `make` receives the objects' ids, so that ends can name their peers.
    pub(crate) fn open_objects<const N: usize>(
        &mut self,
        pid: Pid,
        make: impl FnOnce([ObjectId; N]) -> [Object; N],
    ) -> Result<[Fd; N], Errno> {
        let limit = self.config.max_fds_per_process;
        let table = &self.running(pid)?.fds;
        let free: Vec<Fd> = (Fd::FIRST_ALLOCATED.0..limit)
            .map(Fd)
            .filter(|fd| !table.contains_key(fd))
            .take(N)
            .collect();
        let fds: [Fd; N] = free.try_into().map_err(|_| Errno::EMFILE)?;
        let first = self.next_object;
        let end = u64::try_from(N)
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or(Errno::ENFILE)?;
        let ids: Vec<ObjectId> = (first..end).map(ObjectId).collect();
        let ids: [ObjectId; N] = ids.try_into().map_err(|_| Errno::ENFILE)?;
        let p = self.running_mut(pid)?;
        for (fd, id) in fds.iter().zip(ids) {
            p.fds.insert(*fd, id);
        }
        for (id, object) in ids.into_iter().zip(make(ids)) {
            self.objects.insert(id, object);
        }
        self.next_object = end;
        Ok(fds)
    }

    /// The object `fd` of `pid` refers to. EBADF if not open.
    pub(crate) fn fd_object(&self, pid: Pid, fd: Fd) -> Result<ObjectId, Errno> {
        self.process(pid)?.fds.get(&fd).copied().ok_or(Errno::EBADF)
    }

    /// The object behind `fd` of `pid`.
    pub(crate) fn object_of(&self, pid: Pid, fd: Fd) -> Result<&Object, Errno> {
        let id = self.fd_object(pid, fd)?;
        self.objects.get(&id).ok_or(Errno::EBADF)
    }

    /// The object behind `fd` of `pid`, for changing it.
    pub(crate) fn object_mut(&mut self, pid: Pid, fd: Fd) -> Result<&mut Object, Errno> {
        let id = self.fd_object(pid, fd)?;
        self.objects.get_mut(&id).ok_or(Errno::EBADF)
    }

    /// Frees `object` if no fd in any process refers to it any more; `pid` and `fd` name
    /// the copy just closed, for the log.
    pub(crate) fn release_if_unreferenced(&mut self, pid: Pid, fd: Fd, object: ObjectId) {
        let referenced = self
            .processes
            .values()
            .any(|p| p.fds.values().any(|o| *o == object));
        if referenced {
            return;
        }
        if let Some(freed) = self.objects.remove(&object) {
            let kind = FdKind::of(&freed);
            self.record(KernelEvent::Released {
                pid,
                fd,
                object,
                kind,
            });
        }
    }
}

#[cfg(test)]
mod pass_tests {
    use crate::kernel::{Kernel, KernelConfig, RecvOutcome};

    #[test]
    fn a_passed_fd_keeps_the_object_alive_in_the_receiver() {
        let mut k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        let t = k.threads(root).unwrap()[0];
        let other = k.spawn_exec(root, t, &[]).unwrap().pid;
        let (a, b) = k.socketpair(root).unwrap();
        let passed = k.pass_fd(root, a, other).unwrap();
        k.close(root, a).unwrap();
        k.send(other, passed, b"hi").unwrap();
        assert_eq!(k.recv(root, b).unwrap(), RecvOutcome::Data(b"hi".to_vec()));
        k.close(other, passed).unwrap();
        assert_eq!(k.recv(root, b).unwrap(), RecvOutcome::Eof);
    }
}

#[cfg(test)]
mod tests {
    use std::vec;

    use super::super::{KernelConfig, RecvOutcome};
    use super::*;

    fn kernel() -> (Kernel, Pid) {
        let k = Kernel::new(KernelConfig::default()).unwrap();
        let root = k.root();
        (k, root)
    }

    #[test]
    fn a_reader_sees_eof_only_when_every_copy_of_the_peer_is_closed() {
        let (mut k, parent) = kernel();
        let t = k.threads(parent).unwrap()[0];
        let (a, b) = k.socketpair(parent).unwrap();
        let child1 = k.fork(parent, t).unwrap().pid;
        k.close_all_except(child1, &[b]).unwrap();
        // child2 is forked without a scrub: it holds copies of both ends.
        let child2 = k.fork(parent, t).unwrap().pid;
        k.close(parent, b).unwrap();
        k.close(parent, a).unwrap();
        assert_eq!(k.recv(child1, b), Ok(RecvOutcome::WouldBlock));
        assert_eq!(k.readable(child1, b), Ok(false));
        let peer = k.fd_info(child2, a).unwrap().object;
        assert_eq!(k.holders(peer), vec![(child2, a)]);
        // The last copy goes away when its holder exits.
        k.exit(child2, 0).unwrap();
        assert_eq!(k.readable(child1, b), Ok(true));
        assert_eq!(k.recv(child1, b), Ok(RecvOutcome::Eof));
    }

    #[test]
    fn the_fork_scrub_fixes_the_lost_eof() {
        let (mut k, parent) = kernel();
        let t = k.threads(parent).unwrap()[0];
        let (a, b) = k.socketpair(parent).unwrap();
        let child1 = k.fork(parent, t).unwrap().pid;
        k.close_all_except(child1, &[b]).unwrap();
        let child2 = k.fork(parent, t).unwrap().pid;
        k.close_all_except(child2, &[]).unwrap();
        k.close(parent, b).unwrap();
        assert_eq!(k.recv(child1, b), Ok(RecvOutcome::WouldBlock));
        k.close(parent, a).unwrap();
        assert_eq!(k.recv(child1, b), Ok(RecvOutcome::Eof));
        assert_eq!(k.fds(child2), Ok(vec![]));
    }

    #[test]
    fn a_dup_keeps_a_pipe_writer_open_after_the_original_is_closed() {
        let (mut k, pid) = kernel();
        let (r, w) = k.pipe(pid, 1).unwrap();
        let copy = k.dup(pid, w).unwrap();
        assert_eq!(copy, Fd(5));
        k.close(pid, w).unwrap();
        assert_eq!(k.write_nonblocking(pid, copy), Ok(()));
        assert_eq!(k.drain(pid, r), Ok(1));
        k.close(pid, copy).unwrap();
        assert_eq!(k.fds(pid), Ok(vec![r]));
        assert_eq!(k.dup(pid, w), Err(Errno::EBADF));
    }

    #[test]
    fn dup2_shares_the_object_and_close_range_scrubs() {
        let (mut k, pid) = kernel();
        let (a, b) = k.socketpair(pid).unwrap();
        assert_eq!(k.dup2(pid, b, Fd(10)), Ok(Fd(10)));
        assert_eq!(
            k.fd_info(pid, b).unwrap().object,
            k.fd_info(pid, Fd(10)).unwrap().object
        );
        k.close(pid, b).unwrap();
        assert_eq!(k.send(pid, a, b"x"), Ok(()));
        assert_eq!(k.recv(pid, Fd(10)), Ok(RecvOutcome::Data(b"x".to_vec())));
        assert_eq!(k.dup2(pid, a, Fd(10)), Ok(Fd(10)));
        // The old object behind fd 10 was its peer's last copy: `a` now sees EOF.
        assert_eq!(k.recv(pid, a), Ok(RecvOutcome::Eof));
        assert_eq!(k.dup2(pid, a, Fd(64)), Err(Errno::EBADF));
        assert_eq!(k.dup2(pid, Fd(30), Fd(4)), Err(Errno::EBADF));
        k.close_range(pid, Fd(3), Fd(u32::MAX)).unwrap();
        assert_eq!(k.fds(pid), Ok(vec![]));
        assert_eq!(k.close(pid, a), Err(Errno::EBADF));
    }

    #[test]
    fn a_full_fd_table_is_emfile_and_changes_nothing() {
        let config = KernelConfig {
            max_fds_per_process: 6,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let pid = k.root();
        k.socketpair(pid).unwrap();
        let before = k.clone();
        assert_eq!(k.socketpair(pid), Err(Errno::EMFILE));
        assert_eq!(k, before);
        assert!(k.pipe(pid, 1).is_err());
        assert!(k.pidfd_open(pid, pid).is_ok());
        assert_eq!(k.pidfd_open(pid, pid), Err(Errno::EMFILE));
        assert_eq!(k.fds(pid).unwrap().len(), 3);
    }
}
