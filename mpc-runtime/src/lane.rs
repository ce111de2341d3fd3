//! Arithmetic on [`Lane`]s (one `f64` per problem of a lane group), what the generated lane
//! code of a model (`eval_step_lanes`, `eval_linearize_lanes`) is written in: one call per
//! statement of the one-problem code, each doing that statement's operation in every lane, so
//! every lane gets the one-problem code's bits. Inlined, each call is a few vector
//! instructions (`sin` and `cos` too; the other elementary functions stay one call per lane).

use crate::math;
use crate::model::{LANES, Lane};

/// Which build of a model's generated lane code this CPU runs (what `eval_step_lanes` and
/// `eval_linearize_lanes` dispatch on): 2 AVX-512F, 1 AVX2, 0 the baseline, as the solver's
/// own loops (`MPC_NO_AVX512=1` keeps AVX2). All give the same bits.
#[doc(hidden)]
#[inline]
pub fn isa_level() -> u8 {
    use crate::solver::isa::Isa;
    match Isa::detect() {
        Isa::Avx512 => 2,
        Isa::Avx2 => 1,
        Isa::Base => 0,
    }
}

/// `v` in every lane.
#[inline(always)]
pub fn splat(v: f64) -> Lane {
    [v; LANES]
}

/// `f` in every lane.
#[inline(always)]
pub fn map(a: Lane, f: impl Fn(f64) -> f64) -> Lane {
    let mut r = a;
    for l in 0..LANES {
        r[l] = f(a[l]);
    }
    r
}

/// `f` of two lanes, lane by lane.
#[inline(always)]
pub fn map2(a: Lane, b: Lane, f: impl Fn(f64, f64) -> f64) -> Lane {
    let mut r = a;
    for l in 0..LANES {
        r[l] = f(a[l], b[l]);
    }
    r
}

/// `a + b`.
#[inline(always)]
pub fn add(a: Lane, b: Lane) -> Lane {
    map2(a, b, |x, y| x + y)
}

/// `a - b`.
#[inline(always)]
pub fn sub(a: Lane, b: Lane) -> Lane {
    map2(a, b, |x, y| x - y)
}

/// `a * b`.
#[inline(always)]
pub fn mul(a: Lane, b: Lane) -> Lane {
    map2(a, b, |x, y| x * y)
}

/// `a / b`.
#[inline(always)]
pub fn div(a: Lane, b: Lane) -> Lane {
    map2(a, b, |x, y| x / y)
}

/// `-a`.
#[inline(always)]
pub fn neg(a: Lane) -> Lane {
    map(a, |x| -x)
}

/// `a / b`, and 0 where `b` is 0 (the derivative convention of the generated code).
#[inline(always)]
pub fn div_nz(a: Lane, b: Lane) -> Lane {
    map2(a, b, |x, y| if y != 0.0 { x / y } else { 0.0 })
}

/// `sign(a)` with `sign(0) = 0`.
#[inline(always)]
pub fn sign(a: Lane) -> Lane {
    map(a, |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { 0.0 })
}

/// `a` to the integer power `n` (`f64::powi`).
#[inline(always)]
pub fn powi(a: Lane, n: i32) -> Lane {
    map(a, |x| x.powi(n))
}

/// `a <= b ? t : e`, lane by lane.
#[inline(always)]
pub fn if_le(a: Lane, b: Lane, t: Lane, e: Lane) -> Lane {
    let mut r = e;
    for l in 0..LANES {
        r[l] = if a[l] <= b[l] { t[l] } else { e[l] };
    }
    r
}

/// `(sin, cos)` of every lane with the bits of [`math::sin`] and [`math::cos`]: where every
/// lane is below [`math::KERNEL_MAX`], the kernels alone; where every lane's first reduction
/// step suffices (almost always) without branches across lanes, so the
/// lanes vectorise; otherwise lane by lane.
#[inline(always)]
pub fn sin_cos(a: Lane) -> (Lane, Lane) {
    if a.iter().all(|v| v.abs() < math::KERNEL_MAX) {
        // No reduction ([`math::KERNEL_MAX`]): the kernels alone, vectorised.
        let (mut s, mut c) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            (s[l], c[l]) = math::sin_cos_kernel(a[l]);
        }
        return (s, c);
    }
    let (mut n, mut r, mut w, mut y0, mut fine) = ([0u64; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES], [false; LANES]);
    for l in 0..LANES {
        (n[l], r[l], w[l], y0[l], fine[l]) = math::reduce_first(a[l]);
    }
    let (mut s, mut c) = ([0.0; LANES], [0.0; LANES]);
    if fine.iter().all(|&f| f) {
        for l in 0..LANES {
            (s[l], c[l]) = math::quadrant(n[l], y0[l], (r[l] - y0[l]) - w[l]);
        }
    } else {
        for l in 0..LANES {
            (s[l], c[l]) = (math::sin(a[l]), math::cos(a[l]));
        }
    }
    (s, c)
}

/// `sin` lane by lane, the one-problem code's bits ([`sin_cos`]).
#[inline(always)]
pub fn sin(a: Lane) -> Lane {
    sin_cos(a).0
}

/// `cos` lane by lane, the one-problem code's bits ([`sin_cos`]).
#[inline(always)]
pub fn cos(a: Lane) -> Lane {
    sin_cos(a).1
}
