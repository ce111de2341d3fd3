//! Test models shared by the solver's unit tests.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use crate::model::{Dynamics, LANES, Lane};

/// A nonlinear test model with a sparse Jacobian: `x'_i = x_i + h (c_i sin x_{i+1} + Σ_j
/// G_ij u_j)` (indices mod nx).
pub(crate) struct Ring {
    pub(crate) nx: usize,
    pub(crate) nu: usize,
    pub(crate) c: Vec<f64>,
    pub(crate) g: Vec<f64>,
}

impl Ring {
    /// Random coefficients: `c_i` in ±2, `G` in ±1 with every third entry 0 (a sparse `B`).
    pub(crate) fn random(rng: &mut impl rand::Rng, nx: usize, nu: usize) -> Self {
        Ring {
            nx,
            nu,
            c: (0..nx).map(|_| rng.random_range(-2.0..2.0)).collect(),
            g: (0..nx * nu).map(|k| if k % 3 == 0 { 0.0 } else { rng.random_range(-1.0..1.0) }).collect(),
        }
    }
}

impl Dynamics for Ring {
    fn nx(&self) -> usize {
        self.nx
    }
    fn nu(&self) -> usize {
        self.nu
    }
    fn step(&self, x: &[f64], u: &[f64], xn: &mut [f64]) {
        let h = 0.1;
        for i in 0..self.nx {
            let mut v = self.c[i] * x[(i + 1) % self.nx].sin();
            for j in 0..self.nu {
                v += self.g[i * self.nu + j] * u[j];
            }
            xn[i] = x[i] + h * v;
        }
    }
    fn linearize(&self, x: &[f64], u: &[f64], xn: &mut [f64], a: &mut [f64], b: &mut [f64]) {
        self.step(x, u, xn);
        let (nx, nu, h) = (self.nx, self.nu, 0.1);
        a[..nx * nx].fill(0.0);
        for i in 0..nx {
            a[i * nx + i] = 1.0;
            a[i * nx + (i + 1) % nx] += h * self.c[i] * x[(i + 1) % nx].cos();
            for j in 0..nu {
                b[i * nu + j] = h * self.g[i * nu + j];
            }
        }
    }
    fn weighted_hessian(&self, x: &[f64], _u: &[f64], lambda: &[f64], hm: &mut [f64]) {
        let n = self.nx + self.nu;
        hm[..n * n].fill(0.0);
        for i in 0..self.nx {
            let k = (i + 1) % self.nx;
            hm[k * n + k] -= lambda[i] * 0.1 * self.c[i] * x[k].sin();
        }
    }
}

/// [`Ring`] with lane code ([`Dynamics::step_lanes`] lane by lane through `step`), so that the
/// lane paths of the solver run on it.
pub(crate) struct RingLanes(pub(crate) Ring);

impl Dynamics for RingLanes {
    fn nx(&self) -> usize {
        self.0.nx
    }
    fn nu(&self) -> usize {
        self.0.nu
    }
    fn step(&self, x: &[f64], u: &[f64], xn: &mut [f64]) {
        self.0.step(x, u, xn)
    }
    fn linearize(&self, x: &[f64], u: &[f64], xn: &mut [f64], a: &mut [f64], b: &mut [f64]) {
        self.0.linearize(x, u, xn, a, b)
    }
    fn weighted_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], hm: &mut [f64]) {
        self.0.weighted_hessian(x, u, lambda, hm)
    }
    fn step_lanes(&self, x: &[Lane], u: &[Lane], xn: &mut [Lane]) -> bool {
        let (nx, nu) = (self.0.nx, self.0.nu);
        let (mut sx, mut su, mut sn) = (vec![0.0; nx], vec![0.0; nu], vec![0.0; nx]);
        for l in 0..LANES {
            for i in 0..nx {
                sx[i] = x[i][l];
            }
            for i in 0..nu {
                su[i] = u[i][l];
            }
            self.0.step(&sx, &su, &mut sn);
            for i in 0..nx {
                xn[i][l] = sn[i];
            }
        }
        true
    }
    fn has_lanes(&self) -> bool {
        true
    }
}
