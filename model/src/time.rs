//! Protocol time: a [`Timestamp`] passed in by the caller, never read from a clock.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in protocol time: nanoseconds since an epoch the caller chooses.
///
/// The protocol never reads a clock. The real backend passes monotonic time since its
/// start; the simulators pass virtual time. Only differences and order are meaningful.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch: time zero.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp this many nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// A timestamp this many milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturates at the far future instead of overflowing: a deadline can only get later.
    fn add(self, rhs: Duration) -> Timestamp {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;

    fn sub(self, rhs: Timestamp) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000_000;
        let frac = (self.0 % 1_000_000) / 1_000;
        write!(f, "{ms}.{frac:03}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn adding_a_huge_duration_saturates() {
        let t = Timestamp::from_millis(5) + Duration::MAX;
        assert_eq!(t.as_nanos(), u64::MAX);
    }

    #[test]
    fn differences_never_go_negative() {
        let a = Timestamp::from_millis(3);
        let b = Timestamp::from_millis(7);
        assert_eq!(b - a, Duration::from_millis(4));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(b.to_string(), "7.000ms");
    }
}
