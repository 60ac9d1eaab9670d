//! Durability as engine logic: boot and recovery, the commit pipeline with group commit,
//! and fail-stop on IO errors. All IO is asked for through [`Effect::Storage`], in order:
//! a driver must execute storage ops one after another, so a `Sync` covers every
//! `Append` issued before it.
//!
//! The rules:
//! - **Validated against what is coming, applied when durable.** A commit is checked
//!   against committed state plus every commit still in flight. Its record is appended
//!   to the WAL, and the state changes (and `OK` is sent) only after a sync that covers
//!   the record has completed. A reader never sees data that could vanish in a crash.
//! - **Group commit.** While a sync is in flight, new records are appended; when the sync
//!   completes, one new sync covers all of them.
//! - **Fail-stop.** A failed append or sync stops the store acknowledging writes
//!   (fsyncgate). Nothing retries the sync and pretends. Waiting writers and every later
//!   write get `ERR storage error: <why>`; reads keep working on the durable state.
//! - **Recovery** reads the WAL (`recovery::recover`): a torn tail is truncated and
//!   logged, and anything else that is wrong refuses to start ([`Effect::Fatal`]).

use crate::catalog::{Lens, Op, State};
use crate::codec::{encode, CommitUnit};
use crate::engine::{ConnId, Effect, Engine, Token};
use crate::wal::{self, WalKey};
use std::collections::VecDeque;

/// Where and how the store keeps its data.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// The data directory.
    pub dir: String,
    /// Encrypt WAL records (AES-256-GCM) with this key.
    pub key: Option<WalKey>,
    /// On corruption, keep the intact prefix instead of refusing to start.
    pub repair: bool,
    /// Checkpoint (layer files + manifest, then a fresh WAL) once the WAL passes this.
    pub checkpoint_bytes: u64,
}

impl StorageConfig {
    pub const CHECKPOINT_BYTES: u64 = 64 << 20;

    /// Durable storage in `dir` with the default policy, no encryption.
    pub fn new(dir: impl Into<String>) -> StorageConfig {
        StorageConfig {
            dir: dir.into(),
            key: None,
            repair: false,
            checkpoint_bytes: StorageConfig::CHECKPOINT_BYTES,
        }
    }
}

