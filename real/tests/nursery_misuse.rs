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
    common::main(&[
        Test {
            name: "bug_result_on_daemon_waits_forever",
            run: bug_result_on_daemon_waits_forever,
        },
        Test {
            name: "bug_unknown_actor_tears_nursery_down",
            run: bug_unknown_actor_tears_nursery_down,
        },
    ])
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

/// A mistyped actor name is refused as that spawn's error, naming the unknown actor and the
/// registered ones; the nursery stays open and its other children keep serving.
///
/// What went wrong: the name was first looked up in the child, which exited with
/// `UNKNOWN_ACTOR_EXIT` before its handshake; the parent saw a boot failure ("check the spawn
/// method and system limits") and, one cancelling all, tore the whole nursery down. The fix:
/// every spawn method runs this same program with the same registry, so `start_with` looks the
/// name up in the parent's registry and refuses the spawn before anything starts.
fn bug_unknown_actor_tears_nursery_down() {
    let mut n = open(SpawnMethod::ForkServer);
    let sibling = n.spawn("sibling", DOUBLE).expect("spawn the sibling");
    let err = n
        .spawn("typo", "doubel")
        .expect_err("an unregistered actor cannot be spawned");
    let message = err.to_string();
    assert!(
        matches!(&err, Error::UnknownActor { actor, known }
            if actor == "doubel" && known == &[DOUBLE.to_string()]),
        "{err:?}: {message}"
    );
    assert!(
        message.contains("`doubel`") && message.contains("`double`"),
        "{message}"
    );
    let doubled: u64 = n
        .request(sibling, &21u64)
        .expect("the sibling still serves");
    assert_eq!(doubled, 42);
    let again = n.spawn("again", DOUBLE).expect("the nursery still spawns");
    let doubled: u64 = n.request(again, &4u64).expect("the new child serves");
    assert_eq!(doubled, 8);
    let report = n.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
