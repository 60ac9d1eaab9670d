//! Settings: built-in defaults, then a TOML file (`--config FILE`), then flags. Every
//! setting can be given in the file; the common ones also as flags, which win.
//! Unknown keys in the file are an error, so a typo never silently does nothing.

use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Command-line flags. A flag that is not given leaves the file's value (or the
/// default) alone.
#[derive(Parser, Debug, Default)]
#[command(
    name = "tau-server",
    version,
    about = "The Tau bitemporal time-series database server.",
    long_about = "The Tau bitemporal time-series database server.\n\n\
        With no flags it serves 127.0.0.1:7070, keeps its data durably in ./tau-data and \
        has authentication off. Settings come from the built-in defaults, then the TOML \
        file given with --config (every setting; see server/tau.example.toml), then these \
        flags, which win.",
    after_help = "Config file sections and keys (all optional):\n  \
        bind, data_dir, in_memory, import_dir, default_database, insecure, log_level,\n                \
        admin_socket\n  \
        [storage]     key_file, repair, checkpoint_bytes\n  \
        [compaction]  threshold, [compaction.databases] <db> = <threshold>\n  \
        [tls]         cert, key, self_signed\n  \
        [auth]        enabled, admin_user, admin_password, admin_password_env,\n                \
        max_failures, failure_refill_secs\n  \
        [limits]      max_connections, max_connections_per_address, idle_timeout_secs,\n                \
        auth_timeout_secs, line_timeout_secs, max_line_bytes,\n                \
        input_window_bytes, output_window_bytes, shutdown_timeout_secs,\n                \
        max_copy_bytes\n  \
        [metrics]     bind, lens_labels\n\n\
        Signals: SIGTERM or SIGINT stops accepting, answers statements already received, \
        syncs and exits 0; a second signal exits at once."
)]
pub struct Flags {
    /// TOML configuration file (every setting; flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address for the line protocol [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Data directory; every OK to a write means it is fsynced there [default: ./tau-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Keep nothing on disk (data is lost when the server stops).
    #[arg(long)]
    pub in_memory: bool,
    /// Directory COPY may read from (default: COPY disabled).
    #[arg(long, value_name = "DIR")]
    pub import_dir: Option<String>,
    /// Encrypt the data at rest with AES-256-GCM; FILE holds 64 hex characters (or set TAU_KEY).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<String>,
    /// On a corrupt log, keep the intact prefix instead of refusing to start.
    #[arg(long)]
    pub repair: bool,
    /// HTTP address for GET /healthz and GET /metrics (default: off).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_bind: Option<String>,
    /// Also export per-lens metrics labelled with database and lens names (/metrics
    /// needs no authentication, so names stay out of it unless this is given).
    #[arg(long)]
    pub metrics_lens_labels: bool,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<String>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<String>,
    /// Serve TLS with a certificate generated at start; its PEM is written to
    /// <data-dir>/tls-self-signed.pem for clients to trust.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
    /// Require `AUTH user password` as the first line of every connection.
    #[arg(long)]
    pub auth: bool,
    /// Allow a non-loopback bind while authentication is off.
    #[arg(long)]
    pub insecure: bool,
    /// Most concurrent connections; more get `ERR server at connection limit` [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Close a connection idle this long, 0 = never [default: 300].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Most concurrent TCP connections from one IPv4 address or IPv6 /64; more get
    /// `ERR server at connection limit: ...` [default: 256].
    #[arg(long, value_name = "N")]
    pub max_connections_per_address: Option<usize>,
    /// With auth on, close a connection whose AUTH line is not complete this long after
    /// it was accepted, 0 = never [default: 10].
    #[arg(long, value_name = "SECS")]
    pub auth_timeout_secs: Option<u64>,
    /// Close a connection that leaves a line unfinished this long after its first byte,
    /// 0 = never [default: 30].
    #[arg(long, value_name = "SECS")]
    pub line_timeout_secs: Option<u64>,
    /// Unix socket for the operator, outside every TCP connection limit ("off": none)
    /// [default: <data-dir>/admin.sock; none with --in-memory].
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<String>,
    /// Longest statement line; longer gets `ERR line too long` and a close [default: 1048576].
    #[arg(long, value_name = "N")]
    pub max_line_bytes: Option<usize>,
    /// Largest file COPY reads; a larger one is refused before it is read [default: 67108864].
    #[arg(long, value_name = "N")]
    pub max_copy_bytes: Option<u64>,
    /// error, warn, info or debug [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// The configuration file. Every key is optional.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub bind: Option<String>,
    pub data_dir: Option<String>,
    pub in_memory: Option<bool>,
    pub import_dir: Option<String>,
    /// The database a fresh connection starts in.
    pub default_database: Option<String>,
    pub insecure: Option<bool>,
    pub log_level: Option<String>,
    /// The operator's Unix socket; "off" for none.
    pub admin_socket: Option<String>,
    #[serde(default)]
    pub storage: StorageFile,
    #[serde(default)]
    pub compaction: CompactionFile,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub metrics: MetricsFile,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    pub key_file: Option<String>,
    pub repair: Option<bool>,
    /// Checkpoint once the WAL passes this many bytes.
    pub checkpoint_bytes: Option<u64>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompactionFile {
    /// Compact a lens automatically once it has more runs than this.
    pub threshold: Option<usize>,
    /// Per-database thresholds.
    #[serde(default)]
    pub databases: BTreeMap<String, usize>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub self_signed: Option<bool>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub enabled: Option<bool>,
    pub admin_user: Option<String>,
    pub admin_password: Option<String>,
    /// Name of an environment variable holding the admin password.
    pub admin_password_env: Option<String>,
    pub max_failures: Option<u32>,
    pub failure_refill_secs: Option<u64>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub auth_timeout_secs: Option<u64>,
    pub line_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_line_bytes: Option<usize>,
    pub input_window_bytes: Option<usize>,
    pub output_window_bytes: Option<usize>,
    pub shutdown_timeout_secs: Option<u64>,
    pub max_copy_bytes: Option<u64>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    pub bind: Option<String>,
    /// Per-lens gauges labelled with database and lens names.
    pub lens_labels: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

pub enum Tls {
    Off,
    Files { cert: String, key: String },
    SelfSigned,
}

/// Everything the server runs with, resolved.
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: String,
    pub in_memory: bool,
    pub import_dir: Option<String>,
    pub default_database: Option<String>,
    pub insecure: bool,
    pub log_level: Level,
    pub key_file: Option<String>,
    pub repair: bool,
    pub checkpoint_bytes: u64,
    pub compact_threshold: usize,
    pub compact_thresholds: BTreeMap<String, usize>,
    pub tls: Tls,
    pub auth: bool,
    pub admin: Option<(String, String)>,
    pub max_auth_failures: u32,
    pub failure_refill_secs: u64,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub idle_timeout_secs: u64,
    pub auth_timeout_secs: u64,
    pub line_timeout_secs: u64,
    pub admin_socket: Option<String>,
    pub max_line_bytes: usize,
    pub input_window_bytes: usize,
    pub output_window_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub max_copy_bytes: u64,
    pub metrics_bind: Option<SocketAddr>,
    pub metrics_lens_labels: bool,
}

pub fn parse_file(text: &str) -> Result<File, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn addr(what: &str, s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("bad {what} {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad {what} {s:?}: no address"))
}

