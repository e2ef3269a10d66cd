//! The `harrow` command's own library: what it runs against the real backend.
//!
//! - [`smoke`]: tractor's scenarios and the expected failures, run for real.
//! - [`mod@bench`]: each figure of the backend beside its raw baseline, measured in the same run.
//! - [`baseline`]: the raw costs those figures are compared against.
//! - [`soak`]: many spawn cycles per method, and whether anything the process holds grows.
//! - [`validate`]: real traces replayed against the model.
//! - [`fromtrace`]: a real trace turned into a corpus entry the simulator replays.
//!
//! The model checking itself lives in `harrow-sim`; `main.rs` ties both to the command line.

pub mod baseline;
pub mod bench;
pub mod fromtrace;
pub mod smoke;
pub mod soak;
pub mod validate;

/// The `harrow` command's exit statuses, the same for every subcommand.
pub mod exit {
    use std::process::ExitCode;

    /// What a run that checked something ends with: 0 when everything was as expected,
    /// 1 when something was not.
    pub fn verdict(as_expected: bool) -> ExitCode {
        if as_expected {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// 2: the command line asked for something that does not exist (a scenario, a method),
    /// or an input is stale or invalid; nothing was checked.
    pub fn usage() -> ExitCode {
        ExitCode::from(2)
    }
}
