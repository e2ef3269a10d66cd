//! The three platforms the simulator runs on, all in one build: std, loom and shuttle.

mod loom_impl;
mod shuttle_impl;
mod std_impl;

pub use loom_impl::{Loom, LoomStdArc};
pub use shuttle_impl::Shuttle;
pub use std_impl::Std;
