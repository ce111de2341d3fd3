//! Box-constrained quadratic programs `min ½ xᵀ Q x + cᵀ x  s.t.  lo ≤ x ≤ hi` with `Q`
//! positive definite, solved by projected Newton (Bertsekas 1982, as in Tassa et al. 2014)
//! **to full accuracy**: the iteration stops only when a full, unprojected Newton step on the
//! free face leaves the active set unchanged, i.e. at the exact minimiser (to rounding) with
//! correct multiplier signs, not at a relative-improvement threshold. Where the unconstrained
//! minimiser lies strictly inside the box (the usual case in a Riccati pass) it is the solution,
//! computed directly: one factorisation and one solve, no iteration.

use super::aligned::Aligned;
use super::linalg::{ldlt, ldlt_from, ldlt_solve};

/// Why a box QP could not be solved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxQpError {
    /// `Q` is not numerically positive definite.
    NotPositiveDefinite,
}

/// Iteration cap of the projected Newton method (never reached in practice: for a QP the
/// method identifies the active set in a handful of steps).
const MAX_ITERS: usize = 100;

/// Reusable scratch space and result of a box QP of dimension `n`.
#[derive(Clone, Debug)]
pub struct BoxQp {
    n: usize,
    g: Aligned<f64>,
    s: Aligned<f64>,
    xt: Aligned<f64>,
    clamped: Vec<bool>,
    idx: Vec<usize>,
    nfree: usize,
    chol: Aligned<f64>,
    rhs: Aligned<f64>,
}

