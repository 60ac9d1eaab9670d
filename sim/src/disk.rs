//! The simulated disk: POSIX durability, modelled closely enough to lose everything a
//! real disk may lose, and nothing it may not.
//!
//! Two images per file: `live` (the page cache, what reads see) and `durable` (what is
//! on the platter and survives a crash). The engine's storage contract
//! (`tau_engine::durable::StorageOp`) says which ops are durable when they complete:
//! `Create` (temp file, fsync, rename, directory fsync), `Remove` (directory fsync),
//! `Truncate` (fsync) and `Sync` (fsync of everything appended before it). `Append` only
//! reaches the page cache.
//!
//! At a crash, each file keeps its durable image plus some of its unsynced tail, chosen
//! at sector granularity: nothing, all of it, a whole-sector prefix, or a prefix whose
//! last sector is torn (cut short, zero-filled, or garbage). Bytes already synced are
//! never disturbed by a tear (sector writes are atomic); damage to synced data is bit
//! rot, a separate fault. Unsynced sectors are assumed to persist in order (a prefix):
//! see docs/TESTING.md for why, and what that leaves out.
//!
//! A crash can also land inside an op: an append partly in the cache, a create that
//! left only its synced temp file (or finished), a remove/truncate/sync that did or did
//! not happen.
//!
//! Injected faults: failing fsyncs (`EIO`; the data may or may not reach the platter —
//! fsyncgate), a full disk (`ENOSPC`, half an append written), read errors (`EIO`), and
//! bit flips in durable data. Every fault is an operation of the case with its own
//! `pick`, so deleting one while shrinking does not reshuffle the others.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tau_engine::durable::{StorageOp, StorageOut};

pub const SECTOR: usize = 512;
pub const EIO: &str = "Input/output error (os error 5)";
pub const ENOSPC: &str = "No space left on device (os error 28)";

/// One bit flipped in a durable file, remembered so that "the operator restores the
/// file from a replica" can undo it after recovery reported it.
#[derive(Clone, Debug)]
pub struct Rot {
    pub path: String,
    pub offset: usize,
    pub bit: u8,
}

#[derive(Default)]
pub struct Disk {
    live: BTreeMap<String, Vec<u8>>,
    durable: BTreeMap<String, Vec<u8>>,
    /// Appends and creates fail with ENOSPC.
    pub full: bool,
    /// The next this-many fsyncs fail.
    pub fail_syncs: u32,
    /// The next this-many reads fail.
    pub fail_reads: u32,
    /// Bit flips not yet repaired.
    pub rot: Vec<Rot>,
    /// Counters for the summary.
    pub injected_errors: u64,
    pub torn_files: u64,
}

