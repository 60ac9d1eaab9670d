//! `tau-server`: serves the Tau line protocol over TCP.
//!
//! `cargo run --release -p tau-server` serves 127.0.0.1:7070 with authentication off.
//! This is the first, minimal server: blocking threads over the io runtime and data in
//! memory only. Durability (./tau-data), TLS, configuration files, metrics and the smol
//! adapter arrive with the durability and server issues; see README.md.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use tau_engine::durable::StorageConfig;
use tau_engine::wal::WalKey;
use tau_engine::{Config, Event};
use tau_io::{os_seed, Input, Runtime, ToConn};

const HELP: &str = "tau-server: the Tau time-series database server (preview)

usage: tau-server [--bind ADDR:PORT] [--data-dir DIR | --in-memory] [--key-file FILE]
                  [--repair] [--import-dir DIR] [--max-line-bytes N] [--insecure]

  --bind ADDR:PORT      listen address (default 127.0.0.1:7070)
  --data-dir DIR        where the write-ahead log lives (default ./tau-data); every OK
                        to a write means it is fsynced there
  --in-memory           keep nothing on disk (data is lost when the server stops)
  --key-file FILE       encrypt the log with AES-256-GCM; FILE holds 64 hex characters
                        (or set TAU_KEY to them)
  --repair              on a corrupt log, keep the intact prefix instead of refusing to
                        start (what is discarded is logged)
  --import-dir DIR      directory COPY may read from (default: COPY disabled)
  --max-line-bytes N    longest accepted statement line (default 1048576)
  --insecure            allow a non-loopback bind while authentication is off
  -h, --help            this text";

struct Args {
    bind: String,
    data_dir: String,
    in_memory: bool,
    key_file: Option<String>,
    repair: bool,
    import_dir: Option<String>,
    max_line: usize,
    insecure: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        bind: "127.0.0.1:7070".into(),
        data_dir: "./tau-data".into(),
        in_memory: false,
        key_file: None,
        repair: false,
        import_dir: None,
        max_line: 1 << 20,
        insecure: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{f} needs a value"));
        match f.as_str() {
            "--bind" => a.bind = val()?,
            "--import-dir" => a.import_dir = Some(val()?),
            "--data-dir" => a.data_dir = val()?,
            "--in-memory" => a.in_memory = true,
            "--key-file" => a.key_file = Some(val()?),
            "--repair" => a.repair = true,
            "--max-line-bytes" => {
                a.max_line = val()?.parse().map_err(|_| "bad --max-line-bytes")?
            }
            "--insecure" => a.insecure = true,
            "-h" | "--help" => return Err(HELP.into()),
            _ => return Err(format!("unknown flag {f}\n\n{HELP}")),
        }
    }
    Ok(a)
}

/// One client: a reader loop feeding the engine, and a writer thread draining replies.
fn serve(id: u64, stream: TcpStream, tx: Sender<Input>) {
    let (wtx, wrx) = channel::<ToConn>();
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    if tx.send(Input::Open(id, Box::new(wtx))).is_err() {
        return;
    }
    std::thread::spawn(move || {
        while let Ok(msg) = wrx.recv() {
            match msg {
                ToConn::Bytes(b) => {
                    if writer.write_all(&b).is_err() {
                        break;
                    }
                }
                ToConn::Close => break,
            }
        }
        let _ = writer.shutdown(Shutdown::Both);
    });
    let mut reader = stream;
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match reader.read(&mut buf) {
            // A clean end of input may be a half-close: the client still reads replies,
            // so the engine answers everything before it closes.
            Ok(0) => break Event::Eof(id),
            Err(_) => break Event::Closed(id),
            Ok(n) => {
                if tx
                    .send(Input::Event(Event::Bytes(id, buf[..n].to_vec())))
                    .is_err()
                {
                    return;
                }
            }
        }
    };
    let _ = tx.send(Input::Event(end));
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            let help = e.starts_with("tau-server:");
            eprintln!("{e}");
            std::process::exit(if help { 0 } else { 2 });
        }
    };
    let addr: SocketAddr = match a.bind.parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tau-server: bad --bind {:?}: {e}", a.bind);
            std::process::exit(2);
        }
    };
    if !addr.ip().is_loopback() && !a.insecure {
        eprintln!("tau-server: refusing to bind {addr} with authentication off (use --insecure)");
        std::process::exit(2);
    }
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tau-server: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let key_hex = match (&a.key_file, std::env::var("TAU_KEY")) {
        (Some(f), _) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("tau-server: cannot read --key-file {f}: {e}");
                std::process::exit(2);
            }
        },
        (None, Ok(t)) => Some(t),
        (None, Err(_)) => None,
    };
    let key = match key_hex.map(|t| WalKey::from_hex(&t)) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            eprintln!("tau-server: bad encryption key: {e}");
            std::process::exit(2);
        }
        None => None,
    };
    let storage = (!a.in_memory).then(|| StorageConfig {
        dir: a.data_dir.clone(),
        key: key.clone(),
        repair: a.repair,
        checkpoint_bytes: StorageConfig::CHECKPOINT_BYTES,
    });
    let rt = Runtime::start(Config {
        import_dir: a.import_dir,
        max_line_bytes: a.max_line,
        seed: os_seed(),
        storage,
        ..Config::default()
    });
    let local = listener.local_addr().unwrap_or(addr);
    let mode = if a.in_memory {
        "in memory".to_string()
    } else {
        format!(
            "data in {}{}",
            a.data_dir,
            if key.is_some() { ", encrypted" } else { "" }
        )
    };
    eprintln!("tau-server: serving on {local} ({mode}, auth off)");
    let next = AtomicU64::new(1);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let id = next.fetch_add(1, Ordering::Relaxed);
        let tx = rt.sender();
        std::thread::spawn(move || serve(id, stream, tx));
    }
}
