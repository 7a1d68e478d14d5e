//! Invoice maths in Korean won: plain inputs (the month's ledger lines, job usage, prices
//! and the org's discount) in, invoice lines and totals out. No clock, no I/O.
//!
//! The rules, stated once (and in `docs/billing.md`):
//! - A month is a UTC calendar month, the same boundaries as a monthly budget period.
//! - Hours are net charged device-hours: charges minus refunds whose ledger time falls in
//!   the month. Top-ups move budget hours, not device time, and are not billed.
//! - Lines group by project and class. Hours charged to a project are covered by its grant;
//!   hours without a project are billable.
//! - A line's amount is `billable hours x price x (100 - discount %) / 100`, rounded to whole
//!   won half away from zero (0.5 won up; a credit of -0.5 won to -1).
//! - VAT is 10 % of the subtotal (the sum of the rounded lines), rounded the same way,
//!   on its own line; the total is subtotal + VAT.

use super::period::month_bounds;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

/// VAT in percent of the subtotal.
pub const VAT_PERCENT: i64 = 10;

/// A calendar month (UTC), `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year, 1970..=9999.
    pub year: i32,
    /// The month, 1..=12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM` (years 1970 to 9999).
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (year, month) = (y.parse::<i32>().ok()?, m.parse::<u32>().ok()?);
        ((1970..=9999).contains(&year) && (1..=12).contains(&month))
            .then_some(Month { year, month })
    }

    /// The `[start, end)` of the month in UTC milliseconds.
    pub fn bounds(self) -> (i64, i64) {
        month_bounds(i64::from(self.year), self.month)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Whether a ledger line took device time or gave it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A booking confirmed or a job placed.
    Charge,
    /// Unused, faulted or reclaimed time given back.
    Refund,
}

/// What a ledger line or usage record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A booking (reservation).
    Booking,
    /// A queued job.
    Job,
}

/// One ledger entry as invoicing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLine {
    pub org: String,
    /// The project whose grant pays it; `None`: the org pays (billable).
    pub project: Option<String>,
    /// The device class used.
    pub class: String,
    pub flow: Flow,
    pub subject: Subject,
    /// The booking or job.
    pub subject_id: String,
    /// Raw device-milliseconds (always >= 0; the flow gives the sign).
    pub device_ms: i64,
    pub time_ms: i64,
}

/// Device time a job used inside the month, from usage records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUse {
    pub org: String,
    pub class: String,
    /// Device-milliseconds of the job inside the month.
    pub device_ms: i64,
}

/// A class's prices in whole won per device-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub krw_per_hour: i64,
    /// For booked hours no job used; `None`: the same as `krw_per_hour`.
    pub idle_krw_per_hour: Option<i64>,
}

/// What the hours of a line are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// Device time of jobs and bookings in use.
    Use,
    /// Booked hours no job used, at the class's idle price.
    Idle,
}

impl LineKind {
    /// `use` or `idle`.
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Use => "use",
            LineKind::Idle => "idle",
        }
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The project; `None`: paid by the org.
    pub project: Option<String>,
    pub class: String,
    pub kind: LineKind,
    /// Net device-milliseconds (may be negative: refunds this month of earlier charges).
    pub device_ms: i64,
    /// Of which covered by the project's grant.
    pub covered_ms: i64,
    /// Of which billable.
    pub billable_ms: i64,
    /// The price applied, won per device-hour.
    pub krw_per_hour: i64,
    /// The org's discount applied, percent.
    pub discount_percent: u32,
    /// Whole won, rounded half away from zero.
    pub amount_krw: i64,
}

/// An invoice's lines and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub lines: Vec<InvoiceLine>,
    /// Sum of the lines' amounts.
    pub subtotal_krw: i64,
    /// [`VAT_PERCENT`] of the subtotal, rounded half away from zero.
    pub vat_krw: i64,
    /// Subtotal + VAT.
    pub total_krw: i64,
}

/// Why an invoice cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceError {
    /// Billable hours of a class that has no price.
    NoPrice {
        /// The class.
        class: String,
    },
}

/// `num / den` rounded to the nearest integer, halves away from zero (`den > 0`).
pub fn div_round(num: i128, den: i128) -> i128 {
    debug_assert!(den > 0);
    let q = (num.abs() * 2 + den) / (den * 2);
    if num < 0 { -q } else { q }
}

/// Whole won for `billable_ms` at `krw_per_hour` less `discount_percent`.
pub fn line_amount(billable_ms: i64, krw_per_hour: i64, discount_percent: u32) -> i64 {
    let num = i128::from(billable_ms)
        * i128::from(krw_per_hour)
        * i128::from(100 - discount_percent.min(100));
    div_round(num, i128::from(HOUR_MS) * 100) as i64
}

/// VAT of a subtotal, whole won.
pub fn vat(subtotal_krw: i64) -> i64 {
    div_round(i128::from(subtotal_krw) * i128::from(VAT_PERCENT), 100) as i64
}

