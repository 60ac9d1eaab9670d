//! Fuzz targets for the parser and the line framer, driven by `arbitrary`.
//!
//! Inputs are built from raw bytes in three shapes: raw bytes as a line, "token soup"
//! (statements assembled from TauQL's own vocabulary, so the parser's deep paths are
//! reached), and byte streams cut into arbitrary chunks for the framer. The oracle here
//! is structural: nothing panics, every non-blank line gets exactly one reply line, and
//! a malformed statement changes nothing.

use crate::driver::SyncDriver;
use crate::engine::Config;
use crate::jobs::Argon2Params;
use arbitrary::{Arbitrary, Unstructured};

const VOCAB: &[&str] = &[
    "CREATE",
    "DROP",
    "USE",
    "SHOW",
    "DATABASE",
    "DATABASES",
    "LENS",
    "LENSES",
    "DERIVE",
    "AS",
    "APPEND",
    "BATCH",
    "COPY",
    "FROM",
    "AT",
    "RANGE",
    "REDUCE",
    "USING",
    "OF",
    "LAYER",
    "WHERE",
    "LIMIT",
    "OFFSET",
    "HISTORY",
    "COMPACT",
    "START",
    "TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "USER",
    "USERS",
    "PASSWORD",
    "GRANT",
    "REVOKE",
    "ON",
    "TO",
    "GRANTS",
    "STATUS",
    "AUTH",
    "QUIT",
    "EXIT",
    "int",
    "float",
    "str",
    "bool",
    "bytes",
    "null",
    "true",
    "false",
    "sum",
    "twavg",
    "count",
    "x",
    "db",
    "temp",
    "0",
    "1",
    "-1",
    "7200",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1.5",
    "-0.0",
    "1e308",
    "1e999",
    "0x",
    "0xff",
    "0xf",
    "\"s\"",
    "\"a\\\"b\"",
    "\"",
    "\\",
    "{",
    "}",
    ";",
    ",",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "CRUDA",
    "*",
    "é",
    "\t",
];

const TEMPLATES: &[&str] = &[
    "APPEND LENS x 0 10 1 , 10 20 2",
    "BATCH APPEND LENS temp { 0 10 1.5 ; 10 20 null }",
    "RANGE LENS x 0 200 AS OF 5 WHERE x > 1 && ! ( x == 2 ) LIMIT 3 OFFSET 1",
    "REDUCE LENS x 0 7200 USING twavg",
    "DERIVE LENS e AS sum ( x , -5 , 5 ) * 2 - x % 3",
    "AT LENS d 5 LAYER 1",
    "GRANT RU ON * TO bob",
    "CREATE USER bob PASSWORD \"p w\"",
    "HISTORY LENS x 0 10",
    "COPY LENS x FROM \"a.csv\"",
    "START TRANSACTION",
    "SHOW GRANTS bob",
];

/// One line of token soup: a valid template with a few token mutations, or tokens
/// drawn from TauQL's vocabulary.
fn soup(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let mut toks: Vec<&str> = if u.ratio(2, 3)? {
        u.choose(TEMPLATES)?.split(' ').collect()
    } else {
        let n = u.int_in_range(0..=24)?;
        (0..n)
            .map(|_| u.choose(VOCAB).copied())
            .collect::<arbitrary::Result<_>>()?
    };
    for _ in 0..u.int_in_range(0..=3)? {
        if toks.is_empty() {
            break;
        }
        let i = u.choose_index(toks.len())?;
        match u.int_in_range(0..=2)? {
            0 => {
                toks.remove(i);
            }
            1 => toks[i] = u.choose(VOCAB)?,
            _ => toks.insert(i, u.choose(VOCAB)?),
        }
    }
    let mut s = String::new();
    for t in toks {
        s.push_str(t);
        if u.ratio(9, 10)? {
            s.push(' ');
        }
    }
    Ok(s)
}

