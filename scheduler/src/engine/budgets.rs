//! Budgets, the ledger, fair-share weights, class rates and the scheduling policy
//! (admin), and the views users get of their own org's budgets.

use super::{Engine, SchedPolicy, audit, now};
use crate::auth::Caller;
use crate::convert::hours as ms_hours;
use crate::core::{ANY, Period};
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{BudgetRow, LedgerKind, LedgerRow, Mutation, PolicyRow};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::time::{HOUR_MS, dur_to_ms, ms_to_dur, ms_to_ts, opt_ts, ts_to_ms};
use berth_proto::v1;

/// Hours from the API to budget milliseconds (rounded to the nearest ms).
fn hours_ms(hours: f64) -> i64 {
    (hours * HOUR_MS as f64).round() as i64
}

/// The most weights and rates may be.
const MAX_FACTOR: f64 = 1000.0;

/// A budget as the API shows it, with the balance of the period containing `now`.
///
/// `devices_held` is what the org holds right now in the budget's class; for a `*`
/// budget it is the sum over every class (that budget's cap is the org-wide one).
pub(crate) fn budget_view(state: &State, row: &BudgetRow, now: i64) -> v1::Budget {
    let period = Period::parse(&row.period).unwrap_or_default();
    let (start, end) = period.bounds(now);
    let totals = state.accounts.totals(&row.org, &row.class, start);
    let held = |class: &str| {
        state
            .accounts
            .holdings(&row.org, class)
            .map_or(0, |h| h.peak(now, now + 1))
    };
    let devices_held = if row.class == ANY {
        state.classes.keys().map(|c| held(c)).sum()
    } else {
        held(&row.class)
    };
    v1::Budget {
        org: row.org.clone(),
        class: row.class.clone(),
        period: period.as_str().to_owned(),
        hours: row.allowance_ms.map(ms_hours),
        max_devices: row.max_devices.map(|n| n.max(0) as u32),
        max_booking: row.max_booking_ms.map(ms_to_dur),
        horizon: row.horizon_ms.map(ms_to_dur),
        expires_at: opt_ts(row.expires_ms),
        period_start: Some(ms_to_ts(start)),
        period_end: Some(ms_to_ts(end)),
        topped_up_hours: ms_hours(totals.topped_up),
        charged_hours: ms_hours(totals.charged),
        refunded_hours: ms_hours(totals.refunded),
        left_hours: state.accounts.left(&row.org, &row.class, now).map(ms_hours),
        devices_held,
    }
}

impl Engine {
    /// The budget views of `org` (or every org), sorted by org then class, for handlers
    /// that already hold the state (the caller must have checked the scope).
    pub fn budget_views(state: &State, org: Option<&str>, now: i64) -> Vec<v1::Budget> {
        // The map is keyed by (org, class), so iteration is already in that order.
        state
            .budgets
            .values()
            .filter(|b| org.is_none_or(|o| o == b.org))
            .map(|b| budget_view(state, b, now))
            .collect()
    }
}

/// A budget's class key: a known class or `*`.
fn class_key(state: &State, class: &str) -> Result<String> {
    if class == ANY {
        return Ok(ANY.to_owned());
    }
    if state.classes.contains_key(class) {
        return Ok(class.to_owned());
    }
    let known: Vec<&str> = state.classes.keys().map(String::as_str).collect();
    Err(Error::field(
        "class",
        if known.is_empty() {
            text!(UnknownBudgetClassNone, class = ?class)
        } else {
            text!(UnknownBudgetClassKnown, class = ?class, known = known.join(", "))
        },
    ))
}

/// An org that must exist.
fn known_org(state: &State, org: &str) -> Result<String> {
    if org.is_empty() {
        return Err(Error::field("org", Msg::MustNotBeEmpty));
    }
    if state.orgs.contains_key(org) {
        Ok(org.to_owned())
    } else {
        Err(Error::field("org", text!(UnknownOrg, org = ?org)))
    }
}

/// A positive, finite factor (weight, rate) of at most [`MAX_FACTOR`].
fn factor(field: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v <= MAX_FACTOR {
        Ok(v)
    } else {
        Err(Error::field(field, text!(FactorRange, max = MAX_FACTOR, v)))
    }
}

