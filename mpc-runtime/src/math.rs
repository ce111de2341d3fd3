//! `sin` and `cos` for the generated model code: inlined, without a library call, and the same
//! bits in the one-problem code and, lane by lane, in the lane code
//! ([`lane::sin`](crate::lane::sin)).
//!
//! glibc's `sin`/`cos`/`sincos` save and restore the rounding mode on every call (about two
//! thirds of their time on an AMD Zen 4 host) and are one call per lane; they were ~5 % of a
//! batched quadrotor solve. These are fdlibm's algorithm (as in musl): the argument reduced by
//! `π/2` in Cody–Waite steps (exact products of 33-bit pieces of `π/2`), then fdlibm's minimax
//! kernels on `[-π/4, π/4]`, one reduction for both. Error below one ulp; a test bounds the
//! distance to libm by one ulp. Arguments of magnitude [`REDUCED_MAX`] and beyond,
//! infinities and NaN go to libm.

// fdlibm's constants as it prints them (more digits than an f64 holds).
#![allow(clippy::excessive_precision)]

/// Below this magnitude the three-step reduction is exact enough (fdlibm's medium range,
/// `|x| < 2^20·π/2`); beyond it `sin`/`cos` are libm's.
pub const REDUCED_MAX: f64 = 1.6e6;

const INV_PIO2: f64 = std::f64::consts::FRAC_2_PI;
const PIO2_1: f64 = 1.570_796_326_734_125_614_17; // first 33 bits of π/2
const PIO2_1T: f64 = 6.077_100_506_506_192_249_32e-11; // π/2 − PIO2_1
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11; // next 33 bits
const PIO2_2T: f64 = 2.022_266_248_795_950_631_54e-21; // π/2 − PIO2_1 − PIO2_2
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21; // next 33 bits
const PIO2_3T: f64 = 8.478_427_660_368_899_569_97e-32; // π/2 − PIO2_1 − PIO2_2 − PIO2_3
/// `1.5 · 2^52`: adding and subtracting it rounds to the nearest integer.
const TO_INT: f64 = 6_755_399_441_055_744.0;

const S1: f64 = -1.666_666_666_666_663_243_48e-1;
const S2: f64 = 8.333_333_333_322_489_461_24e-3;
const S3: f64 = -1.984_126_982_985_794_931_34e-4;
const S4: f64 = 2.755_731_370_707_006_767_89e-6;
const S5: f64 = -2.505_076_025_340_686_341_95e-8;
const S6: f64 = 1.589_690_995_211_550_102_21e-10;

const C1: f64 = 4.166_666_666_666_660_190_37e-2;
const C2: f64 = -1.388_888_888_887_410_957_49e-3;
const C3: f64 = 2.480_158_728_947_672_941_78e-5;
const C4: f64 = -2.755_731_435_139_066_330_35e-7;
const C5: f64 = 2.087_572_321_298_174_827_90e-9;
const C6: f64 = -1.135_964_755_778_819_482_65e-11;

/// The first Cody–Waite step of the reduction: `(n, r, w, y0)` with `x ≈ n·π/2 + (r − w)`,
/// `y0 = r − w` (good to 85 bits) and whether that suffices (`x` in range and not so near a
/// multiple of `π/2` that `r − w` cancels). Without branches, so lanes vectorise.
#[inline(always)]
pub(crate) fn reduce_first(x: f64) -> (u64, f64, f64, f64, bool) {
    // `k`'s last mantissa bits are `n` (two's complement): no float-to-integer conversion.
    let k = x * INV_PIO2 + TO_INT;
    let f = k - TO_INT;
    let r = x - f * PIO2_1;
    let w = f * PIO2_1T;
    let y0 = r - w;
    let fine = in_reduced_range(x) && exponent(x) - exponent(y0) <= 16;
    (k.to_bits(), r, w, y0, fine)
}

/// The biased exponent of `v`.
#[inline(always)]
fn exponent(v: f64) -> i64 {
    ((v.to_bits() >> 52) & 0x7ff) as i64
}

/// `x = n·π/2 + (y0 + y1)` with `|y0 + y1| ≤ π/4` (about), for `|x| <` [`REDUCED_MAX`]:
/// `(n, y0, y1)` (`n`'s last two bits are `n mod 4`). fdlibm's medium-range reduction: a
/// second and third step only where the first cancels (`x` near a multiple of `π/2`), which
/// is rare, so the branches are predicted.
#[inline(always)]
fn reduce(x: f64) -> (u64, f64, f64) {
    let (n, mut r, mut w, mut y0, fine) = reduce_first(x);
    if !fine {
        let f = f64::from_bits(n) - TO_INT;
        let ex = exponent(x);
        // Step 2, good to 118 bits.
        let t = r;
        w = f * PIO2_2;
        r = t - w;
        w = f * PIO2_2T - ((t - r) - w);
        y0 = r - w;
        if ex - exponent(y0) > 49 {
            // Step 3, 151 bits.
            let t = r;
            w = f * PIO2_3;
            r = t - w;
            w = f * PIO2_3T - ((t - r) - w);
            y0 = r - w;
        }
    }
    (n, y0, (r - y0) - w)
}

