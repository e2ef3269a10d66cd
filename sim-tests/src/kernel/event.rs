//! The kernel's event log: what happened, one readable line per event, for counterexample
//! traces. Bounded: the oldest events are dropped, and counted, when it is full.

use core::fmt;
use core::hash::{Hash, Hasher};
use std::collections::VecDeque;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::channel::Shutdown;
use super::clock::DeadlineOwner;
use super::fd::FdKind;
use super::ids::{Fd, LockId, ObjectId, Pid, ThreadId};
use super::signal::{ExitStatus, Signal, SignalOutcome, SignalVia};
use harrow_model::time::Timestamp;

/// One thing the kernel did.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KernelEvent {
    /// `thread` of `parent` forked `child`.
    Forked {
        /// The forking process.
        parent: Pid,
        /// The forking thread.
        thread: ThreadId,
        /// The new process.
        child: Pid,
    },
    /// `parent` spawned `child`, which exec'd keeping only `kept`.
    SpawnedExec {
        /// The spawning process.
        parent: Pid,
        /// The new process.
        child: Pid,
        /// The fds the child kept.
        kept: Vec<Fd>,
    },
    /// `pid` died; its fds are closed and it is a zombie.
    Exited {
        /// The process.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },
    /// `pid` lost its parent and now belongs to init.
    Reparented {
        /// The orphan.
        pid: Pid,
        /// The parent that died.
        old_parent: Pid,
    },
    /// `reaper` collected `pid`'s status; the pid is free.
    Reaped {
        /// Who reaped (init for orphans).
        reaper: Pid,
        /// The pid the reaped process had.
        pid: Pid,
        /// Its exit status.
        status: ExitStatus,
    },
    /// The innocent bystander started on a just-freed pid.
    BystanderStarted {
        /// The reused pid.
        pid: Pid,
    },
    /// A signal was delivered.
    Signal {
        /// Who sent it.
        sender: Pid,
        /// Who received it.
        target: Pid,
        /// Which signal.
        signal: Signal,
        /// The route it took.
        via: SignalVia,
        /// What it did.
        outcome: SignalOutcome,
        /// Whether the target was the bystander (a violation).
        bystander: bool,
    },
    /// `pid` started `thread`.
    ThreadSpawned {
        /// The process.
        pid: Pid,
        /// The new thread.
        thread: ThreadId,
    },
    /// `thread` of `pid` ended.
    ThreadExited {
        /// The process.
        pid: Pid,
        /// The thread.
        thread: ThreadId,
    },
    /// `thread` tried a lock whose holder does not exist in its process.
    LockWedged {
        /// The process.
        pid: Pid,
        /// The thread that would wait forever.
        thread: ThreadId,
        /// The lock.
        lock: LockId,
        /// The missing holder.
        holder: ThreadId,
    },
    /// `pid` created a socketpair.
    SocketPair {
        /// The process.
        pid: Pid,
        /// The two ends.
        fds: [Fd; 2],
    },
    /// `pid` created a pipe.
    Pipe {
        /// The process.
        pid: Pid,
        /// The read end.
        read: Fd,
        /// The write end.
        write: Fd,
        /// Its capacity in bytes.
        capacity: usize,
    },
    /// `pid` opened a pidfd on `target`.
    PidfdOpened {
        /// The process.
        pid: Pid,
        /// The new fd.
        fd: Fd,
        /// The process it names.
        target: Pid,
    },
    /// `pid` shut down a socket end.
    Shutdown {
        /// The process.
        pid: Pid,
        /// The socket end.
        fd: Fd,
        /// Which direction(s).
        how: Shutdown,
    },
    /// The last fd referring to `object` was closed (explicitly or by exit): it is gone.
    Released {
        /// The process that closed the last copy.
        pid: Pid,
        /// That copy's fd number.
        fd: Fd,
        /// The object freed.
        object: ObjectId,
        /// What it was.
        kind: FdKind,
    },
    /// `from` passed a copy of its `fd` to `to`, where it is `new` (SCM_RIGHTS).
    Passed {
        /// The sender.
        from: Pid,
        /// The sender's fd.
        fd: Fd,
        /// The receiver.
        to: Pid,
        /// The receiver's new fd.
        new: Fd,
    },
    /// `owner`'s deadline fired at `at`.
    DeadlineFired {
        /// Whose deadline.
        owner: DeadlineOwner,
        /// The time it fired (the clock's new `now`).
        at: Timestamp,
    },
}

impl fmt::Display for KernelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelEvent::Forked {
                parent,
                thread,
                child,
            } => {
                write!(f, "{parent} fork ({thread}) -> {child}")
            }
            KernelEvent::SpawnedExec {
                parent,
                child,
                kept,
            } => {
                write!(f, "{parent} spawn+exec -> {child} keeping {}", FdList(kept))
            }
            KernelEvent::Exited { pid, status } => write!(f, "{pid} exited: {status}"),
            KernelEvent::Reparented { pid, old_parent } => {
                write!(f, "{pid} reparented to init ({old_parent} died)")
            }
            KernelEvent::Reaped {
                reaper: Pid::INIT,
                pid,
                status,
            } => {
                write!(f, "init reaped {pid} ({status})")
            }
            KernelEvent::Reaped {
                reaper,
                pid,
                status,
            } => {
                write!(f, "{reaper} reaped {pid} ({status})")
            }
            KernelEvent::BystanderStarted { pid } => {
                write!(f, "bystander started on reused {pid}")
            }
            KernelEvent::Signal {
                sender,
                target,
                signal,
                via,
                outcome,
                bystander,
            } => {
                match via {
                    SignalVia::Kill => write!(f, "{sender} kill({target}, {signal})")?,
                    SignalVia::Killpg { pgid } => {
                        write!(
                            f,
                            "{sender} killpg(group {}, {signal}) reached {target}",
                            pgid.0
                        )?;
                    }
                    SignalVia::Pidfd => {
                        write!(f, "{sender} pidfd_send_signal({target}, {signal})")?
                    }
                    SignalVia::ParentDeath => {
                        write!(f, "{sender} parent-death {signal} to {target}")?;
                    }
                }
                let hit = if *bystander { " hit bystander" } else { "" };
                write!(f, "{hit}: {outcome}")
            }
            other => fmt_resource_event(other, f),
        }
    }
}

