//! The admin-tunable scheduling policy: stored as one JSON document, shown and changed
//! through the API, and turned into the pure core's knobs.

use crate::core::{Backfill, IdlePolicy, PlanPolicy};
use crate::error::{Error, Result};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::time::{HOUR_MS, dur_to_ms};
use berth_proto::v1;
use serde::{Deserialize, Serialize};

const MINUTE_MS: i64 = 60_000;

/// Fair share, backfill, preemption, idle reclaim and refunds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedPolicy {
    /// Half-life of past usage in fair-share ordering.
    pub fair_share_half_life_ms: i64,
    /// How waiting jobs are protected from being overtaken.
    #[serde(with = "backfill_name")]
    pub backfill: Backfill,
    /// Planned starts per class under conservative backfill.
    pub reserve_depth: u32,
    /// Preemptible jobs are not preempted by queued work before they ran this long.
    pub min_runtime_before_preemption_ms: i64,
    /// Utilisation (percent) under which a device counts as idle.
    pub idle_threshold_pct: f64,
    /// Idle this long: warning. Zero disables idle reclaim.
    pub idle_warn_after_ms: i64,
    /// Warned this long and still idle: reclaimed.
    pub idle_reclaim_after_ms: i64,
    /// Percent of the charge refunded when a booking is cancelled before its start.
    pub refund_cancel_pct: f64,
    /// Percent of the unused rest refunded when a started booking is cancelled.
    pub refund_cancel_started_pct: f64,
    /// Percent of the unused rest refunded when a booking is reclaimed for idleness.
    pub refund_reclaim_pct: f64,
    /// Percent of the hours lost to a device fault refunded.
    pub refund_fault_pct: f64,
    /// How long old rows are kept.
    pub retention: Retention,
    /// Largest environment plus command one job may carry, in bytes.
    pub max_job_spec_bytes: u64,
}

/// How long each kind of row is kept (`None`: forever). Usage and ledger rows of a budget
/// period that has not ended are kept whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Retention {
    /// Log chunks of jobs that ended longer ago than this.
    pub logs_ms: Option<i64>,
    /// Audit events.
    pub audit_ms: Option<i64>,
    /// Usage records.
    pub usage_ms: Option<i64>,
    /// Ledger entries.
    pub ledger_ms: Option<i64>,
    /// Jobs and bookings that ended longer ago than this.
    pub finished_ms: Option<i64>,
}

/// The retention field names [`Retention::apply`] understands.
pub const RETENTION_FIELDS: &[&str] = &["logs", "audit", "usage", "ledger", "finished"];

impl Retention {
    /// As the API shows it.
    pub fn to_proto(&self) -> v1::Retention {
        let d = |ms: Option<i64>| ms.map(berth_proto::time::ms_to_dur);
        v1::Retention {
            logs: d(self.logs_ms),
            audit: d(self.audit_ms),
            usage: d(self.usage_ms),
            ledger: d(self.ledger_ms),
            finished: d(self.finished_ms),
        }
    }

    /// A copy with the named fields taken from `r` (unset: forever), each at least an
    /// hour; the error names the first bad field.
    pub fn apply(&self, r: &v1::Retention, fields: &[String]) -> Result<Self> {
        if fields.is_empty() {
            return Err(Error::field(
                "fields",
                text!(NameAField, fields = RETENTION_FIELDS.join(", ")),
            ));
        }
        let mut out = *self;
        for f in fields {
            let (slot, given) = match f.as_str() {
                "logs" => (&mut out.logs_ms, r.logs.as_ref()),
                "audit" => (&mut out.audit_ms, r.audit.as_ref()),
                "usage" => (&mut out.usage_ms, r.usage.as_ref()),
                "ledger" => (&mut out.ledger_ms, r.ledger.as_ref()),
                "finished" => (&mut out.finished_ms, r.finished.as_ref()),
                other => {
                    return Err(Error::field(
                        "fields",
                        text!(
                            UnknownRetentionField,
                            field = ?other,
                            known = RETENTION_FIELDS.join(", ")
                        ),
                    ));
                }
            };
            *slot = match given {
                None => None,
                Some(d) => Some(duration(f, Some(d), HOUR_MS)?),
            };
        }
        Ok(out)
    }
}

/// Backfill modes stored by name; an unknown name is an error, never a default.
mod backfill_name {
    use crate::core::Backfill;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Backfill, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(b.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Backfill, D::Error> {
        let name = String::deserialize(d)?;
        Backfill::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{name:?} is not a backfill mode (none, easy, conservative)"
            ))
        })
    }
}