impl BoxQp {
    /// Scratch space for problems of dimension `n`.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            g: Aligned::new(n, 0.0),
            s: Aligned::new(n, 0.0),
            xt: Aligned::new(n, 0.0),
            clamped: vec![false; n],
            idx: vec![0; n],
            nfree: 0,
            chol: Aligned::new(n * n, 0.0),
            rhs: Aligned::new(n, 0.0),
        }
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// Indices of the free (not clamped) variables at the solution, ascending.
    pub fn free_indices(&self) -> &[usize] {
        &self.idx[..self.nfree]
    }

    /// Whether variable `i` is clamped (on a bound with its gradient pushing outwards) at the
    /// solution.
    pub fn is_clamped(&self, i: usize) -> bool {
        self.clamped[i]
    }

    /// Factor `L D Lᵀ` ([`ldlt`](super::linalg::ldlt), `m × m`, `m` = number of free
    /// variables) of the free block `Q_ff` at the solution.
    pub fn free_factor(&self) -> &[f64] {
        let m = self.nfree;
        &self.chol[..m * m]
    }

    #[inline(always)]
    fn objective(q: &[f64], c: &[f64], x: &[f64], n: usize) -> f64 {
        super::linalg::quad_cost(q, c, x, n)
    }

    #[inline(always)]
    fn gradient(&mut self, n: usize, q: &[f64], c: &[f64], x: &[f64]) {
        for i in 0..n {
            let mut s = c[i];
            for j in 0..n {
                s += q[i * n + j] * x[j];
            }
            self.g[i] = s;
        }
    }

    /// Classify the variables at `x` (gradient in `self.g`); returns whether any changed class.
    #[inline(always)]
    fn classify(&mut self, n: usize, x: &[f64], lo: &[f64], hi: &[f64]) -> bool {
        let (g, clamped, idx) = (&self.g[..n], &mut self.clamped[..n], &mut self.idx[..n]);
        let (x, lo, hi) = (&x[..n], &lo[..n], &hi[..n]);
        let mut m = 0;
        let mut changed = false;
        for i in 0..n {
            let c = (x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0);
            changed |= c != clamped[i];
            clamped[i] = c;
            if !c {
                idx[m] = i;
                m += 1;
            }
        }
        self.nfree = m;
        changed
    }

    /// Factor the free block of `q` into `self.chol`.
    #[inline(always)]
    fn factor_free(&mut self, n: usize, q: &[f64]) -> Result<(), BoxQpError> {
        let m = self.nfree;
        let ok = if m == n {
            // Every variable free (the usual case): the whole Q, with the caller's (constant) size.
            ldlt_from(q, &mut self.chol[..n * n], n, 1e-13)
        } else {
            for a in 0..m {
                for b in 0..m {
                    self.chol[a * m + b] = q[self.idx[a] * n + self.idx[b]];
                }
            }
            ldlt(&mut self.chol[..m * m], m, 1e-13)
        };
        if ok { Ok(()) } else { Err(BoxQpError::NotPositiveDefinite) }
    }

    /// Solve the box QP; `x` holds the warm start on entry (it is projected onto the box first)
    /// and the solution on exit. `lo`/`hi` may hold infinities. Returns the number of Newton
    /// iterations. Afterwards [`BoxQp::free_indices`] and [`BoxQp::free_factor`] describe
    /// the free face of the solution.
    pub fn solve(&mut self, q: &[f64], c: &[f64], lo: &[f64], hi: &[f64], x: &mut [f64]) -> Result<usize, BoxQpError> {
        self.solve_dim(self.n, q, c, lo, hi, x)
    }

    /// [`BoxQp::solve`] with the dimension passed in (`n == self.dim()`), inlined so that a
    /// caller with a compile-time `n` gets fixed-trip-count loops.
    #[inline(always)]
    pub(crate) fn solve_dim(
        &mut self,
        n: usize,
        q: &[f64],
        c: &[f64],
        lo: &[f64],
        hi: &[f64],
        x: &mut [f64],
    ) -> Result<usize, BoxQpError> {
        assert_eq!(n, self.n, "BoxQp: dimension mismatch");
        // Positive definiteness of the whole Q (so every face is PD and the minimiser unique),
        // and the unconstrained minimiser -Q⁻¹c: strictly inside the box, it is the solution,
        // every variable free (the usual case in a Riccati pass; no warm start needed).
        if !ldlt_from(q, &mut self.chol[..n * n], n, 1e-13) {
            return Err(BoxQpError::NotPositiveDefinite);
        }
        let rhs = &mut self.rhs[..n];
        for (r, ci) in rhs.iter_mut().zip(&c[..n]) {
            *r = -ci;
        }
        ldlt_solve(&self.chol[..n * n], n, rhs);
        if (0..n).all(|i| lo[i] < rhs[i] && rhs[i] < hi[i]) {
            x[..n].copy_from_slice(rhs);
            self.clamped[..n].fill(false);
            for (i, v) in self.idx[..n].iter_mut().enumerate() {
                *v = i;
            }
            self.nfree = n;
            return Ok(0);
        }
        // Some bound is active: projected Newton from the warm start.
        for i in 0..n {
            x[i] = x[i].max(lo[i]).min(hi[i]);
        }
        let mut f = Self::objective(q, c, x, n);
        let mut last_full = false;
        let mut chol_current = false;
        let mut iters = 0;
        for it in 0..MAX_ITERS {
            iters = it;
            if it > 0 && last_full && self.nfree == n && (0..n).all(|i| lo[i] < x[i] && x[i] < hi[i]) {
                // Every variable was free and none is on a bound now: every one stays free
                // whatever the gradient, so the classes are unchanged (as `classify` would find).
                chol_current = true;
                break;
            }
            self.gradient(n, q, c, x);
            let changed = self.classify(n, x, lo, hi);
            if it > 0 && last_full && !changed {
                // Exact minimiser on this face, and the multipliers of the clamped variables have
                // the right sign: optimal. The factor in `chol` is that of this face.
                chol_current = true;
                break;
            }
            let m = self.nfree;
            if m == 0 {
                break;
            }
            if it > 0 || m < n {
                // (Every variable free at the start: `chol` holds that factor already.)
                self.factor_free(n, q)?;
            }
            chol_current = true;
            // Newton step on the free face.
            for a in 0..m {
                self.rhs[a] = -self.g[self.idx[a]];
            }
            if m == n {
                ldlt_solve(&self.chol[..n * n], n, &mut self.rhs[..n]);
            } else {
                ldlt_solve(&self.chol[..m * m], m, &mut self.rhs[..m]);
            }
            self.s[..n].fill(0.0);
            let mut smax = 0.0f64;
            let mut xmax = 0.0f64;
            for a in 0..m {
                let i = self.idx[a];
                self.s[i] = self.rhs[a];
                smax = smax.max(self.rhs[a].abs());
                xmax = xmax.max(x[i].abs());
            }
            if smax <= 1e-15 * (1.0 + xmax) {
                break;
            }
            // Projected back-tracking line search (Armijo along the projection arc).
            let noise = 1e-14 * (1.0 + f.abs());
            let mut alpha = 1.0;
            let mut accepted = false;
            let mut projected = false;
            while alpha > 1e-12 {
                projected = false;
                let mut gd = 0.0;
                let (xt, s, g) = (&mut self.xt[..n], &self.s[..n], &self.g[..n]);
                let (x, lo, hi) = (&x[..n], &lo[..n], &hi[..n]);
                // The trial point element-wise first (vector stores, which the objective's vector
                // loads can forward from), then the projection test and the slope in order.
                for i in 0..n {
                    xt[i] = (x[i] + alpha * s[i]).max(lo[i]).min(hi[i]);
                }
                for i in 0..n {
                    let v = x[i] + alpha * s[i];
                    let p = xt[i];
                    if p != v {
                        projected = true;
                    }
                    gd += g[i] * (p - x[i]);
                }
                let ft = Self::objective(q, c, &self.xt, n);
                if ft <= f + 0.1 * gd + noise {
                    f = ft;
                    accepted = true;
                    break;
                }
                alpha *= 0.5;
            }
            if !accepted {
                break;
            }
            last_full = alpha == 1.0 && !projected;
            x[..n].copy_from_slice(&self.xt[..n]);
            chol_current = false;
        }
        // Final face: classify at the final point and factor its free block.
        if !chol_current {
            self.gradient(n, q, c, x);
            self.classify(n, x, lo, hi);
            if self.nfree > 0 {
                self.factor_free(n, q)?;
            }
        }
        Ok(iters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: for every assignment of each variable to {free, at lower, at upper}, solve
    /// the equality-constrained problem, keep feasible ones, return the one of least cost.
    fn brute_force(q: &[f64], c: &[f64], lo: &[f64], hi: &[f64]) -> Vec<f64> {
        let n = c.len();
        let mut best = (f64::INFINITY, vec![0.0; n]);
        let total = 3usize.pow(n as u32);
        for code in 0..total {
            let mut st = vec![0u8; n];
            let mut cc = code;
            for s in st.iter_mut() {
                *s = (cc % 3) as u8;
                cc /= 3;
            }
            let mut x = vec![0.0; n];
            let mut ok = true;
            for i in 0..n {
                match st[i] {
                    1 => x[i] = lo[i],
                    2 => x[i] = hi[i],
                    _ => {}
                }
                if !x[i].is_finite() {
                    ok = false;
                }
            }
            if !ok {
                continue;
            }
            let free: Vec<usize> = (0..n).filter(|&i| st[i] == 0).collect();
            let m = free.len();
            if m > 0 {
                let mut a = vec![0.0; m * m];
                let mut b = vec![0.0; m];
                for (r, &i) in free.iter().enumerate() {
                    b[r] = -c[i];
                    for j in 0..n {
                        if st[j] != 0 {
                            b[r] -= q[i * n + j] * x[j];
                        }
                    }
                    for (s, &j) in free.iter().enumerate() {
                        a[r * m + s] = q[i * n + j];
                    }
                }
                assert!(crate::solver::linalg::lu_solve_multi(&mut a, m, &mut b, 1));
                for (r, &i) in free.iter().enumerate() {
                    x[i] = b[r];
                }
            }
            if (0..n).any(|i| x[i] < lo[i] - 1e-12 || x[i] > hi[i] + 1e-12) {
                continue;
            }
            let f = crate::solver::linalg::quad_cost(q, c, &x, n);
            if f < best.0 {
                best = (f, x);
            }
        }
        best.1
    }

    fn lcg(state: &mut u64) -> f64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*state >> 11) as f64) / ((1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn matches_brute_force_enumeration() {
        let mut seed = 12345u64;
        let mut n_active_seen = 0;
        let mut n_free_seen = 0;
        let (mut interior, mut free_start_bounded) = (0, 0);
        for trial in 0..400 {
            let n = 1 + trial % 5;
            // Q = M Mᵀ + 0.1 I
            let mm: Vec<f64> = (0..n * n).map(|_| lcg(&mut seed)).collect();
            let mut q = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    q[i * n + j] = (0..n).map(|k| mm[i * n + k] * mm[j * n + k]).sum::<f64>();
                }
                q[i * n + i] += 0.1;
            }
            let c: Vec<f64> = (0..n).map(|_| 3.0 * lcg(&mut seed)).collect();
            let lo: Vec<f64> = (0..n)
                .map(|i| if (trial + i) % 7 == 3 { f64::NEG_INFINITY } else { -0.2 - lcg(&mut seed).abs() })
                .collect();
            let hi: Vec<f64> = (0..n)
                .map(|i| if (trial + i) % 5 == 1 { f64::INFINITY } else { 0.2 + lcg(&mut seed).abs() })
                .collect();
            let want = brute_force(&q, &c, &lo, &hi);
            let mut qp = BoxQp::new(n);
            let mut x: Vec<f64> = (0..n).map(|_| lcg(&mut seed)).collect();
            let start_inside = (0..n).all(|i| lo[i] < x[i] && x[i] < hi[i]);
            let iters = qp.solve(&q, &c, &lo, &hi, &mut x).unwrap();
            // Both courses: the interior minimiser returned directly (no iteration), and
            // projected Newton from a start where every variable is free (reusing the factor).
            if qp.free_indices().len() == n {
                interior += 1;
                assert_eq!(iters, 0, "trial {trial}: an interior minimiser is returned directly");
            } else if start_inside {
                free_start_bounded += 1;
            }
            for i in 0..n {
                assert!((x[i] - want[i]).abs() < 1e-12, "trial {trial}: {x:?} vs {want:?}");
                if x[i] == lo[i] || x[i] == hi[i] {
                    n_active_seen += 1;
                    assert!(qp.is_clamped(i), "trial {trial}: var {i} on a bound but reported free");
                } else {
                    n_free_seen += 1;
                }
            }
            // The reported free face and its factor: Q_ff = L D Lᵀ (L unit lower, D on the
            // diagonal).
            let idx = qp.free_indices().to_vec();
            let m = idx.len();
            let l = qp.free_factor();
            let unit = |i: usize, k: usize| if i == k { 1.0 } else if k < i { l[i * m + k] } else { 0.0 };
            for a in 0..m {
                for b in 0..m {
                    let s: f64 = (0..m).map(|k| unit(a, k) * l[k * m + k] * unit(b, k)).sum();
                    assert!((s - q[idx[a] * n + idx[b]]).abs() < 1e-12);
                }
            }
        }
        assert!(n_active_seen > 100 && n_free_seen > 100, "{n_active_seen} {n_free_seen}");
        assert!(interior > 15 && free_start_bounded > 40, "{interior} interior, {free_start_bounded} bounded from a free start");
    }

    #[test]
    fn rejects_indefinite() {
        let q = [1.0, 0.0, 0.0, -1.0];
        let mut x = [0.0, 0.0];
        let mut qp = BoxQp::new(2);
        assert_eq!(qp.solve(&q, &[0.0, 0.0], &[-1.0, -1.0], &[1.0, 1.0], &mut x), Err(BoxQpError::NotPositiveDefinite));
    }
}
