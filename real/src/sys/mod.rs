//! The system layer: the only module of harrow that contains `unsafe`.
//!
//! Thin, typed wrappers over Linux process and descriptor calls, built on nix and rustix
//! (safe wrappers) wherever they have the call, and on libc only for what neither has:
//! `close_range`, `dup2` onto a fixed number, `sigaction` for real-time signals, `fstat` of
//! a raw number, `posix_spawn_file_actions_addclosefrom_np`, `_exit`. Each `unsafe fn` documents under `# Safety` what its caller must
//! avoid and the man page it follows; each `unsafe` block says why it is sound.
//!
//! The `unsafe` inventory:
//! - [`fork`]: `fork(2)` itself (safe [`fork_child`] checks for a single thread; the
//!   [`fork_child_unchecked`] contract is an async-signal-safe body), `_exit`, and
//!   `sigaction(SIG_DFL)` in the child;
//! - [`fds`]: `dup2`, `fcntl`, `close`, `close_range` on raw numbers in a new child, and
//!   taking ownership of the fixed channel descriptor;
//! - [`exec`]: the closefrom file action on nix's spawn file actions, removing the role
//!   variable from the environment at start-up (before any thread), `fstat` of fd 3;
//! - [`raw_children`]: forks whose bodies are raw system calls only;
//! - `reactor` (feature `tokio`): registering an owned descriptor with tokio's reactor.
//!
//! Errors are [`SysError`]: the operation, the errno, and what to do.
//!
//! A process id ([`Pid`]) is a name, never a handle: after fork, every signal and wait goes
//! through the child's pidfd ([`ChildProcess`]).

pub mod channel;
pub mod epoll;
pub mod error;
pub mod exec;
pub mod fds;
pub mod fork;
pub mod pidfd;
pub mod raw_children;
#[cfg(feature = "tokio")]
pub mod reactor;
pub mod scm;
pub mod signals;

pub use channel::{
    IoMode, RecvOutcome, SendOutcome, SocketKind, channel_pair, pipe_pair, recv, recv_blocking,
    recv_exact_timeout, recv_timeout, send_all, send_all_blocking, send_all_timeout,
    set_nonblocking, socket_pair, wait_readable, wait_readable_either,
};
pub use epoll::{MAX_EVENTS, Poller, Readiness};
pub use error::{Op, SysError};
pub use exec::{
    ROLE_ENV, adopt_inherited_channel, duplicate_child_channel, exec_self, inherited_role,
};
pub use fds::{CHILD_CHANNEL_FD, list_open_fds};
pub use fork::{
    Prelude, exit_flushed, exit_now, fork_child, fork_child_unchecked, reset_signals, thread_count,
};
pub use pidfd::{ChildProcess, ExitStatus, Pid, Pidfd, ReapOutcome, Signal, SignalOutcome};
pub use scm::{MAX_FDS, Received, recv_with_fds, send_with_fds};
pub use signals::SignalPipe;
