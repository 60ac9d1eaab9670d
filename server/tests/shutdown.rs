//! Graceful stop: SIGTERM while writers are busy. The server stops accepting, answers
//! every complete statement it received, syncs, closes connections and exits 0; after a
//! restart every acknowledged write is there, and a statement cut off mid-line is not.

mod common;
use common::{start, temp_dir, Conn};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_cleanly_and_keeps_acknowledged_writes() {
    let dir = temp_dir("sigterm");
    let data = dir.path();
    let mut server = start(&["--data-dir", &data]);
    let mut c = Conn::new(&server.addr);
    for stmt in [
        "CREATE DATABASE d",
        "USE DATABASE d",
        "CREATE LENS x int",
        "CREATE LENS y int",
    ] {
        assert_eq!(c.ask(stmt), "OK");
    }
    // A statement cut off mid-line when the signal comes must not run.
    assert_eq!(c.ask("APPEND LENS y 0 1 1"), "OK");
    c.send("APPEND LENS y 1 2 2");
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (addr, acked) = (server.addr.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut c = Conn::new(&addr);
                if c.ask("USE DATABASE d") != "OK" {
                    return 0;
                }
                let mut n = 0;
                for k in (w * 1_000_000).. {
                    let stmt = format!("APPEND LENS x {} {} {k}\n", 2 * k, 2 * k + 1);
                    if std::io::Write::write_all(&mut c.w, stmt.as_bytes()).is_err() {
                        return n;
                    }
                    match c.try_line().as_deref() {
                        Some("OK") => {
                            acked.lock().unwrap().push(k);
                            n += 1;
                        }
                        None => return n, // closed by the server
                        Some(other) => panic!("unexpected reply {other}"),
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "log: {:?}",
        server.log.lock().unwrap()
    );
    let total: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 0, "no write was acknowledged before the signal");
    // The connection with the partial line was closed too.
    assert_eq!(c.line(), "");

    let server = start(&["--data-dir", &data]);
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("USE DATABASE d"), "OK");
    let range = c.ask("RANGE LENS x 0 100000000");
    let present: std::collections::BTreeSet<u64> = range
        .split("; ")
        .skip(1)
        .map(|p| p.rsplit(":i").next().unwrap().parse().unwrap())
        .collect();
    for k in acked.lock().unwrap().iter() {
        assert!(present.contains(k), "acknowledged write {k} lost");
    }
    assert_eq!(c.ask("RANGE LENS y 0 10"), "RANGE 1; 0:1:i1");
}