/// Booked device-ms no job used, per class, of the lines paid by the org: net booked time
/// minus the job time inside bookings (job usage beyond what queued jobs were charged),
/// never below zero nor above the booked time.
fn idle_ms(lines: &[&LedgerLine], used: &[&JobUse]) -> BTreeMap<String, i64> {
    let mut booked: BTreeMap<&str, i64> = BTreeMap::new();
    let mut queued: BTreeMap<&str, i64> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.project.is_none()) {
        let signed = signed_ms(l);
        match l.subject {
            Subject::Booking => *booked.entry(&l.class).or_default() += signed,
            Subject::Job => *queued.entry(&l.class).or_default() += signed,
        }
    }
    let mut jobs: BTreeMap<&str, i64> = BTreeMap::new();
    for u in used {
        *jobs.entry(&u.class).or_default() += u.device_ms;
    }
    booked
        .into_iter()
        .map(|(class, booked)| {
            let in_bookings = (jobs.get(class).copied().unwrap_or(0)
                - queued.get(class).copied().unwrap_or(0))
            .max(0);
            let idle = (booked - in_bookings).clamp(0, booked.max(0));
            (class.to_owned(), idle)
        })
        .collect()
}

fn signed_ms(l: &LedgerLine) -> i64 {
    match l.flow {
        Flow::Charge => l.device_ms,
        Flow::Refund => -l.device_ms,
    }
}

/// The invoice of `org` for the lines of one month (the caller filters them to the month).
///
/// `used` is job usage inside the month (for booked-but-idle hours, which only matter where
/// a class has an idle price). Lines come sorted by project (org-paid first), class, kind.
pub fn compute(
    org: &str,
    ledger: &[LedgerLine],
    used: &[JobUse],
    prices: &BTreeMap<String, Price>,
    discount_percent: u32,
) -> Result<Totals, InvoiceError> {
    let lines: Vec<&LedgerLine> = ledger.iter().filter(|l| l.org == org).collect();
    let used: Vec<&JobUse> = used.iter().filter(|u| u.org == org).collect();
    let mut net: BTreeMap<(Option<String>, String), i64> = BTreeMap::new();
    for l in &lines {
        *net.entry((l.project.clone(), l.class.clone())).or_default() += signed_ms(l);
    }
    let idle = idle_ms(&lines, &used);
    let discount = discount_percent.min(100);
    let mut out = Vec::new();
    for ((project, class), ms) in net {
        let price = prices.get(&class).copied();
        let covered = project.is_some();
        // Booked-but-idle hours are split off only where the class has an idle price.
        let idle_part = match (covered, price.and_then(|p| p.idle_krw_per_hour)) {
            (false, Some(_)) => idle.get(&class).copied().unwrap_or(0).min(ms.max(0)),
            _ => 0,
        };
        for (kind, part) in [(LineKind::Use, ms - idle_part), (LineKind::Idle, idle_part)] {
            if kind == LineKind::Idle && part == 0 {
                continue;
            }
            let (covered_ms, billable_ms) = if covered { (part, 0) } else { (0, part) };
            let krw_per_hour = match (price, kind) {
                (Some(p), LineKind::Idle) => p.idle_krw_per_hour.unwrap_or(p.krw_per_hour),
                (Some(p), LineKind::Use) => p.krw_per_hour,
                (None, _) if billable_ms == 0 => 0,
                (None, _) => return Err(InvoiceError::NoPrice { class }),
            };
            out.push(InvoiceLine {
                project: project.clone(),
                class: class.clone(),
                kind,
                device_ms: part,
                covered_ms,
                billable_ms,
                krw_per_hour,
                discount_percent: discount,
                amount_krw: line_amount(billable_ms, krw_per_hour, discount),
            });
        }
    }
    let subtotal_krw: i64 = out.iter().map(|l| l.amount_krw).sum();
    let vat_krw = vat(subtotal_krw);
    Ok(Totals {
        lines: out,
        subtotal_krw,
        vat_krw,
        total_krw: subtotal_krw + vat_krw,
    })
}