fn level(s: &str) -> Result<Level, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" | "trace" => Level::Debug,
        _ => return Err(format!("bad log level {s:?} (error, warn, info or debug)")),
    })
}

/// Defaults < file < flags.
pub fn resolve(flags: Flags, file: File) -> Result<Settings, String> {
    let bind = flags
        .bind
        .or(file.bind)
        .unwrap_or_else(|| "127.0.0.1:7070".into());
    let metrics_bind = flags.metrics_bind.or(file.metrics.bind);
    let metrics_lens_labels =
        flags.metrics_lens_labels || file.metrics.lens_labels.unwrap_or(false);
    let tls = if flags.tls_self_signed {
        Tls::SelfSigned
    } else if let (Some(cert), Some(key)) = (flags.tls_cert, flags.tls_key) {
        Tls::Files { cert, key }
    } else {
        match (file.tls.cert, file.tls.key, file.tls.self_signed) {
            (Some(_), Some(_), Some(true)) => {
                return Err("[tls]: self_signed and cert/key exclude each other".into())
            }
            (_, _, Some(true)) => Tls::SelfSigned,
            (Some(cert), Some(key), _) => Tls::Files { cert, key },
            (None, None, _) => Tls::Off,
            _ => return Err("[tls]: cert and key go together".into()),
        }
    };
    let a = file.auth;
    let password = match (&a.admin_password, &a.admin_password_env) {
        (Some(_), Some(_)) => {
            return Err("[auth]: admin_password and admin_password_env exclude each other".into())
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(var)) => Some(
            std::env::var(var)
                .map_err(|_| format!("[auth]: environment variable {var} is not set"))?,
        ),
        (None, None) => None,
    };
    let admin = match (a.admin_user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => return Err("[auth]: admin_user needs a password, and a password a user".into()),
    };
    let in_memory = flags.in_memory || file.in_memory.unwrap_or(false);
    let data_dir = flags
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| "./tau-data".into());
    let admin_socket = match flags.admin_socket.or(file.admin_socket) {
        Some(p) if p == "off" || p.is_empty() => None,
        Some(p) => Some(p),
        None if in_memory => None,
        None => Some(format!("{}/admin.sock", data_dir.trim_end_matches('/'))),
    };
    let l = file.limits;
    let max_line_bytes = flags.max_line_bytes.or(l.max_line_bytes).unwrap_or(1 << 20);
    if max_line_bytes == 0 {
        return Err("max_line_bytes must be at least 1".into());
    }
    let s = Settings {
        bind: addr("bind address", &bind)?,
        data_dir,
        in_memory,
        import_dir: flags.import_dir.or(file.import_dir),
        default_database: file.default_database,
        insecure: flags.insecure || file.insecure.unwrap_or(false),
        log_level: level(
            flags
                .log_level
                .as_deref()
                .or(file.log_level.as_deref())
                .unwrap_or("info"),
        )?,
        key_file: flags.key_file.or(file.storage.key_file),
        repair: flags.repair || file.storage.repair.unwrap_or(false),
        checkpoint_bytes: file
            .storage
            .checkpoint_bytes
            .unwrap_or(tau_engine::durable::StorageConfig::CHECKPOINT_BYTES),
        compact_threshold: file.compaction.threshold.unwrap_or(32),
        compact_thresholds: file.compaction.databases,
        tls,
        auth: flags.auth || a.enabled.unwrap_or(false),
        admin,
        max_auth_failures: a.max_failures.unwrap_or(5),
        failure_refill_secs: a.failure_refill_secs.unwrap_or(12),
        max_connections: flags.max_connections.or(l.max_connections).unwrap_or(1024),
        max_connections_per_address: flags
            .max_connections_per_address
            .or(l.max_connections_per_address)
            .unwrap_or(256),
        auth_timeout_secs: flags
            .auth_timeout_secs
            .or(l.auth_timeout_secs)
            .unwrap_or(10),
        line_timeout_secs: flags
            .line_timeout_secs
            .or(l.line_timeout_secs)
            .unwrap_or(30),
        admin_socket,
        idle_timeout_secs: flags
            .idle_timeout_secs
            .or(l.idle_timeout_secs)
            .unwrap_or(300),
        max_line_bytes,
        // A whole line must fit in the window, or it could never complete.
        input_window_bytes: l
            .input_window_bytes
            .unwrap_or(256 << 10)
            .max(max_line_bytes.saturating_add(64 << 10)),
        output_window_bytes: l.output_window_bytes.unwrap_or(1 << 20).max(1),
        shutdown_timeout_secs: l.shutdown_timeout_secs.unwrap_or(30),
        max_copy_bytes: flags
            .max_copy_bytes
            .or(l.max_copy_bytes)
            .unwrap_or(tau_io::Limits::COPY_BYTES_MAX),
        metrics_bind: metrics_bind
            .map(|m| addr("metrics address", &m))
            .transpose()?,
        metrics_lens_labels,
    };
    if s.max_connections == 0 {
        return Err("max_connections must be at least 1".into());
    }
    if s.max_connections_per_address == 0 {
        return Err("max_connections_per_address must be at least 1".into());
    }
    if s.max_copy_bytes == 0 {
        return Err("max_copy_bytes must be at least 1".into());
    }
    if s.max_auth_failures == 0 {
        return Err("[auth] max_failures must be at least 1".into());
    }
    if s.admin.is_some() && !s.auth {
        return Err("[auth]: a bootstrap admin is configured but auth is not enabled".into());
    }
    if !s.bind.ip().is_loopback() && !s.auth && !s.insecure {
        return Err(format!(
            "refusing to bind {} with authentication off (enable [auth] or pass --insecure)",
            s.bind
        ));
    }
    Ok(s)
}

