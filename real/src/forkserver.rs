//! The `ForkServer` spawn method: a single-threaded server process forks children on request.
//!
//! Why: `fork()` from a multi-threaded process copies every lock some other thread holds into
//! a child that can never release it. [`ForkServer::start`] re-executes the current binary
//! (an exec, safe from any thread) in role [`ROLE`]; the new process is single-threaded, runs
//! [`serve`], and forks each child its client asks for, so children start from a clean,
//! small, single-threaded parent (`real/LINUX.md`, facts 4 and 5).
//!
//! Who does what:
//! - the **server** forks (standard prelude: channel at fd 3, scrub, death signal, own
//!   process group), passes the client its end of the child's channel and a pidfd over
//!   `SCM_RIGHTS`, closes its copies of both, keeps a pidfd of its own, and is the one reaper
//!   of its children;
//! - the **client** signals a child only through the passed pidfd (`pidfd_send_signal` works
//!   for non-children), kills its process group ([`ForkServer::kill_group`]) **before** asking
//!   for the reap (while the leader is unreaped its pgid names no one else), and asks the
//!   server to reap ([`ForkServer::reap`]) once the pidfd turned readable.
//!
//! Bounds: every wait of the client on the control socket is bounded by its timeout
//! ([`DEFAULT_TIMEOUT`], configurable); a dead, stopped or confused server is a typed
//! [`ForkServerError`], never a hang, and leaves the client [`Broken`](ForkServerError::Broken).
//!
//! # Shutdown
//!
//! At end of stream on its control socket (the client shut it down, exited or crashed), or
//! when its client process exits (watched through a pidfd: a copy of the socket forked into
//! another process would hold the end of stream back), the server sends `SIGKILL` to every remaining child's process group (each leader is still
//! unreaped, so its pgid names no one else), kills and reaps every child, and exits 0. It
//! waits for requests without a bound, but the rest of a started request and every reply are
//! bounded by [`IO_BOUND`]; a stalled or unparseable request, or a failing control socket,
//! ends it the same way with exit code 1. The parent-death signal that exec armed for the
//! server is disarmed at once: it would fire when the *thread* that called
//! [`ForkServer::start`] exits, while the client, and so the control socket, lives on. The
//! children's parent-death signal stays: the server's only thread forked them, so they die if
//! the server dies.
//!
//! # Wire format
//!
//! Every frame, in both directions, is a 1-byte kind, a 4-byte little-endian payload length
//! (at most 4096), then the payload. The exchange is strictly one request, then its one reply;
//! nothing is pipelined, so a reply can never be taken for another's.
//!
//! | from   | kind        | payload                                         | descriptors        |
//! |--------|-------------|-------------------------------------------------|--------------------|
//! | server | `H` hello   | protocol version (1), u32                       | none               |
//! | client | `S` spawn   | actor name, UTF-8, 1..=[`MAX_ACTOR_LEN`] bytes  | none               |
//! | client | `R` reap    | pid, i32; how long the server may wait, ms, u32 | none               |
//! | server | `C` child   | pid, i32                                        | channel end, pidfd |
//! | server | `X` exited  | 0 (exit code) or 1 (signal), u8; the value, i32 | none               |
//! | server | `W` running | empty                                           | none               |
//! | server | `E` error   | errno, i32; what failed and what to do, UTF-8   | none               |
//!
//! Integers are little-endian. The server sends `H` once, unasked, when it is ready. A spawn
//! is answered by `C` or `E`; a reap by `X`, `W` or `E`. The descriptors of a `C` travel
//! with its first byte (`SCM_RIGHTS`): the kernel attaches them to that byte's segment, and a
//! stream receive never merges two segments that carry descriptors, so they cannot be taken
//! for another frame's.

mod error;
mod server;
mod wire;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

pub use error::{ForkServerError, Request};
pub use server::{IO_BOUND, MAX_LIVE_CHILDREN, MAX_REAP_WAIT, serve};
pub use wire::MAX_ACTOR_LEN;

use wire::{CHILD, ERROR, EXITED, HELLO, REAP, RUNNING, Read, SPAWN, Sent, VERSION};

