//! `berth reserve` and `berth reservations [show|cancel]`.

use super::{Ctx, dash, opt, reservation_state};
use crate::error::{Error, tr, trf};
use crate::output::{self, Details, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use serde::Serialize;

/// `berth reserve` flags.
#[derive(Debug, clap::Args)]
pub struct ReserveArgs {
    /// Device class to book.
    #[arg(long)]
    pub class: String,
    /// Number of devices.
    #[arg(long, value_name = "N")]
    pub count: u32,
    /// Start: now, +2h, "2026-12-01 09:00" (local), 2026-12-01 or RFC 3339.
    #[arg(
        long,
        default_value = "now",
        allow_hyphen_values = true,
        value_name = "TIME"
    )]
    pub start: String,
    /// Length of the booking: 8h, 90m, 1h30m, 2d.
    #[arg(
        long,
        allow_hyphen_values = true,
        value_name = "DURATION",
        required_unless_present = "end",
        conflicts_with = "end"
    )]
    pub duration: Option<String>,
    /// End instead of --duration.
    #[arg(long, allow_hyphen_values = true, value_name = "TIME")]
    pub end: Option<String>,
    /// Only this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Charge this project's grant (default: your default project, `berth projects use`).
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
}

/// `berth reservations` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReservationsCmd {
    /// Show one reservation.
    Show {
        /// Reservation id.
        id: String,
    },
    /// Cancel a reservation (its jobs are stopped).
    Cancel {
        /// Reservation id.
        id: String,
    },
}

/// A reservation as printed in JSON.
#[derive(Debug, Serialize)]
pub struct ReservationView {
    pub id: String,
    pub state: &'static str,
    pub org: String,
    pub user: String,
    pub class: String,
    pub count: u32,
    pub site: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub devices: Vec<String>,
    pub created_at: Option<String>,
    pub reason: Option<String>,
    pub charged_hours: f64,
    pub budget_class: Option<String>,
    pub project: Option<String>,
    pub charged_project: Option<String>,
    pub idle_since: Option<String>,
    pub idle_warned_at: Option<String>,
    pub reclaim_at: Option<String>,
    pub warning: Option<String>,
}

impl From<&v1::Reservation> for ReservationView {
    fn from(r: &v1::Reservation) -> Self {
        Self {
            id: r.id.clone(),
            state: reservation_state(r.state),
            org: r.org.clone(),
            user: r.user.clone(),
            class: r.class.clone(),
            count: r.count,
            site: opt(&r.site),
            start: timefmt::ts_rfc3339(r.start.as_ref()),
            end: timefmt::ts_rfc3339(r.end.as_ref()),
            devices: r.devices.clone(),
            created_at: timefmt::ts_rfc3339(r.created_at.as_ref()),
            reason: opt(&r.reason),
            charged_hours: r.charged_hours,
            budget_class: opt(&r.budget_class),
            project: opt(&r.project),
            charged_project: opt(&r.charged_project),
            idle_since: timefmt::ts_rfc3339(r.idle_since.as_ref()),
            idle_warned_at: timefmt::ts_rfc3339(r.idle_warned_at.as_ref()),
            reclaim_at: timefmt::ts_rfc3339(r.reclaim_at.as_ref()),
            warning: opt(&r.warning),
        }
    }
}

/// Key/value details of one reservation; a pending idle reclaim shows as a `Warning:`
/// line right under the state.
pub fn details(r: &v1::Reservation) -> Details {
    let mut d = Details::new()
        .field("ID", &r.id)
        .field("State", reservation_state(r.state));
    if !r.warning.is_empty() {
        d = d.field("Warning", &r.warning);
    }
    d = d
        .field("Org", &r.org)
        .field("User", &r.user)
        .field("Class", &r.class)
        .field("Count", r.count.to_string())
        .field("Site", dash(&r.site))
        .field("Start", timefmt::ts_local(r.start.as_ref()))
        .field("End", timefmt::ts_local(r.end.as_ref()))
        .field(
            "Devices",
            if r.devices.is_empty() {
                "-".to_owned()
            } else {
                r.devices.join("\n")
            },
        )
        .field("Created", timefmt::ts_local(r.created_at.as_ref()))
        .field("Reason", &r.reason)
        .field("Charged hours", format!("{:.2}", r.charged_hours))
        .field("Budget", dash(&r.budget_class))
        .field("Project", dash(&r.project))
        .field("Paid by", dash(&r.charged_project));
    // Idle-reclaim instants, only those that are set.
    for (key, ts) in [
        ("Idle since", &r.idle_since),
        ("Idle warned", &r.idle_warned_at),
        ("Reclaim at", &r.reclaim_at),
    ] {
        if timefmt::ts_ms(ts.as_ref()).is_some() {
            d = d.field(key, timefmt::ts_local(ts.as_ref()));
        }
    }
    d
}

