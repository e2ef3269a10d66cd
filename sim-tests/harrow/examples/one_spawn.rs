//! One Fork spawn and teardown, for tracing: `strace -f target/release/examples/one_spawn`.
use harrow_real::{Nursery, NurseryConfig, SpawnMethod};
fn main() {
    harrow_real::init(harrow::bench::registry());
    let mut n = Nursery::open_with(
        NurseryConfig::default()
            .with_method(SpawnMethod::Fork)
            .with_handle_sigint(false),
    )
    .unwrap();
    let c = n.spawn("warm", "bench-echo").unwrap();
    n.stop(c).unwrap();
    eprintln!("---- measured spawn ----");
    let c = n.spawn("c", "bench-echo").unwrap();
    eprintln!("---- spawned ----");
    n.stop(c).unwrap();
}
