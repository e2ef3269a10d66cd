//! Runs harrow's benchmark: `cargo run --release -p harrow-real --example bench [ROUNDS]`
//! (the same as `harrow bench`).

fn main() {
    harrow_real::init(harrow_real::bench::registry());
    let rounds = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    match harrow_real::bench::run(rounds) {
        Ok((figures, notes)) => print!("{}", harrow_real::bench::render(&figures, &notes)),
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}
