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

#[test]
fn spec_worked_example() {
    let mut o = oracle();
    script(
        &mut o,
        1,
        &[
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
            ("AT LENS temp 1800", "VAL f20"),
            ("AT LENS temp 1800 LAYER 1", "VAL f18.5"),
            ("REDUCE LENS temp 0 7200 USING twavg", "VAL f20.5"),
            ("DERIVE LENS temp_f AS temp * 9.0 / 5.0 + 32.0", "OK"),
            ("AT LENS temp_f 1800", "VAL f68"),
            ("CREATE LENS x int", "OK"),
            ("APPEND LENS x 0 100 1", "OK"),
            ("APPEND LENS x 40 60 2", "OK"),
            (
                "RANGE LENS x 0 100",
                "RANGE 3; 0:40:i1; 40:60:i2; 60:100:i1",
            ),
            ("REDUCE LENS x 0 100 USING count", "VAL i3"),
            ("REDUCE LENS x 0 100 USING integral", "VAL i120"),
            ("APPEND LENS x 10 5 1", "ERR invalid range (start >= end)"),
            (
                "APPEND LENS x 0 10 1.5",
                "ERR type mismatch on x: expected int, got float",
            ),
            (
                "REDUCE LENS temp 0 7200 USNG twavg",
                "ERR parse error at column 24: expected USING, found \"USNG\"",
            ),
        ],
    );
}
