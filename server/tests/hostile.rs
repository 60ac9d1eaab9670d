//! The hostile-client suite (issue 11): a real `tau-server` on loopback, probed the way an
//! attacker would, every probe bounded in time and, where memory is the point, in the
//! server's resident memory (read from /proc/<pid>/status and asserted).
//!
//! Set `TAU_SERVER_BIN` to run the probes against another build of the server.

mod common;
use common::{http_get, start, temp_dir, Conn, Server, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A field of /proc/<pid>/status in kB (VmRSS, VmHWM, Threads as a count).
fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l[key.len() + 1..].split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Send one statement and wait for its reply line, at most `secs` seconds, watching the
/// server's resident memory all the while: past `rss_kb_max` the server is killed (it
/// would take the machine down with it) and the probe fails.
fn ask_watched(
    server: &mut Server,
    c: &mut Conn,
    stmt: &str,
    secs: u64,
    rss_kb_max: u64,
) -> String {
    let pid = server.child.id();
    c.send(&format!("{stmt}\n"));
    c.w.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let rss = proc_status(pid, "VmRSS");
        if rss > rss_kb_max {
            let _ = server.child.kill();
            panic!("{stmt}: server resident memory {rss} kB passed {rss_kb_max} kB; killed it");
        }
        assert!(
            Instant::now() < deadline,
            "{stmt}: no reply within {secs} s (RSS {rss} kB, {} threads)",
            proc_status(pid, "Threads")
        );
        match c.w.read(&mut byte) {
            Ok(0) => panic!("{stmt}: connection closed without a reply"),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => got.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{stmt}: {e}"),
        }
    }
    c.w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    String::from_utf8(got).unwrap()
}

/// Poll `f` every 10 ms until it holds or `secs` pass.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory limit for probes that must not read a file into memory.
const RSS_KB_MAX: u64 = 256 << 10;

/// A server with COPY on: an import directory and a lens `x int` in database `d`.
fn copy_server(extra: &[&str]) -> (Server, TempDir, Conn) {
    let dir = temp_dir("hostile-copy");
    let imp = dir.0.join("import");
    std::fs::create_dir_all(&imp).unwrap();
    let imp = imp.to_string_lossy().into_owned();
    let mut args = vec!["--in-memory", "--import-dir", imp.as_str()];
    args.extend_from_slice(extra);
    let server = start(&args);
    let mut c = Conn::new(&server.addr);
    for s in ["CREATE DATABASE d", "USE DATABASE d", "CREATE LENS x int"] {
        assert_eq!(c.ask(s), "OK");
    }
    (server, dir, c)
}

// ---------------------------------------------------------------- COPY (item 7)

#[test]
fn copy_from_a_fifo_is_refused_at_once_without_parking_threads() {
    let (mut server, dir, mut c) = copy_server(&[]);
    let fifo = dir.0.join("import/pipe.csv");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let pid = server.child.id();
    let threads_before = proc_status(pid, "Threads");
    let mut conns: Vec<Conn> = (0..8)
        .map(|_| {
            let mut k = Conn::new(&server.addr);
            assert_eq!(k.ask("USE DATABASE d"), "OK");
            k
        })
        .collect();
    for k in &mut conns {
        let r = ask_watched(
            &mut server,
            k,
            "COPY LENS x FROM \"pipe.csv\"",
            5,
            RSS_KB_MAX,
        );
        assert!(
            r.starts_with("ERR cannot read pipe.csv: not a regular file"),
            "{r}"
        );
    }
    let threads = proc_status(pid, "Threads");
    assert!(
        threads < threads_before + 4,
        "threads grew from {threads_before} to {threads}"
    );
    assert_eq!(c.ask("AT LENS x 0"), "VAL NIL");
}

#[test]
fn copy_from_a_device_is_refused_before_reading() {
    // /dev is the import directory, so "zero" resolves to /dev/zero.
    let mut server = start(&["--in-memory", "--import-dir", "/dev"]);
    let mut c = Conn::new(&server.addr);
    for s in ["CREATE DATABASE d", "USE DATABASE d", "CREATE LENS x int"] {
        assert_eq!(c.ask(s), "OK");
    }
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"zero\"",
        5,
        RSS_KB_MAX,
    );
    assert!(
        r.starts_with("ERR cannot read zero: not a regular file"),
        "{r}"
    );
    let hwm = proc_status(server.child.id(), "VmHWM");
    assert!(hwm < RSS_KB_MAX, "peak RSS {hwm} kB");
}

#[test]
fn copy_from_a_directory_is_refused() {
    let (mut server, dir, mut c) = copy_server(&[]);
    std::fs::create_dir_all(dir.0.join("import/sub")).unwrap();
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"sub\"",
        5,
        RSS_KB_MAX,
    );
    assert!(
        r.starts_with("ERR cannot read sub: not a regular file"),
        "{r}"
    );
}

