//! tractor's scenarios through the async nursery (feature `tokio`), for every spawn method
//! each applies to: the happy teardown, a child that never yields, 25 erroring children, a
//! grandchild asleep when its parent is cancelled (and that parent killed mid-teardown), a
//! child that dies during boot, and SIGINT during a teardown. Each asserts what the blocking
//! scenario of the same name in `harrow smoke` asserts: the report's cause, outcomes and
//! errors, its duration against the protocol's bound (the report's own clock), and that no
//! process we started is left in `/proc`.
//!
//! `Fork` runs on a current-thread runtime (the process must stay single-threaded);
//! `ForkServer` and `Exec` on a multi-thread runtime; `Thread` on a current-thread runtime.
//! Every test runs on the main thread (this harness), which checks afterwards that no child
//! process and no descriptor was left behind. SIGINT is sent to the test process itself,
//! whose nursery handles it (the blocking scenario runs its nursery in a parent process).

mod common;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{MUST, Test};
use harrow_real::sys;
use harrow_real::{
    AsyncNursery, Cancel, Child, ChildErrorKind, ChildSummary, Daemon, Error, ExitStatus,
    ForceReason, Nursery, NurseryConfig, Outcome, Registry, RemoteError, RemoteErrorKind,
    RequestId, Role, SpawnMethod, TeardownCause, TeardownReport, Timeouts, encode,
};
use tokio::runtime::{Builder, Runtime};
use tokio_test::assert_pending;
use tokio_test::task::spawn;

/// A daemon that doubles numbers.
const DOUBLE: &str = "double";
/// A run-to-result actor whose main fails.
const FAILS: &str = "fails";
/// A daemon whose start never returns (until released, in a thread child).
const STUCK: &str = "stuck";
/// A daemon whose start sits in a blocking sleep for a minute.
const SLEEPER: &str = "sleeper";
/// A daemon that opens its own (blocking) nursery with a sleeper in it.
const MIDDLE: &str = "middle";
/// An actor whose maker exits the process with [`BOOT_EXIT_CODE`].
const BOOT_EXITS: &str = "boot-exits";
/// An actor whose maker panics (the thread child's way to die during boot).
const BOOT_PANICS: &str = "boot-panics";

/// The worker threads of a multi-thread runtime.
const WORKERS: usize = 2;
/// The exit code of [`BOOT_EXITS`].
const BOOT_EXIT_CODE: i32 = 7;
/// How many children the multi-error scenario starts.
const ERRORERS: usize = 25;

/// Bumped to release stuck actors on threads of this process (process children, which
/// have their own copy, stay stuck until killed).
static RELEASE: AtomicU64 = AtomicU64::new(0);

fn registry() -> Registry {
    Registry::new()
        .handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
        .main(FAILS, || Err::<(), String>("assertion failed: 0".into()))
        .daemon(STUCK, || Stuck)
        .daemon(SLEEPER, || Sleeper)
        .daemon(MIDDLE, Middle::default)
        .daemon(BOOT_EXITS, || -> Stuck { sys::exit_now(BOOT_EXIT_CODE) })
        .daemon(BOOT_PANICS, || -> Stuck {
            panic!("this actor fails on purpose before its handshake")
        })
}

/// Never yields: its start waits for a release that only a thread child can get.
struct Stuck;

impl Daemon for Stuck {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        let generation = RELEASE.load(Ordering::SeqCst);
        while RELEASE.load(Ordering::SeqCst) == generation {
            std::thread::sleep(ms(5));
        }
        Ok(())
    }

    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::refused("the stuck actor takes no requests"))
    }
}

/// Sits in a blocking sleep in its start (a process child only: the middle forks it).
struct Sleeper;

impl Daemon for Sleeper {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    }

    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::refused("the sleeper takes no requests"))
    }
}

/// The middle of a three-level tree: opens its own nursery in `start`, spawns a sleeper in
/// it, answers any request with the sleeper's pid, and tears its nursery down when cancelled.
#[derive(Default)]
struct Middle {
    nursery: Option<Nursery>,
    sleeper_pid: Option<i32>,
}

