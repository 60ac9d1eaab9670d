//! Recovery as a pure function: WAL bytes in, the recovered state (or a refusal) out.
//!
//! The engine will read the file through an effect and call this; what to do with the
//! file afterwards (truncate a torn tail) comes back as data. The rules (DESIGN.md):
//! - a torn or short last record was never acknowledged: truncate it, and say so;
//! - anything else that is wrong refuses to start, naming the file and the offset. That
//!   covers corruption followed by intact records, a checksum-valid record that fails to
//!   decrypt (wrong key), decode or apply, a bad header and an unknown version;
//! - `repair` mode keeps the intact prefix before the damage and says exactly how many
//!   bytes from which offset are discarded.

use crate::catalog::State;
use crate::codec::decode;
use crate::wal::{Reader, Tail, WalKey};

#[derive(Debug)]
pub struct Recovered {
    pub state: State,
    /// Commit units replayed.
    pub units: usize,
    /// Intervals replayed (for the recovery-speed figure).
    pub intervals: usize,
    /// Truncate the file to this length before appending again (a torn tail or, with
    /// repair, the damage), if it is shorter than the file.
    pub valid_len: usize,
    /// The log's format version: new records are appended in it.
    pub version: u32,
    /// The sequence number of the next record appended to this log.
    pub next_seq: u64,
    /// What recovery did, for the log.
    pub messages: Vec<String>,
}

/// Replay `file` (the WAL at `path`) into a fresh state.
pub fn recover(
    file: &[u8],
    path: &str,
    key: Option<&WalKey>,
    repair: bool,
) -> Result<Recovered, String> {
    recover_onto(State::default(), file, path, key, repair)
}

