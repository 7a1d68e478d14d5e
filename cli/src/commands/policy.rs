//! `berth admin policy [set]`: the scheduling policy (fair share, backfill, preemption,
//! idle reclaim, refunds).

use super::Ctx;
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::{dur_to_ms, ms_to_dur};
use berth_proto::v1;
use serde::Serialize;

/// Backfill modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackfillArg {
    /// The top waiting job per class gets a planned start.
    Easy,
    /// The top `--reserve-depth` waiting jobs do.
    Conservative,
    /// No backfill.
    None,
}

impl BackfillArg {
    fn as_str(self) -> &'static str {
        match self {
            BackfillArg::Easy => "easy",
            BackfillArg::Conservative => "conservative",
            BackfillArg::None => "none",
        }
    }
}

/// `berth admin policy` subcommands; none shows the policy.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCmd {
    /// Show the scheduling policy.
    Show,
    /// Change the fields given; the others keep their values.
    Set(Box<SetPolicyArgs>),
}

/// `berth admin policy set` flags; at least one.
#[derive(Debug, Default, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct SetPolicyArgs {
    /// Half-life of past usage in fair-share ordering: 7d.
    #[arg(
        long,
        group = "change",
        allow_hyphen_values = true,
        value_name = "DURATION"
    )]
    pub fair_share_half_life: Option<String>,
    /// Backfill mode.
    #[arg(long, group = "change", value_enum)]
    pub backfill: Option<BackfillArg>,
    /// How many waiting jobs per class get a planned start (conservative backfill).
    #[arg(long, group = "change", value_name = "N")]
    pub reserve_depth: Option<u32>,
    /// Preemptible jobs are not preempted before they ran this long (0s: at once).
    #[arg(
        long,
        group = "change",
        allow_hyphen_values = true,
        value_name = "DURATION"
    )]
    pub min_runtime: Option<String>,
    /// Utilisation (percent) under which a booked device counts as idle.
    #[arg(long, group = "change", value_parser = percent, value_name = "PCT")]
    pub idle_threshold: Option<f64>,
    /// Idle this long: the booking gets a warning (0s disables idle reclaim).
    #[arg(
        long,
        group = "change",
        allow_hyphen_values = true,
        value_name = "DURATION"
    )]
    pub idle_warn_after: Option<String>,
    /// Still idle this long after the warning: the booking is reclaimed.
    #[arg(
        long,
        group = "change",
        allow_hyphen_values = true,
        value_name = "DURATION"
    )]
    pub idle_reclaim_after: Option<String>,
    /// Percent refunded when a booking is cancelled before its start.
    #[arg(long, group = "change", value_parser = percent, value_name = "PCT")]
    pub refund_cancel: Option<f64>,
    /// Percent of the unused rest refunded when a started booking is cancelled.
    #[arg(long, group = "change", value_parser = percent, value_name = "PCT")]
    pub refund_cancel_started: Option<f64>,
    /// Percent of the reclaimed hours refunded when a booking is reclaimed for idleness.
    #[arg(long, group = "change", value_parser = percent, value_name = "PCT")]
    pub refund_reclaim: Option<f64>,
    /// Percent of the hours lost to a device fault that is refunded.
    #[arg(long, group = "change", value_parser = percent, value_name = "PCT")]
    pub refund_fault: Option<f64>,
    /// Largest environment plus command one job may carry: 64KiB, 256KiB, 1MiB (1KiB to 1MiB).
    #[arg(long, group = "change", value_parser = byte_size, value_name = "SIZE")]
    pub max_job_spec: Option<u64>,
}

/// A size flag: a number of bytes with an optional `B`, `KiB` or `MiB` suffix.
fn byte_size(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a size such as 65536, 64KiB or 1MiB".to_owned())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => 1024 * 1024,
        other => return Err(format!("unknown unit {other:?}: use B, KiB or MiB")),
    };
    n.checked_mul(scale).ok_or_else(|| "too large".to_owned())
}

