//! The exit codes of a child, named once for every backend and the simulator.
//!
//! The parent learns a child's end from its channel and its exit status; these codes make a
//! status say why a child ended when the channel could not. A thread child returns the same
//! code from its body.

/// The child ended as the protocol asked: it acknowledged a cancel, or its parent's end of
/// stream, or delivered its result.
pub const CLEAN: i32 = 0;

/// Its actor failed; the failure was sent to the parent before the exit.
pub const ACTOR_FAILED: i32 = 1;

/// The protocol broke down in the child: its runtime could not start, or the parent sent
/// something it cannot take.
pub const PROTOCOL_ERROR: i32 = 2;

/// The child was asked to run an actor its program does not register.
pub const UNKNOWN_ACTOR: i32 = 3;

/// Its body panicked: Rust's own exit code for a panicking `main`.
pub const PANIC: i32 = 101;

/// The child's driver saw itself killed while running: 128 + SIGKILL, as a shell reports a
/// killed process. Only a thread child returns it; a killed process reports its signal.
pub const KILLED: i32 = 137;

/// A forked or re-executed child whose prelude failed before any actor code ran.
pub mod prelude {
    /// Moving the channel to the fixed descriptor failed.
    pub const PLACE_CHANNEL: i32 = 120;
    /// Closing every other inherited descriptor (`close_range`) failed.
    pub const SCRUB_FDS: i32 = 121;
    /// The parent died before the child's parent-death signal was armed: the child ends
    /// instead of running as an orphan.
    pub const PARENT_GONE: i32 = 122;
    /// Moving into its own process group (`setpgid(0, 0)`) failed.
    pub const OWN_GROUP: i32 = 123;
    /// Arming the parent-death signal (`prctl(PR_SET_PDEATHSIG)`) failed.
    pub const DEATH_SIGNAL: i32 = 124;
    /// Emptying the signal mask failed.
    pub const SIGNAL_MASK: i32 = 125;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is distinct, so a status names one reason.
    #[test]
    fn codes_are_distinct() {
        let mut codes = [
            CLEAN,
            ACTOR_FAILED,
            PROTOCOL_ERROR,
            UNKNOWN_ACTOR,
            PANIC,
            KILLED,
            prelude::PLACE_CHANNEL,
            prelude::SCRUB_FDS,
            prelude::PARENT_GONE,
            prelude::OWN_GROUP,
            prelude::DEATH_SIGNAL,
            prelude::SIGNAL_MASK,
        ];
        codes.sort_unstable();
        let len = codes.len();
        let mut unique = codes.to_vec();
        unique.dedup();
        assert_eq!(unique.len(), len, "{codes:?}");
    }
}
