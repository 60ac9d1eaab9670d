//! Durable mode through the synchronous driver and by hand: OK only after the sync,
//! group commit, restart, torn tails, corruption, wrong keys and failed fsyncs.

use std::collections::BTreeMap;
use tau_engine::driver::SyncDriver;
use tau_engine::durable::{StorageConfig, StorageOp, StorageOut};
use tau_engine::wal::WalKey;
use tau_engine::{Argon2Params, Config, Effect, Engine, Event};

const WAL: &str = "/data/wal-0.log";

fn cfg(key: Option<WalKey>, repair: bool) -> Config {
    Config {
        argon2: Argon2Params::TEST,
        storage: Some(StorageConfig {
            dir: "/data".into(),
            key,
            repair,
            checkpoint_bytes: StorageConfig::CHECKPOINT_BYTES,
        }),
        ..Config::default()
    }
}

fn script(d: &mut SyncDriver, pairs: &[(&str, &str)]) {
    for (s, want) in pairs {
        assert_eq!(d.line(1, s), *want, "{s}");
    }
}

fn restart(d: SyncDriver, c: Config) -> SyncDriver {
    let mut n = SyncDriver::with_files(c, d.files);
    n.open(1);
    n
}

fn populated(c: Config) -> SyncDriver {
    let mut d = SyncDriver::new(c);
    d.open(1);
    d.now_ms = 500;
    script(
        &mut d,
        &[
            ("CREATE DATABASE db", "OK"),
            ("USE DATABASE db", "OK"),
            ("CREATE LENS x int", "OK"),
            ("APPEND LENS x 0 10 1", "OK"),
            ("BATCH APPEND LENS x { 5 15 2; 20 30 3 }", "OK"),
            ("START TRANSACTION", "OK"),
            ("CREATE LENS y float", "OK"),
            ("APPEND LENS y 0 5 1.5", "OK"),
            ("COMMIT", "OK"),
            ("DERIVE LENS d AS x * 2", "OK"),
            ("CREATE USER bob PASSWORD \"pw\"", "OK"),
            ("GRANT RU ON db TO bob", "OK"),
        ],
    );
    d
}

const CHECKS: &[(&str, &str)] = &[
    ("USE DATABASE db", "OK"),
    ("RANGE LENS x 0 40", "RANGE 3; 0:5:i1; 5:15:i2; 20:30:i3"),
    ("AT LENS y 1", "VAL f1.5"),
    ("AT LENS d 7", "VAL i4"),
    ("HISTORY LENS x", "LAYERS 2; 1:500:0:10; 2:500:5:30"),
    ("HISTORY LENS y", "LAYERS 1; 3:500:0:5"),
    ("SHOW GRANTS bob", "GRANTS 1; bob db:RU"),
];

#[test]
fn a_restart_recovers_everything_and_ids_keep_counting() {
    let d = populated(cfg(None, false));
    let mut d = restart(d, cfg(None, false));
    script(&mut d, CHECKS);
    script(
        &mut d,
        &[
            ("APPEND LENS x 40 50 9", "OK"),
            ("HISTORY LENS x 40 50", "LAYERS 1; 4:500:40:50"),
        ],
    );
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("replayed 8 commits (4 intervals)")),
        "{:?}",
        d.log
    );
}

#[test]
fn encrypted_store_restarts_with_its_key_and_refuses_another() {
    let key = || Some(WalKey::new(&[5; 32]));
    let d = populated(cfg(key(), false));
    assert!(
        !d.files[WAL].windows(3).any(|w| w == b"bob"),
        "plaintext in an encrypted WAL"
    );
    let files = d.files.clone();
    let mut d = restart(d, cfg(key(), false));
    script(&mut d, CHECKS);
    let bad = SyncDriver::with_files(cfg(Some(WalKey::new(&[6; 32])), false), files.clone());
    let msg = bad.fatal.expect("a wrong key refuses to start");
    assert!(
        msg.contains("/data/wal-0.log") && msg.contains("wrong key") && msg.contains("offset 24"),
        "{msg}"
    );
    let none = SyncDriver::with_files(cfg(None, false), files);
    assert!(none.fatal.expect("no key refuses").contains("no key"));
}

