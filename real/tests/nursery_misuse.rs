//! A nursery used the wrong way answers with a typed error at once, and stays open.
//!
//! Children are threads where the case allows it: the calls under test behave the same for
//! every spawn method, and a watchdog thread (which bounds a call that must not hang) would
//! make `Fork` refuse anyway.

mod common;

use std::process::ExitCode;
use std::sync::mpsc;

use common::{MUST, Test};
use harrow_real::{Error, Nursery, NurseryConfig, Registry, Role, SpawnMethod};

const DOUBLE: &str = "double";

fn registry() -> Registry {
    Registry::new().handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    common::main(&[Test {
        name: "bug_result_on_daemon_waits_forever",
        run: bug_result_on_daemon_waits_forever,
    }])
}

/// A nursery spawning by `method`, with SIGINT left to the test process.
fn open(method: SpawnMethod) -> Nursery {
    Nursery::open_with(NurseryConfig {
        method,
        handle_sigint: false,
        ..NurseryConfig::default()
    })
    .expect("open a nursery")
}

/// Runs `f`, ending the test process loudly if it has not returned within [`MUST`].
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (done, watched) = mpsc::channel::<()>();
    let what = what.to_owned();
    let watchdog = std::thread::spawn(move || {
        if watched.recv_timeout(MUST) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("{what} did not return within {MUST:?}");
            std::process::exit(1);
        }
    });
    let out = f();
    drop(done);
    watchdog.join().expect("the watchdog thread");
    out
}

/// `result()` on a daemon is refused at once with `Error::NoResult`, and the daemon still
/// serves.
///
/// What went wrong: `result` waited until a result arrived or the child's lifecycle ended, and
/// a daemon produces no result and ends only when cancelled, so the call never returned. The
/// fix: the child's role is in its lifecycle record, and `result` refuses a daemon up front
/// with an error saying it serves requests and naming what to call instead.
fn bug_result_on_daemon_waits_forever() {
    let mut n = open(SpawnMethod::Thread);
    let daemon = n
        .spawn_with("d", DOUBLE, SpawnMethod::Thread, Role::Daemon)
        .expect("spawn the daemon");
    let got = bounded("result() on a daemon", || n.result::<u64>(daemon));
    let err = got.expect_err("a daemon has no result");
    assert!(
        matches!(err, Error::NoResult(c) if c == daemon.0),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("serves requests") && message.contains("request()"),
        "{message}"
    );
    let doubled: u64 = n.request(daemon, &21u64).expect("the daemon still serves");
    assert_eq!(doubled, 42);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