/// fdlibm's `__kernel_sin(x, y, 1)` on `[-π/4, π/4]` (`y` the tail of `x`).
#[inline(always)]
fn kernel_sin(x: f64, y: f64) -> f64 {
    let z = x * x;
    let w = z * z;
    let r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    let v = z * x;
    x - ((z * (0.5 * y - v * r) - y) - v * S1)
}

/// fdlibm's `__kernel_cos(x, y)` on `[-π/4, π/4]` (musl's form without branches).
#[inline(always)]
fn kernel_cos(x: f64, y: f64) -> f64 {
    let z = x * x;
    let w = z * z;
    let r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    w + (((1.0 - w) - hz) + (z * r - x * y))
}

/// Below this magnitude (just under `π/4`: `x · 2/π < 0.5`) the reduction is the identity,
/// `n = 0` and `(y0, y1) = (x, +0)` exactly, so the kernels take `x` directly (fdlibm's own
/// first branch): the same bits without the reduction's chain of dependent operations, which
/// the quadrotor's rollouts wait on at every step (its rates' half-angle is below 0.45).
pub(crate) const KERNEL_MAX: f64 = 0.785_398;

/// `(sin x, cos x)` for `|x| <` [`KERNEL_MAX`] (garbage beyond): [`sin_cos_reduced`]'s bits.
#[inline(always)]
pub(crate) fn sin_cos_kernel(x: f64) -> (f64, f64) {
    (kernel_sin(x, 0.0), kernel_cos(x, 0.0))
}

/// `(sin x, cos x)` for `|x| <` [`REDUCED_MAX`] (garbage beyond).
#[inline(always)]
pub fn sin_cos_reduced(x: f64) -> (f64, f64) {
    let (n, y0, y1) = reduce(x);
    quadrant(n, y0, y1)
}

/// `(sin, cos)` of `n·π/2 + (y0 + y1)` from the kernels on `[-π/4, π/4]`.
#[inline(always)]
pub(crate) fn quadrant(n: u64, y0: f64, y1: f64) -> (f64, f64) {
    let (s, c) = (kernel_sin(y0, y1), kernel_cos(y0, y1));
    // Quadrant n: sin = s, c, −s, −c; cos = c, −s, −c, s.
    let (s1, c1) = if n & 1 == 0 { (s, c) } else { (c, -s) };
    if n & 2 == 0 { (s1, c1) } else { (-s1, -c1) }
}

/// Whether `x` is in the reduced range (false for infinities and NaN).
#[inline(always)]
pub fn in_reduced_range(x: f64) -> bool {
    x.abs() < REDUCED_MAX
}

/// `sin x` (see the module documentation).
#[inline(always)]
pub fn sin(x: f64) -> f64 {
    if x.abs() < KERNEL_MAX {
        kernel_sin(x, 0.0)
    } else if in_reduced_range(x) {
        sin_cos_reduced(x).0
    } else {
        x.sin()
    }
}

/// `cos x` (see the module documentation).
#[inline(always)]
pub fn cos(x: f64) -> f64 {
    if x.abs() < KERNEL_MAX {
        kernel_cos(x, 0.0)
    } else if in_reduced_range(x) {
        sin_cos_reduced(x).1
    } else {
        x.cos()
    }
}

