//! Authentication over real sockets: the bootstrap admin from the config file, AUTH
//! failures, the per-address throttle, and the CRUDA matrix — each right allows exactly
//! what SPEC says and nothing else.

mod common;
use common::{start, temp_dir, Conn, TempDir};

fn auth_server(extra_toml: &str) -> (common::Server, TempDir) {
    let dir = temp_dir("auth");
    std::fs::create_dir_all(&dir.0).unwrap();
    let cfg = dir.0.join("tau.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[auth]\nenabled = true\nadmin_user = \"admin\"\nadmin_password = \"pw\"\n{extra_toml}",
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    let server = start(&["--config", cfg.to_str().unwrap()]);
    (server, dir)
}

fn login(addr: &str, user: &str, pw: &str) -> Conn {
    let mut c = Conn::new(addr);
    assert_eq!(c.ask(&format!("AUTH {user} {pw}")), "OK", "AUTH {user}");
    c
}

#[test]
fn auth_is_required_and_failures_close() {
    let (server, _dir) = auth_server("");
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("SHOW DATABASES"), "ERR authentication required");
    assert!(c.closed());
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("AUTH admin nope"), "ERR authentication failed");
    assert!(c.closed());
    let mut c = Conn::new(&server.addr);
    assert_eq!(c.ask("AUTH nobody pw"), "ERR authentication failed");
    assert!(c.closed());
    let mut c = login(&server.addr, "admin", "pw");
    assert_eq!(c.ask("SHOW USERS"), "NAMES 1; admin");
    assert_eq!(c.ask("SHOW GRANTS admin"), "GRANTS 1; admin *:A");
}

#[test]
fn failed_auth_is_throttled_per_address() {
    let (server, _dir) = auth_server("max_failures = 2\nfailure_refill_secs = 3600\n");
    for _ in 0..2 {
        let mut c = Conn::new(&server.addr);
        assert_eq!(c.ask("AUTH admin wrong"), "ERR authentication failed");
        assert!(c.closed());
    }
    // The bucket is empty: even the right password is not checked now.
    let mut c = Conn::new(&server.addr);
    let reply = c.ask("AUTH admin pw");
    assert!(
        reply.starts_with("ERR authentication failed: too many failed attempts"),
        "{reply}"
    );
    assert!(c.closed());
}

/// Which right each probe needs (None: global admin only, i.e. A on `*`).
const PROBES: &[(&str, Option<char>)] = &[
    ("AT LENS x 5", Some('R')),
    ("RANGE LENS x 0 100", Some('R')),
    ("REDUCE LENS x 0 100 USING sum", Some('R')),
    ("HISTORY LENS x", Some('R')),
    ("SHOW LENSES", Some('R')),
    ("APPEND LENS x 100 110 7", Some('U')),
    ("BATCH APPEND LENS x { 200 210 7 }", Some('U')),
    ("COMPACT LENS x", Some('U')),
    ("CREATE LENS new_{u} int", Some('C')),
    ("DERIVE LENS der_{u} AS x * 2", Some('C')),
    ("DROP LENS drop_{u}", Some('D')),
    ("GRANT R ON d TO victim", Some('A')),
    ("REVOKE R ON d FROM victim", Some('A')),
    ("CREATE DATABASE db_{u}", None),
    ("CREATE USER user_{u} PASSWORD \"p\"", None),
    ("SHOW USERS", None),
];

