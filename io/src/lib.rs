//! The real runtime adapter: runs the pure engine on one thread and executes its effects
//! against the OS — sockets' bytes in and out, file reads for COPY, jobs on worker
//! threads — supplying the wall clock and OS entropy the engine may not touch itself.
//!
//! This first version is deliberately small and blocking (std threads and channels). The
//! durability issue adds WAL/file effects here, and the server issue moves the network
//! side onto smol; the engine-facing contract (events in, effects out) does not change.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};
use tau_engine::{run_job, Config, ConnId, Effect, Engine, Event};

/// Stack for threads that run engine code: derived lenses over derived lenses recurse,
/// within the engine's nesting limits, deeper than std's 2 MiB default allows for.
const STACK_BYTES: usize = 64 << 20;

/// What the engine thread tells a connection's writer.
#[derive(Debug)]
pub enum ToConn {
    Bytes(Vec<u8>),
    Close,
}

/// What the outside world tells the engine thread.
pub enum Input {
    Open(ConnId, Sender<ToConn>),
    Event(Event),
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

/// Read a COPY file, refusing anything whose real path (symlinks resolved) leaves the
/// import directory: the engine's check is on the path text only.
fn read_import(import_dir: Option<&Path>, path: &str) -> Result<Vec<u8>, String> {
    let dir = import_dir.ok_or("no import directory")?;
    let real = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let real_dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    if !real.starts_with(&real_dir) {
        return Err("path outside the import directory".into());
    }
    std::fs::read(&real).map_err(|e| e.to_string())
}

/// The engine thread: owns the engine, serialises every event through `step`.
pub struct Runtime {
    tx: Sender<Input>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    pub fn start(cfg: Config) -> Runtime {
        let (tx, rx) = channel::<Input>();
        let loop_tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name("tau-engine".into())
            .stack_size(STACK_BYTES)
            .spawn(move || engine_loop(cfg, rx, loop_tx))
            .expect("spawn the engine thread");
        Runtime {
            tx,
            handle: Some(handle),
        }
    }

    pub fn sender(&self) -> Sender<Input> {
        self.tx.clone()
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

fn engine_loop(cfg: Config, rx: Receiver<Input>, tx: Sender<Input>) {
    let import_dir: Option<PathBuf> = cfg.import_dir.as_ref().map(PathBuf::from);
    let mut engine = Engine::new(cfg);
    let mut conns: BTreeMap<ConnId, Sender<ToConn>> = BTreeMap::new();
    let mut fx = Vec::new();
    engine.step(now_ms(), Event::Boot, &mut fx);
    while let Ok(input) = rx.recv() {
        let ev = match input {
            Input::Shutdown => return,
            Input::Open(id, w) => {
                conns.insert(id, w);
                Event::Open(id)
            }
            Input::Event(ev) => {
                if let Event::Closed(id) = &ev {
                    conns.remove(id);
                }
                ev
            }
        };
        engine.step(now_ms(), ev, &mut fx);
        for e in fx.drain(..) {
            match e {
                Effect::Send(id, bytes) => {
                    if let Some(w) = conns.get(&id) {
                        let _ = w.send(ToConn::Bytes(bytes));
                    }
                }
                Effect::Close(id) => {
                    if let Some(w) = conns.remove(&id) {
                        let _ = w.send(ToConn::Close);
                    }
                }
                Effect::ReadFile { token, path } => {
                    let tx = tx.clone();
                    let dir = import_dir.clone();
                    std::thread::spawn(move || {
                        let result = read_import(dir.as_deref(), &path);
                        let _ = tx.send(Input::Event(Event::FileRead { token, result }));
                    });
                }
                Effect::RunJob { token, job } => {
                    let tx = tx.clone();
                    let run = move || {
                        let output = run_job(job);
                        let _ = tx.send(Input::Event(Event::JobDone { token, output }));
                    };
                    let spawned = std::thread::Builder::new()
                        .stack_size(STACK_BYTES)
                        .spawn(run);
                    // Out of threads: the job is lost and its connection would wait
                    // forever, so say so loudly rather than hang silently.
                    if let Err(e) = spawned {
                        eprintln!("tau-io: cannot start a job thread: {e}");
                    }
                }
            }
        }
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
        tx.send(Input::Open(7, wtx)).unwrap();
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

    #[test]
    fn import_reads_stay_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("tau-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.csv"), b"0,1,1\n").unwrap();
        let p = dir.join("a.csv");
        assert_eq!(
            read_import(Some(&dir), p.to_str().unwrap()).unwrap(),
            b"0,1,1\n"
        );
        assert!(read_import(Some(&dir), "/etc/hostname").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