/// One IO request. Paths are full paths.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageOp {
    /// Create the directory (and its parents) and sync its parent directory.
    CreateDir { path: String },
    /// The whole file, or `StorageOut::NotFound`.
    ReadAll { path: String },
    /// Replace the file with `bytes`, sync it, sync its directory.
    Create { path: String, bytes: Vec<u8> },
    /// Append to the end of the file (no sync).
    Append { path: String, bytes: Vec<u8> },
    /// fsync the file's data.
    Sync { path: String },
    /// Cut the file to `len` bytes and sync it.
    Truncate { path: String, len: u64 },
    /// Remove the file (a missing file is fine) and sync its directory.
    Remove { path: String },
    /// The names of the regular files in the directory (`StorageOut::Names`, sorted).
    List { path: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum StorageOut {
    Done,
    Bytes(Vec<u8>),
    NotFound,
    /// File names (not paths), sorted.
    Names(Vec<String>),
}

/// What a storage token is waiting for.
#[derive(Clone, Debug)]
pub(crate) enum StorageWait {
    CreateDir,
    Listed,
    ReadWal,
    Prepared,
    ReadManifest,
    ReadLayer {
        file: u64,
    },
    CheckpointFile,
    CheckpointManifest,
    Removed,
    Append {
        seq: u64,
    },
    Sync {
        upto: u64,
    },
    /// Cutting the WAL back after a failed (disk full) append.
    Rewound,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Recovering,
    Ready,
    /// Writes stopped; reads go on. The reason, for every refused write.
    Failed(String),
    /// The disk was full: the WAL is being cut back to its last whole record; writes
    /// resume when that is done (and succeed once there is space again).
    Full(String),
    /// Recovery refused to start.
    Fatal(String),
}

/// Which layers are in which layer file: (lens uid, layer id) -> file number.
pub(crate) type LayerFiles = std::collections::BTreeMap<(u64, u64), u64>;
/// Which compacted runs are in which file: (lens uid, history lo, hi) -> file number.
pub(crate) type RunFileMap = std::collections::BTreeMap<(u64, usize, usize), u64>;

/// A commit whose record is in the WAL but not yet known to be durable.
pub(crate) struct Inflight {
    /// Already applied when submitted (the bootstrap admin): skip it when synced.
    applied: bool,
    seq: u64,
    /// Its record's sequence number in the WAL.
    wal_seq: u64,
    /// Where its record starts in the WAL.
    offset: u64,
    unit: CommitUnit,
    /// The connection waiting for it, and the reply it gets once durable.
    waiter: Option<(ConnId, String)>,
}

pub(crate) struct Durable {
    pub cfg: StorageConfig,
    pub wal: String,
    pub phase: Phase,
    inflight: VecDeque<Inflight>,
    /// A sync is in flight.
    syncing: bool,
    pub(crate) waits: std::collections::BTreeMap<Token, StorageWait>,
    /// Where the next record goes.
    pub(crate) wal_len: u64,
    /// The format of the current WAL file (a Tau 0.1 log is appended to in its own format
    /// until the next checkpoint starts a new one).
    pub(crate) wal_version: u32,
    /// The sequence number of the next record appended to the WAL.
    pub(crate) wal_seq: u64,
    next_seq: u64,
    /// The WAL generation (`wal-<gen>.log`); a checkpoint starts the next one.
    pub(crate) gen: u64,
    pub(crate) next_file: u64,
    /// Layers already in a layer file: (lens uid, layer id) -> file number.
    pub(crate) persisted: LayerFiles,
    /// Compacted runs already in a file: (lens uid, history lo, hi) -> file number.
    pub(crate) persisted_runs: RunFileMap,
    pub(crate) on_disk: std::collections::BTreeSet<u64>,
    /// A checkpoint is due: statements pause until it is written.
    pub(crate) rotating: bool,
    pub(crate) checkpointing: bool,
    pub(crate) checkpoint: Option<(crate::codec::Manifest, LayerFiles, RunFileMap)>,
    /// The checkpoint's manifest, and how many of the files it names are still being
    /// written: it goes to disk only once they all are (a manifest naming a file whose
    /// write failed would leave a store that cannot start).
    pub(crate) manifest_due: Option<(usize, Vec<u8>)>,
    pub(crate) loading: Option<crate::checkpoint::Loading>,
    /// The state the manifest's layer files rebuilt, waiting for the WAL replay.
    pub(crate) base: Option<State>,
    /// Commits applied before they were durable (the bootstrap admin) whose record a full
    /// disk cut back: logged again ahead of the next commit, so that nothing logged later
    /// can depend on a record the WAL lacks.
    pub(crate) relog: Vec<Vec<Op>>,
    /// The data directory's file names at boot, to tell a fresh store from one whose
    /// manifest or WAL went missing.
    pub(crate) boot_files: std::collections::BTreeSet<String>,
    /// Statistics for SHOW STATUS and the benchmarks.
    pub syncs: u64,
    pub records: u64,
    pub(crate) zstd: wal::Compressor,
}

impl Durable {
    pub fn new(cfg: StorageConfig) -> Durable {
        let wal = crate::checkpoint::wal_path(&cfg.dir, 0);
        Durable {
            cfg,
            wal,
            phase: Phase::Recovering,
            inflight: VecDeque::new(),
            syncing: false,
            waits: Default::default(),
            wal_len: 0,
            wal_version: wal::VERSION,
            wal_seq: 1,
            next_seq: 1,
            gen: 0,
            next_file: 1,
            persisted: Default::default(),
            persisted_runs: Default::default(),
            on_disk: Default::default(),
            rotating: false,
            checkpointing: false,
            checkpoint: None,
            manifest_due: None,
            loading: None,
            base: None,
            relog: Vec::new(),
            boot_files: Default::default(),
            syncs: 0,
            records: 0,
            zstd: wal::Compressor::new(),
        }
    }
}

impl Engine {
    pub(crate) fn nonce(&mut self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut self.rng, &mut nonce);
        nonce
    }

    /// Run whatever every connection has queued (after recovery, a checkpoint, a failure).
    pub(crate) fn pump_all(&mut self, fx: &mut Vec<Effect>) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.pump(id, fx);
        }
    }

    /// The `written_at` of the next commit: never before the last one, in flight or not.
    fn next_written_at(&self) -> i64 {
        let d = self.durable.as_ref().expect("durable mode");
        let last = d.inflight.back().map_or(i64::MIN, |i| i.unit.written_at);
        self.now_ms.max(self.state.written_at).max(last)
    }

    pub(crate) fn read_wal(&mut self, fx: &mut Vec<Effect>) {
        let path = self.durable.as_ref().expect("durable mode").wal.clone();
        self.storage_op(StorageWait::ReadWal, StorageOp::ReadAll { path }, fx);
    }

    pub(crate) fn storage_op(&mut self, wait: StorageWait, op: StorageOp, fx: &mut Vec<Effect>) {
        let token = self.token();
        self.durable
            .as_mut()
            .expect("storage ops only in durable mode")
            .waits
            .insert(token, wait);
        fx.push(Effect::Storage { token, op });
    }

    /// Boot: make sure the directory exists, list it, read the manifest (then the layer
    /// files and the WAL it names).
    pub(crate) fn boot_storage(&mut self, fx: &mut Vec<Effect>) {
        let Some(d) = &self.durable else { return };
        let (dir, manifest) = (
            d.cfg.dir.clone(),
            crate::checkpoint::manifest_path(&d.cfg.dir),
        );
        self.storage_op(
            StorageWait::CreateDir,
            StorageOp::CreateDir { path: dir.clone() },
            fx,
        );
        self.storage_op(StorageWait::Listed, StorageOp::List { path: dir }, fx);
        self.storage_op(
            StorageWait::ReadManifest,
            StorageOp::ReadAll { path: manifest },
            fx,
        );
    }

    /// Ready to serve statements?
    pub(crate) fn serving(&self) -> bool {
        self.durable
            .as_ref()
            .is_none_or(|d| !d.rotating && matches!(d.phase, Phase::Ready | Phase::Failed(_)))
    }

    pub(crate) fn fatal(&mut self, why: String, fx: &mut Vec<Effect>) {
        if let Some(d) = &mut self.durable {
            d.phase = Phase::Fatal(why.clone());
        }
        fx.push(Effect::Fatal(why));
    }

    /// Stop acknowledging writes for good: every waiting writer hears why.
    pub(crate) fn fail(&mut self, why: String, fx: &mut Vec<Effect>) {
        let Some(d) = &mut self.durable else { return };
        if !matches!(d.phase, Phase::Ready | Phase::Full(_)) {
            return;
        }
        d.phase = Phase::Failed(why.clone());
        // No checkpoint can run any more; statements paused for one must go on (reads
        // keep working on a failed store).
        d.rotating = false;
        let lost: Vec<Inflight> = d.inflight.drain(..).collect();
        fx.push(Effect::Log(format!(
            "storage: {why}; no longer accepting writes ({} unacknowledged commits dropped)",
            lost.len()
        )));
        for inf in lost {
            if let Some((id, _)) = inf.waiter {
                self.say(id, &format!("ERR storage error: {why}"));
                self.done_waiting(id, fx);
            }
        }
        // Connections paused for a checkpoint resume (their writes will be refused).
        self.pump_all(fx);
    }

    pub(crate) fn on_storage(
        &mut self,
        token: Token,
        result: Result<crate::durable::StorageOut, String>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(d) = &mut self.durable else { return };
        let Some(wait) = d.waits.remove(&token) else {
            return;
        };
        let (dir, wal) = (d.cfg.dir.clone(), d.wal.clone());
        match wait {
            StorageWait::CreateDir => {
                if let Err(e) = result {
                    self.fatal(format!("cannot create the data directory {dir}: {e}"), fx);
                }
            }
            StorageWait::Listed => match result {
                Ok(StorageOut::Names(names)) => d.boot_files = names.into_iter().collect(),
                Ok(other) => {
                    let why = format!("the storage driver answered a listing with {other:?}");
                    self.fatal(why, fx);
                }
                Err(e) => {
                    if !matches!(d.phase, Phase::Fatal(_)) {
                        self.fatal(format!("cannot list the data directory {dir}: {e}"), fx);
                    }
                }
            },
            StorageWait::ReadWal => {
                if matches!(d.phase, Phase::Fatal(_)) {
                    return;
                }
                let (bytes, found) = match result {
                    Err(e) => return self.fatal(format!("cannot read {wal}: {e}"), fx),
                    Ok(StorageOut::NotFound) => (Vec::new(), false),
                    Ok(StorageOut::Bytes(b)) => (b, true),
                    Ok(other) => unreachable!("ReadAll returns bytes, not {other:?}"),
                };
                let (key, repair) = (d.cfg.key.clone(), d.cfg.repair);
                // Every WAL is created whole (temporary file, fsync, rename): one shorter
                // than its header was emptied or damaged after the fact, and one that a
                // manifest names must exist. Starting on it would silently serve a subset of
                // what was acknowledged.
                let short = found && wal::shorter_than_header(&bytes);
                if (short || (!found && d.gen > 0)) && !repair {
                    let what = if found {
                        format!(
                            "is shorter than its header ({} bytes): emptied or damaged",
                            bytes.len()
                        )
                    } else {
                        format!("is missing, and the manifest names generation {}", d.gen)
                    };
                    return self.fatal(
                        format!("{wal} {what}; refusing to start (--repair starts from the checkpoint alone, losing the commits that log held)"),
                        fx,
                    );
                }
                d.wal_len = wal::HEADER_LEN as u64;
                d.wal_version = wal::VERSION;
                let base = d.base.take().unwrap_or_default();
                if bytes.is_empty() {
                    self.state = base;
                    // A new store: a WAL with just its header, synced with its directory.
                    let op = StorageOp::Create {
                        path: wal,
                        bytes: wal::header(key.is_some(), d.wal_seq).to_vec(),
                    };
                    return self.storage_op(StorageWait::Prepared, op, fx);
                }
                match crate::recovery::recover_onto(base, &bytes, &wal, key.as_ref(), repair) {
                    Err(msg) => self.fatal(msg, fx),
                    Ok(r) => {
                        fx.extend(r.messages.into_iter().map(Effect::Log));
                        fx.push(Effect::Log(format!(
                            "recovery: {wal}: replayed {} commits ({} intervals)",
                            r.units, r.intervals
                        )));
                        self.state = r.state;
                        let fresh = r.valid_len < wal::header_len(r.version);
                        let d = self.durable.as_mut().expect("durable mode");
                        // A log whose header was torn is created anew, in today's format.
                        d.wal_version = if fresh { wal::VERSION } else { r.version };
                        d.wal_seq = r.next_seq;
                        d.wal_len = r.valid_len.max(wal::header_len(d.wal_version)) as u64;
                        let op = if fresh {
                            StorageOp::Create {
                                path: wal,
                                bytes: wal::header(key.is_some(), r.next_seq).to_vec(),
                            }
                        } else if r.valid_len < bytes.len() {
                            StorageOp::Truncate {
                                path: wal,
                                len: r.valid_len as u64,
                            }
                        } else {
                            // What recovery read may still be only in the page cache (a
                            // killed process's unsynced appends, or a write whose fsync
                            // failed): make it durable before serving any of it, or a power
                            // loss could take back what readers were shown.
                            StorageOp::Sync { path: wal }
                        };
                        self.storage_op(StorageWait::Prepared, op, fx);
                    }
                }
            }
            StorageWait::ReadManifest => self.on_manifest(result, fx),
            StorageWait::ReadLayer { file } => self.on_layer(file, result, fx),
            StorageWait::CheckpointFile => {
                if let Err(e) = result {
                    if let Some(d) = &mut self.durable {
                        d.checkpoint = None;
                        d.manifest_due = None;
                        d.checkpointing = false;
                        d.rotating = false;
                    }
                    self.fail(format!("checkpoint failed: {e}"), fx);
                    self.pump_all(fx);
                } else {
                    self.checkpoint_file_written(fx);
                }
            }
            StorageWait::CheckpointManifest => self.checkpoint_done(result, fx),
            StorageWait::Removed => {
                if let Err(e) = result {
                    fx.push(Effect::Log(format!(
                        "storage: cannot remove an old file: {e}"
                    )));
                }
            }
            StorageWait::Prepared => match result {
                Err(e) => self.fatal(format!("cannot prepare {wal}: {e}"), fx),
                Ok(_) => self.ready(fx),
            },
            StorageWait::Append { seq } => {
                let Err(e) = result else { return };
                // Appends already given up (behind an earlier full-disk failure) are cut
                // off by the rewind; nothing more to say about them.
                if !d.inflight.iter().any(|i| i.seq == seq) {
                    return;
                }
                if is_disk_full(&e) && d.phase == Phase::Ready {
                    self.rewind(seq, e, fx);
                } else {
                    self.fail(format!("cannot append to {wal}: {e}"), fx);
                }
            }
            StorageWait::Sync { upto } => {
                d.syncing = false;
                match result {
                    Err(e) => self.fail(format!("fsync of {wal} failed: {e}"), fx),
                    Ok(_) => self.synced(upto, fx),
                }
            }
            StorageWait::Rewound => match result {
                Err(e) => {
                    // Cannot even cut the log back: stop taking writes for good.
                    if let Some(d) = &mut self.durable {
                        d.phase = Phase::Ready;
                    }
                    self.fail(format!("cannot truncate {wal} after a full disk: {e}"), fx);
                }
                Ok(_) => {
                    if let Some(d) = &mut self.durable {
                        if matches!(d.phase, Phase::Full(_)) {
                            d.phase = Phase::Ready;
                        }
                    }
                    self.maybe_sync(fx);
                    self.maybe_checkpoint(fx);
                    // Statements paused while the log was cut back go on.
                    self.pump_all(fx);
                }
            },
        }
    }

    fn ready(&mut self, fx: &mut Vec<Effect>) {
        if let Some(d) = &mut self.durable {
            d.phase = Phase::Ready;
            if d.gen > 0 {
                // A crash between a manifest and the removal of the WAL it replaced
                // leaves that WAL behind: remove it (a missing file is fine).
                let path = crate::checkpoint::wal_path(&d.cfg.dir, d.gen - 1);
                self.storage_op(StorageWait::Removed, StorageOp::Remove { path }, fx);
            }
        }
        // The configured admin of a store without users: usable at once (it is
        // re-created from the configuration if a crash loses it), and logged so that it
        // stays the same user from then on.
        let ops = self.bootstrap_ops();
        if !ops.is_empty() {
            let applied = self.state.commit(ops.clone(), self.state.written_at);
            assert!(
                applied.is_ok(),
                "bootstrap applies to a state without users"
            );
            let logged = self.log_commit(ops, None, true, fx);
            assert!(logged.is_ok(), "the store is ready");
        }
        // Recovery rebuilt raw layers: let compaction catch up.
        let lenses: Vec<(String, String)> = self
            .state
            .dbs
            .iter()
            .flat_map(|(db, d)| {
                d.lenses
                    .iter()
                    .filter(|(_, l)| matches!(l, Lens::Base(_)))
                    .map(move |(n, _)| (db.clone(), n.clone()))
            })
            .collect();
        for (db, lens) in lenses {
            self.maybe_compact(&db, &lens, fx);
        }
        self.pump_all(fx);
    }

    /// A full disk failed the append of record `seq`: that commit and every later one in
    /// flight (each was validated assuming the earlier ones apply) fail with
    /// `ERR storage error: disk full`, and the WAL is cut back to where `seq` began, so no
    /// partial record stays behind. Writes resume once the cut is done.
    fn rewind(&mut self, seq: u64, e: String, fx: &mut Vec<Effect>) {
        let Some(d) = &mut self.durable else { return };
        let Some(pos) = d.inflight.iter().position(|i| i.seq == seq) else {
            return;
        };
        let lost: Vec<Inflight> = d.inflight.drain(pos..).collect();
        let offset = lost[0].offset;
        // The records cut off are gone: the next record reuses the first one's number.
        d.wal_seq = lost[0].wal_seq;
        d.relog.extend(
            lost.iter()
                .filter(|i| i.applied)
                .map(|i| i.unit.ops.clone()),
        );
        d.wal_len = offset;
        d.phase = Phase::Full(e.clone());
        let path = d.wal.clone();
        fx.push(Effect::Log(format!(
            "storage: disk full appending to {path} ({e}); {} unacknowledged commits refused, log cut back to offset {offset}",
            lost.len()
        )));
        self.storage_op(
            StorageWait::Rewound,
            StorageOp::Truncate { path, len: offset },
            fx,
        );
        for inf in lost {
            if let Some((id, _)) = inf.waiter {
                self.say(id, &format!("ERR storage error: disk full ({e})"));
                self.done_waiting(id, fx);
            }
        }
    }

    /// In-flight commits up to `upto` are durable: apply them in WAL order, then answer
    /// their writers, then start the next sync for whatever arrived meanwhile.
    fn synced(&mut self, upto: u64, fx: &mut Vec<Effect>) {
        let Some(d) = &mut self.durable else { return };
        if matches!(
            d.phase,
            Phase::Failed(_) | Phase::Fatal(_) | Phase::Recovering
        ) {
            return;
        }
        d.syncs += 1;
        let n = d.inflight.iter().take_while(|i| i.seq <= upto).count();
        let done: Vec<Inflight> = d.inflight.drain(..n).collect();
        let mut waiters = Vec::new();
        for inf in done.into_iter().filter(|i| !i.applied) {
            let touched: Vec<(String, String)> = inf
                .unit
                .ops
                .iter()
                .filter_map(|op| match op {
                    Op::Append { db, lens, .. } => Some((db.clone(), lens.clone())),
                    _ => None,
                })
                .collect();
            // Validated against exactly this sequence of states when it was submitted.
            let applied = self.state.commit(inf.unit.ops, inf.unit.written_at);
            assert!(
                applied.is_ok(),
                "a validated commit failed to apply: {applied:?}"
            );
            for (db, lens) in touched {
                self.maybe_compact(&db, &lens, fx);
            }
            waiters.extend(inf.waiter);
        }
        for (id, reply) in waiters {
            self.say(id, &reply);
            self.done_waiting(id, fx);
        }
        self.maybe_sync(fx);
        self.maybe_checkpoint(fx);
    }

    fn maybe_sync(&mut self, fx: &mut Vec<Effect>) {
        let Some(d) = &mut self.durable else { return };
        if d.syncing || d.inflight.is_empty() || !matches!(d.phase, Phase::Ready) {
            return;
        }
        d.syncing = true;
        let upto = d.inflight.back().expect("non-empty").seq;
        let path = d.wal.clone();
        self.storage_op(StorageWait::Sync { upto }, StorageOp::Sync { path }, fx);
    }

    /// Committed state plus every commit in flight: what a new write is checked against.
    pub(crate) fn pending_state(&self) -> std::borrow::Cow<'_, State> {
        let Some(d) = &self.durable else {
            return std::borrow::Cow::Borrowed(&self.state);
        };
        let shapeless =
            |i: &Inflight| i.applied || i.unit.ops.iter().all(|o| matches!(o, Op::Append { .. }));
        if d.inflight.iter().all(shapeless) {
            // Only appends in flight: they change no name or type, so the committed
            // state is already exactly what a new write is checked against.
            return std::borrow::Cow::Borrowed(&self.state);
        }
        let mut s = self.state.clone();
        for inf in d.inflight.iter().filter(|i| !i.applied) {
            for op in &inf.unit.ops {
                // Appends change no shape, and applying them to a copy would copy the
                // lens: skip them.
                if !matches!(op, Op::Append { .. }) {
                    let applied = s.apply(op.clone(), inf.unit.written_at);
                    debug_assert!(applied.is_ok(), "in-flight commits were validated in order");
                }
            }
        }
        std::borrow::Cow::Owned(s)
    }

    /// Submit a commit in durable mode: check it against what is coming, log it, and
    /// answer `waiter` once a sync covers it. `Err` leaves nothing behind.
    pub(crate) fn submit(
        &mut self,
        ops: Vec<Op>,
        waiter: Option<(ConnId, String)>,
        fx: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let d = self.durable.as_ref().expect("durable mode");
        if d.checkpointing {
            // Cannot happen (statements and committing jobs are drained first), and must
            // not: this record would go to the WAL the checkpoint replaces.
            debug_assert!(false, "a commit was submitted during a checkpoint");
            return Err("storage error: checkpoint in progress".into());
        }
        match &d.phase {
            Phase::Ready => {}
            Phase::Failed(why) => return Err(format!("storage error: {why}")),
            Phase::Full(why) => return Err(format!("storage error: disk full ({why})")),
            other => return Err(format!("storage error: not ready ({other:?})")),
        }
        let written_at = self.next_written_at();
        // Check in order, letting each DDL op shape the checks of the next.
        let mut view = self.pending_state();
        for op in &ops {
            view.check(op)?;
            if !matches!(op, Op::Append { .. }) {
                view.to_mut().apply(op.clone(), written_at)?;
            }
        }
        drop(view);
        let relog = std::mem::take(&mut self.durable.as_mut().expect("durable mode").relog);
        for ops in relog {
            self.log_commit(ops, None, true, fx)?;
        }
        self.log_commit(ops, waiter, false, fx)
    }

    /// Append a validated commit to the WAL and keep it in flight until a sync covers it.
    fn log_commit(
        &mut self,
        ops: Vec<Op>,
        waiter: Option<(ConnId, String)>,
        applied: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let written_at = self.next_written_at();
        let unit = CommitUnit { written_at, ops };
        let nonce = self.nonce();
        let d = self.durable.as_mut().expect("durable mode");
        // Whatever is logged must replay: a unit too large for a record is refused here,
        // before anything changes.
        let record = wal::encode_record_with(
            &mut d.zstd,
            &encode(&unit),
            d.cfg.key.as_ref(),
            nonce,
            d.wal_version,
            d.wal_seq,
        )
        .map_err(|e| format!("storage error: {e}"))?;
        let path = d.wal.clone();
        let (seq, wal_seq, offset) = (d.next_seq, d.wal_seq, d.wal_len);
        d.next_seq += 1;
        d.wal_seq += 1;
        d.wal_len += record.len() as u64;
        self.storage_op(
            StorageWait::Append { seq },
            StorageOp::Append {
                path,
                bytes: record,
            },
            fx,
        );
        let d = self.durable.as_mut().expect("durable mode");
        d.records += 1;
        d.inflight.push_back(Inflight {
            applied,
            seq,
            wal_seq,
            offset,
            unit,
            waiter,
        });
        self.maybe_sync(fx);
        Ok(())
    }
}

/// ENOSPC, as the OS reports it through the driver.
fn is_disk_full(e: &str) -> bool {
    e.contains("os error 28") || e.contains("No space left")
}

impl Durable {
    pub(crate) fn inflight_is_empty(&self) -> bool {
        self.inflight.is_empty()
    }
}