impl Daemon for Middle {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        let fail = |what: &str, e: Error| RemoteError::error(format!("{what}: {e}"));
        // A forked, served or re-executed child is single-threaded: Fork is allowed. A thread
        // child shares this multi-threaded process: there, the fork server.
        let method = match sys::thread_count() {
            Ok(1) => SpawnMethod::Fork,
            _ => SpawnMethod::ForkServer,
        };
        let timeouts = Timeouts {
            cancel_ack: ms(200),
            kill_grace: ms(300),
            thread_abandon: ms(300),
            ..Timeouts::TRACTOR
        };
        let mut nursery =
            Nursery::open_with(config(method, timeouts)).map_err(|e| fail("open", e))?;
        let sleeper = nursery
            .spawn("grandchild", SLEEPER)
            .map_err(|e| fail("spawn the sleeper", e))?;
        self.sleeper_pid = nursery.pid(sleeper);
        self.nursery = Some(nursery);
        Ok(())
    }

    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        let pid = self
            .sleeper_pid
            .ok_or_else(|| RemoteError::refused("no sleeper"))?;
        encode(&pid).map_err(RemoteError::refused)
    }

    fn supervises(&self) -> bool {
        true
    }

    fn teardown_subtree(&mut self) {
        if let Some(nursery) = self.nursery.take() {
            let _ = nursery.teardown();
        }
    }
}

/// One test per method in `[...]`, named `<scenario>_<method>`, that runs `$run(method)`.
macro_rules! per_method {
    ($scenario:literal, $run:expr, [$($method:ident => $suffix:literal),*]) => {
        [$(Test {
            name: concat!($scenario, "_", $suffix),
            run: || ($run)(SpawnMethod::$method),
        }),*]
    };
}

