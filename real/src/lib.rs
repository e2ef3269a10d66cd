//! harrow's production backend: the model's protocol and driver over Linux processes.
//!
//! - [`sys`]: the system layer (channels, pidfds, fork and exec with the child prelude,
//!   descriptor passing, epoll, the signal self-pipe); the only module with `unsafe`.
//! - [`bench_baseline`]: the raw costs harrow's own figures are compared against.

#![deny(unsafe_code)]

pub mod bench_baseline;
#[allow(unsafe_code)]
pub mod sys;
