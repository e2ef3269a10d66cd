//! The parent-death guarantee is the process's, whichever thread spawned the child: a child
//! outlives the thread that spawned it, and dies with the process that did.
//!
//! Only `Exec` is concerned: `Fork` is refused in a process with more than one thread (so the
//! forking thread is the main thread, which lives as long as the process), and a `ForkServer`
//! child's parent is the server's one thread.

mod common;

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use common::{MUST, MUST_NOT, Test, reap, recv_n, send};
use harrow_real::sys::{self, ExitStatus, Pid, Pidfd, ReapOutcome};
use harrow_real::{Nursery, NurseryConfig, Registry, SpawnMethod};

/// Doubles a number; asked 0, first sleeps (longer than any wait of the test), deaf to its
/// channel: then only its death signal can end it.
const DOUBLE: &str = "double";

fn registry() -> Registry {
    Registry::new().handler(DOUBLE, |n: u64| {
        if n == 0 {
            std::thread::sleep(MUST * 6);
        }
        Ok::<u64, String>(n * 2)
    })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    if sys::inherited_role().as_deref() == Some("spawn-from-a-thread") {
        return spawn_from_a_thread_host();
    }
    common::main(&[Test {
        name: "bug_exec_child_killed_when_spawning_thread_exits",
        run: bug_exec_child_killed_when_spawning_thread_exits,
    }])
}

/// A host spawns an `Exec` child from a worker thread that then exits; the child must keep
/// serving. Then, with the child busy (deaf to the end of its channel), the host is
/// SIGKILLed: the child must die of its death signal.
///
/// What went wrong: the child armed `PR_SET_PDEATHSIG`, which Linux fires when the *thread*
/// that spawned it exits; a child spawned from a thread pool, or tokio's blocking pool, was
/// SIGKILLed when that thread ended, and the nursery blamed the child ("exited by itself
/// (signal 9)"). The fix: only a thread that outlives the child spawns it: the main thread
/// directly, any other thread through harrow's spawner thread, which lives as long as a
/// nursery that used it; it dies with the process, so the signal still fires then.
fn bug_exec_child_killed_when_spawning_thread_exits() {
    // The orphaned child is reparented here, so this test reaps it and leaves nothing.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let (ours, theirs) = sys::channel_pair().unwrap();
    let mut host = sys::exec_self("spawn-from-a-thread", &[], theirs).unwrap();
    let len = u32::from_le_bytes(recv_n(ours.as_fd(), 4).try_into().unwrap()) as usize;
    let answer = String::from_utf8(recv_n(ours.as_fd(), len)).unwrap();
    let Some(pid) = answer.strip_prefix("serving ") else {
        panic!("the child did not outlive the thread that spawned it: {answer}");
    };
    // The child is the host's, unreaped while the host lives: the pid names it.
    let child = Pidfd::open(Pid::from_raw(pid.parse().unwrap()).unwrap()).unwrap();
    assert!(!child.wait_exited(Some(Duration::ZERO)).unwrap());
    let _ = host.kill().unwrap();
    assert_eq!(reap(&mut host), ExitStatus::Signaled(libc::SIGKILL));
    assert!(
        child.wait_exited(Some(MUST)).unwrap(),
        "the child outlived its parent process by {MUST:?}"
    );
    match child.try_reap().unwrap() {
        ReapOutcome::Reaped(status) => assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL)),
        ReapOutcome::Running => panic!("a readable pidfd but no exit"),
    }
}

/// Spawns from a worker thread that exits, waits long enough for a death signal to have come,
/// then asks the child, and sets it sleeping; sends `serving <pid>` or what failed, then waits
/// to be killed.
fn spawn_from_a_thread_host() -> ExitCode {
    let channel = sys::adopt_inherited_channel().expect("the test's channel");
    let answer = (|| -> Result<String, String> {
        let mut n = Nursery::open_with(
            NurseryConfig::default()
                .with_method(SpawnMethod::Exec)
                .with_handle_sigint(false),
        )
        .map_err(|e| e.to_string())?;
        let child = std::thread::scope(|s| s.spawn(|| n.spawn("doubler", DOUBLE)).join())
            .map_err(|_| "the spawning thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
        std::thread::sleep(MUST_NOT);
        let four: u64 = n.request(child, &2u64).map_err(|e| e.to_string())?;
        if four != 4 {
            return Err(format!("2 doubled is {four}"));
        }
        let pid = n.pid(child).ok_or("no pid")?;
        // Busy from now on: the answer is not awaited.
        match n.request_within::<u64, u64>(child, &0, Duration::from_millis(1)) {
            Err(harrow_real::Error::TimedOut { .. }) => {}
            other => return Err(format!("asked to sleep, the child answered {other:?}")),
        }
        // Left running: the test kills this process with the child still a child of it.
        std::mem::forget(n);
        Ok(format!("serving {pid}"))
    })()
    .unwrap_or_else(|e| e);
    send(channel.as_fd(), &(answer.len() as u32).to_le_bytes());
    send(channel.as_fd(), answer.as_bytes());
    std::thread::sleep(MUST * 3);
    ExitCode::from(2)
}
