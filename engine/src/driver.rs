//! A synchronous driver for tests: executes every effect at once, in order, against an
//! in-memory file system. It is the smallest correct driver, and the reference the real
//! and simulated drivers must agree with. Every storage op is "durable" the moment it
//! completes, so dropping a driver and starting a new one on its `files` is a crash and
//! restart with nothing lost past the last completed op.

use crate::durable::{StorageOp, StorageOut};
use crate::engine::{Config, ConnId, Effect, Engine, Event};
use crate::jobs::run_job;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct SyncDriver {
    pub engine: Engine,
    /// Files by full path: COPY sources and the store's own files.
    pub files: BTreeMap<String, Vec<u8>>,
    pub now_ms: i64,
    /// Fail the next this-many fsyncs (fault injection).
    pub fail_syncs: usize,
    /// The disk is full: appends write half their bytes, then fail with ENOSPC.
    pub disk_full: bool,
    /// Storage ops executed, by kind (for group-commit tests).
    pub syncs: usize,
    pub log: Vec<String>,
    pub fatal: Option<String>,
    received: BTreeMap<ConnId, Vec<u8>>,
    closed: BTreeSet<ConnId>,
}

impl SyncDriver {
    pub fn new(cfg: Config) -> SyncDriver {
        SyncDriver::with_files(cfg, BTreeMap::new())
    }

    /// Start on existing files: a restart.
    pub fn with_files(cfg: Config, files: BTreeMap<String, Vec<u8>>) -> SyncDriver {
        let mut d = SyncDriver {
            engine: Engine::new(cfg),
            files,
            now_ms: 0,
            fail_syncs: 0,
            disk_full: false,
            syncs: 0,
            log: Vec::new(),
            fatal: None,
            received: BTreeMap::new(),
            closed: BTreeSet::new(),
        };
        d.run(Event::Boot);
        d
    }

    fn storage(&mut self, op: StorageOp) -> Result<StorageOut, String> {
        match op {
            StorageOp::CreateDir { .. } => Ok(StorageOut::Done),
            StorageOp::ReadAll { path } => Ok(match self.files.get(&path) {
                Some(b) => StorageOut::Bytes(b.clone()),
                None => StorageOut::NotFound,
            }),
            StorageOp::Create { path, bytes } => {
                self.files.insert(path, bytes);
                Ok(StorageOut::Done)
            }
            StorageOp::Append { path, bytes } => {
                let f = self.files.entry(path).or_default();
                if self.disk_full {
                    f.extend(&bytes[..bytes.len() / 2]);
                    return Err("No space left on device (os error 28)".into());
                }
                f.extend(bytes);
                Ok(StorageOut::Done)
            }
            StorageOp::Sync { .. } => {
                self.syncs += 1;
                if self.fail_syncs > 0 {
                    self.fail_syncs -= 1;
                    return Err("Input/output error (os error 5)".into());
                }
                Ok(StorageOut::Done)
            }
            StorageOp::Remove { path } => {
                self.files.remove(&path);
                Ok(StorageOut::Done)
            }
            StorageOp::List { path } => {
                let prefix = format!("{}/", path.trim_end_matches('/'));
                Ok(StorageOut::Names(
                    self.files
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|n| !n.contains('/'))
                        .map(str::to_string)
                        .collect(),
                ))
            }
            StorageOp::Truncate { path, len } => {
                if let Some(f) = self.files.get_mut(&path) {
                    f.truncate(len as usize);
                }
                Ok(StorageOut::Done)
            }
        }
    }

    /// Feed one event and everything it causes, until the engine is idle.
    pub fn run(&mut self, first: Event) {
        let mut events = VecDeque::from([first]);
        let mut fx = Vec::new();
        while let Some(ev) = events.pop_front() {
            self.engine.step(self.now_ms, ev, &mut fx);
            for e in std::mem::take(&mut fx) {
                match e {
                    Effect::Send(c, bytes) => self.received.entry(c).or_default().extend(bytes),
                    Effect::Close(c) => {
                        self.closed.insert(c);
                    }
                    Effect::ReadFile { token, path } => {
                        events.push_back(Event::FileRead {
                            token,
                            result: self.files.get(&path).cloned().ok_or_else(|| {
                                "No such file or directory (os error 2)".to_string()
                            }),
                        })
                    }
                    Effect::RunJob { token, job } => events.push_back(Event::JobDone {
                        token,
                        output: run_job(job),
                    }),
                    Effect::Storage { token, op } => {
                        let result = self.storage(op);
                        events.push_back(Event::StorageDone { token, result });
                    }
                    Effect::Log(l) => self.log.push(l),
                    Effect::Fatal(m) => self.fatal = Some(m),
                }
            }
        }
    }

    pub fn open(&mut self, c: ConnId) {
        self.closed.remove(&c);
        self.run(Event::Open(c));
    }

    /// The client half-closes: no more input.
    pub fn eof(&mut self, c: ConnId) {
        self.run(Event::Eof(c));
    }

    /// The server is stopping: answer complete lines, drop a partial one, close.
    pub fn drain(&mut self, c: ConnId) {
        self.run(Event::Drain(c));
    }

    pub fn close(&mut self, c: ConnId) {
        self.run(Event::Closed(c));
    }

    pub fn send(&mut self, c: ConnId, bytes: &[u8]) {
        self.run(Event::Bytes(c, bytes.to_vec()));
    }

    /// Everything received on `c` since the last call, split into lines.
    pub fn take_lines(&mut self, c: ConnId) -> Vec<String> {
        let bytes = self.received.remove(&c).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Send one statement and return its reply (empty string for no reply).
    pub fn line(&mut self, c: ConnId, stmt: &str) -> String {
        self.send(c, format!("{stmt}\n").as_bytes());
        let mut lines = self.take_lines(c);
        assert!(lines.len() <= 1, "one reply per statement, got {lines:?}");
        lines.pop().unwrap_or_default()
    }

    pub fn is_closed(&self, c: ConnId) -> bool {
        self.closed.contains(&c)
    }
}
