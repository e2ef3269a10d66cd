//! The SIGINT self-pipe (FLAWS.md F11): a full pipe drops wake bytes, never a signal; the
//! signal is a level flag, not a count.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::Test;
use harrow_real::sys::{SignalPipe, wait_readable};
use signal_hook::low_level::raise;

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "a_full_pipe_never_loses_a_sigint",
            run: a_full_pipe_never_loses_a_sigint,
        },
        Test {
            name: "signals_are_a_level_not_a_count",
            run: signals_are_a_level_not_a_count,
        },
    ])
}

/// Shrinks the pipe to one page, fills it with wake bytes, then raises once more (that
/// write is dropped): the signal is still seen. After the take, the pipe is empty and
/// nothing is pending; a later signal is seen again.
fn a_full_pipe_never_loses_a_sigint() {
    let pipe = SignalPipe::sigint().unwrap();
    let capacity = pipe.set_pipe_capacity(4096).unwrap();
    for _ in 0..capacity {
        raise(libc::SIGINT).unwrap();
    }
    raise(libc::SIGINT).unwrap(); // the pipe is full: this wake byte is dropped
    assert!(wait_readable(pipe.wake_fd(), Some(Duration::ZERO)).unwrap());
    assert!(
        pipe.take_pending().unwrap(),
        "a SIGINT was lost with the pipe full"
    );
    assert!(
        !wait_readable(pipe.wake_fd(), Some(Duration::ZERO)).unwrap(),
        "not drained"
    );
    assert!(!pipe.take_pending().unwrap());

    raise(libc::SIGINT).unwrap();
    assert!(wait_readable(pipe.wake_fd(), Some(Duration::ZERO)).unwrap());
    assert!(pipe.take_pending().unwrap());
    pipe.uninstall();
}

/// Three signals before a take are one pending flag; none is left over for the next take.
fn signals_are_a_level_not_a_count() {
    let pipe = SignalPipe::sigint().unwrap();
    for _ in 0..3 {
        raise(libc::SIGINT).unwrap();
    }
    assert!(pipe.take_pending().unwrap());
    assert!(!pipe.take_pending().unwrap());
    drop(pipe);
}
