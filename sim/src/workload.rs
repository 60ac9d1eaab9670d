//! The workload generator: a seeded, weighted mix of every statement kind in SPEC, valid
//! and invalid, with swarm testing (per-seed weights, some kinds switched off).
//!
//! Sub-seeds: the configuration, the statement stream and the network shape (chunking,
//! pipelining, disconnects) each draw from their own ChaCha stream, so changing how one
//! is generated does not reshuffle the others.

use crate::case::{Case, Op, SimConfig};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

pub const KINDS: &[&str] = &[
    "CREATE DATABASE",
    "DROP DATABASE",
    "USE DATABASE",
    "SHOW DATABASES",
    "CREATE LENS",
    "DROP LENS",
    "SHOW LENSES",
    "DERIVE LENS",
    "APPEND LENS",
    "BATCH APPEND",
    "COPY LENS",
    "AT LENS",
    "RANGE LENS",
    "REDUCE LENS",
    "HISTORY LENS",
    "COMPACT LENS",
    "START TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "CREATE USER",
    "DROP USER",
    "SHOW USERS",
    "GRANT",
    "REVOKE",
    "SHOW GRANTS",
    "SHOW STATUS",
    "AUTH",
    "QUIT",
    "garbage",
    "blank",
];

/// Default weights, before swarm switches some off.
const WEIGHTS: &[u32] = &[
    2, 1, 4, 1, 4, 1, 1, 5, 24, 8, 2, 16, 14, 14, 3, 3, 3, 3, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 3, 1,
];

/// Every case starts here, so that most statements have something to work on.
const PREAMBLE: &[&str] = &[
    "CREATE DATABASE db",
    "CREATE DATABASE db2",
    "USE DATABASE db",
    "CREATE LENS a int",
    "CREATE LENS b float",
    "CREATE LENS c str",
    "CREATE LENS d int",
    "APPEND LENS a 0 10 1, 10 20 2",
    "DERIVE LENS v AS a * 2 + d",
];

/// The files every simulated server has under its import directory.
pub fn import_files() -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    f.insert(
        "/import/ints.csv".into(),
        b"# ints\n0,10,1\n10,20,2\r\n\n20,35,-3\n".to_vec(),
    );
    f.insert(
        "/import/floats.csv".into(),
        b"0,5,1.5\n5,9,2\n40,50,null\n".to_vec(),
    );
    f.insert(
        "/import/strs.csv".into(),
        b"0,3,\"a, \"\"b\"\"\"\n3,6,plain text\n6,9,null\n".to_vec(),
    );
    f.insert("/import/badrange.csv".into(), b"0,10,1\n12,11,1\n".to_vec());
    f.insert("/import/overlap.csv".into(), b"0,10,1\n5,15,1\n".to_vec());
    f.insert("/import/badvalue.csv".into(), b"0,10,zz\n".to_vec());
    f.insert("/import/short.csv".into(), b"0,10\n".to_vec());
    f
}

const DBS: &[&str] = &["db", "db2"];
const BASES: &[&str] = &["a", "b", "c", "d"];
const DERIVED: &[&str] = &["v", "w"];
const USERS: &[&str] = &["admin", "u1", "u2"];
const FUNCS: &[&str] = &[
    "min", "max", "sum", "count", "avg", "twavg", "integral", "duration", "first", "last",
];
const TYPES: &[&str] = &["int", "float", "str", "bool", "bytes"];

pub struct Gen {
    rng: ChaCha8Rng,
    net: ChaCha8Rng,
    /// Disk faults draw from their own stream.
    disk: ChaCha8Rng,
    /// Per-seed rates (per 10,000 loop turns) of power loss, fsync failure, disk full,
    /// read error and bit rot; swarm switches some off.
    disk_rates: [u32; 5],
    disk_full: bool,
    weights: Vec<u32>,
    long_haul: bool,
    /// What the generator believes each base lens's type is (it may be wrong; that
    /// only makes more statements invalid).
    types: BTreeMap<&'static str, &'static str>,
    cfg: SimConfig,
    fresh: Vec<bool>,
    /// The simulated clock as the run will see it (it starts at 1000 ms; ticks move it).
    now: i64,
    /// The distinct clock values at which write statements were sent, oldest first: the
    /// `written_at` values layers will carry, so that `AS OF` can cut between them.
    write_times: Vec<i64>,
    /// Write statements generated so far: an upper bound on the layer ids in use.
    writes: u64,
}

