//! Every worked example of SPEC.md, and the semantics the spec states in prose, as
//! exact reply lines through the engine's synchronous driver.

use tau_engine::driver::SyncDriver;
use tau_engine::{Argon2Params, Config};

fn driver() -> SyncDriver {
    let mut d = SyncDriver::new(Config {
        argon2: Argon2Params::TEST,
        import_dir: Some("/import".into()),
        ..Config::default()
    });
    d.open(1);
    d
}

/// Run `(statement, expected reply)` pairs on connection 1.
fn script(d: &mut SyncDriver, pairs: &[(&str, &str)]) {
    for (stmt, want) in pairs {
        assert_eq!(d.line(1, stmt), *want, "statement: {stmt}");
    }
}

/// SPEC's worked examples, `statement<TAB>reply` (spec/worked_examples.tsv).
fn worked_examples() -> Vec<(&'static str, &'static str)> {
    include_str!("../../spec/worked_examples.tsv")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('\t').expect("statement<TAB>reply"))
        .collect()
}

#[test]
fn spec_worked_examples() {
    let mut d = driver();
    let mut lines = worked_examples();
    // SPEC's parse-error example (0-based column, see SEMANTICS.md).
    lines.push((
        "REDUCE LENS temp 0 7200 USNG twavg",
        "ERR parse error at column 24: expected USING, found \"USNG\"",
    ));
    script(&mut d, &lines);
}

fn setup(d: &mut SyncDriver) {
    script(
        d,
        &[
            ("CREATE DATABASE db", "OK"),
            ("USE DATABASE db", "OK"),
            ("CREATE LENS x int", "OK"),
        ],
    );
}

#[test]
fn writes_are_all_or_nothing() {
    let mut d = driver();
    setup(&mut d);
    script(
        &mut d,
        &[
            (
                "APPEND LENS x 0 10 1, 5 15 2",
                "ERR overlapping intervals in one write",
            ),
            (
                "APPEND LENS x 20 30 1, 30 20 2",
                "ERR invalid range (start >= end)",
            ),
            (
                "APPEND LENS x 0 10 1, 10 20 \"s\"",
                "ERR type mismatch on x: expected int, got str",
            ),
            ("APPEND LENS nope 0 10 1", "ERR unknown lens: nope"),
            ("BATCH APPEND LENS x { }", "OK"),
            ("HISTORY LENS x", "LAYERS 0"),
            // Input order does not matter.
            ("BATCH APPEND LENS x { 10 20 2; 0 10 1 }", "OK"),
            ("RANGE LENS x 0 100", "RANGE 2; 0:10:i1; 10:20:i2"),
            ("HISTORY LENS x", "LAYERS 1; 1:0:0:20"),
        ],
    );
}

#[test]
fn nil_null_and_selectors() {
    let mut d = driver();
    setup(&mut d);
    d.now_ms = 1000;
    script(&mut d, &[("APPEND LENS x 0 10 null", "OK")]);
    d.now_ms = 2000;
    script(
        &mut d,
        &[
            ("APPEND LENS x 5 15 7", "OK"),
            ("AT LENS x 2", "VAL n"),
            ("AT LENS x 20", "VAL NIL"),
            ("AT LENS x 7", "VAL i7"),
            ("AT LENS x 7 AS OF 1500", "VAL n"),
            ("AT LENS x 7 AS OF 999", "VAL NIL"),
            ("AT LENS x 7 LAYER 9", "ERR unknown layer: 9"),
            ("RANGE LENS x 0 20 AS OF 1000", "RANGE 1; 0:10:n"),
            ("RANGE LENS x 0 20 LAYER 2", "RANGE 1; 5:15:i7"),
            ("HISTORY LENS x", "LAYERS 2; 1:1000:0:10; 2:2000:5:15"),
            ("HISTORY LENS x 12 20", "LAYERS 1; 2:2000:5:15"),
            ("REDUCE LENS x 0 20 USING sum", "VAL i7"),
            ("REDUCE LENS x 0 20 USING count", "VAL i2"),
            ("REDUCE LENS x 0 20 USING duration", "VAL i15"),
            ("REDUCE LENS x 0 20 USING first", "VAL n"),
            ("REDUCE LENS x 100 200 USING count", "VAL i0"),
            ("REDUCE LENS x 100 200 USING duration", "VAL i0"),
            ("REDUCE LENS x 100 200 USING sum", "VAL NIL"),
            ("REDUCE LENS x 0 20 USING avg", "VAL f7"),
            ("RANGE LENS x 5 5", "ERR invalid range (start >= end)"),
        ],
    );
}

