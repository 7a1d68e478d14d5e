//! `berth ledger`: the charges, refunds and top-ups of budgets; table, JSON or CSV.

use super::{Ctx, dash, opt};
use crate::error::{Error, tr};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use serde::Serialize;

/// `berth ledger` flags.
#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// Organisation (admins only, default all; others always see their own).
    #[arg(long)]
    pub org: Option<String>,
    /// Start (default: 31 days ago).
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub from: Option<String>,
    /// End (default now).
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub to: Option<String>,
}

/// A ledger entry as printed in JSON.
#[derive(Debug, Serialize)]
pub struct EntryView {
    pub id: String,
    pub org: String,
    pub budget_class: String,
    pub time: Option<String>,
    pub kind: String,
    pub hours: f64,
    pub subject_kind: Option<String>,
    pub subject_id: Option<String>,
    pub device_class: Option<String>,
    pub device_hours: f64,
    pub note: Option<String>,
    pub period_start: Option<String>,
}

impl From<&v1::LedgerEntry> for EntryView {
    fn from(e: &v1::LedgerEntry) -> Self {
        Self {
            id: e.id.clone(),
            org: e.org.clone(),
            budget_class: e.budget_class.clone(),
            time: timefmt::ts_rfc3339(e.time.as_ref()),
            kind: e.kind.clone(),
            hours: e.hours,
            subject_kind: opt(&e.subject_kind),
            subject_id: opt(&e.subject_id),
            device_class: opt(&e.device_class),
            device_hours: e.device_hours,
            note: opt(&e.note),
            period_start: timefmt::ts_rfc3339(e.period_start.as_ref()),
        }
    }
}

/// `job:ID`, `reservation:ID`, or `-` (top-ups).
fn subject(e: &v1::LedgerEntry) -> String {
    match (e.subject_kind.as_str(), e.subject_id.as_str()) {
        ("", "") => "-".to_owned(),
        ("", id) => id.to_owned(),
        (kind, id) => format!("{kind}:{id}"),
    }
}

/// The human table; an ORG column first when the entries span several orgs.
fn table(entries: &[v1::LedgerEntry]) -> Table {
    let with_org = entries.windows(2).any(|w| w[0].org != w[1].org);
    let mut headers = vec![
        "time",
        "kind",
        "hours",
        "budget",
        "subject",
        "device-class",
        "device-hours",
        "note",
    ];
    if with_org {
        headers.insert(0, "org");
    }
    let mut t = Table::new(headers);
    for e in entries {
        let mut row = vec![
            timefmt::ts_local(e.time.as_ref()),
            e.kind.clone(),
            format!("{:.2}", e.hours),
            e.budget_class.clone(),
            subject(e),
            dash(&e.device_class),
            format!("{:.2}", e.device_hours),
            e.note.clone(),
        ];
        if with_org {
            row.insert(0, e.org.clone());
        }
        t.row(row);
    }
    t
}

/// CSV for settlement: every field, times in RFC 3339, hours with 4 decimals.
fn csv(entries: &[v1::LedgerEntry]) -> String {
    let mut t = Table::new([
        "id",
        "org",
        "budget_class",
        "time",
        "kind",
        "hours",
        "subject_kind",
        "subject_id",
        "device_class",
        "device_hours",
        "note",
        "period_start",
    ]);
    for e in entries {
        t.row([
            e.id.clone(),
            e.org.clone(),
            e.budget_class.clone(),
            timefmt::ts_rfc3339(e.time.as_ref()).unwrap_or_default(),
            e.kind.clone(),
            format!("{:.4}", e.hours),
            e.subject_kind.clone(),
            e.subject_id.clone(),
            e.device_class.clone(),
            format!("{:.4}", e.device_hours),
            e.note.clone(),
            timefmt::ts_rfc3339(e.period_start.as_ref()).unwrap_or_default(),
        ]);
    }
    t.render_csv()
}

