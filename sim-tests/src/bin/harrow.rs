//! The `harrow` command.
fn main() {}
