//! The monthly check (`berth admin report`): the month's ledger, usage, bookings and jobs
//! read from the database, the figures and flags from the pure [`crate::core::report`],
//! and the amount due from the month's invoices (or computed as an invoice would be).

use super::Engine;
use super::billing::{job_use, known_org, month, price_table};
use crate::auth::Caller;
use crate::core::invoice;
use crate::core::report::{self, BookingFact, Flag, JobFact};
use crate::error::{Error, Result};
use crate::store::{
    Cursor, InvoiceState, JobFilter, OwnerKind, Page, ReservationRow, ReservationState, UsageRow,
};
use berth_i18n::text;
use berth_proto::model;
use berth_proto::time::{HOUR_MS, ms_to_ts};
use berth_proto::v1;
use std::collections::{BTreeMap, BTreeSet};

/// The default utilisation threshold, percent.
pub const DEFAULT_LOW_UTIL: f64 = 30.0;

/// Jobs read per page.
const READ_PAGE: u32 = 5_000;

fn hours(ms: i64) -> f64 {
    ms as f64 / HOUR_MS as f64
}

/// A booking's facts in `[from, to)`, from its usage record and its row.
fn booking_fact(
    u: &UsageRow,
    row: Option<&ReservationRow>,
    used: &BTreeSet<String>,
    from: i64,
    to: i64,
) -> BookingFact {
    let held_ms = (u.end_ms.min(to) - u.start_ms.max(from)).max(0) * i64::from(u.devices.max(0));
    // Reclaimed in the month: its record ends where the reclaim cut it.
    let reclaimed_ms = row
        .filter(|r| r.state == ReservationState::Reclaimed)
        .filter(|_| (from..to).contains(&u.end_ms))
        .map(|r| (r.end_ms - u.end_ms).max(0) * i64::from(r.count.max(0)));
    BookingFact {
        org: u.org.clone(),
        project: row.and_then(|r| r.charge.project.clone()),
        held_ms,
        reclaimed_ms,
        used: used.contains(&u.subject_id),
    }
}

fn flag_proto(f: &Flag) -> v1::ReportFlag {
    let mut p = v1::ReportFlag {
        kind: f.kind().to_owned(),
        ..Default::default()
    };
    match *f {
        Flag::LowUtilization { percent, threshold } => {
            p.value = percent;
            p.threshold = threshold;
        }
        Flag::RepeatedIdleReclaim { count } => p.count = count,
        Flag::BookingsUnused { count, held_ms } => {
            p.count = count;
            p.hours = hours(held_ms);
        }
    }
    p
}

