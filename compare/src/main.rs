//! `tau-compare`: the same bitemporal workload against tau-server, PostgreSQL 15 and
//! SQLite, with every system's answers cross-checked on a sample, so that nobody
//! benchmarks a wrong query. `bench/compare.sh` builds and runs it; BENCHMARKS.md holds
//! the method and the results.
//!
//! Per repetition, on fresh stores: batched ingest of N intervals (one layer per batch),
//! corrections (k% of the intervals re-asserted in later layers, half of them shifted so
//! they shadow parts of two intervals), durable single-row inserts from C clients, then
//! point queries (newest value at t), RANGE windows (visible pieces), time-weighted
//! averages over windows, and AS OF point queries (as believed before the corrections).

mod sql;
mod tau;
mod workload;

use postgres::Client as Pg;
use rusqlite::Connection;
use sql::e;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workload::{Layer, Params};

const USAGE: &str =
    "usage: tau-compare [--n N] [--batch B] [--corrections PCT] [--correction-layers L]
                   [--single-rows M] [--clients C] [--queries Q] [--sample S] [--reps R]
                   [--seed X] [--tau-server PATH] [--pg-bin DIR] [--work DIR] [--out FILE]
defaults: --n 1000000 --batch 10000 --corrections 10 --correction-layers 10
          --single-rows 3200 --clients 32 --queries 1000 --sample 200 --reps 3
          --tau-server target/release/tau-server --pg-bin /usr/lib/postgresql/15/bin
          --work target/compare";

