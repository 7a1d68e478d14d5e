//! Conversions between wire times (`Timestamp`, `Duration`) and milliseconds.
//!
//! Inside Berth every instant is a [`UnixMs`] (milliseconds since the Unix epoch, UTC)
//! and every span an `i64` of milliseconds: cheap to compare, exact, and the same in
//! SQLite and PostgreSQL.

use prost_types::{Duration, Timestamp};

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMs = i64;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Converts a wire timestamp to milliseconds (sub-millisecond precision is dropped).
pub fn ts_to_ms(ts: &Timestamp) -> UnixMs {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// Converts milliseconds to a wire timestamp.
pub fn ms_to_ts(ms: UnixMs) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Converts an optional millisecond value to an optional wire timestamp.
pub fn opt_ts(ms: Option<UnixMs>) -> Option<Timestamp> {
    ms.map(ms_to_ts)
}

/// Converts a wire duration to milliseconds.
pub fn dur_to_ms(d: &Duration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos) / 1_000_000)
}

/// Converts milliseconds to a wire duration.
pub fn ms_to_dur(ms: i64) -> Duration {
    Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// The current time in milliseconds.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_epoch() {
        for ms in [0, 1, 999, 1000, 1_764_000_000_123, -1, -1001] {
            assert_eq!(ts_to_ms(&ms_to_ts(ms)), ms, "{ms}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for ms in [0, 1, 1500, HOUR_MS, -2500] {
            assert_eq!(dur_to_ms(&ms_to_dur(ms)), ms, "{ms}");
        }
    }
}
