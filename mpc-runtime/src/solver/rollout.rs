//! The problem data a solve loads once (bounds, which cost Hessians are diagonal), the stage
//! cost, and the rollouts: open-loop from `x_init`, closed-loop trials of the line search, and
//! the linearisation along the iterate.

use super::linalg::quad_cost_parts;
use super::riccati::transpose_gains;
use super::workspace::{Workspace, with_row_acc};
use super::{Bound, ProblemRef};
use crate::model::Dynamics;

/// Fill `ws.data.lo`/`ws.data.hi` (T×nu) from the problem's bounds.
#[inline]
pub(crate) fn load_bounds(ws: &mut Workspace, p: &ProblemRef<'_>) {
    let (t, nu) = (ws.horizon, ws.nu);
    for (dst, b, inf) in [(&mut ws.data.lo, p.lower, f64::NEG_INFINITY), (&mut ws.data.hi, p.upper, f64::INFINITY)] {
        match b {
            Bound::None => dst[..t * nu].fill(inf),
            Bound::PerControl(s) => {
                for st in 0..t {
                    dst[st * nu..(st + 1) * nu].copy_from_slice(&s[..nu]);
                }
            }
            Bound::PerStage(s) => dst[..t * nu].copy_from_slice(&s[..t * nu]),
        }
    }
}

/// Whether the `n × n` stage cost Hessian `cm` is diagonal (every off-diagonal entry exactly 0).
#[inline(always)]
pub(crate) fn is_diagonal(cm: &[f64], n: usize) -> bool {
    off_diagonal_zeros(cm, n).0
}

/// The sign bit of an `f64`.
const SIGN: u64 = 1 << 63;

/// Whether every off-diagonal entry of the `n × n` block `c` is `±0` (diagonal), and whether
/// every one is `+0` (the compact form of the lane path). Counted, not searched: an off-diagonal
/// entry is non-zero exactly when the block has more non-zero entries than its diagonal, and
/// the count over the whole block is one contiguous, vectorised pass. (Folds over the runs
/// between diagonal entries were vectorised across the runs, with gathers at stride `n + 1`:
/// a fifth of the lane backward pass's time.)
#[inline(always)]
pub(crate) fn off_diagonal_zeros(c: &[f64], n: usize) -> (bool, bool) {
    let c = &c[..n * n];
    // Per entry: 1 where it is not ±0, 1 where it is not +0.
    let count = |v: &f64| {
        let b = v.to_bits();
        (usize::from(b & !SIGN != 0), usize::from(b != 0))
    };
    let add = |(a, b): (usize, usize), (c, d): (usize, usize)| (a + c, b + d);
    let all = c.iter().map(count).fold((0, 0), add);
    let diag = (0..n).map(|i| count(&c[i * (n + 1)])).fold((0, 0), add);
    (all.0 == diag.0, all.1 == diag.1)
}

/// Fill `ws.data.cdiag` (T): which stage cost Hessians of `p` are diagonal.
#[inline(always)]
pub(crate) fn load_cost_structure(ws: &mut Workspace, p: &ProblemRef<'_>, n: usize) {
    for t in 0..ws.horizon {
        ws.data.cdiag[t] = is_diagonal(&p.cm[t * n * n..(t + 1) * n * n], n);
    }
}

/// `(zᵀ C z, cᵀ z)` of one stage, with the diagonal shortcut when `diag` and `z` is finite:
/// then every skipped product is a `±0`, so the result is that of the dense sum to the bit.
#[inline(always)]
pub(crate) fn stage_cost_parts(cm: &[f64], cv: &[f64], z: &[f64], n: usize, diag: bool) -> (f64, f64) {
    let z = &z[..n];
    if diag && z.iter().all(|v| v.is_finite()) {
        let mut q = 0.0;
        let mut l = 0.0;
        for i in 0..n {
            q += z[i] * (cm[i * n + i] * z[i]);
            l += z[i] * cv[i];
        }
        (q, l)
    } else {
        quad_cost_parts(cm, cv, z, n)
    }
}

/// `g = C z + c` of one stage, with the diagonal shortcut as in [`stage_cost_parts`] (the same
/// result to the bit).
#[inline(always)]
pub(crate) fn stage_gradient(g: &mut [f64], cm: &[f64], cv: &[f64], z: &[f64], n: usize, diag: bool) {
    if diag && z[..n].iter().all(|v| v.is_finite()) {
        for i in 0..n {
            g[i] = cv[i] + cm[i * n + i] * z[i];
        }
    } else {
        for i in 0..n {
            let mut s = cv[i];
            for j in 0..n {
                s += cm[i * n + j] * z[j];
            }
            g[i] = s;
        }
    }
}

