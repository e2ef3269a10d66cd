//! A signal self-pipe done right (flaw F11), over a handler that leaves the host's
//! disposition of the signal as it found it.
//!
//! **Flag and pipe.** Each [`SignalPipe`] has a flag and a wake pipe. The handler sets the
//! flag, then writes one byte to the pipe (non-blocking: a full pipe drops the byte). The
//! reader does the reverse: first drain the pipe, then take the flag. So a full pipe can drop
//! wake bytes but never a signal: the flag is set, and the full pipe is itself readable.
//! Draining after taking the flag could lose a signal that arrived in between;
//! [`SignalPipe::take_pending`] never does that.
//!
//! **The host's disposition.** The first pipe of a signal installs harrow's handler and keeps
//! the disposition it replaced (the one the host had: default, ignore, or a handler of its
//! own). While pipes watch, the handler tells them and then chains to a replaced handler
//! (default and ignore do nothing more: the pipes are how the signal is handled). When the
//! last pipe goes, the replaced disposition is put back exactly (handler, mask, flags), if
//! harrow's handler is still the installed one. If someone installed theirs over it
//! meanwhile (tokio's signal driver does, through signal-hook-registry, and never removes
//! it), putting ours back would remove theirs; so harrow's handler stays underneath, watching
//! nothing, and passes each signal on as that someone would have seen it without harrow: to
//! the replaced handler, if there was one.
//!
//! Why not signal-hook (used here before): its registry installs its dispatcher once and
//! never removes it, so once the last pipe was gone the signal was either ignored (Ctrl-C
//! stopped working) or, with its "conditional default", terminated the process, even one
//! that ignored the signal or handled it itself.
//!
//! **In the handler** only atomics of a static table are touched (no allocation, no lock),
//! `errno` is preserved, and a pipe's write end is closed only once no handler is between
//! reading its number and writing to it, so a write never lands on a reused descriptor.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

use rustix::io::Errno;

use super::channel::{IoMode, pipe_pair};
use super::error::{Op, SysError, rustix_err};

/// The most [`SignalPipe`]s that may exist at once (one per nursery with `handle_sigint`).
pub const MAX_WATCHERS: usize = 64;

/// The highest signal number on Linux, real-time signals included.
const MAX_SIGNAL: usize = 64;

/// Signals that cannot be caught, or whose handler must not return normally.
const FORBIDDEN: [i32; 5] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
];

/// One watcher, as the handler sees it: the signal it watches (0: free), its pipe's write
/// end (-1: none) and its flag.
struct Slot {
    signal: AtomicI32,
    write: AtomicI32,
    flag: AtomicBool,
}

static SLOTS: [Slot; MAX_WATCHERS] = [const {
    Slot {
        signal: AtomicI32::new(0),
        write: AtomicI32::new(-1),
        flag: AtomicBool::new(false),
    }
}; MAX_WATCHERS];

