//! [`ForkServerError`]: what went wrong between a client and its fork server, and what to do.

use core::fmt;
use std::time::Duration;

use super::wire::MAX_ACTOR_LEN;
use crate::sys::{ExitStatus, Pid, SysError};

/// The exchange with the fork server that was under way when something failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Starting the server and waiting for its hello.
    Start,
    /// Asking it to fork a child.
    Spawn,
    /// Asking it to reap a child.
    Reap,
    /// Killing a child's process group from the client.
    KillGroup,
    /// Closing the control socket and waiting for the server to exit.
    Shutdown,
}

impl Request {
    /// What was being done, as a phrase after "while".
    pub fn what(self) -> &'static str {
        match self {
            Request::Start => "starting it",
            Request::Spawn => "asking it to spawn a child",
            Request::Reap => "asking it to reap a child",
            Request::KillGroup => "killing a child's process group",
            Request::Shutdown => "shutting it down",
        }
    }
}

/// A failure of [`super::ForkServer`]; `Display` says what failed and what to do.
///
/// After [`ServerGone`](ForkServerError::ServerGone),
/// [`Unresponsive`](ForkServerError::Unresponsive), [`Protocol`](ForkServerError::Protocol)
/// and [`Io`](ForkServerError::Io) the client is unusable (every later call is
/// [`Broken`](ForkServerError::Broken)): drop it and start a new one. The other errors leave
/// it usable.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForkServerError {
    /// The server process could not be created (socketpair or exec of the current binary).
    Start(SysError),
    /// The server closed its control socket or died.
    ServerGone {
        /// What was under way.
        request: Request,
        /// How the server ended, if it was reaped within the timeout.
        status: Option<ExitStatus>,
    },
    /// No complete reply came within the timeout.
    Unresponsive {
        /// What was under way.
        request: Request,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The server's reply made no sense (wrong kind, size or descriptor count).
    Protocol {
        /// What was under way.
        request: Request,
        /// What was wrong with the reply.
        detail: String,
    },
    /// A system call of the client failed while talking to the server.
    Io {
        /// What was under way.
        request: Request,
        /// The failed call.
        source: SysError,
    },
    /// The server could not do what was asked and said why; it stays usable.
    Refused {
        /// What was under way.
        request: Request,
        /// The errno the server reported.
        errno: i32,
        /// The server's own account: what failed and what to do.
        message: String,
    },
    /// The server forked the child, but this process had no descriptor free to receive its
    /// channel and pidfd (`RLIMIT_NOFILE`): the child was killed and reaped (unless
    /// `cleanup` says why not); the server stays usable.
    OutOfDescriptors {
        /// The child that was forked and then discarded.
        pid: Pid,
        /// Why killing or reaping it failed, if it did (the server reaps it at shutdown).
        cleanup: Option<String>,
    },
    /// An earlier failure left this client unusable.
    Broken {
        /// The earlier failure, as text.
        cause: String,
    },
    /// The actor name is empty or longer than [`MAX_ACTOR_LEN`] bytes.
    ActorName {
        /// Its length in bytes.
        len: usize,
    },
    /// The pid names no live child spawned through this client: never spawned here, or reaped.
    UnknownChild {
        /// The pid asked about.
        pid: Pid,
    },
    /// The child had not exited within the reap wait.
    StillRunning {
        /// The child.
        pid: Pid,
        /// How long the server waited.
        waited: Duration,
    },
}

impl ForkServerError {
    /// Whether this failure leaves the client unusable: the control stream may be out of
    /// step, or the server is gone.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ForkServerError::Start(_)
                | ForkServerError::ServerGone { .. }
                | ForkServerError::Unresponsive { .. }
                | ForkServerError::Protocol { .. }
                | ForkServerError::Io { .. }
                | ForkServerError::Broken { .. }
        )
    }
}

