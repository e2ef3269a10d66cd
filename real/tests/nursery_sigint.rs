//! A nursery that handles SIGINT leaves its host's SIGINT disposition as it found it: a host
//! that ignores SIGINT, or handles it itself (by `sigaction`, or through signal-hook's
//! registry as tokio's signal driver does), before or after the nursery, still does so once
//! every nursery is gone; and until `teardown` returns, SIGINT never kills the host.
//!
//! Each case runs in a re-executed copy of this binary (a "host"), which a wrong disposition
//! kills; the test reads how it ended. A host reports a broken expectation by its exit code
//! and a line on stderr.

mod common;

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{MUST, Test, recv_n, send};
use harrow_real::sys::{self, ChildProcess, ExitStatus, Pid, Pidfd, ReapOutcome, Signal};
use harrow_real::{Nursery, NurseryConfig, Registry, SpawnMethod};

const DOUBLE: &str = "double";

/// The exit code of a host whose SIGINT disposition after the nursery is not the one it set.
const DISPOSITION_CHANGED: u8 = 3;
/// The exit code of a host whose own handler did not see the SIGINT.
const HANDLER_MISSED: u8 = 4;
/// The exit code of a host whose nursery failed.
const NURSERY_FAILED: u8 = 5;

fn registry() -> Registry {
    Registry::new().handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    if let Some(role) = sys::inherited_role() {
        return host(&role);
    }
    common::main(&[
        Test {
            name: "bug_sigint_after_nursery_kills_host_that_ignores_it",
            run: bug_sigint_after_nursery_kills_host_that_ignores_it,
        },
        Test {
            name: "bug_sigint_after_nursery_kills_host_that_handles_it",
            run: bug_sigint_after_nursery_kills_host_that_handles_it,
        },
        Test {
            name: "bug_sigint_during_forkserver_drop_kills_host",
            run: bug_sigint_during_forkserver_drop_kills_host,
        },
        Test {
            name: "sigint_kills_a_default_host_again_once_its_nursery_is_gone",
            run: sigint_kills_a_default_host_again_once_its_nursery_is_gone,
        },
    ])
}

/// Runs host `role` in a fresh process and returns how it ended.
fn run_host(role: &str) -> ExitStatus {
    let (_ours, theirs) = sys::channel_pair().unwrap();
    let mut host = sys::exec_self(role, &[], theirs).unwrap();
    match host.wait_timeout(Some(MUST)).unwrap() {
        ReapOutcome::Reaped(status) => status,
        ReapOutcome::Running => panic!("host `{role}` neither died nor exited within {MUST:?}"),
    }
}

fn expect_host(role: &str, expected: ExitStatus) {
    let status = run_host(role);
    assert_eq!(status, expected, "host `{role}`");
}

/// A host that set SIGINT to be ignored survives a SIGINT after a nursery came and went, and
/// its disposition is still "ignore"; also with two nurseries whose lives overlap.
///
/// What went wrong: signal-hook's registry never removes its dispatcher, so the backend
/// registered a "default action while no nursery watches" that terminated on SIGINT whatever
/// the host had set. The fix: harrow's own handler keeps the disposition it found and puts it
/// back when the last nursery is gone.
fn bug_sigint_after_nursery_kills_host_that_ignores_it() {
    expect_host("ignores", ExitStatus::Exited(0));
    expect_host("ignores-overlapping", ExitStatus::Exited(0));
}

/// A host that handles SIGINT itself still gets it after a nursery came and went, and does
/// not die of it: its handler installed by `sigaction` before the nursery, or through
/// signal-hook's registry (the one tokio's `signal::ctrl_c` uses) before the nursery, or while
/// it lives; or by `sigaction` while it lives (over the nursery's handler).
///
/// What went wrong, and the fix: as for the ignoring host. A handler registered while a
/// nursery lives is installed over harrow's; harrow's then stays underneath, watching
/// nothing, and passes the signal on as the host would have seen it without a nursery.
fn bug_sigint_after_nursery_kills_host_that_handles_it() {
    for role in [
        "handles-by-sigaction-before",
        "handles-by-registry-before",
        "handles-by-registry-meanwhile",
        "handles-by-sigaction-meanwhile",
    ] {
        expect_host(role, ExitStatus::Exited(0));
    }
}

/// The other side of the contract: a host that left SIGINT at its default dies of a SIGINT
/// once its last nursery is gone, as it would have without one.
fn sigint_kills_a_default_host_again_once_its_nursery_is_gone() {
    expect_host("default", ExitStatus::Signaled(libc::SIGINT));
}

