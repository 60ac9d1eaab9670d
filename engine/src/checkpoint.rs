//! Checkpoints: layer files and the manifest, so that the WAL stops growing and recovery
//! does not replay history from the beginning.
//!
//! ```text
//! <dir>/manifest        which layer files hold the state, up to which WAL generation
//! <dir>/layer-<n>.tl    one immutable pack per checkpoint: every layer and compacted run
//!                       not yet in a file, one record each, written once
//! <dir>/wal-<gen>.log   the log of every commit since that checkpoint
//! ```
//!
//! A checkpoint starts once the WAL passes `checkpoint_bytes`. Statements pause and the
//! commits in flight drain, then these storage ops are issued in order:
//! 1. one pack file holding every layer and compacted run not yet in a file (framed like a
//!    WAL: one zstd, optionally AES-256-GCM, CRC-framed record per layer or run; written
//!    to a temporary name, fsynced, renamed, and its directory fsynced). One file per
//!    checkpoint, not one per layer: a million single-row commits made a million files
//!    in Tau 0.1, and writing a thousand of them froze ingest for seconds;
//! 2. an empty `wal-<gen+1>.log`;
//! 3. the new manifest, replaced atomically the same way.
//!
//! Only when the manifest is durable does the store switch to the new WAL and remove the
//! old one, along with layer files no manifest names any more. A crash at any point
//! leaves either the old manifest and the old WAL, or the new manifest and the new WAL.

use crate::catalog::{BaseLens, Lens, Op, State};
use crate::codec::{decode_compacted, encode_compacted};
use crate::codec::{
    decode_layer, decode_manifest, encode_append_unit, encode_layer, encode_manifest, Manifest,
};
use crate::durable::{Phase, StorageOp, StorageOut, StorageWait};
use crate::engine::{Effect, Engine, Waiting};
use crate::layer::{Compacted, Layer, Run, Segs};
use crate::value::Type;
use crate::wal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(crate) fn wal_path(dir: &str, gen: u64) -> String {
    format!("{}/wal-{gen}.log", dir.trim_end_matches('/'))
}

pub(crate) fn layer_path(dir: &str, file: u64) -> String {
    format!("{}/layer-{file}.tl", dir.trim_end_matches('/'))
}

pub(crate) fn manifest_path(dir: &str) -> String {
    format!("{}/manifest", dir.trim_end_matches('/'))
}

/// A manifest being loaded at boot: its layer files arrive one by one.
pub(crate) struct Loading {
    manifest: Manifest,
    remaining: usize,
    /// Layers by (file, database, lens, layer id): (written_at, type, intervals). Keyed by
    /// file too: a pack may still hold a dropped lens's layers, and a database created
    /// again reuses names and ids.
    layers: BTreeMap<LayerKey, Option<(i64, Type, Segs)>>,
    /// Compacted runs by (file, database, lens, history lo, hi).
    runs: BTreeMap<RunKey, Option<Compacted>>,
    /// Format-1 files (Tau 0.1: one layer or one run each) that hold a run, and whose.
    legacy_runs: BTreeMap<u64, (String, String)>,
}

type LayerKey = (u64, String, String, u64);
type RunKey = (u64, String, String, usize, usize);

