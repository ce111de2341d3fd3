//! SIMD across step sizes: the line search of one problem (the per-problem path of
//! `ilqr.rs`) rolls out up to [`LANES`] of its step sizes at once, one step size per lane,
//! through the model's generated lane code. The problem's data, iterate and gains are shared
//! by the lanes (broadcast); each lane's controls, states and cost see the operations of
//! `rollout::rollout_trial` in its order, so each lane is that scalar trial to the bit (the
//! `verify::check_batch_matches_single` tests solve every problem both ways).
//!
//! This is what lanes can do for a batch too small to fill lanes with problems (B = 1 above
//! all): the default line search tries 4 step sizes and keeps the best, 4 rollouts that are
//! independent of each other.

use super::{LANES, V, ZERO, enabled, finite_lanes};
use crate::solver::aligned::Aligned;
use crate::model::Dynamics;
use crate::solver::rollout::{clamp, stage_cost_parts};
use crate::solver::workspace::Workspace;
use crate::solver::{Lanes, LineSearchRule, ProblemRef, SolverOptions};

/// Whether the line search of a per-problem solve takes its step sizes in lanes: a model with
/// lane code, at least two step sizes, all of them tried ([`LineSearchRule::Best`]; with
/// `FirstDecrease` the later ones are usually never rolled out), and lanes not switched off
/// ([`Lanes::Never`], `MPC_NO_LANES=1`).
pub(crate) fn trials_apply<D: Dynamics>(d: &D, opts: &SolverOptions) -> bool {
    d.has_lanes()
        && opts.line_search.len() > 1
        && opts.line_search_rule == LineSearchRule::Best
        && opts.lanes != Lanes::Never
        && enabled()
}

/// Lane buffers of the step-size trials (states T×nx, controls T×nu, one lane's `z`, and the
/// controls' accumulator when `nu > 16`), allocated with the workspace.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrialLanes {
    pub x: Aligned<V>,
    pub u: Aligned<V>,
    z: Aligned<f64>,
    acc: Aligned<V>,
}

impl TrialLanes {
    pub(crate) fn new(horizon: usize, nx: usize, nu: usize) -> Self {
        let acc = Aligned::new(if nu > 16 { nu } else { 0 }, ZERO);
        Self { x: Aligned::new(horizon * nx, ZERO), u: Aligned::new(horizon * nu, ZERO), z: Aligned::new(nx + nu, 0.0), acc }
    }
}

