//! The `harrow` command's own library: what it runs against the real backend.
//!
//! - [`smoke`]: tractor's scenarios and the expected failures, run for real.
//! - [`mod@bench`]: each figure of the backend beside its raw baseline, measured in the same run.
//! - [`baseline`]: the raw costs those figures are compared against.
//! - [`soak`]: many spawn cycles per method, and whether anything the process holds grows.
//!
//! The model checking itself lives in `harrow-sim`; `main.rs` ties both to the command line.

pub mod baseline;
pub mod bench;
pub mod smoke;
pub mod soak;
