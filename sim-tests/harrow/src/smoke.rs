//! tractor's test scenarios and its smoke scenarios (expected failures included), for
//! real, for every spawn method each applies to.
//!
//! Each scenario is a function of the spawn method that returns a [`Verdict`]: `Ok` with a
//! one-line summary when the expected outcome happened (including the expected failures of
//! the smoke convention), `Err` saying what went wrong otherwise. The same functions run
//! under the test suite (`sim-tests/harrow/tests/smoke.rs`) and under `harrow smoke`.
//!
//! A program that runs them must, first thing in `main`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     harrow_real::init(harrow::smoke::registry());
//!     if let Some(code) = harrow::smoke::run_parent_role() {
//!         return code;
//!     }
//!     // ... run scenarios, e.g. harrow::smoke::smoke(&Default::default())
//!     # std::process::ExitCode::SUCCESS
//! }
//! ```
//!
//! [`init`](harrow_real::init) serves the re-executed children of `Exec` and `ForkServer`;
//! [`run_parent_role`] serves the re-executed "parent" processes of the scenarios that kill
//! or interrupt a parent (`parent-sigkilled`, `sigint-during-teardown`).
//!
//! Every scenario bounds every wait (the nursery's own timeouts, or a bounded poll), ends
//! only processes it started, and leaves no child process, thread or descriptor behind.

use std::fmt;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harrow_model::error::{ProtocolViolation, SpawnError};
use harrow_model::supervisor::ForceReason;
use harrow_model::wire::{RemoteError, RemoteErrorKind, Role};
use harrow_model::{RequestId, SpawnMethod, Timeouts};
use harrow_real::{Cancel, Daemon};

use harrow_real::sys;
use harrow_real::{Child, Error, Nursery, NurseryConfig};
use harrow_real::{ChildErrorKind, ExitStatus, Outcome, TeardownCause, TeardownReport};
use harrow_real::{Registry, encode};

/// A scenario's result: `Ok(summary)` when the expected outcome happened, else what went wrong.
pub type Verdict = Result<String, Failure>;

/// What went wrong in a scenario: the expected outcome did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure(s.to_owned())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e.to_string())
    }
}

/// Fails the scenario with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($msg)+)));
        }
    };
}

mod hostile;
mod limits;
mod service;

pub use hostile::{
    failed_flood, half_frame_then_exit, huge_length_then_silence, second_handshake,
    unknown_reply_flood,
};
pub use limits::{fd_limit_until_refused, fd_pressure, thread_count_unreadable};
pub use service::{
    SCALED as SERVICE_SCALED, service_nursery, service_nursery_of,
    spawns_past_max_children_ever_held,
};

/// One scenario: its name, what it shows, and the spawn methods it applies to.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The name `harrow smoke --scenario` takes.
    pub name: &'static str,
    /// What it does and what it expects, in one line.
    pub about: &'static str,
    /// The spawn methods it runs under.
    pub methods: &'static [SpawnMethod],
    /// Why it does not run under the other methods (empty when it runs under all four).
    pub not_for_others: &'static str,
    /// The scenario itself.
    pub run: fn(SpawnMethod) -> Verdict,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("methods", &self.methods)
            .finish()
    }
}

const ALL_METHODS: &[SpawnMethod] = &[
    SpawnMethod::Fork,
    SpawnMethod::ForkServer,
    SpawnMethod::Exec,
    SpawnMethod::Thread,
];
const PROCESS_METHODS: &[SpawnMethod] = &[
    SpawnMethod::Fork,
    SpawnMethod::ForkServer,
    SpawnMethod::Exec,
];
const FORK_ONLY: &[SpawnMethod] = &[SpawnMethod::Fork];

/// Every scenario, in the order of tractor's test suite, then the expected failures.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "happy-teardown",
        about: "spawn, one request, teardown: the child exits 0 and nothing is reported",
        methods: ALL_METHODS,
        not_for_others: "",
        run: happy_teardown,
    },
    Scenario {
        name: "never-yields",
        about: "a child stuck in its start is cancelled, then killed (a thread: abandoned) \
                within cancel_ack + grace",
        methods: ALL_METHODS,
        not_for_others: "",
        run: never_yields,
    },
    Scenario {
        name: "serve-crash-stuck",
        about: "three children started side by side, one request to each: one answers, one \
                exits 3 after its handshake (one cancels all), one ignores its cancel and is \
                killed; the trace `harrow corpus from-trace` turns into a corpus entry",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child cannot exit with a code of its own",
        run: serve_crash_stuck,
    },
    Scenario {
        name: "multierror-25",
        about: "25 run-to-result children that each fail, booted side by side and torn down \
                in parallel: 25 remote errors, within one teardown bound",
        methods: ALL_METHODS,
        not_for_others: "",
        run: multierror_25,
    },
    Scenario {
        name: "cancel-grandchild-sleeping",
        about: "cancel a child whose own child sits in a blocking sleep: the child tears its \
                nursery down, and no grandchild survives",
        methods: ALL_METHODS,
        not_for_others: "",
        run: cancel_grandchild_sleeping,
    },
    Scenario {
        name: "cancel-grandchild-sleeping-middle-killed",
        about: "as cancel-grandchild-sleeping, but the child is killed mid-teardown: the \
                grandchild dies with it",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child cannot be killed, only abandoned",
        run: cancel_grandchild_sleeping_middle_killed,
    },
    Scenario {
        name: "boot-dies",
        about: "a child that dies before its handshake: spawn fails with a boot failure \
                carrying its exit status (7; a thread child: its panic, 101)",
        methods: ALL_METHODS,
        not_for_others: "",
        run: boot_dies,
    },
    Scenario {
        name: "parent-sigkilled",
        about: "a parent process with 3 children is SIGKILLed: no child is alive 1 s later",
        methods: PROCESS_METHODS,
        not_for_others: "thread children are threads of the killed process itself",
        run: parent_sigkilled,
    },
    Scenario {
        name: "sigint-during-teardown",
        about: "SIGINT to a parent tearing down 3 stuck children: it exits, report printed, \
                within cancel_ack + grace + 200 ms",
        methods: ALL_METHODS,
        not_for_others: "",
        run: sigint_during_teardown,
    },
    Scenario {
        name: "killed-not-in-registry",
        about: "a stuck child killed (a thread: abandoned) by the escalation leaves the name \
                registry, and its name can be used again",
        methods: ALL_METHODS,
        not_for_others: "",
        run: killed_not_in_registry,
    },
    Scenario {
        name: "malformed-frame",
        about: "a child writes garbage on its channel: a typed protocol error, and the child \
                ends without a hang",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: malformed_frame,
    },
    Scenario {
        name: "large-payloads",
        about: "requests and replies from empty to the frame limit echo intact; one over the \
                limit is a typed error each way, and the channel still works after",
        methods: ALL_METHODS,
        not_for_others: "",
        run: large_payloads,
    },
    Scenario {
        name: "request-timeout",
        about: "a request that outlasts its timeout fails with TimedOut on time; the child \
                keeps serving, and its late reply never answers a later request",
        methods: ALL_METHODS,
        not_for_others: "",
        run: request_timeout,
    },
    Scenario {
        name: "long-lived-nursery",
        about: "one nursery spawns and stops children one after another: a finished child \
                holds no descriptor, so the nursery's descriptors do not grow with its history",
        methods: ALL_METHODS,
        not_for_others: "",
        run: long_lived_nursery,
    },
    Scenario {
        name: "service-nursery",
        about: "one nursery spawns and stops 100,000 children in sequence: descriptors and \
                memory stay flat and the last thousand spawns cost what the first did",
        methods: FORK_ONLY,
        not_for_others: "it measures the nursery, not the method: the fastest process method \
                         (Fork, ~140 us a spawn) keeps the run short",
        run: service_nursery,
    },
    Scenario {
        name: "hostile-huge-length",
        about: "a child announces a whole frame and goes silent: the request times out, the cut frame is a typed error, memory stays put",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: huge_length_then_silence,
    },
    Scenario {
        name: "hostile-unknown-replies",
        about: "a child floods replies to requests never sent: a typed protocol error, memory stays put",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: unknown_reply_flood,
    },
    Scenario {
        name: "hostile-second-handshake",
        about: "a serving child sends a second handshake: a typed protocol error",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: second_handshake,
    },
    Scenario {
        name: "hostile-failed-flood",
        about: "a child floods 1 GiB of Failed reports in frames of the largest size: its first failure and a typed protocol error for the second in the report, memory stays put",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: failed_flood,
    },
    Scenario {
        name: "hostile-half-frame",
        about: "a child writes half a frame and exits: a typed error for the cut frame",
        methods: PROCESS_METHODS,
        not_for_others: "a thread child has no channel descriptor of its own to write on",
        run: half_frame_then_exit,
    },
    Scenario {
        name: "fd-pressure",
        about: "a spawn with no descriptor to spare fails with an error naming descriptors; \
                the sibling keeps serving, a later spawn works, nothing is made up in the report",
        methods: ALL_METHODS,
        not_for_others: "",
        run: fd_pressure,
    },
    Scenario {
        name: "fd-limit-until-refused",
        about: "under a low descriptor limit, spawn until one is refused: a typed error naming \
                descriptors, every earlier child still serves, a clean teardown",
        methods: ALL_METHODS,
        not_for_others: "",
        run: fd_limit_until_refused,
    },
    Scenario {
        name: "thread-count-unreadable",
        about: "expected failure: with no descriptor to spare the threads cannot be counted, \
                and Fork is refused saying so",
        methods: FORK_ONLY,
        not_for_others: "only Fork depends on the thread count",
        run: thread_count_unreadable,
    },
    Scenario {
        name: "fork-refused-multithreaded",
        about: "expected failure: plain Fork from a multi-threaded process is refused with an \
                error naming ForkServer",
        methods: FORK_ONLY,
        not_for_others: "only Fork forks from the caller",
        run: fork_refused_multithreaded,
    },
    Scenario {
        name: "lost-eof-unscrubbed",
        about: "expected failure: a sibling forked without the fd scrub keeps a child's EOF \
                from arriving until that sibling is gone",
        methods: FORK_ONLY,
        not_for_others: "only Fork runs the prelude in the caller's address space",
        run: lost_eof_unscrubbed,
    },
];

