#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

/// The workspace README's examples, compiled and run as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

mod actor;
#[cfg(feature = "tokio")]
mod async_child;
#[cfg(feature = "tokio")]
mod asynk;
mod child;
#[cfg(feature = "internals")]
pub mod forkserver;
#[cfg(not(feature = "internals"))]
#[allow(unreachable_pub, dead_code, unused_imports)]
mod forkserver;
#[cfg(feature = "tokio")]
mod frame;
mod nursery;
// `os` has items that only `internals` re-exports.
#[cfg_attr(not(feature = "internals"), allow(unreachable_pub, dead_code))]
mod os;
mod spawner;
pub mod trace;
// The system layer: the only module with `unsafe`. Public only to harrow's own tools.
#[cfg(feature = "internals")]
#[allow(unsafe_code)]
pub mod sys;
#[cfg(not(feature = "internals"))]
#[allow(unsafe_code, unreachable_pub, dead_code, unused_imports)]
mod sys;

pub use actor::{Registry, decode, encode};
// The protocol's types a user meets in errors, reports and configuration.
#[cfg(feature = "tokio")]
pub use async_child::CancelToken;
#[cfg(feature = "tokio")]
pub use asynk::AsyncNursery;
pub use harrow_model::actor::{Cancel, Daemon, Task};
pub use harrow_model::error::{ChildOpError, ProtocolViolation, SpawnError};
pub use harrow_model::exit;
pub use harrow_model::supervisor::{
    ChildSummary, ForceReason, Outcome, Tally, TeardownCause, TeardownReport,
};
pub use harrow_model::wire::{FrameError, RemoteError, RemoteErrorKind, Role};
pub use harrow_model::{
    ChildError, ChildErrorKind, ChildId, ExitStatus, Initiator, Limits, RequestId, SpawnMethod,
    Timeouts, Timestamp,
};
pub use nursery::{Child, Completion, Error, Nursery, NurseryConfig, SpawnBuilder, Ticket};

use child::{ChildLimits, run_actor_as};

/// Not part of the API: what harrow's own smoke scenarios, benchmarks and tests reach into.
///
/// Present only with the non-default `internals` feature, which the `harrow` command turns
/// on and a program built on this crate never needs; nothing here is stable.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::os::RealOs;

    /// The role of a re-executed child that exits 0 as soon as `init` sees it: the raw cost
    /// of re-executing this program, the baseline of `Exec`.
    pub const ROLE_START_ONLY: &str = crate::ROLE_START_ONLY;

    /// Makes the nursery fork its children without the descriptor scrub, for the smoke
    /// scenario that shows the lost-EOF bug the scrub prevents.
    pub fn without_fd_scrub(nursery: &mut crate::Nursery) {
        nursery.os_mut().without_fd_scrub_for_the_lost_eof_demo();
    }

    /// Completions queued for `wait_any`, including those announcing what was since dropped
    /// (an answer or result dropped with its child's record): the queue's length.
    pub fn queued_completions(nursery: &crate::Nursery) -> usize {
        nursery.queued_completions()
    }

    /// Replies held for no caller plus requests whose caller gave up and whose reply has not
    /// come yet: zero whenever every answer has been claimed or dropped.
    pub fn unclaimed_replies(nursery: &crate::Nursery) -> usize {
        nursery.unclaimed_replies()
    }

    /// [`unclaimed_replies`] of an async nursery.
    #[cfg(feature = "tokio")]
    pub fn unclaimed_replies_async(nursery: &crate::AsyncNursery) -> usize {
        nursery.unclaimed_replies()
    }
}

/// The role of a re-executed child that runs an actor.
pub(crate) const ROLE_ACTOR: &str = "actor";
/// The role of a re-executed fork server.
pub(crate) const ROLE_FORK_SERVER: &str = forkserver::ROLE;
/// The role of a re-executed child that exits 0 as soon as `init` sees it: the raw cost of
/// re-executing this program, the baseline of `Exec` (`harrow::baseline::exec_self_round`).
pub(crate) const ROLE_START_ONLY: &str = "start-only";

/// Installs the program's actors; in a re-executed child, runs its role and never returns.
///
/// Call it first thing in `main`, in every program that spawns with `Exec` or `ForkServer`:
/// those re-execute the current binary, and the new process finds what to do here.
pub fn init(registry: Registry) {
    actor::install(registry);
    match sys::inherited_role().as_deref() {
        Some(ROLE_ACTOR) => {
            let mut args = std::env::args().skip(1);
            let name = args.next().unwrap_or_default();
            let code = match adopt_with_limits(args) {
                Ok((channel, limits)) => run_actor_as(&name, channel, std::process::id(), limits),
                Err(e) => {
                    eprintln!("harrow: {e}");
                    2
                }
            };
            // What the actor printed without a newline is in our buffer: flush it.
            sys::exit_flushed(code)
        }
        Some(ROLE_START_ONLY) => sys::exit_now(0),
        Some(ROLE_FORK_SERVER) => match adopt_with_limits(std::env::args().skip(1)) {
            Ok((control, limits)) => {
                child::serve_with(limits);
                forkserver::server_main(control, child::run_served_actor)
            }
            Err(e) => {
                eprintln!("harrow: {e}");
                sys::exit_now(2)
            }
        },
        _ => {}
    }
}

/// The channel a re-executed child or fork server inherited, and the limits its arguments
/// carry ([`ChildLimits::from_args`]).
fn adopt_with_limits(
    args: impl Iterator<Item = String>,
) -> Result<(std::os::fd::OwnedFd, ChildLimits), String> {
    let limits = ChildLimits::from_args(args)?;
    let channel = sys::adopt_inherited_channel().map_err(|e| e.to_string())?;
    Ok((channel, limits))
}