#[test]
fn copy_of_a_file_over_the_cap_is_refused_before_reading() {
    let (mut server, dir, mut c) = copy_server(&[]);
    // 2 GiB, sparse: costs no disk, and reading it would cost 2 GiB of memory.
    let big = std::fs::File::create(dir.0.join("import/big.csv")).unwrap();
    big.set_len(2 << 30).unwrap();
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"big.csv\"",
        10,
        RSS_KB_MAX,
    );
    assert!(
        r.starts_with(
            "ERR cannot read big.csv: file too large (2147483648 bytes; COPY reads at most"
        ),
        "{r}"
    );
    let hwm = proc_status(server.child.id(), "VmHWM");
    assert!(hwm < RSS_KB_MAX, "peak RSS {hwm} kB");
}

#[test]
fn copy_cap_is_configurable_and_files_under_it_load() {
    let (mut server, dir, mut c) = copy_server(&["--max-copy-bytes", "100000"]);
    let mut body = String::new();
    let mut i = 0u64;
    while body.len() < 99_000 {
        body.push_str(&format!("{},{},{}\n", i, i + 1, i));
        i += 1;
    }
    std::fs::write(dir.0.join("import/ok.csv"), &body).unwrap();
    body.push_str(&"9".repeat(2000));
    body.push('\n');
    std::fs::write(dir.0.join("import/over.csv"), &body).unwrap();
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"ok.csv\"",
        20,
        RSS_KB_MAX,
    );
    assert_eq!(r, "OK");
    assert_eq!(
        c.ask("REDUCE LENS x 0 1000000000 USING count"),
        format!("VAL i{i}")
    );
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"over.csv\"",
        20,
        RSS_KB_MAX,
    );
    assert!(
        r.starts_with("ERR cannot read over.csv: file too large"),
        "{r}"
    );
}

#[test]
fn concurrent_copies_all_complete_one_file_at_a_time() {
    let (server, dir, mut c) = copy_server(&[]);
    let mut conns = Vec::new();
    for k in 0..8u64 {
        let body: String = (0..2000)
            .map(|i| format!("{},{},{k}\n", k * 10_000 + i, k * 10_000 + i + 1))
            .collect();
        std::fs::write(dir.0.join(format!("import/f{k}.csv")), body).unwrap();
        let mut c = Conn::new(&server.addr);
        c.send(&format!(
            "USE DATABASE d\nCOPY LENS x FROM \"f{k}.csv\"\nCOPY LENS x FROM \"missing{k}.csv\"\n"
        ));
        conns.push(c);
    }
    // One connection goes away while its COPY waits: the others are not held up by it.
    let mut gone = Conn::new(&server.addr);
    gone.send("USE DATABASE d\nCOPY LENS x FROM \"f0.csv\"\n");
    drop(gone);
    for (k, c) in conns.iter_mut().enumerate() {
        assert_eq!(c.line(), "OK");
        assert_eq!(c.line(), "OK", "COPY f{k}");
        let r = c.line();
        assert!(
            r.starts_with(&format!("ERR cannot read missing{k}.csv: ")),
            "{r}"
        );
    }
    assert_eq!(c.ask("REDUCE LENS x 0 1000000 USING count"), "VAL i16000");
}

#[test]
fn copy_rejects_a_last_line_without_newline() {
    let (mut server, dir, mut c) = copy_server(&[]);
    std::fs::write(dir.0.join("import/cut.csv"), "0,10,1\n10,20,137").unwrap();
    let r = ask_watched(
        &mut server,
        &mut c,
        "COPY LENS x FROM \"cut.csv\"",
        5,
        RSS_KB_MAX,
    );
    assert_eq!(
        r,
        "ERR line 2: no newline at the end of the file (cut short?)"
    );
    assert_eq!(c.ask("AT LENS x 15"), "VAL NIL");
}

#[test]
fn copy_of_a_file_being_appended_never_imports_a_cut_off_value() {
    let (mut server, dir, mut c) = copy_server(&[]);
    let path = dir.0.join("import/grow.csv");
    std::fs::write(&path, "").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every value is 1379190, written in two pieces: a reader that stops
                // between them sees "137" at the end of the file.
                write!(f, "{},{},137", 2 * k, 2 * k + 1).unwrap();
                std::thread::sleep(Duration::from_millis(2));
                f.write_all(b"9190\n").unwrap();
                std::thread::sleep(Duration::from_millis(2));
                k += 1;
            }
        })
    };
    let (mut ok, mut err) = (0, 0);
    // Each COPY catches the writer at a line boundary about half the time.
    for _ in 0..60 {
        if ok >= 3 && err >= 3 {
            break;
        }
        let r = ask_watched(
            &mut server,
            &mut c,
            "COPY LENS x FROM \"grow.csv\"",
            5,
            RSS_KB_MAX,
        );
        if r == "OK" {
            ok += 1;
        } else {
            assert!(r.starts_with("ERR line "), "{r}");
            err += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        ok > 0,
        "no COPY of the growing file succeeded ({err} refused)"
    );
    assert_eq!(c.ask("REDUCE LENS x 0 100000000 USING min"), "VAL i1379190");
    assert_eq!(c.ask("REDUCE LENS x 0 100000000 USING max"), "VAL i1379190");
}

