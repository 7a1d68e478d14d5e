//! Friendly times and durations: parsing what users type, printing what they read.
//!
//! Accepted times: `now`, `+2h` / `-30m` (relative to now), `2026-12-01 09:00` (local zone,
//! seconds optional, `T` also accepted), `2026-12-01` (local midnight) and RFC 3339.
//! Accepted durations: one or more `<number><unit>` with units `d`, `h`, `m`, `s`
//! (`8h`, `90m`, `1h30m`, `45s`, `2d`).
//!
//! The syntax itself is in [`syntax`] (pure); this module reads flags with it, in the
//! local zone and at the current time, and prints wire timestamps.
//!
//! Inside the CLI instants are milliseconds since the Unix epoch (like `berth_proto::time`).
//! Tables show local time; JSON shows RFC 3339 in UTC.

mod syntax;

pub use syntax::{format_duration, rfc3339};

use crate::error::Error;
use chrono::Local;
use prost_types::Timestamp;
use syntax::{DurationError, TimeError, parse_duration, parse_time_in, wall_clock_in};

/// Parses the value of a duration flag, naming the flag on error.
pub fn duration_flag(flag: &str, input: &str) -> Result<i64, Error> {
    parse_duration(input).map_err(|e| {
        let reason = match e {
            DurationError::Malformed => crate::error::tr(berth_i18n::cli::Msg::DurationFormats),
            DurationError::Overflow => "is too large",
        };
        Error::invalid(flag, input, reason)
    })
}

/// Parses the value of a duration flag that must be greater than zero.
pub fn positive_duration_flag(flag: &str, input: &str) -> Result<i64, Error> {
    let ms = duration_flag(flag, input)?;
    if ms <= 0 {
        return Err(Error::invalid(
            flag,
            input,
            crate::error::tr(berth_i18n::cli::Msg::MustBePositive),
        ));
    }
    Ok(ms)
}

/// Parses optional `--from` and `--to` flags and checks that `--to` is after `--from`.
pub fn range_flags(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), Error> {
    let start = from.map(|v| time_flag("--from", v)).transpose()?;
    let end = to.map(|v| time_flag("--to", v)).transpose()?;
    if let (Some(f), Some(t), Some(raw)) = (start, end, to)
        && t <= f
    {
        return Err(Error::invalid(
            "--to",
            raw,
            crate::error::tr(berth_i18n::cli::Msg::MustBeAfterFrom),
        ));
    }
    Ok((start, end))
}

/// Parses the value of a time flag in the local zone, naming the flag on error.
pub fn time_flag(flag: &str, input: &str) -> Result<i64, Error> {
    parse_time_in(input, berth_proto::time::now_ms(), &Local).map_err(|e| {
        let reason = match e {
            TimeError::Malformed => crate::error::tr(berth_i18n::cli::Msg::TimeFormats),
            TimeError::NotInLocalZone => "does not exist in the local time zone",
            TimeError::Overflow => "is out of range",
        };
        Error::invalid(flag, input, reason)
    })
}

/// Formats an instant for a table, in local time.
pub fn local(ms: i64) -> String {
    wall_clock_in(ms, &Local)
}

/// A wire timestamp as milliseconds; unset (or the zero epoch, which no server
/// field means) is `None`.
pub fn ts_ms(ts: Option<&Timestamp>) -> Option<i64> {
    ts.filter(|t| t.seconds != 0 || t.nanos != 0)
        .map(berth_proto::time::ts_to_ms)
}

/// A wire timestamp for a table, `-` when unset.
pub fn ts_local(ts: Option<&Timestamp>) -> String {
    ts_ms(ts).map_or_else(|| "-".to_owned(), local)
}

/// A wire timestamp for JSON, `None` (null) when unset.
pub fn ts_rfc3339(ts: Option<&Timestamp>) -> Option<String> {
    ts_ms(ts).map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_name_the_flag_and_the_problem() {
        let e = duration_flag("--duration", "8x").unwrap_err().to_string();
        assert_eq!(
            e,
            r#"invalid --duration "8x": expected a duration like 8h, 90m, 1h30m, 45s or 2d"#
        );
        let e = positive_duration_flag("--duration", "0s")
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"invalid --duration "0s": must be positive"#);
        let e = positive_duration_flag("--duration", "-1h")
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"invalid --duration "-1h": must be positive"#);
        assert_eq!(positive_duration_flag("--ttl", "1d").unwrap(), 86_400_000);
    }

    #[test]
    fn time_flags_name_the_flag_and_the_problem() {
        let e = time_flag("--start", "tomorrowish").unwrap_err().to_string();
        assert_eq!(
            e,
            r#"invalid --start "tomorrowish": expected now, +DURATION, "YYYY-MM-DD HH:MM" or RFC 3339"#
        );
    }

    #[test]
    fn wire_timestamps_print_in_utc_for_json() {
        let ts = berth_proto::time::ms_to_ts(1_796_083_200_000);
        assert_eq!(
            ts_rfc3339(Some(&ts)).as_deref(),
            Some("2026-12-01T00:00:00Z")
        );
        assert_eq!(ts_rfc3339(None), None);
        assert_eq!(ts_rfc3339(Some(&Timestamp::default())), None);
        assert_eq!(ts_local(None), "-");
    }
}