/// The scenario of this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// A spawn method by name: `fork`, `fork-server` (or `forkserver`), `exec`, `thread`.
pub fn parse_method(s: &str) -> Option<SpawnMethod> {
    match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "fork" => Some(SpawnMethod::Fork),
        "forkserver" => Some(SpawnMethod::ForkServer),
        "exec" => Some(SpawnMethod::Exec),
        "thread" => Some(SpawnMethod::Thread),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The actors.

/// The test actors every scenario needs; pass it to [`harrow_real::init`] first thing in `main`
/// (merge it with your own with [`Registry::merge`]).
pub fn registry() -> Registry {
    hostile::Act::ALL
        .into_iter()
        .fold(Registry::new(), |r, (act, name)| {
            r.daemon(name, move || hostile::Hostile(act))
        })
        .handler(DOUBLE, |n: u64| Ok::<u64, String>(n * 2))
        .handler(ECHO_BYTES, |b: Vec<u8>| Ok::<Vec<u8>, String>(b))
        .handler(GROW, |n: u32| Ok::<Vec<u8>, String>(vec![0xA5; n as usize]))
        .handler(SLOW, |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok::<u64, String>(ms)
        })
        .main(FAILS, || Err::<(), String>("assertion failed: 0".into()))
        .daemon(STUCK, || Stuck)
        .daemon(SLEEPER, || Sleeper)
        .daemon(MIDDLE, Middle::default)
        .daemon(GARBLER, || Garbler { on_request: false })
        .daemon(GARBLER_ON_REQUEST, || Garbler { on_request: true })
        .daemon(CRASHER, || Crasher)
        .daemon(BOOT_EXITS, || -> Stuck { sys::exit_now(BOOT_EXIT_CODE) })
        .daemon(BOOT_PANICS, || -> Stuck {
            panic!("this actor fails on purpose before its handshake")
        })
}

/// A daemon that doubles numbers.
pub(crate) const DOUBLE: &str = "scenario-double";
/// A daemon that echoes a byte vector.
const ECHO_BYTES: &str = "scenario-echo-bytes";
/// A daemon that answers `n` with `n` bytes.
const GROW: &str = "scenario-grow";
/// A daemon that answers `ms` after sleeping `ms` milliseconds.
const SLOW: &str = "scenario-slow";
/// A run-to-result actor whose main fails.
const FAILS: &str = "scenario-fails";
/// A daemon whose start never returns (until released, in a thread child).
const STUCK: &str = "scenario-stuck";
/// A daemon whose start sits in a blocking sleep for a minute.
const SLEEPER: &str = "scenario-sleeper";
/// A daemon that opens its own nursery with a sleeper in it.
const MIDDLE: &str = "scenario-middle";
/// A daemon whose start writes garbage on its channel.
const GARBLER: &str = "scenario-garbler";
/// A daemon that writes garbage on its channel when it gets a request.
const GARBLER_ON_REQUEST: &str = "scenario-garbler-on-request";
/// A daemon whose start exits the process with [`CRASH_CODE`], after its handshake.
const CRASHER: &str = "scenario-crasher";
/// An actor whose maker exits the process with [`BOOT_EXIT_CODE`].
const BOOT_EXITS: &str = "scenario-boot-exits";
/// An actor whose maker panics (the thread child's way to die during boot).
const BOOT_PANICS: &str = "scenario-boot-panics";

/// The exit code of [`BOOT_EXITS`].
const BOOT_EXIT_CODE: i32 = 7;
/// The exit code of [`CRASHER`].
const CRASH_CODE: i32 = 3;
/// Bytes that are no frame: a length header far above any frame limit.
const GARBAGE: [u8; 8] = [0xff; 8];
/// How long the sleeper sleeps.
const SLEEP: Duration = Duration::from_secs(60);

/// Bumped to release stuck actors on threads of this process (process children, which
/// have their own copy, stay stuck until killed).
static RELEASE: AtomicU64 = AtomicU64::new(0);