/// Closed-loop trials of the step sizes `alpha` (one per lane) into `ws.trials`: lane `l`'s
/// controls `clamp(u + α_l k + K (x̂ − x))` and states are those of
/// `rollout::rollout_trial(α_l)`; returns each lane's cost and scale.
#[inline(always)]
pub(crate) fn rollout_trials<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, alpha: &V) -> (V, V) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let mut tr = std::mem::take(&mut ws.trials);
    for (dst, &x0) in tr.x[..nx].iter_mut().zip(p.x_init) {
        *dst = [x0; LANES];
    }
    let (mut j, mut sc) = (ZERO, ZERO);
    let mut stack = [ZERO; 16];
    let mut heap = std::mem::take(&mut tr.acc);
    let v: &mut [V] = if nu <= 16 { &mut stack } else { &mut heap };
    let mut zl = [ZERO; 32];
    for t in 0..tt {
        {
            let v = &mut v[..nu];
            let xt = &tr.x[t * nx..(t + 1) * nx];
            let x = &ws.traj.x[t * nx..(t + 1) * nx];
            let kk = &ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
            let u = &ws.traj.u[t * nu..(t + 1) * nu];
            let k = &ws.ric.k[t * nu..(t + 1) * nu];
            for i in 0..nu {
                for l in 0..LANES {
                    v[i][l] = u[i] + alpha[l] * k[i];
                }
            }
            for jx in 0..nx {
                let mut dxj = ZERO;
                for l in 0..LANES {
                    dxj[l] = xt[jx][l] - x[jx];
                }
                // Column jx of K: one broadcast per entry, as a column of `Kᵀ` would be.
                for i in 0..nu {
                    let kij = kk[i * nx + jx];
                    for l in 0..LANES {
                        v[i][l] += kij * dxj[l];
                    }
                }
            }
            let (lo, hi) = (&ws.data.lo[t * nu..(t + 1) * nu], &ws.data.hi[t * nu..(t + 1) * nu]);
            let ut = &mut tr.u[t * nu..(t + 1) * nu];
            for i in 0..nu {
                ut[i] = std::array::from_fn(|l| clamp(v[i][l], lo[i], hi[i]));
            }
        }
        // The next state first: the rollout waits on its chain, and the stage cost fills it.
        if t + 1 < tt {
            let (cur, next) = tr.x.split_at_mut((t + 1) * nx);
            let stepped = d.step_lanes(&cur[t * nx..], &tr.u[t * nu..(t + 1) * nu], &mut next[..nx]);
            debug_assert!(stepped, "trials_apply admits models with lane code only");
        }
        // The stage cost, per lane as `rollout::stage_cost_parts`.
        let (cm, cv) = (&p.cm[t * n * n..(t + 1) * n * n], &p.cv[t * n..(t + 1) * n]);
        let (q, lin) = if n <= 32 {
            let z = &mut zl[..n];
            z[..nx].copy_from_slice(&tr.x[t * nx..(t + 1) * nx]);
            z[nx..].copy_from_slice(&tr.u[t * nu..(t + 1) * nu]);
            if ws.data.cdiag[t] && finite_lanes(z).iter().all(|&f| f) {
                let (mut q, mut lin) = (ZERO, ZERO);
                for i in 0..n {
                    for l in 0..LANES {
                        q[l] += z[i][l] * (cm[i * n + i] * z[i][l]);
                        lin[l] += z[i][l] * cv[i];
                    }
                }
                (q, lin)
            } else {
                lane_by_lane(&mut tr, cm, cv, n, ws.data.cdiag[t], nx, nu, t)
            }
        } else {
            lane_by_lane(&mut tr, cm, cv, n, ws.data.cdiag[t], nx, nu, t)
        };
        for l in 0..LANES {
            j[l] += 0.5 * q[l] + lin[l];
            sc[l] += 0.5 * q[l].abs() + lin[l].abs();
        }
    }
    tr.acc = heap;
    ws.trials = tr;
    (j, sc)
}

/// One stage's `(zᵀ C z, cᵀ z)` lane by lane through the scalar `stage_cost_parts` (a lane
/// not finite, a dense `C`, or `nx + nu > 32`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lane_by_lane(tr: &mut TrialLanes, cm: &[f64], cv: &[f64], n: usize, diag: bool, nx: usize, nu: usize, t: usize) -> (V, V) {
    let (mut q, mut lin) = (ZERO, ZERO);
    for l in 0..LANES {
        for i in 0..nx {
            tr.z[i] = tr.x[t * nx + i][l];
        }
        for i in 0..nu {
            tr.z[nx + i] = tr.u[t * nu + i][l];
        }
        (q[l], lin[l]) = stage_cost_parts(cm, cv, &tr.z, n, diag);
    }
    (q, lin)
}

/// `du_norm(u_l, u)` of lane `l`'s controls `u_l` (the same sum in the same order, without
/// taking the lane out first).
#[inline(always)]
pub(crate) fn lane_du_norm(tr: &TrialLanes, l: usize, u: &[f64]) -> f64 {
    let mut s = 0.0;
    for (a, b) in tr.u.iter().zip(u) {
        s += (a[l] - b) * (a[l] - b);
    }
    s.sqrt()
}

/// Lane `l` of the trials into the scalar trajectories `x` (T×nx) and `u` (T×nu).
#[inline(always)]
pub(crate) fn take_lane(tr: &TrialLanes, l: usize, x: &mut [f64], u: &mut [f64]) {
    for (dst, src) in x.iter_mut().zip(&tr.x) {
        *dst = src[l];
    }
    for (dst, src) in u.iter_mut().zip(&tr.u) {
        *dst = src[l];
    }
}
