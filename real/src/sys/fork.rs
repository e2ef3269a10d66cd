//! Fork without exec: [`fork_child`] and the child prelude it runs before the body.
//!
//! The prelude, in order, each step a fix for a bug tractor hit (see `real/LINUX.md`,
//! facts 2 to 5):
//!
//! 1. move the channel to [`CHILD_CHANNEL_FD`] (3) with `dup2` (if it already is 3, only
//!    clear its close-on-exec flag);
//! 2. `close_range(4, ~0, 0)`: drop every other inherited descriptor but 0, 1, 2 and 3, so
//!    no sibling's channel end lives on here (the lost-EOF bug, F6);
//! 3. `prctl(PR_SET_PDEATHSIG, SIGKILL)`, then re-check `getppid()` against the parent pid
//!    recorded before the fork and leave if it changed (the parent died first);
//! 4. `setpgid(0, 0)`: lead its own process group, so `killpg` reaches grandchildren (the
//!    parent calls `setpgid(child, child)` too, closing the race);
//! 5. every signal disposition back to default, and the signal mask emptied;
//! 6. the body, whose return value or panic (as 101) leads only to `_exit`, after a flush of
//!    Rust's standard output when the parent was single-threaded ([`fork_child`]), so that
//!    what the body printed without a newline is not lost.
//!
//! A prelude step that fails ends the child with one of the [`exit::prelude`] codes. The child
//! never returns into the parent's frames and never drops an object inherited from the
//! parent: after `close_range`, their descriptor numbers may be reused by the child's own.
//!
//! Everything the child needs is computed before the fork, and the prelude makes only raw
//! system calls: it allocates nothing and takes no lock, so it is async-signal-safe.

use std::io::Write;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use harrow_model::exit;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::ForkResult;
use rustix::fs::{Mode, OFlags, RawDir};

use super::error::{Op, SysError, nix_err, rustix_err};
use super::fds::{CHILD_CHANNEL_FD, close_from, lift_above_stdio, own_raw, place_channel};
use super::pidfd::{ChildProcess, Pid, Pidfd, Signal};

/// Options of the child prelude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prelude {
    /// Close every inherited descriptor except 0, 1, 2 and the channel. Only the
    /// expected-failure scenario that demonstrates the lost-EOF bug turns this off.
    pub scrub_fds: bool,
    /// Reset every signal disposition to the default and empty the signal mask (step 5).
    /// Off only for a parent whose dispositions are all default and whose mask is empty, so
    /// the child inherits that state anyway: the fork server, which resets its own once when
    /// it starts ([`reset_signals`]) and never installs a handler.
    pub reset_signals: bool,
}

impl Prelude {
    /// The prelude every real child runs.
    pub const STANDARD: Prelude = Prelude {
        scrub_fds: true,
        reset_signals: true,
    };

    /// The prelude of a child forked by a process whose signal state is already the
    /// default (the fork server): the 62 `sigaction` calls would change nothing.
    pub const FROM_DEFAULT_SIGNALS: Prelude = Prelude {
        scrub_fds: true,
        reset_signals: false,
    };

    /// The prelude without the descriptor scrub: the child keeps every descriptor its parent
    /// had, including other children's channel ends, whose EOF then never arrives. For the
    /// smoke scenario and the test that demonstrate that bug; never for real children.
    pub const UNSCRUBBED_LOSES_EOF: Prelude = Prelude {
        scrub_fds: false,
        reset_signals: true,
    };
}

/// How many threads the calling process has, counted in `/proc/self/task` without allocating.
pub fn thread_count() -> Result<usize, SysError> {
    let dir = rustix::fs::open(
        c"/proc/self/task",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(rustix_err(Op::ReadProc))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(&dir, &mut buf);
    let mut count = 0;
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(rustix_err(Op::ReadProc))?;
        if entry
            .file_name()
            .to_bytes()
            .first()
            .is_some_and(u8::is_ascii_digit)
        {
            count += 1;
        }
    }
    Ok(count)
}

