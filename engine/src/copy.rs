//! COPY: where a file may come from, and how its CSV becomes one validated write.

use crate::ast::Row;
use crate::catalog::Res;
use crate::layer::Segs;
use crate::value::{Type, Value};

/// Resolve a COPY path against the import directory. Pure string work: no `..`, `.` or
/// empty components, and absolute paths only inside the directory. (The real driver
/// additionally refuses symlinks that leave the directory when it opens the file.)
pub fn resolve_import(import_dir: Option<&str>, path: &str) -> Res<String> {
    let Some(dir) = import_dir else {
        return Err("permission denied: COPY is disabled (no import directory)".into());
    };
    let dir = dir.trim_end_matches('/');
    let outside = || "permission denied: path outside the import directory".to_string();
    let rel = if path.starts_with('/') {
        path.strip_prefix(dir)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(outside)?
    } else {
        path
    };
    if rel.is_empty()
        || rel.contains('\0')
        || rel.contains('\\')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(outside());
    }
    Ok(format!("{dir}/{rel}"))
}

/// Split one CSV line into fields; a field is (text, was_quoted).
fn fields(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut f = String::new();
        let mut quoted = false;
        // Skip leading blanks before a quote.
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        f.push('"');
                    }
                    Some('"') => break,
                    Some(c) => f.push(c),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("invalid quoted field".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                f.push(c);
                chars.next();
            }
        }
        out.push((f, quoted));
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(out),
        }
    }
}

fn field_value(text: &str, quoted: bool, lens: &str, ty: Type) -> Res<Value> {
    let got = if quoted {
        Value::str(text)
    } else if ty == Type::Str {
        if text.trim().eq_ignore_ascii_case("null") {
            Value::Null
        } else {
            Value::str(text)
        }
    } else {
        match crate::parse::parse(&format!("APPEND LENS x 0 1 {}", text.trim())) {
            Ok(crate::ast::Statement::Append { mut rows, .. }) if rows.len() == 1 => {
                rows.pop().expect("one row").value
            }
            _ => return Err("invalid value".into()),
        }
    };
    got.coerce(ty)
        .map_err(|g| format!("type mismatch on {lens}: expected {ty}, got {g}"))
}

fn int_field(text: &str, what: &str) -> Res<i64> {
    text.trim().parse().map_err(|_| format!("invalid {what}"))
}

/// Parse `start,end,value` lines (`#` comments and blank lines skipped) into one
/// validated write; errors name the 1-based line number. A record is one line, and every
/// line ends with `\n`: a last line without one may be cut short (a file still being
/// written), so it is refused, like a statement line without its newline.
pub fn parse_csv(data: &[u8], path: &str, lens: &str, ty: Type) -> Res<Option<Segs>> {
    let text = std::str::from_utf8(data)
        .map_err(|_| format!("cannot read {path}: stream did not contain valid UTF-8"))?;
    let mut rows = Vec::new();
    // Index of the piece after the last `\n`: empty unless the last line is unterminated.
    let last = data.iter().filter(|&&b| b == b'\n').count();
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        if i == last && !raw.is_empty() {
            return Err(format!(
                "line {n}: no newline at the end of the file (cut short?)"
            ));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let t = line.trim_matches([' ', '\t']);
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {n}: {e}");
        let f = fields(line).map_err(at)?;
        if f.len() != 3 {
            return Err(at(format!("expected 3 fields, found {}", f.len())));
        }
        let start = int_field(&f[0].0, "start").map_err(at)?;
        let end = int_field(&f[1].0, "end").map_err(at)?;
        if start >= end {
            return Err(at("invalid range (start >= end)".into()));
        }
        let value = field_value(&f[2].0, f[2].1, lens, ty).map_err(at)?;
        rows.push(Row { start, end, value });
    }
    crate::exec::validate_rows(lens, ty, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let d = Some("/imp");
        assert_eq!(resolve_import(d, "a/b.csv").unwrap(), "/imp/a/b.csv");
        assert_eq!(resolve_import(d, "/imp/x.csv").unwrap(), "/imp/x.csv");
        for bad in [
            "../x",
            "/etc/passwd",
            "/impx/y",
            "a//b",
            "./a",
            "a/../../b",
            "",
        ] {
            assert!(resolve_import(d, bad).is_err(), "{bad}");
        }
        assert!(resolve_import(None, "a.csv")
            .unwrap_err()
            .contains("disabled"));
    }

    #[test]
    fn csv_lines_and_errors() {
        let s = parse_csv(b"# temp\n0,10,1.5\r\n\n10,20,3\n", "f", "t", Type::Float)
            .unwrap()
            .unwrap();
        assert_eq!(s.values, vec![Value::Float(1.5), Value::Float(3.0)]);
        let e = parse_csv(b"0,10,1\n5,3,1\n", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 2: invalid range (start >= end)");
        let e = parse_csv(b"0,10,x\n", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 1: invalid value");
        let e = parse_csv(b"0,10,\"x\n", "f", "t", Type::Str).unwrap_err();
        assert_eq!(e, "line 1: unterminated quoted field");
        let e = parse_csv(b"0,10,1\n5,x,1\n", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 2: invalid end");
        let e = parse_csv(b"0,10,1\n10,20,137", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 2: no newline at the end of the file (cut short?)");
        let e = parse_csv(b"0,10,x\n10,20,137", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 1: invalid value");
        let e = parse_csv(b"# only a comment", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "line 1: no newline at the end of the file (cut short?)");
        assert!(parse_csv(b"", "f", "t", Type::Int).unwrap().is_none());
        let e = parse_csv(b"\xff", "f", "t", Type::Int).unwrap_err();
        assert_eq!(e, "cannot read f: stream did not contain valid UTF-8");
        let s = parse_csv(
            b"0,1,\"a, \"\"b\"\"\"\n1,2,plain text\n",
            "f",
            "t",
            Type::Str,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            s.values,
            vec![Value::str("a, \"b\""), Value::str("plain text")]
        );
    }
}
