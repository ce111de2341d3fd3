//! The implicit-differentiation backward pass (`solver::backward`) for a lane group: the
//! adjoint LQR's Riccati recursion with each lane's active set held fixed, its forward sweep,
//! and the outputs `dL/dC`, `dL/dc`, `dL/dx_init`, every entry with the per-problem pass's
//! operations in its order. The free blocks are factored for all lanes at once, each lane's
//! spread over `nu × nu` with the identity on its active controls.
//!
//! Covers the Gauss-Newton Hessian (and the exact one of models without curvature) without
//! parameter gradients ([`backward_applies`]); a lane whose free block is not numerically
//! positive definite is reported, and its problem is redone by the per-problem pass (which
//! falls back to a pivoted LU there).

// Lane loops index several arrays by the same lane on purpose (one vector operation each).
#![allow(clippy::needless_range_loop)]

use crate::solver::arith::Arith;
use super::{Hess, LANES, LaneWorkspace, Structure, V, ZERO, add_cost_to_go, lane_ldlt_solve, linearize_all, load, update_cost_to_go};
use crate::lane::neg;
use crate::model::Dynamics;
use crate::solver::backward::{copy_streaming, outer_bounded, stream_fence, sym_outer};
use crate::solver::status::finite;
use crate::solver::isa::isa_builds;
use crate::solver::{ACTIVE_TOL, GradientMode, ProblemRef};

/// Whether the lane backward pass serves this mode, model and parameter-gradient request.
pub(crate) fn backward_applies<D: Dynamics>(d: &D, mode: GradientMode, np: usize) -> bool {
    np == 0 && (mode == GradientMode::GaussNewton || !d.has_curvature())
}