/// Forks a child that runs the prelude and then `body` with its channel at
/// [`CHILD_CHANNEL_FD`]; returns the child with a pidfd opened right after the fork.
///
/// Refuses with [`SysError::MultiThreaded`] unless the calling process has exactly one
/// thread: then no lock can be held by a thread that does not exist in the child, and the
/// body may do anything (allocate, print). The count cannot go stale, since only this thread
/// could start another. Rust's standard output is flushed before the fork, so the child does
/// not inherit (and print again) a partial line of ours, and in the child after the body, so
/// that its own partial line is not lost at `_exit`. The parent's copy of `channel` is closed; `body`'s captures are
/// dropped in the parent and never in the child (so `body` is called through a reference:
/// `FnMut`, not `FnOnce`). After the scrub, the body may use only the channel it is given;
/// a captured descriptor's number may by then be closed or reused.
pub fn fork_child<F>(prelude: Prelude, channel: OwnedFd, body: F) -> Result<ChildProcess, SysError>
where
    F: FnMut(OwnedFd) -> i32,
{
    let threads = thread_count()?;
    if threads != 1 {
        return Err(SysError::MultiThreaded { threads });
    }
    let _ = std::io::stdout().flush();
    // SAFETY: the process is single-threaded (checked above), so the child inherits no lock
    // held by a vanished thread, and `body` and the flush after it may call anything.
    unsafe { fork_with(prelude, channel, body, true) }
}

/// [`fork_child`] without the single-thread check.
///
/// # Safety
///
/// If the calling process has other threads, `body` must call only async-signal-safe
/// functions (man signal-safety(7)): no allocation, no lock, no `println!`, no panic. Another
/// thread may hold any lock at the moment of the fork, and in the child it is held forever.
/// This is nix's `fork` contract (man fork(2), "after a fork() in a multithreaded program").
pub unsafe fn fork_child_unchecked<F>(
    prelude: Prelude,
    channel: OwnedFd,
    body: F,
) -> Result<ChildProcess, SysError>
where
    F: FnMut(OwnedFd) -> i32,
{
    // SAFETY: the caller's contract; no flush, which takes the standard output's lock.
    unsafe { fork_with(prelude, channel, body, false) }
}

/// The fork; the child flushes Rust's standard output after `body` if `flush_stdout`.
///
/// # Safety
///
/// As [`fork_child_unchecked`]; `flush_stdout` only if the process is single-threaded.
unsafe fn fork_with<F>(
    prelude: Prelude,
    channel: OwnedFd,
    body: F,
    flush_stdout: bool,
) -> Result<ChildProcess, SysError>
where
    F: FnMut(OwnedFd) -> i32,
{
    let channel = lift_above_stdio(channel)?;
    let plan = ChildPlan {
        prelude,
        channel: channel.as_raw_fd(),
        parent: Pid::current(),
        flush_stdout,
    };
    let mut body = ManuallyDrop::new(body);
    // SAFETY: the child runs only `child_main`: the async-signal-safe prelude and then
    // `body`, which the caller vouches for; it never returns (`_exit`).
    let forked = unsafe { nix::unistd::fork() };
    match forked {
        Err(e) => {
            drop(ManuallyDrop::into_inner(body));
            Err(nix_err(Op::Fork)(e))
        }
        Ok(ForkResult::Child) => {
            // The parent's OwnedFd must never be dropped here: its number is about to move.
            mem::forget(channel);
            child_main(&plan, &mut *body)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(ManuallyDrop::into_inner(body));
            let pid = Pid::from_raw(child.as_raw()).expect("fork returns a positive pid");
            let pidfd = open_pidfd_or_reap(pid)?;
            // The child also does this; whichever runs first wins, the other is a no-op or
            // fails harmlessly (ESRCH if the child already exited, EACCES after an exec).
            let _ = nix::unistd::setpgid(child, child);
            drop(channel);
            Ok(ChildProcess::new(pid, pidfd))
        }
    }
}