struct Args {
    p: Params,
    tau_server: PathBuf,
    pg_bin: PathBuf,
    work: PathBuf,
    out: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        p: Params {
            n: 1_000_000,
            batch: 10_000,
            corrections_pct: 10.0,
            correction_layers: 10,
            single_rows: 3_200,
            clients: 32,
            queries: 1_000,
            sample: 200,
            reps: 3,
            seed: 42,
        },
        tau_server: "target/release/tau-server".into(),
        pg_bin: "/usr/lib/postgresql/15/bin".into(),
        work: "target/compare".into(),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{f} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|_| format!("bad number {s}"));
        match f.as_str() {
            "--n" => a.p.n = num(val()?)? as usize,
            "--batch" => a.p.batch = num(val()?)? as usize,
            "--corrections" => a.p.corrections_pct = num(val()?)?,
            "--correction-layers" => a.p.correction_layers = num(val()?)? as usize,
            "--single-rows" => a.p.single_rows = num(val()?)? as usize,
            "--clients" => a.p.clients = (num(val()?)? as usize).max(1),
            "--queries" => a.p.queries = (num(val()?)? as usize).max(1),
            "--sample" => a.p.sample = num(val()?)? as usize,
            "--reps" => a.p.reps = (num(val()?)? as usize).max(1),
            "--seed" => a.p.seed = num(val()?)? as u64,
            "--tau-server" => a.tau_server = val()?.into(),
            "--pg-bin" => a.pg_bin = val()?.into(),
            "--work" => a.work = val()?.into(),
            "--out" => a.out = Some(val()?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown flag {f}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// What one system measured in one repetition.
#[derive(Default, Clone)]
struct Run {
    ingest: f64,
    single: f64,
    /// queries/s and median latency (µs) for point, range, twavg, as-of.
    qps: [f64; 4],
    /// Point queries/s with `clients` connections, each request-response.
    concurrent_points: f64,
    p50_us: [f64; 4],
}

/// A sample of answers, compared across systems.
#[derive(Default)]
struct Answers {
    points: Vec<Option<f64>>,
    ranges: Vec<Vec<(i64, i64, f64)>>,
    twavgs: Vec<Option<f64>>,
    as_of: Vec<Option<f64>>,
}

trait System {
    fn name(&self) -> &'static str;
    fn point(&mut self, t: i64, as_of: Option<i64>) -> Result<Option<f64>, String>;
    fn range(&mut self, s: i64, e: i64) -> Result<Vec<(i64, i64, f64)>, String>;
    fn twavg(&mut self, s: i64, e: i64) -> Result<Option<f64>, String>;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Time one query kind: a 10% warm-up, then every query once; keep the first `sample`
/// answers.
fn timed<T>(
    qs: usize,
    sample: usize,
    mut f: impl FnMut(usize) -> Result<T, String>,
    keep: &mut Vec<T>,
) -> Result<(f64, f64), String> {
    for i in 0..qs / 10 {
        f(i)?;
    }
    let mut lat = Vec::with_capacity(qs);
    let t0 = Instant::now();
    for i in 0..qs {
        let t = Instant::now();
        let a = f(i)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if i < sample {
            keep.push(a);
        }
    }
    Ok((qs as f64 / t0.elapsed().as_secs_f64(), median(lat)))
}

fn query_all(
    s: &mut dyn System,
    q: &workload::Queries,
    as_of: i64,
    sample: usize,
    run: &mut Run,
) -> Result<Answers, String> {
    let mut a = Answers::default();
    let n = q.points.len();
    let r0 = timed(n, sample, |i| s.point(q.points[i], None), &mut a.points)?;
    let r1 = timed(
        n,
        sample,
        |i| s.range(q.ranges[i].0, q.ranges[i].1),
        &mut a.ranges,
    )?;
    let r2 = timed(
        n,
        sample,
        |i| s.twavg(q.twavgs[i].0, q.twavgs[i].1),
        &mut a.twavgs,
    )?;
    let r3 = timed(
        n,
        sample,
        |i| s.point(q.as_of[i], Some(as_of)),
        &mut a.as_of,
    )?;
    for (k, (qps, p50)) in [r0, r1, r2, r3].into_iter().enumerate() {
        run.qps[k] = qps;
        run.p50_us[k] = p50;
    }
    Ok(a)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        (x, y) => x == y,
    }
}

/// Every system must give the same answers as Tau on the sample.
fn cross_check(
    name: &str,
    tau: &Answers,
    other: &Answers,
    q: &workload::Queries,
) -> Result<(), String> {
    /// The first sampled answer of one kind where `other` differs from Tau's.
    fn first_diff<T: std::fmt::Debug, Q: std::fmt::Debug>(
        name: &str,
        kind: &str,
        queries: &[Q],
        tau: &[T],
        other: &[T],
        same: impl Fn(&T, &T) -> bool,
    ) -> Result<(), String> {
        match tau.iter().zip(other).position(|(a, b)| !same(a, b)) {
            None => Ok(()),
            Some(i) => Err(format!(
                "{name} disagrees with Tau on {kind} {:?} #{i}: tau {:?}, {name} {:?}",
                queries[i], tau[i], other[i]
            )),
        }
    }
    first_diff(
        name,
        "point t=",
        &q.points,
        &tau.points,
        &other.points,
        |a, b| a == b,
    )?;
    first_diff(
        name,
        "range",
        &q.ranges,
        &tau.ranges,
        &other.ranges,
        |a, b| a == b,
    )?;
    first_diff(
        name,
        "twavg",
        &q.twavgs,
        &tau.twavgs,
        &other.twavgs,
        |a, b| close(*a, *b),
    )?;
    first_diff(
        name,
        "as-of t=",
        &q.as_of,
        &tau.as_of,
        &other.as_of,
        |a, b| a == b,
    )?;
    if tau.points.is_empty() || other.points.is_empty() {
        return Err("no answers were sampled".into());
    }
    Ok(())
}

// ------------------------------------------------------------------ Tau

struct TauSys {
    c: tau::Client,
}

impl System for TauSys {
    fn name(&self) -> &'static str {
        "tau"
    }
    fn point(&mut self, t: i64, as_of: Option<i64>) -> Result<Option<f64>, String> {
        let r = match as_of {
            None => self.c.cmd(&format!("AT LENS x {t}"))?,
            Some(w) => self.c.cmd(&format!("AT LENS x {t} AS OF {w}"))?,
        };
        tau::parse_val(r)
    }
    fn range(&mut self, s: i64, e: i64) -> Result<Vec<(i64, i64, f64)>, String> {
        tau::parse_range(self.c.cmd(&format!("RANGE LENS x {s} {e}"))?)
    }
    fn twavg(&mut self, s: i64, e: i64) -> Result<Option<f64>, String> {
        tau::parse_val(self.c.cmd(&format!("REDUCE LENS x {s} {e} USING twavg"))?)
    }
}

fn single_rows(p: &Params) -> Vec<(i64, i64, f64)> {
    let mut r = workload::Rng::new(p.seed ^ 0x51_6e6c);
    (0..p.single_rows as i64)
        .map(|i| (i * 10, i * 10 + 10, r.value()))
        .collect()
}

/// Run `rows` through `clients` threads, each with its own connection; rows/s.
fn parallel<C: Send>(
    rows: &[(i64, i64, f64)],
    clients: usize,
    connect: impl Fn() -> Result<C, String> + Sync,
    insert: impl Fn(&mut C, usize, (i64, i64, f64)) -> Result<(), String> + Sync,
) -> Result<f64, String> {
    let conns: Vec<C> = (0..clients).map(|_| connect()).collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(k, mut c)| {
                let insert = &insert;
                sc.spawn(move || {
                    for (i, row) in rows.iter().enumerate().skip(k).step_by(clients) {
                        insert(&mut c, i, *row)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(rows.len() as f64 / secs)
}

/// Point queries from `clients` threads at once, each with its own connection and one
/// query in flight; queries/s.
fn concurrent_points<C: Send>(
    times: &[i64],
    clients: usize,
    connect: impl Fn() -> Result<C, String> + Sync,
    query: impl Fn(&mut C, i64) -> Result<Option<f64>, String> + Sync,
) -> Result<f64, String> {
    let rows: Vec<(i64, i64, f64)> = times.iter().map(|&t| (t, 0, 0.0)).collect();
    parallel(&rows, clients, connect, |c, _, (t, _, _)| {
        query(c, t).map(|_| ())
    })
}

struct TauSetup {
    _server: tau::Server,
    addr: String,
    sys: TauSys,
    /// (layer id, written_at) of every layer of x, oldest first.
    layers: Vec<(u64, i64)>,
}

fn run_tau(
    a: &Args,
    rep: usize,
    base: &[Layer],
    corr: &[Layer],
    run: &mut Run,
) -> Result<TauSetup, String> {
    let dir = a.work.join(format!("tau-{rep}"));
    let _ = std::fs::remove_dir_all(&dir);
    let port = 17_400 + rep as u16;
    let server = tau::Server::start(&a.tau_server, &dir, port)?;
    let mut c = tau::Client::connect(&server.addr)?;
    for s in [
        "CREATE DATABASE b",
        "USE DATABASE b",
        "CREATE LENS x float",
        "CREATE LENS y float",
    ] {
        c.ok(s)?;
    }
    let t0 = Instant::now();
    for l in base {
        c.ok(&tau::batch_line("x", &l.rows))?;
    }
    run.ingest = a.p.n as f64 / t0.elapsed().as_secs_f64();
    // A clear AS OF boundary between the base layers and the corrections.
    std::thread::sleep(Duration::from_millis(5));
    for l in corr {
        c.ok(&tau::batch_line("x", &l.rows))?;
    }
    let layers = tau::parse_history(c.cmd("HISTORY LENS x")?)?;
    if layers.len() != base.len() + corr.len() {
        return Err(format!(
            "tau has {} layers, expected {}",
            layers.len(),
            base.len() + corr.len()
        ));
    }
    let rows = single_rows(&a.p);
    let addr = server.addr.clone();
    run.single = parallel(
        &rows,
        a.p.clients,
        || {
            let mut c = tau::Client::connect(&addr)?;
            c.ok("USE DATABASE b")?;
            Ok(c)
        },
        |c, _, (s, e, v)| c.ok(&format!("APPEND LENS y {s} {e} {v:?}")),
    )?;
    Ok(TauSetup {
        addr: server.addr.clone(),
        _server: server,
        sys: TauSys { c },
        layers,
    })
}

// ------------------------------------------------------------------ PostgreSQL

struct PgSys {
    c: Pg,
}

impl System for PgSys {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn point(&mut self, t: i64, as_of: Option<i64>) -> Result<Option<f64>, String> {
        let rows = match as_of {
            None => self.c.query(sql::PG_POINT, &[&t]),
            Some(w) => self.c.query(sql::PG_POINT_AS_OF, &[&t, &w]),
        }
        .map_err(e)?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<f64>>(0)))
    }
    fn range(&mut self, s: i64, en: i64) -> Result<Vec<(i64, i64, f64)>, String> {
        let rows = self.c.query(sql::PG_RANGE, &[&s, &en]).map_err(e)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get::<_, Option<f64>>(2).unwrap_or(f64::NAN),
                )
            })
            .collect())
    }
    fn twavg(&mut self, s: i64, en: i64) -> Result<Option<f64>, String> {
        let rows = self.c.query(sql::PG_TWAVG, &[&s, &en]).map_err(e)?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<f64>>(0)))
    }
}