isa_builds! {
    /// Gradients of up to [`LANES`] solved problems (`probs[l]`, its solution at
    /// `xs[l·T·nx..]`, `us[l·T·nu..]`, upstream gradients likewise; outputs at
    /// `grad_cm[l·T·n²..]`, `grad_cv[l·T·n..]`, `grad_x0[l·nx..]`; `dL/dC` with non-temporal
    /// stores where `stream`, for outputs far larger than the caches). Returns, per lane,
    /// whether its free block needed more than an `L D Lᵀ` factorisation (that problem must be
    /// redone by the per-problem pass), and whether its outputs came out finite (tested as they
    /// were written, so that nobody reads them back). Only where [`backward_applies`] holds.
    /// Runs the build of [`Isa::for_backward`](crate::solver::isa::Isa::for_backward).
    pub(crate) fn backward_lanes by crate::solver::isa::Isa::for_backward;
    /// [`backward_lanes`] in the build `isa`.
    pub(crate) fn backward_lanes_with = backward_lanes_impl(
        d: &D,
        ws: &mut LaneWorkspace,
        probs: &[ProblemRef<'_>],
        xs: &[f64],
        us: &[f64],
        gx: &[f64],
        gu: &[f64],
        grad_cm: &mut [f64],
        grad_cv: &mut [f64],
        grad_x0: &mut [f64],
        stream: bool,
        structure: Option<&[u8]>,
    ) -> ([bool; LANES], [bool; LANES])
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_lanes_impl<D: Dynamics, M: Arith>(
    d: &D,
    ws: &mut LaneWorkspace,
    probs: &[ProblemRef<'_>],
    xs: &[f64],
    us: &[f64],
    gx: &[f64],
    gu: &[f64],
    grad_cm: &mut [f64],
    grad_cv: &mut [f64],
    grad_x0: &mut [f64],
    stream: bool,
    structure: Option<&[u8]>,
) -> ([bool; LANES], [bool; LANES]) {
    let (nx, nu, tt) = (d.nx(), d.nu(), ws.horizon);
    let n = nx + nu;
    let g = probs.len();
    assert!((1..=LANES).contains(&g), "backward_lanes: 1 to {LANES} problems");
    // The cost Hessians' structure from the solve where it recorded it (a pass over all of `C`
    // saved), else tested here.
    load(ws, probs, nx, nu, false, structure.map_or(Structure::Test(None), Structure::Known));
    let pack = |dst: &mut [V], src: &[f64], len: usize| {
        for (i, e) in dst[..len].iter_mut().enumerate() {
            for l in 0..LANES {
                e[l] = src[l.min(g - 1) * len + i];
            }
        }
    };
    pack(&mut ws.x, xs, tt * nx);
    pack(&mut ws.u, us, tt * nu);
    // The upstream gradients go where the trial trajectories live in the forward solve.
    pack(&mut ws.xt, gx, tt * nx);
    pack(&mut ws.ut, gu, tt * nu);
    linearize_all(d, ws);
    let mut failed = [false; LANES];
    let mut stack = [ZERO; 16];
    let mut heap = if n > 16 { std::mem::take(&mut ws.acc) } else { Default::default() };
    let acc: &mut [V] = if n <= 16 { &mut stack } else { &mut heap };
    for t in (0..tt).rev() {
        let h = Hess::of(&ws.compact, &ws.cmd, &ws.cm, t, n);
        ws.qz[..nx].copy_from_slice(&ws.xt[t * nx..(t + 1) * nx]);
        ws.qz[nx..n].copy_from_slice(&ws.ut[t * nu..(t + 1) * nu]);
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
        // Free controls: not within ACTIVE_TOL of a bound (1/0 per lane). Every per-lane
        // choice below is a select on whole vectors (`&`, `|`: no branch per lane) over local
        // slices (stores through the workspace made the compiler reload its fields).
        let (us, los, his) = (&ws.u[t * nu..(t + 1) * nu], &ws.lo[t * nu..(t + 1) * nu], &ws.hi[t * nu..(t + 1) * nu]);
        let free = &mut ws.free[..nu];
        for i in 0..nu {
            let (u, lo, hi) = (us[i], los[i], his[i]);
            let mut f = ZERO;
            for l in 0..LANES {
                let on = ((u[l] - lo[l]).abs() <= ACTIVE_TOL) | ((hi[l] - u[l]).abs() <= ACTIVE_TOL);
                f[l] = if on { 0.0 } else { 1.0 };
            }
            free[i] = f;
        }
        // The free block, identity on the active controls, and the right-hand sides
        // [-Q_fx, -q_f] (zero rows on the active controls).
        let (free, qzz, qz) = (&ws.free[..nu], &ws.qzz[..n * n], &ws.qz[..n]);
        let lf = &mut ws.lf[..nu * nu];
        for i in 0..nu {
            for j in 0..nu {
                let (q, fi, fj) = (qzz[(nx + i) * n + nx + j], free[i], free[j]);
                let diag = if i == j { 1.0 } else { 0.0 };
                lf[i * nu + j] = select(and(nonzero(fi), nonzero(fj)), q, [diag; LANES]);
            }
        }
        let kk = &mut ws.kk[t * nu * nx..(t + 1) * nu * nx];
        let k = &mut ws.k[t * nu..(t + 1) * nu];
        for i in 0..nu {
            let f = free[i];
            let m = nonzero(f);
            for (kv, qv) in kk[i * nx..(i + 1) * nx].iter_mut().zip(&qzz[(nx + i) * n..(nx + i) * n + nx]) {
                *kv = select(m, neg(*qv), ZERO);
            }
            k[i] = select(m, neg(qz[nx + i]), ZERO);
        }
        let ok = lane_ldlt(&mut ws.lf, nu, 1e-14, &ws.free);
        for l in 0..LANES {
            failed[l] |= !ok[l];
        }
        lane_ldlt_solve::<M>(&ws.lf, nu, kk, nx);
        lane_ldlt_solve::<M>(&ws.lf, nu, k, 1);
        // K solves the unregularised free block exactly: the short formula.
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
            &[true; LANES],
            t > 0,
            t + 1 < tt,
        );
    }
    if n > 16 {
        ws.acc = heap;
    }
    let mut finite_out = [true; LANES];
    for l in 0..g {
        for i in 0..nx {
            grad_x0[l * nx + i] = ws.pv[i][l];
        }
        finite_out[l] = finite(&grad_x0[l * nx..(l + 1) * nx]);
    }
    // Forward: d_x0 = 0, d_u = K d_x + k, d_x' = A d_x + B d_u, every stage's (d_x, d_u) kept
    // in `xt`, `ut` (the upstream gradients there were read by the Riccati pass above).
    let mut dx = std::mem::take(&mut ws.xn);
    dx.fill(ZERO);
    let mut dz = std::mem::take(&mut ws.z);
    for t in 0..tt {
        dz[..nx].copy_from_slice(&dx);
        for i in 0..nu {
            let mut s = ws.k[t * nu + i];
            let row = &ws.kk[t * nu * nx + i * nx..t * nu * nx + (i + 1) * nx];
            for j in 0..nx {
                for l in 0..LANES {
                    s[l] += row[j][l] * dx[j][l];
                }
            }
            dz[nx + i] = s;
        }
        if t + 1 < tt {
            let a = &ws.a[t * nx * nx..(t + 1) * nx * nx];
            let b = &ws.b[t * nx * nu..(t + 1) * nx * nu];
            for i in 0..nx {
                let mut s = ZERO;
                for j in 0..nx {
                    for l in 0..LANES {
                        s[l] += a[i * nx + j][l] * dz[j][l];
                    }
                }
                for j in 0..nu {
                    for l in 0..LANES {
                        s[l] += b[i * nu + j][l] * dz[nx + j][l];
                    }
                }
                dx[i] = s;
            }
        }
        ws.xt[t * nx..(t + 1) * nx].copy_from_slice(&dz[..nx]);
        ws.ut[t * nu..(t + 1) * nu].copy_from_slice(&dz[nx..n]);
    }
    // The outputs lane by lane, each lane's stages in order: its dL/dC is one contiguous run
    // written front to back (stage-major over the lanes interleaved four streams, and the
    // non-temporal stores' write-combining lost the partial lines between blocks).
    let (zs, ds, sg) = (&mut ws.sz[..tt * n], &mut ws.sd[..tt * n], &mut ws.sg[..n * n]);
    for l in 0..g {
        // The lane's z and d of every stage contiguous, for the per-problem pass's own writer
        // (its rows vectorise; a lane-strided writer here was a third of this pass).
        for t in 0..tt {
            let (x, u) = (&ws.x[t * nx..(t + 1) * nx], &ws.u[t * nu..(t + 1) * nu]);
            let (dxs, dus) = (&ws.xt[t * nx..(t + 1) * nx], &ws.ut[t * nu..(t + 1) * nu]);
            let (z, dd) = (&mut zs[t * n..(t + 1) * n], &mut ds[t * n..(t + 1) * n]);
            for j in 0..nx {
                (z[j], dd[j]) = (x[j][l], dxs[j][l]);
            }
            for j in 0..nu {
                (z[nx + j], dd[nx + j]) = (u[j][l], dus[j][l]);
            }
        }
        grad_cv[l * tt * n..(l + 1) * tt * n].copy_from_slice(ds);
        let mut ok = finite(ds) && finite(zs);
        let cm = &mut grad_cm[l * tt * n * n..(l + 1) * tt * n * n];
        for t in 0..tt {
            let (z, dd) = (&zs[t * n..(t + 1) * n], &ds[t * n..(t + 1) * n]);
            let out = &mut cm[t * n * n..(t + 1) * n * n];
            // Finite z and d bound every entry by max|z|·max|d|; only a block whose bound may
            // overflow is tested entry by entry (where it was formed, in L1).
            let bounded = ok && outer_bounded(z, dd);
            if stream {
                sym_outer(sg, z, dd, n);
                copy_streaming(out, sg);
                ok &= bounded || finite(sg);
            } else {
                sym_outer(out, z, dd, n);
                ok &= bounded || finite(out);
            }
        }
        finite_out[l] &= ok;
    }
    if stream {
        stream_fence();
    }
    ws.xn = dx;
    ws.z = dz;
    (failed, finite_out)
}

/// Per lane: all bits set where `v` is not zero (a vector compare).
#[inline(always)]
fn nonzero(v: V) -> [u64; LANES] {
    let mut m = [0; LANES];
    for l in 0..LANES {
        m[l] = 0u64.wrapping_sub(u64::from(v[l] != 0.0));
    }
    m
}

/// Per lane `a & b` of two masks.
#[inline(always)]
fn and(a: [u64; LANES], b: [u64; LANES]) -> [u64; LANES] {
    let mut m = a;
    for l in 0..LANES {
        m[l] &= b[l];
    }
    m
}

/// Per lane `a` where the mask is set, else `b` (bitwise: a branch-free blend, the same
/// values as `if`).
#[inline(always)]
fn select(m: [u64; LANES], a: V, b: V) -> V {
    let mut r = ZERO;
    for l in 0..LANES {
        r[l] = f64::from_bits((a[l].to_bits() & m[l]) | (b[l].to_bits() & !m[l]));
    }
    r
}

/// `linalg::ldlt` of every lane's free block, spread over `n × n` with the identity on the
/// lane's other rows and columns (`free[i][l]` 1 or 0): the same operations per entry of the
/// free block, plus `0·0` terms, and the pivot test only on free pivots. Per lane whether the
/// free block is numerically positive definite.
#[inline(always)]
pub(super) fn lane_ldlt(a: &mut [V], n: usize, rel_tol: f64, free: &[V]) -> [bool; LANES] {
    lane_ldlt_core(None, a, n, rel_tol, free)
}

/// [`lane_ldlt`] of `src` into `l` (as `linalg::ldlt_from`: no copy first).
#[inline(always)]
pub(super) fn lane_ldlt_from(src: &[V], l: &mut [V], n: usize, rel_tol: f64, free: &[V]) -> [bool; LANES] {
    lane_ldlt_core(Some(&src[..n * n]), l, n, rel_tol, free)
}

/// [`lane_ldlt`] of `src`, or of `a` itself, into `a`.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(d > floor)` also catches NaN
fn lane_ldlt_core(src: Option<&[V]>, a: &mut [V], n: usize, rel_tol: f64, free: &[V]) -> [bool; LANES] {
    let a = &mut a[..n * n];
    // Entry k of A as it was before the factorisation.
    let orig = |a: &[V], k: usize| match src {
        Some(s) => s[k],
        None => a[k],
    };
    // Per-lane choices as whole-vector selects (`&`, `|`, no branch per lane).
    let mut dmax = ZERO;
    for i in 0..n {
        let (d, f) = (orig(a, i * n + i), free[i]);
        for l in 0..LANES {
            let m = dmax[l].max(d[l].abs());
            dmax[l] = if f[l] != 0.0 { m } else { dmax[l] };
        }
    }
    let mut ok = [true; LANES];
    for j in 0..n {
        let mut d = orig(a, j * n + j);
        for k in 0..j {
            for l in 0..LANES {
                d[l] -= a[j * n + k][l] * a[k * n + j][l];
            }
        }
        let f = free[j];
        for l in 0..LANES {
            ok[l] &= !((f[l] != 0.0) & (!(d[l] > rel_tol * dmax[l]) | !d[l].is_finite()));
        }
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = orig(a, i * n + j);
            for k in 0..j {
                for l in 0..LANES {
                    s[l] -= a[i * n + k][l] * a[k * n + j][l];
                }
            }
            a[j * n + i] = s;
            for l in 0..LANES {
                s[l] /= d[l];
            }
            a[i * n + j] = s;
        }
    }
    ok
}

