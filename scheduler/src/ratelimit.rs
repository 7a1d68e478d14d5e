//! Per-tenant rate limits: a token bucket per organisation (users of one org share it)
//! and per node (its agent), so one tenant's flood cannot slow the others down. A call
//! over the limit is answered `RESOURCE_EXHAUSTED` at once, with a `retry-after-ms` hint.
//!
//! Calls are not all alike: a page of listings with large job specs costs the server
//! what a thousand small calls do. A list reply is therefore charged as one call per
//! [`REPLY_BYTES_PER_CALL`] of its encoded size ([`crate::auth::Charge`]), so a tenant
//! that pulls megabytes a call runs out of calls correspondingly sooner.

/// Encoded reply bytes one call covers; each further this-many bytes cost another call.
pub const REPLY_BYTES_PER_CALL: usize = 64 * 1024;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A rate and a burst, in calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Calls per second, sustained.
    pub per_second: f64,
    /// Calls at once after a quiet spell.
    pub burst: f64,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Buckets that refill at `rate`.
    pub fn new(rate: Rate) -> Self {
        RateLimiter {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Takes one call from `key`'s bucket; `Err(ms)` when it is empty, with the time until
    /// it holds one again.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Rate { per_second, burst } = self.rate;
        if per_second <= 0.0 {
            return Ok(()); // unlimited
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * per_second;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / per_second) * 1000.0).ceil().max(1.0) as u64)
        }
    }

    /// Charges `key` for `calls` more calls after the fact (a reply that cost the server
    /// as much as several calls). The bucket may go into debt, down to minus its burst;
    /// later calls wait it out.
    pub fn charge(&self, key: &str, calls: f64, now: Instant) {
        let Rate { per_second, burst } = self.rate;
        if per_second <= 0.0 || calls <= 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * per_second;
        *tokens = ((*tokens + refill).min(burst) - calls).max(-burst);
        *last = now;
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_keys_are_apart() {
        let l = RateLimiter::new(Rate {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("acme", t0), Ok(()));
        }
        let wait = l.take("acme", t0).unwrap_err();
        assert!((90..=100).contains(&wait), "{wait}");
        // Another tenant is not slowed by acme's flood.
        assert_eq!(l.take("globex", t0), Ok(()));
        // A tenth of a second later one more call is allowed, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.take("acme", t1), Ok(()));
        assert!(l.take("acme", t1).is_err());
        let unlimited = RateLimiter::new(Rate {
            per_second: 0.0,
            burst: 0.0,
        });
        assert_eq!(unlimited.take("x", t0), Ok(()));
    }

    #[test]
    fn a_costly_reply_is_charged_as_calls_and_its_debt_is_waited_out() {
        let l = RateLimiter::new(Rate {
            per_second: 10.0,
            burst: 5.0,
        });
        let t0 = Instant::now();
        assert_eq!(l.take("acme", t0), Ok(()));
        // Its reply cost as much as 20 calls: the bucket owes 5 (its floor), so the next
        // call waits for 6 tokens' worth of refill, 0.6 s.
        l.charge("acme", 20.0, t0);
        let wait = l.take("acme", t0).unwrap_err();
        assert!((590..=600).contains(&wait), "{wait}");
        assert_eq!(l.take("acme", t0 + Duration::from_millis(600)), Ok(()));
        // Others are not charged.
        assert_eq!(l.take("globex", t0), Ok(()));
    }
}
