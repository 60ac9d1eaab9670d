use super::*;

fn oracle() -> Oracle {
    Oracle::new(OracleConfig {
        auth: false,
        users: vec![],
        import_dir: None,
        files: BTreeMap::new(),
    })
}

/// Run `stmt => expected` pairs on connection 1 (time advances by 1000 per line).
fn script(o: &mut Oracle, conn: u64, pairs: &[(&str, &str)]) {
    for (i, (stmt, want)) in pairs.iter().enumerate() {
        let got = o
            .execute(conn, 1000 * (i as i64 + 1), stmt.as_bytes())
            .map(|r| r.line)
            .unwrap_or_default();
        if want.starts_with("ERR parse error") {
            assert!(got.starts_with("ERR parse error"), "{stmt}: got {got}");
        } else {
            assert_eq!(got, *want, "statement: {stmt}");
        }
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
fn spec_worked_example() {
    let mut o = oracle();
    // The transcript is SPEC data, not engine code: sharing it keeps the oracle independent.
    let mut lines = worked_examples();
    lines.push((
        "REDUCE LENS temp 0 7200 USNG twavg",
        "ERR parse error at column 24: expected USING, found \"USNG\"",
    ));
    script(&mut o, 1, &lines);
}

fn db_oracle() -> Oracle {
    let mut o = oracle();
    script(
        &mut o,
        1,
        &[("CREATE DATABASE d", "OK"), ("USE DATABASE d", "OK")],
    );
    o
}

#[test]
fn blank_lines_get_no_reply() {
    let mut o = oracle();
    assert_eq!(o.execute(1, 0, b""), None);
    assert_eq!(o.execute(1, 0, b"  \t "), None);
    assert!(o
        .execute(1, 0, b"\x0b")
        .unwrap()
        .line
        .starts_with("ERR parse error"));
}

#[test]
fn lexical_rules() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("create lens s str", "OK"),
            ("CrEaTe LeNs S int", "OK"),
            ("SHOW LENSES", "NAMES 2; S; s"),
            ("APPEND LENS s 0 1 \"a b:c;d%e\\\"\\\\\"", "OK"),
            ("AT LENS s 0", "VAL sa%20b%3Ac%3Bd%25e\"\\"),
            ("CREATE LENS true int", "ERR parse error"),
            ("CREATE LENS Null int", "ERR parse error"),
            ("CREATE LENS 1x int", "ERR parse error"),
            ("CREATE LENS b bytes", "OK"),
            ("APPEND LENS b 0 1 0xDEad", "OK"),
            ("APPEND LENS b 1 2 0x", "OK"),
            ("APPEND LENS b 2 3 0xabc", "ERR parse error"),
            ("RANGE LENS b 0 3", "RANGE 2; 0:1:xdead; 1:2:x"),
            ("CREATE LENS f float", "OK"),
            ("APPEND LENS f 0 1 1e3, 1 2 -2.5E-1, 2 3 0.1", "OK"),
            (
                "RANGE LENS f 0 3",
                "RANGE 3; 0:1:f1000; 1:2:f-0.25; 2:3:f0.1",
            ),
            ("APPEND LENS f 0 1 1e400", "ERR parse error"),
            ("APPEND LENS S 0 1 9223372036854775808", "ERR parse error"),
            ("APPEND LENS S 0 1 -9223372036854775808", "OK"),
            ("AT LENS S 0", "VAL i-9223372036854775808"),
            ("APPEND LENS S 0 1 1.", "ERR parse error"),
            ("APPEND LENS S 0 1 \"x\\n\"", "ERR parse error"),
            ("APPEND LENS S 0 1 \"unterminated", "ERR parse error"),
            ("APPEND LENS S 0 1 1,", "ERR parse error"),
            ("APPEND LENS S 0 1 1 2 3 4", "ERR parse error"),
            ("   AT LENS S 0\t ", "VAL i-9223372036854775808"),
            ("AT LENS S 0 garbage", "ERR parse error"),
            ("FROB", "ERR parse error"),
        ],
    );
    let r = o.execute(1, 0, b"AT LENS \xff 0").unwrap();
    assert_eq!(r.line, "ERR parse error at column 8: invalid UTF-8");
}

#[test]
fn float_encoding() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS f float", "OK"),
            ("APPEND LENS f 0 1 0.1", "OK"),
            ("DERIVE LENS g AS f + 0.2", "OK"),
            ("AT LENS g 0", "VAL f0.30000000000000004"),
            ("DERIVE LENS h AS f * 0.0 * -1.0", "OK"),
            ("AT LENS h 0", "VAL f-0"),
            ("DERIVE LENS k AS f * 1e300 * 1e10", "OK"),
            ("AT LENS k 0", "ERR invalid expression: float overflow"),
            ("DERIVE LENS m AS f * 1e20", "OK"),
            ("AT LENS m 0", "VAL f10000000000000000000"),
        ],
    );
}

#[test]
fn writes_all_or_nothing() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            (
                "APPEND LENS x 0 10 1, 5 15 2",
                "ERR overlapping intervals in one write",
            ),
            (
                "APPEND LENS x 0 10 1, 10 5 2, 3 4 \"s\"",
                "ERR invalid range (start >= end)",
            ),
            (
                "APPEND LENS x 0 10 \"s\", 10 5 2",
                "ERR type mismatch on x: expected int, got str",
            ),
            (
                "APPEND LENS x 0 10 1, 20 30 true, 5 6 1",
                "ERR type mismatch on x: expected int, got bool",
            ),
            ("APPEND LENS y 0 10 1", "ERR unknown lens: y"),
            ("BATCH APPEND LENS x { }", "OK"),
            ("BATCH APPEND LENS x {}", "OK"),
            ("HISTORY LENS x", "LAYERS 0"),
            ("BATCH APPEND LENS x { 20 30 3; 0 10 1 ; 10 20 null }", "OK"),
            ("BATCH APPEND LENS x { 0 1 1; }", "ERR parse error"),
            ("RANGE LENS x 0 100", "RANGE 3; 0:10:i1; 10:20:n; 20:30:i3"),
            ("APPEND LENS x 0 10 1, 10 20 2", "OK"),
            ("HISTORY LENS x", "LAYERS 2; 1:10000:0:30; 2:13000:0:20"),
            ("DERIVE LENS dx AS x", "OK"),
            (
                "APPEND LENS dx 0 1 1",
                "ERR invalid expression: APPEND needs a base lens",
            ),
            (
                "BATCH APPEND LENS dx { }",
                "ERR invalid expression: APPEND needs a base lens",
            ),
            ("BATCH APPEND LENS nope { }", "ERR unknown lens: nope"),
        ],
    );
}

#[test]
fn at_as_of_layer_and_history() {
    let mut o = db_oracle();
    let steps: &[(i64, &str, &str)] = &[
        (100, "CREATE LENS x int", "OK"),
        (100, "AT LENS x 5", "VAL NIL"),
        (200, "APPEND LENS x 0 10 1", "OK"),
        (150, "APPEND LENS x 5 20 2", "OK"),
        (300, "APPEND LENS x 100 200 3", "OK"),
        (300, "AT LENS x 5", "VAL i2"),
        (300, "AT LENS x 5 AS OF 199", "VAL NIL"),
        (300, "AT LENS x 5 AS OF 200", "VAL i2"),
        (300, "AT LENS x 5 LAYER 1", "VAL i1"),
        (300, "AT LENS x 15 LAYER 1", "VAL NIL"),
        (300, "AT LENS x 5 LAYER 4", "ERR unknown layer: 4"),
        (300, "AT LENS x 5 LAYER 0", "ERR unknown layer: 0"),
        (300, "HISTORY LENS x", "LAYERS 3; 1:200:0:10; 2:200:5:20; 3:300:100:200"),
        (300, "HISTORY LENS x 10 100", "LAYERS 1; 2:200:5:20"),
        (300, "HISTORY LENS x 20 100", "LAYERS 0"),
        (300, "HISTORY LENS x 5 5", "ERR invalid range (start >= end)"),
        (300, "RANGE LENS x 0 300 AS OF 250", "RANGE 2; 0:5:i1; 5:20:i2"),
        (300, "RANGE LENS x 0 300 LAYER 2", "RANGE 1; 5:20:i2"),
        (300, "RANGE LENS x 0 300 LIMIT 2 OFFSET 1", "RANGE 2; 5:20:i2; 100:200:i3"),
        (300, "RANGE LENS x 0 300 OFFSET 5", "RANGE 0"),
        (300, "RANGE LENS x 0 300 LIMIT 0", "RANGE 0"),
        (300, "RANGE LENS x 0 300 OFFSET 1 LIMIT 1", "ERR parse error"),
        (300, "RANGE LENS x 7 7", "ERR invalid range (start >= end)"),
        (300, "RANGE LENS x 7 8", "RANGE 1; 7:8:i2"),
        (300, "REDUCE LENS x 0 300 LAYER 1 USING sum", "VAL i1"),
        (300, "REDUCE LENS x 0 300 AS OF 100 USING count", "VAL i0"),
        (300, "DERIVE LENS y AS x + 1", "OK"),
        (300, "AT LENS y 5 LAYER 1", "ERR invalid expression: LAYER needs a base lens"),
        (300, "AT LENS y 5 AS OF 200", "VAL i3"),
        (300, "HISTORY LENS y", "ERR invalid expression: HISTORY needs a base lens"),
        (300, "COMPACT LENS y", "ERR invalid expression: COMPACT needs a base lens"),
        (300, "COMPACT LENS x", "OK"),
        (300, "COMPACT LENS z", "ERR unknown lens: z"),
        (300, "SHOW STATUS", "STATUS 7; auth:off; connections:1; database:d; databases:1; transaction:off; version:0.1.0; written_at:300"),
    ];
    for (now, stmt, want) in steps {
        let got = o.execute(1, *now, stmt.as_bytes()).unwrap().line;
        if want.starts_with("ERR parse error") {
            assert!(got.starts_with(want), "{stmt}: {got}");
        } else {
            assert_eq!(got, *want, "{stmt}");
        }
    }
}

