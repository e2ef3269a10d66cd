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

const TRIPLE: &str = "triple";

fn registry() -> Registry {
    Registry::new()
        .handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
        .handler(TRIPLE, |n: u64| Ok::<u64, String>(n * 3))
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
        Test {
            name: "bug_handle_reaches_other_nurserys_child",
            run: bug_handle_reaches_other_nurserys_child,
        },
    ])
}

/// A nursery spawning by `method`, with SIGINT left to the test process.
fn open(method: SpawnMethod) -> Nursery {
    Nursery::open_with(
        NurseryConfig::default()
            .with_method(method)
            .with_handle_sigint(false),
    )
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
        matches!(err, Error::NoResult(c) if c == daemon.id()),
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
/// `exit::UNKNOWN_ACTOR` before its handshake; the parent saw a boot failure ("check the spawn
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
            if actor == "doubel" && known.iter().eq([DOUBLE, TRIPLE])),
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

/// A handle used on a nursery that did not spawn it is refused with `Error::OtherNursery` by
/// every call that takes one, and reaches no child.
///
/// What went wrong: a handle was only the child's number, which every nursery counts from
/// zero, so nursery B took A's first child's handle for its own first child (a different
/// actor) and sent it the request. The fix: a handle carries the identity of the nursery that
/// made it (unique in the process), and every call checks it before using the number.
fn bug_handle_reaches_other_nurserys_child() {
    let mut a = open(SpawnMethod::Thread);
    let mut b = open(SpawnMethod::Thread);
    let doubler = a.spawn("doubler", DOUBLE).expect("spawn in a");
    let tripler = b.spawn("tripler", TRIPLE).expect("spawn in b");
    let foreign = |r: Result<(), Error>, call: &str| match r {
        Err(Error::OtherNursery(c)) if c == doubler.id() => {
            let message = Error::OtherNursery(c).to_string();
            assert!(message.contains("another nursery"), "{message}");
        }
        other => panic!("{call} with a's handle on b: {other:?}"),
    };
    foreign(b.request::<u64, u64>(doubler, &5u64).map(drop), "request");
    foreign(b.result::<u64>(doubler).map(drop), "result");
    foreign(b.ready(doubler), "ready");
    foreign(b.cancel(doubler), "cancel");
    foreign(b.stop(doubler), "stop");
    assert_eq!(b.pid(doubler), None);
    let tripled: u64 = b
        .request(tripler, &5u64)
        .expect("b's own child still serves");
    assert_eq!(tripled, 15);
    let doubled: u64 = a
        .request(doubler, &5u64)
        .expect("a's child serves its own nursery");
    assert_eq!(doubled, 10);
    for report in [b.teardown(), a.teardown()] {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}
