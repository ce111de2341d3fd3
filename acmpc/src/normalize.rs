//! Running observation normalisation (SB3 `VecNormalize`: `norm_obs = True`, clip 10, ε 1e-8).

use serde::{Deserialize, Serialize};

/// Running mean and variance of each observation entry (parallel-update formula, initial count
/// 1e-4, mean 0, variance 1, as SB3's `RunningMeanStd`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// Running mean per entry.
    pub mean: Vec<f64>,
    /// Running (population) variance per entry.
    pub var: Vec<f64>,
    /// Number of samples seen (starts at 1e-4).
    pub count: f64,
    /// Normalised values are clipped to ±`clip`.
    pub clip: f64,
}

impl ObsNormalizer {
    /// A fresh normaliser for `dim` entries.
    pub fn new(dim: usize) -> Self {
        Self { mean: vec![0.0; dim], var: vec![1.0; dim], count: 1e-4, clip: 10.0 }
    }

    /// Folds a batch of observations into the statistics.
    pub fn update<const D: usize>(&mut self, batch: &[[f32; D]]) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as f64;
        for j in 0..self.mean.len() {
            let m = batch.iter().map(|o| o[j] as f64).sum::<f64>() / n;
            let v = batch.iter().map(|o| (o[j] as f64 - m).powi(2)).sum::<f64>() / n;
            let delta = m - self.mean[j];
            let tot = self.count + n;
            let m_a = self.var[j] * self.count;
            let m_b = v * n;
            let m2 = m_a + m_b + delta * delta * self.count * n / tot;
            self.mean[j] += delta * n / tot;
            self.var[j] = m2 / tot;
        }
        self.count += n;
    }

    /// Normalises `obs[range]` into `out` (`out.len() == range.len()`).
    pub fn normalize_into(&self, obs: &[f32], range: std::ops::Range<usize>, out: &mut [f32]) {
        for (o, j) in out.iter_mut().zip(range) {
            let z = (obs[j] as f64 - self.mean[j]) / (self.var[j] + 1e-8).sqrt();
            *o = z.clamp(-self.clip, self.clip) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_batch_statistics() {
        let mut n = ObsNormalizer::new(2);
        let a: Vec<[f32; 2]> = (0..100).map(|i| [i as f32, 3.0]).collect();
        n.update(&a[..40]);
        n.update(&a[40..]);
        let mean = 49.5;
        let var = (0..100).map(|i| (i as f64 - mean).powi(2)).sum::<f64>() / 100.0;
        // The 1e-4 prior count shifts the statistics by ~1e-6 relative.
        assert!((n.mean[0] - mean).abs() < 1e-3, "{}", n.mean[0]);
        assert!((n.var[0] - var).abs() / var < 1e-5, "{}", n.var[0]);
        assert!(n.var[1] < 1e-5);
        let mut out = [0f32; 2];
        n.normalize_into(&[49.5, 1000.0], 0..2, &mut out);
        assert!(out[0].abs() < 1e-3);
        assert_eq!(out[1], 10.0);
    }
}