/// Never yields: its start waits for a release that only a thread child can get.
struct Stuck;

impl Daemon for Stuck {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        let generation = RELEASE.load(Ordering::SeqCst);
        while RELEASE.load(Ordering::SeqCst) == generation {
            std::thread::sleep(Duration::from_millis(5));
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

/// Exits its process with [`CRASH_CODE`] in its start, after its handshake (a process
/// child only: a thread's exit would end the parent).
struct Crasher;

impl Daemon for Crasher {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        sys::exit_now(CRASH_CODE)
    }

    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::refused("the crasher takes no requests"))
    }
}

/// Sits in a blocking sleep in its start (a process child only: a thread would outlive us).
struct Sleeper;

impl Daemon for Sleeper {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        std::thread::sleep(SLEEP);
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

/// The middle's own nursery: short timeouts, so it closes well within the root's cancel_ack.
fn middle_timeouts() -> Timeouts {
    Timeouts {
        cancel_ack: Duration::from_millis(200),
        kill_grace: Duration::from_millis(300),
        thread_abandon: Duration::from_millis(300),
        ..Timeouts::TRACTOR
    }
}

impl Daemon for Middle {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        let fail = |what: &str, e: Error| RemoteError::error(format!("{what}: {e}"));
        // A forked, served or re-executed child is single-threaded: Fork is allowed. A thread
        // child shares a multi-threaded process: there, the fork server.
        let method = match sys::thread_count() {
            Ok(1) => SpawnMethod::Fork,
            _ => SpawnMethod::ForkServer,
        };
        let mut nursery =
            Nursery::open_with(config(method, middle_timeouts())).map_err(|e| fail("open", e))?;
        let sleeper = nursery
            .spawn("grandchild", SLEEPER)
            .map_err(|e| fail("spawn the sleeper", e));
        self.sleeper_pid = sleeper.ok().and_then(|c| nursery.pid(c));
        self.nursery = Some(nursery);
        match self.sleeper_pid {
            Some(_) => Ok(()),
            None => Err(RemoteError::refused("the sleeper did not start")),
        }
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

/// Writes garbage on its channel, behind the protocol's back, in its start (or, with
/// `on_request`, before answering each request); otherwise serves (echoes) as usual.
struct Garbler {
    on_request: bool,
}

/// Writes [`GARBAGE`] on a duplicate of this process child's channel.
fn write_garbage() -> Result<(), RemoteError> {
    let fd = sys::duplicate_child_channel().map_err(|e| RemoteError::refused(e.to_string()))?;
    match sys::send_all_timeout(fd.as_fd(), &GARBAGE, Some(Duration::from_secs(1))) {
        Ok(sys::SendOutcome::Complete) => Ok(()),
        other => Err(RemoteError::refused(format!(
            "could not write the garbage: {other:?}"
        ))),
    }
}

impl Daemon for Garbler {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        if self.on_request {
            Ok(())
        } else {
            write_garbage()
        }
    }

    fn handle(
        &mut self,
        _id: RequestId,
        payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        if self.on_request {
            write_garbage()?;
        }
        Ok(payload)
    }
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

fn open(method: SpawnMethod, timeouts: Timeouts) -> Result<Nursery, Failure> {
    Nursery::open_with(config(method, timeouts)).map_err(|e| Failure(format!("open: {e}")))
}

/// Runs `body` on the nursery, then tears it down whatever happened: the body's error first.
fn with_nursery<T>(
    mut nursery: Nursery,
    body: impl FnOnce(&mut Nursery) -> Result<T, Failure>,
) -> Result<(T, TeardownReport), Failure> {
    let result = body(&mut nursery);
    let report = nursery.teardown();
    result.map(|t| (t, report))
}

/// The threads of this process, or an error saying why they cannot be counted.
fn threads() -> Result<usize, Failure> {
    sys::thread_count().map_err(|e| Failure(format!("count threads: {e}")))
}

/// Releases stuck thread children and waits (bounded) until this process is back to
/// `baseline` threads, so the next Fork sees a single-threaded process again.
fn settle_threads(baseline: usize) -> Result<(), Failure> {
    RELEASE.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = threads()?;
        if now <= baseline {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{now} threads still alive 3 s after release (expected {baseline})"
        );
        std::thread::sleep(ms(2));
    }
}

/// Runs `scenario`; for a thread child, releases and waits out its threads afterwards.
fn settled(method: SpawnMethod, scenario: impl FnOnce() -> Verdict) -> Verdict {
    let baseline = threads()?;
    let verdict = scenario();
    if method == SpawnMethod::Thread {
        settle_threads(baseline)?;
    }
    verdict
}

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProcStat {
    state: char,
    ppid: i32,
    start: u64,
}

/// `/proc/<pid>/stat`'s state, parent and start time; `None` once the pid is gone.
fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// A process we watch for its end: its pid and its start time (so a reused pid is no match).
#[derive(Clone, Copy, Debug)]
struct Watched {
    pid: i32,
    start: Option<u64>,
}

impl Watched {
    fn new(pid: i32) -> Watched {
        Watched {
            pid,
            start: proc_stat(pid).map(|s| s.start),
        }
    }

    /// Gone: no such pid, another process under it, or a zombie that is not ours to reap
    /// (it waits for its own parent or init; it runs nothing).
    fn gone(&self) -> bool {
        match proc_stat(self.pid) {
            None => true,
            Some(s) if Some(s.start) != self.start => true,
            Some(s) => matches!(s.state, 'Z' | 'X') && s.ppid != std::process::id() as i32,
        }
    }

    /// Whether it has exited (a zombie of ours counts: it runs nothing).
    fn exited(&self) -> bool {
        self.gone() || proc_stat(self.pid).is_some_and(|s| s.state == 'Z')
    }
}

/// Polls until every watched process is gone, up to `bound`; the time it took, or who is left.
fn wait_gone(watched: &[Watched], bound: Duration) -> Result<Duration, Failure> {
    let start = Instant::now();
    loop {
        let left: Vec<i32> = watched
            .iter()
            .filter(|w| !w.gone())
            .map(|w| w.pid)
            .collect();
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < bound,
            "still alive {bound:?} later: {left:?}"
        );
        std::thread::sleep(ms(5));
    }
}

/// Polls `cond` every 2 ms up to `bound`; whether it came true.
fn poll(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(ms(2));
    }
}

/// The single child of a report, or an error.
fn only_child(report: &TeardownReport) -> Result<&harrow_real::ChildSummary, Failure> {
    match report.children.as_slice() {
        [one] => Ok(one),
        all => Err(Failure(format!("expected one child, got {}", all.len()))),
    }
}

/// The report has `count` children, and every one exited 0.
fn all_exited_0(report: &TeardownReport, count: usize) -> Result<(), Failure> {
    let outcomes: Vec<_> = report.children.iter().map(|c| c.outcome).collect();
    ensure!(
        outcomes.len() == count
            && outcomes
                .iter()
                .all(|o| *o == Some(Outcome::Exited(ExitStatus::Exited(0)))),
        "expected {count} children that exited 0, got {outcomes:?}"
    );
    Ok(())
}

