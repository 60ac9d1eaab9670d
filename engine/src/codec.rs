//! Binary encoding of a commit unit: one committed write, DDL statement, transaction or
//! user/grant change, as the list of [`Op`]s that `State::commit` applied with one
//! `written_at`. This is the WAL payload (before compression and encryption), so that
//! replaying the log re-runs exactly the same ops and rebuilds the same state, layer ids
//! included.
//!
//! Fixed-width little-endian integers and length-prefixed bytes: simple to audit.
//! Decoding never panics and never trusts a length beyond the bytes it has; a derived
//! lens's expression is stored as its canonical TauQL text and parsed back (the
//! `parse(print(e)) == e` law makes that exact).

use crate::ast::{Perms, Statement};
use crate::catalog::Op;
use crate::layer::Segs;
use crate::value::{Type, Value};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub struct CommitUnit {
    pub written_at: i64,
    pub ops: Vec<Op>,
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        let n = u32::try_from(b.len()).expect("a field over 4 GiB cannot be committed");
        self.u32(n);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn ty(&mut self, t: Type) {
        self.u8(Type::ALL.iter().position(|x| *x == t).expect("a type") as u8);
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u8(0),
            Value::Int(i) => {
                self.u8(1);
                self.i64(*i);
            }
            Value::Float(f) => {
                self.u8(2);
                self.i64(f.to_bits() as i64);
            }
            Value::Str(s) => {
                self.u8(3);
                self.str(s);
            }
            Value::Bool(b) => {
                self.u8(4);
                self.u8(*b as u8);
            }
            Value::Bytes(b) => {
                self.u8(5);
                self.bytes(b);
            }
        }
    }
}

struct In<'a> {
    b: &'a [u8],
    at: usize,
}

type R<T> = Result<T, String>;

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> R<String> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| format!("invalid UTF-8 before byte {}", self.at))
    }
    fn ty(&mut self) -> R<Type> {
        let t = self.u8()?;
        Type::ALL
            .get(t as usize)
            .copied()
            .ok_or_else(|| format!("bad type tag {t}"))
    }
    fn value(&mut self) -> R<Value> {
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Int(self.i64()?),
            2 => {
                let f = f64::from_bits(self.i64()? as u64);
                if !f.is_finite() {
                    return Err("non-finite float".into());
                }
                Value::Float(f)
            }
            3 => Value::Str(Arc::from(self.string()?.as_str())),
            4 => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("bad bool {b}")),
            },
            5 => Value::bytes(self.bytes()?),
            t => return Err(format!("bad value tag {t}")),
        })
    }
}

/// Exactly `encode` of a unit holding one `Op::Append`, without building the op (and so
/// without copying the layer): how a checkpoint writes a layer file.
pub fn encode_append_unit(written_at: i64, db: &str, lens: &str, ty: Type, segs: &Segs) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(32 + segs.len() * 20));
    o.i64(written_at);
    o.u32(1);
    o.u8(6);
    o.str(db);
    o.str(lens);
    o.ty(ty);
    o.u32(segs.len() as u32);
    for i in 0..segs.len() {
        o.i64(segs.starts[i]);
        o.i64(segs.ends[i]);
        o.value(&segs.values[i]);
    }
    o.0
}

/// A derived expression as the WAL stores it (its printed text), read back.
fn parse_expr(text: &str) -> Option<crate::ast::Expr> {
    match crate::parse::parse(&format!("DERIVE LENS x AS {text}")) {
        Ok(Statement::Derive { expr, .. }) => Some(expr),
        _ => None,
    }
}

/// Does `expr` survive the WAL's encoding (print, then parse) unchanged?
pub fn expr_round_trips(expr: &crate::ast::Expr) -> bool {
    parse_expr(&expr.to_string()).as_ref() == Some(expr)
}

pub fn encode(unit: &CommitUnit) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(64));
    o.i64(unit.written_at);
    o.u32(unit.ops.len() as u32);
    for op in &unit.ops {
        match op {
            Op::CreateDatabase(d) => {
                o.u8(1);
                o.str(d);
            }
            Op::DropDatabase(d) => {
                o.u8(2);
                o.str(d);
            }
            Op::CreateLens { db, name, ty } => {
                o.u8(3);
                o.str(db);
                o.str(name);
                o.ty(*ty);
            }
            Op::DropLens { db, name } => {
                o.u8(4);
                o.str(db);
                o.str(name);
            }
            Op::Derive { db, name, expr } => {
                o.u8(5);
                o.str(db);
                o.str(name);
                o.str(&expr.to_string());
            }
            Op::Append { db, lens, ty, segs } => {
                o.u8(6);
                o.str(db);
                o.str(lens);
                o.ty(*ty);
                o.u32(segs.len() as u32);
                for i in 0..segs.len() {
                    o.i64(segs.starts[i]);
                    o.i64(segs.ends[i]);
                    o.value(&segs.values[i]);
                }
            }
            Op::CreateUser { name, phc } => {
                o.u8(7);
                o.str(name);
                o.str(phc);
            }
            Op::DropUser(u) => {
                o.u8(8);
                o.str(u);
            }
            Op::Grant { user, db, perms } | Op::Revoke { user, db, perms } => {
                o.u8(if matches!(op, Op::Grant { .. }) {
                    9
                } else {
                    10
                });
                o.str(user);
                o.str(db);
                o.u8(perms.0);
            }
        }
    }
    o.0
}

