//! Budgets and limits: what an org may still book or run, and what it has been charged.
//!
//! Amounts are *budget milliseconds*: device-milliseconds times the class's rate, so one
//! budget can span classes of different value. A budget belongs to an org and a class, or
//! to [`ANY`] (every class); a class budget takes precedence over the org's [`ANY`] one. An
//! org with no budget for a class has no limit on it.
//!
//! Each budget renews every [`Period`]; a charge counts against the period that contains
//! the start of what it pays for. The balance of a period is its allowance plus top-ups,
//! minus charges, plus refunds. A request is refused when it would take the balance below
//! zero, so the scheduler itself never overdraws a budget.
//!
//! A request may name a *project*: a grant of device-hours per class (not rated) for a
//! period. It is charged to the grant when the grant covers all of it and its window lies
//! inside the period; otherwise it is refused, unless the org allows overage, in which
//! case it is charged to the org's budget as a request without a project is. The org's
//! caps, longest booking and horizon apply either way.

use berth_i18n::api::Text;
use berth_i18n::text;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::period::{Period, utc_label};

/// The budget key that matches every class.
pub const ANY: &str = "*";

/// One hour in milliseconds.
const HOUR_MS: f64 = 3_600_000.0;

/// An org's budget and limits for one class (or [`ANY`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Budget {
    /// How often the allowance renews.
    pub period: Period,
    /// Budget milliseconds per period; `None`: no hour limit.
    pub allowance_ms: Option<i64>,
    /// Most devices held at once; `None`: no cap.
    pub max_devices: Option<u32>,
    /// Longest single booking or job runtime; `None`: no limit.
    pub max_booking_ms: Option<i64>,
    /// How far ahead of now a booking may start; `None`: no limit.
    pub horizon_ms: Option<i64>,
    /// From this instant on the budget grants nothing; `None`: never.
    pub expires_ms: Option<i64>,
}

/// Sums of one budget's ledger entries for one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Added by admins.
    pub topped_up: i64,
    /// Charged.
    pub charged: i64,
    /// Refunded.
    pub refunded: i64,
}

/// What a request for devices asks of an org's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask<'a> {
    /// The org asking.
    pub org: &'a str,
    /// The device class.
    pub class: &'a str,
    /// Budget units per device-hour of the class.
    pub rate: f64,
    /// Devices in all.
    pub devices: u32,
    /// The window asked for.
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// The current time.
    pub now: i64,
    /// Whether the devices count towards the org's cap (preemptible work does not).
    pub capped: bool,
    /// The project to charge first.
    pub project: Option<&'a str>,
}

/// A project's grant as the core checks it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The org it belongs to.
    pub org: String,
    /// Its period `[start, end)`.
    pub start: i64,
    /// End of its period.
    pub end: i64,
    /// Whether it may be drawn on (approved or active).
    pub open: bool,
    /// Device-milliseconds granted, by class.
    pub device_ms: BTreeMap<String, i64>,
}

/// The charge an admitted request will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargePlan {
    /// The budget key charged (a class or [`ANY`]).
    pub key: String,
    /// Start of the period charged.
    pub period_start: i64,
    /// Budget milliseconds.
    pub amount_ms: i64,
    /// Raw device-milliseconds.
    pub device_ms: i64,
    /// The project whose grant is charged (then `key` is the class, `period_start` the
    /// project's start and `amount_ms` equals `device_ms`); `None`: the budget is.
    pub project: Option<String>,
}