use crate::sys::{
    ChildProcess, ExitStatus, Pid, Pidfd, ReapOutcome, Signal, SignalOutcome, channel_pair,
    exec_self,
};

/// The role (see [`crate::sys::ROLE_ENV`]) of a re-executed fork server.
pub const ROLE: &str = "fork-server";

/// How long the client waits for the server by default: its hello, and each reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The entry `harrow_real::init` calls in a process re-executed in role [`ROLE`]: serves
/// on `control` (the channel adopted from descriptor 3) and never returns.
pub(crate) fn server_main(control: OwnedFd, run_child: RunChild) -> ! {
    serve(control, run_child)
}

/// The body of every forked child: `run_child(actor, channel)` returns the exit code. The
/// channel is at descriptor 3, non-blocking; the child may allocate (its parent, the server,
/// is single-threaded).
pub type RunChild = fn(&str, OwnedFd) -> i32;

/// A child forked by the server, as the client holds it.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid: a name for logs and for [`ForkServer::reap`]; never signal by it.
    pub pid: Pid,
    /// Our end of its channel (non-blocking, close-on-exec); the server kept no copy.
    pub channel: OwnedFd,
    /// Its pidfd: signal through it; it turns readable when the child exits.
    pub pidfd: Pidfd,
}

/// The client of one fork-server process.
///
/// Dropping it shuts the control socket down; the server then kills and reaps its remaining
/// children and exits, and the drop waits for that up to the timeout (then kills the server,
/// whose children die of their parent-death signal). [`ForkServer::shutdown`] does the same
/// and reports the server's status.
#[derive(Debug)]
pub struct ForkServer {
    /// The control socket; `None` once closed (shut down or broken).
    control: Option<OwnedFd>,
    /// The server process: we are its parent and its one reaper.
    server: ChildProcess,
    /// The bound of every wait on the server.
    timeout: Duration,
    /// Children spawned through us and not yet reaped: the only pids we act on.
    live: BTreeSet<Pid>,
    /// Why this client is unusable, once it is.
    broken: Option<String>,
}

impl ForkServer {
    /// Starts a server by re-executing the current binary in role [`ROLE`], and waits up to
    /// [`DEFAULT_TIMEOUT`] for its hello. Safe from any thread of any process.
    ///
    /// The binary's `main` must reach the fork-server entry first thing (`harrow_real::init`,
    /// or [`serve`] directly); otherwise this fails with
    /// [`ServerGone`](ForkServerError::ServerGone) or
    /// [`Unresponsive`](ForkServerError::Unresponsive).
    pub fn start() -> Result<ForkServer, ForkServerError> {
        ForkServer::start_with_timeout(DEFAULT_TIMEOUT)
    }

    /// [`ForkServer::start`] with `timeout` as the bound of every wait on the server.
    pub fn start_with_timeout(timeout: Duration) -> Result<ForkServer, ForkServerError> {
        ForkServer::start_with_args(timeout, &[])
    }

    /// [`ForkServer::start_with_timeout`], the server's program given `args` (the limits
    /// of the children it forks, `ChildLimits::to_args`).
    pub(crate) fn start_with_args(
        timeout: Duration,
        args: &[String],
    ) -> Result<ForkServer, ForkServerError> {
        let (ours, theirs) = channel_pair().map_err(ForkServerError::Start)?;
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let server = exec_self(ROLE, &args, theirs).map_err(ForkServerError::Start)?;
        let mut client = ForkServer {
            control: Some(ours),
            server,
            timeout,
            live: BTreeSet::new(),
            broken: None,
        };
        let hello = client.exchange(Request::Start, &[], Duration::ZERO)?;
        let checked = match (hello.kind, wire::u32_at(&hello.payload, 0)) {
            (HELLO, Some(VERSION)) if hello.payload.len() == 4 && hello.fds.is_empty() => Ok(()),
            _ => Err(protocol(
                Request::Start,
                format!("expected a hello, got {hello:?}"),
            )),
        };
        client.check(checked)?;
        Ok(client)
    }

