//! Control-limited iLQR for one problem (Tassa, Mansard & Todorov 2014), plus the Riccati
//! pieces shared with the gradient pass.

use super::IterationRecord;
use super::linalg::{cholesky_solve_multi, quad_cost_parts};
use super::workspace::Workspace;
use super::{Bound, LineSearchRule, Method, NonFinite, ProblemRef, SolverOptions, Stats, StopReason};
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

/// `y += a x` over equal-length slices (bounds-check free, vectorisable).
#[inline(always)]
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Add the dynamics' contribution `Fᵀ P F`, `Fᵀ p` (F = [A B] of stage `t`) to `ws.ric.qzz`,
/// `ws.ric.qz`, where `ws.ric.p`, `ws.ric.pv` hold the cost-to-go of stage `t + 1`.
///
/// Exact zeros of `A` and `B` are skipped (a dynamics Jacobian is typically sparse): `P A` and
/// `P B` are formed as `(Aᵀ P)ᵀ`, `(Bᵀ P)ᵀ` (rows of `P` scaled by the non-zero entries, `P`
/// being exactly symmetric), and `Aᵀ (P A)` row by row over the non-zeros of `A`. The products
/// and the order of every sum are those of the dense evaluation; a skipped term is a `±0`, so
/// the result is the same to the bit (for finite `P`).
#[inline(always)]
pub(crate) fn add_cost_to_go(ws: &mut Workspace, nx: usize, nu: usize, t: usize) {
    let n = nx + nu;
    let a = &ws.lin.a[t * nx * nx..(t + 1) * nx * nx];
    let b = &ws.lin.b[t * nx * nu..(t + 1) * nx * nu];
    let p = &ws.ric.p[..nx * nx];
    // M = Aᵀ P (nx×nx), N = Bᵀ P (nu×nx), each row a sum over k ascending.
    let m = &mut ws.ric.atp[..nx * nx];
    let nn = &mut ws.ric.btp[..nu * nx];
    m.fill(0.0);
    nn.fill(0.0);
    for k in 0..nx {
        let p_row = &p[k * nx..(k + 1) * nx];
        let a_row = &a[k * nx..(k + 1) * nx];
        let b_row = &b[k * nu..(k + 1) * nu];
        for (i, &aki) in a_row.iter().enumerate() {
            if aki != 0.0 {
                axpy(&mut m[i * nx..(i + 1) * nx], aki, p_row);
            }
        }
        for (i, &bki) in b_row.iter().enumerate() {
            if bki != 0.0 {
                axpy(&mut nn[i * nx..(i + 1) * nx], bki, p_row);
            }
        }
    }
    // P A = Mᵀ, P B = Nᵀ.
    let pa = &mut ws.ric.pa[..nx * nx];
    let pb = &mut ws.ric.pb[..nx * nu];
    for k in 0..nx {
        for j in 0..nx {
            pa[k * nx + j] = m[j * nx + k];
        }
        for j in 0..nu {
            pb[k * nu + j] = nn[j * nx + k];
        }
    }
    let qzz = &mut ws.ric.qzz[..n * n];
    for k in 0..nx {
        let pa_row = &pa[k * nx..(k + 1) * nx];
        let pb_row = &pb[k * nu..(k + 1) * nu];
        let a_row = &a[k * nx..(k + 1) * nx];
        let b_row = &b[k * nu..(k + 1) * nu];
        // Rows i < nx of [Q_xx Q_xu] += A[k][i] [PA_k PB_k].
        for (i, &aki) in a_row.iter().enumerate() {
            if aki != 0.0 {
                let q_row = &mut qzz[i * n..(i + 1) * n];
                let (qx, qu) = q_row.split_at_mut(nx);
                axpy(qx, aki, pa_row);
                axpy(qu, aki, pb_row);
            }
        }
        // Q_uu += B[k][i] PB_k.
        for (i, &bki) in b_row.iter().enumerate() {
            if bki != 0.0 {
                axpy(&mut qzz[(nx + i) * n + nx..(nx + i + 1) * n], bki, pb_row);
            }
        }
        let pk = ws.ric.pv[k];
        let (qx, qu) = ws.ric.qz[..n].split_at_mut(nx);
        axpy(qx, pk, a_row);
        axpy(qu, pk, b_row);
    }
    // Q_ux = Q_xuᵀ (the C_t part was symmetric already).
    for i in 0..nu {
        for j in 0..nx {
            qzz[(nx + i) * n + j] = qzz[j * n + nx + i];
        }
    }
}

