//! The sweep line: visible pieces of a stack of runs in ONE pass, and compaction.
//!
//! Runs are ordered oldest first; a later run shadows an earlier one point by point.
//! The sweep walks the boundaries of all runs in time order with a min-heap of one
//! cursor per run (O(log L) per boundary) and keeps the set of runs active at the
//! current point in a bitset, whose highest member is the visible run. So the cost is
//! O(n log L) in boundaries inside the window: RANGE and REDUCE grow gently with the
//! layer count instead of paying one pass per layer.
//!
//! Compaction is the same sweep over the whole time line, collecting pieces with their
//! source tags: the result answers every query exactly like the runs it replaces.

use crate::layer::{Compacted, Run, RunView, Segs};
use crate::value::Value;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which runs hold an interval covering the sweep position.
struct ActiveSet {
    words: Vec<u64>,
}

impl ActiveSet {
    fn new(n: usize) -> ActiveSet {
        ActiveSet {
            words: vec![0; n.div_ceil(64)],
        }
    }
    fn set(&mut self, r: usize, on: bool) {
        let (w, b) = (r / 64, r % 64);
        if on {
            self.words[w] |= 1 << b;
        } else {
            self.words[w] &= !(1 << b);
        }
    }
    fn get(&self, r: usize) -> bool {
        self.words[r / 64] >> (r % 64) & 1 == 1
    }
    fn highest(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }
}

/// Emit the raw visible segments of `runs` over `[s, e)` in time order:
/// `emit(a, b, run, idx)` says `[a, b)` shows interval `idx` of run `run`. Consecutive
/// segments may come from the same stored interval; [`visible`] merges them.
pub fn sweep(runs: &[RunView<'_>], s: i64, e: i64, mut emit: impl FnMut(i64, i64, usize, usize)) {
    if s >= e {
        return;
    }
    let mut cursor = vec![0usize; runs.len()];
    let mut active = ActiveSet::new(runs.len());
    // (time, run): the next boundary of each run. An active run's next boundary is the
    // end of its current interval (clipped to e); an inactive run's is its next start.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::with_capacity(runs.len());
    for (r, run) in runs.iter().enumerate() {
        let segs = run.segs;
        let i = segs.first_ending_after(s);
        cursor[r] = i;
        if i < segs.len() && segs.starts[i] < e {
            if segs.starts[i] <= s {
                active.set(r, true);
                heap.push(Reverse((segs.ends[i].min(e), r)));
            } else {
                heap.push(Reverse((segs.starts[i], r)));
            }
        }
    }
    let mut pos = s;
    let mut top = active.highest();
    while let Some(&Reverse((t, _))) = heap.peek() {
        debug_assert!(t >= pos && t <= e);
        if t > pos {
            if let Some(r) = top {
                emit(pos, t, r, cursor[r]);
            }
            pos = t;
        }
        while let Some(&Reverse((t2, r))) = heap.peek() {
            if t2 != t {
                break;
            }
            heap.pop();
            let segs = runs[r].segs;
            if active.get(r) {
                // The current interval of run r ends here.
                active.set(r, false);
                cursor[r] += 1;
                let i = cursor[r];
                if i < segs.len() && segs.starts[i] < e {
                    heap.push(Reverse((segs.starts[i], r)));
                }
            } else {
                active.set(r, true);
                heap.push(Reverse((segs.ends[cursor[r]].min(e), r)));
            }
        }
        top = active.highest();
    }
}

/// The visible pieces of `runs` over `[s, e)`: newest wins, clipped, gaps dropped, and
/// a maximal run from one stored interval is one piece (SPEC "visible pieces").
pub fn visible<'a>(
    runs: &[RunView<'a>],
    s: i64,
    e: i64,
    mut sink: impl FnMut(i64, i64, &'a Value),
) {
    match runs {
        [] => {}
        // One run: its intervals are distinct stored intervals (a compacted run never
        // holds two adjacent pieces of one source), so no merging is needed.
        [run] => {
            let segs = run.segs;
            let mut i = segs.first_ending_after(s);
            while i < segs.len() && segs.starts[i] < e {
                sink(segs.starts[i].max(s), segs.ends[i].min(e), &segs.values[i]);
                i += 1;
            }
        }
        _ => {
            let mut pending: Option<(i64, i64, (u64, u32), &'a Value)> = None;
            sweep(runs, s, e, |a, b, r, i| {
                let src = runs[r].source(i);
                if let Some(p) = &mut pending {
                    if p.2 == src && p.1 == a {
                        p.1 = b;
                        return;
                    }
                    sink(p.0, p.1, p.3);
                }
                pending = Some((a, b, src, &runs[r].segs.values[i]));
            });
            if let Some(p) = pending {
                sink(p.0, p.1, p.3);
            }
        }
    }
}

/// Point lookup over runs, newest first, stopping at the first run covering `t`:
/// O(log n) per run visited.
#[inline]
pub fn point<'a>(runs: &[RunView<'a>], t: i64) -> Option<&'a Value> {
    runs.iter()
        .rev()
        .find_map(|r| r.segs.find(t).map(|i| &r.segs.values[i]))
}