fn pick<'a, T>(r: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[r.gen_range(0..xs.len())]
}

impl Gen {
    /// A case generator for `seed`. `long_haul`: a store that lives through the whole
    /// case (always durable, small checkpoint thresholds, the main database and lenses
    /// `a`..`c` never dropped), for runs of 100,000s of statements.
    pub fn new(seed: u64, long_haul: bool) -> Gen {
        let mut cfg_rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0F1_6000);
        let rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5747_3000);
        let net = ChaCha8Rng::seed_from_u64(seed ^ 0x4E37_0000);
        let mut disk = ChaCha8Rng::seed_from_u64(seed ^ 0xD15C_0000);
        let mut disk_rates: [u32; 5] = [120, 40, 40, 25, 40];
        for r in &mut disk_rates {
            match disk.gen_range(0..10) {
                0..=2 => *r = 0,
                3 => *r *= 4,
                _ => {}
            }
        }
        let mut weights = WEIGHTS.to_vec();
        // Swarm: switch a random subset of kinds off (never the core write/read ones).
        for (i, w) in weights.iter_mut().enumerate() {
            if !matches!(
                KINDS[i],
                "APPEND LENS" | "AT LENS" | "CREATE LENS" | "USE DATABASE" | "CREATE DATABASE"
            ) && cfg_rng.gen_bool(0.25)
            {
                *w = 0;
            } else if cfg_rng.gen_bool(0.3) {
                *w *= cfg_rng.gen_range(2..5);
            }
        }
        let cfg = SimConfig {
            auth: cfg_rng.gen_bool(0.25),
            conns: cfg_rng.gen_range(1..=4),
            compact_threshold: *pick(&mut cfg_rng, &[1, 2, 3, 5, 8, 32]),
            job_threshold: *pick(&mut cfg_rng, &[0, 3, 20, 1 << 16]),
            hold_jobs: cfg_rng.gen_bool(0.5),
            durable: cfg_rng.gen_bool(0.5),
            hold_io: false,
            checkpoint_bytes: 0,
        };
        let mut cfg = cfg;
        if long_haul {
            // Restarts recover the whole store: a few hundred per seed, not thousands.
            for r in &mut disk_rates {
                *r = r.div_ceil(10);
            }
            cfg.durable = true;
            // Many WAL rotations and checkpoints per seed, of a store that keeps growing.
            cfg.checkpoint_bytes = [1_000, 5_000, 25_000][(seed % 3) as usize];
            for (w, k) in weights.iter_mut().zip(KINDS) {
                if matches!(*k, "DROP DATABASE" | "DROP LENS") {
                    *w = (*w).min(1);
                }
            }
        }
        // Held storage in half the durable seeds, with at least three connections: a sync
        // covers the appends made while the one before it ran, so two waiters share a
        // sync only when a third commit was in flight.
        cfg.hold_io = cfg.durable && cfg_rng.gen_bool(0.5);
        if cfg.hold_io {
            cfg.conns = cfg.conns.max(3);
        }
        let fresh = vec![true; cfg.conns as usize];
        Gen {
            rng,
            net,
            disk,
            disk_rates,
            disk_full: false,
            weights,
            long_haul,
            types: BTreeMap::new(),
            cfg,
            fresh,
            now: 1000,
            write_times: Vec::new(),
            writes: 0,
        }
    }

    pub fn case(mut self, seed: u64, n: usize) -> Case {
        let mut ops = Vec::with_capacity(n + n / 4);
        if self.cfg.auth {
            ops.push(Op::Send {
                conn: 0,
                splits: vec![],
                crlf: false,
                line: "AUTH admin pw".into(),
            });
        }
        for l in PREAMBLE {
            ops.push(Op::Send {
                conn: 0,
                splits: vec![],
                crlf: false,
                line: l.to_string(),
            });
        }
        self.fresh[0] = false;
        for (l, t) in [("a", "int"), ("b", "float"), ("c", "str"), ("d", "int")] {
            self.types.insert(l, t);
        }
        let mut count = 0;
        // (Long haul) an operator's answer to a fault, due after this many more turns: a
        // fail-stopped server is restarted, a full disk gets room again. Without it a
        // long run would spend most of its time refusing writes.
        let mut remedy: Option<(u32, Op)> = None;
        while count < n {
            if let Some((turns, op)) = remedy.take() {
                if turns == 0 {
                    if matches!(op, Op::DiskFull { .. }) {
                        self.disk_full = false;
                    }
                    if matches!(op, Op::Restart) {
                        self.fresh.iter_mut().for_each(|f| *f = true);
                    }
                    ops.push(op);
                    continue;
                }
                remedy = Some((turns - 1, op));
            }
            if self.cfg.durable {
                if let Some(op) = self.disk_fault() {
                    if self.long_haul && remedy.is_none() {
                        let turns = self.disk.gen_range(1..50);
                        remedy = match op {
                            Op::FailSync => Some((turns, Op::Restart)),
                            Op::DiskFull { full: true } => {
                                Some((turns, Op::DiskFull { full: false }))
                            }
                            _ => None,
                        };
                    }
                    ops.push(op);
                    continue;
                }
            }
            if self.cfg.hold_io {
                match self.net.gen_range(0..100) {
                    // Let some held storage ops run.
                    0..=11 => {
                        ops.push(Op::Io {
                            pick: self.net.gen(),
                        });
                        continue;
                    }
                    // A burst of writes on different connections, each sent while the
                    // ones before it wait on storage.
                    12..=17 => {
                        let mut conns: Vec<u8> = (0..self.cfg.conns).collect();
                        conns.shuffle(&mut self.net);
                        let k = self.net.gen_range(2..=conns.len());
                        for &conn in &conns[..k] {
                            if self.fresh[conn as usize] {
                                continue;
                            }
                            let line = if self.rng.gen_range(0..4) == 0 {
                                self.statement()
                            } else {
                                self.append()
                            };
                            ops.push(Op::Send {
                                conn,
                                splits: vec![],
                                crlf: false,
                                line,
                            });
                            count += 1;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            let conn = self.net.gen_range(0..self.cfg.conns);
            let r = self.net.gen_range(0..100);
            if r < 2 {
                ops.push(Op::Close { conn });
                self.fresh[conn as usize] = true;
                continue;
            }
            if r < 6 {
                let ms = self.net.gen_range(1..50);
                self.now += ms;
                ops.push(Op::Tick { ms });
                continue;
            }
            if r < 8 && self.cfg.hold_jobs {
                ops.push(Op::RunJobs {
                    pick: self.net.gen(),
                });
                continue;
            }
            if r < 9 && self.cfg.durable && (!self.long_haul || self.net.gen_ratio(1, 10)) {
                // Every connection drops; each starts a new session next time.
                ops.push(Op::Restart);
                self.fresh.iter_mut().for_each(|f| *f = true);
                continue;
            }
            if self.fresh[conn as usize] {
                // A new connection authenticates (when auth is on) and selects a database.
                self.fresh[conn as usize] = false;
                if self.cfg.auth {
                    let auth = self.auth_line();
                    // An AUTH that may fail closes the connection: start over next time.
                    self.fresh[conn as usize] = auth != "AUTH admin pw";
                    ops.push(Op::Buffer { conn, line: auth });
                    count += 1;
                }
                let db = if self.rng.gen_bool(0.97) { "db" } else { "db2" };
                ops.push(Op::Buffer {
                    conn,
                    line: format!("USE DATABASE {db}"),
                });
                count += 1;
            }
            let line = self.statement();
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("QUIT") || upper.starts_with("EXIT") {
                // The server closes after QUIT: the next statement starts a new session.
                self.fresh[conn as usize] = true;
            }
            count += 1;
            if self.net.gen_bool(0.1) {
                ops.push(Op::Buffer { conn, line });
                continue;
            }
            if self.net.gen_bool(0.01) {
                // Half-close after this line: the next statement starts a new session.
                ops.push(Op::Eof { conn, line });
                self.fresh[conn as usize] = true;
                continue;
            }
            let mut splits = Vec::new();
            if self.net.gen_bool(0.2) && line.len() > 1 {
                for _ in 0..self.net.gen_range(1..4) {
                    splits.push(self.net.gen_range(1..line.len()));
                }
                splits.sort_unstable();
                splits.dedup();
            }
            let crlf = self.net.gen_bool(0.1);
            ops.push(Op::Send {
                conn,
                splits,
                crlf,
                line,
            });
        }
        Case {
            seed,
            cfg: self.cfg,
            ops,
        }
    }

    /// Maybe a disk fault here (durable seeds only).
    fn disk_fault(&mut self) -> Option<Op> {
        let r = self.disk.gen_range(0..10_000u32);
        let mut acc = 0;
        for (kind, rate) in self.disk_rates.iter().enumerate() {
            acc += rate;
            if r >= acc {
                continue;
            }
            let d = &mut self.disk;
            return Some(match kind {
                0 => Op::PowerLoss {
                    after: if d.gen_bool(0.2) {
                        0
                    } else {
                        d.gen_range(1..40)
                    },
                    pick: d.gen(),
                },
                1 => Op::FailSync,
                2 => {
                    self.disk_full = !self.disk_full;
                    Op::DiskFull {
                        full: self.disk_full,
                    }
                }
                3 => Op::FailRead,
                _ => Op::Rot { pick: d.gen() },
            });
        }
        None
    }

    fn auth_line(&mut self) -> String {
        let r = &mut self.rng;
        match r.gen_range(0..20) {
            0 => "AUTH admin wrong".into(),
            1 => "SHOW DATABASES".into(),
            2..=5 => format!("AUTH {} p{}", pick(r, &["u1", "u2"]), r.gen_range(1..3)),
            _ => "AUTH admin pw".into(),
        }
    }

    fn time(&mut self) -> i64 {
        let r = &mut self.rng;
        match r.gen_range(0..40) {
            0 => *pick(r, &[i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1]),
            1 => r.gen_range(-1000..1000),
            _ => r.gen_range(-5..60),
        }
    }

    fn value(&mut self, ty: &str) -> String {
        let r = &mut self.rng;
        if r.gen_range(0..12) == 0 {
            return "null".into();
        }
        // Sometimes a value of another type: the write must be rejected whole.
        let ty = if r.gen_range(0..40) == 0 {
            *pick(r, TYPES)
        } else {
            ty
        };
        match ty {
            "int" => match r.gen_range(0..20) {
                0 => pick(
                    r,
                    &[
                        "9223372036854775807",
                        "-9223372036854775808",
                        "4611686018427387904",
                    ],
                )
                .to_string(),
                _ => r.gen_range(-5..10).to_string(),
            },
            "float" => pick(
                r,
                &[
                    "1.5", "-0.25", "0.1", "2.0", "3", "-7", "100.125", "0.2", "1e3", "-0.0",
                ],
            )
            .to_string(),
            "str" => pick(
                r,
                &[
                    "\"a\"",
                    "\"b c\"",
                    "\"x:y;z\"",
                    "\"%\"",
                    "\"\"",
                    "\"q\\\"uote\"",
                ],
            )
            .to_string(),
            "bool" => pick(r, &["true", "false", "TRUE"]).to_string(),
            _ => pick(r, &["0x", "0xff", "0x0001", "0xdeadbeef"]).to_string(),
        }
    }

    fn base(&mut self) -> &'static str {
        BASES[self.rng.gen_range(0..BASES.len())]
    }

    fn any_lens(&mut self) -> &'static str {
        if self.rng.gen_range(0..8) == 0 {
            DERIVED[self.rng.gen_range(0..DERIVED.len())]
        } else if self.rng.gen_range(0..30) == 0 {
            "nope"
        } else {
            self.base()
        }
    }

    fn rows(&mut self, lens: &str, sep: &str) -> String {
        let ty = self.types.get(lens).copied().unwrap_or("int");
        let n = self.rng.gen_range(1..5);
        let mut t = self.rng.gen_range(-5..40);
        let mut parts = Vec::new();
        for _ in 0..n {
            let (s, e) = match self.rng.gen_range(0..60) {
                0 => (t + 5, t),
                1 => (t, t),
                2 => (self.time(), self.time()),
                _ => {
                    let len = self.rng.gen_range(1..20);
                    (t, t.saturating_add(len))
                }
            };
            // Occasionally overlap the previous row.
            // Occasionally overlap the previous row; extreme times wrap back into range.
            t = if self.rng.gen_range(0..40) == 0 {
                s
            } else {
                e.saturating_add(self.rng.gen_range(0..6))
            };
            if !(-1000..1000).contains(&t) {
                t = self.rng.gen_range(-5..40);
            }
            parts.push(format!("{s} {e} {}", self.value(ty)));
        }
        if self.rng.gen_bool(0.3) {
            parts.reverse();
        }
        parts.join(sep)
    }

    fn selector(&mut self) -> String {
        match self.rng.gen_range(0..8) {
            0 | 1 => format!(" AS OF {}", self.as_of()),
            2 => {
                // Mostly layer ids that exist, sometimes one past them.
                let top = self.writes.max(1) + 2;
                format!(" LAYER {}", self.rng.gen_range(1..=top))
            }
            _ => String::new(),
        }
    }

    /// An `AS OF` time around the real `written_at` values: just before, at, between and
    /// after the times writes were sent, sometimes before all of them or far off.
    fn as_of(&mut self) -> i64 {
        let r = &mut self.rng;
        let times = &self.write_times;
        if times.is_empty() || r.gen_range(0..10) == 0 {
            return match r.gen_range(0..3) {
                0 => r.gen_range(-5..400),
                1 => self.now + r.gen_range(0..100),
                _ => *pick(r, &[i64::MIN, i64::MAX, 0, 999]),
            };
        }
        let i = r.gen_range(0..times.len());
        let w = times[i];
        match r.gen_range(0..5) {
            0 => w - 1,
            1 | 2 => w,
            // Strictly between two write times (or just after the last).
            3 => match times.get(i + 1) {
                Some(&next) if next - w > 1 => r.gen_range(w + 1..next),
                _ => w + 1,
            },
            _ => times[0] - r.gen_range(1..20),
        }
    }

    fn append(&mut self) -> String {
        self.note_write();
        let l = self.any_lens();
        format!("APPEND LENS {l} {}", self.rows(l, ", "))
    }

    /// A write statement is being generated now: it will carry (about) this `written_at`.
    fn note_write(&mut self) {
        self.writes += 1;
        if self.write_times.last() != Some(&self.now) {
            self.write_times.push(self.now);
        }
    }

    fn expr(&mut self, depth: u32) -> String {
        let r = self.rng.gen_range(0..10);
        if depth == 0 || r < 4 {
            return match self.rng.gen_range(0..9) {
                0 => self.value("int"),
                1 => self.value("float"),
                2 => format!(
                    "{}({}, {}, {})",
                    pick(&mut self.rng, FUNCS),
                    self.base(),
                    self.rng.gen_range(-8..3),
                    self.rng.gen_range(-3..9)
                ),
                3 if self.rng.gen_bool(0.3) => (*pick(&mut self.rng, DERIVED)).to_string(),
                _ => self.base().to_string(),
            };
        }
        match r {
            4 => format!("-{}", self.paren(depth)),
            5 => format!("!{}", self.paren(depth)),
            6 => format!("({})", self.expr(depth - 1)),
            _ => {
                let op = *pick(
                    &mut self.rng,
                    &[
                        "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||",
                    ],
                );
                format!("{} {op} {}", self.expr(depth - 1), self.expr(depth - 1))
            }
        }
    }

    fn paren(&mut self, depth: u32) -> String {
        format!("({})", self.expr(depth - 1))
    }

    fn span(&mut self) -> (i64, i64) {
        let s = self.time();
        let e = if self.rng.gen_range(0..15) == 0 {
            s
        } else {
            s.saturating_add(self.rng.gen_range(1..80))
        };
        (s, e)
    }

    pub fn statement(&mut self) -> String {
        let total: u32 = self.weights.iter().sum();
        let mut x = self.rng.gen_range(0..total);
        let mut k = 0;
        while x >= self.weights[k] {
            x -= self.weights[k];
            k += 1;
        }
        let r = &mut self.rng;
        match KINDS[k] {
            "CREATE DATABASE" => format!("CREATE DATABASE {}", pick(r, DBS)),
            "DROP DATABASE" => {
                // Dropping the main database ends most of a case's work: keep it rare
                // (and never in a long haul).
                let db = if r.gen_range(0..4) == 0 && !self.long_haul {
                    "db"
                } else {
                    "db2"
                };
                format!("DROP DATABASE {db}")
            }
            "USE DATABASE" => format!("USE DATABASE {}", pick(r, &["db", "db", "db", "db2", "zz"])),
            "SHOW DATABASES" => "SHOW DATABASES".into(),
            "CREATE LENS" => {
                let l = self.base();
                let t = *pick(&mut self.rng, TYPES);
                // (A long haul never drops a, b or c: their types never change.)
                if !(self.long_haul && matches!(l, "a" | "b" | "c")) {
                    self.types.insert(l, t);
                }
                format!("CREATE LENS {l} {t}")
            }
            "DROP LENS" => {
                let l = self.any_lens();
                // A long haul keeps a, b and c (and so their history) for the whole case.
                let l = if self.long_haul && matches!(l, "a" | "b" | "c") {
                    "d"
                } else {
                    l
                };
                format!("DROP LENS {l}")
            }
            "SHOW LENSES" => "SHOW LENSES".into(),
            "DERIVE LENS" => {
                let name = *pick(&mut self.rng, DERIVED);
                format!("DERIVE LENS {name} AS {}", self.expr(3))
            }
            "APPEND LENS" => self.append(),
            "BATCH APPEND" => {
                self.note_write();
                let l = self.any_lens();
                if self.rng.gen_range(0..10) == 0 {
                    format!("BATCH APPEND LENS {l} {{ }}")
                } else {
                    format!("BATCH APPEND LENS {l} {{ {} }}", self.rows(l, "; "))
                }
            }
            "COPY LENS" => {
                self.note_write();
                let l = self.any_lens();
                let f = *pick(
                    &mut self.rng,
                    &[
                        "ints.csv",
                        "floats.csv",
                        "strs.csv",
                        "badrange.csv",
                        "overlap.csv",
                        "badvalue.csv",
                        "short.csv",
                        "missing.csv",
                        "../x.csv",
                        "/etc/passwd",
                        "/import/ints.csv",
                    ],
                );
                format!("COPY LENS {l} FROM \"{f}\"")
            }
            "AT LENS" => {
                let l = self.any_lens();
                let t = self.time();
                format!("AT LENS {l} {t}{}", self.selector())
            }
            "RANGE LENS" => {
                let l = self.any_lens();
                let (s, e) = self.span();
                let sel = self.selector();
                let mut q = format!("RANGE LENS {l} {s} {e}{sel}");
                if self.rng.gen_range(0..4) == 0 {
                    q += &format!(" WHERE {}", self.expr(2));
                }
                if self.rng.gen_range(0..5) == 0 {
                    q += &format!(" LIMIT {}", self.rng.gen_range(0..4));
                }
                if self.rng.gen_range(0..6) == 0 {
                    q += &format!(" OFFSET {}", self.rng.gen_range(0..4));
                }
                q
            }
            "REDUCE LENS" => {
                let l = self.any_lens();
                let (s, e) = self.span();
                let sel = if self.rng.gen_range(0..5) == 0 {
                    self.selector()
                } else {
                    String::new()
                };
                let f = *pick(&mut self.rng, FUNCS);
                format!("REDUCE LENS {l} {s} {e}{sel} USING {f}")
            }
            "HISTORY LENS" => {
                let l = self.any_lens();
                if self.rng.gen_bool(0.5) {
                    let (s, e) = self.span();
                    format!("HISTORY LENS {l} {s} {e}")
                } else {
                    format!("HISTORY LENS {l}")
                }
            }
            "COMPACT LENS" => format!("COMPACT LENS {}", self.any_lens()),
            "START TRANSACTION" => "START TRANSACTION".into(),
            "COMMIT" => {
                self.note_write();
                "COMMIT".into()
            }
            "ROLLBACK" => "ROLLBACK".into(),
            "CREATE USER" => format!(
                "CREATE USER {} PASSWORD \"p{}\"",
                pick(r, USERS),
                r.gen_range(1..3)
            ),
            "DROP USER" => {
                // Dropping the admin locks most of an auth seed out: keep it rare (and
                // never in a long haul, whose restart probes must see everything).
                let u = if r.gen_range(0..10) == 0 && !self.long_haul {
                    "admin"
                } else {
                    pick(r, &["u1", "u2"])
                };
                format!("DROP USER {u}")
            }
            "SHOW USERS" => "SHOW USERS".into(),
            "GRANT" | "REVOKE" => {
                let perms = *pick(r, &["R", "U", "C", "D", "A", "RU", "CRUD", "*", "r u"]);
                let db = *pick(r, &["db", "db2", "*", "zz"]);
                let mut user = *pick(r, USERS);
                if self.long_haul && KINDS[k] == "REVOKE" && user == "admin" {
                    // (The probes after a restart read the store as admin.)
                    user = "u1";
                }
                if KINDS[k] == "GRANT" {
                    format!("GRANT {perms} ON {db} TO {user}")
                } else {
                    format!("REVOKE {perms} ON {db} FROM {user}")
                }
            }
            "SHOW GRANTS" => {
                if r.gen_bool(0.5) {
                    "SHOW GRANTS".into()
                } else {
                    format!("SHOW GRANTS {}", pick(r, USERS))
                }
            }
            "SHOW STATUS" => "SHOW STATUS".into(),
            "AUTH" => self.auth_line(),
            "QUIT" => pick(r, &["QUIT", "EXIT", "quit"]).to_string(),
            "garbage" => pick(
                r,
                &[
                    "APPEND LENS a 0 10",
                    "RANGE LENS a 10",
                    "REDUCE LENS a 0 10 USNG sum",
                    "SELECT * FROM a",
                    "AT LENS a 1e",
                    "CREATE LENS true int",
                    "DERIVE LENS v AS (a +",
                    "APPEND LENS a 0 10 \"unterminated",
                    "AT LENS a 99999999999999999999",
                    "GRANT X ON db TO u1",
                    "BATCH APPEND LENS a { 0 1 1",
                    "AT LENS a 0x1",
                    "DERIVE LENS v AS sum(a, 0, x)",
                ],
            )
            .to_string(),
            _ => "   ".into(),
        }
    }
}
