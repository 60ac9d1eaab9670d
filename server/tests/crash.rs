//! A real crash test: a writer sends acknowledged APPENDs in a loop while the server is
//! SIGKILLed at a random moment, many times over the same data directory. After every
//! restart each acknowledged write is present, and no statement is half-applied (each
//! writes two intervals: both are there or neither is).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start(data: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tau-server"))
        .args(["--bind", "127.0.0.1:0", "--data-dir", data])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tau-server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "server exited before serving"
        );
        if line.contains("serving on ") {
            break;
        }
    }
    let addr = line
        .split("serving on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while err.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    (child, addr)
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        let w = TcpStream::connect(addr).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Conn { w, r }
    }
    fn ask(&mut self, stmt: &str) -> std::io::Result<String> {
        self.w.write_all(format!("{stmt}\n").as_bytes())?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end().to_string())
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let dir = std::env::temp_dir().join(format!("tau-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().into_owned();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let rounds = 12;
    for round in 0..rounds {
        let (mut child, addr) = start(&data);
        let mut c = Conn::new(&addr);
        let _ = c.ask("CREATE DATABASE d");
        assert_eq!(c.ask("USE DATABASE d").unwrap(), "OK");
        let _ = c.ask("CREATE LENS x int");
        // Verify everything acknowledged so far, and that nothing is half-applied.
        let range = c.ask("RANGE LENS x 0 100000000").unwrap();
        let mut count = std::collections::BTreeMap::<u64, u32>::new();
        for piece in range.split("; ").skip(1) {
            let v: u64 = piece.rsplit(":i").next().unwrap().parse().unwrap();
            *count.entry(v).or_default() += 1;
        }
        for k in acked.lock().unwrap().iter() {
            assert_eq!(
                count.get(k),
                Some(&2),
                "round {round}: acknowledged write {k} lost (seed {seed})"
            );
        }
        for (k, n) in &count {
            assert_eq!(*n, 2, "round {round}: write {k} half-applied (seed {seed})");
        }
        if round == rounds - 1 {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        // Write until killed.
        let writer = {
            let acked = acked.clone();
            let base = (round as u64 + 1) * 1_000_000;
            std::thread::spawn(move || {
                for k in base.. {
                    let (s, m) = (2 * k, 2 * k + 1);
                    match c.ask(&format!("APPEND LENS x {s} {m} {k}, {m} {} {k}", m + 1)) {
                        Ok(r) if r == "OK" => acked.lock().unwrap().push(k),
                        Ok(r) => panic!("unexpected reply {r}"),
                        Err(_) => return,
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + xorshift(&mut seed) % 150));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        writer.join().unwrap();
    }
    let n = acked.lock().unwrap().len();
    eprintln!("{n} acknowledged writes over {rounds} rounds, all present after every SIGKILL");
    assert!(
        n > rounds as usize,
        "the writer got too few writes in to test anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