#[test]
fn reduce_functions_and_types() {
    let mut d = driver();
    setup(&mut d);
    script(
        &mut d,
        &[
            ("APPEND LENS x 0 10 4, 10 30 1, 30 40 -2", "OK"),
            ("REDUCE LENS x 0 40 USING min", "VAL i-2"),
            ("REDUCE LENS x 0 40 USING max", "VAL i4"),
            ("REDUCE LENS x 0 40 USING sum", "VAL i3"),
            ("REDUCE LENS x 0 40 USING avg", "VAL f1"),
            ("REDUCE LENS x 0 40 USING twavg", "VAL f1"),
            ("REDUCE LENS x 0 40 USING integral", "VAL i40"),
            ("REDUCE LENS x 0 40 USING first", "VAL i4"),
            ("REDUCE LENS x 0 40 USING last", "VAL i-2"),
            ("REDUCE LENS x 5 35 USING integral", "VAL i30"),
            ("CREATE LENS s str", "OK"),
            ("APPEND LENS s 0 10 \"a b\"", "OK"),
            (
                "REDUCE LENS s 0 10 USING sum",
                "ERR type mismatch on s: expected int or float, got str",
            ),
            ("REDUCE LENS s 0 10 USING last", "VAL sa%20b"),
            ("CREATE LENS f float", "OK"),
            ("APPEND LENS f 0 1 0.1, 1 2 0.2", "OK"),
            ("REDUCE LENS f 0 2 USING sum", "VAL f0.30000000000000004"),
            ("CREATE LENS big int", "OK"),
            ("APPEND LENS big 0 2 9223372036854775807", "OK"),
            (
                "REDUCE LENS big 0 2 USING integral",
                "ERR invalid expression: integer overflow",
            ),
            ("REDUCE LENS big 0 2 USING sum", "VAL i9223372036854775807"),
        ],
    );
}

#[test]
fn range_where_limit_offset() {
    let mut d = driver();
    setup(&mut d);
    script(
        &mut d,
        &[
            ("CREATE LENS y int", "OK"),
            ("APPEND LENS x 0 100 1", "OK"),
            ("APPEND LENS y 0 30 0, 30 60 5, 60 70 0, 70 100 5", "OK"),
            (
                "RANGE LENS x 0 100 WHERE y > 1",
                "RANGE 2; 30:60:i1; 70:100:i1",
            ),
            (
                "RANGE LENS x 0 100 WHERE y > 1 LIMIT 1",
                "RANGE 1; 30:60:i1",
            ),
            (
                "RANGE LENS x 0 100 WHERE y > 1 LIMIT 1 OFFSET 1",
                "RANGE 1; 70:100:i1",
            ),
            ("RANGE LENS x 0 100 WHERE y >= 0", "RANGE 1; 0:100:i1"),
            (
                "RANGE LENS x 0 100 WHERE y",
                "ERR invalid expression: WHERE needs a bool expression, got int",
            ),
            ("RANGE LENS x 0 100 OFFSET 5", "RANGE 0"),
        ],
    );
}

