//! SIMD across problems: [`LANES`] problems of a batch solved in lock step, every array entry
//! a vector of one value per problem (structure of arrays), so every row operation of the
//! Riccati pass, the rollouts and the cost is full-width whatever the model's sizes, and the
//! index and loop bookkeeping is shared by the group.
//!
//! Each lane keeps the per-problem iteration of `ilqr.rs` (its own cost, regularisation `μ`,
//! line-search outcome, best iterate and stop reason): a round runs one Riccati pass and one
//! line search for every lane still iterating, and lanes that finished are carried along
//! without effect. Every entry sees the same operations in the same order as in the
//! per-problem solver, and the box QP (on its common course for all lanes at once, `boxqp.rs`,
//! else per lane) and the gain solves repeat the per-problem code's operations, so a lane's
//! solution is the per-problem solution (a test checks it to the bit). Terms the
//! per-problem code skips because a factor is exactly zero are skipped here only when they
//! are zero in every lane; otherwise the lane adds a `±0`.
//!
//! Used by [`Solver`](super::Solver) for batches of at least [`LANES`] problems with the
//! options this iteration covers ([`lanes_apply`]); the rest run per problem.

// Lane loops index several arrays by the same lane on purpose (one vector operation each).
#![allow(clippy::needless_range_loop)]

mod backward;
mod boxqp;
mod trials;

pub(crate) use backward::{backward_applies, backward_lanes};
pub(crate) use trials::{TrialLanes, lane_du_norm, rollout_trials, take_lane, trials_apply};

use super::aligned::Aligned;
use super::arith::{Arith, Separate, madd, nmadd};
use super::boxqp::BoxQp;
use boxqp::{LaneBoxQp, solve_interior};
use super::ilqr::escalate;
use super::isa::isa_builds;
use super::rollout::{clamp, off_diagonal_zeros};
use super::{Bound, CostStructure, Lanes, LineSearchRule, Method, NonFinite, ProblemRef, SolverOptions, Stats, StopReason};
use crate::model::Dynamics;

/// Problems per group (one AVX2 vector of `f64`, half an AVX-512 one).
pub(crate) const LANES: usize = 4;

/// One value per lane.
pub(crate) type V = [f64; LANES];

const ZERO: V = [0.0; LANES];

/// Whether the lanes path serves these options and model: the plain iteration (no KKT
/// tolerance, iLQR or a model without curvature). Everything else runs per problem.
pub(crate) fn lanes_apply<D: Dynamics>(d: &D, opts: &SolverOptions) -> bool {
    opts.tol.is_none() && (opts.method == Method::Ilqr || !d.has_curvature())
}

/// Whether batches may take the lanes path (`MPC_NO_LANES=1` keeps every problem on the
/// per-problem path, for comparisons).
fn enabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !*OFF.get_or_init(|| std::env::var_os("MPC_NO_LANES").is_some_and(|v| v == "1"))
}

/// How many of a batch's `bsz` problems go through lane groups under `policy` (see [`Lanes`]),
/// for the forward solve and the backward pass alike, in the current rayon pool: the first
/// ones; the rest are solved one by one after them. `Always`: all of them (the last group
/// partial) once the batch holds a whole group. `Auto`: as many whole groups as the pool's
/// threads share equally (a multiple of the thread count); the remaining problems, fewer than
/// `LANES` per thread, one by one. A group costs 3 to 4 one-problem solves, so a group more
/// on some threads would keep the others waiting about as long as the remainder takes shared
/// out, and longer where the groups are few (`bench/results/cpu-lanes-split-2026-12-05.md`).
pub(crate) fn lane_count(bsz: usize, policy: Lanes) -> usize {
    if bsz < LANES || !enabled() {
        return 0;
    }
    match policy {
        Lanes::Always => bsz,
        Lanes::Never => 0,
        Lanes::Auto => {
            let threads = rayon::current_num_threads().max(1);
            bsz / LANES / threads * threads * LANES
        }
    }
}

/// Scratch of one group, allocated once per (horizon, nx, nu) and reused.
#[derive(Clone, Debug)]
pub(crate) struct LaneWorkspace {
    horizon: usize,
    nx: usize,
    nu: usize,
    // Trajectories (T×nx, T×nu): iterate, trial, best trial of the line search, best iterate.
    x: Aligned<V>,
    u: Aligned<V>,
    xt: Aligned<V>,
    ut: Aligned<V>,
    xb: Aligned<V>,
    ub: Aligned<V>,
    xbest: Aligned<V>,
    ubest: Aligned<V>,
    // The problems: x_init (nx), C (T×n×n), c (T×n), bounds (T×nu); `cdiag[t]`: C_t diagonal in
    // every lane.
    x0: Aligned<V>,
    cm: Aligned<V>,
    cv: Aligned<V>,
    lo: Aligned<V>,
    hi: Aligned<V>,
    cdiag: Vec<bool>,
    // `compact[t]`: C_t diagonal with +0 off the diagonal in every lane, stored as its diagonal
    // in `cmd` (T×n) and not in `cm` (no n×n gather and copy per stage for the usual costs).
    compact: Vec<bool>,
    cmd: Aligned<V>,
    // Jacobians (T×nx×nx, T×nx×nu), gains (T×nu, T×nu×nx, Kᵀ T×nx×nu), cost-to-go and stage Q.
    a: Aligned<V>,
    b: Aligned<V>,
    k: Aligned<V>,
    kk: Aligned<V>,
    kkt: Aligned<V>,
    p: Aligned<V>,
    pv: Aligned<V>,
    qzz: Aligned<V>,
    qz: Aligned<V>,
    pa: Aligned<V>,
    pb: Aligned<V>,
    w: Aligned<V>,
    wv: Aligned<V>,
    qxut: Aligned<V>,
    acc: Aligned<V>,
    z: Aligned<V>,
    xn: Aligned<V>,
    // One lane's scalars: the box QP and its inputs, the gain right-hand sides, the model's
    // arguments and results when it has no lane code.
    qp: BoxQp,
    quu: Aligned<f64>,
    qu: Aligned<f64>,
    dlo: Aligned<f64>,
    dhi: Aligned<f64>,
    kt: Aligned<f64>,
    // Every lane's box QP where it takes its common course (`boxqp::solve_interior`).
    bqp: LaneBoxQp,
    // Per lane: its free face's `L D Lᵀ` factor spread over nu×nu, which controls are free (1/0).
    lf: Aligned<V>,
    free: Aligned<V>,
    sx: Aligned<f64>,
    su: Aligned<f64>,
    sxn: Aligned<f64>,
    sa: Aligned<f64>,
    sb: Aligned<f64>,
    // One lane's stage points z and adjoints d of every stage (the backward pass's outputs).
    sz: Aligned<f64>,
    sd: Aligned<f64>,
    // One lane's `dL/dC_t` block before a streaming write (n×n).
    sg: Aligned<f64>,
}

impl LaneWorkspace {
    /// Scratch for groups of problems of horizon `horizon` with `nx` states and `nu` controls.
    pub(crate) fn new(horizon: usize, nx: usize, nu: usize) -> Self {
        let (t, n) = (horizon, nx + nu);
        let v = |len: usize| Aligned::new(len, ZERO);
        let s = |len: usize| Aligned::new(len, 0.0);
        Self {
            horizon,
            nx,
            nu,
            x: v(t * nx),
            u: v(t * nu),
            xt: v(t * nx),
            ut: v(t * nu),
            xb: v(t * nx),
            ub: v(t * nu),
            xbest: v(t * nx),
            ubest: v(t * nu),
            x0: v(nx),
            cm: v(t * n * n),
            cv: v(t * n),
            lo: v(t * nu),
            hi: v(t * nu),
            cdiag: vec![false; t],
            compact: vec![false; t],
            cmd: v(t * n),
            a: v(t * nx * nx),
            b: v(t * nx * nu),
            k: v(t * nu),
            kk: v(t * nu * nx),
            kkt: v(t * nx * nu),
            p: v(nx * nx),
            pv: v(nx),
            qzz: v(n * n),
            qz: v(n),
            pa: v(nx * nx),
            pb: v(nx * nu),
            w: v(nu * nx),
            wv: v(nu),
            qxut: v(nu * nx),
            acc: v(n),
            z: v(n),
            xn: v(nx),
            qp: BoxQp::new(nu),
            quu: s(nu * nu),
            qu: s(nu),
            dlo: s(nu),
            dhi: s(nu),
            kt: s(nu),
            bqp: LaneBoxQp::new(nu),
            lf: v(nu * nu),
            free: v(nu),
            sx: s(nx),
            su: s(nu),
            sxn: s(nx),
            sa: s(nx * nx),
            sb: s(nx * nu),
            sz: s(t * n),
            sd: s(t * n),
            sg: s(n * n),
        }
    }

