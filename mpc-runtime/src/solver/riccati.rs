//! The control-limited Riccati pass of the forward solve and the cost-to-go updates it shares
//! with the gradient pass.

use super::arith::{Arith, madd};
use super::linalg::ldlt_solve_multi;
use super::workspace::{Workspace, row_stride, with_row_acc};
use super::ProblemRef;
use crate::model::Dynamics;

use super::rollout::{linearize_stage, stage_gradient, stage_z};
use super::status::finite as all_finite;

/// `y = -x` over equal-length slices (a function, so the two are known apart and it vectorises).
#[inline(always)]
pub(crate) fn neg_copy(y: &mut [f64], x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = -xi;
    }
}

/// `y += a x` over equal-length slices (bounds-check free, vectorisable), the multiply-adds
/// rounded as `M` says.
#[inline(always)]
pub(crate) fn axpy<M: Arith>(y: &mut [f64], a: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = madd::<M>(a, *xi, *yi);
    }
}

/// Add the dynamics' contribution `Fᵀ P F`, `Fᵀ p` (F = [A B] of stage `t`) to `ws.ric.qzz`,
/// `ws.ric.qz`, where `ws.ric.p`, `ws.ric.pv` hold the cost-to-go of stage `t + 1`.
///
/// Each output row is accumulated in registers (a stack array for `nx + nu ≤ 32`, after
/// inlining the sizes are constants and the row lives in vector registers) and written once:
/// `PF` row `k` = `Σ_m P[k][m] F_m` (`F = [A B]`, rows zero-padded to whole vectors), then
/// `Q_uu` row `i` += `Σ_k B[k][i] PB_k` and `[Q_xx Q_xu]` row `i` += `Σ_k A[k][i] PF_k`, each
/// sum over its index ascending (the two [`Part`]s, which the Riccati pass runs on either side
/// of its box QP). Terms whose factor from `A` or `B` is exactly zero are skipped (a dynamics Jacobian
/// is typically sparse; `P` is dense, and testing its entries cost more than it saved); a
/// skipped or zero term is a `±0`, which leaves an accumulator started at `+0` or at a `Q` entry
/// unchanged, so the result is that of the dense evaluation to the bit (for finite `P`, `A`,
/// `B`); `P` being exactly symmetric, `P A` is also `(Aᵀ P)ᵀ` to the bit. The `Q_ux` block
/// is not written: its rows are `Q_xu`'s columns, which [`transpose_q_xu`] gathers.
#[inline(always)]
pub(crate) fn add_cost_to_go<M: Arith>(ws: &mut Workspace, nx: usize, nu: usize, t: usize) {
    with_row_acc!(ws, nx + nu, acc => add_cost_to_go_with::<M>(ws, nx, nu, t, None, acc));
}

/// [`add_cost_to_go`] onto the stage Hessian `base` (`n × n`) instead of `ws.ric.qzz`'s own
/// entries: `ws.ric.qzz` = `base + Fᵀ P F` outside the `Q_ux` block, with no copy of `base`
/// first (a separate copy was a pass over `n²` entries, and a reload of what it stored).
#[inline(always)]
pub(crate) fn add_cost_to_go_onto<M: Arith>(ws: &mut Workspace, nx: usize, nu: usize, t: usize, base: &[f64]) {
    with_row_acc!(ws, nx + nu, acc => add_cost_to_go_with::<M>(ws, nx, nu, t, Some(base), acc));
}

/// [`add_cost_to_go`] with the row accumulator `acc` (at least `nx + nu` long), onto `base`
/// where given, else onto `ws.ric.qzz`.
#[inline(always)]
fn add_cost_to_go_with<M: Arith>(ws: &mut Workspace, nx: usize, nu: usize, t: usize, base: Option<&[f64]>, acc: &mut [f64]) {
    add_cost_to_go_part::<M>(ws, nx, nu, t, base, acc, Part::ControlsFirst);
    add_cost_to_go_part::<M>(ws, nx, nu, t, base, acc, Part::StateRows);
}

/// Which part of [`add_cost_to_go`]: `P F`, the `Q_uu` block and `q` (what the box QP needs
/// first), or the state rows `[Q_xx Q_xu]` from that `P F` (independent of the box QP: after
/// it in program order, they fill the latency of its factorisation).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    ControlsFirst,
    StateRows,
}

