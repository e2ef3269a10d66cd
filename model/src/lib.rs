#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod actor;
pub mod channels;
pub mod child;
pub mod child_loop;
pub mod coverage;
pub mod driver;
pub mod error;
pub mod exit;
pub mod flaw;
pub mod id;
pub mod invariant;
pub mod method;
pub mod policy;
pub mod supervisor;
pub mod time;
pub mod trace;
pub mod wire;

pub use error::{ChildError, ChildErrorKind, ExitStatus, Initiator};
pub use flaw::{Flaw, Flaws};
pub use id::{ChildId, RequestId};
pub use method::{Situation, SpawnMethod, Uncounted};
pub use policy::{Limits, Timeouts};
pub use time::Timestamp;