/// `berth ledger`.
pub async fn ledger(ctx: &Ctx, args: &LedgerArgs) -> Result<(), Error> {
    let (from, to) = timefmt::range_flags(args.from.as_deref(), args.to.as_deref())?;
    let client = ctx.api().await?.usage();
    let base = v1::ListLedgerRequest {
        org: args.org.clone().unwrap_or_default(),
        from: from.map(ms_to_ts),
        to: to.map(ms_to_ts),
        ..Default::default()
    };
    let (entries, _) = crate::paging::collect(None, |page_size, page_token| {
        let req = v1::ListLedgerRequest {
            page_size,
            page_token,
            ..base.clone()
        };
        let mut client = client.clone();
        async move {
            let r = client.list_ledger(req).await?.into_inner();
            Ok((r.entries, r.next_page_token))
        }
    })
    .await?;
    match ctx.format {
        Format::Json => {
            let views: Vec<EntryView> = entries.iter().map(Into::into).collect();
            output::json(&views)
        }
        Format::Csv => output::emit(&csv(&entries)),
        Format::Table | Format::Html => table(&entries).print(ctx.format, tr(Msg::EmptyLedger)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn charge() -> v1::LedgerEntry {
        v1::LedgerEntry {
            id: "l1".into(),
            org: "acme".into(),
            budget_class: "*".into(),
            time: Some(ms_to_ts(1_796_083_200_000)),
            kind: "charge".into(),
            hours: 4.0,
            subject_kind: "reservation".into(),
            subject_id: "r1".into(),
            device_class: "h100".into(),
            device_hours: 2.0,
            note: String::new(),
            period_start: Some(ms_to_ts(1_796_083_200_000)),
            project: String::new(),
        }
    }

    fn top_up() -> v1::LedgerEntry {
        v1::LedgerEntry {
            id: "l2".into(),
            kind: "top-up".into(),
            hours: 10.0,
            subject_kind: String::new(),
            subject_id: String::new(),
            device_class: String::new(),
            device_hours: 0.0,
            note: "extra, for the demo".into(),
            ..charge()
        }
    }

    #[test]
    fn ledger_json_has_the_fixed_shape() {
        let v = serde_json::to_value(EntryView::from(&charge())).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "l1",
                "org": "acme",
                "budget_class": "*",
                "time": "2026-12-01T00:00:00Z",
                "kind": "charge",
                "hours": 4.0,
                "subject_kind": "reservation",
                "subject_id": "r1",
                "device_class": "h100",
                "device_hours": 2.0,
                "note": null,
                "period_start": "2026-12-01T00:00:00Z"
            })
        );
        let v = serde_json::to_value(EntryView::from(&top_up())).unwrap();
        assert_eq!(v["subject_kind"], json!(null));
        assert_eq!(v["note"], "extra, for the demo");
    }

    #[test]
    fn tables_name_the_subject_and_add_org_only_for_several() {
        let text = table(&[charge(), top_up()]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{text}");
        assert!(
            lines[0].contains("DEVICE-CLASS  DEVICE-HOURS  NOTE"),
            "{text}"
        );
        assert!(lines[1].contains("reservation:r1"), "{text}");
        assert!(
            lines[2].contains("top-up") && lines[2].contains(" - "),
            "{text}"
        );
        let other = v1::LedgerEntry {
            org: "beta".into(),
            ..charge()
        };
        assert!(table(&[charge(), other]).render().starts_with("ORG"));
    }

    #[test]
    fn csv_has_every_field() {
        let text = csv(&[top_up()]);
        assert_eq!(
            text,
            "id,org,budget_class,time,kind,hours,subject_kind,subject_id,device_class,device_hours,note,period_start\r\n\
             l2,acme,*,2026-12-01T00:00:00Z,top-up,10.0000,,,,0.0000,\"extra, for the demo\",2026-12-01T00:00:00Z\r\n"
        );
    }
}