/// One test for each of the four methods.
macro_rules! all_methods {
    ($scenario:literal, $run:expr) => {
        per_method!($scenario, $run, [
            Fork => "fork", ForkServer => "fork_server", Exec => "exec", Thread => "thread"
        ])
    };
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    let mut tests = Vec::new();
    tests.extend(all_methods!("happy_teardown", happy_teardown));
    tests.extend(all_methods!("never_yields", never_yields));
    tests.extend(all_methods!("multierror_25", multierror_25));
    tests.extend(all_methods!(
        "cancel_grandchild_sleeping",
        grandchild_asleep
    ));
    // A thread child cannot be killed, only abandoned.
    tests.extend(
        per_method!("cancel_grandchild_sleeping_middle_killed", middle_killed, [
            Fork => "fork", ForkServer => "fork_server", Exec => "exec"
        ]),
    );
    tests.extend(all_methods!("boot_dies", boot_dies));
    tests.extend(all_methods!(
        "sigint_during_teardown",
        sigint_during_teardown
    ));
    common::main(&tests)
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(method: SpawnMethod, timeouts: Timeouts) -> NurseryConfig {
    NurseryConfig::default()
        .with_method(method)
        .with_timeouts(timeouts)
        .with_handle_sigint(false)
}

/// The short timeouts of the stuck-child scenarios.
fn short_timeouts() -> Timeouts {
    Timeouts {
        cancel_ack: ms(200),
        kill_grace: ms(300),
        thread_abandon: ms(300),
        ..Timeouts::TRACTOR
    }
}

fn open(method: SpawnMethod, timeouts: Timeouts) -> AsyncNursery {
    AsyncNursery::open_with(config(method, timeouts)).expect("open the async nursery")
}

/// Runs `scenario` on the runtime `method` needs (`Fork` and `Thread`: current-thread, so
/// that the process stays single-threaded for `Fork`; the others: multi-thread); for a
/// thread child, releases the stuck ones and waits out their threads afterwards.
fn run<F: Future<Output = ()>>(method: SpawnMethod, scenario: impl FnOnce() -> F) {
    let baseline = threads();
    let rt: Runtime = match method {
        SpawnMethod::Fork | SpawnMethod::Thread => Builder::new_current_thread(),
        SpawnMethod::ForkServer | SpawnMethod::Exec => {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(WORKERS);
            b
        }
    }
    .enable_all()
    .build()
    .expect("build the runtime");
    rt.block_on(scenario());
    drop(rt);
    if method == SpawnMethod::Thread {
        RELEASE.fetch_add(1, Ordering::SeqCst);
        let until = Instant::now() + MUST;
        while threads() > baseline {
            assert!(
                Instant::now() < until,
                "thread children outlived their release"
            );
            std::thread::sleep(ms(2));
        }
    }
}

fn threads() -> usize {
    sys::thread_count().expect("count this process's threads")
}

/// `/proc/<pid>/stat`'s state, parent and start time; `None` once the pid is gone.
fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// A process we watch for its end: its pid and its start time (a reused pid is no match).
#[derive(Clone, Copy, Debug)]
struct Watched {
    pid: i32,
    start: u64,
}

impl Watched {
    fn new(pid: i32) -> Watched {
        let (_, _, start) =
            proc_stat(pid).unwrap_or_else(|| panic!("process {pid} is not running"));
        Watched { pid, start }
    }

    /// Gone: no such pid, another process under it, or a zombie that is not ours to reap.
    fn gone(&self) -> bool {
        match proc_stat(self.pid) {
            None => true,
            Some((_, _, start)) if start != self.start => true,
            Some((state, ppid, _)) => {
                matches!(state, 'Z' | 'X') && ppid != std::process::id() as i32
            }
        }
    }
}

/// The process children among `children` (a thread child has no pid), to watch.
fn watch(n: &AsyncNursery, children: &[Child]) -> Vec<Watched> {
    children
        .iter()
        .filter_map(|&c| n.pid(c))
        .map(Watched::new)
        .collect()
}

/// Every watched process is gone (checked once the report is in: nothing is left to wait for).
fn assert_gone(watched: &[Watched]) {
    let left: Vec<i32> = watched
        .iter()
        .filter(|w| !w.gone())
        .map(|w| w.pid)
        .collect();
    assert!(
        left.is_empty(),
        "processes left after the teardown: {left:?}"
    );
}

/// Waits (letting the runtime run) until every watched process is gone, up to `bound`; how
/// long it took.
async fn wait_gone(watched: &[Watched], bound: Duration) -> Duration {
    let start = Instant::now();
    while watched.iter().any(|w| !w.gone()) {
        assert!(
            start.elapsed() < bound,
            "still alive {bound:?} later: {watched:?}"
        );
        tokio::time::sleep(ms(5)).await;
    }
    start.elapsed()
}

/// The single child of a report.
fn only_child(report: &TeardownReport) -> &ChildSummary {
    match report.children.as_slice() {
        [one] => one,
        all => panic!("expected one child, got {all:?}"),
    }
}

fn no_errors(report: &TeardownReport) {
    assert!(
        report.errors.is_empty(),
        "unexpected errors: {:?}",
        report.errors
    );
}

/// How long the teardown took, by the report's own clock.
fn took(report: &TeardownReport) -> Duration {
    report
        .duration()
        .unwrap_or_else(|| panic!("the report has no duration: {report:?}"))
}

/// How a child stopped by force should end by this method.
fn forced(method: SpawnMethod, outcome: Option<Outcome>, reason: ForceReason) -> bool {
    match (method, outcome) {
        (SpawnMethod::Thread, Some(Outcome::Abandoned(r))) => r == reason,
        (SpawnMethod::Thread, _) => false,
        (_, Some(Outcome::Killed { reason: r, status })) => {
            r == reason && status == ExitStatus::Signaled(libc::SIGKILL)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// The scenarios.

/// Spawn, one request, teardown: the child exits 0 and nothing is reported.
fn happy_teardown(method: SpawnMethod) {
    run(method, || async move {
        let n = open(method, Timeouts::TRACTOR);
        let c = n.spawn("happy", DOUBLE).await.unwrap();
        let watched = watch(&n, &[c]);
        assert_eq!(n.request::<u64, u64>(c, &21).await.unwrap(), 42);
        let report = n.teardown().await;
        no_errors(&report);
        assert_eq!(report.cause, Some(TeardownCause::BodyFinished));
        assert_eq!(
            only_child(&report).outcome,
            Some(Outcome::Exited(ExitStatus::Exited(0)))
        );
        took(&report);
        assert_gone(&watched);
    });
}

/// A child stuck in its start is cancelled, then killed (a thread: abandoned) on the
/// cancel-ack timeout, within `cancel_ack + grace + 100 ms` of the teardown's start.
fn never_yields(method: SpawnMethod) {
    run(method, || async move {
        let t = short_timeouts();
        let n = open(method, t);
        let c = n.spawn("stuck", STUCK).await.unwrap();
        let watched = watch(&n, &[c]);
        let report = n.teardown().await;
        no_errors(&report);
        let outcome = only_child(&report).outcome;
        assert!(
            forced(method, outcome, ForceReason::CancelAckTimedOut),
            "outcome {outcome:?}, expected the force of CancelAckTimedOut"
        );
        let bound = t.teardown_bound(method) + ms(100);
        assert!(
            took(&report) <= bound,
            "teardown took {:?}, bound {bound:?}",
            took(&report)
        );
        assert_eq!(report.abandoned, usize::from(method == SpawnMethod::Thread));
        assert_gone(&watched);
    });
}

/// 25 run-to-result children whose main fails, started side by side (each spawn future
/// polled once starts its child) and torn down in parallel: 25 remote errors, one per child,
/// the cause `ChildFailed`, within one teardown bound.
///
/// A poll of a spawn future may also turn the event loop; a failure it reads closes the
/// nursery, and the spawns not yet started are refused. So the 25 first polls run while the
/// reactor cannot have announced anything since the first start: on a current-thread runtime
/// it runs only when the test yields; a multi-thread runtime's workers are held busy
/// meanwhile ([`hold_workers`]). Each spawn future then ends with its child (booted), with
/// that child's failure, or with `Closed` once a sibling's failure has closed the nursery.
fn multierror_25(method: SpawnMethod) {
    run(method, || async move {
        let t = Timeouts {
            cancel_ack: Duration::from_secs(2),
            kill_grace: Duration::from_secs(1),
            thread_abandon: Duration::from_secs(1),
            ..Timeouts::TRACTOR
        };
        let n = open(method, t);
        let names: Vec<String> = (0..ERRORERS).map(|i| format!("errorer{i}")).collect();
        let mut spawns: Vec<_> = names
            .iter()
            .map(|name| spawn(n.spawn_with(name, FAILS, method, Role::RunToResult)))
            .collect();
        let held = hold_workers(method).await;
        for s in &mut spawns {
            assert_pending!(s.poll());
        }
        drop(held);
        let mut spawned: Vec<Option<Result<Child, Error>>> = spawns.iter().map(|_| None).collect();
        let all = poll_fn(|cx| {
            for (s, out) in spawns.iter_mut().zip(&mut spawned) {
                if out.is_none()
                    && let Poll::Ready(r) = Pin::new(s).poll(cx)
                {
                    *out = Some(r);
                }
            }
            if spawned.iter().all(Option::is_some) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::time::timeout(MUST, all)
            .await
            .expect("the spawns did not end");
        drop(spawns);
        for s in spawned.into_iter().flatten() {
            match s {
                Ok(_) | Err(Error::Closed) => {}
                Err(Error::Child(e)) if matches!(e.kind, ChildErrorKind::Remote(_)) => {}
                Err(other) => panic!("a spawn of a failing child returned {other:?}"),
            }
        }
        let report = n.teardown().await;
        assert_eq!(report.children.len(), ERRORERS, "{:?}", report.children);
        assert_eq!(report.errors.len(), ERRORERS, "{:?}", report.errors);
        for c in &report.children {
            let errs: Vec<_> = report
                .errors
                .iter()
                .filter(|e| e.child == c.child)
                .collect();
            assert!(
                matches!(errs.as_slice(), [e] if matches!(&e.kind, ChildErrorKind::Remote(r)
                    if r.kind == RemoteErrorKind::Error && r.message.contains("assertion failed"))),
                "{}: expected exactly one remote error, got {errs:?}",
                c.name
            );
        }
        assert!(
            matches!(report.cause, Some(TeardownCause::ChildFailed(_))),
            "cause {:?}, expected ChildFailed",
            report.cause
        );
        let bound = t.teardown_bound(method);
        assert!(
            took(&report) <= bound,
            "teardown took {:?}, more than one bound {bound:?}",
            took(&report)
        );
    });
}

/// Workers of a multi-thread runtime held busy (its reactor does not run) until dropped.
struct HeldWorkers(Arc<AtomicUsize>);

impl Drop for HeldWorkers {
    fn drop(&mut self) {
        self.0.store(usize::MAX, Ordering::SeqCst);
    }
}

/// On the multi-thread runtime `method` runs on, occupies each of its [`WORKERS`] with a task
/// that blocks until the guard is dropped, and returns once all of them are blocked; on a
/// current-thread runtime, nothing.
async fn hold_workers(method: SpawnMethod) -> Option<HeldWorkers> {
    if matches!(method, SpawnMethod::Fork | SpawnMethod::Thread) {
        return None;
    }
    let blocked = Arc::new(AtomicUsize::new(0));
    for _ in 0..WORKERS {
        let blocked = blocked.clone();
        tokio::spawn(async move {
            blocked.fetch_add(1, Ordering::SeqCst);
            let until = Instant::now() + MUST;
            while blocked.load(Ordering::SeqCst) != usize::MAX && Instant::now() < until {
                std::thread::sleep(ms(1));
            }
        });
    }
    let until = Instant::now() + MUST;
    while blocked.load(Ordering::SeqCst) < WORKERS {
        assert!(
            Instant::now() < until,
            "the runtime's workers did not all start"
        );
        std::thread::sleep(ms(1));
    }
    Some(HeldWorkers(blocked))
}

/// [`grandchild`]: the child tears its own nursery down in time.
fn grandchild_asleep(method: SpawnMethod) {
    grandchild(method, false);
}

/// [`grandchild`]: the child is killed mid-teardown.
fn middle_killed(method: SpawnMethod) {
    grandchild(method, true);
}

/// Cancel (`stop`) a child that supervises a grandchild stuck in a blocking sleep: the child
/// tears its own nursery down (the grandchild is killed there) and acks, exiting 0; no
/// grandchild survives. With `kill_middle`, the root's cancel-ack timeout is shorter than the
/// child's own teardown, so the child is killed mid-teardown: the grandchild dies with it.
fn grandchild(method: SpawnMethod, kill_middle: bool) {
    run(method, || async move {
        let t = if kill_middle {
            Timeouts {
                cancel_ack: ms(50),
                kill_grace: ms(300),
                ..Timeouts::TRACTOR
            }
        } else {
            // Room for the middle's own teardown (its cancel_ack + kill + reap).
            Timeouts {
                cancel_ack: Duration::from_secs(3),
                kill_grace: Duration::from_secs(1),
                thread_abandon: Duration::from_secs(1),
                ..Timeouts::TRACTOR
            }
        };
        let n = open(method, t);
        let middle = n.spawn("middle", MIDDLE).await.unwrap();
        let watched = watch(&n, &[middle]);
        let pid: i32 = n.request(middle, &()).await.unwrap();
        let grandchild = Watched::new(pid);
        assert!(
            !grandchild.gone(),
            "the grandchild {pid} is not running before the cancel"
        );
        n.stop(middle).await.unwrap();
        wait_gone(&[grandchild], Duration::from_secs(1)).await;
        let report = n.teardown().await;
        no_errors(&report);
        let outcome = only_child(&report).outcome;
        let expected = if kill_middle {
            forced(method, outcome, ForceReason::CancelAckTimedOut)
        } else {
            outcome == Some(Outcome::Exited(ExitStatus::Exited(0)))
        };
        assert!(expected, "the middle child's outcome is {outcome:?}");
        assert_gone(&watched);
    });
}

/// A child that dies before its handshake: the spawn future ends with a boot failure
/// carrying its exit status (7; a thread child, which cannot exit the process, panics: 101),
/// and the report says the same.
fn boot_dies(method: SpawnMethod) {
    let (actor, status) = match method {
        SpawnMethod::Thread => (BOOT_PANICS, ExitStatus::Exited(harrow_real::exit::PANIC)),
        _ => (BOOT_EXITS, ExitStatus::Exited(BOOT_EXIT_CODE)),
    };
    let quiet = QuietPanics::install();
    run(method, || async move {
        let n = open(method, Timeouts::TRACTOR);
        match n.spawn("boot-dies", actor).await {
            Err(Error::Child(e)) if e.kind == ChildErrorKind::BootFailed(status) => {}
            other => panic!("spawn returned {other:?}, expected a boot failure with {status}"),
        }
        let report = n.teardown().await;
        assert!(
            matches!(report.errors.as_slice(), [e] if e.kind == ChildErrorKind::BootFailed(status)),
            "report errors {:?}",
            report.errors
        );
        assert_eq!(only_child(&report).outcome, Some(Outcome::Exited(status)));
    });
    drop(quiet);
}

/// SIGINT (to this process, handled by the nursery) while the nursery tears down 3 stuck
/// children: the teardown future is ready with the report, whose cause is now
/// `Interrupted`, within `cancel_ack + grace + 200 ms` of the SIGINT; every child was
/// stopped by force on the cancel-ack timeout, and none is left.
/// (The blocking scenario runs the nursery in a parent process and waits for it to exit;
/// here the nursery's owner is the test itself.)
fn sigint_during_teardown(method: SpawnMethod) {
    run(method, || async move {
        let t = short_timeouts();
        let n = AsyncNursery::open_with(config(method, t).with_handle_sigint(true)).unwrap();
        let mut children = Vec::new();
        for i in 0..3 {
            children.push(n.spawn(&format!("stuck{i}"), STUCK).await.unwrap());
        }
        let watched = watch(&n, &children);
        let interrupter = tokio::spawn(async {
            // Into the teardown: the cancels are out, no ack will come.
            tokio::time::sleep(ms(50)).await;
            // SAFETY: kill(2) of our own process with SIGINT, which the nursery handles.
            let sent = unsafe { libc::kill(std::process::id() as libc::pid_t, libc::SIGINT) };
            assert_eq!(sent, 0, "SIGINT to ourselves");
            Instant::now()
        });
        let report = n.teardown().await;
        let ended = Instant::now();
        let sent = interrupter.await.unwrap();
        assert_eq!(report.cause, Some(TeardownCause::Interrupted), "{report:?}");
        let bound = t.teardown_bound(method) + ms(200);
        let after = ended.saturating_duration_since(sent);
        assert!(
            after <= bound,
            "the report came {after:?} after SIGINT, bound {bound:?}"
        );
        assert!(
            took(&report) <= bound + ms(50),
            "teardown took {:?}",
            took(&report)
        );
        assert_eq!(report.children.len(), 3);
        for c in &report.children {
            assert!(
                forced(method, c.outcome, ForceReason::CancelAckTimedOut),
                "{}: outcome {:?}, expected the force of CancelAckTimedOut",
                c.name,
                c.outcome
            );
        }
        assert_eq!(
            report.abandoned,
            3 * usize::from(method == SpawnMethod::Thread)
        );
        assert_gone(&watched);
    });
}

/// The panic hook, shared so that it can be put back.
type Hook = std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync>;

/// While alive, the panic of [`BOOT_PANICS`]'s thread prints nothing (it is the expected
/// outcome); every other panic goes to the hook that was installed before, which is put
/// back on drop.
struct QuietPanics {
    previous: Hook,
}

impl QuietPanics {
    fn install() -> QuietPanics {
        let previous: Hook = std::sync::Arc::from(std::panic::take_hook());
        let (hook, thread) = (previous.clone(), format!("harrow-{BOOT_PANICS}"));
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(thread.as_str()) {
                hook(info);
            }
        }));
        QuietPanics { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let previous = self.previous.clone();
        std::panic::set_hook(Box::new(move |info| previous(info)));
    }
}
