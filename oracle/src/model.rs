//! The stored data and the naive read path: visible pieces, point lookups, expression
//! evaluation and folds. Everything is plain Vecs and linear scans.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::parse::{BinOp, Expr, Func, Sel, UnOp};
use crate::value::{Ty, Value};

/// `(start, end, value)` of one visible piece.
pub type Piece = (i64, i64, Value);

/// `Ok(None)` is NIL ("nothing here"); `Err` is the text after `ERR `.
pub type Eval = Result<Option<Value>, String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub id: u64,
    pub written_at: i64,
    /// Sorted by start, non-overlapping. Never changed once written; shared, so that
    /// copying a store (for all-or-nothing writes, and the simulator's snapshots) does not
    /// copy every interval of every layer.
    pub intervals: std::sync::Arc<Vec<Piece>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Lens {
    Base { ty: Ty, layers: Vec<Layer> },
    Derived { expr: Expr },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Db {
    /// The last layer id handed out in this database (ids start at 1).
    pub last_layer: u64,
    pub lenses: BTreeMap<String, Lens>,
}

pub fn err_overflow() -> String {
    "invalid expression: integer overflow".to_string()
}

pub fn err_float() -> String {
    "invalid expression: float overflow".to_string()
}

pub fn err_div0() -> String {
    "invalid expression: division by zero".to_string()
}

fn to_i64(v: i128) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| err_overflow())
}

fn finite(f: f64) -> Result<Value, String> {
    if f.is_finite() {
        Ok(Value::Float(f))
    } else {
        Err(err_float())
    }
}

/// Fold `f` over pieces (already clipped to the window), as REDUCE does.
pub fn fold(f: Func, pieces: &[Piece]) -> Eval {
    match f {
        Func::Count => return Ok(Some(Value::Int(pieces.len() as i64))),
        Func::Duration => {
            let mut total: i128 = 0;
            for (s, e, _) in pieces {
                total += (*e as i128) - (*s as i128);
            }
            return Ok(Some(Value::Int(to_i64(total)?)));
        }
        Func::First => return Ok(pieces.first().map(|p| p.2.clone())),
        Func::Last => return Ok(pieces.last().map(|p| p.2.clone())),
        _ => {}
    }
    // Numeric folds skip stored nulls.
    let mut vals: Vec<(i128, &Value)> = Vec::new();
    for (s, e, v) in pieces {
        if !matches!(v, Value::Null) {
            vals.push(((*e as i128) - (*s as i128), v));
        }
    }
    if vals.is_empty() {
        return Ok(None);
    }
    let all_int = vals.iter().all(|(_, v)| matches!(v, Value::Int(_)));
    if all_int {
        let ints: Vec<(i128, i128)> = vals
            .iter()
            .map(|(len, v)| match v {
                Value::Int(i) => (*len, *i as i128),
                _ => unreachable!(),
            })
            .collect();
        let sum: i128 = ints.iter().map(|(_, v)| *v).sum();
        let mut weighted: i128 = 0;
        let mut total_len: i128 = 0;
        for (len, v) in &ints {
            weighted = weighted
                .checked_add(v.checked_mul(*len).ok_or_else(err_overflow)?)
                .ok_or_else(err_overflow)?;
            total_len += len;
        }
        let v = match f {
            Func::Sum => Value::Int(to_i64(sum)?),
            Func::Min => Value::Int(ints.iter().map(|(_, v)| *v).min().unwrap() as i64),
            Func::Max => Value::Int(ints.iter().map(|(_, v)| *v).max().unwrap() as i64),
            Func::Avg => finite(sum as f64 / ints.len() as f64)?,
            Func::Twavg => finite(weighted as f64 / total_len as f64)?,
            Func::Integral => Value::Int(to_i64(weighted)?),
            _ => unreachable!(),
        };
        return Ok(Some(v));
    }
    let mut floats: Vec<(i128, f64)> = Vec::new();
    for (len, v) in &vals {
        let f = match v {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            other => {
                return Err(format!(
                    "invalid expression: {} needs numbers, got {}",
                    f.name(),
                    other.ty().name()
                ))
            }
        };
        floats.push((*len, f));
    }
    let mut sum = 0.0;
    let mut weighted = 0.0;
    let mut total_len: i128 = 0;
    let mut min = floats[0].1;
    let mut max = floats[0].1;
    for (len, v) in &floats {
        sum += v;
        weighted += v * (*len as f64);
        total_len += len;
        if *v < min {
            min = *v;
        }
        if *v > max {
            max = *v;
        }
    }
    let v = match f {
        Func::Sum => finite(sum)?,
        Func::Min => finite(min)?,
        Func::Max => finite(max)?,
        Func::Avg => finite(sum / floats.len() as f64)?,
        Func::Twavg => finite(weighted / total_len as f64)?,
        Func::Integral => finite(weighted)?,
        _ => unreachable!(),
    };
    Ok(Some(v))
}