/// One [`Part`] of [`add_cost_to_go_with`] (`ControlsFirst` before `StateRows`, with the same
/// `base` and workspace in between).
#[inline(always)]
fn add_cost_to_go_part<M: Arith>(ws: &mut Workspace, nx: usize, nu: usize, t: usize, base: Option<&[f64]>, acc: &mut [f64], part: Part) {
    let n = nx + nu;
    // F = [A B] and P F in rows of whole vectors (zero padding: two 8-wide products per row
    // of the quadrotor's 14 entries, not an 8-, a 4- and a 2-wide one).
    let s = row_stride(n);
    let acc = &mut acc[..s];
    let a = &ws.lin.a[t * nx * nx..(t + 1) * nx * nx];
    let b = &ws.lin.b[t * nx * nu..(t + 1) * nx * nu];
    if part == Part::StateRows {
        let pf = &ws.ric.pf[..nx * s];
        let qzz = &mut ws.ric.qzz[..n * n];
        // Rows i < nx of [Q_xx Q_xu] += Σ_k A[k][i] PF_k (the padding's sums are not stored).
        for i in 0..nx {
            acc[..n].copy_from_slice(&base.unwrap_or(qzz)[i * n..(i + 1) * n]);
            for k in 0..nx {
                let aki = a[k * nx + i];
                if aki != 0.0 {
                    axpy::<M>(acc, aki, &pf[k * s..(k + 1) * s]);
                }
            }
            qzz[i * n..(i + 1) * n].copy_from_slice(&acc[..n]);
        }
        return;
    }
    let p = &ws.ric.p[..nx * nx];
    let f = &mut ws.ric.f[..nx * s];
    for m in 0..nx {
        // Assembled in registers and stored whole (piecewise stores would not forward to the
        // whole-vector loads below).
        acc.fill(0.0);
        acc[..nx].copy_from_slice(&a[m * nx..(m + 1) * nx]);
        acc[nx..n].copy_from_slice(&b[m * nu..(m + 1) * nu]);
        f[m * s..(m + 1) * s].copy_from_slice(acc);
    }
    let f = &ws.ric.f[..nx * s];
    let pf = &mut ws.ric.pf[..nx * s];
    if s == 16 && pf_block_rows::<M>(16) >= PF_MIN_BLOCK {
        pf_blocked::<M, 16>(p, f, pf, nx);
    } else if s == 8 && pf_block_rows::<M>(8) >= PF_MIN_BLOCK {
        pf_blocked::<M, 8>(p, f, pf, nx);
    } else {
        for k in 0..nx {
            acc.fill(0.0);
            for (m, &pkm) in p[k * nx..(k + 1) * nx].iter().enumerate() {
                axpy::<M>(acc, pkm, &f[m * s..(m + 1) * s]);
            }
            pf[k * s..(k + 1) * s].copy_from_slice(acc);
        }
    }
    let qzz = &mut ws.ric.qzz[..n * n];
    // Q_uu row i += Σ_k B[k][i] PB_k.
    for i in 0..nu {
        let au = &mut acc[..nu];
        au.copy_from_slice(&base.unwrap_or(qzz)[(nx + i) * n + nx..(nx + i + 1) * n]);
        for k in 0..nx {
            let bki = b[k * nu + i];
            if bki != 0.0 {
                axpy::<M>(au, bki, &pf[k * s + nx..k * s + n]);
            }
        }
        qzz[(nx + i) * n + nx..(nx + i + 1) * n].copy_from_slice(au);
    }
    // q += Fᵀ p.
    acc[..n].copy_from_slice(&ws.ric.qz[..n]);
    for k in 0..nx {
        axpy::<M>(acc, ws.ric.pv[k], &f[k * s..(k + 1) * s]);
    }
    ws.ric.qz[..n].copy_from_slice(&acc[..n]);
}

/// Most rows of `P F` that [`pf_blocked`] keeps in registers at once.
const PF_BLOCK_ROWS: usize = 12;

/// Fewest rows of a [`pf_blocked`] block.
const PF_MIN_BLOCK: usize = 4;

/// How many rows of `s` entries [`pf_blocked`] accumulates at once in `M`'s build: three
/// quarters of its vector registers (the rest hold a row of `F` and the broadcast factor), at
/// most [`PF_BLOCK_ROWS`]: 12 rows of 16 with AVX-512, 3 with AVX2. Blocks of fewer than
/// [`PF_MIN_BLOCK`] rows are not used (AVX2's 3 rows of 16 made the B = 1 backward pass, which
/// runs the AVX2 build, 6 % slower than row by row).
#[inline(always)]
const fn pf_block_rows<M: Arith>(s: usize) -> usize {
    let r = 3 * M::VECTOR_F64 / 4 / s;
    if r < PF_BLOCK_ROWS { r } else { PF_BLOCK_ROWS }
}

