//! Spawn and stop `N` children in a loop, for profiling the spawn path:
//! `perf stat -e page-faults,context-switches target/release/examples/spawn_loop fork 1000`.
use std::time::Instant;

use harrow_real::{Nursery, NurseryConfig, SpawnMethod};

fn main() {
    harrow_real::init(harrow_real::bench::registry());
    let mut args = std::env::args().skip(1);
    let method = match args.next().as_deref() {
        Some("forkserver") => SpawnMethod::ForkServer,
        Some("exec") => SpawnMethod::Exec,
        Some("thread") => SpawnMethod::Thread,
        _ => SpawnMethod::Fork,
    };
    let count: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut n = Nursery::open_with(NurseryConfig {
        method,
        handle_sigint: false,
        ..NurseryConfig::default()
    })
    .expect("open a nursery");
    let mut spawning = std::time::Duration::ZERO;
    let t = Instant::now();
    for i in 0..count {
        let s = Instant::now();
        let c = n.spawn(&format!("c{i}"), "bench-echo").expect("spawn");
        spawning += s.elapsed();
        n.stop(c).expect("stop");
    }
    let all = t.elapsed();
    n.teardown();
    eprintln!(
        "{count} spawns: {:.1} µs each to the handshake, {:.1} µs each with the stop",
        spawning.as_secs_f64() * 1e6 / f64::from(count),
        all.as_secs_f64() * 1e6 / f64::from(count)
    );
}
