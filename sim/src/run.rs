//! Run one case: drive the real engine through `step()` only, answer the same
//! statements with the oracle, and compare every reply line. After every restart, the
//! durability check: the recovered state must equal the oracle over a prefix of the
//! submitted writes that holds every acknowledged one.

use crate::case::{Case, Op};
use crate::disk::Disk;
use crate::workload::import_files;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tau_engine::durable::{StorageConfig, StorageOp};
use tau_engine::{run_job, Argon2Params, Config, Effect, Engine, Event, Job, Token};
use tau_oracle::{Oracle, OracleConfig, Snapshot};

#[derive(Clone, Debug)]
pub struct Divergence {
    pub step: usize,
    pub conn: u8,
    pub statement: String,
    pub expected: String,
    pub actual: String,
    pub trace: Vec<String>,
}

impl Divergence {
    /// What must stay the same while shrinking: the kind of statement that diverged.
    pub fn signature(&self) -> String {
        let words: Vec<&str> = self.statement.split_whitespace().take(2).collect();
        format!(
            "{} | {}",
            words.join(" "),
            self.actual.split(':').next().unwrap_or("")
        )
    }
}

#[derive(Default, Debug)]
pub struct Stats {
    pub statements: u64,
    pub sends: u64,
    pub chunked: u64,
    pub pipelined: u64,
    pub disconnects: u64,
    pub half_closes: u64,
    pub restarts: u64,
    pub checkpoints: u64,
    pub held_jobs: u64,
    /// Syncs run by the driver after being held (`hold_io` seeds).
    pub held_syncs: u64,
    pub jobs: u64,
    /// Disk faults and crash outcomes, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Statement kind → (OK-ish replies, ERR replies).
    pub kinds: BTreeMap<String, (u64, u64)>,
    /// ERR reply shapes (the text before any `:`), counted.
    pub errors: BTreeMap<String, u64>,
    pub trace_hash: u64,
}

impl Stats {
    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }
}

pub struct Outcome {
    pub divergence: Option<Divergence>,
    pub stats: Stats,
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn kind_of(line: &str) -> String {
    let w: Vec<String> = line
        .split_whitespace()
        .take(2)
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let k = w.join(" ");
    let known = crate::workload::KINDS.iter().find(|k2| k.starts_with(**k2));
    match known {
        Some(k) => k.to_string(),
        None if line.trim().is_empty() => "blank".into(),
        None if k.starts_with("EXIT") || k.starts_with("QUIT") => "QUIT".into(),
        None if k.starts_with("COMMIT") || k.starts_with("ROLLBACK") => w[0].clone(),
        None => "garbage".into(),
    }
}

/// `TAU_SIM_DEBUG=1` prints each compared reply and each durability check's candidates
/// (to stderr) while replaying a case.
fn debug_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TAU_SIM_DEBUG").is_some())
}

/// The connection the durability probe uses (the workload's are 0..conns).
const PROBE: u64 = 1000;
/// How many recent committed states to keep when bit rot may eat the last WAL record.
const HISTORY: usize = 32;

type Fail = Box<Divergence>;

/// A write whose reply has not arrived: what the oracle answered, and the committed
/// states just before and just after it (in submission order).
struct Pending {
    conn: u8,
    line: String,
    kind: String,
    expected: String,
    step: usize,
    before: Snapshot,
    after: Snapshot,
}

/// Statements that may be submitted while other connections' commits wait on held
/// storage: autocommit writes and lens DDL (validated against committed state plus every
/// commit in flight, as the oracle's order has it) and transaction control. Reads see
/// committed state only, and database, user and grant statements check names and rights
/// against committed state, so all of those wait until everything has drained.
const CONCURRENT: &[&str] = &[
    "APPEND LENS",
    "BATCH APPEND",
    "CREATE LENS",
    "DROP LENS",
    "DERIVE LENS",
    "COPY LENS",
    "START TRANSACTION",
    "COMMIT",
    "ROLLBACK",
];

/// How long `reply` may wait for a line.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Only what has arrived.
    No,
    /// Complete held jobs, but leave held storage alone.
    Jobs,
    /// Complete held jobs and run held storage ops until the line arrives.
    All,
}

struct World<'c> {
    case: &'c Case,
    engine: Engine,
    generation: u64,
    disk: Disk,
    fatal: Option<String>,
    /// Log lines since the engine booted.
    logs: Vec<String>,
    oracle: Oracle,
    files: BTreeMap<String, Vec<u8>>,
    held: Vec<(Token, Job)>,
    /// Storage ops the engine asked for and the simulated driver has not run yet
    /// (`hold_io` seeds). They run strictly in order, as `StorageOp` requires; what
    /// varies is when, relative to client bytes and job completions.
    io: VecDeque<(Token, StorageOp)>,
    /// Append ops the engine has asked for: a write that emitted one is in the commit
    /// pipeline (and not parked behind a checkpoint).
    appends: u64,
    /// Recovery is running (with its durability probe): storage is never held then.
    booting: bool,
    /// Writes submitted and not yet answered, in submission order (`hold_io` seeds): each
    /// waits for a sync that the driver holds, while other connections go on.
    outstanding: VecDeque<Pending>,
    /// An entry of the current `outstanding` set was refused (so the oracle already
    /// stands before it: later refusals of the same set must not move it forward).
    outstanding_refused: bool,
    received: BTreeMap<u64, Vec<u8>>,
    /// Whole reply lines received and not yet compared, per connection.
    inbox: BTreeMap<u64, VecDeque<String>>,
    closed: BTreeSet<u64>,
    open: Vec<bool>,
    buffers: Vec<Vec<String>>,
    now: i64,
    /// A power loss is armed: after this many more storage ops, with this pick.
    crash_in: Option<(u32, u64)>,
    /// The power went: the engine is dead until the next boot.
    crashed: Option<u64>,
    /// An injected storage error reached the engine since it booted.
    faulted: bool,
    /// A write was refused because the store failed for good (an fsync or append error,
    /// not a full disk): from then on until the next start, writes are refused before
    /// their record is written, so they cannot have reached the disk.
    fail_stopped: bool,
    /// Committed states past the oracle's that recovery may also show: submitted writes
    /// whose fate is unknown (cut off by a crash, or refused after a failed sync that may
    /// still have reached the disk), each state including all before it.
    uncertain: Vec<Snapshot>,
    /// Recent committed states, newest last (only with bit rot on: rot in the last WAL record looks
    /// torn, so recovery may legitimately lose it — the documented limitation).
    history: VecDeque<Snapshot>,
    /// Other recovered states the probes could not tell from `oracle`'s (say, two
    /// definitions of a derived lens that agree on today's data). Each follows every
    /// statement; the first reply that tells them apart decides.
    alts: Vec<Oracle>,
    /// The case injects bit rot (so `history` is kept).
    rot_on: bool,
    trace: VecDeque<String>,
    step: usize,
    stats: Stats,
}

