//! The committed state (databases, lenses, users, grants) and the ops that change it.
//!
//! Every change is an [`Op`]; a commit is a list of ops applied with one `written_at`.
//! `check` validates an op against a state without changing it; `apply` then cannot
//! fail. Ops are plain data so that the durability layer can log them and replay them
//! to rebuild exactly the same state (layer ids are assigned inside `apply`, so replay
//! reproduces them).
//!
//! The state is persistent: databases and lenses sit behind `Arc`, so cloning the state
//! (a transaction's scratch copy, a query job's snapshot) is cheap, and `Arc::make_mut`
//! copies only what a write actually touches.

use crate::ast::{Expr, Perms, Selector};
use crate::expr::{type_check, Ty};
use crate::layer::{Compacted, Layer, Run, RunView, Segs};
use crate::value::Type;
use std::collections::BTreeMap;
use std::sync::Arc;

pub type Res<T> = Result<T, String>;

#[derive(Clone, Debug)]
pub struct BaseLens {
    /// Unique per lens incarnation: a dropped and re-created name gets a new uid, so a
    /// compaction started on the old lens can never be installed into the new one.
    pub uid: u64,
    pub ty: Type,
    /// Every committed layer, oldest first. Immutable once pushed.
    pub history: Vec<Arc<Layer>>,
    /// The run stack that answers current-time queries: compacted runs and raw layers
    /// covering `history` contiguously, oldest first.
    pub runs: Vec<Run>,
}

