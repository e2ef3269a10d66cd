//! The library example, async: a tokio program spawns a daemon and a run-to-result child
//! through an `AsyncNursery`, sends requests from many tasks at once, and tears down.
//!
//! `cargo run --release -p harrow-real --features tokio --example hello_async`

use std::time::Duration;

use harrow_real::{AsyncNursery, NurseryConfig, Registry, Role, SpawnMethod};

fn registry() -> Registry {
    Registry::new()
        .handler("double", |n: u64| Ok::<u64, String>(n * 2)) // a daemon answering requests
        .main("answer", || Ok::<u64, String>(42)) // a run-to-result actor
}

fn main() {
    // First line of main, before the runtime starts its threads: a re-executed child or the
    // fork server runs its role here and never returns.
    harrow_real::init(registry());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(body());
}

async fn body() {
    // A multi-thread runtime: plain Fork is refused here; ForkServer (the default) is safe.
    let config = NurseryConfig::default().with_method(SpawnMethod::ForkServer);
    let nursery = AsyncNursery::open_with(config).expect("open a nursery");

    let doubler = nursery.spawn("doubler", "double").await.expect("spawn");
    let four: u64 = nursery.request(doubler, &2u64).await.expect("request");
    assert_eq!(four, 4);
    // With a deadline: past it, Err(Error::TimedOut { .. }), and the child keeps running.
    let six: u64 = nursery
        .request_within(doubler, &3u64, Duration::from_secs(5))
        .await
        .expect("request");
    assert_eq!(six, 6);

    // The handle is cheap to clone: a hundred tasks share the nursery, requests in flight
    // together, each answer routed to the task that asked.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100u64 {
        let nursery = nursery.clone();
        tasks.spawn(async move { (n, nursery.request::<u64, u64>(doubler, &n).await) });
    }
    while let Some(done) = tasks.join_next().await {
        let (n, doubled) = done.expect("a task");
        assert_eq!(doubled.expect("request"), 2 * n);
    }

    let answer = nursery
        .spawn_with("answer", "answer", SpawnMethod::Exec, Role::RunToResult)
        .await
        .expect("spawn");
    let value: u64 = nursery.result(answer).await.expect("result");
    assert_eq!(value, 42);

    // Cancel, escalate if need be, reap: every child's outcome and every error.
    let report = nursery.teardown().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.children.len(), 2);
    println!(
        "100 concurrent requests answered; teardown took {:?}",
        report.duration()
    );
}