#[test]
fn derived_lenses() {
    let mut d = driver();
    setup(&mut d);
    script(
        &mut d,
        &[
            ("CREATE LENS y int", "OK"),
            ("APPEND LENS x 0 10 1, 10 20 2", "OK"),
            ("APPEND LENS y 5 15 10", "OK"),
            ("DERIVE LENS s AS x + y", "OK"),
            ("RANGE LENS s 0 20", "RANGE 2; 5:10:i11; 10:15:i12"),
            ("DERIVE LENS same AS x * 0", "OK"),
            ("RANGE LENS same 0 20", "RANGE 1; 0:20:i0"),
            ("DERIVE LENS roll AS sum(x, -5, 0)", "OK"),
            ("AT LENS roll 12", "VAL i3"),
            ("AT LENS roll 0", "VAL NIL"),
            (
                "RANGE LENS roll 0 30",
                "RANGE 3; 1:11:i1; 11:15:i3; 15:25:i2",
            ),
            ("AT LENS roll 1", "VAL i1"),
            ("AT LENS roll 25", "VAL NIL"),
            ("DERIVE LENS cnt AS count(x, -5, 0)", "OK"),
            ("AT LENS cnt 100", "VAL i0"),
            ("DERIVE LENS bad AS nope + 1", "ERR unknown lens: nope"),
            ("DERIVE LENS loop AS loop + 1", "ERR unknown lens: loop"),
            ("DERIVE LENS self AS x", "OK"),
            (
                "DERIVE LENS self AS self + 1",
                "ERR cycle detected in derived lens: self",
            ),
            ("DERIVE LENS a AS x + 1", "OK"),
            ("DERIVE LENS b AS a + 1", "OK"),
            (
                "DERIVE LENS a AS b + 1",
                "ERR cycle detected in derived lens: a",
            ),
            (
                "DERIVE LENS t AS x + \"s\"",
                "ERR invalid expression: operator + needs int or float operands, got int and str",
            ),
            (
                "DERIVE LENS w AS sum(x, 5, 5)",
                "ERR invalid expression: sum window start must be less than its end",
            ),
            ("DERIVE LENS z AS x / 0", "OK"),
            ("AT LENS z 1", "ERR invalid expression: division by zero"),
            ("AT LENS z 50", "VAL NIL"),
            ("DROP LENS x", "ERR lens x is used by derived lens a"),
            (
                "APPEND LENS s 0 1 1",
                "ERR invalid expression: APPEND needs a base lens",
            ),
            (
                "AT LENS s 7 LAYER 1",
                "ERR invalid expression: LAYER needs a base lens",
            ),
            ("DERIVE LENS x AS y", "ERR duplicate lens: x"),
        ],
    );
}

#[test]
fn drop_and_recreate_keeps_counting_layer_ids() {
    let mut d = driver();
    setup(&mut d);
    script(
        &mut d,
        &[
            ("APPEND LENS x 0 10 1", "OK"),
            ("DROP LENS x", "OK"),
            ("AT LENS x 1", "ERR unknown lens: x"),
            ("CREATE LENS x float", "OK"),
            ("AT LENS x 1", "VAL NIL"),
            ("APPEND LENS x 0 10 1", "OK"),
            ("HISTORY LENS x", "LAYERS 1; 2:0:0:10"),
            ("SHOW LENSES", "NAMES 1; x"),
            ("SHOW DATABASES", "NAMES 1; db"),
            ("CREATE DATABASE db", "ERR duplicate database: db"),
            ("CREATE LENS x int", "ERR duplicate lens: x"),
            ("USE DATABASE nope", "ERR unknown database: nope"),
        ],
    );
}