/// A percentage flag: 0 to 100, a trailing `%` allowed.
fn percent(value: &str) -> Result<f64, String> {
    let v = value.trim();
    let n: f64 = v
        .strip_suffix('%')
        .unwrap_or(v)
        .trim()
        .parse()
        .map_err(|_| "expected a percentage from 0 to 100".to_owned())?;
    if (0.0..=100.0).contains(&n) {
        Ok(n)
    } else {
        Err("must be from 0 to 100".to_owned())
    }
}

/// The policy as printed in JSON (durations in the syntax flags take).
#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub fair_share_half_life: Option<String>,
    pub backfill: Option<String>,
    pub reserve_depth: u32,
    pub min_runtime_before_preemption: Option<String>,
    pub idle_threshold_pct: f64,
    pub idle_warn_after: Option<String>,
    pub idle_reclaim_after: Option<String>,
    pub refund_cancel_pct: f64,
    pub refund_cancel_started_pct: f64,
    pub refund_reclaim_pct: f64,
    pub refund_fault_pct: f64,
    pub max_job_spec_bytes: u64,
}

fn human(d: Option<&prost_types::Duration>) -> Option<String> {
    d.map(|d| timefmt::format_duration(dur_to_ms(d)))
}

impl From<&v1::SchedulingPolicy> for PolicyView {
    fn from(p: &v1::SchedulingPolicy) -> Self {
        Self {
            fair_share_half_life: human(p.fair_share_half_life.as_ref()),
            backfill: super::opt(&p.backfill),
            reserve_depth: p.reserve_depth,
            min_runtime_before_preemption: human(p.min_runtime_before_preemption.as_ref()),
            idle_threshold_pct: p.idle_threshold_pct,
            idle_warn_after: human(p.idle_warn_after.as_ref()),
            idle_reclaim_after: human(p.idle_reclaim_after.as_ref()),
            refund_cancel_pct: p.refund_cancel_pct,
            refund_cancel_started_pct: p.refund_cancel_started_pct,
            refund_reclaim_pct: p.refund_reclaim_pct,
            refund_fault_pct: p.refund_fault_pct,
            max_job_spec_bytes: p.max_job_spec_bytes,
        }
    }
}

/// Two columns: the field's name (as in JSON and `SetPolicy`) and its value.
fn table(p: &v1::SchedulingPolicy) -> Table {
    let dur = |d: Option<&prost_types::Duration>| human(d).unwrap_or_else(|| "-".to_owned());
    let pct = |v: f64| format!("{v}%");
    let mut t = Table::new(["field", "value"]);
    let rows = [
        ("fair_share_half_life", dur(p.fair_share_half_life.as_ref())),
        ("backfill", super::dash(&p.backfill)),
        ("reserve_depth", p.reserve_depth.to_string()),
        (
            "min_runtime_before_preemption",
            dur(p.min_runtime_before_preemption.as_ref()),
        ),
        ("idle_threshold_pct", pct(p.idle_threshold_pct)),
        ("idle_warn_after", dur(p.idle_warn_after.as_ref())),
        ("idle_reclaim_after", dur(p.idle_reclaim_after.as_ref())),
        ("refund_cancel_pct", pct(p.refund_cancel_pct)),
        (
            "refund_cancel_started_pct",
            pct(p.refund_cancel_started_pct),
        ),
        ("refund_reclaim_pct", pct(p.refund_reclaim_pct)),
        ("refund_fault_pct", pct(p.refund_fault_pct)),
        ("max_job_spec_bytes", p.max_job_spec_bytes.to_string()),
    ];
    for (k, v) in rows {
        t.row([k.to_owned(), v]);
    }
    t
}

fn print(p: &v1::SchedulingPolicy, format: Format) -> Result<(), Error> {
    match format {
        Format::Json => output::json(&PolicyView::from(p)),
        _ => table(p).print(format, tr(Msg::EmptyPolicy)),
    }
}

