//! The same model in SQL: one row per interval, tagged with its layer and the layer's
//! `written_at`; newest layer wins. Every query is written out here, once per system.

use postgres::{Client as Pg, NoTls};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------- PostgreSQL

pub const PG_SCHEMA: &str = "
CREATE TABLE iv (id bigserial PRIMARY KEY, layer bigint NOT NULL, written_at bigint NOT NULL,
                 s bigint NOT NULL, e bigint NOT NULL, v double precision);
CREATE INDEX iv_span ON iv USING gist (int8range(s, e));
CREATE TABLE single (id bigserial PRIMARY KEY, layer bigint NOT NULL, written_at bigint NOT NULL,
                     s bigint NOT NULL, e bigint NOT NULL, v double precision);";

/// The newest value at $1 (optionally AS OF $2).
pub const PG_POINT: &str = "SELECT v FROM iv WHERE int8range(s, e) @> $1::int8
  ORDER BY layer DESC LIMIT 1";
pub const PG_POINT_AS_OF: &str = "SELECT v FROM iv WHERE int8range(s, e) @> $1::int8
  AND written_at <= $2 ORDER BY layer DESC LIMIT 1";

/// Visible pieces over [$1, $2): cut the window at every boundary of every interval that
/// overlaps it, find the newest interval over each elementary segment (an index probe),
/// then glue consecutive segments won by the same interval back together.
pub const PG_RANGE: &str = "
WITH c AS MATERIALIZED (SELECT s, e FROM iv WHERE int8range(s, e) && int8range($1, $2)),
b AS (SELECT DISTINCT t FROM (SELECT greatest(s, $1) AS t FROM c
                              UNION ALL SELECT least(e, $2) FROM c) x),
seg AS (SELECT t AS ps, lead(t) OVER (ORDER BY t) AS pe FROM b),
win AS (SELECT seg.ps, seg.pe, w.id, w.v FROM seg CROSS JOIN LATERAL
          (SELECT id, v FROM iv WHERE int8range(s, e) @> seg.ps ORDER BY layer DESC LIMIT 1) w
        WHERE seg.pe IS NOT NULL),
isl AS (SELECT ps, pe, id, v, row_number() OVER (ORDER BY ps)
                              - row_number() OVER (PARTITION BY id ORDER BY ps) AS g FROM win)
SELECT min(ps), max(pe), min(v) FROM isl GROUP BY id, g ORDER BY 1";

/// Time-weighted average of the visible pieces over [$1, $2).
pub const PG_TWAVG: &str = "
WITH c AS MATERIALIZED (SELECT s, e FROM iv WHERE int8range(s, e) && int8range($1, $2)),
b AS (SELECT DISTINCT t FROM (SELECT greatest(s, $1) AS t FROM c
                              UNION ALL SELECT least(e, $2) FROM c) x),
seg AS (SELECT t AS ps, lead(t) OVER (ORDER BY t) AS pe FROM b),
win AS (SELECT seg.ps, seg.pe, w.v FROM seg CROSS JOIN LATERAL
          (SELECT v FROM iv WHERE int8range(s, e) @> seg.ps ORDER BY layer DESC LIMIT 1) w
        WHERE seg.pe IS NOT NULL)
SELECT sum(v * (pe - ps)) / sum((pe - ps)::float8) FROM win";

/// A throwaway cluster on loopback, started and stopped by the harness. Durability as
/// shipped (fsync, synchronous_commit, full_page_writes on). JIT is off: with it, every
/// RANGE and twavg query paid ~240 ms of JIT compilation (the lateral join's estimated
/// cost crosses jit_above_cost) for a query that runs in ~3 ms, which is the first thing
/// anyone tuning this workload would switch off.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
}

fn as_postgres(cmd: &str, args: &[&str]) -> Command {
    // initdb and postgres refuse to run as root: use the package's postgres user then.
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", cmd]).args(args);
        c
    } else {
        let mut c = Command::new(cmd);
        c.args(args);
        c
    }
}

