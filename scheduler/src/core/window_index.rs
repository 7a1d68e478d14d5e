//! Per-class index of claims by time, answering "which devices are busy at some point in `[s, e)`?"
//! while touching only the claims that start or end near the window, not every device.
//!
//! A device never holds two overlapping claims, so at any instant it holds at most one: the set of
//! devices busy at an instant is a plain bit set. The index keeps that set at *checkpoints*, every
//! [`CHECKPOINT_MS`] (only where it is non-empty), plus every claim sorted by start and by end.
//! For a window `[s, e)` with `T` the last checkpoint at or before `s` and `L` the last one
//! before `e`, a claim overlaps the window exactly when one of these holds:
//!
//! - it started by `T` and runs past `s`: the devices busy at `T`, less those whose claim ends in
//!   `(T, s]` (a scan of ends in `(T, s]`);
//! - it is busy at one of the checkpoints in `(T, L]`, all inside the window: a union of bit sets;
//! - it starts in `(T, L)` and lies between two checkpoints: a scan of such short claims;
//! - it starts in `(L, e)` (or in `(T, e)` when `L = T`): a scan of starts.
//!
//! So a query costs a few bit-set unions and scans of the claims that start or end within one
//! checkpoint interval of the window's ends, instead of one step per overlapping claim.
//!
//! The scans are skipped for checkpoint intervals where no claim starts or ends off a checkpoint
//! (the index counts those per interval), so claims aligned on checkpoints cost no scan at all. A
//! [`Sweep`] answers many windows of one range (the buckets of an availability query), gathering
//! the range's checkpoints once.
//!
//! Claims spanning more than [`MAX_MARKS`] checkpoints are kept aside in a short list that every
//! query checks directly, so that a claim of years costs no more memory than one of hours.

use std::collections::BTreeMap;

use super::bitset::BitSet;
use super::chunked::{Chunked, Entry};

/// Spacing of the checkpoints (15 minutes).
pub const CHECKPOINT_MS: i64 = 15 * 60 * 1000;

/// Claims spanning more checkpoints than this (about 42 days) go to the list of long claims.
pub const MAX_MARKS: i128 = 4096;

/// Claims of one device class, indexed by time; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct WindowIndex {
    /// Short claims by `(start, slot)`, carrying their end.
    by_start: Chunked,
    /// Short claims by `(end, slot)`, carrying their start.
    by_end: Chunked,
    /// Claims that hold no checkpoint, by `(start, slot)`, carrying their end.
    between: Chunked,
    /// Checkpoint number `k` -> (how many, which) slots have a short claim active at
    /// `k * CHECKPOINT_MS` (`start <= k * CHECKPOINT_MS < end`); absent when none has.
    busy_at: BTreeMap<i64, (u32, BitSet)>,
    /// Checkpoint interval `k` -> how many short claims (start, end) strictly inside
    /// `(k * CHECKPOINT_MS, (k + 1) * CHECKPOINT_MS)`; absent when none. Lets a query skip the
    /// scans of intervals where no claim starts or ends (claims on checkpoints need none).
    inner: BTreeMap<i64, (u32, u32)>,
    /// Claims spanning more than [`MAX_MARKS`] checkpoints: `(start, end, slot)`.
    long: Vec<(i64, i64, u32)>,
    /// Number of claims held.
    len: usize,
}

/// The checkpoints `k` with `start <= k * CHECKPOINT_MS < end`, as a half-open range of `k`.
fn checkpoints(start: i64, end: i64) -> (i128, i128) {
    let g = i128::from(CHECKPOINT_MS);
    let ceil = |t: i64| (i128::from(t) + g - 1).div_euclid(g);
    (ceil(start), ceil(end))
}

/// The checkpoint interval holding `t` strictly inside, if `t` is not a checkpoint.
fn inner_interval(t: i64) -> Option<i64> {
    (t.rem_euclid(CHECKPOINT_MS) != 0).then(|| t.div_euclid(CHECKPOINT_MS))
}

