//! Static typing and evaluation of TauQL expressions (DERIVE and WHERE).
//!
//! Types are checked once, at DERIVE time, so evaluation can only fail on data:
//! division by zero, int overflow, a non-finite float. NIL ("nothing stored here")
//! propagates; a stored null propagates as null (docs/SEMANTICS.md).

use crate::ast::{BinOp, Expr, Func};
use crate::catalog::Res;
use crate::value::{Type, Value};
use std::cmp::Ordering;

/// A static type: one of the five, or `Null` for an expression that is always null
/// (the `null` literal), which unifies with everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    T(Type),
    Null,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::T(t) => t.name(),
            Ty::Null => "null",
        }
    }
    fn numeric(self) -> bool {
        matches!(self, Ty::Null | Ty::T(Type::Int) | Ty::T(Type::Float))
    }
}

fn invalid(msg: String) -> String {
    format!("invalid expression: {msg}")
}

/// The type of a rolling aggregate over a lens of type `lens`.
pub fn func_type(func: Func, lens: Ty) -> Res<Ty> {
    if func.needs_numbers() && !lens.numeric() {
        return Err(invalid(format!(
            "{} needs an int or float lens, got {}",
            func.name(),
            lens.name()
        )));
    }
    Ok(match func {
        Func::Count | Func::Duration => Ty::T(Type::Int),
        Func::Avg | Func::Twavg => Ty::T(Type::Float),
        _ => lens,
    })
}

/// Type-check `e`; `lens_ty` gives the type of a lens name (or its unknown-lens error).
pub fn type_check(e: &Expr, lens_ty: &dyn Fn(&str) -> Res<Ty>) -> Res<Ty> {
    use Type::*;
    Ok(match e {
        Expr::Lit(v) => v.type_of().map_or(Ty::Null, Ty::T),
        Expr::Lens(n) => lens_ty(n)?,
        Expr::Roll {
            func,
            lens,
            rel_start,
            rel_end,
        } => {
            let t = lens_ty(lens)?;
            if rel_start >= rel_end {
                return Err(invalid(format!(
                    "{} window start must be less than its end",
                    func.name()
                )));
            }
            func_type(*func, t)?
        }
        Expr::Neg(x) => {
            let t = type_check(x, lens_ty)?;
            if !t.numeric() {
                return Err(invalid(format!(
                    "operator - needs an int or float operand, got {}",
                    t.name()
                )));
            }
            t
        }
        Expr::Not(x) => {
            let t = type_check(x, lens_ty)?;
            if !matches!(t, Ty::Null | Ty::T(Bool)) {
                return Err(invalid(format!(
                    "operator ! needs a bool operand, got {}",
                    t.name()
                )));
            }
            Ty::T(Bool)
        }
        Expr::Bin(op, a, b) => {
            let (ta, tb) = (type_check(a, lens_ty)?, type_check(b, lens_ty)?);
            let (sym, a_, b_) = (op.symbol(), ta.name(), tb.name());
            let bad = || {
                Err(invalid(match op {
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                        format!("operator {sym} needs int or float operands, got {a_} and {b_}")
                    }
                    BinOp::And | BinOp::Or => {
                        format!("operator {sym} needs bool operands, got {a_} and {b_}")
                    }
                    _ => format!("operator {sym} cannot compare {a_} and {b_}"),
                }))
            };
            match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                    if !ta.numeric() || !tb.numeric() {
                        return bad();
                    }
                    match (ta, tb) {
                        (Ty::T(Float), _) | (_, Ty::T(Float)) => Ty::T(Float),
                        (Ty::Null, t) | (t, Ty::Null) => t,
                        _ => Ty::T(Int),
                    }
                }
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    let ok = match (ta, tb) {
                        (Ty::Null, _) | (_, Ty::Null) => true,
                        (x, y) if x.numeric() && y.numeric() => true,
                        (x, y) => x == y,
                    };
                    if !ok {
                        return bad();
                    }
                    Ty::T(Bool)
                }
                BinOp::And | BinOp::Or => {
                    let is_bool = |t| matches!(t, Ty::Null | Ty::T(Bool));
                    if !is_bool(ta) || !is_bool(tb) {
                        return bad();
                    }
                    Ty::T(Bool)
                }
            }
        }
    })
}