/// A duration flag that may be zero but not negative.
fn non_negative(flag: &str, value: &str) -> Result<prost_types::Duration, Error> {
    let ms = timefmt::duration_flag(flag, value)?;
    if ms < 0 {
        return Err(Error::invalid(flag, value, tr(Msg::NotNegative)));
    }
    Ok(ms_to_dur(ms))
}

/// Builds the `SetPolicy` request: the given flags, and `fields` naming exactly them.
pub fn set_request(args: &SetPolicyArgs) -> Result<v1::SetPolicyRequest, Error> {
    let mut p = v1::SchedulingPolicy::default();
    let mut fields = Vec::new();
    let mut mark = |name: &str| fields.push(name.to_owned());
    if let Some(v) = &args.fair_share_half_life {
        p.fair_share_half_life = Some(ms_to_dur(timefmt::positive_duration_flag(
            "--fair-share-half-life",
            v,
        )?));
        mark("fair_share_half_life");
    }
    if let Some(v) = args.backfill {
        p.backfill = v.as_str().to_owned();
        mark("backfill");
    }
    if let Some(v) = args.reserve_depth {
        p.reserve_depth = v;
        mark("reserve_depth");
    }
    if let Some(v) = &args.min_runtime {
        p.min_runtime_before_preemption = Some(non_negative("--min-runtime", v)?);
        mark("min_runtime_before_preemption");
    }
    if let Some(v) = args.idle_threshold {
        p.idle_threshold_pct = v;
        mark("idle_threshold_pct");
    }
    if let Some(v) = &args.idle_warn_after {
        p.idle_warn_after = Some(non_negative("--idle-warn-after", v)?);
        mark("idle_warn_after");
    }
    if let Some(v) = &args.idle_reclaim_after {
        p.idle_reclaim_after = Some(non_negative("--idle-reclaim-after", v)?);
        mark("idle_reclaim_after");
    }
    if let Some(v) = args.refund_cancel {
        p.refund_cancel_pct = v;
        mark("refund_cancel_pct");
    }
    if let Some(v) = args.refund_cancel_started {
        p.refund_cancel_started_pct = v;
        mark("refund_cancel_started_pct");
    }
    if let Some(v) = args.refund_reclaim {
        p.refund_reclaim_pct = v;
        mark("refund_reclaim_pct");
    }
    if let Some(v) = args.refund_fault {
        p.refund_fault_pct = v;
        mark("refund_fault_pct");
    }
    if let Some(v) = args.max_job_spec {
        p.max_job_spec_bytes = v;
        mark("max_job_spec_bytes");
    }
    if fields.is_empty() {
        return Err(Error::Usage(tr(Msg::NothingToChange).into()));
    }
    Ok(v1::SetPolicyRequest {
        policy: Some(p),
        fields,
    })
}

