//! Prints the raw baselines once: `cargo run --release -p harrow --example baselines [N]`.

use harrow::baseline;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1000);
    for b in baseline::all(iterations)? {
        println!(
            "{:<36} {:>10.1} µs  (median of {})",
            b.name,
            b.median.as_secs_f64() * 1e6,
            b.iterations
        );
    }
    Ok(())
}
