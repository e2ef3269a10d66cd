//! The fork server process: a single-threaded loop that forks children for its one client.
//!
//! Started by [`super::ForkServer::start`], which re-executes the current binary; the
//! binary's `main` reaches [`serve`] first thing (through `harrow_real::init`). The process is
//! fresh from `execve` and never starts a thread, so [`fork_child`] (which checks) forks it
//! safely, and a child may allocate, lock and print: no other thread can hold a lock at the
//! fork. Its life and shutdown are described in the parent module (`# Shutdown`).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::RunChild;
use super::wire::{
    self, CHILD, ERROR, EXITED, HELLO, MAX_ACTOR_LEN, MAX_PAYLOAD, REAP, RUNNING, Read, SPAWN,
    Sent, VERSION,
};
use crate::sys::{
    ChildProcess, Pid, Pidfd, Prelude, ReapOutcome, SysError, channel_pair, fork_child,
    reset_signals, wait_readable_either,
};

/// How long the server waits for the rest of a started request, or for room to reply.
pub const IO_BOUND: Duration = Duration::from_secs(5);

/// The most unreaped children one server keeps; a spawn beyond it is refused (`EAGAIN`).
pub const MAX_LIVE_CHILDREN: usize = 4096;

/// The longest a reap request may ask the server to wait for a child's exit.
pub const MAX_REAP_WAIT: Duration = Duration::from_secs(60);

/// Runs the fork server on `control` (its client's socket) until the client is gone, then
/// kills and reaps its remaining children and exits the process: 0 when the client went
/// away, 1 when the control socket failed. `run_child(actor, channel)` is the body of every
/// forked child; its return value is the child's exit code.
///
/// Call it only in a process started by [`super::ForkServer::start`], before any thread is
/// started: the children are forked with [`fork_child`], which refuses a multi-threaded
/// process.
pub fn serve(control: OwnedFd, run_child: RunChild) -> ! {
    // The client's death, not the starting thread's exit, ends the server. Its end of stream
    // is not enough: a process forked from the client without exec (or a copy taken with
    // pidfd_getfd) keeps the control socket open after the client is gone. So watch the
    // client itself, our parent: the death signal exec armed still holds while the pidfd is
    // opened, so the parent it names is the client, and the re-check below sees a death
    // that came before the signal was disarmed.
    let client = watch_parent();
    let _ = rustix::process::set_parent_process_death_signal(None);
    let client = match client {
        Ok((pidfd, parent)) if rustix::process::getppid() == Some(parent) => pidfd,
        Ok(_) => std::process::exit(0),
        Err(why) => {
            eprintln!("harrow fork server {}: {why}; stopping", Pid::current());
            std::process::exit(1)
        }
    };
    // Every disposition default (std's ignored SIGPIPE, its stack-overflow handlers) and
    // an empty mask, once: the children inherit that state and skip the prelude's reset.
    let prelude = match reset_signals() {
        Ok(()) => Prelude::FROM_DEFAULT_SIGNALS,
        Err(_) => Prelude::STANDARD,
    };
    let mut server = Server {
        control,
        client,
        run_child,
        prelude,
        children: BTreeMap::new(),
    };
    let code = match server.run() {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("harrow fork server {}: {why}; stopping", Pid::current());
            1
        }
    };
    server.shutdown();
    std::process::exit(code)
}

/// A pidfd of this process's parent, and the parent's pid.
fn watch_parent() -> Result<(Pidfd, rustix::process::Pid), String> {
    let parent = rustix::process::getppid().ok_or("it has no parent")?;
    let pid = Pid::from_raw(parent.as_raw_nonzero().get()).ok_or("a parent pid out of range")?;
    let pidfd = Pidfd::open(pid).map_err(|e| format!("cannot watch its client: {e}"))?;
    Ok((pidfd, parent))
}

/// The server's state: its control socket, its client, and its unreaped children.
struct Server {
    control: OwnedFd,
    /// Readable once the client process has exited.
    client: Pidfd,
    run_child: RunChild,
    /// The children's prelude: without the signal reset once the server's own is done.
    prelude: Prelude,
    children: BTreeMap<Pid, ChildProcess>,
}

/// A reply and the descriptors to pass with it (closed here once sent).
struct Reply {
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Reply {
    fn plain(kind: u8, payload: &[u8]) -> Reply {
        Reply {
            frame: wire::encode(kind, payload),
            fds: Vec::new(),
        }
    }

    /// An `E` reply: errno, then the text, cut at a character boundary to fit.
    fn error(errno: i32, text: &str) -> Reply {
        let mut end = text.len().min(MAX_PAYLOAD - 4);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = errno.to_le_bytes().to_vec();
        payload.extend_from_slice(&text.as_bytes()[..end]);
        Reply::plain(ERROR, &payload)
    }

    fn sys_error(e: &SysError) -> Reply {
        Reply::error(e.errno().unwrap_or(libc::EIO), &e.to_string())
    }
}

impl Server {
    /// The request loop; `Ok` when the client is gone, `Err` with the reason otherwise.
    fn run(&mut self) -> Result<(), String> {
        let hello = Reply::plain(HELLO, &VERSION.to_le_bytes());
        if !self.send(hello)? {
            return Ok(());
        }
        loop {
            let (_, client_gone) = wait_readable_either(self.control.as_fd(), self.client.as_fd())
                .map_err(|e| e.to_string())?;
            if client_gone {
                return Ok(());
            }
            let deadline = Instant::now() + IO_BOUND;
            let frame = match wire::read_frame(self.control.as_fd(), Some(deadline)) {
                Ok(Read::Frame(frame)) => frame,
                Ok(Read::Closed) => return Ok(()),
                Ok(Read::TimedOut) => return Err(format!("a request stalled for {IO_BOUND:?}")),
                Ok(Read::Oversized(len)) => {
                    let why = format!("a request announced {len} bytes, over {MAX_PAYLOAD}");
                    let _ = self.send(Reply::error(libc::EMSGSIZE, &why));
                    return Err(why);
                }
                Err(e) => return Err(e.to_string()),
            };
            let reply = match frame.kind {
                // Descriptors the client should not have sent are closed with the frame.
                _ if !frame.fds.is_empty() || frame.fds_lost => {
                    Reply::error(libc::EINVAL, "a request carried file descriptors")
                }
                SPAWN => self.spawn(&frame.payload),
                REAP => self.reap(&frame.payload),
                other => Reply::error(libc::EINVAL, &format!("unknown request kind {other:#04x}")),
            };
            if !self.send(reply)? {
                return Ok(());
            }
        }
    }

