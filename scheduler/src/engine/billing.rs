//! Billing in Korean won: prices per class, per-org discounts, and monthly invoices whose
//! maths is the pure [`crate::core::invoice`]. Generating reads the month's ledger and job
//! usage from the database, then decides under the live lock like every other change.

use super::views::scoped_org;
use super::{Engine, audit, now};
use crate::auth::Caller;
use crate::core::invoice::{self, Flow, InvoiceError, JobUse, LedgerLine, Month, Subject};
use crate::core::utc_label;
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{
    Cursor, DiscountRow, InvoiceRow, InvoiceState, LedgerKind, LedgerRow, Mutation, OwnerKind,
    Page, PriceRow, RangeFilter, UsageRow,
};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model;
use berth_proto::time::{HOUR_MS, ms_to_ts, opt_ts};
use berth_proto::v1;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The highest price accepted, won per device-hour (a typo guard, far above any real one).
const MAX_KRW_PER_HOUR: i64 = 100_000_000;

/// The longest discount reason, in characters.
const MAX_REASON_CHARS: usize = 200;

/// Rows read per page when generating.
const READ_PAGE: u32 = 5_000;

/// A ledger entry as invoicing sees it; top-ups move budget hours, not device time, and
/// are not billed.
pub fn ledger_line(row: &LedgerRow) -> Option<LedgerLine> {
    let flow = match row.kind {
        LedgerKind::Charge => Flow::Charge,
        LedgerKind::Refund => Flow::Refund,
        LedgerKind::TopUp => return None,
    };
    let subject = match row.subject_kind? {
        OwnerKind::Reservation => Subject::Booking,
        OwnerKind::Job => Subject::Job,
    };
    Some(LedgerLine {
        org: row.org.clone(),
        project: row.project_id.clone(),
        class: row.device_class.clone(),
        flow,
        subject,
        subject_id: row.subject_id.clone(),
        device_ms: row.device_ms,
        time_ms: row.time_ms,
    })
}

/// A job's device time inside `[from, to)`; `None` for bookings.
pub fn job_use(row: &UsageRow, from: i64, to: i64) -> Option<JobUse> {
    if row.kind != OwnerKind::Job {
        return None;
    }
    let span = (row.end_ms.min(to) - row.start_ms.max(from)).max(0);
    Some(JobUse {
        org: row.org.clone(),
        class: row.class.clone(),
        device_ms: span * i64::from(row.devices.max(0)),
    })
}

/// The API's view of an invoice state.
pub fn state_proto(s: InvoiceState) -> v1::InvoiceState {
    match s {
        InvoiceState::Draft => v1::InvoiceState::Draft,
        InvoiceState::Issued => v1::InvoiceState::Issued,
        InvoiceState::Paid => v1::InvoiceState::Paid,
        InvoiceState::Void => v1::InvoiceState::Void,
    }
}

fn hours(ms: i64) -> f64 {
    ms as f64 / HOUR_MS as f64
}

/// An invoice as the API shows it.
pub fn invoice_proto(row: &InvoiceRow) -> v1::Invoice {
    v1::Invoice {
        id: row.id.clone(),
        org: row.org.clone(),
        month: row.month.clone(),
        state: state_proto(row.state) as i32,
        lines: row
            .lines
            .iter()
            .map(|l| v1::InvoiceLine {
                project: l.project.clone().unwrap_or_default(),
                class: l.class.clone(),
                kind: l.kind.as_str().to_owned(),
                hours: hours(l.device_ms),
                covered_hours: hours(l.covered_ms),
                billable_hours: hours(l.billable_ms),
                krw_per_hour: l.krw_per_hour,
                discount_percent: l.discount_percent,
                amount_krw: l.amount_krw,
                device_ms: l.device_ms,
                billable_ms: l.billable_ms,
            })
            .collect(),
        subtotal_krw: row.subtotal_krw,
        vat_percent: invoice::VAT_PERCENT as u32,
        vat_krw: row.vat_krw,
        total_krw: row.total_krw,
        discount_percent: row.discount_percent.max(0) as u32,
        discount_reason: row.discount_reason.clone(),
        period_start: Some(ms_to_ts(row.period_start_ms)),
        period_end: Some(ms_to_ts(row.period_end_ms)),
        created_at: Some(ms_to_ts(row.created_ms)),
        issued_at: opt_ts(row.issued_ms),
        paid_at: opt_ts(row.paid_ms),
        voided_at: opt_ts(row.voided_ms),
    }
}