/// `berth admin policy [show|set]`.
pub async fn run(ctx: &Ctx, cmd: Option<&PolicyCmd>) -> Result<(), Error> {
    match cmd {
        None | Some(PolicyCmd::Show) => {
            let p = ctx
                .api()
                .await?
                .admin()
                .get_policy(v1::GetPolicyRequest {})
                .await?
                .into_inner();
            print(&p, ctx.format)
        }
        Some(PolicyCmd::Set(args)) => {
            // Check flag values before connecting.
            let req = set_request(args)?;
            let changed = req.fields.join(", ");
            let p = ctx.api().await?.admin().set_policy(req).await?.into_inner();
            output::note(trf(Msg::PolicyUpdated, &[("changed", &changed)]));
            print(&p, ctx.format)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_name_exactly_the_flags_given() {
        let args = SetPolicyArgs {
            backfill: Some(BackfillArg::Conservative),
            reserve_depth: Some(0),
            idle_warn_after: Some("0s".into()),
            refund_fault: Some(100.0),
            ..Default::default()
        };
        let req = set_request(&args).unwrap();
        assert_eq!(
            req.fields,
            [
                "backfill",
                "reserve_depth",
                "idle_warn_after",
                "refund_fault_pct"
            ]
        );
        let p = req.policy.unwrap();
        assert_eq!(p.backfill, "conservative");
        assert_eq!(p.idle_warn_after.unwrap().seconds, 0);
        assert_eq!(p.refund_fault_pct, 100.0);

        let all = SetPolicyArgs {
            fair_share_half_life: Some("7d".into()),
            backfill: Some(BackfillArg::Easy),
            reserve_depth: Some(4),
            min_runtime: Some("10m".into()),
            idle_threshold: Some(5.0),
            idle_warn_after: Some("30m".into()),
            idle_reclaim_after: Some("15m".into()),
            refund_cancel: Some(100.0),
            refund_cancel_started: Some(50.0),
            refund_reclaim: Some(50.0),
            refund_fault: Some(100.0),
            max_job_spec: Some(131_072),
        };
        assert_eq!(
            set_request(&all).unwrap().fields,
            [
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
                "max_job_spec_bytes"
            ]
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        assert!(set_request(&SetPolicyArgs::default()).is_err());
        let e = set_request(&SetPolicyArgs {
            fair_share_half_life: Some("0s".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            r#"invalid --fair-share-half-life "0s": must be positive"#
        );
        let e = set_request(&SetPolicyArgs {
            idle_reclaim_after: Some("-1h".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            r#"invalid --idle-reclaim-after "-1h": must not be negative"#
        );
        assert_eq!(percent("50"), Ok(50.0));
        assert_eq!(percent("12.5%"), Ok(12.5));
        assert!(percent("101").is_err());
        assert!(percent("-1").is_err());
        assert!(percent("half").is_err());
        assert_eq!(byte_size("65536"), Ok(65_536));
        assert_eq!(byte_size("64KiB"), Ok(65_536));
        assert_eq!(byte_size("1MiB"), Ok(1_048_576));
        assert!(byte_size("1GiB").is_err());
        assert!(byte_size("-5").is_err());
    }

    fn sample() -> v1::SchedulingPolicy {
        v1::SchedulingPolicy {
            fair_share_half_life: Some(ms_to_dur(7 * 86_400_000)),
            backfill: "easy".into(),
            reserve_depth: 1,
            min_runtime_before_preemption: Some(ms_to_dur(600_000)),
            idle_threshold_pct: 5.0,
            idle_warn_after: Some(ms_to_dur(1_800_000)),
            idle_reclaim_after: Some(ms_to_dur(0)),
            refund_cancel_pct: 100.0,
            refund_reclaim_pct: 50.0,
            refund_fault_pct: 100.0,
            refund_cancel_started_pct: 50.0,
            max_job_spec_bytes: 65_536,
        }
    }

    #[test]
    fn policy_json_uses_the_proto_names_and_human_durations() {
        let v = serde_json::to_value(PolicyView::from(&sample())).unwrap();
        assert_eq!(
            v,
            json!({
                "fair_share_half_life": "7d",
                "backfill": "easy",
                "reserve_depth": 1,
                "min_runtime_before_preemption": "10m",
                "idle_threshold_pct": 5.0,
                "idle_warn_after": "30m",
                "idle_reclaim_after": "0s",
                "refund_cancel_pct": 100.0,
                "refund_cancel_started_pct": 50.0,
                "refund_reclaim_pct": 50.0,
                "refund_fault_pct": 100.0,
                "max_job_spec_bytes": 65536
            })
        );
    }

    #[test]
    fn policy_table_has_two_columns() {
        let text = table(&sample()).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 13, "{text}");
        assert!(lines[0].starts_with("FIELD") && lines[0].ends_with("VALUE"));
        assert!(
            lines.contains(&"idle_threshold_pct             5%"),
            "{text}"
        );
        assert!(
            lines.contains(&"fair_share_half_life           7d"),
            "{text}"
        );
    }
}