    /// Whether this workspace fits problems of these sizes.
    pub(crate) fn fits(&self, horizon: usize, nx: usize, nu: usize) -> bool {
        self.horizon == horizon && self.nx == nx && self.nu == nu
    }
}

// ---------------------------------------------------------------------------------------------
// Lane-wise kernels. Each loop over `LANES` is one vector operation; no reassociation, and
// multiply-adds fused only where `M: Arith` says, at the operations the per-problem code fuses:
// the per-lane result is that of the scalar expression.

/// `y += a x` entry-wise over rows of lanes, the multiply-adds rounded as `M` says.
#[inline(always)]
fn axpy<M: Arith>(y: &mut [V], a: &V, x: &[V]) {
    let a = *a;
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = add_mul::<M>(*yi, a, *xi);
    }
}

/// `y + a x` per lane (whole vectors in and out: one vector multiply and add, or one FMA).
#[inline(always)]
fn add_mul<M: Arith>(y: V, a: V, x: V) -> V {
    let mut r = y;
    for l in 0..LANES {
        r[l] = madd::<M>(a[l], x[l], y[l]);
    }
    r
}

/// Solve `L D Lᵀ X = B` in place for every lane (the factor `n × n` as `linalg::ldlt` lays it out, `B` `n × m`, row-major), the
/// operations of `linalg::ldlt_solve_multi` per lane. Each row of `B` is accumulated in a
/// stack array (where `m ≤ 16`: registers once inlined) and stored once.
#[inline(always)]
fn lane_ldlt_solve<M: Arith>(lf: &[V], n: usize, b: &mut [V], m: usize) {
    if m <= 16 {
        lane_ldlt_solve_cols::<M>(lf, n, b, m, 0..m, &mut [ZERO; 16]);
    } else {
        let mut acc = [ZERO; 32];
        for c0 in (0..m).step_by(32) {
            lane_ldlt_solve_cols::<M>(lf, n, b, m, c0..m.min(c0 + 32), &mut acc);
        }
    }
}

/// [`lane_ldlt_solve`] on the columns `cols` of `B` with the row accumulator `acc`.
#[inline(always)]
fn lane_ldlt_solve_cols<M: Arith>(lf: &[V], n: usize, b: &mut [V], m: usize, cols: std::ops::Range<usize>, acc: &mut [V]) {
    let b = &mut b[..n * m];
    let acc = &mut acc[..cols.len()];
    let row = |i: usize| i * m + cols.start..i * m + cols.end;
    for i in 0..n {
        acc.copy_from_slice(&b[row(i)]);
        for k in 0..i {
            let lik = lf[i * n + k];
            for (x, y) in acc.iter_mut().zip(&b[row(k)]) {
                *x = sub_mul::<M>(*x, lik, *y);
            }
        }
        b[row(i)].copy_from_slice(acc);
    }
    for i in (0..n).rev() {
        let r = recip(lf[i * n + i]);
        for (x, y) in acc.iter_mut().zip(&b[row(i)]) {
            *x = mul(*y, r);
        }
        for k in i + 1..n {
            let lki = lf[k * n + i];
            for (x, y) in acc.iter_mut().zip(&b[row(k)]) {
                *x = sub_mul::<M>(*x, lki, *y);
            }
        }
        b[row(i)].copy_from_slice(acc);
    }
}

/// `y − a x` per lane, rounded as `M` says.
#[inline(always)]
fn sub_mul<M: Arith>(y: V, a: V, x: V) -> V {
    let mut r = y;
    for l in 0..LANES {
        r[l] = nmadd::<M>(a[l], x[l], y[l]);
    }
    r
}

/// `1 / d` per lane.
#[inline(always)]
fn recip(d: V) -> V {
    let mut r = d;
    for l in 0..LANES {
        r[l] = 1.0 / d[l];
    }
    r
}

/// `x r` per lane.
#[inline(always)]
fn mul(x: V, r: V) -> V {
    let mut y = x;
    for l in 0..LANES {
        y[l] = x[l] * r[l];
    }
    y
}

/// Whether some lane of `v` is not exactly zero.
#[inline(always)]
fn any_nonzero(v: &V) -> bool {
    v.iter().fold(false, |a, &x| a | (x != 0.0))
}

/// Per lane: every entry of `v` finite (`x - x == 0` fails for ±inf and NaN).
#[inline(always)]
#[allow(clippy::eq_op)]
fn finite_lanes(v: &[V]) -> [bool; LANES] {
    let mut ok = [true; LANES];
    for e in v {
        for l in 0..LANES {
            ok[l] &= e[l] - e[l] == 0.0;
        }
    }
    ok
}

/// `dst[e][l] = src[e][l]` for the lanes with `mask[l]`.
#[inline(always)]
fn copy_lanes(dst: &mut [V], src: &[V], mask: &[bool; LANES]) {
    // Usually every lane or none (a group whose problems move together): a copy or nothing.
    if mask.iter().all(|&m| m) {
        let k = dst.len().min(src.len());
        dst[..k].copy_from_slice(&src[..k]);
        return;
    }
    if !mask.iter().any(|&m| m) {
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        for l in 0..LANES {
            d[l] = if mask[l] { s[l] } else { d[l] };
        }
    }
}

/// Per lane `‖a − b‖₂`, summed in index order as `kkt::du_norm`.
#[inline(always)]
fn du_norm(a: &[V], b: &[V]) -> V {
    let mut s = ZERO;
    for (x, y) in a.iter().zip(b) {
        for l in 0..LANES {
            s[l] += (x[l] - y[l]) * (x[l] - y[l]);
        }
    }
    s.map(f64::sqrt)
}

/// Stage `t`'s `z = [x; u]`.
#[inline(always)]
fn stage_z(z: &mut [V], x: &[V], u: &[V], nx: usize, nu: usize, t: usize) {
    z[..nx].copy_from_slice(&x[t * nx..(t + 1) * nx]);
    z[nx..nx + nu].copy_from_slice(&u[t * nu..(t + 1) * nu]);
}

/// One stage's cost Hessian as a group stores it: its diagonal (n) where it is compact (see
/// `LaneWorkspace::compact`), else the dense block (n×n).
#[derive(Clone, Copy)]
enum Hess<'a> {
    Diag(&'a [V]),
    Dense(&'a [V]),
}

impl Hess<'_> {
    /// Stage `t`'s Hessian of a group.
    #[inline(always)]
    fn of<'a>(compact: &[bool], cmd: &'a [V], cm: &'a [V], t: usize, n: usize) -> Hess<'a> {
        if compact[t] { Hess::Diag(&cmd[t * n..(t + 1) * n]) } else { Hess::Dense(&cm[t * n * n..(t + 1) * n * n]) }
    }

    /// Entry `(i, i)`.
    #[inline(always)]
    fn diag(&self, i: usize, n: usize) -> V {
        match self {
            Hess::Diag(d) => d[i],
            Hess::Dense(c) => c[i * n + i],
        }
    }

    /// Columns `c0..c0 + dst.len()` of row `i` into `dst`: a copy, or `+0` off the diagonal (as
    /// [`Hess::write_dense`] would store them).
    #[inline(always)]
    fn row_into(&self, dst: &mut [V], i: usize, c0: usize, n: usize) {
        match self {
            Hess::Dense(c) => dst.copy_from_slice(&c[i * n + c0..i * n + c0 + dst.len()]),
            Hess::Diag(d) => {
                // A select per entry, not a store at a run-time index (which would keep the
                // accumulator out of registers).
                let di = d[i];
                for (j, e) in dst.iter_mut().enumerate() {
                    *e = if c0 + j == i { di } else { ZERO };
                }
            }
        }
    }

    /// The dense block into `q` (n×n): a copy, or `+0` off the diagonal (the stored entries).
    #[inline(always)]
    fn write_dense(&self, q: &mut [V], n: usize) {
        match self {
            Hess::Dense(c) => q[..n * n].copy_from_slice(c),
            Hess::Diag(d) => {
                q[..n * n].fill(ZERO);
                for i in 0..n {
                    q[i * n + i] = d[i];
                }
            }
        }
    }
}