#[test]
fn transactions_are_per_connection_and_atomic() {
    let mut d = driver();
    setup(&mut d);
    d.open(2);
    assert_eq!(d.line(2, "USE DATABASE db"), "OK");
    script(
        &mut d,
        &[
            ("START TRANSACTION", "OK"),
            ("START TRANSACTION", "ERR transaction already active"),
            ("CREATE LENS y int", "OK"),
            ("APPEND LENS y 0 10 1", "OK"),
            ("APPEND LENS x 0 10 5", "OK"),
            (
                "APPEND LENS x 0 10 1.5",
                "ERR type mismatch on x: expected int, got float",
            ),
            (
                "CREATE DATABASE other",
                "ERR invalid in transaction: CREATE DATABASE",
            ),
            ("AT LENS x 1", "VAL NIL"),
        ],
    );
    assert_eq!(d.line(2, "AT LENS x 1"), "VAL NIL");
    assert_eq!(d.line(2, "AT LENS y 1"), "ERR unknown lens: y");
    assert_eq!(d.line(2, "APPEND LENS x 0 1 9"), "OK");
    script(
        &mut d,
        &[
            ("COMMIT", "OK"),
            ("AT LENS y 1", "VAL i1"),
            ("AT LENS x 5", "VAL i5"),
            // Layer 1 went to connection 2; the transaction got 2 and 3 in order.
            ("HISTORY LENS x", "LAYERS 2; 1:0:0:1; 3:0:0:10"),
            ("COMMIT", "ERR no active transaction"),
            ("ROLLBACK", "ERR no active transaction"),
            ("START TRANSACTION", "OK"),
            ("APPEND LENS x 0 10 7", "OK"),
            ("ROLLBACK", "OK"),
            ("AT LENS x 5", "VAL i5"),
            ("START TRANSACTION", "OK"),
            ("APPEND LENS y 0 10 7", "OK"),
        ],
    );
    // Another connection drops y: COMMIT re-validates and fails as a whole.
    assert_eq!(d.line(2, "DROP LENS y"), "OK");
    assert_eq!(d.line(1, "COMMIT"), "ERR unknown lens: y");
    // A disconnect rolls back.
    script(
        &mut d,
        &[("START TRANSACTION", "OK"), ("APPEND LENS x 0 10 8", "OK")],
    );
    d.close(1);
    assert_eq!(d.line(2, "AT LENS x 5"), "VAL i5");
}

#[test]
fn users_grants_and_rights() {
    let mut d = SyncDriver::new(Config {
        auth: true,
        bootstrap_admin: Some(("admin".into(), "pw".into())),
        argon2: Argon2Params::TEST,
        ..Config::default()
    });
    d.open(1);
    assert_eq!(d.line(1, "SHOW DATABASES"), "ERR authentication required");
    assert!(d.is_closed(1));
    d.open(2);
    assert_eq!(d.line(2, "AUTH admin wrong"), "ERR authentication failed");
    assert!(d.is_closed(2));
    d.open(3);
    let admin = [
        ("AUTH admin pw", "OK"),
        ("CREATE DATABASE db", "OK"),
        ("CREATE USER bob PASSWORD \"b pw\"", "OK"),
        ("CREATE USER bob PASSWORD \"x\"", "ERR duplicate user: bob"),
        ("GRANT R ON db TO bob", "OK"),
        ("GRANT u on * TO bob", "OK"),
        ("SHOW USERS", "NAMES 2; admin; bob"),
        ("SHOW GRANTS", "GRANTS 2; admin *:A; bob *:U db:R"),
        ("USE DATABASE db", "OK"),
        ("CREATE LENS x int", "OK"),
    ];
    for (s, want) in admin {
        assert_eq!(d.line(3, s), want, "{s}");
    }
    d.open(4);
    let bob = [
        ("AUTH bob \"b pw\"", "OK"),
        ("AUTH bob \"b pw\"", "ERR already authenticated"),
        ("USE DATABASE db", "OK"),
        ("APPEND LENS x 0 10 1", "OK"),
        ("AT LENS x 1", "VAL i1"),
        (
            "CREATE LENS y int",
            "ERR permission denied: bob lacks C on db",
        ),
        ("DROP LENS x", "ERR permission denied: bob lacks D on db"),
        (
            "CREATE DATABASE d2",
            "ERR permission denied: bob lacks A on *",
        ),
        ("SHOW USERS", "ERR permission denied: bob lacks A on *"),
        ("SHOW GRANTS bob", "GRANTS 1; bob *:U db:R"),
        (
            "SHOW GRANTS admin",
            "ERR permission denied: bob lacks A on *",
        ),
    ];
    for (s, want) in bob {
        assert_eq!(d.line(4, s), want, "{s}");
    }
    assert_eq!(d.line(3, "REVOKE R ON db FROM bob"), "OK");
    assert_eq!(
        d.line(4, "AT LENS x 1"),
        "ERR permission denied: bob lacks R on db"
    );
    assert_eq!(d.line(3, "DROP USER bob"), "OK");
    assert_eq!(d.line(3, "SHOW GRANTS"), "GRANTS 1; admin *:A");
}