#[test]
fn visible_pieces_keep_stored_intervals_apart() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            ("APPEND LENS x 0 50 1, 50 100 1", "OK"),
            ("RANGE LENS x 0 100", "RANGE 2; 0:50:i1; 50:100:i1"),
            ("APPEND LENS x 20 30 1", "OK"),
            (
                "RANGE LENS x 10 90",
                "RANGE 4; 10:20:i1; 20:30:i1; 30:50:i1; 50:90:i1",
            ),
            ("REDUCE LENS x 10 90 USING count", "VAL i4"),
            ("REDUCE LENS x 10 90 USING sum", "VAL i4"),
            ("REDUCE LENS x 10 90 USING duration", "VAL i80"),
            ("DERIVE LENS y AS x", "OK"),
            ("RANGE LENS y 10 90", "RANGE 1; 10:90:i1"),
        ],
    );
}

#[test]
fn reduce_rules() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            ("APPEND LENS x 0 10 4, 10 20 null, 20 25 1", "OK"),
            ("REDUCE LENS x 0 100 USING count", "VAL i3"),
            ("REDUCE LENS x 0 100 USING duration", "VAL i25"),
            ("REDUCE LENS x 0 100 USING sum", "VAL i5"),
            ("REDUCE LENS x 0 100 USING min", "VAL i1"),
            ("REDUCE LENS x 0 100 USING max", "VAL i4"),
            ("REDUCE LENS x 0 100 USING avg", "VAL f2.5"),
            ("REDUCE LENS x 0 100 USING twavg", "VAL f3"),
            ("REDUCE LENS x 0 100 USING integral", "VAL i45"),
            ("REDUCE LENS x 0 100 USING first", "VAL i4"),
            ("REDUCE LENS x 5 100 USING first", "VAL i4"),
            ("REDUCE LENS x 10 20 USING first", "VAL n"),
            ("REDUCE LENS x 10 20 USING sum", "VAL NIL"),
            ("REDUCE LENS x 10 20 USING count", "VAL i1"),
            ("REDUCE LENS x 0 100 USING last", "VAL i1"),
            ("REDUCE LENS x 200 300 USING count", "VAL i0"),
            ("REDUCE LENS x 200 300 USING duration", "VAL i0"),
            ("REDUCE LENS x 200 300 USING sum", "VAL NIL"),
            ("REDUCE LENS x 200 300 USING avg", "VAL NIL"),
            ("REDUCE LENS x 200 300 USING first", "VAL NIL"),
            ("REDUCE LENS x 200 300 USING integral", "VAL NIL"),
            (
                "REDUCE LENS x 300 200 USING count",
                "ERR invalid range (start >= end)",
            ),
            ("REDUCE LENS x 0 100 USNG count", "ERR parse error"),
            ("REDUCE LENS x 0 100 USING median", "ERR parse error"),
            ("CREATE LENS s str", "OK"),
            (
                "REDUCE LENS s 0 1 USING sum",
                "ERR type mismatch on s: expected int or float, got str",
            ),
            ("REDUCE LENS s 0 1 USING count", "VAL i0"),
            ("APPEND LENS s 0 1 \"a\"", "OK"),
            ("REDUCE LENS s 0 5 USING last", "VAL sa"),
            ("CREATE LENS f float", "OK"),
            ("APPEND LENS f 0 1 0.1, 1 3 0.2", "OK"),
            ("REDUCE LENS f 0 3 USING sum", "VAL f0.30000000000000004"),
            ("REDUCE LENS f 0 3 USING integral", "VAL f0.5"),
            ("REDUCE LENS f 0 3 USING twavg", "VAL f0.16666666666666666"),
            ("REDUCE LENS f 0 3 USING max", "VAL f0.2"),
            ("REDUCE LENS f 0 3 USING count", "VAL i2"),
            ("CREATE LENS big int", "OK"),
            ("APPEND LENS big 0 2 9223372036854775807", "OK"),
            (
                "REDUCE LENS big 0 2 USING integral",
                "ERR invalid expression: integer overflow",
            ),
            (
                "REDUCE LENS big 0 2 USING twavg",
                "VAL f9223372036854776000",
            ),
            ("APPEND LENS big 2 3 1", "OK"),
            (
                "REDUCE LENS big 0 3 USING sum",
                "ERR invalid expression: integer overflow",
            ),
            ("APPEND LENS big 3 4 -1", "OK"),
            ("REDUCE LENS big 0 4 USING sum", "VAL i9223372036854775807"),
        ],
    );
}

#[test]
fn expressions() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            ("CREATE LENS y int", "OK"),
            ("CREATE LENS z int", "OK"),
            ("CREATE LENS n int", "OK"),
            ("CREATE LENS s str", "OK"),
            ("APPEND LENS x 0 10 7", "OK"),
            ("APPEND LENS y 0 10 2, 10 20 0", "OK"),
            ("APPEND LENS z 0 10 0", "OK"),
            ("APPEND LENS n 0 10 null", "OK"),
            ("DERIVE LENS q AS x / y", "OK"),
            ("AT LENS q 5", "VAL i3"),
            ("AT LENS q 15", "VAL NIL"),
            ("RANGE LENS q 0 20", "RANGE 1; 0:10:i3"),
            ("DERIVE LENS q0 AS x / z", "OK"),
            ("AT LENS q0 5", "ERR invalid expression: division by zero"),
            ("RANGE LENS q0 0 20", "ERR invalid expression: division by zero"),
            ("REDUCE LENS q0 0 20 USING count", "ERR invalid expression: division by zero"),
            ("AT LENS q0 50", "VAL NIL"),
            ("DERIVE LENS m AS -7 % 2", "OK"),
            ("AT LENS m 123", "VAL i-1"),
            ("RANGE LENS m 0 5", "RANGE 1; 0:5:i-1"),
            ("DERIVE LENS m AS 7 % -2", "OK"),
            ("AT LENS m 0", "VAL i1"),
            ("DERIVE LENS m AS -7 / 2", "OK"),
            ("AT LENS m 0", "VAL i-3"),
            ("DERIVE LENS m AS -9223372036854775808 % -1", "OK"),
            ("AT LENS m 0", "VAL i0"),
            ("DERIVE LENS m AS -9223372036854775808 / -1", "OK"),
            ("AT LENS m 0", "ERR invalid expression: integer overflow"),
            ("DERIVE LENS m AS -(-9223372036854775808)", "OK"),
            ("AT LENS m 0", "ERR invalid expression: integer overflow"),
            ("DERIVE LENS m AS 9223372036854775807 + x", "OK"),
            ("AT LENS m 0", "ERR invalid expression: integer overflow"),
            ("AT LENS m 10", "VAL NIL"),
            ("DERIVE LENS m AS 7.5 % 2", "OK"),
            ("AT LENS m 0", "VAL f1.5"),
            ("DERIVE LENS m AS 7.0 / 0", "OK"),
            ("AT LENS m 0", "ERR invalid expression: division by zero"),
            ("DERIVE LENS m AS x -1", "OK"),
            ("AT LENS m 0", "VAL i6"),
            ("DERIVE LENS m AS x - 1 * 2", "OK"),
            ("AT LENS m 0", "VAL i5"),
            ("DERIVE LENS m AS (x - 1) * 2", "OK"),
            ("AT LENS m 0", "VAL i12"),
            ("DERIVE LENS m AS - x * 2", "OK"),
            ("AT LENS m 0", "VAL i-14"),
            ("DERIVE LENS m AS n + 1", "OK"),
            ("AT LENS m 5", "VAL n"),
            ("DERIVE LENS m AS n == n", "OK"),
            ("AT LENS m 5", "VAL n"),
            ("DERIVE LENS m AS n > 1 || true", "OK"),
            ("AT LENS m 5", "VAL n"),
            ("DERIVE LENS m AS n + y", "OK"),
            ("AT LENS m 15", "VAL NIL"),
            ("DERIVE LENS m AS null", "OK"),
            ("AT LENS m 15", "VAL n"),
            ("DERIVE LENS m AS null + 1.5", "OK"),
            ("REDUCE LENS m 0 10 USING sum", "VAL NIL"),
            ("DERIVE LENS m AS x > 6.5 && 1 == 1.0 && \"a\" < \"b\" && 0x01 < 0x0100 && true > false", "OK"),
            ("AT LENS m 0", "VAL b1"),
            ("DERIVE LENS m AS !(x != 7)", "OK"),
            ("AT LENS m 0", "VAL b1"),
            ("DERIVE LENS m AS 1 < 2 < true", "OK"),
            ("AT LENS m 0", "VAL b0"),
            ("DERIVE LENS bad AS x + \"a\"", "ERR invalid expression: operator + needs int or float operands, got int and str"),
            ("DERIVE LENS bad AS x && true", "ERR invalid expression: operator && needs bool operands, got int and bool"),
            ("DERIVE LENS bad AS x == \"a\"", "ERR invalid expression: operator == cannot compare int and str"),
            ("DERIVE LENS bad AS !x", "ERR invalid expression: operator ! needs a bool operand, got int"),
            ("DERIVE LENS bad AS -s", "ERR invalid expression: operator - needs an int or float operand, got str"),
            ("DERIVE LENS bad AS s < 1", "ERR invalid expression: operator < cannot compare str and int"),
            ("DERIVE LENS bad AS x +", "ERR parse error"),
            ("DERIVE LENS bad AS foo(x, 0, 1)", "ERR parse error"),
            ("DERIVE LENS bad AS sum(1, 0, 1)", "ERR parse error"),
            ("DERIVE LENS bad AS x = 1", "ERR parse error"),
            ("SHOW LENSES", "NAMES 8; m; n; q; q0; s; x; y; z"),
        ],
    );
}

