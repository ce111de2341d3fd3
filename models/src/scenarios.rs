//! Ready-made problem data for the bundled models (benchmarks, examples, smoke tests).

use crate::Quadrotor;
use mpc_runtime::{Batch, Bound, Model};

/// A batch of quadrotor hover problems in the exchange-format layout (batch first, row-major).
#[derive(Clone, Debug)]
pub struct QuadrotorHover {
    /// Batch size B.
    pub batch: usize,
    /// Horizon T.
    pub horizon: usize,
    /// Initial states, B×10.
    pub x_init: Vec<f64>,
    /// Stage cost Hessians, B×T×14×14 (the same diagonal `W` everywhere).
    pub cost_c: Vec<f64>,
    /// Stage cost linear terms `-W z_ref`, B×T×14.
    pub cost_q: Vec<f64>,
    /// Hover warm start `(m g, 0, 0, 0)` at every stage, B×T×4.
    pub u_init: Vec<f64>,
}

impl QuadrotorHover {
    /// The problems as a solver batch, with the quadrotor's control bounds and the hover warm
    /// start.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            size: self.batch,
            x_init: &self.x_init,
            cost_hess: &self.cost_c,
            cost_lin: &self.cost_q,
            u_lower: Bound::PerControl(Quadrotor::CONTROL_LOWER),
            u_upper: Bound::PerControl(Quadrotor::CONTROL_UPPER),
            u_init: Some(&self.u_init),
        }
    }
}

/// Diagonal of the hover cost weight `W` over `z = [p, q, v, f, ω]`.
pub const HOVER_WEIGHTS: [f64; 14] = [10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1];

/// Small deterministic generator (SplitMix64) so scenarios are reproducible without extra crates.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The fixture / benchmark task of `models.md` ("Fixture / benchmark cost"): hover at a target
/// `p_ref ~ U[-1,1]³` with cost `0.5 (z - z_ref)ᵀ W (z - z_ref)`, starting from position
/// `0.1·N(0,1)`, a random tilt of angle ≤ 0.2 rad and velocity `0.2·N(0,1)`; warm start at hover.
pub fn quadrotor_hover(model: &Quadrotor, batch: usize, horizon: usize, seed: u64) -> QuadrotorHover {
    let (nx, nu) = (Quadrotor::NX, Quadrotor::NU);
    let n = nx + nu;
    let hover = model.mass * model.gravity;
    let mut rng = SplitMix(seed);
    let mut x_init = Vec::with_capacity(batch * nx);
    let mut cost_c = vec![0.0; batch * horizon * n * n];
    let mut cost_q = vec![0.0; batch * horizon * n];
    for b in 0..batch {
        let p_ref: Vec<f64> = (0..3).map(|_| 2.0 * rng.uniform() - 1.0).collect();
        // Start: position, tilt about a random horizontal axis, velocity.
        for _ in 0..3 {
            x_init.push(0.1 * rng.normal());
        }
        let angle = 0.2 * rng.uniform();
        let axis_angle = std::f64::consts::TAU * rng.uniform();
        let (s, c) = (0.5 * angle).sin_cos();
        x_init.extend([c, s * axis_angle.cos(), s * axis_angle.sin(), 0.0]);
        for _ in 0..3 {
            x_init.push(0.2 * rng.normal());
        }
        let mut z_ref = [0.0; 14];
        z_ref[..3].copy_from_slice(&p_ref);
        z_ref[3] = 1.0;
        z_ref[10] = hover;
        for t in 0..horizon {
            let base = (b * horizon + t) * n;
            for i in 0..n {
                cost_c[base * n + i * n + i] = HOVER_WEIGHTS[i];
                cost_q[base + i] = -HOVER_WEIGHTS[i] * z_ref[i];
            }
        }
    }
    let u_init = (0..batch * horizon).flat_map(|_| [hover, 0.0, 0.0, 0.0]).collect();
    QuadrotorHover { batch, horizon, x_init, cost_c, cost_q, u_init }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hover_batch_has_the_documented_layout_and_distribution() {
        let m = Quadrotor::default();
        let s = quadrotor_hover(&m, 64, 5, 7);
        assert_eq!(s.x_init.len(), 64 * 10);
        assert_eq!(s.cost_c.len(), 64 * 5 * 196);
        assert_eq!(s.cost_q.len(), 64 * 5 * 14);
        assert_eq!(s.u_init.len(), 64 * 5 * 4);
        for b in 0..64 {
            let q = &s.x_init[b * 10 + 3..b * 10 + 7];
            let norm: f64 = q.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-12);
            assert!(2.0 * q[0].acos() <= 0.2 + 1e-12, "tilt above 0.2 rad");
            // c = -W z_ref: the position target lies in [-1, 1]³ (W = 10 there).
            for i in 0..3 {
                assert!(s.cost_q[b * 5 * 14 + i].abs() <= 10.0);
            }
        }
        assert_eq!(quadrotor_hover(&m, 3, 2, 1).x_init, quadrotor_hover(&m, 3, 2, 1).x_init, "seeded");
    }
}
