//! What a child prints arrives, once: a partial line (`print!` without a newline) a child
//! leaves in its buffer at exit, and a partial line its parent had in its buffer at the fork.
//!
//! Each case runs in a host process (this binary, re-executed) whose standard output the test
//! reads to its end; the children inherit it. Thread children share their host's buffer, so
//! neither bug concerns them.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use common::{MUST, Test};
use harrow_real::sys;
use harrow_real::{Nursery, NurseryConfig, Registry, Role, SpawnMethod};

/// The variable that makes a re-executed copy of this binary a host, naming its case.
const HOST_ENV: &str = "HARROW_TEST_OUTPUT_HOST";

fn registry() -> Registry {
    Registry::new()
        .main("print-partial", || {
            print!("child-partial");
            Ok::<u8, String>(0)
        })
        .main("print-line", || {
            println!("child-line");
            Ok::<u8, String>(0)
        })
}

fn main() -> ExitCode {
    harrow_real::init(registry());
    if let Ok(case) = std::env::var(HOST_ENV) {
        return host(&case);
    }
    common::main(&[
        Test {
            name: "bug_child_partial_line_lost_at_exit_fork",
            run: || child_partial_line_arrives(SpawnMethod::Fork),
        },
        Test {
            name: "bug_child_partial_line_lost_at_exit_fork_server",
            run: || child_partial_line_arrives(SpawnMethod::ForkServer),
        },
        Test {
            name: "bug_child_partial_line_lost_at_exit_exec",
            run: || child_partial_line_arrives(SpawnMethod::Exec),
        },
        Test {
            name: "bug_fork_child_repeats_parent_partial_line",
            run: bug_fork_child_repeats_parent_partial_line,
        },
    ])
}

/// A child's `print!` without a newline reaches the host's output.
///
/// What went wrong: a process child leaves by `_exit`, which does not flush Rust's buffered
/// standard output, so a partial line was lost. The fix: the child flushes its standard output
/// before `_exit` (a forked child's parent was single-threaded at the fork, and an exec'd
/// child is a fresh program, so no other thread can hold the lock it takes).
fn child_partial_line_arrives(method: SpawnMethod) {
    let output = run_host(&format!("partial-at-exit:{method}"));
    assert_eq!(output, "child-partial\nEND\n", "{method}");
}

/// A host's partial line, still in its buffer when it forks a child that prints a line,
/// appears once.
///
/// What went wrong: the child inherited the host's buffer, and its own `println!` flushed
/// that copy together with its line, so the host's partial line came out twice. The fix:
/// `fork_child` flushes the standard output before it forks, so the child's copy is empty.
fn bug_fork_child_repeats_parent_partial_line() {
    let output = run_host("parent-partial-at-fork");
    assert_eq!(output, "host-partial|child-line\n|END\n");
}

/// Runs host `case`; returns all it (and its children) wrote to standard output, once it
/// exited 0 and every writer closed the pipe.
fn run_host(case: &str) -> String {
    let mut host = Command::new("/proc/self/exe")
        .env(HOST_ENV, case)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = host.stdout.take().unwrap();
    let deadline = Instant::now() + MUST;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sys::wait_readable(out.as_fd(), Some(left)).unwrap() {
            let _ = host.kill();
            let _ = host.wait();
            panic!("host `{case}`: its output did not end within {MUST:?}");
        }
        match out.read(&mut buf).unwrap() {
            0 => break,
            n => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let status = host.wait().unwrap();
    assert!(status.success(), "host `{case}` ended with {status}");
    String::from_utf8(bytes).unwrap()
}

fn host(case: &str) -> ExitCode {
    let run = |method: SpawnMethod, first: Option<&str>, actor: &str| -> Result<(), String> {
        let mut n = Nursery::open_with(
            NurseryConfig::default()
                .with_method(method)
                .with_handle_sigint(false),
        )
        .map_err(|e| e.to_string())?;
        if let Some(text) = first {
            print!("{text}");
        }
        let child = n
            .spawn_with("printer", actor, method, Role::RunToResult)
            .map_err(|e| e.to_string())?;
        let _: u8 = n.result(child).map_err(|e| e.to_string())?;
        let report = n.teardown();
        match report.errors.first() {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    };
    let outcome = match case.split_once(':') {
        Some(("partial-at-exit", name)) => {
            let methods = [
                SpawnMethod::Fork,
                SpawnMethod::ForkServer,
                SpawnMethod::Exec,
            ];
            match methods.into_iter().find(|m| m.to_string() == name) {
                Some(method) => run(method, None, "print-partial").map(|()| println!("\nEND")),
                None => Err(format!("no method `{name}`")),
            }
        }
        None if case == "parent-partial-at-fork" => {
            run(SpawnMethod::Fork, Some("host-partial|"), "print-line").map(|()| println!("|END"))
        }
        _ => Err(format!("no host case `{case}`")),
    };
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("host `{case}`: {why}");
            ExitCode::from(2)
        }
    }
}