#[test]
fn rolling_windows() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            ("CREATE LENS s str", "OK"),
            ("APPEND LENS x 0 10 1, 10 20 2", "OK"),
            ("DERIVE LENS r AS sum(x, -10, 0)", "OK"),
            // Boundaries p.start-b+1 and p.end-a (SEMANTICS); a segment carries its start value.
            ("RANGE LENS r 0 30", "RANGE 3; 1:11:i1; 11:20:i3; 20:30:i2"),
            ("AT LENS r 15", "VAL i3"),
            ("AT LENS r 0", "VAL NIL"),
            ("DERIVE LENS c AS count(x, -10, 0)", "OK"),
            (
                "RANGE LENS c 0 30",
                "RANGE 4; 0:1:i0; 1:11:i1; 11:20:i2; 20:30:i1",
            ),
            ("AT LENS c 15", "VAL i2"),
            ("AT LENS c -100", "VAL i0"),
            ("DERIVE LENS t AS twavg(x, -10, 0)", "OK"),
            ("AT LENS t 15", "VAL f1.5"),
            ("DERIVE LENS du AS duration(x, -10, 0)", "OK"),
            ("AT LENS du 5", "VAL i5"),
            ("RANGE LENS du 0 30", "RANGE 3; 0:1:i0; 1:11:i1; 11:30:i10"),
            ("DERIVE LENS fw AS first(x, 0, 100)", "OK"),
            ("RANGE LENS fw 0 20", "RANGE 2; 0:10:i1; 10:20:i2"),
            ("DERIVE LENS mx AS max(x, -5, 5)", "OK"),
            ("AT LENS mx 12", "VAL i2"),
            ("AT LENS mx 7", "VAL i2"),
            ("AT LENS mx 4", "VAL i1"),
            ("DERIVE LENS av AS avg(x, -100, 100) + count(x, 0, 1)", "OK"),
            ("AT LENS av 5", "VAL f2.5"),
            (
                "DERIVE LENS bad AS sum(x, 0, 0)",
                "ERR invalid expression: sum window start must be less than its end",
            ),
            ("DERIVE LENS bad AS sum(x, 0, 1.5)", "ERR parse error"),
            ("DERIVE LENS bad AS sum(x, 0, 1 + 1)", "ERR parse error"),
            ("DERIVE LENS bad AS sum(x, nope, 1)", "ERR parse error"),
            (
                "DERIVE LENS bad AS sum(s, 0, 1)",
                "ERR invalid expression: sum needs an int or float lens, got str",
            ),
            ("DERIVE LENS ok AS first(s, 0, 1) == \"a\"", "OK"),
            ("DERIVE LENS ok2 AS SUM(x, 0, 1) + Count(s, 0, 1)", "OK"),
            ("AT LENS ok2 0", "VAL i1"),
        ],
    );
}

#[test]
fn where_splits_and_merges() {
    let mut o = db_oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE LENS x int", "OK"),
            ("CREATE LENS y int", "OK"),
            ("CREATE LENS x2 int", "OK"),
            ("APPEND LENS x 0 100 1", "OK"),
            ("APPEND LENS y 0 30 5, 30 60 0, 60 90 7", "OK"),
            ("APPEND LENS x2 0 50 1, 50 100 1", "OK"),
            (
                "RANGE LENS x 0 100 WHERE y > 1",
                "RANGE 2; 0:30:i1; 60:90:i1",
            ),
            ("RANGE LENS x 0 100 WHERE y >= 0", "RANGE 1; 0:90:i1"),
            (
                "RANGE LENS x 0 100 WHERE y > 1 LIMIT 1 OFFSET 1",
                "RANGE 1; 60:90:i1",
            ),
            (
                "RANGE LENS x 0 100 WHERE y > 1 OFFSET 1",
                "RANGE 1; 60:90:i1",
            ),
            (
                "RANGE LENS x 0 100 WHERE x",
                "ERR invalid expression: WHERE needs a bool expression, got int",
            ),
            (
                "RANGE LENS x 0 100 WHERE nope > 1",
                "ERR unknown lens: nope",
            ),
            ("RANGE LENS x 0 100 WHERE true", "RANGE 1; 0:100:i1"),
            ("RANGE LENS x 0 100 WHERE null", "RANGE 0"),
            (
                "RANGE LENS x2 0 100 WHERE true",
                "RANGE 2; 0:50:i1; 50:100:i1",
            ),
            (
                "RANGE LENS x2 0 100 WHERE y != 0",
                "RANGE 2; 0:30:i1; 60:90:i1",
            ),
            (
                "RANGE LENS x2 0 100 WHERE y >= 0",
                "RANGE 2; 0:50:i1; 50:90:i1",
            ),
            (
                "RANGE LENS x 0 100 WHERE count(y, 0, 1) == 1",
                "RANGE 1; 0:90:i1",
            ),
            ("RANGE LENS x 0 100 LAYER 1 WHERE y > 1", "RANGE 0"),
            ("RANGE LENS x 0 100 LAYER 1 WHERE true", "RANGE 1; 0:100:i1"),
            (
                "RANGE LENS x 0 100 LAYER 2 WHERE true",
                "ERR unknown layer: 2",
            ),
            ("DERIVE LENS dx AS x * 2", "OK"),
            (
                "RANGE LENS dx 0 100 WHERE y > 1",
                "RANGE 2; 0:30:i2; 60:90:i2",
            ),
            (
                "RANGE LENS dx 0 100 LAYER 1",
                "ERR invalid expression: LAYER needs a base lens",
            ),
        ],
    );
}

fn run(o: &mut Oracle, conn: u64, now: i64, stmt: &str) -> String {
    o.execute(conn, now, stmt.as_bytes()).unwrap().line
}

