//! COPY: path resolution against the import directory and CSV reading.

use std::collections::BTreeMap;

use crate::lex::{lex, Tok};
use crate::model::Piece;
use crate::value::{coerce, Ty, Value};

fn outside() -> String {
    "permission denied: path outside the import directory".to_string()
}

/// Resolve `path` to an absolute path inside the import directory.
pub fn resolve(import_dir: Option<&str>, path: &str) -> Result<String, String> {
    let Some(dir) = import_dir else {
        return Err("permission denied: COPY is disabled (no import directory)".to_string());
    };
    let dir = dir.trim_end_matches('/');
    let rel = if path.starts_with('/') {
        match path.strip_prefix(dir) {
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => return Err(outside()),
        }
    } else {
        path
    };
    if rel
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(outside());
    }
    Ok(format!("{}/{}", dir, rel))
}

/// A CSV field and whether it was double-quoted.
type Field = (String, bool);

/// Split one line (no `\n`, trailing `\r` already removed) into fields. A record is exactly
/// one line: a quoted field must close on its line.
fn fields(line: &str) -> Result<Vec<Field>, String> {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        if i < n && chars[i] == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                if i >= n {
                    return Err("unterminated quoted field".to_string());
                }
                if chars[i] == '"' {
                    if i + 1 < n && chars[i + 1] == '"' {
                        s.push('"');
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                } else {
                    s.push(chars[i]);
                    i += 1;
                }
            }
            out.push((s, true));
            if i == n {
                return Ok(out);
            }
            if chars[i] != ',' {
                return Err("invalid quoted field".to_string());
            }
            i += 1;
        } else {
            let start = i;
            while i < n && chars[i] != ',' {
                i += 1;
            }
            out.push((chars[start..i].iter().collect(), false));
            if i == n {
                return Ok(out);
            }
            i += 1;
        }
    }
}

/// Exactly one TauQL literal token.
fn literal(text: &str) -> Option<Value> {
    let chars: Vec<char> = text.chars().collect();
    let toks = lex(&chars).ok()?;
    if toks.len() != 1 {
        return None;
    }
    Some(match &toks[0].tok {
        Tok::Int(i) => Value::Int(*i),
        Tok::Float(f) => Value::Float(*f),
        Tok::Str(s) => Value::Str(s.clone()),
        Tok::Bytes(b) => Value::Bytes(b.clone()),
        Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => return None,
        },
        Tok::Sym(_) => return None,
    })
}

fn time(field: &Field) -> Option<i64> {
    if field.1 {
        return None;
    }
    match literal(field.0.trim_matches(|c| c == ' ' || c == '\t'))? {
        Value::Int(i) => Some(i),
        _ => None,
    }
}

fn value(field: &Field, ty: Ty) -> Option<Value> {
    let (text, quoted) = field;
    if *quoted {
        return Some(Value::Str(text.clone()));
    }
    if ty == Ty::Str {
        if text.eq_ignore_ascii_case("null") {
            return Some(Value::Null);
        }
        return Some(Value::Str(text.clone()));
    }
    literal(text.trim_matches(|c| c == ' ' || c == '\t'))
}

/// Read `path` and check it line by line, in order: fields, field count, start, end,
/// `start < end`, value. The first failing line wins. Overlaps are left to the caller.
pub fn read(
    import_dir: Option<&str>,
    files: &BTreeMap<String, Vec<u8>>,
    path: &str,
    lens: &str,
    ty: Ty,
) -> Result<Vec<Piece>, String> {
    let full = resolve(import_dir, path)?;
    let Some(bytes) = files.get(&full) else {
        let dir_prefix = format!("{}/", full);
        let why = if files.keys().any(|k| k.starts_with(&dir_prefix)) {
            "Is a directory (os error 21)"
        } else {
            "No such file or directory (os error 2)"
        };
        return Err(format!("cannot read {}: {}", path, why));
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(format!(
            "cannot read {}: stream did not contain valid UTF-8",
            path
        ));
    };
    let mut out = Vec::new();
    let pieces: Vec<&str> = text.split('\n').collect();
    for (idx, raw) in pieces.iter().enumerate() {
        // SEMANTICS (COPY): every line ends with a newline; text after the last one may be
        // a line cut short, so the file is refused (earlier bad lines are reported first).
        if idx + 1 == pieces.len() && !raw.is_empty() {
            return Err(format!(
                "line {}: no newline at the end of the file (cut short?)",
                idx + 1
            ));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_matches(|c| c == ' ' || c == '\t');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        out.push(check_line(line, lens, ty).map_err(|e| format!("line {}: {}", idx + 1, e))?);
    }
    Ok(out)
}

fn check_line(line: &str, lens: &str, ty: Ty) -> Result<Piece, String> {
    let fields = fields(line)?;
    if fields.len() != 3 {
        return Err(format!("expected 3 fields, found {}", fields.len()));
    }
    let s = time(&fields[0]).ok_or("invalid start")?;
    let e = time(&fields[1]).ok_or("invalid end")?;
    if s >= e {
        return Err("invalid range (start >= end)".to_string());
    }
    let v = value(&fields[2], ty).ok_or("invalid value")?;
    Ok((s, e, coerce(lens, ty, &v)?))
}
