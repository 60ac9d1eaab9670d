//! Prometheus metrics (prometheus-client, OpenMetrics text), all prefixed `tau_`.
//! Server-side counters and histograms live here; the engine's own counters are read
//! from an engine [`Snapshot`] taken at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, Mutex};
use tau_io::Snapshot;

pub struct Metrics {
    pub registry: Registry,
    pub connections_active: Gauge,
    pub connections_total: Counter,
    pub connections_rejected: Counter,
    pub idle_closed: Counter,
    pub deadline_closed: Counter,
    pub auth_throttled: Counter,
    pub tls_handshake_failures: Counter,
    pub latency: Histogram,
    pub wal_bytes: Counter,
    pub wal_syncs: Counter,
    pub group_commit: Histogram,
    /// The engine's state as of the latest scrape.
    pub snapshot: Arc<Mutex<Option<Snapshot>>>,
}

impl Metrics {
    /// `lens_labels`: also export per-lens gauges labelled with database and lens names.
    /// Off by default, since `/metrics` is unauthenticated and names are data.
    pub fn new(lens_labels: bool) -> Metrics {
        let mut r = Registry::with_prefix("tau");
        let connections_active = Gauge::default();
        let connections_total = Counter::default();
        let connections_rejected = Counter::default();
        let idle_closed = Counter::default();
        let deadline_closed = Counter::default();
        let auth_throttled = Counter::default();
        let tls_handshake_failures = Counter::default();
        // 10 µs .. ~42 s.
        let latency = Histogram::new(exponential_buckets(1e-5, 4.0, 12));
        let wal_bytes = Counter::default();
        let wal_syncs = Counter::default();
        let group_commit = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        r.register(
            "connections_active",
            "Connections open now",
            connections_active.clone(),
        );
        r.register(
            "connections",
            "Connections accepted",
            connections_total.clone(),
        );
        r.register(
            "connections_rejected",
            "Connections turned away at the connection limit",
            connections_rejected.clone(),
        );
        r.register(
            "connections_idle_closed",
            "Connections closed for idleness or for not reading replies",
            idle_closed.clone(),
        );
        r.register(
            "connections_deadline_closed",
            "Connections closed for not finishing a line, or their AUTH line, in time",
            deadline_closed.clone(),
        );
        r.register(
            "auth_throttled",
            "Connections turned away because their address failed AUTH too often",
            auth_throttled.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        r.register_with_unit(
            "statement_latency",
            "From a statement line arriving to its reply being written to the socket",
            Unit::Seconds,
            latency.clone(),
        );
        r.register_with_unit(
            "wal",
            "Bytes appended to the write-ahead log",
            Unit::Bytes,
            wal_bytes.clone(),
        );
        r.register(
            "wal_syncs",
            "fsyncs of the write-ahead log issued",
            wal_syncs.clone(),
        );
        r.register(
            "group_commit_batch_size",
            "Commits covered by one write-ahead-log fsync",
            group_commit.clone(),
        );
        let snapshot = Arc::new(Mutex::new(None));
        r.register_collector(Box::new(EngineCollector {
            snapshot: snapshot.clone(),
            lens_labels,
        }));
        Metrics {
            registry: r,
            connections_active,
            connections_total,
            connections_rejected,
            idle_closed,
            deadline_closed,
            auth_throttled,
            tls_handshake_failures,
            latency,
            wal_bytes,
            wal_syncs,
            group_commit,
            snapshot,
        }
    }

    /// OpenMetrics text of everything, with the engine as of `snap`.
    pub fn render(&self, snap: Snapshot) -> String {
        *self.snapshot.lock().expect("snapshot lock") = Some(snap);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(false)
    }
}

#[derive(Debug)]
struct EngineCollector {
    snapshot: Arc<Mutex<Option<Snapshot>>>,
    lens_labels: bool,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

impl Collector for EngineCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(s) = self.snapshot.lock().expect("snapshot lock").clone() else {
            return Ok(());
        };
        {
            let mut m = e.encode_descriptor(
                "statements",
                "Statements executed, by kind (parse_error: lines that did not parse)",
                None,
                MetricType::Counter,
            )?;
            for (i, kind) in tau_engine::stats::KINDS.iter().enumerate() {
                let labels = [("kind", *kind)];
                let f = m.encode_family(&labels)?;
                ConstCounter::new(s.stats.statements[i]).encode(f)?;
            }
        }
        counter(&mut e, "errors", "Replies that were ERR", s.stats.errors)?;
        counter(
            &mut e,
            "auth_failures",
            "AUTH attempts that failed",
            s.stats.auth_failures,
        )?;
        counter(
            &mut e,
            "compactions",
            "Compactions installed",
            s.stats.compactions,
        )?;
        counter(
            &mut e,
            "partial_lines_discarded",
            "Connections that ended inside a line: the bytes after the last newline were dropped, never executed",
            s.stats.partial_lines_discarded,
        )?;
        counter(
            &mut e,
            "wal_records",
            "Commit records appended to the write-ahead log",
            s.store.wal_records,
        )?;
        counter(
            &mut e,
            "wal_syncs_completed",
            "Write-ahead-log fsyncs completed",
            s.store.wal_syncs,
        )?;
        let gauge = |e: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
            let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)
        };
        gauge(
            &mut e,
            "accepting_writes",
            "1 while the store accepts writes, 0 once it stopped (storage failure, recovery)",
            i64::from(s.store.not_accepting.is_none()),
        )?;
        gauge(
            &mut e,
            "engine_connections",
            "Connections the engine holds state for",
            s.connections as i64,
        )?;
        gauge(
            &mut e,
            "wal_generation_bytes",
            "Size of the current write-ahead-log generation",
            s.store.wal_len as i64,
        )?;
        // Totals carry no names, so they are always exported.
        gauge(
            &mut e,
            "base_lenses",
            "Base lenses in all databases",
            s.lenses.len() as i64,
        )?;
        gauge(
            &mut e,
            "layers",
            "Committed layers over all base lenses",
            s.lenses.iter().map(|l| l.layers as i64).sum(),
        )?;
        gauge(
            &mut e,
            "lens_runs_max",
            "The most runs a current-time read of one lens walks (compaction lowers it)",
            s.lenses.iter().map(|l| l.runs as i64).max().unwrap_or(0),
        )?;
        if !self.lens_labels {
            return Ok(());
        }
        for (name, help, runs) in [
            ("lens_layers", "Committed layers per base lens", false),
            (
                "lens_runs",
                "Runs a current-time read walks per base lens (compaction lowers it)",
                true,
            ),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for l in &s.lenses {
                let labels = [("db", l.db.as_str()), ("lens", l.lens.as_str())];
                let f = m.encode_family(&labels)?;
                let v = if runs { l.runs } else { l.layers };
                ConstGauge::new(v as i64).encode(f)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_with_lens_labels() {
        for labels in [false, true] {
            let m = Metrics::new(labels);
            let mut snap = Snapshot::default();
            for (lens, layers, runs) in [("secret", 4, 2), ("other", 3, 5)] {
                snap.lenses.push(tau_engine::stats::LensLayers {
                    db: "hidden".into(),
                    lens: lens.into(),
                    layers,
                    runs,
                });
            }
            let text = m.render(snap);
            for want in ["tau_base_lenses 2", "tau_layers 7", "tau_lens_runs_max 5"] {
                assert!(text.contains(want), "missing {want} in\n{text}");
            }
            for name in ["hidden", "secret", "other"] {
                assert_eq!(text.contains(name), labels, "{name} in\n{text}");
            }
        }
    }

    #[test]
    fn renders_every_family_with_the_prefix() {
        let m = Metrics::new(true);
        m.latency.observe(0.001);
        m.group_commit.observe(3.0);
        m.wal_bytes.inc_by(100);
        let mut snap = Snapshot::default();
        snap.stats.statements[11] = 7;
        snap.lenses.push(tau_engine::stats::LensLayers {
            db: "d".into(),
            lens: "x".into(),
            layers: 4,
            runs: 2,
        });
        let text = m.render(snap);
        for want in [
            "tau_statements_total{kind=\"at\"} 7",
            "tau_errors_total 0",
            "tau_connections_active 0",
            "tau_connections_total 0",
            "tau_connections_rejected_total 0",
            "tau_auth_failures_total 0",
            "tau_statement_latency_seconds_bucket",
            "tau_wal_bytes_total 100",
            "tau_wal_syncs_total 0",
            "tau_group_commit_batch_size_count 1",
            "tau_compactions_total 0",
            "tau_lens_layers{db=\"d\",lens=\"x\"} 4",
            "tau_lens_runs{db=\"d\",lens=\"x\"} 2",
            "tau_accepting_writes 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