#[test]
fn transactions() {
    let mut o = db_oracle();
    o.connect(2);
    let steps: &[(u64, i64, &str, &str)] = &[
        (1, 10, "CREATE LENS x int", "OK"),
        (1, 10, "START TRANSACTION", "OK"),
        (1, 10, "start transaction", "ERR transaction already active"),
        (1, 10, "APPEND LENS x 0 10 1", "OK"),
        (1, 10, "CREATE LENS y int", "OK"),
        (1, 10, "APPEND LENS y 0 5 true", "ERR type mismatch on y: expected int, got bool"),
        (1, 10, "APPEND LENS y 0 5 2", "OK"),
        (1, 10, "CREATE LENS y int", "ERR duplicate lens: y"),
        (1, 10, "APPEND LENS nope 0 5 2", "ERR unknown lens: nope"),
        (1, 10, "AT LENS x 5", "VAL NIL"),
        (1, 10, "AT LENS y 0", "ERR unknown lens: y"),
        (1, 10, "CREATE DATABASE e", "ERR invalid in transaction: CREATE DATABASE"),
        (1, 10, "DROP DATABASE d", "ERR invalid in transaction: DROP DATABASE"),
        (1, 10, "CREATE USER u PASSWORD \"p\"", "ERR invalid in transaction: CREATE USER"),
        (1, 10, "DROP USER u", "ERR invalid in transaction: DROP USER"),
        (1, 10, "GRANT R ON d TO u", "ERR invalid in transaction: GRANT"),
        (1, 10, "REVOKE R ON d FROM u", "ERR invalid in transaction: REVOKE"),
        (1, 10, "SHOW STATUS", "STATUS 7; auth:off; connections:2; database:d; databases:1; transaction:on; version:0.1.0; written_at:0"),
        (2, 20, "AT LENS x 5", "ERR no active database"),
        (2, 20, "USE DATABASE d", "OK"),
        (2, 20, "AT LENS x 5", "VAL NIL"),
        (2, 4000, "APPEND LENS x 100 200 9", "OK"),
        (1, 3000, "COMMIT", "OK"),
        (1, 3000, "HISTORY LENS x", "LAYERS 2; 1:4000:100:200; 2:4000:0:10"),
        (1, 3000, "HISTORY LENS y", "LAYERS 1; 3:4000:0:5"),
        (2, 3000, "AT LENS y 1", "VAL i2"),
        (1, 5000, "COMMIT", "ERR no active transaction"),
        (1, 5000, "ROLLBACK", "ERR no active transaction"),
        (1, 5000, "START TRANSACTION", "OK"),
        (1, 5000, "COMMIT", "OK"),
        (1, 5000, "START TRANSACTION", "OK"),
        (1, 5000, "APPEND LENS x 300 400 1", "OK"),
        (1, 5000, "ROLLBACK", "OK"),
        (1, 5000, "AT LENS x 300", "VAL NIL"),
        (1, 5000, "START TRANSACTION", "OK"),
        (1, 5000, "APPEND LENS x 300 400 1", "OK"),
        (1, 5000, "DERIVE LENS dy AS y + 1", "OK"),
        (1, 5000, "COMPACT LENS x", "OK"),
        (2, 5000, "DROP LENS x", "OK"),
        (1, 6000, "COMMIT", "ERR unknown lens: x"),
        (1, 6000, "COMMIT", "ERR no active transaction"),
        (1, 6000, "SHOW LENSES", "NAMES 1; y"),
        (1, 6000, "CREATE LENS x int", "OK"),
        (1, 6000, "APPEND LENS x 0 1 1", "OK"),
        (1, 6000, "HISTORY LENS x", "LAYERS 1; 4:6000:0:1"),
        (1, 6000, "START TRANSACTION", "OK"),
        (1, 6000, "DROP LENS y", "OK"),
        (1, 6000, "APPEND LENS y 0 1 1", "ERR unknown lens: y"),
        (1, 6000, "CREATE LENS y str", "OK"),
        (1, 6000, "APPEND LENS y 0 1 \"s\"", "OK"),
        (1, 6000, "CREATE DATABASE other", "ERR invalid in transaction: CREATE DATABASE"),
        (1, 7000, "COMMIT", "OK"),
        (1, 7000, "AT LENS y 0", "VAL ss"),
        (1, 7000, "HISTORY LENS y", "LAYERS 1; 5:7000:0:1"),
        (1, 7000, "START TRANSACTION", "OK"),
        (1, 7000, "CREATE LENS z int", "OK"),
    ];
    for (conn, now, stmt, want) in steps {
        assert_eq!(run(&mut o, *conn, *now, stmt), *want, "{stmt}");
    }
    o.disconnect(1);
    o.connect(1);
    assert_eq!(run(&mut o, 1, 8000, "USE DATABASE d"), "OK");
    assert_eq!(run(&mut o, 1, 8000, "SHOW LENSES"), "NAMES 2; x; y");
    assert_eq!(run(&mut o, 1, 8000, "COMMIT"), "ERR no active transaction");
    // A transaction across databases, with USE inside it.
    let steps: &[(&str, &str)] = &[
        ("CREATE DATABASE e", "OK"),
        ("START TRANSACTION", "OK"),
        ("CREATE LENS a int", "OK"),
        ("USE DATABASE e", "OK"),
        ("CREATE LENS a int", "OK"),
        ("APPEND LENS a 0 1 1", "OK"),
        ("USE DATABASE d", "OK"),
        ("APPEND LENS a 0 1 2", "OK"),
        ("COMMIT", "OK"),
        ("HISTORY LENS a", "LAYERS 1; 6:9000:0:1"),
        ("USE DATABASE e", "OK"),
        ("HISTORY LENS a", "LAYERS 1; 1:9000:0:1"),
        ("QUIT", "OK BYE"),
    ];
    for (stmt, want) in steps {
        assert_eq!(run(&mut o, 1, 9000, stmt), *want, "{stmt}");
    }
}

fn auth_oracle() -> Oracle {
    Oracle::new(OracleConfig {
        auth: true,
        users: vec![("admin".to_string(), "secret".to_string())],
        import_dir: None,
        files: BTreeMap::new(),
    })
}

#[test]
fn authentication() {
    let mut o = auth_oracle();
    let r = o.execute(1, 0, b"SHOW DATABASES").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication required", true)
    );
    let r = o.execute(2, 0, b"AUTH admin wrong").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication failed", true)
    );
    let r = o.execute(3, 0, b"AUTH nobody secret").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication failed", true)
    );
    let r = o.execute(4, 0, b"QUIT").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication required", true)
    );
    assert_eq!(run(&mut o, 5, 0, "auth admin \"secret\""), "OK");
    assert!(run(&mut o, 5, 0, "AUTH").starts_with("ERR parse error"));
    assert_eq!(
        run(&mut o, 5, 0, "AUTH admin secret"),
        "ERR already authenticated"
    );
    let r = o.execute(5, 0, b"exit").unwrap();
    assert_eq!((r.line.as_str(), r.close), ("OK BYE", true));
    // Bare-word passwords may hold any non-blank character.
    assert_eq!(run(&mut o, 6, 0, "AUTH admin secret"), "OK");
    assert_eq!(
        run(&mut o, 6, 0, "CREATE USER eve PASSWORD \"p@ss w\\\"rd\""),
        "OK"
    );
    assert_eq!(run(&mut o, 7, 0, "AUTH eve \"p@ss w\\\"rd\""), "OK");
    assert_eq!(
        run(&mut o, 8, 0, "AUTH eve p@ss"),
        "ERR authentication failed"
    );
    let r = o.execute(9, 0, b"AUTH eve p@ss w").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication required", true)
    );
    // With authentication off, AUTH is accepted unchecked.
    let mut off = oracle();
    assert_eq!(run(&mut off, 1, 0, "AUTH whoever whatever"), "OK");
    assert_eq!(run(&mut off, 1, 0, "AUTH whoever whatever"), "OK");
}