/// `(sin x, cos x)` with the bits of [`sin`] and [`cos`], from one reduction: the generated
/// code's call where a model takes both of one argument.
#[inline(always)]
pub fn sin_cos(x: f64) -> (f64, f64) {
    if x.abs() < KERNEL_MAX {
        sin_cos_kernel(x)
    } else if in_reduced_range(x) {
        sin_cos_reduced(x)
    } else {
        (x.sin(), x.cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in ulps (of `b`'s binade) of `a` from `b`.
    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        (a - b).abs() / 2f64.powi(b.abs().max(f64::MIN_POSITIVE).log2().floor() as i32 - 52)
    }

    /// Against libm over many magnitudes, near multiples of π/2 (where the reduction cancels),
    /// and at the special values: within one ulp of libm everywhere (libm is within about half
    /// an ulp of the exact value, so this bounds ours by about 1.5 ulp), equal to it mostly.
    #[test]
    fn sin_cos_within_one_ulp_of_libm() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut xs = vec![0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-8, 0.5, 1.0, 1.5, 3.0, 1e5, 1.5e6, 1.6e6, -1e7, 3e9, 1e300];
        for scale in [1e-3, 1.0, 4.0, 1e2, 1e4, 1.5e6] {
            for _ in 0..40_000 {
                xs.push(scale * (2.0 * next() - 1.0));
            }
        }
        // Next to multiples of π/2 (up to the reduced range).
        for k in (1..200_000).step_by(97).chain([1_000_000]) {
            let m = k as f64 * std::f64::consts::FRAC_PI_2;
            for d in [-2.0, -1.0, 0.0, 1.0, 2.0] {
                xs.push(m + d * m * f64::EPSILON);
            }
        }
        let (mut worst, mut equal) = (0.0f64, 0usize);
        for &x in &xs {
            let (s, c) = sin_cos(x);
            assert_eq!((s.to_bits(), c.to_bits()), (sin(x).to_bits(), cos(x).to_bits()), "sin_cos({x:e})");
            for (ours, theirs) in [(sin(x), x.sin()), (cos(x), x.cos())] {
                let e = ulps(ours, theirs);
                assert!(e <= 1.0, "x = {x:e}: {ours:e} against libm {theirs:e} ({e} ulp)");
                worst = worst.max(e);
                equal += usize::from(ours.to_bits() == theirs.to_bits());
            }
        }
        let share = equal as f64 / (2 * xs.len()) as f64;
        println!("{} arguments: worst {worst} ulp from libm, {:.1} % equal", xs.len(), 100.0 * share);
        assert!(share > 0.9, "only {share} equal to libm");
        // Signs of zero, and what libm does beyond the range.
        assert_eq!(sin(-0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(sin(0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(cos(-0.0), 1.0);
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(sin(x).is_nan() && cos(x).is_nan() && sin_cos(x).0.is_nan() && sin_cos(x).1.is_nan());
        }
        for x in [1.6e6, -2e7, 1e300] {
            assert_eq!((sin(x).to_bits(), cos(x).to_bits()), (x.sin().to_bits(), x.cos().to_bits()));
        }
    }

    /// Below [`KERNEL_MAX`] the kernels on `(x, +0)` give the reduction's bits to the bit: every
    /// sign and binade of `x` up to the threshold, the threshold's neighbours and both zeros.
    #[test]
    fn small_arguments_skip_the_reduction_with_the_same_bits() {
        let mut xs = vec![0.0, -0.0, 5e-324, 1e-300, 1e-8, 0.1, 0.5, 0.78, KERNEL_MAX, std::f64::consts::FRAC_PI_4];
        let mut v = KERNEL_MAX;
        for _ in 0..64 {
            v = f64::from_bits(v.to_bits() - 1);
            xs.push(v);
        }
        for i in 0..200_000 {
            xs.push(KERNEL_MAX * (i as f64 / 200_000.0));
            xs.push(KERNEL_MAX * 2f64.powi(-(i % 1000) as i32) * (0.5 + (i as f64 * 0.618_034).fract() / 2.0));
        }
        let mut fast = 0;
        for &x in &xs {
            for x in [x, -x] {
                let (s, c) = sin_cos_reduced(x);
                assert_eq!((sin(x).to_bits(), cos(x).to_bits()), (s.to_bits(), c.to_bits()), "x = {x:e}");
                assert_eq!(sin_cos(x).0.to_bits(), s.to_bits());
                if x.abs() < KERNEL_MAX {
                    assert_eq!(sin_cos_kernel(x).0.to_bits(), s.to_bits(), "x = {x:e}");
                    assert_eq!(sin_cos_kernel(x).1.to_bits(), c.to_bits(), "x = {x:e}");
                    fast += 1;
                }
            }
        }
        assert!(fast > 400_000);
        let all_small: [f64; crate::model::LANES] = std::array::from_fn(|l| 0.1 * l as f64 - 0.15);
        let (s, c) = crate::lane::sin_cos(all_small);
        for l in 0..crate::model::LANES {
            assert_eq!((s[l].to_bits(), c[l].to_bits()), (sin(all_small[l]).to_bits(), cos(all_small[l]).to_bits()));
        }
    }

    /// The lane functions give every lane the one-problem bits, whether all lanes take the
    /// branch-free path or some need the further reduction steps or libm.
    #[test]
    fn lanes_equal_the_scalar_bits() {
        use crate::model::LANES;
        let special = [1e6 * std::f64::consts::FRAC_PI_2, 3.0 * std::f64::consts::FRAC_PI_2, 2e7, f64::NAN, f64::INFINITY, -0.0];
        let mut k = 0usize;
        for group in 0..400 {
            let a: [f64; LANES] = std::array::from_fn(|l| {
                k += 1;
                // Every fifth group has one special lane.
                if group % 5 == 0 && l == group % LANES { special[group / 5 % special.len()] } else { 37.0 * (0.618_034 * k as f64).sin() }
            });
            let (s, c) = crate::lane::sin_cos(a);
            for l in 0..LANES {
                assert_eq!(s[l].to_bits(), sin(a[l]).to_bits(), "sin {:e}", a[l]);
                assert_eq!(c[l].to_bits(), cos(a[l]).to_bits(), "cos {:e}", a[l]);
            }
            assert_eq!(crate::lane::sin(a).map(f64::to_bits), s.map(f64::to_bits));
            assert_eq!(crate::lane::cos(a).map(f64::to_bits), c.map(f64::to_bits));
        }
    }
}