/// A file name the store writes (a WAL, a layer pack, the manifest).
fn is_store_file(name: &str) -> bool {
    let num = |s: &str, pre: &str, suf: &str| {
        s.strip_prefix(pre)
            .and_then(|r| r.strip_suffix(suf))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    num(name, "wal-", ".log") || num(name, "layer-", ".tl")
}

/// A pack record's first byte: what follows.
const PACK_LAYER: u8 = b'L';
const PACK_RUN: u8 = b'R';

/// A pack record holding a compacted run: `R`, its lens, the run.
fn pack_run(db: &str, lens: &str, c: &Compacted) -> Vec<u8> {
    let body = encode_compacted(c);
    let mut out = Vec::with_capacity(9 + db.len() + lens.len() + body.len());
    out.push(PACK_RUN);
    for name in [db, lens] {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// The lens name at the start of `b`, and the rest.
fn take_name(b: &[u8]) -> Result<(String, &[u8]), String> {
    let (len, rest) = b.split_at_checked(4).ok_or("pack record too short")?;
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let (name, rest) = rest.split_at_checked(len).ok_or("pack record too short")?;
    let name = String::from_utf8(name.to_vec()).map_err(|_| "pack record: bad name")?;
    Ok((name, rest))
}

impl Loading {
    /// A decoded layer-file payload (`layer` is `encode_layer`'s output). Records the
    /// manifest does not name (a dropped lens's layers) are skipped.
    fn add_layer(&mut self, file: u64, layer: &[u8]) -> Result<(), String> {
        let (id, unit) = decode_layer(layer)?;
        let written_at = unit.written_at;
        let Ok([Op::Append { db, lens, ty, segs }]) = <[Op; 1]>::try_from(unit.ops) else {
            return Err("a layer record does not hold one layer".into());
        };
        let Some(slot) = self.layers.get_mut(&(file, db, lens, id)) else {
            return Ok(());
        };
        if slot.is_some() {
            return Err(format!("layer {id} stored twice"));
        }
        *slot = Some((
            written_at,
            ty,
            Arc::try_unwrap(segs).unwrap_or_else(|a| (*a).clone()),
        ));
        Ok(())
    }

    /// A decoded compacted run; runs the manifest does not name (superseded) are skipped.
    fn add_run(&mut self, file: u64, db: String, lens: String, c: Compacted) -> Result<(), String> {
        let Some(slot) = self.runs.get_mut(&(file, db, lens, c.lo, c.hi)) else {
            return Ok(());
        };
        if slot.is_some() {
            return Err("a compacted run stored twice".into());
        }
        *slot = Some(c);
        Ok(())
    }

    /// Every record of one layer file.
    fn add_file(
        &mut self,
        file: u64,
        bytes: &[u8],
        key: Option<&wal::WalKey>,
    ) -> Result<(), String> {
        let mut r = wal::Reader::open(bytes, key).map_err(|e| e.to_string())?;
        let legacy = r.version() == wal::VERSION_1;
        let mut n = 0;
        while let Some(rec) = r.next_record().map_err(|e| e.to_string())? {
            n += 1;
            let p = rec.plain.as_slice();
            if legacy {
                if n > 1 {
                    return Err("a format-1 layer file holds more than one record".into());
                }
                match self.legacy_runs.get(&file).cloned() {
                    Some((db, lens)) => self.add_run(file, db, lens, decode_compacted(p)?)?,
                    None => self.add_layer(file, p)?,
                }
                continue;
            }
            match p.split_first() {
                Some((&PACK_LAYER, layer)) => self.add_layer(file, layer)?,
                Some((&PACK_RUN, rest)) => {
                    let (db, rest) = take_name(rest)?;
                    let (lens, rest) = take_name(rest)?;
                    self.add_run(file, db, lens, decode_compacted(rest)?)?;
                }
                _ => return Err("unknown pack record".into()),
            }
        }
        if r.tail() != Some(&wal::Tail::Clean) || n == 0 {
            return Err(format!(
                "damaged or incomplete file ({} bytes)",
                bytes.len()
            ));
        }
        Ok(())
    }
}

/// The one record of a manifest or layer file, checked like a WAL.
fn single_record(bytes: &[u8], path: &str, key: Option<&wal::WalKey>) -> Result<Vec<u8>, String> {
    let s = wal::scan(bytes, key).map_err(|e| format!("{path}: {e}"))?;
    match (s.tail, s.records.len()) {
        (wal::Tail::Clean, 1) => Ok(s.records.into_iter().next().expect("one").1),
        _ => Err(format!(
            "{path}: damaged or incomplete file ({} bytes)",
            bytes.len()
        )),
    }
}

fn single_record_file(
    payload: &[u8],
    key: Option<&wal::WalKey>,
    z: &mut wal::Compressor,
    nonce: [u8; 12],
) -> Vec<u8> {
    let mut bytes = wal::header(key.is_some(), 1).to_vec();
    let record = wal::encode_record_with(z, payload, key, nonce, wal::VERSION, 1)
        .expect("a checkpoint file holds at most what the WAL logged");
    bytes.extend(record);
    bytes
}

/// The base lens a manifest names, ready to be filled.
fn base_lens_mut<'a>(st: &'a mut State, db: &str, lens: &str) -> Result<&'a mut BaseLens, String> {
    let d = st
        .dbs
        .get_mut(db)
        .ok_or_else(|| format!("manifest names unknown database {db}"))?;
    match Arc::make_mut(d).lenses.get_mut(lens) {
        Some(Lens::Base(b)) => Ok(Arc::make_mut(b)),
        _ => Err(format!("manifest names unknown base lens {db}.{lens}")),
    }
}

/// Rebuild the state a manifest and its layer files describe. Moves the loaded layers
/// into the state (no copy: peak memory at boot is the state, not twice it).
fn build_base(l: &mut Loading) -> Result<State, String> {
    let m = &l.manifest;
    let mut st = State::default();
    st.commit(m.catalog.clone(), m.written_at)
        .map_err(|e| format!("manifest catalog does not apply: {e}"))?;
    for (db, next) in &m.next_layer_ids {
        let d = st
            .dbs
            .get_mut(db)
            .ok_or_else(|| format!("manifest names unknown database {db}"))?;
        Arc::make_mut(d).next_layer_id = *next;
    }
    for (db, lens, files) in &m.lenses {
        let b = base_lens_mut(&mut st, db, lens)?;
        for (file, id) in files {
            let (written_at, ty, segs) = l
                .layers
                .remove(&(*file, db.clone(), lens.clone(), *id))
                .flatten()
                .ok_or_else(|| format!("layer {id} of {db}.{lens} not in layer file {file}"))?;
            if ty != b.ty {
                return Err(format!("layer {id} in file {file} is not of type {}", b.ty));
            }
            b.push(Layer {
                id: *id,
                written_at,
                segs,
            });
        }
    }
    for (db, lens, runs) in &m.runs {
        let b = base_lens_mut(&mut st, db, lens)?;
        for (file, lo, hi) in runs {
            let c = l
                .runs
                .remove(&(*file, db.clone(), lens.clone(), *lo as usize, *hi as usize))
                .flatten()
                .ok_or_else(|| format!("run {lo}..{hi} of {db}.{lens} not in file {file}"))?;
            let fits = c.hi <= b.history.len();
            if !fits || !b.install(Arc::new(c)) {
                return Err(format!("run file {file} does not fit {db}.{lens}"));
            }
        }
    }
    st.written_at = m.written_at;
    Ok(st)
}

impl Engine {
    /// Boot, step 2: the manifest (or none: a store that never checkpointed).
    pub(crate) fn on_manifest(&mut self, result: Result<StorageOut, String>, fx: &mut Vec<Effect>) {
        let d = self.durable.as_mut().expect("durable mode");
        let (dir, key) = (d.cfg.dir.clone(), d.cfg.key.clone());
        let path = manifest_path(&dir);
        let bytes = match result {
            Err(e) => return self.fatal(format!("cannot read {path}: {e}"), fx),
            Ok(StorageOut::NotFound) => {
                // No manifest: a store that never finished a checkpoint, whose log is
                // wal-0.log (its first checkpoint may have left a pack and wal-1.log behind,
                // to be overwritten). Without wal-0.log, files of a store mean the manifest
                // was lost: starting empty would let the next checkpoint overwrite them.
                if !d.boot_files.contains("wal-0.log") {
                    let stray: Vec<&String> = d
                        .boot_files
                        .iter()
                        .filter(|n| is_store_file(n))
                        .take(5)
                        .collect();
                    if !stray.is_empty() {
                        let msg = format!(
                            "{path} is missing but {dir} holds a store's files ({}{}); refusing to start: restore the manifest, or move the files away to start an empty store",
                            stray.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                            if stray.len() == 5 { ", ..." } else { "" }
                        );
                        return self.fatal(msg, fx);
                    }
                }
                return self.read_wal(fx);
            }
            Ok(StorageOut::Bytes(b)) => b,
            Ok(other) => unreachable!("ReadAll returns bytes, not {other:?}"),
        };
        let m = match single_record(&bytes, &path, key.as_ref())
            .and_then(|p| decode_manifest(&p).map_err(|e| format!("{path}: {e}")))
        {
            Ok(m) => m,
            Err(e) => return self.fatal(format!("{e}; refusing to start"), fx),
        };
        d.gen = m.gen;
        d.wal = wal_path(&dir, m.gen);
        d.next_file = m.next_file;
        let legacy_runs: BTreeMap<u64, (String, String)> = m
            .runs
            .iter()
            .flat_map(|(db, lens, r)| r.iter().map(move |x| (x.0, (db.clone(), lens.clone()))))
            .collect();
        let mut files: BTreeSet<u64> = m
            .lenses
            .iter()
            .flat_map(|(_, _, f)| f.iter().map(|x| x.0))
            .collect();
        files.extend(legacy_runs.keys());
        // What the manifest names, to be filled in as the files arrive.
        let layers = m
            .lenses
            .iter()
            .flat_map(|(db, lens, f)| {
                f.iter()
                    .map(move |&(file, id)| ((file, db.clone(), lens.clone(), id), None))
            })
            .collect();
        let runs = m
            .runs
            .iter()
            .flat_map(|(db, lens, r)| {
                r.iter().map(move |&(file, lo, hi)| {
                    (
                        (file, db.clone(), lens.clone(), lo as usize, hi as usize),
                        None,
                    )
                })
            })
            .collect();
        d.loading = Some(Loading {
            manifest: m,
            remaining: files.len(),
            layers,
            runs,
            legacy_runs,
        });
        if files.is_empty() {
            return self.finish_loading(fx);
        }
        for f in files {
            let op = StorageOp::ReadAll {
                path: layer_path(&dir, f),
            };
            self.storage_op(StorageWait::ReadLayer { file: f }, op, fx);
        }
    }

    /// Boot, step 3: one layer file.
    pub(crate) fn on_layer(
        &mut self,
        file: u64,
        result: Result<StorageOut, String>,
        fx: &mut Vec<Effect>,
    ) {
        let d = self.durable.as_mut().expect("durable mode");
        if matches!(d.phase, Phase::Fatal(_)) {
            return;
        }
        let path = layer_path(&d.cfg.dir, file);
        let key = d.cfg.key.clone();
        let l = d.loading.as_mut().expect("loading a manifest");
        let stored = match result {
            Ok(StorageOut::Bytes(b)) => l
                .add_file(file, &b, key.as_ref())
                .map_err(|e| format!("{path}: {e}")),
            Ok(_) => Err(format!("{path}: missing")),
            Err(e) => Err(format!("cannot read {path}: {e}")),
        };
        if let Err(e) = stored {
            return self.fatal(format!("{e}; refusing to start"), fx);
        }
        let l = d.loading.as_mut().expect("loading a manifest");
        l.remaining -= 1;
        if l.remaining == 0 {
            self.finish_loading(fx);
        }
    }

    /// Every layer file is in: build the base state, then replay the WAL on top.
    fn finish_loading(&mut self, fx: &mut Vec<Effect>) {
        let d = self.durable.as_mut().expect("durable mode");
        let mut l = d.loading.take().expect("loading a manifest");
        match build_base(&mut l) {
            Err(e) => {
                let path = manifest_path(&d.cfg.dir);
                self.fatal(format!("{path}: {e}; refusing to start"), fx)
            }
            Ok(st) => {
                // Remember which layers are already in files, by this run's lens uids.
                for (db, lens, files) in &l.manifest.lenses {
                    if let Some(Lens::Base(b)) = st.dbs.get(db).and_then(|x| x.lenses.get(lens)) {
                        for (f, id) in files {
                            d.persisted.insert((b.uid, *id), *f);
                            d.on_disk.insert(*f);
                        }
                    }
                }
                for (db, lens, runs) in &l.manifest.runs {
                    if let Some(Lens::Base(b)) = st.dbs.get(db).and_then(|x| x.lenses.get(lens)) {
                        for (f, lo, hi) in runs {
                            d.persisted_runs
                                .insert((b.uid, *lo as usize, *hi as usize), *f);
                            d.on_disk.insert(*f);
                        }
                    }
                }
                fx.push(Effect::Log(format!(
                    "recovery: {}: generation {}, {} layer files",
                    manifest_path(&d.cfg.dir),
                    l.manifest.gen,
                    d.on_disk.len()
                )));
                d.base = Some(st);
                self.read_wal(fx);
            }
        }
    }

    /// After a sync: start a checkpoint once the WAL is large, as soon as nothing is in
    /// flight (statements pause meanwhile, so that happens quickly).
    pub(crate) fn maybe_checkpoint(&mut self, fx: &mut Vec<Effect>) {
        let Some(d) = &mut self.durable else { return };
        if d.phase != Phase::Ready || d.checkpointing {
            return;
        }
        if !d.rotating && d.wal_len > d.cfg.checkpoint_bytes {
            d.rotating = true;
        }
        // Jobs that end in a commit (password hashing, COPY) must land before the
        // snapshot, or they would log to the WAL the checkpoint is about to replace.
        let committing_jobs = self.pending.values().any(|p| {
            matches!(
                p.waiting,
                Some(
                    Waiting::CreateUser { .. }
                        | Waiting::CopyRead { .. }
                        | Waiting::CopyParse { .. }
                )
            )
        });
        let d = self.durable.as_ref().expect("durable mode");
        if d.rotating && d.inflight_is_empty() && !committing_jobs {
            self.start_checkpoint(fx);
        }
    }

    fn start_checkpoint(&mut self, fx: &mut Vec<Effect>) {
        let snapshot = self.state.clone();
        let d = self.durable.as_mut().expect("durable mode");
        d.checkpointing = true;
        // The snapshot holds every applied commit, logged or not.
        d.relog.clear();
        let dir = d.cfg.dir.clone();
        let new_gen = d.gen + 1;
        let mut m = Manifest {
            gen: new_gen,
            next_file: d.next_file,
            written_at: snapshot.written_at,
            catalog: Vec::new(),
            next_layer_ids: Vec::new(),
            lenses: Vec::new(),
            runs: Vec::new(),
        };
        let mut referenced = BTreeMap::new();
        let mut referenced_runs = BTreeMap::new();
        // Every layer and run not yet in a file goes into one new pack file.
        let mut to_write: Vec<Vec<u8>> = Vec::new();
        let pack = m.next_file;
        m.next_file += 1;
        for (dbname, db) in &snapshot.dbs {
            m.catalog.push(Op::CreateDatabase(dbname.clone()));
            m.next_layer_ids.push((dbname.clone(), db.next_layer_id));
            let mut done: BTreeSet<&str> = BTreeSet::new();
            let mut derived = Vec::new();
            for (lname, lens) in &db.lenses {
                match lens {
                    Lens::Derived(dl) => derived.push((lname, dl)),
                    Lens::Base(b) => {
                        done.insert(lname);
                        m.catalog.push(Op::CreateLens {
                            db: dbname.clone(),
                            name: lname.clone(),
                            ty: b.ty,
                        });
                        let mut files = Vec::new();
                        for layer in &b.history {
                            let f = match d.persisted.get(&(b.uid, layer.id)) {
                                Some(&f) => f,
                                None => {
                                    let unit = encode_append_unit(
                                        layer.written_at,
                                        dbname,
                                        lname,
                                        b.ty,
                                        &layer.segs,
                                    );
                                    let mut rec = vec![PACK_LAYER];
                                    rec.extend(encode_layer(layer.id, &unit));
                                    to_write.push(rec);
                                    pack
                                }
                            };
                            referenced.insert((b.uid, layer.id), f);
                            files.push((f, layer.id));
                        }
                        m.lenses.push((dbname.clone(), lname.clone(), files));
                        // Compaction's output, so that recovery need not redo it.
                        let mut runs = Vec::new();
                        for run in &b.runs {
                            let Run::Compacted(c) = run else { continue };
                            let key = (b.uid, c.lo, c.hi);
                            let f = match d.persisted_runs.get(&key) {
                                Some(&f) => f,
                                None => {
                                    let rec = pack_run(dbname, lname, c);
                                    if rec.len() > wal::PLAIN_MAX {
                                        // Too large for one record: not persisted, so
                                        // recovery compacts again (runs are derived data).
                                        continue;
                                    }
                                    to_write.push(rec);
                                    pack
                                }
                            };
                            referenced_runs.insert(key, f);
                            runs.push((f, c.lo as u64, c.hi as u64));
                        }
                        if !runs.is_empty() {
                            m.runs.push((dbname.clone(), lname.clone(), runs));
                        }
                    }
                }
            }
            // Derived lenses after everything they read.
            while !derived.is_empty() {
                let before = derived.len();
                derived.retain(|(n, dl)| {
                    if dl.deps.iter().all(|x| done.contains(x.as_str())) {
                        m.catalog.push(Op::Derive {
                            db: dbname.clone(),
                            name: (*n).clone(),
                            expr: dl.expr.clone(),
                        });
                        done.insert(n);
                        false
                    } else {
                        true
                    }
                });
                assert!(derived.len() < before, "derived lenses never form a cycle");
            }
        }
        for (name, user) in &snapshot.users {
            m.catalog.push(Op::CreateUser {
                name: name.clone(),
                phc: user.phc.clone(),
            });
            for (db, perms) in &user.grants {
                m.catalog.push(Op::Grant {
                    user: name.clone(),
                    db: db.clone(),
                    perms: *perms,
                });
            }
        }
        let key = d.cfg.key.clone();
        let manifest_payload = encode_manifest(&m);
        let n_records = to_write.len();
        d.checkpoint = Some((m, referenced, referenced_runs));
        if n_records > 0 {
            let mut bytes = wal::header(key.is_some(), 1).to_vec();
            for (i, payload) in to_write.into_iter().enumerate() {
                let nonce = self.nonce();
                let d = self.durable.as_mut().expect("durable mode");
                let record = wal::encode_record_with(
                    &mut d.zstd,
                    &payload,
                    key.as_ref(),
                    nonce,
                    wal::VERSION,
                    i as u64 + 1,
                )
                .expect("a layer or run the WAL could log fits a record");
                bytes.extend(record);
            }
            self.storage_op(
                StorageWait::CheckpointFile,
                StorageOp::Create {
                    path: layer_path(&dir, pack),
                    bytes,
                },
                fx,
            );
        }
        // The new log continues the record numbering.
        let first_seq = self.durable.as_ref().expect("durable mode").wal_seq;
        let header = wal::header(key.is_some(), first_seq).to_vec();
        self.storage_op(
            StorageWait::CheckpointFile,
            StorageOp::Create {
                path: wal_path(&dir, new_gen),
                bytes: header,
            },
            fx,
        );
        let nonce = self.nonce();
        let d = self.durable.as_mut().expect("durable mode");
        let bytes = single_record_file(&manifest_payload, key.as_ref(), &mut d.zstd, nonce);
        // Not yet: a driver runs the next op even when this one fails (a nearly full disk
        // can refuse the pack file and still take the small manifest).
        d.manifest_due = Some((usize::from(n_records > 0) + 1, bytes));
        fx.push(Effect::Log(format!(
            "checkpoint: generation {new_gen}: writing {n_records} layers and runs into one pack file, and the manifest"
        )));
    }

    /// One of the checkpoint's files is durable: once all are, write the manifest.
    pub(crate) fn checkpoint_file_written(&mut self, fx: &mut Vec<Effect>) {
        let d = self.durable.as_mut().expect("durable mode");
        let Some((left, _)) = d.manifest_due.as_mut() else {
            return;
        };
        *left -= 1;
        if *left > 0 {
            return;
        }
        let (_, bytes) = d.manifest_due.take().expect("due");
        let path = manifest_path(&d.cfg.dir);
        self.storage_op(
            StorageWait::CheckpointManifest,
            StorageOp::Create { path, bytes },
            fx,
        );
    }

    /// The new manifest is durable: switch to the new WAL, then remove the old one and
    /// the layer files nothing names any more.
    pub(crate) fn checkpoint_done(
        &mut self,
        result: Result<StorageOut, String>,
        fx: &mut Vec<Effect>,
    ) {
        let d = self.durable.as_mut().expect("durable mode");
        let Some((m, referenced, referenced_runs)) = d.checkpoint.take() else {
            return;
        };
        d.checkpointing = false;
        d.rotating = false;
        if let Err(e) = result {
            return self.fail(format!("checkpoint failed writing the manifest: {e}"), fx);
        }
        let dir = d.cfg.dir.clone();
        let old = wal_path(&dir, d.gen);
        d.gen = m.gen;
        d.wal = wal_path(&dir, m.gen);
        d.wal_len = wal::HEADER_LEN as u64;
        d.wal_version = wal::VERSION;
        d.next_file = m.next_file;
        let keep: BTreeSet<u64> = referenced
            .values()
            .chain(referenced_runs.values())
            .copied()
            .collect();
        let orphans: Vec<u64> = d.on_disk.difference(&keep).copied().collect();
        d.on_disk = keep;
        d.persisted = referenced;
        d.persisted_runs = referenced_runs;
        self.storage_op(StorageWait::Removed, StorageOp::Remove { path: old }, fx);
        for f in orphans {
            self.storage_op(
                StorageWait::Removed,
                StorageOp::Remove {
                    path: layer_path(&dir, f),
                },
                fx,
            );
        }
        self.pump_all(fx);
    }
}