/// Per lane `Σ_j C_ij z_j` added to `s`, `j` ascending, as the dense loops of `rollout.rs`
/// (with a compact `C` the zero entries are multiplied too: `0 · ∞` is NaN there as well).
#[inline(always)]
fn add_row(s: &mut V, h: Hess<'_>, z: &[V], i: usize, n: usize) {
    match h {
        Hess::Dense(cm) => {
            for (cij, zj) in cm[i * n..i * n + n].iter().zip(&z[..n]) {
                for l in 0..LANES {
                    s[l] += cij[l] * zj[l];
                }
            }
        }
        Hess::Diag(d) => {
            for (j, zj) in z[..n].iter().enumerate() {
                let cij = if i == j { d[i] } else { ZERO };
                for l in 0..LANES {
                    s[l] += cij[l] * zj[l];
                }
            }
        }
    }
}

/// `(zᵀ C z, cᵀ z)` per lane, as `rollout::stage_cost_parts` (the diagonal shortcut when `C` is
/// diagonal in every lane and `z` finite in every lane; both forms give the same bits there).
#[inline(always)]
fn stage_cost_parts(h: Hess<'_>, cv: &[V], z: &[V], n: usize, diag: bool) -> (V, V) {
    let z = &z[..n];
    let mut q = ZERO;
    let mut lin = ZERO;
    if diag && finite_lanes(z).iter().all(|&f| f) {
        for i in 0..n {
            let (zi, ci, vi) = (&z[i], h.diag(i, n), &cv[i]);
            for l in 0..LANES {
                q[l] += zi[l] * (ci[l] * zi[l]);
                lin[l] += zi[l] * vi[l];
            }
        }
    } else {
        for i in 0..n {
            let mut r = ZERO;
            add_row(&mut r, h, z, i, n);
            let (zi, vi) = (&z[i], &cv[i]);
            for l in 0..LANES {
                q[l] += zi[l] * r[l];
                lin[l] += zi[l] * vi[l];
            }
        }
    }
    (q, lin)
}

/// `g = C z + c` per lane, as `rollout::stage_gradient`.
#[inline(always)]
fn stage_gradient(g: &mut [V], h: Hess<'_>, cv: &[V], z: &[V], n: usize, diag: bool) {
    if diag && finite_lanes(&z[..n]).iter().all(|&f| f) {
        for i in 0..n {
            let ci = h.diag(i, n);
            for l in 0..LANES {
                g[i][l] = cv[i][l] + ci[l] * z[i][l];
            }
        }
    } else {
        for i in 0..n {
            let mut s = cv[i];
            add_row(&mut s, h, z, i, n);
            g[i] = s;
        }
    }
}

/// The dynamics' step for every lane, stage `t` of `x`, `u` into stage `t + 1` of `x`.
#[inline(always)]
fn step_lanes<D: Dynamics>(d: &D, ws: &mut LaneWorkspace, trial: bool, t: usize) {
    let (nx, nu) = (d.nx(), d.nu());
    let (x, u) = if trial { (&mut ws.xt, &ws.ut) } else { (&mut ws.x, &ws.u) };
    let (cur, next) = x.split_at_mut((t + 1) * nx);
    let (xc, uc, xn) = (&cur[t * nx..], &u[t * nu..(t + 1) * nu], &mut next[..nx]);
    if d.step_lanes(xc, uc, xn) {
        return;
    }
    for l in 0..LANES {
        for i in 0..nx {
            ws.sx[i] = xc[i][l];
        }
        for i in 0..nu {
            ws.su[i] = uc[i][l];
        }
        d.step(&ws.sx, &ws.su, &mut ws.sxn);
        for i in 0..nx {
            xn[i][l] = ws.sxn[i];
        }
    }
}

/// Jacobians along the iterate (stages 0..T-2), every lane.
#[inline(always)]
fn linearize_all<D: Dynamics>(d: &D, ws: &mut LaneWorkspace) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    for t in 0..tt.saturating_sub(1) {
        let (xc, uc) = (&ws.x[t * nx..(t + 1) * nx], &ws.u[t * nu..(t + 1) * nu]);
        let (at, bt) = (&mut ws.a[t * nx * nx..(t + 1) * nx * nx], &mut ws.b[t * nx * nu..(t + 1) * nx * nu]);
        if d.linearize_lanes(xc, uc, &mut ws.xn, at, bt) {
            continue;
        }
        for l in 0..LANES {
            for i in 0..nx {
                ws.sx[i] = ws.x[t * nx + i][l];
            }
            for i in 0..nu {
                ws.su[i] = ws.u[t * nu + i][l];
            }
            d.linearize(&ws.sx, &ws.su, &mut ws.sxn, &mut ws.sa, &mut ws.sb);
            for (dst, &v) in ws.a[t * nx * nx..(t + 1) * nx * nx].iter_mut().zip(&ws.sa) {
                dst[l] = v;
            }
            for (dst, &v) in ws.b[t * nx * nu..(t + 1) * nx * nu].iter_mut().zip(&ws.sb) {
                dst[l] = v;
            }
        }
    }
}

/// Accumulate one stage's cost into `(j, sc)` as the per-problem rollouts do.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add_stage_cost(ws: &LaneWorkspace, nx: usize, nu: usize, trial: bool, t: usize, z: &mut [V], j: &mut V, sc: &mut V) {
    let n = nx + nu;
    let (x, u) = if trial { (&ws.xt, &ws.ut) } else { (&ws.x, &ws.u) };
    stage_z(z, x, u, nx, nu, t);
    let (q, lin) = stage_cost_parts(Hess::of(&ws.compact, &ws.cmd, &ws.cm, t, n), &ws.cv[t * n..(t + 1) * n], z, n, ws.cdiag[t]);
    for l in 0..LANES {
        j[l] += 0.5 * q[l] + lin[l];
        sc[l] += 0.5 * q[l].abs() + lin[l].abs();
    }
}

/// Open-loop rollout from `x_init` with `u` into `x`: per lane cost and scale.
#[inline(always)]
fn rollout_plain<D: Dynamics>(d: &D, ws: &mut LaneWorkspace) -> (V, V) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    ws.x[..nx].copy_from_slice(&ws.x0);
    let (mut j, mut sc) = (ZERO, ZERO);
    let mut z = std::mem::take(&mut ws.z);
    for t in 0..tt {
        // The next state first: the rollout waits on its chain, and the stage cost fills it.
        if t + 1 < tt {
            step_lanes(d, ws, false, t);
        }
        add_stage_cost(ws, nx, nu, false, t, &mut z, &mut j, &mut sc);
    }
    ws.z = z;
    (j, sc)
}

/// Closed-loop trial of step size `alpha` into `xt`, `ut`: `clamp(u + α k + K (x̂ − x))`, each
/// sum in the order of `rollout::rollout_trial`.
#[inline(always)]
fn rollout_trial<D: Dynamics>(d: &D, ws: &mut LaneWorkspace, alpha: f64) -> (V, V) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    ws.xt[..nx].copy_from_slice(&ws.x0);
    let (mut j, mut sc) = (ZERO, ZERO);
    let mut z = std::mem::take(&mut ws.z);
    let mut stack = [ZERO; 16];
    let mut heap = if nu > 16 { std::mem::take(&mut ws.acc) } else { Default::default() };
    let v: &mut [V] = if nu <= 16 { &mut stack } else { &mut heap };
    for t in 0..tt {
        {
            let v = &mut v[..nu];
            let xt = &ws.xt[t * nx..(t + 1) * nx];
            let x = &ws.x[t * nx..(t + 1) * nx];
            let kkt = &ws.kkt[t * nx * nu..(t + 1) * nx * nu];
            let u = &ws.u[t * nu..(t + 1) * nu];
            let k = &ws.k[t * nu..(t + 1) * nu];
            for i in 0..nu {
                for l in 0..LANES {
                    v[i][l] = u[i][l] + alpha * k[i][l];
                }
            }
            for jx in 0..nx {
                let mut dxj = ZERO;
                for l in 0..LANES {
                    dxj[l] = xt[jx][l] - x[jx][l];
                }
                axpy::<Separate>(v, &dxj, &kkt[jx * nu..(jx + 1) * nu]);
            }
            let (lo, hi) = (&ws.lo[t * nu..(t + 1) * nu], &ws.hi[t * nu..(t + 1) * nu]);
            let ut = &mut ws.ut[t * nu..(t + 1) * nu];
            for i in 0..nu {
                ut[i] = std::array::from_fn(|l| clamp(v[i][l], lo[i][l], hi[i][l]));
            }
        }
        // The next state first: the rollout waits on its chain, and the stage cost fills it.
        if t + 1 < tt {
            step_lanes(d, ws, true, t);
        }
        add_stage_cost(ws, nx, nu, true, t, &mut z, &mut j, &mut sc);
    }
    ws.z = z;
    if nu > 16 {
        ws.acc = heap;
    }
    (j, sc)
}

