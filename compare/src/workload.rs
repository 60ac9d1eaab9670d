//! The workload every system runs: the same intervals, layers and queries, from a seed.

/// One layer: what one batch (or one correction) writes.
#[derive(Clone, Debug)]
pub struct Layer {
    pub rows: Vec<(i64, i64, f64)>,
}

#[derive(Clone, Debug)]
pub struct Params {
    /// Base intervals, `[10i, 10i + 10)`.
    pub n: usize,
    /// Rows per ingest batch (one layer each).
    pub batch: usize,
    /// Percent of intervals re-asserted by corrections.
    pub corrections_pct: f64,
    /// Correction layers (odd ones shift their intervals by +3, so they shadow parts of two
    /// base intervals).
    pub correction_layers: usize,
    /// Single-row durable inserts, spread over `clients` connections.
    pub single_rows: usize,
    pub clients: usize,
    /// Timed queries of each kind per repetition (after a 10% untimed warm-up).
    pub queries: usize,
    /// How many of them are cross-checked between all systems.
    pub sample: usize,
    pub reps: usize,
    pub seed: u64,
}

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A value with two decimals: printed and parsed the same everywhere.
    pub fn value(&mut self) -> f64 {
        (self.below(200_000) as i64 - 100_000) as f64 / 100.0
    }
}

/// The base layers (ingest), then the correction layers.
pub fn layers(p: &Params) -> (Vec<Layer>, Vec<Layer>) {
    let mut r = Rng::new(p.seed);
    let base: Vec<(i64, i64, f64)> = (0..p.n as i64)
        .map(|i| (i * 10, i * 10 + 10, r.value()))
        .collect();
    let base = base
        .chunks(p.batch.max(1))
        .map(|c| Layer { rows: c.to_vec() })
        .collect();
    let per = ((p.n as f64 * p.corrections_pct / 100.0) / p.correction_layers.max(1) as f64).round()
        as usize;
    let corrections = (0..p.correction_layers)
        .map(|k| {
            let shift = if k % 2 == 1 { 3 } else { 0 };
            let mut slots: Vec<i64> = (0..per).map(|_| r.below(p.n as u64) as i64).collect();
            slots.sort_unstable();
            slots.dedup();
            Layer {
                rows: slots
                    .into_iter()
                    .map(|i| (i * 10 + shift, i * 10 + 10 + shift, r.value()))
                    .collect(),
            }
        })
        .collect();
    (base, corrections)
}

/// The queries of one repetition: point times, range windows (~100 intervals), twavg
/// windows (~1,000 intervals) and AS OF points.
pub struct Queries {
    pub points: Vec<i64>,
    pub ranges: Vec<(i64, i64)>,
    pub twavgs: Vec<(i64, i64)>,
    pub as_of: Vec<i64>,
}

pub fn queries(p: &Params, rep: usize) -> Queries {
    let mut r = Rng::new(p.seed ^ (0x5157 + rep as u64 * 7919));
    let span = p.n as u64 * 10;
    let window = |r: &mut Rng, len: u64| {
        let s = r.below(span.saturating_sub(len).max(1)) as i64;
        (s, s + len as i64)
    };
    let q = p.queries;
    let points: Vec<i64> = (0..q).map(|_| r.below(span) as i64).collect();
    Queries {
        // The same times AS OF: the answers that differ show the corrections.
        as_of: points.clone(),
        points,
        ranges: (0..q).map(|_| window(&mut r, 1_000)).collect(),
        twavgs: (0..q).map(|_| window(&mut r, 10_000)).collect(),
    }
}
