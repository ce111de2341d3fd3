//! Small dense linear algebra on row-major `f64` slices, written for the tiny matrices of
//! MPC (a few to a few tens of rows). Everything is `#[inline(always)]` so that, inside a
//! solver monomorphised for a model with compile-time sizes, the loop bounds are constants.
//!
//! No function here allocates: callers pass every buffer.

use super::arith::{Arith, nmadd};

/// `y = M x` with `M` `rows × cols`.
#[inline(always)]
pub fn mat_vec(m: &[f64], rows: usize, cols: usize, x: &[f64], y: &mut [f64]) {
    for i in 0..rows {
        let row = &m[i * cols..i * cols + cols];
        let mut s = 0.0;
        for j in 0..cols {
            s += row[j] * x[j];
        }
        y[i] = s;
    }
}

/// `y += Mᵀ x` with `M` `rows × cols` (so `x` has `rows` entries, `y` has `cols`).
#[inline(always)]
pub fn mat_t_vec_add(m: &[f64], rows: usize, cols: usize, x: &[f64], y: &mut [f64]) {
    for i in 0..rows {
        let xi = x[i];
        let row = &m[i * cols..i * cols + cols];
        for j in 0..cols {
            y[j] += row[j] * xi;
        }
    }
}

/// `C = A B` with `A` `r × k`, `B` `k × c`.
#[inline(always)]
pub fn mat_mul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize, out: &mut [f64]) {
    for i in 0..r {
        let o = &mut out[i * c..i * c + c];
        o.fill(0.0);
        let arow = &a[i * k..i * k + k];
        for (l, &ail) in arow.iter().enumerate() {
            let brow = &b[l * c..l * c + c];
            for (oj, bj) in o.iter_mut().zip(brow) {
                *oj += ail * bj;
            }
        }
    }
}

/// Square-root-free Cholesky factorisation `A = L D Lᵀ` in place (`L` unit lower triangular,
/// `D` diagonal): on success the strict lower triangle of `a` (`n × n`) holds `L`, the
/// diagonal `D`, and the strict upper triangle the unscaled entries `L_ij d_j` (the
/// factorisation's own intermediates; no solve reads them). Returns `false` when `A` is not
/// numerically positive definite (a pivot `d_j ≤ rel_tol · max diag`, or not finite).
///
/// Without the square roots of `L Lᵀ` the chain of dependent operations through the columns
/// is a division shorter per column, and the solves need no product per row in their forward
/// sweep; the Riccati pass of a small problem waits on this chain in every stage (the B = 1,
/// T = 10 quadrotor solve 2–4 % faster: `bench/results/cpu-ldlt-2026-12-06.md`). The pivots
/// `d_j` are those `L Lᵀ` takes the square roots of, so the positive-definiteness verdict is
/// the same.
#[inline(always)]
pub fn ldlt(a: &mut [f64], n: usize, rel_tol: f64) -> bool {
    ldlt_core(None, a, n, rel_tol)
}

/// [`ldlt`] of `src` into `l` (`src` unchanged), with the same operations: each entry of
/// `A` is read from `src` where `ldlt` reads it before overwriting it. There is no copy
/// first because the copy's wide loads of a matrix just stored row by row (a regularised
/// `Q_uu`) would wait for those stores to retire.
#[inline(always)]
pub fn ldlt_from(src: &[f64], l: &mut [f64], n: usize, rel_tol: f64) -> bool {
    ldlt_core(Some(&src[..n * n]), l, n, rel_tol)
}

/// [`ldlt`] of `src`, or of `a` itself, into `a`: for orders up to [`SMALL`] on a local
/// array (in registers once the size is a constant) written to `a` at the end, beyond in place.
/// In place, each entry of `L` is stored and read back for the next column, on the
/// factorisation's chain of dependent operations, and where two scalar stores are read back as
/// one vector that is a store-forwarding stall (the box QP of every Riccati stage factors its
/// `nu × nu` block). Nothing is written to a small `a` when `A` is not positive definite.
#[inline(always)]
fn ldlt_core(src: Option<&[f64]>, a: &mut [f64], n: usize, rel_tol: f64) -> bool {
    let a = &mut a[..n * n];
    if n > SMALL {
        return ldlt_into(src, a, n, n, rel_tol);
    }
    let mut l = [0.0f64; SMALL * SMALL];
    if !ldlt_into(Some(src.unwrap_or(&*a)), &mut l, SMALL, n, rel_tol) {
        return false;
    }
    for i in 0..n {
        a[i * n..(i + 1) * n].copy_from_slice(&l[i * SMALL..i * SMALL + n]);
    }
    true
}