#[test]
fn each_right_allows_exactly_what_spec_says() {
    let (server, _dir) = auth_server("");
    let users = [
        ("ur", "R"),
        ("uu", "U"),
        ("uc", "C"),
        ("ud", "D"),
        ("ua", "A"),
        ("un", ""),
        ("uall", "CRUDA"),
    ];
    let mut admin = login(&server.addr, "admin", "pw");
    let mut setup = vec![
        "CREATE DATABASE d".to_string(),
        "USE DATABASE d".into(),
        "CREATE LENS x int".into(),
        "APPEND LENS x 0 10 1".into(),
        "CREATE USER victim PASSWORD \"v\"".into(),
    ];
    for (u, perms) in users.iter().chain([("admin", "")].iter()) {
        if *u != "admin" {
            setup.push(format!("CREATE USER {u} PASSWORD \"p{u}\""));
            if !perms.is_empty() {
                setup.push(format!("GRANT {perms} ON d TO {u}"));
            }
        }
        setup.push(format!("CREATE LENS drop_{u} int"));
    }
    for stmt in &setup {
        assert_eq!(admin.ask(stmt), "OK", "{stmt}");
    }
    for (u, perms) in users {
        let mut c = login(&server.addr, u, &format!("p{u}"));
        // USE DATABASE needs no right.
        assert_eq!(c.ask("USE DATABASE d"), "OK");
        for (probe, right) in PROBES {
            let stmt = probe.replace("{u}", u);
            let allowed = right.is_some_and(|r| perms.contains(r));
            let reply = c.ask(&stmt);
            if allowed {
                assert!(
                    !reply.starts_with("ERR"),
                    "{u} ({perms}): {stmt} -> {reply}"
                );
            } else {
                assert!(
                    reply.starts_with("ERR permission denied: "),
                    "{u} ({perms}): {stmt} -> {reply}"
                );
            }
        }
    }
    // The global admin passes every check.
    for (probe, _) in PROBES {
        let stmt = probe.replace("{u}", "admin");
        let reply = admin.ask(&stmt);
        assert!(!reply.starts_with("ERR"), "admin: {stmt} -> {reply}");
    }
    // A on a database is not A on `*`, and rights on d say nothing about another db.
    assert_eq!(admin.ask("CREATE DATABASE other"), "OK");
    let mut ua = login(&server.addr, "ua", "pua");
    assert!(ua
        .ask("GRANT R ON other TO victim")
        .starts_with("ERR permission denied: "));
    assert!(ua
        .ask("DROP DATABASE other")
        .starts_with("ERR permission denied: "));
    let mut ur = login(&server.addr, "ur", "pur");
    assert_eq!(ur.ask("USE DATABASE other"), "OK");
    assert_eq!(
        ur.ask("CREATE LENS y int").split(':').next(),
        Some("ERR permission denied")
    );
    // A database admin may drop their own database.
    assert_eq!(ua.ask("DROP DATABASE d"), "OK");
}

#[test]
fn concurrent_wrong_auths_cannot_outrun_the_throttle() {
    // 200 connections from one address each send one wrong AUTH at once. Failures are
    // counted when their reply is written, so the server must not check more at a time
    // than the throttle allows failures: at most 3 are checked, the rest are turned away.
    let (server, _dir) = auth_server("max_failures = 3\nfailure_refill_secs = 3600\n");
    let addr = server.addr.clone();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::new(&addr);
                c.send("AUTH admin wrong\n");
                c.line()
            })
        })
        .collect();
    let replies: Vec<String> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = replies
        .iter()
        .filter(|r| *r == "ERR authentication failed")
        .count();
    let throttled = replies
        .iter()
        .filter(|r| r.starts_with("ERR authentication failed: too many failed attempts"))
        .count();
    assert_eq!(checked + throttled, 200, "{replies:?}");
    let log = server.log.lock().unwrap().join("\n");
    assert!(checked <= 3, "{checked} wrong AUTHs were checked\n{log}");
}

#[test]
fn a_pool_of_good_logins_from_one_address_all_get_in() {
    // The AUTH slots bound concurrent checks, they do not refuse good ones: 24 connections
    // opened at once with the right password all log in (they wait their turn).
    let (server, _dir) = auth_server("max_failures = 2\n");
    let addr = server.addr.clone();
    let logins: Vec<_> = (0..24)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::new(&addr);
                c.ask("AUTH admin pw")
            })
        })
        .collect();
    for h in logins {
        assert_eq!(h.join().unwrap(), "OK");
    }
}