#[derive(Clone, Debug)]
pub struct DerivedLens {
    pub expr: Expr,
    pub ty: Ty,
    /// The lens names the expression reads, sorted and deduplicated.
    pub deps: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Lens {
    Base(Arc<BaseLens>),
    Derived(Arc<DerivedLens>),
}

impl Lens {
    pub fn ty(&self) -> Ty {
        match self {
            Lens::Base(b) => Ty::T(b.ty),
            Lens::Derived(d) => d.ty,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Database {
    pub lenses: BTreeMap<String, Lens>,
    pub next_layer_id: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Argon2id PHC string.
    pub phc: String,
    /// Database name (or `*`) → rights.
    pub grants: BTreeMap<String, Perms>,
}

#[derive(Clone, Debug, Default)]
pub struct State {
    pub dbs: BTreeMap<String, Arc<Database>>,
    pub users: BTreeMap<String, User>,
    /// written_at of the latest commit; never decreases.
    pub written_at: i64,
    pub next_uid: u64,
}

/// One change to the state. A commit is a list of these.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    CreateDatabase(String),
    DropDatabase(String),
    CreateLens {
        db: String,
        name: String,
        ty: Type,
    },
    DropLens {
        db: String,
        name: String,
    },
    Derive {
        db: String,
        name: String,
        expr: Expr,
    },
    /// A validated write: non-empty, sorted, non-overlapping, values of type `ty`.
    Append {
        db: String,
        lens: String,
        ty: Type,
        segs: Arc<Segs>,
    },
    CreateUser {
        name: String,
        phc: String,
    },
    DropUser(String),
    Grant {
        user: String,
        db: String,
        perms: Perms,
    },
    Revoke {
        user: String,
        db: String,
        perms: Perms,
    },
}

impl BaseLens {
    pub fn new(uid: u64, ty: Type) -> BaseLens {
        BaseLens {
            uid,
            ty,
            history: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, layer: Layer) {
        let idx = self.history.len();
        let layer = Arc::new(layer);
        self.history.push(layer.clone());
        self.runs.push(Run::Raw { idx, layer });
    }

    pub fn layer_by_id(&self, id: u64) -> Option<&Arc<Layer>> {
        // Ids grow with history order, so binary search.
        self.history
            .binary_search_by_key(&id, |l| l.id)
            .ok()
            .map(|i| &self.history[i])
    }

    /// The runs a read with selector `sel` sees, oldest first. `LAYER id` of a layer this
    /// lens does not have gives no runs (the caller decides whether that is an error).
    pub fn views(&self, sel: Selector) -> Vec<RunView<'_>> {
        match sel {
            Selector::Now => self.runs.iter().map(Run::view).collect(),
            Selector::Layer(id) => self
                .layer_by_id(id)
                .map(|l| RunView::layer(l))
                .into_iter()
                .collect(),
            Selector::AsOf(ms) => {
                // written_at never decreases, so the visible layers are a prefix.
                let p = self.history.partition_point(|l| l.written_at <= ms);
                let mut out = Vec::new();
                for run in &self.runs {
                    let (lo, hi) = run.span();
                    if hi <= p {
                        out.push(run.view());
                    } else {
                        // A compacted run straddling the cut cannot be used: fall back to
                        // the raw layers it was built from.
                        out.extend(
                            self.history[lo..p.max(lo)]
                                .iter()
                                .map(|l| RunView::layer(l)),
                        );
                        break;
                    }
                }
                out
            }
        }
    }

    /// Runs to merge automatically once the stack is taller than `threshold`: the newest
    /// runs, absorbing older ones while they are at most twice the merged size. This
    /// keeps O(log n) compacted runs and O(n log n) total compaction work even for a
    /// stream of tiny writes.
    pub fn plan_auto(&self, threshold: usize) -> Option<std::ops::Range<usize>> {
        if self.runs.len() <= threshold.max(1) {
            return None;
        }
        let mut lo = self.runs.len();
        let mut acc = 0usize;
        while lo > 0 {
            let n = self.runs[lo - 1].segs().len();
            if self.runs.len() - lo >= 2 && n > 2 * acc {
                break;
            }
            acc += n;
            lo -= 1;
        }
        Some(lo..self.runs.len())
    }

    /// Everything into one run (`COMPACT LENS`), if there is more than one.
    pub fn plan_full(&self) -> Option<std::ops::Range<usize>> {
        (self.runs.len() > 1).then_some(0..self.runs.len())
    }

    /// Swap a finished compaction in, if the runs it replaces are still there.
    pub fn install(&mut self, c: Arc<Compacted>) -> bool {
        let Some(i) = self.runs.iter().position(|r| r.span().0 == c.lo) else {
            return false;
        };
        let Some(j) = self.runs.iter().position(|r| r.span().1 == c.hi) else {
            return false;
        };
        if j < i || (j == i && matches!(self.runs[i], Run::Compacted(_))) {
            return false;
        }
        self.runs.splice(i..=j, [Run::Compacted(c)]);
        for w in self.runs.windows(2) {
            assert_eq!(
                w[0].span().1,
                w[1].span().0,
                "run stack must stay contiguous"
            );
        }
        true
    }
}

impl Database {
    /// The alphabetically first derived lens that reads `name`.
    pub fn dependent_of(&self, name: &str) -> Option<&str> {
        self.lenses.iter().find_map(|(n, l)| match l {
            Lens::Derived(d) if d.deps.iter().any(|x| x == name) => Some(n.as_str()),
            _ => None,
        })
    }

    pub fn lens(&self, name: &str) -> Res<&Lens> {
        self.lenses
            .get(name)
            .ok_or_else(|| format!("unknown lens: {name}"))
    }
}

fn lookup_db<'a>(st: &'a State, db: &str) -> Res<&'a Arc<Database>> {
    st.dbs
        .get(db)
        .ok_or_else(|| format!("unknown database: {db}"))
}

fn deps_of(expr: &Expr) -> Vec<String> {
    let mut refs = Vec::new();
    expr.lens_refs(&mut refs);
    let mut v: Vec<String> = refs.into_iter().map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

/// Type of every lens in `db` as seen with `name` (re)defined as `expr`.
/// Every lens `expr` reads must exist; the first unknown one in textual order is named.
pub fn check_refs(db: &Database, expr: &Expr) -> Res<()> {
    let mut refs = Vec::new();
    expr.lens_refs(&mut refs);
    for r in refs {
        db.lens(r)?;
    }
    Ok(())
}

fn derive_check(db: &Database, name: &str, expr: &Expr) -> Res<Ty> {
    // The WAL stores the expression as text: whatever is accepted must read back, or the
    // store could not be replayed (a 66-term sum once made a store that never restarted).
    if !crate::codec::expr_round_trips(expr) {
        return Err("invalid expression: too complex to store".into());
    }
    check_refs(db, expr)?;
    let deps = deps_of(expr);
    match db.lenses.get(name) {
        Some(Lens::Base(_)) => return Err(format!("duplicate lens: {name}")),
        // A brand-new lens cannot reach itself: its name is unknown to check_refs.
        None => {}
        Some(Lens::Derived(_)) => {
            // Redefinition: reject if any dependency reaches back to `name`.
            let mut stack: Vec<&str> = deps.iter().map(String::as_str).collect();
            let mut seen = std::collections::BTreeSet::new();
            while let Some(n) = stack.pop() {
                if n == name {
                    return Err(format!("cycle detected in derived lens: {name}"));
                }
                if !seen.insert(n) {
                    continue;
                }
                if let Some(Lens::Derived(d)) = db.lenses.get(n) {
                    stack.extend(d.deps.iter().map(String::as_str));
                }
            }
        }
    }
    let ty = type_check(expr, &|n| Ok(db.lens(n)?.ty()))?;
    if let Some(Lens::Derived(_)) = db.lenses.get(name) {
        // The lenses built on `name` must still type-check with its new type.
        let mut trial = db.clone();
        trial.lenses.insert(
            name.to_string(),
            Lens::Derived(Arc::new(DerivedLens {
                expr: expr.clone(),
                ty,
                deps: deps.clone(),
            })),
        );
        retype_dependents(&mut trial, name)?;
    }
    Ok(ty)
}

/// Recompute the types of every derived lens that (transitively) reads `changed`.
fn retype_dependents(db: &mut Database, changed: &str) -> Res<()> {
    let mut work = vec![changed.to_string()];
    let mut rounds = 0;
    while let Some(c) = work.pop() {
        rounds += 1;
        if rounds > 10_000 {
            return Err("invalid expression: derived lenses nested too deeply".into());
        }
        let users: Vec<String> = db
            .lenses
            .iter()
            .filter_map(|(n, l)| match l {
                Lens::Derived(d) if d.deps.contains(&c) => Some(n.clone()),
                _ => None,
            })
            .collect();
        for u in users {
            let Some(Lens::Derived(d)) = db.lenses.get(&u).cloned() else {
                continue;
            };
            let ty = type_check(&d.expr, &|n| Ok(db.lens(n)?.ty()))?;
            if ty != d.ty {
                let mut nd = (*d).clone();
                nd.ty = ty;
                db.lenses.insert(u.clone(), Lens::Derived(Arc::new(nd)));
            }
            work.push(u);
        }
    }
    Ok(())
}

impl State {
    pub fn db(&self, name: &str) -> Res<&Arc<Database>> {
        lookup_db(self, name)
    }

    /// Would `op` apply cleanly? Never changes the state.
    pub fn check(&self, op: &Op) -> Res<()> {
        match op {
            Op::CreateDatabase(d) => {
                if self.dbs.contains_key(d) {
                    return Err(format!("duplicate database: {d}"));
                }
            }
            Op::DropDatabase(d) => {
                lookup_db(self, d)?;
            }
            Op::CreateLens { db, name, .. } => {
                if lookup_db(self, db)?.lenses.contains_key(name) {
                    return Err(format!("duplicate lens: {name}"));
                }
            }
            Op::DropLens { db, name } => {
                let d = lookup_db(self, db)?;
                d.lens(name)?;
                if let Some(dep) = d.dependent_of(name) {
                    return Err(format!("lens {name} is used by derived lens {dep}"));
                }
            }
            Op::Derive { db, name, expr } => {
                derive_check(lookup_db(self, db)?, name, expr)?;
            }
            Op::Append { db, lens, ty, segs } => {
                assert!(!segs.is_empty(), "empty writes never become ops");
                match lookup_db(self, db)?.lens(lens)? {
                    Lens::Base(b) if b.ty == *ty => {}
                    Lens::Base(b) => {
                        return Err(format!(
                            "type mismatch on {lens}: expected {}, got {ty}",
                            b.ty
                        ))
                    }
                    Lens::Derived(_) => {
                        return Err("invalid expression: APPEND needs a base lens".into())
                    }
                }
            }
            Op::CreateUser { name, .. } => {
                if self.users.contains_key(name) {
                    return Err(format!("duplicate user: {name}"));
                }
            }
            Op::DropUser(u) => {
                self.user(u)?;
            }
            Op::Grant { user, db, .. } | Op::Revoke { user, db, .. } => {
                self.user(user)?;
                if db != "*" {
                    lookup_db(self, db)?;
                }
            }
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Res<&User> {
        self.users
            .get(name)
            .ok_or_else(|| format!("unknown user: {name}"))
    }

    /// Check, then apply. On `Err` the state is unchanged.
    pub fn apply(&mut self, op: Op, written_at: i64) -> Res<()> {
        self.check(&op)?;
        self.apply_checked(op, written_at);
        Ok(())
    }

    fn db_mut(&mut self, db: &str) -> &mut Database {
        Arc::make_mut(self.dbs.get_mut(db).expect("checked"))
    }

    fn apply_checked(&mut self, op: Op, written_at: i64) {
        match op {
            Op::CreateDatabase(d) => {
                self.dbs.insert(
                    d,
                    Arc::new(Database {
                        lenses: BTreeMap::new(),
                        next_layer_id: 1,
                    }),
                );
            }
            Op::DropDatabase(d) => {
                self.dbs.remove(&d);
                for u in self.users.values_mut() {
                    u.grants.remove(&d);
                }
            }
            Op::CreateLens { db, name, ty } => {
                self.next_uid += 1;
                let uid = self.next_uid;
                self.db_mut(&db)
                    .lenses
                    .insert(name, Lens::Base(Arc::new(BaseLens::new(uid, ty))));
            }
            Op::DropLens { db, name } => {
                self.db_mut(&db).lenses.remove(&name);
            }
            Op::Derive { db, name, expr } => {
                let d = self.db_mut(&db);
                let ty = derive_check(d, &name, &expr).expect("checked");
                let deps = deps_of(&expr);
                d.lenses.insert(
                    name.clone(),
                    Lens::Derived(Arc::new(DerivedLens { expr, ty, deps })),
                );
                retype_dependents(d, &name).expect("checked");
            }
            Op::Append { db, lens, segs, .. } => {
                assert!(written_at >= self.written_at, "written_at never decreases");
                self.written_at = written_at;
                let d = self.db_mut(&db);
                let id = d.next_layer_id;
                d.next_layer_id += 1;
                let Some(Lens::Base(b)) = d.lenses.get_mut(&lens) else {
                    unreachable!("checked: a base lens")
                };
                let segs = Arc::try_unwrap(segs).unwrap_or_else(|a| (*a).clone());
                Arc::make_mut(b).push(Layer {
                    id,
                    written_at,
                    segs,
                });
            }
            Op::CreateUser { name, phc } => {
                self.users.insert(
                    name,
                    User {
                        phc,
                        grants: BTreeMap::new(),
                    },
                );
            }
            Op::DropUser(u) => {
                self.users.remove(&u);
            }
            Op::Grant { user, db, perms } => {
                let g = self.users.get_mut(&user).expect("checked");
                let e = g.grants.entry(db).or_default();
                *e = e.union(perms);
            }
            Op::Revoke { user, db, perms } => {
                let g = self.users.get_mut(&user).expect("checked");
                if let Some(p) = g.grants.get_mut(&db) {
                    *p = p.minus(perms);
                    if p.is_empty() {
                        g.grants.remove(&db);
                    }
                }
            }
        }
    }

    /// Apply a whole commit atomically: all ops or none.
    pub fn commit(&mut self, ops: Vec<Op>, written_at: i64) -> Res<()> {
        if let [_] = ops.as_slice() {
            // One op: check-then-apply needs no scratch copy.
            return self.apply(ops.into_iter().next().expect("one"), written_at);
        }
        let mut scratch = self.clone();
        for op in ops {
            scratch.apply(op, written_at)?;
        }
        *self = scratch;
        Ok(())
    }
}
