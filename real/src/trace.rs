//! Trace points (feature `trace`): every nursery, and every child, writes what it gave the
//! protocol and what the operating system did, as newline-delimited JSON that
//! `harrow validate` replays against the model.
//!
//! Tracing is on when the feature is compiled in and the environment variable
//! [`DIR_VAR`] names a directory when a process opens its first nursery (a child: when it
//! starts; children inherit the environment). Each nursery writes
//! `nursery-<pid>-<n>.ndjson` there, each child `children/child-<pid>-<tid>.ndjson`. A trace holds at
//! most [`MAX_BYTES_VAR`] bytes (default [`DEFAULT_MAX_BYTES`]); the step that would pass
//! the limit writes a final `truncated` record instead, and nothing more is written.
//!
//! Without the feature the nursery's operating system is the plain `RealOs` and the
//! trace points are empty inline functions: they compile to nothing (no formatting, no branch).

/// The environment variable naming the directory traces are written to.
pub const DIR_VAR: &str = "HARROW_TRACE_DIR";
/// The environment variable bounding each trace, in bytes.
pub const MAX_BYTES_VAR: &str = "HARROW_TRACE_MAX_BYTES";
/// Each trace's size bound when [`MAX_BYTES_VAR`] is not set: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

#[cfg(all(feature = "tokio", not(feature = "trace")))]
pub(crate) use off::ChildTrace;
#[cfg(not(feature = "trace"))]
pub(crate) use off::{LoopOs, run_child, wrap};
#[cfg(all(feature = "tokio", feature = "trace"))]
pub(crate) use on::ChildTrace;
#[cfg(feature = "trace")]
pub(crate) use on::{LoopOs, run_child, wrap};

/// Without the feature: the plain operating system, and trace points that do nothing.
#[cfg(not(feature = "trace"))]
mod off {
    use harrow_model::actor::Actor;
    use harrow_model::child::ChildRuntime;
    use harrow_model::driver::{BlockingChildOs, ChildExit};
    use harrow_model::supervisor::SupervisorConfig;
    use harrow_model::trace::Record;
    #[cfg(feature = "tokio")]
    use harrow_model::trace::TracedChildEvent;

    use crate::os::RealOs;

    /// The operating system a nursery's driver runs over.
    pub(crate) type LoopOs = RealOs;

    impl RealOs {
        /// Records a step of the nursery's user: nothing, without the feature.
        #[inline(always)]
        pub(crate) fn note(&mut self, _: impl FnOnce() -> Record) {}
    }

    /// The operating system of a nursery's driver: `os` itself, without the feature.
    #[inline(always)]
    pub(crate) fn wrap(os: RealOs, _: &SupervisorConfig, _: u64) -> Result<LoopOs, String> {
        Ok(os)
    }

    /// The trace of an async child's loop: without the feature, nothing.
    #[cfg(feature = "tokio")]
    pub(crate) struct ChildTrace;

    #[cfg(feature = "tokio")]
    impl ChildTrace {
        /// Opens the trace of a child running `actor`: nothing, without the feature.
        #[inline(always)]
        pub(crate) fn open(_: &str) -> ChildTrace {
            ChildTrace
        }

        /// Records a frame the child sent: nothing.
        #[inline(always)]
        pub(crate) fn sent(&mut self, _: impl FnOnce() -> Vec<u8>) {}

        /// Records what the child's loop read: nothing.
        #[inline(always)]
        pub(crate) fn read(&mut self, _: impl FnOnce() -> TracedChildEvent) {}

        /// Records the child's exit code: nothing.
        #[inline(always)]
        pub(crate) fn exit(&mut self, _: i32) {}
    }

    /// Runs a child's loop; without the feature, [`harrow_model::driver::run_child`] itself.
    #[inline(always)]
    pub(crate) fn run_child<C: BlockingChildOs>(
        os: &mut C,
        actor: &mut Actor,
        runtime: ChildRuntime,
        max_frame: u32,
        _: &str,
    ) -> ChildExit {
        harrow_model::driver::run_child(os, actor, runtime, max_frame)
    }
}

#[cfg(feature = "trace")]
mod on;
