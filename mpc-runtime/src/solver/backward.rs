//! Implicit differentiation of one solved problem.
//!
//! With the Lagrangian
//! `ℒ = Σ_t ½ z_tᵀ C_t z_t + c_tᵀ z_t + Σ_{t<T-1} λ_{t+1}ᵀ (f(z_t) − x_{t+1}) + λ_0ᵀ(x_init − x_0)`
//! the co-states at the solution are `λ_{T-1} = (C_{T-1} z_{T-1} + c_{T-1})_x` and
//! `λ_t = (C_t z_t + c_t)_x + A_tᵀ λ_{t+1}`, and the Hessian of `ℒ` in `z_t` is
//! `Ĉ_t = C_t + Σ_i λ_{t+1,i} ∇²f_i(z_t)` (exact mode; `Ĉ_t = C_t` in Gauss-Newton mode).
//!
//! Differentiating the KKT conditions with the active controls fixed, the first-order change of
//! the solution solves the equality-constrained QP `min ½ δzᵀ Ĉ δz + (δC z + δc)ᵀ δz` subject to
//! the linearised dynamics, `δx_0 = δx_init` and `δu_active = 0`. Its adjoint is one LQR solve:
//! `d = argmin Σ_t ½ d_tᵀ Ĉ_t d_t + g_tᵀ d_t` (same constraints, `d_x0 = 0`) with
//! `g_t = [grad_x_t; grad_u_t]`; then `dL/dc_t = d_t`,
//! `dL/dC_t = ½ (d_t z_tᵀ + z_t d_tᵀ)` and `dL/dx_init = ∂V_0/∂ξ`, the gradient at `ξ = 0` of
//! that LQR's optimal value as a function of its initial state (which contains `grad_x[0]`).

use super::riccati::{add_cost_to_go, add_cost_to_go_onto, neg_copy, transpose_q_xu, update_cost_to_go};
use super::rollout::{linearize_all, load_bounds};
use super::linalg::{ldlt, ldlt_solve_multi, lu_solve_multi};
use super::arith::Arith;
use super::isa::isa_builds;
use super::workspace::Workspace;
use super::{ACTIVE_TOL, GradientMode, ProblemRef};
use crate::model::Dynamics;