/// Cost-to-go update with the gains of stage `t` (`K` rows zero on clamped controls):
/// `P = Q_xx + Kᵀ(Q_uu K + Q_ux) + Q_xu K`, `p = q_x + Kᵀ(Q_uu k + q_u) + Q_xu k`.
///
/// `exact_gain`: the free rows of `K` solve `Q_ff K_f = -Q_fx` with the unregularised `Q_uu`
/// (the other rows being zero), so `Kᵀ(Q_uu K + Q_ux) = K_fᵀ(Q_ff K_f + Q_fx) = 0` and
/// `P = Q_xx + Q_xu K` (up to rounding); otherwise (`Q_uu + μI` in the gains) the full formula.
/// Only rows of `K` that are not all zero enter `P`; its lower triangle is mirrored (`P` is
/// symmetric, and `add_cost_to_go` relies on it being so exactly). With `need_p == false`
/// (stage 0: nobody reads `P`) only `p` is updated.
#[inline(always)]
pub(crate) fn update_cost_to_go(ws: &mut Workspace, nx: usize, nu: usize, t: usize, exact_gain: bool, need_p: bool) {
    let n = nx + nu;
    let kk = &ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
    let k = &ws.ric.k[t * nu..(t + 1) * nu];
    let qzz = &ws.ric.qzz[..n * n];
    let qz = &ws.ric.qz[..n];
    let w = &mut ws.ric.w[..nu * nx];
    let wv = &mut ws.ric.wv[..nu];
    // Rows of K that are not all zero (the free controls).
    let rows = &mut ws.scratch.idx[..nu];
    let mut m = 0;
    for l in 0..nu {
        if kk[l * nx..(l + 1) * nx].iter().any(|&v| v != 0.0) {
            rows[m] = l;
            m += 1;
        }
    }
    // w = Q_uu k + q_u; W = Q_uu K + Q_ux on the non-zero rows (when needed).
    for i in 0..nu {
        let q_row = &qzz[(nx + i) * n..(nx + i + 1) * n];
        let mut s = qz[nx + i];
        for l in 0..nu {
            s += q_row[nx + l] * k[l];
        }
        wv[i] = s;
    }
    let pv = &mut ws.ric.pv[..nx];
    for i in 0..nx {
        let q_row = &qzz[i * n..(i + 1) * n];
        let mut s = qz[i];
        for l in 0..nu {
            s += kk[l * nx + i] * wv[l] + q_row[nx + l] * k[l];
        }
        pv[i] = s;
    }
    if !need_p {
        return;
    }
    let rows = &ws.scratch.idx[..m];
    if !exact_gain {
        for &i in rows {
            let q_row = &qzz[(nx + i) * n..(nx + i + 1) * n];
            let w_row = &mut w[i * nx..(i + 1) * nx];
            w_row.copy_from_slice(&q_row[..nx]);
            for &l in rows {
                axpy(w_row, q_row[nx + l], &kk[l * nx..(l + 1) * nx]);
            }
        }
    }
    let p = &mut ws.ric.p[..nx * nx];
    for i in 0..nx {
        let q_row = &qzz[i * n..(i + 1) * n];
        let p_row = &mut p[i * nx..(i + 1) * nx];
        p_row.copy_from_slice(&q_row[..nx]);
        for &l in rows {
            if !exact_gain {
                axpy(p_row, kk[l * nx + i], &w[l * nx..(l + 1) * nx]);
            }
            axpy(p_row, q_row[nx + l], &kk[l * nx..(l + 1) * nx]);
        }
    }
    for i in 0..nx {
        for j in 0..i {
            p[j * nx + i] = p[i * nx + j];
        }
    }
}

