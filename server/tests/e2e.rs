//! End to end over real sockets: start the `tau-server` binary on an ephemeral port and
//! talk to it as a client would. SPEC's worked example, pipelining, half-close, limits
//! (connection cap, idle timeout, line length), garbage input, backpressure, metrics.

mod common;
use common::{http_get, start, start_durable, Conn};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// SPEC's worked examples, `statement<TAB>reply` (spec/worked_examples.tsv).
fn worked_examples() -> Vec<(&'static str, &'static str)> {
    include_str!("../../spec/worked_examples.tsv")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('\t').expect("statement<TAB>reply"))
        .collect()
}

/// SPEC's worked example, every line, on a fresh durable server.
#[test]
fn spec_example_over_tcp() {
    let (server, _dir) = start_durable("e2e", &[]);
    let mut c = Conn::new(&server.addr);
    let mut script = worked_examples();
    script.push(("QUIT", "OK BYE"));
    for (stmt, want) in script {
        // CRLF line endings are accepted too.
        c.send(&format!("{stmt}\r\n"));
        assert_eq!(c.line(), want, "{stmt}");
    }
    // After OK BYE the server closes the connection.
    assert!(c.closed());
}

#[test]
fn pipelined_statements_and_a_second_connection() {
    let (server, _dir) = start_durable("e2e", &[]);
    let mut a = Conn::new(&server.addr);
    let mut batch = String::from("CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\n");
    for i in 0..1000 {
        batch += &format!("APPEND LENS x {} {} {}\n", i * 10, i * 10 + 10, i);
    }
    batch += "REDUCE LENS x 0 10000 USING count\n";
    a.send(&batch);
    let mut last = String::new();
    for _ in 0..1004 {
        last = a.line();
    }
    assert_eq!(last, "VAL i1000");
    // A second connection sees committed data but has its own database selection.
    let mut b = Conn::new(&server.addr);
    b.send("AT LENS x 5\nUSE DATABASE d\nAT LENS x 5\n");
    let lines: Vec<String> = (0..3).map(|_| b.line()).collect();
    assert_eq!(lines, ["ERR no active database", "OK", "VAL i0"]);
}

#[test]
fn a_half_closed_client_gets_every_reply() {
    let (server, _dir) = start_durable("e2e", &[]);
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"CREATE DATABASE d\nUSE DATABASE d\nSHOW DATABASES\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all, "OK\nOK\nNAMES 1; d\n");
}

/// SPEC v0.2: a statement runs only once its `\n` has arrived. A client killed mid-write
/// closes its socket (FIN, or a reset); `APPEND LENS s 0 10 123` cut to `... 12` must not
/// write `12`, and the server counts the dropped remainder.
#[test]
fn a_statement_cut_short_by_a_closing_client_is_never_run() {
    let (server, _dir) = start_durable("cut", &["--metrics-bind", "127.0.0.1:0"]);
    let mut c = Conn::new(&server.addr);
    for st in ["CREATE DATABASE d", "USE DATABASE d", "CREATE LENS s int"] {
        assert_eq!(c.ask(st), "OK");
    }
    // Half-close (FIN) after the cut.
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"USE DATABASE d\nAPPEND LENS s 0 10 12")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all, "OK\n");
    // A process that exits: its socket closes with the cut line unsent-to-completion.
    let mut t = std::net::TcpStream::connect(&server.addr).unwrap();
    t.write_all(b"USE DATABASE d\nAPPEND LENS s 20 30 45")
        .unwrap();
    let mut ok = [0u8; 3];
    t.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"OK\n");
    drop(t);
    // Nothing was written, by either.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(c.ask("RANGE LENS s 0 100"), "RANGE 0");
        let (_, body) = http_get(server.metrics.as_ref().unwrap(), "/metrics");
        if body.contains("tau_partial_lines_discarded_total 2") {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.ask("HISTORY LENS s"), "LAYERS 0");
}

