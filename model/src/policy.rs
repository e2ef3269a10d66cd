//! Timeout policy and size bounds: every wait on a teardown path has one of these deadlines.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::method::SpawnMethod;

/// Every timeout the protocol applies. All are finite; [`Timeouts::validate`] enforces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timeouts {
    /// From launch to handshake; past it the child is a boot failure and is stopped hard.
    pub boot: Duration,
    /// From sending a cancel to its acknowledgement; past it the child is stopped hard.
    pub cancel_ack: Duration,
    /// From acknowledgement (or a closed channel) to process exit; past it, SIGKILL.
    pub kill_grace: Duration,
    /// The same grace for `Thread` children; past it the thread is abandoned.
    pub thread_abandon: Duration,
    /// From SIGKILL to the exit being observed; past it the child is reported unreapable.
    pub reap: Duration,
    /// From exit to the child's channel reaching end-of-file; past it our end is closed anyway.
    pub drain: Duration,
}

impl Timeouts {
    /// The longest any single timeout may be: a day. Longer is a configuration mistake.
    pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

    /// tractor's values where it has them (0.5 s ack, 1.6 s grace, 3 s thread abandon).
    pub const TRACTOR: Timeouts = Timeouts {
        boot: Duration::from_secs(10),
        cancel_ack: Duration::from_millis(500),
        kill_grace: Duration::from_millis(1600),
        thread_abandon: Duration::from_secs(3),
        reap: Duration::from_secs(5),
        drain: Duration::from_millis(500),
    };

    /// Checks that every timeout is non-zero and at most [`Timeouts::MAX`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (name, value) in self.named() {
            if value.is_zero() || value > Self::MAX {
                return Err(PolicyError { name, value });
            }
        }
        Ok(())
    }

    /// The grace after acknowledgement before a hard stop, for this spawn method.
    pub fn grace(&self, method: SpawnMethod) -> Duration {
        match method {
            SpawnMethod::Thread => self.thread_abandon,
            _ => self.kill_grace,
        }
    }

    /// The bound on one child's teardown once cancelled: ack timeout plus grace.
    pub fn teardown_bound(&self, method: SpawnMethod) -> Duration {
        self.cancel_ack + self.grace(method)
    }

    fn named(&self) -> [(&'static str, Duration); 6] {
        [
            ("boot", self.boot),
            ("cancel_ack", self.cancel_ack),
            ("kill_grace", self.kill_grace),
            ("thread_abandon", self.thread_abandon),
            ("reap", self.reap),
            ("drain", self.drain),
        ]
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::TRACTOR
    }
}

/// Size bounds on the protocol's tables and queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Children one nursery may hold at once: those spawned and not yet over. A child that
    /// is over (finished, its end known) is retired and no longer counts.
    pub max_children: u32,
    /// Requests awaiting a reply on one child's channel.
    pub max_in_flight: u32,
    /// Commands and events queued for the driver before the protocol refuses more input.
    pub max_queued: u32,
    /// Retired children whose records (and errors) are kept for inspection and the teardown
    /// report, those spawned last; older ones are only counted, by outcome.
    pub max_ended: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_children: 4096,
            max_in_flight: 256,
            max_queued: 65536,
            max_ended: 64,
        }
    }
}

/// A timeout that is zero or longer than [`Timeouts::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// Which timeout.
    pub name: &'static str,
    /// Its rejected value.
    pub value: Duration,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timeout `{}` is {:?}: every timeout must be non-zero and at most one day; \
             set a finite value",
            self.name, self.value
        )
    }
}

impl core::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn defaults_are_valid_and_zero_is_refused() {
        assert!(Timeouts::default().validate().is_ok());
        let bad = Timeouts {
            reap: Duration::ZERO,
            ..Timeouts::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.name, "reap");
        assert!(err.to_string().contains("non-zero"));
    }

    #[test]
    fn thread_children_use_the_abandon_grace() {
        let t = Timeouts::default();
        assert_eq!(t.grace(SpawnMethod::Thread), t.thread_abandon);
        assert_eq!(t.grace(SpawnMethod::Fork), t.kill_grace);
        assert_eq!(
            t.teardown_bound(SpawnMethod::Exec),
            t.cancel_ack + t.kill_grace
        );
    }
}