/// How a server ended, for a sentence.
struct Ending(Option<ExitStatus>);

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ExitStatus::Exited(code)) => write!(f, "it exited with code {code}"),
            Some(ExitStatus::Signaled(sig)) => write!(f, "it was killed by signal {sig}"),
            None => f.write_str("its exit status is unknown"),
        }
    }
}

impl fmt::Display for ForkServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForkServerError::Start(e) => write!(f, "could not start the fork server: {e}"),
            ForkServerError::ServerGone {
                request: Request::Start,
                status,
            } => write!(
                f,
                "the fork server ended before it was ready ({}): make sure the program's main \
                 calls the fork-server entry (harrow_real::init) before anything else, so that \
                 the re-executed binary serves",
                Ending(*status)
            ),
            ForkServerError::ServerGone { request, status } => write!(
                f,
                "the fork server went away while {} ({}); its children died with it (their \
                 parent-death signal): drop this ForkServer and start a new one",
                request.what(),
                Ending(*status)
            ),
            ForkServerError::Unresponsive {
                request: Request::Start,
                timeout,
            } => write!(
                f,
                "the fork server did not say it was ready within {timeout:?}: make sure the \
                 program's main calls the fork-server entry (harrow_real::init) before anything \
                 else, or raise the timeout if the machine is overloaded"
            ),
            ForkServerError::Unresponsive { request, timeout } => write!(
                f,
                "the fork server did not answer within {timeout:?} while {}; it is now unusable: \
                 drop this ForkServer (which kills it and its children) and start a new one, or \
                 raise the timeout if the machine is overloaded",
                request.what()
            ),
            ForkServerError::Protocol { request, detail } => write!(
                f,
                "the fork server sent a reply that makes no sense while {}: {detail}; this is a \
                 harrow bug or a mismatched binary: drop this ForkServer and start a new one",
                request.what()
            ),
            ForkServerError::Io { request, source } => write!(
                f,
                "could not talk to the fork server while {}: {source}",
                request.what()
            ),
            ForkServerError::Refused {
                request,
                errno,
                message,
            } => write!(
                f,
                "the fork server failed while {} (errno {errno}): {message}; the server itself \
                 is still usable",
                request.what()
            ),
            ForkServerError::OutOfDescriptors { pid, cleanup } => {
                out_of_descriptors(f, *pid, cleanup.as_deref())
            }
            ForkServerError::Broken { cause } => write!(
                f,
                "this fork server is unusable after an earlier failure ({cause}): drop it and \
                 start a new ForkServer"
            ),
            ForkServerError::ActorName { len } => write!(
                f,
                "an actor name must have 1 to {MAX_ACTOR_LEN} bytes, this one has {len}: \
                 register the actor under a shorter name"
            ),
            ForkServerError::UnknownChild { pid } => write!(
                f,
                "pid {pid} is not a live child of this fork server (never spawned through it, \
                 or already reaped): each child is reaped exactly once, and never signalled by \
                 pid after that"
            ),
            ForkServerError::StillRunning { pid, waited } => write!(
                f,
                "child {pid} had not exited after {waited:?}: kill it (through its pidfd, then \
                 its process group) before reaping it"
            ),
        }
    }
}

/// The message of [`ForkServerError::OutOfDescriptors`].
fn out_of_descriptors(f: &mut fmt::Formatter<'_>, pid: Pid, cleanup: Option<&str>) -> fmt::Result {
    write!(
        f,
        "the fork server forked child {pid}, but this process is out of file descriptors \
         (RLIMIT_NOFILE) and could not receive its channel and pidfd; "
    )?;
    match cleanup {
        None => f.write_str("the child was killed and reaped")?,
        Some(why) => write!(f, "killing and reaping the child failed ({why})")?,
    }
    f.write_str(
        ", and the server is still usable: close descriptors you no longer need or raise the \
         limit (ulimit -n), then spawn again",
    )
}

impl std::error::Error for ForkServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ForkServerError::Start(e) | ForkServerError::Io { source: e, .. } => Some(e),
            _ => None,
        }
    }
}
