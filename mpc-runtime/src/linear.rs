//! The `linear` model: `x' = A x + B u + f`, with matrices given at run time.

use crate::model::Dynamics;

/// Linear (affine) time-invariant dynamics `x' = A x + B u + f` with run-time sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    nx: usize,
    nu: usize,
    /// `A`, nx×nx, row-major.
    a: Vec<f64>,
    /// `B`, nx×nu, row-major.
    b: Vec<f64>,
    /// Affine offset `f`, nx.
    f: Vec<f64>,
}

/// Why a linear model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LinearModelError(pub String);

impl LinearModel {
    /// Build from row-major `A` (nx×nx), `B` (nx×nu) and optional `f` (nx).
    pub fn new(nx: usize, nu: usize, a: Vec<f64>, b: Vec<f64>, f: Option<Vec<f64>>) -> Result<Self, LinearModelError> {
        if nx == 0 || nu == 0 {
            return Err(LinearModelError(format!("linear model needs nx ≥ 1 and nu ≥ 1, got nx={nx}, nu={nu}")));
        }
        if a.len() != nx * nx {
            return Err(LinearModelError(format!("params.A: expected {nx}×{nx} entries, got {}", a.len())));
        }
        if b.len() != nx * nu {
            return Err(LinearModelError(format!("params.B: expected {nx}×{nu} entries, got {}", b.len())));
        }
        let f = f.unwrap_or_else(|| vec![0.0; nx]);
        if f.len() != nx {
            return Err(LinearModelError(format!("params.f: expected {nx} entries, got {}", f.len())));
        }
        if a.iter().chain(&b).chain(&f).any(|v| !v.is_finite()) {
            return Err(LinearModelError("params.A/B/f: every entry must be a finite number".into()));
        }
        Ok(Self { nx, nu, a, b, f })
    }
    /// `A`, row-major.
    pub fn a(&self) -> &[f64] {
        &self.a
    }
    /// `B`, row-major.
    pub fn b(&self) -> &[f64] {
        &self.b
    }
    /// Offset `f`.
    pub fn f(&self) -> &[f64] {
        &self.f
    }
}

impl Dynamics for LinearModel {
    fn nx(&self) -> usize {
        self.nx
    }
    fn nu(&self) -> usize {
        self.nu
    }
    fn step(&self, x: &[f64], u: &[f64], x_next: &mut [f64]) {
        let (nx, nu) = (self.nx, self.nu);
        for i in 0..nx {
            let mut s = self.f[i];
            for j in 0..nx {
                s += self.a[i * nx + j] * x[j];
            }
            for j in 0..nu {
                s += self.b[i * nu + j] * u[j];
            }
            x_next[i] = s;
        }
    }
    fn linearize(&self, x: &[f64], u: &[f64], x_next: &mut [f64], a: &mut [f64], b: &mut [f64]) {
        self.step(x, u, x_next);
        a[..self.a.len()].copy_from_slice(&self.a);
        b[..self.b.len()].copy_from_slice(&self.b);
    }
    fn weighted_hessian(&self, _x: &[f64], _u: &[f64], _lambda: &[f64], h: &mut [f64]) {
        let n = self.nx + self.nu;
        h[..n * n].fill(0.0);
    }
    fn has_curvature(&self) -> bool {
        false
    }
    /// θ = [A (nx×nx, row-major), B (nx×nu), f (nx)]: `nx² + nx·nu + nx` parameters.
    fn np(&self) -> usize {
        self.nx * self.nx + self.nx * self.nu + self.nx
    }
    fn param_jacobian(&self, x: &[f64], u: &[f64], fp: &mut [f64]) {
        let (nx, nu, np) = (self.nx, self.nu, self.np());
        let fp = &mut fp[..nx * np];
        fp.fill(0.0);
        for i in 0..nx {
            let row = &mut fp[i * np..(i + 1) * np];
            row[i * nx..(i + 1) * nx].copy_from_slice(&x[..nx]);
            row[nx * nx + i * nu..nx * nx + (i + 1) * nu].copy_from_slice(&u[..nu]);
            row[nx * nx + nx * nu + i] = 1.0;
        }
    }
    fn param_hessian(&self, _x: &[f64], _u: &[f64], lambda: &[f64], hp: &mut [f64]) {
        // ∇_x(λᵀf) = Aᵀλ, ∇_u(λᵀf) = Bᵀλ: ∂(Aᵀλ)_k/∂A_ik = λ_i, ∂(Bᵀλ)_k/∂B_ik = λ_i.
        let (nx, nu, np) = (self.nx, self.nu, self.np());
        let hp = &mut hp[..(nx + nu) * np];
        hp.fill(0.0);
        for i in 0..nx {
            for k in 0..nx {
                hp[k * np + i * nx + k] = lambda[i];
            }
            for k in 0..nu {
                hp[(nx + k) * np + nx * nx + i * nu + k] = lambda[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_is_affine_map() {
        let m = LinearModel::new(2, 1, vec![1.0, 2.0, 3.0, 4.0], vec![0.5, -1.0], Some(vec![0.1, 0.2])).unwrap();
        let mut xn = [0.0; 2];
        m.step(&[1.0, -1.0], &[2.0], &mut xn);
        let want = [1.0 - 2.0 + 1.0 + 0.1, 3.0 - 4.0 - 2.0 + 0.2];
        for (g, w) in xn.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{xn:?} vs {want:?}");
        }
    }

    #[test]
    fn rejects_wrong_shapes() {
        let e = LinearModel::new(2, 1, vec![1.0; 3], vec![0.0; 2], None).unwrap_err();
        assert!(e.0.contains("params.A"), "{e}");
    }
}
