//! Property tests (hegeltest) for the client's pure parts, with the engine as the oracle
//! for the wire encoding and the TauQL parser.

use hegel::generators as gs;
use hegel::TestCase;
use tau_client::load::{Chunker, Limits, LoadType};
use tau_client::render::render;
use tau_client::wire::{self, float_literal, is_float_literal, parse_reply, Reply};
use tau_engine::ast::{Row, Statement};
use tau_engine::Value;
use unicode_width::UnicodeWidthStr;

fn engine_value(tc: &TestCase) -> Value {
    match tc.draw(gs::integers::<u8>().max_value(5)) {
        0 => Value::Null,
        1 => Value::Int(tc.draw(gs::integers::<i64>())),
        2 => Value::Float(tc.draw(gs::floats::<f64>().allow_nan(false).allow_infinity(false))),
        3 => Value::str(&tc.draw(gs::text().max_size(20))),
        4 => Value::Bool(tc.draw(gs::booleans())),
        _ => Value::bytes(&tc.draw(gs::binary().max_size(8))),
    }
}

/// The client's reading of what the engine wrote means the same value.
fn same(engine: &Value, client: &wire::Value) -> bool {
    match (engine, client) {
        (Value::Null, wire::Value::Null) => true,
        (Value::Int(a), wire::Value::Int(b)) => a == b,
        (Value::Float(a), wire::Value::Float(t)) => t.parse::<f64>().ok() == Some(*a),
        (Value::Str(a), wire::Value::Str(b)) => **a == **b,
        (Value::Bool(a), wire::Value::Bool(b)) => a == b,
        (Value::Bytes(a), wire::Value::Bytes(b)) => **a == **b,
        _ => false,
    }
}

#[hegel::test(test_cases = 500)]
fn client_decodes_every_value_the_engine_encodes(tc: TestCase) {
    let v = engine_value(&tc);
    let enc = v.encode();
    let got = wire::Value::decode(&enc).unwrap_or_else(|| panic!("cannot decode {enc:?}"));
    assert!(same(&v, &got), "{v:?} -> {enc:?} -> {got:?}");
    assert_eq!(
        parse_reply(&format!("VAL {enc}")),
        Reply::Val(Some(got.clone()))
    );
    // A table cell is one line.
    assert!(!got.display().contains(['\n', '\r']));
}

#[hegel::test(test_cases = 300)]
fn range_tables_hold_every_piece_aligned(tc: TestCase) {
    let n = tc.draw(gs::integers::<usize>().max_value(12));
    let mut t = tc.draw(
        gs::integers::<i64>()
            .min_value(-1_000_000)
            .max_value(1_000_000),
    );
    let mut pieces = Vec::new();
    for _ in 0..n {
        t += tc.draw(gs::integers::<i64>().min_value(0).max_value(1000));
        let len = tc.draw(gs::integers::<i64>().min_value(1).max_value(100_000));
        pieces.push((t, t + len, engine_value(&tc)));
        t += len;
    }
    let mut line = format!("RANGE {n}");
    for (s, e, v) in &pieces {
        line.push_str(&format!("; {s}:{e}:{}", v.encode()));
    }
    let Reply::Range(got) = parse_reply(&line) else {
        panic!("not a RANGE reply: {line}");
    };
    assert_eq!(got.len(), n);
    for ((s, e, v), (gs_, ge, gv)) in pieces.iter().zip(&got) {
        assert_eq!((s, e), (gs_, ge));
        assert!(same(v, gv), "{v:?} vs {gv:?}");
    }
    let table = render("RANGE LENS x 0 1", &line, false);
    let lines: Vec<&str> = table.split('\n').collect();
    assert_eq!(lines.len(), n + 3, "{table}");
    let w = lines[0].width();
    for l in &lines[..n + 2] {
        assert_eq!(l.width(), w, "misaligned:\n{table}");
    }
    let right = got.iter().all(|p| p.2.is_number());
    for (row, (s, e, v)) in lines[2..].iter().zip(&got) {
        let cells: Vec<&str> = row.splitn(3, " | ").collect();
        assert_eq!(cells[0].trim().parse::<i64>().unwrap(), *s);
        assert_eq!(cells[1].trim().parse::<i64>().unwrap(), *e);
        let cell = if right {
            cells[2].trim()
        } else {
            cells[2].trim_end()
        };
        assert_eq!(cell, v.display().trim_end());
    }
    assert_eq!(
        lines[n + 2],
        format!("({n} row{})", if n == 1 { "" } else { "s" })
    );
    // --raw changes nothing.
    assert_eq!(render("RANGE LENS x 0 1", &line, true), line);
}