fn pg_load(
    c: &mut Pg,
    table: &str,
    rows: &[(i64, i64, f64)],
    layer: u64,
    written_at: i64,
) -> Result<(), String> {
    let mut tx = c.transaction().map_err(e)?;
    let mut w = tx
        .copy_in(&format!(
            "COPY {table} (layer, written_at, s, e, v) FROM STDIN"
        ))
        .map_err(e)?;
    let mut buf = String::with_capacity(rows.len() * 40);
    for (s, en, v) in rows {
        buf.push_str(&format!("{layer}\t{written_at}\t{s}\t{en}\t{v:?}\n"));
    }
    w.write_all(buf.as_bytes()).map_err(e)?;
    w.finish().map_err(e)?;
    tx.commit().map_err(e)
}

fn run_pg(
    a: &Args,
    cluster: &sql::PgCluster,
    base: &[Layer],
    corr: &[Layer],
    layers: &[(u64, i64)],
    run: &mut Run,
) -> Result<PgSys, String> {
    let mut c = cluster.connect()?;
    c.batch_execute("DROP TABLE IF EXISTS iv; DROP TABLE IF EXISTS single;")
        .map_err(e)?;
    c.batch_execute(sql::PG_SCHEMA).map_err(e)?;
    let t0 = Instant::now();
    for (l, (id, w)) in base.iter().zip(layers) {
        pg_load(&mut c, "iv", &l.rows, *id, *w)?;
    }
    run.ingest = a.p.n as f64 / t0.elapsed().as_secs_f64();
    for (l, (id, w)) in corr.iter().zip(&layers[base.len()..]) {
        pg_load(&mut c, "iv", &l.rows, *id, *w)?;
    }
    c.batch_execute("ANALYZE iv").map_err(e)?;
    let rows = single_rows(&a.p);
    run.single = parallel(
        &rows,
        a.p.clients,
        || cluster.connect(),
        |c, i, (s, en, v)| {
            c.execute(
                "INSERT INTO single (layer, written_at, s, e, v) VALUES ($1, $2, $3, $4, $5)",
                &[&(i as i64), &0i64, &s, &en, &v],
            )
            .map(|_| ())
            .map_err(e)
        },
    )?;
    Ok(PgSys { c })
}

