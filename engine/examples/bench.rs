//! In-memory engine benchmarks for the figures in BENCHMARKS.md:
//! `cargo run --release -p tau-engine --example bench`.
//!
//! Method: data is built directly through the catalog ops (what a commit does), each
//! measurement is repeated 5 times and the median reported. Point lookups use
//! pseudo-random times from a fixed-seed xorshift, so runs are comparable.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use tau_engine::ast::{Func, Selector, Statement};
use tau_engine::catalog::{Lens, Op, State};
use tau_engine::layer::Segs;
use tau_engine::{exec, query, sweep, Config, Effect, Engine, Event, Type, Value};

const N: i64 = 1_000_000;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn state_with(layers: Vec<Vec<(i64, i64, f64)>>) -> State {
    let mut st = State::default();
    st.apply(Op::CreateDatabase("db".into()), 0).unwrap();
    st.apply(
        Op::CreateLens {
            db: "db".into(),
            name: "x".into(),
            ty: Type::Float,
        },
        0,
    )
    .unwrap();
    for (i, l) in layers.into_iter().enumerate() {
        let segs = Segs::from_sorted_rows(
            l.into_iter()
                .map(|(s, e, v)| (s, e, Value::Float(v)))
                .collect(),
        );
        st.apply(
            Op::Append {
                db: "db".into(),
                lens: "x".into(),
                ty: Type::Float,
                segs: Arc::new(segs),
            },
            i as i64,
        )
        .unwrap();
    }
    st
}

/// 1M contiguous intervals of length 10 in one layer.
fn one_layer() -> State {
    state_with(vec![(0..N)
        .map(|i| (i * 10, i * 10 + 10, (i % 100) as f64 * 0.5))
        .collect()])
}

/// 1M intervals over 64 layers: each layer holds every 64th slot of the same time line
/// shifted by its index, so newer layers shadow parts of older ones everywhere.
fn sixty_four_layers() -> State {
    let per = N / 64;
    let layers = (0..64)
        .map(|k| {
            (0..per)
                .map(|i| {
                    let s = i * 640 + k * 7;
                    (s, s + 300, (k * 1000 + i % 97) as f64)
                })
                .collect()
        })
        .collect();
    state_with(layers)
}

fn compact_all(st: &mut State) {
    let d = Arc::make_mut(st.dbs.get_mut("db").unwrap());
    let Some(Lens::Base(b)) = d.lenses.get_mut("x") else {
        unreachable!()
    };
    let b = Arc::make_mut(b);
    if let Some(r) = b.plan_full() {
        let c = sweep::compact(&b.runs[r]);
        assert!(b.install(Arc::new(c)));
    }
}

fn at_ns(st: &State, span: i64) -> f64 {
    let db = st.dbs.get("db").unwrap();
    let lookups = 2_000_000;
    median(
        (0..5)
            .map(|r| {
                let mut seed = 0x9e3779b97f4a7c15u64 + r;
                let t0 = Instant::now();
                for _ in 0..lookups {
                    let t = (rng(&mut seed) % span as u64) as i64;
                    black_box(query::at(db, "x", t, Selector::Now).unwrap());
                }
                t0.elapsed().as_nanos() as f64 / lookups as f64
            })
            .collect(),
    )
}

