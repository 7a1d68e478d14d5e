//! `berth usage`: device-hours per job and reservation, with totals and the budgets'
//! balance; table, JSON or CSV (records only).

use super::Ctx;
use super::budgets::{self, BudgetView};
use super::evidence::{self, EvidenceView};
use crate::error::{Error, tr};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use serde::Serialize;

/// `berth usage` flags.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Start of the period (default: the server's, usually the current period).
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the period (default now).
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub to: Option<String>,
    /// Organisation (admins only; others always see their own).
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Serialize)]
struct RecordView {
    org: String,
    user: String,
    kind: String,
    subject_id: String,
    class: String,
    devices: u32,
    start: Option<String>,
    end: Option<String>,
    device_hours: f64,
    #[serde(flatten)]
    evidence: EvidenceView,
}

#[derive(Debug, Serialize)]
struct TotalView {
    org: String,
    class: String,
    reserved_device_hours: f64,
    job_device_hours: f64,
}

#[derive(Debug, Serialize)]
struct UsageView {
    records: Vec<RecordView>,
    totals: Vec<TotalView>,
    budgets: Vec<BudgetView>,
}

fn view(resp: &v1::GetUsageResponse) -> UsageView {
    UsageView {
        records: resp
            .records
            .iter()
            .map(|r| RecordView {
                org: r.org.clone(),
                user: r.user.clone(),
                kind: r.kind.clone(),
                subject_id: r.subject_id.clone(),
                class: r.class.clone(),
                devices: r.devices,
                start: timefmt::ts_rfc3339(r.start.as_ref()),
                end: timefmt::ts_rfc3339(r.end.as_ref()),
                device_hours: r.device_hours,
                evidence: EvidenceView::of(r.evidence.as_ref()),
            })
            .collect(),
        totals: resp
            .totals
            .iter()
            .map(|t| TotalView {
                org: t.org.clone(),
                class: t.class.clone(),
                reserved_device_hours: t.reserved_device_hours,
                job_device_hours: t.job_device_hours,
            })
            .collect(),
        budgets: resp.budgets.iter().map(Into::into).collect(),
    }
}

/// CSV of the records, for settlement: times in RFC 3339, hours with 4 decimals.
fn csv(resp: &v1::GetUsageResponse) -> String {
    let mut t = Table::new([
        "org",
        "user",
        "kind",
        "subject_id",
        "class",
        "devices",
        "start",
        "end",
        "device_hours",
        "mean_utilization_percent",
        "peak_memory_bytes",
        "energy_wh",
    ]);
    for r in &resp.records {
        let [util, memory, energy] = evidence::csv_cells(r.evidence.as_ref());
        t.row([
            r.org.clone(),
            r.user.clone(),
            r.kind.clone(),
            r.subject_id.clone(),
            r.class.clone(),
            r.devices.to_string(),
            timefmt::ts_rfc3339(r.start.as_ref()).unwrap_or_default(),
            timefmt::ts_rfc3339(r.end.as_ref()).unwrap_or_default(),
            format!("{:.4}", r.device_hours),
            util,
            memory,
            energy,
        ]);
    }
    t.render_csv()
}

/// Records, a blank line, totals per org and class, a blank line, then the budgets
/// (with an ORG column only when they span several orgs).
fn tables(resp: &v1::GetUsageResponse) -> String {
    let mut records = Table::new([
        "org",
        "user",
        "kind",
        "id",
        "class",
        "devices",
        "start",
        "end",
        "device-hours",
        "util",
        "peak-mem",
        "energy",
    ]);
    for r in &resp.records {
        let e = r.evidence.as_ref();
        records.row([
            r.org.clone(),
            r.user.clone(),
            r.kind.clone(),
            r.subject_id.clone(),
            r.class.clone(),
            r.devices.to_string(),
            timefmt::ts_local(r.start.as_ref()),
            timefmt::ts_local(r.end.as_ref()),
            format!("{:.2}", r.device_hours),
            evidence::util_cell(e),
            evidence::memory_cell(e),
            evidence::energy_cell(e),
        ]);
    }
    let mut totals = Table::new(["org", "class", "reserved device-hours", "job device-hours"]);
    for t in &resp.totals {
        totals.row([
            t.org.clone(),
            t.class.clone(),
            format!("{:.2}", t.reserved_device_hours),
            format!("{:.2}", t.job_device_hours),
        ]);
    }
    let mut out = String::new();
    if !records.is_empty() {
        out.push_str(&records.render());
    }
    if !totals.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&totals.render());
    }
    if !resp.budgets.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let with_org = budgets::several_orgs(&resp.budgets);
        out.push_str(&budgets::table(&resp.budgets, with_org).render());
    }
    out
}

