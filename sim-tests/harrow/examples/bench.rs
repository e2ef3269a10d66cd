//! Runs harrow's benchmark: `cargo run --release -p harrow --example bench [ROUNDS]`
//! (the same as `harrow bench`).

fn main() {
    harrow_real::init(harrow::bench::registry());
    let rounds = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    match harrow::bench::run(rounds) {
        Ok((figures, notes)) => print!("{}", harrow::bench::render(&figures, &notes)),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}