// ------------------------------------------------------------------ SQLite

struct LiteSys {
    c: Connection,
}

impl System for LiteSys {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn point(&mut self, t: i64, as_of: Option<i64>) -> Result<Option<f64>, String> {
        let r = match as_of {
            None => self
                .c
                .prepare_cached(sql::LITE_POINT)
                .and_then(|mut st| st.query_row([t], |r| r.get::<_, Option<f64>>(0))),
            Some(w) => self
                .c
                .prepare_cached(sql::LITE_POINT_AS_OF)
                .and_then(|mut st| st.query_row([t, w], |r| r.get::<_, Option<f64>>(0))),
        };
        match r {
            Ok(v) => Ok(v),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(x) => Err(e(x)),
        }
    }
    fn range(&mut self, s: i64, en: i64) -> Result<Vec<(i64, i64, f64)>, String> {
        let mut st = self.c.prepare_cached(sql::LITE_RANGE).map_err(e)?;
        let rows = st
            .query_map([s, en], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                ))
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }
    fn twavg(&mut self, s: i64, en: i64) -> Result<Option<f64>, String> {
        let mut st = self.c.prepare_cached(sql::LITE_TWAVG).map_err(e)?;
        st.query_row([s, en], |r| r.get::<_, Option<f64>>(0))
            .map_err(e)
    }
}

