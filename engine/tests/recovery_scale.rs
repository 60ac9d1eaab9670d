//! Recovery at the scale users reach in minutes (issue 10): a store with a million
//! single-row commits in its WAL must start again, with every row; so must one whose
//! checkpoints hold a million layers. Everything the engine acknowledged is logged and
//! replayed through the same `step()` a server runs.
//!
//! Tau 0.1 could not restart past ~65,000 WAL records (each decoded record kept a 2 GiB
//! buffer); these tests run 15x past that.

use std::collections::BTreeMap;
use tau_engine::driver::SyncDriver;
use tau_engine::durable::StorageConfig;
use tau_engine::{Argon2Params, Config};

const COMMITS: usize = 1_000_000;
/// Statements per send: a pipelining client.
const CHUNK: usize = 20_000;

fn cfg(checkpoint_bytes: u64) -> Config {
    Config {
        argon2: Argon2Params::TEST,
        storage: Some(StorageConfig {
            dir: "/data".into(),
            key: None,
            repair: false,
            checkpoint_bytes,
        }),
        ..Config::default()
    }
}

/// Row `i`: `[2i, 2i+1)` with a value that differs from its neighbours'.
fn value(i: usize) -> i64 {
    (i as i64).wrapping_mul(7919) % 1_000_003
}

/// A million acknowledged single-row APPENDs, each its own commit and layer.
fn load(checkpoint_bytes: u64) -> SyncDriver {
    let mut d = SyncDriver::new(cfg(checkpoint_bytes));
    d.open(1);
    for (s, want) in [
        ("CREATE DATABASE db", "OK"),
        ("USE DATABASE db", "OK"),
        ("CREATE LENS x int", "OK"),
    ] {
        assert_eq!(d.line(1, s), want);
    }
    let mut i = 0;
    while i < COMMITS {
        let mut batch = String::new();
        for j in i..(i + CHUNK).min(COMMITS) {
            batch.push_str(&format!(
                "APPEND LENS x {} {} {}\n",
                2 * j,
                2 * j + 1,
                value(j)
            ));
        }
        d.now_ms += 1;
        d.send(1, batch.as_bytes());
        let replies = d.take_lines(1);
        assert_eq!(replies.len(), CHUNK.min(COMMITS - i), "one reply each");
        assert!(
            replies.iter().all(|r| r == "OK"),
            "every write acknowledged"
        );
        i += CHUNK;
    }
    assert!(d.fatal.is_none());
    d
}

/// Restart on the same files and check every acknowledged row, the layer count and the
/// id sequence.
fn check_restart(d: SyncDriver) -> SyncDriver {
    let files: BTreeMap<String, Vec<u8>> = d.files;
    drop(d.engine);
    let mut r = SyncDriver::with_files(cfg(u64::MAX), files);
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    r.open(1);
    assert_eq!(r.line(1, "USE DATABASE db"), "OK");
    let range = r.line(1, &format!("RANGE LENS x 0 {}", 2 * COMMITS));
    let mut pieces = range.split("; ");
    assert_eq!(pieces.next(), Some(format!("RANGE {COMMITS}").as_str()));
    for (i, p) in pieces.enumerate() {
        assert_eq!(
            p,
            format!("{}:{}:i{}", 2 * i, 2 * i + 1, value(i)),
            "row {i}"
        );
    }
    // Every commit is its own layer, with the ids it was acknowledged under.
    let hist = r.line(1, "HISTORY LENS x");
    let layers: Vec<&str> = hist.split("; ").collect();
    assert_eq!(layers[0], format!("LAYERS {COMMITS}"));
    for (i, l) in layers[1..].iter().enumerate() {
        let (id, rest) = l.split_once(':').unwrap();
        assert_eq!(id, (i + 1).to_string());
        assert!(rest.ends_with(&format!(":{}:{}", 2 * i, 2 * i + 1)), "{l}");
    }
    assert_eq!(
        r.line(1, &format!("AT LENS x {} LAYER {COMMITS}", 2 * COMMITS - 2)),
        format!("VAL i{}", value(COMMITS - 1))
    );
    // New writes continue the id sequence.
    assert_eq!(r.line(1, "APPEND LENS x -2 -1 5"), "OK");
    assert_eq!(r.line(1, "AT LENS x -2 LAYER 1000001"), "VAL i5");
    r
}