/// 10,000 statements written back to back by one thread while another reads: every
/// reply arrives, in order.
#[test]
fn ten_thousand_pipelined_statements() {
    let server = start(&["--in-memory"]);
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("CREATE DATABASE d"), "OK");
    assert_eq!(c.ask("USE DATABASE d"), "OK");
    assert_eq!(c.ask("CREATE LENS x int"), "OK");
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut text = String::new();
        for i in 0..5000u64 {
            text += &format!(
                "APPEND LENS x {} {} {i}\nAT LENS x {}\n",
                i * 2,
                i * 2 + 1,
                i * 2
            );
        }
        w.write_all(text.as_bytes()).unwrap();
    });
    for i in 0..5000u64 {
        assert_eq!(c.line(), "OK", "APPEND {i}");
        assert_eq!(c.line(), format!("VAL i{i}"), "AT {i}");
    }
    writer.join().unwrap();
    assert_eq!(c.ask("REDUCE LENS x 0 10000 USING count"), "VAL i5000");
}

#[test]
fn connection_cap_refuses_with_the_spec_error() {
    let server = start(&["--in-memory", "--max-connections", "2"]);
    let mut a = Conn::new(&server.addr);
    let mut b = Conn::new(&server.addr);
    assert_eq!(a.ask("SHOW DATABASES"), "NAMES 0");
    assert_eq!(b.ask("SHOW DATABASES"), "NAMES 0");
    let mut c = Conn::new(&server.addr);
    c.send("SHOW DATABASES\n");
    assert_eq!(c.line(), "ERR server at connection limit");
    assert!(c.closed());
    // A freed slot is usable again.
    assert_eq!(a.ask("QUIT"), "OK BYE");
    assert!(a.closed());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = Conn::new(&server.addr);
        let reply = d.ask("SHOW DATABASES");
        if reply == "NAMES 0" {
            break;
        }
        assert_eq!(reply, "ERR server at connection limit");
        assert!(Instant::now() < deadline, "the slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.ask("SHOW DATABASES"), "NAMES 0");
}

#[test]
fn idle_connections_are_closed_busy_ones_are_not() {
    let server = start(&["--in-memory", "--idle-timeout-secs", "1"]);
    let mut idle = Conn::new(&server.addr);
    let mut busy = Conn::new(&server.addr);
    let t0 = Instant::now();
    // The busy one speaks every 300 ms for 2 s and survives.
    while t0.elapsed() < Duration::from_millis(2000) {
        assert_eq!(busy.ask("SHOW DATABASES"), "NAMES 0");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(idle.closed(), "an idle connection was not closed");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert_eq!(busy.ask("SHOW DATABASES"), "NAMES 0");
}

#[test]
fn an_over_long_line_is_refused_and_closed() {
    let server = start(&["--in-memory", "--max-line-bytes", "100"]);
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
    let long = format!("CREATE DATABASE {}\n", "a".repeat(200));
    c.send(&format!("SHOW DATABASES\n{long}SHOW DATABASES\n"));
    assert_eq!(c.line(), "NAMES 0");
    assert_eq!(c.line(), "ERR line too long");
    assert!(c.closed());
    // Without a newline at all, too.
    let mut d = Conn::new(&server.addr);
    d.send(&"x".repeat(10_000));
    assert_eq!(d.line(), "ERR line too long");
    assert!(d.closed());
}

#[test]
fn garbage_bytes_get_errors_and_the_connection_survives() {
    let server = start(&["--in-memory"]);
    let mut c = Conn::new(&server.addr);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut lines = 0;
    for _ in 0..200 {
        let mut junk = Vec::new();
        for _ in 0..(x % 60 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = (x >> 24) as u8;
            if b != b'\n' {
                junk.push(b);
            }
        }
        // Start every line with a byte that cannot begin a statement, so that no random
        // line is accidentally valid (QUIT, say).
        junk.insert(0, 0xff);
        junk.push(b'\n');
        c.w.write_all(&junk).unwrap();
        lines += 1;
    }
    for i in 0..lines {
        let l = c.line();
        assert!(l.starts_with("ERR "), "line {i}: {l:?}");
    }
    assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
    // Embedded NULs and a UTF-8 sequence cut in half.
    c.w.write_all(b"SHOW\0DATABASES\n\xe2\x82\n").unwrap();
    assert!(c.line().starts_with("ERR parse error"));
    assert!(c.line().starts_with("ERR parse error"));
    assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
}

/// A client that writes statements with large replies and never reads them: the server
/// stops reading from it instead of buffering replies without bound, and keeps serving
/// others meanwhile.
#[test]
fn a_client_that_never_reads_is_held_back() {
    let server = start(&["--in-memory"]);
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("CREATE DATABASE d"), "OK");
    assert_eq!(c.ask("USE DATABASE d"), "OK");
    assert_eq!(c.ask("CREATE LENS x int"), "OK");
    let mut batch = String::from("BATCH APPEND LENS x {");
    for i in 0..2000 {
        batch += &format!(" {} {} {i};", i * 10, i * 10 + 5);
    }
    batch.pop();
    batch += " }";
    assert_eq!(c.ask(&batch), "OK");
    // Each RANGE reply is about 30 KB; the request is 24 bytes.
    let stmt = b"RANGE LENS x 0 100000000\n".repeat(1000);
    let mut w = c.w.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut written = 0usize;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        match w.write(&stmt) {
            Ok(n) => written += n,
            Err(_) => break, // the write timed out: the server stopped reading
        }
    }
    // Without backpressure the server would take all 3 s of input (and buffer ~1000x
    // as much reply text). With it, input stops after the windows plus socket buffers.
    assert!(
        written < 16 << 20,
        "the server kept reading: {written} bytes accepted"
    );
    let mut other = Conn::new(&server.addr);
    assert_eq!(other.ask("USE DATABASE d"), "OK");
    assert_eq!(other.ask("AT LENS x 12"), "VAL i1");
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
    if let Some(kb) = rss_kb {
        eprintln!("server RSS {kb} kB, {written} bytes accepted");
        assert!(kb < 200 << 10, "server RSS {kb} kB");
    }
}

