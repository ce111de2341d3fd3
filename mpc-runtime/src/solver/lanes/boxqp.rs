//! The box QP of the Riccati pass (`boxqp::BoxQp`) for every lane at once where it takes its
//! common course: every control free at the start, `Q` positive definite, the full Newton step
//! inside the box and accepted, and every control still free after it (or the step already
//! negligible). That is `BoxQp::solve_dim`'s first iteration and its convergence test, with its
//! operations in its order per lane (so each lane gets the per-lane solve's bits), vectorised
//! across lanes. A lane that leaves this course is solved by `BoxQp` from its start as before.

use super::backward::lane_cholesky;
use super::{LANES, V, add_mul, sub_mul};

/// Lane buffers of the box QP (`Q` nu×nu and its Cholesky factor, `c`, bounds, iterate,
/// gradient, step, trial), allocated with the lane workspace.
#[derive(Clone, Debug)]
pub(crate) struct LaneBoxQp {
    pub q: Vec<V>,
    pub chol: Vec<V>,
    pub c: Vec<V>,
    pub lo: Vec<V>,
    pub hi: Vec<V>,
    pub x: Vec<V>,
    g: Vec<V>,
    s: Vec<V>,
    xt: Vec<V>,
}

impl LaneBoxQp {
    pub(crate) fn new(nu: usize) -> Self {
        let v = |len: usize| vec![[0.0; LANES]; len];
        Self { q: v(nu * nu), chol: v(nu * nu), c: v(nu), lo: v(nu), hi: v(nu), x: v(nu), g: v(nu), s: v(nu), xt: v(nu) }
    }
}

/// `BoxQp`'s objective `½ xᵀQx + cᵀx` per lane (`linalg::quad_cost`'s operations).
#[inline(always)]
fn objective(q: &[V], c: &[V], x: &[V], n: usize) -> V {
    let (mut qq, mut l) = ([0.0; LANES], [0.0; LANES]);
    for i in 0..n {
        let mut r = [0.0; LANES];
        for j in 0..n {
            r = add_mul(r, q[i * n + j], x[j]);
        }
        qq = add_mul(qq, x[i], r);
        l = add_mul(l, x[i], c[i]);
    }
    std::array::from_fn(|k| 0.5 * qq[k] + l[k])
}

/// `g = c + Q x` per lane (`BoxQp::gradient`).
#[inline(always)]
fn gradient(g: &mut [V], q: &[V], c: &[V], x: &[V], n: usize) {
    for i in 0..n {
        let mut s = c[i];
        for j in 0..n {
            s = add_mul(s, q[i * n + j], x[j]);
        }
        g[i] = s;
    }
}

/// Per lane: no control clamped (`BoxQp::classify` finds every one free).
#[inline(always)]
fn all_free(x: &[V], g: &[V], lo: &[V], hi: &[V], n: usize) -> [bool; LANES] {
    let mut ok = [true; LANES];
    for i in 0..n {
        for l in 0..LANES {
            let clamped = (x[i][l] <= lo[i][l] && g[i][l] > 0.0) || (x[i][l] >= hi[i][l] && g[i][l] < 0.0);
            ok[l] &= !clamped;
        }
    }
    ok
}

/// Solve the box QPs in `b` (`q` with `μ` on its diagonal, `c`, `lo`, `hi`, warm start in `x`)
/// for the lanes in `on` that take the common course (see the module documentation): per lane
/// whether it did. Where it did, `b.x` holds the solution and `b.chol` the Cholesky factor of
/// the whole `Q` (every control free), as `BoxQp` leaves them; elsewhere both are undefined.
#[inline(always)]
pub(crate) fn solve_interior(b: &mut LaneBoxQp, n: usize, on: &[bool; LANES]) -> [bool; LANES] {
    let mut done = *on;
    for i in 0..n {
        for l in 0..LANES {
            b.x[i][l] = b.x[i][l].max(b.lo[i][l]).min(b.hi[i][l]);
        }
    }
    // Iteration 0: every control free, the factor of Q, the Newton step.
    let f = objective(&b.q, &b.c, &b.x, n);
    gradient(&mut b.g, &b.q, &b.c, &b.x, n);
    let free = all_free(&b.x, &b.g, &b.lo, &b.hi, n);
    for l in 0..LANES {
        done[l] &= free[l];
    }
    if !done.iter().any(|&d| d) {
        return done;
    }
    b.chol[..n * n].copy_from_slice(&b.q[..n * n]);
    // `lane_cholesky`'s pivot test on every row: all free.
    let (ones, mut heap) = ([[1.0; LANES]; 16], Vec::new());
    let ones: &[V] = if n <= 16 {
        &ones
    } else {
        heap.resize(n, [1.0; LANES]);
        &heap
    };
    let pd = lane_cholesky(&mut b.chol, n, 1e-13, ones);
    for l in 0..LANES {
        done[l] &= pd[l];
    }
    if !done.iter().any(|&d| d) {
        return done;
    }
    for i in 0..n {
        b.s[i] = b.g[i].map(|v| -v);
    }
    // `linalg::cholesky_solve`: a division per row.
    for i in 0..n {
        let mut s = b.s[i];
        for k in 0..i {
            s = sub_mul(s, b.chol[i * n + k], b.s[k]);
        }
        b.s[i] = std::array::from_fn(|l| s[l] / b.chol[i * n + i][l]);
    }
    for i in (0..n).rev() {
        let mut s = b.s[i];
        for k in i + 1..n {
            s = sub_mul(s, b.chol[k * n + i], b.s[k]);
        }
        b.s[i] = std::array::from_fn(|l| s[l] / b.chol[i * n + i][l]);
    }
    let (mut smax, mut xmax) = ([0.0f64; LANES], [0.0f64; LANES]);
    for i in 0..n {
        for l in 0..LANES {
            smax[l] = smax[l].max(b.s[i][l].abs());
            xmax[l] = xmax[l].max(b.x[i][l].abs());
        }
    }
    // A negligible step: `BoxQp` stops here, the start its solution.
    let negligible: [bool; LANES] = std::array::from_fn(|l| smax[l] <= 1e-15 * (1.0 + xmax[l]));
    // The full step: inside the box (not projected) and accepted by the Armijo test.
    let mut gd = [0.0; LANES];
    let mut inside = [true; LANES];
    for i in 0..n {
        for l in 0..LANES {
            let v = b.x[i][l] + 1.0 * b.s[i][l];
            let p = v.max(b.lo[i][l]).min(b.hi[i][l]);
            inside[l] &= p == v;
            b.xt[i][l] = p;
            gd[l] += b.g[i][l] * (p - b.x[i][l]);
        }
    }
    let ft = objective(&b.q, &b.c, &b.xt, n);
    // Iteration 1: the gradient at the new point; every control still free ends the solve.
    gradient(&mut b.g, &b.q, &b.c, &b.xt, n);
    let still_free = all_free(&b.xt, &b.g, &b.lo, &b.hi, n);
    for l in 0..LANES {
        let noise = 1e-14 * (1.0 + f[l].abs());
        let stepped = inside[l] && ft[l] <= f[l] + 0.1 * gd[l] + noise && still_free[l];
        done[l] &= negligible[l] || stepped;
        if done[l] && !negligible[l] {
            for i in 0..n {
                b.x[i][l] = b.xt[i][l];
            }
        }
    }
    done
}