/// A positive optional duration.
fn positive_duration(field: &str, d: Option<&prost_types::Duration>) -> Result<Option<i64>> {
    match d.map(dur_to_ms) {
        Some(ms) if ms <= 0 => Err(Error::field(field, Msg::PositiveWhenSet)),
        other => Ok(other),
    }
}

/// Validates a `SetBudget` request into the row to store (pure but for `state`'s names).
fn budget_row(state: &State, r: &v1::SetBudgetRequest, t: i64) -> Result<BudgetRow> {
    let org = known_org(state, &r.org)?;
    let class = class_key(state, &r.class)?;
    let allowance_ms = match r.hours {
        Some(h) if !h.is_finite() || h < 0.0 => {
            return Err(Error::field("hours", text!(HoursNotNegative, h)));
        }
        Some(h) if h > 1e9 => return Err(Error::field("hours", Msg::TooLarge)),
        Some(h) => Some(hours_ms(h)),
        None => None,
    };
    let period = match r.period.as_str() {
        "" => Period::Month,
        p => Period::parse(p)
            .ok_or_else(|| Error::field("period", text!(NotAPeriod, period = ?p)))?,
    };
    let max_devices = match r.max_devices {
        Some(n) if n > i32::MAX as u32 => return Err(Error::field("max_devices", Msg::TooLarge)),
        Some(n) => Some(n as i32),
        None => None,
    };
    Ok(BudgetRow {
        org,
        class,
        period: period.as_str().to_owned(),
        allowance_ms,
        max_devices,
        max_booking_ms: positive_duration("max_booking", r.max_booking.as_ref())?,
        horizon_ms: positive_duration("horizon", r.horizon.as_ref())?,
        expires_ms: r.expires_at.as_ref().map(ts_to_ms),
        updated_ms: t,
    })
}

/// A short description of a budget for the audit log.
fn budget_summary(b: &BudgetRow) -> String {
    let hours = b
        .allowance_ms
        .map_or("unlimited".to_owned(), |ms| format!("{} h", ms_hours(ms)));
    format!("{}/{} {hours} per {}", b.org, b.class, b.period)
}