fn lite_load(
    c: &mut Connection,
    rows: &[(i64, i64, f64)],
    layer: u64,
    written_at: i64,
) -> Result<(), String> {
    let tx = c.transaction().map_err(e)?;
    {
        let mut ins = tx.prepare_cached(sql::LITE_INSERT).map_err(e)?;
        let mut span = tx.prepare_cached(sql::LITE_INSERT_SPAN).map_err(e)?;
        for (s, en, v) in rows {
            ins.execute(rusqlite::params![layer as i64, written_at, s, en, v])
                .map_err(e)?;
            span.execute([s, &(en - 1)]).map_err(e)?;
        }
    }
    tx.commit().map_err(e)
}

fn lite_path(a: &Args, rep: usize) -> PathBuf {
    a.work.join(format!("sqlite-{rep}.db"))
}

fn run_lite(
    a: &Args,
    rep: usize,
    base: &[Layer],
    corr: &[Layer],
    layers: &[(u64, i64)],
    run: &mut Run,
) -> Result<LiteSys, String> {
    let path = lite_path(a, rep);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut c = sql::lite_open(&path)?;
    c.execute_batch(sql::LITE_SCHEMA).map_err(e)?;
    let t0 = Instant::now();
    for (l, (id, w)) in base.iter().zip(layers) {
        lite_load(&mut c, &l.rows, *id, *w)?;
    }
    run.ingest = a.p.n as f64 / t0.elapsed().as_secs_f64();
    for (l, (id, w)) in corr.iter().zip(&layers[base.len()..]) {
        lite_load(&mut c, &l.rows, *id, *w)?;
    }
    c.execute_batch("ANALYZE").map_err(e)?;
    let rows = single_rows(&a.p);
    run.single = parallel(
        &rows,
        a.p.clients,
        || sql::lite_open(&path),
        |c, i, (s, en, v)| {
            c.execute(
                "INSERT INTO single (layer, written_at, s, e, v) VALUES (?1, 0, ?2, ?3, ?4)",
                rusqlite::params![i as i64, s, en, v],
            )
            .map(|_| ())
            .map_err(e)
        },
    )?;
    Ok(LiteSys { c })
}

// ------------------------------------------------------------------ report

const KINDS: [&str; 4] = [
    "point query (newest value at t)",
    "RANGE window (~100 intervals, visible pieces)",
    "twavg over a window (~1,000 intervals)",
    "AS OF point query",
];