#[test]
fn grants_and_permissions() {
    let mut o = auth_oracle();
    let steps: &[(u64, &str, &str)] = &[
        (1, "AUTH admin secret", "OK"),
        (1, "CREATE DATABASE d", "OK"),
        (1, "CREATE DATABASE d", "ERR duplicate database: d"),
        (1, "CREATE USER bob PASSWORD \"pw\"", "OK"),
        (1, "CREATE USER bob PASSWORD \"x\"", "ERR duplicate user: bob"),
        (2, "AUTH bob pw", "OK"),
        (2, "SHOW DATABASES", "NAMES 1; d"),
        (2, "SHOW LENSES", "ERR no active database"),
        (2, "USE DATABASE d", "OK"),
        (2, "SHOW LENSES", "ERR permission denied: bob lacks R on d"),
        (2, "CREATE DATABASE e", "ERR permission denied: bob lacks A on *"),
        (2, "CREATE LENS x int", "ERR permission denied: bob lacks C on d"),
        (2, "DROP DATABASE nope", "ERR unknown database: nope"),
        (2, "DROP DATABASE d", "ERR permission denied: bob lacks A on d"),
        (2, "SHOW STATUS", "STATUS 7; auth:on; connections:2; database:d; databases:1; transaction:off; version:0.1.0; written_at:0"),
        (1, "GRANT r c ON d TO bob", "OK"),
        (1, "SHOW GRANTS", "GRANTS 2; admin *:A; bob d:CR"),
        (2, "CREATE LENS x int", "OK"),
        (2, "APPEND LENS x 0 1 1", "ERR permission denied: bob lacks U on d"),
        (2, "APPEND LENS y 0 1 1", "ERR unknown lens: y"),
        (2, "APPEND LENS x 1 0 1", "ERR permission denied: bob lacks U on d"),
        (2, "COMPACT LENS x", "ERR permission denied: bob lacks U on d"),
        (2, "AT LENS x 0", "VAL NIL"),
        (2, "SHOW GRANTS", "ERR permission denied: bob lacks A on *"),
        (2, "SHOW GRANTS bob", "GRANTS 1; bob d:CR"),
        (2, "SHOW GRANTS admin", "ERR permission denied: bob lacks A on *"),
        (2, "SHOW GRANTS nobody", "ERR unknown user: nobody"),
        (2, "SHOW USERS", "ERR permission denied: bob lacks A on *"),
        (2, "DROP LENS x", "ERR permission denied: bob lacks D on d"),
        (2, "DROP LENS nope", "ERR unknown lens: nope"),
        (2, "GRANT U ON d TO bob", "ERR permission denied: bob lacks A on d"),
        (2, "GRANT U ON * TO bob", "ERR permission denied: bob lacks A on *"),
        (2, "START TRANSACTION", "OK"),
        (2, "APPEND LENS x 0 1 1", "ERR permission denied: bob lacks U on d"),
        (2, "ROLLBACK", "OK"),
        (1, "GRANT U ON * TO bob", "OK"),
        (2, "APPEND LENS x 0 1 1", "OK"),
        (1, "REVOKE C R ON d FROM bob", "OK"),
        (1, "SHOW GRANTS bob", "GRANTS 1; bob *:U"),
        (2, "AT LENS x 0", "ERR permission denied: bob lacks R on d"),
        (1, "REVOKE A ON d FROM bob", "OK"),
        (1, "GRANT * ON d TO bob", "OK"),
        (1, "SHOW GRANTS bob", "GRANTS 1; bob *:U d:CRUDA"),
        (2, "START TRANSACTION", "OK"),
        (2, "APPEND LENS x 1 2 2", "OK"),
        (1, "REVOKE U ON d FROM bob", "OK"),
        (1, "REVOKE U ON * FROM bob", "OK"),
        (2, "COMMIT", "ERR permission denied: bob lacks U on d"),
        (2, "DROP DATABASE d", "OK"),
        (1, "SHOW GRANTS", "GRANTS 2; admin *:A; bob"),
        (2, "AT LENS x 0", "ERR unknown database: d"),
        (1, "GRANT R ON nodb TO bob", "ERR unknown database: nodb"),
        (1, "GRANT R ON * TO nobody", "ERR unknown user: nobody"),
        (1, "GRANT R X ON * TO bob", "ERR parse error"),
        (1, "GRANT ON * TO bob", "ERR parse error"),
        (1, "GRANT RUD ON * TO bob", "OK"),
        (1, "SHOW GRANTS bob", "GRANTS 1; bob *:RUD"),
        (1, "DROP USER nobody", "ERR unknown user: nobody"),
        (1, "DROP USER bob", "OK"),
        (1, "SHOW USERS", "NAMES 1; admin"),
        (3, "AUTH bob pw", "ERR authentication failed"),
    ];
    for (conn, stmt, want) in steps {
        let got = run(&mut o, *conn, 0, stmt);
        if want.starts_with("ERR parse error") {
            assert!(got.starts_with(want), "{stmt}: {got}");
        } else {
            assert_eq!(got, *want, "{stmt}");
        }
    }
}

#[test]
fn catalog() {
    let mut o = db_oracle();
    o.connect(2);
    let steps: &[(u64, &str, &str)] = &[
        (1, "DROP DATABASE nope", "ERR unknown database: nope"),
        (1, "USE DATABASE nope", "ERR unknown database: nope"),
        (1, "CREATE DATABASE B", "OK"),
        (1, "CREATE DATABASE _a", "OK"),
        (1, "SHOW DATABASES", "NAMES 3; B; _a; d"),
        (2, "SHOW STATUS", "STATUS 7; auth:off; connections:2; database:-; databases:3; transaction:off; version:0.1.0; written_at:0"),
        (2, "USE DATABASE d", "OK"),
        (1, "CREATE LENS x int", "OK"),
        (1, "CREATE LENS x str", "ERR duplicate lens: x"),
        (1, "DERIVE LENS x AS 1", "ERR duplicate lens: x"),
        (1, "DERIVE LENS a AS nope + 1", "ERR unknown lens: nope"),
        (1, "DERIVE LENS a AS a + 1", "ERR unknown lens: a"),
        (1, "DERIVE LENS a AS x", "OK"),
        (1, "CREATE LENS a int", "ERR duplicate lens: a"),
        (1, "DERIVE LENS b AS a + 1", "OK"),
        (1, "DERIVE LENS a AS b", "ERR cycle detected in derived lens: a"),
        (1, "DERIVE LENS a AS sum(b, 0, 1)", "ERR cycle detected in derived lens: a"),
        (1, "CREATE LENS s str", "OK"),
        (1, "DERIVE LENS a AS s", "ERR invalid expression: operator + needs int or float operands, got str and int"),
        (1, "DERIVE LENS a AS x * 2.5", "OK"),
        (1, "APPEND LENS x 0 10 2", "OK"),
        (1, "AT LENS b 0", "VAL f6"),
        (1, "DROP LENS x", "ERR lens x is used by derived lens a"),
        (1, "DERIVE LENS c AS x", "OK"),
        (1, "DROP LENS x", "ERR lens x is used by derived lens a"),
        (1, "DROP LENS a", "ERR lens a is used by derived lens b"),
        (1, "DROP LENS b", "OK"),
        (1, "DROP LENS a", "OK"),
        (1, "DROP LENS c", "OK"),
        (1, "DROP LENS x", "OK"),
        (1, "DROP LENS x", "ERR unknown lens: x"),
        (1, "CREATE LENS x str", "OK"),
        (1, "AT LENS x 0", "VAL NIL"),
        (1, "APPEND LENS x 0 1 \"v\"", "OK"),
        (1, "HISTORY LENS x", "LAYERS 1; 2:0:0:1"),
        (2, "AT LENS x 0", "VAL sv"),
        (1, "DROP DATABASE d", "OK"),
        (2, "AT LENS x 0", "ERR unknown database: d"),
        (2, "SHOW LENSES", "ERR unknown database: d"),
        (2, "CREATE LENS y int", "ERR unknown database: d"),
        (2, "SHOW STATUS", "STATUS 7; auth:off; connections:2; database:d; databases:2; transaction:off; version:0.1.0; written_at:0"),
        (1, "CREATE DATABASE d", "OK"),
        (2, "SHOW LENSES", "NAMES 0"),
        (2, "CREATE LENS y int", "OK"),
        (2, "APPEND LENS y 0 1 1", "OK"),
        (2, "HISTORY LENS y", "LAYERS 1; 1:0:0:1"),
        (1, "AT LENS y 0", "VAL i1"),
        (1, "USE DATABASE d", "OK"),
        (1, "AT LENS y 0", "VAL i1"),
        (1, "SHOW USERS", "NAMES 0"),
        (1, "SHOW GRANTS", "GRANTS 0"),
        (1, "SHOW GRANTS bob", "ERR unknown user: bob"),
    ];
    for (conn, stmt, want) in steps {
        assert_eq!(run(&mut o, *conn, 0, stmt), *want, "{stmt}");
    }
}

