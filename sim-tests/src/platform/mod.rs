//! The three platforms the simulator runs on, all in one build: std, loom and shuttle.

mod loom_impl;
mod std_impl;

pub use loom_impl::{Loom, LoomStdArc};
pub use std_impl::{Shuttle, Std};
