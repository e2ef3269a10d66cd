//! `RealOs`: the driver's operating system on Linux, over the `sys` layer.
//!
//! One epoll waits on every child's channel and pidfd, the SIGINT pipe and a wake pipe that
//! thread children write to when they return. Children are signalled and reaped only through
//! their pidfds; their process groups are killed only while the leader is unreaped, so the
//! group id cannot have been reused.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harrow_model::channels::Channels;
use harrow_model::driver::{Os, OsEvent, WaitError};
use harrow_model::{ChildId, ExitStatus, Situation, SpawnMethod, Timestamp, Uncounted};

use crate::actor;
use crate::child::{ChildLimits, run_actor_as};
use crate::forkserver::ForkServer;
use crate::spawner;
use crate::sys::{
    self, ChildProcess, Pidfd, Poller, Prelude, Readiness, RecvOutcome, SendOutcome, SignalPipe,
};

const WAKE: u64 = u64::MAX;
const SIGINT: u64 = u64::MAX - 1;
/// How long reaping a process that announced its exit may wait.
const REAP_BOUND: Duration = Duration::from_millis(500);

enum Kind {
    Process(ChildProcess),
    Served {
        pid: sys::Pid,
        pidfd: Pidfd,
    },
    Thread {
        handle: Option<JoinHandle<i32>>,
        done: Arc<AtomicBool>,
    },
    /// Reaped: its pidfd is closed (a finished child holds no descriptor but, until the
    /// protocol closes it, its channel); the pid is kept as a name until it is retired.
    Reaped {
        pid: Option<sys::Pid>,
    },
}

struct Child {
    kind: Kind,
    channel: Option<OwnedFd>,
    /// Bytes of whole frames the child's socket had no room for yet, oldest first; flushed
    /// when epoll says it has room. The event loop never blocks on a send, so it keeps
    /// reading, and a child blocked writing to us is never blocked for good. Bounded by the
    /// protocol: at most `max_in_flight` requests of one frame each, and a few control
    /// messages, are outstanding per child.
    outbox: Vec<u8>,
}

/// The driver's operating system on Linux.
pub struct RealOs {
    poller: Poller,
    ready: Vec<Readiness>,
    /// The live children, by id: a child leaves when the protocol retires it, so the table
    /// (and the scan of thread children at each wake-up) follows the live children.
    children: HashMap<ChildId, Child>,
    /// What may still be reported of each child: the rules the simulator's `SimOs` follows
    /// too.
    reports: Channels,
    start: Instant,
    sigint: Option<SignalPipe>,
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
    fork_server: Option<ForkServer>,
    /// Held once an `Exec` child was spawned off the main thread; dropped after the children.
    spawner: Option<spawner::Lease>,
    /// The bound of every wait on the fork server, its drop's included.
    fork_server_timeout: Duration,
    /// What bounds each child's side of its channel, carried to it at its launch.
    child_limits: ChildLimits,
    buf: Vec<u8>,
    prelude: Prelude,
}

/// The child with id `id`, if it is live: a free function, so that the caller may go on
/// using the other fields of `RealOs` while holding it.
fn slot_mut(children: &mut HashMap<ChildId, Child>, id: ChildId) -> Option<&mut Child> {
    children.get_mut(&id)
}

impl std::fmt::Debug for RealOs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RealOs {{ children: {} }}", self.children.len())
    }
}

impl RealOs {
    /// An operating system for one nursery; with `handle_sigint`, SIGINT tears it down.
    pub fn new(handle_sigint: bool) -> Result<RealOs, sys::SysError> {
        let poller = Poller::new(sys::MAX_EVENTS)?;
        // A socket pair, not a pipe: `send`/`recv` (and MSG_NOSIGNAL) need sockets.
        let (wake_read, wake_write) =
            sys::socket_pair(sys::SocketKind::Stream, sys::IoMode::NonBlocking)?;
        poller.register(wake_read.as_fd(), WAKE)?;
        let sigint = if handle_sigint {
            let pipe = SignalPipe::sigint()?;
            poller.register(pipe.wake_fd(), SIGINT)?;
            Some(pipe)
        } else {
            None
        };
        Ok(RealOs {
            poller,
            ready: Vec::with_capacity(64),
            children: HashMap::new(),
            reports: Channels::new(),
            start: Instant::now(),
            sigint,
            wake_read,
            wake_write: Arc::new(wake_write),
            fork_server: None,
            spawner: None,
            fork_server_timeout: crate::forkserver::DEFAULT_TIMEOUT,
            child_limits: ChildLimits::default(),
            buf: vec![0; 64 * 1024],
            prelude: Prelude::STANDARD,
        })
    }

