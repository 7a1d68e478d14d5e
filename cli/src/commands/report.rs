//! `berth admin report`: the monthly check per org and project as a table, JSON, CSV or a
//! printable HTML page.

use super::billing::{PAGE_CSS, escape, won};
use super::{Ctx, opt};
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::v1;
use serde::Serialize;

/// `berth admin report` flags.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// YYYY-MM (a UTC calendar month).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
    /// Only this organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// Flag mean utilisation under this percent (default 30).
    #[arg(long, value_name = "PERCENT")]
    pub low_util: Option<f64>,
}

/// A flag as printed in JSON: its kind, its figures and a sentence.
#[derive(Debug, Serialize)]
pub struct FlagView {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    pub text: String,
}

/// A row as printed in JSON.
#[derive(Debug, Serialize)]
pub struct RowView {
    pub org: String,
    pub project: Option<String>,
    pub granted_hours: Option<f64>,
    pub booked_hours: f64,
    pub used_hours: f64,
    pub idle_reclaimed_hours: f64,
    pub idle_reclaims: u32,
    pub refunded_hours: f64,
    pub mean_utilization_percent: Option<f64>,
    pub energy_wh: Option<f64>,
    pub amount_due_krw: Option<i64>,
    pub amount_source: Option<String>,
    pub flags: Vec<FlagView>,
}