pub fn decode(bytes: &[u8]) -> Result<CommitUnit, String> {
    let mut r = In { b: bytes, at: 0 };
    let written_at = r.i64()?;
    let n = r.u32()? as usize;
    // Every op takes at least 5 bytes: refuse absurd counts before allocating.
    if n > bytes.len() / 5 {
        return Err(format!("op count {n} exceeds the record"));
    }
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let op = match r.u8()? {
            1 => Op::CreateDatabase(r.string()?),
            2 => Op::DropDatabase(r.string()?),
            3 => Op::CreateLens {
                db: r.string()?,
                name: r.string()?,
                ty: r.ty()?,
            },
            4 => Op::DropLens {
                db: r.string()?,
                name: r.string()?,
            },
            5 => {
                let db = r.string()?;
                let name = r.string()?;
                let text = r.string()?;
                let expr = parse_expr(&text).ok_or_else(|| {
                    // The text can be long: the start says which expression it was.
                    let head: String = text.chars().take(80).collect();
                    format!(
                        "unparsable derived expression ({} bytes) {head:?}...",
                        text.len()
                    )
                })?;
                Op::Derive { db, name, expr }
            }
            6 => {
                let db = r.string()?;
                let lens = r.string()?;
                let ty = r.ty()?;
                let k = r.u32()? as usize;
                if k == 0 || k > (bytes.len() - r.at) / 17 {
                    return Err(format!("interval count {k} does not fit the record"));
                }
                let mut segs = Segs::with_capacity(k);
                for _ in 0..k {
                    let (s, e, v) = (r.i64()?, r.i64()?, r.value()?);
                    let sorted = segs.ends.last().is_none_or(|&prev| prev <= s);
                    if s >= e || !sorted {
                        return Err("intervals not sorted and disjoint".into());
                    }
                    // Logged values are already of the lens's type (ints widened), or null.
                    if v.type_of().is_some_and(|t| t != ty) {
                        return Err(format!("value of the wrong type for a {ty} lens"));
                    }
                    segs.push(s, e, v);
                }
                segs.seal();
                Op::Append {
                    db,
                    lens,
                    ty,
                    segs: Arc::new(segs),
                }
            }
            7 => Op::CreateUser {
                name: r.string()?,
                phc: r.string()?,
            },
            8 => Op::DropUser(r.string()?),
            t @ (9 | 10) => {
                let (user, db, p) = (r.string()?, r.string()?, r.u8()?);
                if p & !Perms::ALL.0 != 0 {
                    return Err(format!("bad rights {p}"));
                }
                let perms = Perms(p);
                if t == 9 {
                    Op::Grant { user, db, perms }
                } else {
                    Op::Revoke { user, db, perms }
                }
            }
            t => return Err(format!("bad op tag {t}")),
        };
        ops.push(op);
    }
    if r.at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - r.at));
    }
    Ok(CommitUnit { written_at, ops })
}

/// The manifest: which layer files hold the state up to which WAL generation. Recovery
/// rebuilds the catalog from `catalog` (DDL, users and grants, in an order that applies),
/// loads each lens's layers from its files in history order, then replays WAL `gen`.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub gen: u64,
    pub next_file: u64,
    pub written_at: i64,
    pub catalog: Vec<Op>,
    /// Per database: the next layer id (ids are never reused, not even after DROP).
    pub next_layer_ids: Vec<(String, u64)>,
    /// Per base lens: (db, lens, [(file number, layer id)]) in history order.
    pub lenses: Vec<LensFiles>,
    /// Per base lens: its compacted runs, (db, lens, [(file number, lo, hi)]), so that
    /// recovery does not redo compaction.
    pub runs: Vec<RunFiles>,
}

/// Compacted runs in a manifest: (database, lens, [(file number, history lo, history hi)]).
pub type RunFiles = (String, String, Vec<(u64, u64, u64)>);

/// A base lens in a manifest: (database, lens, [(file number, layer id)]).
pub type LensFiles = (String, String, Vec<(u64, u64)>);

pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let mut o = Out(Vec::new());
    o.i64(m.gen as i64);
    o.i64(m.next_file as i64);
    o.i64(m.written_at);
    o.bytes(&encode(&CommitUnit {
        written_at: m.written_at,
        ops: m.catalog.clone(),
    }));
    o.u32(m.next_layer_ids.len() as u32);
    for (db, n) in &m.next_layer_ids {
        o.str(db);
        o.i64(*n as i64);
    }
    o.u32(m.lenses.len() as u32);
    for (db, lens, files) in &m.lenses {
        o.str(db);
        o.str(lens);
        o.u32(files.len() as u32);
        for (f, id) in files {
            o.i64(*f as i64);
            o.i64(*id as i64);
        }
    }
    o.u32(m.runs.len() as u32);
    for (db, lens, runs) in &m.runs {
        o.str(db);
        o.str(lens);
        o.u32(runs.len() as u32);
        for (f, lo, hi) in runs {
            o.i64(*f as i64);
            o.i64(*lo as i64);
            o.i64(*hi as i64);
        }
    }
    o.0
}

/// A compacted run file's payload: its history range, pieces and source tags.
pub fn encode_compacted(c: &crate::layer::Compacted) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(32 + c.segs.len() * 32));
    o.i64(c.lo as i64);
    o.i64(c.hi as i64);
    o.u32(c.segs.len() as u32);
    for i in 0..c.segs.len() {
        o.i64(c.segs.starts[i]);
        o.i64(c.segs.ends[i]);
        o.value(&c.segs.values[i]);
        o.i64(c.src_layer[i] as i64);
        o.u32(c.src_idx[i]);
    }
    o.0
}

pub fn decode_compacted(bytes: &[u8]) -> Result<crate::layer::Compacted, String> {
    let mut r = In { b: bytes, at: 0 };
    let lo = r.i64()? as usize;
    let hi = r.i64()? as usize;
    let n = r.u32()? as usize;
    if n > bytes.len() / 29 || lo >= hi {
        return Err("malformed compacted run".into());
    }
    let mut segs = Segs::with_capacity(n);
    let (mut src_layer, mut src_idx) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (s, e, v) = (r.i64()?, r.i64()?, r.value()?);
        if s >= e || segs.ends.last().is_some_and(|&p| p > s) {
            return Err("compacted run not sorted and disjoint".into());
        }
        segs.push(s, e, v);
        src_layer.push(r.i64()? as u64);
        src_idx.push(r.u32()?);
    }
    if r.at != bytes.len() {
        return Err("trailing bytes in a compacted run".into());
    }
    segs.seal();
    Ok(crate::layer::Compacted {
        lo,
        hi,
        segs,
        src_layer,
        src_idx,
    })
}

pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let mut r = In { b: bytes, at: 0 };
    let gen = r.i64()? as u64;
    let next_file = r.i64()? as u64;
    let written_at = r.i64()?;
    let catalog = decode(r.bytes()?)?.ops;
    let count = |r: &mut In<'_>, min: usize| -> R<usize> {
        let n = r.u32()? as usize;
        if n > (bytes.len() - r.at) / min.max(1) {
            return Err(format!("count {n} exceeds the manifest"));
        }
        Ok(n)
    };
    let mut next_layer_ids = Vec::new();
    for _ in 0..count(&mut r, 12)? {
        next_layer_ids.push((r.string()?, r.i64()? as u64));
    }
    let mut lenses = Vec::new();
    for _ in 0..count(&mut r, 12)? {
        let (db, lens) = (r.string()?, r.string()?);
        let mut files = Vec::new();
        for _ in 0..count(&mut r, 16)? {
            files.push((r.i64()? as u64, r.i64()? as u64));
        }
        lenses.push((db, lens, files));
    }
    let mut runs = Vec::new();
    for _ in 0..count(&mut r, 12)? {
        let (db, lens) = (r.string()?, r.string()?);
        let mut files = Vec::new();
        for _ in 0..count(&mut r, 24)? {
            files.push((r.i64()? as u64, r.i64()? as u64, r.i64()? as u64));
        }
        runs.push((db, lens, files));
    }
    if r.at != bytes.len() {
        return Err("trailing bytes in the manifest".into());
    }
    Ok(Manifest {
        gen,
        next_file,
        written_at,
        catalog,
        next_layer_ids,
        lenses,
        runs,
    })
}

/// A layer file's payload: the layer id, then the layer as a one-append commit unit.
pub fn encode_layer(id: u64, unit_bytes: &[u8]) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.extend_from_slice(unit_bytes);
    out
}

pub fn decode_layer(bytes: &[u8]) -> Result<(u64, CommitUnit), String> {
    let (id, rest) = bytes.split_at_checked(8).ok_or("layer payload too short")?;
    Ok((
        u64::from_le_bytes(id.try_into().expect("8 bytes")),
        decode(rest)?,
    ))
}