#[test]
fn a_torn_tail_is_truncated_and_logged() {
    let mut d = populated(cfg(None, false));
    let len = d.files[WAL].len();
    d.files
        .get_mut(WAL)
        .unwrap()
        .extend_from_slice(&[0x33, 0, 0, 0, 1, 2, 3]);
    let mut d = restart(d, cfg(None, false));
    assert!(d.fatal.is_none());
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("truncating a torn record at offset")),
        "{:?}",
        d.log
    );
    assert_eq!(d.files[WAL].len(), len);
    script(&mut d, CHECKS);
}

#[test]
fn corruption_refuses_to_start_and_repair_keeps_the_intact_prefix() {
    let mut d = populated(cfg(None, false));
    let at = 48; // inside an early record, with intact records after it
    d.files.get_mut(WAL).unwrap()[at] ^= 0x10;
    let files = d.files.clone();
    let bad = SyncDriver::with_files(cfg(None, false), files.clone());
    let msg = bad.fatal.expect("corruption refuses to start");
    assert!(
        msg.starts_with("/data/wal-0.log: corrupt record") && msg.contains("offset 24"),
        "{msg}"
    );
    // Statements wait (they are never answered from a store that did not start).
    let mut repaired = SyncDriver::with_files(cfg(None, true), files);
    assert!(repaired.fatal.is_none());
    assert!(
        repaired
            .log
            .iter()
            .any(|l| l.starts_with("repair: /data/wal-0.log")),
        "{:?}",
        repaired.log
    );
    repaired.open(1);
    assert_eq!(repaired.line(1, "SHOW DATABASES"), "NAMES 0");
}

#[test]
fn a_failed_fsync_stops_writes_but_not_reads() {
    let mut d = populated(cfg(None, false));
    d.fail_syncs = 1;
    let e = d.line(1, "APPEND LENS x 100 110 7");
    assert!(
        e.starts_with("ERR storage error: fsync of /data/wal-0.log failed"),
        "{e}"
    );
    assert_eq!(d.line(1, "AT LENS x 105"), "VAL NIL");
    assert_eq!(d.line(1, "AT LENS x 7"), "VAL i2");
    let e = d.line(1, "CREATE LENS z int");
    assert!(e.starts_with("ERR storage error: fsync of"), "{e}");
    assert!(d
        .log
        .iter()
        .any(|l| l.contains("no longer accepting writes")));
}

