//! One device's calendar: its claims as a sorted set of non-overlapping half-open intervals.
//!
//! Because the intervals never overlap, sorting them by start also sorts them by end, so every
//! question ("is `[s, e)` free?", "which claims touch `[s, e)`?") is a binary search.

/// One claim on one device: the window `[start, end)` held by an interned owner id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// First instant held (ms since the Unix epoch).
    pub start: i64,
    /// First instant no longer held.
    pub end: i64,
    /// Interned owner (reservation or job) id.
    pub owner: u32,
}

/// What [`Calendar::truncate_owner`] did to one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The claim started at or after the cut and was removed.
    Removed(Claim),
    /// The claim was shortened; the old claim and its new end.
    Shortened(Claim, i64),
}

/// The claims of one device, sorted by start, never overlapping, never empty intervals.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    claims: Vec<Claim>,
}

impl Calendar {
    /// All claims, sorted by start (and so by end).
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// Number of claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    /// Whether the device has no claims.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// Calls `open(a, b)` for each range `[a, b)` of start instants in `[start, horizon_end)`
    /// at which a window of `len` fits in a free gap of this calendar, in time order.
    /// Arithmetic is in `i128`, so any `i64` instants are safe.
    pub fn start_ranges(
        &self,
        start: i64,
        len: i128,
        horizon_end: i64,
        mut open: impl FnMut(i128, i128),
    ) {
        let (s, h) = (i128::from(start), i128::from(horizon_end));
        let (minus_inf, plus_inf) = (i128::from(i64::MIN) - 1, i128::from(i64::MAX) + 1);
        let claims = &self.claims;
        let mut i = self.first_ending_after(start);
        let mut gap_start = if i == 0 {
            minus_inf
        } else {
            i128::from(claims[i - 1].end)
        };
        loop {
            let gap_end = claims.get(i).map_or(plus_inf, |c| i128::from(c.start));
            let (a, b) = (gap_start.max(s), (gap_end - len).min(h - 1));
            if a <= b {
                open(a, b + 1);
            }
            let Some(c) = claims.get(i) else { break };
            gap_start = i128::from(c.end);
            if gap_start >= h {
                break;
            }
            i += 1;
        }
    }

    /// Index of the first claim that ends after `t` (every earlier claim ends at or before `t`).
    pub fn first_ending_after(&self, t: i64) -> usize {
        self.claims.partition_point(|c| c.end <= t)
    }

    /// Whether no claim overlaps `[start, end)`. An empty window is always free.
    pub fn is_free(&self, start: i64, end: i64) -> bool {
        if start >= end {
            return true;
        }
        let i = self.first_ending_after(start);
        i == self.claims.len() || self.claims[i].start >= end
    }

    /// The claims that overlap `[start, end)`, in order.
    pub fn overlapping(&self, start: i64, end: i64) -> &[Claim] {
        if start >= end {
            return &[];
        }
        let from = self.first_ending_after(start);
        let rest = &self.claims[from..];
        let n = rest.partition_point(|c| c.start < end);
        &rest[..n]
    }

    /// Inserts `claim` unless it is empty or overlaps an existing claim; returns whether it was inserted.
    pub fn insert(&mut self, claim: Claim) -> bool {
        if claim.start >= claim.end {
            return false;
        }
        let i = self.first_ending_after(claim.start);
        if i < self.claims.len() && self.claims[i].start < claim.end {
            return false;
        }
        self.claims.insert(i, claim);
        true
    }

    /// Whether any claim belongs to `owner`.
    pub fn has_owner(&self, owner: u32) -> bool {
        self.claims.iter().any(|c| c.owner == owner)
    }

    /// Removes every claim of `owner`, appending the removed claims to `removed`.
    pub fn remove_owner(&mut self, owner: u32, removed: &mut Vec<Claim>) {
        self.claims.retain(|c| {
            if c.owner == owner {
                removed.push(*c);
                false
            } else {
                true
            }
        });
    }

    /// Ends the claims of `owner` at `end`: claims starting at or after `end` are removed, claims
    /// running past `end` are shortened to end there. Appends what changed to `cuts`.
    pub fn truncate_owner(&mut self, owner: u32, end: i64, cuts: &mut Vec<Cut>) {
        self.claims.retain_mut(|c| {
            if c.owner != owner {
                return true;
            }
            if c.start >= end {
                cuts.push(Cut::Removed(*c));
                return false;
            }
            if c.end > end {
                cuts.push(Cut::Shortened(*c, end));
                c.end = end;
            }
            true
        });
    }