/// Replay `file` on top of `base` (the state a checkpoint's layer files rebuilt).
///
/// Streams: each record is decoded and applied before the next is read, so peak memory is
/// the state plus the file plus one decoded record, however many records the log holds.
/// Damage found part-way stops recovery (or, with `repair`, ends the replay there).
pub fn recover_onto(
    base: State,
    file: &[u8],
    path: &str,
    key: Option<&WalKey>,
    repair: bool,
) -> Result<Recovered, String> {
    let mut reader = Reader::open(file, key)
        .map_err(|e| format!("{path}: {e}; refusing to start (see --repair)"))?;
    let mut messages = Vec::new();
    let mut state = base;
    let (mut units, mut intervals) = (0usize, 0usize);
    let mut last_seq = None;
    let valid_len = loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break reader.valid_len(),
            Err(e) if repair && e.offset >= crate::wal::header_len(reader.version()) => {
                // Keep the intact prefix before the damage; everything from it is discarded.
                messages.push(format!(
                    "repair: {path}: {e}; discarding {} bytes from offset {} (every record from there on is lost)",
                    file.len() - e.offset,
                    e.offset
                ));
                break e.offset;
            }
            Err(e) => return Err(format!("{path}: {e}; refusing to start (see --repair)")),
        };
        if let Some(prev) = last_seq {
            assert_eq!(rec.seq, prev + 1, "the reader checks the sequence");
        }
        last_seq = Some(rec.seq);
        let offset = rec.offset;
        let unit = decode(&rec.plain).map_err(|e| {
            format!("{path}: undecodable record at offset {offset}: {e}; refusing to start")
        })?;
        drop(rec);
        intervals += unit
            .ops
            .iter()
            .map(|op| match op {
                crate::catalog::Op::Append { segs, .. } => segs.len(),
                _ => 0,
            })
            .sum::<usize>();
        // A logged commit applied once already; if it no longer does, the log is not
        // the history of this store.
        state.commit(unit.ops, unit.written_at).map_err(|e| {
            format!("{path}: record at offset {offset} does not apply ({e}); refusing to start")
        })?;
        units += 1;
    };
    if let Some(Tail::Torn { offset, bytes }) = reader.tail() {
        messages.push(format!(
            "recovery: {path}: truncating a torn record at offset {offset} ({bytes} bytes, never acknowledged)"
        ));
    }
    assert!(valid_len <= file.len());
    Ok(Recovered {
        state,
        units,
        intervals,
        valid_len,
        version: reader.version(),
        next_seq: last_seq.map_or(reader.next_seq(), |s| s + 1),
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Op;
    use crate::codec::{encode, CommitUnit};
    use crate::layer::Segs;
    use crate::value::{Type, Value};
    use crate::wal::{encode_record, header};
    use std::sync::Arc;

    fn units() -> Vec<CommitUnit> {
        let append = |v: i64| Op::Append {
            db: "db".into(),
            lens: "x".into(),
            ty: Type::Int,
            segs: Arc::new(Segs::from_sorted_rows(vec![(0, 10, Value::Int(v))])),
        };
        vec![
            CommitUnit {
                written_at: 1,
                ops: vec![Op::CreateDatabase("db".into())],
            },
            CommitUnit {
                written_at: 2,
                ops: vec![Op::CreateLens {
                    db: "db".into(),
                    name: "x".into(),
                    ty: Type::Int,
                }],
            },
            CommitUnit {
                written_at: 3,
                ops: vec![append(1)],
            },
            CommitUnit {
                written_at: 4,
                ops: vec![append(2), append(3)],
            },
        ]
    }

    fn wal(us: &[CommitUnit]) -> (Vec<u8>, Vec<usize>) {
        let mut f = header(false, 1).to_vec();
        let mut starts = vec![];
        for (i, u) in us.iter().enumerate() {
            starts.push(f.len());
            f.extend(encode_record(&encode(u), None, [0; 12], i as u64 + 1));
        }
        (f, starts)
    }

    fn layers(r: &Recovered) -> usize {
        match r.state.db("db").unwrap().lenses.get("x") {
            Some(crate::catalog::Lens::Base(b)) => b.history.len(),
            _ => 0,
        }
    }

    #[test]
    fn replays_every_unit_with_the_same_layer_ids() {
        let (f, _) = wal(&units());
        let r = recover(&f, "wal", None, false).unwrap();
        assert_eq!((r.units, r.intervals, layers(&r)), (4, 3, 3));
        let db = r.state.db("db").unwrap();
        assert_eq!(db.next_layer_id, 4);
        assert_eq!(r.state.written_at, 4);
        assert!(r.messages.is_empty());
        assert_eq!(r.valid_len, f.len());
    }

    #[test]
    fn a_torn_tail_is_truncated_and_reported() {
        let (f, starts) = wal(&units());
        let cut = f.len() - 3;
        let r = recover(&f[..cut], "data/wal", None, false).unwrap();
        assert_eq!(r.units, 3);
        assert_eq!(r.valid_len, starts[3]);
        assert!(
            r.messages[0].contains("truncating a torn record at offset"),
            "{:?}",
            r.messages
        );
    }

    #[test]
    fn corruption_refuses_and_repair_keeps_the_prefix() {
        let (mut f, starts) = wal(&units());
        f[starts[2] + 12] ^= 1;
        let e = recover(&f, "data/wal", None, false).unwrap_err();
        assert!(e.starts_with("data/wal: corrupt record"), "{e}");
        assert!(e.contains(&format!("at offset {}", starts[2])), "{e}");
        let r = recover(&f, "data/wal", None, true).unwrap();
        assert_eq!(r.units, 2);
        assert_eq!(r.valid_len, starts[2]);
        assert!(
            r.messages[0].starts_with("repair: data/wal:"),
            "{:?}",
            r.messages
        );
    }

    #[test]
    fn a_record_that_does_not_apply_refuses() {
        // Appending to a lens that was never created: intact bytes, impossible history.
        let mut us = units();
        us.remove(1);
        let (f, starts) = wal(&us);
        let e = recover(&f, "wal", None, false).unwrap_err();
        assert!(
            e.contains(&format!("record at offset {} does not apply", starts[1])),
            "{e}"
        );
    }
}