/// Largest order factorised in registers by [`ldlt_core`].
const SMALL: usize = 8;

/// The factorisation of the `n × n` matrix `src` (row-major; `None`: `l` itself, `stride` then
/// `n`) into `l` (row stride `stride`), laid out as [`ldlt`] says.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(d > floor)` also catches NaN
fn ldlt_into(src: Option<&[f64]>, l: &mut [f64], stride: usize, n: usize, rel_tol: f64) -> bool {
    // Entry (i, j) of A as it was before the factorisation (in place, read before it is written).
    let orig = |l: &[f64], i: usize, j: usize| match src {
        Some(s) => s[i * n + j],
        None => l[i * stride + j],
    };
    let mut dmax = 0.0f64;
    for i in 0..n {
        dmax = dmax.max(orig(l, i, i).abs());
    }
    let floor = rel_tol * dmax;
    for j in 0..n {
        let mut d = orig(l, j, j);
        for k in 0..j {
            // L_jk · (L_jk d_k), the second factor kept above the diagonal.
            d -= l[j * stride + k] * l[k * stride + j];
        }
        if !(d > floor) || !d.is_finite() {
            return false;
        }
        l[j * stride + j] = d;
        for i in j + 1..n {
            let mut s = orig(l, i, j);
            for k in 0..j {
                s -= l[i * stride + k] * l[k * stride + j];
            }
            l[j * stride + i] = s;
            l[i * stride + j] = s / d;
        }
    }
    true
}

/// Solve `L D Lᵀ x = b` in place (`b ← x`), the factor from [`ldlt`]: `L y = b`, then
/// `Lᵀ x = D⁻¹ y`, each row of the second sweep started at `y_i` times the reciprocal of its
/// pivot (the reciprocals and products do not depend on the sweep, so they are off the chain of
/// dependent rows, where a division would have been on it).
#[inline(always)]
pub fn ldlt_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s;
    }
    for i in (0..n).rev() {
        let mut s = b[i] * (1.0 / l[i * n + i]);
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s;
    }
}

/// Solve `L D Lᵀ X = B` in place for `B` `n × m` (row-major; `B ← X`), the factor from
/// [`ldlt`]: the two sweeps of [`ldlt_solve`] on every column.
///
/// Each row of `B` (in blocks of at most 32 columns: the columns are independent) is accumulated
/// in a register-sized stack array and stored once: updating it in memory, row slice by row
/// slice, made every update a store and a reload (a failed store-to-load forward where the
/// widths differ; ~4× slower for `4 × 10`). Every entry sees the same operations in the same
/// order as the plain triple loop, its multiply-adds rounded as `M` says.
#[inline(always)]
pub fn ldlt_solve_multi<M: Arith>(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    if m <= 16 {
        ldlt_solve_columns::<M>(l, n, b, m, 0..m, &mut [0.0; 16]);
    } else {
        let acc = &mut [0.0; 32];
        for c0 in (0..m).step_by(32) {
            ldlt_solve_columns::<M>(l, n, b, m, c0..m.min(c0 + 32), acc);
        }
    }
}

