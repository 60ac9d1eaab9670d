//! The real runtime adapter: runs the pure engine on one thread and executes its effects
//! against the OS — replies handed to each connection's sink, storage ops on a storage
//! thread (in order, with fsyncs), jobs on a small worker pool, file reads for COPY —
//! supplying the wall clock and OS entropy the engine may not touch itself.
//!
//! The network side lives in the server (smol tasks per connection); it talks to the
//! engine thread through [`Input`] and receives replies through a [`ConnSink`]. The
//! engine-facing contract (events in, effects out) is the same as the simulator's.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};
use tau_engine::durable::{StorageOp, StorageOut};
use tau_engine::{run_job, Config, ConnId, Effect, Engine, Event};

/// Stack for threads that run engine code: derived lenses over derived lenses recurse,
/// within the engine's nesting limits, deeper than std's 2 MiB default allows for.
const STACK_BYTES: usize = 64 << 20;

/// What the engine thread tells a connection's writer (the channel [`ConnSink`]).
#[derive(Debug)]
pub enum ToConn {
    Bytes(Vec<u8>),
    Close,
}

/// Where the engine thread delivers one connection's output. Called on the engine
/// thread: implementations must not block.
pub trait ConnSink: Send {
    /// Reply bytes, in order.
    fn send(&mut self, bytes: Vec<u8>);
    /// Close once everything sent before is written.
    fn close(&mut self);
    /// The engine has taken `consumed` of the bytes received on this connection so far
    /// (monotonic): the rest waits in its queue. A driver's backpressure bounds the gap.
    fn consumed(&mut self, _consumed: u64) {}
}

impl ConnSink for Sender<ToConn> {
    fn send(&mut self, bytes: Vec<u8>) {
        let _ = Sender::send(self, ToConn::Bytes(bytes));
    }
    fn close(&mut self) {
        let _ = Sender::send(self, ToConn::Close);
    }
}

/// What the engine can tell about itself, for metrics and health checks.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub stats: tau_engine::stats::Stats,
    pub store: tau_engine::stats::StoreStats,
    pub lenses: Vec<tau_engine::stats::LensLayers>,
    pub connections: usize,
}

/// Callbacks the engine thread runs as it hands storage ops over (for metrics).
#[derive(Default)]
pub struct Hooks {
    /// Bytes of one WAL append.
    pub on_wal_append: Option<Box<dyn Fn(u64) + Send>>,
    /// A WAL fsync was issued covering this many commits (the group-commit batch).
    pub on_wal_sync: Option<Box<dyn Fn(u64) + Send>>,
}

/// What the outside world tells the engine thread.
pub enum Input {
    Open(ConnId, Box<dyn ConnSink>),
    Event(Event),
    /// Report a [`Snapshot`].
    Snapshot(Box<dyn FnOnce(Snapshot) + Send>),
    /// Stop cleanly: every connection answers the complete lines it has sent and closes
    /// (`Event::Drain`), commits in flight finish, open files are fsynced; then `done`
    /// runs and the engine thread ends.
    Drain(Box<dyn FnOnce() + Send>),
    Shutdown,
}

/// Wall-clock milliseconds since the epoch: the only clock the engine ever sees.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A seed from the OS, for the engine's ChaCha RNG (password salts).
pub fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut b).is_ok() {
            return u64::from_le_bytes(b);
        }
    }
    // Fallback: std's randomly keyed hasher.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.finish()
}

/// Limits of the runtime itself (the engine's are in its `Config`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest file COPY reads; a larger one is refused before a byte of it is read.
    /// The whole file is held in memory while it is parsed, so this bounds COPY's memory.
    pub copy_bytes_max: u64,
}

impl Limits {
    pub const COPY_BYTES_MAX: u64 = 64 << 20;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            copy_bytes_max: Limits::COPY_BYTES_MAX,
        }
    }
}

