//! `tau-load`: a load generator for a running `tau-server` (plain TCP).
//!
//! ```text
//! tau-load [--host HOST:PORT] [--secs S] at     [--conns N] [--depth D]
//! tau-load [--host HOST:PORT] [--secs S] append [--conns N] [--depth D]
//! tau-load [--host HOST:PORT] [--secs S] batch  [--conns N] [--size K] [--depth D]
//! ```
//!
//! Each connection is a task (all on one thread) that keeps `depth` statements outstanding (depth 1 is
//! plain request/response) and counts replies. `at` first loads a lens with 100,000
//! intervals and then runs point queries over it; `append` sends single-interval APPENDs;
//! `batch` sends BATCH APPENDs of `size` intervals. Every reply is checked. Each run uses a
//! fresh database (`load_<pid>_<mode>`), so runs do not disturb each other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    host: String,
    secs: f64,
    mode: String,
    conns: usize,
    depth: usize,
    size: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: tau-load [--host HOST:PORT] [--secs S] (at|append|batch) [--conns N] [--depth D] [--size K]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        host: "127.0.0.1:7070".into(),
        secs: 5.0,
        mode: String::new(),
        conns: 1,
        depth: 0,
        size: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match f.as_str() {
            "--host" => a.host = val(),
            "--secs" => a.secs = val().parse().unwrap_or_else(|_| usage()),
            "--conns" => a.conns = val().parse().unwrap_or_else(|_| usage()),
            "--depth" => a.depth = val().parse().unwrap_or_else(|_| usage()),
            "--size" => a.size = val().parse().unwrap_or_else(|_| usage()),
            "at" | "append" | "batch" => a.mode = f,
            _ => usage(),
        }
    }
    if a.mode.is_empty() || a.conns == 0 {
        usage();
    }
    if a.depth == 0 {
        a.depth = match a.mode.as_str() {
            "at" => 256,
            _ => 1,
        };
    }
    a
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// Bytes in `buf` not yet consumed as whole lines.
    have: usize,
}

impl Conn {
    fn new(host: &str) -> Conn {
        let s = TcpStream::connect(host).unwrap_or_else(|e| {
            eprintln!("tau-load: cannot connect to {host}: {e}");
            std::process::exit(1)
        });
        let _ = s.set_nodelay(true);
        Conn {
            s,
            buf: vec![0; 1 << 20],
            have: 0,
        }
    }

    /// Read whatever arrives; call `f` on each complete reply line; return their number.
    fn replies(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        if self.have == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.s.read(&mut self.buf[self.have..]).expect("read");
        assert!(n > 0, "server closed the connection");
        self.have += n;
        let mut count = 0;
        let mut start = 0;
        while let Some(p) = self.buf[start..self.have].iter().position(|&b| b == b'\n') {
            f(&self.buf[start..start + p]);
            start += p + 1;
            count += 1;
        }
        self.buf.copy_within(start..self.have, 0);
        self.have -= start;
        count
    }

    fn ask(&mut self, stmt: &str) -> String {
        self.s.write_all(format!("{stmt}\n").as_bytes()).unwrap();
        let mut line = String::new();
        while self.replies(|l| line = String::from_utf8_lossy(l).into_owned()) == 0 {}
        line
    }
}

