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
use tau_engine::{Config, Event};
use tau_io::{os_seed, Input, Runtime, ToConn};

const HELP: &str = "tau-server: the Tau time-series database server (in-memory preview)

usage: tau-server [--bind ADDR:PORT] [--import-dir DIR] [--max-line-bytes N] [--insecure]

  --bind ADDR:PORT      listen address (default 127.0.0.1:7070)
  --import-dir DIR      directory COPY may read from (default: COPY disabled)
  --max-line-bytes N    longest accepted statement line (default 1048576)
  --insecure            allow a non-loopback bind while authentication is off
  -h, --help            this text

Data is kept in memory only in this version.";

struct Args {
    bind: String,
    import_dir: Option<String>,
    max_line: usize,
    insecure: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        bind: "127.0.0.1:7070".into(),
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
    if tx.send(Input::Open(id, wtx)).is_err() {
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
    let rt = Runtime::start(Config {
        import_dir: a.import_dir,
        max_line_bytes: a.max_line,
        seed: os_seed(),
        ..Config::default()
    });
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("tau-server: serving on {local} (in memory, auth off)");
    let next = AtomicU64::new(1);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let id = next.fetch_add(1, Ordering::Relaxed);
        let tx = rt.sender();
        std::thread::spawn(move || serve(id, stream, tx));
    }
}
