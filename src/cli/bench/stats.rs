//! Order statistics (median, quantiles, extremes) of timing samples, in milliseconds.

use serde_json::{Value, json};
use std::time::Duration;

/// Order statistics of a sample, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stats {
    pub(super) median: f64,
    pub(super) mean: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) p10: f64,
    pub(super) p25: f64,
    pub(super) p75: f64,
    pub(super) p90: f64,
}

/// Linear-interpolation quantile of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The order statistics of `samples`.
pub(super) fn stats_ms(samples: &[Duration]) -> Stats {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    Stats {
        median: quantile(&v, 0.5),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        min: v[0],
        max: v[v.len() - 1],
        p10: quantile(&v, 0.1),
        p25: quantile(&v, 0.25),
        p75: quantile(&v, 0.75),
        p90: quantile(&v, 0.9),
    }
}

impl Stats {
    /// The statistics as a JSON object (the keys of the report).
    pub(super) fn to_json(self) -> Value {
        json!({"median": self.median, "mean": self.mean, "min": self.min, "max": self.max,
               "p10": self.p10, "p25": self.p25, "p75": self.p75, "p90": self.p90})
    }
}