    /// Checks the calendar's own invariants (sorted, non-empty, non-overlapping).
    pub fn check(&self) -> Result<(), String> {
        for c in &self.claims {
            if c.start >= c.end {
                return Err(format!("empty claim [{}, {})", c.start, c.end));
            }
        }
        for w in self.claims.windows(2) {
            if w[0].end > w[1].start {
                return Err(format!(
                    "overlapping claims [{}, {}) and [{}, {})",
                    w[0].start, w[0].end, w[1].start, w[1].end
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: i64, end: i64, owner: u32) -> Claim {
        Claim { start, end, owner }
    }

    fn cal(claims: &[(i64, i64, u32)]) -> Calendar {
        let mut cal = Calendar::default();
        for &(s, e, o) in claims {
            assert!(cal.insert(c(s, e, o)));
        }
        cal
    }

    #[test]
    fn insert_refuses_overlaps_and_keeps_order() {
        let mut k = cal(&[(10, 20, 1), (30, 40, 2)]);
        assert!(!k.insert(c(15, 25, 3)));
        assert!(!k.insert(c(5, 11, 3)));
        assert!(!k.insert(c(19, 31, 3)));
        assert!(!k.insert(c(0, 100, 3)));
        assert!(!k.insert(c(25, 25, 3)), "empty claims are refused");
        assert!(k.insert(c(20, 30, 3)), "touching intervals do not overlap");
        assert!(k.insert(c(0, 10, 4)));
        assert!(k.insert(c(40, 50, 5)));
        let starts: Vec<i64> = k.claims().iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![0, 10, 20, 30, 40]);
        k.check().unwrap();
    }

    #[test]
    fn is_free_is_half_open() {
        let k = cal(&[(10, 20, 1)]);
        assert!(k.is_free(0, 10));
        assert!(k.is_free(20, 30));
        assert!(!k.is_free(19, 30));
        assert!(!k.is_free(0, 11));
        assert!(!k.is_free(12, 13));
        assert!(!k.is_free(0, 100));
        assert!(k.is_free(15, 15), "an empty window is free");
        assert!(Calendar::default().is_free(i64::MIN, i64::MAX));
    }

    #[test]
    fn overlapping_returns_exactly_the_touching_claims() {
        let k = cal(&[(0, 10, 1), (10, 20, 2), (30, 40, 3)]);
        let owners = |s, e| {
            k.overlapping(s, e)
                .iter()
                .map(|c| c.owner)
                .collect::<Vec<_>>()
        };
        assert_eq!(owners(5, 15), vec![1, 2]);
        assert_eq!(owners(20, 30), Vec::<u32>::new());
        assert_eq!(owners(19, 31), vec![2, 3]);
        assert_eq!(owners(-5, 100), vec![1, 2, 3]);
    }

    #[test]
    fn remove_and_truncate_touch_only_the_owner() {
        let mut k = cal(&[(0, 10, 1), (10, 20, 2), (20, 30, 1), (40, 50, 1)]);
        let mut cuts = Vec::new();
        k.truncate_owner(1, 25, &mut cuts);
        assert_eq!(
            cuts,
            vec![Cut::Shortened(c(20, 30, 1), 25), Cut::Removed(c(40, 50, 1))]
        );
        assert_eq!(k.claims(), &[c(0, 10, 1), c(10, 20, 2), c(20, 25, 1)]);
        let mut removed = Vec::new();
        k.remove_owner(1, &mut removed);
        assert_eq!(removed, vec![c(0, 10, 1), c(20, 25, 1)]);
        assert_eq!(k.claims(), &[c(10, 20, 2)]);
        assert!(!k.has_owner(1));
        assert!(k.has_owner(2));
    }

    #[test]
    fn truncate_at_start_removes_the_claim() {
        let mut k = cal(&[(10, 20, 1)]);
        let mut cuts = Vec::new();
        k.truncate_owner(1, 10, &mut cuts);
        assert_eq!(cuts, vec![Cut::Removed(c(10, 20, 1))]);
        assert!(k.is_empty());
    }
}
