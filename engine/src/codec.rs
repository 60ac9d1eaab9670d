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
                let expr = match crate::parse::parse(&format!("DERIVE LENS x AS {text}")) {
                    Ok(Statement::Derive { expr, .. }) => expr,
                    _ => return Err(format!("unparsable derived expression {text:?}")),
                };
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
                    if v.clone().coerce(ty) != Ok(v.clone()) {
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
