//! The harrow protocol: spawn, cancel and teardown of actors as pure state machines.
//!
//! This crate does no IO, reads no clock, starts no thread, draws no random number and
//! contains no `unsafe`; it is `no_std`. Time comes in as a [`Timestamp`] argument and the
//! next deadline goes out through `poll_deadline`. Inputs go in through `handle_*` calls;
//! what must be done comes out as commands the caller executes. The same code runs under the
//! model checkers (loom, shuttle, an explicit-state search, proptest) and in the production
//! backend, `harrow-real`.
//!
//! - [`supervisor::Supervisor`]: the parent side, a nursery and one lifecycle per child.
//! - [`child::ChildRuntime`]: the child side, from boot to exit.
//! - [`wire`]: the messages and their length-prefixed frame codec.
//! - [`invariant`]: the safety properties, checked after every transition in debug builds.
//! - [`flaw`]: switches that put known bugs back, so the checkers can prove they find them.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod child;
pub mod driver;
pub mod error;
pub mod flaw;
pub mod id;
pub mod invariant;
pub mod method;
pub mod policy;
pub mod supervisor;
pub mod time;
pub mod wire;

pub use error::{ChildError, ChildErrorKind, ExitStatus, Initiator};
pub use flaw::{Flaw, Flaws};
pub use id::{ChildId, RequestId};
pub use method::{Situation, SpawnMethod};
pub use policy::{Limits, Timeouts};
pub use time::Timestamp;
