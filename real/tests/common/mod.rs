//! A tiny libtest-compatible harness for the `sys_*` tests (`harness = false`).
//!
//! Why not libtest: libtest runs every test on a spawned thread, so a test process always has
//! at least two threads, and `sys::fork_child` rightly refuses to fork a multi-threaded
//! process. This harness runs each test on the main thread, so the tests exercise the very
//! API the backend uses. It speaks just enough of libtest's command line for
//! `cargo nextest` (`--list --format terse [--ignored]`, `--exact NAME`, `--nocapture`) and
//! for `cargo test` (name filters, `--skip`).
//!
//! Every test holds [`FORK_LOCK`] and runs sequentially, so forks never race with one
//! another even when `cargo test` runs the whole file in one process; after each test the
//! harness asserts that no child process (zombie or live) and no descriptor leaked.

#![allow(dead_code, unreachable_pub)]

use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use harrow_real::sys::{self, ChildProcess, ExitStatus, RecvOutcome, list_open_fds};

/// Held by every test for its whole run: no two tests of one process fork at once.
pub static FORK_LOCK: Mutex<()> = Mutex::new(());

/// A generous bound for things that must happen (a child exiting after SIGKILL, a reply).
pub const MUST: Duration = Duration::from_secs(10);

/// How long to watch for something that must NOT happen.
pub const MUST_NOT: Duration = Duration::from_millis(400);

/// Timeouts short enough that a stuck child is killed within a quarter second of its cancel.
pub const QUICK: harrow_real::Timeouts = harrow_real::Timeouts {
    cancel_ack: Duration::from_millis(100),
    kill_grace: Duration::from_millis(100),
    ..harrow_real::Timeouts::TRACTOR
};

/// One test: a name and a function that panics on failure.
pub struct Test {
    /// The name nextest and cargo test filter on.
    pub name: &'static str,
    /// The test body.
    pub run: fn(),
}

/// Runs the tests selected by the command line; the exit code says whether all passed.
pub fn main(tests: &[Test]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = Options::parse(&args);
    if opts.list {
        if !opts.ignored_only {
            for t in tests {
                println!("{}: test", t.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|t| !opts.ignored_only && opts.selects(t.name))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for t in &selected {
        let ok = run_one(t);
        println!("test {} ... {}", t.name, if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(t.name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {} passed; {} failed",
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one test under the fork lock, then checks for leaked children and descriptors.
fn run_one(t: &Test) -> bool {
    let _guard = FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let before = open_fds();
    let passed = catch_unwind(AssertUnwindSafe(t.run)).is_ok();
    let children = live_children();
    let after = open_fds();
    if !children.is_empty() {
        eprintln!("{}: left child processes behind: {children:?}", t.name);
    }
    if before != after {
        eprintln!("{}: descriptors before {before:?}, after {after:?}", t.name);
    }
    passed && children.is_empty() && before == after
}

/// The parsed command line.
struct Options {
    list: bool,
    ignored_only: bool,
    exact: bool,
    filters: Vec<String>,
    skips: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        const TAKES_VALUE: &[&str] = &[
            "--test-threads",
            "--format",
            "--color",
            "--logfile",
            "-Z",
            "--shuffle-seed",
        ];
        let mut o = Options {
            list: false,
            ignored_only: false,
            exact: false,
            filters: vec![],
            skips: vec![],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--list" => o.list = true,
                "--ignored" => o.ignored_only = true,
                "--exact" => o.exact = true,
                "--skip" => o.skips.extend(it.next().cloned()),
                flag if TAKES_VALUE.contains(&flag) => {
                    it.next();
                }
                flag if flag.starts_with('-') => {}
                name => o.filters.push(name.to_owned()),
            }
        }
        o
    }

    fn selects(&self, name: &str) -> bool {
        let hit = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}

/// This process's open descriptors.
pub fn open_fds() -> Vec<RawFd> {
    let mut buf = [0; 256];
    let n = list_open_fds(&mut buf).expect("list /proc/self/fd");
    assert!(n <= buf.len(), "more than {} descriptors open", buf.len());
    buf[..n].to_vec()
}

/// The children of every thread of this process (live or zombie), from
/// `/proc/self/task/*/children`.
pub fn live_children() -> Vec<i32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let path = task.expect("task entry").path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids
}

/// A child body: waits for end of stream on its channel, then exits 0.
pub fn exit_at_eof(ch: std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsFd;
    let mut buf = [0u8; 64];
    loop {
        match sys::recv_timeout(ch.as_fd(), &mut buf, None) {
            Ok(RecvOutcome::Data(_)) => continue,
            Ok(RecvOutcome::Eof | RecvOutcome::PeerGone) => return 0,
            Ok(RecvOutcome::WouldBlock) | Err(_) => return 1,
        }
    }
}

/// Waits up to [`MUST`] for `child` to exit and reaps it.
pub fn reap(child: &mut ChildProcess) -> ExitStatus {
    match child.wait_timeout(Some(MUST)).expect("wait for the child") {
        sys::ReapOutcome::Reaped(status) => status,
        sys::ReapOutcome::Running => panic!("child {} did not exit within {MUST:?}", child.pid()),
    }
}

/// Sends all of `bytes` on `fd`, waiting as needed; panics unless everything went out.
pub fn send(fd: std::os::fd::BorrowedFd<'_>, bytes: &[u8]) {
    assert_eq!(
        sys::send_all_timeout(fd, bytes, Some(MUST)).expect("send"),
        sys::SendOutcome::Complete
    );
}

/// Receives exactly `n` bytes from `fd`, waiting up to [`MUST`].
pub fn recv_n(fd: std::os::fd::BorrowedFd<'_>, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    assert_eq!(
        sys::recv_exact_timeout(fd, &mut buf, Some(MUST)).expect("recv"),
        RecvOutcome::Data(n)
    );
    buf
}

/// Encodes descriptor numbers for a report over a channel: a count, then each as 4 bytes.
pub fn encode_fds(fds: &[RawFd]) -> Vec<u8> {
    let mut out = (fds.len() as u32).to_le_bytes().to_vec();
    for fd in fds {
        out.extend_from_slice(&fd.to_le_bytes());
    }
    out
}

/// Receives a report written by [`encode_fds`].
pub fn recv_fds(fd: std::os::fd::BorrowedFd<'_>) -> Vec<RawFd> {
    let count = u32::from_le_bytes(recv_n(fd, 4).try_into().unwrap()) as usize;
    let raw = recv_n(fd, count * 4);
    raw.chunks_exact(4)
        .map(|c| RawFd::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The descriptors a child should have after the prelude: the parent's stdio among 0..=2,
/// and the channel at 3.
pub fn expected_child_fds() -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = open_fds().into_iter().filter(|&fd| fd <= 2).collect();
    fds.push(sys::CHILD_CHANNEL_FD);
    fds
}

/// Reads a hex signal mask line ("SigIgn:", ...) from /proc/self/status.
#[allow(dead_code)]
pub fn status_mask(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
}