impl Engine {
    /// The bookings started jobs ran in, among jobs created at or after `since_ms`: live
    /// jobs from the committed state, ended ones from the database's index of ended jobs
    /// (memory first, as listings read them, so that no job ending meanwhile is missed).
    async fn bookings_with_jobs(
        &self,
        org: Option<&str>,
        since_ms: i64,
    ) -> Result<BTreeSet<String>> {
        let mut out: BTreeSet<String> = self
            .view()
            .jobs
            .values()
            .map(|j| &j.row)
            .filter(|j| org.is_none_or(|o| j.org == o) && j.created_ms >= since_ms)
            .filter(|j| j.started_ms.is_some())
            .filter_map(|j| j.reservation_id.clone())
            .collect();
        let filter = JobFilter {
            org: org.map(str::to_owned),
            include_finished: true,
            since_ms: Some(since_ms),
            ended_only: true,
            ..Default::default()
        };
        let mut page = Page::first(READ_PAGE);
        loop {
            let jobs = self.store.list_jobs(&filter, &page).await?;
            out.extend(
                jobs.iter()
                    .filter(|j| j.started_ms.is_some())
                    .filter_map(|j| j.reservation_id.clone()),
            );
            match jobs.last() {
                Some(last) if jobs.len() == READ_PAGE as usize => {
                    page.after = Some(Cursor {
                        key: last.created_ms,
                        id: last.id.clone(),
                    });
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// The monthly check of every org with activity in the month, or of one (admin).
    pub async fn monthly_report(
        &self,
        caller: &Caller,
        r: &v1::MonthlyReportRequest,
    ) -> Result<v1::MonthlyReportResponse> {
        caller.require_admin()?;
        let m = month("month", &r.month)?;
        let (from, to) = m.bounds();
        let low = r.low_util_percent.unwrap_or(DEFAULT_LOW_UTIL);
        if !(0.0..=100.0).contains(&low) {
            return Err(Error::field(
                "low_util_percent",
                text!(PercentRange, v = low),
            ));
        }
        let org = model::optional_name("org", &r.org)?;
        if let Some(o) = &org {
            self.peek_live(|s| known_org(s, o))?;
        }
        let (ledger, usage) = self.month_activity(org.as_deref(), from, to).await?;
        // The bookings of the month and the rows that say how each ended.
        let booked: Vec<&UsageRow> = usage
            .iter()
            .filter(|u| u.kind == OwnerKind::Reservation)
            .collect();
        let mut rows: BTreeMap<String, ReservationRow> = BTreeMap::new();
        for u in &booked {
            if !rows.contains_key(&u.subject_id)
                && let Some(row) = self.store.get_reservation(&u.subject_id).await?
            {
                rows.insert(row.id.clone(), row);
            }
        }
        let used = match rows.values().map(|r| r.created_ms).min() {
            Some(since) => self.bookings_with_jobs(org.as_deref(), since).await?,
            None => BTreeSet::new(),
        };
        let bookings: Vec<BookingFact> = booked
            .iter()
            .map(|u| booking_fact(u, rows.get(&u.subject_id), &used, from, to))
            .collect();
        // The project each job's charge drew on, from the ledger.
        let paid_by: BTreeMap<&str, &str> = ledger
            .iter()
            .filter_map(|l| Some((l.subject_id.as_str(), l.project.as_deref()?)))
            .collect();
        let jobs: Vec<JobFact> = usage
            .iter()
            .filter_map(|u| {
                let j = job_use(u, from, to)?;
                Some(JobFact {
                    org: j.org,
                    project: paid_by.get(u.subject_id.as_str()).map(|p| (*p).to_owned()),
                    used_ms: j.device_ms,
                    evidence: u.evidence.as_ref().map(|e| report::Evidence {
                        mean_utilization_percent: e.mean_utilization_percent,
                        energy_wh: e.energy_wh,
                    }),
                })
            })
            .collect();
        // Every project whose period overlaps the month, with its whole grant.
        let grants: Vec<report::Grant> = self.peek_live(|s| {
            s.projects
                .values()
                .filter(|p| org.as_deref().is_none_or(|o| p.org == o))
                .filter(|p| p.state != crate::store::ProjectState::Requested)
                .filter(|p| p.start_ms < to && from < p.end_ms)
                .map(|p| report::Grant {
                    org: p.org.clone(),
                    project: Some(p.id.clone()),
                    device_ms: p.grants.iter().map(|g| g.device_ms).sum(),
                })
                .collect()
        });
        let figures = report::rows(&ledger, &bookings, &jobs, &grants, low);
        let job_uses: Vec<invoice::JobUse> =
            usage.iter().filter_map(|u| job_use(u, from, to)).collect();
        let label = m.to_string();
        let state = self.view();
        let prices = price_table(&state);
        let rows = figures
            .iter()
            .map(|f| {
                let due = if f.project.is_some() {
                    None
                } else {
                    let issued: Vec<i64> = state
                        .invoices
                        .values()
                        .filter(|i| i.org == f.org && i.month == label)
                        .filter(|i| i.state != InvoiceState::Void)
                        .map(|i| i.total_krw)
                        .collect();
                    if issued.is_empty() {
                        let discount = state
                            .discounts
                            .get(&f.org)
                            .map_or(0, |d| d.percent.clamp(0, 100) as u32);
                        invoice::compute(&f.org, &ledger, &job_uses, &prices, discount)
                            .ok()
                            .map(|t| (t.total_krw, "computed"))
                    } else {
                        Some((issued.iter().sum(), "invoice"))
                    }
                };
                v1::ReportRow {
                    org: f.org.clone(),
                    project: f.project.clone().unwrap_or_default(),
                    granted_hours: f.granted_ms.map(hours),
                    booked_hours: hours(f.booked_ms),
                    used_hours: hours(f.used_ms),
                    idle_reclaimed_hours: hours(f.reclaimed_ms),
                    idle_reclaims: f.reclaims,
                    refunded_hours: hours(f.refunded_ms),
                    mean_utilization_percent: f.mean_utilization_percent,
                    energy_wh: f.energy_wh,
                    amount_due_krw: due.map(|d| d.0),
                    amount_source: due.map(|d| d.1.to_owned()).unwrap_or_default(),
                    flags: f.flags.iter().map(flag_proto).collect(),
                }
            })
            .collect();
        Ok(v1::MonthlyReportResponse {
            month: label,
            period_start: Some(ms_to_ts(from)),
            period_end: Some(ms_to_ts(to)),
            low_util_percent: low,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reclaimed_booking_gives_back_the_rest_of_its_window() {
        let u = UsageRow {
            org: "acme".into(),
            user_id: "u".into(),
            kind: OwnerKind::Reservation,
            subject_id: "r1".into(),
            class: "gpu".into(),
            devices: 2,
            start_ms: 100,
            end_ms: 400,
            device_ms: 600,
            evidence: None,
        };
        let row = ReservationRow {
            id: "r1".into(),
            org: "acme".into(),
            user_id: "u".into(),
            user_name: "alice".into(),
            class: "gpu".into(),
            count: 2,
            site: None,
            start_ms: 100,
            end_ms: 1000,
            state: ReservationState::Reclaimed,
            reason: String::new(),
            devices: vec![],
            created_ms: 0,
            charge: Default::default(),
            idle_since_ms: None,
            idle_warned_ms: None,
            project: None,
        };
        let used = BTreeSet::from(["r2".to_owned()]);
        let b = booking_fact(&u, Some(&row), &used, 0, 2000);
        assert_eq!(
            (b.held_ms, b.reclaimed_ms, b.used),
            (600, Some(1200), false)
        );
        // Clipped to the month; reclaimed outside it does not count.
        let b = booking_fact(&u, Some(&row), &used, 200, 300);
        assert_eq!((b.held_ms, b.reclaimed_ms), (200, None));
        let done = ReservationRow {
            state: ReservationState::Completed,
            ..row
        };
        assert_eq!(
            booking_fact(&u, Some(&done), &used, 0, 2000).reclaimed_ms,
            None
        );
    }
}