/// Whether the `n × n` stage cost Hessian `cm` is diagonal (every off-diagonal entry exactly 0).
#[inline(always)]
fn is_diagonal(cm: &[f64], n: usize) -> bool {
    (0..n).all(|i| (0..n).all(|j| i == j || cm[i * n + j] == 0.0))
}

/// Fill `ws.data.cdiag` (T): which stage cost Hessians of `p` are diagonal.
#[inline(always)]
fn load_cost_structure(ws: &mut Workspace, p: &ProblemRef<'_>, n: usize) {
    for t in 0..ws.horizon {
        ws.data.cdiag[t] = is_diagonal(&p.cm[t * n * n..(t + 1) * n * n], n);
    }
}

/// `(zᵀ C z, cᵀ z)` of one stage, with the diagonal shortcut when `diag` and `z` is finite:
/// then every skipped product is a `±0`, so the result is that of the dense sum to the bit.
#[inline(always)]
fn stage_cost_parts(cm: &[f64], cv: &[f64], z: &[f64], n: usize, diag: bool) -> (f64, f64) {
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
fn stage_gradient(g: &mut [f64], cm: &[f64], cv: &[f64], z: &[f64], n: usize, diag: bool) {
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
fn stage_z(z: &mut [f64], x: &[f64], u: &[f64], nx: usize, nu: usize, t: usize) {
    z[..nx].copy_from_slice(&x[t * nx..(t + 1) * nx]);
    z[nx..nx + nu].copy_from_slice(&u[t * nu..(t + 1) * nu]);
}

/// Roll the dynamics out from `x_init` with the controls in `ws.traj.u`, writing `ws.traj.x`; returns the
/// cost and its magnitude scale `Σ_t ½|z_tᵀC_t z_t| + |c_tᵀ z_t|` (for rounding tolerances).
#[inline(always)]
fn rollout_plain<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>) -> (f64, f64) {
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
/// (as [`rollout_plain`]).
#[inline(always)]
fn rollout_trial<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, alpha: f64) -> (f64, f64) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    ws.traj.xt[..nx].copy_from_slice(&p.x_init[..nx]);
    let mut j = 0.0;
    let mut sc = 0.0;
    for t in 0..tt {
        // Per-stage slices with compile-time lengths (no bounds checks in the loops).
        let dx = &mut ws.scratch.dx[..nx];
        let xt = &ws.traj.xt[t * nx..(t + 1) * nx];
        let x = &ws.traj.x[t * nx..(t + 1) * nx];
        for i in 0..nx {
            dx[i] = xt[i] - x[i];
        }
        let kk = &ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
        let u = &ws.traj.u[t * nu..(t + 1) * nu];
        let k = &ws.ric.k[t * nu..(t + 1) * nu];
        let lo = &ws.data.lo[t * nu..(t + 1) * nu];
        let hi = &ws.data.hi[t * nu..(t + 1) * nu];
        let ut = &mut ws.traj.ut[t * nu..(t + 1) * nu];
        for i in 0..nu {
            let row = &kk[i * nx..(i + 1) * nx];
            let mut v = u[i] + alpha * k[i];
            for jx in 0..nx {
                v += row[jx] * dx[jx];
            }
            ut[i] = v.max(lo[i]).min(hi[i]);
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

/// Linearise the dynamics along `ws.traj.x`, `ws.traj.u` (stages 0..T-2) into `ws.lin.a`, `ws.lin.b`.
#[inline(always)]
pub(crate) fn linearize_all<D: Dynamics>(d: &D, ws: &mut Workspace) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    for t in 0..tt.saturating_sub(1) {
        d.linearize(
            &ws.traj.x[t * nx..(t + 1) * nx],
            &ws.traj.u[t * nu..(t + 1) * nu],
            &mut ws.scratch.xn,
            &mut ws.lin.a[t * nx * nx..(t + 1) * nx * nx],
            &mut ws.lin.b[t * nx * nu..(t + 1) * nx * nu],
        );
    }
}

/// How a Riccati pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RiccatiOutcome {
    /// Gains in `ws.ric.k`, `ws.ric.kk`.
    Ok,
    /// Some `Q_uu + μ I` is not positive definite (more regularisation may help).
    NotPositiveDefinite,
    /// A stage's `Q`, gains or cost-to-go went non-finite (the Jacobians or weighted Hessian at
    /// the iterate are, or the products overflowed): no regularisation helps.
    NonFinite,
}

#[inline(always)]
fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The control-limited Riccati backward pass at the current iterate with `Q_uu + μ I`.
/// Fills `ws.ric.k`, `ws.ric.kk`.
///
/// `ddp`: the stage Hessian also gets `Σ_i p_i ∇²f_i(z_t)` with `p` the cost-to-go gradient of
/// stage `t + 1` (the second-order term of DDP, from the generated weighted Hessian).
#[inline(always)]
fn riccati<D: Dynamics>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, mu: f64, ddp: bool) -> RiccatiOutcome {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    for t in (0..tt).rev() {
        let cm = &p.cm[t * n * n..(t + 1) * n * n];
        let cv = &p.cv[t * n..(t + 1) * n];
        stage_z(&mut ws.scratch.z, &ws.traj.x, &ws.traj.u, nx, nu, t);
        ws.ric.qzz.copy_from_slice(cm);
        stage_gradient(&mut ws.ric.qz, cm, cv, &ws.scratch.z, n, ws.data.cdiag[t]);
        if t + 1 < tt {
            if ddp {
                d.weighted_hessian(&ws.traj.x[t * nx..(t + 1) * nx], &ws.traj.u[t * nu..(t + 1) * nu], &ws.ric.pv[..nx], &mut ws.adj.hess);
                for (q, h) in ws.ric.qzz[..n * n].iter_mut().zip(&ws.adj.hess[..n * n]) {
                    *q += h;
                }
            }
            add_cost_to_go(ws, nx, nu, t);
        }
        for i in 0..nu {
            for j in 0..nu {
                ws.ric.quu[i * nu + j] = ws.ric.qzz[(nx + i) * n + nx + j];
            }
            ws.ric.quu[i * nu + i] += mu;
            ws.ric.dlo[i] = ws.data.lo[t * nu + i] - ws.traj.u[t * nu + i];
            ws.ric.dhi[i] = ws.data.hi[t * nu + i] - ws.traj.u[t * nu + i];
        }
        let kt = &mut ws.ric.k[t * nu..(t + 1) * nu];
        if ws.scratch.qp.solve_dim(nu, &ws.ric.quu, &ws.ric.qz[nx..], &ws.ric.dlo, &ws.ric.dhi, kt).is_err() {
            return if all_finite(&ws.ric.quu[..nu * nu]) && all_finite(&ws.ric.qz[..n]) {
                RiccatiOutcome::NotPositiveDefinite
            } else {
                RiccatiOutcome::NonFinite
            };
        }
        // Feedback gains on the free controls: K_f = -Q_ff⁻¹ Q_fx; zero rows elsewhere.
        let kk = &mut ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
        kk.fill(0.0);
        let m = ws.scratch.qp.free_indices().len();
        if m > 0 {
            for a in 0..m {
                let i = ws.scratch.qp.free_indices()[a];
                for j in 0..nx {
                    ws.ric.rhs[a * nx + j] = -ws.ric.qzz[(nx + i) * n + j];
                }
            }
            cholesky_solve_multi(ws.scratch.qp.free_cholesky(), m, &mut ws.ric.rhs[..m * nx], nx);
            for a in 0..m {
                let i = ws.scratch.qp.free_indices()[a];
                kk[i * nx..(i + 1) * nx].copy_from_slice(&ws.ric.rhs[a * nx..(a + 1) * nx]);
            }
        }
        update_cost_to_go(ws, nx, nu, t, mu == 0.0, t > 0);
        // A non-finite P reaches p one stage earlier, so checking k and p catches it too.
        if !(all_finite(&ws.ric.k[t * nu..(t + 1) * nu]) && all_finite(&ws.ric.pv[..nx])) {
            return RiccatiOutcome::NonFinite;
        }
    }
    RiccatiOutcome::Ok
}