fn main() {
    let a = args();
    let db = format!("load_{}_{}", std::process::id(), a.mode);
    let mut c = Conn::new(&a.host);
    for stmt in [
        format!("CREATE DATABASE {db}"),
        format!("USE DATABASE {db}"),
        "CREATE LENS x float".into(),
    ] {
        let r = c.ask(&stmt);
        assert_eq!(r, "OK", "{stmt}");
    }
    const SPAN: u64 = 100_000;
    if a.mode == "at" {
        // 100,000 intervals of length 10, in 10 batches.
        for b in 0..10u64 {
            let mut line = String::from("BATCH APPEND LENS x {");
            for i in b * 10_000..(b + 1) * 10_000 {
                line += &format!(" {} {} {}.5;", i * 10, i * 10 + 10, i % 100);
            }
            line.pop();
            line += " }";
            assert_eq!(c.ask(&line), "OK");
        }
    }
    // All connections run as tasks on one thread (smol): on a 2-core machine shared with
    // the server, a thread per connection would spend the cores on context switches.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let ex = smol::LocalExecutor::new();
    let mut tasks = Vec::new();
    let (ready_tx, ready_rx) = smol::channel::unbounded::<()>();
    let (go_tx, go_rx) = smol::channel::unbounded::<()>();
    for w in 0..a.conns {
        let (stop, done) = (stop.clone(), done.clone());
        let (ready, go) = (ready_tx.clone(), go_rx.clone());
        let (host, db, mode, depth, size) =
            (a.host.clone(), db.clone(), a.mode.clone(), a.depth, a.size);
        tasks.push(ex.spawn(async move {
            use smol::io::{AsyncReadExt, AsyncWriteExt};
            let std = TcpStream::connect(&host).expect("connect");
            let _ = std.set_nodelay(true);
            let mut s = smol::Async::new(std).expect("async socket");
            s.write_all(format!("USE DATABASE {db}\n").as_bytes())
                .await
                .unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut have = 0;
            // Wait for the OK of USE DATABASE.
            while !buf[..have].contains(&b'\n') {
                let n = s.read(&mut buf[have..]).await.unwrap();
                assert!(n > 0, "closed");
                have += n;
            }
            assert!(buf.starts_with(b"OK\n"));
            have = 0;
            let _ = ready.send(()).await;
            let _ = go.recv().await;
            let mut k = 0u64;
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
            // The next statement of this connection, into `out`.
            let mut next = |out: &mut Vec<u8>| match mode.as_str() {
                "at" => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let t = x % (SPAN * 10);
                    let _ = writeln!(out, "AT LENS x {t}");
                }
                "append" => {
                    let t = ((w as u64) << 40) + k * 10;
                    k += 1;
                    let _ = writeln!(out, "APPEND LENS x {t} {} 21.5", t + 10);
                }
                _ => {
                    let _ = write!(out, "BATCH APPEND LENS x {{");
                    for _ in 0..size {
                        let t = ((w as u64) << 40) + k * 10;
                        k += 1;
                        let _ = write!(out, " {t} {} 21.5;", t + 10);
                    }
                    out.pop();
                    let _ = writeln!(out, " }}");
                }
            };
            let mut out = Vec::new();
            for _ in 0..depth {
                next(&mut out);
            }
            s.write_all(&out).await.unwrap();
            let mut replies = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if have == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
                let n = s.read(&mut buf[have..]).await.unwrap();
                assert!(n > 0, "server closed the connection");
                have += n;
                let mut start = 0;
                let mut got = 0;
                while let Some(p) = buf[start..have].iter().position(|&b| b == b'\n') {
                    let l = &buf[start..start + p];
                    assert!(!l.starts_with(b"ERR"), "{}", String::from_utf8_lossy(l));
                    start += p + 1;
                    got += 1;
                }
                buf.copy_within(start..have, 0);
                have -= start;
                replies += got;
                out.clear();
                for _ in 0..got {
                    next(&mut out);
                }
                s.write_all(&out).await.unwrap();
            }
            done.fetch_add(replies, Ordering::Relaxed);
        }));
    }
    drop(ready_tx);
    let secs = smol::block_on(ex.run(async {
        for _ in 0..a.conns {
            ready_rx.recv().await.unwrap();
        }
        let t0 = Instant::now();
        drop(go_tx);
        smol::Timer::after(Duration::from_secs_f64(a.secs)).await;
        stop.store(true, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        // Replies still in flight are not counted; each task stops at its next read.
        for t in tasks {
            t.await;
        }
        secs
    }));
    let n = done.load(Ordering::Relaxed) as f64;
    let unit = if a.mode == "batch" {
        format!(
            "{:.0} statements/s, {:.2} M intervals/s",
            n / secs,
            n * a.size as f64 / secs / 1e6
        )
    } else {
        format!("{:.0} statements/s", n / secs)
    };
    println!(
        "{} conns={} depth={}{}: {unit} ({n:.0} replies in {secs:.2} s)",
        a.mode,
        a.conns,
        a.depth,
        if a.mode == "batch" {
            format!(" size={}", a.size)
        } else {
            String::new()
        },
    );
}
