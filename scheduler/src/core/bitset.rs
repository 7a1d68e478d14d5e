//! A small growable bit set over dense `u32` indexes (class-local device slots).

/// A fixed-size set of bits; indexes past the end read as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set able to hold indexes `0..len` without growing.
    pub fn with_len(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Whether bit `i` is set.
    #[inline]
    pub fn get(&self, i: u32) -> bool {
        let i = i as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i` to `value`, growing the set when needed.
    #[inline]
    pub fn set(&mut self, i: u32, value: bool) {
        let i = i as usize;
        if i / 64 >= self.words.len() {
            if !value {
                return;
            }
            self.words.resize(i / 64 + 1, 0);
        }
        if value {
            self.words[i / 64] |= 1 << (i % 64);
        } else {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Number of set bits among `first..first + len`.
    #[inline]
    pub fn count_range(&self, first: u32, len: u32) -> u32 {
        let (mut i, end) = (first as usize, first as usize + len as usize);
        let mut n = 0;
        while i < end {
            let (w, b) = (i / 64, i % 64);
            let take = (64 - b).min(end - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << b
            };
            n += (self.words.get(w).copied().unwrap_or(0) & mask).count_ones();
            i += take;
        }
        n
    }

    /// Sets every bit that is set in `other`, growing when needed.
    pub fn union_with(&mut self, other: &BitSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Unsets every bit, keeping the capacity.
    #[inline]
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// Makes `self` a copy of `other`, reusing its memory.
    #[inline]
    pub fn copy_from(&mut self, other: &BitSet) {
        self.words.clone_from(&other.words);
    }

    /// Number of bits set in `self` but not in `other`.
    #[inline]
    pub fn count_without(&self, other: &BitSet) -> u32 {
        let common = self.words.len().min(other.words.len());
        let (head, tail) = self.words.split_at(common);
        let both: u32 = head
            .iter()
            .zip(&other.words[..common])
            .map(|(w, o)| (w & !o).count_ones())
            .sum();
        both + tail.iter().map(|w| w.count_ones()).sum::<u32>()
    }

    /// Whether no bit is set.
    #[cfg(test)]
    pub fn is_clear(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Clears every bit that is set in `other`.
    pub fn remove_all(&mut self, other: &BitSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    /// Number of set bits.
    #[cfg(test)]
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_grow() {
        let mut b = BitSet::with_len(10);
        assert!(!b.get(3));
        b.set(3, true);
        b.set(200, true);
        assert!(b.get(3) && b.get(200) && !b.get(199) && !b.get(100_000));
        assert_eq!(b.count(), 2);
        b.set(3, false);
        b.set(5000, false);
        assert!(!b.get(3));
        assert_eq!(b.count(), 1);
        let mut c = BitSet::with_len(300);
        c.set(200, true);
        c.set(7, true);
        c.remove_all(&b);
        assert!(c.get(7) && !c.get(200));
        for (first, len) in [
            (0, 300),
            (5, 3),
            (60, 10),
            (63, 1),
            (64, 64),
            (7, 0),
            (250, 500),
        ] {
            let want = (first..first + len).filter(|&i| c.get(i)).count() as u32;
            assert_eq!(c.count_range(first, len), want, "{first} {len}");
        }
        let mut u = BitSet::with_len(0);
        assert!(u.is_clear());
        u.union_with(&c);
        assert_eq!(u, c);
        assert!(!u.is_clear());
        c.set(64, true);
        c.set(127, true);
        assert_eq!(c.count_range(0, 128), 3);
        assert_eq!(c.count_range(64, 64), 2);
        // c = {7, 64, 127}; u = {7}.
        assert_eq!(c.count_without(&u), 2);
        assert_eq!(u.count_without(&c), 0);
        assert_eq!(c.count_without(&BitSet::default()), 3);
        let mut wide = BitSet::with_len(1000);
        wide.set(999, true);
        assert_eq!(wide.count_without(&c), 1);
        assert_eq!(c.count_without(&wide), 3);
        let mut d = BitSet::with_len(2000);
        d.copy_from(&c);
        assert_eq!(d, c);
        c.clear();
        assert!(c.is_clear());
        assert_eq!(c.count_range(0, 300), 0);
    }
}
