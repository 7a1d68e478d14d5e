//! `berth admin status`: every scheduler on the database, who leads since when, the
//! leader's fencing token, and how long ago each was last heard from.

use super::Ctx;
use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_proto::time::dur_to_ms;
use berth_proto::v1;
use serde::Serialize;

/// One scheduler as printed in JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct MemberView {
    pub id: String,
    pub address: String,
    pub role: String,
    pub started_at: Option<String>,
    pub last_seen: Option<String>,
    /// Milliseconds since it last renewed or checked the lease.
    pub lag_ms: i64,
    pub fencing_token: u64,
}

/// The status as printed in JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct StatusView {
    pub shared_database: bool,
    pub leader: Option<String>,
    pub leader_address: Option<String>,
    pub leader_since: Option<String>,
    pub lease_expires: Option<String>,
    pub fencing_token: u64,
    pub answered_by: String,
    pub schedulers: Vec<MemberView>,
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl From<&v1::SchedulerStatus> for StatusView {
    fn from(s: &v1::SchedulerStatus) -> Self {
        StatusView {
            shared_database: s.shared_database,
            leader: opt(&s.leader),
            leader_address: opt(&s.leader_address),
            leader_since: timefmt::ts_rfc3339(s.leader_since.as_ref()),
            lease_expires: timefmt::ts_rfc3339(s.lease_expires.as_ref()),
            fencing_token: s.fencing_token,
            answered_by: s.answered_by.clone(),
            schedulers: s
                .schedulers
                .iter()
                .map(|m| MemberView {
                    id: m.id.clone(),
                    address: m.address.clone(),
                    role: m.role.clone(),
                    started_at: timefmt::ts_rfc3339(m.started_at.as_ref()),
                    last_seen: timefmt::ts_rfc3339(m.last_seen.as_ref()),
                    lag_ms: m.lag.as_ref().map_or(0, dur_to_ms),
                    fencing_token: m.fencing_token,
                })
                .collect(),
        }
    }
}

/// A table of the schedulers, and a line on who leads.
pub fn table(s: &v1::SchedulerStatus) -> Table {
    let mut t = Table::new(["scheduler", "address", "role", "since", "token", "lag"]);
    if !s.shared_database {
        t.row([
            s.answered_by.clone(),
            "-".into(),
            "leader".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        return t;
    }
    for m in &s.schedulers {
        let leads = m.id == s.leader;
        t.row([
            m.id.clone(),
            m.address.clone(),
            m.role.clone(),
            if leads {
                timefmt::ts_ms(s.leader_since.as_ref()).map_or("-".into(), timefmt::local)
            } else {
                timefmt::ts_ms(m.started_at.as_ref()).map_or("-".into(), timefmt::local)
            },
            if leads {
                m.fencing_token.to_string()
            } else {
                "-".into()
            },
            timefmt::format_duration(m.lag.as_ref().map_or(0, dur_to_ms)),
        ]);
    }
    t
}

/// `berth admin status`.
pub async fn run(ctx: &Ctx) -> Result<(), Error> {
    let s = ctx
        .api()
        .await?
        .admin()
        .get_status(v1::GetStatusRequest {})
        .await?
        .into_inner();
    if ctx.format == Format::Json {
        return output::json(&StatusView::from(&s));
    }
    table(&s).print(ctx.format, "no schedulers")?;
    if !s.shared_database {
        output::note("one scheduler on the embedded SQLite database; it always leads");
    } else if s.leader.is_empty() {
        output::note("no scheduler leads right now; a standby takes over within one lease");
    } else {
        output::note(format!(
            "{} leads (term {}) at {}",
            s.leader, s.fencing_token, s.leader_address
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::time::{ms_to_dur, ms_to_ts};

    #[test]
    fn the_leader_shows_its_term_and_standbys_their_lag() {
        let s = v1::SchedulerStatus {
            shared_database: true,
            leader: "a".into(),
            leader_address: "https://a:7070".into(),
            fencing_token: 7,
            leader_since: Some(ms_to_ts(1_796_083_200_000)),
            lease_expires: Some(ms_to_ts(1_796_083_210_000)),
            schedulers: vec![
                v1::SchedulerMember {
                    id: "a".into(),
                    address: "https://a:7070".into(),
                    role: "leader".into(),
                    fencing_token: 7,
                    lag: Some(ms_to_dur(300)),
                    ..Default::default()
                },
                v1::SchedulerMember {
                    id: "b".into(),
                    address: "https://b:7070".into(),
                    role: "standby".into(),
                    lag: Some(ms_to_dur(1_500)),
                    ..Default::default()
                },
            ],
            answered_by: "b".into(),
        };
        let v = StatusView::from(&s);
        assert_eq!(v.leader.as_deref(), Some("a"));
        assert_eq!(v.fencing_token, 7);
        assert_eq!(v.schedulers[1].lag_ms, 1_500);
        let text = table(&s).render();
        assert!(
            text.contains("leader") && text.contains("standby"),
            "{text}"
        );
        assert!(
            text.lines().nth(1).is_some_and(|l| l.contains('7')),
            "{text}"
        );
    }
}
