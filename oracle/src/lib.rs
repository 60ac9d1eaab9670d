//! The Tau oracle: an obviously-correct, deliberately naive, in-memory model of
//! `shared/SPEC.md` and `docs/SEMANTICS.md`. It shares no code with the engine.
//!
//! Every statement is checked in this order: authentication (before a successful AUTH only
//! a well-formed AUTH is answered), parse, transaction state, active database, unknown
//! database / lens / user, permission, duplicates, then validation of the statement itself. Writes and lens DDL run against a clone of the store that replaces the
//! real one only on success, so nothing is ever applied partially.
//!
//! Choices where neither SPEC nor SEMANTICS spells the answer out are recorded in
//! docs/SEMANTICS.md (the engine follows them). Oracle-internal notes:
//! - Lexing: `-` directly followed by a digit is lexed as one signed number token; in
//!   operator position (after a complete operand) the parser splits it back into the binary
//!   minus and an unsigned literal. A malformed number (`-1x`) is reported at the column where
//!   its token starts (the `-`).
//! - Binary operators are left-associative at every level (`1 < 2 < true` is `b0`).
//! - SHOW STATUS `written_at` is the newest layer's written_at (0 before any write);
//!   `database` shows the selected name even if that database was dropped.
//! - COPY: `<file>` in `cannot read <file>` is the path as written; the reasons are Rust's
//!   io error texts. One `\r` before the line end is dropped.

mod clock;
mod copy;
mod lex;
mod model;
mod parse;
mod value;

use std::collections::BTreeMap;

use model::{fold, Db, Layer, Lens, Piece, Reader};
use parse::{parse_line, Sel, Stmt, PERM_LETTERS};
use value::{coerce, encode_opt, Ty, Value};

pub struct OracleConfig {
    /// Authentication on?
    pub auth: bool,
    /// Bootstrap users (name, password), each with `A` on `*`.
    pub users: Vec<(String, String)>,
    /// The server's import directory for COPY, e.g. `Some("/import".into())`.
    pub import_dir: Option<String>,
    /// Absolute path -> contents, the file system COPY reads from.
    pub files: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The reply line, without a trailing newline.
    pub line: String,
    /// The server closes the connection after this reply.
    pub close: bool,
}

/// A copy of the committed store (see [`Oracle::snapshot`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot(Store);