#[test]
fn copy_from_import_dir() {
    let mut files = BTreeMap::new();
    let mut add = |p: &str, c: &str| files.insert(p.to_string(), c.as_bytes().to_vec());
    add(
        "/import/a.csv",
        "# comment\n0,10,1\n\n  \n10,20, 2\r\n20,30,null\n",
    );
    add(
        "/import/s.csv",
        "0,1,hello world\n1,2,\"quoted, \"\"x\"\"\"\n2,3,null\n3,4,\"a\rb\"\r\n4,5,tail\r\n",
    );
    add("/import/bad.csv", "0,10,1\n5,3,2\n");
    add("/import/ov.csv", "0,10,1\n5,15,2\n");
    add("/import/badval.csv", "0,1,1\n1,2,abc\n");
    add("/import/fields.csv", "0,1,1,2\n");
    add("/import/t.csv", "0,1,1.5\n");
    add("/import/multi.csv", "0,1,\"a\nb\"\n1,0,c\n");
    add("/import/late.csv", "5,1,1\n0,1,zzz\n");
    add("/import/empty.csv", "# nothing\n\n");
    add("/import/sub/f.csv", "0,1,1\n");
    add("/import/cut.csv", "0,10,1\n10,20,137");
    add("/import/cut_bad.csv", "0,10,x\n10,20,137");
    files.insert("/import/bin.csv".to_string(), vec![0xff, b'\n']);
    let mut o = Oracle::new(OracleConfig {
        auth: false,
        users: vec![],
        import_dir: Some("/import".to_string()),
        files,
    });
    let outside = "ERR permission denied: path outside the import directory";
    script(
        &mut o,
        1,
        &[
            ("CREATE DATABASE d", "OK"),
            ("USE DATABASE d", "OK"),
            ("CREATE LENS x int", "OK"),
            ("CREATE LENS s str", "OK"),
            ("COPY LENS x FROM \"a.csv\"", "OK"),
            ("RANGE LENS x 0 30", "RANGE 3; 0:10:i1; 10:20:i2; 20:30:n"),
            ("COPY LENS x FROM \"/import/a.csv\"", "OK"),
            ("COPY LENS x FROM \"sub/f.csv\"", "OK"),
            (
                "HISTORY LENS x",
                "LAYERS 3; 1:5000:0:30; 2:7000:0:30; 3:8000:0:1",
            ),
            ("COPY LENS x FROM \"../etc/passwd\"", outside),
            ("COPY LENS x FROM \"/etc/passwd\"", outside),
            ("COPY LENS x FROM \"/importx/a.csv\"", outside),
            ("COPY LENS x FROM \"./a.csv\"", outside),
            ("COPY LENS x FROM \"sub//f.csv\"", outside),
            ("COPY LENS x FROM \"sub/../a.csv\"", outside),
            ("COPY LENS x FROM \"\"", outside),
            (
                "COPY LENS x FROM \"missing.csv\"",
                "ERR cannot read missing.csv: No such file or directory (os error 2)",
            ),
            (
                "COPY LENS x FROM \"sub\"",
                "ERR cannot read sub: Is a directory (os error 21)",
            ),
            (
                "COPY LENS x FROM \"bin.csv\"",
                "ERR cannot read bin.csv: stream did not contain valid UTF-8",
            ),
            (
                "COPY LENS x FROM \"bad.csv\"",
                "ERR line 2: invalid range (start >= end)",
            ),
            (
                "COPY LENS x FROM \"ov.csv\"",
                "ERR overlapping intervals in one write",
            ),
            (
                "COPY LENS x FROM \"badval.csv\"",
                "ERR line 2: invalid value",
            ),
            (
                "COPY LENS x FROM \"fields.csv\"",
                "ERR line 1: expected 3 fields, found 4",
            ),
            (
                "COPY LENS x FROM \"t.csv\"",
                "ERR line 1: type mismatch on x: expected int, got float",
            ),
            (
                "COPY LENS x FROM \"multi.csv\"",
                "ERR line 1: unterminated quoted field",
            ),
            (
                "COPY LENS s FROM \"multi.csv\"",
                "ERR line 1: unterminated quoted field",
            ),
            (
                "COPY LENS x FROM \"late.csv\"",
                "ERR line 1: invalid range (start >= end)",
            ),
            ("COPY LENS x FROM \"empty.csv\"", "OK"),
            ("COPY LENS s FROM \"s.csv\"", "OK"),
            (
                "RANGE LENS s 0 5",
                "RANGE 5; 0:1:shello%20world; 1:2:squoted,%20\"x\"; 2:3:n; 3:4:sa%0Db; 4:5:stail",
            ),
            ("COPY LENS nope FROM \"a.csv\"", "ERR unknown lens: nope"),
            ("DERIVE LENS dx AS x", "OK"),
            (
                "COPY LENS dx FROM \"a.csv\"",
                "ERR invalid expression: COPY needs a base lens",
            ),
            (
                "HISTORY LENS x",
                "LAYERS 3; 1:5000:0:30; 2:7000:0:30; 3:8000:0:1",
            ),
            ("COPY LENS x FROM a.csv", "ERR parse error"),
        ],
    );
    // A last line without its newline may be cut short: refused (earlier bad lines first).
    assert_eq!(
        run(&mut o, 1, 0, "COPY LENS x FROM \"cut.csv\""),
        "ERR line 2: no newline at the end of the file (cut short?)"
    );
    assert_eq!(
        run(&mut o, 1, 0, "COPY LENS x FROM \"cut_bad.csv\""),
        "ERR line 1: invalid value"
    );
    let mut o = oracle();
    script(
        &mut o,
        1,
        &[
            ("CREATE DATABASE d", "OK"),
            ("USE DATABASE d", "OK"),
            ("CREATE LENS x int", "OK"),
            (
                "COPY LENS x FROM \"a.csv\"",
                "ERR permission denied: COPY is disabled (no import directory)",
            ),
        ],
    );
}

/// ~600 mixed statements must run quickly (the simulator runs many such scripts).
#[test]
fn many_statements_run_fast() {
    let mut o = db_oracle();
    let mut seed: u64 = 42;
    let mut rnd = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for l in ["a", "b", "c"] {
        run(&mut o, 1, 0, &format!("CREATE LENS {l} int"));
    }
    run(
        &mut o,
        1,
        0,
        "DERIVE LENS s AS sum(a, -50, 0) + count(b, 0, 30)",
    );
    run(&mut o, 1, 0, "DERIVE LENS t AS twavg(s, -20, 20) * 2");
    let start = std::time::Instant::now();
    for i in 0..600 {
        let lens = ["a", "b", "c"][rnd(3) as usize];
        let stmt = match rnd(4) {
            0 | 1 => {
                let mut parts = Vec::new();
                let mut at = rnd(1000) as i64;
                for _ in 0..(1 + rnd(8)) {
                    let len = 1 + rnd(40) as i64;
                    parts.push(format!("{} {} {}", at, at + len, rnd(100)));
                    at += len + rnd(5) as i64;
                }
                format!("APPEND LENS {lens} {}", parts.join(", "))
            }
            2 => format!("RANGE LENS t {} {} WHERE c > 50", rnd(500), 500 + rnd(600)),
            _ => format!("REDUCE LENS s {} {} USING twavg", rnd(500), 500 + rnd(600)),
        };
        let r = run(&mut o, 1, i, &stmt);
        assert!(!r.starts_with("ERR parse"), "{stmt}: {r}");
    }
    assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
    eprintln!("600 statements: {:?}", start.elapsed());
}

/// Run `(conn, stmt, exact reply)` steps at time 0.
fn exact(o: &mut Oracle, steps: &[(u64, &str, &str)]) {
    for (conn, stmt, want) in steps {
        assert_eq!(run(o, *conn, 0, stmt), *want, "{stmt}");
    }
}

/// Rule 1: the extra boundaries of a rolling `f(x, a, b)` are `p.start - b + 1` and
/// `p.end - a` for the pieces p of x over `[s+a, e+b)`.
#[test]
fn rolling_window_boundaries() {
    let mut o = db_oracle();
    exact(
        &mut o,
        &[
            (1, "CREATE LENS x int", "OK"),
            (1, "APPEND LENS x 0 10 1, 10 20 2", "OK"),
            (1, "DERIVE LENS roll AS sum(x, -5, 0)", "OK"),
            (
                1,
                "RANGE LENS roll 0 30",
                "RANGE 3; 1:11:i1; 11:15:i3; 15:25:i2",
            ),
            (1, "AT LENS roll 0", "VAL NIL"),
            (1, "AT LENS roll 1", "VAL i1"),
            (1, "AT LENS roll 10", "VAL i1"),
            (1, "AT LENS roll 11", "VAL i3"),
            (1, "AT LENS roll 14", "VAL i3"),
            (1, "AT LENS roll 15", "VAL i2"),
            (1, "AT LENS roll 24", "VAL i2"),
            (1, "AT LENS roll 25", "VAL NIL"),
            (1, "RANGE LENS roll 5 12", "RANGE 2; 5:11:i1; 11:12:i3"),
            (1, "REDUCE LENS roll 0 30 USING count", "VAL i3"),
            (1, "DERIVE LENS fwd AS count(x, 3, 8)", "OK"),
            (
                1,
                "RANGE LENS fwd -20 30",
                "RANGE 5; -20:-7:i0; -7:3:i1; 3:7:i2; 7:17:i1; 17:30:i0",
            ),
            (1, "AT LENS fwd -8", "VAL i0"),
            (1, "AT LENS fwd -7", "VAL i1"),
            (1, "AT LENS fwd 3", "VAL i2"),
            (1, "AT LENS fwd 17", "VAL i0"),
            (
                1,
                "RANGE LENS x 0 20 WHERE sum(x, -5, 0) > 2",
                "RANGE 1; 11:15:i2",
            ),
        ],
    );
}