/// Clip pieces to `[s, e)`.
fn clip(pieces: &[Piece], s: i64, e: i64) -> Vec<Piece> {
    let mut out = Vec::new();
    for (a, b, v) in pieces {
        let cs = (*a).max(s);
        let ce = (*b).min(e);
        if cs < ce {
            out.push((cs, ce, v.clone()));
        }
    }
    out
}

/// The value of the piece covering `t`, if any.
fn piece_at(pieces: &[Piece], t: i64) -> Option<Value> {
    pieces
        .iter()
        .find(|(s, e, _)| *s <= t && t < *e)
        .map(|p| p.2.clone())
}

/// The interval of a sorted layer that covers `t`.
fn cover(intervals: &[Piece], t: i64) -> Option<&Piece> {
    let idx = intervals.partition_point(|iv| iv.0 <= t);
    if idx > 0 && intervals[idx - 1].1 > t {
        Some(&intervals[idx - 1])
    } else {
        None
    }
}

// ---------------------------------------------------------------- expression evaluation

fn un_op(op: UnOp, v: Value) -> Result<Value, String> {
    match (op, v) {
        (UnOp::Neg, Value::Int(i)) => i.checked_neg().map(Value::Int).ok_or_else(err_overflow),
        (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
        (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (op, v) => Err(format!(
            "invalid expression: operator {} cannot take {}",
            if op == UnOp::Neg { "-" } else { "!" },
            v.ty().name()
        )),
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn compare(l: &Value, r: &Value) -> Option<Ordering> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Str(a), Value::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => as_f64(l)?.partial_cmp(&as_f64(r)?),
    }
}

fn bin_op(op: BinOp, l: Value, r: Value) -> Result<Value, String> {
    let type_err = |l: &Value, r: &Value| {
        Err(format!(
            "invalid expression: operator {} cannot take {} and {}",
            op.symbol(),
            l.ty().name(),
            r.ty().name()
        ))
    };
    match op {
        BinOp::And | BinOp::Or => match (&l, &r) {
            (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(if op == BinOp::And {
                *a && *b
            } else {
                *a || *b
            })),
            _ => type_err(&l, &r),
        },
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match compare(&l, &r) {
                Some(o) => o,
                None => return type_err(&l, &r),
            };
            Ok(Value::Bool(match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::Ne => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::Le => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        _ => {
            if let (Value::Int(a), Value::Int(b)) = (&l, &r) {
                let (a, b) = (*a, *b);
                let res = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div => {
                        if b == 0 {
                            return Err(err_div0());
                        }
                        a.checked_div(b)
                    }
                    _ => {
                        if b == 0 {
                            return Err(err_div0());
                        }
                        if b == -1 {
                            Some(0)
                        } else {
                            Some(a % b)
                        }
                    }
                };
                return res.map(Value::Int).ok_or_else(err_overflow);
            }
            let (a, b) = match (as_f64(&l), as_f64(&r)) {
                (Some(a), Some(b)) => (a, b),
                _ => return type_err(&l, &r),
            };
            let res = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(err_div0());
                    }
                    a / b
                }
                _ => {
                    if b == 0.0 {
                        return Err(err_div0());
                    }
                    a % b
                }
            };
            finite(res)
        }
    }
}