/// Handlers between their first and last look at [`SLOTS`].
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Per signal, the replaced handler the handler chains to (0: none, for `SIG_DFL` and
/// `SIG_IGN`), and whether it takes three arguments (`SA_SIGINFO`).
static CHAIN: [AtomicUsize; MAX_SIGNAL + 1] = [const { AtomicUsize::new(0) }; MAX_SIGNAL + 1];
static CHAIN_SIGINFO: [AtomicBool; MAX_SIGNAL + 1] =
    [const { AtomicBool::new(false) }; MAX_SIGNAL + 1];

/// A signal harrow's handler is installed for (on top, or underneath another).
struct Installed {
    /// The disposition it replaced, to put back.
    replaced: libc::sigaction,
    /// How many pipes watch it.
    watchers: usize,
}

/// Installed signals by number; every change of [`SLOTS`] or a disposition happens under it.
static INSTALLED: Mutex<BTreeMap<i32, Installed>> = Mutex::new(BTreeMap::new());

/// A flag plus a wake pipe for one signal.
#[derive(Debug)]
pub struct SignalPipe {
    signal: i32,
    slot: usize,
    read: OwnedFd,
    /// The write end the handler writes to: owned here only so that it closes after the
    /// slot is released (see `Drop`).
    _write: OwnedFd,
}

impl SignalPipe {
    /// Installs the flag and the wake pipe for `signal` (a catchable one: not `SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE` or `SIGSEGV`).
    pub fn install(signal: i32) -> Result<SignalPipe, SysError> {
        if !(1..=MAX_SIGNAL as i32).contains(&signal) || FORBIDDEN.contains(&signal) {
            return Err(SysError::os(Op::SignalInstall, libc::EINVAL));
        }
        let (read, write) = pipe_pair(IoMode::NonBlocking)?;
        let slot = watch(signal, write.as_fd())?;
        Ok(SignalPipe {
            signal,
            slot,
            read,
            _write: write,
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
        Ok(SLOTS[self.slot].flag.swap(false, SeqCst))
    }

    /// Shrinks (or grows) the wake pipe to about `bytes` (rounded up to a page by the
    /// kernel; man fcntl(2), `F_SETPIPE_SZ`); returns the new capacity. Tests use it to fill
    /// the pipe quickly.
    pub fn set_pipe_capacity(&self, bytes: usize) -> Result<usize, SysError> {
        rustix::pipe::fcntl_setpipe_size(&self.read, bytes).map_err(rustix_err(Op::SetFdFlags))
    }

    /// Stops watching. When no other pipe watches the signal, the disposition the first
    /// pipe found is back, as if no pipe had ever watched (see the module doc).
    pub fn uninstall(self) {
        drop(self);
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        unwatch(self.signal, self.slot);
        // `self._write` closes after this: no handler can be about to write to it.
    }
}

/// Claims a slot for a pipe watching `signal`, installing the handler if it is the first.
fn watch(signal: i32, write: BorrowedFd<'_>) -> Result<usize, SysError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    let slot = SLOTS
        .iter()
        .position(|s| s.signal.load(SeqCst) == 0)
        .ok_or(SysError::TooManySignalWatchers { max: MAX_WATCHERS })?;
    let entry = match installed.entry(signal) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => e.insert(Installed {
            replaced: install_handler(signal)?,
            watchers: 0,
        }),
    };
    entry.watchers += 1;
    // The signal before the descriptor: the handler writes only when it sees both.
    SLOTS[slot].flag.store(false, SeqCst);
    SLOTS[slot].signal.store(signal, SeqCst);
    SLOTS[slot].write.store(write.as_raw_fd(), SeqCst);
    Ok(slot)
}

/// Releases `slot`; with its signal's last watcher gone, puts the replaced disposition back
/// if harrow's handler is still on top.
fn unwatch(signal: i32, slot: usize) {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    SLOTS[slot].write.store(-1, SeqCst);
    // A handler that read the old number before the store is counted: wait until it is done
    // (a few system calls), so the caller may close the descriptor.
    while IN_HANDLER.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
    SLOTS[slot].signal.store(0, SeqCst);
    let Some(entry) = installed.get_mut(&signal) else {
        return;
    };
    entry.watchers = entry.watchers.saturating_sub(1);
    if entry.watchers == 0 && current_handler(signal) == Some(handler_address()) {
        restore(signal, &entry.replaced);
        installed.remove(&signal);
    }
}

/// The address of [`on_signal`], as `sigaction` reports an installed handler.
fn handler_address() -> usize {
    on_signal as *const () as usize
}

/// Installs [`on_signal`] for `signal`; returns the disposition it replaced.
fn install_handler(signal: i32) -> Result<libc::sigaction, SysError> {
    let install_err = |()| SysError::os(Op::SignalInstall, nix::errno::Errno::last_raw());
    // Chain to what is there before the handler can run; re-read what it actually replaced.
    let before = query(signal).map_err(install_err)?;
    set_chain(signal, &before);
    // SAFETY: an all-zero sigaction is a valid value: empty mask, no flags.
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = handler_address();
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `on_signal` is async-signal-safe (module doc); both pointers are valid for the
    // call, which keeps neither (man sigaction(2)).
    if unsafe { libc::sigaction(signal, &ours, &mut replaced) } != 0 {
        return Err(install_err(()));
    }
    set_chain(signal, &replaced);
    Ok(replaced)
}

/// Puts `replaced` back as the disposition of `signal`.
fn restore(signal: i32, replaced: &libc::sigaction) {
    // SAFETY: `replaced` is the disposition sigaction reported for this signal; putting it
    // back installs what the host had; the pointer is valid for the call.
    unsafe { libc::sigaction(signal, replaced, std::ptr::null_mut()) };
}

/// The disposition of `signal` now.
fn query(signal: i32) -> Result<libc::sigaction, ()> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query (no new action); `now` is valid for writes.
    match unsafe { libc::sigaction(signal, std::ptr::null(), &mut now) } {
        0 => Ok(now),
        _ => Err(()),
    }
}

/// The handler installed for `signal` now (`SIG_DFL` is 0, `SIG_IGN` 1).
fn current_handler(signal: i32) -> Option<usize> {
    query(signal).ok().map(|a| a.sa_sigaction)
}

fn set_chain(signal: i32, replaced: &libc::sigaction) {
    let handler = match replaced.sa_sigaction {
        libc::SIG_DFL | libc::SIG_IGN => 0,
        h if h == handler_address() => 0,
        h => h,
    };
    let index = signal as usize;
    CHAIN_SIGINFO[index].store(replaced.sa_flags & libc::SA_SIGINFO != 0, SeqCst);
    CHAIN[index].store(handler, SeqCst);
}

/// The handler: tells every pipe watching `signal`, then chains to the replaced handler.
extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = nix::errno::Errno::last_raw();
    IN_HANDLER.fetch_add(1, SeqCst);
    for slot in &SLOTS {
        if slot.signal.load(SeqCst) != signal {
            continue;
        }
        let fd = slot.write.load(SeqCst);
        if fd >= 0 {
            // The flag first, then the byte: the reader drains, then takes the flag.
            slot.flag.store(true, SeqCst);
            // SAFETY: `fd` is a pipe's write end that stays open while IN_HANDLER counts us
            // (unwatch waits for it before the owner closes it); write(2) is
            // async-signal-safe, and a full (non-blocking) pipe just drops the byte.
            unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
        }
    }
    IN_HANDLER.fetch_sub(1, SeqCst);
    let index = usize::try_from(signal).unwrap_or(0).min(MAX_SIGNAL);
    let chained = CHAIN[index].load(SeqCst);
    if chained != 0 {
        if CHAIN_SIGINFO[index].load(SeqCst) {
            type Action = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
            // SAFETY: `chained` is the address sigaction reported for a handler installed
            // with SA_SIGINFO, so it has this signature; it is called as the kernel would.
            let action = unsafe { std::mem::transmute::<*const (), Action>(chained as *const ()) };
            action(signal, info, ctx);
        } else {
            type Handler = extern "C" fn(libc::c_int);
            // SAFETY: `chained` is the address sigaction reported for a one-argument handler.
            let handler =
                unsafe { std::mem::transmute::<*const (), Handler>(chained as *const ()) };
            handler(signal);
        }
    }
    nix::errno::Errno::set_raw(errno);
}
