//! Use it or lose it: when an active booking whose devices stay idle is warned, and when
//! it is reclaimed.

/// The idle-reclaim policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdlePolicy {
    /// Utilisation (percent) under which a device counts as idle.
    pub threshold_pct: f64,
    /// Idle this long: warn. Zero disables idle reclaim.
    pub warn_after_ms: i64,
    /// Warned this long and still idle: reclaim.
    pub reclaim_after_ms: i64,
}

/// Where a booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdleState {
    /// Since when every device has been idle.
    pub since: Option<i64>,
    /// When the warning was given.
    pub warned: Option<i64>,
}

/// What to do after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// Nothing changes that anyone needs to hear about.
    None,
    /// Give the warning now; reclaim at the instant given unless it gets busy.
    Warn {
        /// When it will be reclaimed.
        reclaim_at: i64,
    },
    /// The devices got busy again after a warning: withdraw it.
    Cleared,
    /// Reclaim it now.
    Reclaim,
}

impl IdlePolicy {
    /// True when idle reclaim is on.
    pub fn enabled(&self) -> bool {
        self.warn_after_ms > 0
    }

    /// Whether one device's utilisation sample counts as idle.
    pub fn is_idle(&self, utilization_pct: f64) -> bool {
        utilization_pct < self.threshold_pct
    }

    /// Advances a booking's idle state by one observation at `now`: `busy` is `Some(true)`
    /// when some device is in use, `Some(false)` when all are idle, and `None` when there
    /// is no fresh telemetry (nothing changes: no one is reclaimed on missing data).
    pub fn step(&self, state: IdleState, busy: Option<bool>, now: i64) -> (IdleState, IdleAction) {
        if !self.enabled() {
            return (IdleState::default(), IdleAction::None);
        }
        match busy {
            None => (state, IdleAction::None),
            Some(true) => {
                let action = if state.warned.is_some() {
                    IdleAction::Cleared
                } else {
                    IdleAction::None
                };
                (IdleState::default(), action)
            }
            Some(false) => {
                let since = state.since.unwrap_or(now);
                match state.warned {
                    Some(w) if now - w >= self.reclaim_after_ms => (state, IdleAction::Reclaim),
                    Some(_) => (
                        IdleState {
                            since: Some(since),
                            warned: state.warned,
                        },
                        IdleAction::None,
                    ),
                    None if now - since >= self.warn_after_ms => (
                        IdleState {
                            since: Some(since),
                            warned: Some(now),
                        },
                        IdleAction::Warn {
                            reclaim_at: now + self.reclaim_after_ms,
                        },
                    ),
                    None => (
                        IdleState {
                            since: Some(since),
                            warned: None,
                        },
                        IdleAction::None,
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const P: IdlePolicy = IdlePolicy {
        threshold_pct: 5.0,
        warn_after_ms: 30 * M,
        reclaim_after_ms: 15 * M,
    };

    /// Runs samples (minute, busy) and returns the actions that were not `None`.
    fn run(samples: &[(i64, Option<bool>)]) -> Vec<(i64, IdleAction)> {
        let mut s = IdleState::default();
        let mut out = Vec::new();
        for &(min, busy) in samples {
            let (next, action) = P.step(s, busy, min * M);
            s = next;
            if action != IdleAction::None {
                out.push((min, action));
            }
        }
        out
    }

    #[test]
    fn warns_then_reclaims_a_booking_that_stays_idle() {
        let got = run(&[
            (0, Some(false)),
            (29, Some(false)),
            (30, Some(false)),
            (44, Some(false)),
            (45, Some(false)),
        ]);
        assert_eq!(
            got,
            vec![
                (30, IdleAction::Warn { reclaim_at: 45 * M }),
                (45, IdleAction::Reclaim)
            ]
        );
    }

    #[test]
    fn getting_busy_clears_the_warning_and_restarts_the_clock() {
        let got = run(&[
            (0, Some(false)),
            (30, Some(false)),
            (31, Some(true)),
            (50, Some(false)),
            (79, Some(false)),
            (80, Some(false)),
        ]);
        assert_eq!(
            got,
            vec![
                (30, IdleAction::Warn { reclaim_at: 45 * M }),
                (31, IdleAction::Cleared),
                (80, IdleAction::Warn { reclaim_at: 95 * M }),
            ]
        );
    }

    #[test]
    fn missing_telemetry_never_reclaims_and_zero_disables() {
        let got = run(&[(0, Some(false)), (10, None), (100, None)]);
        assert!(got.is_empty());
        let off = IdlePolicy {
            warn_after_ms: 0,
            ..P
        };
        assert_eq!(
            off.step(IdleState::default(), Some(false), 10 * 60 * M).1,
            IdleAction::None
        );
        assert!(P.is_idle(4.9) && !P.is_idle(5.0));
    }
}
