//! Latency samples and their summary.

use serde::Serialize;
use std::time::Duration;

/// What a run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// The operation.
    pub op: String,
    /// Connections used.
    pub connections: usize,
    /// Requests that succeeded.
    pub ok: usize,
    /// Requests that failed.
    pub errors: usize,
    /// Wall time of the measured part, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub rate: f64,
    /// Latency percentiles and maximum, milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The first error seen, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// CPU the scheduler used during the run, in percent of one core (with --pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
    /// CPU this load generator used during the run, in percent of one core (it shares
    /// the machine with the scheduler in `scripts/bench.sh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench_cpu_percent: Option<f64>,
}

/// Latencies of one run, in microseconds.
#[derive(Debug, Default)]
pub struct Samples {
    micros: Vec<u64>,
    errors: usize,
    first_error: Option<String>,
}

impl Samples {
    /// Records a success.
    pub fn ok(&mut self, d: Duration) {
        self.micros
            .push(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    /// Records a failure.
    pub fn err(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// Adds another set of samples.
    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The summary over `wall` seconds.
    pub fn summary(mut self, op: &str, connections: usize, wall: Duration) -> Summary {
        self.micros.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least p of them at or below it.
            let rank = ((p * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
            self.micros[rank - 1] as f64 / 1000.0
        };
        let seconds = wall.as_secs_f64();
        Summary {
            op: op.to_owned(),
            connections,
            ok: self.micros.len(),
            errors: self.errors,
            seconds,
            rate: if seconds > 0.0 {
                self.micros.len() as f64 / seconds
            } else {
                0.0
            },
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: self.micros.last().map_or(0.0, |&m| m as f64 / 1000.0),
            first_error: self.first_error,
            server_cpu_percent: None,
            bench_cpu_percent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.ok(Duration::from_millis(ms));
        }
        s.err("boom");
        let sum = s.summary("get", 2, Duration::from_secs(2));
        assert_eq!((sum.ok, sum.errors), (100, 1));
        assert_eq!(sum.rate, 50.0);
        assert_eq!((sum.p50_ms, sum.p90_ms, sum.p99_ms), (50.0, 90.0, 99.0));
        assert_eq!(sum.max_ms, 100.0);
        assert_eq!(sum.first_error.as_deref(), Some("boom"));
    }

    #[test]
    fn an_empty_run_has_zero_latencies() {
        let sum = Samples::default().summary("get", 1, Duration::ZERO);
        assert_eq!((sum.ok, sum.rate, sum.p99_ms), (0, 0.0, 0.0));
    }
}
