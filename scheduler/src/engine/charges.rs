//! Charges and refunds: the ledger entries a booking or a job produces.

use crate::core::ChargePlan;
use crate::store::{Charge, LedgerKind, LedgerRow, OwnerKind};

/// What is being charged or refunded.
pub(crate) struct Subject<'a> {
    pub org: &'a str,
    pub kind: OwnerKind,
    pub id: &'a str,
    pub class: &'a str,
}

/// The ledger entry of a charge, and the [`Charge`] to keep on the subject.
pub(crate) fn charge(
    s: &Subject<'_>,
    plan: &ChargePlan,
    t: i64,
    note: &str,
) -> (LedgerRow, Charge) {
    let row = LedgerRow {
        id: uuid::Uuid::new_v4().to_string(),
        org: s.org.to_owned(),
        budget_class: plan.key.clone(),
        time_ms: t,
        kind: LedgerKind::Charge,
        amount_ms: plan.amount_ms,
        period_start_ms: plan.period_start,
        subject_kind: Some(s.kind),
        subject_id: s.id.to_owned(),
        device_class: s.class.to_owned(),
        device_ms: plan.device_ms,
        note: note.to_owned(),
        project_id: plan.project.clone(),
    };
    let kept = Charge {
        budget_class: plan.key.clone(),
        period_start_ms: plan.period_start,
        amount_ms: plan.amount_ms,
        project: plan.project.clone(),
    };
    (row, kept)
}

/// A refund of `amount_ms` budget milliseconds (capped at the net charge).
pub(crate) fn refund_amount(
    s: &Subject<'_>,
    charge: &mut Charge,
    amount_ms: i64,
    device_ms: i64,
    t: i64,
    note: &str,
) -> Option<LedgerRow> {
    if charge.budget_class.is_empty() {
        return None;
    }
    let amount = amount_ms.min(charge.amount_ms);
    if amount <= 0 {
        return None;
    }
    charge.amount_ms -= amount;
    Some(LedgerRow {
        id: uuid::Uuid::new_v4().to_string(),
        org: s.org.to_owned(),
        budget_class: charge.budget_class.clone(),
        time_ms: t,
        kind: LedgerKind::Refund,
        amount_ms: amount,
        period_start_ms: charge.period_start_ms,
        subject_kind: Some(s.kind),
        subject_id: s.id.to_owned(),
        device_class: s.class.to_owned(),
        device_ms: device_ms.max(0),
        note: note.to_owned(),
        project_id: charge.project.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn subject() -> Subject<'static> {
        Subject {
            org: "acme",
            kind: OwnerKind::Reservation,
            id: "r1",
            class: "h100",
        }
    }

    #[test]
    fn refunds_never_exceed_the_net_charge() {
        let plan = ChargePlan {
            key: "h100".into(),
            period_start: 0,
            amount_ms: 10 * H,
            device_ms: 10 * H,
            project: None,
        };
        let (entry, mut kept) = charge(&subject(), &plan, 5, "booked");
        assert_eq!((entry.kind, entry.amount_ms), (LedgerKind::Charge, 10 * H));
        let r = refund_amount(&subject(), &mut kept, 4 * H, 4 * H, 6, "part").unwrap();
        assert_eq!((r.kind, r.amount_ms), (LedgerKind::Refund, 4 * H));
        let r = refund_amount(&subject(), &mut kept, 40 * H, 40 * H, 7, "rest").unwrap();
        assert_eq!(r.amount_ms, 6 * H);
        assert_eq!(kept.amount_ms, 0);
        assert!(refund_amount(&subject(), &mut kept, H, H, 8, "more").is_none());
        let mut none = Charge::default();
        assert!(refund_amount(&subject(), &mut none, H, H, 8, "free").is_none());
    }
}