/// Whether this CPU runs the AVX2 build of the solver loops (detected once, cached by std).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Solve one problem; the solution goes to `x_out` (T×nx) and `u_out` (T×nu). With `trace`,
/// one [`IterationRecord`] per line-search outcome is appended to it (the results are the same
/// to the bit with or without).
///
/// On x86-64 with AVX2 the same code runs compiled for AVX2 (4-wide vectors in the axpys of the
/// Riccati sweep). Only element-wise loops vectorise (no reassociation, no FMA contraction), so
/// the result is the same to the bit as the baseline SSE2 build.
pub(crate) fn solve_one<D: Dynamics>(
    d: &D,
    opts: &SolverOptions,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    x_out: &mut [f64],
    u_out: &mut [f64],
    trace: Option<&mut Vec<IterationRecord>>,
) -> Stats {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is available on this CPU (checked just above).
        return unsafe { solve_one_avx2(d, opts, ws, p, x_out, u_out, trace) };
    }
    solve_one_impl(d, opts, ws, p, x_out, u_out, trace)
}

/// [`solve_one_impl`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn solve_one_avx2<D: Dynamics>(
    d: &D,
    opts: &SolverOptions,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    x_out: &mut [f64],
    u_out: &mut [f64],
    trace: Option<&mut Vec<IterationRecord>>,
) -> Stats {
    solve_one_impl(d, opts, ws, p, x_out, u_out, trace)
}

