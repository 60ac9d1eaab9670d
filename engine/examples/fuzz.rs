//! Long fuzz run of the parser and the line framer:
//! `cargo run --release -p tau-engine --example fuzz -- [N] [SEED]`.
//! Inputs come from a seeded ChaCha stream, so a failure replays with the same seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::Instant;
use tau_engine::fuzzing::{framer_one, fuzz_driver, parse_one};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0u8; 512];
    let t0 = Instant::now();
    let mut parsed = 0usize;
    for _ in 0..n {
        let len = rng.next_u32() as usize % 256;
        rng.fill_bytes(&mut buf[..len]);
        parsed += parse_one(&buf[..len]) as usize;
    }
    let parse_s = t0.elapsed().as_secs_f64();
    println!(
        "parser: {n} inputs, {parsed} parsed, {:.1}s, {:.0} inputs/s",
        parse_s,
        n as f64 / parse_s
    );
    let frames = n / 10;
    let t1 = Instant::now();
    let mut d = fuzz_driver();
    for i in 0..frames {
        if i % 10_000 == 0 {
            d = fuzz_driver();
        }
        let len = rng.next_u32() as usize % 512;
        rng.fill_bytes(&mut buf[..len]);
        framer_one(&mut d, 1 + i as u64, &buf[..len]);
    }
    let fs = t1.elapsed().as_secs_f64();
    println!(
        "framer: {frames} streams, {:.1}s, {:.0} streams/s",
        fs,
        frames as f64 / fs
    );
}