// ---------------------------------------------------------------------------------------------
// The Riccati pass.

/// `Q = H + Fᵀ P F`, `q += Fᵀ p` for stage `t` (`H` the stage's cost Hessian, read as the row
/// accumulators start: `Q` is not written densely first), as `riccati::add_cost_to_go_onto`
/// (rows and columns accumulated in `acc`; terms with a factor of `A` or `B` zero in every lane
/// skipped). Every entry of `Q` is written (`Q_ux` as `Q_xuᵀ`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add_cost_to_go<M: Arith>(
    h: Hess<'_>,
    a: &[V],
    b: &[V],
    p: &[V],
    pv: &[V],
    pa: &mut [V],
    pb: &mut [V],
    qzz: &mut [V],
    qz: &mut [V],
    acc: &mut [V],
    nx: usize,
    nu: usize,
) {
    let n = nx + nu;
    let acc = &mut acc[..n];
    // [PA PB] column by column: column j = Σ_m F[m][j] P_m over the m where F[m][j] is non-zero
    // in some lane (P symmetric: its row m is its column m), so a sparse Jacobian costs its
    // non-zeros only. Entry (k, j) is Σ_m P[k][m] F[m][j] in m order as in the per-problem pass,
    // less terms that are `±0` in every lane (which leave the sum unchanged).
    for j in 0..n {
        let ak = &mut acc[..nx];
        ak.fill(ZERO);
        for m in 0..nx {
            let fmj = if j < nx { &a[m * nx + j] } else { &b[m * nu + j - nx] };
            if any_nonzero(fmj) {
                axpy::<M>(ak, fmj, &p[m * nx..(m + 1) * nx]);
            }
        }
        for (k, v) in ak.iter().enumerate() {
            if j < nx {
                pa[k * nx + j] = *v;
            } else {
                pb[k * nu + j - nx] = *v;
            }
        }
    }
    for i in 0..nx {
        h.row_into(acc, i, 0, n);
        let (ax, au) = acc.split_at_mut(nx);
        for k in 0..nx {
            let aki = &a[k * nx + i];
            if any_nonzero(aki) {
                axpy::<M>(ax, aki, &pa[k * nx..(k + 1) * nx]);
                axpy::<M>(au, aki, &pb[k * nu..(k + 1) * nu]);
            }
        }
        qzz[i * n..(i + 1) * n].copy_from_slice(acc);
    }
    for i in 0..nu {
        let au = &mut acc[..nu];
        h.row_into(au, nx + i, nx, n);
        for k in 0..nx {
            let bki = &b[k * nu + i];
            if any_nonzero(bki) {
                axpy::<M>(au, bki, &pb[k * nu..(k + 1) * nu]);
            }
        }
        qzz[(nx + i) * n + nx..(nx + i + 1) * n].copy_from_slice(au);
    }
    let (qx, qu) = qz[..n].split_at_mut(nx);
    for k in 0..nx {
        axpy::<M>(qx, &pv[k], &a[k * nx..(k + 1) * nx]);
        axpy::<M>(qu, &pv[k], &b[k * nu..(k + 1) * nu]);
    }
    for i in 0..nu {
        for j in 0..nx {
            qzz[(nx + i) * n + j] = qzz[j * n + nx + i];
        }
    }
}

/// The cost-to-go update of stage `t`, as `riccati::update_cost_to_go`, with `exact[l]` (the
/// lane's `μ` is zero) choosing per lane whether `Kᵀ W` enters `P`. Rows of `K` that are zero
/// in a lane enter with zero factors (the per-problem code skips them).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn update_cost_to_go<M: Arith>(
    kk: &[V],
    k: &[V],
    qzz: &[V],
    qz: &[V],
    w: &mut [V],
    wv: &mut [V],
    qxut: &mut [V],
    pv: &mut [V],
    p: &mut [V],
    acc: &mut [V],
    nx: usize,
    nu: usize,
    exact: &[bool; LANES],
    need_p: bool,
    mirrored: bool,
) {
    let n = nx + nu;
    for i in 0..nu {
        let q_row = &qzz[(nx + i) * n..(nx + i + 1) * n];
        let mut s = qz[nx + i];
        for l in 0..nu {
            for j in 0..LANES {
                s[j] += q_row[nx + l][j] * k[l][j];
            }
        }
        wv[i] = s;
    }
    for l in 0..nu {
        if mirrored {
            qxut[l * nx..(l + 1) * nx].copy_from_slice(&qzz[(nx + l) * n..(nx + l) * n + nx]);
        } else {
            for i in 0..nx {
                qxut[l * nx + i] = qzz[i * n + nx + l];
            }
        }
    }
    let acc = &mut acc[..nx];
    acc.copy_from_slice(&qz[..nx]);
    for l in 0..nu {
        let (kr, qr, wl, kl) = (&kk[l * nx..(l + 1) * nx], &qxut[l * nx..(l + 1) * nx], &wv[l], &k[l]);
        for i in 0..nx {
            for j in 0..LANES {
                acc[i][j] += kr[i][j] * wl[j] + qr[i][j] * kl[j];
            }
        }
    }
    pv[..nx].copy_from_slice(acc);
    if !need_p {
        return;
    }
    let all_exact = exact.iter().all(|&e| e);
    if !all_exact {
        for i in 0..nu {
            let q_row = &qzz[(nx + i) * n..(nx + i + 1) * n];
            let w_row = &mut w[i * nx..(i + 1) * nx];
            w_row.copy_from_slice(&q_row[..nx]);
            for l in 0..nu {
                axpy::<M>(w_row, &q_row[nx + l], &kk[l * nx..(l + 1) * nx]);
            }
        }
    }
    for i in 0..nx {
        let q_row = &qzz[i * n..(i + 1) * n];
        acc.copy_from_slice(&q_row[..nx]);
        for l in 0..nu {
            if !all_exact {
                let (kli, w_row) = (&kk[l * nx + i], &w[l * nx..(l + 1) * nx]);
                for (y, x) in acc.iter_mut().zip(w_row) {
                    for j in 0..LANES {
                        let s = madd::<M>(kli[j], x[j], y[j]);
                        y[j] = if exact[j] { y[j] } else { s };
                    }
                }
            }
            axpy::<M>(acc, &qxut[l * nx + i], &kk[l * nx..(l + 1) * nx]);
        }
        p[i * nx..(i + 1) * nx].copy_from_slice(acc);
    }
    for i in 1..nx {
        for j in 0..i {
            p[j * nx + i] = p[i * nx + j];
        }
    }
}

/// How one lane's Riccati pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    NotPositiveDefinite,
    NonFinite,
}