/// Warnings of listed reservations, for stderr: `warning: reservation ID: TEXT`.
pub fn warnings(rs: &[v1::Reservation]) -> Vec<String> {
    rs.iter()
        .filter(|r| !r.warning.is_empty())
        .map(|r| format!("warning: reservation {}: {}", r.id, r.warning))
        .collect()
}

/// Prints one reservation.
pub fn print_one(r: &v1::Reservation, format: Format) -> Result<(), Error> {
    match format {
        Format::Json => output::json(&ReservationView::from(r)),
        _ => details(r).print(format),
    }
}

/// The listing table.
pub fn table(rs: &[v1::Reservation]) -> Table {
    let mut t = Table::new([
        "id", "state", "class", "count", "site", "start", "end", "user",
    ]);
    for r in rs {
        t.row([
            r.id.clone(),
            reservation_state(r.state).to_owned(),
            r.class.clone(),
            r.count.to_string(),
            dash(&r.site),
            timefmt::ts_local(r.start.as_ref()),
            timefmt::ts_local(r.end.as_ref()),
            r.user.clone(),
        ]);
    }
    t
}

/// Builds the request from the flags, checking times locally so that errors name the flag.
pub fn request(args: &ReserveArgs) -> Result<v1::CreateReservationRequest, Error> {
    let start = timefmt::time_flag("--start", &args.start)?;
    let end = match (&args.duration, &args.end) {
        (Some(d), _) => {
            let ms = timefmt::positive_duration_flag("--duration", d)?;
            start
                .checked_add(ms)
                .ok_or_else(|| Error::invalid("--duration", d, tr(Msg::TooLarge)))?
        }
        (None, Some(e)) => {
            let end = timefmt::time_flag("--end", e)?;
            if end <= start {
                return Err(Error::invalid("--end", e, tr(Msg::MustBeAfterStart)));
            }
            end
        }
        (None, None) => {
            return Err(Error::Usage(tr(Msg::GiveDurationOrEnd).into()));
        }
    };
    Ok(v1::CreateReservationRequest {
        class: args.class.clone(),
        count: args.count,
        start: Some(ms_to_ts(start)),
        end: Some(ms_to_ts(end)),
        site: args.site.clone().unwrap_or_default(),
        project: args.project.clone().unwrap_or_default(),
    })
}

/// `berth reserve`.
pub async fn reserve(ctx: &Ctx, args: &ReserveArgs) -> Result<(), Error> {
    let req = request(args)?;
    let r = ctx
        .api()
        .await?
        .reservations()
        .create_reservation(req)
        .await?
        .into_inner();
    if ctx.format == Format::Table {
        output::note(trf(
            Msg::Reserved,
            &[
                ("count", &r.count),
                ("class", &r.class),
                ("state", &reservation_state(r.state)),
                ("id", &r.id),
            ],
        ));
    }
    print_one(&r, ctx.format)
}

