//! Durable write throughput through the real io adapter (in-process, real files, real
//! fsyncs): `cargo run --release -p tau-io --example durable_bench [DIR]`.
//! Reports single-statement APPENDs/s with 1 and with 32 concurrent writers (group
//! commit), and BATCH APPEND intervals/s. Each figure runs for about 3 seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tau_engine::durable::StorageConfig;
use tau_engine::{Config, Event};
use tau_io::{Input, Runtime, ToConn};

fn writers(dir: &str, n: u64, batch: usize) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let rt = Runtime::start(Config {
        storage: Some(StorageConfig {
            dir: dir.into(),
            key: None,
            repair: false,
            checkpoint_bytes: StorageConfig::CHECKPOINT_BYTES,
        }),
        max_line_bytes: 64 << 20,
        ..Config::default()
    });
    let tx = rt.sender();
    let setup = |id: u64, text: &str| {
        let (wtx, wrx) = channel();
        tx.send(Input::Open(id, Box::new(wtx))).unwrap();
        tx.send(Input::Event(Event::Bytes(id, text.as_bytes().to_vec())))
            .unwrap();
        wrx
    };
    let r = setup(
        0,
        "CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS x float\n",
    );
    let mut got = 0;
    while got < 3 {
        if let ToConn::Bytes(b) = r.recv().unwrap() {
            got += b.iter().filter(|&&c| c == b'\n').count();
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(3);
    let t0 = Instant::now();
    let handles: Vec<_> = (1..=n)
        .map(|w| {
            let tx = tx.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let (wtx, wrx) = channel();
                tx.send(Input::Open(w, Box::new(wtx))).unwrap();
                tx.send(Input::Event(Event::Bytes(w, b"USE DATABASE db\n".to_vec())))
                    .unwrap();
                let _ = wrx.recv().unwrap();
                let mut k = 0u64;
                while Instant::now() < stop {
                    let mut line = String::from("BATCH APPEND LENS x {");
                    for _ in 0..batch {
                        let t = (w * 1_000_000_000 + k) * 10;
                        line.push_str(&format!(" {t} {} 21.5;", t + 10));
                        k += 1;
                    }
                    line.pop();
                    line.push_str(" }\n");
                    tx.send(Input::Event(Event::Bytes(w, line.into_bytes())))
                        .unwrap();
                    match wrx.recv().unwrap() {
                        ToConn::Bytes(b) => assert_eq!(b, b"OK\n"),
                        ToConn::Close => panic!("closed"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let stmts = done.load(Ordering::Relaxed);
    drop(rt);
    let bytes = std::fs::metadata(format!("{dir}/wal-0.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(dir);
    (stmts as f64 / secs, bytes)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/durable-bench".into());
    let (one, _) = writers(&dir, 1, 1);
    println!("durable single-interval APPEND, 1 writer:   {one:>10.0} statements/s");
    let (many, _) = writers(&dir, 32, 1);
    println!("durable single-interval APPEND, 32 writers: {many:>10.0} statements/s");
    let (batches, bytes) = writers(&dir, 1, 20_000);
    let intervals = batches * 20_000.0;
    println!(
        "durable BATCH APPEND (20,000 per statement):  {:>10.2} M intervals/s ({:.2} WAL bytes/interval)",
        intervals / 1e6,
        bytes as f64 / (batches * 3.0 * 20_000.0)
    );
}