/// Opens the new child's pidfd; if that fails (out of descriptors), kills and reaps it by
/// pid, which is safe only because it is our unreaped child, and returns the error.
pub(crate) fn open_pidfd_or_reap(pid: Pid) -> Result<Pidfd, SysError> {
    match Pidfd::open(pid) {
        Ok(pidfd) => Ok(pidfd),
        Err(e) => {
            let raw = nix::unistd::Pid::from_raw(pid.as_raw());
            let _ = nix::sys::signal::kill(raw, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(raw, None);
            Err(e)
        }
    }
}

/// Everything the child needs, computed in the parent before the fork.
struct ChildPlan {
    prelude: Prelude,
    channel: RawFd,
    parent: Pid,
    /// Flush Rust's standard output before `_exit` (the parent was single-threaded).
    flush_stdout: bool,
}

/// The child side: prelude, body, `_exit`. Never returns.
fn child_main<F: FnMut(OwnedFd) -> i32>(plan: &ChildPlan, body: &mut F) -> ! {
    let code = match run_prelude(plan) {
        Err(code) => exit_now(code),
        Ok(channel) => match catch_unwind(AssertUnwindSafe(|| body(channel))) {
            Ok(code) => code,
            Err(payload) => {
                mem::forget(payload);
                exit::PANIC
            }
        },
    };
    if plan.flush_stdout {
        exit_flushed(code)
    } else {
        exit_now(code)
    }
}

/// Runs prelude steps 1 to 5; returns the channel at the fixed number, or an exit code.
fn run_prelude(plan: &ChildPlan) -> Result<OwnedFd, i32> {
    place_channel(plan.channel).map_err(|_| exit::prelude::PLACE_CHANNEL)?;
    if plan.prelude.scrub_fds {
        close_from(CHILD_CHANNEL_FD + 1).map_err(|_| exit::prelude::SCRUB_FDS)?;
    }
    arm_death_signal(plan.parent)?;
    rustix::process::setpgid(None, None).map_err(|_| exit::prelude::OWN_GROUP)?;
    if plan.prelude.reset_signals {
        reset_signals().map_err(|_| exit::prelude::SIGNAL_MASK)?;
    }
    // SAFETY: fd 3 was just placed and is open; the parent's owner of the original number
    // was forgotten, so this is its only owner in the child.
    Ok(unsafe { own_raw(CHILD_CHANNEL_FD) })
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then the parent re-check (man PR_SET_PDEATHSIG(2const)).
///
/// The signal fires when the *thread* that forked exits, not the process.
pub(crate) fn arm_death_signal(parent: Pid) -> Result<(), i32> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|_| exit::prelude::DEATH_SIGNAL)?;
    match rustix::process::getppid() {
        Some(ppid) if ppid.as_raw_pid() == parent.as_raw() => Ok(()),
        _ => Err(exit::prelude::PARENT_GONE),
    }
}

/// Every disposition back to `SIG_DFL` and the signal mask emptied, so the child starts
/// from a standard state whatever handlers (a self-pipe, std's ignored `SIGPIPE`) the parent
/// had. Async-signal-safe.
pub fn reset_signals() -> Result<(), i32> {
    reset_signal_dispositions();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(|e| e as i32)
}

/// The highest signal number on Linux (`_NSIG - 1`), real-time signals included.
const MAX_SIGNAL: libc::c_int = 64;

/// `sigaction(sig, SIG_DFL)` for every signal; nix's `Signal` cannot name the real-time
/// ones, hence libc. Failures (`SIGKILL`, `SIGSTOP`, glibc's reserved 32 and 33) are ignored.
fn reset_signal_dispositions() {
    // SAFETY: an all-zero `sigaction` is a valid value: handler SIG_DFL (0), empty mask,
    // no flags (man sigaction(2)).
    let default: libc::sigaction = unsafe { mem::zeroed() };
    for sig in 1..=MAX_SIGNAL {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installs SIG_DFL, which runs no code of ours; `default` outlives the call
        // and the old action is not requested (null). sigaction is async-signal-safe.
        unsafe { libc::sigaction(sig, &default, std::ptr::null_mut()) };
    }
}

/// Flushes Rust's standard output (what the process printed without a newline), then
/// [`exit_now`]: the way out of a child that owns its output buffer, one forked from a
/// single-threaded parent (whose buffer was flushed before the fork) or exec'd.
pub fn exit_flushed(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    exit_now(code)
}

/// Ends the calling process at once with `code` (man _exit(2)): no atexit handlers, no
/// stdio flush, no destructors. The only way out of a forked child.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns and runs no user code, so no
    // object inherited from the parent is dropped or flushed twice.
    unsafe { libc::_exit(code) }
}