fn report(p: &Params, runs: &[[Run; 3]]) -> String {
    let med =
        |f: &dyn Fn(&Run) -> f64, sys: usize| median(runs.iter().map(|r| f(&r[sys])).collect());
    let mut rows: Vec<(String, [f64; 3], &str)> = vec![
        (
            "batched ingest (intervals/s)".into(),
            [0, 1, 2].map(|s| med(&|r| r.ingest, s)),
            "higher",
        ),
        (
            format!("durable single-row inserts, {} clients (rows/s)", p.clients),
            [0, 1, 2].map(|s| med(&|r| r.single, s)),
            "higher",
        ),
    ];
    for (k, name) in KINDS.iter().enumerate() {
        rows.push((
            format!("{name} (queries/s)"),
            [0, 1, 2].map(|s| med(&|r| r.qps[k], s)),
            "higher",
        ));
    }
    rows.push((
        format!("point queries, {} clients at once (queries/s)", p.clients),
        [0, 1, 2].map(|s| med(&|r| r.concurrent_points, s)),
        "higher",
    ));
    for (k, name) in KINDS.iter().enumerate() {
        rows.push((
            format!("{name}, median latency (µs)"),
            [0, 1, 2].map(|s| med(&|r| r.p50_us[k], s)),
            "lower",
        ));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "N = {} intervals in batches of {}, {}% corrected over {} layers, {} single-row inserts from {} clients, {} queries of each kind per repetition ({} cross-checked), {} repetitions, medians.\n\n",
        p.n, p.batch, p.corrections_pct, p.correction_layers, p.single_rows, p.clients, p.queries, p.sample.min(p.queries), p.reps
    ));
    out.push_str(
        "| measurement | Tau | PostgreSQL 15 | SQLite | Tau vs PostgreSQL | Tau vs SQLite |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (name, v, better) in rows {
        let ratio = |o: f64| {
            let r = if better == "higher" {
                v[0] / o
            } else {
                o / v[0]
            };
            format!("{r:.1}×")
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            fmt(v[0]),
            fmt(v[1]),
            fmt(v[2]),
            ratio(v[1]),
            ratio(v[2])
        ));
    }
    out
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else {
        format!("{x:.1}")
    }
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(m) => {
            eprintln!("{m}");
            std::process::exit(2);
        }
    };
    if let Err(m) = real_main(&a) {
        eprintln!("tau-compare: {m}");
        std::process::exit(1);
    }
}

fn real_main(a: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&a.work).map_err(e)?;
    let work = std::fs::canonicalize(&a.work).map_err(e)?;
    let (base, corr) = workload::layers(&a.p);
    let cluster = sql::PgCluster::start(&a.pg_bin, &work.join("pg"), 17_500)?;
    let mut runs = Vec::new();
    for rep in 0..a.p.reps {
        eprintln!("repetition {} of {}", rep + 1, a.p.reps);
        let mut r: [Run; 3] = Default::default();
        let mut t = run_tau(a, rep, &base, &corr, &mut r[0])?;
        // AS OF: as believed when the last base layer was written (before corrections).
        let as_of = t.layers[base.len() - 1].1;
        let mut pg = run_pg(a, &cluster, &base, &corr, &t.layers, &mut r[1])?;
        let mut lite = run_lite(a, rep, &base, &corr, &t.layers, &mut r[2])?;
        let q = workload::queries(&a.p, rep);
        let tau_answers = query_all(&mut t.sys, &q, as_of, a.p.sample, &mut r[0])?;
        let many: Vec<i64> = (0..a.p.queries * 8)
            .map(|i| q.points[i % q.points.len()])
            .collect();
        let addr = t.addr.clone();
        r[0].concurrent_points = concurrent_points(
            &many,
            a.p.clients,
            || {
                let mut c = tau::Client::connect(&addr)?;
                c.ok("USE DATABASE b")?;
                Ok(TauSys { c })
            },
            |c, t| c.point(t, None),
        )?;
        r[1].concurrent_points = concurrent_points(
            &many,
            a.p.clients,
            || cluster.connect().map(|c| PgSys { c }),
            |c, t| c.point(t, None),
        )?;
        let lite_path = lite_path(a, rep);
        r[2].concurrent_points = concurrent_points(
            &many,
            a.p.clients,
            || sql::lite_open(&lite_path).map(|c| LiteSys { c }),
            |c, t| c.point(t, None),
        )?;
        for (k, sys) in [&mut pg as &mut dyn System, &mut lite]
            .into_iter()
            .enumerate()
        {
            let ans = query_all(sys, &q, as_of, a.p.sample, &mut r[k + 1])?;
            cross_check(sys.name(), &tau_answers, &ans, &q)?;
        }
        let corrected = tau_answers
            .points
            .iter()
            .zip(&tau_answers.as_of)
            .filter(|(x, y)| x != y)
            .count();
        eprintln!(
            "  answers agree on {} samples of each kind ({} of the point/AS OF pairs differ, so corrections are visible)",
            a.p.sample.min(a.p.queries),
            corrected
        );
        runs.push(r);
    }
    let text = report(&a.p, &runs);
    println!("{text}");
    if let Some(path) = &a.out {
        std::fs::write(path, &text).map_err(e)?;
    }
    Ok(())
}
