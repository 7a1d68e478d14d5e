//! Budget periods: UTC calendar days, ISO weeks (Monday first) and months.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// How often a budget's allowance renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// An ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// A UTC calendar month.
    #[default]
    Month,
}

impl Period {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// Parses `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The `[start, end)` of the period that contains `t`.
    pub fn bounds(self, t: i64) -> (i64, i64) {
        let day = t.div_euclid(DAY_MS);
        match self {
            Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday-based weekday is (day + 3) mod 7.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
            }
        }
    }
}

/// The `[start, end)` of calendar month `month` (1..=12) of `year` in UTC: the same
/// boundaries as a monthly budget period.
pub fn month_bounds(year: i64, month: u32) -> (i64, i64) {
    Period::Month.bounds(days_from_civil(year, month, 1) * DAY_MS)
}

/// `YYYY-MM-DD HH:MM UTC` for an instant, for messages from the core (which has no clock
/// or time-zone database).
pub fn utc_label(t: i64) -> String {
    let day = t.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(day);
    let minute = t.rem_euclid(DAY_MS) / 60_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minute / 60,
        minute % 60
    )
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21 12:34:56 UTC (a Saturday).
    const T: i64 = 1_795_264_496_000;

    #[test]
    fn months_follow_the_calendar() {
        let (s, e) = Period::Month.bounds(T);
        assert_eq!(utc_label(s), "2026-11-01 00:00 UTC");
        assert_eq!(utc_label(e), "2026-12-01 00:00 UTC");
        let (s, e) = Period::Month.bounds(e);
        assert_eq!(utc_label(s), "2026-12-01 00:00 UTC");
        assert_eq!(utc_label(e), "2027-01-01 00:00 UTC");
        // February of a leap year.
        let feb = days_from_civil(2028, 2, 10) * DAY_MS;
        let (s, e) = Period::Month.bounds(feb);
        assert_eq!((e - s) / DAY_MS, 29);
        assert_eq!(Period::Month.bounds(e - 1), (s, e));
    }

    #[test]
    fn weeks_start_on_monday_and_days_at_midnight() {
        let (s, e) = Period::Week.bounds(T);
        assert_eq!(utc_label(s), "2026-11-16 00:00 UTC");
        assert_eq!(utc_label(e), "2026-11-23 00:00 UTC");
        let (s, e) = Period::Day.bounds(T);
        assert_eq!(utc_label(s), "2026-11-21 00:00 UTC");
        assert_eq!(e - s, DAY_MS);
        // Before the epoch too.
        let (s, e) = Period::Day.bounds(-1);
        assert_eq!((s, e), (-DAY_MS, 0));
    }

    #[test]
    fn civil_round_trips() {
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(Period::parse("week"), Some(Period::Week));
        assert_eq!(Period::parse("year"), None);
        assert_eq!(Period::Month.as_str(), "month");
    }
}