/// `berth usage`.
pub async fn usage(ctx: &Ctx, args: &UsageArgs) -> Result<(), Error> {
    let (from, to) = timefmt::range_flags(args.from.as_deref(), args.to.as_deref())?;
    let mut client = ctx.api().await?.usage();
    let base = v1::GetUsageRequest {
        org: args.org.clone().unwrap_or_default(),
        from: from.map(ms_to_ts),
        to: to.map(ms_to_ts),
        ..Default::default()
    };
    // Totals and budgets come with the first page; records with every page.
    let mut resp = client.get_usage(base.clone()).await?.into_inner();
    while !resp.next_page_token.is_empty() {
        let mut next = client
            .get_usage(v1::GetUsageRequest {
                page_token: std::mem::take(&mut resp.next_page_token),
                ..base.clone()
            })
            .await?
            .into_inner();
        resp.records.append(&mut next.records);
        resp.next_page_token = next.next_page_token;
    }
    match ctx.format {
        Format::Json => output::json(&view(&resp)),
        Format::Csv => output::emit(&csv(&resp)),
        Format::Table | Format::Html => {
            let text = tables(&resp);
            if text.is_empty() {
                output::note(tr(Msg::EmptyUsage));
                Ok(())
            } else {
                output::emit(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> v1::GetUsageResponse {
        v1::GetUsageResponse {
            records: vec![v1::UsageRecord {
                org: "acme".into(),
                user: "alice".into(),
                kind: "job".into(),
                subject_id: "j1".into(),
                class: "h100".into(),
                devices: 2,
                start: Some(ms_to_ts(1_796_083_200_000)),
                end: Some(ms_to_ts(1_796_090_400_000)),
                device_hours: 4.0,
                evidence: None,
            }],
            totals: vec![v1::UsageTotal {
                org: "acme".into(),
                class: "h100".into(),
                reserved_device_hours: 8.0,
                job_device_hours: 4.0,
            }],
            budgets: vec![budgets::tests::sample()],
            next_page_token: String::new(),
        }
    }

    #[test]
    fn csv_has_a_header_and_utc_times() {
        assert_eq!(
            csv(&sample()),
            "org,user,kind,subject_id,class,devices,start,end,device_hours,\
             mean_utilization_percent,peak_memory_bytes,energy_wh\r\n\
             acme,alice,job,j1,h100,2,2026-12-01T00:00:00Z,2026-12-01T02:00:00Z,4.0000,,,\r\n"
        );
    }

    #[test]
    fn json_has_records_and_totals() {
        let v = serde_json::to_value(view(&sample())).unwrap();
        assert_eq!(v["records"][0]["device_hours"], 4.0);
        assert_eq!(v["records"][0]["start"], "2026-12-01T00:00:00Z");
        assert_eq!(v["totals"][0]["reserved_device_hours"], 8.0);
        assert_eq!(v["budgets"][0]["class"], "h100");
        assert_eq!(v["budgets"][0]["left_hours"], 99.75);
        assert_eq!(v["budgets"][0]["max_booking"], "1d");
        let empty = serde_json::to_value(view(&v1::GetUsageResponse::default())).unwrap();
        assert_eq!(empty["budgets"], serde_json::json!([]));
    }

    #[test]
    fn tables_show_records_then_totals_then_budgets() {
        let text = tables(&sample());
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert!(blocks[0].starts_with("ORG"));
        assert!(blocks[1].contains("RESERVED DEVICE-HOURS"));
        assert!(blocks[1].contains("8.00"));
        assert!(blocks[2].starts_with("CLASS  PERIOD  HOURS"), "{text}");
        assert!(blocks[2].contains("99.8"), "{text}");
        assert_eq!(tables(&v1::GetUsageResponse::default()), "");
        let only_budgets = v1::GetUsageResponse {
            budgets: sample().budgets,
            ..Default::default()
        };
        assert!(tables(&only_budgets).starts_with("CLASS"));
    }

    #[test]
    fn csv_leaves_budgets_out() {
        let without = v1::GetUsageResponse {
            budgets: vec![],
            ..sample()
        };
        assert_eq!(csv(&sample()), csv(&without));
    }
}