/// By hand: hold syncs to see group commit and that readers never see undurable data.
#[test]
fn group_commit_and_no_dirty_reads() {
    let mut e = Engine::new(cfg(None, false));
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut held = Vec::new();
    let mut out: BTreeMap<u64, String> = BTreeMap::new();
    let mut syncs = 0;
    // Run events; complete every storage op except syncs, which are held.
    let mut run = |e: &mut Engine,
                   ev: Event,
                   held: &mut Vec<u64>,
                   out: &mut BTreeMap<u64, String>,
                   syncs: &mut usize| {
        let mut q = std::collections::VecDeque::from([ev]);
        while let Some(ev) = q.pop_front() {
            let mut fx = Vec::new();
            e.step(0, ev, &mut fx);
            for f in fx {
                match f {
                    Effect::Send(c, b) => out
                        .entry(c)
                        .or_default()
                        .push_str(&String::from_utf8(b).unwrap()),
                    Effect::Storage {
                        token,
                        op: StorageOp::Sync { .. },
                    } => {
                        *syncs += 1;
                        held.push(token);
                    }
                    Effect::Storage { token, op } => {
                        let r = match op {
                            StorageOp::ReadAll { path } => files
                                .get(&path)
                                .cloned()
                                .map_or(StorageOut::NotFound, StorageOut::Bytes),
                            StorageOp::Create { path, bytes } => {
                                files.insert(path, bytes);
                                StorageOut::Done
                            }
                            StorageOp::Append { path, bytes } => {
                                files.entry(path).or_default().extend(bytes);
                                StorageOut::Done
                            }
                            StorageOp::List { .. } => StorageOut::Names(Vec::new()),
                            _ => StorageOut::Done,
                        };
                        q.push_back(Event::StorageDone {
                            token,
                            result: Ok(r),
                        });
                    }
                    _ => {}
                }
            }
        }
    };
    let release = |held: &mut Vec<u64>| -> Vec<Event> {
        held.drain(..)
            .map(|token| Event::StorageDone {
                token,
                result: Ok(StorageOut::Done),
            })
            .collect()
    };
    run(&mut e, Event::Boot, &mut held, &mut out, &mut syncs);
    for c in 1..=4 {
        run(&mut e, Event::Open(c), &mut held, &mut out, &mut syncs);
    }
    run(
        &mut e,
        Event::Bytes(1, b"CREATE DATABASE db\nUSE DATABASE db\n".to_vec()),
        &mut held,
        &mut out,
        &mut syncs,
    );
    for ev in release(&mut held) {
        run(&mut e, ev, &mut held, &mut out, &mut syncs);
    }
    run(
        &mut e,
        Event::Bytes(1, b"CREATE LENS x int\n".to_vec()),
        &mut held,
        &mut out,
        &mut syncs,
    );
    for ev in release(&mut held) {
        run(&mut e, ev, &mut held, &mut out, &mut syncs);
    }
    assert_eq!(out[&1], "OK\nOK\nOK\n");
    let before = syncs;
    // Three writers while the first sync is held: one sync in flight, one more for the rest.
    for c in 1..=3u64 {
        let stmt = format!("USE DATABASE db\nAPPEND LENS x {c}0 {c}5 {c}\n");
        run(
            &mut e,
            Event::Bytes(c + 1, stmt.into_bytes()),
            &mut held,
            &mut out,
            &mut syncs,
        );
    }
    assert_eq!(
        syncs - before,
        1,
        "one sync in flight while more writes arrive"
    );
    // Nobody has OK yet, and a reader does not see the writes.
    run(
        &mut e,
        Event::Bytes(1, b"RANGE LENS x 0 100\n".to_vec()),
        &mut held,
        &mut out,
        &mut syncs,
    );
    assert!(out[&1].ends_with("RANGE 0\n"), "{:?}", out[&1]);
    assert_eq!(
        out.get(&3).map(String::as_str),
        Some("OK\n"),
        "only USE answered for conn 3"
    );
    for ev in release(&mut held) {
        run(&mut e, ev, &mut held, &mut out, &mut syncs);
    }
    assert_eq!(
        syncs - before,
        2,
        "the second sync covers both later writes"
    );
    for ev in release(&mut held) {
        run(&mut e, ev, &mut held, &mut out, &mut syncs);
    }
    for c in 2..=4 {
        assert_eq!(out[&c], "OK\nOK\n", "conn {c}");
    }
    run(
        &mut e,
        Event::Bytes(1, b"REDUCE LENS x 0 100 USING count\n".to_vec()),
        &mut held,
        &mut out,
        &mut syncs,
    );
    assert!(out[&1].ends_with("VAL i3\n"), "{:?}", out[&1]);
}