    /// Asks the server to fork a child that runs `actor`; returns our end of its channel,
    /// its pidfd and its pid.
    pub fn spawn(&mut self, actor: &str) -> Result<Spawned, ForkServerError> {
        if actor.is_empty() || actor.len() > MAX_ACTOR_LEN {
            return Err(ForkServerError::ActorName { len: actor.len() });
        }
        let request = wire::encode(SPAWN, actor.as_bytes());
        let reply = self.exchange(Request::Spawn, &request, Duration::ZERO)?;
        if reply.fds_lost {
            return Err(self.discard(&reply));
        }
        let spawned = decode_spawned(reply);
        let spawned = self.check(spawned)?;
        self.live.insert(spawned.pid);
        Ok(spawned)
    }

    /// A child reply whose descriptors this process had no room for: the server forked a
    /// child we cannot talk to or watch. Kill its group (it leads it, and is unreaped) and
    /// have the server reap it, so that it neither runs on nor counts against the server's
    /// table; the stream is in step (the reply's bytes arrived), so the server stays usable.
    fn discard(&mut self, reply: &wire::Frame) -> ForkServerError {
        let pid = wire::i32_at(&reply.payload, 0).and_then(Pid::from_raw);
        let Some(pid) = pid.filter(|_| reply.kind == CHILD) else {
            let detail = format!("a {:?} reply carried descriptors", char::from(reply.kind));
            return self
                .check::<()>(Err(protocol(Request::Spawn, detail)))
                .unwrap_err();
        };
        self.live.insert(pid);
        let reaped = match self.kill_group(pid) {
            Ok(_) => self.reap(pid).map(drop),
            Err(e) => Err(e),
        };
        ForkServerError::OutOfDescriptors {
            pid,
            cleanup: reaped.err().map(|e| e.to_string()),
        }
    }

    /// Asks the server to reap child `pid`, letting it wait up to the timeout for the exit;
    /// call it once the child's pidfd is readable, after [`ForkServer::kill_group`] if the
    /// group must die too. A child still running after the wait is
    /// [`StillRunning`](ForkServerError::StillRunning) and stays reapable.
    pub fn reap(&mut self, pid: Pid) -> Result<ExitStatus, ForkServerError> {
        let waited = self.timeout;
        match self.reap_within(pid, waited)? {
            ReapOutcome::Reaped(status) => Ok(status),
            ReapOutcome::Running => Err(ForkServerError::StillRunning { pid, waited }),
        }
    }

    /// Asks the server to reap child `pid` if it has exited, without waiting for it.
    pub fn try_reap(&mut self, pid: Pid) -> Result<ReapOutcome, ForkServerError> {
        self.reap_within(pid, Duration::ZERO)
    }

    /// Sends `SIGKILL` to the process group of child `pid` (its descendants that stayed in it).
    ///
    /// Refused ([`UnknownChild`](ForkServerError::UnknownChild)) once the child was reaped
    /// through us, and ([`ServerGone`](ForkServerError::ServerGone)) once the server has
    /// exited (its children may then have been reaped by init): in both cases the pgid may
    /// name a stranger. [`SignalOutcome::Gone`] means no process is left in the group.
    pub fn kill_group(&mut self, pid: Pid) -> Result<SignalOutcome, ForkServerError> {
        let request = Request::KillGroup;
        if !self.live.contains(&pid) {
            return Err(ForkServerError::UnknownChild { pid });
        }
        match self.server.pidfd().wait_exited(Some(Duration::ZERO)) {
            Ok(false) => {}
            Ok(true) => {
                let gone = self.gone(request);
                return self.check(Err(gone));
            }
            Err(source) => return Err(ForkServerError::Io { request, source }),
        }
        match rustix::process::kill_process_group(pid.to_rustix(), Signal::KILL) {
            Ok(()) => Ok(SignalOutcome::Delivered),
            Err(rustix::io::Errno::SRCH) => Ok(SignalOutcome::Gone),
            Err(e) => Err(ForkServerError::Io {
                request,
                source: crate::sys::SysError::os(crate::sys::Op::Killpg, e.raw_os_error()),
            }),
        }
    }