impl PgCluster {
    pub fn start(bin: &Path, dir: &Path, port: u16) -> Result<PgCluster, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let d = dir.display().to_string();
        let _ = Command::new("chown")
            .args(["postgres:postgres", &d])
            .status();
        let initdb = bin.join("initdb").display().to_string();
        let out = as_postgres(&initdb, &["-D", &d, "-A", "trust", "-U", "postgres"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c full_page_writes=on -c shared_buffers=256MB -c max_connections=100 -c jit=off"
        );
        let pg_ctl = bin.join("pg_ctl").display().to_string();
        let log = format!("{d}/log");
        let out = as_postgres(&pg_ctl, &["-D", &d, "-o", &opts, "-l", &log, "-w", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start: {}{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(PgCluster {
            dir: dir.to_path_buf(),
            port,
        })
    }

    pub fn connect(&self) -> Result<Pg, String> {
        Pg::connect(
            &format!("host=127.0.0.1 port={} user=postgres", self.port),
            NoTls,
        )
        .map_err(|e| format!("connect to PostgreSQL: {e}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let d = self.dir.display().to_string();
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let pg_ctl = format!("{bin}/pg_ctl");
        let _ = as_postgres(&pg_ctl, &["-D", &d, "-m", "fast", "-w", "stop"]).output();
    }
}

pub fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}

// ---------------------------------------------------------------- SQLite

pub const LITE_SCHEMA: &str = "
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE iv (id INTEGER PRIMARY KEY, layer INTEGER NOT NULL, written_at INTEGER NOT NULL,
                 s INTEGER NOT NULL, e INTEGER NOT NULL, v REAL);
CREATE VIRTUAL TABLE iv_span USING rtree_i32(id, lo, hi);  -- [s, e) stored as [s, e - 1]
CREATE TABLE single (id INTEGER PRIMARY KEY, layer INTEGER NOT NULL, written_at INTEGER NOT NULL,
                     s INTEGER NOT NULL, e INTEGER NOT NULL, v REAL);";

pub const LITE_INSERT: &str =
    "INSERT INTO iv (layer, written_at, s, e, v) VALUES (?1, ?2, ?3, ?4, ?5)";
pub const LITE_INSERT_SPAN: &str =
    "INSERT INTO iv_span (id, lo, hi) VALUES (last_insert_rowid(), ?1, ?2)";

pub const LITE_POINT: &str = "SELECT v FROM iv WHERE id IN
  (SELECT id FROM iv_span WHERE lo <= ?1 AND hi >= ?1) ORDER BY layer DESC LIMIT 1";
pub const LITE_POINT_AS_OF: &str = "SELECT v FROM iv WHERE id IN
  (SELECT id FROM iv_span WHERE lo <= ?1 AND hi >= ?1) AND written_at <= ?2
  ORDER BY layer DESC LIMIT 1";

/// As PG_RANGE; SQLite has no LATERAL, so the newest interval per segment is a
/// correlated subquery.
pub const LITE_RANGE: &str = "
WITH c AS MATERIALIZED (SELECT iv.s, iv.e FROM iv_span JOIN iv USING (id)
                        WHERE iv_span.lo < ?2 AND iv_span.hi >= ?1),
b AS (SELECT DISTINCT t FROM (SELECT max(s, ?1) AS t FROM c UNION ALL SELECT min(e, ?2) FROM c)),
seg AS (SELECT t AS ps, lead(t) OVER (ORDER BY t) AS pe FROM b),
win AS (SELECT ps, pe, (SELECT id FROM iv WHERE id IN
          (SELECT id FROM iv_span WHERE lo <= seg.ps AND hi >= seg.ps)
          ORDER BY layer DESC LIMIT 1) AS wid FROM seg WHERE pe IS NOT NULL),
isl AS (SELECT ps, pe, wid, row_number() OVER (ORDER BY ps)
                            - row_number() OVER (PARTITION BY wid ORDER BY ps) AS g
        FROM win WHERE wid IS NOT NULL)
SELECT min(ps), max(pe), (SELECT v FROM iv WHERE id = wid) FROM isl GROUP BY wid, g ORDER BY 1";

pub const LITE_TWAVG: &str = "
WITH c AS MATERIALIZED (SELECT iv.s, iv.e FROM iv_span JOIN iv USING (id)
                        WHERE iv_span.lo < ?2 AND iv_span.hi >= ?1),
b AS (SELECT DISTINCT t FROM (SELECT max(s, ?1) AS t FROM c UNION ALL SELECT min(e, ?2) FROM c)),
seg AS (SELECT t AS ps, lead(t) OVER (ORDER BY t) AS pe FROM b),
win AS (SELECT ps, pe, (SELECT v FROM iv WHERE id IN
          (SELECT id FROM iv_span WHERE lo <= seg.ps AND hi >= seg.ps)
          ORDER BY layer DESC LIMIT 1) AS v FROM seg WHERE pe IS NOT NULL)
SELECT sum(v * (pe - ps)) / sum(pe - ps) FROM win WHERE v IS NOT NULL";

pub fn lite_open(path: &Path) -> Result<Connection, String> {
    let c = Connection::open(path).map_err(e)?;
    c.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(e)?;
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .map_err(e)?;
    Ok(c)
}
