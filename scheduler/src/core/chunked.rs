//! A sorted sequence of claim entries stored in contiguous chunks: range scans stream through
//! memory like a plain sorted `Vec`, while inserts and removals only shift one chunk.

/// One indexed claim on a class-local device slot: sorted by `at` (one end of the claim), carrying
/// `other` (the other end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The instant the sequence is sorted by (a claim's start or its end).
    pub at: i64,
    /// The claim's other end.
    pub other: i64,
    /// Class-local device slot.
    pub slot: u32,
}

impl Entry {
    /// The sort key: by `at`, then slot (unique, since one slot's claims never overlap).
    #[inline]
    fn key(&self) -> (i64, u32) {
        (self.at, self.slot)
    }
}

/// Chunks split when they grow past this many entries.
const MAX_CHUNK: usize = 1024;

/// Entries sorted by `(at, slot)`, keys unique, in non-empty chunks.
#[derive(Debug, Clone, Default)]
pub struct Chunked {
    chunks: Vec<Vec<Entry>>,
    /// `firsts[i]` is the key of `chunks[i][0]`.
    firsts: Vec<(i64, u32)>,
}

impl Chunked {
    /// Index of the chunk that holds (or would hold) `key`.
    #[inline]
    fn chunk_for(&self, key: (i64, u32)) -> usize {
        self.firsts.partition_point(|&f| f <= key).saturating_sub(1)
    }

    /// Inserts `e`; returns false (and changes nothing) if its key is already present.
    pub fn insert(&mut self, e: Entry) -> bool {
        if self.chunks.is_empty() {
            self.chunks.push(vec![e]);
            self.firsts.push(e.key());
            return true;
        }
        let ci = self.chunk_for(e.key());
        let chunk = &mut self.chunks[ci];
        let Err(at) = chunk.binary_search_by_key(&e.key(), Entry::key) else {
            return false;
        };
        chunk.insert(at, e);
        if at == 0 {
            self.firsts[ci] = e.key();
        }
        if chunk.len() > MAX_CHUNK {
            let tail = chunk.split_off(MAX_CHUNK / 2);
            self.firsts.insert(ci + 1, tail[0].key());
            self.chunks.insert(ci + 1, tail);
        }
        true
    }

    /// Removes the entry with this `at` and slot; returns its `other` if it was present.
    pub fn remove(&mut self, at: i64, slot: u32) -> Option<i64> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for((at, slot));
        let chunk = &mut self.chunks[ci];
        let at = chunk.binary_search_by_key(&(at, slot), Entry::key).ok()?;
        let removed = chunk.remove(at);
        if chunk.is_empty() {
            self.chunks.remove(ci);
            self.firsts.remove(ci);
        } else if at == 0 {
            self.firsts[ci] = chunk[0].key();
        }
        Some(removed.other)
    }

    /// The `other` of the entry with this `at` and slot, if present.
    pub fn get(&self, at: i64, slot: u32) -> Option<i64> {
        let chunk = self.chunks.get(self.chunk_for((at, slot)))?;
        let i = chunk.binary_search_by_key(&(at, slot), Entry::key).ok()?;
        Some(chunk[i].other)
    }

    /// Whether there are no entries.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Calls `f` on every entry whose `at` lies in `[lo, hi)`, in order.
    #[inline]
    pub fn for_each_in(&self, lo: i64, hi: i64, mut f: impl FnMut(&Entry)) {
        if self.chunks.is_empty() || lo >= hi {
            return;
        }
        let ci = self.chunk_for((lo, 0));
        let first = &self.chunks[ci];
        let from = first.partition_point(|e| e.at < lo);
        for chunk in
            std::iter::once(&first[from..]).chain(self.chunks[ci + 1..].iter().map(Vec::as_slice))
        {
            for e in chunk {
                if e.at >= hi {
                    return;
                }
                f(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, slot: u32) -> Entry {
        Entry {
            at,
            other: at + 1,
            slot,
        }
    }

    fn starting_in(c: &Chunked, lo: i64, hi: i64) -> Vec<(i64, u32)> {
        let mut v = Vec::new();
        c.for_each_in(lo, hi, |e| v.push(e.key()));
        v
    }

    #[test]
    fn behaves_like_a_sorted_set() {
        let mut c = Chunked::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 99;
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (start, slot) = ((x % 3000) as i64, ((x >> 20) % 3) as u32);
            if round % 3 == 2 {
                assert_eq!(
                    c.remove(start, slot).is_some(),
                    model.remove(&(start, slot))
                );
            } else {
                assert_eq!(c.insert(entry(start, slot)), model.insert((start, slot)));
            }
        }
        assert!(c.chunks.len() > 1, "several chunks were exercised");
        for w in c.chunks.iter().zip(&c.firsts) {
            assert!(!w.0.is_empty() && w.0[0].key() == *w.1);
        }
        let all: Vec<(i64, u32)> = model.iter().copied().collect();
        assert_eq!(starting_in(&c, i64::MIN, i64::MAX), all);
        for (lo, hi) in [(0, 10), (500, 1500), (2999, 3000), (-5, 0), (100, 100)] {
            let want: Vec<_> = all
                .iter()
                .copied()
                .filter(|&(s, _)| s >= lo && s < hi)
                .collect();
            assert_eq!(starting_in(&c, lo, hi), want, "[{lo}, {hi})");
        }
        let &(s, slot) = model.iter().next().unwrap();
        assert_eq!(c.get(s, slot), Some(s + 1));
        assert_eq!(c.get(-1, 0), None);
        while let Some(&(s, slot)) = model.iter().next() {
            model.remove(&(s, slot));
            assert!(c.remove(s, slot).is_some());
        }
        assert!(c.is_empty() && c.firsts.is_empty());
    }
}