isa_builds! {
    /// Gradients of one problem; see the module documentation. Runs the build of
    /// [`Isa::for_backward`](super::isa::Isa::for_backward) (the builds round as for
    /// `ilqr::solve_one`).
    pub(crate) fn backward_one by super::isa::Isa::for_backward;
    /// [`backward_one`] in the build `isa`.
    pub(crate) fn backward_one_with = backward_one_impl(
        d: &D,
        mode: GradientMode,
        ws: &mut Workspace,
        p: &ProblemRef<'_>,
        xs: &[f64],
        us: &[f64],
        gx: &[f64],
        gu: &[f64],
        grad_cm: &mut [f64],
        grad_cv: &mut [f64],
        grad_x0: &mut [f64],
        grad_p: &mut [f64],
    )
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_one_impl<D: Dynamics, M: Arith>(
    d: &D,
    mode: GradientMode,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    xs: &[f64],
    us: &[f64],
    gx: &[f64],
    gu: &[f64],
    grad_cm: &mut [f64],
    grad_cv: &mut [f64],
    grad_x0: &mut [f64],
    grad_p: &mut [f64],
) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    load_bounds(ws, p);
    ws.traj.x.copy_from_slice(&xs[..tt * nx]);
    ws.traj.u.copy_from_slice(&us[..tt * nu]);
    linearize_all(d, ws);
    let exact = mode == GradientMode::Exact && d.has_curvature() && tt > 1;
    // Parameter gradients when asked for (`grad_p` not empty) and the model has parameters.
    let np = if grad_p.is_empty() { 0 } else { d.np() };
    if (exact || np > 0) && tt > 1 {
        // Co-states λ_t, t = T-1 down to 1 (λ_t stored at ws.adj.lam[t]).
        for t in (1..tt).rev() {
            let cm = &p.cm[t * n * n..(t + 1) * n * n];
            let cv = &p.cv[t * n..(t + 1) * n];
            for i in 0..nx {
                let mut s = cv[i];
                for j in 0..nx {
                    s += cm[i * n + j] * ws.traj.x[t * nx + j];
                }
                for j in 0..nu {
                    s += cm[i * n + nx + j] * ws.traj.u[t * nu + j];
                }
                if t + 1 < tt {
                    for k in 0..nx {
                        s += ws.lin.a[t * nx * nx + k * nx + i] * ws.adj.lam[(t + 1) * nx + k];
                    }
                }
                ws.adj.lam[t * nx + i] = s;
            }
        }
    }
    // Riccati recursion of the adjoint LQR. Its gains replace the forward's in `ws.ric.kk`:
    // their transposition is stale from here on.
    ws.ric.kkt_current = false;
    for t in (0..tt).rev() {
        let cm = &p.cm[t * n * n..(t + 1) * n * n];
        ws.ric.qz[..nx].copy_from_slice(&gx[t * nx..(t + 1) * nx]);
        ws.ric.qz[nx..].copy_from_slice(&gu[t * nu..(t + 1) * nu]);
        if exact && t + 1 < tt {
            d.weighted_hessian(
                &ws.traj.x[t * nx..(t + 1) * nx],
                &ws.traj.u[t * nu..(t + 1) * nu],
                &ws.adj.lam[(t + 1) * nx..(t + 2) * nx],
                &mut ws.adj.hess,
            );
            for ((q, c), h) in ws.ric.qzz[..n * n].iter_mut().zip(cm).zip(&ws.adj.hess[..n * n]) {
                *q = c + h;
            }
            add_cost_to_go::<M>(ws, nx, nu, t);
        } else if t + 1 < tt {
            add_cost_to_go_onto::<M>(ws, nx, nu, t, cm);
        } else {
            ws.ric.qzz.copy_from_slice(cm);
        }
        // Free controls: not within ACTIVE_TOL of a bound.
        let mut m = 0;
        for i in 0..nu {
            let v = ws.traj.u[t * nu + i];
            let on = (v - ws.data.lo[t * nu + i]).abs() <= ACTIVE_TOL || (ws.data.hi[t * nu + i] - v).abs() <= ACTIVE_TOL;
            if !on {
                ws.scratch.idx[m] = i;
                m += 1;
            }
        }
        // Q_ux's rows: Q_xu's columns where add_cost_to_go ran (it leaves Q_ux unwritten).
        transpose_q_xu(ws, nx, nu);
        let mirrored = t + 1 < tt;
        let kk = &mut ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
        let k = &mut ws.ric.k[t * nu..(t + 1) * nu];
        kk.fill(0.0);
        k.fill(0.0);
        if m > 0 {
            let cols = nx + 1;
            for a in 0..m {
                let i = ws.scratch.idx[a];
                for b in 0..m {
                    ws.ric.mat[a * m + b] = ws.ric.qzz[(nx + i) * n + nx + ws.scratch.idx[b]];
                }
                let q_ux = if mirrored { &ws.ric.qxut[i * nx..(i + 1) * nx] } else { &ws.ric.qzz[(nx + i) * n..(nx + i) * n + nx] };
                neg_copy(&mut ws.ric.rhs[a * cols..a * cols + nx], q_ux);
                ws.ric.rhs[a * cols + nx] = -ws.ric.qz[nx + i];
            }
            // Positive definite in Gauss-Newton mode and at a strict local minimum; fall back to
            // pivoted LU otherwise.
            // (`quu` keeps a copy for the fallback.)
            ws.ric.quu[..m * m].copy_from_slice(&ws.ric.mat[..m * m]);
            if ldlt(&mut ws.ric.mat[..m * m], m, 1e-14) {
                ldlt_solve_multi::<M>(&ws.ric.mat[..m * m], m, &mut ws.ric.rhs[..m * cols], cols);
            } else if !lu_solve_multi(&mut ws.ric.quu[..m * m], m, &mut ws.ric.rhs[..m * cols], cols) {
                // Singular reduced Hessian: the solution is not locally unique; report NaN.
                ws.ric.rhs[..m * cols].fill(f64::NAN);
            }
            for a in 0..m {
                let i = ws.scratch.idx[a];
                kk[i * nx..(i + 1) * nx].copy_from_slice(&ws.ric.rhs[a * cols..a * cols + nx]);
                k[i] = ws.ric.rhs[a * cols + nx];
            }
        }
        // K solves the unregularised free block exactly (`L D Lᵀ` or LU): the short formula.
        update_cost_to_go::<M>(ws, nx, nu, t, true, t > 0, t + 1 < tt);
    }
    grad_x0[..nx].copy_from_slice(&ws.ric.pv[..nx]);
    // Forward: d_x0 = 0, d_u = K d_x + k, d_x' = A d_x + B d_u.
    ws.scratch.dx.fill(0.0);
    for t in 0..tt {
        let dz = &mut ws.adj.dz[t * n..(t + 1) * n];
        dz[..nx].copy_from_slice(&ws.scratch.dx);
        for i in 0..nu {
            let mut s = ws.ric.k[t * nu + i];
            for j in 0..nx {
                s += ws.ric.kk[t * nu * nx + i * nx + j] * ws.scratch.dx[j];
            }
            dz[nx + i] = s;
        }
        if t + 1 < tt {
            let a = &ws.lin.a[t * nx * nx..(t + 1) * nx * nx];
            let b = &ws.lin.b[t * nx * nu..(t + 1) * nx * nu];
            for i in 0..nx {
                let mut s = 0.0;
                for j in 0..nx {
                    s += a[i * nx + j] * dz[j];
                }
                for j in 0..nu {
                    s += b[i * nu + j] * dz[nx + j];
                }
                ws.scratch.xn[i] = s;
            }
            ws.scratch.dx.copy_from_slice(&ws.scratch.xn);
        }
        // Outputs of this stage.
        ws.scratch.z[..nx].copy_from_slice(&ws.traj.x[t * nx..(t + 1) * nx]);
        ws.scratch.z[nx..].copy_from_slice(&ws.traj.u[t * nu..(t + 1) * nu]);
        grad_cv[t * n..(t + 1) * n].copy_from_slice(dz);
        sym_outer(&mut grad_cm[t * n * n..(t + 1) * n * n], &ws.scratch.z[..n], dz, n);
    }
    if np > 0 {
        // The mixed term: exact mode, and linear models (where it is exact in both modes).
        let mixed = mode == GradientMode::Exact || !d.has_curvature();
        param_gradient(d, exact, mixed, ws, p, gx, np, &mut grad_p[..np]);
    }
}