#[inline(always)]
fn solve_one_impl<D: Dynamics>(
    d: &D,
    opts: &SolverOptions,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    x_out: &mut [f64],
    u_out: &mut [f64],
    trace: Option<&mut Vec<IterationRecord>>,
) -> Stats {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let mut trace = trace;
    load_bounds(ws, p);
    load_cost_structure(ws, p, n);
    match p.u_init {
        Some(u0) => ws.traj.u.copy_from_slice(&u0[..tt * nu]),
        None => ws.traj.u.fill(0.0),
    }
    for i in 0..tt * nu {
        ws.traj.u[i] = ws.traj.u[i].max(ws.data.lo[i]).min(ws.data.hi[i]);
    }
    let (mut cost, mut scale) = rollout_plain(d, ws, p);
    if !(all_finite(&ws.traj.x[..tt * nx]) && cost.is_finite()) {
        // Nothing to iterate from: the initial rollout itself overflowed (or the model is
        // undefined along it). Reported as it is, never as converged.
        let what = if all_finite(&ws.traj.x[..tt * nx]) { NonFinite::Cost } else { NonFinite::Rollout };
        x_out.copy_from_slice(&ws.traj.x);
        u_out.copy_from_slice(&ws.traj.u);
        return Stats { cost, iterations: 0, converged: false, kkt_residual: f64::NAN, stop: StopReason::NonFinite(what) };
    }
    ws.ric.k.fill(0.0);
    ws.traj.xbest.copy_from_slice(&ws.traj.x);
    ws.traj.ubest.copy_from_slice(&ws.traj.u);
    let mut best_cost = cost;
    // Whether ws.traj.xbest/ubest hold the current iterate.
    let mut best_is_current = true;
    // DDP's second-order term in the Riccati pass: with `method: ddp`, or once iLQR has stalled
    // below the cost's resolution with a KKT tolerance to meet (a Gauss-Newton model whose
    // steps neither lower the cost nor the residual; Newton steps then finish the solve).
    let mut ddp = opts.method == Method::Ddp && d.has_curvature();
    let mut mu = 0.0f64;
    let mut iters = 0;
    let mut stop = StopReason::MaxIterations;
    // The KKT residual, and whether it and the Jacobians in ws.lin.a/ws.lin.b belong to the current
    // iterate (a step accepted on its residual comes with both).
    let mut kkt = f64::NAN;
    let mut kkt_current = false;
    let mut lin_current = false;
    // With a KKT tolerance, a step must lower the cost by more than rounding to be accepted on
    // the cost; steps the cost cannot tell from rounding are judged by the KKT residual. The
    // residual is then needed every iteration; otherwise only at the end.
    let kkt_mode = opts.tol.is_some();
    // Whether a step of norm `du` (taken at regularisation `mu`, now at controls `u`) means
    // convergence. Without a KKT tolerance: below `eps`. With one, the solver stops on
    // optimality: only a step that vanishes in floating point counts (a step below `eps` may
    // just be a badly scaled Newton step, and a regularised one is small whether or not the
    // iterate is optimal).
    let vanished = |du: f64, mu: f64, u: &[f64]| {
        if kkt_mode { mu == 0.0 && du <= 4.0 * f64::EPSILON * (1.0 + u.iter().map(|v| v * v).sum::<f64>().sqrt()) } else { du < opts.eps }
    };
    'outer: loop {
        // Every iteration starts at a new iterate: its Jacobians serve the Riccati pass and the
        // optimality test alike.
        if kkt_mode {
            if !lin_current {
                linearize_all(d, ws);
                lin_current = true;
            }
            if !kkt_current {
                kkt = kkt_residual(d, ws, p, true);
                kkt_current = true;
            }
            if opts.tol.is_some_and(|tol| kkt <= tol) {
                stop = StopReason::Tolerance;
                break;
            }
        }
        if iters >= opts.max_iters {
            break;
        }
        if !lin_current {
            linearize_all(d, ws);
            lin_current = true;
        }
        iters += 1;
        // Cost changes below this are rounding noise.
        let tol = 64.0 * f64::EPSILON * (n as f64) * scale.max(cost.abs());
        let accept_limit = if kkt_mode { cost - tol } else { cost + tol };
        loop {
            let outcome = riccati(d, ws, p, mu, ddp);
            if outcome == RiccatiOutcome::NonFinite {
                stop = StopReason::NonFinite(NonFinite::Riccati);
                break 'outer;
            }
            if outcome == RiccatiOutcome::NotPositiveDefinite {
                if !escalate(&mut mu, &mut ddp, kkt_mode && d.has_curvature(), opts) {
                    stop = StopReason::Stalled;
                    break 'outer;
                }
                continue;
            }
            let (chosen, first_du) = line_search(d, ws, p, opts, accept_limit, tol);
            // The step taken, if any: (cost, scale, ‖Δu‖, step size; NaN for a step chosen on the
            // KKT residual).
            let step = match chosen {
                Some((jb, sb, alpha)) => {
                    let du = du_norm(&ws.traj.ub, &ws.traj.u);
                    std::mem::swap(&mut ws.traj.x, &mut ws.traj.xb);
                    std::mem::swap(&mut ws.traj.u, &mut ws.traj.ub);
                    kkt_current = false;
                    lin_current = false;
                    Some((jb, sb, du, alpha))
                }
                None => {
                    if vanished(first_du, mu, &ws.traj.u) {
                        // The step is below the tolerance and no longer measurable in the cost.
                        stop = StopReason::SmallStep;
                        break 'outer;
                    }
                    match if kkt_mode { kkt_step(d, ws, p, opts, cost + tol, kkt) } else { None } {
                        Some((jt, st, r, du)) => {
                            // ws.traj.x/ws.traj.u hold the step, ws.lin.a/ws.lin.b its Jacobians, `r` its residual.
                            kkt = r;
                            kkt_current = true;
                            lin_current = true;
                            Some((jt, st, du, f64::NAN))
                        }
                        None => {
                            if kkt_mode {
                                // kkt_step linearised the trials: the Jacobians of the iterate back.
                                linearize_all(d, ws);
                            }
                            None
                        }
                    }
                }
            };
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(IterationRecord {
                    iteration: iters,
                    cost: step.map_or(cost, |(jt, ..)| jt),
                    step: step.map_or(first_du, |(_, _, du, _)| du),
                    alpha: step.map_or(f64::NAN, |(.., a)| a),
                    mu,
                    kkt: if kkt_mode && kkt_current { kkt } else { f64::NAN },
                    accepted: step.is_some(),
                    newton: ddp,
                });
            }
            match step {
                Some((jt, st, du, _)) => {
                    cost = jt;
                    scale = st;
                    if cost < best_cost {
                        best_cost = cost;
                        ws.traj.xbest.copy_from_slice(&ws.traj.x);
                        ws.traj.ubest.copy_from_slice(&ws.traj.u);
                        best_is_current = true;
                    } else {
                        best_is_current = false;
                    }
                    let done = vanished(du, mu, &ws.traj.u);
                    mu = opts.lower_regularisation(mu);
                    if done {
                        stop = StopReason::SmallStep;
                        break 'outer;
                    }
                    break;
                }
                None => {
                    if !escalate(&mut mu, &mut ddp, kkt_mode && d.has_curvature(), opts) {
                        stop = StopReason::Stalled;
                        break 'outer;
                    }
                }
            }
        }
    }
    let converged = stop.converged();
    if !converged && !best_is_current {
        ws.traj.x.copy_from_slice(&ws.traj.xbest);
        ws.traj.u.copy_from_slice(&ws.traj.ubest);
        cost = best_cost;
        kkt_current = false;
        lin_current = false;
    }
    if !kkt_current && opts.report_kkt {
        kkt = kkt_residual(d, ws, p, lin_current);
    }
    if (opts.report_kkt || kkt_mode) && !kkt.is_finite() && !stop.non_finite() {
        // The cost's gradient through the dynamics is not finite at the returned iterate.
        stop = StopReason::NonFinite(NonFinite::Residual);
    }
    let converged = stop.converged();
    x_out.copy_from_slice(&ws.traj.x);
    u_out.copy_from_slice(&ws.traj.u);
    Stats { cost, iterations: iters, converged, kkt_residual: kkt, stop }
}