    /// Sends a reply and closes the passed descriptors; `Ok(false)` if the client is gone.
    fn send(&self, reply: Reply) -> Result<bool, String> {
        let fds: Vec<BorrowedFd<'_>> = reply.fds.iter().map(AsFd::as_fd).collect();
        let deadline = Some(Instant::now() + IO_BOUND);
        let sent = wire::send_frame(self.control.as_fd(), &reply.frame, &fds, deadline);
        match sent.map_err(|e| e.to_string())? {
            Sent::Complete => Ok(true),
            Sent::PeerGone => Ok(false),
            Sent::TimedOut => Err(format!("the client did not read a reply for {IO_BOUND:?}")),
        }
    }

    /// A spawn request: fork the child, reply `C` with its channel end and a pidfd.
    fn spawn(&mut self, payload: &[u8]) -> Reply {
        let Ok(actor) = std::str::from_utf8(payload) else {
            return Reply::error(libc::EINVAL, "the actor name is not UTF-8");
        };
        if actor.is_empty() || actor.len() > MAX_ACTOR_LEN {
            let why = format!("an actor name must have 1 to {MAX_ACTOR_LEN} bytes");
            return Reply::error(libc::EINVAL, &why);
        }
        if self.children.len() >= MAX_LIVE_CHILDREN {
            let why = format!(
                "the fork server already has {MAX_LIVE_CHILDREN} unreaped children: reap exited \
                 children before spawning more"
            );
            return Reply::error(libc::EAGAIN, &why);
        }
        match self.fork(actor) {
            Ok((pid, channel, pidfd)) => Reply {
                frame: wire::encode(CHILD, &pid.as_raw().to_le_bytes()),
                fds: vec![channel, pidfd.into()],
            },
            Err(e) => Reply::sys_error(&e),
        }
    }

    /// Forks a child running `actor` with the standard prelude; keeps its [`ChildProcess`]
    /// and returns our end of its channel and a second pidfd, both for the client.
    fn fork(&mut self, actor: &str) -> Result<(Pid, OwnedFd, Pidfd), SysError> {
        let (ours, theirs) = channel_pair()?;
        let run_child = self.run_child;
        // Single-threaded: fork_child checks it, and then the body may allocate and print.
        let child = fork_child(self.prelude, theirs, |channel| run_child(actor, channel))?;
        let pid = child.pid();
        // A pidfd of its own for the client, so the client's flags never touch ours. Race-free:
        // the child is ours and unreaped.
        let for_client = match Pidfd::open(pid) {
            Ok(pidfd) => pidfd,
            Err(e) => {
                let _ = child.kill_group();
                drop(child); // kills and reaps it
                return Err(e);
            }
        };
        self.children.insert(pid, child);
        Ok((pid, ours, for_client))
    }

    /// A reap request: `X` with the status once reaped, `W` while it runs.
    fn reap(&mut self, payload: &[u8]) -> Reply {
        let (Some(raw), Some(wait_ms), 8) = (
            wire::i32_at(payload, 0),
            wire::u32_at(payload, 4),
            payload.len(),
        ) else {
            return Reply::error(libc::EINVAL, "a reap request must carry a pid and a wait");
        };
        let pid = Pid::from_raw(raw);
        let Some((pid, child)) = pid.and_then(|p| self.children.get_mut(&p).map(|c| (p, c))) else {
            let why = format!(
                "pid {raw} is not an unreaped child of this fork server: each child is reaped \
                 exactly once"
            );
            return Reply::error(libc::ECHILD, &why);
        };
        let wait = Duration::from_millis(u64::from(wait_ms)).min(MAX_REAP_WAIT);
        let outcome = if wait.is_zero() {
            child.try_reap()
        } else {
            child.wait_timeout(Some(wait))
        };
        match outcome {
            Ok(ReapOutcome::Running) => Reply::plain(RUNNING, &[]),
            Ok(ReapOutcome::Reaped(status)) => {
                self.children.remove(&pid);
                Reply::plain(EXITED, &wire::encode_status(status))
            }
            Err(e) => Reply::sys_error(&e),
        }
    }

    /// The client is gone: kill every child's group, then kill and reap every child.
    fn shutdown(&mut self) {
        // Groups first, while every leader is unreaped and its pgid can name no one else.
        for child in self.children.values() {
            let _ = child.kill_group();
        }
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill_and_reap();
        }
    }
}