/// Whether `[start, end)` spans too many checkpoints to be marked in each.
fn is_long(start: i64, end: i64) -> bool {
    let (a, b) = checkpoints(start, end);
    b - a > MAX_MARKS
}

impl WindowIndex {
    /// Records the claim `[start, end)` on `slot`. Empty intervals are ignored.
    pub fn insert(&mut self, start: i64, end: i64, slot: u32) {
        if start >= end || self.contains(start, end, slot) {
            return;
        }
        self.len += 1;
        if is_long(start, end) {
            self.long.push((start, end, slot));
            return;
        }
        self.by_start.insert(Entry {
            at: start,
            other: end,
            slot,
        });
        self.by_end.insert(Entry {
            at: end,
            other: start,
            slot,
        });
        if let Some(k) = inner_interval(start) {
            self.inner.entry(k).or_default().0 += 1;
        }
        if let Some(k) = inner_interval(end) {
            self.inner.entry(k).or_default().1 += 1;
        }
        let (a, b) = checkpoints(start, end);
        if a == b {
            self.between.insert(Entry {
                at: start,
                other: end,
                slot,
            });
        }
        for k in a..b {
            let (n, bits) = self.busy_at.entry(k as i64).or_default();
            *n += 1;
            bits.set(slot, true);
        }
    }

    /// Forgets the claim `[start, end)` on `slot`; returns whether it was present.
    pub fn remove(&mut self, start: i64, end: i64, slot: u32) -> bool {
        if !self.contains(start, end, slot) {
            return false;
        }
        self.len -= 1;
        if is_long(start, end) {
            self.long.retain(|&c| c != (start, end, slot));
            return true;
        }
        self.by_start.remove(start, slot);
        self.by_end.remove(end, slot);
        for (t, is_start) in [(start, true), (end, false)] {
            if let Some(k) = inner_interval(t)
                && let Some(n) = self.inner.get_mut(&k)
            {
                if is_start {
                    n.0 -= 1;
                } else {
                    n.1 -= 1;
                }
                if *n == (0, 0) {
                    self.inner.remove(&k);
                }
            }
        }
        let (a, b) = checkpoints(start, end);
        if a == b {
            self.between.remove(start, slot);
        }
        for k in a..b {
            let k = k as i64;
            if let Some((n, bits)) = self.busy_at.get_mut(&k) {
                bits.set(slot, false);
                *n -= 1;
                if *n == 0 {
                    self.busy_at.remove(&k);
                }
            }
        }
        true
    }

    /// Number of claims held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Marks in `busy` every slot with a claim overlapping `[start, end)`.
    pub fn mark_busy(&self, start: i64, end: i64, busy: &mut BitSet) {
        if start >= end {
            return;
        }
        let mut own = BitSet::default();
        self.sweep(start, end).busy_in(start, end, &mut own);
        busy.union_with(&own);
    }

    /// Prepares many [`Sweep::busy_in`] queries on windows inside `[from, to)` (`from < to`): the
    /// checkpoints and long claims of that range are gathered once, not per query.
    pub fn sweep(&self, from: i64, to: i64) -> Sweep<'_> {
        let (first, last) = (
            from.div_euclid(CHECKPOINT_MS),
            (to - 1).div_euclid(CHECKPOINT_MS),
        );
        Sweep {
            ix: self,
            marks: self
                .busy_at
                .range(first..=last)
                .map(|(&k, (_, bits))| (k, bits))
                .collect(),
            inner: self
                .inner
                .range(first..=last)
                .map(|(&k, &n)| (k, n))
                .collect(),
            long: self
                .long
                .iter()
                .copied()
                .filter(|&(s, e, _)| s < to && e > from)
                .collect(),
        }
    }

    /// Whether the claim `[start, end)` on `slot` is held (for consistency checks).
    pub fn contains(&self, start: i64, end: i64, slot: u32) -> bool {
        if start >= end {
            return false;
        }
        if is_long(start, end) {
            self.long.contains(&(start, end, slot))
        } else {
            self.by_start.get(start, slot) == Some(end)
        }
    }
}