/// The line search: a trial rollout per step size of `opts.line_search` (all of them, or up
/// to the first decrease with [`LineSearchRule::FirstDecrease`]), keeping the best that lowers
/// the cost to at most `accept_limit`, and preferring the earlier (larger) step when two are
/// equal within the rounding tolerance `tol`. Returns the chosen trial's `(cost, scale, α)`,
/// its states and controls left in `ws.traj.xb`/`ub`, and `‖Δu‖` of the first (full) step.
#[inline(always)]
fn line_search<D: Dynamics>(
    d: &D,
    ws: &mut Workspace,
    p: &ProblemRef<'_>,
    opts: &SolverOptions,
    accept_limit: f64,
    tol: f64,
) -> (Option<(f64, f64, f64)>, f64) {
    let mut chosen: Option<(f64, f64, f64)> = None;
    let mut first_du = f64::NAN;
    for (li, &alpha) in opts.line_search.iter().enumerate() {
        let (jt, st) = rollout_trial(d, ws, p, alpha);
        if li == 0 {
            first_du = du_norm(&ws.traj.ut, &ws.traj.u);
        }
        if !jt.is_finite() || jt > accept_limit {
            continue;
        }
        let better = match chosen {
            None => true,
            Some((jb, _, _)) => jt < jb - tol,
        };
        if better {
            chosen = Some((jt, st, alpha));
            std::mem::swap(&mut ws.traj.xt, &mut ws.traj.xb);
            std::mem::swap(&mut ws.traj.ut, &mut ws.traj.ub);
            if opts.line_search_rule == LineSearchRule::FirstDecrease {
                break;
            }
        }
    }
    (chosen, first_du)
}

/// After a Riccati pass that was not positive definite or a line search that found no step:
/// raise μ ([`SolverOptions::raise_regularisation`]). Past `reg_max`, switch once to DDP's
/// second-order pass at μ = 0 where `ddp_fallback` allows (a KKT tolerance and a model with
/// curvature); `false` when neither is left (the solve has stalled).
fn escalate(mu: &mut f64, ddp: &mut bool, ddp_fallback: bool, opts: &SolverOptions) -> bool {
    *mu = opts.raise_regularisation(*mu);
    if *mu <= opts.reg_max {
        return true;
    }
    if ddp_fallback && !*ddp {
        *ddp = true;
        *mu = 0.0;
        return true;
    }
    false
}

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
fn kkt_step<D: Dynamics>(
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
fn du_norm(a: &[f64], b: &[f64]) -> f64 {
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
            d.linearize(
                &ws.traj.x[t * nx..(t + 1) * nx],
                &ws.traj.u[t * nu..(t + 1) * nu],
                &mut ws.scratch.xn,
                &mut ws.lin.a[t * nx * nx..(t + 1) * nx * nx],
                &mut ws.lin.b[t * nx * nu..(t + 1) * nx * nu],
            );
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
