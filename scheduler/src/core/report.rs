//! The monthly check per org and project: plain facts of one month in, one row per (org,
//! project) out, with flags that carry their figures. No clock, no I/O.

use super::invoice::{Flow, LedgerLine};
use std::collections::{BTreeMap, BTreeSet};

/// How many idle reclaims in a month raise a flag.
pub const REPEATED_RECLAIMS: u32 = 2;

/// What a job did on its devices (from the agent's evidence).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Time-weighted mean utilisation, percent.
    pub mean_utilization_percent: f64,
    /// Energy of its devices, watt-hours.
    pub energy_wh: f64,
}

/// A booking's part of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingFact {
    pub org: String,
    pub project: Option<String>,
    /// Device-ms it held inside the month.
    pub held_ms: i64,
    /// Reclaimed for idleness in the month: the device-ms of its window taken back.
    pub reclaimed_ms: Option<i64>,
    /// A job started in it.
    pub used: bool,
}

/// A job's part of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFact {
    pub org: String,
    pub project: Option<String>,
    /// Device-ms it used inside the month.
    pub used_ms: i64,
    /// `None` when its agent reported none.
    pub evidence: Option<Evidence>,
}

/// A project's grant for the month, device-ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub org: String,
    pub project: Option<String>,
    pub device_ms: i64,
}

/// A flag of the monthly check, with its figures.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    /// Mean utilisation under the threshold.
    LowUtilization { percent: f64, threshold: f64 },
    /// Idle reclaims in the month, at least [`REPEATED_RECLAIMS`].
    RepeatedIdleReclaim { count: u32 },
    /// Bookings in which no job started, and the device-ms they held.
    BookingsUnused { count: u32, held_ms: i64 },
}

impl Flag {
    /// `low-utilization`, `repeated-idle-reclaim` or `bookings-unused`.
    pub fn kind(&self) -> &'static str {
        match self {
            Flag::LowUtilization { .. } => "low-utilization",
            Flag::RepeatedIdleReclaim { .. } => "repeated-idle-reclaim",
            Flag::BookingsUnused { .. } => "bookings-unused",
        }
    }
}

/// One row of the monthly check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub org: String,
    pub project: Option<String>,
    /// `None`: no grant (or no projects).
    pub granted_ms: Option<i64>,
    pub booked_ms: i64,
    pub used_ms: i64,
    pub reclaimed_ms: i64,
    pub reclaims: u32,
    pub refunded_ms: i64,
    /// Device-time weighted over the jobs with evidence; `None` without any.
    pub mean_utilization_percent: Option<f64>,
    pub energy_wh: Option<f64>,
    pub flags: Vec<Flag>,
}

/// An (org, project) key.
type Key = (String, Option<String>);

/// The row of (org, project), made empty when new.
fn row<'a>(out: &'a mut BTreeMap<Key, Row>, org: &str, project: &Option<String>) -> &'a mut Row {
    out.entry((org.to_owned(), project.clone()))
        .or_insert_with(|| Row {
            org: org.to_owned(),
            project: project.clone(),
            ..Row::default()
        })
}