/// A price as the API shows it.
pub fn price_proto(row: &PriceRow) -> v1::Price {
    v1::Price {
        class: row.class.clone(),
        krw_per_hour: row.krw_per_hour,
        idle_krw_per_hour: row.idle_krw_per_hour,
        updated_at: Some(ms_to_ts(row.updated_ms)),
    }
}

/// A discount as the API shows it.
pub fn discount_proto(row: &DiscountRow) -> v1::Discount {
    v1::Discount {
        org: row.org.clone(),
        percent: row.percent.max(0) as u32,
        reason: row.reason.clone(),
        updated_at: Some(ms_to_ts(row.updated_ms)),
    }
}

/// Whole won >= 0 (and not absurdly large).
fn won(field: &str, v: i64) -> Result<i64> {
    if v < 0 {
        Err(Error::field(field, text!(WonNotNegative, v)))
    } else if v > MAX_KRW_PER_HOUR {
        Err(Error::field(field, Msg::TooLarge))
    } else {
        Ok(v)
    }
}

/// Parses `YYYY-MM` from the request.
pub fn month(field: &str, s: &str) -> Result<Month> {
    Month::parse(s).ok_or_else(|| Error::field(field, text!(NotAMonth, month = ?s)))
}

/// An org that must exist.
pub(crate) fn known_org(state: &State, org: &str) -> Result<String> {
    let org = model::name("org", org)?;
    if state.orgs.contains_key(&org) {
        Ok(org)
    } else {
        Err(Error::field("org", text!(UnknownOrg, org = ?org)))
    }
}

/// The invoice the caller may see, or NOT_FOUND (the same for another org's).
fn visible(state: &State, caller: &Caller, id: &str) -> Result<Arc<InvoiceRow>> {
    state
        .invoices
        .get(id)
        .filter(|i| caller.can_see_org(&i.org))
        .cloned()
        .ok_or_else(|| Error::NotFound(text!(WhatInvoice, id = ?id)))
}

/// The prices as the invoice maths takes them.
pub(crate) fn price_table(state: &State) -> BTreeMap<String, invoice::Price> {
    state
        .prices
        .values()
        .map(|p| {
            (
                p.class.clone(),
                invoice::Price {
                    krw_per_hour: p.krw_per_hour,
                    idle_krw_per_hour: p.idle_krw_per_hour,
                },
            )
        })
        .collect()
}

/// What generating a month found: the invoices made and the orgs skipped.
#[derive(Debug, Default)]
pub struct Generated {
    /// New drafts.
    pub invoices: Vec<Arc<InvoiceRow>>,
    /// Orgs whose invoice of the month is already issued or paid: (org, invoice id, state).
    pub skipped: Vec<(String, String, InvoiceState)>,
}

