//! The hostile-client suite (issue 11): a real `tau-server` on loopback, probed the way an
//! attacker would, every probe bounded in time and, where memory is the point, in the
//! server's resident memory (read from /proc/<pid>/status and asserted).
//!
//! Set `TAU_SERVER_BIN` to run the probes against another build of the server.

mod common;
use common::{http_get, start, temp_dir, Conn};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Poll `f` every 10 ms until it holds or `secs` pass.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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
