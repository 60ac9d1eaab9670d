//! The state machine: `Engine::step(now_ms, event, &mut effects)` is the only way in,
//! and the effects it pushes are the only way out. No IO, no clock, no threads, no
//! unseeded randomness: the same events always produce the same effects.
//!
//! Per connection the engine frames lines itself (CRLF accepted, blank lines ignored,
//! a maximum line length), runs the AUTH handshake, and executes statements strictly in
//! order: while a statement waits for a job or a file, later lines queue behind it.

use crate::ast::Perms;
use crate::catalog::{Op, State};
use crate::jobs::{hash_password, Argon2Params, Job, JobOutput};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub type ConnId = u64;
pub type Token = u64;

#[derive(Clone, Debug)]
pub struct Config {
    /// Longest accepted line in bytes (without its `\n`).
    pub max_line_bytes: usize,
    /// Most input a connection may queue behind a busy statement.
    pub max_pipelined_bytes: usize,
    /// Once a connection's replies from one step reach this many bytes, it executes no
    /// more queued lines until `Event::Resume` (its driver sends that when the client
    /// has read them). Bounds reply memory for a client that pipelines large reads and
    /// does not read. `usize::MAX`: never hold.
    pub reply_burst_bytes: usize,
    pub auth: bool,
    /// Created with `A` on `*` (a global admin) when no users exist.
    pub bootstrap_admin: Option<(String, String)>,
    pub import_dir: Option<String>,
    pub default_database: Option<String>,
    /// Automatic compaction once a lens has more runs (layers not yet compacted, plus
    /// compacted runs) than this...
    pub compact_threshold: usize,
    /// ...or than this database's own threshold, where one is set.
    pub compact_thresholds: BTreeMap<String, usize>,
    /// Reads estimated to touch more stored intervals than this run as jobs.
    pub job_threshold: usize,
    pub max_txn_statements: usize,
    pub argon2: Argon2Params,
    /// Seed of the engine's ChaCha RNG (salts, WAL nonces). The real driver draws it
    /// from the OS.
    pub seed: u64,
    /// `None`: in memory only. `Some`: durable (WAL in the data directory).
    pub storage: Option<crate::durable::StorageConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_line_bytes: 1 << 20,
            max_pipelined_bytes: 64 << 20,
            reply_burst_bytes: usize::MAX,
            auth: false,
            bootstrap_admin: None,
            import_dir: None,
            default_database: None,
            compact_threshold: 32,
            compact_thresholds: BTreeMap::new(),
            job_threshold: 1 << 16,
            max_txn_statements: 100_000,
            argon2: Argon2Params::PRODUCTION,
            seed: 0,
            storage: None,
        }
    }
}

#[derive(Debug)]
pub enum Event {
    /// The process started. (Recovery hooks in here once storage exists.)
    Boot,
    Open(ConnId),
    Bytes(ConnId, Vec<u8>),
    /// The connection is gone (reset, or the client vanished): drop it now, rolling back
    /// an open transaction.
    Closed(ConnId),
    /// The client finished sending (half-close): answer every complete line it sent, then
    /// close. A final line without its `\n` is dropped (SPEC v0.2: it may be cut short).
    Eof(ConnId),
    /// The server is stopping: answer every complete line already received, drop a
    /// partial one (it may be cut short), then close. Takes no more input.
    Drain(ConnId),
    /// The connection's replies have been delivered: run its queued lines again (see
    /// `Config::reply_burst_bytes`).
    Resume(ConnId),
    FileRead {
        token: Token,
        result: Result<Vec<u8>, String>,
    },
    JobDone {
        token: Token,
        output: JobOutput,
    },
    /// A storage op finished (see `durable::StorageOp`).
    StorageDone {
        token: Token,
        result: Result<crate::durable::StorageOut, String>,
    },
}