    /// Closes the control socket and waits up to the timeout for the server to kill and reap
    /// its children and exit; returns its status (`exit 0` when it cleaned up).
    pub fn shutdown(mut self) -> Result<ExitStatus, ForkServerError> {
        let request = Request::Shutdown;
        self.hang_up();
        match self.server.wait_timeout(Some(self.timeout)) {
            Ok(ReapOutcome::Reaped(status)) => Ok(status),
            // Drop kills it; its children die of their parent-death signal.
            Ok(ReapOutcome::Running) => Err(ForkServerError::Unresponsive {
                request,
                timeout: self.timeout,
            }),
            Err(source) => Err(ForkServerError::Io { request, source }),
        }
    }

    /// The server's pid (a name only).
    pub fn server_pid(&self) -> Pid {
        self.server.pid()
    }

    /// The server's pidfd: readable once the server has exited.
    pub fn server_pidfd(&self) -> &Pidfd {
        self.server.pidfd()
    }

    /// The bound of every wait on the server.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the bound of every later wait on the server.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the client still works (no fatal error so far, not shut down).
    pub fn is_usable(&self) -> bool {
        self.broken.is_none() && self.control.is_some()
    }

    /// How many children spawned through this client are not yet reaped.
    pub fn live_children(&self) -> usize {
        self.live.len()
    }

    /// The reap request; the server may wait up to `wait` for the exit.
    fn reap_within(&mut self, pid: Pid, wait: Duration) -> Result<ReapOutcome, ForkServerError> {
        if !self.live.contains(&pid) {
            return Err(ForkServerError::UnknownChild { pid });
        }
        let wait = wait.min(MAX_REAP_WAIT);
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let mut payload = pid.as_raw().to_le_bytes().to_vec();
        payload.extend_from_slice(&wait_ms.to_le_bytes());
        let request = wire::encode(REAP, &payload);
        let reply = self.exchange(Request::Reap, &request, wait)?;
        let outcome = decode_reaped(reply);
        let outcome = self.check(outcome);
        match &outcome {
            Ok(ReapOutcome::Reaped(_)) => {
                self.live.remove(&pid);
            }
            Err(ForkServerError::Refused { errno, .. }) if *errno == libc::ECHILD => {
                self.live.remove(&pid);
            }
            _ => {}
        }
        outcome
    }

    /// Sends `request` (nothing if empty) and reads one reply, within the timeout plus
    /// `extra` (the time the server may spend on the request). Fatal failures break us.
    fn exchange(
        &mut self,
        request: Request,
        frame: &[u8],
        extra: Duration,
    ) -> Result<wire::Frame, ForkServerError> {
        let result = self.exchange_unchecked(request, frame, extra);
        self.check(result)
    }

    fn exchange_unchecked(
        &mut self,
        request: Request,
        frame: &[u8],
        extra: Duration,
    ) -> Result<wire::Frame, ForkServerError> {
        if let Some(cause) = &self.broken {
            return Err(ForkServerError::Broken {
                cause: cause.clone(),
            });
        }
        let Some(control) = self.control.as_ref() else {
            let cause = "it was shut down".to_owned();
            return Err(ForkServerError::Broken { cause });
        };
        let io = |source| ForkServerError::Io { request, source };
        let start = Instant::now();
        let deadline = start.checked_add(self.timeout);
        if !frame.is_empty() {
            match wire::send_frame(control.as_fd(), frame, &[], deadline).map_err(io)? {
                Sent::Complete => {}
                Sent::PeerGone => return Err(self.gone(request)),
                Sent::TimedOut => return Err(self.unresponsive(request, start)),
            }
        }
        let deadline = deadline.and_then(|d| d.checked_add(extra));
        match wire::read_frame(control.as_fd(), deadline).map_err(io)? {
            Read::Frame(reply) => Ok(reply),
            Read::Closed => Err(self.gone(request)),
            Read::TimedOut => Err(self.unresponsive(request, start)),
            Read::Oversized(len) => Err(protocol(
                request,
                format!("a reply announced {len} payload bytes, over the limit"),
            )),
        }
    }

