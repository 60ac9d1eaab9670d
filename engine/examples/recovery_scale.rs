//! Recovery at scale, for BENCHMARKS.md ("Recovery at scale"):
//!
//! ```text
//! cargo run --release -p tau-engine --example recovery_scale -- commits 1000000 /tmp/c.wal
//! cargo run --release -p tau-engine --example recovery_scale -- batches 100000000 10000 /tmp/b.wal
//! cargo run --release -p tau-engine --example recovery_scale -- replay /tmp/c.wal
//! ```
//!
//! `commits` and `batches` write a WAL exactly as the engine logs it (format 2: one record
//! per commit, each a single-lens APPEND of a float random walk; single-interval commits,
//! or batches of PER intervals as BATCH APPEND writes them). `replay` runs in a fresh
//! process and times `recovery::recover` over the file: the streaming replay that
//! `Engine::step` runs at boot (read, check, decompress, decode and apply each record).
//! It reports replay rates, the resident size of the recovered state (RSS after minus
//! RSS before, the file itself excluded) and the peak resident size during recovery
//! (VmHWM, reset just before, minus RSS before reading the file, so the file counts
//! against the peak). A copy of the file as `wal-0.log` in an empty directory is a data
//! directory `tau-server --data-dir` starts from.

use std::sync::Arc;
use std::time::Instant;
use tau_engine::catalog::Op;
use tau_engine::codec::{encode, CommitUnit};
use tau_engine::layer::Segs;
use tau_engine::wal::{encode_record_with, header, Compressor, VERSION};
use tau_engine::{Type, Value};

fn proc_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a /proc/self/status field")
}

fn write_wal(path: &str, total: usize, per: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    use std::io::Write;
    let mut z = Compressor::new();
    let mut seq = 1u64;
    out.write_all(&header(false, seq)).unwrap();
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
    let mut put = |unit: &CommitUnit, seq: &mut u64| {
        let rec = encode_record_with(&mut z, &encode(unit), None, [0; 12], VERSION, *seq)
            .expect("within the record limits");
        *seq += 1;
        out.write_all(&rec).unwrap();
    };
    put(&setup, &mut seq);
    let (mut x, mut temp) = (7u64, 200i64);
    let mut t = 0i64;
    let mut written = 0;
    while written < total {
        let n = per.min(total - written);
        let rows: Vec<(i64, i64, Value)> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                temp += (x % 5) as i64 - 2;
                t += 60_000;
                (t - 60_000, t, Value::Float(temp as f64 / 10.0))
            })
            .collect();
        let unit = CommitUnit {
            written_at: seq as i64,
            ops: vec![Op::Append {
                db: "db".into(),
                lens: "temp".into(),
                ty: Type::Float,
                segs: Arc::new(Segs::from_sorted_rows(rows)),
            }],
        };
        put(&unit, &mut seq);
        written += n;
    }
    out.flush().unwrap();
    println!("wrote {path}: {} records, {total} intervals", seq - 1);
}

/// CPU seconds this process has used (user + system), from /proc/self/stat: a figure the
/// other processes on a shared machine do not inflate the way they do wall time.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    let after = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn replay(path: &str) {
    let rss0 = proc_kb("VmRSS:");
    let file = std::fs::read(path).expect("read the WAL");
    let rss1 = proc_kb("VmRSS:");
    // Reset the peak so that it measures recovery alone (Linux: clear_refs 5).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let (t0, c0) = (Instant::now(), cpu_secs());
    let r = tau_engine::recovery::recover(&file, path, None, false).expect("recovers");
    let wall = t0.elapsed().as_secs_f64();
    let secs = cpu_secs() - c0;
    let peak = proc_kb("VmHWM:");
    let rss2 = proc_kb("VmRSS:");
    let state_kb = rss2.saturating_sub(rss1);
    let peak_kb = peak.saturating_sub(rss0);
    println!(
        "replayed {} commits, {} intervals from {:.1} MB in {:.3} s CPU ({:.3} s wall): {:.2} M commits/s, {:.2} M intervals/s of CPU",
        r.units,
        r.intervals,
        file.len() as f64 / 1e6,
        secs,
        wall,
        r.units as f64 / secs / 1e6,
        r.intervals as f64 / secs / 1e6
    );
    println!(
        "recovered state {:.1} MB resident ({:.1} bytes/interval); peak during recovery {:.1} MB incl. the file = {:.2}x the state",
        state_kb as f64 / 1024.0,
        state_kb as f64 * 1024.0 / r.intervals.max(1) as f64,
        peak_kb as f64 / 1024.0,
        peak_kb as f64 / state_kb.max(1) as f64
    );
    drop(r);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: &String| s.replace('_', "").parse::<usize>().expect("a number");
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["commits", n, path] => write_wal(path, num(&n.to_string()), 1),
        ["batches", n, per, path] => write_wal(path, num(&n.to_string()), num(&per.to_string())),
        ["replay", path] => replay(path),
        _ => {
            eprintln!("usage: recovery_scale commits N FILE | batches N PER FILE | replay FILE");
            std::process::exit(2);
        }
    }
}