// ---------------------------------------------------------------- permissions (item 11)

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_data_directory_is_private() {
    let dir = temp_dir("hostile-perm");
    std::fs::create_dir_all(&dir.0).unwrap();
    let data = dir.0.join("data");
    // A tiny checkpoint size: the first writes produce layer files and a manifest too.
    let cfg = dir.0.join("tau.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[storage]\ncheckpoint_bytes = 1\n",
            data.display()
        ),
    )
    .unwrap();
    let server = start(&["--config", cfg.to_str().unwrap()]);
    let mut c = Conn::new(&server.addr);
    for s in ["CREATE DATABASE d", "USE DATABASE d", "CREATE LENS x int"] {
        assert_eq!(c.ask(s), "OK");
    }
    for i in 0..20 {
        assert_eq!(c.ask(&format!("APPEND LENS x {i} {} 1", i + 1)), "OK");
    }
    assert_eq!(mode(&data), 0o700, "data directory");
    let mut files = Vec::new();
    eventually(10, "a checkpoint wrote a manifest", || {
        files = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.iter().any(|p| p.ends_with("manifest"))
    });
    for f in &files {
        let ft = std::fs::symlink_metadata(f).unwrap().file_type();
        if ft.is_file() {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        } else {
            assert_eq!(mode(f) & 0o077, 0, "{}", f.display());
        }
    }
    drop(server);
    // A looser directory is served, with a warning naming it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = start(&["--config", cfg.to_str().unwrap()]);
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!(
            "warning: {} is accessible to other users (mode 755",
            data.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "warning: {} is accessible to other users (mode 644",
            files[0].display()
        )),
        "{log}"
    );
}

// ---------------------------------------------------------------- /metrics (item 12)

#[test]
fn metrics_show_no_names_unless_asked() {
    for labels in [false, true] {
        let mut args = vec!["--in-memory", "--metrics-bind", "127.0.0.1:0"];
        if labels {
            args.push("--metrics-lens-labels");
        }
        let server = start(&args);
        let mut c = Conn::new(&server.addr);
        for s in [
            "CREATE DATABASE secretdb",
            "USE DATABASE secretdb",
            "CREATE LENS secretlens int",
            "APPEND LENS secretlens 0 1 1",
        ] {
            assert_eq!(c.ask(s), "OK");
        }
        let (code, text) = http_get(server.metrics.as_deref().unwrap(), "/metrics");
        assert_eq!(code, 200);
        assert_eq!(text.contains("secretdb"), labels, "{text}");
        assert_eq!(text.contains("secretlens"), labels, "{text}");
        assert!(text.contains("tau_layers 1\n"), "{text}");
        assert!(text.contains("tau_base_lenses 1\n"), "{text}");
    }
}

// ---------------------------------------------------------------- connections (item 5)

