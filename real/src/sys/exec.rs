//! Exec: re-running the current executable as a child, with its channel at the fixed
//! descriptor and an environment variable naming its role.
//!
//! The child is started with `posix_spawn` (nix), which glibc runs as `clone(CLONE_VM |
//! CLONE_VFORK)` + exec: the parent's memory is never copied, so the cost does not grow with
//! the parent's size, and no code of ours runs between the clone and the exec. What the fork
//! prelude does by hand is asked of `posix_spawn` instead: the channel is `dup2`'d to
//! [`CHILD_CHANNEL_FD`] (which clears its close-on-exec flag), every descriptor above it is
//! closed (`posix_spawn_file_actions_addclosefrom_np`), the child leads its own process group,
//! its signal mask is empty and every signal disposition is the default. The one step left,
//! the parent-death signal, the child takes itself first thing ([`inherited_role`]), with the
//! parent re-check that closes the race: `exec_self` puts the parent's pid in [`ROLE_ENV`].

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};

use super::error::{Op, SysError, nix_err, rustix_err};
use super::fds::{CHILD_CHANNEL_FD, own_raw};
use super::fork::{arm_death_signal, exit_now, open_pidfd_or_reap};
use super::pidfd::{ChildProcess, Pid};
use harrow_model::exit;

/// The environment variable that marks an exec'd harrow child: `<role>:<parent pid>`. The
/// child removes it from its environment at start-up, so its own descendants never see it.
pub const ROLE_ENV: &str = "HARROW_CHILD_ROLE";

/// The path of the running executable, valid even if the file was replaced since.
const SELF_EXE: &str = "/proc/self/exe";

/// Spawns the current executable with `args`, [`ROLE_ENV`] set to `<role>:<our pid>`, and
/// `channel` at [`CHILD_CHANNEL_FD`]; returns the child with a pidfd opened right after the
/// spawn. stdin, stdout and stderr are inherited, every other descriptor is closed in the
/// child; the parent's copy of `channel` is closed. Safe from any thread.
pub fn exec_self(role: &str, args: &[&OsStr], channel: OwnedFd) -> Result<ChildProcess, SysError> {
    // dup2 onto itself would leave close-on-exec set with an older glibc: move it above 3.
    let channel = if channel.as_raw_fd() <= CHILD_CHANNEL_FD {
        rustix::io::fcntl_dupfd_cloexec(&channel, CHILD_CHANNEL_FD + 1)
            .map_err(rustix_err(Op::SetFdFlags))?
    } else {
        channel
    };
    let parent = Pid::current();
    let spawn_err = |e: nix::Error| SysError::Spawn(std::io::Error::from(e));
    let mut actions = PosixSpawnFileActions::init().map_err(spawn_err)?;
    actions
        .add_dup2(channel.as_raw_fd(), CHILD_CHANNEL_FD)
        .map_err(spawn_err)?;
    close_from_in_child(&mut actions, CHILD_CHANNEL_FD + 1)?;
    let mut attr = PosixSpawnAttr::init().map_err(spawn_err)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )
    .map_err(spawn_err)?;
    attr.set_pgroup(nix::unistd::Pid::from_raw(0))
        .map_err(spawn_err)?;
    attr.set_sigmask(&nix::sys::signal::SigSet::empty())
        .map_err(spawn_err)?;
    attr.set_sigdefault(&nix::sys::signal::SigSet::all())
        .map_err(spawn_err)?;
    let argv = std::iter::once(OsStr::new(SELF_EXE))
        .chain(args.iter().copied())
        .map(c_string)
        .collect::<Result<Vec<_>, _>>()?;
    let marker = format!("{ROLE_ENV}={role}:{parent}");
    let envp = std::env::vars_os()
        .filter(|(k, _)| k != ROLE_ENV)
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            c_string(&kv)
        })
        .chain(std::iter::once(c_string(OsStr::new(&marker))))
        .collect::<Result<Vec<_>, _>>()?;
    let pid = posix_spawn(SELF_EXE, &actions, &attr, &argv, &envp).map_err(spawn_err)?;
    let pid = Pid::from_raw(pid.as_raw()).expect("posix_spawn returns a positive pid");
    // Ours and unreaped (nobody else reaps it), so the pid cannot have been reused.
    let pidfd = open_pidfd_or_reap(pid)?;
    drop(channel);
    Ok(ChildProcess::new(pid, pidfd))
}

