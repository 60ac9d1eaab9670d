//! Reads: AT, RANGE (with WHERE, LIMIT, OFFSET), REDUCE and HISTORY over one database
//! snapshot. Pure functions of `&Database`, so the engine can run them inline or hand a
//! snapshot to an off-loop job and get the same answer.
//!
//! Base lenses are read through the sweep (one pass over all runs). A derived lens is
//! evaluated per elementary segment: the boundaries are those of every input's pieces,
//! and for a rolling window those of its lens shifted by the window offsets.

use crate::ast::{Expr, Func, Selector};
use crate::catalog::{BaseLens, Database, Lens, Res};
use crate::expr::{eval, type_check, Env, Ty};
use crate::reduce::Fold;
use crate::sweep;
use crate::value::{Type, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Derived lenses over derived lenses: a limit on everything.
const DEPTH_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub start: i64,
    pub end: i64,
    pub value: Value,
}

fn too_deep() -> String {
    "invalid expression: derived lenses nested too deeply".into()
}

fn base_of<'a>(db: &'a Database, name: &str) -> Res<&'a BaseLens> {
    match db.lens(name)? {
        Lens::Base(b) => Ok(b),
        Lens::Derived(_) => Err("invalid expression: LAYER needs a base lens".into()),
    }
}

/// `LAYER id` on the lens the statement names must exist.
fn check_target(db: &Database, name: &str, sel: Selector) -> Res<()> {
    if let Selector::Layer(id) = sel {
        if base_of(db, name)?.layer_by_id(id).is_none() {
            return Err(format!("unknown layer: {id}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- AT

pub fn at(db: &Database, name: &str, t: i64, sel: Selector) -> Res<Option<Value>> {
    check_target(db, name, sel)?;
    at_inner(db, name, t, sel, 0)
}

fn at_inner(db: &Database, name: &str, t: i64, sel: Selector, depth: usize) -> Res<Option<Value>> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    match db.lens(name)? {
        Lens::Base(b) => Ok(match sel {
            // Hot path: newest run first, no allocation.
            Selector::Now => b
                .runs
                .iter()
                .rev()
                .find_map(|r| r.segs().find(t).map(|i| r.segs().values[i].clone())),
            _ => sweep::point(&b.views(sel), t).cloned(),
        }),
        Lens::Derived(d) => {
            let mut env = PointEnv {
                db,
                t,
                sel,
                depth,
                memo: BTreeMap::new(),
            };
            eval(&d.expr, &mut env)
        }
    }
}

struct PointEnv<'a> {
    db: &'a Database,
    t: i64,
    sel: Selector,
    depth: usize,
    memo: BTreeMap<String, Option<Value>>,
}

impl Env for PointEnv<'_> {
    fn lens(&mut self, name: &str) -> Res<Option<Value>> {
        if let Some(v) = self.memo.get(name) {
            return Ok(v.clone());
        }
        let v = at_inner(self.db, name, self.t, self.sel, self.depth + 1)?;
        self.memo.insert(name.to_string(), v.clone());
        Ok(v)
    }
    fn roll(&mut self, func: Func, name: &str, a: i64, b: i64) -> Res<Option<Value>> {
        let (s, e) = (self.t.saturating_add(a), self.t.saturating_add(b));
        reduce_inner(self.db, name, s, e, self.sel, func, self.depth + 1)
    }
}

// ---------------------------------------------------------------- pieces

/// The pieces of any lens over `[s, e)`: visible pieces of a base lens, or the
/// evaluated segments of a derived one.
pub fn pieces(
    db: &Database,
    name: &str,
    s: i64,
    e: i64,
    sel: Selector,
    depth: usize,
) -> Res<Vec<Piece>> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    match db.lens(name)? {
        Lens::Base(b) => {
            let mut out = Vec::new();
            sweep::visible(&b.views(sel), s, e, |a, z, v| {
                out.push(Piece {
                    start: a,
                    end: z,
                    value: v.clone(),
                })
            });
            Ok(out)
        }
        Lens::Derived(d) => expr_pieces(db, &d.expr, s, e, sel, depth + 1),
    }
}

/// Inputs of an expression over one query window, gathered once.
struct SegEnv<'a> {
    plain: BTreeMap<&'a str, (Vec<Piece>, usize)>,
    rolls: BTreeMap<(&'a str, i64, i64), Vec<Piece>>,
    t: i64,
}

impl Env for SegEnv<'_> {
    fn lens(&mut self, name: &str) -> Res<Option<Value>> {
        let (ps, i) = self.plain.get_mut(name).expect("gathered");
        // Segments are visited in time order, so a cursor suffices.
        while *i < ps.len() && ps[*i].end <= self.t {
            *i += 1;
        }
        Ok(ps
            .get(*i)
            .filter(|p| p.start <= self.t)
            .map(|p| p.value.clone()))
    }
    fn roll(&mut self, func: Func, name: &str, a: i64, b: i64) -> Res<Option<Value>> {
        let ps = self.rolls.get(&(name, a, b)).expect("gathered");
        let (ws, we) = (self.t.saturating_add(a), self.t.saturating_add(b));
        let mut fold = Fold::new(func);
        let mut i = ps.partition_point(|p| p.end <= ws);
        while i < ps.len() && ps[i].start < we {
            let p = &ps[i];
            let (s, e) = (p.start.max(ws), p.end.min(we));
            if s < e {
                fold.push(s, e, &p.value);
            }
            i += 1;
        }
        fold.finish()
    }
}

