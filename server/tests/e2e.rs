//! End to end over a real socket: start the `tau-server` binary on an ephemeral port
//! and run SPEC's worked example through it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

struct Server(std::process::Child, Option<TempDir>);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        // The data directory (field 1) is removed after the server is gone.
    }
}

/// A fresh data directory per server, removed when the test ends.
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

fn start() -> (Server, String) {
    let dir = temp_dir("e2e");
    let data = dir.0.to_string_lossy().into_owned();
    let (mut s, a) = start_with(&["--data-dir", &data]);
    s.1 = Some(dir);
    (s, a)
}

fn start_with(extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tau-server"))
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tau-server");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("serving on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Server(child, None), addr)
}

#[test]
fn spec_example_over_tcp() {
    let (_server, addr) = start();
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let script = [
        ("CREATE DATABASE sensors", "OK"),
        ("USE DATABASE sensors", "OK"),
        ("CREATE LENS temp float", "OK"),
        ("APPEND LENS temp 0 3600 18.5, 3600 7200 21.0", "OK"),
        ("AT LENS temp 1800", "VAL f18.5"),
        (
            "RANGE LENS temp 0 7200",
            "RANGE 2; 0:3600:f18.5; 3600:7200:f21",
        ),
        ("APPEND LENS temp 0 3600 20", "OK"),
        ("AT LENS temp 1800 LAYER 1", "VAL f18.5"),
        ("REDUCE LENS temp 0 7200 USING twavg", "VAL f20.5"),
        ("DERIVE LENS temp_f AS temp * 9.0 / 5.0 + 32.0", "OK"),
        ("AT LENS temp_f 1800", "VAL f68"),
        (
            "APPEND LENS temp 10 5 1",
            "ERR invalid range (start >= end)",
        ),
        ("QUIT", "OK BYE"),
    ];
    for (stmt, want) in script {
        s.write_all(format!("{stmt}\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), want, "{stmt}");
    }
    // After OK BYE the server closes the connection.
    let mut rest = String::new();
    assert_eq!(r.read_line(&mut rest).unwrap(), 0);
}

#[test]
fn pipelined_statements_and_a_second_connection() {
    let (_server, addr) = start();
    let mut a = TcpStream::connect(&addr).unwrap();
    let mut batch = String::from("CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\n");
    for i in 0..1000 {
        batch += &format!("APPEND LENS x {} {} {}\n", i * 10, i * 10 + 10, i);
    }
    batch += "REDUCE LENS x 0 10000 USING count\n";
    a.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(a.try_clone().unwrap());
    let mut last = String::new();
    for _ in 0..1004 {
        last.clear();
        r.read_line(&mut last).unwrap();
    }
    assert_eq!(last.trim_end(), "VAL i1000");
    // A second connection sees committed data but has its own database selection.
    let mut b = TcpStream::connect(&addr).unwrap();
    b.write_all(b"AT LENS x 5\nUSE DATABASE d\nAT LENS x 5\n")
        .unwrap();
    let mut rb = BufReader::new(b);
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        rb.read_line(&mut l).unwrap();
        lines.push(l.trim_end().to_string());
    }
    assert_eq!(lines, ["ERR no active database", "OK", "VAL i0"]);
}

#[test]
fn a_half_closed_client_gets_every_reply() {
    use std::io::Read;
    let (_server, addr) = start();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"CREATE DATABASE d\nUSE DATABASE d\nSHOW DATABASES")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all, "OK\nOK\nNAMES 1; d\n");
}
