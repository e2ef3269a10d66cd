//! Spawn methods: how a child starts, how it can be stopped, and when a method is refused.

use core::fmt;

use serde::{Deserialize, Serialize};

/// How a child actor is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SpawnMethod {
    /// Re-execute the current binary; the child finds its channel on a known fd.
    Exec,
    /// `fork()` from the calling thread; only safe in a single-threaded process.
    Fork,
    /// Ask a single-threaded fork-server process to fork; safe from any thread.
    ForkServer,
    /// Run the actor on a dedicated thread of this process.
    Thread,
}

impl SpawnMethod {
    /// Every method, in declaration order.
    pub const ALL: [SpawnMethod; 4] = [
        SpawnMethod::Exec,
        SpawnMethod::Fork,
        SpawnMethod::ForkServer,
        SpawnMethod::Thread,
    ];

    /// How a child of this method is stopped when it will not stop by itself.
    pub const fn hard_stop(self) -> HardStop {
        match self {
            SpawnMethod::Thread => HardStop::Abandon,
            _ => HardStop::Kill,
        }
    }

    /// Whether this method can work in the caller's situation; a refusal names the fix.
    pub fn check(self, situation: &Situation) -> Result<(), MethodRefused> {
        let reason = match self {
            SpawnMethod::Fork => match situation.threads {
                Ok(threads) if threads > 1 => RefusalReason::MultiThreaded { threads },
                Ok(_) => return Ok(()),
                Err(why) => RefusalReason::ThreadsUncounted(why),
            },
            SpawnMethod::Exec if !situation.can_exec => RefusalReason::NoExecutable,
            SpawnMethod::ForkServer if !situation.can_exec => RefusalReason::NoExecutable,
            _ => return Ok(()),
        };
        Err(MethodRefused {
            method: self,
            reason,
        })
    }
}

impl fmt::Display for SpawnMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SpawnMethod::Exec => "Exec",
            SpawnMethod::Fork => "Fork",
            SpawnMethod::ForkServer => "ForkServer",
            SpawnMethod::Thread => "Thread",
        };
        f.write_str(name)
    }
}

/// The forceful way to stop a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HardStop {
    /// SIGKILL through the child's pidfd (and its process group).
    Kill,
    /// Give up on the thread: close our end of its channel and count it as abandoned.
    Abandon,
}

/// What the caller's process looks like when it spawns, as far as spawn methods care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Situation {
    /// Threads alive in the calling process, or why they could not be counted.
    pub threads: Result<usize, Uncounted>,
    /// Whether the current executable can be re-executed (it called `harrow_real::init`).
    pub can_exec: bool,
}

impl Default for Situation {
    fn default() -> Self {
        Situation {
            threads: Ok(1),
            can_exec: true,
        }
    }
}

/// Why the calling process's threads could not be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Uncounted {
    /// The process is out of file descriptors, so the thread list could not be opened.
    OutOfDescriptors,
    /// The thread list could not be read for another reason (on Linux: `/proc` missing).
    Unreadable,
}

/// Why a spawn method cannot be used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefusalReason {
    /// `fork()` in a multi-threaded process can wedge the child on a lock another thread held.
    MultiThreaded {
        /// Threads alive when the spawn was asked for.
        threads: usize,
    },
    /// The current executable cannot be re-executed as a child.
    NoExecutable,
    /// The threads could not be counted, so a fork cannot be known to be safe.
    ThreadsUncounted(Uncounted),
}

/// A spawn method refused in the caller's situation; the message names the method to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodRefused {
    /// The method that was asked for.
    pub method: SpawnMethod,
    /// Why it cannot work here.
    pub reason: RefusalReason,
}

impl fmt::Display for MethodRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RefusalReason::MultiThreaded { threads } => write!(
                f,
                "spawn method {} refused: this process has {threads} threads, and a fork here \
                 could wedge the child on a lock another thread holds; use ForkServer instead",
                self.method
            ),
            RefusalReason::ThreadsUncounted(Uncounted::OutOfDescriptors) => write!(
                f,
                "spawn method {} refused: could not count this process's threads: out of file \
                 descriptors (RLIMIT_NOFILE), and a fork is safe only in a single-threaded \
                 process; close descriptors you no longer need or raise the limit (ulimit -n)",
                self.method
            ),
            RefusalReason::ThreadsUncounted(Uncounted::Unreadable) => write!(
                f,
                "spawn method {} refused: could not count this process's threads (is /proc \
                 mounted?), and a fork is safe only in a single-threaded process; use \
                 ForkServer or Exec instead",
                self.method
            ),
            RefusalReason::NoExecutable => write!(
                f,
                "spawn method {} refused: the current executable cannot be re-executed as a \
                 child; call harrow_real::init() first in main, or use Fork or Thread",
                self.method
            ),
        }
    }
}

impl core::error::Error for MethodRefused {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn fork_is_refused_when_multi_threaded_and_names_fork_server() {
        let busy = Situation {
            threads: Ok(3),
            can_exec: true,
        };
        let err = SpawnMethod::Fork.check(&busy).unwrap_err();
        assert!(err.to_string().contains("use ForkServer"));
        assert!(SpawnMethod::ForkServer.check(&busy).is_ok());
        assert!(SpawnMethod::Fork.check(&Situation::default()).is_ok());
    }

    #[test]
    fn only_threads_are_abandoned() {
        for m in SpawnMethod::ALL {
            let expected = if m == SpawnMethod::Thread {
                HardStop::Abandon
            } else {
                HardStop::Kill
            };
            assert_eq!(m.hard_stop(), expected);
        }
    }
}