#[test]
fn framing_blank_lines_crlf_and_limits() {
    let mut d = SyncDriver::new(Config {
        max_line_bytes: 64,
        ..Config::default()
    });
    d.open(1);
    d.send(1, b"SHOW DATABASES\r\n\r\n   \nSHOW DATA");
    assert_eq!(d.take_lines(1), vec!["NAMES 0"]);
    d.send(1, b"BASES\n");
    assert_eq!(d.take_lines(1), vec!["NAMES 0"]);
    d.send(1, b"\xff\xfe\n");
    assert_eq!(
        d.take_lines(1),
        vec!["ERR parse error at column 0: invalid UTF-8"]
    );
    d.send(1, &[b'x'; 100]);
    assert_eq!(d.take_lines(1), vec!["ERR line too long"]);
    assert!(d.is_closed(1));
    d.open(2);
    assert_eq!(d.line(2, "QUIT"), "OK BYE");
    assert!(d.is_closed(2));
}

#[test]
fn copy_reads_only_the_import_directory() {
    let mut d = driver();
    setup(&mut d);
    d.files
        .insert("/import/x.csv".into(), b"# x\n0,10,1\n10,20,2\n".to_vec());
    d.files
        .insert("/import/bad.csv".into(), b"0,10,1\n5,3,1\n".to_vec());
    script(
        &mut d,
        &[
            ("COPY LENS x FROM \"x.csv\"", "OK"),
            ("RANGE LENS x 0 20", "RANGE 2; 0:10:i1; 10:20:i2"),
            (
                "COPY LENS x FROM \"bad.csv\"",
                "ERR line 2: invalid range (start >= end)",
            ),
            (
                "COPY LENS x FROM \"../etc/passwd\"",
                "ERR permission denied: path outside the import directory",
            ),
            (
                "COPY LENS x FROM \"/etc/passwd\"",
                "ERR permission denied: path outside the import directory",
            ),
            (
                "COPY LENS x FROM \"missing.csv\"",
                "ERR cannot read missing.csv: No such file or directory (os error 2)",
            ),
            ("HISTORY LENS x", "LAYERS 1; 1:0:0:20"),
        ],
    );
}

#[test]
fn compaction_changes_no_answer_and_creates_no_layer() {
    let mut d = driver();
    setup(&mut d);
    for i in 0..10 {
        d.now_ms = i * 10;
        let s = format!("APPEND LENS x {} {} {}", i * 5, i * 5 + 20, i);
        assert_eq!(d.line(1, &s), "OK");
    }
    let queries = [
        "RANGE LENS x -10 100",
        "RANGE LENS x -10 100 AS OF 45",
        "RANGE LENS x 0 100 LAYER 3",
        "AT LENS x 12",
        "AT LENS x 12 AS OF 20",
        "REDUCE LENS x 0 100 USING twavg",
        "REDUCE LENS x 0 100 USING count",
        "HISTORY LENS x",
        "HISTORY LENS x 50 60",
    ];
    let before: Vec<String> = queries.iter().map(|q| d.line(1, q)).collect();
    assert_eq!(d.line(1, "COMPACT LENS x"), "OK");
    let after: Vec<String> = queries.iter().map(|q| d.line(1, q)).collect();
    assert_eq!(before, after);
    assert_eq!(d.line(1, "APPEND LENS x 0 1 99"), "OK");
    assert_eq!(
        d.line(1, "HISTORY LENS x 0 1"),
        "LAYERS 2; 1:0:0:20; 11:90:0:1"
    );
}