    /// The epoll descriptor every wait of this loop blocks on; see [`crate::Nursery`]'s
    /// `AsFd`.
    pub(crate) fn poll_fd(&self) -> BorrowedFd<'_> {
        self.poller.as_fd()
    }

    /// Bounds every wait on the fork server (started at the first `ForkServer` spawn), its
    /// drop's included, by `timeout`: a nursery passes its reap timeout.
    pub fn set_fork_server_timeout(&mut self, timeout: Duration) {
        self.fork_server_timeout = timeout;
        if let Some(server) = self.fork_server.as_mut() {
            server.set_timeout(timeout);
        }
    }

    /// Sets the limits every child launched from now on runs with (before the first spawn:
    /// the fork server, started then, keeps those it was started with).
    pub(crate) fn set_child_limits(&mut self, limits: ChildLimits) {
        self.child_limits = limits;
    }

    /// Forks children without the fd scrub: only for the smoke scenario that shows the
    /// lost-EOF bug it causes.
    pub fn without_fd_scrub_for_the_lost_eof_demo(&mut self) {
        self.prelude = Prelude::UNSCRUBBED_LOSES_EOF;
    }

    /// The pid of a process child (a name only: the pidfd is what we act through).
    pub fn pid(&self, child: ChildId) -> Option<i32> {
        match &self.child(child)?.kind {
            Kind::Process(p) => Some(p.pid().as_raw()),
            Kind::Served { pid, .. } => Some(pid.as_raw()),
            Kind::Reaped { pid } => pid.map(sys::Pid::as_raw),
            Kind::Thread { .. } => None,
        }
    }

    fn child(&self, id: ChildId) -> Option<&Child> {
        self.children.get(&id)
    }

    fn token(child: ChildId, pidfd: bool) -> u64 {
        u64::from(child.0) * 2 + u64::from(pidfd)
    }

    fn spawn_process(
        &mut self,
        actor: &str,
        method: SpawnMethod,
        theirs: OwnedFd,
    ) -> Result<Kind, String> {
        let limits = self.child_limits;
        match method {
            SpawnMethod::Fork => {
                let child = sys::fork_child(self.prelude, theirs, |fd| {
                    run_actor_as(actor, fd, std::process::id(), limits)
                });
                child.map(Kind::Process).map_err(|e| e.to_string())
            }
            SpawnMethod::Exec => {
                if !actor::initialized() {
                    return Err(
                        "Exec needs harrow_real::init(registry) as the first line of main".into(),
                    );
                }
                let [frame, in_flight] = limits.to_args();
                let args = [actor, &frame, &in_flight].map(std::ffi::OsStr::new);
                spawner::exec_self(crate::ROLE_ACTOR, &args, theirs, &mut self.spawner)
                    .map(Kind::Process)
                    .map_err(|e| e.to_string())
            }
            _ => unreachable!("threads and the fork server are launched elsewhere"),
        }
    }

    fn spawn_served(&mut self, actor: &str) -> Result<(Kind, OwnedFd), String> {
        if self.fork_server.is_none() {
            if !actor::initialized() {
                return Err(
                    "ForkServer needs harrow_real::init(registry) as the first line of main".into(),
                );
            }
            let args = self.child_limits.to_args();
            let server = ForkServer::start_with_args(self.fork_server_timeout, &args);
            self.fork_server = Some(server.map_err(|e| e.to_string())?);
        }
        let server = self.fork_server.as_mut().expect("started above");
        let s = server.spawn(actor).map_err(|e| e.to_string())?;
        Ok((
            Kind::Served {
                pid: s.pid,
                pidfd: s.pidfd,
            },
            s.channel,
        ))
    }

    fn spawn_thread(&mut self, actor: &str, theirs: OwnedFd) -> Result<Kind, String> {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, wake, name) = (done.clone(), self.wake_write.clone(), actor.to_string());
        let limits = self.child_limits;
        let handle = std::thread::Builder::new()
            .name(format!("harrow-{actor}"))
            .spawn(move || {
                // A panic is this child's exit (as a forked child's is): caught, so the flag
                // and the wake-up below still tell the loop, which reaps it as exit code 101.
                let run = std::panic::AssertUnwindSafe(|| run_actor_as(&name, theirs, 0, limits));
                let code = std::panic::catch_unwind(run).unwrap_or(harrow_model::exit::PANIC);
                // The flag first, then the byte: the loop drains the pipe, then reads flags.
                flag.store(true, Ordering::SeqCst);
                let _ = sys::send_all(wake.as_fd(), &[1]);
                code
            })
            .map_err(|e| format!("cannot start the thread: {e}"))?;
        Ok(Kind::Thread {
            handle: Some(handle),
            done,
        })
    }

    fn read_channel(&mut self, id: ChildId, out: &mut Vec<OsEvent>) {
        let Some(c) = slot_mut(&mut self.children, id) else {
            return;
        };
        let Some(fd) = c.channel.as_ref() else { return };
        loop {
            match sys::recv(fd.as_fd(), &mut self.buf) {
                Ok(RecvOutcome::Data(n)) => {
                    self.reports.bytes(id, self.buf[..n].to_vec(), out);
                    // A short read emptied the socket: epoll is level-triggered and reports
                    // anything that arrives later, so asking again would only hear EAGAIN.
                    if n < self.buf.len() {
                        return;
                    }
                }
                Ok(RecvOutcome::WouldBlock) => return,
                Ok(RecvOutcome::Eof | RecvOutcome::PeerGone) | Err(_) => {
                    // Level-triggered: report the end once, then stop watching.
                    if self.reports.end_of_stream(id, out) {
                        let _ = self.poller.deregister(fd.as_fd());
                    }
                    return;
                }
            }
        }
    }

    /// Sends what the child's socket has room for now; stops watching for room once the
    /// outbox is empty.
    fn flush_outbox(&mut self, id: ChildId) {
        let Some(c) = slot_mut(&mut self.children, id) else {
            return;
        };
        let Some(fd) = c.channel.as_ref() else { return };
        let sent = match sys::send_all(fd.as_fd(), &c.outbox) {
            Ok(SendOutcome::WouldBlock { sent }) => sent,
            // Sent, or the child is gone (its end of stream comes next): nothing to keep.
            _ => c.outbox.len(),
        };
        c.outbox.drain(..sent);
        if c.outbox.is_empty() {
            let _ = self
                .poller
                .watch_writable(fd.as_fd(), Self::token(id, false), false);
        }
    }

    fn take_wakeups(&mut self, out: &mut Vec<OsEvent>) {
        // Drain first, then read the flags: a flag set after the drain leaves a byte.
        let mut sink = [0u8; 256];
        while let Ok(RecvOutcome::Data(_)) = sys::recv(self.wake_read.as_fd(), &mut sink) {}
        for (&id, c) in &self.children {
            if let Kind::Thread { done, .. } = &c.kind
                && done.load(Ordering::SeqCst)
            {
                self.reports.exited(id, out);
            }
        }
    }
}

