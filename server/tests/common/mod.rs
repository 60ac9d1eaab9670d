//! Shared helpers for the end-to-end tests: start `tau-server` on an ephemeral port with
//! a fresh data directory, and talk to it line by line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fresh directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("tau-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    TempDir(p)
}

impl TempDir {
    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub metrics: Option<String>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `tau-server --bind 127.0.0.1:0 ARGS` and wait for its "serving on" line.
pub fn start(args: &[&str]) -> Server {
    start_env(args, &[])
}

pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
    // TAU_SERVER_BIN runs the tests against another build (e.g. an older one).
    let bin = std::env::var("TAU_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tau-server").to_string());
    let mut cmd = Command::new(bin);
    cmd.args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start tau-server");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "server exited before serving: {:?}",
            log.lock().unwrap()
        );
        log.lock().unwrap().push(line.trim_end().to_string());
        if line.contains("serving on ") {
            break;
        }
    }
    let addr = line
        .split("serving on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let metrics = line
        .split("metrics on http://")
        .nth(1)
        .map(|r| r.trim_end_matches([')', '\n']).to_string());
    // Keep draining the log so the server never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut l = String::new();
        while err.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
            sink.lock().unwrap().push(l.trim_end().to_string());
            l.clear();
        }
    });
    Server {
        child,
        addr,
        metrics,
        log,
    }
}

/// A durable server in a fresh data directory (returned, so it lives as long as needed).
pub fn start_durable(tag: &str, args: &[&str]) -> (Server, TempDir) {
    let dir = temp_dir(tag);
    let data = dir.path();
    let mut all = vec!["--data-dir", data.as_str()];
    all.extend_from_slice(args);
    (start(&all), dir)
}

/// One client connection, line by line.
pub struct Conn {
    pub w: TcpStream,
    pub r: BufReader<TcpStream>,
}

impl Conn {
    pub fn new(addr: &str) -> Conn {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Conn { w, r }
    }

    pub fn send(&mut self, text: &str) {
        self.w.write_all(text.as_bytes()).unwrap();
    }

    /// One reply line, without its newline; "" at end of stream.
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end_matches('\n').to_string()
    }

    /// One reply line; `None` at end of stream or on a reset.
    pub fn try_line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(n) if n > 0 => Some(l.trim_end_matches('\n').to_string()),
            _ => None,
        }
    }

    pub fn ask(&mut self, stmt: &str) -> String {
        self.send(&format!("{stmt}\n"));
        self.line()
    }

    /// True once the server has closed the connection (reads return end of stream).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.r.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

/// `GET path` on the metrics address: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let status = all
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = all.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