/// Rule 2: before a successful AUTH every non-blank line other than a well-formed AUTH is
/// `ERR authentication required` and closes.
#[test]
fn only_auth_before_auth() {
    let mut o = auth_oracle();
    let lines: [&[u8]; 11] = [
        b"FROB",
        b"AT LENS \xff 0",
        b"\xff",
        b"AUTH",
        b"auth admin",
        b"AUTH admin secret extra",
        b"AUTH 1 secret",
        b"AUTH admin \"secret",
        b"QUIT",
        b"exit",
        b"SHOW STATUS",
    ];
    for (i, line) in lines.iter().enumerate() {
        let r = o.execute(10 + i as u64, 0, line).unwrap();
        let want = ("ERR authentication required", true);
        assert_eq!((r.line.as_str(), r.close), want, "{:?}", line);
    }
    assert_eq!(o.execute(30, 0, b" \t"), None);
    assert_eq!(o.execute(30, 0, b""), None);
    let r = o.execute(30, 0, b"AUTH admin wrong").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR authentication failed", true)
    );
    let r = o.execute(31, 0, b"  AUTH admin secret  ").unwrap();
    assert_eq!((r.line.as_str(), r.close), ("OK", false));
    let r = o.execute(31, 0, b"FROB").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        (
            "ERR parse error at column 0: expected a statement, found \"FROB\"",
            false
        )
    );
    let r = o.execute(31, 0, b"AUTH").unwrap();
    assert_eq!(
        (r.line.as_str(), r.close),
        ("ERR parse error at column 4: expected a user name", false)
    );
    let r = o.execute(31, 0, b"QUIT").unwrap();
    assert_eq!((r.line.as_str(), r.close), ("OK BYE", true));
    // Authentication off: parse errors stay ordinary and never close.
    let mut off = oracle();
    let r = off.execute(1, 0, b"FROB").unwrap();
    assert!(r.line.starts_with("ERR parse error") && !r.close);
}

/// Rule 3: `-` before a digit is a sign only where an operand is expected.
#[test]
fn minus_sign_is_context_sensitive() {
    let mut o = db_oracle();
    exact(
        &mut o,
        &[
            (1, "CREATE LENS a int", "OK"),
            (1, "CREATE LENS b int", "OK"),
            (1, "APPEND LENS a 0 10 7", "OK"),
            (1, "APPEND LENS b 0 10 -3", "OK"),
            (1, "AT LENS b 0", "VAL i-3"),
            (1, "DERIVE LENS d AS a -1", "OK"),
            (1, "AT LENS d 0", "VAL i6"),
            (1, "DERIVE LENS d AS a-1", "OK"),
            (1, "AT LENS d 0", "VAL i6"),
            (1, "DERIVE LENS d AS a -5 < -b", "OK"),
            (1, "AT LENS d 0", "VAL b1"),
            (1, "DERIVE LENS d AS a -1 * 2", "OK"),
            (1, "AT LENS d 0", "VAL i5"),
            (1, "DERIVE LENS d AS a -1.5", "OK"),
            (1, "AT LENS d 0", "VAL f5.5"),
            (1, "DERIVE LENS d AS (a)-1", "OK"),
            (1, "AT LENS d 0", "VAL i6"),
            (1, "DERIVE LENS d AS -1 -1", "OK"),
            (1, "AT LENS d 0", "VAL i-2"),
            (1, "DERIVE LENS d AS -1 - -1", "OK"),
            (1, "AT LENS d 0", "VAL i0"),
            (1, "DERIVE LENS d AS 2*-1", "OK"),
            (1, "AT LENS d 0", "VAL i-2"),
            (1, "DERIVE LENS d AS sum(a, -5, 0) -1", "OK"),
            (1, "AT LENS d 5", "VAL i6"),
            (1, "DERIVE LENS d AS a - -9223372036854775808", "OK"),
            (1, "AT LENS d 0", "ERR invalid expression: integer overflow"),
            (
                1,
                "DERIVE LENS d AS a -9223372036854775808",
                "ERR parse error at column 20: integer out of range",
            ),
            (1, "RANGE LENS a -5 5", "RANGE 1; 0:5:i7"),
            (1, "RANGE LENS a 0 10 WHERE a -7 == 0", "RANGE 1; 0:10:i7"),
            (1, "AT LENS a -1", "VAL NIL"),
            (
                1,
                "APPEND LENS a 20 30 5 -3",
                "ERR parse error at column 22: expected end of line, found \"-3\"",
            ),
        ],
    );
}

/// Rule 4: rolling window bounds are int literals in the syntax.
#[test]
fn rolling_bounds_are_int_literals() {
    let mut o = db_oracle();
    exact(
        &mut o,
        &[
            (1, "CREATE LENS x int", "OK"),
            (1, "APPEND LENS x 0 10 1", "OK"),
            (1, "DERIVE LENS r AS sum(x, -10, -5)", "OK"),
            (1, "AT LENS r 12", "VAL i1"),
            (
                1,
                "DERIVE LENS r AS sum(x, 0, 1.5)",
                "ERR parse error at column 27: expected an integer window end, found \"1.5\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, 0, 1 + 1)",
                "ERR parse error at column 29: expected \")\", found \"+\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, nope, 1)",
                "ERR parse error at column 24: expected an integer window start, found \"nope\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, (0), 1)",
                "ERR parse error at column 24: expected an integer window start, found \"(\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, - 5, 0)",
                "ERR parse error at column 24: expected an integer window start, found \"-\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, -5 + 1, 0)",
                "ERR parse error at column 27: expected \",\", found \"+\"",
            ),
            (
                1,
                "DERIVE LENS r AS sum(x, 5, -5)",
                "ERR invalid expression: sum window start must be less than its end",
            ),
            (1, "AT LENS r 12", "VAL i1"),
        ],
    );
}

/// Rule 5: COPY checks line by line (fields, start, end, range, value); the first failing
/// line wins; overlaps only after every line passed.
#[test]
fn copy_checks_line_by_line() {
    let mut files = BTreeMap::new();
    let mut add = |p: &str, c: &str| files.insert(format!("/import/{p}"), c.as_bytes().to_vec());
    add("count.csv", "0,1,1\n1,2\n");
    add("start.csv", "x,y,\"z\n");
    add("end.csv", "0,y,1,2\n");
    add("end2.csv", "0,y,zzz\n");
    add("range.csv", "5,1,zzz\n");
    add("value.csv", "0,1,zzz\n");
    add("type.csv", "0,1,\"1\"\n");
    add("first.csv", "0,10,1\n5,15,2\n20,30,abc\n");
    add("ov.csv", "0,10,1\n5,15,2\n20,30,3\n");
    add("lines.csv", "# c\n\n0,1,1\r\n1,0,1\n");
    add("open.csv", "0,1,\"abc\n\"\n");
    add("after.csv", "0,1,\"a\"b\n");
    add("ok.csv", "1,2,\"a,\"\"b\"\"\"\n0,1,plain\n");
    let mut o = Oracle::new(OracleConfig {
        auth: false,
        users: vec![],
        import_dir: Some("/import".to_string()),
        files,
    });
    exact(
        &mut o,
        &[
            (1, "CREATE DATABASE d", "OK"),
            (1, "USE DATABASE d", "OK"),
            (1, "CREATE LENS x int", "OK"),
            (1, "CREATE LENS s str", "OK"),
            (
                1,
                "COPY LENS x FROM \"count.csv\"",
                "ERR line 2: expected 3 fields, found 2",
            ),
            (
                1,
                "COPY LENS x FROM \"start.csv\"",
                "ERR line 1: unterminated quoted field",
            ),
            (
                1,
                "COPY LENS x FROM \"end.csv\"",
                "ERR line 1: expected 3 fields, found 4",
            ),
            (
                1,
                "COPY LENS x FROM \"end2.csv\"",
                "ERR line 1: invalid end",
            ),
            (
                1,
                "COPY LENS x FROM \"range.csv\"",
                "ERR line 1: invalid range (start >= end)",
            ),
            (
                1,
                "COPY LENS x FROM \"value.csv\"",
                "ERR line 1: invalid value",
            ),
            (1, "COPY LENS s FROM \"value.csv\"", "OK"),
            (
                1,
                "COPY LENS x FROM \"type.csv\"",
                "ERR line 1: type mismatch on x: expected int, got str",
            ),
            (
                1,
                "COPY LENS x FROM \"first.csv\"",
                "ERR line 3: invalid value",
            ),
            (
                1,
                "COPY LENS x FROM \"ov.csv\"",
                "ERR overlapping intervals in one write",
            ),
            (
                1,
                "COPY LENS x FROM \"lines.csv\"",
                "ERR line 4: invalid range (start >= end)",
            ),
            (
                1,
                "COPY LENS s FROM \"open.csv\"",
                "ERR line 1: unterminated quoted field",
            ),
            (
                1,
                "COPY LENS s FROM \"after.csv\"",
                "ERR line 1: invalid quoted field",
            ),
            (1, "COPY LENS s FROM \"ok.csv\"", "OK"),
            (1, "RANGE LENS s 0 2", "RANGE 2; 0:1:splain; 1:2:sa,\"b\""),
            (1, "HISTORY LENS x", "LAYERS 0"),
        ],
    );
}