#[test]
fn a_full_disk_refuses_writes_loses_nothing_and_writes_resume() {
    let mut d = populated(cfg(None, false));
    let len = d.files[WAL].len();
    d.disk_full = true;
    let e = d.line(1, "APPEND LENS x 100 110 7");
    assert_eq!(
        e,
        "ERR storage error: disk full (No space left on device (os error 28))"
    );
    // The half-written record is gone again; reads are unaffected.
    assert_eq!(d.files[WAL].len(), len);
    assert_eq!(d.line(1, "AT LENS x 105"), "VAL NIL");
    assert_eq!(d.line(1, "AT LENS x 7"), "VAL i2");
    assert!(d.log.iter().any(|l| l.contains("disk full")), "{:?}", d.log);
    // Space returns: writes succeed again, and everything survives a restart.
    d.disk_full = false;
    assert_eq!(d.line(1, "APPEND LENS x 200 210 8"), "OK");
    let mut d = restart(d, cfg(None, false));
    script(&mut d, &CHECKS[..4]);
    // The refused write took no layer id: the next write got 4 (x has 1 and 2, y has 3).
    assert_eq!(
        d.line(1, "HISTORY LENS x"),
        "LAYERS 3; 1:500:0:10; 2:500:5:30; 4:500:200:210"
    );
    assert_eq!(d.line(1, "AT LENS x 105"), "VAL NIL");
    assert_eq!(d.line(1, "AT LENS x 205"), "VAL i8");
    assert!(d.fatal.is_none());
}

#[test]
fn the_bootstrap_admin_is_logged_and_survives_restarts() {
    let auth = || Config {
        auth: true,
        bootstrap_admin: Some(("admin".into(), "pw".into())),
        ..cfg(None, false)
    };
    let mut d = SyncDriver::new(auth());
    d.open(1);
    script(
        &mut d,
        &[
            ("AUTH admin pw", "OK"),
            ("CREATE USER bob PASSWORD \"b\"", "OK"),
        ],
    );
    let wal_after_first_start = d.files[WAL].len();
    let mut d = restart(d, auth());
    script(
        &mut d,
        &[
            ("AUTH admin pw", "OK"),
            ("SHOW USERS", "NAMES 2; admin; bob"),
        ],
    );
    // Logged once: a restart with users present adds nothing to the log.
    assert_eq!(d.files[WAL].len(), wal_after_first_start);
}

#[test]
fn checkpoints_write_layer_files_and_a_manifest_and_restart_from_them() {
    let small = || Config {
        storage: Some(StorageConfig {
            dir: "/data".into(),
            key: Some(WalKey::new(&[9; 32])),
            repair: false,
            checkpoint_bytes: 400,
        }),
        ..cfg(None, false)
    };
    let mut d = SyncDriver::new(small());
    d.open(1);
    d.now_ms = 500;
    script(
        &mut d,
        &[
            ("CREATE DATABASE db", "OK"),
            ("USE DATABASE db", "OK"),
            ("CREATE LENS x int", "OK"),
            ("CREATE LENS gone int", "OK"),
            ("APPEND LENS gone 0 5 1", "OK"),
            ("DERIVE LENS d AS x * 2", "OK"),
            ("DERIVE LENS dd AS d + 1", "OK"),
            ("CREATE USER bob PASSWORD \"pw\"", "OK"),
            ("GRANT RU ON db TO bob", "OK"),
        ],
    );
    for i in 0..40 {
        assert_eq!(
            d.line(1, &format!("APPEND LENS x {} {} {i}", i * 10, i * 10 + 10)),
            "OK"
        );
    }
    assert_eq!(d.line(1, "DROP LENS gone"), "OK");
    for i in 40..60 {
        assert_eq!(
            d.line(1, &format!("APPEND LENS x {} {} {i}", i * 10, i * 10 + 10)),
            "OK"
        );
    }
    let names: Vec<&String> = d.files.keys().collect();
    assert!(d.files.contains_key("/data/manifest"), "{names:?}");
    assert!(
        !d.files.contains_key("/data/wal-0.log"),
        "the first WAL was replaced: {names:?}"
    );
    // At most one pack file per checkpoint (not one file per layer); layers after the last
    // checkpoint are only in the current WAL.
    let layer_files = d.files.keys().filter(|k| k.ends_with(".tl")).count();
    let checkpoints = d
        .log
        .iter()
        .filter(|l| l.starts_with("checkpoint: generation"))
        .count();
    assert!(checkpoints >= 2, "{:?}", d.log);
    assert!((1..=checkpoints).contains(&layer_files), "{names:?}");
    const QUERIES: [&str; 5] = [
        "RANGE LENS x 0 1000",
        "HISTORY LENS x 100 130",
        "AT LENS dd 55",
        "REDUCE LENS x 0 600 USING sum",
        "SHOW LENSES",
    ];
    let before: Vec<String> = QUERIES.iter().map(|q| d.line(1, q)).collect();
    let mut d = restart(d, small());
    assert!(d.fatal.is_none(), "{:?}", d.fatal);
    assert!(
        d.log.iter().any(|l| l.contains("layer files")),
        "{:?}",
        d.log
    );
    assert_eq!(d.line(1, "USE DATABASE db"), "OK");
    let after: Vec<String> = QUERIES.iter().map(|q| d.line(1, q)).collect();
    assert_eq!(after, before);
    assert_eq!(before[2], "VAL i11");
    assert_eq!(d.line(1, "SHOW GRANTS bob"), "GRANTS 1; bob db:RU");
    // Layer ids keep counting after a restart from a checkpoint (gone had id 1).
    assert_eq!(d.line(1, "APPEND LENS x 5000 5010 1"), "OK");
    assert_eq!(
        d.line(1, "HISTORY LENS x 5000 5010"),
        "LAYERS 1; 62:500:5000:5010"
    );
}

