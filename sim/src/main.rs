//! The deterministic simulator: `cargo run -p sim -- --seeds 10000`.
//!
//! Each seed generates a case (configuration + operation list), runs it against the
//! real engine through `step()` and against the oracle, and compares every reply. On
//! a divergence the case is shrunk (tau-shrink) and written out as a replayable file.
//! A run is a pure function of its seed; `--check-determinism` proves it by hashing
//! traces twice.

mod case;
mod disk;
mod run;
mod workload;

use case::{Case, Op};
use run::{run, Divergence, Stats};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const USAGE: &str = "usage: sim [--seeds N] [--start S] [--seed S] [--replay FILE] [--corpus DIR]
           [--ops N] [--faults none|net|disk|all] [--jobs N] [--check-determinism N] [--save]
           [--long-haul]
  --seeds N              run seeds S..S+N (default 1000)
  --start S              first seed (default 0)
  --seed S               replay one seed
  --replay FILE          replay a case file
  --corpus DIR           replay every *.case file in DIR (the regression corpus)
  --ops N                statements per seed (default 500)
  --faults KIND          which faults to inject (default all):
                         net: split deliveries, pipelining, abrupt disconnects, half-closes,
                           held off-loop jobs completed in a seeded order, held storage
                           completions (several connections' commits on one sync);
                         disk (durable seeds): power loss (unsynced data lost or torn per
                           sector, also mid-op and mid-recovery), fsync failures, a full
                           disk, read errors, bit rot;
                         all: both; none: neither (restarts still happen)
  --jobs N               parallel seeds (default: number of cores)
  --check-determinism N  run N seeds twice and compare trace hashes
  --save                 write the shrunk case of a failure into seeds/
  --long-haul            a few long-lived stores: every seed durable, checkpoint thresholds
                         of 1 kB / 5 kB / 25 kB, the main database and lenses a..c never
                         dropped; defaults --seeds 4 --ops 110000 (build with --release)";

struct Args {
    seeds: u64,
    start: u64,
    seed: Option<u64>,
    replay: Option<String>,
    corpus: Option<String>,
    ops: usize,
    net_faults: bool,
    disk_faults: bool,
    jobs: usize,
    determinism: Option<u64>,
    save: bool,
    long_haul: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seeds: 1000,
        start: 0,
        seed: None,
        replay: None,
        corpus: None,
        ops: 500,
        net_faults: true,
        disk_faults: true,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        determinism: None,
        save: false,
        long_haul: false,
    };
    let (mut seeds_set, mut ops_set) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
        match flag.as_str() {
            "--seeds" => {
                a.seeds = num(val()?)?;
                seeds_set = true;
            }
            "--start" => a.start = num(val()?)?,
            "--seed" => a.seed = Some(num(val()?)?),
            "--replay" => a.replay = Some(val()?),
            "--corpus" => a.corpus = Some(val()?),
            "--ops" => {
                a.ops = num(val()?)? as usize;
                ops_set = true;
            }
            "--long-haul" => a.long_haul = true,
            "--jobs" => a.jobs = (num(val()?)? as usize).max(1),
            "--check-determinism" => a.determinism = Some(num(val()?)?),
            "--save" => a.save = true,
            "--faults" => {
                (a.net_faults, a.disk_faults) = match val()?.as_str() {
                    "none" => (false, false),
                    "net" => (true, false),
                    "disk" => (false, true),
                    "all" => (true, true),
                    other => return Err(format!("unknown fault kind {other}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if a.long_haul {
        if !seeds_set {
            a.seeds = 4;
        }
        if !ops_set {
            a.ops = 110_000;
        }
    }
    Ok(a)
}

thread_local! {
    /// The last panic message inside a guarded run (the hook keeps guarded panics quiet:
    /// they are reported as divergences; any other panic is printed as usual).
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn make_case(seed: u64, args: &Args) -> Case {
    let mut c = workload::Gen::new(seed, args.long_haul).case(seed, args.ops);
    if !args.disk_faults {
        c.ops.retain(|o| {
            !matches!(
                o,
                Op::PowerLoss { .. }
                    | Op::FailSync
                    | Op::DiskFull { .. }
                    | Op::FailRead
                    | Op::Rot { .. }
            )
        });
    }
    if !args.net_faults {
        c.ops.retain(|o| !matches!(o, Op::Close { .. }));
        for o in &mut c.ops {
            if let Op::Send { splits, .. } = o {
                splits.clear();
            }
        }
        c.cfg.hold_jobs = false;
        c.cfg.hold_io = false;
    }
    c
}

/// Run a case, turning a panic anywhere into a divergence.
fn run_safe(case: &Case) -> (Option<Divergence>, Stats) {
    GUARDED.with(|g| g.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| run(case)));
    GUARDED.with(|g| g.set(false));
    match r {
        Ok(o) => (o.divergence, o.stats),
        Err(_) => {
            let msg = PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic".into());
            (
                Some(Divergence {
                    step: 0,
                    conn: 0,
                    statement: "<panic>".into(),
                    expected: "no panic".into(),
                    actual: msg,
                    trace: vec![],
                }),
                Stats::default(),
            )
        }
    }
}

fn report(seed: u64, d: &Divergence) {
    eprintln!("DIVERGENCE seed {seed} step {} conn {}", d.step, d.conn);
    eprintln!("  statement: {}", d.statement);
    eprintln!("  expected:  {}", d.expected);
    eprintln!("  actual:    {}", d.actual);
    eprintln!("  recent trace:");
    for t in &d.trace {
        eprintln!("    {t}");
    }
}

/// Shrink a failing case to the smallest op list with the same failure signature.
fn shrink_case(case: &Case, d: &Divergence) -> Case {
    let sig = d.signature();
    let ops = tau_shrink::shrink(&case.ops, tau_shrink::DEFAULT_BUDGET, |cand| {
        let c = Case {
            seed: case.seed,
            cfg: case.cfg.clone(),
            ops: cand.to_vec(),
        };
        matches!(run_safe(&c).0, Some(d2) if d2.signature() == sig)
    });
    Case {
        seed: case.seed,
        cfg: case.cfg.clone(),
        ops,
    }
}

fn fail(case: &Case, d: &Divergence, save: bool, from_file: Option<&str>, flags: &str) -> ! {
    report(case.seed, d);
    if let Some(f) = from_file {
        eprintln!("replay: cargo run -p sim -- --replay {f}");
        std::process::exit(1);
    }
    // Nothing after the op that diverged matters (long cases shrink much faster).
    let mut case = case.clone();
    if d.step > 0 && d.step + 1 < case.ops.len() {
        let cut = Case {
            seed: case.seed,
            cfg: case.cfg.clone(),
            ops: case.ops[..=d.step].to_vec(),
        };
        if matches!(run_safe(&cut).0, Some(d2) if d2.signature() == d.signature()) {
            case = cut;
        }
    }
    eprintln!("shrinking {} ops ...", case.ops.len());
    let small = shrink_case(&case, d);
    let (d2, _) = run_safe(&small);
    let caught = match &d2 {
        Some(d2) => format!(
            "{}\nexpected: {}\nactual: {}",
            d2.statement, d2.expected, d2.actual
        ),
        None => "(shrunk case no longer fails)".into(),
    };
    let text = small.to_text(&caught);
    eprintln!("shrunk to {} ops:\n{text}", small.ops.len());
    let dir = if save { "seeds" } else { "target/sim-cases" };
    let _ = std::fs::create_dir_all(dir);
    let path = format!("{dir}/seed-{}.case", case.seed);
    if std::fs::write(&path, &text).is_ok() {
        eprintln!("replay: cargo run -p sim -- --replay {path}");
    }
    eprintln!(
        "replay the full seed: cargo run -p sim -- --seed {}{flags}",
        case.seed
    );
    std::process::exit(1);
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    statements: u64,
    sends: u64,
    chunked: u64,
    pipelined: u64,
    disconnects: u64,
    half_closes: u64,
    restarts: u64,
    checkpoints: u64,
    jobs: u64,
    held_jobs: u64,
    held_syncs: u64,
    faults: BTreeMap<&'static str, u64>,
    kinds: BTreeMap<String, (u64, u64)>,
    errors: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, s: &Stats) {
        self.seeds += 1;
        self.statements += s.statements;
        self.sends += s.sends;
        self.chunked += s.chunked;
        self.pipelined += s.pipelined;
        self.disconnects += s.disconnects;
        self.half_closes += s.half_closes;
        self.restarts += s.restarts;
        self.checkpoints += s.checkpoints;
        self.jobs += s.jobs;
        self.held_jobs += s.held_jobs;
        self.held_syncs += s.held_syncs;
        for (k, n) in &s.faults {
            *self.faults.entry(k).or_default() += n;
        }
        for (k, n) in &s.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        for (k, (a, b)) in &s.kinds {
            let e = self.kinds.entry(k.clone()).or_default();
            e.0 += a;
            e.1 += b;
        }
    }
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.location() {
            Some(l) => format!("{info} at {}:{}", l.file(), l.line()),
            None => info.to_string(),
        };
        if GUARDED.with(|g| g.get()) {
            PANIC.with(|p| *p.borrow_mut() = Some(msg));
        } else {
            eprintln!("{msg}");
        }
    }));
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &args.replay {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let case = Case::from_text(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        match run_safe(&case).0 {
            Some(d) => fail(&case, &d, false, Some(path), ""),
            None => println!("{path}: ok ({} ops)", case.ops.len()),
        }
        return;
    }
    if let Some(dir) = &args.corpus {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "case"));
        files.sort();
        for p in &files {
            let text = std::fs::read_to_string(p).expect("readable case file");
            let case = Case::from_text(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            if let Some(d) = run_safe(&case).0 {
                fail(&case, &d, false, Some(&p.display().to_string()), "");
            }
        }
        println!("corpus {dir}: {} cases replayed, all pass", files.len());
        return;
    }
    if let Some(n) = args.determinism {
        for seed in args.start..args.start + n {
            let case = make_case(seed, &args);
            let (a, b) = (run_safe(&case).1.trace_hash, run_safe(&case).1.trace_hash);
            let again = make_case(seed, &args);
            if a != b || again.to_text("") != case.to_text("") {
                eprintln!("NONDETERMINISM seed {seed}: trace hashes {a:x} vs {b:x}");
                std::process::exit(1);
            }
        }
        println!("determinism: {n} seeds run twice, identical traces");
        return;
    }
    let (start, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.start, args.seeds),
    };
    let next = AtomicU64::new(start);
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let totals = Mutex::new(Totals::default());
    let failure: Mutex<Option<(Case, Divergence)>> = Mutex::new(None);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(count.max(1) as usize) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= start + count || failed.load(Ordering::Relaxed) {
                    return;
                }
                let case = make_case(seed, &args);
                let (d, stats) = run_safe(&case);
                totals.lock().expect("no poisoned lock").add(&stats);
                if let Some(d) = d {
                    failed.store(true, Ordering::Relaxed);
                    let mut f = failure.lock().expect("no poisoned lock");
                    if f.as_ref().is_none_or(|(c, _)| c.seed > seed) {
                        *f = Some((case, d));
                    }
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Progress line while the workers run.
        let mut last = Instant::now();
        while done.load(Ordering::Relaxed) < count && !failed.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if last.elapsed().as_secs() >= 5 {
                last = Instant::now();
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "  ... {d}/{count} seeds, {:.0} seeds/s",
                    d as f64 / t0.elapsed().as_secs_f64()
                );
            }
        }
    });
    if let Some((case, d)) = failure.into_inner().expect("no poisoned lock") {
        let mut flags = String::new();
        if args.long_haul {
            flags += " --long-haul";
        }
        if args.ops != 500 {
            flags += &format!(" --ops {}", args.ops);
        }
        match (args.net_faults, args.disk_faults) {
            (true, true) => {}
            (true, false) => flags += " --faults net",
            (false, true) => flags += " --faults disk",
            (false, false) => flags += " --faults none",
        }
        fail(&case, &d, args.save, None, &flags);
    }
    let t = totals.into_inner().expect("no poisoned lock");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sim: {} seeds from {start}, {} statements, 0 divergences in {secs:.1}s ({:.0} seeds/s, {:.0} statements/s)",
        t.seeds,
        t.statements,
        t.seeds as f64 / secs,
        t.statements as f64 / secs
    );
    println!(
        "network: {} split deliveries, {} pipelined sends, {} abrupt disconnects, {} half-closes; {} off-loop jobs ({} held, completed in a seeded order)",
        t.chunked, t.pipelined, t.disconnects, t.half_closes, t.jobs, t.held_jobs
    );
    println!(
        "storage: {} restarts with recovery and a durability check, {} checkpoints, {} syncs held and released in order",
        t.restarts, t.checkpoints, t.held_syncs
    );
    println!("disk faults and crash outcomes:");
    for (k, n) in &t.faults {
        println!("  {n:>9}  {k}");
    }
    println!("coverage (statement kind: ok/err):");
    for (k, (ok, err)) in &t.kinds {
        println!("  {k:<18} {ok:>9} / {err}");
    }
    let mut errs: Vec<_> = t.errors.iter().collect();
    errs.sort_by(|a, b| b.1.cmp(a.1));
    println!("most frequent errors:");
    for (e, n) in errs.iter().take(8) {
        println!("  {n:>9}  {e}");
    }
    let never: Vec<&&str> = workload::KINDS
        .iter()
        .filter(|k| **k != "blank" && !t.kinds.contains_key(**k))
        .collect();
    if !never.is_empty() && t.seeds >= 100 {
        println!("never exercised: {never:?}");
    }
}
