//! The SIGINT self-pipe (flaw F11): a full pipe drops wake bytes, never a signal; the
//! signal is a level flag, not a count.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use common::{MUST, Test};
use harrow_real::sys::signals::MAX_WATCHERS;
use harrow_real::sys::{self, ExitStatus, ReapOutcome, SignalPipe, SysError, wait_readable};
use signal_hook::low_level::raise;

/// The role of the re-executed child that checks SIGINT's default action comes back.
const DEFAULT_AGAIN: &str = "sigint-default-again";

fn main() -> ExitCode {
    if sys::inherited_role().as_deref() == Some(DEFAULT_AGAIN) {
        return sigint_default_again_child();
    }
    common::main(&[
        Test {
            name: "sigint_terminates_again_once_no_pipe_watches",
            run: sigint_terminates_again_once_no_pipe_watches,
        },
        Test {
            name: "a_full_pipe_never_loses_a_sigint",
            run: a_full_pipe_never_loses_a_sigint,
        },
        Test {
            name: "signals_are_a_level_not_a_count",
            run: signals_are_a_level_not_a_count,
        },
        Test {
            name: "watchers_are_bounded_and_one_too_many_is_a_typed_error",
            run: watchers_are_bounded_and_one_too_many_is_a_typed_error,
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

/// The table the handler reads is static: `MAX_WATCHERS` pipes may watch at once, one more
/// is refused with an error that says what to do; every pipe still sees the signal, and once
/// one is gone another may take its place.
fn watchers_are_bounded_and_one_too_many_is_a_typed_error() {
    let mut pipes: Vec<SignalPipe> = (0..MAX_WATCHERS)
        .map(|_| SignalPipe::sigint().unwrap())
        .collect();
    let refused = SignalPipe::sigint().unwrap_err();
    assert!(
        matches!(refused, SysError::TooManySignalWatchers { max } if max == MAX_WATCHERS),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("handle_sigint: false"),
        "{refused}"
    );
    raise(libc::SIGINT).unwrap();
    assert!(pipes.iter().all(|p| p.take_pending().unwrap()));
    pipes.pop();
    pipes.push(SignalPipe::sigint().unwrap());
    raise(libc::SIGINT).unwrap();
    assert!(pipes.iter().all(|p| p.take_pending().unwrap()));
}

/// In a fresh process: one SIGINT is caught while a pipe watches; once the pipe is dropped,
/// SIGINT's default action is back and the process dies of it (a handler that stayed
/// installed would ignore the second SIGINT silently).
fn sigint_terminates_again_once_no_pipe_watches() {
    let (_ours, theirs) = sys::channel_pair().unwrap();
    let mut child = sys::exec_self(DEFAULT_AGAIN, &[], theirs).unwrap();
    let status = match child.wait_timeout(Some(MUST)).unwrap() {
        ReapOutcome::Reaped(status) => status,
        ReapOutcome::Running => panic!("the child neither died nor exited"),
    };
    assert_eq!(
        status,
        ExitStatus::Signaled(libc::SIGINT),
        "Ctrl-C must kill once no nursery handles it"
    );
}

fn sigint_default_again_child() -> ExitCode {
    let pipe = SignalPipe::sigint().unwrap();
    raise(libc::SIGINT).unwrap();
    assert!(pipe.take_pending().unwrap(), "the first SIGINT is caught");
    drop(pipe);
    raise(libc::SIGINT).unwrap();
    // Still alive: the default action did not come back.
    ExitCode::from(0)
}