#[derive(Debug)]
pub enum Effect {
    Send(ConnId, Vec<u8>),
    /// Close after everything sent before it.
    Close(ConnId),
    ReadFile {
        token: Token,
        path: String,
    },
    RunJob {
        token: Token,
        job: Job,
    },
    /// Storage IO; a driver runs these strictly in the order they are emitted.
    Storage {
        token: Token,
        op: crate::durable::StorageOp,
    },
    /// A line for the operator's log (recovery, storage failures).
    Log(String),
    /// The store cannot start (corruption, wrong key, unknown format): report and exit.
    Fatal(String),
}

/// What a connection is waiting for.
pub(crate) enum Waiting {
    Auth {
        user: String,
    },
    CreateUser {
        name: String,
    },
    Query,
    CopyRead {
        db: String,
        lens: String,
        ty: crate::value::Type,
        path: String,
    },
    CopyParse {
        db: String,
        lens: String,
        ty: crate::value::Type,
    },
    Compact,
}

pub(crate) struct Pending {
    pub conn: Option<ConnId>,
    pub waiting: Option<Waiting>,
    /// For compaction jobs: which lens incarnation the result belongs to.
    pub compact: Option<(String, String, u64)>,
}

#[derive(Default)]
pub(crate) struct Conn {
    buf: Vec<u8>,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Over-long input seen: answer what came before, then `ERR line too long`, close.
    too_long: bool,
    /// Input ended: close once the queue is answered.
    eof: bool,
    pub busy: bool,
    /// Held for `Config::reply_burst_bytes` until `Event::Resume`.
    held: bool,
    pub closing: bool,
    pub out: Vec<u8>,
    pub db: Option<String>,
    pub user: Option<String>,
    /// The authenticated user's password hash: a session belongs to one creation of a user,
    /// not to its name (a user dropped and created again gets a new salt, so a new hash).
    pub user_phc: Option<String>,
    pub authed: bool,
    pub txn: Option<Vec<Buffered>>,
}

impl Conn {
    /// Input held and not yet executed (stats.rs, for the driver's backpressure).
    pub(crate) fn backlog(&self) -> usize {
        self.queued_bytes + self.buf.len()
    }
}

/// A statement accepted into an open transaction.
pub(crate) struct Buffered {
    pub op: Op,
    /// For APPEND: the rows as written, re-validated (and re-coerced) at COMMIT against
    /// the lens as it is then.
    pub rows: Option<Vec<crate::ast::Row>>,
}

pub struct Engine {
    pub(crate) cfg: Config,
    pub(crate) state: State,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) pending: BTreeMap<Token, Pending>,
    pub(crate) next_token: Token,
    pub(crate) rng: ChaCha20Rng,
    /// Lens uids with an automatic compaction in flight.
    pub(crate) compacting: BTreeSet<u64>,
    pub(crate) now_ms: i64,
    pub(crate) durable: Option<crate::durable::Durable>,
    /// Counters for the driver's metrics (stats.rs).
    pub(crate) stats: crate::stats::Stats,
}

impl Engine {
    pub fn new(cfg: Config) -> Engine {
        let rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        let mut e = Engine {
            cfg,
            state: State::default(),
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_token: 1,
            rng,
            compacting: BTreeSet::new(),
            now_ms: 0,
            durable: None,
            stats: crate::stats::Stats::default(),
        };
        e.durable = e.cfg.storage.clone().map(crate::durable::Durable::new);
        // A durable store bootstraps after recovery, when it knows whether users exist.
        if e.durable.is_none() {
            let ops = e.bootstrap_ops();
            let applied = e.state.commit(ops, 0);
            assert!(applied.is_ok(), "bootstrap applies to an empty state");
        }
        e
    }

