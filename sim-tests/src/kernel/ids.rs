//! Identifiers: small copyable names for processes, fds, threads, locks and kernel objects.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Declares a copyable, ordered, hashable newtype id with a readable `Display`.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($repr:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub $repr);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, " {}"), self.0)
            }
        }
    };
}

id_type!(
    /// A process id: a name that belongs to whichever process holds it now; not a pidfd.
    ///
    /// Pids come from a small pool and are reused as soon as their process is reaped, so an
    /// operation by raw pid after the reap reaches a stranger.
    Pid(u32),
    "pid"
);

impl Pid {
    /// The pid of init, which exists from the start, never exits and reaps its zombies.
    pub const INIT: Pid = Pid(1);

    /// The parent recorded for init itself: the kernel, which is not a process.
    pub const KERNEL: Pid = Pid(0);
}

id_type!(
    /// A process's identity for its whole life: unique and never reused, unlike its pid.
    ProcessSerial(u64),
    "serial"
);

id_type!(
    /// A file descriptor number, meaningful only inside one process's fd table.
    Fd(u32),
    "fd"
);

impl Fd {
    /// The lowest fd the kernel hands out: 0-2 (stdio) are not modelled, but `dup2` may
    /// target them.
    pub const FIRST_ALLOCATED: Fd = Fd(3);
}

id_type!(
    /// A thread, allocated by the kernel and never reused.
    ThreadId(u32),
    "thread"
);

id_type!(
    /// A process-local lock (a mutex in the process's memory), named by the caller.
    LockId(u32),
    "lock"
);

id_type!(
    /// An open kernel object (socket end, pipe end, pidfd): what fd tables point at.
    ///
    /// Several fds, in one or many processes, may refer to the same object; it lives until
    /// the last of them is closed. Ids are never reused.
    ObjectId(u64),
    "obj"
);