fn no_errors(report: &TeardownReport) -> Result<(), Failure> {
    ensure!(
        report.errors.is_empty(),
        "unexpected errors: {}",
        report
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

fn duration(report: &TeardownReport) -> Result<Duration, Failure> {
    report
        .duration()
        .ok_or_else(|| Failure(format!("the report has no duration: {report:?}")))
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
// 1. Happy teardown.

/// Spawn, one request, teardown: outcome `Exited(0)`, no errors.
pub fn happy_teardown(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let (four, report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let child = n.spawn("happy", DOUBLE)?;
            Ok(n.request::<u64, u64>(child, &21)?)
        })?;
        ensure!(four == 42, "2 * 21 came back as {four}");
        no_errors(&report)?;
        all_exited_0(&report, 1)?;
        Ok(format!(
            "2 * 21 = {four}; exited 0; teardown took {:?}",
            duration(&report)?
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 2. A child that never yields.

/// A child stuck in its start is cancelled, then killed (a thread: abandoned) on the
/// cancel-ack timeout, within `cancel_ack + grace + 100 ms`.
pub fn never_yields(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let t = short_timeouts();
        let ((), report) = with_nursery(open(method, t)?, |n| {
            n.spawn("stuck", STUCK)?;
            Ok(())
        })?;
        no_errors(&report)?;
        let child = only_child(&report)?;
        ensure!(
            forced(method, child.outcome, ForceReason::CancelAckTimedOut),
            "outcome {:?}, expected {} on CancelAckTimedOut",
            child.outcome,
            if method == SpawnMethod::Thread {
                "Abandoned"
            } else {
                "Killed by SIGKILL"
            }
        );
        let took = duration(&report)?;
        let bound = t.teardown_bound(method) + ms(100);
        ensure!(took <= bound, "teardown took {took:?}, bound {bound:?}");
        let abandoned = usize::from(method == SpawnMethod::Thread);
        ensure!(
            report.abandoned == abandoned,
            "{} abandoned, expected {abandoned}",
            report.abandoned
        );
        Ok(format!(
            "{:?}; teardown took {took:?} (bound {bound:?})",
            child.outcome.expect("checked above")
        ))
    })
}

/// Three children started side by side, each sent one request once ready: a doubler that
/// answers, a crasher that exits 3 after its handshake (its error tears the nursery down;
/// the body waits for it), and a stuck child that ignores its cancel and is killed. Whether
/// the doubler's answer comes before the crash's teardown is a race; the report is not.
pub fn serve_crash_stuck(method: SpawnMethod) -> Verdict {
    let t = short_timeouts();
    let ((), report) = with_nursery(open(method, t)?, |n| {
        let kids: Vec<(&str, Child)> = [("server", DOUBLE), ("crasher", CRASHER), ("stuck", STUCK)]
            .into_iter()
            .filter_map(|(name, actor)| Some((name, n.spawner(actor).name(name).start().ok()?)))
            .collect();
        let ready: Vec<Child> = kids
            .iter()
            .filter(|&&(_, c)| n.ready(c).is_ok())
            .map(|&(_, c)| c)
            .collect();
        let tickets: Vec<_> = ready
            .iter()
            .filter_map(|&c| n.start_request(c, &21u64).ok())
            .collect();
        if let Some(&first) = tickets.first() {
            let _ = n.wait::<u64>(first);
        }
        // Its exit is an error only if seen before the body's own teardown: wait for it.
        if let Some(&(_, crasher)) = kids.iter().find(|(name, _)| *name == "crasher") {
            let _ = n.wait_child(crasher, Some(ms(2000)));
        }
        Ok(())
    })?;
    let outcome = |name: &str| {
        report
            .children
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.outcome)
    };
    ensure!(
        outcome("server") == Some(Outcome::Exited(ExitStatus::Exited(0))),
        "server: {:?}, expected Exited(0)",
        outcome("server")
    );
    ensure!(
        outcome("crasher") == Some(Outcome::Exited(ExitStatus::Exited(CRASH_CODE))),
        "crasher: {:?}, expected Exited({CRASH_CODE})",
        outcome("crasher")
    );
    ensure!(
        forced(method, outcome("stuck"), ForceReason::CancelAckTimedOut),
        "stuck: {:?}, expected Killed on CancelAckTimedOut",
        outcome("stuck")
    );
    ensure!(
        report.errors.len() == 1,
        "errors {:?}, expected the crasher's",
        report.errors
    );
    Ok(format!(
        "server exited 0, crasher {CRASH_CODE}, stuck killed; teardown took {:?}",
        duration(&report)?
    ))
}

// ---------------------------------------------------------------------------------------
// 3. 25 failing children.

/// How many children the multi-error scenario starts.
pub const MULTIERROR_CHILDREN: usize = 25;

/// 25 run-to-result children whose main fails, started side by side and torn down in
/// parallel: 25 remote errors, one per child, within one teardown bound.
pub fn multierror_25(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let t = Timeouts {
            cancel_ack: Duration::from_secs(2),
            kill_grace: Duration::from_secs(1),
            thread_abandon: Duration::from_secs(1),
            ..Timeouts::TRACTOR
        };
        let started = Instant::now();
        let (children, report) = with_nursery(open(method, t)?, |n| {
            (0..MULTIERROR_CHILDREN)
                .map(|i| {
                    n.start_with(&format!("errorer{i}"), FAILS, method, Role::RunToResult)
                        .map_err(Failure::from)
                })
                .collect::<Result<Vec<Child>, Failure>>()
        })?;
        let wall = started.elapsed();
        ensure!(
            report.errors.len() == MULTIERROR_CHILDREN,
            "{} errors reported, expected {MULTIERROR_CHILDREN}: {:?}",
            report.errors.len(),
            report.errors
        );
        for c in &children {
            let errs: Vec<_> = report.errors.iter().filter(|e| e.child == c.id()).collect();
            ensure!(
                matches!(errs.as_slice(), [e] if matches!(&e.kind, ChildErrorKind::Remote(r)
                    if r.kind == RemoteErrorKind::Error && r.message.contains("assertion failed"))),
                "{}: expected exactly one remote error, got {errs:?}",
                c.id()
            );
        }
        ensure!(
            matches!(report.cause, Some(TeardownCause::ChildFailed(_))),
            "cause {:?}, expected ChildFailed",
            report.cause
        );
        let took = duration(&report)?;
        let bound = t.teardown_bound(method);
        ensure!(
            took <= bound,
            "teardown took {took:?}, more than one bound {bound:?}"
        );
        Ok(format!(
            "{} remote errors, one per child; teardown took {took:?} (bound {bound:?}), \
             whole run {wall:?}",
            report.errors.len()
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 4. Cancel while a grandchild sleeps.

/// Cancel a child that supervises a grandchild stuck in a blocking sleep: the child tears
/// its own nursery down (the grandchild is killed there) and acks; no grandchild survives.
pub fn cancel_grandchild_sleeping(method: SpawnMethod) -> Verdict {
    grandchild_scenario(method, false)
}

/// As [`cancel_grandchild_sleeping`], but the root's cancel-ack timeout is shorter than the
/// child's own teardown, so the child is killed mid-teardown: the grandchild dies with it.
pub fn cancel_grandchild_sleeping_middle_killed(method: SpawnMethod) -> Verdict {
    grandchild_scenario(method, true)
}

fn grandchild_scenario(method: SpawnMethod, kill_middle: bool) -> Verdict {
    settled(method, || {
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
        let ((grandchild, gone_after, stop_took), report) = with_nursery(open(method, t)?, |n| {
            let middle = n.spawn("middle", MIDDLE)?;
            let pid: i32 = n.request(middle, &())?;
            let grandchild = Watched::new(pid);
            ensure!(
                grandchild.start.is_some() && !grandchild.gone(),
                "the grandchild {pid} is not running before the cancel"
            );
            let started = Instant::now();
            n.stop(middle)?;
            let stop_took = started.elapsed();
            let gone_after = wait_gone(&[grandchild], Duration::from_secs(1))
                .map_err(|e| Failure(format!("grandchild survived: {e}")))?;
            Ok((pid, gone_after, stop_took))
        })?;
        no_errors(&report)?;
        let child = only_child(&report)?;
        let expected = if kill_middle {
            forced(method, child.outcome, ForceReason::CancelAckTimedOut)
        } else {
            child.outcome == Some(Outcome::Exited(ExitStatus::Exited(0)))
        };
        ensure!(
            expected,
            "the middle child's outcome is {:?}",
            child.outcome
        );
        Ok(format!(
            "middle {:?} after {stop_took:?}; grandchild {grandchild} gone {gone_after:?} later",
            child.outcome.expect("checked above")
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 5. A child that dies during boot.

/// A child that dies before its handshake: spawn fails with `BootFailed` carrying its exit
/// status: 7 for a process child (its maker calls `_exit(7)`); for a thread child, which
/// cannot exit the process, its maker panics and the status is the panic's (101).
pub fn boot_dies(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let (actor, status) = match method {
            SpawnMethod::Thread => (BOOT_PANICS, ExitStatus::Exited(harrow_model::exit::PANIC)),
            _ => (BOOT_EXITS, ExitStatus::Exited(BOOT_EXIT_CODE)),
        };
        let quiet = QuietPanics::install();
        let (spawned, report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let started = Instant::now();
            let spawned = n.spawn("boot-dies", actor);
            Ok((spawned, started.elapsed()))
        })?;
        drop(quiet);
        let (spawned, took) = spawned;
        match spawned {
            Err(Error::Child(e)) if e.kind == ChildErrorKind::BootFailed(status) => {}
            other => {
                return Err(Failure(format!(
                    "spawn returned {other:?}, expected a boot failure with {status}"
                )));
            }
        }
        ensure!(
            report.errors.len() == 1 && report.errors[0].kind == ChildErrorKind::BootFailed(status),
            "report errors {:?}",
            report.errors
        );
        let child = only_child(&report)?;
        ensure!(
            child.outcome == Some(Outcome::Exited(status)),
            "outcome {:?}, expected Exited({status})",
            child.outcome
        );
        Ok(format!("spawn failed after {took:?}: BootFailed({status})"))
    })
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

// ---------------------------------------------------------------------------------------
// Parent processes (scenarios 6 and 7).

/// The environment variable that makes a re-executed program a scenario's parent process:
/// `<scenario>:<method>:<pid of the process that started it>`.
pub const PARENT_ENV: &str = "HARROW_SCENARIO_PARENT";

/// In a process re-executed as a scenario's "parent", runs that role and returns its exit
/// code; `None` in every other process. Call it right after [`harrow_real::init`] in `main`.
pub fn run_parent_role() -> Option<ExitCode> {
    let value = std::env::var(PARENT_ENV).ok()?;
    let mut parts = value.rsplitn(3, ':');
    let starter: i32 = parts.next()?.parse().ok()?;
    let method = parse_method(parts.next()?)?;
    let scenario = parts.next()?;
    // Only a direct child of the process that set it: not its children, which inherit it.
    let ppid = rustix::process::getppid()?.as_raw_pid();
    if ppid != starter {
        return None;
    }
    let code = match scenario {
        "parent-sigkilled" => sigkilled_parent(method),
        "sigint-during-teardown" => interrupted_parent(method),
        _ => Err(format!("no parent role for scenario `{scenario}`")),
    };
    Some(match code {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harrow scenario parent: {e}");
            ExitCode::FAILURE
        }
    })
}

fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

fn pids_line(tag: &str, pids: &[i32]) -> String {
    let list: Vec<String> = pids.iter().map(ToString::to_string).collect();
    format!("{tag} {}", list.join(" "))
}

/// Our direct children (any thread's), from `/proc/self/task/*/children`.
fn direct_children() -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// The parent of `parent-sigkilled`: 3 children, their pids on stdout, then a (bounded) sleep
/// in which it expects to be killed.
fn sigkilled_parent(method: SpawnMethod) -> Result<(), String> {
    let mut n = Nursery::open_with(config(method, Timeouts::TRACTOR)).map_err(|e| e.to_string())?;
    let mut pids = Vec::new();
    for i in 0..3 {
        let c = n
            .spawn(&format!("orphan{i}"), DOUBLE)
            .map_err(|e| e.to_string())?;
        pids.push(n.pid(c).ok_or("a process child has a pid")?);
    }
    say(&pids_line("CHILDREN", &pids))?;
    say(&pids_line("DIRECT", &direct_children()))?;
    std::thread::sleep(Duration::from_secs(30));
    let _ = n.teardown();
    Err("not killed within 30 s".into())
}

/// The parent of `sigint-during-teardown`: 3 stuck children; it announces its teardown,
/// tears down (SIGINT arrives meanwhile), prints the report and exits 0.
fn interrupted_parent(method: SpawnMethod) -> Result<(), String> {
    let mut n = Nursery::open_with(config(method, short_timeouts()).with_handle_sigint(true))
        .map_err(|e| e.to_string())?;
    for i in 0..3 {
        n.spawn(&format!("stuck{i}"), STUCK)
            .map_err(|e| e.to_string())?;
    }
    say("TEARDOWN")?;
    let report = n.teardown();
    let outcomes: Vec<String> = report
        .children
        .iter()
        .map(|c| format!("{:?}", c.outcome))
        .collect();
    say(&format!(
        "REPORT cause={:?} took={:?} outcomes={}",
        report.cause,
        report.duration(),
        outcomes.join(",")
    ))
}

/// A parent process we started: killed and reaped when dropped, whatever happened.
struct ParentProcess {
    child: std::process::Child,
    out: std::process::ChildStdout,
    buf: Vec<u8>,
}

impl ParentProcess {
    fn start(scenario: &str, method: SpawnMethod) -> Result<ParentProcess, Failure> {
        let mut child = Command::new("/proc/self/exe")
            .env(
                PARENT_ENV,
                format!("{scenario}:{method}:{}", std::process::id()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Failure(format!("start the parent process: {e}")))?;
        let out = child.stdout.take().expect("piped");
        let parent = ParentProcess {
            child,
            out,
            buf: Vec::new(),
        };
        sys::set_nonblocking(parent.out.as_fd(), true)
            .map_err(|e| Failure(format!("parent's stdout: {e}")))?;
        Ok(parent)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the parent prints, waiting up to `bound`; `None` at end of stream.
    fn line(&mut self, bound: Duration) -> Result<Option<String>, Failure> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                return Ok(Some(String::from_utf8_lossy(&line).trim_end().to_owned()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "the parent printed no line within {bound:?}"
            );
            let _ = sys::wait_readable(self.out.as_fd(), Some(left));
            let mut chunk = [0u8; 4096];
            match self.out.read(&mut chunk) {
                Ok(0) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let line = String::from_utf8_lossy(&self.buf).trim_end().to_owned();
                    self.buf.clear();
                    return Ok(Some(line));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure(format!("read the parent's stdout: {e}"))),
            }
        }
    }

    /// The next line, which must start with `tag`; its words after the tag.
    fn expect(&mut self, tag: &str, bound: Duration) -> Result<Vec<String>, Failure> {
        match self.line(bound)? {
            Some(line) if line.split_whitespace().next() == Some(tag) => {
                Ok(line.split_whitespace().skip(1).map(str::to_owned).collect())
            }
            other => Err(Failure(format!(
                "expected a {tag} line from the parent, got {other:?}"
            ))),
        }
    }

    /// Waits up to `bound` for it to exit (and reaps it); its status, or `None` if it runs on.
    fn wait(&mut self, bound: Duration) -> Result<Option<std::process::ExitStatus>, Failure> {
        let deadline = Instant::now() + bound;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(Some(status)),
                Ok(None) if Instant::now() >= deadline => return Ok(None),
                Ok(None) => std::thread::sleep(ms(1)),
                Err(e) => return Err(Failure(format!("wait for the parent: {e}"))),
            }
        }
    }
}

impl Drop for ParentProcess {
    fn drop(&mut self) {
        // Ours and unreaped (or already reaped, then this is a no-op): kill, then reap.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn parse_pids(words: &[String]) -> Result<Vec<i32>, Failure> {
    words
        .iter()
        .map(|w| {
            w.parse::<i32>()
                .map_err(|_| Failure(format!("`{w}` is no pid")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// 6. The parent SIGKILLed.

/// A parent process with 3 children (by `method`) is SIGKILLed: within 1 s, none of its
/// children (nor any other process it had started, such as its fork server) is alive.
pub fn parent_sigkilled(method: SpawnMethod) -> Verdict {
    let mut parent = ParentProcess::start("parent-sigkilled", method)?;
    let children = parse_pids(&parent.expect("CHILDREN", Duration::from_secs(20))?)?;
    let direct = parse_pids(&parent.expect("DIRECT", Duration::from_secs(5))?)?;
    ensure!(children.len() == 3, "expected 3 children, got {children:?}");
    let mut watched: Vec<Watched> = children.iter().map(|&p| Watched::new(p)).collect();
    watched.extend(direct.iter().map(|&p| Watched::new(p)));
    ensure!(
        watched.iter().all(|w| !w.gone()),
        "a child is gone before the kill: {watched:?}"
    );
    parent
        .child
        .kill()
        .map_err(|e| Failure(format!("SIGKILL the parent: {e}")))?;
    let status = parent
        .wait(Duration::from_secs(5))?
        .ok_or("the parent survived SIGKILL for 5 s")?;
    let gone = wait_gone(&watched, Duration::from_secs(1))?;
    let others = direct.iter().filter(|p| !children.contains(p)).count();
    Ok(format!(
        "parent {status}; its 3 children{} gone {gone:?} later",
        if others > 0 {
            format!(" and {others} other process(es) it started")
        } else {
            String::new()
        }
    ))
}

// ---------------------------------------------------------------------------------------
// 7. SIGINT during teardown.

/// A parent process tears down 3 stuck children; SIGINT arrives meanwhile. It must exit 0,
/// having printed its report (whose cause is now `Interrupted`), within
/// `cancel_ack + grace + 200 ms` of the SIGINT.
pub fn sigint_during_teardown(method: SpawnMethod) -> Verdict {
    let mut parent = ParentProcess::start("sigint-during-teardown", method)?;
    parent.expect("TEARDOWN", Duration::from_secs(20))?;
    // Into the teardown: cancels are out, no ack will come.
    std::thread::sleep(ms(50));
    let pid = nix::unistd::Pid::from_raw(parent.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
        .map_err(|e| Failure(format!("SIGINT the parent: {e}")))?;
    let sent = Instant::now();
    let t = short_timeouts();
    let bound = t.teardown_bound(method) + ms(200);
    let status = parent.wait(bound)?;
    let took = sent.elapsed();
    let status = status.ok_or_else(|| {
        Failure(format!(
            "the parent did not exit within {bound:?} of SIGINT"
        ))
    })?;
    ensure!(status.success(), "the parent exited with {status}");
    let report = parent.expect("REPORT", Duration::from_secs(1))?.join(" ");
    ensure!(
        report.contains("cause=Some(Interrupted)"),
        "the report does not show the interrupt: {report}"
    );
    Ok(format!(
        "exited 0 {took:?} after SIGINT (bound {bound:?}); report: {report}"
    ))
}

// ---------------------------------------------------------------------------------------
// 8. A killed child leaves the registry.

/// A stuck child is stopped (killed, or abandoned for a thread) by the escalation; once
/// `stop` returns its name is not in the registry, another child can take the name, and
/// after that one is stopped too the name is free again.
pub fn killed_not_in_registry(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let t = short_timeouts();
        let name = "registered";
        let ((), report) = with_nursery(open(method, t)?, |n| {
            let first = n.spawn(name, STUCK)?;
            ensure!(
                n.lookup(name) == Some(first),
                "lookup before the stop: {:?}",
                n.lookup(name)
            );
            n.stop(first)?;
            ensure!(
                n.lookup(name).is_none(),
                "the stopped child is still registered: {:?}",
                n.lookup(name)
            );
            let second = n
                .spawn(name, STUCK)
                .map_err(|e| Failure(format!("the name was not freed: {e}")))?;
            ensure!(
                n.lookup(name) == Some(second),
                "lookup of the second: {:?}",
                n.lookup(name)
            );
            n.stop(second)?;
            ensure!(
                n.lookup(name).is_none(),
                "the second stopped child is still registered"
            );
            Ok(())
        })?;
        no_errors(&report)?;
        ensure!(report.children.len() == 2, "{:?}", report.children);
        for c in &report.children {
            ensure!(
                forced(method, c.outcome, ForceReason::CancelAckTimedOut),
                "outcome {:?}",
                c.outcome
            );
        }
        Ok(format!(
            "{:?} twice; the name left the registry each time",
            report.children[0].outcome.expect("checked above")
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 9. A malformed frame.

/// A child writes garbage on its channel: the nursery reports a typed
/// `Protocol(Malformed(..))` error, closes its end, and the child ends (it sees EOF and
/// exits, or is killed after the grace) within the teardown bound.
pub fn malformed_frame(method: SpawnMethod) -> Verdict {
    let t = short_timeouts();
    let started = Instant::now();
    let (seen, report) = with_nursery(open(method, t)?, |n| {
        let child = n.spawn("garbler", GARBLER)?;
        // The garbage precedes any reply; the request either fails on it or is refused
        // because the violation was already handled.
        match n.request_bytes(child, vec![1, 2, 3]) {
            Err(Error::Child(e)) => Ok(e.kind),
            Err(Error::Op(_)) => n
                .take_failures()
                .into_iter()
                .next()
                .map(|e| e.kind)
                .ok_or_else(|| Failure("the request was refused, but no failure".into())),
            other => Err(Failure(format!("the request returned {other:?}"))),
        }
    })?;
    let took = started.elapsed();
    ensure!(
        matches!(
            &seen,
            ChildErrorKind::Protocol(ProtocolViolation::Malformed(_))
        ),
        "the request saw {seen:?}, expected a malformed frame"
    );
    ensure!(
        matches!(report.errors.as_slice(), [e] if e.kind == seen),
        "report errors {:?}",
        report.errors
    );
    let child = only_child(&report)?;
    ensure!(
        matches!(
            child.outcome,
            Some(Outcome::Exited(_) | Outcome::Killed { .. })
        ),
        "outcome {:?}",
        child.outcome
    );
    let bound = t.teardown_bound(method) + Duration::from_secs(1);
    ensure!(took <= bound, "took {took:?}, more than {bound:?}");
    Ok(format!(
        "{}; child {:?}; whole run {took:?}",
        report.errors[0],
        child.outcome.expect("checked above")
    ))
}

// ---------------------------------------------------------------------------------------
// 9b. Large payloads.

/// Byte vectors from empty to the largest a frame holds echo intact, each larger than the
/// socket buffer so both sides must wait for room mid-frame (the parent without blocking its
/// event loop); a request over the limit is refused before anything is sent, a reply over it
/// comes back as a remote error; the channel is in step after each, and the child exits 0.
pub fn large_payloads(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let limit = harrow_model::wire::max_payload(harrow_model::wire::DEFAULT_MAX_FRAME);
        // postcard prefixes a byte vector with its length as a varint: 3 bytes here.
        let largest = limit as usize - 3;
        let ((), report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let echo = n.spawn("echo", ECHO_BYTES)?;
            for len in [0, 1, 4095, 4097, 300_000, largest] {
                let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let back: Vec<u8> = n.request(echo, &sent)?;
                ensure!(
                    back == sent,
                    "{len} bytes came back as {} other bytes",
                    back.len()
                );
            }
            match n.request::<Vec<u8>, Vec<u8>>(echo, &vec![0; largest + 1]) {
                Err(Error::Op(harrow_model::error::ChildOpError::PayloadTooLarge {
                    max, ..
                })) if max == limit => {}
                other => {
                    return Err(Failure(format!(
                        "a request one byte over the limit returned {other:?}"
                    )));
                }
            }
            let grow = n.spawn("grow", GROW)?;
            match n.request::<u32, Vec<u8>>(grow, &(2 * limit)) {
                Err(Error::Remote { error, .. }) if error.message.contains("payload limit") => {}
                other => {
                    return Err(Failure(format!(
                        "a reply twice the limit returned {:?}",
                        other.map(|v| v.len())
                    )));
                }
            }
            let fits: Vec<u8> = n.request(grow, &(limit - 3))?;
            ensure!(
                fits.len() == largest,
                "{} bytes, expected {largest}",
                fits.len()
            );
            let back: Vec<u8> = n.request(echo, &vec![7u8; 10])?;
            ensure!(back == [7; 10], "after the refusals the echo gave {back:?}");
            Ok(())
        })?;
        no_errors(&report)?;
        all_exited_0(&report, 2)?;
        Ok(format!(
            "0 to {largest} bytes echoed; over the limit refused both ways; teardown took {:?}",
            duration(&report)?
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 9c. A request timeout.

/// A request the child takes 400 ms to answer, asked with a 50 ms timeout, fails with
/// `TimedOut` after 50 ms (not the 400); the next request gets its own answer, not the late
/// one; the child exits 0 at teardown.
pub fn request_timeout(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let timeout = ms(50);
        let ((took, next), report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let child = n.spawn("slow", SLOW)?;
            let started = Instant::now();
            match n.request_within::<u64, u64>(child, &400, timeout) {
                Err(Error::TimedOut { waited, .. }) if waited == timeout => {}
                other => return Err(Failure(format!("a 400 ms request returned {other:?}"))),
            }
            let took = started.elapsed();
            let next: u64 = n.request(child, &1u64)?;
            // The late reply came before the next one (the child answers in order): dropped.
            ensure!(
                harrow_real::internals::unclaimed_replies(n) == 0,
                "{} replies held after every answer was claimed or dropped",
                harrow_real::internals::unclaimed_replies(n)
            );
            Ok((took, next))
        })?;
        ensure!(
            took >= timeout && took < ms(300),
            "the timed-out request returned after {took:?}, expected 50 ms"
        );
        ensure!(
            next == 1,
            "the next request was answered with {next}, the late reply"
        );
        no_errors(&report)?;
        all_exited_0(&report, 1)?;
        Ok(format!(
            "timed out after {took:?}; the next request got its own answer"
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 9d. A long-lived nursery.

/// The descriptors this process has open.
fn open_fd_count() -> Result<usize, Failure> {
    let mut fds = [0; 4096];
    sys::list_open_fds(&mut fds).map_err(|e| Failure(format!("list /proc/self/fd: {e}")))
}

/// Spawns and stops 50 children one after another in one nursery: once the first is gone,
/// the process's descriptor count stays where it was (a finished child's pidfd and channel
/// are closed when it is reaped and closed, not when the nursery ends), and every child
/// exits 0.
pub fn long_lived_nursery(method: SpawnMethod) -> Verdict {
    settled(method, || {
        const ROUNDS: usize = 50;
        let ((first, last), report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let mut counts = Vec::with_capacity(ROUNDS);
            for i in 0..ROUNDS {
                let c = n.spawn(&format!("c{i}"), DOUBLE)?;
                let four: u64 = n.request(c, &2u64)?;
                ensure!(four == 4, "2 * 2 came back as {four}");
                n.stop(c)?;
                counts.push(open_fd_count()?);
            }
            Ok((counts[0], counts[ROUNDS - 1]))
        })?;
        ensure!(
            last == first,
            "{first} descriptors open after the first child was stopped, {last} after the \
             {ROUNDS}th: finished children keep descriptors"
        );
        no_errors(&report)?;
        all_exited_0(&report, ROUNDS)?;
        Ok(format!(
            "{ROUNDS} children one after another; {last} descriptors open throughout"
        ))
    })
}

// ---------------------------------------------------------------------------------------
// 10a. Fork refused in a multi-threaded process.

/// Expected failure: with a second thread alive, plain `Fork` is refused with
/// `SpawnError::MethodRefused` whose message names `ForkServer`.
pub fn fork_refused_multithreaded(method: SpawnMethod) -> Verdict {
    let baseline = threads()?;
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = wait.recv();
    });
    let result = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
        Ok(n.spawn("refused", DOUBLE))
    });
    drop(stop);
    let _ = thread.join();
    settle_threads(baseline)?;
    let (spawned, report) = result?;
    ensure!(
        report.children.is_empty(),
        "a child was recorded: {:?}",
        report.children
    );
    match spawned {
        Err(Error::Spawn(SpawnError::MethodRefused(r))) if r.to_string().contains("ForkServer") => {
            Ok(format!("refused as expected: {r}"))
        }
        other => Err(Failure(format!(
            "expected a refusal naming ForkServer, got {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// 10b. The lost EOF without the fd scrub.

/// Expected failure: a Fork child forked *without* the descriptor scrub (B) inherits our end
/// of an older sibling's channel (A's), so when we close that end, A never sees EOF while B
/// lives; once B is stopped, A's EOF arrives and it exits.
///
/// A is forked by a standard nursery; B by a second nursery whose prelude skips the scrub
/// (A itself must be scrubbed: unscrubbed, it would hold our end of its own channel). We
/// close our end of A's channel the way the nursery does on a protocol violation: asked for
/// it, A writes garbage, we close, and A (which waits for EOF) should exit at once. Descriptor 3 is kept
/// busy first: were our end of A's channel at 3, B's move of its own channel onto 3 would
/// close B's copy of it by accident and hide the bug.
pub fn lost_eof_unscrubbed(method: SpawnMethod) -> Verdict {
    let placeholders = occupy_fd_3()?;
    let verdict = lost_eof(method);
    drop(placeholders);
    verdict
}

/// Opens `/dev/null` until descriptor 3 is taken; the files keep it so.
fn occupy_fd_3() -> Result<Vec<std::fs::File>, Failure> {
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut fds = [0; 256];
        let n = sys::list_open_fds(&mut fds).map_err(|e| Failure(e.to_string()))?;
        if fds[..n.min(fds.len())].contains(&sys::CHILD_CHANNEL_FD) {
            return Ok(held);
        }
        held.push(std::fs::File::open("/dev/null").map_err(|e| Failure(e.to_string()))?);
    }
    Err("could not occupy descriptor 3".into())
}

fn lost_eof(method: SpawnMethod) -> Verdict {
    // A long grace: the nursery must not kill A while we watch for its EOF.
    let t = Timeouts {
        kill_grace: Duration::from_secs(10),
        ..Timeouts::TRACTOR
    };
    let mut scrubbed = open(method, t)?;
    let mut unscrubbed = open(method, t)?;
    harrow_real::internals::without_fd_scrub(&mut unscrubbed);
    let watched = (|| {
        // A writes its garbage only when asked, so that B is surely forked before we close
        // our end of A's channel (with garbage in its start, the violation could be handled
        // already in A's spawn, before B exists).
        let a = scrubbed.spawn("a", GARBLER_ON_REQUEST)?;
        let a_pid = scrubbed.pid(a).ok_or("A has no pid")?;
        let b = unscrubbed.spawn("b", DOUBLE)?;
        // A's garbage makes the nursery close its end of A's channel (a graceful stop).
        match scrubbed.request_bytes(a, vec![0]) {
            Err(Error::Child(_) | Error::Op(_)) => {}
            other => return Err(Failure(format!("A's request returned {other:?}"))),
        }
        let a_proc = Watched::new(a_pid);
        let while_b_lives = poll(ms(400), || a_proc.exited());
        ensure!(
            !while_b_lives,
            "A saw its EOF while B lived: the lost EOF did not reproduce"
        );
        unscrubbed.stop(b)?;
        let stopped = Instant::now();
        let after_b = poll(Duration::from_secs(2), || a_proc.exited());
        ensure!(after_b, "A did not exit within 2 s of B being stopped");
        Ok(stopped.elapsed())
    })();
    let b_report = unscrubbed.teardown();
    let a_report = scrubbed.teardown();
    let after = watched?;
    let a_outcome = only_child(&a_report)?.outcome;
    ensure!(
        matches!(a_outcome, Some(Outcome::Exited(_))),
        "A was stopped by force, not by its EOF: {a_outcome:?}"
    );
    Ok(format!(
        "A did not see EOF within 400 ms while B lived; it exited {after:?} after B was \
         stopped (A {:?}, B {:?})",
        a_outcome.expect("checked above"),
        only_child(&b_report)?.outcome
    ))
}

// ---------------------------------------------------------------------------------------
// `harrow smoke`.

/// What `harrow smoke` should do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmokeArgs {
    /// List the scenarios and the methods each runs under.
    pub list: bool,
    /// Run every scenario.
    pub all: bool,
    /// Run this scenario.
    pub scenario: Option<String>,
    /// Only under this method (`fork`, `fork-server`, `exec`, `thread`).
    pub method: Option<String>,
}

/// `harrow smoke`: runs scenarios and prints one line each; exit 0 when every one had its
/// expected outcome (expected failures included), 1 when one did not, 2 on a usage error.
pub fn smoke(args: &SmokeArgs) -> ExitCode {
    if args.list {
        for s in SCENARIOS {
            let methods: Vec<String> = s.methods.iter().map(ToString::to_string).collect();
            println!("{:<42} [{}]", s.name, methods.join(", "));
            println!("    {}", s.about);
            if !s.not_for_others.is_empty() {
                println!("    not for the other methods: {}", s.not_for_others);
            }
        }
        return ExitCode::SUCCESS;
    }
    let method = match args.method.as_deref().map(|m| (m, parse_method(m))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((m, None)) => {
            eprintln!("harrow smoke: unknown method `{m}`: use fork, fork-server, exec or thread");
            return crate::exit::usage();
        }
    };
    let selected: Vec<&Scenario> = match (&args.scenario, args.all) {
        (Some(name), _) => match find(name) {
            Some(s) => vec![s],
            None => {
                eprintln!("harrow smoke: no scenario `{name}`; `harrow smoke --list` lists them");
                return crate::exit::usage();
            }
        },
        (None, true) => SCENARIOS.iter().collect(),
        (None, false) => {
            eprintln!("harrow smoke: give --scenario NAME, --all or --list");
            return crate::exit::usage();
        }
    };
    let mut failed = 0;
    let mut ran = 0;
    for s in selected {
        for &m in s.methods.iter().filter(|m| method.is_none_or(|x| x == **m)) {
            ran += 1;
            let started = Instant::now();
            let verdict = (s.run)(m);
            let took = started.elapsed();
            let (verdict, text) = match verdict {
                Ok(summary) => ("ok  ", summary),
                Err(e) => {
                    failed += 1;
                    ("FAIL", e.0)
                }
            };
            let took = format!("{took:.1?}");
            println!(
                "{verdict}  {:<42} {:<10} {took:>9}  {text}",
                s.name,
                m.to_string()
            );
        }
    }
    if ran == 0 {
        eprintln!("harrow smoke: the scenario does not run under that method");
        return crate::exit::usage();
    }
    println!("{} run, {} as expected, {failed} not", ran, ran - failed);
    crate::exit::verdict(failed == 0)
}
