//! Delta debugging: minimise a failing operation list while it still fails the same way.
//!
//! Generic over the operation type and knows nothing of the engine: the caller's
//! predicate replays a candidate list and says whether it reproduces the failure
//! signature. Operations must be self-contained (faults are operations or belong to
//! one), so removing one does not change what the others mean.

/// How many candidate replays a shrink may spend.
pub const DEFAULT_BUDGET: usize = 5_000;

/// ddmin (Zeller & Hildebrandt) over `ops`, then single deletions from back to front
/// until a fixpoint. `fails` must return true for `ops` itself. Returns a list for which
/// `fails` holds and from which no single operation can be removed (budget permitting).
pub fn shrink<T: Clone>(ops: &[T], budget: usize, mut fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut cur: Vec<T> = ops.to_vec();
    let mut calls = 0usize;
    let mut try_it = |cand: &[T], calls: &mut usize| -> bool {
        if *calls >= budget {
            return false;
        }
        *calls += 1;
        fails(cand)
    };
    let mut n = 2usize;
    while cur.len() >= 2 && calls < budget {
        let chunk = cur.len().div_ceil(n);
        // The first chunk whose complement still fails, if any.
        let found = (0..n).find_map(|i| {
            let (lo, hi) = (i * chunk, ((i + 1) * chunk).min(cur.len()));
            if lo >= hi {
                return None;
            }
            let cand: Vec<T> = cur[..lo].iter().chain(&cur[hi..]).cloned().collect();
            try_it(&cand, &mut calls).then_some(cand)
        });
        if let Some(cand) = found {
            cur = cand;
            n = (n - 1).max(2);
        } else {
            if n >= cur.len() {
                break;
            }
            n = (n * 2).min(cur.len());
        }
    }
    // Single deletions, back to front, until nothing more can go.
    loop {
        let mut changed = false;
        let mut i = cur.len();
        while i > 0 && calls < budget {
            i -= 1;
            let mut cand = cur.clone();
            cand.remove(i);
            if try_it(&cand, &mut calls) {
                cur = cand;
                changed = true;
            }
        }
        if !changed || calls >= budget {
            return cur;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimal_pair() {
        let ops: Vec<u32> = (0..200).collect();
        // Fails when both 17 and 150 are present.
        let out = shrink(&ops, DEFAULT_BUDGET, |c| {
            c.contains(&17) && c.contains(&150)
        });
        assert_eq!(out, vec![17, 150]);
    }

    #[test]
    fn keeps_order_dependent_failures() {
        let ops = vec![1, 2, 3, 4, 5, 6];
        // Fails when 5 comes after 2.
        let out = shrink(&ops, DEFAULT_BUDGET, |c| {
            let a = c.iter().position(|&x| x == 2);
            let b = c.iter().position(|&x| x == 5);
            matches!((a, b), (Some(a), Some(b)) if a < b)
        });
        assert_eq!(out, vec![2, 5]);
    }

    #[test]
    fn respects_the_budget() {
        let ops: Vec<u32> = (0..1000).collect();
        let mut calls = 0;
        let _ = shrink(&ops, 10, |_| {
            calls += 1;
            true
        });
        assert!(calls <= 10);
    }
}
