//! `berth admin budgets ...` and the budget tables `berth usage` shares: device-hour
//! budgets per org and class, their limits and the current period's balance.

use super::{Ctx, dash};
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::{dur_to_ms, ms_to_dur, ms_to_ts};
use berth_proto::v1;
use serde::Serialize;

/// Budget periods (UTC calendar periods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PeriodArg {
    Day,
    Week,
    #[default]
    Month,
}

impl PeriodArg {
    fn as_str(self) -> &'static str {
        match self {
            PeriodArg::Day => "day",
            PeriodArg::Week => "week",
            PeriodArg::Month => "month",
        }
    }
}

/// `berth admin budgets` subcommands; none lists.
#[derive(Debug, clap::Subcommand)]
pub enum BudgetsCmd {
    /// List budgets and their balance this period.
    List {
        /// Only this organisation.
        #[arg(long)]
        org: Option<String>,
    },
    /// Set (replace) an organisation's budget and limits for a class.
    Set(SetBudgetArgs),
    /// Delete an organisation's budget for a class.
    Delete {
        #[arg(long)]
        org: String,
        /// Class name, or '*' for the budget that spans every class.
        #[arg(long)]
        class: String,
    },
    /// Add hours to the current period of a budget.
    TopUp {
        #[arg(long)]
        org: String,
        /// Class name, or '*'.
        #[arg(long)]
        class: String,
        /// Budget hours to add.
        #[arg(long, value_name = "H")]
        hours: f64,
        /// Why (kept in the ledger).
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// `berth admin budgets set` flags.
#[derive(Debug, clap::Args)]
pub struct SetBudgetArgs {
    /// Organisation.
    #[arg(long)]
    pub org: String,
    /// Device class, or '*' for every class (each charged at its rate).
    #[arg(long)]
    pub class: String,
    /// Budget hours per period, or `unlimited` for caps without an hour limit.
    #[arg(long, value_name = "H")]
    pub hours: String,
    /// Budget period.
    #[arg(long, value_enum, default_value_t = PeriodArg::Month)]
    pub period: PeriodArg,
    /// Most devices of the class held at once.
    #[arg(long, value_name = "N")]
    pub max_devices: Option<u32>,
    /// Longest single booking or job runtime: 24h, 2d.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
    pub max_booking: Option<String>,
    /// How far ahead a booking may start: 14d.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
    pub horizon: Option<String>,
    /// After this the budget grants nothing: "2027-01-01", +30d, RFC 3339.
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub expires: Option<String>,
}

/// A budget as printed in JSON.
#[derive(Debug, Serialize)]
pub struct BudgetView {
    pub org: String,
    pub class: String,
    pub period: String,
    pub hours: Option<f64>,
    pub max_devices: Option<u32>,
    pub max_booking: Option<String>,
    pub horizon: Option<String>,
    pub expires_at: Option<String>,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub topped_up_hours: f64,
    pub charged_hours: f64,
    pub refunded_hours: f64,
    pub left_hours: Option<f64>,
    pub devices_held: u32,
}

fn human_duration(d: Option<&prost_types::Duration>) -> Option<String> {
    d.map(dur_to_ms)
        .filter(|&ms| ms > 0)
        .map(timefmt::format_duration)
}

impl From<&v1::Budget> for BudgetView {
    fn from(b: &v1::Budget) -> Self {
        Self {
            org: b.org.clone(),
            class: b.class.clone(),
            period: b.period.clone(),
            hours: b.hours,
            max_devices: b.max_devices,
            max_booking: human_duration(b.max_booking.as_ref()),
            horizon: human_duration(b.horizon.as_ref()),
            expires_at: timefmt::ts_rfc3339(b.expires_at.as_ref()),
            period_start: timefmt::ts_rfc3339(b.period_start.as_ref()),
            period_end: timefmt::ts_rfc3339(b.period_end.as_ref()),
            topped_up_hours: b.topped_up_hours,
            charged_hours: b.charged_hours,
            refunded_hours: b.refunded_hours,
            left_hours: b.left_hours,
            devices_held: b.devices_held,
        }
    }
}

/// Budget hours for a table: one decimal.
pub fn hours(h: f64) -> String {
    format!("{h:.1}")
}

fn opt_hours(h: Option<f64>) -> String {
    h.map_or_else(|| "-".to_owned(), hours)
}

/// The budget table; without the ORG column when `with_org` is false.
pub fn table(budgets: &[v1::Budget], with_org: bool) -> Table {
    let mut headers = vec![
        "class",
        "period",
        "hours",
        "top-up",
        "charged",
        "refunded",
        "left",
        "held",
        "max-devices",
        "max-booking",
        "horizon",
        "expires",
    ];
    if with_org {
        headers.insert(0, "org");
    }
    let mut t = Table::new(headers);
    for b in budgets {
        let mut row = vec![
            b.class.clone(),
            dash(&b.period),
            opt_hours(b.hours),
            hours(b.topped_up_hours),
            hours(b.charged_hours),
            hours(b.refunded_hours),
            opt_hours(b.left_hours),
            b.devices_held.to_string(),
            b.max_devices
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            human_duration(b.max_booking.as_ref()).unwrap_or_else(|| "-".to_owned()),
            human_duration(b.horizon.as_ref()).unwrap_or_else(|| "-".to_owned()),
            timefmt::ts_local(b.expires_at.as_ref()),
        ];
        if with_org {
            row.insert(0, b.org.clone());
        }
        t.row(row);
    }
    t
}

/// True when the budgets span more than one org.
pub fn several_orgs(budgets: &[v1::Budget]) -> bool {
    budgets.windows(2).any(|w| w[0].org != w[1].org)
}

/// Prints budgets as a table (always with ORG), CSV or JSON.
pub fn print(budgets: &[v1::Budget], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<BudgetView> = budgets.iter().map(Into::into).collect();
        return output::json(&views);
    }
    table(budgets, true).print(format, tr(Msg::EmptyBudgets))
}

/// `--hours` of `budgets set`: a non-negative number, or `unlimited` (no hour limit).
pub fn parse_hours(value: &str) -> Result<Option<f64>, Error> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(h) if h.is_finite() && h >= 0.0 => Ok(Some(h)),
        Ok(_) => Err(Error::invalid("--hours", value, tr(Msg::ZeroOrMore))),
        Err(_) => Err(Error::invalid("--hours", value, tr(Msg::HoursOrUnlimited))),
    }
}