/// `berth reservations [--all]` and its subcommands.
pub async fn reservations(
    ctx: &Ctx,
    all: bool,
    list: &crate::paging::ListArgs,
    cmd: Option<&ReservationsCmd>,
) -> Result<(), Error> {
    let mut client = ctx.api().await?.reservations();
    match cmd {
        None => {
            let base = v1::ListReservationsRequest {
                all,
                states: list.reservation_states()?,
                user: list.user.clone().unwrap_or_default(),
                class: list.class.clone().unwrap_or_default(),
                since: list.since()?,
                ..Default::default()
            };
            let (rs, more) =
                crate::paging::collect(list.limit(ctx.format), |page_size, page_token| {
                    let req = v1::ListReservationsRequest {
                        page_size,
                        page_token,
                        ..base.clone()
                    };
                    let mut client = client.clone();
                    async move {
                        let r = client.list_reservations(req).await?.into_inner();
                        Ok((r.reservations, r.next_page_token))
                    }
                })
                .await?;
            if ctx.format == Format::Json {
                let views: Vec<ReservationView> = rs.iter().map(Into::into).collect();
                return output::json(&views);
            }
            table(&rs).print(ctx.format, tr(Msg::EmptyReservations))?;
            if ctx.format == Format::Table {
                warnings(&rs).into_iter().for_each(output::note);
                crate::paging::note_more(more, rs.len(), "reservations");
            }
            Ok(())
        }
        Some(ReservationsCmd::Show { id }) => {
            let r = client
                .get_reservation(v1::GetReservationRequest { id: id.clone() })
                .await?
                .into_inner();
            print_one(&r, ctx.format)
        }
        Some(ReservationsCmd::Cancel { id }) => {
            let r = client
                .cancel_reservation(v1::CancelReservationRequest { id: id.clone() })
                .await?
                .into_inner();
            if ctx.format == Format::Table {
                output::note(format!(
                    "reservation {} is {}",
                    r.id,
                    reservation_state(r.state)
                ));
            }
            print_one(&r, ctx.format)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> v1::Reservation {
        v1::Reservation {
            id: "0b6c7d1e-0000-4000-8000-000000000001".into(),
            org: "acme".into(),
            user: "alice".into(),
            class: "h100".into(),
            count: 2,
            site: String::new(),
            start: Some(ms_to_ts(1_796_083_200_000)),
            end: Some(ms_to_ts(1_796_086_800_000)),
            state: v1::ReservationState::Confirmed as i32,
            devices: vec!["GPU-a".into(), "GPU-b".into()],
            created_at: Some(ms_to_ts(1_796_083_100_500)),
            reason: String::new(),
            charged_hours: 2.0,
            budget_class: "h100".into(),
            idle_since: None,
            idle_warned_at: None,
            reclaim_at: None,
            warning: String::new(),
            project: String::new(),
            charged_project: String::new(),
        }
    }

    #[test]
    fn reservation_json_has_the_fixed_shape() {
        let v = serde_json::to_value(ReservationView::from(&sample())).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "0b6c7d1e-0000-4000-8000-000000000001",
                "state": "confirmed",
                "org": "acme",
                "user": "alice",
                "class": "h100",
                "count": 2,
                "site": null,
                "start": "2026-12-01T00:00:00Z",
                "end": "2026-12-01T01:00:00Z",
                "devices": ["GPU-a", "GPU-b"],
                "created_at": "2026-11-30T23:58:20.500Z",
                "reason": null,
                "charged_hours": 2.0,
                "budget_class": "h100",
                "project": null,
                "charged_project": null,
                "idle_since": null,
                "idle_warned_at": null,
                "reclaim_at": null,
                "warning": null
            })
        );
    }

    #[test]
    fn idle_reservations_warn_prominently() {
        let r = v1::Reservation {
            state: v1::ReservationState::Active as i32,
            idle_since: Some(ms_to_ts(1_796_083_200_000)),
            idle_warned_at: Some(ms_to_ts(1_796_085_000_000)),
            reclaim_at: Some(ms_to_ts(1_796_085_900_000)),
            warning: "devices idle since 00:00; reclaimed at 00:45 unless used".into(),
            ..sample()
        };
        let v = serde_json::to_value(ReservationView::from(&r)).unwrap();
        assert_eq!(v["idle_since"], "2026-12-01T00:00:00Z");
        assert_eq!(v["idle_warned_at"], "2026-12-01T00:30:00Z");
        assert_eq!(v["reclaim_at"], "2026-12-01T00:45:00Z");
        assert_eq!(
            v["warning"],
            "devices idle since 00:00; reclaimed at 00:45 unless used"
        );
        let text = details(&r).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("Warning:"), "{text}");
        assert!(text.contains("Reclaim at:"), "{text}");
        assert!(!details(&sample()).render().contains("Warning"));
        assert_eq!(
            warnings(&[sample(), r]),
            [
                "warning: reservation 0b6c7d1e-0000-4000-8000-000000000001: devices idle since 00:00; reclaimed at 00:45 unless used"
            ]
        );
    }

    #[test]
    fn reservation_json_states_and_reasons() {
        let mut r = sample();
        r.state = v1::ReservationState::Cancelled as i32;
        r.reason = "cancelled by alice".into();
        r.site = "busan".into();
        let v = serde_json::to_value(ReservationView::from(&r)).unwrap();
        assert_eq!(v["state"], "cancelled");
        assert_eq!(v["reason"], "cancelled by alice");
        assert_eq!(v["site"], "busan");
    }

    #[test]
    fn listing_table_has_one_row_per_reservation() {
        let text = table(&[sample(), sample()]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  "), "{text}");
        assert!(lines[1].contains("confirmed") && lines[1].contains("h100"));
    }

    fn args(start: &str, duration: Option<&str>, end: Option<&str>) -> ReserveArgs {
        ReserveArgs {
            class: "h100".into(),
            count: 2,
            start: start.into(),
            duration: duration.map(Into::into),
            end: end.map(Into::into),
            site: None,
            project: None,
        }
    }

    #[test]
    fn requests_are_checked_locally_with_the_flag_named() {
        let req = request(&args("2026-12-01T00:00:00Z", Some("1h30m"), None)).unwrap();
        let start = berth_proto::time::ts_to_ms(req.start.as_ref().unwrap());
        let end = berth_proto::time::ts_to_ms(req.end.as_ref().unwrap());
        assert_eq!(end - start, 90 * 60_000);

        let e = request(&args("now", Some("0s"), None))
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"invalid --duration "0s": must be positive"#);
        let e = request(&args("now", Some("-2h"), None))
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"invalid --duration "-2h": must be positive"#);
        let e = request(&args("+2h", None, Some("+1h")))
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"invalid --end "+1h": must be after --start"#);
        let e = request(&args("tomorrowish", Some("1h"), None))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(r#"invalid --start "tomorrowish": expected now"#),
            "{e}"
        );
    }
}