impl Engine {
    /// Sets (replaces) an org's budget for a class or `*` (admin).
    pub async fn set_budget(
        &self,
        caller: &Caller,
        r: &v1::SetBudgetRequest,
    ) -> Result<v1::Budget> {
        caller.require_admin()?;
        let t = now();
        let view = self
            .commit(|tx| {
                let row = budget_row(tx.state(), r, t)?;
                tx.push(Mutation::UpsertBudget(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    "budget.set",
                    &budget_summary(&row),
                    t,
                    "ok",
                )));
                Ok(budget_view(tx.state(), &row, t))
            })
            .await?;
        tracing::info!(org = %view.org, class = %view.class, "budget set");
        self.kick();
        Ok(view)
    }

    /// Deletes an org's budget for a class or `*` (admin).
    pub async fn delete_budget(&self, caller: &Caller, org: &str, class: &str) -> Result<()> {
        caller.require_admin()?;
        self.commit(|tx| {
            let key = (org.to_owned(), class.to_owned());
            if !tx.state().budgets.contains_key(&key) {
                return Err(Error::NotFound(
                    text!(WhatBudget, org = ?org, class = ?class),
                ));
            }
            tx.push(Mutation::DeleteBudget {
                org: key.0,
                class: key.1,
            });
            tx.push(Mutation::Audit(audit(
                caller,
                "budget.delete",
                &format!("{org}/{class}"),
                now(),
                "ok",
            )));
            Ok(())
        })
        .await?;
        self.kick();
        Ok(())
    }

    /// Adds hours to the current period of a budget with an hour allowance (admin).
    pub async fn top_up_budget(
        &self,
        caller: &Caller,
        r: &v1::TopUpBudgetRequest,
    ) -> Result<v1::Budget> {
        caller.require_admin()?;
        if !r.hours.is_finite() || r.hours <= 0.0 || r.hours > 1e9 {
            return Err(Error::field("hours", text!(HoursPositive, h = r.hours)));
        }
        let amount_ms = hours_ms(r.hours);
        if amount_ms <= 0 {
            return Err(Error::field("hours", Msg::LessThanAMillisecond));
        }
        let t = now();
        let view = self
            .commit(|tx| {
                let key = (r.org.clone(), r.class.clone());
                let Some(budget) = tx.state().budgets.get(&key).cloned() else {
                    return Err(Error::FailedPrecondition(text!(
                        NoBudget,
                        org = ?r.org,
                        class = ?r.class
                    )));
                };
                if budget.allowance_ms.is_none() {
                    return Err(Error::FailedPrecondition(text!(
                        NoHourLimit,
                        org = ?r.org,
                        class = ?r.class
                    )));
                }
                let (period_start, _) = Period::parse(&budget.period).unwrap_or_default().bounds(t);
                let note = if r.note.trim().is_empty() {
                    format!("top-up by {}", caller.name)
                } else {
                    r.note.clone()
                };
                let entry = LedgerRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    org: budget.org.clone(),
                    budget_class: budget.class.clone(),
                    time_ms: t,
                    kind: LedgerKind::TopUp,
                    amount_ms,
                    period_start_ms: period_start,
                    subject_kind: None,
                    subject_id: String::new(),
                    device_class: String::new(),
                    device_ms: 0,
                    note,
                    project_id: None,
                };
                tx.push(Mutation::InsertLedger(vec![entry]));
                tx.push(Mutation::Audit(audit(
                    caller,
                    "budget.top-up",
                    &format!("{}/{} +{} h", budget.org, budget.class, r.hours),
                    t,
                    "ok",
                )));
                Ok(budget_view(tx.state(), &budget, t))
            })
            .await?;
        self.kick();
        Ok(view)
    }

    /// Sets an org's fair-share weight (admin).
    pub async fn set_org_weight(
        &self,
        caller: &Caller,
        org: &str,
        weight: f64,
    ) -> Result<crate::store::OrgRow> {
        caller.require_admin()?;
        let weight = factor("weight", weight)?;
        self.update_org(caller, org, "org.weight", &weight.to_string(), |row| {
            row.weight = weight;
        })
        .await
    }

    /// Changes an org's row with `change` (admin), audited as `action` with `value`.
    pub(crate) async fn update_org(
        &self,
        caller: &Caller,
        org: &str,
        action: &str,
        value: &str,
        change: impl FnOnce(&mut crate::store::OrgRow),
    ) -> Result<crate::store::OrgRow> {
        caller.require_admin()?;
        let row = self
            .commit(|tx| {
                let mut row = tx
                    .state()
                    .orgs
                    .get(org)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(text!(WhatOrg, name = ?org)))?;
                change(&mut row);
                tx.push(Mutation::UpdateOrg(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    action,
                    &format!("{org} {value}"),
                    now(),
                    "ok",
                )));
                Ok(row)
            })
            .await?;
        self.kick();
        Ok(row)
    }

    /// Sets a class's rate in budget units per device-hour (admin). Charges already made
    /// keep the rate they were made at.
    pub async fn set_class_rate(
        &self,
        caller: &Caller,
        class: &str,
        rate: f64,
    ) -> Result<(crate::store::ClassRow, u32, u32)> {
        caller.require_admin()?;
        let rate = factor("rate", rate)?;
        self.commit(|tx| {
            let mut row = tx
                .state()
                .classes
                .get(class)
                .cloned()
                .ok_or_else(|| Error::NotFound(text!(WhatClass, name = ?class)))?;
            row.rate = rate;
            tx.push(Mutation::UpdateClass(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "class.rate",
                &format!("{class} {rate}"),
                now(),
                "ok",
            )));
            let (total, schedulable) = tx.state().cluster.class_counts(class);
            Ok((row, total, schedulable))
        })
        .await
    }

    /// The scheduling policy (any user).
    pub async fn get_policy(&self, caller: &Caller) -> Result<v1::SchedulingPolicy> {
        caller.require_user()?;
        Ok(self.view().sched.to_proto())
    }

    /// Changes the named fields of the scheduling policy (admin); nothing changes when any
    /// of them is invalid.
    pub async fn set_policy(
        &self,
        caller: &Caller,
        r: &v1::SetPolicyRequest,
    ) -> Result<v1::SchedulingPolicy> {
        caller.require_admin()?;
        let t = now();
        let out = self
            .commit(|tx| {
                let given = r.policy.clone().unwrap_or_default();
                let new: SchedPolicy = tx.state().sched.apply(&given, &r.fields)?;
                let out = new.to_proto();
                tx.push(Mutation::SetPolicy(PolicyRow {
                    json: new.to_json(),
                    updated_ms: t,
                }));
                tx.push(Mutation::Audit(audit(
                    caller,
                    "policy.set",
                    &r.fields.join(","),
                    t,
                    "ok",
                )));
                Ok(out)
            })
            .await?;
        self.kick();
        Ok(out)
    }

    /// Budgets the caller may see (users: their own org's), sorted by org then class.
    pub async fn list_budgets(&self, caller: &Caller, org: &str) -> Result<Vec<v1::Budget>> {
        let org = super::views::scoped_org(caller, org)?;
        let state = self.view();
        Ok(Engine::budget_views(&state, org.as_deref(), now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{apply_ledger, core_budget};
    use crate::store::{ClassRow, OrgRow};

    /// 2026-11-21 12:00 UTC, a Saturday.
    const NOW: i64 = 1_795_262_400_000;

    fn state() -> State {
        let mut s = State::default();
        for (name, rate) in [("gpu", 1.0), ("npu", 0.5)] {
            s.classes.insert(
                name.into(),
                ClassRow {
                    name: name.into(),
                    description: String::new(),
                    vendor: "sim".into(),
                    created_ms: 0,
                    rate,
                },
            );
        }
        s.orgs.insert(
            "acme".into(),
            OrgRow {
                name: "acme".into(),
                description: String::new(),
                created_ms: 0,
                weight: 1.0,
                overage: Default::default(),
            },
        );
        s
    }

    fn budget(class: &str, hours: Option<f64>) -> BudgetRow {
        BudgetRow {
            org: "acme".into(),
            class: class.into(),
            period: "month".into(),
            allowance_ms: hours.map(hours_ms),
            max_devices: Some(4),
            max_booking_ms: None,
            horizon_ms: Some(7 * 24 * HOUR_MS),
            expires_ms: None,
            updated_ms: 0,
        }
    }

    fn put(s: &mut State, b: BudgetRow) {
        s.accounts.set_budget(&b.org, &b.class, core_budget(&b));
        s.budgets.insert((b.org.clone(), b.class.clone()), b);
    }

    fn entry(kind: LedgerKind, class: &str, hours: f64, period_start: i64) -> LedgerRow {
        LedgerRow {
            id: "e".into(),
            org: "acme".into(),
            budget_class: class.into(),
            time_ms: NOW,
            kind,
            amount_ms: hours_ms(hours),
            period_start_ms: period_start,
            subject_kind: None,
            subject_id: String::new(),
            device_class: String::new(),
            device_ms: 0,
            note: String::new(),
            project_id: None,
        }
    }

    #[test]
    fn a_view_shows_the_current_periods_balance() {
        let mut s = state();
        put(&mut s, budget("gpu", Some(100.0)));
        let (start, end) = Period::Month.bounds(NOW);
        for e in [
            entry(LedgerKind::Charge, "gpu", 30.0, start),
            entry(LedgerKind::Refund, "gpu", 5.0, start),
            entry(LedgerKind::TopUp, "gpu", 10.0, start),
            // Last month's charge does not count.
            entry(LedgerKind::Charge, "gpu", 50.0, start - 24 * HOUR_MS * 20),
        ] {
            apply_ledger(&mut s.accounts, &e);
        }
        s.accounts
            .hold("acme", "gpu", "r1", NOW - 1000, NOW + HOUR_MS, 2);
        s.accounts
            .hold("acme", "gpu", "r2", NOW + HOUR_MS, NOW + 2 * HOUR_MS, 3);
        let v = budget_view(&s, &s.budgets[&("acme".to_owned(), "gpu".to_owned())], NOW);
        assert_eq!(v.period, "month");
        assert_eq!(v.period_start, Some(ms_to_ts(start)));
        assert_eq!(v.period_end, Some(ms_to_ts(end)));
        assert_eq!(v.hours, Some(100.0));
        assert_eq!(
            (v.charged_hours, v.refunded_hours, v.topped_up_hours),
            (30.0, 5.0, 10.0)
        );
        assert_eq!(v.left_hours, Some(85.0));
        assert_eq!(v.devices_held, 2);
        assert_eq!(v.max_devices, Some(4));
        assert_eq!(v.horizon, Some(ms_to_dur(7 * 24 * HOUR_MS)));
        assert_eq!(v.max_booking, None);
    }

    #[test]
    fn no_allowance_means_no_left_hours_and_any_sums_classes() {
        let mut s = state();
        put(&mut s, budget(ANY, None));
        s.accounts
            .hold("acme", "gpu", "r1", NOW - 1000, NOW + HOUR_MS, 2);
        s.accounts
            .hold("acme", "npu", "j1", NOW - 1000, NOW + HOUR_MS, 1);
        let views = Engine::budget_views(&s, Some("acme"), NOW);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].left_hours, None);
        assert_eq!(views[0].hours, None);
        assert_eq!(views[0].devices_held, 3);
        assert!(Engine::budget_views(&s, Some("other"), NOW).is_empty());
    }

    #[test]
    fn views_are_sorted_by_org_then_class() {
        let mut s = state();
        put(&mut s, budget("npu", Some(1.0)));
        put(&mut s, budget(ANY, Some(1.0)));
        put(&mut s, budget("gpu", Some(1.0)));
        let mut other = budget("gpu", None);
        other.org = "beta".into();
        put(&mut s, other);
        let keys: Vec<(String, String)> = Engine::budget_views(&s, None, NOW)
            .into_iter()
            .map(|b| (b.org, b.class))
            .collect();
        assert_eq!(
            keys,
            [
                ("acme", "*"),
                ("acme", "gpu"),
                ("acme", "npu"),
                ("beta", "gpu")
            ]
            .map(|(o, c)| (o.to_owned(), c.to_owned()))
        );
    }

    #[test]
    fn set_budget_requests_are_validated_field_by_field() {
        let s = state();
        let ok = v1::SetBudgetRequest {
            org: "acme".into(),
            class: "gpu".into(),
            hours: Some(12.5),
            ..Default::default()
        };
        let row = budget_row(&s, &ok, 7).unwrap();
        assert_eq!(row.period, "month");
        assert_eq!(row.allowance_ms, Some(45_000_000));
        assert_eq!(row.updated_ms, 7);
        let field = |r: v1::SetBudgetRequest| match budget_row(&s, &r, 0) {
            Err(Error::Invalid(f)) => f.field,
            other => panic!("expected a field error, got {other:?}"),
        };
        let with = |f: &dyn Fn(&mut v1::SetBudgetRequest)| {
            let mut r = ok.clone();
            f(&mut r);
            r
        };
        assert_eq!(field(with(&|r| r.org = "nope".into())), "org");
        assert_eq!(field(with(&|r| r.class = "tpu".into())), "class");
        assert_eq!(field(with(&|r| r.hours = Some(-1.0))), "hours");
        assert_eq!(field(with(&|r| r.hours = Some(f64::NAN))), "hours");
        assert_eq!(field(with(&|r| r.period = "year".into())), "period");
        assert_eq!(
            field(with(&|r| r.max_booking = Some(ms_to_dur(0)))),
            "max_booking"
        );
        assert_eq!(field(with(&|r| r.horizon = Some(ms_to_dur(-5)))), "horizon");
        let any = budget_row(&s, &with(&|r| r.class = ANY.into()), 0).unwrap();
        assert_eq!(any.class, ANY);
    }

    #[test]
    fn weights_and_rates_are_bounded() {
        assert!(factor("weight", 1.0).is_ok());
        assert!(factor("weight", 1000.0).is_ok());
        for bad in [0.0, -1.0, 1000.5, f64::INFINITY, f64::NAN] {
            assert!(factor("rate", bad).is_err(), "{bad}");
        }
    }
}
