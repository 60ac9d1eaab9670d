//! Restart at the scale users reach in minutes (issue 10): 200,000 durable single-row
//! commits from 32 connections, then SIGKILL, then a restart that must serve every
//! acknowledged row. Tau 0.1 could not start again past ~65,000 WAL records.

mod common;

use common::{start, temp_dir, Conn};
use std::io::{BufRead, Write};

const CONNS: usize = 32;
const PER_CONN: usize = 6_250; // 200,000 commits in all
/// Statements a connection keeps in flight (the server runs them in order).
const WINDOW: usize = 64;

fn row(c: usize, i: usize) -> (i64, i64) {
    let t = ((c * PER_CONN + i) * 2) as i64;
    (t, (c * 1_000_003 + i) as i64)
}

#[test]
fn two_hundred_thousand_single_row_commits_survive_sigkill_and_restart() {
    let dir = temp_dir("scale");
    let data = dir.path();
    let mut server = start(&["--data-dir", &data]);
    let mut c = Conn::new(&server.addr);
    for s in ["CREATE DATABASE db", "USE DATABASE db", "CREATE LENS x int"] {
        assert_eq!(c.ask(s), "OK", "{s}");
    }
    let writers: Vec<_> = (0..CONNS)
        .map(|ci| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut w = Conn::new(&addr);
                assert_eq!(w.ask("USE DATABASE db"), "OK");
                let mut acked = 0;
                let mut sent = 0;
                // Keep WINDOW statements outstanding: each is its own commit.
                while acked < PER_CONN {
                    let mut out = String::new();
                    while sent < PER_CONN && sent - acked < WINDOW {
                        let (t, v) = row(ci, sent);
                        out.push_str(&format!("APPEND LENS x {t} {} {v}\n", t + 1));
                        sent += 1;
                    }
                    w.w.write_all(out.as_bytes()).unwrap();
                    let mut l = String::new();
                    w.r.read_line(&mut l).unwrap();
                    assert_eq!(l, "OK\n", "conn {ci} write {acked}");
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    let total: usize = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, CONNS * PER_CONN);
    // Every write was acknowledged; now kill the process without warning.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = start(&["--data-dir", &data]);
    // Statements wait for recovery, so the first reply comes after the replay.
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("USE DATABASE db"), "OK");
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("replayed {} commits", total + 2)),
        "{log}"
    );
    let end = (CONNS * PER_CONN * 2) as i64;
    let range = c.ask(&format!("RANGE LENS x 0 {end}"));
    let mut pieces = range.split("; ");
    assert_eq!(pieces.next(), Some(format!("RANGE {total}").as_str()));
    let got: Vec<&str> = pieces.collect();
    assert_eq!(got.len(), total);
    for ci in 0..CONNS {
        for i in 0..PER_CONN {
            let (t, v) = row(ci, i);
            let want = format!("{t}:{}:i{v}", t + 1);
            assert_eq!(got[t as usize / 2], want, "conn {ci} row {i}");
        }
    }
    let hist = c.ask("HISTORY LENS x");
    assert!(
        hist.starts_with(&format!("LAYERS {total};")),
        "{}",
        &hist[..40]
    );
}