#[test]
fn healthz_and_metrics() {
    let (server, _dir) = start_durable("metrics", &["--metrics-bind", "127.0.0.1:0"]);
    let m = server.metrics.clone().expect("metrics address in the log");
    // 503 while recovering at boot (briefly), then 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(&m, "/healthz") {
            (200, body) => {
                assert_eq!(body, "ok\n");
                break;
            }
            (503, body) => assert_eq!(body, "not accepting writes: recovering\n"),
            other => panic!("healthz: {other:?}"),
        }
        assert!(Instant::now() < deadline, "never became healthy");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = Conn::new(&server.addr);
    for stmt in [
        "CREATE DATABASE d",
        "USE DATABASE d",
        "CREATE LENS x int",
        "APPEND LENS x 0 10 1",
        "APPEND LENS x 5 20 2",
    ] {
        assert_eq!(c.ask(stmt), "OK");
    }
    assert_eq!(c.ask("AT LENS x 7"), "VAL i2");
    assert_eq!(c.ask("AT LENS y 7"), "ERR unknown lens: y");
    let (code, text) = http_get(&m, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "tau_statements_total{kind=\"at\"} 2",
        "tau_statements_total{kind=\"append\"} 2",
        "tau_errors_total 1",
        "tau_connections_active 1",
        "tau_connections_total 1",
        "tau_connections_rejected_total 0",
        "tau_auth_failures_total 0",
        "tau_statement_latency_seconds_count 7",
        "tau_layers 2",
        "tau_base_lenses 1",
        "tau_accepting_writes 1",
        "tau_wal_syncs_total",
        "tau_group_commit_batch_size_count",
        "tau_compactions_total 0",
        "# EOF",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let wal: u64 = text
        .lines()
        .find(|l| l.starts_with("tau_wal_bytes_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!(wal > 0, "no WAL bytes counted");
    assert_eq!(http_get(&m, "/nope").0, 404);
}
