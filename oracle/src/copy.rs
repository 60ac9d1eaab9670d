//! COPY: path resolution against the import directory and CSV reading.

use std::collections::BTreeMap;

use crate::lex::{lex, Tok};
use crate::value::{Ty, Value};

/// One write tuple with its 1-based line number.
pub type Tuple = (Option<usize>, i64, i64, Value);

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

/// Split the file into records: `(line number, fields or error)`. Comment (`#`) and blank
/// lines are skipped; a quoted field may span lines; a `\r` before `\n` is dropped.
fn records(text: &str) -> Vec<(usize, Result<Vec<Field>, String>)> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < n {
        let mut j = i;
        while j < n && chars[j] != '\n' {
            j += 1;
        }
        let physical: String = chars[i..j].iter().collect();
        let trimmed = physical
            .trim_end_matches('\r')
            .trim_matches(|c| c == ' ' || c == '\t');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i = j + 1;
            line += 1;
            continue;
        }
        let rec_line = line;
        let mut fields = Vec::new();
        let mut error = None;
        loop {
            if i < n && chars[i] == '"' {
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                while i < n {
                    if chars[i] == '"' {
                        if i + 1 < n && chars[i + 1] == '"' {
                            s.push('"');
                            i += 2;
                        } else {
                            i += 1;
                            closed = true;
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        s.push(chars[i]);
                        i += 1;
                    }
                }
                if !closed {
                    error = Some("unterminated quoted field".to_string());
                    break;
                }
                fields.push((s, true));
                if i < n && chars[i] == ',' {
                    i += 1;
                    continue;
                }
                if i < n && chars[i] == '\r' && (i + 1 == n || chars[i + 1] == '\n') {
                    i += 1;
                }
                if i < n && chars[i] != '\n' {
                    error = Some("invalid quoted field".to_string());
                }
                break;
            } else {
                let start = i;
                while i < n && chars[i] != ',' && chars[i] != '\n' {
                    i += 1;
                }
                let mut f: String = chars[start..i].iter().collect();
                if i < n && chars[i] == ',' {
                    fields.push((f, false));
                    i += 1;
                    continue;
                }
                if f.ends_with('\r') {
                    f.pop();
                }
                fields.push((f, false));
                break;
            }
        }
        if error.is_some() {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        }
        if i < n {
            i += 1;
            line += 1;
        }
        out.push((rec_line, error.map_or(Ok(fields), Err)));
    }
    out
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

/// Read `path` and parse every record (parse errors first, in line order); range and type
/// validation is left to the caller.
pub fn read(
    import_dir: Option<&str>,
    files: &BTreeMap<String, Vec<u8>>,
    path: &str,
    ty: Ty,
) -> Result<Vec<Tuple>, String> {
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
    for (line, rec) in records(text) {
        let fields = rec.map_err(|e| format!("line {}: {}", line, e))?;
        if fields.len() != 3 {
            return Err(format!(
                "line {}: expected 3 fields, found {}",
                line,
                fields.len()
            ));
        }
        let s = time(&fields[0]).ok_or_else(|| format!("line {}: invalid start", line))?;
        let e = time(&fields[1]).ok_or_else(|| format!("line {}: invalid end", line))?;
        let v = value(&fields[2], ty).ok_or_else(|| format!("line {}: invalid value", line))?;
        out.push((Some(line), s, e, v));
    }
    Ok(out)
}
