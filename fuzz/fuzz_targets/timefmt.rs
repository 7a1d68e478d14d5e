//! Time and duration parsing of the CLI (`cli/src/timefmt/syntax.rs`, included as it is):
//! `--start now`, `+2h`, `"2026-12-01 09:00"`, RFC 3339, `--duration 8h`.
//!
//! Invariants: a parsed duration prints back (`format_duration`) to text that parses to
//! the same value; a relative time is now plus its duration; an RFC 3339 time prints
//! back to the same instant; a wall-clock time read in a fixed-offset zone prints back,
//! in that zone, to the same minute; with a fixed offset no time is "skipped by a
//! daylight-saving change"; nothing panics or overflows.

#![no_main]

#[allow(dead_code)]
#[path = "../../cli/src/timefmt/syntax.rs"]
mod syntax;

use arbitrary::{Result, Unstructured};
use berth_fuzz::{edgy_i64, pick};
use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use syntax::{
    DurationError, TimeError, format_duration, parse_duration, parse_time_in, rfc3339,
    wall_clock_in,
};

const NOW: i64 = 1_780_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let now = edgy_i64(&mut u, &[NOW, 0, -1, i64::MAX, i64::MIN])?;
    // Whole minutes, as the offsets of real zones are.
    let offset_min: i32 = u.int_in_range(-1439..=1439)?;
    let tz = FixedOffset::east_opt(offset_min * 60).expect("within a day");
    let text = pick(
        &mut u,
        &[
            "now",
            "+2h",
            "-30m",
            "1h30m",
            "8h",
            "2d",
            "9223372036854775s",
            "2026-12-01 09:00",
            "2026-12-01T09:00:30",
            "2026-12-01",
            "+262143-12-31 23:59",
            "262142-12-31 23:59",
            "-0001-01-01 00:00",
            "-262143-01-01",
            "2026-12-01T09:00:00+09:00",
            "2026-03-29 02:30",
        ],
    )?;
    let text = if u.arbitrary()? {
        let suffix: String = u.arbitrary()?;
        text + &suffix
    } else {
        text
    };
    check_duration(&text);
    check_time(&text, now, &tz);
    let ms: i64 = u.arbitrary()?;
    check_format(ms);
    Ok(())
}

fn check_duration(text: &str) {
    match parse_duration(text) {
        Ok(ms) => {
            assert_eq!(ms % 1000, 0, "{text:?}");
            let printed = format_duration(ms);
            assert_eq!(parse_duration(&printed), Ok(ms), "{text:?} -> {printed:?}");
        }
        Err(DurationError::Malformed | DurationError::Overflow) => {}
    }
}

fn check_time(text: &str, now: i64, tz: &FixedOffset) {
    let result = parse_time_in(text, now, tz);
    assert_ne!(
        result,
        Err(TimeError::NotInLocalZone),
        "a fixed offset skips no time: {text:?}"
    );
    let Ok(t) = result else { return };
    let s = text.trim();
    if s.eq_ignore_ascii_case("now") {
        assert_eq!(t, now);
    } else if s.starts_with('+') || s.starts_with('-') {
        let d = parse_duration(s).expect("a relative time is a duration");
        assert_eq!(Some(t), now.checked_add(d), "{text:?}");
    } else if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        let printed = rfc3339(t);
        assert_eq!(
            parse_time_in(&printed, now, tz),
            Ok(t),
            "{text:?} -> {printed:?}"
        );
    } else {
        // A wall-clock time: printed in the same zone it is the same minute.
        let printed = wall_clock_in(t, tz);
        assert_eq!(
            parse_time_in(&printed, now, tz),
            Ok(t - t.rem_euclid(60_000)),
            "{text:?} -> {printed:?}"
        );
    }
}

fn check_format(ms: i64) {
    let printed = format_duration(ms);
    assert_eq!(
        parse_duration(&printed),
        Ok(ms / 1000 * 1000),
        "{ms} -> {printed:?}"
    );
}