/// The rows of the month, sorted by org then project (org-paid first). Every org and
/// project with a grant, a booking, a job or a ledger entry has a row.
pub fn rows(
    ledger: &[LedgerLine],
    bookings: &[BookingFact],
    jobs: &[JobFact],
    grants: &[Grant],
    low_util_percent: f64,
) -> Vec<Row> {
    let mut out: BTreeMap<Key, Row> = BTreeMap::new();
    for g in grants {
        let r = row(&mut out, &g.org, &g.project);
        r.granted_ms = Some(r.granted_ms.unwrap_or(0) + g.device_ms);
    }
    let mut unused: BTreeMap<Key, (u32, i64)> = BTreeMap::new();
    for b in bookings {
        let r = row(&mut out, &b.org, &b.project);
        r.booked_ms += b.held_ms;
        if let Some(ms) = b.reclaimed_ms {
            r.reclaims += 1;
            r.reclaimed_ms += ms;
        }
        if !b.used {
            let u = unused
                .entry((b.org.clone(), b.project.clone()))
                .or_default();
            u.0 += 1;
            u.1 += b.held_ms;
        }
    }
    let mut util: BTreeMap<Key, (f64, i64)> = BTreeMap::new();
    let mut with_evidence: BTreeSet<Key> = BTreeSet::new();
    for j in jobs {
        let r = row(&mut out, &j.org, &j.project);
        r.used_ms += j.used_ms;
        if let Some(e) = j.evidence {
            r.energy_wh = Some(r.energy_wh.unwrap_or(0.0) + e.energy_wh);
            let key = (j.org.clone(), j.project.clone());
            let w = util.entry(key.clone()).or_default();
            w.0 += e.mean_utilization_percent * j.used_ms as f64;
            w.1 += j.used_ms;
            with_evidence.insert(key);
        }
    }
    for l in ledger {
        let r = row(&mut out, &l.org, &l.project);
        if l.flow == Flow::Refund {
            r.refunded_ms += l.device_ms;
        }
    }
    for (key, r) in out.iter_mut() {
        if with_evidence.contains(key) {
            let (sum, ms) = util.get(key).copied().unwrap_or((0.0, 0));
            r.mean_utilization_percent = Some(if ms > 0 { sum / ms as f64 } else { 0.0 });
        }
        if let Some(p) = r.mean_utilization_percent.filter(|p| *p < low_util_percent) {
            r.flags.push(Flag::LowUtilization {
                percent: p,
                threshold: low_util_percent,
            });
        }
        if r.reclaims >= REPEATED_RECLAIMS {
            r.flags
                .push(Flag::RepeatedIdleReclaim { count: r.reclaims });
        }
        if let Some(&(count, held_ms)) = unused.get(key) {
            r.flags.push(Flag::BookingsUnused { count, held_ms });
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::invoice::Subject;

    const H: i64 = 3_600_000;

    fn booking(held: i64, reclaimed: Option<i64>, used: bool) -> BookingFact {
        BookingFact {
            org: "acme".into(),
            project: None,
            held_ms: held * H,
            reclaimed_ms: reclaimed.map(|h| h * H),
            used,
        }
    }

    fn job(used: i64, util: Option<f64>) -> JobFact {
        JobFact {
            org: "acme".into(),
            project: None,
            used_ms: used * H,
            evidence: util.map(|u| Evidence {
                mean_utilization_percent: u,
                energy_wh: 100.0,
            }),
        }
    }

    #[test]
    fn figures_and_flags_of_a_month() {
        let refund = LedgerLine {
            org: "acme".into(),
            project: None,
            class: "gpu".into(),
            flow: Flow::Refund,
            subject: Subject::Booking,
            device_ms: 3 * H,
            time_ms: 0,
            subject_id: String::new(),
        };
        let rows = rows(
            &[refund],
            &[
                booking(4, Some(2), true),
                booking(2, Some(1), false),
                booking(1, None, true),
            ],
            // Weighted: (1 h x 10 % + 3 h x 30 %) / 4 h = 25 %; the job without evidence
            // counts for hours only.
            &[job(1, Some(10.0)), job(3, Some(30.0)), job(5, None)],
            &[Grant {
                org: "beta".into(),
                project: Some("p".into()),
                device_ms: 100 * H,
            }],
            30.0,
        );
        assert_eq!(rows.len(), 2);
        let acme = &rows[0];
        assert_eq!(acme.org, "acme");
        assert_eq!(
            (
                acme.booked_ms,
                acme.used_ms,
                acme.reclaimed_ms,
                acme.reclaims
            ),
            (7 * H, 9 * H, 3 * H, 2)
        );
        assert_eq!(acme.refunded_ms, 3 * H);
        assert_eq!(acme.mean_utilization_percent, Some(25.0));
        assert_eq!(acme.energy_wh, Some(200.0));
        assert_eq!(acme.granted_ms, None);
        assert_eq!(
            acme.flags,
            vec![
                Flag::LowUtilization {
                    percent: 25.0,
                    threshold: 30.0
                },
                Flag::RepeatedIdleReclaim { count: 2 },
                Flag::BookingsUnused {
                    count: 1,
                    held_ms: 2 * H
                },
            ]
        );
        let beta = &rows[1];
        assert_eq!(
            (beta.project.as_deref(), beta.granted_ms),
            (Some("p"), Some(100 * H))
        );
        assert!(beta.flags.is_empty());
        assert_eq!(beta.mean_utilization_percent, None);
    }

    #[test]
    fn no_flags_without_their_evidence() {
        let rows = rows(
            &[],
            &[booking(1, Some(1), true)],
            &[job(2, None)],
            &[],
            30.0,
        );
        assert_eq!(rows[0].reclaims, 1);
        assert!(rows[0].flags.is_empty(), "{:?}", rows[0].flags);
    }
}