/// Any rows, written as CSV and cut into chunks of any size, come back from the engine's
/// own parser as exactly those rows, in file order, each once.
#[hegel::test(test_cases = 200)]
fn chunks_carry_every_row_once(tc: TestCase) {
    let strings = tc.draw(gs::booleans());
    let n = tc.draw(gs::integers::<usize>().max_value(40));
    let mut t = tc.draw(gs::integers::<i64>().min_value(-1000).max_value(1000));
    let mut rows = Vec::new();
    for _ in 0..n {
        t += tc.draw(gs::integers::<i64>().min_value(0).max_value(5));
        let len = tc.draw(gs::integers::<i64>().min_value(1).max_value(50));
        let text = if strings {
            tc.draw(gs::text().max_size(10).exclude_characters("\n"))
        } else {
            tc.draw(gs::integers::<i64>()).to_string()
        };
        rows.push((t, t + len, text));
        t += len;
    }
    if tc.draw(gs::booleans()) {
        rows.reverse();
    }
    let header = tc.draw(gs::booleans());
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    if header {
        w.write_record(["start", "end", "value"]).unwrap();
    }
    for (s, e, v) in &rows {
        w.write_record([s.to_string(), e.to_string(), v.clone()])
            .unwrap();
    }
    let data = w.into_inner().unwrap();
    let limits = Limits {
        max_rows: tc.draw(gs::integers::<usize>().min_value(1).max_value(15)),
        max_bytes: tc.draw(gs::integers::<usize>().min_value(30).max_value(400)),
        ..Limits::default()
    };
    let ty = if strings {
        LoadType::Str
    } else {
        LoadType::Auto
    };
    let mut back = Vec::new();
    let mut last_line = 0;
    for chunk in Chunker::new(&data[..], "x", ty, limits) {
        let c = chunk.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.rows >= 1 && c.rows <= limits.max_rows);
        assert!(
            c.rows == 1 || c.statement.len() <= limits.max_bytes,
            "{c:?}"
        );
        assert!(c.first_line > last_line && c.last_line >= c.first_line);
        last_line = c.last_line;
        match tau_engine::parse(&c.statement) {
            Ok(Statement::Append {
                lens,
                rows: got,
                batch: true,
            }) => {
                assert_eq!(lens, "x");
                assert_eq!(got.len(), c.rows);
                back.extend(got);
            }
            other => panic!("{}: {other:?}", c.statement),
        }
    }
    let want: Vec<Row> = rows
        .iter()
        .map(|(s, e, v)| Row {
            start: *s,
            end: *e,
            value: if !strings {
                Value::Int(v.parse().unwrap())
            } else if v.trim_matches([' ', '\t']).eq_ignore_ascii_case("null") {
                Value::Null
            } else {
                Value::str(v)
            },
        })
        .collect();
    assert_eq!(back, want);
    if n > 0 {
        assert_eq!(last_line as usize, n + usize::from(header));
    }
}

#[hegel::test(test_cases = 500)]
fn float_literals_are_exact(tc: TestCase) {
    let f = tc.draw(gs::floats::<f64>().allow_nan(false).allow_infinity(false));
    let lit = float_literal(f).unwrap();
    assert!(is_float_literal(&lit), "{lit}");
    match tau_engine::parse(&format!("APPEND LENS x 0 1 {lit}")) {
        Ok(Statement::Append { rows, .. }) => {
            assert_eq!(rows[0].value, Value::Float(f), "{lit}");
        }
        other => panic!("{lit}: {other:?}"),
    }
}

/// Whatever bytes a server sends, the client neither panics nor loses the line.
#[hegel::test(test_cases = 500)]
fn any_reply_line_renders(tc: TestCase) {
    let prefix = tc.draw(gs::sampled_from(vec![
        "", "OK", "VAL ", "RANGE ", "NAMES ", "LAYERS ", "GRANTS ", "STATUS ", "ERR ",
    ]));
    let rest = tc.draw(gs::text().max_size(40).exclude_characters("\n"));
    let line = format!("{prefix}{rest}");
    let shown = render("SHOW LENSES", &line, false);
    if matches!(
        parse_reply(&line),
        Reply::Other(_) | Reply::Ok(_) | Reply::Err(_) | Reply::Val(_)
    ) {
        assert_eq!(shown, line);
    } else {
        assert!(
            shown.ends_with(" rows)") || shown.ends_with(" row)"),
            "{shown}"
        );
    }
}
