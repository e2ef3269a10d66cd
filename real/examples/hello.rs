//! Spawns a child by each spawn method, asks it to double a number, and tears it down.
//!
//! `cargo run --release -p harrow-real --example hello`

use harrow_real::{Nursery, NurseryConfig, Registry, SpawnMethod};

fn registry() -> Registry {
    Registry::new().handler("double", |n: u64| Ok::<u64, String>(n * 2))
}

fn main() {
    // First line of main: a re-executed child or the fork server runs its role here.
    harrow_real::init(registry());
    for method in [
        SpawnMethod::Fork,
        SpawnMethod::ForkServer,
        SpawnMethod::Exec,
        SpawnMethod::Thread,
    ] {
        let mut nursery = Nursery::open_with(NurseryConfig::default().with_method(method))
            .expect("open a nursery");
        let child = nursery.spawn("doubler", "double").expect("spawn");
        let four: u64 = nursery.request(child, &2u64).expect("request");
        let report = nursery.teardown();
        let outcome = report.children[0].outcome;
        println!(
            "{method:<10} 2 * 2 = {four}; teardown took {:?}; outcome {outcome:?}",
            report.duration()
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
}
