#![doc = include_str!("../README.md")]

extern crate alloc;

pub mod accounts;
pub mod check;
pub mod corpus;
pub mod coverage;
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
pub mod user;
pub mod wide;
pub mod world;