/// Sweep-line compaction of `runs` (which must cover history `lo..hi` contiguously,
/// oldest first) into one run. O(n log L) in endpoints; pure, so it runs off the loop.
pub fn compact(runs: &[Run]) -> Compacted {
    assert!(!runs.is_empty());
    for w in runs.windows(2) {
        assert_eq!(
            w[0].span().1,
            w[1].span().0,
            "compaction input must be contiguous"
        );
    }
    let lo = runs[0].span().0;
    let hi = runs[runs.len() - 1].span().1;
    let views: Vec<RunView<'_>> = runs.iter().map(Run::view).collect();
    let n: usize = runs.iter().map(|r| r.segs().len()).sum();
    let mut segs = Segs::with_capacity(n);
    let mut src_layer = Vec::with_capacity(n);
    let mut src_idx = Vec::with_capacity(n);
    let mut last: Option<(u64, u32)> = None;
    sweep(&views, i64::MIN, i64::MAX, |a, b, r, i| {
        let src = views[r].source(i);
        if last == Some(src) && segs.ends.last() == Some(&a) {
            *segs.ends.last_mut().expect("non-empty") = b;
            return;
        }
        segs.push(a, b, views[r].segs.values[i].clone());
        src_layer.push(src.0);
        src_idx.push(src.1);
        last = Some(src);
    });
    segs.seal();
    Compacted {
        lo,
        hi,
        segs,
        src_layer,
        src_idx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Layer;
    use std::sync::Arc;

    fn layer(id: u64, rows: &[(i64, i64, i64)]) -> Arc<Layer> {
        Arc::new(Layer {
            id,
            written_at: 0,
            segs: Segs::from_sorted_rows(
                rows.iter()
                    .map(|&(a, b, v)| (a, b, Value::Int(v)))
                    .collect(),
            ),
        })
    }

    fn pieces(runs: &[Run], s: i64, e: i64) -> Vec<(i64, i64, i64)> {
        let views: Vec<_> = runs.iter().map(Run::view).collect();
        let mut out = vec![];
        visible(&views, s, e, |a, b, v| {
            let Value::Int(v) = v else { panic!() };
            out.push((a, b, *v))
        });
        out
    }

    #[test]
    fn spec_example_shadowing() {
        let runs = vec![
            Run::Raw {
                idx: 0,
                layer: layer(1, &[(0, 100, 1)]),
            },
            Run::Raw {
                idx: 1,
                layer: layer(2, &[(40, 60, 2)]),
            },
        ];
        assert_eq!(
            pieces(&runs, 0, 100),
            vec![(0, 40, 1), (40, 60, 2), (60, 100, 1)]
        );
        assert_eq!(pieces(&runs, 50, 70), vec![(50, 60, 2), (60, 70, 1)]);
        let c = Run::Compacted(Arc::new(compact(&runs)));
        assert_eq!(pieces(&[c], 0, 100), pieces(&runs, 0, 100));
    }

    #[test]
    fn lower_boundaries_do_not_split_a_piece() {
        let runs = vec![
            Run::Raw {
                idx: 0,
                layer: layer(1, &[(0, 10, 1), (10, 20, 1)]),
            },
            Run::Raw {
                idx: 1,
                layer: layer(2, &[(5, 15, 2)]),
            },
        ];
        assert_eq!(
            pieces(&runs, 0, 20),
            vec![(0, 5, 1), (5, 15, 2), (15, 20, 1)]
        );
        let c = compact(&runs);
        assert_eq!(c.segs.len(), 3);
    }
}