impl Os for RealOs {
    fn now(&mut self) -> Timestamp {
        Timestamp::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn situation(&mut self) -> Situation {
        Situation {
            threads: sys::thread_count().map_err(|e| match e.errno() {
                Some(libc::EMFILE | libc::ENFILE) => Uncounted::OutOfDescriptors,
                _ => Uncounted::Unreadable,
            }),
            can_exec: actor::initialized(),
        }
    }

    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String> {
        if !actor::registry_ref().contains(actor) {
            return Err(format!(
                "no actor named `{actor}` is registered; add it to the Registry"
            ));
        }
        let (kind, ours) = if method == SpawnMethod::ForkServer {
            self.spawn_served(actor)?
        } else {
            let (ours, theirs) = sys::channel_pair().map_err(|e| e.to_string())?;
            let kind = match method {
                SpawnMethod::Thread => self.spawn_thread(actor, theirs)?,
                _ => self.spawn_process(actor, method, theirs)?,
            };
            (kind, ours)
        };
        let register = |poller: &Poller| -> Result<(), sys::SysError> {
            poller.register(ours.as_fd(), Self::token(child, false))?;
            match &kind {
                Kind::Process(p) => poller.register(p.pidfd().as_fd(), Self::token(child, true)),
                Kind::Served { pidfd, .. } => {
                    poller.register(pidfd.as_fd(), Self::token(child, true))
                }
                Kind::Thread { .. } | Kind::Reaped { .. } => Ok(()),
            }
        };
        // The child exists now: even if watching it fails, keep it so teardown can reach it.
        let watched = register(&self.poller);
        self.children.insert(
            child,
            Child {
                kind,
                channel: Some(ours),
                outbox: Vec::new(),
            },
        );
        self.reports.launched(child);
        watched.map_err(|e| e.to_string())
    }

    fn send(&mut self, child: ChildId, frame: &[u8]) {
        let Some(c) = slot_mut(&mut self.children, child) else {
            return;
        };
        let Some(fd) = c.channel.as_ref() else { return };
        if !self.reports.reads(child) {
            // Nobody reads this channel any more (and it is no longer watched for room).
            return;
        }
        if !c.outbox.is_empty() {
            // Behind earlier bytes: keep the order.
            c.outbox.extend_from_slice(frame);
            return;
        }
        // A child that is gone drops the frame: its end of stream comes next.
        if let Ok(SendOutcome::WouldBlock { sent }) = sys::send_all(fd.as_fd(), frame) {
            c.outbox.extend_from_slice(&frame[sent..]);
            let _ = self
                .poller
                .watch_writable(fd.as_fd(), Self::token(child, false), true);
        }
    }

    fn close(&mut self, child: ChildId) {
        if let Some(c) = slot_mut(&mut self.children, child)
            && let Some(fd) = c.channel.take()
        {
            // Nothing more is sent on it: a finished child keeps no buffer.
            c.outbox = Vec::new();
            if self.reports.closed(child) {
                let _ = self.poller.deregister(fd.as_fd());
            }
            drop(fd);
        }
    }

    fn kill(&mut self, child: ChildId) {
        let Some(c) = self.children.get(&child) else {
            return;
        };
        match &c.kind {
            Kind::Process(p) => {
                let _ = p.kill();
                let _ = p.kill_group();
            }
            Kind::Served { pid, pidfd } => {
                let _ = pidfd.send_signal(sys::Signal::KILL);
                // Not reaped yet (the server reaps only when we ask), so the group is ours;
                // the client refuses once it has reaped that pid.
                if let Some(server) = self.fork_server.as_mut() {
                    let _ = server.kill_group(*pid);
                }
            }
            Kind::Thread { .. } | Kind::Reaped { .. } => {}
        }
    }

    fn abandon(&mut self, child: ChildId) {
        if let Some(c) = slot_mut(&mut self.children, child)
            && let Kind::Thread { handle, .. } = &mut c.kind
        {
            // Detached: the thread may never return and nobody will join it.
            drop(handle.take());
            self.reports.unwatch_exit(child);
        }
    }

    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String> {
        let Some(c) = slot_mut(&mut self.children, child) else {
            return Err(format!("{child} was never launched here"));
        };
        // Our end of the channel stays open until the protocol closes it (the drain reads
        // what is left).
        self.reports.unwatch_exit(child);
        let (status, pid) = match &mut c.kind {
            Kind::Process(p) => {
                let _ = self.poller.deregister(p.pidfd().as_fd());
                // Grandchildren outside harrow's own (which die with their parent) go too.
                let _ = p.kill_group();
                match p.wait_timeout(Some(REAP_BOUND)) {
                    Ok(sys::ReapOutcome::Reaped(s)) => (s, Some(p.pid())),
                    // Not reaped: keep the process, whose drop kills and reaps it.
                    Ok(sys::ReapOutcome::Running) => {
                        return Err(format!(
                            "its pidfd said it exited, but it was not reapable within \
                             {REAP_BOUND:?}"
                        ));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Kind::Served { pid, pidfd } => {
                let _ = self.poller.deregister(pidfd.as_fd());
                let Some(server) = self.fork_server.as_mut() else {
                    return Err("its fork server is gone, and only it could reap it".into());
                };
                let _ = server.kill_group(*pid);
                (server.reap(*pid).map_err(|e| e.to_string())?, Some(*pid))
            }
            Kind::Thread { handle, .. } => match handle.take().map(JoinHandle::join) {
                Some(Ok(code)) => (ExitStatus::Exited(code), None),
                // The panic escaped the catch in the thread's body: it is the thread's exit.
                Some(Err(_)) => (ExitStatus::Exited(harrow_model::exit::PANIC), None),
                None => return Err("its thread was abandoned and cannot be joined".into()),
            },
            Kind::Reaped { .. } => return Err("it was already reaped".into()),
        };
        // Closes the pidfd: a long-lived nursery holds no descriptor for finished children,
        // and every later fork copies (and every child scrubs) a table that does not grow.
        c.kind = Kind::Reaped { pid };
        Ok(status)
    }

    fn retire(&mut self, child: ChildId) {
        // Reaped (or a thread abandoned, or never started) and its channel closed: what is
        // left is its pid as a name, or a detached thread's flag. Dropping it frees the slot.
        self.children.remove(&child);
        self.reports.retired(child);
    }

    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError> {
        let now = self.now();
        self.ready.clear();
        let mut ready = std::mem::take(&mut self.ready);
        // Interruptions are retried inside; any other failure would repeat on every turn.
        if let Err(e) = self.poller.wait_until_timestamp(deadline, now, &mut ready) {
            self.ready = ready;
            return Err(WaitError::Failed(e.to_string()));
        }
        for r in &ready {
            match r.token {
                WAKE => self.take_wakeups(out),
                SIGINT => {
                    if self
                        .sigint
                        .as_ref()
                        .is_some_and(|s| s.take_pending().unwrap_or(false))
                    {
                        out.push(OsEvent::Interrupt);
                    }
                }
                t => {
                    let id = ChildId((t / 2) as u32);
                    if t % 2 == 0 {
                        if r.writable {
                            self.flush_outbox(id);
                        }
                        if r.readable || r.hangup || r.error {
                            self.read_channel(id, out);
                        }
                    } else if let Some(c) = self.children.get(&id)
                        && self.reports.exited(id, out)
                    {
                        let fd = match &c.kind {
                            Kind::Process(p) => Some(p.pidfd().as_fd()),
                            Kind::Served { pidfd, .. } => Some(pidfd.as_fd()),
                            Kind::Thread { .. } | Kind::Reaped { .. } => None,
                        };
                        if let Some(fd) = fd {
                            let _ = self.poller.deregister(fd);
                        }
                    }
                }
            }
        }
        self.ready = ready;
        if out.is_empty() && deadline.is_some_and(|d| d <= self.now()) {
            out.push(OsEvent::Deadline);
        }
        Ok(())
    }
}

impl Drop for RealOs {
    fn drop(&mut self) {
        // The handler goes last: until every wait below is over (the fork server's exit, a
        // child killed and reaped by its drop) a SIGINT is still the nursery's, never the
        // host's default action, which would end the host inside `teardown()`.
        drop(self.fork_server.take());
        self.children.clear();
        // Only now: a child spawned on the spawner thread dies when that thread ends.
        drop(self.spawner.take());
        if let Some(pipe) = self.sigint.take() {
            pipe.uninstall();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as large as a request may be: a few of them fill a socket buffer.
    const FRAME: usize = 64 * 1024;

    /// A channel whose child shut its writing half and reads nothing: we see its end of
    /// stream, and its receive buffer is never drained.
    fn child_that_stopped_talking(os: &mut RealOs) -> (ChildId, OwnedFd) {
        let (ours, theirs) = sys::channel_pair().unwrap();
        rustix::net::shutdown(&theirs, rustix::net::Shutdown::Write).unwrap();
        let id = ChildId(0);
        os.children.insert(
            id,
            Child {
                kind: Kind::Reaped { pid: None },
                channel: Some(ours),
                outbox: Vec::new(),
            },
        );
        os.reports.launched(id);
        let mut events = Vec::new();
        os.read_channel(id, &mut events);
        assert!(
            matches!(events[..], [OsEvent::Eof(c)] if c == id),
            "the end of stream is seen: {events:?}"
        );
        (id, theirs)
    }

    /// Frames sent to a child after its end of stream was seen are dropped, not queued.
    ///
    /// What went wrong: `send` went on writing to such a channel, and once the child's
    /// buffer was full it queued the rest in the outbox; but after the end of stream the
    /// channel is no longer watched for room, so the outbox was never flushed and grew with
    /// every frame sent. The fix: `send` does nothing once the end of stream was reported
    /// (nobody reads that channel any more).
    #[test]
    fn bug_no_send_after_end_of_stream() {
        let mut os = RealOs::new(false).unwrap();
        let (id, _theirs) = child_that_stopped_talking(&mut os);
        let frame = vec![7u8; FRAME];
        for _ in 0..64 {
            os.send(id, &frame);
        }
        let outbox = os.children[&id].outbox.len();
        assert_eq!(
            outbox, 0,
            "{outbox} bytes queued for a child whose end of stream was seen"
        );
    }
}
