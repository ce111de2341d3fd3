//! Test support: owned problems, random data, an independent dense KKT solver.
#![allow(dead_code)]

use mpc_runtime::problem::BoundData;
use mpc_runtime::{Batch, Dynamics, GradientMode, Gradients, Solution, Solver, SolverOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A batch of problems with owned data.
#[derive(Clone, Debug)]
pub struct Prob {
    pub b: usize,
    pub t: usize,
    pub nx: usize,
    pub nu: usize,
    pub x_init: Vec<f64>,
    pub cm: Vec<f64>,
    pub cv: Vec<f64>,
    pub lo: BoundData,
    pub hi: BoundData,
    pub u_init: Option<Vec<f64>>,
}

impl Prob {
    pub fn n(&self) -> usize {
        self.nx + self.nu
    }
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            size: self.b,
            x_init: &self.x_init,
            cost_hess: &self.cm,
            cost_lin: &self.cv,
            u_lower: self.lo.as_bound(),
            u_upper: self.hi.as_bound(),
            u_init: self.u_init.as_deref(),
        }
    }
    /// Bound of problem `b`, stage `t`, control `i`.
    pub fn bound(&self, lower: bool, b: usize, t: usize, i: usize) -> f64 {
        let (d, def) = if lower { (&self.lo, f64::NEG_INFINITY) } else { (&self.hi, f64::INFINITY) };
        match d {
            BoundData::None => def,
            BoundData::PerControl(v) => v[i],
            BoundData::PerStage(v) => v[(b * self.t + t) * self.nu + i],
        }
    }
}

/// A row-major `w.len() × w.len()` matrix with `w` on its diagonal.
#[allow(dead_code)]
pub fn diag_matrix(w: &[f64]) -> Vec<f64> {
    let n = w.len();
    let mut c = vec![0.0; n * n];
    for (i, wi) in w.iter().enumerate() {
        c[i * n + i] = *wi;
    }
    c
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn normal(r: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = r.random_range(1e-12..1.0);
    let u2: f64 = r.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Random symmetric PSD `n×n` matrix `M Mᵀ / n` with `extra` added to the last `nu` diagonal
/// entries.
pub fn random_psd(r: &mut StdRng, n: usize, nu: usize, extra: f64) -> Vec<f64> {
    let m: Vec<f64> = (0..n * n).map(|_| normal(r)).collect();
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            c[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>() / n as f64;
        }
    }
    for i in n - nu..n {
        c[i * n + i] += extra;
    }
    c
}

/// Solve `A x = b` (dense, `n×n`) by Gaussian elimination with partial pivoting.
pub fn dense_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap();
        assert!(a[piv * n + col].abs() > 1e-300, "singular KKT matrix");
        for c in 0..n {
            a.swap(col * n + c, piv * n + c);
        }
        b.swap(col, piv);
        for r in col + 1..n {
            let f = a[r * n + col] / a[col * n + col];
            for c in col..n {
                a[r * n + c] -= f * a[col * n + c];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i * n + k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i * n + i];
    }
    x
}

/// The dense KKT system of an equality-constrained LQR over `w = [z_0; …; z_{T-1}]`:
/// `min ½ wᵀ H w + hᵀ w` s.t. `x_0 = x0`, `x_{t+1} = A_t x_t + B_t u_t + f_t`,
/// `u_{t,i} = v` for every `(t, i, v)` in `fixed`. Returns `(w, ν)`; `ν[..nx]` is the multiplier
/// of `x_0 = x0` in `ℒ = ½wᵀHw + hᵀw + νᵀ(G w − e)`.
#[allow(clippy::too_many_arguments)]
pub fn kkt_solve(
    t: usize,
    nx: usize,
    nu: usize,
    hess: &[f64],
    lin: &[f64],
    a: &[f64],
    bm: &[f64],
    f: &[f64],
    x0: &[f64],
    fixed: &[(usize, usize, f64)],
) -> (Vec<f64>, Vec<f64>) {
    let n = nx + nu;
    let nw = t * n;
    let nc = nx + (t - 1) * nx + fixed.len();
    let dim = nw + nc;
    let mut k = vec![0.0; dim * dim];
    let mut rhs = vec![0.0; dim];
    for s in 0..t {
        for i in 0..n {
            for j in 0..n {
                k[(s * n + i) * dim + s * n + j] = hess[s * n * n + i * n + j];
            }
            rhs[s * n + i] = -lin[s * n + i];
        }
    }
    let mut row = nw;
    let put = |k: &mut Vec<f64>, r: usize, c: usize, v: f64| {
        k[r * dim + c] += v;
        k[c * dim + r] += v;
    };
    for i in 0..nx {
        put(&mut k, row + i, i, 1.0);
        rhs[row + i] = x0[i];
    }
    row += nx;
    for s in 0..t - 1 {
        for i in 0..nx {
            let r = row + i;
            put(&mut k, r, (s + 1) * n + i, 1.0);
            for j in 0..nx {
                put(&mut k, r, s * n + j, -a[s * nx * nx + i * nx + j]);
            }
            for j in 0..nu {
                put(&mut k, r, s * n + nx + j, -bm[s * nx * nu + i * nu + j]);
            }
            rhs[r] = f[s * nx + i];
        }
        row += nx;
    }
    for &(s, i, v) in fixed {
        put(&mut k, row, s * n + nx + i, 1.0);
        rhs[row] = v;
        row += 1;
    }
    let sol = dense_solve(k, rhs, dim);
    (sol[..nw].to_vec(), sol[nw..].to_vec())
}