    /// The configured admin (`A` on `*`), when no users exist yet: as ops, so that a
    /// durable store logs it like any other change.
    pub(crate) fn bootstrap_ops(&mut self) -> Vec<crate::catalog::Op> {
        if !self.state.users.is_empty() {
            return Vec::new();
        }
        let Some((name, password)) = self.cfg.bootstrap_admin.clone() else {
            return Vec::new();
        };
        let salt = self.salt();
        // Once per store: hashing inline is fine here.
        let phc = hash_password(&password, salt, self.cfg.argon2).expect("valid argon2 parameters");
        vec![
            crate::catalog::Op::CreateUser {
                name: name.clone(),
                phc,
            },
            crate::catalog::Op::Grant {
                user: name,
                db: "*".into(),
                perms: Perms::A,
            },
        ]
    }

    pub(crate) fn salt(&mut self) -> [u8; 16] {
        let mut s = [0u8; 16];
        self.rng.fill_bytes(&mut s);
        s
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Read-only view of the committed state (tests, the simulator, benchmarks).
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The only entry point. Effects are appended to `fx` in the order they must run.
    pub fn step(&mut self, now_ms: i64, event: Event, fx: &mut Vec<Effect>) {
        // The driver's clock may step back; the engine's never does.
        self.now_ms = self.now_ms.max(now_ms);
        match event {
            Event::Boot => self.boot_storage(fx),
            Event::StorageDone { token, result } => self.on_storage(token, result, fx),
            Event::Open(id) => {
                let c = Conn {
                    db: self.cfg.default_database.clone(),
                    authed: !self.cfg.auth,
                    ..Conn::default()
                };
                assert!(
                    self.conns.insert(id, c).is_none(),
                    "connection id reused while open"
                );
            }
            Event::Bytes(id, data) => self.on_bytes(id, &data, fx),
            Event::Closed(id) => {
                // A disconnect rolls back: the buffered transaction is simply dropped.
                if let Some(c) = self.conns.remove(&id) {
                    self.stats.partial_lines_discarded +=
                        u64::from(!c.eof && !c.too_long && !c.buf.is_empty());
                }
            }
            Event::Eof(id) => {
                // SPEC v0.2: a statement runs only once its `\n` has arrived. Bytes after
                // the last `\n` may be a statement cut short by a killed client
                // (`APPEND ... 123` cut to `... 12`), so they are dropped, never run.
                if let Some(c) = self.conns.get_mut(&id) {
                    if !c.eof && !c.too_long {
                        self.stats.partial_lines_discarded += u64::from(!c.buf.is_empty());
                        c.buf.clear();
                    }
                    c.eof = true;
                }
                self.pump(id, fx);
            }
            Event::Resume(id) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.held = false;
                }
                self.pump(id, fx);
            }
            Event::Drain(id) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    self.stats.partial_lines_discarded +=
                        u64::from(!c.eof && !c.too_long && !c.buf.is_empty());
                    c.buf.clear();
                    c.eof = true;
                }
                self.pump(id, fx);
            }
            Event::FileRead { token, result } => {
                self.on_file(token, result, fx);
                // A checkpoint may be waiting for this COPY to commit or fail.
                self.maybe_checkpoint(fx);
            }
            Event::JobDone { token, output } => {
                self.on_job(token, output, fx);
                self.maybe_checkpoint(fx);
            }
        }
        self.flush(fx);
    }

    pub(crate) fn token(&mut self) -> Token {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn on_bytes(&mut self, id: ConnId, data: &[u8], fx: &mut Vec<Effect>) {
        let max = self.cfg.max_line_bytes;
        let max_queue = self.cfg.max_pipelined_bytes;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.closing || c.too_long || c.eof {
            return;
        }
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if c.buf.len() + nl > max {
                c.too_long = true;
                break;
            }
            c.buf.extend_from_slice(&rest[..nl]);
            let line = std::mem::take(&mut c.buf);
            c.queued_bytes += line.len();
            c.queue.push_back(line);
            rest = &rest[nl + 1..];
        }
        if !c.too_long {
            c.buf.extend_from_slice(rest);
            if c.buf.len() > max {
                c.too_long = true;
            }
        }
        if c.queued_bytes > max_queue {
            c.queue.clear();
            c.out
                .extend_from_slice(b"ERR server busy: too much pipelined input\n");
            c.closing = true;
            return;
        }
        self.pump(id, fx);
    }

    /// Run queued lines until the connection waits on something or runs dry.
    pub(crate) fn pump(&mut self, id: ConnId, fx: &mut Vec<Effect>) {
        // During recovery, input waits in the queue.
        if !self.serving() {
            return;
        }
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            // Input that has ended is finite: only a live client is held back.
            if c.busy || c.closing || (c.held && !c.eof) {
                return;
            }
            if c.out.len() >= self.cfg.reply_burst_bytes && !c.eof && !c.queue.is_empty() {
                c.held = true;
                return;
            }
            let Some(line) = c.queue.pop_front() else {
                if c.too_long {
                    c.out.extend_from_slice(b"ERR line too long\n");
                    c.closing = true;
                } else if c.eof {
                    // Everything the client sent is answered. An open transaction ends
                    // with the connection, so it rolls back.
                    c.closing = true;
                }
                return;
            };
            c.queued_bytes -= line.len();
            self.execute_line(id, line, fx);
        }
    }

    /// Append one reply line for `id`.
    pub(crate) fn say(&mut self, id: ConnId, reply: &str) {
        if let Some(c) = self.conns.get_mut(&id) {
            debug_assert!(!reply.contains('\n'), "one reply line per statement");
            if reply.starts_with("ERR") {
                self.stats.errors += 1;
            }
            c.out.extend_from_slice(reply.as_bytes());
            c.out.push(b'\n');
        }
    }

    pub(crate) fn close_after_reply(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.closing = true;
            c.queue.clear();
        }
    }

    /// Turn buffered replies into effects, one `Send` per connection per step.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        let mut closed = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            if !c.out.is_empty() {
                fx.push(Effect::Send(*id, std::mem::take(&mut c.out)));
            }
            if c.closing {
                fx.push(Effect::Close(*id));
                closed.push(*id);
            }
        }
        for id in closed {
            self.conns.remove(&id);
        }
    }

    fn on_file(&mut self, token: Token, result: Result<Vec<u8>, String>, fx: &mut Vec<Effect>) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        let (Some(id), Some(Waiting::CopyRead { db, lens, ty, path })) = (p.conn, p.waiting) else {
            return;
        };
        if !self.conns.contains_key(&id) {
            return;
        }
        match result {
            Err(why) => {
                self.say(id, &format!("ERR cannot read {path}: {why}"));
                self.done_waiting(id, fx);
            }
            Ok(data) => {
                let t = self.token();
                self.pending.insert(
                    t,
                    Pending {
                        conn: Some(id),
                        waiting: Some(Waiting::CopyParse {
                            db,
                            lens: lens.clone(),
                            ty,
                        }),
                        compact: None,
                    },
                );
                fx.push(Effect::RunJob {
                    token: t,
                    job: Job::ParseCsv {
                        data,
                        path,
                        lens,
                        ty,
                    },
                });
            }
        }
    }

    pub(crate) fn done_waiting(&mut self, id: ConnId, fx: &mut Vec<Effect>) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.busy = false;
        }
        self.pump(id, fx);
    }

    fn on_job(&mut self, token: Token, output: JobOutput, fx: &mut Vec<Effect>) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        if let (Some((db, lens, uid)), JobOutput::Compacted(c)) = (&p.compact, &output) {
            self.compacting.remove(uid);
            self.install_compaction(db, lens, *uid, c.clone());
            self.stats.compactions += 1;
        }
        let Some(id) = p.conn else { return };
        if !self.conns.contains_key(&id) {
            return;
        }
        if !self.finish_waiting(id, p.waiting, output, fx) {
            self.done_waiting(id, fx);
        }
    }
}