/// Read a COPY file, refusing anything whose real path (symlinks resolved) leaves the
/// import directory (the engine's check is on the path text only), anything that is not
/// a regular file (a FIFO would block a worker forever, a device such as /dev/zero would
/// never end), and a file larger than `max_bytes`. The type and size come from the file
/// as opened (fstat), and exactly the size seen then is read: a file still being appended
/// to yields the prefix it had, which the engine refuses if it ends inside a line.
fn read_import(import_dir: Option<&Path>, path: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let dir = import_dir.ok_or("no import directory")?;
    let real = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let real_dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    if !real.starts_with(&real_dir) {
        return Err("path outside the import directory".into());
    }
    // O_NONBLOCK: opening a FIFO must not wait for a writer. O_NOFOLLOW: the last
    // component must not have become a symlink since it was resolved.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    let ft = meta.file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        return Err(format!("not a regular file ({what})"));
    }
    let len = meta.len();
    if len > max_bytes {
        return Err(format!(
            "file too large ({len} bytes; COPY reads at most {max_bytes} bytes)"
        ));
    }
    let mut data = Vec::with_capacity(len as usize);
    (&f).take(len)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if (data.len() as u64) < len {
        return Err(format!(
            "file shrank while being read ({len} bytes at open, {} read)",
            data.len()
        ));
    }
    Ok(data)
}

/// The engine thread: owns the engine, serialises every event through `step`.
pub struct Runtime {
    tx: Sender<Input>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    pub fn start(cfg: Config) -> Runtime {
        Runtime::start_with(cfg, Hooks::default())
    }

    pub fn start_with(cfg: Config, hooks: Hooks) -> Runtime {
        Runtime::start_limited(cfg, hooks, Limits::default())
    }

    pub fn start_limited(cfg: Config, hooks: Hooks, limits: Limits) -> Runtime {
        let (tx, rx) = channel::<Input>();
        let loop_tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name("tau-engine".into())
            .stack_size(STACK_BYTES)
            .spawn(move || engine_loop(cfg, hooks, limits, rx, loop_tx))
            .expect("spawn the engine thread");
        Runtime {
            tx,
            handle: Some(handle),
        }
    }

    pub fn sender(&self) -> Sender<Input> {
        self.tx.clone()
    }

    /// Wait for the engine thread to end (after [`Input::Drain`] or [`Input::Shutdown`]).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.tx.send(Input::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Mode of the directories the store creates: the owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files the store creates (WAL, layer files, manifest, temporaries).
pub const FILE_MODE: u32 = 0o600;

/// Create (or truncate) `path` for writing, readable and writable by the owner only,
/// whatever mode a leftover file of that name had.
fn create_private(path: &str) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    if f.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

/// Warnings about a data directory that others can reach: the directory itself or any
/// entry in it with a group or world permission bit set. The server prints them at start;
/// it does not change modes it did not create.
pub fn loose_permissions(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |p: &Path| {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !m.file_type().is_symlink() {
                out.push(format!(
                    "{} is accessible to other users (mode {mode:o}; the store wants {:o} for directories, {:o} for files)",
                    p.display(),
                    DIR_MODE,
                    FILE_MODE
                ));
            }
        }
    };
    check(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            check(&p);
        }
    }
    out
}