/// Flags from the command line, the file they name, resolved.
pub fn load() -> Result<Settings, String> {
    let flags = Flags::parse();
    let file = match &flags.config {
        None => File::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            parse_file(&text).map_err(|e| format!("config {}: {e}", path.display()))?
        }
    };
    resolve(flags, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_resolves() {
        let text = include_str!("../tau.example.toml");
        let file = parse_file(text).unwrap();
        assert_eq!(file.limits.max_connections, Some(1024));
        assert_eq!(file.compaction.databases.get("sensors"), Some(&16));
        std::env::set_var("TAU_ADMIN_PASSWORD", "s3cret");
        let s = resolve(Flags::default(), file).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:7070");
        assert_eq!(s.admin, Some(("admin".into(), "s3cret".into())));
        assert!(s.auth);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse_file("bind = \"127.0.0.1:1\"\nbnid = 3\n").unwrap_err();
        assert!(e.contains("bnid"), "{e}");
        let e = parse_file("[limits]\nmax_conections = 3\n").unwrap_err();
        assert!(e.contains("max_conections"), "{e}");
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse_file(
            "bind = \"127.0.0.1:1000\"\n[limits]\nmax_connections = 5\nidle_timeout_secs = 9\n",
        )
        .unwrap();
        let flags = Flags {
            bind: Some("127.0.0.1:2000".into()),
            max_connections: Some(7),
            ..Flags::default()
        };
        let s = resolve(flags, file).unwrap();
        assert_eq!(s.bind.port(), 2000);
        assert_eq!(s.max_connections, 7);
        assert_eq!(s.idle_timeout_secs, 9);
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let s = resolve(Flags::default(), File::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:7070");
        assert_eq!(s.data_dir, "./tau-data");
        assert!(!s.in_memory && !s.auth);
        assert!(matches!(s.tls, Tls::Off));
        assert_eq!(s.metrics_bind, None);
        assert_eq!(s.admin_socket.as_deref(), Some("./tau-data/admin.sock"));
        assert_eq!(
            (
                s.max_connections_per_address,
                s.auth_timeout_secs,
                s.line_timeout_secs
            ),
            (256, 10, 30)
        );
        let mem = Flags {
            in_memory: true,
            ..Flags::default()
        };
        assert_eq!(resolve(mem, File::default()).unwrap().admin_socket, None);
        let off = Flags {
            admin_socket: Some("off".into()),
            ..Flags::default()
        };
        assert_eq!(resolve(off, File::default()).unwrap().admin_socket, None);
    }

    #[test]
    fn a_public_bind_without_auth_needs_insecure() {
        let flags = || Flags {
            bind: Some("0.0.0.0:7070".into()),
            ..Flags::default()
        };
        assert!(resolve(flags(), File::default()).is_err());
        let ok = Flags {
            insecure: true,
            ..flags()
        };
        assert!(resolve(ok, File::default()).is_ok());
        let authed = Flags {
            auth: true,
            ..flags()
        };
        assert!(resolve(authed, File::default()).is_ok());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Flags::command().debug_assert();
    }
}
