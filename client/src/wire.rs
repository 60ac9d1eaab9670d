//! The wire form of replies (SPEC "Replies"): parsing reply lines into structured data,
//! decoding values, and building TauQL literals. Nothing here panics on any input: a
//! line that does not have the exact shape SPEC gives is [`Reply::Other`], and is shown
//! as it came.

use std::fmt::Write as _;

/// A decoded reply value `<v>`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    /// The float as the server wrote it (shortest round-trip form, no exponent), kept as
    /// text so display never changes a digit.
    Float(String),
    Str(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Value {
    /// Decode one `<v>`: `i<int>`, `f<float>`, `s<str>` (percent-escaped), `b1`/`b0`,
    /// `x<hex>`, `n`.
    pub fn decode(s: &str) -> Option<Value> {
        let mut chars = s.chars();
        let tag = chars.next()?;
        let rest = chars.as_str();
        match tag {
            'n' if rest.is_empty() => Some(Value::Null),
            'i' => rest.parse().ok().map(Value::Int),
            'f' if is_float_text(rest) => Some(Value::Float(rest.to_string())),
            's' => percent_decode(rest).map(Value::Str),
            'b' => match rest {
                "1" => Some(Value::Bool(true)),
                "0" => Some(Value::Bool(false)),
                _ => None,
            },
            'x' => decode_hex(rest).map(Value::Bytes),
            _ => None,
        }
    }

    /// Numbers are right-aligned in tables.
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }

    /// The text shown in a table cell: strings decoded, with control characters (which
    /// would break a table's rows apart) shown as escapes.
    pub fn display(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.clone(),
            Value::Str(s) => escape_controls(s),
            Value::Bool(b) => b.to_string(),
            Value::Bytes(b) => {
                let mut s = String::with_capacity(2 + 2 * b.len());
                s.push_str("0x");
                for byte in b {
                    let _ = write!(s, "{byte:02x}");
                }
                s
            }
        }
    }
}

/// What SPEC's float encoding can produce: digits with an optional `-` and an optional
/// fractional part, or the words Rust prints for non-finite values (never expected, but
/// shown as they are rather than rejected).
fn is_float_text(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    if matches!(body, "inf" | "NaN") {
        return true;
    }
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Undo the string escapes (`%XX`, two hex digits, any byte). `None` for a malformed
/// escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_digit(*b.get(i + 1)?)?;
            let lo = hex_digit(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
        .collect()
}

/// Show control characters as escapes so one cell stays on one line.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// One stored-layer entry of a `LAYERS` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub id: u64,
    pub written_at: i64,
    pub min_start: i64,
    pub max_end: i64,
}

/// A reply line, parsed. Anything whose shape is not exactly SPEC's is `Other`.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `OK` or `OK <rest>` (e.g. `OK BYE`).
    Ok(String),
    Val(Option<Value>),
    Range(Vec<(i64, i64, Value)>),
    Names(Vec<String>),
    Layers(Vec<LayerInfo>),
    /// Per user: its grants as (database or `*`, perms).
    Grants(Vec<(String, Vec<(String, String)>)>),
    Status(Vec<(String, String)>),
    Err(String),
    Other(String),
}

impl Reply {
    pub fn is_err(&self) -> bool {
        matches!(self, Reply::Err(_))
    }
}

/// Is this reply line an error? (What the exit code counts.)
pub fn is_err_line(line: &str) -> bool {
    line == "ERR" || line.starts_with("ERR ")
}

/// `KIND <n>; item; item`: the items, when there are exactly `n` of them.
fn counted<'a>(line: &'a str, kind: &str) -> Option<Vec<&'a str>> {
    let rest = line.strip_prefix(kind)?.strip_prefix(' ')?;
    let mut parts = rest.split("; ");
    let n: usize = parts.next()?.parse().ok()?;
    let items: Vec<&str> = parts.collect();
    (items.len() == n).then_some(items)
}

fn parse_range(line: &str) -> Option<Reply> {
    let items = counted(line, "RANGE")?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let mut p = it.splitn(3, ':');
        let s = p.next()?.parse().ok()?;
        let e = p.next()?.parse().ok()?;
        let v = Value::decode(p.next()?)?;
        out.push((s, e, v));
    }
    Some(Reply::Range(out))
}