/// Parse one arbitrary line; returns whether it parsed.
pub fn parse_one(data: &[u8]) -> bool {
    let mut u = Unstructured::new(data);
    let line = if u.ratio(1, 2).unwrap_or(false) {
        soup(&mut u).unwrap_or_default()
    } else {
        String::from_utf8_lossy(u.take_rest()).into_owned()
    };
    match crate::parse::parse(&line) {
        Ok(st) => {
            // Whatever parses must print to something that parses back the same.
            let printed = st.to_string();
            if !printed.contains(['\n', '\r']) {
                let back = crate::parse::parse(&printed).expect("printed statements parse");
                assert_eq!(back, st, "round trip of {line:?} via {printed:?}");
            }
            true
        }
        Err(e) => {
            assert!(e.column <= line.chars().count(), "column inside the line");
            false
        }
    }
}

/// A fresh engine with a little data, to fuzz against.
pub fn fuzz_driver() -> SyncDriver {
    let mut d = SyncDriver::new(Config {
        max_line_bytes: 256,
        argon2: Argon2Params::TEST,
        import_dir: Some("/import".into()),
        ..Config::default()
    });
    d.open(0);
    for s in [
        "CREATE DATABASE db",
        "USE DATABASE db",
        "CREATE LENS x int",
        "CREATE LENS temp float",
        "APPEND LENS x 0 100 1, 100 200 2",
        "DERIVE LENS d AS x * 2",
    ] {
        assert_eq!(d.line(0, s), "OK");
    }
    d
}

#[derive(Arbitrary, Debug)]
enum Chunk {
    Soup,
    Bytes(Vec<u8>),
    Newline,
    Crlf,
}

/// Feed an arbitrary chunked byte stream to one new connection of `d`; check framing.
pub fn framer_one(d: &mut SyncDriver, conn: u64, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let chunks: Vec<Chunk> = Vec::arbitrary(&mut u).unwrap_or_default();
    let mut stream = Vec::new();
    for c in chunks {
        match c {
            Chunk::Soup => stream.extend(soup(&mut u).unwrap_or_default().bytes()),
            Chunk::Bytes(b) => stream.extend(b),
            Chunk::Newline => stream.push(b'\n'),
            Chunk::Crlf => stream.extend(b"\r\n"),
        }
    }
    d.open(conn);
    let before = digest(d);
    // Deliver the stream in arbitrary pieces.
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = u.int_in_range(1..=rest.len().min(64)).unwrap_or(rest.len());
        d.send(conn, &rest[..n]);
        rest = &rest[n..];
    }
    let replies = d.take_lines(conn);
    if !d.is_closed(conn) {
        d.close(conn);
    }
    // At most one reply per line, plus one for an over-long tail.
    let lines = stream.split(|&b| b == b'\n').count();
    assert!(
        replies.len() <= lines + 1,
        "{} replies for {lines} lines",
        replies.len()
    );
    for r in &replies {
        let known = [
            "OK", "VAL ", "RANGE ", "NAMES ", "LAYERS ", "GRANTS ", "STATUS ", "ERR ",
        ];
        assert!(known.iter().any(|k| r.starts_with(k)), "reply shape: {r:?}");
    }
    // An ERR changes nothing: if no statement succeeded, the state is as before.
    if !replies.iter().any(|r| r.starts_with("OK")) {
        assert_eq!(digest(d), before, "a failed statement changed the state");
    }
}

/// A cheap fingerprint of the committed state: names, layer counts, users.
fn digest(d: &SyncDriver) -> String {
    let st = d.engine.state();
    let mut s = String::new();
    for (name, db) in &st.dbs {
        s.push_str(name);
        for (l, lens) in &db.lenses {
            let n = match lens {
                crate::catalog::Lens::Base(b) => b.history.len(),
                crate::catalog::Lens::Derived(_) => usize::MAX,
            };
            s.push_str(&format!(" {l}:{n}"));
        }
        s.push(';');
    }
    s.push_str(&format!("users:{}", st.users.len()));
    s
}
