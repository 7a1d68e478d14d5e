//! The syntax of times and durations, pure: what users type into milliseconds, and
//! milliseconds back into what they read. No clock, no I/O and nothing of the CLI
//! beyond `chrono`, so the fuzz targets (`fuzz/fuzz_targets/timefmt.rs`) include this
//! file as it is.
//!
//! Times: `now`, `+2h` / `-30m` (relative to a given now), `2026-12-01 09:00` (in a given
//! zone, seconds optional, `T` also accepted), `2026-12-01` (midnight) and RFC 3339.
//! Durations: one or more `<number><unit>` with units `d`, `h`, `m`, `s`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Why a duration did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not of the accepted form.
    Malformed,
    /// Too large to represent.
    Overflow,
}

/// Why a time did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not of any accepted form.
    Malformed,
    /// A local wall-clock time skipped by a daylight-saving change.
    NotInLocalZone,
    /// Outside the representable range.
    Overflow,
}

/// Parses a duration into milliseconds. A leading `-` gives a negative value, which
/// callers that need a positive span refuse (see [`positive_duration_flag`]).
pub fn parse_duration(input: &str) -> Result<i64, DurationError> {
    let s = input.trim();
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() {
        return Err(DurationError::Malformed);
    }
    let mut total: i64 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed);
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(DurationError::Malformed);
        }
        let (unit, after) = after.split_at(unit_len);
        let unit_ms = match unit {
            "d" => DAY_MS,
            "h" => HOUR_MS,
            "m" => MINUTE_MS,
            "s" => SECOND_MS,
            _ => return Err(DurationError::Malformed),
        };
        let value: i64 = number.parse().map_err(|_| DurationError::Overflow)?;
        total = value
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or(DurationError::Overflow)?;
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

/// Parses a time at `now_ms`, reading wall-clock forms in `tz`.
pub fn parse_time_in<Tz: TimeZone>(input: &str, now_ms: i64, tz: &Tz) -> Result<i64, TimeError> {
    let s = input.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if s.starts_with('+') || s.starts_with('-') {
        let offset = parse_duration(s).map_err(|e| match e {
            DurationError::Malformed => TimeError::Malformed,
            DurationError::Overflow => TimeError::Overflow,
        })?;
        return now_ms.checked_add(offset).ok_or(TimeError::Overflow);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    const WALL_CLOCK: [&str; 4] = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let naive = WALL_CLOCK
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or(TimeError::Malformed)?;
    // An ambiguous time (clocks going back) takes the earlier instant.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or(TimeError::NotInLocalZone)
}

/// Formats an instant for a table in `tz`: `2026-12-01 09:00`.
pub fn wall_clock_in<Tz: TimeZone>(ms: i64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        None => ms.to_string(),
    }
}

/// Formats an instant as RFC 3339 in UTC: `2026-12-01T00:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// Formats a span in the syntax [`parse_duration`] reads: `1h30m`, `2d`, `45s`, `0s`.
/// Milliseconds below a second are dropped.
pub fn format_duration(ms: i64) -> String {
    if ms < 0 {
        return format!("-{}", format_duration(ms.saturating_neg()));
    }
    let mut rest = ms / SECOND_MS;
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= secs {
            out.push_str(&format!("{}{unit}", rest / secs));
            rest %= secs;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    const NOW: i64 = 1_780_000_000_000; // 2026-05-28T20:26:40Z

    fn kst() -> FixedOffset {
        FixedOffset::east_opt(9 * 3600).unwrap()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("8h"), Ok(8 * HOUR_MS));
        assert_eq!(parse_duration("90m"), Ok(90 * MINUTE_MS));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MINUTE_MS));
        assert_eq!(parse_duration("45s"), Ok(45 * SECOND_MS));
        assert_eq!(parse_duration("2d"), Ok(2 * DAY_MS));
        assert_eq!(
            parse_duration("1d2h3m4s"),
            Ok(DAY_MS + 2 * HOUR_MS + 3 * MINUTE_MS + 4000)
        );
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("+2h"), Ok(2 * HOUR_MS));
        assert_eq!(parse_duration("-1h"), Ok(-HOUR_MS));
        assert_eq!(parse_duration(" 3m "), Ok(3 * MINUTE_MS));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "", "-", "+", "90", "h", "8x", "1.5h", "1h30", "8 h", "1hh", "ms", "1H", "--1h",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("9999999999999999d"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn relative_times() {
        assert_eq!(parse_time_in("now", NOW, &Utc), Ok(NOW));
        assert_eq!(parse_time_in("NOW", NOW, &Utc), Ok(NOW));
        assert_eq!(parse_time_in("+2h", NOW, &Utc), Ok(NOW + 2 * HOUR_MS));
        assert_eq!(parse_time_in("+30m", NOW, &Utc), Ok(NOW + 30 * MINUTE_MS));
        assert_eq!(parse_time_in("+1d", NOW, &Utc), Ok(NOW + DAY_MS));
        assert_eq!(parse_time_in("-7d", NOW, &Utc), Ok(NOW - 7 * DAY_MS));
    }

    #[test]
    fn wall_clock_times_are_local() {
        // 2026-12-01 09:00 in Seoul is 00:00 UTC.
        let utc_midnight = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_time_in("2026-12-01 09:00", NOW, &kst()),
            Ok(utc_midnight)
        );
        assert_eq!(
            parse_time_in("2026-12-01T09:00", NOW, &kst()),
            Ok(utc_midnight)
        );
        assert_eq!(
            parse_time_in("2026-12-01 09:00:30", NOW, &kst()),
            Ok(utc_midnight + 30_000)
        );
        assert_eq!(parse_time_in("2026-12-01", NOW, &Utc), Ok(utc_midnight));
        assert_eq!(
            parse_time_in("2026-12-01", NOW, &kst()),
            Ok(utc_midnight - 9 * HOUR_MS)
        );
    }

    #[test]
    fn rfc3339_times_carry_their_own_zone() {
        let t = parse_time_in("2026-12-01T09:00:00+09:00", NOW, &Utc).unwrap();
        assert_eq!(rfc3339(t), "2026-12-01T00:00:00Z");
        assert_eq!(
            parse_time_in("2026-12-01T00:00:00.250Z", NOW, &kst()),
            Ok(t + 250)
        );
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            "tomorrowish",
            "",
            "+",
            "+2x",
            "2026-13-01",
            "2026-12-32 09:00",
            "2026-12-01 25:00",
            "01/12/2026",
            "09:00",
            "now+1h",
        ] {
            assert_eq!(
                parse_time_in(bad, NOW, &Utc),
                Err(TimeError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn times_print_local_in_tables_and_utc_in_json() {
        let t = parse_time_in("2026-12-01T00:00:00Z", NOW, &Utc).unwrap();
        assert_eq!(wall_clock_in(t, &kst()), "2026-12-01 09:00");
        assert_eq!(wall_clock_in(t, &Utc), "2026-12-01 00:00");
        assert_eq!(rfc3339(t), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(t + 5), "2026-12-01T00:00:00.005Z");
    }

    #[test]
    fn durations_print_in_the_syntax_they_are_read() {
        for (ms, text) in [
            (0, "0s"),
            (45 * SECOND_MS, "45s"),
            (90 * MINUTE_MS, "1h30m"),
            (2 * DAY_MS, "2d"),
            (DAY_MS + 4 * SECOND_MS, "1d4s"),
            (-HOUR_MS, "-1h"),
        ] {
            assert_eq!(format_duration(ms), text);
            assert_eq!(parse_duration(text), Ok(ms / 1000 * 1000));
        }
    }
}
