//! Criterion benchmarks of the in-memory engine: AT, RANGE, REDUCE, APPEND and
//! compaction, from 1k to 10M intervals and from 1 to 256 layers.
//!
//! `cargo bench -p tau-engine --bench engine` (all of it takes a while; filter with a
//! name, e.g. `-- at/`). Sizes above 1M are built only when `TAU_BENCH_BIG=1`, because
//! building 10M intervals takes seconds and gigabytes. Method and recorded figures:
//! BENCHMARKS.md.
//!
//! Data shape: `n` intervals of length 10 spread over `layers` layers; layer k holds
//! every `layers`-th slot of one time line shifted by 7k, so every newer layer shadows
//! parts of older ones everywhere (the adversarial case for the sweep).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use tau_engine::ast::{Func, Selector};
use tau_engine::catalog::{Lens, Op, State};
use tau_engine::layer::Segs;
use tau_engine::{query, sweep, Config, Engine, Event, Type, Value};

fn sizes() -> Vec<i64> {
    let mut v = vec![1_000, 100_000, 1_000_000];
    if std::env::var_os("TAU_BENCH_BIG").is_some() {
        v.push(10_000_000);
    }
    v
}

const LAYERS: [i64; 4] = [1, 16, 64, 256];

fn state(n: i64, layers: i64) -> State {
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
    let per = (n / layers).max(1);
    for k in 0..layers {
        let rows = (0..per)
            .map(|i| {
                let s = i * 10 * layers + k * 7;
                (
                    s,
                    s + 10 * layers / 2 + 1,
                    Value::Float((i % 97) as f64 + 0.5),
                )
            })
            .collect();
        let segs = Arc::new(Segs::from_sorted_rows(rows));
        st.apply(
            Op::Append {
                db: "db".into(),
                lens: "x".into(),
                ty: Type::Float,
                segs,
            },
            k,
        )
        .unwrap();
    }
    st
}

fn span(n: i64) -> i64 {
    n * 10
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn compact(st: &mut State) {
    let d = Arc::make_mut(st.dbs.get_mut("db").unwrap());
    let Some(Lens::Base(b)) = d.lenses.get_mut("x") else {
        unreachable!("x is a base lens")
    };
    let b = Arc::make_mut(b);
    if let Some(r) = b.plan_full() {
        let c = sweep::compact(&b.runs[r]);
        assert!(b.install(Arc::new(c)));
    }
}

fn at(c: &mut Criterion) {
    let mut g = c.benchmark_group("at");
    for n in sizes() {
        for layers in LAYERS {
            let st = state(n, layers);
            let db = st.dbs.get("db").unwrap();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            g.bench_with_input(
                BenchmarkId::new(format!("{n}x{layers}"), "uncompacted"),
                &(),
                |b, _| {
                    b.iter(|| {
                        let t = (xorshift(&mut seed) % span(n) as u64) as i64;
                        black_box(query::at(db, "x", t, Selector::Now).unwrap())
                    })
                },
            );
        }
    }
    g.finish();
}

fn range_and_reduce(c: &mut Criterion) {
    let mut g = c.benchmark_group("range");
    for n in sizes() {
        for layers in [1, 16, 256] {
            let st = state(n, layers);
            let db = st.dbs.get("db").unwrap();
            // A window of about 1,000 intervals somewhere in the middle.
            let (s, e) = (span(n) / 2, span(n) / 2 + 10_000);
            let pieces = query::pieces(db, "x", s, e, Selector::Now, 0)
                .unwrap()
                .len();
            g.throughput(Throughput::Elements(pieces as u64));
            g.bench_function(
                BenchmarkId::new("window-1k", format!("{n}x{layers}")),
                |b| b.iter(|| black_box(query::pieces(db, "x", s, e, Selector::Now, 0).unwrap())),
            );
        }
    }
    g.finish();
    let mut g = c.benchmark_group("reduce-twavg");
    g.sample_size(10);
    for n in sizes() {
        for layers in [1, 16, 256] {
            let mut st = state(n, layers);
            for compacted in [false, true] {
                if compacted {
                    compact(&mut st);
                }
                let db = st.dbs.get("db").unwrap();
                let pieces = query::pieces(db, "x", 0, span(n), Selector::Now, 0)
                    .unwrap()
                    .len();
                g.throughput(Throughput::Elements(pieces as u64));
                let label = if compacted { "compacted" } else { "raw" };
                g.bench_function(BenchmarkId::new(label, format!("{n}x{layers}")), |b| {
                    b.iter(|| {
                        black_box(
                            query::reduce(db, "x", 0, span(n), Selector::Now, Func::Twavg).unwrap(),
                        )
                    })
                });
            }
        }
    }
    g.finish();
}

fn compaction(c: &mut Criterion) {
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    for n in sizes().into_iter().filter(|&n| n >= 100_000) {
        for layers in [16, 256] {
            let st = state(n, layers);
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::new("full", format!("{n}x{layers}")), |b| {
                b.iter_batched(
                    || st.clone(),
                    |mut st| compact(&mut st),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    g.finish();
}

/// Whole statements through `Engine::step`: framing, parsing, validation, execution.
fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    let boot = |fx: &mut Vec<tau_engine::Effect>| {
        // 100,000 intervals make a line of about 2 MiB: above the 1 MiB default.
        let mut e = Engine::new(Config {
            max_line_bytes: 8 << 20,
            ..Config::default()
        });
        e.step(0, Event::Open(1), fx);
        let ddl = b"CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS x float\n".to_vec();
        e.step(0, Event::Bytes(1, ddl), fx);
        fx.clear();
        e
    };
    for per in [1usize, 1_000, 100_000] {
        let line = {
            let mut l = String::from("BATCH APPEND LENS x {");
            for i in 0..per {
                l.push_str(&format!(" {} {} {}.5;", i * 10, i * 10 + 10, i % 7));
            }
            l.pop();
            l.push_str(" }\n");
            l.into_bytes()
        };
        g.throughput(Throughput::Elements(per as u64));
        // A fresh lens per batch of iterations, so that memory does not grow without end.
        g.bench_function(BenchmarkId::new("batch", per), |b| {
            b.iter_batched_ref(
                || {
                    let mut fx = Vec::new();
                    (boot(&mut fx), fx)
                },
                |(e, fx)| {
                    e.step(0, Event::Bytes(1, line.clone()), fx);
                    let ok =
                        matches!(fx.last(), Some(tau_engine::Effect::Send(_, r)) if r == b"OK\n");
                    assert!(ok, "the batch is accepted");
                    fx.clear();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, at, range_and_reduce, compaction, append);
criterion_main!(benches);