/// A socket that sends one byte every 250 ms and never a newline.
fn slowloris(
    addr: &str,
    n: usize,
) -> (
    Vec<TcpStream>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<usize>,
) {
    let socks: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let clones: Vec<TcpStream> = socks.iter().map(|s| s.try_clone().unwrap()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut alive = clones.len();
        let mut socks: Vec<Option<TcpStream>> = clones.into_iter().map(Some).collect();
        // Bounded, so a server that never closes them fails the probe instead of hanging it.
        let give_up = Instant::now() + Duration::from_secs(20);
        while !s2.load(std::sync::atomic::Ordering::Relaxed)
            && alive > 0
            && Instant::now() < give_up
        {
            for s in socks.iter_mut() {
                if let Some(k) = s {
                    if k.write_all(b"A").is_err() {
                        *s = None;
                        alive -= 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        alive
    });
    (socks, stop, h)
}

fn auth_config(dir: &TempDir, extra: &str) -> String {
    std::fs::create_dir_all(&dir.0).unwrap();
    let cfg = dir.0.join("tau.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[auth]\nenabled = true\nadmin_user = \"admin\"\nadmin_password = \"pw\"\n{extra}",
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    cfg.to_string_lossy().into_owned()
}

#[test]
fn slowloris_cannot_lock_out_the_admin() {
    let dir = temp_dir("hostile-slow");
    let cfg = auth_config(&dir, "");
    let server = start(&["--config", &cfg, "--max-connections", "5"]);
    let (_socks, stop, h) = slowloris(&server.addr, 5);
    // Every slot is held: a TCP client is turned away...
    let mut c = Conn::new(&server.addr);
    c.send("AUTH admin pw\n");
    assert_eq!(c.line(), "ERR server at connection limit");
    // ...but the operator's path, the admin socket in the data directory, is open.
    let sock = dir.0.join("data/admin.sock");
    let mut a = std::os::unix::net::UnixStream::connect(&sock)
        .unwrap_or_else(|e| panic!("admin socket {}: {e}", sock.display()));
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    a.write_all(b"AUTH admin pw\nSHOW USERS\n").unwrap();
    let mut r = std::io::BufReader::new(a);
    let mut l = String::new();
    use std::io::BufRead;
    r.read_line(&mut l).unwrap();
    assert_eq!(l, "OK\n");
    l.clear();
    r.read_line(&mut l).unwrap();
    assert_eq!(l, "NAMES 1; admin\n");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn a_partial_line_and_a_missing_auth_have_deadlines() {
    let dir = temp_dir("hostile-deadline");
    let cfg = auth_config(
        &dir,
        "[limits]\nline_timeout_secs = 1\nauth_timeout_secs = 1\n",
    );
    let server = start(&["--config", &cfg, "--max-connections", "5"]);
    let t0 = Instant::now();
    let (_socks, stop, h) = slowloris(&server.addr, 4);
    // One more that sends nothing at all.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("the silent connection got {n} bytes"),
        // A reset is a close too; a timeout is not.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the silent connection was not closed: {e}"),
    }
    // All five slots come free within the deadlines, and the slowloris sockets are closed.
    let alive = h.join().unwrap();
    assert_eq!(alive, 0);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    eventually(10, "a TCP client gets in", || {
        let mut c = Conn::new(&server.addr);
        c.ask("AUTH admin pw") == "OK"
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // After AUTH, a line that stalls half-way is cut off too.
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("AUTH admin pw"), "OK");
    let t1 = Instant::now();
    c.send("SHOW DATA");
    assert!(c.closed());
    assert!(t1.elapsed() < Duration::from_secs(5), "{:?}", t1.elapsed());
    // A connection that keeps completing lines is not cut off by the line deadline.
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("AUTH admin pw"), "OK");
    for _ in 0..6 {
        c.send("SHOW ");
        std::thread::sleep(Duration::from_millis(300));
        c.send("USERS\n");
        assert_eq!(c.line(), "NAMES 1; admin");
    }
}

#[test]
fn connections_per_address_are_capped() {
    let server = start(&["--in-memory", "--max-connections-per-address", "3"]);
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::new(&server.addr)).collect();
    for c in &mut held {
        assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
    }
    let mut c = Conn::new(&server.addr);
    assert!(c.line().starts_with("ERR server at connection limit"));
    assert!(c.closed());
    drop(held.pop());
    eventually(10, "a slot came back", || {
        Conn::new(&server.addr).ask("SHOW DATABASES") == "NAMES 0"
    });
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn every_client_turned_away_at_the_limit_is_told_why() {
    flood(false);
}

#[test]
fn every_client_turned_away_at_the_limit_is_told_why_even_if_it_talks_first() {
    flood(true);
}

/// 1,000 clients at a full server, from 4 threads, all connected before any reads its
/// line; `talk`: each sends a statement first (unread input at close would reset the
/// connection and could destroy the line).
fn flood(talk: bool) {
    let server = start(&["--in-memory", "--max-connections", "5"]);
    let mut held: Vec<Conn> = (0..5).map(|_| Conn::new(&server.addr)).collect();
    for c in &mut held {
        assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
    }
    let pid = server.child.id();
    let fds_before = open_fds(pid);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let socks: Vec<TcpStream> = (0..250)
                    .map(|_| {
                        let mut s = TcpStream::connect(&addr).unwrap();
                        if talk {
                            let _ = s.write_all(b"SHOW DATABASES\n");
                        }
                        s
                    })
                    .collect();
                let mut told = 0;
                for mut s in socks {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut all = Vec::new();
                    let _ = s.read_to_end(&mut all);
                    told += usize::from(all == b"ERR server at connection limit\n");
                }
                told
            })
        })
        .collect();
    let told: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(told, 1000, "clients told about the connection limit");
    let hwm = proc_status(pid, "VmHWM");
    assert!(hwm < RSS_KB_MAX, "peak RSS {hwm} kB");
    // Rejected sockets linger a second at most.
    eventually(10, "the rejected sockets are closed", || {
        open_fds(pid) <= fds_before + 2
    });
    for c in &mut held {
        assert_eq!(c.ask("SHOW DATABASES"), "NAMES 0");
    }
}