/// The lines for thread, lock, fd and timer events.
fn fmt_resource_event(event: &KernelEvent, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match event {
        KernelEvent::ThreadSpawned { pid, thread } => write!(f, "{pid} spawned {thread}"),
        KernelEvent::ThreadExited { pid, thread } => write!(f, "{pid} {thread} exited"),
        KernelEvent::LockWedged {
            pid,
            thread,
            lock,
            holder,
        } => write!(
            f,
            "{pid} {thread} wedged on {lock}: held by {holder}, which does not exist here"
        ),
        KernelEvent::SocketPair { pid, fds: [a, b] } => write!(f, "{pid} socketpair -> {a}, {b}"),
        KernelEvent::Pipe {
            pid,
            read,
            write,
            capacity,
        } => {
            write!(
                f,
                "{pid} pipe({capacity} bytes) -> read {read}, write {write}"
            )
        }
        KernelEvent::PidfdOpened { pid, fd, target } => {
            write!(f, "{pid} pidfd_open({target}) -> {fd}")
        }
        KernelEvent::Shutdown { pid, fd, how } => write!(f, "{pid} shutdown({fd}, {how:?})"),
        KernelEvent::Released {
            pid,
            fd,
            object,
            kind,
        } => {
            write!(
                f,
                "{pid} closed the last copy of {object} ({kind:?}) at {fd}"
            )
        }
        KernelEvent::Passed { from, fd, to, new } => {
            write!(f, "{from} passed {fd} to {to} as {new} (SCM_RIGHTS)")
        }
        KernelEvent::DeadlineFired { owner, at } => write!(f, "at {at}: {owner} fired"),
        other => write!(f, "{other:?}"),
    }
}

/// Formats a list of fds as `[fd 3, fd 4]`.
struct FdList<'a>(&'a [Fd]);

impl fmt::Display for FdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, fd) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{fd}")?;
        }
        f.write_str("]")
    }
}

/// The bounded event log.
///
/// The log is history, not state: every two logs compare equal and hash alike, so two
/// kernels that reached the same state by different paths are the same state to a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventLog {
    events: VecDeque<KernelEvent>,
    dropped: u64,
    max: usize,
}

impl EventLog {
    /// An empty log keeping at most `max` events (0 keeps none).
    pub(crate) fn new(max: usize) -> Self {
        EventLog {
            events: VecDeque::new(),
            dropped: 0,
            max,
        }
    }

    /// Appends `event`, dropping the oldest one if the log is full.
    pub(crate) fn push(&mut self, event: KernelEvent) {
        if self.max == 0 {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        if self.events.len() >= self.max {
            self.events.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }

    /// The events kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &KernelEvent> {
        self.events.iter()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many older events were dropped to respect the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl PartialEq for EventLog {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for EventLog {}

impl Hash for EventLog {
    fn hash<H: Hasher>(&self, _state: &mut H) {}
}

impl fmt::Display for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dropped > 0 {
            writeln!(f, "({} earlier events dropped)", self.dropped)?;
        }
        for event in &self.events {
            writeln!(f, "{event}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn the_log_keeps_the_newest_events_and_counts_the_rest() {
        let mut log = EventLog::new(2);
        for pid in 2..6 {
            log.push(KernelEvent::BystanderStarted { pid: Pid(pid) });
        }
        assert_eq!(log.len(), 2);
        assert_eq!(log.dropped(), 2);
        assert_eq!(
            log.to_string(),
            "(2 earlier events dropped)\nbystander started on reused pid 4\n\
             bystander started on reused pid 5\n"
        );
        let mut none = EventLog::new(0);
        none.push(KernelEvent::BystanderStarted { pid: Pid(2) });
        assert!(none.is_empty());
        assert_eq!(none.dropped(), 1);
    }

    #[test]
    fn events_read_as_one_line_each() {
        let kill = KernelEvent::Signal {
            sender: Pid(2),
            target: Pid(5),
            signal: Signal::Kill,
            via: SignalVia::Kill,
            outcome: SignalOutcome::Killed,
            bystander: true,
        };
        assert_eq!(
            kill.to_string(),
            "pid 2 kill(pid 5, SIGKILL) hit bystander: killed"
        );
        let fork = KernelEvent::Forked {
            parent: Pid(3),
            thread: ThreadId(4),
            child: Pid(4),
        };
        assert_eq!(fork.to_string(), "pid 3 fork (thread 4) -> pid 4");
        let reap = KernelEvent::Reaped {
            reaper: Pid::INIT,
            pid: Pid(4),
            status: ExitStatus::Exited(0),
        };
        assert_eq!(reap.to_string(), "init reaped pid 4 (exit 0)");
    }
}
