//! Run one case: drive the real engine through `step()` only, answer the same
//! statements with the oracle, and compare every reply line.

use crate::case::{Case, Op};
use crate::workload::import_files;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tau_engine::durable::{StorageConfig, StorageOp, StorageOut};
use tau_engine::{run_job, Argon2Params, Config, Effect, Engine, Event, Job, Token};
use tau_oracle::{Oracle, OracleConfig};

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
    pub jobs: u64,
    /// Statement kind → (OK-ish replies, ERR replies).
    pub kinds: BTreeMap<String, (u64, u64)>,
    /// ERR reply shapes (the text before any `:`), counted.
    pub errors: BTreeMap<String, u64>,
    pub trace_hash: u64,
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

struct World {
    engine: Engine,
    /// The simulated disk: every completed storage op is durable (no disk faults yet).
    disk: BTreeMap<String, Vec<u8>>,
    fatal: Option<String>,
    oracle: Oracle,
    files: BTreeMap<String, Vec<u8>>,
    hold: bool,
    held: Vec<(Token, Job)>,
    received: BTreeMap<u64, Vec<u8>>,
    closed: BTreeSet<u64>,
    now: i64,
    stats: Stats,
}

impl World {
    fn pump(&mut self, first: Event) {
        let mut q = VecDeque::from([first]);
        let mut fx = Vec::new();
        while let Some(ev) = q.pop_front() {
            self.engine.step(self.now, ev, &mut fx);
            for e in fx.drain(..) {
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
                        let result = storage(&mut self.disk, op);
                        q.push_back(Event::StorageDone { token, result });
                    }
                    Effect::Fatal(m) => self.fatal = Some(m),
                    Effect::Log(l) => {
                        if l.starts_with("checkpoint:") {
                            self.stats.checkpoints += 1;
                        }
                    }
                    Effect::RunJob { token, job } => {
                        self.stats.jobs += 1;
                        if self.hold && matches!(job, Job::Compact { .. }) {
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
        }
    }

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
}

/// Execute a storage op on the simulated disk at once.
fn storage(disk: &mut BTreeMap<String, Vec<u8>>, op: StorageOp) -> Result<StorageOut, String> {
    Ok(match op {
        StorageOp::CreateDir { .. } | StorageOp::Sync { .. } => StorageOut::Done,
        StorageOp::ReadAll { path } => disk
            .get(&path)
            .cloned()
            .map_or(StorageOut::NotFound, StorageOut::Bytes),
        StorageOp::Create { path, bytes } => {
            disk.insert(path, bytes);
            StorageOut::Done
        }
        StorageOp::Append { path, bytes } => {
            disk.entry(path).or_default().extend(bytes);
            StorageOut::Done
        }
        StorageOp::Remove { path } => {
            disk.remove(&path);
            StorageOut::Done
        }
        StorageOp::Truncate { path, len } => {
            if let Some(f) = disk.get_mut(&path) {
                f.truncate(len as usize);
            }
            StorageOut::Done
        }
    })
}

fn engine_config(case: &Case, generation: u64) -> Config {
    let c = &case.cfg;
    Config {
        auth: c.auth,
        bootstrap_admin: Some(("admin".into(), "pw".into())),
        import_dir: Some("/import".into()),
        compact_threshold: c.compact_threshold,
        job_threshold: c.job_threshold,
        argon2: Argon2Params::TEST,
        // A restarted process draws a new seed (fresh nonces), derived deterministically.
        seed: case.seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        storage: c.durable.then(|| StorageConfig {
            dir: "/data".into(),
            key: case
                .seed
                .is_multiple_of(3)
                .then(|| tau_engine::wal::WalKey::new(&[case.seed as u8; 32])),
            repair: false,
            // Small thresholds make checkpoints (and recovery from them) frequent.
            checkpoint_bytes: [600, 3000, 1 << 26][(case.seed % 3) as usize],
        }),
        ..Config::default()
    }
}

pub fn run(case: &Case) -> Outcome {
    let c = &case.cfg;
    let files = import_files();
    let mut generation = 0;
    let engine = Engine::new(engine_config(case, generation));
    let oracle = Oracle::new(OracleConfig {
        auth: c.auth,
        users: vec![("admin".into(), "pw".into())],
        import_dir: Some("/import".into()),
        files: files.clone(),
    });
    let mut w = World {
        engine,
        disk: BTreeMap::new(),
        fatal: None,
        oracle,
        files,
        hold: c.hold_compactions,
        held: Vec::new(),
        received: BTreeMap::new(),
        closed: BTreeSet::new(),
        now: 1000,
        stats: Stats {
            trace_hash: 0xcbf2_9ce4_8422_2325,
            ..Stats::default()
        },
    };
    w.pump(Event::Boot);
    let mut open = vec![false; c.conns as usize];
    let mut buffers: Vec<Vec<String>> = vec![Vec::new(); c.conns as usize];
    let mut trace: VecDeque<String> = VecDeque::new();
    for (step, op) in case.ops.iter().enumerate() {
        trace.push_back(op.to_line());
        if trace.len() > 12 {
            trace.pop_front();
        }
        match op {
            Op::Tick { ms } => w.now += ms,
            Op::Restart => {
                // The process stops: connections drop (open transactions roll back), held
                // jobs die with it; a new engine recovers from the disk.
                generation += 1;
                w.stats.restarts += 1;
                w.held.clear();
                w.received.clear();
                w.closed.clear();
                for (i, o) in open.iter_mut().enumerate() {
                    buffers[i].clear();
                    *o = false;
                }
                w.oracle.restart();
                w.engine = Engine::new(engine_config(case, generation));
                w.pump(Event::Boot);
                if let Some(m) = w.fatal.take() {
                    return Outcome {
                        divergence: Some(Divergence {
                            step,
                            conn: 0,
                            statement: "<restart>".into(),
                            expected: "recovery succeeds".into(),
                            actual: format!("fatal: {m}"),
                            trace: trace.into_iter().collect(),
                        }),
                        stats: w.stats,
                    };
                }
            }
            Op::Buffer { conn, line } => buffers[*conn as usize].push(line.clone()),
            Op::RunJobs { pick } => w.run_held(*pick),
            Op::Close { conn } => {
                let i = *conn as usize;
                buffers[i].clear();
                if open[i] {
                    open[i] = false;
                    w.stats.disconnects += 1;
                    w.pump(Event::Closed(*conn as u64));
                    w.oracle.disconnect(*conn as u64);
                }
            }
            Op::Send { .. } | Op::Eof { .. } => {
                let (conn, splits, crlf, line, eof) = match op {
                    Op::Send {
                        conn,
                        splits,
                        crlf,
                        line,
                    } => (conn, &splits[..], *crlf, line, false),
                    Op::Eof { conn, line } => (conn, &[][..], false, line, true),
                    _ => unreachable!("matched above"),
                };
                let i = *conn as usize;
                let id = *conn as u64;
                let mut lines = std::mem::take(&mut buffers[i]);
                if !lines.is_empty() {
                    w.stats.pipelined += 1;
                }
                lines.push(line.clone());
                if !open[i] {
                    open[i] = true;
                    w.closed.remove(&id);
                    w.pump(Event::Open(id));
                    w.oracle.connect(id);
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
                w.stats.sends += 1;
                if !splits.is_empty() {
                    w.stats.chunked += 1;
                }
                let mut at = 0;
                for &s in splits.iter().chain(std::iter::once(&bytes.len())) {
                    let s = s.min(bytes.len());
                    if s > at {
                        w.pump(Event::Bytes(id, bytes[at..s].to_vec()));
                        at = s;
                    }
                }
                if eof {
                    w.stats.half_closes += 1;
                    w.pump(Event::Eof(id));
                }
                // The oracle's answers, in order, stopping where it closes.
                let mut expected = Vec::new();
                let mut oracle_closed = false;
                for l in &lines {
                    w.stats.statements += 1;
                    if let Some(r) = w.oracle.execute(id, w.now, l.as_bytes()) {
                        let e = w.stats.kinds.entry(kind_of(l)).or_default();
                        if r.line.starts_with("ERR") {
                            e.1 += 1;
                            let shape = r.line.split(':').next().unwrap_or("").to_string();
                            *w.stats.errors.entry(shape).or_default() += 1;
                        } else {
                            e.0 += 1;
                        }
                        expected.push((l.clone(), r.line));
                        if r.close {
                            oracle_closed = true;
                            break;
                        }
                    }
                }
                // A COMPACT LENS may wait on a held job: complete held jobs if a reply is
                // still missing.
                let count = |w: &World| {
                    w.received
                        .get(&id)
                        .map_or(0, |b| b.iter().filter(|&&x| x == b'\n').count())
                };
                let mut round = 0;
                while count(&w) < expected.len() && !w.held.is_empty() {
                    // Each completion may let a queued statement spawn the next job.
                    w.run_held(step as u64 + round);
                    round += 1;
                }
                let got_bytes = w.received.remove(&id).unwrap_or_default();
                fnv(&mut w.stats.trace_hash, &got_bytes);
                let got: Vec<String> = String::from_utf8_lossy(&got_bytes)
                    .lines()
                    .map(str::to_string)
                    .collect();
                let n = expected.len().max(got.len());
                for k in 0..n {
                    let (stmt, exp) = expected
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| ("<none>".into(), "<no reply>".into()));
                    let act = got.get(k).cloned().unwrap_or_else(|| "<no reply>".into());
                    let same = exp == act
                        || (exp.starts_with("ERR parse error")
                            && act.starts_with("ERR parse error"));
                    if !same {
                        return Outcome {
                            divergence: Some(Divergence {
                                step,
                                conn: *conn,
                                statement: stmt,
                                expected: exp,
                                actual: act,
                                trace: trace.into_iter().collect(),
                            }),
                            stats: w.stats,
                        };
                    }
                }
                if eof && !oracle_closed {
                    // Input ended: the server closes once everything is answered.
                    w.oracle.disconnect(id);
                    oracle_closed = true;
                }
                let engine_closed = w.closed.contains(&id);
                if engine_closed != oracle_closed {
                    return Outcome {
                        divergence: Some(Divergence {
                            step,
                            conn: *conn,
                            statement: lines.last().cloned().unwrap_or_default(),
                            expected: format!("connection closed: {oracle_closed}"),
                            actual: format!("connection closed: {engine_closed}"),
                            trace: trace.into_iter().collect(),
                        }),
                        stats: w.stats,
                    };
                }
                if engine_closed {
                    open[i] = false;
                }
            }
        }
    }
    Outcome {
        divergence: None,
        stats: w.stats,
    }
}