/// The report as printed in JSON.
#[derive(Debug, Serialize)]
pub struct ReportView {
    pub month: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub time_zone: &'static str,
    pub low_util_percent: f64,
    pub rows: Vec<RowView>,
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

fn hours(v: f64) -> String {
    format!("{v:.3}")
}

/// A flag in words, with its figures.
fn flag_text(f: &v1::ReportFlag) -> String {
    match f.kind.as_str() {
        "low-utilization" => trf(
            Msg::FlagLowUtil,
            &[("percent", &num(f.value)), ("threshold", &num(f.threshold))],
        ),
        "repeated-idle-reclaim" => trf(Msg::FlagReclaims, &[("count", &f.count)]),
        "bookings-unused" => trf(
            Msg::FlagUnused,
            &[("count", &f.count), ("hours", &hours(f.hours))],
        ),
        other => other.to_owned(),
    }
}

fn flag_view(f: &v1::ReportFlag) -> FlagView {
    let low = f.kind == "low-utilization";
    FlagView {
        kind: f.kind.clone(),
        utilization_percent: low.then_some(f.value),
        threshold_percent: low.then_some(f.threshold),
        count: (!low).then_some(f.count),
        hours: (f.kind == "bookings-unused").then_some(f.hours),
        text: flag_text(f),
    }
}

impl From<&v1::MonthlyReportResponse> for ReportView {
    fn from(r: &v1::MonthlyReportResponse) -> Self {
        Self {
            month: r.month.clone(),
            period_start: timefmt::ts_rfc3339(r.period_start.as_ref()),
            period_end: timefmt::ts_rfc3339(r.period_end.as_ref()),
            time_zone: "UTC",
            low_util_percent: r.low_util_percent,
            rows: r
                .rows
                .iter()
                .map(|x| RowView {
                    org: x.org.clone(),
                    project: opt(&x.project),
                    granted_hours: x.granted_hours,
                    booked_hours: x.booked_hours,
                    used_hours: x.used_hours,
                    idle_reclaimed_hours: x.idle_reclaimed_hours,
                    idle_reclaims: x.idle_reclaims,
                    refunded_hours: x.refunded_hours,
                    mean_utilization_percent: x.mean_utilization_percent,
                    energy_wh: x.energy_wh,
                    amount_due_krw: x.amount_due_krw,
                    amount_source: opt(&x.amount_source),
                    flags: x.flags.iter().map(flag_view).collect(),
                })
                .collect(),
        }
    }
}

const COLUMNS: [&str; 12] = [
    "org",
    "project",
    "granted h",
    "booked h",
    "used h",
    "reclaimed h",
    "reclaims",
    "refunded h",
    "util %",
    "energy wh",
    "due krw",
    "flags",
];

/// The cells of a row; `raw` numbers for CSV, grouped won for people.
fn cells(x: &v1::ReportRow, raw: bool) -> Vec<String> {
    let dash = || "-".to_owned();
    let blank = |raw: bool| if raw { String::new() } else { dash() };
    vec![
        x.org.clone(),
        if raw {
            x.project.clone()
        } else {
            super::dash(&x.project)
        },
        x.granted_hours.map_or_else(|| blank(raw), hours),
        hours(x.booked_hours),
        hours(x.used_hours),
        hours(x.idle_reclaimed_hours),
        x.idle_reclaims.to_string(),
        hours(x.refunded_hours),
        x.mean_utilization_percent.map_or_else(|| blank(raw), num),
        x.energy_wh.map_or_else(|| blank(raw), num),
        x.amount_due_krw
            .map_or_else(|| blank(raw), |v| if raw { v.to_string() } else { won(v) }),
        x.flags.iter().map(flag_text).collect::<Vec<_>>().join("; "),
    ]
}

/// `berth admin report`.
pub async fn run(ctx: &Ctx, a: &ReportArgs) -> Result<(), Error> {
    let req = v1::MonthlyReportRequest {
        month: a.month.clone(),
        org: a.org.clone().unwrap_or_default(),
        low_util_percent: a.low_util,
    };
    let r = ctx
        .api()
        .await?
        .billing()
        .monthly_report(req)
        .await?
        .into_inner();
    match ctx.format {
        Format::Json => output::json(&ReportView::from(&r)),
        Format::Html => output::emit(&html(&r)),
        Format::Csv => {
            let mut t = Table::new(COLUMNS);
            for x in &r.rows {
                t.row(cells(x, true));
            }
            output::emit(&t.render_csv())
        }
        Format::Table => {
            let mut t = Table::new(COLUMNS);
            for x in &r.rows {
                t.row(cells(x, false));
            }
            t.print(ctx.format, &trf(Msg::EmptyReport, &[("month", &r.month)]))
        }
    }
}

/// A printable, self-contained page (every value escaped).
fn html(r: &v1::MonthlyReportResponse) -> String {
    let e = escape;
    let title = trf(Msg::ReportTitle, &[("month", &r.month)]);
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"ko\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str(&format!(
        "<title>{}</title>\n<style>{PAGE_CSS}@page{{size:A4 landscape}}body{{max-width:none}}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        e(&title),
        e(&title)
    ));
    s.push_str(&format!(
        "<p>{} – {} (UTC)</p>\n<table>\n<thead><tr>",
        e(&timefmt::ts_rfc3339(r.period_start.as_ref()).unwrap_or_default()),
        e(&timefmt::ts_rfc3339(r.period_end.as_ref()).unwrap_or_default()),
    ));
    for (i, h) in COLUMNS.iter().enumerate() {
        let label = berth_i18n::cli::header(h).map_or(*h, tr);
        let class = if (2..11).contains(&i) {
            " class=\"n\""
        } else {
            ""
        };
        s.push_str(&format!("<th{class}>{}</th>", e(label)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for x in &r.rows {
        s.push_str("<tr>");
        for (i, c) in cells(x, false).iter().enumerate() {
            let class = if (2..11).contains(&i) {
                " class=\"n\""
            } else {
                ""
            };
            s.push_str(&format!("<td{class}>{}</td>", e(c)));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> v1::MonthlyReportResponse {
        v1::MonthlyReportResponse {
            month: "2025-03".into(),
            low_util_percent: 30.0,
            rows: vec![v1::ReportRow {
                org: "<acme>".into(),
                booked_hours: 7.0,
                used_hours: 9.0,
                idle_reclaims: 2,
                mean_utilization_percent: Some(12.5),
                amount_due_krw: Some(50_050),
                amount_source: "computed".into(),
                flags: vec![
                    v1::ReportFlag {
                        kind: "low-utilization".into(),
                        value: 12.5,
                        threshold: 30.0,
                        ..Default::default()
                    },
                    v1::ReportFlag {
                        kind: "bookings-unused".into(),
                        count: 2,
                        hours: 7.0,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn flags_carry_their_figures_in_every_format() {
        let r = report();
        let view = ReportView::from(&r);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["rows"][0]["flags"][0]["utilization_percent"], 12.5);
        assert_eq!(json["rows"][0]["flags"][0]["threshold_percent"], 30.0);
        assert_eq!(json["rows"][0]["flags"][1]["count"], 2);
        assert_eq!(json["rows"][0]["flags"][1]["hours"], 7.0);
        let row = cells(&r.rows[0], true);
        assert_eq!(row[10], "50050");
        assert!(
            row[11].contains("12.5") && row[11].contains("30.0"),
            "{}",
            row[11]
        );
        let page = html(&r);
        assert!(
            page.contains("&lt;acme&gt;") && !page.contains("<acme>"),
            "{page}"
        );
        assert!(page.contains("50,050"));
    }
}