/// Rules 6 and 7: `A` on `*` passes every check, COMMIT re-checks rights, duplicates are
/// checked after the permission, bootstrap users exist with authentication off.
#[test]
fn rights_decisions() {
    let mut o = auth_oracle();
    exact(
        &mut o,
        &[
            (1, "AUTH admin secret", "OK"),
            (1, "CREATE USER carol PASSWORD \"c\"", "OK"),
            (1, "CREATE USER bob PASSWORD \"b\"", "OK"),
            (1, "GRANT A ON * TO carol", "OK"),
            (2, "AUTH carol c", "OK"),
            (2, "CREATE DATABASE d", "OK"),
            (2, "USE DATABASE d", "OK"),
            (2, "CREATE LENS x int", "OK"),
            (2, "APPEND LENS x 0 1 1", "OK"),
            (2, "AT LENS x 0", "VAL i1"),
            (2, "SHOW LENSES", "NAMES 1; x"),
            (2, "COMPACT LENS x", "OK"),
            (2, "GRANT R ON d TO bob", "OK"),
            (2, "SHOW GRANTS", "GRANTS 3; admin *:A; bob d:R; carol *:A"),
            (1, "GRANT A ON d TO bob", "OK"),
            (3, "AUTH bob b", "OK"),
            (3, "USE DATABASE d", "OK"),
            (
                3,
                "CREATE LENS x int",
                "ERR permission denied: bob lacks C on d",
            ),
            (
                3,
                "APPEND LENS x 0 1 1",
                "ERR permission denied: bob lacks U on d",
            ),
            (3, "DROP DATABASE d", "OK"),
            (2, "CREATE DATABASE d", "OK"),
            (2, "CREATE DATABASE d", "ERR duplicate database: d"),
            (
                3,
                "CREATE DATABASE d",
                "ERR permission denied: bob lacks A on *",
            ),
            (
                3,
                "CREATE USER carol PASSWORD \"x\"",
                "ERR permission denied: bob lacks A on *",
            ),
            (1, "GRANT U ON d TO bob", "OK"),
            (2, "USE DATABASE d", "OK"),
            (2, "CREATE LENS y int", "OK"),
            (3, "START TRANSACTION", "OK"),
            (3, "APPEND LENS y 0 1 1", "OK"),
            (1, "REVOKE U ON d FROM bob", "OK"),
            (3, "COMMIT", "ERR permission denied: bob lacks U on d"),
            (2, "HISTORY LENS y", "LAYERS 0"),
        ],
    );
    let mut off = Oracle::new(OracleConfig {
        auth: false,
        users: vec![("admin".to_string(), "secret".to_string())],
        import_dir: None,
        files: BTreeMap::new(),
    });
    exact(
        &mut off,
        &[
            (1, "SHOW USERS", "NAMES 1; admin"),
            (1, "SHOW GRANTS", "GRANTS 1; admin *:A"),
            (
                1,
                "CREATE USER admin PASSWORD \"x\"",
                "ERR duplicate user: admin",
            ),
            (1, "AUTH admin wrong", "OK"),
            (1, "DROP USER admin", "OK"),
            (1, "SHOW USERS", "NAMES 0"),
        ],
    );
}

/// DERIVE check order: unknown refs (textual order), C, duplicate base lens, cycle, types.
#[test]
fn derive_check_order() {
    let mut o = auth_oracle();
    exact(
        &mut o,
        &[
            (1, "AUTH admin secret", "OK"),
            (1, "CREATE DATABASE d", "OK"),
            (1, "USE DATABASE d", "OK"),
            (1, "CREATE LENS x int", "OK"),
            (1, "CREATE LENS s str", "OK"),
            (1, "CREATE USER bob PASSWORD \"b\"", "OK"),
            (1, "GRANT R ON d TO bob", "OK"),
            (2, "AUTH bob b", "OK"),
            (2, "USE DATABASE d", "OK"),
            (2, "DERIVE LENS q AS x + n1 + n2", "ERR unknown lens: n1"),
            (
                2,
                "DERIVE LENS x AS x",
                "ERR permission denied: bob lacks C on d",
            ),
            (1, "DERIVE LENS q AS q + 1", "ERR unknown lens: q"),
            (1, "DERIVE LENS x AS x + s", "ERR duplicate lens: x"),
            (1, "DERIVE LENS a AS x", "OK"),
            (1, "DERIVE LENS b AS a + 1", "OK"),
            (
                1,
                "DERIVE LENS a AS a + 1",
                "ERR cycle detected in derived lens: a",
            ),
            (
                1,
                "DERIVE LENS a AS b + s",
                "ERR cycle detected in derived lens: a",
            ),
            (
                1,
                "DERIVE LENS a AS s",
                "ERR invalid expression: operator + needs int or float operands, got str and int",
            ),
            (
                1,
                "DERIVE LENS c AS x == s",
                "ERR invalid expression: operator == cannot compare int and str",
            ),
        ],
    );
}

#[test]
fn last_admin_and_session_identity() {
    let mut o = Oracle::new(OracleConfig {
        auth: true,
        import_dir: None,
        files: BTreeMap::new(),
        users: vec![("admin".to_string(), "pw".to_string())],
    });
    assert_eq!(run(&mut o, 1, 0, "AUTH admin pw"), "OK");
    let last = "ERR permission denied: cannot remove the last global admin (A on *)";
    assert_eq!(run(&mut o, 1, 0, "REVOKE A ON * FROM admin"), last);
    assert_eq!(run(&mut o, 1, 0, "DROP USER admin"), last);
    assert_eq!(run(&mut o, 1, 0, "CREATE DATABASE db"), "OK");
    assert_eq!(run(&mut o, 1, 0, "CREATE USER carol PASSWORD \"c\""), "OK");
    assert_eq!(run(&mut o, 1, 0, "GRANT R ON db TO carol"), "OK");
    assert_eq!(run(&mut o, 2, 0, "AUTH carol c"), "OK");
    assert_eq!(run(&mut o, 1, 0, "DROP USER carol"), "OK");
    assert_eq!(run(&mut o, 1, 0, "CREATE USER carol PASSWORD \"c\""), "OK");
    assert_eq!(run(&mut o, 1, 0, "GRANT A ON * TO carol"), "OK");
    assert_eq!(
        run(&mut o, 2, 0, "CREATE DATABASE x"),
        "ERR permission denied: carol lacks A on *"
    );
    assert_eq!(run(&mut o, 3, 0, "AUTH carol c"), "OK");
    assert_eq!(run(&mut o, 3, 0, "CREATE DATABASE x"), "OK");
    // Now carol is a second admin: admin may lose A.
    assert_eq!(run(&mut o, 1, 0, "REVOKE A ON * FROM admin"), "OK");
}

#[test]
fn as_of_takes_rfc3339_literals() {
    assert_eq!(crate::clock::rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        crate::clock::rfc3339_ms("2026-12-06T10:00:00.250+01:00"),
        Some(1_796_551_200_000 - 3_600_000 + 250)
    );
    assert_eq!(
        crate::clock::rfc3339_ms("1969-12-31T23:59:59.999Z"),
        Some(-1)
    );
    assert_eq!(crate::clock::rfc3339_ms("2026-02-29T00:00:00Z"), None);
    assert_eq!(crate::clock::rfc3339_ms("2026-12-06T10:00:60Z"), None);
    let mut o = db_oracle();
    assert_eq!(run(&mut o, 1, 1000, "CREATE LENS x int"), "OK");
    assert_eq!(run(&mut o, 1, 1000, "APPEND LENS x 0 10 1"), "OK");
    assert_eq!(run(&mut o, 1, 5000, "APPEND LENS x 0 10 2"), "OK");
    assert_eq!(
        run(
            &mut o,
            1,
            6000,
            "AT LENS x 5 AS OF \"1970-01-01T00:00:04Z\""
        ),
        "VAL i1"
    );
    assert_eq!(
        run(
            &mut o,
            1,
            6000,
            "AT LENS x 5 AS OF \"1970-01-01T01:00:05+01:00\""
        ),
        "VAL i2"
    );
    assert!(run(&mut o, 1, 6000, "AT LENS x 5 AS OF \"soon\"")
        .starts_with("ERR parse error at column 18"));
}