#[derive(Clone, Debug, PartialEq)]
struct User {
    /// Which creation of this name (a session belongs to one creation, not to the name).
    id: u64,
    password: String,
    /// Database name (or `*`) -> permission bits (see `parse::PERM_LETTERS`).
    grants: BTreeMap<String, u8>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Store {
    dbs: BTreeMap<String, Db>,
    users: BTreeMap<String, User>,
    /// The newest `written_at` of the whole store (0 before the first write).
    last_written_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Conn {
    db: Option<String>,
    /// The authenticated user: name and which creation of it.
    user: Option<(String, u64)>,
    authed: bool,
    /// Buffered statements of an open transaction, each with the database it targets.
    txn: Option<Vec<(String, Stmt)>>,
}

#[derive(Clone)]
struct Env {
    auth: bool,
    import_dir: Option<String>,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone)]
pub struct Oracle {
    env: Env,
    store: Store,
    conns: BTreeMap<u64, Conn>,
    /// The configured bootstrap users, re-created at a restart with no users.
    bootstrap: Vec<(String, String)>,
    /// The id the next created user gets.
    next_user_id: u64,
}

const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const A: u8 = 16;

fn perm_string(bits: u8) -> String {
    PERM_LETTERS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

fn reply(line: String) -> Reply {
    Reply { line, close: false }
}

fn ok() -> Reply {
    reply("OK".to_string())
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&String> = it.collect();
    let mut out = format!("NAMES {}", list.len());
    for n in list {
        out.push_str("; ");
        out.push_str(n);
    }
    out
}

fn range_reply(pieces: &[Piece]) -> String {
    let mut out = format!("RANGE {}", pieces.len());
    for (s, e, v) in pieces {
        out.push_str(&format!("; {}:{}:{}", s, e, v.encode()));
    }
    out
}

/// SEMANTICS: the last user with `A` on `*` keeps it (no REVOKE of it, no DROP USER).
fn last_admin(store: &Store, user: &str) -> Result<(), String> {
    let admin = |u: &User| u.grants.get("*").is_some_and(|g| g & A != 0);
    let others = store.users.iter().filter(|(n, _)| n.as_str() != user);
    if store.users.get(user).is_some_and(admin) && !others.map(|(_, u)| u).any(admin) {
        return Err("permission denied: cannot remove the last global admin (A on *)".into());
    }
    Ok(())
}

/// Marks the session user of a dropped user: no user name contains it, so lookups find
/// nobody (no rights), and messages print the name without it.
const STALE: char = '\0';

/// Permission check: `who` is `None` when authentication is off (all rights).
fn check(store: &Store, who: &Option<String>, bit: u8, db: &str) -> Result<(), String> {
    let Some(user) = who else { return Ok(()) };
    let shown = user.trim_start_matches(STALE);
    let grants = store.users.get(user).map(|u| &u.grants);
    let star = grants.and_then(|g| g.get("*")).copied().unwrap_or(0);
    if star & A != 0 {
        return Ok(());
    }
    let own = if db == "*" {
        0
    } else {
        grants.and_then(|g| g.get(db)).copied().unwrap_or(0)
    };
    if (star | own) & bit != 0 {
        Ok(())
    } else {
        Err(format!(
            "permission denied: {} lacks {} on {}",
            shown,
            perm_string(bit),
            db
        ))
    }
}

fn unknown_lens(name: &str) -> String {
    format!("unknown lens: {}", name)
}

fn bad_range() -> String {
    "invalid range (start >= end)".to_string()
}

/// Does lens `from` (transitively) reference `target`?
fn reaches(db: &Db, from: &str, target: &str, seen: &mut Vec<String>) -> bool {
    if from == target {
        return true;
    }
    if seen.iter().any(|s| s == from) {
        return false;
    }
    seen.push(from.to_string());
    if let Some(Lens::Derived { expr }) = db.lenses.get(from) {
        let mut refs = Vec::new();
        expr.refs(&mut refs);
        return refs.iter().any(|r| reaches(db, r, target, seen));
    }
    false
}

/// Validate the tuples of one APPEND in input order (range, then type), then overlaps.
fn validate_write(lens: &str, ty: Ty, tuples: &[(i64, i64, Value)]) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    for (s, e, v) in tuples {
        if s >= e {
            return Err(bad_range());
        }
        out.push((*s, *e, coerce(lens, ty, v)?));
    }
    no_overlaps(out)
}

/// Sort the pieces of one write by start; any overlap rejects the write.
fn no_overlaps(mut pieces: Vec<Piece>) -> Result<Vec<Piece>, String> {
    pieces.sort_by_key(|p| p.0);
    for w in pieces.windows(2) {
        if w[0].1 > w[1].0 {
            return Err("overlapping intervals in one write".to_string());
        }
    }
    Ok(pieces)
}

/// The lens type of a write target after the existence and `U` checks.
fn write_target(
    store: &Store,
    who: &Option<String>,
    dbn: &str,
    lens: &str,
    what: &str,
) -> Result<Ty, String> {
    let db = &store.dbs[dbn];
    let l = db.lenses.get(lens).ok_or_else(|| unknown_lens(lens))?;
    check(store, who, U, dbn)?;
    match l {
        Lens::Base { ty, .. } => Ok(*ty),
        Lens::Derived { .. } => Err(format!("invalid expression: {} needs a base lens", what)),
    }
}

/// Apply one write or lens DDL statement to `store` (in place; callers pass a clone).
/// Returns whether a layer was written.
fn apply(
    env: &Env,
    store: &mut Store,
    dbn: &str,
    who: &Option<String>,
    stmt: &Stmt,
    written_at: i64,
) -> Result<bool, String> {
    let Some(db) = store.dbs.get(dbn) else {
        return Err(format!("unknown database: {}", dbn));
    };
    let pieces = match stmt {
        Stmt::CreateLens(name, ty) => {
            check(store, who, C, dbn)?;
            if db.lenses.contains_key(name) {
                return Err(format!("duplicate lens: {}", name));
            }
            let lens = Lens::Base {
                ty: *ty,
                layers: Vec::new(),
            };
            store
                .dbs
                .get_mut(dbn)
                .unwrap()
                .lenses
                .insert(name.clone(), lens);
            return Ok(false);
        }
        Stmt::DropLens(name) => {
            if !db.lenses.contains_key(name) {
                return Err(unknown_lens(name));
            }
            check(store, who, D, dbn)?;
            for (other, l) in &db.lenses {
                if let Lens::Derived { expr } = l {
                    let mut refs = Vec::new();
                    expr.refs(&mut refs);
                    if other != name && refs.contains(name) {
                        return Err(format!("lens {} is used by derived lens {}", name, other));
                    }
                }
            }
            store.dbs.get_mut(dbn).unwrap().lenses.remove(name);
            return Ok(false);
        }
        Stmt::Derive(name, expr) => {
            let mut refs = Vec::new();
            expr.refs(&mut refs);
            for r in &refs {
                if !db.lenses.contains_key(r) {
                    return Err(unknown_lens(r));
                }
            }
            check(store, who, C, dbn)?;
            if let Some(Lens::Base { .. }) = db.lenses.get(name) {
                return Err(format!("duplicate lens: {}", name));
            }
            for r in &refs {
                if reaches(db, r, name, &mut Vec::new()) {
                    return Err(format!("cycle detected in derived lens: {}", name));
                }
            }
            let mut new_db = db.clone();
            new_db
                .lenses
                .insert(name.clone(), Lens::Derived { expr: expr.clone() });
            {
                let reader = Reader {
                    db: &new_db,
                    sel: Sel::All,
                };
                reader.type_of(expr)?;
                for (other, l) in &new_db.lenses {
                    if let Lens::Derived { expr } = l {
                        if other != name {
                            reader.type_of(expr)?;
                        }
                    }
                }
            }
            store.dbs.insert(dbn.to_string(), new_db);
            return Ok(false);
        }
        Stmt::Append { lens, tuples, .. } => {
            let ty = write_target(store, who, dbn, lens, "APPEND")?;
            validate_write(lens, ty, tuples)?
        }
        Stmt::Copy { lens, path } => {
            let ty = write_target(store, who, dbn, lens, "COPY")?;
            no_overlaps(copy::read(
                env.import_dir.as_deref(),
                &env.files,
                path,
                lens,
                ty,
            )?)?
        }
        _ => unreachable!("not a buffered statement"),
    };
    if pieces.is_empty() {
        return Ok(false);
    }
    let lens = match stmt {
        Stmt::Append { lens, .. } | Stmt::Copy { lens, .. } => lens,
        _ => unreachable!(),
    };
    let db = store.dbs.get_mut(dbn).unwrap();
    db.last_layer += 1;
    let id = db.last_layer;
    if let Some(Lens::Base { layers, .. }) = db.lenses.get_mut(lens) {
        layers.push(Layer {
            id,
            written_at,
            intervals: std::sync::Arc::new(pieces),
        });
    }
    Ok(true)
}

/// `LAYER <id>` needs a base lens that has that layer.
fn check_sel(db: &Db, lens: &str, sel: Sel) -> Result<(), String> {
    if let Sel::Layer(id) = sel {
        match &db.lenses[lens] {
            Lens::Derived { .. } => {
                return Err("invalid expression: LAYER needs a base lens".to_string())
            }
            Lens::Base { layers, .. } => {
                if !layers.iter().any(|l| id >= 0 && l.id == id as u64) {
                    return Err(format!("unknown layer: {}", id));
                }
            }
        }
    }
    Ok(())
}

/// Statements that manage databases or users (refused inside a transaction).
fn admin_kind(stmt: &Stmt) -> Option<&'static str> {
    Some(match stmt {
        Stmt::CreateDb(_) => "CREATE DATABASE",
        Stmt::DropDb(_) => "DROP DATABASE",
        Stmt::CreateUser(..) => "CREATE USER",
        Stmt::DropUser(_) => "DROP USER",
        Stmt::Grant { .. } => "GRANT",
        Stmt::Revoke { .. } => "REVOKE",
        _ => return None,
    })
}

