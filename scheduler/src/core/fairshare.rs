//! Fair share: each org's past usage, decayed with a half-life, divided by its weight.
//!
//! The org with the lowest share goes first; placing a job adds its expected cost to its
//! org's share at once, so orgs interleave within one pass.

use std::collections::BTreeMap;

/// Usage decayed to `now`: `amount × 2^(−age / half_life)`. A non-positive half-life
/// forgets everything at once.
pub fn decay(amount: f64, age_ms: i64, half_life_ms: i64) -> f64 {
    if half_life_ms <= 0 {
        return if age_ms <= 0 { amount } else { 0.0 };
    }
    amount * (-(age_ms.max(0) as f64) / half_life_ms as f64).exp2()
}

/// Decayed usage per org, all as of one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The instant every value is decayed to.
    pub as_of: i64,
    /// The half-life used.
    pub half_life_ms: i64,
    by_org: BTreeMap<String, f64>,
}

impl Usage {
    /// Empty usage as of `as_of`.
    pub fn new(as_of: i64, half_life_ms: i64) -> Self {
        Self {
            as_of,
            half_life_ms,
            by_org: BTreeMap::new(),
        }
    }

    /// Adds `amount` (budget milliseconds) used up to instant `at`.
    pub fn add(&mut self, org: &str, amount: f64, at: i64) {
        let v = decay(amount, self.as_of - at, self.half_life_ms);
        *self.by_org.entry(org.to_owned()).or_default() += v;
    }

    /// The org's decayed usage.
    pub fn get(&self, org: &str) -> f64 {
        self.by_org.get(org).copied().unwrap_or(0.0)
    }

    /// Every org with usage.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.by_org.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// An org's fair-share key: usage divided by weight (weights below a minimum count as it).
pub fn share(usage: f64, weight: f64) -> f64 {
    usage / weight.max(1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn usage_halves_every_half_life() {
        assert_eq!(decay(100.0, 0, H), 100.0);
        assert!((decay(100.0, H, H) - 50.0).abs() < 1e-9);
        assert!((decay(100.0, 3 * H, H) - 12.5).abs() < 1e-9);
        assert_eq!(decay(100.0, H, 0), 0.0);
        assert_eq!(decay(100.0, -H, H), 100.0, "future usage does not grow");
    }

    #[test]
    fn weights_divide_usage() {
        let mut u = Usage::new(10 * H, H);
        u.add("a", 100.0, 10 * H);
        u.add("b", 400.0, 8 * H);
        assert_eq!(u.get("a"), 100.0);
        assert!((u.get("b") - 100.0).abs() < 1e-9);
        assert!(share(u.get("a"), 2.0) < share(u.get("b"), 1.0));
        assert_eq!(u.get("nobody"), 0.0);
        assert_eq!(u.iter().count(), 2);
    }
}
