//! `tau-server`: serves the Tau line protocol over TCP or TLS, on smol.
//!
//! `cargo run --release -p tau-server` serves 127.0.0.1:7070, durable in ./tau-data,
//! with authentication off. The engine runs on its own thread (tau-io); this binary owns
//! the sockets: one task per connection, backpressure, TLS, limits, the AUTH throttle,
//! `/healthz` and `/metrics`, configuration and graceful shutdown. See README.md.

mod config;
mod http;
mod metrics;
mod net;
mod tls;

use config::{Level, Settings, Tls};
use smol::{Async, Executor};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tau_engine::durable::StorageConfig;
use tau_engine::wal::WalKey;
use tau_engine::Config;
use tau_io::{os_seed, Hooks, Input, Limits, Runtime};

static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// One line on stderr, if `level` is enabled.
pub fn log(level: Level, msg: std::fmt::Arguments) {
    if level as u8 <= LOG_LEVEL.load(Ordering::Relaxed) {
        eprintln!("tau-server: {msg}");
    }
}

fn die(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("tau-server: {msg}");
    std::process::exit(code);
}

fn encryption_key(s: &Settings) -> Option<WalKey> {
    let text = match (&s.key_file, std::env::var("TAU_KEY")) {
        (Some(f), _) => match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => die(2, format_args!("cannot read key file {f}: {e}")),
        },
        (None, Ok(t)) => t,
        (None, Err(_)) => return None,
    };
    match WalKey::from_hex(&text) {
        Ok(k) => Some(k),
        Err(e) => die(2, format_args!("bad encryption key: {e}")),
    }
}

