//! A real engine behind a real socket: a TcpListener on 127.0.0.1:0 whose connections
//! feed bytes into one `SyncDriver` and write its replies back. In memory, synchronous,
//! one thread per connection, and gone when the test process ends.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use tau_engine::driver::SyncDriver;
use tau_engine::{Argon2Params, Config};

pub struct Server {
    pub addr: SocketAddr,
    pub driver: Arc<Mutex<SyncDriver>>,
}

pub fn start(cfg: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let driver = Arc::new(Mutex::new(SyncDriver::new(cfg)));
    let d = driver.clone();
    std::thread::spawn(move || {
        for (id, stream) in (1u64..).zip(listener.incoming()) {
            let Ok(stream) = stream else { continue };
            let d = d.clone();
            std::thread::spawn(move || serve(&d, id, stream));
        }
    });
    Server { addr, driver }
}

/// Auth on, with `admin`/`secret` as the bootstrap admin; fast Argon2.
pub fn auth_config() -> Config {
    Config {
        auth: true,
        bootstrap_admin: Some(("admin".into(), "secret".into())),
        argon2: Argon2Params::TEST,
        ..Config::default()
    }
}

fn serve(d: &Mutex<SyncDriver>, id: u64, stream: TcpStream) {
    serve_stream(d, id, stream, |s| {
        let _ = s.shutdown(Shutdown::Both);
    });
}

/// Feed what `stream` reads into the driver as connection `id`, and write its replies
/// back, until either side closes; `close` ends the stream when the engine closes.
pub fn serve_stream<S: Read + Write>(
    d: &Mutex<SyncDriver>,
    id: u64,
    mut stream: S,
    close: impl FnOnce(&mut S),
) {
    d.lock().unwrap().open(id);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        let (out, closed) = {
            let mut d = d.lock().unwrap();
            if n == 0 {
                d.eof(id);
            } else {
                d.send(id, &buf[..n]);
            }
            let mut out = Vec::new();
            for l in d.take_lines(id) {
                out.extend_from_slice(l.as_bytes());
                out.push(b'\n');
            }
            (out, n == 0 || d.is_closed(id))
        };
        if stream
            .write_all(&out)
            .and_then(|()| stream.flush())
            .is_err()
        {
            break;
        }
        if closed {
            close(&mut stream);
            break;
        }
    }
    d.lock().unwrap().close(id);
}

/// Run the real `tau` binary against `addr`.
pub fn tau(addr: SocketAddr, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tau"));
    cmd.arg("--host")
        .arg(addr.to_string())
        .args(args)
        .env_remove("TAU_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tau");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("tau output");
    let _ = writer.join();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory for this test (under the target directory).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tau-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