fn parse_layers(line: &str) -> Option<Reply> {
    let items = counted(line, "LAYERS")?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let mut p = it.split(':');
        let l = LayerInfo {
            id: p.next()?.parse().ok()?,
            written_at: p.next()?.parse().ok()?,
            min_start: p.next()?.parse().ok()?,
            max_end: p.next()?.parse().ok()?,
        };
        if p.next().is_some() {
            return None;
        }
        out.push(l);
    }
    Some(Reply::Layers(out))
}

fn parse_grants(line: &str) -> Option<Reply> {
    let items = counted(line, "GRANTS")?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let mut words = it.split(' ');
        let user = words.next().filter(|u| !u.is_empty())?.to_string();
        let mut grants = Vec::new();
        for w in words {
            let (db, perms) = w.split_once(':')?;
            grants.push((db.to_string(), perms.to_string()));
        }
        out.push((user, grants));
    }
    Some(Reply::Grants(out))
}

fn parse_status(line: &str) -> Option<Reply> {
    let items = counted(line, "STATUS")?;
    let kv = items
        .into_iter()
        .map(|it| {
            it.split_once(':')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Reply::Status(kv))
}

/// Parse one reply line (without its `\n`).
pub fn parse_reply(line: &str) -> Reply {
    let parsed = if line == "OK" {
        Some(Reply::Ok(String::new()))
    } else if let Some(rest) = line.strip_prefix("OK ") {
        Some(Reply::Ok(rest.to_string()))
    } else if is_err_line(line) {
        Some(Reply::Err(line.get(4..).unwrap_or("").to_string()))
    } else if line == "VAL NIL" {
        Some(Reply::Val(None))
    } else if let Some(v) = line.strip_prefix("VAL ") {
        Value::decode(v).map(|v| Reply::Val(Some(v)))
    } else if line.starts_with("RANGE ") {
        parse_range(line)
    } else if line.starts_with("NAMES ") {
        counted(line, "NAMES").map(|n| Reply::Names(n.into_iter().map(String::from).collect()))
    } else if line.starts_with("LAYERS ") {
        parse_layers(line)
    } else if line.starts_with("GRANTS ") {
        parse_grants(line)
    } else if line.starts_with("STATUS ") {
        parse_status(line)
    } else {
        None
    };
    parsed.unwrap_or_else(|| Reply::Other(line.to_string()))
}

// ------------------------------------------------------------------ TauQL literals

/// A TauQL string literal: `"..."` with `\"` and `\\` escapes. `None` when the text holds
/// a newline, which no statement line can carry.
pub fn string_literal(s: &str) -> Option<String> {
    if s.contains('\n') {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// Is `s` a TauQL int literal (`-?[0-9]+`)?
pub fn is_int_literal(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// Is `s` a TauQL float literal (`-?[0-9]+\.[0-9]+`, optional exponent `e±N`)?
pub fn is_float_literal(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let Some((i, f)) = mant.split_once('.') else {
        return false;
    };
    digits(i) && digits(f) && exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// A TauQL float literal for a finite `f`, exact (Rust's `Display` for `f64` is the
/// shortest round-trip form and never uses an exponent).
pub fn float_literal(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let mut s = format!("{f}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    Some(s)
}

/// Is `s` a TauQL bytes literal (`0x` and an even number of hex digits)?
pub fn is_bytes_literal(s: &str) -> bool {
    s.strip_prefix("0x")
        .is_some_and(|h| h.len().is_multiple_of(2) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode() {
        assert_eq!(Value::decode("i-5"), Some(Value::Int(-5)));
        assert_eq!(Value::decode("f20"), Some(Value::Float("20".into())));
        assert_eq!(
            Value::decode("f0.30000000000000004"),
            Some(Value::Float("0.30000000000000004".into()))
        );
        assert_eq!(
            Value::decode("sa%20b%3Ac%3Bd%25e%0Af"),
            Some(Value::Str("a b:c;d%e\nf".into()))
        );
        assert_eq!(Value::decode("s"), Some(Value::Str(String::new())));
        assert_eq!(Value::decode("b1"), Some(Value::Bool(true)));
        assert_eq!(Value::decode("b0"), Some(Value::Bool(false)));
        assert_eq!(Value::decode("x00ff"), Some(Value::Bytes(vec![0, 255])));
        assert_eq!(Value::decode("x"), Some(Value::Bytes(vec![])));
        assert_eq!(Value::decode("n"), Some(Value::Null));
        for bad in [
            "", "i", "i1.5", "f", "f1e5", "f.5", "s%", "s%4", "s%zz", "s%ff", "b2", "x0", "xzz",
            "q1", "nn",
        ] {
            assert_eq!(Value::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn display_escapes_controls() {
        assert_eq!(Value::Str("a\nb\tc".into()).display(), "a\\nb\\tc");
        assert_eq!(Value::Str("\u{7}".into()).display(), "\\u{7}");
        assert_eq!(Value::Bytes(vec![0xab, 1]).display(), "0xab01");
        assert_eq!(Value::Null.display(), "null");
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("OK"), Reply::Ok(String::new()));
        assert_eq!(parse_reply("OK BYE"), Reply::Ok("BYE".into()));
        assert_eq!(parse_reply("VAL NIL"), Reply::Val(None));
        assert_eq!(
            parse_reply("VAL f18.5"),
            Reply::Val(Some(Value::Float("18.5".into())))
        );
        assert_eq!(
            parse_reply("ERR unknown lens: x"),
            Reply::Err("unknown lens: x".into())
        );
        assert_eq!(parse_reply("ERR"), Reply::Err(String::new()));
        assert_eq!(
            parse_reply("RANGE 2; 0:3600:f18.5; 3600:7200:f21"),
            Reply::Range(vec![
                (0, 3600, Value::Float("18.5".into())),
                (3600, 7200, Value::Float("21".into()))
            ])
        );
        assert_eq!(parse_reply("RANGE 0"), Reply::Range(vec![]));
        assert_eq!(
            parse_reply("RANGE 1; -5:-1:sa%3Ab"),
            Reply::Range(vec![(-5, -1, Value::Str("a:b".into()))])
        );
        assert_eq!(
            parse_reply("NAMES 2; a; b"),
            Reply::Names(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_reply("LAYERS 1; 1:1000:0:7200"),
            Reply::Layers(vec![LayerInfo {
                id: 1,
                written_at: 1000,
                min_start: 0,
                max_end: 7200
            }])
        );
        assert_eq!(
            parse_reply("GRANTS 2; admin *:CRUDA; bob"),
            Reply::Grants(vec![
                ("admin".into(), vec![("*".into(), "CRUDA".into())]),
                ("bob".into(), vec![])
            ])
        );
        assert_eq!(
            parse_reply("STATUS 2; auth:off; database:-"),
            Reply::Status(vec![
                ("auth".into(), "off".into()),
                ("database".into(), "-".into())
            ])
        );
    }

    #[test]
    fn malformed_replies_are_other() {
        for bad in [
            "",
            "RANGE",
            "RANGE 2; 0:1:i1",
            "RANGE 1; 0:1",
            "RANGE 1; a:1:i1",
            "RANGE x",
            "RANGE 1; 0:1:i1;",
            "NAMES 1",
            "LAYERS 1; 1:2:3",
            "LAYERS 1; 1:2:3:4:5",
            "GRANTS 1; bob db",
            "STATUS 1; nokey",
            "VAL",
            "VAL q",
            "hello",
            "OKAY",
            "ERRATIC",
        ] {
            assert_eq!(parse_reply(bad), Reply::Other(bad.into()), "{bad:?}");
        }
    }

    #[test]
    fn literals() {
        assert_eq!(string_literal("a\"b\\c").unwrap(), r#""a\"b\\c""#);
        assert_eq!(string_literal("x\ny"), None);
        assert!(is_int_literal("-12"));
        assert!(!is_int_literal("+12"));
        assert!(!is_int_literal("-"));
        assert!(is_float_literal("1.5"));
        assert!(is_float_literal("-1.5e-3"));
        assert!(is_float_literal("1.0E+10"));
        assert!(!is_float_literal("1."));
        assert!(!is_float_literal(".5"));
        assert!(!is_float_literal("1e5"));
        assert!(!is_float_literal("1.5e"));
        assert_eq!(float_literal(1e300).unwrap().len(), 303);
        assert_eq!(float_literal(20.0).unwrap(), "20.0");
        assert_eq!(float_literal(1e-7).unwrap(), "0.0000001");
        assert_eq!(float_literal(f64::NAN), None);
        assert!(is_bytes_literal("0x"));
        assert!(is_bytes_literal("0xAb01"));
        assert!(!is_bytes_literal("0xabc"));
    }
}