/// Builds the `SetBudget` request from the flags, checking values locally.
pub fn set_request(args: &SetBudgetArgs) -> Result<v1::SetBudgetRequest, Error> {
    let duration = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| timefmt::positive_duration_flag(flag, v).map(ms_to_dur))
            .transpose()
    };
    Ok(v1::SetBudgetRequest {
        org: args.org.clone(),
        class: args.class.clone(),
        hours: parse_hours(&args.hours)?,
        period: args.period.as_str().to_owned(),
        max_devices: args.max_devices,
        max_booking: duration("--max-booking", &args.max_booking)?,
        horizon: duration("--horizon", &args.horizon)?,
        expires_at: args
            .expires
            .as_deref()
            .map(|v| timefmt::time_flag("--expires", v).map(ms_to_ts))
            .transpose()?,
    })
}

/// Checks `top-up --hours`.
fn top_up_hours(h: f64) -> Result<f64, Error> {
    if h.is_finite() && h > 0.0 {
        Ok(h)
    } else {
        Err(Error::invalid(
            "--hours",
            &h.to_string(),
            tr(Msg::MustBePositive),
        ))
    }
}

/// `berth admin budgets ...`.
pub async fn run(ctx: &Ctx, cmd: Option<&BudgetsCmd>) -> Result<(), Error> {
    let format = ctx.format;
    match cmd {
        None => list(ctx, None).await,
        Some(BudgetsCmd::List { org }) => list(ctx, org.as_deref()).await,
        Some(BudgetsCmd::Set(args)) => {
            // Check flag values before connecting.
            let req = set_request(args)?;
            let b = ctx.api().await?.admin().set_budget(req).await?.into_inner();
            print_one(&b, format)
        }
        Some(BudgetsCmd::Delete { org, class }) => {
            ctx.api()
                .await?
                .admin()
                .delete_budget(v1::DeleteBudgetRequest {
                    org: org.clone(),
                    class: class.clone(),
                })
                .await?;
            output::note(trf(Msg::DeletedBudget, &[("class", &class), ("org", &org)]));
            if format == Format::Json {
                output::json(&serde_json::json!({ "org": org, "class": class, "deleted": true }))?;
            }
            Ok(())
        }
        Some(BudgetsCmd::TopUp {
            org,
            class,
            hours,
            note,
        }) => {
            let req = v1::TopUpBudgetRequest {
                org: org.clone(),
                class: class.clone(),
                hours: top_up_hours(*hours)?,
                note: note.clone(),
            };
            let b = ctx
                .api()
                .await?
                .admin()
                .top_up_budget(req)
                .await?
                .into_inner();
            print_one(&b, format)
        }
    }
}

fn print_one(b: &v1::Budget, format: Format) -> Result<(), Error> {
    if format == Format::Json {
        output::json(&BudgetView::from(b))
    } else {
        print(std::slice::from_ref(b), format)
    }
}

