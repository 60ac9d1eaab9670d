//! Plain counters the engine keeps as it runs, for the server's `/metrics`, and a few
//! read-only views of its state (is the store taking writes, is it quiet, how many
//! layers each lens holds). No clocks: latency is measured by the driver, which has one.

use crate::ast::Statement;
use crate::catalog::Lens;
use crate::engine::{ConnId, Engine};

/// Statement kinds, as `/metrics` labels them. `parse_error` is a line that did not parse.
pub const KINDS: [&str; 29] = [
    "create_database",
    "drop_database",
    "use_database",
    "show_databases",
    "create_lens",
    "drop_lens",
    "show_lenses",
    "derive",
    "append",
    "batch_append",
    "copy",
    "at",
    "range",
    "reduce",
    "history",
    "compact",
    "start_transaction",
    "commit",
    "rollback",
    "create_user",
    "drop_user",
    "show_users",
    "grant",
    "revoke",
    "show_grants",
    "show_status",
    "auth",
    "quit",
    "parse_error",
];

/// Index into [`KINDS`] of a parsed statement.
pub fn kind(st: &Statement) -> usize {
    use Statement as S;
    match st {
        S::CreateDatabase(_) => 0,
        S::DropDatabase(_) => 1,
        S::UseDatabase(_) => 2,
        S::ShowDatabases => 3,
        S::CreateLens { .. } => 4,
        S::DropLens(_) => 5,
        S::ShowLenses => 6,
        S::Derive { .. } => 7,
        S::Append { batch: false, .. } => 8,
        S::Append { batch: true, .. } => 9,
        S::Copy { .. } => 10,
        S::At { .. } => 11,
        S::Range { .. } => 12,
        S::Reduce { .. } => 13,
        S::History { .. } => 14,
        S::Compact(_) => 15,
        S::StartTransaction => 16,
        S::Commit => 17,
        S::Rollback => 18,
        S::CreateUser { .. } => 19,
        S::DropUser(_) => 20,
        S::ShowUsers => 21,
        S::Grant { .. } => 22,
        S::Revoke { .. } => 23,
        S::ShowGrants(_) => 24,
        S::ShowStatus => 25,
        S::Auth { .. } => 26,
        S::Quit => 27,
    }
}

pub const PARSE_ERROR: usize = 28;

/// Monotonic counters since the engine was built.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Statements executed, by [`KINDS`] index.
    pub statements: [u64; KINDS.len()],
    /// Reply lines that were `ERR ...`.
    pub errors: u64,
    /// AUTH attempts that failed (wrong user or password).
    pub auth_failures: u64,
    /// Compactions installed (automatic and `COMPACT LENS`).
    pub compactions: u64,
    /// Connections that ended with part of a line (no `\n`) received: dropped unexecuted.
    pub partial_lines_discarded: u64,
}

/// A lens's shape, for the layers-per-lens gauge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LensLayers {
    pub db: String,
    pub lens: String,
    /// Committed layers (what HISTORY lists).
    pub layers: u64,
    /// Runs a current-time read walks (compacted runs plus raw layers).
    pub runs: u64,
}

/// The storage side, for `/metrics` and `/healthz`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub durable: bool,
    /// WAL records written since start.
    pub wal_records: u64,
    /// WAL fsyncs completed since start.
    pub wal_syncs: u64,
    /// Bytes in the current WAL generation.
    pub wal_len: u64,
    /// `None` while writes are accepted; why not otherwise.
    pub not_accepting: Option<String>,
}

impl Engine {
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Input the engine holds for `id` and has not executed yet (queued lines plus a
    /// partial line): what a driver's backpressure counts as not yet consumed.
    pub fn input_backlog(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| c.backlog())
    }

    pub fn store_stats(&self) -> StoreStats {
        use crate::durable::Phase;
        let Some(d) = &self.durable else {
            return StoreStats::default();
        };
        let not_accepting = match &d.phase {
            Phase::Ready => None,
            Phase::Recovering => Some("recovering".to_string()),
            Phase::Failed(why) => Some(why.clone()),
            Phase::Full(why) => Some(format!("disk full ({why})")),
            Phase::Fatal(why) => Some(why.clone()),
        };
        StoreStats {
            durable: true,
            wal_records: d.records,
            wal_syncs: d.syncs,
            wal_len: d.wal_len,
            not_accepting,
        }
    }

