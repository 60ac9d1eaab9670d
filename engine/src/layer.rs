//! Immutable layers and compacted runs: the data a base lens is made of.
//!
//! A *layer* is one committed write: sorted, non-overlapping intervals (columnar, so
//! binary search and folds touch only the arrays they need). A *compacted run* is the
//! newest-wins resolution of a contiguous range of a lens's layers, produced by the
//! sweep in [`crate::sweep`]; each of its pieces remembers the stored interval it came
//! from, so that piece identity (and therefore every answer) survives compaction.
//! Both are shared behind `Arc`: cloning a lens or handing a snapshot to a job is a
//! pointer bump, and nothing here is ever mutated after construction.

use crate::value::Value;
use std::sync::Arc;

/// Every `INDEX_STRIDE`-th start is copied into a small index, so that a point lookup
/// binary-searches an array that stays in cache (1/16 of the size) and then scans one
/// stride of the big column (two cache lines). Measured in BENCHMARKS.md: strides 8 and 32,
/// and binary search within the stride, were slower.
const INDEX_STRIDE: usize = 16;

/// Sorted, non-overlapping `[start, end)` intervals with values, in columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Segs {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub values: Vec<Value>,
    /// `starts[k * INDEX_STRIDE]` for every k; built by [`Segs::seal`].
    index: Vec<i64>,
}

impl Segs {
    pub fn with_capacity(n: usize) -> Segs {
        Segs {
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            index: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.starts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
    pub fn push(&mut self, s: i64, e: i64, v: Value) {
        self.starts.push(s);
        self.ends.push(e);
        self.values.push(v);
    }

    /// Build from rows that the caller has validated; sorts by start and asserts the
    /// invariants every reader relies on.
    pub fn from_sorted_rows(rows: Vec<(i64, i64, Value)>) -> Segs {
        let mut s = Segs::with_capacity(rows.len());
        for (a, b, v) in rows {
            s.push(a, b, v);
        }
        s.seal();
        s
    }

    /// Check the invariants and build the lookup index; call once, after the last push.
    pub fn seal(&mut self) {
        self.check();
        self.index = self.starts.iter().step_by(INDEX_STRIDE).copied().collect();
    }

    /// The invariant: every interval non-empty, sorted, no overlap.
    pub fn check(&self) {
        assert_eq!(self.starts.len(), self.ends.len());
        assert_eq!(self.starts.len(), self.values.len());
        for i in 0..self.len() {
            assert!(self.starts[i] < self.ends[i], "empty interval in a layer");
            if i > 0 {
                assert!(self.ends[i - 1] <= self.starts[i], "overlap in a layer");
            }
        }
    }

    /// Index of the interval covering `t`: binary search of the index, then of one
    /// stride of `starts`.
    #[inline]
    pub fn find(&self, t: i64) -> Option<usize> {
        let (Some(&first), Some(&last_end)) = (self.starts.first(), self.ends.last()) else {
            return None;
        };
        if t < first || t >= last_end {
            return None;
        }
        let i = if self.index.is_empty() {
            self.starts.partition_point(|&s| s <= t)
        } else {
            // index[k] <= t < index[k + 1]: the answer lies in stride k.
            let k = self.index.partition_point(|&s| s <= t) - 1;
            let lo = k * INDEX_STRIDE;
            let hi = (lo + INDEX_STRIDE).min(self.starts.len());
            // A linear scan of one stride reads adjacent cache lines, which the
            // prefetcher streams; a binary search would wait on dependent misses.
            lo + self.starts[lo..hi].iter().take_while(|&&s| s <= t).count()
        };
        (i > 0 && self.ends[i - 1] > t).then(|| i - 1)
    }

    /// Index of the first interval ending after `t`.
    #[inline]
    pub fn first_ending_after(&self, t: i64) -> usize {
        self.ends.partition_point(|&e| e <= t)
    }

    /// Does any interval overlap `[s, e)`?
    pub fn overlaps(&self, s: i64, e: i64) -> bool {
        let i = self.first_ending_after(s);
        i < self.len() && self.starts[i] < e
    }
}

/// One committed write to one lens.
#[derive(Debug, PartialEq)]
pub struct Layer {
    pub id: u64,
    pub written_at: i64,
    pub segs: Segs,
}

impl Layer {
    pub fn min_start(&self) -> i64 {
        self.segs.starts[0]
    }
    pub fn max_end(&self) -> i64 {
        // Sorted and non-overlapping, so the last interval ends last.
        *self.segs.ends.last().expect("layers are never empty")
    }
}

/// The newest-wins resolution of layers `lo..hi` (indices into the lens history).
#[derive(Debug, PartialEq)]
pub struct Compacted {
    pub lo: usize,
    pub hi: usize,
    pub segs: Segs,
    /// Identity of the stored interval each piece comes from: (layer id, index in layer).
    pub src_layer: Vec<u64>,
    pub src_idx: Vec<u32>,
}

/// An element of a lens's run stack, oldest first.
#[derive(Clone, Debug)]
pub enum Run {
    /// A layer not yet compacted: `history[idx]`.
    Raw {
        idx: usize,
        layer: Arc<Layer>,
    },
    Compacted(Arc<Compacted>),
}

impl Run {
    /// The history range this run covers.
    pub fn span(&self) -> (usize, usize) {
        match self {
            Run::Raw { idx, .. } => (*idx, idx + 1),
            Run::Compacted(c) => (c.lo, c.hi),
        }
    }
    pub fn segs(&self) -> &Segs {
        match self {
            Run::Raw { layer, .. } => &layer.segs,
            Run::Compacted(c) => &c.segs,
        }
    }
    pub fn view(&self) -> RunView<'_> {
        match self {
            Run::Raw { layer, .. } => RunView::layer(layer),
            Run::Compacted(c) => RunView {
                segs: &c.segs,
                src: Src::Tagged(&c.src_layer, &c.src_idx),
            },
        }
    }
}

/// Where a run's pieces came from.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    /// A raw layer: piece i is stored interval (id, i).
    Layer(u64),
    /// A compacted run: explicit per-piece tags.
    Tagged(&'a [u64], &'a [u32]),
}

/// A borrowed run, as the sweep reads it.
#[derive(Clone, Copy, Debug)]
pub struct RunView<'a> {
    pub segs: &'a Segs,
    pub src: Src<'a>,
}

impl<'a> RunView<'a> {
    pub fn layer(l: &'a Layer) -> RunView<'a> {
        RunView {
            segs: &l.segs,
            src: Src::Layer(l.id),
        }
    }
    #[inline]
    pub fn source(&self, i: usize) -> (u64, u32) {
        match self.src {
            Src::Layer(id) => (id, i as u32),
            Src::Tagged(l, x) => (l[i], x[i]),
        }
    }
}