impl World<'_> {
    fn diverge(&self, conn: u8, statement: &str, expected: &str, actual: &str) -> Fail {
        Box::new(Divergence {
            step: self.step,
            conn,
            statement: statement.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
            trace: self.trace.iter().cloned().collect(),
        })
    }

    /// Could a storage op fail or be cut off now?
    fn risky(&self) -> bool {
        self.case.cfg.durable
            && (self.faulted
                || self.crash_in.is_some()
                || self.disk.full
                || self.crashed.is_some()
                || self.disk.fail_syncs > 0)
    }

    fn pump(&mut self, first: Event) {
        if self.crashed.is_some() {
            return;
        }
        let mut q = VecDeque::from([first]);
        let mut fx = Vec::new();
        while let Some(ev) = q.pop_front() {
            self.engine.step(self.now, ev, &mut fx);
            for e in fx.drain(..) {
                if self.crashed.is_some() {
                    // The process is gone: nothing it asked for happens.
                    continue;
                }
                match e {
                    Effect::Send(c, b) => self.received.entry(c).or_default().extend(b),
                    Effect::Close(c) => {
                        self.closed.insert(c);
                    }
                    Effect::ReadFile { token, path } => {
                        q.push_back(Event::FileRead {
                            token,
                            result: self.files.get(&path).cloned().ok_or_else(|| {
                                "No such file or directory (os error 2)".to_string()
                            }),
                        })
                    }
                    Effect::Storage { token, op } => {
                        if matches!(op, StorageOp::Append { .. }) {
                            self.appends += 1;
                        }
                        if self.case.cfg.hold_io && !self.booting {
                            self.io.push_back((token, op));
                        } else if let Some(done) = self.exec_storage(token, op) {
                            q.push_back(done);
                        }
                    }
                    Effect::Fatal(m) => self.fatal = Some(m),
                    Effect::Log(l) => {
                        if l.starts_with("checkpoint:") {
                            self.stats.checkpoints += 1;
                        }
                        self.logs.push(l);
                    }
                    Effect::RunJob { token, job } => {
                        self.stats.jobs += 1;
                        if self.case.cfg.hold_jobs {
                            self.stats.held_jobs += 1;
                            self.held.push((token, job));
                        } else {
                            q.push_back(Event::JobDone {
                                token,
                                output: run_job(job),
                            });
                        }
                    }
                }
            }
            if self.crashed.is_some() {
                return;
            }
        }
    }

    /// Run one storage op on the simulated disk: its completion, or `None` when the power
    /// went during it.
    fn exec_storage(&mut self, token: Token, op: StorageOp) -> Option<Event> {
        if let Some((n, pick)) = self.crash_in {
            if n == 0 {
                self.crash_in = None;
                self.stats.fault("power loss mid-op");
                if debug_on() {
                    eprintln!("step {} power loss during {op:?}", self.step);
                }
                self.disk.exec_partly(op, pick);
                self.crashed = Some(pick);
                return None;
            }
            self.crash_in = Some((n - 1, pick));
        }
        let errors = self.disk.injected_errors;
        let is_sync = matches!(op, StorageOp::Sync { .. });
        let what = debug_on().then(|| match &op {
            StorageOp::Append { path, bytes } => format!("Append {path} +{}", bytes.len()),
            StorageOp::Create { path, bytes } => format!("Create {path} ({} bytes)", bytes.len()),
            other => format!("{other:?}"),
        });
        let result = self.disk.exec(op);
        if let Some(what) = what {
            let r = result.as_ref().map(|_| "ok");
            eprintln!("step {} storage {what}: {r:?}", self.step);
        }
        if self.disk.injected_errors > errors {
            self.faulted = true;
        }
        if is_sync && self.case.cfg.hold_io {
            self.stats.held_syncs += 1;
        }
        Some(Event::StorageDone { token, result })
    }

    /// Run up to `n` held storage ops, in the order the engine asked for them, and deliver
    /// each completion.
    fn release_io(&mut self, n: usize) {
        for _ in 0..n {
            if self.crashed.is_some() {
                return;
            }
            let Some((token, op)) = self.io.pop_front() else {
                return;
            };
            let is_sync = matches!(op, StorageOp::Sync { .. });
            let waiting = self.answered();
            if let Some(done) = self.exec_storage(token, op) {
                self.pump(done);
            }
            // Several waiters answered by one completion: a shared fsync (or a failure
            // that refused them all).
            let now = self.answered();
            if is_sync && now >= waiting + 2 {
                self.stats.fault("several commits answered by one fsync");
            }
        }
    }

    /// How many outstanding writes have their reply waiting.
    fn answered(&mut self) -> usize {
        if self.outstanding.is_empty() {
            return 0;
        }
        let ids: BTreeSet<u64> = self.outstanding.iter().map(|p| p.conn as u64).collect();
        for &id in &ids {
            self.lines_in(id);
        }
        ids.iter()
            .filter(|id| self.inbox.get(id).is_some_and(|q| !q.is_empty()))
            .count()
    }

    /// Move the whole lines received on `id` into its inbox.
    fn lines_in(&mut self, id: u64) {
        if let Some(buf) = self.received.get_mut(&id) {
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                fnv(&mut self.stats.trace_hash, &line);
                self.inbox
                    .entry(id)
                    .or_default()
                    .push_back(String::from_utf8_lossy(&line[..nl]).into_owned());
            }
        }
    }

    /// Keep the committed state as it is now among the recent ones (see `history`).
    fn remember(&mut self) {
        let now = self.oracle.snapshot();
        self.remember_state(now);
    }

    fn remember_state(&mut self, now: Snapshot) {
        if self.history.back() == Some(&now) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(now);
    }

    /// Complete every held job, in an order `pick` chooses.
    fn run_held(&mut self, pick: u64) {
        let mut held = std::mem::take(&mut self.held);
        held.shuffle(&mut ChaCha8Rng::seed_from_u64(pick));
        for (token, job) in held {
            self.pump(Event::JobDone {
                token,
                output: run_job(job),
            });
        }
    }

    /// The next reply line on `id`: completing held jobs (a statement may wait on one)
    /// and, with `Wait::All`, held storage ops until it arrives. `None` when it never will
    /// (the connection closed, or the power went).
    fn reply(&mut self, id: u64, wait: Wait) -> Option<String> {
        let mut round = 0u64;
        loop {
            self.lines_in(id);
            if let Some(l) = self.inbox.get_mut(&id).and_then(VecDeque::pop_front) {
                return Some(l);
            }
            let io = wait == Wait::All && !self.io.is_empty();
            if wait == Wait::No || self.crashed.is_some() || (self.held.is_empty() && !io) {
                return None;
            }
            let pick = (self.step as u64) << 16 | round;
            round += 1;
            // Jobs and storage completions interleave in a seeded order.
            if !self.held.is_empty() && (!io || pick.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 63 == 0)
            {
                self.run_held(pick);
            } else {
                self.release_io(1);
            }
        }
    }

    fn config(&self) -> Config {
        let case = self.case;
        let c = &case.cfg;
        Config {
            auth: c.auth,
            bootstrap_admin: Some(("admin".into(), "pw".into())),
            import_dir: Some("/import".into()),
            compact_threshold: c.compact_threshold,
            job_threshold: c.job_threshold,
            argon2: Argon2Params::TEST,
            // A restarted process draws a new seed (fresh nonces), derived deterministically.
            seed: case.seed ^ self.generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            storage: c.durable.then(|| StorageConfig {
                dir: "/data".into(),
                key: case
                    .seed
                    .is_multiple_of(3)
                    .then(|| tau_engine::wal::WalKey::new(&[case.seed as u8; 32])),
                repair: false,
                // Small thresholds make checkpoints (and recovery from them) frequent.
                checkpoint_bytes: match c.checkpoint_bytes {
                    0 => [600, 3000, 1 << 26][(case.seed % 3) as usize],
                    n => n,
                },
            }),
            ..Config::default()
        }
    }

    /// Start a new process on the disk as it is, recover, and check what it recovered.
    fn boot(&mut self) -> Result<(), Fail> {
        self.booting = true;
        let r = self.recover();
        self.booting = false;
        r
    }

    fn recover(&mut self) -> Result<(), Fail> {
        self.oracle.restart();
        // States still possible from the last recovery stay candidates for this one.
        let alts: Vec<Snapshot> = std::mem::take(&mut self.alts)
            .iter()
            .map(Oracle::snapshot)
            .collect();
        // (Recovery may truncate a damaged tail, and with it the record of the flip; a
        // crash may cut recovery short and a later attempt finish it: keep both.)
        let rot = self.disk.rot.clone();
        self.logs.clear();
        for attempt in 0.. {
            if attempt == 6 {
                return Err(self.diverge(0, "<restart>", "recovery succeeds", "gave up"));
            }
            self.generation += 1;
            self.engine = Engine::new(self.config());
            self.fatal = None;
            self.faulted = false;
            self.fail_stopped = false;
            self.held.clear();
            self.io.clear();
            self.received.clear();
            self.inbox.clear();
            self.closed.clear();
            let reads_failed = self.disk.fail_reads;
            let syncs_failed = self.disk.fail_syncs;
            self.pump(Event::Boot);
            if let Some(pick) = self.crashed.take() {
                self.stats.fault("power loss during recovery");
                self.disk.crash(pick);
                continue;
            }
            if let Some(m) = self.fatal.take() {
                // Refusing to start is right only when an injected fault explains it; the
                // operator then restores the damaged file (or the read works again).
                let read_error = self.disk.fail_reads < reads_failed;
                let sync_error = self.disk.fail_syncs < syncs_failed;
                if !read_error && !sync_error && self.disk.rot.is_empty() {
                    return Err(self.diverge(
                        0,
                        "<restart>",
                        "recovery succeeds",
                        &format!("fatal: {m}"),
                    ));
                }
                if sync_error {
                    self.stats.fault("fsync error refused start");
                } else if read_error {
                    self.stats.fault("read error refused start");
                } else {
                    self.stats.fault("bit rot detected at start");
                }
                // The operator fixes the cause before starting it again.
                self.disk.repair_rot();
                self.disk.fail_reads = 0;
                self.disk.fail_syncs = 0;
                continue;
            }
            // Bit rot in the last WAL record is indistinguishable from a torn write:
            // recovery truncates it (and says so). Only then may committed writes be missing.
            let rot_truncated = rot.iter().any(|r| {
                self.logs.iter().any(|l| {
                    l.contains(&format!("{}: truncating a torn record at offset", r.path))
                        && l.split("at offset ")
                            .nth(1)
                            .and_then(|x| x.split_whitespace().next())
                            .and_then(|x| x.parse::<usize>().ok())
                            .is_some_and(|o| o <= r.offset)
                })
            });
            if debug_on() {
                eprintln!(
                    "logs {:?} rot {rot:?} hist {}",
                    self.logs,
                    self.history.len()
                );
            }
            if self.case.cfg.durable && !self.check_recovered(rot_truncated, &alts)? {
                // The power went while the probe ran (a checkpoint right after recovery,
                // say): recover again from what the disk kept.
                let pick = self.crashed.take().expect("the probe saw a power loss");
                self.stats.fault("power loss right after recovery");
                self.disk.crash(pick);
                continue;
            }
            if rot_truncated {
                self.stats.fault("bit rot in last record truncated as torn");
            }
            break;
        }
        self.disk.rot.clear();
        Ok(())
    }

    /// DESIGN.md's durability oracle: the recovered state equals the oracle's over a
    /// prefix of the submitted writes that contains every acknowledged write. Candidates
    /// are the acknowledged state, then each uncertain write added in order; the recovered
    /// server is read with probes (every database, lens, user and grant) and must match
    /// one of them exactly.
    /// `Ok(false)`: the power went during the probe; nothing was decided.
    fn check_recovered(&mut self, rot_truncated: bool, alts: &[Snapshot]) -> Result<bool, Fail> {
        // Each candidate with what it is, for the report when none matches.
        let mut candidates = vec![(self.oracle.snapshot(), "the acknowledged state".to_string())];
        if debug_on() {
            eprintln!(
                "step {} uncertain {} faulted {}",
                self.step,
                self.uncertain.len(),
                self.faulted
            );
        }
        candidates.extend(self.uncertain.iter().enumerate().map(|(k, c)| {
            let what = format!(
                "the acknowledged state plus {} write(s) of unknown fate",
                k + 1
            );
            (c.clone(), what)
        }));
        candidates.extend(alts.iter().enumerate().map(|(k, c)| {
            let what = format!("alternative recovered state {}", k + 1);
            (c.clone(), what)
        }));
        if rot_truncated {
            candidates.extend(self.history.iter().rev().enumerate().map(|(k, c)| {
                let what = format!(
                    "committed state {} write(s) back (rot in the last record)",
                    k + 1
                );
                (c.clone(), what)
            }));
        }
        if candidates.len() > 1 {
            self.stats.fault("restarts with uncertain writes");
        }
        // The same state reached twice (a refused write that changed nothing, say) is one
        // candidate: probing it again could only cost time.
        let mut distinct: Vec<(Snapshot, String)> = Vec::with_capacity(candidates.len());
        for c in candidates {
            if !distinct.iter().any(|d| d.0 == c.0) {
                distinct.push(c);
            }
        }
        let (candidates, labels): (Vec<Snapshot>, Vec<String>) = distinct.into_iter().unzip();
        // Read everything any candidate knows about, so that an extra or a missing
        // database, lens or user shows.
        let mut dbs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut users = BTreeSet::new();
        let oracles: Vec<Oracle> = candidates
            .iter()
            .map(|c| {
                let mut o = self.oracle.clone();
                o.restore(c.clone());
                o.restart();
                for (db, lenses) in o.catalog() {
                    dbs.entry(db).or_default().extend(lenses);
                }
                users.extend(o.user_names());
                o
            })
            .collect();
        let mut probes = Vec::new();
        if self.case.cfg.auth {
            probes.push("AUTH admin pw".to_string());
        }
        probes.push("SHOW DATABASES".into());
        probes.push("SHOW USERS".into());
        for u in &users {
            probes.push(format!("SHOW GRANTS {u}"));
        }
        // The layers every candidate holds, so that AS OF and LAYER probes cut history
        // where it has data (between layers, and inside compacted runs).
        let facts: Vec<_> = oracles
            .iter()
            .map(|o| layer_facts(o, self.case.cfg.auth, &dbs))
            .collect();
        let (all, open) = (i64::MIN, i64::MAX);
        for (db, lenses) in &dbs {
            probes.push(format!("USE DATABASE {db}"));
            probes.push("SHOW LENSES".into());
            let mut times = BTreeSet::new();
            for f in &facts {
                for ((d, _), layers) in f {
                    if d == db {
                        times.extend(layers.iter().map(|&(_, w)| w));
                    }
                }
            }
            let times: Vec<i64> = times.into_iter().collect();
            let n = times.len();
            // Just before a third of the way, at two thirds, just before the newest.
            let mut cuts: Vec<i64> = if n == 0 {
                vec![]
            } else {
                vec![times[n / 3] - 1, times[2 * n / 3], times[n - 1] - 1]
            };
            cuts.dedup();
            for l in lenses {
                probes.push(format!("HISTORY LENS {l}"));
                probes.push(format!("RANGE LENS {l} {all} {open}"));
                for t in &cuts {
                    probes.push(format!("RANGE LENS {l} {all} {open} AS OF {t}"));
                }
                let mut ids = BTreeSet::new();
                for f in &facts {
                    if let Some(layers) = f.get(&(db.clone(), l.clone())) {
                        let k = layers.len();
                        if k > 0 {
                            ids.extend([layers[0].0, layers[k / 2].0, layers[k - 1].0]);
                        }
                    }
                }
                for id in ids {
                    probes.push(format!("RANGE LENS {l} {all} {open} LAYER {id}"));
                }
            }
        }
        let mut bytes = Vec::new();
        for p in &probes {
            bytes.extend_from_slice(p.as_bytes());
            bytes.push(b'\n');
        }
        self.pump(Event::Open(PROBE));
        self.pump(Event::Bytes(PROBE, bytes));
        let mut actual = Vec::new();
        for _ in 0..probes.len() {
            actual.push(
                self.reply(PROBE, Wait::All)
                    .unwrap_or_else(|| "<no reply>".into()),
            );
        }
        self.pump(Event::Closed(PROBE));
        self.received.remove(&PROBE);
        self.closed.remove(&PROBE);
        if self.crashed.is_some() {
            return Ok(false);
        }
        struct Best {
            agree: usize,
            candidate: usize,
            probe: String,
            expected: String,
            actual: String,
        }
        let mut best: Option<Best> = None;
        let mut matching = Vec::new();
        for (i, mut o) in oracles.into_iter().enumerate() {
            o.connect(PROBE);
            // (With authentication on and the admin dropped, the probe's AUTH fails and
            // the server closes: that is all a probe can see then.)
            let mut expected: Vec<String> = Vec::new();
            for p in &probes {
                let r = o.execute(PROBE, self.now, p.as_bytes());
                expected.push(
                    r.as_ref()
                        .map_or_else(|| "<no reply>".into(), |r| r.line.clone()),
                );
                if r.is_some_and(|r| r.close) {
                    break;
                }
            }
            expected.resize(probes.len(), "<no reply>".into());
            o.disconnect(PROBE);
            if expected == actual {
                matching.push((i, o));
                continue;
            }
            if debug_on() {
                let k = (0..probes.len())
                    .find(|&k| expected[k] != actual[k])
                    .unwrap_or(0);
                eprintln!(
                    "cand {i}: {} expected {} actual {}",
                    probes[k], expected[k], actual[k]
                );
            }
            // Report the candidate that matched the most probes: the first mismatch of the
            // acknowledged state can point at the wrong lens when another candidate is
            // the one recovery nearly reached.
            let agree = (0..probes.len())
                .filter(|&k| expected[k] == actual[k])
                .count();
            if best.as_ref().is_none_or(|b: &Best| agree > b.agree) {
                let k = (0..probes.len())
                    .find(|&k| expected[k] != actual[k])
                    .expect("a difference");
                best = Some(Best {
                    agree,
                    candidate: i,
                    probe: probes[k].clone(),
                    expected: expected[k].clone(),
                    actual: actual[k].clone(),
                });
            }
        }
        if !matching.is_empty() {
            if matching[0].0 > 0 {
                self.stats.fault("recovered an unacknowledged write");
            }
            if matching.len() > 1 {
                self.stats
                    .fault("recovered states the probes could not tell apart");
            }
            let mut it = matching.into_iter().map(|(_, o)| o);
            self.oracle = it.next().expect("not empty");
            self.alts = it.collect();
            if self.rot_on {
                self.remember();
            }
            self.uncertain.clear();
            return Ok(true);
        }
        let b = best.expect("at least one candidate");
        self.trace
            .push_back(format!("# disk: {}", self.disk.describe()));
        Err(self.diverge(
            0,
            &format!("<durability probe after restart> {}", b.probe),
            &format!(
                "{}  (the closest candidate: {}, {} of {} probes matched; {} candidates)",
                b.expected,
                labels[b.candidate],
                b.agree,
                probes.len(),
                labels.len()
            ),
            &b.actual,
        ))
    }

    /// The process stops (killed, or the power went): every connection drops.
    fn stop(&mut self) -> Result<(), Fail> {
        self.cut_outstanding()?;
        self.stats.restarts += 1;
        self.held.clear();
        self.io.clear();
        for (i, o) in self.open.iter_mut().enumerate() {
            self.buffers[i].clear();
            *o = false;
        }
        Ok(())
    }

    fn power_loss(&mut self, pick: u64) -> Result<(), Fail> {
        self.stats.fault("power loss");
        self.stop()?;
        let torn = self.disk.torn_files;
        self.disk.crash(pick);
        if self.disk.torn_files > torn {
            self.stats.fault("files with unsynced data at power loss");
        }
        self.boot()
    }

    fn send(&mut self, op: &Op) -> Result<(), Fail> {
        let (conn, splits, crlf, line, eof) = match op {
            Op::Send {
                conn,
                splits,
                crlf,
                line,
            } => (*conn, &splits[..], *crlf, line, false),
            Op::Eof { conn, line } => (*conn, &[][..], false, line, true),
            _ => unreachable!("only sends"),
        };
        let i = conn as usize;
        let id = conn as u64;
        // One write, submitted while other connections' commits wait on held storage?
        // Only where the engine's order of validation is the oracle's (see CONCURRENT).
        let concurrent = self.case.cfg.hold_io
            && self.buffers[i].is_empty()
            && !eof
            && self.open[i]
            && self.alts.is_empty()
            && CONCURRENT.contains(&kind_of(line).as_str())
            && !self.outstanding.iter().any(|p| p.conn == conn);
        if concurrent {
            // Settle what has been answered: a refusal there changes what this line sees.
            self.settle_ready()?;
        }
        if !self.outstanding.is_empty() && (!concurrent || self.outstanding_refused) {
            self.drain()?;
            if let Some(pick) = self.crashed.take() {
                // The power went before this send: it never happened.
                return self.power_loss(pick);
            }
        }
        let appends = self.appends;
        let mut lines = std::mem::take(&mut self.buffers[i]);
        if !lines.is_empty() {
            self.stats.pipelined += 1;
        }
        lines.push(line.clone());
        if !self.open[i] {
            self.open[i] = true;
            self.closed.remove(&id);
            self.pump(Event::Open(id));
            self.oracle.connect(id);
            self.alts.iter_mut().for_each(|o| o.connect(id));
        }
        let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut bytes = Vec::new();
        for (k, l) in lines.iter().enumerate() {
            bytes.extend_from_slice(l.as_bytes());
            // A half-closing client may end without a final newline.
            if !(eof && k + 1 == lines.len()) {
                bytes.extend_from_slice(nl);
            }
        }
        self.stats.sends += 1;
        if !splits.is_empty() {
            self.stats.chunked += 1;
        }
        let mut at = 0;
        for &s in splits.iter().chain(std::iter::once(&bytes.len())) {
            let s = s.min(bytes.len());
            if s > at {
                self.pump(Event::Bytes(id, bytes[at..s].to_vec()));
                at = s;
            }
        }
        if eof {
            self.stats.half_closes += 1;
            self.pump(Event::Eof(id));
        }
        // A concurrent write: answered at once (an error, a transaction statement), in the
        // commit pipeline waiting for a held sync (outstanding: the next connection goes
        // on), or parked (behind a checkpoint): then it is validated only once everything
        // before it has drained, so the oracle runs it after that too.
        let mut early = None;
        if concurrent {
            early = self.reply(id, Wait::Jobs);
            if early.is_none() && self.crashed.is_none() {
                if self.appends > appends && !self.io.is_empty() {
                    return self.submit_outstanding(conn, line);
                }
                self.drain()?;
            }
        }
        // Line by line: the oracle's answer, then the engine's.
        let mut oracle_closed = false;
        // The committed state before the first line the power cut off.
        let mut cut_off: Option<Snapshot> = None;
        // The oracle with refused-but-maybe-durable writes kept (see `uncertain`).
        let mut shadow: Option<Oracle> = None;
        // A final line without its `\n` is dropped at end of input, never run (SPEC v0.2).
        let complete = if eof { lines.len() - 1 } else { lines.len() };
        for l in &lines[..complete] {
            let before = self.risky().then(|| self.oracle.snapshot());
            let alt_before: Vec<Snapshot> = if before.is_some() {
                self.alts.iter().map(Oracle::snapshot).collect()
            } else {
                Vec::new()
            };
            self.stats.statements += 1;
            let Some(r) = self.oracle.execute(id, self.now, l.as_bytes()) else {
                continue;
            };
            if let Some(s) = shadow.as_mut() {
                s.execute(id, self.now, l.as_bytes());
            }
            let alt_replies: Vec<Option<tau_oracle::Reply>> = self
                .alts
                .iter_mut()
                .map(|o| o.execute(id, self.now, l.as_bytes()))
                .collect();
            let mut close = r.close;
            let kind = kind_of(l);
            let e = self.stats.kinds.entry(kind.clone()).or_default();
            if r.line.starts_with("ERR") {
                e.1 += 1;
                let shape = r.line.split(':').next().unwrap_or("").to_string();
                *self.stats.errors.entry(shape).or_default() += 1;
            } else {
                e.0 += 1;
            }
            let engine_reply = match early.take() {
                Some(r) => Some(r),
                None => self.reply(id, Wait::All),
            };
            if debug_on() {
                eprintln!(
                    "step {} {l:?} oracle {:?} engine {:?} alts {}",
                    self.step,
                    r.line,
                    engine_reply,
                    self.alts.len()
                );
            }
            let mut acked = false;
            match engine_reply {
                None if self.crashed.is_some() => {
                    // Submitted, never answered: it may or may not have been recovered.
                    let kept = before.clone();
                    cut_off.get_or_insert(kept.expect("a crash was armed, so the state was kept"));
                    self.uncertain.push(self.oracle.snapshot());
                    for (o, b) in self.alts.iter_mut().zip(&alt_before) {
                        self.uncertain.push(o.snapshot());
                        o.restore(b.clone());
                    }
                }
                None => return Err(self.diverge(conn, l, &r.line, "<no reply>")),
                Some(act) => {
                    let same = |exp: &str| {
                        act == exp
                            || (exp.starts_with("ERR parse error")
                                && act.starts_with("ERR parse error"))
                    };
                    let mut main_ok = same(&r.line);
                    if !self.alts.is_empty() {
                        // Keep the recovered states that still agree with the engine.
                        let storage_error = self.faulted && act.starts_with("ERR storage error");
                        let mut agree = Vec::new();
                        let mut refused = Vec::new();
                        let alts = std::mem::take(&mut self.alts).into_iter().zip(alt_replies);
                        for (k, (mut o, rep)) in alts.enumerate() {
                            if let Some(rep) = rep.filter(|rep| same(&rep.line)) {
                                agree.push((o, rep.close));
                            } else if storage_error {
                                // Refused by the failing disk: not applied, maybe durable
                                // (as below).
                                if !self.fail_stopped {
                                    self.uncertain.push(o.snapshot());
                                }
                                o.restore(alt_before[k].clone());
                                refused.push(o);
                            }
                        }
                        if !main_ok && !agree.is_empty() {
                            self.stats
                                .fault("an alternative recovered state was the right one");
                            let (o, c) = agree.remove(0);
                            self.oracle = o;
                            close = c;
                            main_ok = true;
                        }
                        self.alts = if main_ok {
                            agree.into_iter().map(|(o, _)| o).collect()
                        } else {
                            refused
                        };
                    }
                    acked = main_ok;
                    if !main_ok {
                        if !(self.faulted && act.starts_with("ERR storage error")) {
                            return Err(self.diverge(conn, l, &r.line, &act));
                        }
                        // Refused because the disk failed: not applied, but its record
                        // may have reached the disk before the failure.
                        self.stats.fault("writes refused on storage error");
                        if !self.fail_stopped {
                            let s = shadow.get_or_insert_with(|| self.oracle.clone());
                            self.uncertain.push(s.snapshot());
                        }
                        self.note_refusal(&act);
                        let kept = before.clone();
                        self.oracle
                            .restore(kept.expect("a storage fault was on, so the state was kept"));
                    }
                }
            }
            // The state before each acknowledged write (reads change nothing).
            let write = acked
                && !r.line.starts_with("ERR")
                && [
                    "CREATE", "DROP", "DERIVE", "APPEND", "BATCH", "COPY", "COMMIT", "GRANT",
                    "REVOKE",
                ]
                .iter()
                .any(|w| kind.starts_with(w));
            if self.rot_on && write {
                self.remember();
            }
            if close {
                oracle_closed = true;
                break;
            }
        }
        if let Some(pick) = self.crashed.take() {
            if let Some(b) = cut_off {
                self.oracle.restore(b);
            }
            return self.power_loss(pick);
        }
        // Nothing more may come: every reply was accounted for.
        if let Some(act) = self.reply(id, Wait::No) {
            return Err(self.diverge(conn, "<none>", "<no reply>", &act));
        }
        if eof && !oracle_closed {
            // Input ended: the server closes once everything is answered.
            self.oracle.disconnect(id);
            self.alts.iter_mut().for_each(|o| o.disconnect(id));
            oracle_closed = true;
        }
        if eof && !self.closed.contains(&id) {
            // The close waits for whatever the engine still has queued (a checkpoint it
            // started, say): let held storage run.
            self.drain()?;
            if let Some(pick) = self.crashed.take() {
                return self.power_loss(pick);
            }
        }
        let engine_closed = self.closed.contains(&id);
        if engine_closed != oracle_closed {
            return Err(self.diverge(
                conn,
                lines.last().map_or("", |s| s.as_str()),
                &format!("connection closed: {oracle_closed}"),
                &format!("connection closed: {engine_closed}"),
            ));
        }
        if engine_closed {
            self.open[i] = false;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), Fail> {
        match op {
            Op::Tick { ms } => self.now += ms,
            Op::Restart => {
                // A killed process: the page cache survives, so nothing written is lost
                // (but storage ops it asked for and the driver had not run never happen).
                self.stop()?;
                self.boot()?;
            }
            Op::Io { pick } => {
                if !self.io.is_empty() {
                    let n = 1 + (*pick % self.io.len() as u64) as usize;
                    self.release_io(n);
                }
            }
            Op::PowerLoss { after: 0, pick } => self.power_loss(*pick)?,
            Op::PowerLoss { after, pick } => self.crash_in = Some((*after, *pick)),
            Op::FailSync => {
                self.stats.fault("fsync failure armed");
                self.disk.fail_syncs += 1;
            }
            Op::DiskFull { full } => {
                if *full && !self.disk.full {
                    self.stats.fault("disk full");
                }
                self.disk.full = *full;
            }
            Op::FailRead => {
                self.stats.fault("read error armed");
                self.disk.fail_reads += 1;
            }
            Op::Rot { pick } => {
                self.stats.fault("bit rot");
                self.disk.rot(*pick);
            }
            Op::Buffer { conn, line } => self.buffers[*conn as usize].push(line.clone()),
            Op::RunJobs { pick } => self.run_held(*pick),
            Op::Close { conn } => {
                let i = *conn as usize;
                if self.outstanding.iter().any(|p| p.conn == *conn) {
                    // (A waiter that vanishes is left out: its commit's fate would be
                    // unknown to the checks that follow.)
                    self.drain()?;
                    if let Some(pick) = self.crashed.take() {
                        return self.power_loss(pick);
                    }
                }
                self.buffers[i].clear();
                if self.open[i] {
                    self.open[i] = false;
                    self.stats.disconnects += 1;
                    self.pump(Event::Closed(*conn as u64));
                    self.oracle.disconnect(*conn as u64);
                    self.alts
                        .iter_mut()
                        .for_each(|o| o.disconnect(*conn as u64));
                }
            }
            Op::Send { .. } | Op::Eof { .. } => self.send(op)?,
        }
        // A power loss may strike inside any op that touched the disk.
        if let Some(pick) = self.crashed.take() {
            return self.power_loss(pick);
        }
        if !self.outstanding.is_empty() {
            self.settle_ready()?;
        }
        Ok(())
    }

    /// `line` (alone in its send) is in the commit pipeline, waiting for a held sync: the
    /// oracle runs it now, in submission order, and its reply is checked when it comes.
    fn submit_outstanding(&mut self, conn: u8, line: &str) -> Result<(), Fail> {
        let id = conn as u64;
        let before = self.oracle.snapshot();
        self.stats.statements += 1;
        let Some(r) = self.oracle.execute(id, self.now, line.as_bytes()) else {
            return Err(self.diverge(conn, line, "<no reply>", "a commit for a blank line"));
        };
        let kind = kind_of(line);
        let e = self.stats.kinds.entry(kind.clone()).or_default();
        if r.line.starts_with("ERR") {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
        if !self.outstanding.is_empty() {
            self.stats
                .fault("commits submitted while others waited on a sync");
        }
        self.outstanding.push_back(Pending {
            conn,
            line: line.to_string(),
            kind,
            expected: r.line,
            step: self.step,
            before,
            after: self.oracle.snapshot(),
        });
        Ok(())
    }

    /// Compare the reply of every outstanding write that has one, oldest first. A reply
    /// to a later write while an earlier one still waits is a divergence: commits become
    /// durable in the order they were logged.
    fn settle_ready(&mut self) -> Result<(), Fail> {
        while let Some(p) = self.outstanding.front() {
            let id = p.conn as u64;
            self.lines_in(id);
            let Some(act) = self.inbox.get_mut(&id).and_then(VecDeque::pop_front) else {
                break;
            };
            let p = self.outstanding.pop_front().expect("a front");
            self.settle(p, act)?;
        }
        if let Some(p) = self.outstanding.front() {
            let waiting = p.conn;
            let (line, expected) = (p.line.clone(), p.expected.clone());
            let later: Vec<u64> = self
                .outstanding
                .iter()
                .skip(1)
                .map(|p| p.conn as u64)
                .collect();
            for id in later {
                self.lines_in(id);
                if self.inbox.get(&id).is_some_and(|q| !q.is_empty()) {
                    return Err(self.diverge(
                        waiting,
                        &line,
                        &expected,
                        &format!("<no reply, while connection {id}'s later commit was answered>"),
                    ));
                }
            }
        } else {
            self.outstanding_refused = false;
        }
        Ok(())
    }

    fn settle(&mut self, p: Pending, act: String) -> Result<(), Fail> {
        if debug_on() {
            eprintln!(
                "step {} (submitted at step {}) {:?} oracle {:?} engine {act:?}",
                self.step, p.step, p.line, p.expected
            );
        }
        let same = act == p.expected
            || (p.expected.starts_with("ERR parse error") && act.starts_with("ERR parse error"));
        if same {
            if self.rot_on && !act.starts_with("ERR") && p.kind != "START TRANSACTION" {
                self.remember_state(p.after);
            }
            return Ok(());
        }
        if !(self.faulted && act.starts_with("ERR storage error")) {
            return Err(self.diverge(p.conn, &p.line, &p.expected, &act));
        }
        // Refused because the disk failed: not applied, but its record may have reached
        // the disk first. Every later outstanding write is refused with it.
        self.stats.fault("writes refused on storage error");
        self.note_refusal(&act);
        if self.outstanding_refused {
            self.stats
                .fault("waiting commits refused together on one storage failure");
        }
        self.uncertain.push(p.after);
        if !self.outstanding_refused {
            self.oracle.restore(p.before);
            self.outstanding_refused = true;
        }
        Ok(())
    }

    /// A write was refused with `act` (`ERR storage error: ...`): unless the disk was only
    /// full, the store has stopped taking writes (see `fail_stopped`).
    fn note_refusal(&mut self, act: &str) {
        if !act.starts_with("ERR storage error: disk full") {
            self.fail_stopped = true;
        }
    }

    /// Run every held storage op (and whatever they lead to) to the end; then every
    /// outstanding write must have been answered. Returns with `crashed` set when the
    /// power went meanwhile (the caller recovers).
    fn drain(&mut self) -> Result<(), Fail> {
        while !self.io.is_empty() && self.crashed.is_none() {
            self.release_io(self.io.len());
        }
        if self.crashed.is_some() {
            return Ok(());
        }
        self.settle_ready()?;
        if let Some(p) = self.outstanding.front() {
            let (conn, line, expected) = (p.conn, p.line.clone(), p.expected.clone());
            return Err(self.diverge(
                conn,
                &line,
                &expected,
                "<no reply once every storage op had completed>",
            ));
        }
        Ok(())
    }

    /// The process is gone: outstanding writes that were not answered may or may not
    /// have reached the disk.
    fn cut_outstanding(&mut self) -> Result<(), Fail> {
        self.settle_ready()?;
        let Some(first) = self.outstanding.front() else {
            return Ok(());
        };
        self.stats.fault("commits cut off while waiting on a sync");
        if !self.outstanding_refused {
            let b = first.before.clone();
            self.oracle.restore(b);
        }
        for p in std::mem::take(&mut self.outstanding) {
            self.uncertain.push(p.after);
        }
        self.outstanding_refused = false;
        Ok(())
    }
}

/// Every base lens's layers (id, written_at) as `o` holds them, read through HISTORY on
/// a scratch connection (empty when the probe could not authenticate).
fn layer_facts(
    o: &Oracle,
    auth: bool,
    dbs: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<(String, String), Vec<(u64, i64)>> {
    let mut o = o.clone();
    let id = PROBE + 1;
    o.connect(id);
    let mut out = BTreeMap::new();
    let run = |o: &mut Oracle, l: &str| o.execute(id, 0, l.as_bytes()).map(|r| r.line);
    if auth && run(&mut o, "AUTH admin pw").as_deref() != Some("OK") {
        return out;
    }
    for (db, lenses) in dbs {
        if run(&mut o, &format!("USE DATABASE {db}")).as_deref() != Some("OK") {
            continue;
        }
        for l in lenses {
            let Some(h) = run(&mut o, &format!("HISTORY LENS {l}")) else {
                continue;
            };
            let Some(rest) = h.strip_prefix("LAYERS ") else {
                continue;
            };
            let layers: Vec<(u64, i64)> = rest
                .split("; ")
                .skip(1)
                .filter_map(|e| {
                    let mut f = e.split(':');
                    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
                })
                .collect();
            out.insert((db.clone(), l.clone()), layers);
        }
    }
    out
}

pub fn run(case: &Case) -> Outcome {
    let c = &case.cfg;
    let files = import_files();
    let oracle = Oracle::new(OracleConfig {
        auth: c.auth,
        users: vec![("admin".into(), "pw".into())],
        import_dir: Some("/import".into()),
        files: files.clone(),
    });
    let mut w = World {
        case,
        engine: Engine::new(Config::default()),
        generation: 0,
        disk: Disk::default(),
        fatal: None,
        logs: Vec::new(),
        oracle,
        files,
        held: Vec::new(),
        io: VecDeque::new(),
        appends: 0,
        booting: false,
        outstanding: VecDeque::new(),
        outstanding_refused: false,
        received: BTreeMap::new(),
        inbox: BTreeMap::new(),
        closed: BTreeSet::new(),
        open: vec![false; c.conns as usize],
        buffers: vec![Vec::new(); c.conns as usize],
        now: 1000,
        crash_in: None,
        crashed: None,
        faulted: false,
        fail_stopped: false,
        uncertain: Vec::new(),
        alts: Vec::new(),
        history: VecDeque::new(),
        rot_on: case.ops.iter().any(|o| matches!(o, Op::Rot { .. })),
        trace: VecDeque::new(),
        step: 0,
        stats: Stats {
            trace_hash: 0xcbf2_9ce4_8422_2325,
            ..Stats::default()
        },
    };
    if w.rot_on {
        w.remember();
    }
    w.engine = Engine::new(w.config());
    w.booting = true;
    w.pump(Event::Boot);
    w.booting = false;
    let mut divergence = w
        .fatal
        .take()
        .map(|m| w.diverge(0, "<boot>", "a fresh store starts", &format!("fatal: {m}")));
    if divergence.is_none() {
        for (step, op) in case.ops.iter().enumerate() {
            w.step = step;
            w.trace.push_back(op.to_line());
            if w.trace.len() > 12 {
                w.trace.pop_front();
            }
            if let Err(d) = w.apply(op) {
                divergence = Some(d);
                break;
            }
        }
        // Every waiter must be answered once everything has drained.
        if divergence.is_none() {
            w.step = case.ops.len();
            divergence = w.drain().err();
        }
    }
    Outcome {
        divergence: divergence.map(|d| *d),
        stats: w.stats,
    }
}