/// `PF = P F` (`nx × S`, rows of `S` = 8 or 16) with a block of [`pf_block_rows`] rows'
/// accumulators in registers at once: the rows of `F` outside, each loaded once per block and
/// applied to every row of it. Row by row (`PF_k = Σ_m P[k][m] F_m`) the whole of `F` was
/// loaded again for each row, and the products waited on the load ports (with AVX-512 the
/// quadrotor's `nx = 10` rows are one block: `bench/results/cpu-riccati-2026-12-06.md`). Every
/// entry is the same sum in the same order (`m` ascending from `+0`).
#[inline(always)]
fn pf_blocked<M: Arith, const S: usize>(p: &[f64], f: &[f64], pf: &mut [f64], nx: usize) {
    let r = pf_block_rows::<M>(S);
    for k0 in (0..nx).step_by(r) {
        let nb = r.min(nx - k0);
        let mut rows = [[0.0f64; S]; PF_BLOCK_ROWS];
        for m in 0..nx {
            let fm: &[f64; S] = f[m * S..(m + 1) * S].try_into().expect("rows of S entries");
            for k in 0..nb {
                let pkm = p[(k0 + k) * nx + m];
                for l in 0..S {
                    rows[k][l] = madd::<M>(pkm, fm[l], rows[k][l]);
                }
            }
        }
        for k in 0..nb {
            pf[(k0 + k) * S..(k0 + k + 1) * S].copy_from_slice(&rows[k]);
        }
    }
}

/// `ws.ric.qxut` = `Q_xuᵀ` (`nu × nx`: the columns of `Q_xu` as rows), gathered from `ws.ric.qzz`.
/// After [`add_cost_to_go`] these are also the rows of `Q_ux` (which it leaves unwritten: the
/// stage's `Q` is symmetric, and reading the rows back after scalar stores would stall).
#[inline(always)]
pub(crate) fn transpose_q_xu(ws: &mut Workspace, nx: usize, nu: usize) {
    with_row_acc!(ws, nx, acc => transpose_q_xu_with(ws, nx, nu, acc));
}

/// [`transpose_q_xu`] with the row accumulator `acc` (at least `nx` long): each row of `Q_xuᵀ`
/// is gathered in registers and stored whole (the gain solve reads it as vectors right away,
/// and vector loads of element stores would wait for them).
#[inline(always)]
fn transpose_q_xu_with(ws: &mut Workspace, nx: usize, nu: usize, acc: &mut [f64]) {
    let n = nx + nu;
    let qzz = &ws.ric.qzz[..n * n];
    let qxut = &mut ws.ric.qxut[..nu * nx];
    let acc = &mut acc[..nx];
    for l in 0..nu {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = qzz[i * n + nx + l];
        }
        qxut[l * nx..(l + 1) * nx].copy_from_slice(acc);
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
/// (stage 0: nobody reads `P`) only `p` is updated. `ws.ric.qxut` holds `Q_xuᵀ`
/// ([`transpose_q_xu`]); `mirrored`: the rows of `Q_ux` are those (`add_cost_to_go` ran for
/// this stage and left them unwritten), else they are read from `ws.ric.qzz`.
#[inline(always)]
pub(crate) fn update_cost_to_go<M: Arith>(ws: &mut Workspace, nx: usize, nu: usize, t: usize, exact_gain: bool, need_p: bool, mirrored: bool) {
    with_row_acc!(ws, nx + nu, acc => update_cost_to_go_with::<M>(ws, nx, nu, t, exact_gain, need_p, mirrored, acc));
}

/// [`update_cost_to_go`] with the row accumulator `acc` (at least `nx` long). Every entry is the
/// same sum in the same order as the plain loops `p_i = q_i + Σ_l (K_li w_l + Q_xu,il k_l)` and
/// `P_i = Q_xx,i + Σ_l (K_li W_l + Q_xu,il K_l)` (over the non-zero rows `l` ascending): the
/// loops run over rows (`Q_xu`'s columns copied to `ws.ric.qxut` first), so they vectorise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn update_cost_to_go_with<M: Arith>(
    ws: &mut Workspace,
    nx: usize,
    nu: usize,
    t: usize,
    exact_gain: bool,
    need_p: bool,
    mirrored: bool,
    acc: &mut [f64],
) {
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
    let qxut = &ws.ric.qxut[..nu * nx];
    let acc = &mut acc[..nx];
    acc.copy_from_slice(&qz[..nx]);
    for l in 0..nu {
        let (kr, qr, wl, kl) = (&kk[l * nx..(l + 1) * nx], &qxut[l * nx..(l + 1) * nx], wv[l], k[l]);
        for i in 0..nx {
            acc[i] += kr[i] * wl + qr[i] * kl;
        }
    }
    ws.ric.pv[..nx].copy_from_slice(acc);
    if !need_p {
        return;
    }
    let rows = &ws.scratch.idx[..m];
    if !exact_gain {
        for &i in rows {
            let q_row = &qzz[(nx + i) * n..(nx + i + 1) * n];
            let w_row = &mut w[i * nx..(i + 1) * nx];
            // Row i of Q_ux: Q_xu's column i where the stage's Q is symmetric (`mirrored`).
            w_row.copy_from_slice(if mirrored { &qxut[i * nx..(i + 1) * nx] } else { &q_row[..nx] });
            for &l in rows {
                axpy::<M>(w_row, q_row[nx + l], &kk[l * nx..(l + 1) * nx]);
            }
        }
    }
    let p = &mut ws.ric.p[..nx * nx];
    for i in 0..nx {
        let q_row = &qzz[i * n..(i + 1) * n];
        acc.copy_from_slice(&q_row[..nx]);
        for &l in rows {
            if !exact_gain {
                axpy::<M>(acc, kk[l * nx + i], &w[l * nx..(l + 1) * nx]);
            }
            axpy::<M>(acc, qxut[l * nx + i], &kk[l * nx..(l + 1) * nx]);
        }
        p[i * nx..(i + 1) * nx].copy_from_slice(acc);
    }
    mirror_lower(p, nx);
}