    /// Nothing in flight that a clean stop would cut short: no commit waiting for its
    /// sync, no storage op outstanding (a checkpoint, a removal), no checkpoint due.
    /// Compaction jobs may still run: their result lives only in memory.
    pub fn quiescent(&self) -> bool {
        self.durable
            .as_ref()
            .is_none_or(|d| d.inflight_is_empty() && d.waits.is_empty() && !d.rotating)
    }

    /// Layers and runs of every base lens, sorted by database and lens.
    pub fn lens_layers(&self) -> Vec<LensLayers> {
        let mut out = Vec::new();
        for (db, d) in &self.state.dbs {
            for (name, l) in &d.lenses {
                if let Lens::Base(b) = l {
                    out.push(LensLayers {
                        db: db.clone(),
                        lens: name.clone(),
                        layers: b.history.len() as u64,
                        runs: b.runs.len() as u64,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::driver::SyncDriver;
    use crate::Config;

    #[test]
    fn counts_statements_errors_and_layers() {
        let mut d = SyncDriver::new(Config::default());
        d.open(1);
        let mut errs = 0;
        for stmt in [
            "CREATE DATABASE d",
            "USE DATABASE d",
            "CREATE LENS x int",
            "APPEND LENS x 0 1 1",
            "AT LENS x 0",
            "AT LENS x 0",
            "APPEND LENS x 1 0 1",
            "nonsense",
        ] {
            errs += usize::from(d.line(1, stmt).starts_with("ERR"));
        }
        assert_eq!(errs, 2);
        let e = &d.engine;
        let s = e.stats();
        let at = super::KINDS.iter().position(|k| *k == "at").unwrap();
        let append = super::KINDS.iter().position(|k| *k == "append").unwrap();
        assert_eq!(s.statements[at], 2);
        assert_eq!(s.statements[append], 2);
        assert_eq!(s.statements[super::PARSE_ERROR], 1);
        assert_eq!(s.errors, 2);
        let layers = e.lens_layers();
        assert_eq!(layers.len(), 1);
        assert_eq!((layers[0].layers, layers[0].lens.as_str()), (1, "x"));
        assert!(e.quiescent());
        assert_eq!(e.store_stats().not_accepting, None);
    }

    #[test]
    fn drain_answers_complete_lines_and_drops_a_partial_one() {
        let mut d = SyncDriver::new(Config::default());
        d.open(1);
        d.send(1, b"CREATE DATABASE d\nCREATE DATABASE e\nCREATE DATA");
        d.run(crate::Event::Drain(1));
        assert_eq!(d.take_lines(1), ["OK", "OK"]);
        assert!(d.is_closed(1));
        assert_eq!(d.engine.state().dbs.len(), 2);
    }

    #[test]
    fn a_connection_is_held_after_a_reply_burst_until_resumed() {
        let mut d = SyncDriver::new(Config {
            reply_burst_bytes: 10,
            ..Config::default()
        });
        d.open(1);
        d.send(
            1,
            b"SHOW DATABASES\nSHOW DATABASES\nSHOW DATABASES\nSHOW DATABASES\n",
        );
        // "NAMES 0\n" is 8 bytes: two replies reach the burst, the rest wait.
        assert_eq!(d.take_lines(1), ["NAMES 0", "NAMES 0"]);
        d.run(crate::Event::Resume(1));
        assert_eq!(d.take_lines(1), ["NAMES 0", "NAMES 0"]);
        d.run(crate::Event::Resume(1));
        assert!(d.take_lines(1).is_empty());
        // Ended input is answered in full.
        d.send(1, b"SHOW DATABASES\nSHOW DATABASES\nSHOW DATABASES\n");
        d.eof(1);
        assert_eq!(d.take_lines(1).len(), 3);
        assert!(d.is_closed(1));
    }
}