impl Default for SchedPolicy {
    fn default() -> Self {
        SchedPolicy {
            fair_share_half_life_ms: 7 * 24 * HOUR_MS,
            backfill: Backfill::Easy,
            reserve_depth: 16,
            min_runtime_before_preemption_ms: 10 * MINUTE_MS,
            idle_threshold_pct: 5.0,
            idle_warn_after_ms: 30 * MINUTE_MS,
            idle_reclaim_after_ms: 30 * MINUTE_MS,
            refund_cancel_pct: 100.0,
            refund_cancel_started_pct: 50.0,
            refund_reclaim_pct: 100.0,
            refund_fault_pct: 100.0,
            retention: Retention::default(),
            max_job_spec_bytes: berth_proto::model::DEFAULT_MAX_SPEC_BYTES as u64,
        }
    }
}

/// The largest job spec an admin may allow: a heartbeat reply always carries at least one
/// whole spec, within the message limit.
pub const MAX_JOB_SPEC_BYTES: u64 = 1024 * 1024;

/// The proto field names [`SchedPolicy::apply`] understands.
pub const FIELDS: &[&str] = &[
    "fair_share_half_life",
    "backfill",
    "reserve_depth",
    "min_runtime_before_preemption",
    "idle_threshold_pct",
    "idle_warn_after",
    "idle_reclaim_after",
    "refund_cancel_pct",
    "refund_cancel_started_pct",
    "refund_reclaim_pct",
    "refund_fault_pct",
    "max_job_spec_bytes",
];