/// Why a request is over an org's limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitRefusal {
    /// Not enough hours left in the period.
    Exhausted {
        /// The budget key.
        key: String,
        /// Budget milliseconds left (may be negative after an admin lowered the allowance).
        left_ms: i64,
        /// Budget milliseconds asked for.
        asked_ms: i64,
    },
    /// The budget has expired.
    Expired {
        /// The budget key.
        key: String,
        /// When it expired.
        at: i64,
    },
    /// More devices at once than the org's cap.
    Cap {
        /// The class.
        class: String,
        /// The cap.
        max: u32,
        /// Most devices already held at once during the window.
        held: u32,
        /// Devices asked for.
        asked: u32,
    },
    /// A booking or runtime longer than allowed.
    TooLong {
        /// The class.
        class: String,
        /// The longest allowed, ms.
        max_ms: i64,
        /// Asked, ms.
        asked_ms: i64,
    },
    /// The project does not exist in the org.
    NoProject {
        /// The project.
        project: String,
    },
    /// The project may not be drawn on (not approved yet, or ended).
    ProjectClosed {
        /// The project.
        project: String,
    },
    /// The window is not inside the project's period.
    OutsideProject {
        /// The project.
        project: String,
        /// Its period.
        start: i64,
        /// Its end.
        end: i64,
    },
    /// The project grants too few hours of the class, and the org does not allow overage.
    GrantExhausted {
        /// The project.
        project: String,
        /// The class.
        class: String,
        /// Device-milliseconds left.
        left_ms: i64,
        /// Device-milliseconds asked for.
        asked_ms: i64,
        /// The end of the project's period.
        end: i64,
    },
    /// A booking starting beyond the horizon.
    BeyondHorizon {
        /// The class.
        class: String,
        /// The horizon, ms.
        horizon_ms: i64,
        /// How far ahead the booking starts, ms.
        ahead_ms: i64,
    },
}

/// Hours for messages: `3.5 h`, `16 h`.
pub fn hours(ms: i64) -> String {
    let h = ms as f64 / HOUR_MS;
    let s = format!("{h:.1}");
    format!("{} h", s.strip_suffix(".0").unwrap_or(&s))
}

/// Days or hours for messages about spans.
fn span(ms: i64) -> String {
    if ms >= 48 * 3_600_000 && ms % 86_400_000 == 0 {
        format!("{} d", ms / 86_400_000)
    } else {
        hours(ms)
    }
}

impl LimitRefusal {
    /// The refusal as a catalogue message with its values; a budget for every class
    /// ([`ANY`]) has messages of its own.
    pub fn text(&self) -> Text {
        match self {
            LimitRefusal::Exhausted {
                key,
                left_ms,
                asked_ms,
            } => {
                let (left, asked) = (hours(*left_ms), hours(*asked_ms));
                if key == ANY {
                    text!(BudgetExhaustedAll, left, asked)
                } else {
                    text!(BudgetExhausted, key, left, asked)
                }
            }
            LimitRefusal::Expired { key, at } => {
                let at = utc_label(*at);
                if key == ANY {
                    text!(BudgetExpiredAll, at)
                } else {
                    text!(BudgetExpired, key, at)
                }
            }
            LimitRefusal::Cap {
                class,
                max,
                held,
                asked,
            } => text!(CapReached, class, max, held, asked),
            LimitRefusal::TooLong {
                class,
                max_ms,
                asked_ms,
            } => text!(
                BookingTooLong,
                class,
                asked = span(*asked_ms),
                max = span(*max_ms)
            ),
            LimitRefusal::NoProject { project } => text!(UnknownProject, project = ?project),
            LimitRefusal::ProjectClosed { project } => text!(ProjectNotOpen, project),
            LimitRefusal::OutsideProject {
                project,
                start,
                end,
            } => text!(
                OutsideProject,
                project,
                start = utc_label(*start),
                end = utc_label(*end)
            ),
            LimitRefusal::GrantExhausted {
                project,
                class,
                left_ms,
                asked_ms,
                end,
            } => text!(
                GrantExhausted,
                project,
                class,
                left = hours(*left_ms),
                asked = hours(*asked_ms),
                end = utc_label(*end)
            ),
            LimitRefusal::BeyondHorizon {
                class,
                horizon_ms,
                ahead_ms,
            } => text!(
                BeyondHorizon,
                class,
                ahead = span(*ahead_ms),
                horizon = span(*horizon_ms)
            ),
        }
    }
}

impl fmt::Display for LimitRefusal {
    /// The English text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.text().fmt(f)
    }
}

impl std::error::Error for LimitRefusal {}

/// Budget milliseconds for `device_ms` at `rate`.
pub fn rated(device_ms: i64, rate: f64) -> i64 {
    (device_ms as f64 * rate).round() as i64
}

/// Devices an org holds over time in one class: (owner, start, end, devices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    items: BTreeMap<String, (i64, i64, u32)>,
}