/// A [`WindowIndex`] prepared for queries on windows inside one range; see
/// [`WindowIndex::sweep`].
#[derive(Debug)]
pub struct Sweep<'a> {
    ix: &'a WindowIndex,
    /// The non-empty checkpoints of the range, by checkpoint number.
    marks: Vec<(i64, &'a BitSet)>,
    /// The checkpoint intervals of the range where short claims start or end off a checkpoint.
    inner: Vec<(i64, (u32, u32))>,
    /// The long claims overlapping the range.
    long: Vec<(i64, i64, u32)>,
}

impl Sweep<'_> {
    /// The inner (starts, ends) counts of the checkpoint intervals `lo..=hi`, in order.
    #[inline]
    fn inner_in(&self, lo: i64, hi: i64) -> &[(i64, (u32, u32))] {
        let a = self.inner.partition_point(|&(k, _)| k < lo);
        let b = self.inner.partition_point(|&(k, _)| k <= hi);
        &self.inner[a..b.max(a)]
    }

    /// Whether a short claim starts strictly inside one of the checkpoint intervals `lo..=hi`.
    #[inline]
    fn starts_inside(&self, lo: i64, hi: i64) -> bool {
        self.inner_in(lo, hi).iter().any(|&(_, (s, _))| s > 0)
    }

    /// Sets `out` to exactly the slots with a claim overlapping `[start, end)`, a window inside the
    /// swept range (`out` is overwritten; it allocates nothing once grown).
    pub fn busy_in(&self, start: i64, end: i64, out: &mut BitSet) {
        if start >= end {
            out.clear();
            return;
        }
        let ix = self.ix;
        // t = k * CHECKPOINT_MS, the last checkpoint at or before `start` (maybe below i64::MIN,
        // where nothing is busy); `after_t` is the first instant after it that an i64 can hold.
        let k = start.div_euclid(CHECKPOINT_MS);
        let t = i128::from(k) * i128::from(CHECKPOINT_MS);
        let after_t = (t + 1).max(i128::from(i64::MIN)) as i64;
        let at = self.marks.partition_point(|&(m, _)| m < k);
        // Busy at t and still busy after `start` (`start < end <= i64::MAX`, so `start + 1` fits).
        // A slot holds one claim at a time, so clearing the slots whose claim ends in (t, start]
        // before adding the other cases below removes exactly the claims over by `start`.
        match self.marks.get(at) {
            Some(&(m, at_t)) if m == k => {
                out.copy_from(at_t);
                if self.inner_in(k, k).iter().any(|&(_, (_, e))| e > 0) {
                    ix.by_end
                        .for_each_in(after_t, start + 1, |e| out.set(e.slot, false));
                }
            }
            _ => out.clear(),
        }
        // l = kl * CHECKPOINT_MS, the last checkpoint before `end`; t <= l < end, so l fits.
        let kl = (end - 1).div_euclid(CHECKPOINT_MS);
        let still_running = |e: &Entry| e.other > start;
        if kl == k {
            if self.starts_inside(k, k) {
                ix.by_start.for_each_in(after_t, end, |e| {
                    if still_running(e) {
                        out.set(e.slot, true);
                    }
                });
            }
        } else {
            let l = kl * CHECKPOINT_MS;
            let inside = &self.marks[at..];
            let (from, to) = (
                inside.partition_point(|&(m, _)| m <= k),
                inside.partition_point(|&(m, _)| m <= kl),
            );
            for &(_, bits) in &inside[from..to] {
                out.union_with(bits);
            }
            // Claims between checkpoints start strictly inside an interval of k..kl.
            if self.starts_inside(k, kl - 1) {
                ix.between.for_each_in(after_t, l, |e| {
                    if still_running(e) {
                        out.set(e.slot, true);
                    }
                });
            }
            if self.starts_inside(kl, kl) {
                ix.by_start
                    .for_each_in(l + 1, end, |e| out.set(e.slot, true));
            }
        }
        for &(s, e, slot) in &self.long {
            if s < end && e > start {
                out.set(slot, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(ix: &WindowIndex, s: i64, e: i64) -> Vec<u32> {
        let mut b = BitSet::with_len(0);
        ix.mark_busy(s, e, &mut b);
        (0..1000).filter(|&i| b.get(i)).collect()
    }

    const H: i64 = 3_600_000;

    #[test]
    fn finds_exactly_the_busy_slots() {
        let mut ix = WindowIndex::default();
        ix.insert(0, 10, 0);
        ix.insert(10, 20, 0);
        ix.insert(5, 100 * H, 1);
        ix.insert(i64::MIN, i64::MAX, 2);
        ix.insert(H + 100, H + 101, 3);
        ix.insert(-H, 0, 4);
        assert_eq!(ix.len(), 6);
        assert_eq!(busy(&ix, 10, 11), vec![0, 1, 2]);
        assert_eq!(busy(&ix, -1, 0), vec![2, 4]);
        assert_eq!(busy(&ix, H + 100, H + 101), vec![1, 2, 3]);
        assert_eq!(busy(&ix, H + 101, H + 102), vec![1, 2]);
        assert_eq!(busy(&ix, 0, CHECKPOINT_MS + 1), vec![0, 1, 2]);
        assert!(ix.remove(5, 100 * H, 1));
        assert!(!ix.remove(5, 100 * H, 1));
        assert!(!ix.remove(10, 21, 0), "only the exact claim is removed");
        assert!(ix.remove(i64::MIN, i64::MAX, 2));
        assert_eq!(busy(&ix, H + 101, H + 102), Vec::<u32>::new());
        assert!(ix.contains(0, 10, 0) && !ix.contains(0, 11, 0));
        for (s, e, slot) in [(0, 10, 0), (10, 20, 0), (H + 100, H + 101, 3), (-H, 0, 4)] {
            assert!(ix.remove(s, e, slot));
        }
        assert_eq!(ix.len(), 0);
        assert!(
            ix.busy_at.is_empty() && ix.inner.is_empty(),
            "checkpoints and interval counts are dropped when they empty"
        );
    }

    #[test]
    fn matches_brute_force_on_many_intervals() {
        let mut ix = WindowIndex::default();
        let mut all: Vec<(u32, i64, i64)> = Vec::new();
        let mut x: u64 = 12345;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Claims of minutes to days, possibly negative times, several per slot, never overlapping.
        for _ in 0..3000 {
            let slot = (next() % 200) as u32;
            let s = (next() % (40 * H as u64)) as i64 - 5 * H;
            let len = 1 + (next() % (1 << (next() % 34))) as i64;
            let e = s.saturating_add(len);
            if all.iter().any(|&(o, a, b)| o == slot && a < e && b > s) {
                continue;
            }
            ix.insert(s, e, slot);
            all.push((slot, s, e));
        }
        let check = |ix: &WindowIndex, all: &[(u32, i64, i64)], next: &mut dyn FnMut() -> u64| {
            for _ in 0..300 {
                let s = (next() % (50 * H as u64)) as i64 - 10 * H;
                let e = s + 1 + (next() % (1 << (next() % 30))) as i64;
                let mut want: Vec<u32> = all
                    .iter()
                    .filter(|&&(_, a, b)| a < e && b > s)
                    .map(|c| c.0)
                    .collect();
                want.sort();
                want.dedup();
                assert_eq!(busy(ix, s, e), want, "window [{s}, {e})");
            }
        };
        check(&ix, &all, &mut next);
        let mut kept = Vec::new();
        for (i, c) in all.into_iter().enumerate() {
            if i % 2 == 0 {
                assert!(ix.remove(c.1, c.2, c.0));
            } else {
                kept.push(c);
            }
        }
        assert_eq!(ix.len(), kept.len());
        check(&ix, &kept, &mut next);
    }
}