/// Where an expression gets its inputs at one evaluation point.
pub trait Env {
    /// The value of lens `name` here; `None` is NIL.
    fn lens(&mut self, name: &str) -> Res<Option<Value>>;
    /// `func` over `[t + a, t + b)` of lens `name`; `None` is NIL.
    fn roll(&mut self, func: Func, name: &str, a: i64, b: i64) -> Res<Option<Value>>;
}

pub fn overflow() -> String {
    invalid("integer overflow".into())
}

pub fn float_ok(f: f64) -> Res<Value> {
    if f.is_finite() {
        Ok(Value::Float(f))
    } else {
        Err(invalid("float overflow".into()))
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => unreachable!("type-checked numeric"),
    }
}

/// Evaluate `e`. Both operands of a binary operator are always evaluated (left first),
/// so an error anywhere is reported even next to a NIL.
pub fn eval(e: &Expr, env: &mut dyn Env) -> Res<Option<Value>> {
    Ok(match e {
        Expr::Lit(v) => Some(v.clone()),
        Expr::Lens(n) => env.lens(n)?,
        Expr::Roll {
            func,
            lens,
            rel_start,
            rel_end,
        } => env.roll(*func, lens, *rel_start, *rel_end)?,
        Expr::Neg(x) => match eval(x, env)? {
            None => None,
            Some(Value::Null) => Some(Value::Null),
            Some(Value::Int(i)) => Some(Value::Int(i.checked_neg().ok_or_else(overflow)?)),
            Some(Value::Float(f)) => Some(Value::Float(-f)),
            Some(v) => return Err(invalid(format!("cannot negate {}", v.encode()))),
        },
        Expr::Not(x) => match eval(x, env)? {
            None => None,
            Some(Value::Bool(b)) => Some(Value::Bool(!b)),
            Some(_) => Some(Value::Null),
        },
        Expr::Bin(op, a, b) => {
            let va = eval(a, env)?;
            let vb = eval(b, env)?;
            match (va, vb) {
                (Some(x), Some(y)) => Some(binary(*op, &x, &y)?),
                _ => None,
            }
        }
    })
}

fn binary(op: BinOp, x: &Value, y: &Value) -> Res<Value> {
    use Value::*;
    if matches!(x, Null) || matches!(y, Null) {
        return Ok(Null);
    }
    Ok(match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => match (x, y) {
            (Int(a), Int(b)) => {
                let (a, b) = (*a, *b);
                let r = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div => {
                        if b == 0 {
                            return Err(invalid("division by zero".into()));
                        }
                        a.checked_div(b)
                    }
                    _ => {
                        if b == 0 {
                            return Err(invalid("division by zero".into()));
                        }
                        // i64::MIN % -1 is mathematically 0: no overflow.
                        Some(a.wrapping_rem(b))
                    }
                };
                Int(r.ok_or_else(overflow)?)
            }
            _ => {
                let (a, b) = (as_f64(x), as_f64(y));
                let r = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div | BinOp::Rem if b == 0.0 => {
                        return Err(invalid("division by zero".into()))
                    }
                    BinOp::Div => a / b,
                    _ => a % b,
                };
                float_ok(r)?
            }
        },
        BinOp::And | BinOp::Or => match (x, y) {
            (Bool(a), Bool(b)) => Bool(if op == BinOp::And { *a && *b } else { *a || *b }),
            _ => return Err(invalid("&& and || need bools".into())),
        },
        _ => {
            let ord = compare(x, y)?;
            Bool(match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::Ne => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
    })
}

/// Order two non-null values of comparable types (ints meeting floats are widened).
pub fn compare(x: &Value, y: &Value) -> Res<Ordering> {
    use Value::*;
    Ok(match (x, y) {
        (Int(a), Int(b)) => a.cmp(b),
        (Int(_) | Float(_), Int(_) | Float(_)) => as_f64(x)
            .partial_cmp(&as_f64(y))
            .expect("floats are never NaN"),
        (Str(a), Str(b)) => a.cmp(b),
        (Bytes(a), Bytes(b)) => a.cmp(b),
        (Bool(a), Bool(b)) => a.cmp(b),
        _ => return Err(invalid("cannot compare values of different types".into())),
    })
}
