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
pub use os::SimOs;
pub use world::{CtxState, EnvAction, Shared, SimConfig, SimWorld, ThreadCtx};

use crate::kernel::{Fd, LockId};

/// The fd a child finds its parent channel on.
pub const CHANNEL_FD: Fd = Fd(3);

/// A lock every allocation takes: models malloc's arena lock, which fork copies as it is.
pub const ALLOC_LOCK: LockId = LockId(0);

/// A lock thread actors hold while their code runs: models tractor's shared GIL.
pub const ACTOR_LOCK: LockId = LockId(1);

/// The deadline slot of a process's own driver.
pub const DRIVER_SLOT: u32 = 0;