impl SchedPolicy {
    /// Parses the stored JSON; fields missing from it take their defaults.
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("stored scheduling policy is unreadable: {e}")))
    }

    /// The JSON to store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The queue pass's knobs.
    pub fn plan_policy(&self, grace_ms: i64) -> PlanPolicy {
        PlanPolicy {
            backfill: self.backfill,
            reserve_depth: self.reserve_depth,
            min_runtime_ms: self.min_runtime_before_preemption_ms,
            grace_ms,
            ..PlanPolicy::default()
        }
    }

    /// The idle-reclaim knobs.
    pub fn idle_policy(&self) -> IdlePolicy {
        IdlePolicy {
            threshold_pct: self.idle_threshold_pct,
            warn_after_ms: self.idle_warn_after_ms,
            reclaim_after_ms: self.idle_reclaim_after_ms,
        }
    }

    /// As the API shows it.
    pub fn to_proto(&self) -> v1::SchedulingPolicy {
        let d = berth_proto::time::ms_to_dur;
        v1::SchedulingPolicy {
            fair_share_half_life: Some(d(self.fair_share_half_life_ms)),
            backfill: self.backfill.as_str().to_owned(),
            reserve_depth: self.reserve_depth,
            min_runtime_before_preemption: Some(d(self.min_runtime_before_preemption_ms)),
            idle_threshold_pct: self.idle_threshold_pct,
            idle_warn_after: Some(d(self.idle_warn_after_ms)),
            idle_reclaim_after: Some(d(self.idle_reclaim_after_ms)),
            refund_cancel_pct: self.refund_cancel_pct,
            refund_cancel_started_pct: self.refund_cancel_started_pct,
            refund_reclaim_pct: self.refund_reclaim_pct,
            refund_fault_pct: self.refund_fault_pct,
            max_job_spec_bytes: self.max_job_spec_bytes,
        }
    }

    /// A copy with the named fields taken from `p`, each validated; the error names the
    /// first bad field.
    pub fn apply(&self, p: &v1::SchedulingPolicy, fields: &[String]) -> Result<Self> {
        if fields.is_empty() {
            return Err(Error::field(
                "fields",
                text!(NameAField, fields = FIELDS.join(", ")),
            ));
        }
        let mut out = self.clone();
        for f in fields {
            match f.as_str() {
                "fair_share_half_life" => {
                    out.fair_share_half_life_ms =
                        duration(f, p.fair_share_half_life.as_ref(), MINUTE_MS)?
                }
                "backfill" => {
                    out.backfill = Backfill::parse(&p.backfill).ok_or_else(|| {
                        Error::field(f, text!(NotABackfillMode, mode = ?p.backfill))
                    })?;
                }
                "reserve_depth" => {
                    if !(1..=1000).contains(&p.reserve_depth) {
                        return Err(Error::field(f, Msg::OneTo1000));
                    }
                    out.reserve_depth = p.reserve_depth;
                }
                "min_runtime_before_preemption" => {
                    out.min_runtime_before_preemption_ms =
                        duration(f, p.min_runtime_before_preemption.as_ref(), 0)?
                }
                "idle_threshold_pct" => out.idle_threshold_pct = pct(f, p.idle_threshold_pct)?,
                "idle_warn_after" => {
                    out.idle_warn_after_ms = duration(f, p.idle_warn_after.as_ref(), 0)?
                }
                "idle_reclaim_after" => {
                    out.idle_reclaim_after_ms = duration(f, p.idle_reclaim_after.as_ref(), 0)?
                }
                "refund_cancel_pct" => out.refund_cancel_pct = pct(f, p.refund_cancel_pct)?,
                "refund_cancel_started_pct" => {
                    out.refund_cancel_started_pct = pct(f, p.refund_cancel_started_pct)?
                }
                "refund_reclaim_pct" => out.refund_reclaim_pct = pct(f, p.refund_reclaim_pct)?,
                "refund_fault_pct" => out.refund_fault_pct = pct(f, p.refund_fault_pct)?,
                "max_job_spec_bytes" => {
                    if !(1024..=MAX_JOB_SPEC_BYTES).contains(&p.max_job_spec_bytes) {
                        return Err(Error::field(
                            f,
                            text!(
                                SpecBytesRange,
                                max = MAX_JOB_SPEC_BYTES,
                                value = p.max_job_spec_bytes
                            ),
                        ));
                    }
                    out.max_job_spec_bytes = p.max_job_spec_bytes;
                }
                other => {
                    return Err(Error::field(
                        "fields",
                        text!(
                            UnknownPolicyField,
                            field = ?other,
                            known = FIELDS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A duration field of at least `min` ms.
fn duration(field: &str, d: Option<&prost_types::Duration>, min: i64) -> Result<i64> {
    let Some(d) = d else {
        return Err(Error::field(field, Msg::DurationRequired));
    };
    let ms = dur_to_ms(d);
    if ms < min {
        return Err(Error::field(
            field,
            text!(AtLeastSeconds, min = min / 1000, value = ms / 1000),
        ));
    }
    Ok(ms)
}

/// A percentage field, 0..=100.
fn pct(field: &str, v: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&v) || v.is_nan() {
        return Err(Error::field(field, text!(NotAPercentage, v)));
    }
    Ok(v)
}

/// Percent `pct` of `amount`, rounded down to whole milliseconds.
pub fn percent_of(amount: i64, pct: f64) -> i64 {
    ((amount.max(0) as f64) * pct.clamp(0.0, 100.0) / 100.0).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_fills_defaults() {
        let p = SchedPolicy {
            backfill: Backfill::Conservative,
            ..SchedPolicy::default()
        };
        assert_eq!(SchedPolicy::from_json(&p.to_json()).unwrap(), p);
        let partial = SchedPolicy::from_json(r#"{"reserve_depth": 3}"#).unwrap();
        assert_eq!(partial.reserve_depth, 3);
        assert_eq!(partial.backfill, Backfill::Easy);
        let typo = SchedPolicy::from_json(r#"{"backfill": "conservatve"}"#).unwrap_err();
        assert!(typo.to_string().contains("conservatve"), "{typo}");
    }

    #[test]
    fn apply_changes_only_the_named_fields_and_names_bad_ones() {
        let base = SchedPolicy::default();
        let mut wire = base.to_proto();
        wire.backfill = "conservative".into();
        wire.refund_fault_pct = 50.0;
        let got = base.apply(&wire, &["backfill".into()]).unwrap();
        assert_eq!(got.backfill, Backfill::Conservative);
        assert_eq!(got.refund_fault_pct, 100.0);
        wire.backfill = "greedy".into();
        let err = base.apply(&wire, &["backfill".into()]).unwrap_err();
        assert!(err.to_string().contains("backfill"), "{err}");
        wire.idle_threshold_pct = 120.0;
        let err = base
            .apply(&wire, &["idle_threshold_pct".into()])
            .unwrap_err();
        assert!(err.to_string().contains("idle_threshold_pct"), "{err}");
        assert!(base.apply(&wire, &[]).is_err());
        assert!(base.apply(&wire, &["colour".into()]).is_err());
    }

    #[test]
    fn retention_changes_only_named_fields_and_refuses_short_ones() {
        let base = Retention {
            audit_ms: Some(400 * 24 * HOUR_MS),
            ..Retention::default()
        };
        let wire = v1::Retention {
            logs: Some(berth_proto::time::ms_to_dur(90 * 24 * HOUR_MS)),
            ..Default::default()
        };
        let got = base.apply(&wire, &["logs".into()]).unwrap();
        assert_eq!(got.logs_ms, Some(90 * 24 * HOUR_MS));
        assert_eq!(got.audit_ms, base.audit_ms, "not named, not changed");
        let cleared = base.apply(&wire, &["audit".into()]).unwrap();
        assert_eq!(cleared.audit_ms, None, "named and unset: forever");
        let short = v1::Retention {
            usage: Some(berth_proto::time::ms_to_dur(1000)),
            ..Default::default()
        };
        let err = base.apply(&short, &["usage".into()]).unwrap_err();
        assert!(err.to_string().contains("usage"), "{err}");
        assert!(base.apply(&wire, &["colour".into()]).is_err());
        assert!(base.apply(&wire, &[]).is_err());
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent_of(1000, 50.0), 500);
        assert_eq!(percent_of(999, 50.0), 499);
        assert_eq!(percent_of(-5, 50.0), 0);
        assert_eq!(percent_of(1000, 150.0), 1000);
    }
}