async fn list(ctx: &Ctx, org: Option<&str>) -> Result<(), Error> {
    let budgets = ctx
        .api()
        .await?
        .usage()
        .list_budgets(v1::ListBudgetsRequest {
            org: org.unwrap_or_default().to_owned(),
        })
        .await?
        .into_inner()
        .budgets;
    print(&budgets, ctx.format)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> v1::Budget {
        v1::Budget {
            org: "acme".into(),
            class: "h100".into(),
            period: "month".into(),
            hours: Some(100.0),
            max_devices: Some(4),
            max_booking: Some(ms_to_dur(24 * 3_600_000)),
            horizon: None,
            expires_at: None,
            period_start: Some(ms_to_ts(1_796_083_200_000)),
            period_end: Some(ms_to_ts(1_798_761_600_000)),
            topped_up_hours: 10.0,
            charged_hours: 12.25,
            refunded_hours: 2.0,
            left_hours: Some(99.75),
            devices_held: 2,
        }
    }

    #[test]
    fn budget_json_has_the_fixed_shape() {
        let v = serde_json::to_value(BudgetView::from(&sample())).unwrap();
        assert_eq!(
            v,
            json!({
                "org": "acme",
                "class": "h100",
                "period": "month",
                "hours": 100.0,
                "max_devices": 4,
                "max_booking": "1d",
                "horizon": null,
                "expires_at": null,
                "period_start": "2026-12-01T00:00:00Z",
                "period_end": "2027-01-01T00:00:00Z",
                "topped_up_hours": 10.0,
                "charged_hours": 12.25,
                "refunded_hours": 2.0,
                "left_hours": 99.75,
                "devices_held": 2
            })
        );
    }

    #[test]
    fn unlimited_budgets_are_null_in_json_and_dashes_in_tables() {
        let b = v1::Budget {
            class: "*".into(),
            hours: None,
            left_hours: None,
            max_devices: None,
            max_booking: None,
            ..sample()
        };
        let v = serde_json::to_value(BudgetView::from(&b)).unwrap();
        assert_eq!(v["hours"], json!(null));
        assert_eq!(v["left_hours"], json!(null));
        assert_eq!(v["max_devices"], json!(null));
        let text = table(&[b], false).render();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "*", "month", "-", "10.0", "12.2", "2.0", "-", "2", "-", "-", "-", "-"
            ]
        );
    }

    #[test]
    fn tables_show_org_only_when_asked() {
        let text = table(&[sample()], true).render();
        assert!(
            text.starts_with(
                "ORG   CLASS  PERIOD  HOURS  TOP-UP  CHARGED  REFUNDED  LEFT  HELD  MAX-DEVICES  MAX-BOOKING  HORIZON  EXPIRES\n"
            ),
            "{text}"
        );
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("acme  h100   month   100.0")
        );
        assert!(table(&[sample()], false).render().starts_with("CLASS"));
        assert!(!several_orgs(&[sample(), sample()]));
        let other = v1::Budget {
            org: "beta".into(),
            ..sample()
        };
        assert!(several_orgs(&[sample(), other]));
    }

    #[test]
    fn set_requests_are_checked_locally() {
        let args = SetBudgetArgs {
            org: "acme".into(),
            class: "*".into(),
            hours: "120.5".into(),
            period: PeriodArg::Week,
            max_devices: Some(8),
            max_booking: Some("24h".into()),
            horizon: None,
            expires: Some("2027-01-01T00:00:00Z".into()),
        };
        let req = set_request(&args).unwrap();
        assert_eq!(req.class, "*");
        assert_eq!(req.hours, Some(120.5));
        assert_eq!(req.period, "week");
        assert_eq!(req.max_devices, Some(8));
        assert_eq!(req.max_booking.unwrap().seconds, 86_400);
        assert!(req.horizon.is_none());
        assert_eq!(
            timefmt::ts_rfc3339(req.expires_at.as_ref()).as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        let unlimited = SetBudgetArgs {
            hours: "unlimited".into(),
            ..args
        };
        assert_eq!(set_request(&unlimited).unwrap().hours, None);
        let e = parse_hours("-1").unwrap_err().to_string();
        assert_eq!(e, r#"invalid --hours "-1": must be 0 or more"#);
        assert!(parse_hours("lots").is_err());
        let bad = SetBudgetArgs {
            hours: "1".into(),
            horizon: Some("0s".into()),
            ..unlimited
        };
        let e = set_request(&bad).unwrap_err().to_string();
        assert_eq!(e, r#"invalid --horizon "0s": must be positive"#);
        assert!(top_up_hours(0.0).is_err());
        assert_eq!(top_up_hours(5.0).unwrap(), 5.0);
    }
}
