//! Checkers, scenarios and tools for harrow's protocol.
//!
//! - [`scenario`]: test cases as data.
//! - [`world`]: the pure world, where the protocol runs with scripted actors and no threads.
//! - [`run`]: runs a world to its end and checks the properties of DESIGN.md.
//! - [`table`]: the child lifecycle's state × input table and dot graph.
//! - [`generate`]: proptest strategies over scenarios, and how a generated one runs.
//! - [`corpus`]: the regression corpus: entries, replay, and how entries are made.

extern crate alloc;

pub mod check;
pub mod corpus;
pub mod engine;
pub mod explicit;
pub mod flaws;
pub mod generate;
pub mod kernel;
pub mod platform;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod table;
pub mod world;