/// Jacobians of `d` along a trajectory (stages 0..T-2), and the offsets that make the
/// linearisation exact at the trajectory (`f_t = x_{t+1} − A x_t − B u_t`).
pub fn linearize<D: Dynamics>(d: &D, t: usize, x: &[f64], u: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (nx, nu) = (d.nx(), d.nu());
    let mut a = vec![0.0; t * nx * nx];
    let mut b = vec![0.0; t * nx * nu];
    let mut f = vec![0.0; t * nx];
    let mut xn = vec![0.0; nx];
    for s in 0..t.saturating_sub(1) {
        d.linearize(
            &x[s * nx..(s + 1) * nx],
            &u[s * nu..(s + 1) * nu],
            &mut xn,
            &mut a[s * nx * nx..(s + 1) * nx * nx],
            &mut b[s * nx * nu..(s + 1) * nx * nu],
        );
        for i in 0..nx {
            let mut v = xn[i];
            for j in 0..nx {
                v -= a[s * nx * nx + i * nx + j] * x[s * nx + j];
            }
            for j in 0..nu {
                v -= b[s * nx * nu + i * nu + j] * u[s * nu + j];
            }
            f[s * nx + i] = v;
        }
    }
    (a, b, f)
}

/// Controls of problem `bi` on a bound (within `tol`), as `(t, i, value)`.
pub fn active_set(p: &Prob, bi: usize, u: &[f64], tol: f64) -> Vec<(usize, usize, f64)> {
    let mut out = Vec::new();
    for s in 0..p.t {
        for i in 0..p.nu {
            let v = u[(bi * p.t + s) * p.nu + i];
            let (lo, hi) = (p.bound(true, bi, s, i), p.bound(false, bi, s, i));
            if (v - lo).abs() <= tol || (hi - v).abs() <= tol {
                out.push((s, i, v));
            }
        }
    }
    out
}

pub fn options(mode: GradientMode) -> SolverOptions {
    SolverOptions { max_iters: 500, eps: 1e-12, gradient: mode, ..SolverOptions::default() }
}

/// Solve and differentiate with upstream gradients `gx`, `gu`.
pub fn solve_and_grad<D: Dynamics + Clone>(
    d: &D,
    p: &Prob,
    mode: GradientMode,
    gx: &[f64],
    gu: &[f64],
) -> (Solution, Gradients) {
    let mut s = Solver::new(d.clone(), p.t, options(mode));
    let sol = s.solve(&p.batch());
    let g = s.backward(&p.batch(), &sol, gx, gu);
    (sol, g)
}

/// `L = Σ gx·x* + gu·u*` at the solution of `p` (warm-started at `u_warm`), and the active set.
pub fn loss<D: Dynamics + Clone>(d: &D, p: &Prob, u_warm: &[f64], gx: &[f64], gu: &[f64]) -> (f64, Vec<Vec<(usize, usize)>>, bool) {
    let mut q = p.clone();
    q.u_init = Some(u_warm.to_vec());
    let mut s = Solver::new(d.clone(), q.t, options(GradientMode::Exact));
    let sol = s.solve(&q.batch());
    let l = sol.x.iter().zip(gx).map(|(a, b)| a * b).sum::<f64>() + sol.u.iter().zip(gu).map(|(a, b)| a * b).sum::<f64>();
    let act = (0..q.b).map(|bi| active_set(&q, bi, &sol.u, 1e-8).into_iter().map(|(t, i, _)| (t, i)).collect()).collect();
    (l, act, sol.converged.iter().all(|&c| c))
}
