//! Checkers, scenarios and tools for harrow's protocol.
//!
//! - [`scenario`]: test cases as data.
//! - [`world`]: the pure world, where the protocol runs with scripted actors and no threads.
//! - [`run`]: runs a world to its end and checks the properties of DESIGN.md.
//! - [`table`]: the child lifecycle's state × input table and dot graph.

pub mod check;
pub mod engine;
pub mod explicit;
pub mod flaws;
pub mod platform;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod table;
pub mod world;