/// Stage `t`'s `z = [x; u]` into `z`.
#[inline(always)]
pub(crate) fn stage_z(z: &mut [f64], x: &[f64], u: &[f64], nx: usize, nu: usize, t: usize) {
    z[..nx].copy_from_slice(&x[t * nx..(t + 1) * nx]);
    z[nx..nx + nu].copy_from_slice(&u[t * nu..(t + 1) * nu]);
}

/// Roll the dynamics out from `x_init` with the controls in `ws.traj.u`, writing `ws.traj.x`; returns the
/// cost and its magnitude scale `Σ_t ½|z_tᵀC_t z_t| + |c_tᵀ z_t|` (for rounding tolerances).
#[inline(always)]
pub(crate) fn rollout_plain<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>) -> (f64, f64) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    ws.traj.x[..nx].copy_from_slice(&p.x_init[..nx]);
    let mut j = 0.0;
    let mut sc = 0.0;
    for t in 0..tt {
        stage_z(&mut ws.scratch.z, &ws.traj.x, &ws.traj.u, nx, nu, t);
        let (q, l) =
            stage_cost_parts(&p.cm[t * n * n..(t + 1) * n * n], &p.cv[t * n..(t + 1) * n], &ws.scratch.z, n, ws.data.cdiag[t]);
        j += 0.5 * q + l;
        sc += 0.5 * q.abs() + l.abs();
        if t + 1 < tt {
            let (cur, next) = ws.traj.x.split_at_mut((t + 1) * nx);
            d.step(&cur[t * nx..], &ws.traj.u[t * nu..(t + 1) * nu], &mut next[..nx]);
        }
    }
    (j, sc)
}

/// Closed-loop rollout of step size `alpha` into `ws.traj.xt`/`ws.traj.ut`; returns its cost and scale
/// (as [`rollout_plain`]). The controls are `clamp(u_t + α k_t + K_t (x̂_t − x_t))`, each sum in the
/// order `(u + αk) + K_i0 δx_0 + K_i1 δx_1 + …`, accumulated for all controls at once from the
/// rows of `Kᵀ` (`ws.ric.kkt`) in a register row.
#[inline(always)]
pub(crate) fn rollout_trial<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, alpha: f64) -> (f64, f64) {
    let n = d.nx() + d.nu();
    with_row_acc!(ws, n, acc => rollout_trial_with(d, ws, p, alpha, acc))
}

#[inline(always)]
fn rollout_trial_with<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, alpha: f64, acc: &mut [f64]) -> (f64, f64) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let v = &mut acc[..nu];
    transpose_gains(ws, nx, nu);
    ws.traj.xt[..nx].copy_from_slice(&p.x_init[..nx]);
    let mut j = 0.0;
    let mut sc = 0.0;
    for t in 0..tt {
        // Per-stage slices with compile-time lengths (no bounds checks in the loops).
        let xt = &ws.traj.xt[t * nx..(t + 1) * nx];
        let x = &ws.traj.x[t * nx..(t + 1) * nx];
        let kkt = &ws.ric.kkt[t * nx * nu..(t + 1) * nx * nu];
        let u = &ws.traj.u[t * nu..(t + 1) * nu];
        let k = &ws.ric.k[t * nu..(t + 1) * nu];
        let lo = &ws.data.lo[t * nu..(t + 1) * nu];
        let hi = &ws.data.hi[t * nu..(t + 1) * nu];
        for i in 0..nu {
            v[i] = u[i] + alpha * k[i];
        }
        for jx in 0..nx {
            let dxj = xt[jx] - x[jx];
            let col = &kkt[jx * nu..(jx + 1) * nu];
            for i in 0..nu {
                v[i] += col[i] * dxj;
            }
        }
        let ut = &mut ws.traj.ut[t * nu..(t + 1) * nu];
        for i in 0..nu {
            ut[i] = clamp(v[i], lo[i], hi[i]);
        }
        stage_z(&mut ws.scratch.z, &ws.traj.xt, &ws.traj.ut, nx, nu, t);
        let (q, l) =
            stage_cost_parts(&p.cm[t * n * n..(t + 1) * n * n], &p.cv[t * n..(t + 1) * n], &ws.scratch.z, n, ws.data.cdiag[t]);
        j += 0.5 * q + l;
        sc += 0.5 * q.abs() + l.abs();
        if t + 1 < tt {
            let (cur, next) = ws.traj.xt.split_at_mut((t + 1) * nx);
            d.step(&cur[t * nx..], &ws.traj.ut[t * nu..(t + 1) * nu], &mut next[..nx]);
        }
    }
    (j, sc)
}