fn main() {
    let s = config::load().unwrap_or_else(|e| die(2, e));
    LOG_LEVEL.store(s.log_level as u8, Ordering::Relaxed);
    let key = encryption_key(&s);

    if !s.in_memory {
        // The store holds every value and the password hashes: it should be private.
        for w in tau_io::loose_permissions(std::path::Path::new(&s.data_dir)) {
            log(Level::Warn, format_args!("warning: {w}"));
        }
    }

    let tls = match &s.tls {
        Tls::Off => None,
        Tls::Files { cert, key } => Some(tls::from_files(cert, key).unwrap_or_else(|e| die(2, e))),
        Tls::SelfSigned => {
            let dir = if s.in_memory {
                std::env::temp_dir().join(format!("tau-server-{}", std::process::id()))
            } else {
                PathBuf::from(&s.data_dir)
            };
            let mut extra = Vec::new();
            if !s.bind.ip().is_unspecified() {
                extra.push(s.bind.ip().to_string());
            }
            let (acc, path) = tls::self_signed(&dir, &extra).unwrap_or_else(|e| die(1, e));
            log(
                Level::Info,
                format_args!("TLS: self-signed certificate in {}", path.display()),
            );
            Some(acc)
        }
    };

    let listener = TcpListener::bind(s.bind)
        .and_then(Async::new)
        .unwrap_or_else(|e| die(1, format_args!("cannot bind {}: {e}", s.bind)));
    let metrics_listener = s.metrics_bind.map(|a| {
        TcpListener::bind(a)
            .and_then(Async::new)
            .unwrap_or_else(|e| die(1, format_args!("cannot bind metrics address {a}: {e}")))
    });

    // Signals: the first SIGTERM/SIGINT starts a clean stop, a second one exits at once.
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .unwrap_or_else(|e| die(1, format_args!("cannot install signal handlers: {e}")));
    std::thread::Builder::new()
        .name("tau-signals".into())
        .spawn(move || {
            for (n, sig) in signals.forever().enumerate() {
                if n == 0 {
                    log(Level::Info, format_args!("signal {sig}: stopping"));
                    stop_tx.close();
                } else {
                    die(1, format_args!("signal {sig} again: exiting at once"));
                }
            }
        })
        .unwrap_or_else(|e| die(1, format_args!("cannot start the signal thread: {e}")));

    let metrics = Arc::new(metrics::Metrics::new(s.metrics_lens_labels));
    let hooks = {
        let (bytes, syncs, batch) = (
            metrics.wal_bytes.clone(),
            metrics.wal_syncs.clone(),
            metrics.group_commit.clone(),
        );
        Hooks {
            on_wal_append: Some(Box::new(move |n| {
                bytes.inc_by(n);
            })),
            on_wal_sync: Some(Box::new(move |n| {
                syncs.inc();
                batch.observe(n as f64);
            })),
        }
    };
    let storage = (!s.in_memory).then(|| StorageConfig {
        dir: s.data_dir.clone(),
        key: key.clone(),
        repair: s.repair,
        checkpoint_bytes: s.checkpoint_bytes,
    });
    let rt = Runtime::start_limited(
        Config {
            import_dir: s.import_dir.clone(),
            max_line_bytes: s.max_line_bytes,
            // The server's input window keeps each queue far below this; it is the
            // engine's own last line of defence.
            max_pipelined_bytes: (64usize << 20).max(s.input_window_bytes.saturating_mul(2)),
            // Replies: the engine stops running a connection's queued lines once a burst
            // of its replies reaches the output window, until the writer has sent them.
            reply_burst_bytes: s.output_window_bytes,
            auth: s.auth,
            bootstrap_admin: s.admin.clone(),
            default_database: s.default_database.clone(),
            compact_threshold: s.compact_threshold,
            compact_thresholds: s.compact_thresholds.clone(),
            seed: os_seed(),
            storage,
            ..Config::default()
        },
        hooks,
        Limits {
            copy_bytes_max: s.max_copy_bytes,
        },
    );
    let sv = Arc::new(net::Server::new(
        rt.sender(),
        metrics,
        tls,
        stop_rx.clone(),
        &s,
    ));

    let admin = s
        .admin_socket
        .as_ref()
        .and_then(|path| match admin_socket(path) {
            Ok(l) => {
                log(
                    Level::Info,
                    format_args!("admin socket {path} (outside the TCP connection limits)"),
                );
                Some((l, path.clone()))
            }
            Err(e) => {
                log(
                    Level::Warn,
                    format_args!("warning: no admin socket at {path}: {e}"),
                );
                None
            }
        });

    let local = listener.get_ref().local_addr().unwrap_or(s.bind);
    let mode = if s.in_memory {
        "in memory".to_string()
    } else {
        format!(
            "data in {}{}",
            s.data_dir,
            if key.is_some() { ", encrypted" } else { "" }
        )
    };
    let metrics_note = match &metrics_listener {
        Some(l) => format!(
            ", metrics on http://{}",
            l.get_ref()
                .local_addr()
                .map_or("?".into(), |a| a.to_string())
        ),
        None => String::new(),
    };
    // Tests and scripts read the address from this line: keep its shape.
    eprintln!(
        "tau-server: serving on {local} ({mode}, auth {}, {}{metrics_note})",
        if s.auth { "on" } else { "off" },
        if sv.tls.is_some() { "TLS" } else { "plain TCP" },
    );

    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    for i in 1..threads {
        let (ex, stop) = (ex.clone(), stop_rx.clone());
        std::thread::Builder::new()
            .name(format!("tau-net-{i}"))
            .spawn(move || {
                smol::block_on(ex.run(async {
                    // Serve until the process exits.
                    let _ = stop.recv().await;
                    std::future::pending::<()>().await;
                }))
            })
            .unwrap_or_else(|e| die(1, format_args!("cannot start a network thread: {e}")));
    }
    let shutdown_timeout = Duration::from_secs(s.shutdown_timeout_secs);
    let code = smol::block_on(ex.run(async {
        ex.spawn(net::accept_loop(listener, sv.clone(), ex.clone()))
            .detach();
        if let Some(l) = metrics_listener {
            ex.spawn(http::serve(l, sv.clone(), ex.clone())).detach();
        }
        if let Some((l, _)) = admin {
            ex.spawn(net::accept_admin_loop(l, sv.clone(), ex.clone()))
                .detach();
        }
        let _ = stop_rx.recv().await;
        graceful_stop(&sv, shutdown_timeout).await
    }));
    drop(rt);
    if let Some(path) = &s.admin_socket {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(code);
}

/// Bind the operator's Unix socket, mode 0600 (in the private data directory by
/// default). A socket left there by an earlier run is replaced; a live one (another
/// server on the same directory) or anything that is not a socket is left alone.
fn admin_socket(path: &str) -> std::io::Result<Async<std::os::unix::net::UnixListener>> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(tau_io::DIR_MODE)
            .create(dir)?;
    }
    if let Ok(m) = std::fs::symlink_metadata(p) {
        let other = |what: &str| std::io::Error::new(std::io::ErrorKind::AlreadyExists, what);
        if !m.file_type().is_socket() {
            return Err(other("it exists and is not a socket"));
        }
        if UnixStream::connect(p).is_ok() {
            return Err(other("another server is listening on it"));
        }
        std::fs::remove_file(p)?;
    }
    let l = UnixListener::bind(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(tau_io::FILE_MODE))?;
    Async::new(l)
}

/// Stop accepting (the accept loops watch the same signal), let the engine answer every
/// complete statement it has received and close each connection, wait for commits in
/// flight, fsync, and give the writers a moment to deliver the last replies.
async fn graceful_stop(sv: &net::Server, timeout: Duration) -> i32 {
    use smol::future::FutureExt;
    let t0 = Instant::now();
    let (tx, rx) = smol::channel::bounded(1);
    let drained = sv
        .engine
        .send(Input::Drain(Box::new(move || {
            let _ = tx.try_send(());
        })))
        .is_ok();
    let done = drained
        && async { rx.recv().await.is_ok() }
            .or(async {
                smol::Timer::after(timeout).await;
                false
            })
            .await;
    if !done {
        log(
            Level::Error,
            format_args!("statements still in flight after {timeout:?}; exiting anyway"),
        );
        return 1;
    }
    // Replies are queued; let the connections write them (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(5).min(timeout);
    let open = || sv.active.load(Ordering::Acquire) + sv.admin_active.load(Ordering::Acquire);
    while open() > 0 && Instant::now() < deadline {
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    log(
        Level::Info,
        format_args!("stopped cleanly in {} ms", t0.elapsed().as_millis()),
    );
    0
}