/// Evaluate an expression; `leaf` answers lens references and rolling calls.
/// Both operands are always evaluated (left first); then NIL wins, then null.
pub fn eval(e: &Expr, leaf: &mut dyn FnMut(&Expr) -> Eval) -> Eval {
    match e {
        Expr::Lit(v) => Ok(Some(v.clone())),
        Expr::Ref(_) | Expr::Call(..) => leaf(e),
        Expr::Un(op, x) => match eval(x, leaf)? {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Value::Null)),
            Some(v) => Ok(Some(un_op(*op, v)?)),
        },
        Expr::Bin(op, a, b) => {
            let l = eval(a, leaf)?;
            let r = eval(b, leaf)?;
            match (l, r) {
                (Some(l), Some(r)) => {
                    if matches!(l, Value::Null) || matches!(r, Value::Null) {
                        Ok(Some(Value::Null))
                    } else {
                        Ok(Some(bin_op(*op, l, r)?))
                    }
                }
                _ => Ok(None),
            }
        }
    }
}

// ---------------------------------------------------------------- reader

/// Inputs of an expression over one `[s, e)`: the pieces of every referenced lens, and of
/// every rolling call's lens over the widened window.
struct Inputs {
    refs: Vec<(String, Vec<Piece>)>,
    calls: Vec<(String, i64, i64, Vec<Piece>)>,
}

impl Inputs {
    fn leaf_at(&self, node: &Expr, t: i64) -> Eval {
        match node {
            Expr::Ref(n) => {
                let ps = &self.refs.iter().find(|(m, _)| m == n).unwrap().1;
                Ok(piece_at(ps, t))
            }
            Expr::Call(f, n, a, b) => {
                let (a, b) = (*a, *b);
                let ps = &self
                    .calls
                    .iter()
                    .find(|(m, x, y, _)| m == n && *x == a && *y == b)
                    .unwrap()
                    .3;
                fold(*f, &clip(ps, t.saturating_add(a), t.saturating_add(b)))
            }
            _ => unreachable!(),
        }
    }
}

/// A read of one database under one selector.
pub struct Reader<'a> {
    pub db: &'a Db,
    pub sel: Sel,
}