/// `s` as a C string; a NUL inside is an error that names it.
fn c_string(s: &OsStr) -> Result<CString, SysError> {
    CString::new(s.as_bytes()).map_err(|_| {
        let why = format!("{s:?} holds a NUL byte and cannot be passed to a program");
        SysError::Spawn(std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
    })
}

/// Adds "close every descriptor from `first` up" to `actions` (glibc 2.34+; nix does not
/// wrap it).
fn close_from_in_child(actions: &mut PosixSpawnFileActions, first: RawFd) -> Result<(), SysError> {
    let raw: *mut PosixSpawnFileActions = actions;
    // SAFETY: `PosixSpawnFileActions` is `#[repr(transparent)]` over an initialised
    // `posix_spawn_file_actions_t` (nix's `init` above), so the cast pointer is valid and
    // exclusively borrowed for this call; glibc only appends an action to it.
    let r = unsafe {
        libc::posix_spawn_file_actions_addclosefrom_np(
            raw.cast::<libc::posix_spawn_file_actions_t>(),
            first,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(SysError::Spawn(std::io::Error::from_raw_os_error(r)))
    }
}

/// The role this process was exec'd in by [`exec_self`], if any, read once.
///
/// The first call (the first thing `main` does, through [`crate::init`]) takes [`ROLE_ENV`]
/// out of the environment, so no descendant inherits it, and, if it was set, arms the
/// parent-death signal and re-checks that the parent it names is still our parent: if it is
/// not, the parent died before the signal was armed, and this process ends at once (exit
/// code [`exit::prelude::PARENT_GONE`]) instead of running as an orphan. `None` when the
/// variable is unset or malformed.
pub fn inherited_role() -> Option<String> {
    static ROLE: OnceLock<Option<String>> = OnceLock::new();
    ROLE.get_or_init(take_role).clone()
}

fn take_role() -> Option<String> {
    let value = std::env::var_os(ROLE_ENV)?;
    // SAFETY: called once, from the first line of `main` of a process `exec_self` just
    // started (the variable is set only there), before it has started any thread: nothing
    // else reads or writes the environment concurrently (std::env::remove_var's contract).
    unsafe { std::env::remove_var(ROLE_ENV) };
    let (role, parent) = value.to_str()?.rsplit_once(':')?;
    let parent = Pid::from_raw(parent.parse().ok()?)?;
    if arm_death_signal(parent).is_err() {
        exit_now(exit::prelude::PARENT_GONE);
    }
    Some(role.to_owned())
}

/// Set once the inherited channel has an owner, so it never gets two.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the channel [`exec_self`] left at [`CHILD_CHANNEL_FD`], and marks it
/// close-on-exec so it does not leak into this process's own children.
///
/// Succeeds at most once per process, and only if [`inherited_role`] is `Some` and the
/// descriptor is an open socket. It assumes, like std does for 0, 1 and 2, that no other
/// code in this process claims descriptor 3 by number.
pub fn adopt_inherited_channel() -> Result<OwnedFd, SysError> {
    let refuse = |reason| Err(SysError::NoInheritedChannel { reason });
    if inherited_role().is_none() {
        return refuse("this process was not spawned by exec_self (HARROW_CHILD_ROLE unset)");
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return refuse("the inherited channel was already adopted");
    }
    if !is_socket(CHILD_CHANNEL_FD)? {
        return refuse("descriptor 3 is not an open socket");
    }
    // SAFETY: descriptor 3 is open (fstat succeeded), was placed by our parent's posix_spawn
    // file actions, and ADOPTED guarantees this is its only owner in this process.
    let fd = unsafe { own_raw(CHILD_CHANNEL_FD) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| SysError::os(Op::AdoptChannel, e.raw_os_error()))?;
    Ok(fd)
}

/// A second descriptor for this process child's channel (close-on-exec, above 3).
///
/// For a test actor that must write to its channel behind the protocol's back (the
/// malformed-frame scenario); a real actor never needs it. Refused unless descriptor 3 is an
/// open socket, which it is in every forked or re-executed harrow child (not in a thread
/// child, whose process's descriptor 3 belongs to someone else).
pub fn duplicate_child_channel() -> Result<OwnedFd, SysError> {
    if !is_socket(CHILD_CHANNEL_FD)? {
        return Err(SysError::NoInheritedChannel {
            reason: "descriptor 3 is not an open socket",
        });
    }
    // SAFETY: descriptor 3 is open (fstat succeeded just above) and stays open for this call:
    // it is only borrowed to be duplicated, never closed or owned here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(CHILD_CHANNEL_FD) };
    rustix::io::fcntl_dupfd_cloexec(fd, CHILD_CHANNEL_FD + 1)
        .map_err(|e| SysError::os(Op::AdoptChannel, e.raw_os_error()))
}

/// Whether descriptor `raw` is open and a socket; `Ok(false)` if it is closed.
fn is_socket(raw: RawFd) -> Result<bool, SysError> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only into `st`, which is valid for writes (man fstat(2)); it
    // takes a descriptor number and neither closes nor keeps it.
    if unsafe { libc::fstat(raw, &mut st) } == -1 {
        let errno = nix::errno::Errno::last();
        return if errno == nix::errno::Errno::EBADF {
            Ok(false)
        } else {
            Err(nix_err(Op::AdoptChannel)(errno))
        };
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}