#[test]
fn a_million_single_row_commits_in_the_wal_restart() {
    // No checkpoint: the whole history is replayed from one WAL of a million records.
    let d = load(u64::MAX);
    let wal = &d.files["/data/wal-0.log"];
    assert!(wal.len() > 20 * COMMITS, "{} bytes", wal.len());
    let r = check_restart(d);
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("replayed 1000002 commits (1000000 intervals)")),
        "{:?}",
        r.log
    );
}

#[test]
fn a_million_layers_across_checkpoints_restart() {
    // Small checkpoints: dozens of them, each persisting the layers since the last one.
    let d = load(2 << 20);
    let checkpoints = d
        .log
        .iter()
        .filter(|l| l.starts_with("checkpoint:"))
        .count();
    assert!(checkpoints >= 10, "{checkpoints} checkpoints");
    // The data directory stays a directory, not a million files.
    assert!(d.files.len() < 200, "{} files", d.files.len());
    check_restart(d);
}

#[test]
fn ten_thousand_lenses_checkpoint_and_restart() {
    const LENSES: usize = 10_000;
    let mut d = SyncDriver::new(cfg(1 << 20));
    d.open(1);
    assert_eq!(d.line(1, "CREATE DATABASE db"), "OK");
    assert_eq!(d.line(1, "USE DATABASE db"), "OK");
    let mut script = String::new();
    for i in 0..LENSES {
        script.push_str(&format!(
            "CREATE LENS l{i} int\nAPPEND LENS l{i} 0 10 {i}\n"
        ));
    }
    d.send(1, script.as_bytes());
    let replies = d.take_lines(1);
    assert_eq!(replies.len(), 2 * LENSES);
    assert!(replies.iter().all(|r| r == "OK"));
    assert!(
        d.log.iter().any(|l| l.starts_with("checkpoint:")),
        "{:?}",
        d.log
    );
    let mut r = SyncDriver::with_files(cfg(1 << 20), d.files);
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    r.open(1);
    assert_eq!(r.line(1, "USE DATABASE db"), "OK");
    let names = r.line(1, "SHOW LENSES");
    assert!(
        names.starts_with(&format!("NAMES {LENSES};")),
        "{}",
        &names[..30]
    );
    for i in (0..LENSES).step_by(997) {
        assert_eq!(r.line(1, &format!("AT LENS l{i} 5")), format!("VAL i{i}"));
        assert_eq!(
            r.line(1, &format!("AT LENS l{i} 5 LAYER {}", i + 1)),
            format!("VAL i{i}")
        );
    }
}

#[test]
fn a_ten_million_interval_batch_is_logged_and_replayed() {
    // One BATCH APPEND line of 10M intervals (~160 MB), with the line cap raised for it:
    // whatever the engine accepts it must be able to log and replay.
    const N: usize = 10_000_000;
    let big = |c: Config| Config {
        max_line_bytes: 256 << 20,
        max_pipelined_bytes: 512 << 20,
        ..c
    };
    let mut d = SyncDriver::new(big(cfg(u64::MAX)));
    d.open(1);
    for s in ["CREATE DATABASE db", "USE DATABASE db", "CREATE LENS x int"] {
        assert_eq!(d.line(1, s), "OK");
    }
    let mut line = String::with_capacity(N * 20);
    line.push_str("BATCH APPEND LENS x {");
    for i in 0..N {
        use std::fmt::Write;
        write!(line, " {} {} {};", 2 * i, 2 * i + 1, i % 1000).unwrap();
    }
    line.pop();
    line.push_str(" }");
    assert_eq!(d.line(1, &line), "OK");
    drop(line);
    let mut r = SyncDriver::with_files(big(cfg(u64::MAX)), std::mem::take(&mut d.files));
    drop(d);
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    r.open(1);
    assert_eq!(r.line(1, "USE DATABASE db"), "OK");
    assert_eq!(
        r.line(1, &format!("REDUCE LENS x 0 {} USING count", 2 * N)),
        format!("VAL i{N}")
    );
    let sum: i64 = (0..N as i64).map(|i| i % 1000).sum();
    assert_eq!(
        r.line(1, &format!("REDUCE LENS x 0 {} USING sum", 2 * N)),
        format!("VAL i{sum}")
    );
    assert_eq!(
        r.line(1, &format!("AT LENS x {}", 2 * N - 2)),
        format!("VAL i{}", (N - 1) % 1000)
    );
}
