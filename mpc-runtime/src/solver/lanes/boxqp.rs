//! The box QP of the Riccati pass (`boxqp::BoxQp`) for every lane at once where it takes its
//! common course: `Q` positive definite and the unconstrained minimiser `-Q⁻¹c` strictly inside
//! the box, which `BoxQp::solve_dim` then returns without iterating. Its operations in its
//! order per lane (so each lane gets the per-lane solve's bits), vectorised across lanes. A lane
//! that leaves this course is solved by `BoxQp` from its start as before.

use super::backward::lane_ldlt_from;
use crate::solver::aligned::Aligned;
use super::{LANES, V, sub_mul};
use crate::solver::arith::Separate;

/// Lane buffers of the box QP (`Q` nu×nu and its `L D Lᵀ` factor, `c`, bounds, solution,
/// unconstrained minimiser), allocated with the lane workspace.
#[derive(Clone, Debug)]
pub(crate) struct LaneBoxQp {
    pub q: Aligned<V>,
    pub chol: Aligned<V>,
    pub c: Aligned<V>,
    pub lo: Aligned<V>,
    pub hi: Aligned<V>,
    pub x: Aligned<V>,
    s: Aligned<V>,
}

impl LaneBoxQp {
    pub(crate) fn new(nu: usize) -> Self {
        let v = |len: usize| Aligned::new(len, [0.0; LANES]);
        Self { q: v(nu * nu), chol: v(nu * nu), c: v(nu), lo: v(nu), hi: v(nu), x: v(nu), s: v(nu) }
    }
}

/// Solve the box QPs in `b` (`q` with `μ` on its diagonal, `c`, `lo`, `hi`) for the lanes in
/// `on` that take the common course (see the module documentation): per lane whether it did.
/// Where it did, `b.x` holds the solution and `b.chol` the `L D Lᵀ` factor of the whole `Q`
/// (every control free), as `BoxQp` leaves them; elsewhere both are undefined.
#[inline(always)]
pub(crate) fn solve_interior(b: &mut LaneBoxQp, n: usize, on: &[bool; LANES]) -> [bool; LANES] {
    let mut done = *on;
    // `lane_ldlt`'s pivot test on every row: all free.
    let (ones, mut heap) = ([[1.0; LANES]; 16], Vec::new());
    let ones: &[V] = if n <= 16 {
        &ones
    } else {
        heap.resize(n, [1.0; LANES]);
        &heap
    };
    let pd = lane_ldlt_from(&b.q, &mut b.chol, n, 1e-13, ones);
    for l in 0..LANES {
        done[l] &= pd[l];
    }
    if !done.iter().any(|&d| d) {
        return done;
    }
    for i in 0..n {
        b.s[i] = b.c[i].map(|v| -v);
    }
    // `linalg::ldlt_solve`: L y = -c, then Lᵀ x = D⁻¹ y.
    for i in 0..n {
        let mut s = b.s[i];
        for k in 0..i {
            s = sub_mul::<Separate>(s, b.chol[i * n + k], b.s[k]);
        }
        b.s[i] = s;
    }
    for i in (0..n).rev() {
        let r = b.chol[i * n + i].map(|v| 1.0 / v);
        let mut s: V = std::array::from_fn(|l| b.s[i][l] * r[l]);
        for k in i + 1..n {
            s = sub_mul::<Separate>(s, b.chol[k * n + i], b.s[k]);
        }
        b.s[i] = s;
    }
    // Strictly inside the box: the solution.
    for i in 0..n {
        for l in 0..LANES {
            done[l] &= b.lo[i][l] < b.s[i][l] && b.s[i][l] < b.hi[i][l];
        }
    }
    for l in 0..LANES {
        if done[l] {
            for i in 0..n {
                b.x[i][l] = b.s[i][l];
            }
        }
    }
    done
}