#[test]
fn status_shape() {
    let mut d = driver();
    setup(&mut d);
    assert_eq!(
        d.line(1, "SHOW STATUS"),
        format!(
            "STATUS 7; auth:off; connections:1; database:db; databases:1; transaction:off; version:{}; written_at:0",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn compaction_threshold_is_per_database() {
    use tau_engine::catalog::Lens;
    let mut d = SyncDriver::new(Config {
        compact_threshold: 1000,
        compact_thresholds: [("hot".to_string(), 2)].into_iter().collect(),
        ..Config::default()
    });
    d.open(1);
    for db in ["hot", "cold"] {
        for s in [
            format!("CREATE DATABASE {db}"),
            format!("USE DATABASE {db}"),
            "CREATE LENS x int".into(),
        ] {
            assert_eq!(d.line(1, &s), "OK");
        }
        for i in 0..10 {
            assert_eq!(d.line(1, &format!("APPEND LENS x {i} {} {i}", i + 5)), "OK");
        }
    }
    let runs = |db: &str| match d.engine.state().db(db).unwrap().lenses.get("x") {
        Some(Lens::Base(b)) => (b.runs.len(), b.history.len()),
        _ => panic!("base lens"),
    };
    assert_eq!(
        runs("cold"),
        (10, 10),
        "no compaction under the global threshold"
    );
    let (hot_runs, hot_layers) = runs("hot");
    assert_eq!(hot_layers, 10, "compaction keeps every layer in history");
    assert!(
        hot_runs <= 2,
        "hot database compacted down to {hot_runs} runs"
    );
}

#[test]
fn half_close_answers_every_complete_line_then_closes() {
    let mut d = driver();
    d.send(
        1,
        b"CREATE DATABASE db\nSTART TRANSACTION\nUSE DATABASE db\nSHOW DATABASES\nCREATE DATABASE cut",
    );
    assert_eq!(d.take_lines(1), vec!["OK", "OK", "OK", "NAMES 1; db"]);
    assert!(!d.is_closed(1));
    // End of input: the last line has no `\n`, so it may be cut short (SPEC v0.2): it is
    // dropped, never run, and the connection closes.
    d.eof(1);
    assert!(d.take_lines(1).is_empty());
    assert!(d.is_closed(1));
    assert_eq!(d.engine.stats().partial_lines_discarded, 1);
    // Bytes after the end of input are ignored.
    d.send(1, b"SHOW STATUS\n");
    assert!(d.take_lines(1).is_empty());
    d.open(2);
    d.send(2, b"SHOW DATABASES\n");
    assert_eq!(d.take_lines(2), vec!["NAMES 1; db"]);
}

#[test]
fn a_truncated_append_is_never_run_however_the_connection_ends() {
    // A client killed mid-write: `APPEND LENS s 0 10 123` arrives as `... 12`, then the
    // socket closes by FIN (Eof), by reset (Closed) or the server stops (Drain).
    let mut d = driver();
    d.send(
        1,
        b"CREATE DATABASE db\nUSE DATABASE db\nCREATE LENS s int\n",
    );
    assert_eq!(d.take_lines(1), vec!["OK", "OK", "OK"]);
    for (conn, end) in [(2u64, "eof"), (3, "closed"), (4, "drain")] {
        d.open(conn);
        d.send(conn, b"USE DATABASE db\nAPPEND LENS s 0 10 12");
        assert_eq!(d.take_lines(conn), vec!["OK"]);
        match end {
            "eof" => d.eof(conn),
            "closed" => d.close(conn),
            _ => d.drain(conn),
        }
        assert!(d.take_lines(conn).is_empty(), "{end}");
    }
    d.send(1, b"RANGE LENS s 0 100\nHISTORY LENS s\n");
    assert_eq!(d.take_lines(1), vec!["RANGE 0", "LAYERS 0"]);
    assert_eq!(d.engine.stats().partial_lines_discarded, 3);
}

#[test]
fn long_expressions_are_accepted_up_to_the_bound_and_survive_a_restart() {
    // Tau 0.1 accepted a 66-term DERIVE and then could not replay it (printed with one
    // parenthesis level per term, past the parser's nesting bound): the store never
    // started again. Now any accepted expression reads back, and past 1024 operators and
    // operands a statement is a parse error.
    let cfg = Config {
        argon2: Argon2Params::TEST,
        storage: Some(tau_engine::durable::StorageConfig::new("/data")),
        ..Config::default()
    };
    let mut d = SyncDriver::new(cfg.clone());
    d.open(1);
    for s in [
        "CREATE DATABASE db",
        "USE DATABASE db",
        "CREATE LENS x int",
        "APPEND LENS x 0 10 1",
    ] {
        assert_eq!(d.line(1, s), "OK");
    }
    let sum = |n: usize| vec!["x"; n].join(" + ");
    assert_eq!(d.line(1, &format!("DERIVE LENS d66 AS {}", sum(66))), "OK");
    assert_eq!(
        d.line(1, &format!("DERIVE LENS d512 AS {}", sum(512))),
        "OK"
    );
    let nested = format!("{}x{}", "-(".repeat(30), ")".repeat(30));
    assert_eq!(d.line(1, &format!("DERIVE LENS neg AS {nested} * 2")), "OK");
    let too_long = d.line(1, &format!("DERIVE LENS big AS {}", sum(513)));
    assert!(
        too_long.starts_with("ERR parse error at column"),
        "{too_long}"
    );
    assert!(too_long.contains("smaller expression"), "{too_long}");
    // A 200,000-term WHERE (about 800 KB, under the line limit) is refused, not a crash.
    let huge = d.line(1, &format!("RANGE LENS x 0 10 WHERE {} > 0", sum(200_000)));
    assert!(
        huge.starts_with("ERR parse error at column"),
        "{}",
        &huge[..60]
    );
    assert_eq!(
        d.line(1, &format!("RANGE LENS x 0 10 WHERE {} > 0", sum(500))),
        "RANGE 1; 0:10:i1"
    );
    let mut r = SyncDriver::with_files(cfg, d.files);
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    r.open(1);
    assert_eq!(r.line(1, "USE DATABASE db"), "OK");
    assert_eq!(r.line(1, "AT LENS d66 5"), "VAL i66");
    assert_eq!(r.line(1, "AT LENS d512 5"), "VAL i512");
    assert_eq!(r.line(1, "AT LENS neg 5"), "VAL i2");
}

fn auth_driver() -> SyncDriver {
    let mut d = SyncDriver::new(Config {
        argon2: Argon2Params::TEST,
        auth: true,
        bootstrap_admin: Some(("admin".into(), "pw".into())),
        ..Config::default()
    });
    d.open(1);
    assert_eq!(d.line(1, "AUTH admin pw"), "OK");
    d
}

#[test]
fn the_last_global_admin_cannot_be_revoked_or_dropped() {
    let mut d = auth_driver();
    let last = "ERR permission denied: cannot remove the last global admin (A on *)";
    assert_eq!(d.line(1, "REVOKE A ON * FROM admin"), last);
    assert_eq!(d.line(1, "DROP USER admin"), last);
    // Other rights on `*` may go; A stays.
    assert_eq!(d.line(1, "REVOKE R ON * FROM admin"), "OK");
    assert_eq!(d.line(1, "CREATE USER bob PASSWORD \"b\""), "OK");
    assert_eq!(d.line(1, "GRANT A ON * TO bob"), "OK");
    // With a second admin, either may go.
    assert_eq!(d.line(1, "REVOKE A ON * FROM admin"), "OK");
    d.open(2);
    assert_eq!(d.line(2, "AUTH bob b"), "OK");
    assert_eq!(d.line(2, "DROP USER bob"), last);
    assert_eq!(d.line(2, "DROP USER admin"), "OK");
    assert_eq!(d.line(2, "SHOW USERS"), "NAMES 1; bob");
}

#[test]
fn a_session_belongs_to_its_user_not_to_the_name() {
    // A dropped user's open session must not pick up the grants of a new user created
    // with the same name.
    let mut d = auth_driver();
    for s in [
        "CREATE DATABASE db",
        "CREATE USER carol PASSWORD \"c1\"",
        "GRANT R ON db TO carol",
    ] {
        assert_eq!(d.line(1, s), "OK", "{s}");
    }
    d.open(2);
    assert_eq!(d.line(2, "AUTH carol c1"), "OK");
    assert_eq!(d.line(2, "USE DATABASE db"), "OK");
    assert_eq!(d.line(2, "SHOW LENSES"), "NAMES 0");
    assert_eq!(d.line(1, "DROP USER carol"), "OK");
    assert_eq!(
        d.line(2, "SHOW LENSES"),
        "ERR permission denied: carol lacks R on db"
    );
    for s in ["CREATE USER carol PASSWORD \"c1\"", "GRANT A ON * TO carol"] {
        assert_eq!(d.line(1, s), "OK", "{s}");
    }
    // The old session is still nobody; a new one is the new carol.
    assert_eq!(
        d.line(2, "CREATE DATABASE x"),
        "ERR permission denied: carol lacks A on *"
    );
    assert_eq!(
        d.line(2, "SHOW GRANTS carol"),
        "ERR permission denied: carol lacks A on *"
    );
    d.open(3);
    assert_eq!(d.line(3, "AUTH carol c1"), "OK");
    assert_eq!(d.line(3, "CREATE DATABASE x"), "OK");
}

#[test]
fn as_of_takes_rfc3339_literals() {
    // SPEC v0.2: wherever a statement takes a wall-clock time in ms, an RFC 3339 string.
    let mut d = driver();
    for s in ["CREATE DATABASE db", "USE DATABASE db", "CREATE LENS x int"] {
        assert_eq!(d.line(1, s), "OK");
    }
    d.now_ms = 1_796_551_200_000; // 2026-12-06T10:00:00Z
    assert_eq!(d.line(1, "APPEND LENS x 0 10 1"), "OK");
    d.now_ms += 60_000;
    assert_eq!(d.line(1, "APPEND LENS x 0 10 2"), "OK");
    for (when, want) in [
        ("\"2026-12-06T09:59:59.999Z\"", "VAL NIL"),
        ("\"2026-12-06T10:00:00Z\"", "VAL i1"),
        ("\"2026-12-06T11:00:30+01:00\"", "VAL i1"),
        ("\"2026-12-06T10:01:00.000Z\"", "VAL i2"),
        ("1796551260000", "VAL i2"),
    ] {
        assert_eq!(
            d.line(1, &format!("AT LENS x 5 AS OF {when}")),
            want,
            "{when}"
        );
    }
    assert_eq!(
        d.line(
            1,
            "RANGE LENS x 0 10 AS OF \"2026-12-06T10:00:00.250+00:00\""
        ),
        "RANGE 1; 0:10:i1"
    );
    assert_eq!(
        d.line(
            1,
            "REDUCE LENS x 0 10 AS OF \"2026-12-06T10:00:00Z\" USING sum"
        ),
        "VAL i1"
    );
    let bad = d.line(1, "AT LENS x 5 AS OF \"2026-12-06T25:00:00Z\"");
    assert!(bad.starts_with("ERR parse error at column 18: "), "{bad}");
    let bad = d.line(1, "AT LENS x 5 AS OF \"tomorrow\"");
    assert!(bad.starts_with("ERR parse error at column 18: "), "{bad}");
}