#[test]
fn compacted_runs_are_persisted_at_checkpoints_and_recovered_without_recompacting() {
    use tau_engine::catalog::Lens;
    use tau_engine::layer::Run;
    let cfg = || Config {
        // No automatic compaction: a compacted run after the restart came from its file.
        compact_threshold: 1_000_000,
        storage: Some(StorageConfig {
            dir: "/data".into(),
            key: None,
            repair: false,
            checkpoint_bytes: 300,
        }),
        ..Config::default()
    };
    let compacted = |d: &SyncDriver| match d.engine.state().db("db").unwrap().lenses.get("x") {
        Some(Lens::Base(b)) => b
            .runs
            .iter()
            .filter(|r| matches!(r, Run::Compacted(_)))
            .count(),
        _ => panic!("base lens"),
    };
    let mut d = SyncDriver::new(cfg());
    d.open(1);
    script(
        &mut d,
        &[
            ("CREATE DATABASE db", "OK"),
            ("USE DATABASE db", "OK"),
            ("CREATE LENS x int", "OK"),
        ],
    );
    for i in 0..10 {
        assert_eq!(
            d.line(1, &format!("APPEND LENS x {i} {} {i}", i + 20)),
            "OK"
        );
    }
    assert_eq!(d.line(1, "COMPACT LENS x"), "OK");
    assert_eq!(compacted(&d), 1);
    // More writes pass the threshold: the checkpoint writes the compacted run too.
    for i in 10..30 {
        assert_eq!(
            d.line(1, &format!("APPEND LENS x {} {} {i}", i * 100, i * 100 + 5)),
            "OK"
        );
    }
    let queries = [
        "RANGE LENS x 0 40",
        "RANGE LENS x 0 40 AS OF 0",
        "AT LENS x 15 LAYER 3",
        "HISTORY LENS x 0 40",
    ];
    let before: Vec<String> = queries.iter().map(|q| d.line(1, q)).collect();
    let mut d = restart(d, cfg());
    assert!(d.fatal.is_none(), "{:?}", d.fatal);
    assert_eq!(
        compacted(&d),
        1,
        "the compacted run was loaded from its file"
    );
    assert_eq!(d.line(1, "USE DATABASE db"), "OK");
    let after: Vec<String> = queries.iter().map(|q| d.line(1, q)).collect();
    assert_eq!(after, before);
}