    /// Marks us broken after a fatal error, closing the control socket so that a server
    /// that is still alive sees end of stream and cleans up.
    fn check<T>(&mut self, result: Result<T, ForkServerError>) -> Result<T, ForkServerError> {
        if let Err(e) = &result
            && e.is_fatal()
            && self.broken.is_none()
        {
            self.broken = Some(e.to_string());
            self.hang_up();
        }
        result
    }

    /// Ends the control stream for the server: a shutdown, not only a close, so that copies
    /// of the socket held elsewhere (a process forked from ours without exec, a descriptor
    /// taken with pidfd_getfd) cannot keep the server from seeing end of stream.
    fn hang_up(&mut self) {
        if let Some(control) = self.control.take() {
            let _ = rustix::net::shutdown(&control, rustix::net::Shutdown::Both);
        }
    }

    /// The server closed the socket: wait (bounded) for it to exit, to say how it ended.
    fn gone(&mut self, request: Request) -> ForkServerError {
        let status = match self.server.wait_timeout(Some(self.timeout)) {
            Ok(ReapOutcome::Reaped(status)) => Some(status),
            _ => None,
        };
        ForkServerError::ServerGone { request, status }
    }

    fn unresponsive(&self, request: Request, start: Instant) -> ForkServerError {
        ForkServerError::Unresponsive {
            request,
            timeout: start.elapsed(),
        }
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // End of stream: the server kills and reaps its children, then exits.
        self.hang_up();
        if self.broken.is_none() {
            let _ = self.server.wait_timeout(Some(self.timeout));
        }
        // If it is still there (stopped, stuck, broken), ChildProcess's drop kills and reaps it.
    }
}

fn protocol(request: Request, detail: String) -> ForkServerError {
    ForkServerError::Protocol { request, detail }
}

/// A reply's `E` payload as a refusal, if it is one.
fn refusal(request: Request, reply: &wire::Frame) -> Option<ForkServerError> {
    if reply.kind != ERROR || !reply.fds.is_empty() {
        return None;
    }
    let errno = wire::i32_at(&reply.payload, 0)?;
    let message = String::from_utf8_lossy(&reply.payload[4..]).into_owned();
    Some(ForkServerError::Refused {
        request,
        errno,
        message,
    })
}

/// Reads a spawn reply: `C` with a pid and exactly two descriptors, or `E`.
fn decode_spawned(reply: wire::Frame) -> Result<Spawned, ForkServerError> {
    let request = Request::Spawn;
    if let Some(refused) = refusal(request, &reply) {
        return Err(refused);
    }
    let pid = wire::i32_at(&reply.payload, 0).and_then(Pid::from_raw);
    match (reply.kind, pid, reply.payload.len()) {
        (CHILD, Some(pid), 4) => match <[OwnedFd; 2]>::try_from(reply.fds) {
            Ok([channel, pidfd]) => Ok(Spawned {
                pid,
                channel,
                pidfd: Pidfd::from_owned(pidfd),
            }),
            Err(fds) => Err(protocol(
                request,
                format!("a child reply carried {} descriptors, not 2", fds.len()),
            )),
        },
        _ => Err(protocol(
            request,
            format!("expected a child, got {reply:?}"),
        )),
    }
}

/// Reads a reap reply: `X` with a status, `W`, or `E`.
fn decode_reaped(reply: wire::Frame) -> Result<ReapOutcome, ForkServerError> {
    let request = Request::Reap;
    if let Some(refused) = refusal(request, &reply) {
        return Err(refused);
    }
    match (reply.kind, reply.fds.is_empty()) {
        (RUNNING, true) if reply.payload.is_empty() => Ok(ReapOutcome::Running),
        (EXITED, true) => match wire::decode_status(&reply.payload) {
            Some(status) => Ok(ReapOutcome::Reaped(status)),
            None => Err(protocol(request, format!("a malformed status: {reply:?}"))),
        },
        _ => Err(protocol(
            request,
            format!("expected a reap reply, got {reply:?}"),
        )),
    }
}
