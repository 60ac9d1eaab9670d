//! Values, types and their wire encoding.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Bytes(Vec<u8>),
    /// A stored null (distinct from "nothing here", which is `Option::None` everywhere).
    Null,
}

/// Lens and expression types. `Null` is the type of the `null` literal (and of expressions
/// built only from it); it unifies with every other type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Int,
    Float,
    Str,
    Bool,
    Bytes,
    Null,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Str => "str",
            Ty::Bool => "bool",
            Ty::Bytes => "bytes",
            Ty::Null => "null",
        }
    }

    /// A lens type keyword (any case).
    pub fn from_keyword(s: &str) -> Option<Ty> {
        match s.to_ascii_lowercase().as_str() {
            "int" => Some(Ty::Int),
            "float" => Some(Ty::Float),
            "str" => Some(Ty::Str),
            "bool" => Some(Ty::Bool),
            "bytes" => Some(Ty::Bytes),
            _ => None,
        }
    }

    /// Usable where numbers are needed (the null type unifies with numbers).
    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Null)
    }
}

impl Value {
    pub fn ty(&self) -> Ty {
        match self {
            Value::Int(_) => Ty::Int,
            Value::Float(_) => Ty::Float,
            Value::Str(_) => Ty::Str,
            Value::Bool(_) => Ty::Bool,
            Value::Bytes(_) => Ty::Bytes,
            Value::Null => Ty::Null,
        }
    }

    /// "Identical" values: same type and same bits (`f0` and `f-0` differ).
    pub fn identical(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Null, Value::Null) => true,
            _ => false,
        }
    }

    /// Wire encoding `<v>`.
    pub fn encode(&self) -> String {
        match self {
            Value::Int(i) => format!("i{}", i),
            Value::Float(f) => format!("f{}", f),
            Value::Str(s) => {
                let mut out = String::from("s");
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
                out
            }
            Value::Bool(b) => (if *b { "b1" } else { "b0" }).to_string(),
            Value::Bytes(bs) => {
                let mut out = String::from("x");
                for b in bs {
                    out.push_str(&format!("{:02x}", b));
                }
                out
            }
            Value::Null => "n".to_string(),
        }
    }
}

/// A written value as stored in a lens of type `ty`: null fits every type, an int is widened
/// for a float lens, anything else must match exactly.
pub fn coerce(lens: &str, ty: Ty, v: &Value) -> Result<Value, String> {
    match (ty, v) {
        (_, Value::Null) => Ok(Value::Null),
        (Ty::Float, Value::Int(i)) => Ok(Value::Float(*i as f64)),
        (t, v) if v.ty() == t => Ok(v.clone()),
        (t, v) => Err(format!(
            "type mismatch on {}: expected {}, got {}",
            lens,
            t.name(),
            v.ty().name()
        )),
    }
}

/// `VAL <v>` or `VAL NIL`.
pub fn encode_opt(v: &Option<Value>) -> String {
    match v {
        Some(v) => format!("VAL {}", v.encode()),
        None => "VAL NIL".to_string(),
    }
}
