//! Spawn and stop children in a loop, each round beside one raw fork round trip, for
//! profiling the spawn path: `target/perf/examples/spawn_loop fork 1000`, or under
//! `perf stat -e page-faults` / `perf record -g`.
use std::time::{Duration, Instant};

use harrow::baseline::{fork_round, median};
use harrow_real::{Nursery, NurseryConfig, SpawnMethod};

fn main() {
    harrow_real::init(harrow::bench::registry());
    let mut args = std::env::args().skip(1);
    let method = match args.next().as_deref() {
        Some("forkserver") => SpawnMethod::ForkServer,
        Some("exec") => SpawnMethod::Exec,
        Some("thread") => SpawnMethod::Thread,
        _ => SpawnMethod::Fork,
    };
    let count: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut n = Nursery::open_with(
        NurseryConfig::default()
            .with_method(method)
            .with_handle_sigint(false),
    )
    .expect("open a nursery");
    let mut ours: Vec<Duration> = Vec::new();
    let mut raw: Vec<Duration> = Vec::new();
    for i in 0..count {
        let s = Instant::now();
        let c = n.spawn(&format!("c{i}"), "bench-echo").expect("spawn");
        ours.push(s.elapsed());
        n.stop(c).expect("stop");
        raw.push(fork_round().expect("fork round trip"));
    }
    // Only the timing matters here.
    let _ = n.teardown();
    let (h, b) = (median(&mut ours), median(&mut raw));
    eprintln!(
        "{count} spawns: median {:.1} µs to the handshake; fork + _exit + waitid {:.1} µs; {:.2}x",
        h.as_secs_f64() * 1e6,
        b.as_secs_f64() * 1e6,
        h.as_secs_f64() / b.as_secs_f64()
    );
}
