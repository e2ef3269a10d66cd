//! A signal self-pipe done right (FLAWS.md F11): the signal is a level flag, the pipe only wakes.
//!
//! Built on signal-hook, not a hand-rolled `sigaction` handler: its handler is
//! async-signal-safe and audited, preserves `errno`, writes non-blockingly and drops the
//! byte when the pipe is full, chains to other users of the same signal (tokio uses the same
//! registry), and never writes to a descriptor that an unregistration is closing. Two actions
//! are registered, in this order, and signal-hook runs them in registration order: first set
//! the flag, then write a wake byte. The reader does the reverse: first drain the pipe, then
//! take the flag. So a full pipe can drop wake bytes but never a signal: the flag is set,
//! and the full pipe is itself readable. Draining after taking the flag could lose a signal
//! that arrived in between; [`SignalPipe::take_pending`] never does that.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::io::Errno;
use signal_hook::SigId;

use super::channel::{IoMode, pipe_pair};
use super::error::{Op, SysError, rustix_err};

/// Per signal: how many [`SignalPipe`]s watch it, and the switch of its default action.
///
/// signal-hook never removes its dispatcher, so once the last pipe is gone the signal would
/// be ignored (Ctrl-C would stop working for the rest of the program). A conditional-default
/// action, registered once per signal before any pipe's actions, runs the signal's default
/// action (for `SIGINT`: terminate) exactly while no pipe is installed.
static WATCHERS: Mutex<BTreeMap<i32, (usize, Arc<AtomicBool>)>> = Mutex::new(BTreeMap::new());

/// Counts one more watcher of `signal`; the first ever registers the default's switch.
fn watch(signal: i32) -> Result<(), std::io::Error> {
    let mut w = WATCHERS.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = match w.entry(signal) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let idle = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register_conditional_default(signal, Arc::clone(&idle))?;
            e.insert((0, idle))
        }
    };
    entry.0 += 1;
    entry.1.store(false, Ordering::SeqCst);
    Ok(())
}

/// Counts one watcher of `signal` fewer; with none left, the default action is back.
fn unwatch(signal: i32) {
    let mut w = WATCHERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(entry) = w.get_mut(&signal) {
        entry.0 = entry.0.saturating_sub(1);
        if entry.0 == 0 {
            entry.1.store(true, Ordering::SeqCst);
        }
    }
}

/// A flag plus a wake pipe for one signal.
#[derive(Debug)]
pub struct SignalPipe {
    signal: i32,
    read: OwnedFd,
    flag: Arc<AtomicBool>,
    ids: [SigId; 2],
}

impl SignalPipe {
    /// Installs the flag and the wake pipe for `signal` (a catchable one: not `SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE` or `SIGSEGV`).
    pub fn install(signal: i32) -> Result<SignalPipe, SysError> {
        if signal_hook::consts::FORBIDDEN.contains(&signal) {
            return Err(SysError::os(Op::SignalInstall, libc::EINVAL));
        }
        let (read, write) = pipe_pair(IoMode::NonBlocking)?;
        let flag = Arc::new(AtomicBool::new(false));
        let io = |e: std::io::Error| {
            SysError::os(Op::SignalInstall, e.raw_os_error().unwrap_or(libc::EINVAL))
        };
        watch(signal).map_err(io)?;
        let flag_id = match signal_hook::flag::register(signal, Arc::clone(&flag)) {
            Ok(id) => id,
            Err(e) => {
                unwatch(signal);
                return Err(io(e));
            }
        };
        let pipe_id = match signal_hook::low_level::pipe::register(signal, write) {
            Ok(id) => id,
            Err(e) => {
                signal_hook::low_level::unregister(flag_id);
                unwatch(signal);
                return Err(io(e));
            }
        };
        Ok(SignalPipe {
            signal,
            read,
            flag,
            ids: [flag_id, pipe_id],
        })
    }

    /// [`SignalPipe::install`] for `SIGINT`.
    pub fn sigint() -> Result<SignalPipe, SysError> {
        SignalPipe::install(libc::SIGINT)
    }

    /// The signal it watches.
    pub fn signal(&self) -> i32 {
        self.signal
    }

    /// The read end to register with the poller: readable after a signal (or while full).
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Whether the signal arrived since the last call: drains the pipe FIRST, then takes the
    /// flag. A signal landing after the drain stays in the flag (seen now) or leaves a byte
    /// (a wakeup next time); none is lost.
    pub fn take_pending(&self) -> Result<bool, SysError> {
        let mut buf = [0u8; 256];
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(_) | Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                Err(e) => return Err(rustix_err(Op::SignalDrain)(e)),
            }
        }
        Ok(self.flag.swap(false, Ordering::SeqCst))
    }

    /// Shrinks (or grows) the wake pipe to about `bytes` (rounded up to a page by the
    /// kernel; man fcntl(2), `F_SETPIPE_SZ`); returns the new capacity. Tests use it to fill
    /// the pipe quickly.
    pub fn set_pipe_capacity(&self, bytes: usize) -> Result<usize, SysError> {
        rustix::pipe::fcntl_setpipe_size(&self.read, bytes).map_err(rustix_err(Op::SetFdFlags))
    }

    /// Removes both actions; the write end is closed by signal-hook once no handler can be
    /// using it. When no other pipe watches the signal, its default action is back (for
    /// `SIGINT`: the process terminates), as before the first install.
    pub fn uninstall(self) {
        drop(self);
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        // The pipe action first, so no wake byte is written for a flag nobody reads.
        signal_hook::low_level::unregister(self.ids[1]);
        signal_hook::low_level::unregister(self.ids[0]);
        unwatch(self.signal);
    }
}