/// fsync a directory, so that a create, rename or truncate in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &str) -> PathBuf {
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Execute one storage op. Append handles stay open between ops.
fn storage_op(files: &mut BTreeMap<String, File>, op: StorageOp) -> std::io::Result<StorageOut> {
    Ok(match op {
        StorageOp::CreateDir { path } => {
            // Private: the store holds every value and the users' password hashes.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&path)?;
            sync_dir(&parent(&path))?;
            StorageOut::Done
        }
        StorageOp::List { path } => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            StorageOut::Names(names)
        }
        StorageOp::ReadAll { path } => match std::fs::read(&path) {
            Ok(b) => StorageOut::Bytes(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StorageOut::NotFound,
            Err(e) => return Err(e),
        },
        StorageOp::Create { path, bytes } => {
            // Write a temporary file, sync it, rename it over, sync the directory.
            files.remove(&path);
            let tmp = format!("{path}.tmp");
            let mut f = create_private(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&parent(&path))?;
            StorageOut::Done
        }
        StorageOp::Append { path, bytes } => {
            if !files.contains_key(&path) {
                let f = OpenOptions::new().append(true).open(&path)?;
                files.insert(path.clone(), f);
            }
            files
                .get_mut(&path)
                .expect("opened above")
                .write_all(&bytes)?;
            StorageOut::Done
        }
        StorageOp::Sync { path } => {
            match files.get(&path) {
                Some(f) => f.sync_data()?,
                None => File::open(&path)?.sync_data()?,
            }
            StorageOut::Done
        }
        StorageOp::Remove { path } => {
            files.remove(&path);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            sync_dir(&parent(&path))?;
            StorageOut::Done
        }
        StorageOp::Truncate { path, len } => {
            files.remove(&path);
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(len)?;
            f.sync_all()?;
            StorageOut::Done
        }
    })
}

/// What the engine thread hands the storage thread.
enum StorageMsg {
    Op(u64, StorageOp),
    /// fsync every open file, then run the callback (a clean stop).
    SyncAll(Box<dyn FnOnce() + Send>),
}