impl Holdings {
    /// The most devices held at once during `[start, end)`.
    pub fn peak(&self, start: i64, end: i64) -> u32 {
        let mut events: Vec<(i64, i64)> = Vec::new();
        for &(s, e, n) in self.items.values() {
            if s < end && start < e {
                events.push((s.max(start), i64::from(n)));
                events.push((e.min(end), -i64::from(n)));
            }
        }
        // Ends sort before starts at the same instant: windows are half-open.
        events.sort_unstable();
        let (mut now, mut peak) = (0i64, 0i64);
        for (_, d) in events {
            now += d;
            peak = peak.max(now);
        }
        peak as u32
    }

    /// Number of owners holding devices.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Every org's budgets, their balances and what each org holds, by class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    budgets: BTreeMap<(String, String), Budget>,
    totals: BTreeMap<(String, String, i64), Totals>,
    holdings: BTreeMap<(String, String), Holdings>,
    grants: BTreeMap<String, Grant>,
    /// Net device-milliseconds drawn on a grant, by (project, class).
    grant_used: BTreeMap<(String, String), i64>,
    /// Orgs whose work may overflow from a project onto their budget.
    overage: BTreeSet<String>,
}

impl Accounts {
    /// No budgets: nothing is limited.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (replaces) the budget of `org` for `key` (a class or [`ANY`]).
    pub fn set_budget(&mut self, org: &str, key: &str, budget: Budget) {
        self.budgets
            .insert((org.to_owned(), key.to_owned()), budget);
    }

    /// Removes a budget (no-op if none).
    pub fn remove_budget(&mut self, org: &str, key: &str) {
        self.budgets.remove(&(org.to_owned(), key.to_owned()));
    }

    /// The budget with this key.
    pub fn budget(&self, org: &str, key: &str) -> Option<&Budget> {
        self.budgets.get(&(org.to_owned(), key.to_owned()))
    }

    /// Every budget, by (org, key).
    pub fn budgets(&self) -> impl Iterator<Item = (&(String, String), &Budget)> {
        self.budgets.iter()
    }

    /// The key of the budget that applies to `org` using `class`, if any.
    pub fn key_for(&self, org: &str, class: &str) -> Option<&str> {
        let exact = (org.to_owned(), class.to_owned());
        if let Some(((_, k), _)) = self.budgets.get_key_value(&exact) {
            return Some(k.as_str());
        }
        let any = (org.to_owned(), ANY.to_owned());
        self.budgets
            .get_key_value(&any)
            .map(|((_, k), _)| k.as_str())
    }

    /// The ledger sums of a budget for the period starting at `period_start`.
    pub fn totals(&self, org: &str, key: &str, period_start: i64) -> Totals {
        self.totals
            .get(&(org.to_owned(), key.to_owned(), period_start))
            .copied()
            .unwrap_or_default()
    }

    /// Budget milliseconds left in the period that contains `t`; `None` when unlimited
    /// (no budget, or no hour limit).
    pub fn left(&self, org: &str, key: &str, t: i64) -> Option<i64> {
        let b = self.budget(org, key)?;
        let allowance = b.allowance_ms?;
        let (start, _) = b.period.bounds(t);
        let tot = self.totals(org, key, start);
        Some(allowance + tot.topped_up - tot.charged + tot.refunded)
    }

    /// Records a ledger entry's effect on a period's totals.
    pub fn add_topped_up(&mut self, org: &str, key: &str, period_start: i64, amount_ms: i64) {
        self.totals_mut(org, key, period_start).topped_up += amount_ms;
    }

    /// Records a charge.
    pub fn add_charged(&mut self, org: &str, key: &str, period_start: i64, amount_ms: i64) {
        self.totals_mut(org, key, period_start).charged += amount_ms;
    }

    /// Records a refund.
    pub fn add_refunded(&mut self, org: &str, key: &str, period_start: i64, amount_ms: i64) {
        self.totals_mut(org, key, period_start).refunded += amount_ms;
    }

    fn totals_mut(&mut self, org: &str, key: &str, period_start: i64) -> &mut Totals {
        self.totals
            .entry((org.to_owned(), key.to_owned(), period_start))
            .or_default()
    }