impl Engine {
    /// Sets a class's price (admin).
    pub async fn set_price(&self, caller: &Caller, r: &v1::SetPriceRequest) -> Result<PriceRow> {
        caller.require_admin()?;
        let krw_per_hour = won("krw_per_hour", r.krw_per_hour)?;
        let idle_krw_per_hour = r
            .idle_krw_per_hour
            .map(|v| won("idle_krw_per_hour", v))
            .transpose()?;
        let class = model::name("class", &r.class)?;
        let t = now();
        self.commit(|tx| {
            super::check_class(&tx.state().classes, &class)?;
            let row = PriceRow {
                class: class.clone(),
                krw_per_hour,
                idle_krw_per_hour,
                updated_ms: t,
            };
            let idle = idle_krw_per_hour.map_or(String::new(), |v| format!(", idle {v}"));
            tx.push(Mutation::UpsertPrice(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "price.set",
                &format!("{class}: {krw_per_hour} KRW/h{idle}"),
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// Every class's price, by class (any signed-in user).
    pub fn list_prices(&self, caller: &Caller) -> Result<Vec<PriceRow>> {
        caller.require_user()?;
        Ok(self.view().prices.values().cloned().collect())
    }

    /// Sets an org's discount (admin).
    pub async fn set_discount(
        &self,
        caller: &Caller,
        r: &v1::SetDiscountRequest,
    ) -> Result<DiscountRow> {
        caller.require_admin()?;
        if r.percent > 100 {
            return Err(Error::field("percent", text!(PercentRange, v = r.percent)));
        }
        let reason = r.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(Error::field("reason", Msg::IsRequired));
        }
        model::no_control_characters("reason", &reason)?;
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::field("reason", Msg::TooLarge));
        }
        let t = now();
        self.commit(|tx| {
            let org = known_org(tx.state(), &r.org)?;
            let row = DiscountRow {
                org: org.clone(),
                percent: r.percent as i32,
                reason,
                updated_ms: t,
            };
            tx.push(Mutation::UpsertDiscount(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "discount.set",
                &format!("{org}: {}% ({})", row.percent, row.reason),
                t,
                "ok",
            )));
            Ok(row)
        })
        .await
    }

    /// Discounts the caller may see, by org.
    pub fn list_discounts(&self, caller: &Caller, org: &str) -> Result<Vec<DiscountRow>> {
        let org = scoped_org(caller, org)?;
        let state = self.view();
        Ok(state
            .discounts
            .values()
            .filter(|d| org.as_ref().is_none_or(|o| *o == d.org))
            .cloned()
            .collect())
    }

    /// The ledger lines and usage records of `[from, to)`, of one org or all, read a page
    /// at a time.
    pub(crate) async fn month_activity(
        &self,
        org: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<(Vec<LedgerLine>, Vec<UsageRow>)> {
        let filter = RangeFilter {
            org: org.map(str::to_owned),
            from_ms: from,
            to_ms: to,
            class: None,
        };
        let mut ledger = Vec::new();
        let mut page = Page::first(READ_PAGE);
        loop {
            let rows = self.store.list_ledger(&filter, &page).await?;
            ledger.extend(rows.iter().filter_map(ledger_line));
            match rows.last() {
                Some(last) if rows.len() == READ_PAGE as usize => {
                    page.after = Some(Cursor {
                        key: last.time_ms,
                        id: last.id.clone(),
                    });
                }
                _ => break,
            }
        }
        let mut used = Vec::new();
        let mut page = Page::first(READ_PAGE);
        loop {
            let rows = self.store.list_usage(&filter, &page).await?;
            used.extend(rows.iter().map(|(_, u)| u.clone()));
            match rows.last() {
                Some((id, last)) if rows.len() == READ_PAGE as usize => {
                    page.after = Some(Cursor {
                        key: last.start_ms,
                        id: id.to_string(),
                    });
                }
                _ => break,
            }
        }
        Ok((ledger, used))
    }

    /// Generates the draft invoices of a month that has ended (admin): for `org`, or for
    /// every org with ledger activity in the month.
    pub async fn generate_invoices(
        &self,
        caller: &Caller,
        r: &v1::GenerateInvoicesRequest,
    ) -> Result<Generated> {
        caller.require_admin()?;
        let m = month("month", &r.month)?;
        let (from, to) = m.bounds();
        let t = now();
        if t < to {
            return Err(Error::FailedPrecondition(text!(
                MonthNotEnded,
                month = m,
                end = utc_label(to)
            )));
        }
        let org = model::optional_name("org", &r.org)?;
        if let Some(o) = &org {
            self.peek_live(|s| known_org(s, o))?;
        }
        let (ledger, usage) = self.month_activity(org.as_deref(), from, to).await?;
        let used: Vec<JobUse> = usage.iter().filter_map(|u| job_use(u, from, to)).collect();
        let label = m.to_string();
        let generated = self
            .commit(|tx| {
                let orgs = match &org {
                    Some(o) => vec![o.clone()],
                    None => invoice::active_orgs(&ledger),
                };
                let state = tx.state();
                let mut out = Generated::default();
                let mut drafts = Vec::new();
                let mut blocked = Vec::new();
                let mut todo = Vec::new();
                for o in orgs {
                    let existing: Vec<&Arc<InvoiceRow>> = state
                        .invoices
                        .values()
                        .filter(|i| i.org == o && i.month == label)
                        .filter(|i| i.state != InvoiceState::Void)
                        .collect();
                    if let Some(kept) = existing.iter().find(|i| i.state != InvoiceState::Draft) {
                        out.skipped.push((o.clone(), kept.id.clone(), kept.state));
                        continue;
                    }
                    if !existing.is_empty() && !r.replace_drafts {
                        blocked.push(o.clone());
                    }
                    drafts.extend(existing.iter().map(|i| i.id.clone()));
                    todo.push(o);
                }
                if !blocked.is_empty() {
                    return Err(Error::FailedPrecondition(text!(
                        InvoicesExist,
                        month = label,
                        orgs = blocked.join(", ")
                    )));
                }
                let prices = price_table(state);
                let mut rows = Vec::new();
                for o in todo {
                    let discount = state.discounts.get(&o);
                    let percent = discount.map_or(0, |d| d.percent.clamp(0, 100) as u32);
                    let totals = invoice::compute(&o, &ledger, &used, &prices, percent).map_err(
                        |InvoiceError::NoPrice { class }| {
                            Error::FailedPrecondition(text!(
                                NoPriceFor,
                                org = ?o,
                                class = ?class,
                                name = class
                            ))
                        },
                    )?;
                    rows.push(Arc::new(InvoiceRow {
                        id: uuid::Uuid::new_v4().to_string(),
                        org: o.clone(),
                        month: label.clone(),
                        period_start_ms: from,
                        period_end_ms: to,
                        state: InvoiceState::Draft,
                        lines: totals.lines,
                        subtotal_krw: totals.subtotal_krw,
                        vat_krw: totals.vat_krw,
                        total_krw: totals.total_krw,
                        discount_percent: percent as i32,
                        discount_reason: discount.map(|d| d.reason.clone()).unwrap_or_default(),
                        created_ms: t,
                        issued_ms: None,
                        paid_ms: None,
                        voided_ms: None,
                    }));
                }
                for id in drafts {
                    tx.push(Mutation::DeleteInvoice { id: id.clone() });
                    tx.push(Mutation::Audit(audit(
                        caller,
                        "invoice.replace",
                        &id,
                        t,
                        "ok",
                    )));
                }
                for row in &rows {
                    tx.push(Mutation::UpsertInvoice(row.clone()));
                    tx.push(Mutation::Audit(audit(
                        caller,
                        "invoice.generate",
                        &format!(
                            "{} {} {}: {} KRW",
                            row.id, row.org, row.month, row.total_krw
                        ),
                        t,
                        "ok",
                    )));
                }
                out.invoices = rows;
                Ok(out)
            })
            .await?;
        tracing::info!(
            month = %label,
            invoices = generated.invoices.len(),
            skipped = generated.skipped.len(),
            "invoices generated"
        );
        Ok(generated)
    }

    /// Invoices the caller may see, newest month first, then by org.
    pub fn list_invoices(
        &self,
        caller: &Caller,
        r: &v1::ListInvoicesRequest,
    ) -> Result<Vec<Arc<InvoiceRow>>> {
        let org = scoped_org(caller, &r.org)?;
        let m = match r.month.as_str() {
            "" => None,
            s => Some(month("month", s)?.to_string()),
        };
        let state = self.view();
        let mut out: Vec<Arc<InvoiceRow>> = state
            .invoices
            .values()
            .filter(|i| org.as_ref().is_none_or(|o| *o == i.org))
            .filter(|i| m.as_ref().is_none_or(|m| *m == i.month))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (&b.month, &a.org, a.created_ms, &a.id).cmp(&(&a.month, &b.org, b.created_ms, &b.id))
        });
        Ok(out)
    }

