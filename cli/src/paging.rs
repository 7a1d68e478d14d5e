//! Listings a page at a time: the server pages (AIP-158); the CLI walks the pages for the
//! user, newest first, up to `--limit`.

use crate::error::Error;
use crate::output::Format;
use crate::timefmt;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use std::future::Future;

/// Rows a table shows when no `--limit` is given (JSON and CSV return everything asked for).
pub const TABLE_LIMIT: usize = 100;
/// Rows asked for per call.
const PAGE_SIZE: usize = 1000;

/// Filters and the limit shared by `berth jobs` and `berth reservations`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListArgs {
    /// Show at most N (newest first). Tables default to 100; JSON and CSV to everything.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only these states (repeat or separate with commas), e.g. --state pending,running.
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<String>,
    /// Only this user's.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only this device class.
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
    /// Only those made at or after this time (e.g. -24h, "2026-12-01 09:00").
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
}

impl ListArgs {
    /// How many rows to fetch for this output format.
    pub fn limit(&self, format: Format) -> Option<usize> {
        match (self.limit, format) {
            (Some(n), _) => Some(n),
            (None, Format::Table) => Some(TABLE_LIMIT),
            (None, _) => None,
        }
    }

    /// The `--since` instant.
    pub fn since(&self) -> Result<Option<prost_types::Timestamp>, Error> {
        self.since
            .as_deref()
            .map(|s| timefmt::time_flag("--since", s).map(ms_to_ts))
            .transpose()
    }

    /// The `--state` values as job states.
    pub fn job_states(&self) -> Result<Vec<i32>, Error> {
        self.states
            .iter()
            .map(|s| {
                let name = format!(
                    "JOB_STATE_{}",
                    s.trim().to_ascii_uppercase().replace('-', "_")
                );
                v1::JobState::from_str_name(&name)
                    .filter(|s| *s != v1::JobState::Unspecified)
                    .map(|s| s as i32)
                    .ok_or_else(|| {
                        Error::invalid(
                            "--state",
                            s,
                            crate::error::tr(berth_i18n::cli::Msg::NotJobState),
                        )
                    })
            })
            .collect()
    }

    /// The `--state` values as reservation states.
    pub fn reservation_states(&self) -> Result<Vec<i32>, Error> {
        self.states
            .iter()
            .map(|s| {
                let name = format!(
                    "RESERVATION_STATE_{}",
                    s.trim().to_ascii_uppercase().replace('-', "_")
                );
                v1::ReservationState::from_str_name(&name)
                    .filter(|s| *s != v1::ReservationState::Unspecified)
                    .map(|s| s as i32)
                    .ok_or_else(|| {
                        Error::invalid(
                            "--state",
                            s,
                            crate::error::tr(berth_i18n::cli::Msg::NotReservationState),
                        )
                    })
            })
            .collect()
    }
}

/// Fetches pages with `fetch(page_size, page_token)` until `limit` items or the last page;
/// returns the items and whether more were left.
pub async fn collect<T, F, Fut>(limit: Option<usize>, mut fetch: F) -> Result<(Vec<T>, bool), Error>
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), Error>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let want = limit.map_or(PAGE_SIZE, |l| (l - out.len()).min(PAGE_SIZE));
        let (items, next) = fetch(want as u32, token).await?;
        out.extend(items);
        let full = limit.is_some_and(|l| out.len() >= l);
        if next.is_empty() {
            return Ok((out, false));
        }
        if full {
            return Ok((out, true));
        }
        token = next;
    }
}

/// Tells a table reader that more rows exist than were shown.
pub fn note_more(more: bool, shown: usize, what: &str) {
    if more {
        crate::output::note(crate::error::trf(
            berth_i18n::cli::Msg::ShowingNewest,
            &[("shown", &shown), ("what", &what)],
        ));
    }
}
