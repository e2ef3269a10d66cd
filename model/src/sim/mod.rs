//! The simulated operating system: the driver's [`Os`](crate::driver::Os) over the simulated
//! kernel, on any [`Platform`](crate::platform::Platform) (std, loom, shuttle).
//!
//! A simulated process is a platform thread running a driver; a thread child is a platform
//! thread inside its parent's simulated process. Every system call takes the world's lock
//! once, so the model checker can interleave other threads between any two calls, just as a
//! real kernel would. Time moves only when the clock thread fires the earliest deadline, which
//! it may do at any point the scheduler picks; when every thread is blocked and no deadline is
//! pending, loom and shuttle report a deadlock: that is a hang.

mod child;
mod clock;
mod os;
mod world;

pub use child::{ActorFactory, SimChildOs, SimEnv};
pub use clock::clock_thread;
pub use os::{Seat, SimOs};
pub use world::{CtxState, EnvAction, Shared, SimConfig, SimProcess, SimWorld, ThreadCtx};

use crate::flaw::{Flaw, Flaws};
use crate::kernel::{Fd, LockId, ThreadId};

/// The fd a child finds its parent channel on.
pub const CHANNEL_FD: Fd = Fd(3);

/// A lock every allocation takes: models malloc's arena lock, which fork copies as it is.
pub const ALLOC_LOCK: LockId = LockId(0);

/// With flaw F12, the one lock every thread actor holds while its code runs and the event
/// loop takes too: tractor's shared GIL.
pub const ACTOR_LOCK: LockId = LockId(1);

/// The lock a thread actor holds while its code runs.
///
/// Its own: the real backend runs each thread child on an OS thread of its own and shares
/// no lock between actors, so one that never yields starves nobody. With flaw F12 it is
/// [`ACTOR_LOCK`], shared by every thread actor of the process and its event loop.
pub fn actor_lock(thread: ThreadId, flaws: Flaws) -> LockId {
    if flaws.has(Flaw::ControlPathSharesLock) {
        ACTOR_LOCK
    } else {
        // Past ALLOC_LOCK and ACTOR_LOCK; thread ids are never reused, so neither is this.
        LockId(thread.0.saturating_add(2))
    }
}

/// The deadline slot of a process's own driver.
pub const DRIVER_SLOT: u32 = 0;

/// The exit code of a child whose prelude finds its parent already gone (harrow-real's
/// `prelude_exit::PARENT_GONE`).
pub const PARENT_GONE_EXIT: i32 = 122;
