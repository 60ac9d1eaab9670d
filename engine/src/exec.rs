//! Statement execution: the order of checks (parse, authentication, transaction state,
//! active database, unknown names, permission, validation — docs/SEMANTICS.md), the
//! write path (commit now, or buffer in the connection's transaction), and reads
//! (inline, or as a job over a snapshot when large).

use crate::ast::{Perms, Row, Statement};
use crate::catalog::{Database, Lens, Op, Res, State};
use crate::copy::resolve_import;
use crate::engine::{Buffered, ConnId, Effect, Engine, Pending, Waiting};
use crate::jobs::{Job, JobOutput};
use crate::layer::{Compacted, Segs};
use crate::query::{self, RangeQuery};
use crate::value::{Type, Value};
use std::fmt::Write as _;
use std::sync::Arc;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Validate a write's rows in input order (range, then type), then overlaps; coerce
/// values to the lens type. `Ok(None)` is an empty write: OK, and nothing is written.
pub fn validate_rows(lens: &str, ty: Type, rows: Vec<Row>) -> Res<Option<Segs>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if r.start >= r.end {
            return Err("invalid range (start >= end)".into());
        }
        let v = r
            .value
            .coerce(ty)
            .map_err(|got| format!("type mismatch on {lens}: expected {ty}, got {got}"))?;
        out.push((r.start, r.end, v));
    }
    if out.is_empty() {
        return Ok(None);
    }
    if !out.windows(2).all(|w| w[0].0 <= w[1].0) {
        out.sort_by_key(|r| r.0);
    }
    if out.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err("overlapping intervals in one write".into());
    }
    Ok(Some(Segs::from_sorted_rows(out)))
}

/// Answer a read statement over a database snapshot: the exact reply line.
pub fn run_read(db: &Database, stmt: &Statement) -> String {
    let r = match stmt {
        Statement::At { lens, t, sel } => query::at(db, lens, *t, *sel).map(|v| val(v.as_ref())),
        Statement::Range {
            lens,
            start,
            end,
            sel,
            filter,
            limit,
            offset,
        } => query::range(
            db,
            &RangeQuery {
                lens,
                start: *start,
                end: *end,
                sel: *sel,
                filter: filter.as_ref(),
                limit: *limit,
                offset: *offset,
            },
        ),
        Statement::Reduce {
            lens,
            start,
            end,
            sel,
            func,
        } => query::reduce(db, lens, *start, *end, *sel, *func).map(|v| val(v.as_ref())),
        Statement::History { lens, span } => query::history(db, lens, *span),
        _ => Err("internal error: not a read".into()),
    };
    r.unwrap_or_else(|e| format!("ERR {e}"))
}