/// `dL/dθ` of one problem once `ws.adj.dz` holds the adjoint trajectory `d` and `ws.adj.lam` the
/// co-states `λ` (see the module documentation).
///
/// The adjoint LQR's own co-states follow from its stationarity in `d_x`:
/// `λ̂_{T-1} = (Ĉ d + g)_x`, `λ̂_t = (Ĉ_t d_t + g_t)_x + A_tᵀ λ̂_{t+1}` (active controls do not
/// enter the `x` rows; `λ̂_0 = dL/dx_init`). A parameter moves the dynamics constraint by
/// `∂f/∂θ δθ` (whose sensitivity is `λ̂_{t+1}`) and the stationarity by the mixed term
/// `∂²(λ_{t+1}ᵀf)/∂z∂θ δθ` (a change of `c_t`, whose sensitivity is `d_t`):
/// `dL/dθ = Σ_{t<T-1} λ̂_{t+1}ᵀ ∂f/∂θ(z_t) + d_tᵀ ∂²(λ_{t+1}ᵀf)/∂z∂θ(z_t)`.
/// In Gauss-Newton mode `Ĉ = C`, `d` comes from that KKT system, and for nonlinear dynamics the
/// mixed term (a second derivative of the dynamics) is dropped with the others (`mixed` false):
/// what mpc.pytorch computes with `GradMethods.AUTO_DIFF`, whose re-linearised `F` carries no
/// graph to θ (only `f = f(z; θ) − F z` does). For linear dynamics the mixed term is exact and
/// kept, as mpc.pytorch keeps `λ dᵀ` in the gradient of a `LinDx`'s `F`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn param_gradient<D: Dynamics>(
    d: &D,
    exact: bool,
    mixed: bool,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    gx: &[f64],
    np: usize,
    grad_p: &mut [f64],
) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    ws.adj.fp.resize(nx * np, 0.0);
    ws.adj.hp.resize(n * np, 0.0);
    grad_p.fill(0.0);
    // ws.scratch.xn holds λ̂_{t+1}, ws.scratch.dx the new λ̂_t.
    ws.scratch.xn.fill(0.0);
    for t in (0..tt).rev() {
        let x = &ws.traj.x[t * nx..(t + 1) * nx];
        let u = &ws.traj.u[t * nu..(t + 1) * nu];
        let dz = &ws.adj.dz[t * n..(t + 1) * n];
        if t + 1 < tt {
            let lam = &ws.adj.lam[(t + 1) * nx..(t + 2) * nx];
            d.param_jacobian(x, u, &mut ws.adj.fp);
            if mixed {
                d.param_hessian(x, u, lam, &mut ws.adj.hp);
            }
            for i in 0..nx {
                let l = ws.scratch.xn[i];
                if l != 0.0 {
                    for (g, f) in grad_p.iter_mut().zip(&ws.adj.fp[i * np..(i + 1) * np]) {
                        *g += l * f;
                    }
                }
            }
            for j in 0..if mixed { n } else { 0 } {
                let dj = dz[j];
                if dj != 0.0 {
                    for (g, h) in grad_p.iter_mut().zip(&ws.adj.hp[j * np..(j + 1) * np]) {
                        *g += dj * h;
                    }
                }
            }
        }
        if t == 0 {
            break;
        }
        // λ̂_t = (Ĉ_t d_t + g_t)_x + A_tᵀ λ̂_{t+1}.
        let cm = &p.cm[t * n * n..(t + 1) * n * n];
        if exact && t + 1 < tt {
            d.weighted_hessian(x, u, &ws.adj.lam[(t + 1) * nx..(t + 2) * nx], &mut ws.adj.hess);
        }
        for i in 0..nx {
            let mut s = gx[t * nx + i];
            for j in 0..n {
                let mut c = cm[i * n + j];
                if exact && t + 1 < tt {
                    c += ws.adj.hess[i * n + j];
                }
                s += c * dz[j];
            }
            if t + 1 < tt {
                for k in 0..nx {
                    s += ws.lin.a[t * nx * nx + k * nx + i] * ws.scratch.xn[k];
                }
            }
            ws.scratch.dx[i] = s;
        }
        std::mem::swap(&mut ws.scratch.xn, &mut ws.scratch.dx);
    }
}