/// [`ldlt_solve_multi`] on the columns `cols` of `B`, with the row accumulator `acc` (at
/// least `cols.len()` long).
#[inline(always)]
fn ldlt_solve_columns<M: Arith>(l: &[f64], n: usize, b: &mut [f64], m: usize, cols: std::ops::Range<usize>, acc: &mut [f64]) {
    let b = &mut b[..n * m];
    let l = &l[..n * n];
    let acc = &mut acc[..cols.len()];
    let row = |i: usize| i * m + cols.start..i * m + cols.end;
    for i in 0..n {
        acc.copy_from_slice(&b[row(i)]);
        for k in 0..i {
            let lik = l[i * n + k];
            for (x, y) in acc.iter_mut().zip(&b[row(k)]) {
                *x = nmadd::<M>(lik, *y, *x);
            }
        }
        b[row(i)].copy_from_slice(acc);
    }
    for i in (0..n).rev() {
        let r = 1.0 / l[i * n + i];
        for (x, y) in acc.iter_mut().zip(&b[row(i)]) {
            *x = y * r;
        }
        for k in i + 1..n {
            let lki = l[k * n + i];
            for (x, y) in acc.iter_mut().zip(&b[row(k)]) {
                *x = nmadd::<M>(lki, *y, *x);
            }
        }
        b[row(i)].copy_from_slice(acc);
    }
}

/// Solve `A X = B` by Gaussian elimination with partial pivoting, in place: `a` (`n × n`) is
/// destroyed, `b` (`n × m`) becomes `X`. Returns `false` when `A` is singular to working
/// precision.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(best > floor)` also catches NaN
pub fn lu_solve_multi(a: &mut [f64], n: usize, b: &mut [f64], m: usize) -> bool {
    let mut amax = 0.0f64;
    for v in a[..n * n].iter() {
        amax = amax.max(v.abs());
    }
    let floor = 1e-14 * amax;
    for col in 0..n {
        let mut piv = col;
        let mut best = a[col * n + col].abs();
        for r in col + 1..n {
            let v = a[r * n + col].abs();
            if v > best {
                best = v;
                piv = r;
            }
        }
        if !(best > floor) || !best.is_finite() {
            return false;
        }
        if piv != col {
            for c in 0..n {
                a.swap(col * n + c, piv * n + c);
            }
            for c in 0..m {
                b.swap(col * m + c, piv * m + c);
            }
        }
        let d = a[col * n + col];
        for r in col + 1..n {
            let f = a[r * n + col] / d;
            if f == 0.0 {
                continue;
            }
            for c in col..n {
                a[r * n + c] -= f * a[col * n + c];
            }
            for c in 0..m {
                b[r * m + c] -= f * b[col * m + c];
            }
        }
    }
    for i in (0..n).rev() {
        let d = a[i * n + i];
        for c in 0..m {
            let mut s = b[i * m + c];
            for k in i + 1..n {
                s -= a[i * n + k] * b[k * m + c];
            }
            b[i * m + c] = s / d;
        }
    }
    true
}

/// `½ zᵀ C z + cᵀ z` for one stage (`C` `n × n`).
#[inline(always)]
pub fn quad_cost(cm: &[f64], cv: &[f64], z: &[f64], n: usize) -> f64 {
    let (q, l) = quad_cost_parts(cm, cv, z, n);
    0.5 * q + l
}

