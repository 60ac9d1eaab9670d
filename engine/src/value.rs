//! Values, their types, and the reply encoding `<v>` of SPEC ("Replies").
//!
//! Strings and bytes are `Arc`-backed so that copying a value out of a layer (a RANGE
//! piece, a snapshot handed to a job) is a pointer bump, never a deep copy.

use std::fmt::{self, Write as _};
use std::sync::Arc;

/// The five storable types. `null` is a value of every type, so it has no type of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Type {
    Int,
    Float,
    Str,
    Bool,
    Bytes,
}

impl Type {
    pub const ALL: [Type; 5] = [Type::Int, Type::Float, Type::Str, Type::Bool, Type::Bytes];

    pub fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::Float => "float",
            Type::Str => "str",
            Type::Bool => "bool",
            Type::Bytes => "bytes",
        }
    }

    pub fn from_name(s: &str) -> Option<Type> {
        Type::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Bool(bool),
    Bytes(Arc<[u8]>),
}

/// Identity, not numeric equality: `f0` and `f-0` differ, as their encodings do. This is
/// the equality used to merge adjacent derived pieces and by every round-trip law.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Value {}

impl Value {
    /// The literal's own type; `None` for null.
    pub fn type_of(&self) -> Option<Type> {
        match self {
            Value::Null => None,
            Value::Int(_) => Some(Type::Int),
            Value::Float(_) => Some(Type::Float),
            Value::Str(_) => Some(Type::Str),
            Value::Bool(_) => Some(Type::Bool),
            Value::Bytes(_) => Some(Type::Bytes),
        }
    }

    /// Coerce a literal to a lens type: null fits every type, an int widens to float,
    /// nothing else is converted. `Err` carries the literal's type for the message.
    pub fn coerce(self, ty: Type) -> Result<Value, Type> {
        match (self, ty) {
            (Value::Null, _) => Ok(Value::Null),
            (Value::Int(i), Type::Float) => Ok(Value::Float(i as f64)),
            (v, ty) => {
                let got = v.type_of().expect("null handled above");
                if got == ty {
                    Ok(v)
                } else {
                    Err(got)
                }
            }
        }
    }

    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn bytes(b: &[u8]) -> Value {
        Value::Bytes(Arc::from(b))
    }

    /// Append the reply encoding `<v>` to `out`.
    pub fn encode_into(&self, out: &mut String) {
        match self {
            Value::Null => out.push('n'),
            Value::Int(i) => {
                out.push('i');
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                out.push('f');
                push_float(out, *f);
            }
            Value::Str(s) => {
                out.push('s');
                for c in s.chars() {
                    match c {
                        '%' => out.push_str("%25"),
                        ' ' => out.push_str("%20"),
                        ':' => out.push_str("%3A"),
                        ';' => out.push_str("%3B"),
                        '\n' => out.push_str("%0A"),
                        '\r' => out.push_str("%0D"),
                        c => out.push(c),
                    }
                }
            }
            Value::Bool(b) => out.push_str(if *b { "b1" } else { "b0" }),
            Value::Bytes(b) => {
                out.push('x');
                push_hex(out, b);
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        self.encode_into(&mut s);
        s
    }

    /// Inverse of [`Value::encode`]; used by clients and by the round-trip law.
    pub fn decode(s: &str) -> Result<Value, String> {
        let mut chars = s.chars();
        let tag = chars.next().ok_or("empty value")?;
        let rest = chars.as_str();
        match tag {
            'n' if rest.is_empty() => Ok(Value::Null),
            'i' => rest
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|e| format!("bad int {rest:?}: {e}")),
            'f' => {
                let ok = !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
                match rest.parse::<f64>() {
                    Ok(f) if ok && f.is_finite() => Ok(Value::Float(f)),
                    _ => Err(format!("bad float {rest:?}")),
                }
            }
            's' => {
                let mut out = String::with_capacity(rest.len());
                let b = rest.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'%' {
                        let code = rest.get(i + 1..i + 3).ok_or("truncated escape")?;
                        let c = match code {
                            "25" => '%',
                            "20" => ' ',
                            "3A" => ':',
                            "3B" => ';',
                            "0A" => '\n',
                            "0D" => '\r',
                            _ => return Err(format!("bad escape %{code}")),
                        };
                        out.push(c);
                        i += 3;
                    } else {
                        // Copy one whole UTF-8 character.
                        let c = rest[i..].chars().next().expect("in bounds");
                        out.push(c);
                        i += c.len_utf8();
                    }
                }
                Ok(Value::str(&out))
            }
            'b' if rest == "1" => Ok(Value::Bool(true)),
            'b' if rest == "0" => Ok(Value::Bool(false)),
            'x' => parse_hex(rest).map(|v| Value::bytes(&v)),
            _ => Err(format!("bad value {s:?}")),
        }
    }
}

/// Shortest round-trip decimal, never an exponent, no trailing `.0` (SPEC). Rust's
/// `Display` for `f64` is exactly that; finite values only reach here (see SEMANTICS).
pub fn push_float(out: &mut String, f: f64) {
    debug_assert!(f.is_finite(), "non-finite floats never reach encoding");
    let _ = write!(out, "{f}");
}

pub fn push_hex(out: &mut String, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &x in b {
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 15) as usize] as char);
    }
}

pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let digit = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("bad hex digit {:?}", c as char))
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_float_examples() {
        assert_eq!(Value::Float(20.0).encode(), "f20");
        assert_eq!(Value::Float(0.1 + 0.2).encode(), "f0.30000000000000004");
        assert_eq!(Value::Float(1e21).encode(), "f1000000000000000000000");
        assert_eq!(Value::Float(1e-7).encode(), "f0.0000001");
        assert_eq!(Value::Float(-0.0).encode(), "f-0");
    }

    #[test]
    fn spec_string_escapes() {
        let v = Value::str("a b:c;d%e\nf");
        assert_eq!(v.encode(), "sa%20b%3Ac%3Bd%25e%0Af");
        assert_eq!(Value::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn other_encodings() {
        assert_eq!(Value::Int(-5).encode(), "i-5");
        assert_eq!(Value::Bool(true).encode(), "b1");
        assert_eq!(Value::bytes(&[0xde, 0xad]).encode(), "xdead");
        assert_eq!(Value::Null.encode(), "n");
        assert!(Value::decode("q1").is_err());
        assert!(Value::decode("f1e5").is_err());
    }

    #[test]
    fn coercion_widens_int_only() {
        assert_eq!(Value::Int(20).coerce(Type::Float), Ok(Value::Float(20.0)));
        assert_eq!(Value::Float(1.5).coerce(Type::Int), Err(Type::Float));
        assert_eq!(Value::Null.coerce(Type::Bytes), Ok(Value::Null));
    }
}