    /// Sets (replaces) a project's grant.
    pub fn set_grant(&mut self, project: &str, grant: Grant) {
        self.grants.insert(project.to_owned(), grant);
    }

    /// A project's grant.
    pub fn grant(&self, project: &str) -> Option<&Grant> {
        self.grants.get(project)
    }

    /// Records device-milliseconds drawn on (positive) or given back to (negative) a
    /// project's grant of `class`.
    pub fn add_grant_used(&mut self, project: &str, class: &str, device_ms: i64) {
        *self
            .grant_used
            .entry((project.to_owned(), class.to_owned()))
            .or_default() += device_ms;
    }

    /// Net device-milliseconds drawn on a project's grant of `class`.
    pub fn grant_used(&self, project: &str, class: &str) -> i64 {
        self.grant_used
            .get(&(project.to_owned(), class.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Sets whether `org`'s work may overflow from a project onto its budget.
    pub fn set_overage(&mut self, org: &str, allow: bool) {
        if allow {
            self.overage.insert(org.to_owned());
        } else {
            self.overage.remove(org);
        }
    }

    /// What `org` holds of `class` over time.
    pub fn holdings(&self, org: &str, class: &str) -> Option<&Holdings> {
        self.holdings.get(&(org.to_owned(), class.to_owned()))
    }

    /// Records that `owner` holds `devices` of `class` for `org` during `[start, end)`
    /// (replacing what it held before).
    pub fn hold(
        &mut self,
        org: &str,
        class: &str,
        owner: &str,
        start: i64,
        end: i64,
        devices: u32,
    ) {
        self.holdings
            .entry((org.to_owned(), class.to_owned()))
            .or_default()
            .items
            .insert(owner.to_owned(), (start, end, devices));
    }

    /// Ends what `owner` holds at `end` (drops it when nothing is left).
    pub fn release(&mut self, org: &str, class: &str, owner: &str, end: i64) {
        let k = (org.to_owned(), class.to_owned());
        if let Some(h) = self.holdings.get_mut(&k) {
            if let Some(item) = h.items.get_mut(owner) {
                item.1 = item.1.min(end);
                if item.1 <= item.0 {
                    h.items.remove(owner);
                }
            }
            if h.items.is_empty() {
                self.holdings.remove(&k);
            }
        }
    }

    /// Checks a request against its project's grant and the org's limits for its class,
    /// and returns the charge it will carry (`None`: no budget applies, nothing is
    /// charged). Changes nothing.
    pub fn admit(&self, ask: &Ask<'_>) -> Result<Option<ChargePlan>, LimitRefusal> {
        let project = match ask.project {
            Some(id) => self.admit_project(ask, id)?,
            None => None,
        };
        let budget = self.admit_budget(ask, project.is_none())?;
        Ok(project.or(budget))
    }

    /// The charge to a project's grant; `None` when the grant cannot cover the request
    /// and the org allows overage onto its budget.
    fn admit_project(&self, ask: &Ask<'_>, id: &str) -> Result<Option<ChargePlan>, LimitRefusal> {
        let project = id.to_owned();
        let Some(g) = self.grants.get(id).filter(|g| g.org == ask.org) else {
            return Err(LimitRefusal::NoProject { project });
        };
        if !g.open {
            return Err(LimitRefusal::ProjectClosed { project });
        }
        if ask.start < g.start || ask.end > g.end {
            return Err(LimitRefusal::OutsideProject {
                project,
                start: g.start,
                end: g.end,
            });
        }
        let device_ms = (ask.end - ask.start).saturating_mul(i64::from(ask.devices));
        let granted = g.device_ms.get(ask.class).copied().unwrap_or(0);
        let left_ms = granted - self.grant_used(id, ask.class);
        if device_ms <= left_ms {
            return Ok(Some(ChargePlan {
                key: ask.class.to_owned(),
                period_start: g.start,
                amount_ms: device_ms,
                device_ms,
                project: Some(project),
            }));
        }
        if self.overage.contains(ask.org) {
            return Ok(None);
        }
        Err(LimitRefusal::GrantExhausted {
            project,
            class: ask.class.to_owned(),
            left_ms: left_ms.max(0),
            asked_ms: device_ms,
            end: g.end,
        })
    }

    /// The org's limits, and the charge to its budget when `charge` (a project pays
    /// otherwise, and then only the caps, the longest booking and the horizon apply).
    fn admit_budget(
        &self,
        ask: &Ask<'_>,
        charge: bool,
    ) -> Result<Option<ChargePlan>, LimitRefusal> {
        let Some(key) = self.key_for(ask.org, ask.class) else {
            return Ok(None);
        };
        let b = &self.budgets[&(ask.org.to_owned(), key.to_owned())];
        if let Some(at) = b.expires_ms
            && charge
            && ask.start >= at
        {
            return Err(LimitRefusal::Expired {
                key: key.to_owned(),
                at,
            });
        }
        let len = ask.end - ask.start;
        if let Some(max_ms) = b.max_booking_ms
            && len > max_ms
        {
            return Err(LimitRefusal::TooLong {
                class: ask.class.to_owned(),
                max_ms,
                asked_ms: len,
            });
        }
        if let Some(horizon_ms) = b.horizon_ms
            && ask.start - ask.now > horizon_ms
        {
            return Err(LimitRefusal::BeyondHorizon {
                class: ask.class.to_owned(),
                horizon_ms,
                ahead_ms: ask.start - ask.now,
            });
        }
        if ask.capped
            && let Some(max) = self.cap_for(ask.org, ask.class)
        {
            let held = self
                .holdings(ask.org, ask.class)
                .map_or(0, |h| h.peak(ask.start, ask.end));
            if held + ask.devices > max {
                return Err(LimitRefusal::Cap {
                    class: ask.class.to_owned(),
                    max,
                    held,
                    asked: ask.devices,
                });
            }
        }
        if !charge {
            return Ok(None);
        }
        let device_ms = len.saturating_mul(i64::from(ask.devices));
        let amount_ms = rated(device_ms, ask.rate);
        let (period_start, _) = b.period.bounds(ask.start);
        if let Some(left_ms) = self.left(ask.org, key, ask.start)
            && amount_ms > left_ms
        {
            return Err(LimitRefusal::Exhausted {
                key: key.to_owned(),
                left_ms,
                asked_ms: amount_ms,
            });
        }
        Ok(Some(ChargePlan {
            key: key.to_owned(),
            period_start,
            amount_ms,
            device_ms,
            project: None,
        }))
    }

    /// The cap on devices of `class` held at once by `org`: the class budget's, else the
    /// org-wide one's.
    fn cap_for(&self, org: &str, class: &str) -> Option<u32> {
        let exact = self.budget(org, class).and_then(|b| b.max_devices);
        exact.or_else(|| self.budget(org, ANY).and_then(|b| b.max_devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    /// 2026-11-21 12:34:56 UTC.
    const NOW: i64 = 1_795_264_496_000;

    fn ask(devices: u32, start: i64, end: i64) -> Ask<'static> {
        Ask {
            org: "acme",
            class: "h100",
            rate: 1.0,
            devices,
            start,
            end,
            now: NOW,
            capped: true,
            project: None,
        }
    }

    fn budget(hours: i64) -> Budget {
        Budget {
            allowance_ms: Some(hours * H),
            ..Budget::default()
        }
    }

    #[test]
    fn no_budget_means_no_limit_and_no_charge() {
        let a = Accounts::new();
        assert_eq!(a.admit(&ask(64, NOW, NOW + 1000 * H)), Ok(None));
    }

    #[test]
    fn refusals_say_which_limit_and_by_how_much() {
        let mut a = Accounts::new();
        a.set_budget("acme", "h100", budget(20));
        let (p, _) = Period::Month.bounds(NOW);
        a.add_charged("acme", "h100", p, 33 * H / 2);
        let err = a.admit(&ask(2, NOW, NOW + 8 * H)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "budget for h100 exhausted: 3.5 h left, 16 h requested"
        );
        a.add_refunded("acme", "h100", p, 13 * H);
        let plan = a.admit(&ask(2, NOW, NOW + 8 * H)).unwrap().unwrap();
        assert_eq!((plan.key.as_str(), plan.amount_ms), ("h100", 16 * H));
        assert_eq!(plan.period_start, p);
    }

    #[test]
    fn next_month_is_charged_to_next_month() {
        let mut a = Accounts::new();
        a.set_budget("acme", "h100", budget(10));
        let (p, next) = Period::Month.bounds(NOW);
        a.add_charged("acme", "h100", p, 10 * H);
        assert!(a.admit(&ask(1, NOW, NOW + H)).is_err());
        let plan = a.admit(&ask(1, next, next + 10 * H)).unwrap().unwrap();
        assert_eq!(plan.period_start, next);
    }

    #[test]
    fn any_class_budget_charges_at_the_class_rate() {
        let mut a = Accounts::new();
        a.set_budget("acme", ANY, budget(10));
        let mut q = ask(1, NOW, NOW + 4 * H);
        q.class = "rngd";
        q.rate = 0.5;
        let plan = a.admit(&q).unwrap().unwrap();
        assert_eq!((plan.key.as_str(), plan.amount_ms), (ANY, 2 * H));
        assert_eq!(plan.device_ms, 4 * H);
        q.rate = 3.0;
        assert_eq!(
            a.admit(&q).unwrap_err().to_string(),
            "budget for all classes exhausted: 10 h left, 12 h requested"
        );
        // A class budget wins over the org-wide one.
        a.set_budget("acme", "rngd", budget(100));
        assert_eq!(a.key_for("acme", "rngd"), Some("rngd"));
        assert_eq!(a.key_for("acme", "h100"), Some(ANY));
        assert_eq!(a.key_for("other", "h100"), None);
    }

    #[test]
    fn caps_count_the_peak_over_the_window() {
        let mut a = Accounts::new();
        a.set_budget(
            "acme",
            "h100",
            Budget {
                max_devices: Some(8),
                ..Budget::default()
            },
        );
        a.hold("acme", "h100", "r1", NOW, NOW + 2 * H, 4);
        a.hold("acme", "h100", "r2", NOW + 2 * H, NOW + 4 * H, 6);
        assert!(a.admit(&ask(4, NOW, NOW + 2 * H)).is_ok());
        assert_eq!(
            a.admit(&ask(4, NOW, NOW + 3 * H)).unwrap_err().to_string(),
            "cap on concurrent h100 devices reached: 8 allowed, 6 held, 4 requested"
        );
        let mut q = ask(4, NOW, NOW + 3 * H);
        q.capped = false;
        assert!(a.admit(&q).is_ok(), "preemptible work is not capped");
        a.release("acme", "h100", "r2", NOW + 2 * H);
        assert!(a.admit(&ask(4, NOW, NOW + 3 * H)).is_ok());
        assert_eq!(a.holdings("acme", "h100").map(Holdings::len), Some(1));
    }

    #[test]
    fn length_horizon_and_expiry() {
        let mut a = Accounts::new();
        a.set_budget(
            "acme",
            "h100",
            Budget {
                max_booking_ms: Some(24 * H),
                horizon_ms: Some(30 * 24 * H),
                expires_ms: Some(NOW + 60 * 24 * H),
                ..Budget::default()
            },
        );
        assert_eq!(
            a.admit(&ask(1, NOW, NOW + 48 * H)).unwrap_err().to_string(),
            "booking too long for h100: 2 d requested, at most 24 h allowed"
        );
        let far = NOW + 40 * 24 * H;
        assert_eq!(
            a.admit(&ask(1, far, far + H)).unwrap_err().to_string(),
            "booking too far ahead for h100: it starts in 40 d, the horizon is 30 d"
        );
        let mut b = a.budget("acme", "h100").cloned().unwrap();
        b.horizon_ms = None;
        a.set_budget("acme", "h100", b);
        let later = NOW + 61 * 24 * H;
        assert!(matches!(
            a.admit(&ask(1, later, later + H)),
            Err(LimitRefusal::Expired { .. })
        ));
    }

    #[test]
    fn hours_print_briefly() {
        assert_eq!(hours(7 * H / 2), "3.5 h");
        assert_eq!(hours(16 * H), "16 h");
        assert_eq!(hours(-H / 2), "-0.5 h");
    }
}