/// How many storms `bug_sigint_during_forkserver_drop_kills_host` raises.
const STORMS: usize = 20;
/// The pause between two SIGINTs of a storm.
const STORM_PAUSE: Duration = Duration::from_micros(50);

/// A `ForkServer` nursery's host, SIGINT at its default, gets a storm of SIGINTs while it
/// tears down, until its fork server is gone; it must survive and exit 0.
///
/// Each SIGINT is sent while the host is stopped (`SIGSTOP`, and the test waits until it is)
/// and its fork server has not exited: so the host has not reaped the server, and its
/// `teardown()` has not returned; once continued, the host takes the SIGINT before running
/// anything else. What went wrong: `RealOs` removed the handler first and then dropped its
/// fork server, whose drop waits for the server to exit; a SIGINT in that wait found SIGINT's
/// default action and killed the host inside `teardown()` (the issue saw 3 of 20 storms).
/// The fix: the fork server and the children go first, the handler last.
fn bug_sigint_during_forkserver_drop_kills_host() {
    for storm in 0..STORMS {
        let (ours, theirs) = sys::channel_pair().unwrap();
        let mut host = sys::exec_self("storm", &[], theirs).unwrap();
        let server = i32::from_le_bytes(recv_n(ours.as_fd(), 4).try_into().unwrap());
        // The host waits for our go before its teardown reaps the server: its pid is safe.
        let server = Pidfd::open(Pid::from_raw(server).unwrap()).unwrap();
        // One SIGINT before the go, so that every storm has at least one.
        assert!(
            sigint_while_stopped(&host, &server),
            "the server is gone early"
        );
        let mut sent = 1;
        send(ours.as_fd(), b"g");
        let deadline = Instant::now() + MUST;
        while sigint_while_stopped(&host, &server) {
            assert!(
                Instant::now() < deadline,
                "the fork server outlived {MUST:?}"
            );
            sent += 1;
            std::thread::sleep(STORM_PAUSE);
        }
        let status = match host.wait_timeout(Some(MUST)).unwrap() {
            ReapOutcome::Reaped(status) => status,
            ReapOutcome::Running => panic!("the host did not exit within {MUST:?}"),
        };
        assert_eq!(
            status,
            ExitStatus::Exited(0),
            "storm {storm}: the host died of {sent} SIGINTs sent while its fork server lived"
        );
    }
}

/// Stops `host`, and if `server` has not exited, sends the host a SIGINT; continues it.
/// Returns whether the server was still there (false too once the host is gone: it is left
/// unreaped, for the caller to read how it ended).
fn sigint_while_stopped(host: &ChildProcess, server: &Pidfd) -> bool {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let _ = host.signal(Signal::STOP).unwrap();
    let options = WaitIdOptions::STOPPED | WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    let state = waitid(WaitId::PidFd(host.pidfd().as_fd()), options);
    let state = state.unwrap().expect("a blocking waitid reports a state");
    if !state.stopped() {
        return false;
    }
    let alive = !server.wait_exited(Some(Duration::ZERO)).unwrap();
    if alive {
        let _ = host.signal(Signal::INT).unwrap();
    }
    let _ = host.signal(Signal::CONT).unwrap();
    alive
}

// ---------------------------------------------------------------------------------------
// The hosts.

fn host(role: &str) -> ExitCode {
    let outcome = match role {
        "ignores" => ignoring_host(false),
        "ignores-overlapping" => ignoring_host(true),
        "handles-by-sigaction-before" => handling_host(Handler::Sigaction, true),
        "handles-by-registry-before" => handling_host(Handler::Registry, true),
        "handles-by-registry-meanwhile" => handling_host(Handler::Registry, false),
        "handles-by-sigaction-meanwhile" => handling_host(Handler::Sigaction, false),
        "default" => default_host(),
        "storm" => storm_host(),
        other => Err((2, format!("no host role `{other}`"))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, why)) => {
            eprintln!("host `{role}`: {why}");
            ExitCode::from(code)
        }
    }
}

type HostResult = Result<(), (u8, String)>;

/// A nursery that handles SIGINT, with one child that answered a request.
fn busy_nursery(method: SpawnMethod) -> Result<Nursery, (u8, String)> {
    let failed = |e: harrow_real::Error| (NURSERY_FAILED, e.to_string());
    let mut n = Nursery::open_with(
        NurseryConfig::default()
            .with_method(method)
            .with_handle_sigint(true),
    )
    .map_err(failed)?;
    let child = n.spawn("doubler", DOUBLE).map_err(failed)?;
    let four: u64 = n.request(child, &2u64).map_err(failed)?;
    if four != 4 {
        return Err((NURSERY_FAILED, format!("2 doubled is {four}")));
    }
    Ok(n)
}