/// Copy the strict lower triangle of the `n × n` matrix `p` onto its upper triangle.
#[inline(always)]
fn mirror_lower(p: &mut [f64], n: usize) {
    for i in 1..n {
        let (upper, rest) = p.split_at_mut(i * n);
        copy_column(upper, &rest[..i], i, n);
    }
}

/// `upper[j n + i] = row[j]` for `j < row.len()` (column `i` of the rows above row `i`).
#[inline(always)]
fn copy_column(upper: &mut [f64], row: &[f64], i: usize, n: usize) {
    for (j, &v) in row.iter().enumerate() {
        upper[j * n + i] = v;
    }
}

/// `ws.ric.kkt` = `Kᵀ` of every stage's gains `ws.ric.kk`, unless it is already.
///
/// Not part of the Riccati pass: only the one-problem trial rollout reads `Kᵀ` (the line
/// search with step sizes in lanes reads `K`'s entries as they are), and in the pass the
/// transposition's element loads of the rows the gain solve had just stored sat in every
/// stage (3 % of the quadrotor's B = 1, T = 10 forward solve, side by side).
#[inline(always)]
pub(crate) fn transpose_gains(ws: &mut Workspace, nx: usize, nu: usize) {
    if ws.ric.kkt_current {
        return;
    }
    let tt = ws.horizon;
    let (kk, kkt) = (&ws.ric.kk[..tt * nu * nx], &mut ws.ric.kkt[..tt * nx * nu]);
    for t in 0..tt {
        let (kk, kkt) = (&kk[t * nu * nx..(t + 1) * nu * nx], &mut kkt[t * nx * nu..(t + 1) * nx * nu]);
        for i in 0..nu {
            for j in 0..nx {
                kkt[j * nu + i] = kk[i * nx + j];
            }
        }
    }
    ws.ric.kkt_current = true;
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

/// The control-limited Riccati backward pass at the current iterate with `Q_uu + μ I`.
/// Fills `ws.ric.k`, `ws.ric.kk`.
///
/// `ddp`: the stage Hessian also gets `Σ_i p_i ∇²f_i(z_t)` with `p` the cost-to-go gradient of
/// stage `t + 1` (the second-order term of DDP, from the generated weighted Hessian).
///
/// `linearize`: the Jacobians in `ws.lin` are not yet those of the iterate; stage `t` computes
/// stage `t - 1`'s after its box QP (a pass that stops early computes the rest before it
/// returns: `ws.lin` is the iterate's on every outcome). The linearisation does not depend on
/// the pass, so the out-of-order core runs it beside the chain of the factorisation and the
/// gain solve; apart, before the pass, their times added up.
///
/// Stage 0 computes only `k_0`: every rollout starts at `x_init`, so `K_0` multiplies a zero
/// state deviation and `P_0`, `p_0` are read by nobody; its `K_0` is left zero.
#[inline(always)]
pub(crate) fn riccati<D: Dynamics, M: Arith>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, mu: f64, ddp: bool, linearize: bool) -> RiccatiOutcome {
    // Stages below this one are still to be linearised.
    let mut pending = if linearize { ws.horizon.saturating_sub(1) } else { 0 };
    let outcome = riccati_stages::<D, M>(d, ws, p, mu, ddp, &mut pending);
    for t in 0..pending {
        linearize_stage(d, ws, t);
    }
    outcome
}

