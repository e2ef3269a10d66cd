//! `harrow bench --against`: its measuring peer answers batches on request, and a build to
//! compare with that has the trace points compiled in is refused saying how to build it.
//!
//! Everything runs in `harrow` processes of their own, so this test forks nothing itself.

use std::io::Write;
use std::process::{Command, Stdio};

const HARROW: &str = env!("CARGO_BIN_EXE_harrow");

#[test]
fn the_peer_says_it_is_traced_and_answers_each_batch_or_names_the_error() {
    let mut peer = Command::new(HARROW)
        .arg("bench-peer")
        .env_remove("HARROW_TRACE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the harrow binary runs");
    let mut stdin = peer.stdin.take().expect("piped");
    stdin
        .write_all(b"round-trip 20\nno-such-figure 3\nround-trip\n")
        .expect("the peer reads its stdin");
    drop(stdin);
    let out = peer
        .wait_with_output()
        .expect("the peer exits at end of input");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0], "trace-compiled-in true",
        "the default build traces"
    );
    let nanos: u64 = lines[1].parse().expect("a batch's median in nanoseconds");
    assert!(nanos > 0, "{text}");
    assert_eq!(lines[2], "error: no figure named `no-such-figure`");
    assert!(lines[3].contains("is not `<figure> <samples>`"), "{text}");
}

#[test]
fn a_build_to_compare_with_the_trace_points_compiled_in_is_refused() {
    let out = Command::new(HARROW)
        .args(["bench", "--rounds", "1", "--against", HARROW])
        .output()
        .expect("the harrow binary runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has the trace points compiled in"), "{err}");
    assert!(err.contains("--no-default-features"), "{err}");
}