/// The control-limited Riccati pass of every lane in `on` with its `Q_uu + μ_l I`: gains in
/// `k`, `kk`, `kkt`. A lane whose pass fails stops taking part (its later stages are not used).
#[inline(always)]
fn riccati<M: Arith>(ws: &mut LaneWorkspace, nx: usize, nu: usize, mu: &V, on: &[bool; LANES]) -> [Outcome; LANES] {
    let tt = ws.horizon;
    let n = nx + nu;
    let mut out = [Outcome::Ok; LANES];
    let mut live = *on;
    let exact: [bool; LANES] = std::array::from_fn(|l| mu[l] == 0.0);
    let mut z = std::mem::take(&mut ws.z);
    // The row accumulator on the stack where it fits (the sizes being constants after
    // inlining, it can live in vector registers), else the workspace's.
    let mut stack = [ZERO; 16];
    let mut heap = if n > 16 { std::mem::take(&mut ws.acc) } else { Default::default() };
    let acc: &mut [V] = if n <= 16 { &mut stack } else { &mut heap };
    for t in (0..tt).rev() {
        stage_z(&mut z, &ws.x, &ws.u, nx, nu, t);
        let h = Hess::of(&ws.compact, &ws.cmd, &ws.cm, t, n);
        stage_gradient(&mut ws.qz, h, &ws.cv[t * n..(t + 1) * n], &z, n, ws.cdiag[t]);
        if t + 1 >= tt {
            h.write_dense(&mut ws.qzz, n);
        } else {
            add_cost_to_go::<M>(
                h,
                &ws.a[t * nx * nx..(t + 1) * nx * nx],
                &ws.b[t * nx * nu..(t + 1) * nx * nu],
                &ws.p,
                &ws.pv,
                &mut ws.pa,
                &mut ws.pb,
                &mut ws.qzz,
                &mut ws.qz,
                acc,
                nx,
                nu,
            );
        }
        let kk = &mut ws.kk[t * nu * nx..(t + 1) * nu * nx];
        // Identity factors and no free control until a lane's box QP says otherwise.
        ws.lf.fill(ZERO);
        for i in 0..nu {
            ws.lf[i * nu + i] = [1.0; LANES];
        }
        ws.free.fill(ZERO);
        // Every lane's box QP at once where it takes its common course, the others one by one.
        let bq = &mut ws.bqp;
        for i in 0..nu {
            for j in 0..nu {
                bq.q[i * nu + j] = ws.qzz[(nx + i) * n + nx + j];
            }
            bq.q[i * nu + i] = std::array::from_fn(|l| bq.q[i * nu + i][l] + mu[l]);
            bq.c[i] = ws.qz[nx + i];
            bq.lo[i] = std::array::from_fn(|l| ws.lo[t * nu + i][l] - ws.u[t * nu + i][l]);
            bq.hi[i] = std::array::from_fn(|l| ws.hi[t * nu + i][l] - ws.u[t * nu + i][l]);
        }
        let interior = solve_interior(bq, nu, &live);
        if interior == [true; LANES] {
            // Every lane (the usual case): whole vectors, which the gain solve's vector loads
            // read back without waiting (lane-by-lane element stores would make them wait).
            ws.k[t * nu..(t + 1) * nu].copy_from_slice(&bq.x[..nu]);
            ws.free.fill([1.0; LANES]);
            ws.lf[..nu * nu].copy_from_slice(&bq.chol[..nu * nu]);
        } else {
            for l in (0..LANES).filter(|&l| interior[l]) {
                for i in 0..nu {
                    ws.k[t * nu + i][l] = bq.x[i][l];
                    ws.free[i][l] = 1.0;
                }
                for (dst, src) in ws.lf[..nu * nu].iter_mut().zip(&bq.chol) {
                    dst[l] = src[l];
                }
            }
        }
        for l in 0..LANES {
            if !live[l] || interior[l] {
                continue;
            }
            for i in 0..nu {
                for j in 0..nu {
                    ws.quu[i * nu + j] = ws.qzz[(nx + i) * n + nx + j][l];
                }
                ws.quu[i * nu + i] += mu[l];
                ws.qu[i] = ws.qz[nx + i][l];
                ws.dlo[i] = ws.lo[t * nu + i][l] - ws.u[t * nu + i][l];
                ws.dhi[i] = ws.hi[t * nu + i][l] - ws.u[t * nu + i][l];
                ws.kt[i] = ws.k[t * nu + i][l];
            }
            let solved = ws.qp.solve_dim(nu, &ws.quu, &ws.qu, &ws.dlo, &ws.dhi, &mut ws.kt).is_ok();
            // Written back either way: a failed solve leaves its projected start in `k`, the
            // warm start of the next pass, as the per-problem solver does.
            for i in 0..nu {
                ws.k[t * nu + i][l] = ws.kt[i];
            }
            if !solved {
                let finite = ws.quu.iter().all(|v| v.is_finite()) && ws.qz[..n].iter().all(|v| v[l].is_finite());
                out[l] = if finite { Outcome::NotPositiveDefinite } else { Outcome::NonFinite };
                live[l] = false;
                continue;
            }
            // The free face's `L D Lᵀ` factor, spread over the lane's full nu×nu factor.
            let (free, chol) = (ws.qp.free_indices(), ws.qp.free_factor());
            let m = free.len();
            for a in 0..m {
                ws.free[free[a]][l] = 1.0;
                for b in 0..=a {
                    ws.lf[free[a] * nu + free[b]][l] = chol[a * m + b];
                }
            }
        }
        if !live.iter().any(|&v| v) {
            break;
        }
        if t == 0 {
            // Only `k_0`, as the per-problem pass (`riccati::riccati`): `K_0` multiplies a zero
            // state deviation, and nobody reads `P_0`, `p_0`.
            ws.kk[..nu * nx].fill(ZERO);
            ws.kkt[..nx * nu].fill(ZERO);
            let fk = finite_lanes(&ws.k[..nu]);
            for l in 0..LANES {
                if live[l] && !fk[l] {
                    out[l] = Outcome::NonFinite;
                    live[l] = false;
                }
            }
            break;
        }
        // Feedback gains on the free controls, K_f = -Q_ff⁻¹ Q_fx, zero rows elsewhere: all lanes
        // at once with each lane's factor spread over nu×nu (identity on its clamped controls,
        // whose right-hand sides are zero). Every entry of a free row sees the per-problem
        // solve's operations in its order, plus `0·0` terms from the clamped ones.
        for i in 0..nu {
            let (f, q_row) = (ws.free[i], &ws.qzz[(nx + i) * n..(nx + i) * n + nx]);
            for (kv, qv) in kk[i * nx..(i + 1) * nx].iter_mut().zip(q_row) {
                for l in 0..LANES {
                    kv[l] = if f[l] != 0.0 { -qv[l] } else { 0.0 };
                }
            }
        }
        lane_ldlt_solve::<M>(&ws.lf, nu, kk, nx);
        let (kk, kkt) = (&ws.kk[t * nu * nx..(t + 1) * nu * nx], &mut ws.kkt[t * nx * nu..(t + 1) * nx * nu]);
        for i in 0..nu {
            for j in 0..nx {
                kkt[j * nu + i] = kk[i * nx + j];
            }
        }
        update_cost_to_go::<M>(
            &ws.kk[t * nu * nx..(t + 1) * nu * nx],
            &ws.k[t * nu..(t + 1) * nu],
            &ws.qzz,
            &ws.qz,
            &mut ws.w,
            &mut ws.wv,
            &mut ws.qxut,
            &mut ws.pv,
            &mut ws.p,
            acc,
            nx,
            nu,
            &exact,
            t > 0,
            t + 1 < tt,
        );
        let (fk, fp) = (finite_lanes(&ws.k[t * nu..(t + 1) * nu]), finite_lanes(&ws.pv[..nx]));
        for l in 0..LANES {
            if live[l] && !(fk[l] && fp[l]) {
                out[l] = Outcome::NonFinite;
                live[l] = false;
            }
        }
    }
    ws.z = z;
    if n > 16 {
        ws.acc = heap;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The iteration.

/// Where a lane is in the iteration of `ilqr::solve_one`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// At the top of an iteration (test the iteration cap, linearise, count it).
    Start,
    /// In an iteration: a Riccati pass and a line search at the lane's `μ`.
    Inner,
    /// Stopped.
    Done,
}

isa_builds! {
    /// Solve up to [`LANES`] problems in lock step: problem `l` of `probs` is lane `l`, its
    /// solution goes to `x_out[l·T·nx..]`, `u_out[l·T·nu..]` and its statistics to `stats[l]`
    /// (KKT residual NaN: the caller computes it where asked). Only for options where
    /// [`lanes_apply`] holds; the result of each problem is that of `ilqr::solve_one`.
    pub(crate) fn solve_lanes;
    /// [`solve_lanes`] in the build `isa`.
    pub(crate) fn solve_lanes_with = solve_lanes_impl(
        d: &D,
        opts: &SolverOptions,
        ws: &mut LaneWorkspace,
        probs: &[ProblemRef<'_>],
        x_out: &mut [f64],
        u_out: &mut [f64],
        stats: &mut [Stats],
        structure: Option<&mut [u8]>,
    )
}

/// How [`load`] learns which stage cost Hessians of its problems are diagonal (`ws.cdiag`) and
/// compact (`ws.compact`): either way the same flags, for the same `C`.
pub(crate) enum Structure<'a> {
    /// Test every off-diagonal entry of every problem's `C`, and record each problem's flags
    /// where given (problem-major, `g × T`: the solution's [`CostStructure`]).
    Test(Option<&'a mut [u8]>),
    /// The flags the solve of the same batch recorded (`g × T`, every stage known).
    Known(&'a [u8]),
}

/// The state of one lane's iteration (the locals of `ilqr::solve_one`).
#[derive(Clone, Copy, Debug)]
struct LaneState {
    phase: Phase,
    cost: f64,
    scale: f64,
    best_cost: f64,
    best_is_current: bool,
    lin_current: bool,
    iters: usize,
    stop: StopReason,
    accept_limit: f64,
    tol: f64,
}

#[inline(always)]
fn solve_lanes_impl<D: Dynamics, M: Arith>(
    d: &D,
    opts: &SolverOptions,
    ws: &mut LaneWorkspace,
    probs: &[ProblemRef<'_>],
    x_out: &mut [f64],
    u_out: &mut [f64],
    stats: &mut [Stats],
    structure: Option<&mut [u8]>,
) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let g = probs.len();
    assert!((1..=LANES).contains(&g), "solve_lanes: 1 to {LANES} problems");
    load(ws, probs, nx, nu, true, Structure::Test(structure));
    let (cost, scale) = rollout_plain(d, ws);
    let xfin = finite_lanes(&ws.x[..tt * nx]);
    let mut st: [LaneState; LANES] = std::array::from_fn(|l| LaneState {
        phase: Phase::Start,
        cost: cost[l],
        scale: scale[l],
        best_cost: cost[l],
        best_is_current: true,
        lin_current: false,
        iters: 0,
        stop: StopReason::MaxIterations,
        accept_limit: f64::NAN,
        tol: f64::NAN,
    });
    for l in 0..LANES {
        if !(xfin[l] && cost[l].is_finite()) {
            // As the per-problem solver: nothing to iterate from, reported as it is.
            st[l].phase = Phase::Done;
            st[l].stop = StopReason::NonFinite(if xfin[l] { NonFinite::Cost } else { NonFinite::Rollout });
        }
        if l >= g {
            st[l].phase = Phase::Done; // padding lanes (copies of the last problem)
        }
    }
    ws.k.fill(ZERO);
    ws.xbest.copy_from_slice(&ws.x);
    ws.ubest.copy_from_slice(&ws.u);
    let mut mu = ZERO;
    loop {
        let mut need_lin = false;
        for s in st.iter_mut() {
            if s.phase != Phase::Start {
                continue;
            }
            if s.iters >= opts.max_iters {
                s.phase = Phase::Done;
                continue;
            }
            need_lin |= !s.lin_current;
            s.lin_current = true;
            s.iters += 1;
            s.tol = 64.0 * f64::EPSILON * (n as f64) * s.scale.max(s.cost.abs());
            s.accept_limit = s.cost + s.tol;
            s.phase = Phase::Inner;
        }
        let inner: [bool; LANES] = std::array::from_fn(|l| st[l].phase == Phase::Inner);
        if !inner.iter().any(|&v| v) {
            break;
        }
        if need_lin {
            linearize_all(d, ws);
        }
        let outcome = riccati::<M>(ws, nx, nu, &mu, &inner);
        let mut search = [false; LANES];
        for l in 0..LANES {
            if !inner[l] {
                continue;
            }
            match outcome[l] {
                Outcome::Ok => search[l] = true,
                Outcome::NonFinite => {
                    st[l].stop = StopReason::NonFinite(NonFinite::Riccati);
                    st[l].phase = Phase::Done;
                }
                Outcome::NotPositiveDefinite => {
                    if !escalate(&mut mu[l], &mut false, false, opts) {
                        st[l].stop = StopReason::Stalled;
                        st[l].phase = Phase::Done;
                    }
                }
            }
        }
        if !search.iter().any(|&v| v) {
            continue;
        }
        let (chosen, first_du) = line_search(d, ws, opts, &search, &st);
        let mut accept = [false; LANES];
        for l in 0..LANES {
            accept[l] = search[l] && chosen[l].is_some();
        }
        let du = du_norm(&ws.ub, &ws.u);
        copy_lanes(&mut ws.x, &ws.xb, &accept);
        copy_lanes(&mut ws.u, &ws.ub, &accept);
        let mut to_best = [false; LANES];
        for l in 0..LANES {
            if !search[l] {
                continue;
            }
            let s = &mut st[l];
            match chosen[l] {
                Some((jt, stt, _alpha)) => {
                    s.lin_current = false;
                    s.cost = jt;
                    s.scale = stt;
                    if s.cost < s.best_cost {
                        s.best_cost = s.cost;
                        to_best[l] = true;
                        s.best_is_current = true;
                    } else {
                        s.best_is_current = false;
                    }
                    let done = du[l] < opts.eps;
                    mu[l] = opts.lower_regularisation(mu[l]);
                    if done {
                        s.stop = StopReason::SmallStep;
                        s.phase = Phase::Done;
                    } else {
                        s.phase = Phase::Start;
                    }
                }
                None => {
                    if first_du[l] < opts.eps {
                        s.stop = StopReason::SmallStep;
                        s.phase = Phase::Done;
                    } else if !escalate(&mut mu[l], &mut false, false, opts) {
                        s.stop = StopReason::Stalled;
                        s.phase = Phase::Done;
                    }
                }
            }
        }
        copy_lanes(&mut ws.xbest, &ws.x, &to_best);
        copy_lanes(&mut ws.ubest, &ws.u, &to_best);
    }
    let restore: [bool; LANES] = std::array::from_fn(|l| !st[l].stop.converged() && !st[l].best_is_current);
    copy_lanes(&mut ws.x, &ws.xbest, &restore);
    copy_lanes(&mut ws.u, &ws.ubest, &restore);
    for l in 0..g {
        let s = &st[l];
        for (i, v) in x_out[l * tt * nx..(l + 1) * tt * nx].iter_mut().enumerate() {
            *v = ws.x[i][l];
        }
        for (i, v) in u_out[l * tt * nu..(l + 1) * tt * nu].iter_mut().enumerate() {
            *v = ws.u[i][l];
        }
        stats[l] = Stats {
            cost: if restore[l] { s.best_cost } else { s.cost },
            iterations: s.iters,
            converged: s.stop.converged(),
            kkt_residual: f64::NAN,
            stop: s.stop,
        };
    }
}

/// The problems into the lanes (padding lanes repeat the last problem), bounds, which `C_t`
/// are diagonal in every lane, and with `warm_start` the projected warm start.
#[inline(always)]
fn load(ws: &mut LaneWorkspace, probs: &[ProblemRef<'_>], nx: usize, nu: usize, warm_start: bool, structure: Structure<'_>) {
    let (n, tt) = (nx + nu, ws.horizon);
    ws.cdiag.fill(true);
    ws.compact.fill(true);
    match structure {
        Structure::Known(flags) => {
            for f in flags.chunks(tt) {
                for t in 0..tt {
                    ws.cdiag[t] &= f[t] & CostStructure::DIAGONAL != 0;
                    ws.compact[t] &= f[t] & CostStructure::COMPACT != 0;
                }
            }
        }
        Structure::Test(mut record) => {
            for l in 0..LANES {
                let p = &probs[l.min(probs.len() - 1)];
                for t in 0..tt {
                    let c = &p.cm[t * n * n..(t + 1) * n * n];
                    // Every off-diagonal entry ±0 (diagonal), every one +0 (compact).
                    let (diag, compact) = off_diagonal_zeros(c, n);
                    ws.cdiag[t] &= diag;
                    ws.compact[t] &= compact;
                    if let Some(r) = record.as_deref_mut().filter(|_| l < probs.len()) {
                        r[l * tt + t] = CostStructure::flag(diag, compact);
                    }
                }
            }
        }
    }
    // The bounds, every lane's at once (whole vectors): where no lane's vary by stage, one
    // row of `nu` vectors copied to every stage.
    for (dst, lower, inf) in [(&mut ws.lo, true, f64::NEG_INFINITY), (&mut ws.hi, false, f64::INFINITY)] {
        let bs: [Bound<'_>; LANES] = std::array::from_fn(|l| {
            let p = &probs[l.min(probs.len() - 1)];
            if lower { p.lower } else { p.upper }
        });
        let dst = &mut dst[..tt * nu];
        let per_stage = bs.iter().any(|b| matches!(b, Bound::PerStage(_)));
        for t in 0..if per_stage { tt } else { 1 } {
            for i in 0..nu {
                let mut e = ZERO;
                for (v, b) in e.iter_mut().zip(&bs) {
                    *v = match *b {
                        Bound::None => inf,
                        Bound::PerControl(s) => s[i],
                        Bound::PerStage(s) => s[t * nu + i],
                    };
                }
                dst[t * nu + i] = e;
            }
        }
        if !per_stage {
            for t in 1..tt {
                dst.copy_within(..nu, t * nu);
            }
        }
    }
    // The rest entry by entry with the lanes innermost: each vector gathered from the four
    // problems' runs (4 × 4 blocks transposed in registers where the runs are contiguous) and
    // stored whole, not four scalar stores into every vector, lane after lane.
    let ps: [&ProblemRef<'_>; LANES] = std::array::from_fn(|l| &probs[l.min(probs.len() - 1)]);
    let gather = |dst: &mut [V], src: [&[f64]; LANES]| {
        for (i, e) in dst.iter_mut().enumerate() {
            for l in 0..LANES {
                e[l] = src[l][i];
            }
        }
    };
    gather(&mut ws.x0[..nx], ps.map(|p| &p.x_init[..nx]));
    gather(&mut ws.cv[..tt * n], ps.map(|p| &p.cv[..tt * n]));
    for t in 0..tt {
        let cs = ps.map(|p| &p.cm[t * n * n..(t + 1) * n * n]);
        if ws.compact[t] {
            for (i, e) in ws.cmd[t * n..(t + 1) * n].iter_mut().enumerate() {
                for l in 0..LANES {
                    e[l] = cs[l][i * n + i];
                }
            }
        } else {
            gather(&mut ws.cm[t * n * n..(t + 1) * n * n], cs);
        }
    }
    if warm_start {
        let (u, lo, hi) = (&mut ws.u[..tt * nu], &ws.lo[..tt * nu], &ws.hi[..tt * nu]);
        match ps.map(|p| p.u_init) {
            us if us.iter().all(Option::is_some) => gather(u, us.map(|u| &u.unwrap_or_default()[..tt * nu])),
            us => {
                for (i, e) in u.iter_mut().enumerate() {
                    for l in 0..LANES {
                        e[l] = us[l].map_or(0.0, |u| u[i]);
                    }
                }
            }
        }
        for ((e, lo), hi) in u.iter_mut().zip(lo).zip(hi) {
            for l in 0..LANES {
                e[l] = e[l].max(lo[l]).min(hi[l]);
            }
        }
    }
}

/// A line search's chosen trial: `(cost, scale, α)`.
type Chosen = Option<(f64, f64, f64)>;

/// The line search of `ilqr::line_search` for the lanes in `search`: every step size's trial
/// for all lanes; per lane the chosen `(cost, scale, α)` with its trial left in `xb`, `ub`, and
/// `‖Δu‖` of the first step.
#[inline(always)]
fn line_search<D: Dynamics>(
    d: &D,
    ws: &mut LaneWorkspace,
    opts: &SolverOptions,
    search: &[bool; LANES],
    st: &[LaneState; LANES],
) -> ([Chosen; LANES], V) {
    let mut chosen: [Chosen; LANES] = [None; LANES];
    let mut first_du = [f64::NAN; LANES];
    let mut open = *search;
    for (li, &alpha) in opts.line_search.iter().enumerate() {
        if !open.iter().any(|&v| v) {
            break;
        }
        let (jt, stt) = rollout_trial(d, ws, alpha);
        if li == 0 {
            first_du = du_norm(&ws.ut, &ws.u);
        }
        let mut better = [false; LANES];
        for l in 0..LANES {
            if !open[l] || !jt[l].is_finite() || jt[l] > st[l].accept_limit {
                continue;
            }
            better[l] = match chosen[l] {
                None => true,
                Some((jb, _, _)) => jt[l] < jb - st[l].tol,
            };
            if better[l] {
                chosen[l] = Some((jt[l], stt[l], alpha));
                if opts.line_search_rule == LineSearchRule::FirstDecrease {
                    open[l] = false;
                }
            }
        }
        if better.iter().any(|&v| v) {
            copy_lanes(&mut ws.xb, &ws.xt, &better);
            copy_lanes(&mut ws.ub, &ws.ut, &better);
        }
    }
    (chosen, first_du)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::ilqr::solve_one_with;
    use backward::backward_lanes_with;
    use crate::solver::isa::Isa;
    use crate::solver::test_models::Ring;
    use crate::solver::workspace::Workspace;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The batch-size rule of [`Lanes`]: `Always` all problems from one whole group on,
    /// `Auto` whole groups in a multiple of the thread count and the rest one by one.
    #[test]
    fn lanes_are_taken_where_the_policy_says() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            assert_eq!((lane_count(LANES - 1, Lanes::Always), lane_count(LANES + 1, Lanes::Always)), (0, LANES + 1));
            assert_eq!(lane_count(1000, Lanes::Never), 0);
            assert_eq!(lane_count(3 * LANES - 1, Lanes::Auto), 0);
            assert_eq!(lane_count(3 * LANES, Lanes::Auto), 3 * LANES);
            assert_eq!(lane_count(5 * LANES + 3, Lanes::Auto), 3 * LANES);
            assert_eq!(lane_count(6 * LANES, Lanes::Auto), 6 * LANES);
        });
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        one.install(|| assert_eq!((lane_count(LANES - 1, Lanes::Auto), lane_count(2 * LANES + 3, Lanes::Auto)), (0, 2 * LANES)));
    }

    /// The lane gain solve equals `linalg::ldlt_solve_multi` lane by lane to the bit, for
    /// right-hand sides of one register block, of the 32-wide block, and of several blocks,
    /// with separate and with fused multiply-adds.
    #[test]
    fn lane_solve_equals_the_per_problem_solve_per_lane() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 4;
        for m in [3, 10, 17, 40, 70] {
            let mut lf = vec![ZERO; n * n];
            let mut per_lane = vec![vec![0.0; n * n]; LANES];
            for (l, lp) in per_lane.iter_mut().enumerate() {
                let mut a = vec![0.0; n * n];
                for i in 0..n {
                    for j in 0..=i {
                        let v = rng.random_range(-0.5..0.5) + if i == j { 2.0 } else { 0.0 };
                        a[i * n + j] = v;
                        a[j * n + i] = v;
                    }
                }
                assert!(crate::solver::linalg::ldlt(&mut a, n, 1e-14));
                for (e, v) in lf.iter_mut().zip(&a) {
                    e[l] = *v;
                }
                *lp = a;
            }
            let b0: Vec<V> = (0..n * m).map(|_| std::array::from_fn(|_| rng.random_range(-2.0..2.0))).collect();
            for fused in [false, true] {
                let mut b = b0.clone();
                if fused {
                    lane_ldlt_solve::<crate::solver::arith::Fused>(&lf, n, &mut b, m);
                } else {
                    lane_ldlt_solve::<Separate>(&lf, n, &mut b, m);
                }
                for l in 0..LANES {
                    let mut want: Vec<f64> = b0.iter().map(|v| v[l]).collect();
                    if fused {
                        crate::solver::linalg::ldlt_solve_multi::<crate::solver::arith::Fused>(&per_lane[l], n, &mut want, m);
                    } else {
                        crate::solver::linalg::ldlt_solve_multi::<Separate>(&per_lane[l], n, &mut want, m);
                    }
                    let got: Vec<u64> = b.iter().map(|v| v[l].to_bits()).collect();
                    assert_eq!(got, want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "m = {m}, lane {l}, fused {fused}");
                }
            }
        }
    }

    /// Every problem of a group gets the per-problem solver's result to the bit (states,
    /// controls, cost, iterations, stop reason), in every instruction-set build: lanes that
    /// converge early, hit the iteration cap, need regularisation (an indefinite control cost),
    /// start non-finite, mixed diagonal and dense costs, per-stage, per-control and absent
    /// bounds, warm starts, both line-search rules, partial groups; and the lane backward pass
    /// equals the per-problem one.
    #[test]
    fn each_lane_equals_the_per_problem_solve_to_the_bit() {
        let mut rng = StdRng::seed_from_u64(21);
        let t = 7;
        for (case, &(nx, nu)) in [(4, 2), (10, 4), (13, 3), (26, 4)].iter().enumerate() {
            let n = nx + nu;
            let ring = Ring::random(&mut rng, nx, nu);
            let g = if case % 2 == 0 { LANES } else { LANES - 1 };
            let mut x0 = vec![0.0; g * nx];
            let mut cm = vec![0.0; g * t * n * n];
            let mut cv = vec![0.0; g * t * n];
            let mut lo = vec![0.0; g * t * nu];
            let mut hi = vec![0.0; g * t * nu];
            let mut u0 = vec![0.0; g * t * nu];
            for l in 0..g {
                for v in &mut x0[l * nx..(l + 1) * nx] {
                    *v = rng.random_range(-1.5..1.5);
                }
                if l == 1 {
                    x0[l * nx] = f64::INFINITY; // non-finite from the start
                }
                for s in 0..t {
                    let c = &mut cm[(l * t + s) * n * n..(l * t + s + 1) * n * n];
                    for i in 0..n {
                        c[i * n + i] = rng.random_range(0.3..2.0);
                        // Stages s ≡ 1 (mod 3) dense in the even lanes; the others diagonal in
                        // every lane (stored compact), but s ≡ 2 with a -0 off the diagonal in
                        // lane 3 (diagonal, not compact).
                        if s % 3 == 1 && l % 2 == 0 && i + 1 < n {
                            let v = rng.random_range(-0.2..0.2);
                            c[i * n + i + 1] = v;
                            c[(i + 1) * n + i] = v;
                        }
                    }
                    if s % 3 == 2 && l == 3 {
                        c[1] = -0.0;
                        c[n] = -0.0;
                    }
                    if l == 2 {
                        // An indefinite control cost: Q_uu needs regularisation.
                        c[nx * n + nx] = -3.0;
                    }
                }
                for v in &mut cv[l * t * n..(l + 1) * t * n] {
                    *v = rng.random_range(-1.0..1.0);
                }
                for i in 0..t * nu {
                    let w = if l == 0 { 5.0 } else { rng.random_range(0.1..0.6) };
                    lo[l * t * nu + i] = -w;
                    hi[l * t * nu + i] = w * 0.8;
                    u0[l * t * nu + i] = rng.random_range(-1.0..1.0);
                }
            }
            for (rule, max_iters, eps) in [(LineSearchRule::Best, 8, 1e-7), (LineSearchRule::FirstDecrease, 30, 1e-5)] {
                let opts = SolverOptions { max_iters, eps, line_search_rule: rule, report_kkt: false, ..SolverOptions::default() };
                // Bounds per stage, per control (each lane its own), or no lower bound.
                fn bound(v: &[f64], l: usize, lower: bool, kind: usize, len: usize, nu: usize) -> Bound<'_> {
                    match kind {
                        0 => Bound::PerStage(&v[l * len..(l + 1) * len]),
                        2 if lower => Bound::None,
                        _ => Bound::PerControl(&v[l * len..l * len + nu]),
                    }
                }
                let probs: Vec<ProblemRef<'_>> = (0..g)
                    .map(|l| ProblemRef {
                        x_init: &x0[l * nx..(l + 1) * nx],
                        cm: &cm[l * t * n * n..(l + 1) * t * n * n],
                        cv: &cv[l * t * n..(l + 1) * t * n],
                        lower: bound(&lo, l, true, case % 3, t * nu, nu),
                        upper: bound(&hi, l, false, case % 3, t * nu, nu),
                        // Warm starts in every lane from the third case on.
                        u_init: if l % 2 == 0 || case >= 2 { Some(&u0[l * t * nu..(l + 1) * t * nu]) } else { None },
                    })
                    .collect();
                let mut reasons = Vec::new();
                let mut compared = 0;
                for isa in Isa::available() {
                    let mut lws = LaneWorkspace::new(t, nx, nu);
                    let (mut xl, mut ul) = (vec![0.0; g * t * nx], vec![0.0; g * t * nu]);
                    let mut stats = vec![Stats::default(); g];
                    solve_lanes_with(isa, &ring, &opts, &mut lws, &probs, &mut xl, &mut ul, &mut stats, None);
                    for (l, p) in probs.iter().enumerate() {
                        let mut ws = Workspace::new(t, nx, nu);
                        let (mut x, mut u) = (vec![0.0; t * nx], vec![0.0; t * nu]);
                        let s = solve_one_with(isa, &ring, &opts, &mut ws, p, &mut x, &mut u, None);
                        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        let what = format!("{isa:?} nx={nx} nu={nu} lane {l} {rule:?}");
                        assert_eq!(bits(&xl[l * t * nx..(l + 1) * t * nx]), bits(&x), "states, {what}");
                        assert_eq!(bits(&ul[l * t * nu..(l + 1) * t * nu]), bits(&u), "controls, {what}");
                        assert_eq!(stats[l].cost.to_bits(), s.cost.to_bits(), "cost, {what}");
                        assert_eq!((stats[l].iterations, stats[l].stop), (s.iterations, s.stop), "{what}");
                        reasons.push((s.stop, s.iterations));
                    }
                    // The backward pass (Gauss-Newton) at these solutions, lane by lane against
                    // the per-problem pass, where the solution is finite and the lane's free
                    // blocks were positive definite (others are redone per problem).
                    let n = nx + nu;
                    let gx: Vec<f64> = (0..g * t * nx).map(|k| (0.37 * k as f64).sin()).collect();
                    let gu: Vec<f64> = (0..g * t * nu).map(|k| (1.3 * k as f64).cos()).collect();
                    let (mut gcm, mut gcv, mut gx0) = (vec![0.0; g * t * n * n], vec![0.0; g * t * n], vec![0.0; g * nx]);
                    let (failed, finite) = backward_lanes_with(isa, &ring, &mut lws, &probs, &xl, &ul, &gx, &gu, &mut gcm, &mut gcv, &mut gx0, false, None);
                    // The streaming writer: the same bits and the same finiteness verdicts.
                    let (mut gcm_s, mut gcv_s, mut gx0_s) = (vec![0.0; g * t * n * n], vec![0.0; g * t * n], vec![0.0; g * nx]);
                    let (failed_s, finite_s) =
                        backward_lanes_with(isa, &ring, &mut lws, &probs, &xl, &ul, &gx, &gu, &mut gcm_s, &mut gcv_s, &mut gx0_s, true, None);
                    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!((failed, finite), (failed_s, finite_s));
                    assert_eq!((bits(&gcm), bits(&gcv), bits(&gx0)), (bits(&gcm_s), bits(&gcv_s), bits(&gx0_s)));
                    for l in 0..g {
                        let all = [&gcm[l * t * n * n..(l + 1) * t * n * n], &gcv[l * t * n..(l + 1) * t * n], &gx0[l * nx..(l + 1) * nx]]
                            .iter()
                            .all(|v| v.iter().all(|x| x.is_finite()));
                        assert_eq!(finite[l], all, "finiteness verdict of lane {l}");
                    }
                    for (l, p) in probs.iter().enumerate() {
                        if failed[l] || !xl[l * t * nx..(l + 1) * t * nx].iter().all(|v| v.is_finite()) {
                            continue;
                        }
                        let mut ws = Workspace::new(t, nx, nu);
                        let (mut cm1, mut cv1, mut x01) = (vec![0.0; t * n * n], vec![0.0; t * n], vec![0.0; nx]);
                        crate::solver::backward::backward_one_with(
                            isa,
                            &ring,
                            crate::solver::GradientMode::GaussNewton,
                            &mut ws,
                            p,
                            &xl[l * t * nx..(l + 1) * t * nx],
                            &ul[l * t * nu..(l + 1) * t * nu],
                            &gx[l * t * nx..(l + 1) * t * nx],
                            &gu[l * t * nu..(l + 1) * t * nu],
                            &mut cm1,
                            &mut cv1,
                            &mut x01,
                            &mut [],
                        );
                        let what = format!("{isa:?} nx={nx} nu={nu} lane {l} {rule:?}");
                        assert_eq!(bits(&gcm[l * t * n * n..(l + 1) * t * n * n]), bits(&cm1), "dL/dC, {what}");
                        assert_eq!(bits(&gcv[l * t * n..(l + 1) * t * n]), bits(&cv1), "dL/dc, {what}");
                        assert_eq!(bits(&gx0[l * nx..(l + 1) * nx]), bits(&x01), "dL/dx_init, {what}");
                        compared += 1;
                    }
                }
                // The cases the test is for did happen.
                assert!(compared > 0, "no backward pass compared");
                assert!(reasons.iter().any(|r| r.0 == StopReason::NonFinite(NonFinite::Rollout)));
                assert!(reasons.iter().any(|r| r.0.converged() && r.1 > 1), "{reasons:?}");
                if rule == LineSearchRule::Best {
                    assert!(reasons.iter().any(|r| r.0 == StopReason::MaxIterations), "{reasons:?}");
                }
            }
        }
    }
}