/// (pieces/s for RANGE, pieces/s for REDUCE twavg, pieces)
fn range_reduce(st: &State, span: i64) -> (f64, f64, usize) {
    let db = st.dbs.get("db").unwrap();
    let pieces = query::pieces(db, "x", 0, span, Selector::Now, 0)
        .unwrap()
        .len();
    let range = Statement::Range {
        lens: "x".into(),
        start: 0,
        end: span,
        sel: Selector::Now,
        filter: None,
        limit: None,
        offset: None,
    };
    let r = median(
        (0..5)
            .map(|_| {
                let t0 = Instant::now();
                black_box(exec::run_read(db, &range));
                pieces as f64 / t0.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let f = median(
        (0..5)
            .map(|_| {
                let t0 = Instant::now();
                black_box(query::reduce(db, "x", 0, span, Selector::Now, Func::Twavg).unwrap());
                pieces as f64 / t0.elapsed().as_secs_f64()
            })
            .collect(),
    );
    (r, f, pieces)
}

/// Full statements through `Engine::step`: framing, parsing, execution, encoding.
fn at_statement_ns(st_layers: usize) -> f64 {
    let mut e = Engine::new(Config::default());
    let mut fx = Vec::new();
    e.step(0, Event::Open(1), &mut fx);
    e.step(
        0,
        Event::Bytes(
            1,
            b"CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS x float\n".to_vec(),
        ),
        &mut fx,
    );
    for k in 0..st_layers as i64 {
        let mut line = String::from("BATCH APPEND LENS x {");
        for i in 0..10_000 {
            line.push_str(&format!(
                " {} {} {}.5;",
                i * 100 + k,
                i * 100 + k + 50,
                i % 7
            ));
        }
        line.pop();
        line.push_str(" }\n");
        e.step(0, Event::Bytes(1, line.into_bytes()), &mut fx);
    }
    fx.clear();
    let mut seed = 42u64;
    let n = 200_000;
    let lines: Vec<Vec<u8>> = (0..n)
        .map(|_| format!("AT LENS x {}\n", rng(&mut seed) % 1_000_000).into_bytes())
        .collect();
    let t0 = Instant::now();
    for l in lines {
        e.step(0, Event::Bytes(1, l), &mut fx);
        fx.clear();
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn batch_append() -> f64 {
    let per_stmt = 20_000;
    let stmts = 50;
    let lines: Vec<Vec<u8>> = (0..stmts)
        .map(|k| {
            let mut line = String::from("BATCH APPEND LENS x {");
            for i in 0..per_stmt {
                let s = (k * per_stmt + i) * 10;
                line.push_str(&format!(" {} {} {}.25;", s, s + 10, i % 1000));
            }
            line.pop();
            line.push_str(" }\n");
            line.into_bytes()
        })
        .collect();
    median(
        (0..5)
            .map(|_| {
                let mut e = Engine::new(Config {
                    max_line_bytes: 64 << 20,
                    ..Config::default()
                });
                let mut fx = Vec::new();
                e.step(0, Event::Open(1), &mut fx);
                e.step(
                    0,
                    Event::Bytes(
                        1,
                        b"CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS x float\n".to_vec(),
                    ),
                    &mut fx,
                );
                fx.clear();
                let t0 = Instant::now();
                for l in &lines {
                    e.step(0, Event::Bytes(1, l.clone()), &mut fx);
                    for f in fx.drain(..) {
                        if let Effect::Send(_, b) = f {
                            assert_eq!(b, b"OK\n");
                        }
                    }
                }
                (per_stmt * stmts) as f64 / t0.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Single-interval APPEND statements through `step()`, one lens: statements/s for the
/// first and the last 20,000 of 200,000 (a write must not get slower as layers pile up).
fn single_appends() -> (f64, f64) {
    let mut e = Engine::new(Config::default());
    let mut fx = Vec::new();
    e.step(0, Event::Open(1), &mut fx);
    e.step(
        0,
        Event::Bytes(
            1,
            b"CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS x float\n".to_vec(),
        ),
        &mut fx,
    );
    fx.clear();
    let n = 200_000;
    let mut rates = Vec::new();
    let mut t0 = Instant::now();
    for i in 0..n {
        let line = format!("APPEND LENS x {} {} 1.5\n", i * 10, i * 10 + 10).into_bytes();
        e.step(0, Event::Bytes(1, line), &mut fx);
        // Complete automatic compactions at once, as a driver with idle workers would.
        let jobs: Vec<_> = fx
            .drain(..)
            .filter_map(|f| match f {
                Effect::RunJob { token, job } => Some((token, job)),
                _ => None,
            })
            .collect();
        for (token, job) in jobs {
            e.step(
                0,
                Event::JobDone {
                    token,
                    output: tau_engine::run_job(job),
                },
                &mut fx,
            );
            fx.clear();
        }
        if (i + 1) % 20_000 == 0 {
            rates.push(20_000.0 / t0.elapsed().as_secs_f64());
            t0 = Instant::now();
        }
    }
    (rates[0], rates[rates.len() - 1])
}

/// A WAL holding a realistic float series: one reading a minute for 2M minutes (a
/// temperature-like random walk with one decimal), logged in batches of 10,000 as BATCH
/// APPEND would. Returns (file, intervals).
fn realistic_wal(key: Option<&tau_engine::wal::WalKey>) -> (Vec<u8>, usize) {
    use tau_engine::codec::{encode, CommitUnit};
    use tau_engine::wal::{encode_record, header};
    let mut file = header(key.is_some(), 1).to_vec();
    let setup = CommitUnit {
        written_at: 0,
        ops: vec![
            Op::CreateDatabase("db".into()),
            Op::CreateLens {
                db: "db".into(),
                name: "temp".into(),
                ty: Type::Float,
            },
        ],
    };
    file.extend(encode_record(&encode(&setup), key, [0; 12], 1));
    let (batches, per) = (200, 10_000);
    let mut seed = 7u64;
    let mut temp = 200i64; // tenths of a degree
    for b in 0..batches {
        let rows = (0..per)
            .map(|i| {
                temp += (rng(&mut seed) % 5) as i64 - 2;
                let t = (b * per + i) as i64 * 60_000;
                (t, t + 60_000, Value::Float(temp as f64 / 10.0))
            })
            .collect();
        let unit = CommitUnit {
            written_at: b as i64 + 1,
            ops: vec![Op::Append {
                db: "db".into(),
                lens: "temp".into(),
                ty: Type::Float,
                segs: Arc::new(Segs::from_sorted_rows(rows)),
            }],
        };
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(b as u64 + 1).to_le_bytes());
        file.extend(encode_record(&encode(&unit), key, nonce, b as u64 + 2));
    }
    (file, batches * per)
}

fn recovery_figures() {
    for (label, key) in [
        ("plain", None),
        ("AES-256-GCM", Some(tau_engine::wal::WalKey::new(&[3; 32]))),
    ] {
        let (file, n) = realistic_wal(key.as_ref());
        let secs = median(
            (0..5)
                .map(|_| {
                    let t0 = Instant::now();
                    let r =
                        tau_engine::recovery::recover(&file, "wal", key.as_ref(), false).unwrap();
                    assert_eq!(r.intervals, n);
                    t0.elapsed().as_secs_f64()
                })
                .collect(),
        );
        println!(
            "WAL ({label}): {:.2} bytes/interval on disk; recovery {:.2} M intervals/s",
            file.len() as f64 / n as f64,
            n as f64 / secs / 1e6
        );
    }
}

fn main() {
    recovery_figures();
    let (first, last) = single_appends();
    println!(
        "single APPEND via step(), first 20k:  {:>8.0} statements/s",
        first
    );
    println!(
        "single APPEND via step(), last 20k:   {:>8.0} statements/s",
        last
    );
    let span1 = N * 10;
    let one = one_layer();
    println!(
        "AT, 1M intervals, 1 layer:            {:>8.0} ns/lookup",
        at_ns(&one, span1)
    );
    let mut many = sixty_four_layers();
    let span64 = (N / 64) * 640;
    println!(
        "AT, 1M intervals, 64 layers:          {:>8.0} ns/lookup",
        at_ns(&many, span64)
    );
    let (r, f, p) = range_reduce(&one, span1);
    println!(
        "RANGE, 1 layer ({p} pieces):    {:>8.1} M pieces/s",
        r / 1e6
    );
    println!(
        "REDUCE twavg, 1 layer:                {:>8.1} M pieces/s",
        f / 1e6
    );
    let (r, f, p) = range_reduce(&many, span64);
    println!(
        "RANGE, 64 layers ({p} pieces):  {:>8.1} M pieces/s",
        r / 1e6
    );
    println!(
        "REDUCE twavg, 64 layers:              {:>8.1} M pieces/s",
        f / 1e6
    );
    let t0 = Instant::now();
    compact_all(&mut many);
    println!(
        "compaction of 64 layers, 1M intervals: {:>7.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let (r, f, p) = range_reduce(&many, span64);
    println!(
        "RANGE, compacted ({p} pieces):  {:>8.1} M pieces/s",
        r / 1e6
    );
    println!(
        "REDUCE twavg, compacted:              {:>8.1} M pieces/s",
        f / 1e6
    );
    println!(
        "AT, 64 layers compacted:              {:>8.0} ns/lookup",
        at_ns(&many, span64)
    );
    println!(
        "AT statement via step(), 1 layer:     {:>8.0} ns",
        at_statement_ns(1)
    );
    println!(
        "AT statement via step(), 64 layers:   {:>8.0} ns",
        at_statement_ns(64)
    );
    println!(
        "BATCH APPEND via step():              {:>8.2} M intervals/s",
        batch_append() / 1e6
    );
}