fn collect_inputs<'a>(e: &'a Expr, plain: &mut Vec<&'a str>, rolls: &mut Vec<(&'a str, i64, i64)>) {
    match e {
        Expr::Lit(_) => {}
        Expr::Lens(n) => plain.push(n),
        Expr::Roll {
            lens,
            rel_start,
            rel_end,
            ..
        } => rolls.push((lens, *rel_start, *rel_end)),
        Expr::Neg(x) | Expr::Not(x) => collect_inputs(x, plain, rolls),
        Expr::Bin(_, a, b) => {
            collect_inputs(a, plain, rolls);
            collect_inputs(b, plain, rolls);
        }
    }
}

/// Evaluate `expr` over `[s, e)` per elementary segment; NIL segments dropped,
/// adjacent identical values merged.
pub fn expr_pieces(
    db: &Database,
    expr: &Expr,
    s: i64,
    e: i64,
    sel: Selector,
    depth: usize,
) -> Res<Vec<Piece>> {
    expr_pieces_in(db, expr, s, e, sel, depth, None)
}

/// As [`expr_pieces`], but only inside the `mask` pieces (a WHERE filter is evaluated
/// only where its lens has pieces, each piece on its own), whose boundaries also split.
fn expr_pieces_in(
    db: &Database,
    expr: &Expr,
    s: i64,
    e: i64,
    sel: Selector,
    depth: usize,
    mask: Option<&[Piece]>,
) -> Res<Vec<Piece>> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    if s >= e {
        return Ok(Vec::new());
    }
    let (mut plain_names, mut roll_keys) = (Vec::new(), Vec::new());
    collect_inputs(expr, &mut plain_names, &mut roll_keys);
    let mut bounds = vec![s, e];
    let mut plain = BTreeMap::new();
    for n in plain_names {
        if plain.contains_key(n) {
            continue;
        }
        let ps = pieces(db, n, s, e, sel, depth + 1)?;
        for p in &ps {
            bounds.push(p.start);
            bounds.push(p.end);
        }
        plain.insert(n, (ps, 0));
    }
    let mut rolls = BTreeMap::new();
    for (n, a, b) in roll_keys {
        if rolls.contains_key(&(n, a, b)) {
            continue;
        }
        let ps = pieces(
            db,
            n,
            s.saturating_add(a),
            e.saturating_add(b),
            sel,
            depth + 1,
        )?;
        // With integer time, piece p overlaps [t+a, t+b) exactly for
        // t in [p.start - b + 1, p.end - a): the window's piece set changes only there.
        for p in &ps {
            // Exact, then clamped: saturating twice would turn MIN+1 - 2 + 1 into MIN+1.
            let first = i128::from(p.start) - i128::from(b) + 1;
            bounds.push(first.clamp(i64::MIN.into(), i64::MAX.into()) as i64);
            bounds.push(p.end.saturating_sub(a));
        }
        rolls.insert((n, a, b), ps);
    }
    if let Some(m) = mask {
        for p in m {
            bounds.push(p.start);
            bounds.push(p.end);
        }
    }
    bounds.retain(|&x| s <= x && x <= e);
    bounds.sort_unstable();
    bounds.dedup();
    let mut env = SegEnv { plain, rolls, t: s };
    let mut out: Vec<Piece> = Vec::new();
    let mut m = 0;
    for w in bounds.windows(2) {
        if let Some(mask) = mask {
            while m < mask.len() && mask[m].end <= w[0] {
                m += 1;
            }
            if m == mask.len() || mask[m].start > w[0] {
                continue;
            }
        }
        env.t = w[0];
        let Some(v) = eval(expr, &mut env)? else {
            continue;
        };
        if let Some(last) = out.last_mut() {
            if last.end == w[0] && last.value == v {
                last.end = w[1];
                continue;
            }
        }
        out.push(Piece {
            start: w[0],
            end: w[1],
            value: v,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- REDUCE

pub fn reduce(
    db: &Database,
    name: &str,
    s: i64,
    e: i64,
    sel: Selector,
    func: Func,
) -> Res<Option<Value>> {
    if s >= e {
        return Err("invalid range (start >= end)".into());
    }
    let lens = db.lens(name)?;
    check_target(db, name, sel)?;
    if func.needs_numbers() {
        if let Ty::T(t) = lens.ty() {
            if !t.is_numeric() {
                return Err(format!(
                    "type mismatch on {name}: expected int or float, got {t}"
                ));
            }
        }
    }
    reduce_inner(db, name, s, e, sel, func, 0)
}

fn reduce_inner(
    db: &Database,
    name: &str,
    s: i64,
    e: i64,
    sel: Selector,
    func: Func,
    depth: usize,
) -> Res<Option<Value>> {
    if depth > DEPTH_MAX {
        return Err(too_deep());
    }
    match db.lens(name)? {
        Lens::Base(b) => {
            let views = b.views(sel);
            let mut fold = Fold::new(func);
            sweep::visible(&views, s, e, |a, z, v| fold.push(a, z, v));
            fold.finish()
        }
        Lens::Derived(_) => {
            let ps = pieces(db, name, s, e, sel, depth)?;
            let mut fold = Fold::new(func);
            for p in &ps {
                fold.push(p.start, p.end, &p.value);
            }
            fold.finish()
        }
    }
}

// ---------------------------------------------------------------- RANGE

pub struct RangeQuery<'a> {
    pub lens: &'a str,
    pub start: i64,
    pub end: i64,
    pub sel: Selector,
    pub filter: Option<&'a Expr>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Format `RANGE n; s:e:v; ...` from a stream of pieces, applying OFFSET then LIMIT.
struct RangeOut {
    body: String,
    n: u64,
    skip: u64,
    take: u64,
}

impl RangeOut {
    fn new(q: &RangeQuery<'_>) -> RangeOut {
        RangeOut {
            body: String::new(),
            n: 0,
            skip: q.offset.unwrap_or(0),
            take: q.limit.unwrap_or(u64::MAX),
        }
    }
    #[inline]
    fn push(&mut self, s: i64, e: i64, v: &Value) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        if self.n >= self.take {
            return;
        }
        self.n += 1;
        let _ = write!(self.body, "; {s}:{e}:");
        v.encode_into(&mut self.body);
    }
    fn finish(self) -> String {
        format!("RANGE {}{}", self.n, self.body)
    }
}

pub fn range(db: &Database, q: &RangeQuery<'_>) -> Res<String> {
    let lens = db.lens(q.lens)?;
    // Unknown names (the filter's too) come before validation of the statement.
    if let Some(f) = q.filter {
        crate::catalog::check_refs(db, f)?;
    }
    if q.start >= q.end {
        return Err("invalid range (start >= end)".into());
    }
    check_target(db, q.lens, q.sel)?;
    let mut out = RangeOut::new(q);
    let Some(filter) = q.filter else {
        match lens {
            Lens::Base(b) => {
                sweep::visible(&b.views(q.sel), q.start, q.end, |a, z, v| out.push(a, z, v));
            }
            Lens::Derived(_) => {
                for p in pieces(db, q.lens, q.start, q.end, q.sel, 0)? {
                    out.push(p.start, p.end, &p.value);
                }
            }
        }
        return Ok(out.finish());
    };
    match type_check(filter, &|n| Ok(db.lens(n)?.ty()))? {
        Ty::T(Type::Bool) | Ty::Null => {}
        t => {
            return Err(format!(
                "invalid expression: WHERE needs a bool expression, got {}",
                t.name()
            ))
        }
    }
    let target = pieces(db, q.lens, q.start, q.end, q.sel, 0)?;
    let keep: Vec<Piece> = expr_pieces_in(db, filter, q.start, q.end, q.sel, 0, Some(&target))?
        .into_iter()
        .filter(|p| p.value == Value::Bool(true))
        .collect();
    // Intersect: kept true-segments are maximal (adjacent equal values were merged), so
    // each overlap of a target piece with one of them is a whole output piece.
    let mut j = 0;
    for p in &target {
        while j < keep.len() && keep[j].end <= p.start {
            j += 1;
        }
        let mut k = j;
        while k < keep.len() && keep[k].start < p.end {
            let (s, e) = (p.start.max(keep[k].start), p.end.min(keep[k].end));
            if s < e {
                out.push(s, e, &p.value);
            }
            k += 1;
        }
    }
    Ok(out.finish())
}

/// A rough count of the stored intervals a read will touch, to decide whether to run
/// it off the loop. Counts intervals of every run inside the window, recursively
/// through derived lenses.
pub fn estimate(db: &Database, name: &str, s: i64, e: i64, depth: usize) -> usize {
    if depth > DEPTH_MAX || s >= e {
        return 0;
    }
    match db.lenses.get(name) {
        None => 0,
        Some(Lens::Base(b)) => b
            .runs
            .iter()
            .map(|r| {
                let segs = r.segs();
                let i = segs.first_ending_after(s);
                let j = segs.starts.partition_point(|&x| x < e);
                j.saturating_sub(i)
            })
            .sum(),
        Some(Lens::Derived(d)) => estimate_expr(db, &d.expr, s, e, depth + 1),
    }
}

pub fn estimate_expr(db: &Database, expr: &Expr, s: i64, e: i64, depth: usize) -> usize {
    let (mut plain, mut rolls) = (Vec::new(), Vec::new());
    collect_inputs(expr, &mut plain, &mut rolls);
    let p: usize = plain.iter().map(|n| estimate(db, n, s, e, depth)).sum();
    let r: usize = rolls
        .iter()
        .map(|(n, a, b)| estimate(db, n, s.saturating_add(*a), e.saturating_add(*b), depth))
        .sum();
    p.saturating_add(r)
}

// ---------------------------------------------------------------- HISTORY

pub fn history(db: &Database, name: &str, span: Option<(i64, i64)>) -> Res<String> {
    let lens = db.lens(name)?;
    if let Some((s, e)) = span {
        if s >= e {
            return Err("invalid range (start >= end)".into());
        }
    }
    let b = match lens {
        Lens::Base(b) => b,
        Lens::Derived(_) => return Err("invalid expression: HISTORY needs a base lens".into()),
    };
    let mut body = String::new();
    let mut n = 0;
    for l in &b.history {
        if let Some((s, e)) = span {
            if !l.segs.overlaps(s, e) {
                continue;
            }
        }
        n += 1;
        let _ = write!(
            body,
            "; {}:{}:{}:{}",
            l.id,
            l.written_at,
            l.min_start(),
            l.max_end()
        );
    }
    Ok(format!("LAYERS {n}{body}"))
}