    /// One invoice; another org's is NOT_FOUND.
    pub fn get_invoice(&self, caller: &Caller, id: &str) -> Result<Arc<InvoiceRow>> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        visible(&self.view(), caller, &id)
    }

    /// Issues, marks paid or voids an invoice (admin). Only the state and the time of the
    /// step change: lines and amounts never do.
    pub async fn set_invoice_state(
        &self,
        caller: &Caller,
        id: &str,
        to: v1::InvoiceState,
    ) -> Result<Arc<InvoiceRow>> {
        caller.require_admin()?;
        let id = model::id("id", id)?;
        let to = match to {
            v1::InvoiceState::Issued => InvoiceState::Issued,
            v1::InvoiceState::Paid => InvoiceState::Paid,
            v1::InvoiceState::Void => InvoiceState::Void,
            v1::InvoiceState::Draft | v1::InvoiceState::Unspecified => {
                return Err(Error::field("state", Msg::NotAnInvoiceState));
            }
        };
        let t = now();
        self.commit(|tx| {
            let current = visible(tx.state(), caller, &id)?;
            let mut next = (*current).clone();
            match (current.state, to) {
                (InvoiceState::Draft, InvoiceState::Issued) => next.issued_ms = Some(t),
                (InvoiceState::Issued, InvoiceState::Paid) => next.paid_ms = Some(t),
                (InvoiceState::Draft | InvoiceState::Issued, InvoiceState::Void) => {
                    next.voided_ms = Some(t)
                }
                (from, to) => {
                    return Err(Error::FailedPrecondition(text!(
                        InvoiceTransition,
                        id = ?id,
                        from = from.as_str(),
                        to = to.as_str()
                    )));
                }
            }
            next.state = to;
            let next = Arc::new(next);
            tx.push(Mutation::UpsertInvoice(next.clone()));
            if to == InvoiceState::Issued {
                super::notify::stage(
                    tx,
                    &super::notify::Event::Invoice {
                        org: next.org.clone(),
                        id: next.id.clone(),
                        month: next.month.clone(),
                        amount_krw: next.total_krw,
                    },
                );
            }
            let action = match to {
                InvoiceState::Issued => "invoice.issue",
                InvoiceState::Paid => "invoice.pay",
                _ => "invoice.void",
            };
            tx.push(Mutation::Audit(audit(
                caller,
                action,
                &format!("{id} {} {}", next.org, next.month),
                t,
                "ok",
            )));
            Ok(next)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_rows_map_to_lines_and_top_ups_are_not_billed() {
        let mut row = LedgerRow {
            id: "e".into(),
            org: "acme".into(),
            budget_class: "*".into(),
            time_ms: 5,
            kind: LedgerKind::Refund,
            amount_ms: 10,
            period_start_ms: 0,
            subject_kind: Some(OwnerKind::Reservation),
            subject_id: "r1".into(),
            device_class: "h100".into(),
            device_ms: 7,
            note: String::new(),
            project_id: None,
        };
        let l = ledger_line(&row).unwrap();
        assert_eq!(
            (l.flow, l.subject, l.class.as_str(), l.device_ms, l.project),
            (Flow::Refund, Subject::Booking, "h100", 7, None)
        );
        row.kind = LedgerKind::TopUp;
        assert_eq!(ledger_line(&row), None);
    }

    #[test]
    fn job_usage_is_clipped_to_the_month() {
        let u = UsageRow {
            org: "acme".into(),
            user_id: "u".into(),
            kind: OwnerKind::Job,
            subject_id: "j".into(),
            class: "gpu".into(),
            devices: 2,
            start_ms: 50,
            end_ms: 150,
            device_ms: 200,
            evidence: None,
        };
        assert_eq!(job_use(&u, 100, 1000).unwrap().device_ms, 100);
        assert_eq!(job_use(&u, 0, 1000).unwrap().device_ms, 200);
        let booking = UsageRow {
            kind: OwnerKind::Reservation,
            ..u
        };
        assert_eq!(job_use(&booking, 0, 1000), None);
    }
}