fn val(v: Option<&Value>) -> String {
    match v {
        None => "VAL NIL".into(),
        Some(v) => {
            let mut s = String::from("VAL ");
            v.encode_into(&mut s);
            s
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&String> = it.collect();
    let mut s = format!("NAMES {}", v.len());
    for n in v {
        let _ = write!(s, "; {n}");
    }
    s
}

/// What a statement did to its connection.
enum Flow {
    Reply(String),
    ReplyClose(String),
    /// Waiting on a job or a file; the reply comes later.
    Busy,
    /// Blank line: no reply.
    Nothing,
}

fn kind_in_txn(st: &Statement) -> Option<&'static str> {
    Some(match st {
        Statement::CreateDatabase(_) => "CREATE DATABASE",
        Statement::DropDatabase(_) => "DROP DATABASE",
        Statement::CreateUser { .. } => "CREATE USER",
        Statement::DropUser(_) => "DROP USER",
        Statement::Grant { .. } => "GRANT",
        Statement::Revoke { .. } => "REVOKE",
        _ => return None,
    })
}

impl Engine {
    /// Rights of `user` on `db` (`*` for the global grant): the database grant ∪ the
    /// `*` grant. With authentication off everyone has every right.
    pub fn rights(state: &State, auth: bool, user: Option<&str>, db: &str) -> Perms {
        if !auth {
            return Perms::ALL;
        }
        let Some(u) = user.and_then(|u| state.users.get(u)) else {
            return Perms::default();
        };
        let star = u.grants.get("*").copied().unwrap_or_default();
        if star.contains(Perms::A) {
            // A on `*` is a global admin: it passes every check.
            return Perms::ALL;
        }
        if db == "*" {
            star
        } else {
            star.union(u.grants.get(db).copied().unwrap_or_default())
        }
    }

    /// The connection's user, if it still exists as the same user it authenticated as;
    /// `Err(name)` for a session whose user was dropped (and maybe created again).
    fn session_user(&self, id: ConnId) -> Result<Option<&str>, &str> {
        let Some(c) = self.conns.get(&id) else {
            return Ok(None);
        };
        match (&c.user, &c.user_phc) {
            (Some(name), Some(phc)) => {
                let same = self.state.users.get(name).is_some_and(|u| &u.phc == phc);
                if same {
                    Ok(Some(name))
                } else {
                    Err(name)
                }
            }
            _ => Ok(None),
        }
    }

    /// Rights of connection `id` on `db`: none for a session whose user is gone.
    fn session_rights(&self, id: ConnId, db: &str) -> Perms {
        match self.session_user(id) {
            Ok(user) => Engine::rights(&self.state, self.cfg.auth, user, db),
            Err(_) if !self.cfg.auth => Perms::ALL,
            Err(_) => Perms::default(),
        }
    }

    fn need(&self, id: ConnId, db: &str, p: Perms) -> Res<()> {
        let user = self.conns.get(&id).and_then(|c| c.user.clone());
        if self.session_rights(id, db).contains(p) {
            Ok(())
        } else {
            Err(format!(
                "permission denied: {} lacks {} on {db}",
                user.as_deref().unwrap_or("anonymous"),
                p.letter()
            ))
        }
    }

    /// The state a statement on `id` validates against: committed state, plus the
    /// shape (DDL) of the connection's own open transaction.
    fn view(&self, id: ConnId) -> std::borrow::Cow<'_, State> {
        let base = self.pending_state();
        match self.conns.get(&id).and_then(|c| c.txn.as_ref()) {
            None => base,
            Some(buf) => {
                let mut s = base.into_owned();
                for b in buf {
                    // A buffered statement whose rights were revoked since no longer
                    // counts (COMMIT will fail on it).
                    if let Some((db, p)) = op_right(&b.op) {
                        if !self.session_rights(id, db).contains(p) {
                            continue;
                        }
                    }
                    // Appends change no shape; a DDL op that no longer applies is left
                    // for COMMIT to report.
                    if !matches!(b.op, Op::Append { .. }) {
                        let w = s.written_at;
                        let _ = s.apply(b.op.clone(), w);
                    }
                }
                std::borrow::Cow::Owned(s)
            }
        }
    }

    fn current_db(&self, id: ConnId) -> Res<String> {
        self.conns
            .get(&id)
            .and_then(|c| c.db.clone())
            .ok_or_else(|| "no active database".to_string())
    }

    pub(crate) fn execute_line(&mut self, id: ConnId, mut line: Vec<u8>, fx: &mut Vec<Effect>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let flow = match std::str::from_utf8(&line) {
            Err(e) => {
                let col = std::str::from_utf8(&line[..e.valid_up_to()])
                    .map(|s| s.chars().count())
                    .unwrap_or(0);
                let authed = self.conns.get(&id).is_some_and(|c| c.authed);
                if authed {
                    Flow::Reply(format!("ERR parse error at column {col}: invalid UTF-8"))
                } else {
                    Flow::ReplyClose("ERR authentication required".into())
                }
            }
            Ok(text) if text.trim_matches([' ', '\t']).is_empty() => Flow::Nothing,
            Ok(text) => {
                let parsed = crate::parse::parse(text);
                let kind = parsed
                    .as_ref()
                    .map_or(crate::stats::PARSE_ERROR, crate::stats::kind);
                self.stats.statements[kind] += 1;
                let authed = self.conns.get(&id).is_some_and(|c| c.authed);
                match parsed {
                    Ok(Statement::Auth { user, password }) if !authed => {
                        self.start_auth(id, user, password, fx)
                    }
                    _ if !authed => Flow::ReplyClose("ERR authentication required".into()),
                    Err(e) => Flow::Reply(format!("ERR {e}")),
                    Ok(st) => match self.statement(id, st, fx) {
                        Ok(f) => f,
                        Err(e) => Flow::Reply(format!("ERR {e}")),
                    },
                }
            }
        };
        match flow {
            Flow::Reply(r) => self.say(id, &r),
            Flow::ReplyClose(r) => {
                self.say(id, &r);
                self.close_after_reply(id);
            }
            Flow::Busy => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.busy = true;
                }
            }
            Flow::Nothing => {}
        }
    }

    fn start_auth(
        &mut self,
        id: ConnId,
        user: String,
        password: String,
        fx: &mut Vec<Effect>,
    ) -> Flow {
        let phc = self.state.users.get(&user).map(|u| u.phc.clone());
        let params = self.cfg.argon2;
        self.spawn(
            Some(id),
            Waiting::Auth { user },
            Job::Verify {
                phc,
                password,
                params,
            },
            fx,
        );
        Flow::Busy
    }

    fn spawn(&mut self, conn: Option<ConnId>, waiting: Waiting, job: Job, fx: &mut Vec<Effect>) {
        let token = self.token();
        self.pending.insert(
            token,
            Pending {
                conn,
                waiting: Some(waiting),
                compact: None,
            },
        );
        fx.push(Effect::RunJob { token, job });
    }

    fn statement(&mut self, id: ConnId, st: Statement, fx: &mut Vec<Effect>) -> Res<Flow> {
        use Statement as S;
        let in_txn = self.conns.get(&id).is_some_and(|c| c.txn.is_some());
        if in_txn {
            if let Some(kind) = kind_in_txn(&st) {
                return Err(format!("invalid in transaction: {kind}"));
            }
        }
        let ok = || Ok(Flow::Reply("OK".into()));
        match st {
            S::Auth { .. } => {
                if self.cfg.auth {
                    Err("already authenticated".into())
                } else {
                    ok()
                }
            }
            S::Quit => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.txn = None;
                }
                Ok(Flow::ReplyClose("OK BYE".into()))
            }
            S::StartTransaction => {
                let c = self.conns.get_mut(&id).expect("live connection");
                if c.txn.is_some() {
                    return Err("transaction already active".into());
                }
                c.txn = Some(Vec::new());
                ok()
            }
            S::Rollback => {
                let c = self.conns.get_mut(&id).expect("live connection");
                c.txn.take().ok_or("no active transaction")?;
                ok()
            }
            S::Commit => {
                let c = self.conns.get_mut(&id).expect("live connection");
                let buf = c.txn.take().ok_or("no active transaction")?;
                self.commit_txn(id, buf, fx)
            }
            S::ShowStatus => Ok(Flow::Reply(self.status(id))),
            S::ShowDatabases => Ok(Flow::Reply(names(self.state.dbs.keys()))),
            S::UseDatabase(d) => {
                self.state.db(&d)?;
                self.conns.get_mut(&id).expect("live connection").db = Some(d);
                ok()
            }
            S::CreateDatabase(d) => {
                self.need(id, "*", Perms::A)?;
                self.commit_ok(id, vec![Op::CreateDatabase(d)], fx)
            }
            S::DropDatabase(d) => {
                self.state.db(&d)?;
                self.need(id, &d, Perms::A)?;
                self.commit_ok(id, vec![Op::DropDatabase(d)], fx)
            }
            S::CreateUser { name, password } => {
                self.need(id, "*", Perms::A)?;
                if self.state.users.contains_key(&name) {
                    return Err(format!("duplicate user: {name}"));
                }
                let salt = self.salt();
                let params = self.cfg.argon2;
                self.spawn(
                    Some(id),
                    Waiting::CreateUser { name },
                    Job::Hash {
                        password,
                        salt,
                        params,
                    },
                    fx,
                );
                Ok(Flow::Busy)
            }
            S::DropUser(u) => {
                self.state.user(&u)?;
                self.need(id, "*", Perms::A)?;
                self.keep_an_admin(&u)?;
                self.commit_ok(id, vec![Op::DropUser(u)], fx)
            }
            S::ShowUsers => {
                self.need(id, "*", Perms::A)?;
                Ok(Flow::Reply(names(self.state.users.keys())))
            }
            S::Grant { perms, db, user } => {
                let op = Op::Grant { user, db, perms };
                self.grant_op(id, op, fx)
            }
            S::Revoke { perms, db, user } => {
                let op = Op::Revoke { user, db, perms };
                self.grant_op(id, op, fx)
            }
            S::ShowGrants(who) => {
                if let Some(u) = &who {
                    self.state.user(u)?;
                }
                let me = self.session_user(id).ok().flatten().map(str::to_string);
                if !(who.is_some() && who == me) {
                    self.need(id, "*", Perms::A)?;
                }
                Ok(Flow::Reply(self.grants(who.as_deref())))
            }
            // Everything below works inside the connection's current database.
            other => self.db_statement(id, other, fx),
        }
    }

    fn grant_op(&mut self, id: ConnId, op: Op, fx: &mut Vec<Effect>) -> Res<Flow> {
        let (Op::Grant { user, db, .. } | Op::Revoke { user, db, .. }) = &op else {
            unreachable!("grant ops only")
        };
        if db != "*" {
            self.state.db(db)?;
        }
        self.state.user(user)?;
        let db = db.clone();
        self.need(id, &db, Perms::A)?;
        if let Op::Revoke { user, db, perms } = &op {
            if db == "*" && perms.contains(Perms::A) {
                self.keep_an_admin(user)?;
            }
        }
        self.commit_ok(id, vec![op], fx)
    }

    /// Refuse to take the last global admin's `A` on `*` (by REVOKE or DROP USER): the
    /// bootstrap admin is only created when no users exist, so nobody could administer the
    /// store again. Checked at the statement, not in `State::check`, so that logs written
    /// before this rule still replay.
    fn keep_an_admin(&self, user: &str) -> Res<()> {
        if !self.cfg.auth {
            // Nobody can be locked out of a store without authentication.
            return Ok(());
        }
        let view = self.pending_state();
        let admin =
            |u: &crate::catalog::User| u.grants.get("*").is_some_and(|p| p.contains(Perms::A));
        let is_admin = view.users.get(user).is_some_and(admin);
        let others = view.users.iter().any(|(name, u)| name != user && admin(u));
        if is_admin && !others {
            return Err("permission denied: cannot remove the last global admin (A on *)".into());
        }
        Ok(())
    }

    fn grants(&self, who: Option<&str>) -> String {
        let mut n = 0;
        let mut body = String::new();
        for (name, u) in &self.state.users {
            if who.is_some_and(|w| w != name) {
                continue;
            }
            n += 1;
            let _ = write!(body, "; {name}");
            for (db, p) in &u.grants {
                let _ = write!(body, " {db}:{p}");
            }
        }
        format!("GRANTS {n}{body}")
    }

    fn status(&self, id: ConnId) -> String {
        let c = self.conns.get(&id);
        let kv = [
            ("auth", if self.cfg.auth { "on" } else { "off" }.to_string()),
            ("connections", self.conns.len().to_string()),
            (
                "database",
                c.and_then(|c| c.db.clone()).unwrap_or_else(|| "-".into()),
            ),
            ("databases", self.state.dbs.len().to_string()),
            (
                "transaction",
                if c.is_some_and(|c| c.txn.is_some()) {
                    "on"
                } else {
                    "off"
                }
                .to_string(),
            ),
            ("version", VERSION.to_string()),
            ("written_at", self.state.written_at.to_string()),
        ];
        let mut s = format!("STATUS {}", kv.len());
        for (k, v) in kv {
            let _ = write!(s, "; {k}:{v}");
        }
        s
    }

    fn db_statement(&mut self, id: ConnId, st: Statement, fx: &mut Vec<Effect>) -> Res<Flow> {
        use Statement as S;
        let dbname = self.current_db(id)?;
        // Writes validate against committed state plus the connection's own buffered
        // DDL; reads (and COMPACT) see committed state only, transaction or not.
        //
        // Both are Arc clones: every arm that goes on to commit must drop them first, or
        // the commit's `Arc::make_mut` would copy the database and the lens (O(layers)
        // per write; BENCHMARKS.md's single-APPEND figure catches that).
        let committed = self.state.db(&dbname)?.clone();
        let db = self.view(id).db(&dbname)?.clone();
        let ok = || Ok(Flow::Reply("OK".into()));
        match st {
            S::ShowLenses => {
                self.need(id, &dbname, Perms::R)?;
                Ok(Flow::Reply(names(committed.lenses.keys())))
            }
            S::CreateLens { name, ty } => {
                self.need(id, &dbname, Perms::C)?;
                drop((db, committed));
                self.write(
                    id,
                    vec![Op::CreateLens {
                        db: dbname,
                        name,
                        ty,
                    }],
                    fx,
                )
            }
            S::DropLens(name) => {
                db.lens(&name)?;
                self.need(id, &dbname, Perms::D)?;
                drop((db, committed));
                self.write(id, vec![Op::DropLens { db: dbname, name }], fx)
            }
            S::Derive { name, expr } => {
                crate::catalog::check_refs(&db, &expr)?;
                self.need(id, &dbname, Perms::C)?;
                drop((db, committed));
                self.write(
                    id,
                    vec![Op::Derive {
                        db: dbname,
                        name,
                        expr,
                    }],
                    fx,
                )
            }
            S::Append { lens, rows, .. } => {
                db.lens(&lens)?;
                self.need(id, &dbname, Perms::U)?;
                let ty = writable(&db, &lens, "APPEND")?;
                drop((db, committed));
                let in_txn = self.conns.get(&id).is_some_and(|c| c.txn.is_some());
                let kept = in_txn.then(|| rows.clone());
                match validate_rows(&lens, ty, rows)? {
                    None if !in_txn => ok(),
                    // An empty write in a transaction is kept, so COMMIT re-checks its lens.
                    None => self.buffer(
                        id,
                        Op::Append {
                            db: dbname,
                            lens,
                            ty,
                            segs: Arc::new(Segs::default()),
                        },
                        kept,
                    ),
                    Some(segs) => {
                        let op = Op::Append {
                            db: dbname,
                            lens,
                            ty,
                            segs: Arc::new(segs),
                        };
                        if in_txn {
                            self.buffer(id, op, kept)
                        } else {
                            self.write(id, vec![op], fx)
                        }
                    }
                }
            }
            S::Copy { lens, path } => {
                db.lens(&lens)?;
                self.need(id, &dbname, Perms::U)?;
                let ty = writable(&db, &lens, "COPY")?;
                let full = resolve_import(self.cfg.import_dir.as_deref(), &path)?;
                let token = self.token();
                self.pending.insert(
                    token,
                    Pending {
                        conn: Some(id),
                        waiting: Some(Waiting::CopyRead {
                            db: dbname,
                            lens,
                            ty,
                            path,
                        }),
                        compact: None,
                    },
                );
                fx.push(Effect::ReadFile { token, path: full });
                Ok(Flow::Busy)
            }
            S::Compact(lens) => {
                committed.lens(&lens)?;
                self.need(id, &dbname, Perms::U)?;
                let uid = match committed.lens(&lens)? {
                    Lens::Base(b) => b.uid,
                    Lens::Derived(_) => {
                        return Err("invalid expression: COMPACT needs a base lens".into())
                    }
                };
                let Some(Lens::Base(b)) = committed.lenses.get(&lens) else {
                    return ok();
                };
                debug_assert_eq!(b.uid, uid);
                let Some(r) = b.plan_full() else { return ok() };
                let runs = b.runs[r].to_vec();
                let token = self.token();
                self.pending.insert(
                    token,
                    Pending {
                        conn: Some(id),
                        waiting: Some(Waiting::Compact),
                        compact: Some((dbname, lens, uid)),
                    },
                );
                fx.push(Effect::RunJob {
                    token,
                    job: Job::Compact { runs },
                });
                Ok(Flow::Busy)
            }
            st @ (S::At { .. } | S::Range { .. } | S::Reduce { .. } | S::History { .. }) => {
                let (lens, cost) = match &st {
                    S::At { lens, .. } | S::History { lens, .. } => (lens, 0),
                    S::Range {
                        lens,
                        start,
                        end,
                        filter,
                        ..
                    } => {
                        let f = filter
                            .as_ref()
                            .map_or(0, |f| query::estimate_expr(&committed, f, *start, *end, 0));
                        (
                            lens,
                            query::estimate(&committed, lens, *start, *end, 0).saturating_add(f),
                        )
                    }
                    S::Reduce {
                        lens, start, end, ..
                    } => (lens, query::estimate(&committed, lens, *start, *end, 0)),
                    _ => unreachable!(),
                };
                committed.lens(lens)?;
                if let S::Range {
                    filter: Some(f), ..
                } = &st
                {
                    crate::catalog::check_refs(&committed, f)?;
                }
                self.need(id, &dbname, Perms::R)?;
                let snapshot = committed;
                if cost > self.cfg.job_threshold {
                    self.spawn(
                        Some(id),
                        Waiting::Query,
                        Job::Query {
                            db: snapshot,
                            stmt: st,
                        },
                        fx,
                    );
                    Ok(Flow::Busy)
                } else {
                    Ok(Flow::Reply(run_read(&snapshot, &st)))
                }
            }
            _ => unreachable!("non-database statements are handled by the caller"),
        }
    }

    /// A validated write: buffer it in the open transaction, or commit it now.
    fn write(&mut self, id: ConnId, ops: Vec<Op>, fx: &mut Vec<Effect>) -> Res<Flow> {
        if self.conns.get(&id).is_some_and(|c| c.txn.is_some()) {
            for op in ops {
                self.buffer(id, op, None)?;
            }
            Ok(Flow::Reply("OK".into()))
        } else {
            self.commit_ok(id, ops, fx)
        }
    }

    /// Commit `ops` for connection `id`, answering `OK` when they are durable: at once in
    /// memory, after the covering sync in durable mode.
    fn commit_ok(&mut self, id: ConnId, ops: Vec<Op>, fx: &mut Vec<Effect>) -> Res<Flow> {
        if self.durable.is_some() {
            self.submit(ops, Some((id, "OK".into())), fx)?;
            Ok(Flow::Busy)
        } else {
            self.commit(ops, fx)?;
            Ok(Flow::Reply("OK".into()))
        }
    }

    /// Accept one statement into the connection's open transaction.
    fn buffer(&mut self, id: ConnId, op: Op, rows: Option<Vec<Row>>) -> Res<Flow> {
        let max = self.cfg.max_txn_statements;
        let empty_append = matches!(&op, Op::Append { segs, .. } if segs.is_empty());
        if !empty_append {
            self.view(id).check(&op)?;
        }
        let txn = self
            .conns
            .get_mut(&id)
            .and_then(|c| c.txn.as_mut())
            .expect("open transaction");
        if txn.len() >= max {
            return Err(format!("transaction too large (at most {max} statements)"));
        }
        txn.push(Buffered { op, rows });
        Ok(Flow::Reply("OK".into()))
    }

    /// COMMIT: re-check every buffered statement in order (rights, then the statement
    /// itself against the state as the earlier ones left it), then apply all of them
    /// at once with one `written_at`, or nothing.
    fn commit_txn(&mut self, id: ConnId, buf: Vec<Buffered>, fx: &mut Vec<Effect>) -> Res<Flow> {
        let written_at = self.now_ms.max(self.state.written_at);
        let mut scratch = self.pending_state().into_owned();
        let mut final_ops = Vec::new();
        let mut touched = Vec::new();
        for b in buf {
            // The usual order per statement: unknown names, then rights, then the rest.
            if let Some((db, p)) = op_right(&b.op) {
                let d = scratch.db(db)?;
                match &b.op {
                    Op::Append { lens, .. } | Op::DropLens { name: lens, .. } => {
                        d.lens(lens)?;
                    }
                    Op::Derive { expr, .. } => crate::catalog::check_refs(d, expr)?,
                    _ => {}
                }
                self.need(id, db, p)?;
            }
            let op = match (b.op, b.rows) {
                (Op::Append { db, lens, .. }, Some(rows)) => {
                    let d = scratch.db(&db)?;
                    let ty = writable(d, &lens, "APPEND")?;
                    match validate_rows(&lens, ty, rows)? {
                        None => continue,
                        Some(segs) => Op::Append {
                            db,
                            lens,
                            ty,
                            segs: Arc::new(segs),
                        },
                    }
                }
                (op, _) => op,
            };
            if let Op::Append { db, lens, .. } = &op {
                touched.push((db.clone(), lens.clone()));
            }
            if self.durable.is_some() {
                final_ops.push(op.clone());
            }
            scratch.apply(op, written_at)?;
        }
        if self.durable.is_some() {
            if final_ops.is_empty() {
                return Ok(Flow::Reply("OK".into()));
            }
            // Checked above in statement order; durable once the covering sync is done.
            drop(scratch);
            self.submit(final_ops, Some((id, "OK".into())), fx)?;
            return Ok(Flow::Busy);
        }
        self.state = scratch;
        for (db, lens) in touched {
            self.maybe_compact(&db, &lens, fx);
        }
        Ok(Flow::Reply("OK".into()))
    }

    /// Apply a commit atomically with one `written_at`, then consider compaction.
    fn commit(&mut self, ops: Vec<Op>, fx: &mut Vec<Effect>) -> Res<()> {
        let written_at = self.now_ms.max(self.state.written_at);
        let touched: Vec<(String, String)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Append { db, lens, .. } => Some((db.clone(), lens.clone())),
                _ => None,
            })
            .collect();
        self.state.commit(ops, written_at)?;
        for (db, lens) in touched {
            self.maybe_compact(&db, &lens, fx);
        }
        Ok(())
    }

    pub(crate) fn maybe_compact(&mut self, db: &str, lens: &str, fx: &mut Vec<Effect>) {
        let Ok(d) = self.state.db(db) else { return };
        let Some(Lens::Base(b)) = d.lenses.get(lens) else {
            return;
        };
        if self.compacting.contains(&b.uid) {
            return;
        }
        let cfg = &self.cfg;
        let threshold = cfg
            .compact_thresholds
            .get(db)
            .copied()
            .unwrap_or(cfg.compact_threshold);
        let Some(r) = b.plan_auto(threshold) else {
            return;
        };
        let (uid, runs) = (b.uid, b.runs[r].to_vec());
        self.compacting.insert(uid);
        let token = self.token();
        self.pending.insert(
            token,
            Pending {
                conn: None,
                waiting: None,
                compact: Some((db.to_string(), lens.to_string(), uid)),
            },
        );
        fx.push(Effect::RunJob {
            token,
            job: Job::Compact { runs },
        });
    }

    pub(crate) fn install_compaction(&mut self, db: &str, lens: &str, uid: u64, c: Arc<Compacted>) {
        let Some(d) = self.state.dbs.get_mut(db) else {
            return;
        };
        match d.lenses.get(lens) {
            Some(Lens::Base(b)) if b.uid == uid => {}
            _ => return,
        }
        let d = Arc::make_mut(d);
        if let Some(Lens::Base(b)) = d.lenses.get_mut(lens) {
            Arc::make_mut(b).install(c);
        }
    }

    /// Answer a connection whose job finished. Returns true if it now waits on
    /// something else (a durable commit).
    pub(crate) fn finish_waiting(
        &mut self,
        id: ConnId,
        waiting: Option<Waiting>,
        output: JobOutput,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let reply = match (waiting, output) {
            (Some(Waiting::Auth { user }), JobOutput::Verified(ok)) => {
                let phc = self.state.users.get(&user).map(|u| u.phc.clone());
                if let (true, Some(phc)) = (ok, phc) {
                    let c = self.conns.get_mut(&id).expect("checked by caller");
                    c.authed = true;
                    c.user = Some(user);
                    c.user_phc = Some(phc);
                    "OK".to_string()
                } else {
                    self.stats.auth_failures += 1;
                    self.say(id, "ERR authentication failed");
                    self.close_after_reply(id);
                    return false;
                }
            }
            (Some(Waiting::CreateUser { name }), JobOutput::Hashed(phc)) => {
                match phc.and_then(|phc| self.commit_ok(id, vec![Op::CreateUser { name, phc }], fx))
                {
                    Ok(Flow::Busy) => return true,
                    Ok(_) => "OK".into(),
                    Err(e) => format!("ERR {e}"),
                }
            }
            (Some(Waiting::Query), JobOutput::Reply(r)) => r,
            (Some(Waiting::Compact), JobOutput::Compacted(_)) => "OK".into(),
            (Some(Waiting::CopyParse { db, lens, ty }), JobOutput::Csv(r)) => match r {
                Err(e) => format!("ERR {e}"),
                Ok(None) => "OK".into(),
                Ok(Some(segs)) => {
                    let op = Op::Append {
                        db,
                        lens,
                        ty,
                        segs: Arc::new(segs),
                    };
                    match self.write(id, vec![op], fx) {
                        Ok(Flow::Busy) => return true,
                        Ok(_) => "OK".into(),
                        Err(e) => format!("ERR {e}"),
                    }
                }
            },
            (_, out) => format!("ERR internal error: unexpected job output {out:?}"),
        };
        self.say(id, &reply);
        false
    }
}

/// The type of a base lens that a write (`APPEND` or `COPY`) may target.
fn writable(db: &Database, lens: &str, what: &str) -> Res<Type> {
    match db.lens(lens)? {
        Lens::Base(b) => Ok(b.ty),
        Lens::Derived(_) => Err(format!("invalid expression: {what} needs a base lens")),
    }
}

/// The right a buffered op needs, re-checked at COMMIT.
fn op_right(op: &Op) -> Option<(&str, Perms)> {
    match op {
        Op::CreateLens { db, .. } | Op::Derive { db, .. } => Some((db, Perms::C)),
        Op::DropLens { db, .. } => Some((db, Perms::D)),
        Op::Append { db, .. } => Some((db, Perms::U)),
        _ => None,
    }
}