/// A trial control `v` clamped to `[lo, hi]` (`lo ≤ hi`, neither NaN) by compare and select:
/// `v.max(lo).min(hi)` (`lo` for a NaN `v`) but for the sign of a zero result (`f64::max` and
/// `min` leave a tie of `±0` open). Every trial rollout (per problem, step sizes in lanes,
/// problems in lanes) clamps with it, so they agree to the bit; unlike `f64::max`/`min` (which
/// must also handle a NaN bound) it vectorises across lanes, and the lanes' controls are stored
/// as whole vectors (element stores read back as vectors stalled the dynamics' chain).
#[inline(always)]
pub(crate) fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    let m = if v >= lo { v } else { lo };
    if m <= hi { m } else { hi }
}

/// Linearise the dynamics along `ws.traj.x`, `ws.traj.u` (stages 0..T-2) into `ws.lin.a`, `ws.lin.b`.
#[inline(always)]
pub(crate) fn linearize_all<D: Dynamics>(d: &D, ws: &mut Workspace) {
    for t in 0..ws.horizon.saturating_sub(1) {
        linearize_stage(d, ws, t);
    }
}

/// [`linearize_all`]'s stage `t` alone (the Riccati pass takes each stage's as it goes).
#[inline(always)]
pub(crate) fn linearize_stage<D: Dynamics>(d: &D, ws: &mut Workspace, t: usize) {
    let (nx, nu) = (d.nx(), d.nu());
    d.linearize(
        &ws.traj.x[t * nx..(t + 1) * nx],
        &ws.traj.u[t * nu..(t + 1) * nu],
        &mut ws.scratch.xn,
        &mut ws.lin.a[t * nx * nx..(t + 1) * nx * nx],
        &mut ws.lin.b[t * nx * nu..(t + 1) * nx * nu],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `off_diagonal_zeros` against the entrywise definitions, for one non-zero, `-0` or NaN at
    /// every position of blocks of size 1 to 6, with diagonals of non-zero, `±0` or NaN entries
    /// (a diagonal entry never counts).
    /// `clamp` is `v.max(lo).min(hi)` for every `v` (NaN and infinities included) and bounds
    /// (infinite ones included), to the bit but for the sign of a zero result.
    #[test]
    fn clamp_equals_max_min_up_to_the_sign_of_zero() {
        let vals = [f64::NEG_INFINITY, -3.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, f64::INFINITY, f64::NAN];
        let bounds = [f64::NEG_INFINITY, -1.0, -0.0, 0.0, 1.0, f64::INFINITY];
        for &v in &vals {
            for &lo in &bounds {
                for &hi in bounds.iter().filter(|&&h| h >= lo) {
                    let (c, r) = (clamp(v, lo, hi), v.max(lo).min(hi));
                    assert_eq!(c, r, "v={v} lo={lo} hi={hi}");
                    assert!(c.to_bits() == r.to_bits() || c == 0.0, "v={v} lo={lo} hi={hi}: {c} against {r}");
                }
            }
        }
        assert_eq!(clamp(f64::NAN, -2.0, 5.0), -2.0);
        assert_eq!(clamp(-0.0f64, 0.0, 1.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn off_diagonal_zeros_equal_the_entrywise_tests() {
        for n in 1..=6 {
            for pos in 0..n * n {
                for v in [1.0, -0.0, 0.0, f64::NAN, 5e-324, f64::INFINITY] {
                    for dv in [2.0, 0.0, -0.0, f64::NAN] {
                        let mut c: Vec<f64> = (0..n * n).map(|k| if k % (n + 1) == 0 { dv } else { 0.0 }).collect();
                        c[pos] = v;
                        let off = |k: usize| k / n != k % n;
                        let diag = (0..n * n).all(|k| !off(k) || c[k] == 0.0);
                        let plus_zero = (0..n * n).all(|k| !off(k) || c[k].to_bits() == 0);
                        assert_eq!(off_diagonal_zeros(&c, n), (diag, plus_zero), "n {n}, {v} at {pos}, diagonal {dv}");
                        assert_eq!(is_diagonal(&c, n), diag);
                    }
                }
            }
        }
    }
}