impl Oracle {
    pub fn new(cfg: OracleConfig) -> Oracle {
        let mut o = Oracle {
            env: Env {
                auth: cfg.auth,
                import_dir: cfg.import_dir,
                files: cfg.files,
            },
            store: Store::default(),
            conns: BTreeMap::new(),
            bootstrap: cfg.users,
            next_user_id: 1,
        };
        o.bootstrap_users();
        o
    }

    /// The configured users (each with `A` on `*`) exist whenever the store has no users
    /// at start (SEMANTICS: bootstrap users).
    fn bootstrap_users(&mut self) {
        if !self.store.users.is_empty() {
            return;
        }
        for (name, password) in self.bootstrap.clone() {
            let mut grants = BTreeMap::new();
            grants.insert("*".to_string(), A);
            let id = self.next_user_id;
            self.next_user_id += 1;
            self.store.users.insert(
                name,
                User {
                    id,
                    password,
                    grants,
                },
            );
        }
    }

    /// The server restarts: every connection drops (open transactions roll back), all
    /// committed data stays, and the bootstrap users come back if no users exist.
    pub fn restart(&mut self) {
        self.conns.clear();
        self.bootstrap_users();
    }

    /// The committed store, for the simulator's durability check: after a crash the
    /// recovered server must equal the oracle over some prefix of the submitted writes.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.store.clone())
    }

    /// Put the committed store back (connections and their sessions are untouched).
    pub fn restore(&mut self, s: Snapshot) {
        self.store = s.0;
    }

    /// Databases and their lenses (base and derived), by name: what a probe should read.
    pub fn catalog(&self) -> Vec<(String, Vec<String>)> {
        self.store
            .dbs
            .iter()
            .map(|(name, db)| (name.clone(), db.lenses.keys().cloned().collect()))
            .collect()
    }

    /// User names, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.store.users.keys().cloned().collect()
    }

    pub fn connect(&mut self, conn: u64) {
        self.conns.insert(conn, Conn::default());
    }

    /// Closing a connection rolls back its open transaction.
    pub fn disconnect(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    /// One input line (without "\n" and without a trailing "\r").
    /// Returns None for a blank line (spaces/tabs only), else the one reply line.
    pub fn execute(&mut self, conn: u64, now_ms: i64, line: &[u8]) -> Option<Reply> {
        if line.iter().all(|b| *b == b' ' || *b == b'\t') {
            return None;
        }
        self.conns.entry(conn).or_default();
        if self.env.auth && !self.conns[&conn].authed {
            // Before a successful AUTH only a well-formed AUTH statement is answered.
            let stmt = std::str::from_utf8(line).ok().map(parse_line);
            let reply = match stmt {
                Some(Ok(stmt @ Stmt::Auth(..))) => self.run(conn, now_ms, stmt),
                _ => Reply {
                    line: "ERR authentication required".to_string(),
                    close: true,
                },
            };
            if reply.close {
                self.conns.remove(&conn);
            }
            return Some(reply);
        }
        let reply = match std::str::from_utf8(line) {
            Err(e) => {
                let col = String::from_utf8_lossy(&line[..e.valid_up_to()])
                    .chars()
                    .count();
                reply(format!("ERR parse error at column {}: invalid UTF-8", col))
            }
            Ok(text) => match parse_line(text) {
                Err(pe) => reply(format!("ERR parse error at column {}: {}", pe.col, pe.msg)),
                Ok(stmt) => self.run(conn, now_ms, stmt),
            },
        };
        if reply.close {
            self.conns.remove(&conn);
        }
        Some(reply)
    }

    fn run(&mut self, conn: u64, now_ms: i64, stmt: Stmt) -> Reply {
        let auth = self.env.auth;
        if let Stmt::Auth(user, password) = &stmt {
            if !auth {
                return ok();
            }
            let c = self.conns.get_mut(&conn).unwrap();
            if c.authed {
                return reply("ERR already authenticated".to_string());
            }
            let found = self
                .store
                .users
                .get(user)
                .filter(|u| u.password == *password)
                .map(|u| u.id);
            if let Some(id) = found {
                c.authed = true;
                c.user = Some((user.clone(), id));
                return ok();
            }
            return Reply {
                line: "ERR authentication failed".to_string(),
                close: true,
            };
        }
        if let Stmt::Quit = stmt {
            return Reply {
                line: "OK BYE".to_string(),
                close: true,
            };
        }
        match self.statement(conn, now_ms, stmt) {
            Ok(line) => reply(line),
            Err(e) => reply(format!("ERR {}", e)),
        }
    }

    /// The connection's database for a statement that needs one.
    fn current_db(&self, conn: u64) -> Result<(String, &Db), String> {
        let Some(name) = self.conns[&conn].db.clone() else {
            return Err("no active database".to_string());
        };
        match self.store.dbs.get(&name) {
            Some(db) => Ok((name, db)),
            None => Err(format!("unknown database: {}", name)),
        }
    }

    fn statement(&mut self, conn: u64, now_ms: i64, stmt: Stmt) -> Result<String, String> {
        let in_txn = self.conns[&conn].txn.is_some();
        match &stmt {
            Stmt::Start if in_txn => return Err("transaction already active".to_string()),
            Stmt::Commit | Stmt::Rollback if !in_txn => {
                return Err("no active transaction".to_string())
            }
            _ => {}
        }
        if in_txn {
            if let Some(kind) = admin_kind(&stmt) {
                return Err(format!("invalid in transaction: {}", kind));
            }
        }
        let who = if self.env.auth {
            // A session whose user was dropped (and maybe created again under the same
            // name) has no rights: it is marked stale (see `STALE`).
            self.conns[&conn].user.clone().map(|(name, id)| {
                if self.store.users.get(&name).is_some_and(|u| u.id == id) {
                    name
                } else {
                    format!("{STALE}{name}")
                }
            })
        } else {
            None
        };
        let store = &self.store;
        match &stmt {
            Stmt::Start => {
                self.conns.get_mut(&conn).unwrap().txn = Some(Vec::new());
                Ok("OK".to_string())
            }
            Stmt::Rollback => {
                self.conns.get_mut(&conn).unwrap().txn = None;
                Ok("OK".to_string())
            }
            Stmt::Commit => {
                let ops = self.conns.get_mut(&conn).unwrap().txn.take().unwrap();
                let written_at = now_ms.max(store.last_written_at);
                let mut next = store.clone();
                let mut wrote = false;
                for (dbn, op) in &ops {
                    wrote |= apply(&self.env, &mut next, dbn, &who, op, written_at)?;
                }
                if wrote {
                    next.last_written_at = written_at;
                }
                self.store = next;
                Ok("OK".to_string())
            }
            Stmt::CreateDb(name) => {
                check(store, &who, A, "*")?;
                if store.dbs.contains_key(name) {
                    return Err(format!("duplicate database: {}", name));
                }
                self.store.dbs.insert(name.clone(), Db::default());
                Ok("OK".to_string())
            }
            Stmt::DropDb(name) => {
                if !store.dbs.contains_key(name) {
                    return Err(format!("unknown database: {}", name));
                }
                check(store, &who, A, name)?;
                self.store.dbs.remove(name);
                for u in self.store.users.values_mut() {
                    u.grants.remove(name);
                }
                Ok("OK".to_string())
            }
            Stmt::UseDb(name) => {
                if !store.dbs.contains_key(name) {
                    return Err(format!("unknown database: {}", name));
                }
                self.conns.get_mut(&conn).unwrap().db = Some(name.clone());
                Ok("OK".to_string())
            }
            Stmt::ShowDbs => Ok(names(store.dbs.keys())),
            Stmt::ShowLenses => {
                let (dbn, db) = self.current_db(conn)?;
                check(store, &who, R, &dbn)?;
                Ok(names(db.lenses.keys()))
            }
            Stmt::CreateLens(..)
            | Stmt::DropLens(_)
            | Stmt::Derive(..)
            | Stmt::Append { .. }
            | Stmt::Copy { .. } => {
                let Some(dbn) = self.conns[&conn].db.clone() else {
                    return Err("no active database".to_string());
                };
                let mut next = store.clone();
                if in_txn {
                    // Validate against committed state plus the transaction's earlier
                    // statements, then buffer.
                    let ops = self.conns[&conn].txn.as_ref().unwrap();
                    let wa = store.last_written_at;
                    for (odb, op) in ops {
                        let _ = apply(&self.env, &mut next, odb, &who, op, wa);
                    }
                    apply(&self.env, &mut next, &dbn, &who, &stmt, wa)?;
                    let c = self.conns.get_mut(&conn).unwrap();
                    c.txn.as_mut().unwrap().push((dbn, stmt));
                } else {
                    let written_at = now_ms.max(store.last_written_at);
                    if apply(&self.env, &mut next, &dbn, &who, &stmt, written_at)? {
                        next.last_written_at = written_at;
                    }
                    self.store = next;
                }
                Ok("OK".to_string())
            }
            Stmt::At { lens, t, sel } => {
                let (dbn, db) = self.current_db(conn)?;
                if !db.lenses.contains_key(lens) {
                    return Err(unknown_lens(lens));
                }
                check(store, &who, R, &dbn)?;
                check_sel(db, lens, *sel)?;
                let reader = Reader { db, sel: *sel };
                Ok(encode_opt(&reader.at(lens, *t)?))
            }
            Stmt::Range {
                lens,
                s,
                e,
                sel,
                filter,
                limit,
                offset,
            } => {
                let (dbn, db) = self.current_db(conn)?;
                if !db.lenses.contains_key(lens) {
                    return Err(unknown_lens(lens));
                }
                if let Some(f) = filter {
                    let mut refs = Vec::new();
                    f.refs(&mut refs);
                    if let Some(r) = refs.iter().find(|r| !db.lenses.contains_key(*r)) {
                        return Err(unknown_lens(r));
                    }
                }
                check(store, &who, R, &dbn)?;
                if s >= e {
                    return Err(bad_range());
                }
                check_sel(db, lens, *sel)?;
                let reader = Reader { db, sel: *sel };
                if let Some(f) = filter {
                    let ty = reader.type_of(f)?;
                    if !matches!(ty, Ty::Bool | Ty::Null) {
                        return Err(format!(
                            "invalid expression: WHERE needs a bool expression, got {}",
                            ty.name()
                        ));
                    }
                }
                let mut pieces = reader.pieces(lens, *s, *e)?;
                if let Some(f) = filter {
                    pieces = reader.filter(&pieces, f, *s, *e)?;
                }
                let skip = offset.unwrap_or(0).min(pieces.len() as u64) as usize;
                let mut pieces: Vec<Piece> = pieces.split_off(skip);
                if let Some(n) = limit {
                    pieces.truncate((*n).min(pieces.len() as u64) as usize);
                }
                Ok(range_reply(&pieces))
            }
            Stmt::Reduce { lens, s, e, sel, f } => {
                let (dbn, db) = self.current_db(conn)?;
                if !db.lenses.contains_key(lens) {
                    return Err(unknown_lens(lens));
                }
                check(store, &who, R, &dbn)?;
                if s >= e {
                    return Err(bad_range());
                }
                check_sel(db, lens, *sel)?;
                let reader = Reader { db, sel: *sel };
                if f.needs_number() {
                    let ty = reader.lens_ty(lens)?;
                    if !ty.is_numeric() {
                        return Err(format!(
                            "type mismatch on {}: expected int or float, got {}",
                            lens,
                            ty.name()
                        ));
                    }
                }
                let pieces = reader.pieces(lens, *s, *e)?;
                Ok(encode_opt(&fold(*f, &pieces)?))
            }
            Stmt::History { lens, range } => {
                let (dbn, db) = self.current_db(conn)?;
                let Some(l) = db.lenses.get(lens) else {
                    return Err(unknown_lens(lens));
                };
                check(store, &who, R, &dbn)?;
                if let Some((s, e)) = range {
                    if s >= e {
                        return Err(bad_range());
                    }
                }
                let Lens::Base { layers, .. } = l else {
                    return Err("invalid expression: HISTORY needs a base lens".to_string());
                };
                let mut entries = Vec::new();
                for layer in layers {
                    let overlaps = match range {
                        None => true,
                        Some((s, e)) => layer.intervals.iter().any(|iv| iv.0 < *e && iv.1 > *s),
                    };
                    if overlaps {
                        let min = layer.intervals.iter().map(|iv| iv.0).min().unwrap();
                        let max = layer.intervals.iter().map(|iv| iv.1).max().unwrap();
                        entries.push(format!("{}:{}:{}:{}", layer.id, layer.written_at, min, max));
                    }
                }
                let mut out = format!("LAYERS {}", entries.len());
                for en in entries {
                    out.push_str("; ");
                    out.push_str(&en);
                }
                Ok(out)
            }
            Stmt::Compact(lens) => {
                let (dbn, db) = self.current_db(conn)?;
                let Some(l) = db.lenses.get(lens) else {
                    return Err(unknown_lens(lens));
                };
                check(store, &who, U, &dbn)?;
                if let Lens::Derived { .. } = l {
                    return Err("invalid expression: COMPACT needs a base lens".to_string());
                }
                Ok("OK".to_string())
            }
            Stmt::CreateUser(name, password) => {
                check(store, &who, A, "*")?;
                if store.users.contains_key(name) {
                    return Err(format!("duplicate user: {}", name));
                }
                let user = User {
                    id: self.next_user_id,
                    password: password.clone(),
                    grants: BTreeMap::new(),
                };
                self.next_user_id += 1;
                self.store.users.insert(name.clone(), user);
                Ok("OK".to_string())
            }
            Stmt::DropUser(name) => {
                if !store.users.contains_key(name) {
                    return Err(format!("unknown user: {}", name));
                }
                check(store, &who, A, "*")?;
                if self.env.auth {
                    last_admin(store, name)?;
                }
                self.store.users.remove(name);
                Ok("OK".to_string())
            }
            Stmt::ShowUsers => {
                check(store, &who, A, "*")?;
                Ok(names(store.users.keys()))
            }
            Stmt::Grant { perms, db, user } | Stmt::Revoke { perms, db, user } => {
                if db != "*" && !store.dbs.contains_key(db) {
                    return Err(format!("unknown database: {}", db));
                }
                if !store.users.contains_key(user) {
                    return Err(format!("unknown user: {}", user));
                }
                check(store, &who, A, db)?;
                if self.env.auth
                    && matches!(stmt, Stmt::Revoke { .. })
                    && db == "*"
                    && perms & A != 0
                {
                    last_admin(store, user)?;
                }
                let grants = &mut self.store.users.get_mut(user).unwrap().grants;
                let old = grants.get(db).copied().unwrap_or(0);
                let new = if let Stmt::Grant { .. } = stmt {
                    old | perms
                } else {
                    old & !perms
                };
                if new == 0 {
                    grants.remove(db);
                } else {
                    grants.insert(db.clone(), new);
                }
                Ok("OK".to_string())
            }
            Stmt::ShowGrants(target) => {
                if let Some(u) = target {
                    if !store.users.contains_key(u) {
                        return Err(format!("unknown user: {}", u));
                    }
                    if who.as_ref() != Some(u) {
                        check(store, &who, A, "*")?;
                    }
                } else {
                    check(store, &who, A, "*")?;
                }
                let mut entries = Vec::new();
                for (name, user) in &store.users {
                    if target.as_ref().is_some_and(|t| t != name) {
                        continue;
                    }
                    let mut en = name.clone();
                    for (db, bits) in &user.grants {
                        en.push_str(&format!(" {}:{}", db, perm_string(*bits)));
                    }
                    entries.push(en);
                }
                let mut out = format!("GRANTS {}", entries.len());
                for en in entries {
                    out.push_str("; ");
                    out.push_str(&en);
                }
                Ok(out)
            }
            Stmt::ShowStatus => {
                let c = &self.conns[&conn];
                Ok(format!(
                    "STATUS 7; auth:{}; connections:{}; database:{}; databases:{}; \
                     transaction:{}; version:{}; written_at:{}",
                    if self.env.auth { "on" } else { "off" },
                    self.conns.len(),
                    c.db.as_deref().unwrap_or("-"),
                    store.dbs.len(),
                    if c.txn.is_some() { "on" } else { "off" },
                    env!("CARGO_PKG_VERSION"),
                    store.last_written_at
                ))
            }
            Stmt::Auth(..) | Stmt::Quit => unreachable!("handled in run"),
        }
    }
}

#[cfg(test)]
mod tests;
