//! `berth admin retention [set]`: how long logs, audit events, usage, ledger entries and
//! finished jobs and bookings are kept before the scheduler's background sweep deletes them.

use super::Ctx;
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::{dur_to_ms, ms_to_dur};
use berth_proto::v1;
use serde::Serialize;

/// `berth admin retention` subcommands; none shows the policy.
#[derive(Debug, clap::Subcommand)]
pub enum RetentionCmd {
    /// Show how long each kind of row is kept.
    Show,
    /// Change the kinds given (`forever` keeps them for good); the others keep theirs.
    Set(SetRetentionArgs),
}

/// `berth admin retention set` flags; at least one. Each takes a duration of at least an
/// hour (`90d`, `400d`) or `forever`.
#[derive(Debug, Default, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct SetRetentionArgs {
    /// Job logs, counted from the job's end.
    #[arg(long, group = "change", value_name = "DURATION|forever")]
    pub logs: Option<String>,
    /// Audit events.
    #[arg(long, group = "change", value_name = "DURATION|forever")]
    pub audit: Option<String>,
    /// Usage records (those of an unclosed budget period are always kept).
    #[arg(long, group = "change", value_name = "DURATION|forever")]
    pub usage: Option<String>,
    /// Ledger entries (those of an unclosed budget period are always kept).
    #[arg(long, group = "change", value_name = "DURATION|forever")]
    pub ledger: Option<String>,
    /// Finished jobs and bookings, counted from their end.
    #[arg(long, group = "change", value_name = "DURATION|forever")]
    pub finished: Option<String>,
}

/// The policy as printed in JSON: each kind's duration, or `null` for forever.
#[derive(Debug, Serialize, PartialEq)]
pub struct RetentionView {
    pub logs: Option<String>,
    pub audit: Option<String>,
    pub usage: Option<String>,
    pub ledger: Option<String>,
    pub finished: Option<String>,
}

fn human(d: Option<&prost_types::Duration>) -> Option<String> {
    d.map(|d| timefmt::format_duration(dur_to_ms(d)))
}

impl From<&v1::Retention> for RetentionView {
    fn from(r: &v1::Retention) -> Self {
        RetentionView {
            logs: human(r.logs.as_ref()),
            audit: human(r.audit.as_ref()),
            usage: human(r.usage.as_ref()),
            ledger: human(r.ledger.as_ref()),
            finished: human(r.finished.as_ref()),
        }
    }
}

/// A `--KIND` value: `forever`, or a positive duration.
fn keep(flag: &str, value: &str) -> Result<Option<prost_types::Duration>, Error> {
    if value.trim().eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    timefmt::positive_duration_flag(flag, value).map(|ms| Some(ms_to_dur(ms)))
}

/// Builds the `SetRetention` request: the given flags, and `fields` naming exactly them.
pub fn set_request(args: &SetRetentionArgs) -> Result<v1::SetRetentionRequest, Error> {
    let mut r = v1::Retention::default();
    let mut fields = Vec::new();
    let given = [
        ("logs", &args.logs, &mut r.logs),
        ("audit", &args.audit, &mut r.audit),
        ("usage", &args.usage, &mut r.usage),
        ("ledger", &args.ledger, &mut r.ledger),
        ("finished", &args.finished, &mut r.finished),
    ];
    for (name, value, slot) in given {
        if let Some(v) = value {
            *slot = keep(&format!("--{name}"), v)?;
            fields.push(name.to_owned());
        }
    }
    Ok(v1::SetRetentionRequest {
        retention: Some(r),
        fields,
    })
}

fn print(r: &v1::Retention, format: Format) -> Result<(), Error> {
    let view = RetentionView::from(r);
    if format == Format::Json {
        return output::json(&view);
    }
    let mut t = Table::new(["kind", "kept"]);
    let forever = |v: &Option<String>| v.clone().unwrap_or_else(|| "forever".to_owned());
    for (k, v) in [
        ("logs", &view.logs),
        ("audit", &view.audit),
        ("usage", &view.usage),
        ("ledger", &view.ledger),
        ("finished", &view.finished),
    ] {
        t.row([k.to_owned(), forever(v)]);
    }
    t.print(format, tr(Msg::EmptyRetention))
}

/// `berth admin retention [show|set]`.
pub async fn run(ctx: &Ctx, cmd: Option<&RetentionCmd>) -> Result<(), Error> {
    match cmd {
        None | Some(RetentionCmd::Show) => {
            let r = ctx
                .api()
                .await?
                .admin()
                .get_retention(v1::GetRetentionRequest {})
                .await?
                .into_inner();
            print(&r, ctx.format)
        }
        Some(RetentionCmd::Set(args)) => {
            let req = set_request(args)?;
            let changed = req.fields.join(", ");
            let r = ctx
                .api()
                .await?
                .admin()
                .set_retention(req)
                .await?
                .into_inner();
            output::note(trf(Msg::RetentionUpdated, &[("changed", &changed)]));
            print(&r, ctx.format)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_exactly_the_flags_given_and_forever_clears() {
        let args = SetRetentionArgs {
            logs: Some("90d".into()),
            audit: Some("forever".into()),
            ..Default::default()
        };
        let req = set_request(&args).unwrap();
        assert_eq!(req.fields, ["logs", "audit"]);
        let r = req.retention.unwrap();
        assert_eq!(r.logs.map(|d| d.seconds), Some(90 * 86_400));
        assert_eq!(r.audit, None);
        let bad = SetRetentionArgs {
            usage: Some("soon".into()),
            ..Default::default()
        };
        let err = set_request(&bad).unwrap_err().to_string();
        assert!(err.contains("--usage"), "{err}");
    }
}
