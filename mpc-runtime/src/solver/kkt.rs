//! First-order optimality: the KKT residual of an iterate (adjoint sweep, projected gradient)
//! and the line search on the residual where the cost cannot tell steps apart.

use super::workspace::Workspace;
use super::{ProblemRef, SolverOptions};
use crate::model::Dynamics;

use super::rollout::{linearize_stage, load_bounds, load_cost_structure, rollout_plain, rollout_trial, stage_gradient, stage_z};

/// The line search where the cost cannot tell the trial steps from rounding (every trial is
/// within `limit`, the current cost plus its rounding tolerance): the first step size whose
/// trial has a smaller KKT residual than `kkt`, the current one, is taken. This is how a
/// slowly converging iteration (iLQR where the dynamics are curved and the co-states large)
/// keeps converging below the cost's resolution instead of wandering at it.
///
/// On success the trial becomes the iterate (`ws.traj.x`, `ws.traj.u`, with its Jacobians in `ws.lin.a`,
/// `ws.lin.b`) and `(cost, scale, residual, ‖Δu‖)` is returned. On failure the iterate is
/// unchanged but `ws.lin.a`/`ws.lin.b` hold the last trial's Jacobians.
#[inline(always)]
pub(crate) fn kkt_step<D: Dynamics>(
    d: &D,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    opts: &SolverOptions,
    limit: f64,
    kkt: f64,
) -> Option<(f64, f64, f64, f64)> {
    for &alpha in &opts.line_search {
        let (jt, st) = rollout_trial(d, ws, p, alpha);
        if !jt.is_finite() || jt > limit {
            continue;
        }
        let du = du_norm(&ws.traj.ut, &ws.traj.u);
        std::mem::swap(&mut ws.traj.x, &mut ws.traj.xt);
        std::mem::swap(&mut ws.traj.u, &mut ws.traj.ut);
        let r = kkt_residual(d, ws, p, false);
        if r < kkt {
            return Some((jt, st, r, du));
        }
        std::mem::swap(&mut ws.traj.x, &mut ws.traj.xt);
        std::mem::swap(&mut ws.traj.u, &mut ws.traj.ut);
    }
    None
}

/// `‖a - b‖₂`.
#[inline(always)]
pub(crate) fn du_norm(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        s += (x - y) * (x - y);
    }
    s.sqrt()
}

/// The KKT residual ([`Stats::kkt_residual`]) at the iterate `ws.traj.x`, `ws.traj.u` (bounds in
/// `ws.data.lo`/`ws.data.hi`): the adjoint sweep `λ_t = ∇_x ℓ_t + A_tᵀ λ_{t+1}`,
/// `∇_{u_t} J = ∇_u ℓ_t + B_tᵀ λ_{t+1}`, projected onto the box. `linearized`: `ws.lin.a`/`ws.lin.b`
/// already hold the Jacobians along this iterate; otherwise they are recomputed (and left
/// there). NaN when anything on the way is not finite.
#[inline(always)]
pub(crate) fn kkt_residual<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, linearized: bool) -> f64 {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let mut r = 0.0f64;
    for t in (0..tt).rev() {
        let last = t + 1 == tt;
        if !linearized && !last {
            linearize_stage(d, ws, t);
        }
        stage_z(&mut ws.scratch.z, &ws.traj.x, &ws.traj.u, nx, nu, t);
        stage_gradient(&mut ws.ric.qz, &p.cm[t * n * n..(t + 1) * n * n], &p.cv[t * n..(t + 1) * n], &ws.scratch.z, n, ws.data.cdiag[t]);
        if !last {
            let a = &ws.lin.a[t * nx * nx..(t + 1) * nx * nx];
            let b = &ws.lin.b[t * nx * nu..(t + 1) * nx * nu];
            let lam = &ws.adj.lam[..nx];
            for k in 0..nx {
                let lk = lam[k];
                for i in 0..nx {
                    ws.ric.qz[i] += a[k * nx + i] * lk;
                }
                for i in 0..nu {
                    ws.ric.qz[nx + i] += b[k * nu + i] * lk;
                }
            }
        }
        for i in 0..nu {
            let (u, g) = (ws.traj.u[t * nu + i], ws.ric.qz[nx + i]);
            let v = (u - (u - g).max(ws.data.lo[t * nu + i]).min(ws.data.hi[t * nu + i])).abs();
            if !(v <= r) {
                r = v; // also takes NaN (and keeps it: no later `v <= NaN`)
                if v.is_nan() {
                    return f64::NAN;
                }
            }
        }
        ws.adj.lam[..nx].copy_from_slice(&ws.ric.qz[..nx]);
    }
    r
}

/// [`kkt_residual`] of one problem at the controls `u` (T×nu), projected onto its bounds.
pub(crate) fn kkt_residual_at<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, u: &[f64]) -> f64 {
    let (nu, tt) = (d.nu(), ws.horizon);
    load_bounds(ws, p);
    load_cost_structure(ws, p, d.nx() + nu);
    ws.traj.u.copy_from_slice(&u[..tt * nu]);
    for i in 0..tt * nu {
        ws.traj.u[i] = ws.traj.u[i].max(ws.data.lo[i]).min(ws.data.hi[i]);
    }
    rollout_plain(d, ws, p);
    kkt_residual(d, ws, p, false)
}