/// `g = ½ (d zᵀ + z dᵀ)` (`n × n`, row-major): `g_ij = ½ (d_i z_j + z_i d_j)`. A function of its
/// own so that the output, `z` and `d` are known apart and the rows vectorise.
#[inline(always)]
pub(crate) fn sym_outer(g: &mut [f64], z: &[f64], d: &[f64], n: usize) {
    let (z, d) = (&z[..n], &d[..n]);
    for (i, row) in g[..n * n].chunks_exact_mut(n).enumerate() {
        let (di, zi) = (d[i], z[i]);
        for j in 0..n {
            row[j] = 0.5 * (di * z[j] + zi * d[j]);
        }
    }
}

/// Whether every entry of `½ (d zᵀ + z dᵀ)` is finite by a bound alone, for finite `z` and `d`:
/// each is at most `max|z| · max|d|` in magnitude, and twice that rounded stays below `f64::MAX`
/// when the computed product is at most `f64::MAX / 4`. `false` says only that the entries must
/// be tested one by one.
#[inline(always)]
pub(crate) fn outer_bounded(z: &[f64], d: &[f64]) -> bool {
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    max_abs(z) * max_abs(d) <= f64::MAX / 4.0
}

/// Copy `src` into `dst` with non-temporal stores where the CPU has them (x86-64): the lines go
/// to memory without first being read into the cache, which halves the memory traffic of an
/// output far larger than the caches (the `dL/dC` of a large batch). Same values as
/// `copy_from_slice`; [`stream_fence`] before another thread may read them.
#[inline(always)]
pub(crate) fn copy_streaming(dst: &mut [f64], src: &[f64]) {
    let dst = &mut dst[..src.len()];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_pd, _mm_stream_pd};
        let mut i = 0;
        // `_mm_stream_pd` needs 16-byte alignment: one ordinary store first where `dst` has not.
        if !dst.is_empty() && (dst.as_ptr() as usize) % 16 != 0 {
            dst[0] = src[0];
            i = 1;
        }
        while i + 2 <= dst.len() {
            // SAFETY: SSE2 is part of x86-64; `dst[i..i + 2]` and `src[i..i + 2]` are in bounds
            // and `dst + i` is 16-byte aligned.
            unsafe { _mm_stream_pd(dst.as_mut_ptr().add(i), _mm_loadu_pd(src.as_ptr().add(i))) };
            i += 2;
        }
        if i < dst.len() {
            dst[i] = src[i];
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders this thread's [`copy_streaming`] stores before its later stores (and so before the
/// release that hands the output to another thread).
#[inline(always)]
pub(crate) fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `outer_bounded` holds, every entry of `½ (d zᵀ + z dᵀ)` is finite, up to the
    /// largest magnitudes it admits; past them it declines, and it does for overflowing blocks.
    #[test]
    fn a_bounded_outer_product_is_finite() {
        let n = 3;
        let mut g = vec![0.0; n * n];
        let big = (f64::MAX / 4.0).sqrt();
        for (scale_z, scale_d, overflows) in [(1.0, 1.0, false), (big, big, false), (f64::MAX / 4.0, 1.0, false), (1e200, 1e200, true), (f64::MAX, 2.0, true)] {
            for signs in 0..8u32 {
                let s = |k: u32| if signs >> k & 1 == 1 { -1.0 } else { 1.0 };
                let z = [scale_z * s(0), scale_z * 0.5, -scale_z * s(1)];
                let d = [scale_d * s(2), -scale_d, scale_d * 0.25];
                sym_outer(&mut g, &z, &d, n);
                let all_finite = g.iter().all(|v| v.is_finite());
                if outer_bounded(&z, &d) {
                    assert!(all_finite, "bounded but not finite: {z:?} {d:?}");
                }
                assert_eq!(outer_bounded(&z, &d), !overflows, "{scale_z:e} {scale_d:e}");
                if overflows {
                    assert!(!all_finite, "{scale_z:e} {scale_d:e}");
                }
            }
        }
    }
}