impl Disk {
    /// Run one op to completion.
    pub fn exec(&mut self, op: StorageOp) -> Result<StorageOut, String> {
        Ok(match op {
            StorageOp::CreateDir { .. } => StorageOut::Done,
            StorageOp::ReadAll { path } => {
                if self.fail_reads > 0 {
                    self.fail_reads -= 1;
                    self.injected_errors += 1;
                    return Err(EIO.into());
                }
                self.live
                    .get(&path)
                    .cloned()
                    .map_or(StorageOut::NotFound, StorageOut::Bytes)
            }
            StorageOp::Create { path, bytes } => {
                if self.full {
                    self.injected_errors += 1;
                    return Err(ENOSPC.into());
                }
                self.rot.retain(|r| r.path != path);
                self.live.insert(path.clone(), bytes.clone());
                self.durable.insert(path, bytes);
                StorageOut::Done
            }
            StorageOp::Append { path, bytes } => {
                let Some(f) = self.live.get_mut(&path) else {
                    return Err("No such file or directory (os error 2)".into());
                };
                if self.full {
                    // A short write, then ENOSPC: the half that made it is in the cache.
                    f.extend_from_slice(&bytes[..bytes.len() / 2]);
                    self.injected_errors += 1;
                    return Err(ENOSPC.into());
                }
                f.extend_from_slice(&bytes);
                StorageOut::Done
            }
            StorageOp::Sync { path } => {
                if self.fail_syncs > 0 {
                    self.fail_syncs -= 1;
                    self.injected_errors += 1;
                    // fsyncgate: the error is reported once and the dirty data's fate is
                    // unknown; it stays in the cache and may or may not reach the platter.
                    return Err(EIO.into());
                }
                match self.live.get(&path) {
                    Some(f) => {
                        self.durable.insert(path, f.clone());
                    }
                    None => return Err("No such file or directory (os error 2)".into()),
                }
                StorageOut::Done
            }
            StorageOp::Truncate { path, len } => {
                let Some(f) = self.live.get_mut(&path) else {
                    return Err("No such file or directory (os error 2)".into());
                };
                f.truncate(len as usize);
                let f = f.clone();
                self.rot
                    .retain(|r| r.path != path || r.offset < len as usize);
                self.durable.insert(path, f);
                StorageOut::Done
            }
            StorageOp::List { path } => {
                // What a directory listing sees: the page cache's names.
                let prefix = format!("{}/", path.trim_end_matches('/'));
                StorageOut::Names(
                    self.live
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|n| !n.contains('/'))
                        .map(str::to_string)
                        .collect(),
                )
            }
            StorageOp::Remove { path } => {
                self.rot.retain(|r| r.path != path);
                self.live.remove(&path);
                self.durable.remove(&path);
                StorageOut::Done
            }
        })
    }

    /// The process dies while `op` runs: apply whatever part of it `pick` says happened.
    pub fn exec_partly(&mut self, op: StorageOp, pick: u64) {
        match op {
            StorageOp::CreateDir { .. } | StorageOp::ReadAll { .. } | StorageOp::List { .. } => {}
            StorageOp::Append { path, bytes } => {
                if let Some(f) = self.live.get_mut(&path) {
                    let n = (pick as usize) % (bytes.len() + 1);
                    f.extend_from_slice(&bytes[..n]);
                }
            }
            StorageOp::Create { path, bytes } => match pick % 3 {
                // Died before the temp file was synced: nothing survives.
                0 => {}
                // Died after syncing the temp file, before the rename: a stray temp.
                1 => {
                    let tmp = format!("{path}.tmp");
                    self.live.insert(tmp.clone(), bytes.clone());
                    self.durable.insert(tmp, bytes);
                }
                // Renamed and the directory synced: done, only the reply is lost.
                _ => {
                    let _ = self.exec(StorageOp::Create { path, bytes });
                }
            },
            op @ (StorageOp::Remove { .. }
            | StorageOp::Truncate { .. }
            | StorageOp::Sync { .. }) => {
                if pick % 2 == 1 {
                    let (full, syncs) = (self.full, self.fail_syncs);
                    self.full = false;
                    self.fail_syncs = 0;
                    let _ = self.exec(op);
                    (self.full, self.fail_syncs) = (full, syncs);
                }
            }
        }
    }

    /// Power loss: every file goes back to its durable image plus some of its unsynced
    /// tail. The page cache is gone.
    pub fn crash(&mut self, pick: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(pick);
        let mut after = BTreeMap::new();
        for (path, durable) in std::mem::take(&mut self.durable) {
            let live = self.live.get(&path);
            let mut keep = durable.clone();
            if let Some(live) = live.filter(|l| l.len() > durable.len() && l.starts_with(&durable))
            {
                let tail = &live[durable.len()..];
                let start = durable.len();
                // Sector boundaries are absolute file offsets.
                let first_boundary = start.div_ceil(SECTOR) * SECTOR;
                let boundaries: Vec<usize> = std::iter::once(start)
                    .chain((first_boundary..start + tail.len()).step_by(SECTOR))
                    .chain(std::iter::once(start + tail.len()))
                    .filter(|&b| b >= start)
                    .collect();
                let mode = rng.gen_range(0..6);
                let cut = boundaries[rng.gen_range(0..boundaries.len())];
                match mode {
                    0 => {}
                    1 => keep.extend_from_slice(tail),
                    2 => keep.extend_from_slice(&live[start..cut]),
                    _ => {
                        // A whole-sector prefix, then a torn sector.
                        keep.extend_from_slice(&live[start..cut]);
                        let sector_end = ((cut / SECTOR) + 1) * SECTOR;
                        let avail = (start + tail.len()).min(sector_end);
                        if avail > cut {
                            let part = rng.gen_range(0..avail - cut);
                            keep.extend_from_slice(&live[cut..cut + part]);
                            let fill = avail - cut - part;
                            match mode {
                                3 => {}
                                4 => keep.extend(std::iter::repeat_n(0u8, fill)),
                                _ => keep.extend((0..fill).map(|_| rng.gen::<u8>())),
                            }
                        }
                    }
                }
                if keep.len() != durable.len() || mode != 0 {
                    self.torn_files += 1;
                }
            }
            after.insert(path, keep);
        }
        self.live = after.clone();
        self.durable = after;
    }

    /// Flip one bit somewhere in the durable data.
    pub fn rot(&mut self, pick: u64) {
        let files: Vec<&String> = self
            .durable
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(p, _)| p)
            .collect();
        if files.is_empty() {
            return;
        }
        let path = files[(pick % files.len() as u64) as usize].clone();
        let len = self.durable[&path].len();
        let r = Rot {
            path,
            offset: ((pick >> 8) % len as u64) as usize,
            bit: ((pick >> 56) % 8) as u8,
        };
        self.flip(&r);
        self.rot.push(r);
    }

    fn flip(&mut self, r: &Rot) {
        for img in [&mut self.durable, &mut self.live] {
            if let Some(b) = img.get_mut(&r.path).and_then(|f| f.get_mut(r.offset)) {
                *b ^= 1 << r.bit;
            }
        }
    }

    /// The operator restores damaged files from a replica: undo every recorded flip.
    pub fn repair_rot(&mut self) {
        for r in std::mem::take(&mut self.rot).iter().rev() {
            self.flip(r);
        }
    }

    /// Files and their durable sizes, for traces.
    pub fn describe(&self) -> String {
        self.durable
            .iter()
            .map(|(p, b)| format!("{p}:{}", b.len()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(d: &mut Disk, path: &str, bytes: &[u8]) {
        let op = StorageOp::Create {
            path: path.into(),
            bytes: bytes.to_vec(),
        };
        assert_eq!(d.exec(op), Ok(StorageOut::Done));
    }

    fn append(d: &mut Disk, path: &str, bytes: &[u8]) -> Result<StorageOut, String> {
        d.exec(StorageOp::Append {
            path: path.into(),
            bytes: bytes.to_vec(),
        })
    }

    fn read(d: &mut Disk, path: &str) -> Vec<u8> {
        match d.exec(StorageOp::ReadAll { path: path.into() }) {
            Ok(StorageOut::Bytes(b)) => b,
            other => panic!("read {path}: {other:?}"),
        }
    }

    #[test]
    fn a_crash_keeps_synced_data_and_at_most_a_torn_prefix_of_the_rest() {
        let synced: Vec<u8> = (0..700u32).map(|i| i as u8).collect();
        let unsynced: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
        let mut outcomes = std::collections::BTreeSet::new();
        for pick in 0..300 {
            let mut d = Disk::default();
            create(&mut d, "/w", b"");
            append(&mut d, "/w", &synced).unwrap();
            d.exec(StorageOp::Sync { path: "/w".into() }).unwrap();
            append(&mut d, "/w", &unsynced).unwrap();
            d.crash(pick);
            let after = read(&mut d, "/w");
            assert!(after.starts_with(&synced), "pick {pick}: synced bytes lost");
            let tail = &after[synced.len()..];
            assert!(
                tail.len() <= unsynced.len(),
                "pick {pick}: grew past the write"
            );
            // Everything but the last sector touched is exactly what was written.
            let end = synced.len() + tail.len();
            let last_sector = (end.saturating_sub(1) / SECTOR) * SECTOR;
            let exact = last_sector.saturating_sub(synced.len()).min(tail.len());
            assert_eq!(&tail[..exact], &unsynced[..exact], "pick {pick}");
            outcomes.insert(tail.len());
        }
        // Nothing kept, everything kept, and cuts in between all happen.
        assert!(outcomes.contains(&0) && outcomes.contains(&unsynced.len()));
        assert!(outcomes.len() > 5, "{outcomes:?}");
    }

    #[test]
    fn a_failed_fsync_makes_nothing_durable_and_a_full_disk_writes_half() {
        let mut d = Disk::default();
        create(&mut d, "/w", b"head");
        append(&mut d, "/w", b"data").unwrap();
        d.fail_syncs = 1;
        assert_eq!(
            d.exec(StorageOp::Sync { path: "/w".into() }),
            Err(EIO.into())
        );
        d.crash(0);
        let after = read(&mut d, "/w");
        assert!(after.starts_with(b"head") && after.len() <= 8);
        d.full = true;
        assert_eq!(append(&mut d, "/w", b"123456"), Err(ENOSPC.into()));
        assert_eq!(read(&mut d, "/w").len(), after.len() + 3);
    }

    #[test]
    fn rot_flips_one_durable_bit_and_repair_restores_it() {
        let mut d = Disk::default();
        create(&mut d, "/a", &[0u8; 64]);
        d.rot(12345);
        let damaged = read(&mut d, "/a");
        assert_eq!(damaged.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        d.repair_rot();
        assert_eq!(read(&mut d, "/a"), vec![0u8; 64]);
        // A file rewritten since the flip is not "repaired" into damage.
        d.rot(777);
        create(&mut d, "/a", &[1u8; 64]);
        d.repair_rot();
        assert_eq!(read(&mut d, "/a"), vec![1u8; 64]);
    }

    #[test]
    fn a_create_cut_short_leaves_the_old_file_or_the_new_one() {
        for pick in 0..3 {
            let mut d = Disk::default();
            create(&mut d, "/m", b"old");
            let op = StorageOp::Create {
                path: "/m".into(),
                bytes: b"new".to_vec(),
            };
            d.exec_partly(op, pick);
            d.crash(pick);
            let m = read(&mut d, "/m");
            assert!(m == b"old" || m == b"new", "pick {pick}: {m:?}");
        }
    }
}