/// `(zᵀ C z, cᵀ z)` for one stage.
#[inline(always)]
pub fn quad_cost_parts(cm: &[f64], cv: &[f64], z: &[f64], n: usize) -> (f64, f64) {
    let z = &z[..n];
    let mut q = 0.0;
    let mut l = 0.0;
    for i in 0..n {
        let row = &cm[i * n..i * n + n];
        let mut r = 0.0;
        for (cij, zj) in row.iter().zip(z) {
            r += cij * zj;
        }
        q += z[i] * r;
        l += z[i] * cv[i];
    }
    (q, l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::arith::{Fused, Separate};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ldlt_and_lu_solve_agree() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let b = [1.0, -2.0, 0.5, 3.0, 0.0, 1.0];
        let mut l = a;
        assert!(ldlt(&mut l, 3, 1e-14));
        let mut x1 = b;
        ldlt_solve_multi::<Separate>(&l, 3, &mut x1, 2);
        let mut a2 = a;
        let mut x2 = b;
        assert!(lu_solve_multi(&mut a2, 3, &mut x2, 2));
        for (p, q) in x1.iter().zip(&x2) {
            assert!((p - q).abs() < 1e-14);
        }
        // residual
        for c in 0..2 {
            for i in 0..3 {
                let s: f64 = (0..3).map(|k| a[i * 3 + k] * x1[k * 2 + c]).sum();
                assert!((s - b[i * 2 + c]).abs() < 1e-14);
            }
        }
        let mut v = [1.0, 0.5, 0.0];
        ldlt_solve(&l, 3, &mut v);
        for i in 0..3 {
            assert!((v[i] - x1[i * 2]).abs() < 1e-14);
        }
    }

    /// Every column block of a wide right-hand side (`m` = 1, 10, 16, 17, 40, 70) equals the
    /// plain triple loop to the bit, with separate and with fused multiply-adds.
    #[test]
    fn multi_solve_equals_the_plain_loops_for_every_width() {
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = 1.0 / (1.0 + i as f64 + j as f64) + if i == j { 2.0 } else { 0.0 };
            }
        }
        assert!(ldlt(&mut a, n, 1e-14));
        for (m, fused) in [1, 10, 16, 17, 40, 70].into_iter().flat_map(|m| [(m, false), (m, true)]) {
            let b0: Vec<f64> = (0..n * m).map(|v| ((v * 7919) % 113) as f64 / 17.0 - 3.0).collect();
            let mut got = b0.clone();
            if fused {
                ldlt_solve_multi::<Fused>(&a, n, &mut got, m);
            } else {
                ldlt_solve_multi::<Separate>(&a, n, &mut got, m);
            }
            let sub_mul = |s: f64, x: f64, y: f64| if fused { (-x).mul_add(y, s) } else { s - x * y };
            let mut want = b0.clone();
            for c in 0..m {
                for i in 0..n {
                    let mut s = want[i * m + c];
                    for k in 0..i {
                        s = sub_mul(s, a[i * n + k], want[k * m + c]);
                    }
                    want[i * m + c] = s;
                }
                for i in (0..n).rev() {
                    let mut s = want[i * m + c] * (1.0 / a[i * n + i]);
                    for k in i + 1..n {
                        s = sub_mul(s, a[k * n + i], want[k * m + c]);
                    }
                    want[i * m + c] = s;
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "m = {m}");
        }
    }

    /// The factorisation in registers (orders up to `SMALL`) gives the in-place one's bits, from
    /// a source or in place, and the same verdict on matrices that are not positive definite
    /// (leaving the matrix as it was where it is small).
    #[test]
    fn small_ldlt_equals_the_in_place_one_to_the_bit() {
        let mut rng = StdRng::seed_from_u64(17);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for n in 1..=SMALL {
            for trial in 0..20 {
                let g: Vec<f64> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut a = vec![0.0; n * n];
                for i in 0..n {
                    for j in 0..n {
                        a[i * n + j] = (0..n).map(|k| g[i * n + k] * g[j * n + k]).sum::<f64>() + if i == j { 0.1 } else { 0.0 };
                    }
                }
                let bad = trial % 5 == 4;
                if bad {
                    a[(n - 1) * n + n - 1] = -1.0; // not positive definite
                }
                let (mut l1, mut l2) = (vec![f64::NAN; n * n], a.clone());
                let ok1 = ldlt_from(&a, &mut l1, n, 1e-13);
                let ok2 = ldlt_into(None, &mut l2, n, n, 1e-13);
                assert_eq!((ok1, ok2), (!bad, !bad), "n={n} trial={trial}");
                let mut b1 = a.clone();
                assert_eq!(ldlt(&mut b1, n, 1e-13), ok1);
                if ok1 {
                    assert_eq!(bits(&l1), bits(&l2), "n={n} trial={trial}");
                    assert_eq!(bits(&b1), bits(&l2), "in place, n={n} trial={trial}");
                } else {
                    assert_eq!(bits(&b1), bits(&a), "a failed small factorisation leaves the matrix as it was");
                }
            }
        }
    }

    #[test]
    fn ldlt_rejects_indefinite() {
        let mut a = [1.0, 2.0, 2.0, 1.0];
        assert!(!ldlt(&mut a, 2, 1e-14));
        let mut z = [0.0; 4];
        assert!(!ldlt(&mut z, 2, 1e-14));
    }
}