fn teardown(n: Nursery) -> HostResult {
    let report = n.teardown();
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err((NURSERY_FAILED, format!("teardown: {:?}", report.errors)))
    }
}

/// The SIGINT handler address installed now (`SIG_DFL` is 0, `SIG_IGN` 1).
fn sigint_handler() -> usize {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query only (no new action); `old` is valid for writes.
    let r = unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) };
    assert_eq!(r, 0, "sigaction query");
    old.sa_sigaction
}

fn set_sigint_handler(handler: usize) {
    // SAFETY: an all-zero sigaction is a valid value (no flags, empty mask).
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler;
    // SAFETY: installs SIG_IGN or `count_sigint`, which only touches an atomic.
    let r = unsafe { libc::sigaction(libc::SIGINT, &new, std::ptr::null_mut()) };
    assert_eq!(r, 0, "sigaction");
}

fn expect_disposition(expected: usize) -> HostResult {
    let now = sigint_handler();
    if now == expected {
        Ok(())
    } else {
        let why = format!("SIGINT's handler is {now:#x}, the host had set {expected:#x}");
        Err((DISPOSITION_CHANGED, why))
    }
}

fn raise_sigint() {
    signal_hook::low_level::raise(libc::SIGINT).expect("raise");
}

fn ignoring_host(overlapping: bool) -> HostResult {
    set_sigint_handler(libc::SIG_IGN);
    let first = busy_nursery(SpawnMethod::ForkServer)?;
    if overlapping {
        // A second nursery on another thread outlives the first.
        let second = std::thread::scope(|s| s.spawn(|| busy_nursery(SpawnMethod::Thread)).join());
        let second = second.map_err(|_| (NURSERY_FAILED, "the thread panicked".to_string()))??;
        teardown(first)?;
        teardown(second)?;
    } else {
        teardown(first)?;
    }
    raise_sigint();
    expect_disposition(libc::SIG_IGN)
}

/// How a handling host installs its handler.
#[derive(Clone, Copy, PartialEq)]
enum Handler {
    Sigaction,
    Registry,
}

static SIGACTION_HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigint(_: libc::c_int) {
    SIGACTION_HITS.fetch_add(1, Ordering::SeqCst);
}

fn handling_host(how: Handler, before: bool) -> HostResult {
    let seen = Arc::new(AtomicBool::new(false));
    let install = || -> Result<usize, (u8, String)> {
        match how {
            Handler::Sigaction => set_sigint_handler(count_sigint as *const () as usize),
            Handler::Registry => {
                signal_hook::flag::register(libc::SIGINT, Arc::clone(&seen))
                    .map_err(|e| (2, format!("register: {e}")))?;
            }
        }
        Ok(sigint_handler())
    };
    let expected = if before { Some(install()?) } else { None };
    let n = busy_nursery(SpawnMethod::ForkServer)?;
    let expected = match expected {
        Some(handler) => handler,
        None => install()?,
    };
    teardown(n)?;
    raise_sigint();
    let hit = match how {
        Handler::Sigaction => SIGACTION_HITS.load(Ordering::SeqCst) > 0,
        Handler::Registry => seen.load(Ordering::SeqCst),
    };
    if !hit {
        return Err((
            HANDLER_MISSED,
            "the host's handler missed the SIGINT".into(),
        ));
    }
    expect_disposition(expected)
}

fn default_host() -> HostResult {
    let n = busy_nursery(SpawnMethod::Thread)?;
    teardown(n)?;
    expect_disposition(libc::SIG_DFL)?;
    raise_sigint();
    Err((2, "still alive after a SIGINT at its default".into()))
}

/// Three children through a fork server; tells the test its server's pid, waits for the go,
/// tears down (the SIGINTs come meanwhile) and exits 0.
fn storm_host() -> HostResult {
    let channel = sys::adopt_inherited_channel().map_err(|e| (2, e.to_string()))?;
    let mut n = busy_nursery(SpawnMethod::ForkServer)?;
    for i in 0..2 {
        n.spawn(&format!("doubler{i}"), DOUBLE)
            .map_err(|e| (NURSERY_FAILED, e.to_string()))?;
    }
    let server = match common::live_children()[..] {
        [server] => server,
        ref others => return Err((2, format!("expected one child, the server: {others:?}"))),
    };
    send(channel.as_fd(), &server.to_le_bytes());
    assert_eq!(recv_n(channel.as_fd(), 1), b"g");
    // An interrupted teardown reports its cause; every child is still accounted for.
    let report = n.teardown();
    if report.children.len() == 3 {
        Ok(())
    } else {
        Err((NURSERY_FAILED, format!("report: {report:?}")))
    }
}