/// The storage thread: runs ops strictly in the order the engine emitted them (so a
/// sync covers every append before it) and reports each completion.
/// Appends already queued for the same file are written with one `write` (group commit
/// brings them in bursts); each still gets its own completion, in order. If the combined
/// write fails, every append in it fails: the engine cuts the file back to the first.
fn storage_loop(rx: Receiver<StorageMsg>, tx: Sender<Input>) {
    let mut files = BTreeMap::new();
    let mut next: Option<StorageMsg> = None;
    loop {
        let Some(msg) = next.take().or_else(|| rx.recv().ok()) else {
            return;
        };
        let (token, op) = match msg {
            StorageMsg::Op(token, op) => (token, op),
            StorageMsg::SyncAll(done) => {
                for (path, f) in &files {
                    let f: &File = f;
                    if let Err(e) = f.sync_data() {
                        eprintln!("tau: fsync of {path} at shutdown failed: {e}");
                    }
                }
                done();
                continue;
            }
        };
        let mut done = vec![token];
        let op = match op {
            StorageOp::Append { path, mut bytes } => {
                while let Ok(more) = rx.try_recv() {
                    match more {
                        StorageMsg::Op(t, StorageOp::Append { path: p, bytes: b }) if p == path => {
                            bytes.extend_from_slice(&b);
                            done.push(t);
                        }
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                StorageOp::Append { path, bytes }
            }
            other => other,
        };
        let result = storage_op(&mut files, op).map_err(|e| e.to_string());
        for token in done {
            let result = result.clone();
            if tx
                .send(Input::Event(Event::StorageDone { token, result }))
                .is_err()
            {
                return;
            }
        }
    }
}

/// Work for the pool: an engine job, or reading a COPY file.
enum Work {
    Job(u64, tau_engine::Job),
    ReadFile(u64, String),
}

/// A small pool of worker threads (one per core) for the engine's off-loop jobs
/// (Argon2id, compaction, large queries, CSV parsing) and COPY file reads. A work queue
/// instead of a thread per job, so load cannot make the process start threads without
/// bound.
fn job_pool(tx: Sender<Input>, import_dir: Option<PathBuf>, limits: Limits) -> Sender<Work> {
    let (jtx, jrx) = channel::<Work>();
    let jrx = std::sync::Arc::new(std::sync::Mutex::new(jrx));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 16);
    for i in 0..workers {
        let (jrx, tx) = (jrx.clone(), tx.clone());
        let (dir, max) = (import_dir.clone(), limits.copy_bytes_max);
        std::thread::Builder::new()
            .name(format!("tau-job-{i}"))
            .stack_size(STACK_BYTES)
            .spawn(move || loop {
                // Hold the lock only to take a job, never while running one.
                let next = jrx.lock().map(|r| r.recv());
                let Ok(Ok(work)) = next else { return };
                let ev = match work {
                    Work::Job(token, job) => Event::JobDone {
                        token,
                        output: run_job(job),
                    },
                    Work::ReadFile(token, path) => Event::FileRead {
                        token,
                        result: read_import(dir.as_deref(), &path, max),
                    },
                };
                if tx.send(Input::Event(ev)).is_err() {
                    return;
                }
            })
            .expect("spawn a job worker");
    }
    jtx
}

/// COPY statements go through reading and parsing one at a time: a file's bytes (up to
/// `Limits::copy_bytes_max`) and what the parse builds from them are the most COPY holds
/// in memory, however many connections run COPY at once. The others wait here, in order
/// (at most one per connection: a connection waiting on COPY runs nothing else).
#[derive(Default)]
struct CopyLane {
    queue: std::collections::VecDeque<(u64, String)>,
    busy: Option<CopyStage>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CopyStage {
    /// The file is being read under this token.
    Reading(u64),
    /// The file was read; the engine is about to hand it to a parse job (or drop it).
    Handing,
    /// The parse job with this token is queued or running.
    Parsing(u64),
}

impl CopyLane {
    fn start_next(&mut self, pool: &Sender<Work>) {
        if self.busy.is_none() {
            if let Some((token, path)) = self.queue.pop_front() {
                self.busy = Some(CopyStage::Reading(token));
                let _ = pool.send(Work::ReadFile(token, path));
            }
        }
    }

    /// Before the engine steps `ev`.
    fn before(&mut self, ev: &Event) {
        match (ev, self.busy) {
            (Event::FileRead { token, result }, Some(CopyStage::Reading(t))) if *token == t => {
                self.busy = result.is_ok().then_some(CopyStage::Handing);
            }
            (Event::JobDone { token, .. }, Some(CopyStage::Parsing(t))) if *token == t => {
                self.busy = None;
            }
            _ => {}
        }
    }

    /// An effect of the step: the parse job the read file became.
    fn saw(&mut self, e: &Effect) {
        if let (
            Effect::RunJob {
                token,
                job: tau_engine::Job::ParseCsv { .. },
            },
            Some(CopyStage::Handing),
        ) = (e, self.busy)
        {
            self.busy = Some(CopyStage::Parsing(*token));
        }
    }

    /// After every effect of a step was seen.
    fn after_step(&mut self, pool: &Sender<Work>) {
        // The engine dropped the file (its connection closed meanwhile).
        if self.busy == Some(CopyStage::Handing) {
            self.busy = None;
        }
        self.start_next(pool);
    }
}

/// One connection as the engine thread sees it.
struct Link {
    sink: Box<dyn ConnSink>,
    /// Bytes received from the connection so far.
    received: u64,
    /// Of those, bytes the engine has taken out of its queue (last reported).
    consumed: u64,
}

fn engine_loop(cfg: Config, hooks: Hooks, limits: Limits, rx: Receiver<Input>, tx: Sender<Input>) {
    let import_dir: Option<PathBuf> = cfg.import_dir.as_ref().map(PathBuf::from);
    let (stx, srx) = channel::<StorageMsg>();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("tau-storage".into())
            .spawn(move || storage_loop(srx, tx))
            .expect("spawn the storage thread");
    }
    let jobs = job_pool(tx.clone(), import_dir, limits);
    let mut copies = CopyLane::default();
    let mut engine = Engine::new(cfg);
    let mut conns: BTreeMap<ConnId, Link> = BTreeMap::new();
    let mut fx = Vec::new();
    let mut touched: Vec<ConnId> = Vec::new();
    let mut appends_since_sync = 0u64;
    let mut draining: Option<Box<dyn FnOnce() + Send>> = None;
    engine.step(now_ms(), Event::Boot, &mut fx);
    loop {
        for e in fx.drain(..) {
            copies.saw(&e);
            match e {
                Effect::Send(id, bytes) => {
                    if let Some(l) = conns.get_mut(&id) {
                        l.sink.send(bytes);
                        touched.push(id);
                    }
                }
                Effect::Close(id) => {
                    if let Some(mut l) = conns.remove(&id) {
                        l.sink.close();
                    }
                }
                Effect::ReadFile { token, path } => copies.queue.push_back((token, path)),
                Effect::Storage { token, op } => {
                    match &op {
                        StorageOp::Append { bytes, .. } => {
                            appends_since_sync += 1;
                            if let Some(h) = &hooks.on_wal_append {
                                h(bytes.len() as u64);
                            }
                        }
                        StorageOp::Sync { .. } => {
                            if let Some(h) = &hooks.on_wal_sync {
                                h(appends_since_sync);
                            }
                            appends_since_sync = 0;
                        }
                        _ => {}
                    }
                    let _ = stx.send(StorageMsg::Op(token, op));
                }
                Effect::Log(line) => eprintln!("tau: {line}"),
                Effect::Fatal(msg) => {
                    // Refuse to start: never serve from a store that cannot be trusted.
                    eprintln!("tau: fatal: {msg}");
                    std::process::exit(1);
                }
                Effect::RunJob { token, job } => {
                    let _ = jobs.send(Work::Job(token, job));
                }
            }
        }
        copies.after_step(&jobs);
        // Tell each connection that made progress how much of its input the engine took.
        for id in touched.drain(..) {
            if let Some(l) = conns.get_mut(&id) {
                let consumed = l.received.saturating_sub(engine.input_backlog(id) as u64);
                if consumed > l.consumed {
                    l.consumed = consumed;
                    l.sink.consumed(consumed);
                }
            }
        }
        if draining.is_some() && engine.connection_count() == 0 && engine.quiescent() {
            let done = draining.take().expect("checked");
            let _ = stx.send(StorageMsg::SyncAll(done));
            return;
        }
        let Ok(input) = rx.recv() else { return };
        let ev = match input {
            Input::Shutdown => return,
            Input::Snapshot(reply) => {
                reply(Snapshot {
                    stats: engine.stats().clone(),
                    store: engine.store_stats(),
                    lenses: engine.lens_layers(),
                    connections: engine.connection_count(),
                });
                continue;
            }
            Input::Drain(done) => {
                draining = Some(done);
                let ids: Vec<ConnId> = conns.keys().copied().collect();
                for id in ids {
                    engine.step(now_ms(), Event::Drain(id), &mut fx);
                    touched.push(id);
                }
                continue;
            }
            Input::Open(id, sink) => {
                conns.insert(
                    id,
                    Link {
                        sink,
                        received: 0,
                        consumed: 0,
                    },
                );
                engine.step(now_ms(), Event::Open(id), &mut fx);
                if draining.is_some() {
                    engine.step(now_ms(), Event::Drain(id), &mut fx);
                }
                continue;
            }
            Input::Event(ev) => ev,
        };
        match &ev {
            Event::Closed(id) => {
                conns.remove(id);
            }
            Event::Bytes(id, b) => {
                if let Some(l) = conns.get_mut(id) {
                    l.received += b.len() as u64;
                    touched.push(*id);
                }
            }
            Event::Eof(id) | Event::Drain(id) => touched.push(*id),
            _ => {}
        }
        copies.before(&ev);
        engine.step(now_ms(), ev, &mut fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_round_trip_through_the_runtime() {
        let rt = Runtime::start(Config::default());
        let tx = rt.sender();
        let (wtx, wrx) = channel();
        tx.send(Input::Open(7, Box::new(wtx))).unwrap();
        tx.send(Input::Event(Event::Bytes(
            7,
            b"CREATE DATABASE d\nUSE DATABASE d\nSHOW DATABASES\nQUIT\n".to_vec(),
        )))
        .unwrap();
        let mut got = Vec::new();
        let wait = std::time::Duration::from_secs(10);
        while let ToConn::Bytes(b) = wrx.recv_timeout(wait).unwrap() {
            got.extend(b);
        }
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "OK\nOK\nNAMES 1; d\nOK BYE\n"
        );
    }

    fn roundtrip(tx: &Sender<Input>, id: u64, stmts: &str) -> String {
        let (wtx, wrx) = channel();
        tx.send(Input::Open(id, Box::new(wtx))).unwrap();
        tx.send(Input::Event(Event::Bytes(
            id,
            format!("{stmts}QUIT\n").into_bytes(),
        )))
        .unwrap();
        let mut got = Vec::new();
        let wait = std::time::Duration::from_secs(10);
        while let ToConn::Bytes(b) = wrx.recv_timeout(wait).unwrap() {
            got.extend(b);
        }
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn durable_writes_survive_a_restart_on_real_files() {
        let dir = std::env::temp_dir().join(format!("tau-io-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = || Config {
            storage: Some(tau_engine::durable::StorageConfig {
                dir: dir.join("data").to_string_lossy().into_owned(),
                key: None,
                repair: false,
                checkpoint_bytes: tau_engine::durable::StorageConfig::CHECKPOINT_BYTES,
            }),
            ..Config::default()
        };
        {
            let rt = Runtime::start(cfg());
            let out = roundtrip(
                &rt.sender(),
                1,
                "CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\nAPPEND LENS x 0 10 7\n",
            );
            assert_eq!(out, "OK\nOK\nOK\nOK\nOK BYE\n");
        }
        let rt = Runtime::start(cfg());
        let out = roundtrip(&rt.sender(), 1, "USE DATABASE d\nAT LENS x 5\n");
        assert_eq!(out, "OK\nVAL i7\nOK BYE\n");
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn drain_answers_complete_lines_then_stops() {
        let rt = Runtime::start(Config::default());
        let tx = rt.sender();
        let (wtx, wrx) = channel();
        tx.send(Input::Open(3, Box::new(wtx))).unwrap();
        tx.send(Input::Event(Event::Bytes(
            3,
            b"CREATE DATABASE d\nSHOW DATABASES\nCREATE DATA".to_vec(),
        )))
        .unwrap();
        let (dtx, drx) = channel();
        tx.send(Input::Drain(Box::new(move || {
            let _ = dtx.send(());
        })))
        .unwrap();
        let mut got = Vec::new();
        let wait = std::time::Duration::from_secs(10);
        while let ToConn::Bytes(b) = wrx.recv_timeout(wait).unwrap() {
            got.extend(b);
        }
        assert_eq!(String::from_utf8(got).unwrap(), "OK\nNAMES 1; d\n");
        drx.recv_timeout(wait).unwrap();
        rt.join();
    }

    #[test]
    fn consumed_reports_what_the_engine_took() {
        struct Probe(Sender<u64>);
        impl ConnSink for Probe {
            fn send(&mut self, _: Vec<u8>) {}
            fn close(&mut self) {}
            fn consumed(&mut self, n: u64) {
                let _ = self.0.send(n);
            }
        }
        let rt = Runtime::start(Config::default());
        let tx = rt.sender();
        let (ptx, prx) = channel();
        tx.send(Input::Open(4, Box::new(Probe(ptx)))).unwrap();
        tx.send(Input::Event(Event::Bytes(
            4,
            b"SHOW DATABASES\nSHOW".to_vec(),
        )))
        .unwrap();
        let wait = std::time::Duration::from_secs(10);
        // 15 bytes of complete line taken; the partial "SHOW" is still held.
        assert_eq!(prx.recv_timeout(wait).unwrap(), 15);
    }

    #[test]
    fn copy_lane_runs_one_copy_at_a_time_and_frees_on_every_ending() {
        let (pool, work) = channel::<Work>();
        let mut lane = CopyLane::default();
        let read = |token| Event::FileRead {
            token,
            result: Ok(b"0,1,1\n".to_vec()),
        };
        let parse = |token| Effect::RunJob {
            token,
            job: tau_engine::Job::ParseCsv {
                data: Vec::new(),
                path: "f".into(),
                lens: "x".into(),
                ty: tau_engine::Type::Int,
            },
        };
        let next_read = || match work.try_recv() {
            Ok(Work::ReadFile(t, _)) => Some(t),
            Ok(Work::Job(..)) => panic!("a job on the lane"),
            Err(_) => None,
        };
        for t in [1, 2, 3] {
            lane.queue.push_back((t, format!("f{t}")));
        }
        lane.after_step(&pool);
        assert_eq!(next_read(), Some(1));
        assert_eq!(next_read(), None);
        // Read, parsed, done: the next one starts only then.
        lane.before(&read(1));
        lane.saw(&parse(10));
        lane.after_step(&pool);
        assert_eq!(next_read(), None);
        lane.before(&Event::JobDone {
            token: 10,
            output: tau_engine::JobOutput::Reply(String::new()),
        });
        lane.after_step(&pool);
        assert_eq!(next_read(), Some(2));
        // Read, but the engine dropped it (its connection closed): freed at once.
        lane.before(&read(2));
        lane.after_step(&pool);
        assert_eq!(next_read(), Some(3));
        // A failed read frees it too.
        lane.before(&Event::FileRead {
            token: 3,
            result: Err("gone".into()),
        });
        lane.after_step(&pool);
        assert_eq!(lane.busy, None);
        assert_eq!(next_read(), None);
    }

    #[test]
    fn the_store_creates_private_directories_and_files() {
        let root = std::env::temp_dir().join(format!("tau-io-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("a/data");
        let d = dir.to_str().unwrap().to_string();
        let mut files = BTreeMap::new();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        storage_op(&mut files, StorageOp::CreateDir { path: d.clone() }).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.join("a")), 0o700);
        // A leftover temporary with a loose mode does not keep it.
        let wal = format!("{d}/wal-1.log");
        std::fs::write(format!("{wal}.tmp"), b"old").unwrap();
        std::fs::set_permissions(format!("{wal}.tmp"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let op = StorageOp::Create {
            path: wal.clone(),
            bytes: b"header".to_vec(),
        };
        storage_op(&mut files, op).unwrap();
        assert_eq!(mode(Path::new(&wal)), 0o600);
        assert!(loose_permissions(&dir).is_empty());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = loose_permissions(&dir);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with(&format!("{d} is accessible to other users (mode 755")));
        assert!(w[1].starts_with(&format!("{wal} is accessible to other users (mode 644")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn import_reads_stay_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("tau-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.csv"), b"0,1,1\n").unwrap();
        let p = dir.join("a.csv");
        let read = |p: &Path, max| read_import(Some(&dir), p.to_str().unwrap(), max);
        assert_eq!(read(&p, 100).unwrap(), b"0,1,1\n");
        assert!(read(Path::new("/etc/hostname"), 100).is_err());
        // Exactly the size seen at open, and no more than the cap.
        assert_eq!(read(&p, 6).unwrap(), b"0,1,1\n");
        let e = read(&p, 5).unwrap_err();
        assert_eq!(e, "file too large (6 bytes; COPY reads at most 5 bytes)");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let e = read(&dir.join("sub"), 100).unwrap_err();
        assert_eq!(e, "not a regular file (a directory)");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Refused at once: opening it does not wait for a writer.
        let e = read(&fifo, 100).unwrap_err();
        assert_eq!(e, "not a regular file (a FIFO)");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = read_import(Some(Path::new("/dev")), "/dev/zero", 100).unwrap_err();
        assert_eq!(e, "not a regular file (a device)");
    }
}