/// [`riccati`]'s pass over the stages; `pending` (the stages below it to be linearised) goes
/// down by one after each stage's box QP.
#[inline(always)]
fn riccati_stages<D: Dynamics, M: Arith>(d: &D, ws: &mut Workspace, p: &ProblemRef<'_>, mu: f64, ddp: bool, pending: &mut usize) -> RiccatiOutcome {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    ws.ric.kkt_current = false;
    for t in (0..tt).rev() {
        let cm = &p.cm[t * n * n..(t + 1) * n * n];
        let cv = &p.cv[t * n..(t + 1) * n];
        // The stage Hessian under `Fᵀ P F`: `C_t`, or (DDP) `C_t + Σ p_i ∇²f_i` in `ws.ric.qzz`.
        let base = if ddp { None } else { Some(cm) };
        stage_z(&mut ws.scratch.z, &ws.traj.x, &ws.traj.u, nx, nu, t);
        stage_gradient(&mut ws.ric.qz, cm, cv, &ws.scratch.z, n, ws.data.cdiag[t]);
        if t + 1 < tt {
            if ddp {
                d.weighted_hessian(&ws.traj.x[t * nx..(t + 1) * nx], &ws.traj.u[t * nu..(t + 1) * nu], &ws.ric.pv[..nx], &mut ws.adj.hess);
                for ((q, c), h) in ws.ric.qzz[..n * n].iter_mut().zip(cm).zip(&ws.adj.hess[..n * n]) {
                    *q = c + h;
                }
            }
            // What the box QP needs now; the state rows after it (`Part`).
            with_row_acc!(ws, n, acc => add_cost_to_go_part::<M>(ws, nx, nu, t, base, acc, Part::ControlsFirst));
        } else {
            ws.ric.qzz.copy_from_slice(cm);
        }
        // Q_uu + μ I, and the box of the step, row by row in registers (element stores followed
        // by the box QP's vector loads would not forward).
        with_row_acc!(ws, nu, acc => {
            let acc = &mut acc[..nu];
            for i in 0..nu {
                acc.copy_from_slice(&ws.ric.qzz[(nx + i) * n + nx..(nx + i + 1) * n]);
                acc[i] += mu;
                ws.ric.quu[i * nu..(i + 1) * nu].copy_from_slice(acc);
            }
        });
        let u = &ws.traj.u[t * nu..(t + 1) * nu];
        for ((d, l), u) in ws.ric.dlo[..nu].iter_mut().zip(&ws.data.lo[t * nu..(t + 1) * nu]).zip(u) {
            *d = l - u;
        }
        for ((d, h), u) in ws.ric.dhi[..nu].iter_mut().zip(&ws.data.hi[t * nu..(t + 1) * nu]).zip(u) {
            *d = h - u;
        }
        let kt = &mut ws.ric.k[t * nu..(t + 1) * nu];
        if ws.scratch.qp.solve_dim(nu, &ws.ric.quu, &ws.ric.qz[nx..], &ws.ric.dlo, &ws.ric.dhi, kt).is_err() {
            return if all_finite(&ws.ric.quu[..nu * nu]) && all_finite(&ws.ric.qz[..n]) {
                RiccatiOutcome::NotPositiveDefinite
            } else {
                RiccatiOutcome::NonFinite
            };
        }
        if *pending > 0 && *pending == t {
            linearize_stage(d, ws, t - 1);
            *pending = t - 1;
        }
        if t == 0 {
            ws.ric.kk[..nu * nx].fill(0.0);
            return if all_finite(&ws.ric.k[..nu]) { RiccatiOutcome::Ok } else { RiccatiOutcome::NonFinite };
        }
        if t + 1 < tt {
            with_row_acc!(ws, n, acc => add_cost_to_go_part::<M>(ws, nx, nu, t, base, acc, Part::StateRows));
        }
        // Feedback gains on the free controls: K_f = -Q_ff⁻¹ Q_fx; zero rows elsewhere. The rows
        // of Q_ux: Q_xu's columns where add_cost_to_go ran (it leaves Q_ux unwritten), else
        // (the last stage: C_t alone, which need not be symmetric to the bit) Q's own rows.
        transpose_q_xu(ws, nx, nu);
        let mirrored = t + 1 < tt;
        let (qzz, qxut) = (&ws.ric.qzz[..n * n], &ws.ric.qxut[..nu * nx]);
        let q_ux = |i: usize| if mirrored { &qxut[i * nx..(i + 1) * nx] } else { &qzz[(nx + i) * n..(nx + i) * n + nx] };
        let kk = &mut ws.ric.kk[t * nu * nx..(t + 1) * nu * nx];
        let free = ws.scratch.qp.free_indices();
        let m = free.len();
        if m == nu {
            // Every control free: solve in place.
            for i in 0..nu {
                neg_copy(&mut kk[i * nx..(i + 1) * nx], q_ux(i));
            }
            ldlt_solve_multi::<M>(ws.scratch.qp.free_factor(), nu, kk, nx);
        } else {
            kk.fill(0.0);
            if m > 0 {
                let rhs = &mut ws.ric.rhs[..m * nx];
                for (a, &i) in free.iter().enumerate() {
                    neg_copy(&mut rhs[a * nx..(a + 1) * nx], q_ux(i));
                }
                ldlt_solve_multi::<M>(ws.scratch.qp.free_factor(), m, rhs, nx);
                for (a, &i) in free.iter().enumerate() {
                    kk[i * nx..(i + 1) * nx].copy_from_slice(&rhs[a * nx..(a + 1) * nx]);
                }
            }
        }
        // (Stage 0 returned above: every stage here needs its `P`.)
        update_cost_to_go::<M>(ws, nx, nu, t, mu == 0.0, true, t + 1 < tt);
        // A non-finite P reaches p one stage earlier, so checking k and p catches it too.
        if !(all_finite(&ws.ric.k[t * nu..(t + 1) * nu]) && all_finite(&ws.ric.pv[..nx])) {
            return RiccatiOutcome::NonFinite;
        }
    }
    RiccatiOutcome::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::arith::{Fused, Fused512, Separate};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `add_cost_to_go` equals the plain dense evaluation (`PA = P A` with every term, sums in
    /// index order, then `Q += Fᵀ [PA PB]` outside the `Q_ux` block, `q += Fᵀ p`) to the bit,
    /// for sparse `A`, `B` and the three accumulator paths, in the rounding and register budget
    /// of every build: the baseline's and AVX2's row-by-row `P F`, and AVX-512's blocked one
    /// (`pf_blocked`: one block of 3 rows of 8, one of 10 rows of 16, blocks of 12 and 1 rows).
    #[test]
    fn cost_to_go_products_equal_the_dense_sums_to_the_bit() {
        assert_eq!((pf_block_rows::<Separate>(16), pf_block_rows::<Fused>(16), pf_block_rows::<Fused512>(16)), (1, 3, 12));
        cost_to_go_products_check::<Separate>();
        cost_to_go_products_check::<Fused>();
        cost_to_go_products_check::<Fused512>();
    }

    fn cost_to_go_products_check<M: Arith>() {
        let mut rng = StdRng::seed_from_u64(5);
        for &(nx, nu) in &[(3, 1), (10, 4), (13, 3), (12, 4), (20, 9), (31, 5)] {
            let n = nx + nu;
            let mut ws = Workspace::new(2, nx, nu);
            let mut r = |zero: f64| if rng.random_range(0.0..1.0) < zero { 0.0 } else { rng.random_range(-1.0..1.0) };
            let a: Vec<f64> = (0..nx * nx).map(|_| r(0.6)).collect();
            let b: Vec<f64> = (0..nx * nu).map(|_| r(0.5)).collect();
            let mut pm = vec![0.0; nx * nx];
            for i in 0..nx {
                for j in 0..=i {
                    let v = r(0.2);
                    pm[i * nx + j] = v;
                    pm[j * nx + i] = v;
                }
            }
            let pv: Vec<f64> = (0..nx).map(|_| r(0.0)).collect();
            let q0: Vec<f64> = (0..n * n).map(|_| r(0.3)).collect();
            let qz0: Vec<f64> = (0..n).map(|_| r(0.0)).collect();
            ws.lin.a[..nx * nx].copy_from_slice(&a);
            ws.lin.b[..nx * nu].copy_from_slice(&b);
            ws.ric.p.copy_from_slice(&pm);
            ws.ric.pv.copy_from_slice(&pv);
            ws.ric.qzz.copy_from_slice(&q0);
            ws.ric.qz.copy_from_slice(&qz0);
            add_cost_to_go::<M>(&mut ws, nx, nu, 0);
            // The same onto a separate base (the Q_ux block then keeps what it was).
            let (q_in_place, qz_in_place) = (ws.ric.qzz.clone(), ws.ric.qz.clone());
            ws.ric.qzz.fill(f64::NAN);
            ws.ric.qzz[nx * n..].copy_from_slice(&q0[nx * n..]);
            for i in 0..nu {
                ws.ric.qzz[(nx + i) * n + nx..(nx + i + 1) * n].fill(f64::NAN);
            }
            ws.ric.qz.copy_from_slice(&qz0);
            add_cost_to_go_onto::<M>(&mut ws, nx, nu, 0, &q0);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ws.ric.qzz), bits(&q_in_place), "Q onto a base (nx={nx}, nu={nu})");
            assert_eq!(bits(&ws.ric.qz), bits(&qz_in_place), "q onto a base (nx={nx}, nu={nu})");
            // Dense reference: F = [A B] (nx×n), PF = P F, Q[i][j] += Σ_k F[k][i] PF[k][j].
            let f = |k: usize, j: usize| if j < nx { a[k * nx + j] } else { b[k * nu + j - nx] };
            let mut pf = vec![0.0; nx * n];
            for k in 0..nx {
                for j in 0..n {
                    let mut s = 0.0;
                    for m in 0..nx {
                        s = madd::<M>(pm[k * nx + m], f(m, j), s);
                    }
                    pf[k * n + j] = s;
                }
            }
            let mut q = q0.clone();
            let mut qz = qz0.clone();
            for i in 0..n {
                // Rows of x: every column; rows of u: the Q_uu columns (Q_ux is mirrored).
                for j in (if i < nx { 0 } else { nx })..n {
                    let mut s = q0[i * n + j];
                    for k in 0..nx {
                        s = madd::<M>(f(k, i), pf[k * n + j], s);
                    }
                    q[i * n + j] = s;
                }
                for k in 0..nx {
                    qz[i] = madd::<M>(pv[k], f(k, i), qz[i]);
                }
            }
            // (Q_ux is left as it was: add_cost_to_go does not write it.)
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ws.ric.qzz[..n * n]), bits(&q), "Q (nx={nx}, nu={nu})");
            assert_eq!(bits(&ws.ric.qz[..n]), bits(&qz), "q (nx={nx}, nu={nu})");
        }
    }

    /// With `linearize`, the pass takes every stage's Jacobians as `linearize_all` does (to the
    /// bit, from `ws.lin` full of NaN) and gives the gains of a pass after `linearize_all`,
    /// with `K_0` zero; a pass stopped early (stage 3's `Q_uu` not positive definite) still
    /// leaves every stage linearised.
    #[test]
    fn the_pass_linearises_every_stage_as_linearize_all_does() {
        use crate::solver::rollout::{linearize_all, load_bounds, load_cost_structure};
        use crate::solver::test_models::Ring;
        use crate::solver::{Bound, ProblemRef};
        let mut rng = StdRng::seed_from_u64(17);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for &(nx, nu) in &[(4, 2), (10, 4), (13, 3)] {
            let (tt, n) = (7, nx + nu);
            let ring = Ring::random(&mut rng, nx, nu);
            let x0: Vec<f64> = (0..nx).map(|_| rng.random_range(-1.0..1.0)).collect();
            let cv: Vec<f64> = (0..tt * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let xs: Vec<f64> = (0..tt * nx).map(|_| rng.random_range(-1.0..1.0)).collect();
            let us: Vec<f64> = (0..tt * nu).map(|_| rng.random_range(-0.2..0.3)).collect();
            let (lo, hi) = (vec![-10.0; nu], vec![10.0; nu]);
            for fail in [false, true] {
                let mut cm = vec![0.0; tt * n * n];
                for t in 0..tt {
                    for i in 0..n {
                        cm[t * n * n + i * n + i] = if fail && t == 3 && i >= nx { -50.0 } else { 1.0 + 0.1 * i as f64 };
                    }
                }
                let p = ProblemRef { x_init: &x0, cm: &cm, cv: &cv, lower: Bound::PerControl(&lo), upper: Bound::PerControl(&hi), u_init: None };
                let prepared = || {
                    let mut ws = Workspace::new(tt, nx, nu);
                    ws.traj.x.copy_from_slice(&xs);
                    ws.traj.u.copy_from_slice(&us);
                    load_bounds(&mut ws, &p);
                    load_cost_structure(&mut ws, &p, n);
                    ws
                };
                let mut apart = prepared();
                linearize_all(&ring, &mut apart);
                let before = riccati::<Ring, Fused512>(&ring, &mut apart, &p, 0.0, false, false);
                let mut along = prepared();
                along.lin.a.fill(f64::NAN);
                along.lin.b.fill(f64::NAN);
                let during = riccati::<Ring, Fused512>(&ring, &mut along, &p, 0.0, false, true);
                assert_eq!(before, during, "nx={nx} fail={fail}");
                assert_eq!(before == RiccatiOutcome::Ok, !fail, "nx={nx}: {before:?}");
                let (la, lb) = ((tt - 1) * nx * nx, (tt - 1) * nx * nu);
                assert_eq!(bits(&along.lin.a[..la]), bits(&apart.lin.a[..la]), "A (nx={nx}, fail={fail})");
                assert_eq!(bits(&along.lin.b[..lb]), bits(&apart.lin.b[..lb]), "B (nx={nx}, fail={fail})");
                if !fail {
                    assert_eq!(bits(&along.ric.k), bits(&apart.ric.k), "k (nx={nx})");
                    assert_eq!(bits(&along.ric.kk), bits(&apart.ric.kk), "K (nx={nx})");
                    assert!(along.ric.kk[..nu * nx].iter().all(|&v| v == 0.0) && along.ric.kk[nu * nx..].iter().any(|&v| v != 0.0));
                }
            }
        }
    }

    /// `update_cost_to_go` equals the plain loops (`p_i = q_i + Σ_l (K_li w_l + Q_il k_l)`,
    /// `P_ij = Q_ij + Σ_l (K_li W_lj + Q_i,nx+l K_lj)` over the non-zero rows of `K`, lower
    /// triangle mirrored) to the bit, with and without the regularised-gain terms, for the three
    /// accumulator paths, a zero row of `K`, and a `Q` whose `Q_ux` is not `Q_xuᵀ` (a last stage
    /// with an asymmetric `C`) or is (`mirrored`).
    #[test]
    fn cost_to_go_update_equals_the_plain_loops_to_the_bit() {
        let mut rng = StdRng::seed_from_u64(9);
        for &(nx, nu) in &[(3, 1), (12, 4), (20, 9), (31, 5)] {
            for (exact_gain, mirrored) in [(true, false), (false, false), (true, true), (false, true)] {
                let n = nx + nu;
                let mut ws = Workspace::new(2, nx, nu);
                let t = 1;
                let mut r = || rng.random_range(-1.0..1.0);
                let mut q: Vec<f64> = (0..n * n).map(|_| r()).collect();
                if mirrored {
                    for l in 0..nu {
                        for i in 0..nx {
                            q[(nx + l) * n + i] = q[i * n + nx + l];
                        }
                    }
                }
                let qz: Vec<f64> = (0..n).map(|_| r()).collect();
                let k: Vec<f64> = (0..nu).map(|_| r()).collect();
                let mut kk: Vec<f64> = (0..nu * nx).map(|_| r()).collect();
                kk[..nx].fill(0.0); // control 0 clamped
                ws.ric.qzz.copy_from_slice(&q);
                ws.ric.qz.copy_from_slice(&qz);
                ws.ric.k[t * nu..(t + 1) * nu].copy_from_slice(&k);
                ws.ric.kk[t * nu * nx..(t + 1) * nu * nx].copy_from_slice(&kk);
                transpose_q_xu(&mut ws, nx, nu);
                update_cost_to_go::<Separate>(&mut ws, nx, nu, t, exact_gain, true, mirrored);
                let mut wv = vec![0.0; nu];
                for i in 0..nu {
                    let mut s = qz[nx + i];
                    for l in 0..nu {
                        s += q[(nx + i) * n + nx + l] * k[l];
                    }
                    wv[i] = s;
                }
                let mut pv = vec![0.0; nx];
                for i in 0..nx {
                    let mut s = qz[i];
                    for l in 0..nu {
                        s += kk[l * nx + i] * wv[l] + q[i * n + nx + l] * k[l];
                    }
                    pv[i] = s;
                }
                let rows: Vec<usize> = (1..nu).collect();
                let mut w = vec![0.0; nu * nx];
                for &i in &rows {
                    for j in 0..nx {
                        let mut s = q[(nx + i) * n + j];
                        for &l in &rows {
                            s += q[(nx + i) * n + nx + l] * kk[l * nx + j];
                        }
                        w[i * nx + j] = s;
                    }
                }
                let mut pm = vec![0.0; nx * nx];
                for i in 0..nx {
                    for j in 0..=i {
                        let mut s = q[i * n + j];
                        for &l in &rows {
                            if !exact_gain {
                                s += kk[l * nx + i] * w[l * nx + j];
                            }
                            s += q[i * n + nx + l] * kk[l * nx + j];
                        }
                        pm[i * nx + j] = s;
                        pm[j * nx + i] = s;
                    }
                }
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ws.ric.pv[..nx]), bits(&pv), "p (nx={nx}, nu={nu}, exact_gain={exact_gain})");
                assert_eq!(bits(&ws.ric.p[..nx * nx]), bits(&pm), "P (nx={nx}, nu={nu}, exact_gain={exact_gain})");
            }
        }
    }
}
