//! The lost-EOF bug (flaw F6, tractor H9), reproduced without the descriptor scrub and
//! fixed with it.
//!
//! Child A waits for end of stream on its channel. Child B is forked afterwards, while the
//! parent still holds its end of A's channel. Without the scrub B inherits that end, so when
//! the parent closes its copy A sees nothing: EOF arrives only once every copy, in every
//! process, is closed. With the scrub B closes it in its prelude and A exits at once.

mod common;

use std::process::ExitCode;

use common::{MUST, MUST_NOT, Test, exit_at_eof, reap};
use harrow_real::sys::{ExitStatus, Prelude, ReapOutcome, channel_pair, fork_child};

fn main() -> ExitCode {
    common::main(&[
        Test {
            name: "without_the_scrub_a_sibling_keeps_the_eof_from_arriving",
            run: without_the_scrub_a_sibling_keeps_the_eof_from_arriving,
        },
        Test {
            name: "with_the_scrub_the_eof_arrives_at_once",
            run: with_the_scrub_the_eof_arrives_at_once,
        },
    ])
}

/// Runs the scenario with B forked under `prelude`; returns whether A exited within
/// `MUST_NOT` of the parent closing its end of A's channel. Leaves nothing behind.
fn a_sees_eof_in_time(prelude: Prelude) -> bool {
    // Keep descriptor 3 busy: otherwise our end of A's channel would sit there, and B's
    // move of its own channel onto 3 would close B's copy of it by accident.
    let _placeholder = std::fs::File::open("/dev/null").unwrap();
    let (a_ours, a_theirs) = channel_pair().unwrap();
    let mut a = fork_child(Prelude::STANDARD, a_theirs, exit_at_eof).unwrap();
    let (b_ours, b_theirs) = channel_pair().unwrap();
    let mut b = fork_child(prelude, b_theirs, exit_at_eof).unwrap();
    drop(a_ours);
    let in_time = matches!(
        a.wait_timeout(Some(MUST_NOT)).unwrap(),
        ReapOutcome::Reaped(_)
    );
    // Ending B closes B's copy of A's channel end: then A ends too. Unscrubbed, B also holds
    // our end of its own channel, so closing it is no EOF for B either: kill it instead.
    drop(b_ours);
    if prelude.scrub_fds {
        assert_eq!(reap(&mut b), ExitStatus::Exited(0));
    } else {
        assert_eq!(
            b.wait_timeout(Some(MUST_NOT)).unwrap(),
            ReapOutcome::Running
        );
        assert_eq!(
            b.kill_and_reap().unwrap(),
            ExitStatus::Signaled(libc::SIGKILL)
        );
    }
    assert_eq!(reap(&mut a), ExitStatus::Exited(0));
    in_time
}

/// The expected failure: with `Prelude::UNSCRUBBED_LOSES_EOF`, A waits on.
fn without_the_scrub_a_sibling_keeps_the_eof_from_arriving() {
    assert!(
        !a_sees_eof_in_time(Prelude::UNSCRUBBED_LOSES_EOF),
        "the lost EOF did not reproduce"
    );
}

/// The fix: with the standard prelude, A sees EOF well within the bound.
fn with_the_scrub_the_eof_arrives_at_once() {
    let start = std::time::Instant::now();
    assert!(
        a_sees_eof_in_time(Prelude::STANDARD),
        "A missed its EOF despite the scrub"
    );
    assert!(start.elapsed() < MUST);
}