/// A store that has checkpointed: (driver, its configuration with `repair`).
fn checkpointed(repair: bool) -> (SyncDriver, Config) {
    let c = Config {
        storage: Some(StorageConfig {
            dir: "/data".into(),
            key: None,
            repair,
            checkpoint_bytes: 300,
        }),
        ..cfg(None, false)
    };
    let mut d = populated(c.clone());
    for i in 0..30 {
        assert_eq!(
            d.line(1, &format!("APPEND LENS x {} {} {i}", 100 + i, 101 + i)),
            "OK"
        );
    }
    assert!(d.files.contains_key("/data/manifest"));
    assert!(
        !d.files.contains_key(WAL),
        "wal-0.log is gone after a checkpoint"
    );
    (d, c)
}

fn current_wal(d: &SyncDriver) -> String {
    d.files
        .keys()
        .find(|k| k.starts_with("/data/wal-"))
        .expect("a WAL")
        .clone()
}

#[test]
fn a_lost_manifest_refuses_to_start_and_destroys_nothing() {
    // Tau 0.1 started empty (NAMES 0) and its next checkpoint overwrote the layer files.
    let (d, c) = checkpointed(false);
    let mut files = d.files.clone();
    files.remove("/data/manifest");
    let before = files.clone();
    let bad = SyncDriver::with_files(c.clone(), files);
    let msg = bad.fatal.clone().expect("refuses to start");
    assert!(
        msg.contains("/data/manifest is missing but /data holds a store's files"),
        "{msg}"
    );
    assert!(msg.contains("layer-1.tl"), "{msg}");
    assert_eq!(bad.files, before, "nothing written, nothing removed");
    // The manifest back: everything is there.
    let mut d = restart(d, c);
    script(
        &mut d,
        &[("USE DATABASE db", "OK"), ("AT LENS x 129", "VAL i29")],
    );
}

#[test]
fn a_missing_or_emptied_wal_after_a_checkpoint_refuses_to_start() {
    let (d, c) = checkpointed(false);
    let wal = current_wal(&d);
    let mut gone = d.files.clone();
    gone.remove(&wal);
    let msg = SyncDriver::with_files(c.clone(), gone.clone())
        .fatal
        .expect("a missing WAL refuses");
    assert!(
        msg.contains(&format!(
            "{wal} is missing, and the manifest names generation"
        )),
        "{msg}"
    );
    let mut emptied = d.files.clone();
    emptied.insert(wal.clone(), Vec::new());
    let msg = SyncDriver::with_files(c.clone(), emptied)
        .fatal
        .expect("an emptied WAL refuses");
    assert!(
        msg.contains("is shorter than its header (0 bytes)"),
        "{msg}"
    );
    // --repair starts from the checkpoint alone (what the log held is lost, and said so
    // by the refusal above).
    let repair = Config {
        storage: Some(StorageConfig {
            repair: true,
            ..c.storage.clone().unwrap()
        }),
        ..c
    };
    let mut r = SyncDriver::with_files(repair, gone);
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    r.open(1);
    assert_eq!(r.line(1, "USE DATABASE db"), "OK");
}

#[test]
fn a_crash_during_the_first_checkpoint_is_not_a_lost_manifest() {
    // The first checkpoint wrote its pack and wal-1.log, then the process died before the
    // manifest: wal-0.log still holds everything, and the leftovers are overwritten later.
    let mut d = populated(cfg(None, false));
    d.files
        .insert("/data/layer-1.tl".into(), b"TAUWAL\r\npartial".to_vec());
    d.files.insert("/data/wal-1.log".into(), Vec::new());
    let mut d = restart(d, cfg(None, false));
    assert!(d.fatal.is_none(), "{:?}", d.fatal);
    script(&mut d, CHECKS);
}