impl Reader<'_> {
    fn lens(&self, name: &str) -> Result<&Lens, String> {
        self.db
            .lenses
            .get(name)
            .ok_or_else(|| format!("unknown lens: {}", name))
    }

    fn admits(&self, layer: &Layer) -> bool {
        match self.sel {
            Sel::All => true,
            Sel::AsOf(ms) => layer.written_at <= ms,
            Sel::Layer(id) => id >= 0 && layer.id == id as u64,
        }
    }

    /// The type of a lens (a derived lens has the type of its expression).
    pub fn lens_ty(&self, name: &str) -> Result<Ty, String> {
        match self.lens(name)? {
            Lens::Base { ty, .. } => Ok(*ty),
            Lens::Derived { expr } => self.type_of(expr),
        }
    }

    /// Static type of an expression, or `invalid expression: ...`.
    pub fn type_of(&self, e: &Expr) -> Result<Ty, String> {
        let bad = |why: String| Err(format!("invalid expression: {}", why));
        match e {
            Expr::Lit(v) => Ok(v.ty()),
            Expr::Ref(n) => self.lens_ty(n),
            Expr::Call(f, n, a, b) => {
                let lt = self.lens_ty(n)?;
                if a >= b {
                    return bad(format!(
                        "{} window start must be less than its end",
                        f.name()
                    ));
                }
                if f.needs_number() && !lt.is_numeric() {
                    return bad(format!(
                        "{} needs an int or float lens, got {}",
                        f.name(),
                        lt.name()
                    ));
                }
                Ok(match f {
                    Func::Count | Func::Duration => Ty::Int,
                    Func::Avg | Func::Twavg => Ty::Float,
                    _ => lt,
                })
            }
            Expr::Un(UnOp::Neg, x) => {
                let t = self.type_of(x)?;
                if t.is_numeric() {
                    Ok(t)
                } else {
                    bad(format!(
                        "operator - needs an int or float operand, got {}",
                        t.name()
                    ))
                }
            }
            Expr::Un(UnOp::Not, x) => {
                let t = self.type_of(x)?;
                if matches!(t, Ty::Bool | Ty::Null) {
                    Ok(Ty::Bool)
                } else {
                    bad(format!("operator ! needs a bool operand, got {}", t.name()))
                }
            }
            Expr::Bin(op, a, b) => {
                let ta = self.type_of(a)?;
                let tb = self.type_of(b)?;
                let sym = op.symbol();
                match op {
                    BinOp::Or | BinOp::And => {
                        if matches!(ta, Ty::Bool | Ty::Null) && matches!(tb, Ty::Bool | Ty::Null) {
                            Ok(Ty::Bool)
                        } else {
                            bad(format!(
                                "operator {} needs bool operands, got {} and {}",
                                sym,
                                ta.name(),
                                tb.name()
                            ))
                        }
                    }
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        let ok = ta == tb
                            || ta == Ty::Null
                            || tb == Ty::Null
                            || (ta.is_numeric() && tb.is_numeric());
                        if ok {
                            Ok(Ty::Bool)
                        } else {
                            bad(format!(
                                "operator {} cannot compare {} and {}",
                                sym,
                                ta.name(),
                                tb.name()
                            ))
                        }
                    }
                    _ => match (ta, tb) {
                        (Ty::Int, Ty::Int) => Ok(Ty::Int),
                        (Ty::Float, Ty::Int | Ty::Float) | (Ty::Int, Ty::Float) => Ok(Ty::Float),
                        (Ty::Null, Ty::Int | Ty::Float | Ty::Null) => Ok(tb),
                        (Ty::Int | Ty::Float, Ty::Null) => Ok(ta),
                        _ => bad(format!(
                            "operator {} needs int or float operands, got {} and {}",
                            sym,
                            ta.name(),
                            tb.name()
                        )),
                    },
                }
            }
        }
    }

    /// Visible pieces of a lens over `[s, e)` (empty when `s >= e`).
    pub fn pieces(&self, name: &str, s: i64, e: i64) -> Result<Vec<Piece>, String> {
        if s >= e {
            return Ok(Vec::new());
        }
        match self.lens(name)? {
            Lens::Base { layers, .. } => Ok(self.base_pieces(layers, s, e)),
            Lens::Derived { expr } => self.expr_pieces(expr, s, e),
        }
    }

    /// Newest-wins at every elementary segment; merge runs from one stored interval
    /// (identified by layer id and interval start).
    fn base_pieces(&self, layers: &[Layer], s: i64, e: i64) -> Vec<Piece> {
        let chosen: Vec<&Layer> = layers.iter().filter(|l| self.admits(l)).collect();
        let mut points = vec![s, e];
        for l in &chosen {
            for (a, b, _) in l.intervals.iter() {
                for p in [*a, *b] {
                    if s < p && p < e {
                        points.push(p);
                    }
                }
            }
        }
        points.sort();
        points.dedup();
        let mut out: Vec<(Piece, (u64, i64))> = Vec::new();
        for w in points.windows(2) {
            let (p, q) = (w[0], w[1]);
            let mut hit = None;
            for l in chosen.iter().rev() {
                if let Some(iv) = cover(&l.intervals, p) {
                    hit = Some((l.id, iv));
                    break;
                }
            }
            let Some((id, iv)) = hit else { continue };
            let key = (id, iv.0);
            if let Some(last) = out.last_mut() {
                if last.0 .1 == p && last.1 == key {
                    last.0 .1 = q;
                    continue;
                }
            }
            out.push(((p, q, iv.2.clone()), key));
        }
        out.into_iter().map(|(p, _)| p).collect()
    }

    /// Value of a lens at `t` (newest layer first for a base lens).
    pub fn at(&self, name: &str, t: i64) -> Eval {
        match self.lens(name)? {
            Lens::Base { layers, .. } => {
                for l in layers.iter().rev() {
                    if !self.admits(l) {
                        continue;
                    }
                    if let Some(iv) = cover(&l.intervals, t) {
                        return Ok(Some(iv.2.clone()));
                    }
                }
                Ok(None)
            }
            Lens::Derived { expr } => self.expr_at(expr, t),
        }
    }

    /// Evaluate an expression exactly at `t`.
    pub fn expr_at(&self, e: &Expr, t: i64) -> Eval {
        eval(e, &mut |node| match node {
            Expr::Ref(n) => self.at(n, t),
            Expr::Call(f, n, a, b) => {
                let (a, b) = (*a, *b);
                let ps = self.pieces(n, t.saturating_add(a), t.saturating_add(b))?;
                fold(*f, &ps)
            }
            _ => unreachable!(),
        })
    }

    /// Collect the inputs of `expr` over `[s, e)` and the boundary points they induce
    /// (only points strictly inside `(s, e)`).
    fn inputs(&self, expr: &Expr, s: i64, e: i64) -> Result<(Vec<i64>, Inputs), String> {
        let mut nodes = Vec::new();
        leaves(expr, &mut nodes);
        let mut inp = Inputs {
            refs: Vec::new(),
            calls: Vec::new(),
        };
        let mut points = Vec::new();
        let add = |p: i128, points: &mut Vec<i64>| {
            if (s as i128) < p && p < e as i128 {
                points.push(p as i64);
            }
        };
        for node in nodes {
            match node {
                Expr::Ref(n) => {
                    if inp.refs.iter().any(|(m, _)| m == n) {
                        continue;
                    }
                    let ps = self.pieces(n, s, e)?;
                    for (a, b, _) in &ps {
                        add(*a as i128, &mut points);
                        add(*b as i128, &mut points);
                    }
                    inp.refs.push((n.clone(), ps));
                }
                Expr::Call(_, n, a, b) => {
                    let (a, b) = (*a, *b);
                    if inp
                        .calls
                        .iter()
                        .any(|(m, x, y, _)| m == n && *x == a && *y == b)
                    {
                        continue;
                    }
                    // A piece p overlaps [t+a, t+b) exactly for t in [p.start-b+1, p.end-a).
                    let ps = self.pieces(n, s.saturating_add(a), e.saturating_add(b))?;
                    for (ps_, pe, _) in &ps {
                        add(*ps_ as i128 - b as i128 + 1, &mut points);
                        add(*pe as i128 - a as i128, &mut points);
                    }
                    inp.calls.push((n.clone(), a, b, ps));
                }
                _ => unreachable!(),
            }
        }
        Ok((points, inp))
    }

    /// Pieces of a derived expression over `[s, e)`.
    pub fn expr_pieces(&self, expr: &Expr, s: i64, e: i64) -> Result<Vec<Piece>, String> {
        if s >= e {
            return Ok(Vec::new());
        }
        let (mut points, inp) = self.inputs(expr, s, e)?;
        points.push(s);
        points.push(e);
        points.sort();
        points.dedup();
        let mut out: Vec<Piece> = Vec::new();
        for w in points.windows(2) {
            let (p, q) = (w[0], w[1]);
            let Some(v) = eval(expr, &mut |node| inp.leaf_at(node, p))? else {
                continue;
            };
            if let Some(last) = out.last_mut() {
                if last.1 == p && last.2.identical(&v) {
                    last.1 = q;
                    continue;
                }
            }
            out.push((p, q, v));
        }
        Ok(out)
    }

    /// RANGE ... WHERE: keep the parts of `pieces` where `filter` is exactly true.
    pub fn filter(
        &self,
        pieces: &[Piece],
        filter: &Expr,
        s: i64,
        e: i64,
    ) -> Result<Vec<Piece>, String> {
        let (fpoints, inp) = self.inputs(filter, s, e)?;
        let mut out: Vec<(Piece, usize)> = Vec::new();
        for (idx, (ps, pe, v)) in pieces.iter().enumerate() {
            let mut points = vec![*ps, *pe];
            for p in &fpoints {
                if *ps < *p && *p < *pe {
                    points.push(*p);
                }
            }
            points.sort();
            points.dedup();
            for w in points.windows(2) {
                let (p, q) = (w[0], w[1]);
                let keep = eval(filter, &mut |node| inp.leaf_at(node, p))?;
                if !matches!(keep, Some(Value::Bool(true))) {
                    continue;
                }
                if let Some(last) = out.last_mut() {
                    if last.1 == idx && last.0 .1 == p {
                        last.0 .1 = q;
                        continue;
                    }
                }
                out.push(((p, q, v.clone()), idx));
            }
        }
        Ok(out.into_iter().map(|(p, _)| p).collect())
    }
}

/// The `Ref` and `Call` nodes of an expression, in textual order.
fn leaves<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::Lit(_) => {}
        Expr::Ref(_) | Expr::Call(..) => out.push(e),
        Expr::Un(_, x) => leaves(x, out),
        Expr::Bin(_, a, b) => {
            leaves(a, out);
            leaves(b, out);
        }
    }
}
