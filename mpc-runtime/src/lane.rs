//! Arithmetic on [`Lane`]s (one `f64` per problem of a lane group), what the generated lane
//! code of a model (`eval_step_lanes`, `eval_linearize_lanes`) is written in: one call per
//! statement of the one-problem code, each doing that statement's operation in every lane, so
//! every lane gets the one-problem code's bits. Inlined, each call is a few vector
//! instructions (the elementary functions stay one call per lane).

use crate::model::{LANES, Lane};

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