/// The orgs with ledger activity among `lines`, sorted.
pub fn active_orgs(lines: &[LedgerLine]) -> Vec<String> {
    let mut orgs: Vec<String> = lines.iter().map(|l| l.org.clone()).collect();
    orgs.sort();
    orgs.dedup();
    orgs
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;

    fn line(
        project: Option<&str>,
        class: &str,
        flow: Flow,
        subject: Subject,
        h: i64,
    ) -> LedgerLine {
        LedgerLine {
            org: "acme".into(),
            project: project.map(str::to_owned),
            class: class.into(),
            flow,
            subject,
            device_ms: h,
            time_ms: 0,
            subject_id: String::new(),
        }
    }

    fn prices(idle: Option<i64>) -> BTreeMap<String, Price> {
        BTreeMap::from([(
            "h100".to_owned(),
            Price {
                krw_per_hour: 3500,
                idle_krw_per_hour: idle,
            },
        )])
    }

    #[test]
    fn months_parse_strictly_and_use_utc_calendar_bounds() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.to_string(), "2026-11");
        let (s, e) = m.bounds();
        assert_eq!(super::super::utc_label(s), "2026-11-01 00:00 UTC");
        assert_eq!(super::super::utc_label(e), "2026-12-01 00:00 UTC");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "abcd-ef", "1969-12",
        ] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(-4, 10), 0);
        assert_eq!(div_round(15, 10), 2);
        // 1 ms at 3,500 won/h is 0.00097 won: nothing; half an hour at 1 won/h rounds up.
        assert_eq!(line_amount(1, 3500, 0), 0);
        assert_eq!(line_amount(H / 2, 1, 0), 1);
        assert_eq!(line_amount(-H / 2, 1, 0), -1);
        // 50 % off 3 won for one hour: 1.5 -> 2.
        assert_eq!(line_amount(H, 3, 50), 2);
        assert_eq!(line_amount(H, 3500, 100), 0);
        assert_eq!(vat(12_345), 1_235);
        assert_eq!(vat(12_344), 1_234);
        assert_eq!(vat(-15), -2);
    }

    #[test]
    fn net_hours_by_project_and_class_with_discount_and_vat() {
        let ledger = vec![
            line(None, "h100", Flow::Charge, Subject::Job, 10 * H),
            line(None, "h100", Flow::Refund, Subject::Job, 3 * H),
            line(Some("p1"), "h100", Flow::Charge, Subject::Booking, 5 * H),
            LedgerLine {
                org: "beta".into(),
                ..line(None, "h100", Flow::Charge, Subject::Job, 99 * H)
            },
        ];
        let t = compute("acme", &ledger, &[], &prices(None), 50).unwrap();
        assert_eq!(t.lines.len(), 2);
        let paid = &t.lines[0];
        assert_eq!(paid.project, None);
        assert_eq!(
            (paid.device_ms, paid.billable_ms, paid.covered_ms),
            (7 * H, 7 * H, 0)
        );
        // 7 h x 3,500 x 50 % = 12,250.
        assert_eq!(paid.amount_krw, 12_250);
        let granted = &t.lines[1];
        assert_eq!(granted.project.as_deref(), Some("p1"));
        assert_eq!(
            (granted.covered_ms, granted.billable_ms, granted.amount_krw),
            (5 * H, 0, 0)
        );
        assert_eq!(
            (t.subtotal_krw, t.vat_krw, t.total_krw),
            (12_250, 1_225, 13_475)
        );
        assert_eq!(
            active_orgs(&ledger),
            vec!["acme".to_owned(), "beta".to_owned()]
        );
    }

    #[test]
    fn idle_booked_hours_get_the_idle_price_only_when_one_is_set() {
        let ledger = vec![
            line(None, "h100", Flow::Charge, Subject::Booking, 8 * H),
            line(None, "h100", Flow::Charge, Subject::Job, 2 * H),
        ];
        // Jobs used 5 h: 2 h queued (charged), so 3 h inside the booking; 5 h idle.
        let used = vec![JobUse {
            org: "acme".into(),
            class: "h100".into(),
            device_ms: 5 * H,
        }];
        let t = compute("acme", &ledger, &used, &prices(Some(1000)), 0).unwrap();
        let kinds: Vec<(LineKind, i64, i64)> = t
            .lines
            .iter()
            .map(|l| (l.kind, l.device_ms / H, l.krw_per_hour))
            .collect();
        assert_eq!(
            kinds,
            vec![(LineKind::Use, 5, 3500), (LineKind::Idle, 5, 1000)]
        );
        assert_eq!(t.subtotal_krw, 5 * 3500 + 5 * 1000);
        // Hours are conserved: the lines add up to the net ledger.
        assert_eq!(t.lines.iter().map(|l| l.device_ms).sum::<i64>(), 10 * H);
        let plain = compute("acme", &ledger, &used, &prices(None), 0).unwrap();
        assert_eq!(plain.lines.len(), 1);
        assert_eq!(plain.subtotal_krw, 10 * 3500);
    }

    #[test]
    fn billable_hours_without_a_price_are_refused_but_covered_ones_are_not() {
        let ledger = vec![line(Some("p"), "npu", Flow::Charge, Subject::Job, H)];
        let t = compute("acme", &ledger, &[], &prices(None), 0).unwrap();
        assert_eq!(t.lines[0].krw_per_hour, 0);
        let ledger = vec![line(None, "npu", Flow::Charge, Subject::Job, H)];
        assert_eq!(
            compute("acme", &ledger, &[], &prices(None), 0),
            Err(InvoiceError::NoPrice {
                class: "npu".into()
            })
        );
    }

    #[test]
    fn refunds_of_earlier_months_make_a_credit() {
        let ledger = vec![line(None, "h100", Flow::Refund, Subject::Booking, 2 * H)];
        let t = compute("acme", &ledger, &[], &prices(Some(10)), 0).unwrap();
        assert_eq!(t.lines.len(), 1, "no idle split of a credit");
        assert_eq!(
            (t.subtotal_krw, t.vat_krw, t.total_krw),
            (-7000, -700, -7700)
        );
    }
}
