//! A short fuzz run on every `cargo test`; the long run is
//! `cargo run --release -p tau-engine --example fuzz -- 3000000` (see docs/TESTING.md).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tau_engine::fuzzing::{framer_one, fuzz_driver, parse_one};

fn inputs(seed: u64, n: usize, max: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(move |_| {
        let len = (rng.next_u32() as usize) % max;
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        v
    })
}

#[test]
fn parser_survives_arbitrary_input() {
    let parsed = inputs(1, 20_000, 200).filter(|d| parse_one(d)).count();
    // The token soup must reach valid statements too, or the fuzzer tests little.
    assert!(parsed > 100, "only {parsed} inputs parsed");
}

#[test]
fn framer_survives_arbitrary_streams() {
    let mut d = fuzz_driver();
    for (i, data) in inputs(2, 2_000, 400).enumerate() {
        framer_one(&mut d, 1000 + i as u64, &data);
    }
}
