//! How a solver build rounds the multiply-adds of its products and triangular solves: fused
//! (`a·b + c` rounded once, one FMA instruction) in the AVX2 and AVX-512 builds and on AArch64,
//! separate (the product rounded, then the sum) in the x86-64 baseline build, whose CPUs may
//! have no FMA unit (there `f64::mul_add` would be a slow software routine). The choice is a type parameter of the
//! solver's loops, fixed per instruction-set build (`isa::isa_builds!`); the per-problem and
//! the lane code use it at the same operations, so they keep giving the same bits.
//!
//! Fused where it pays: the cost-to-go products (`Fᵀ P F`, the `P` update) and the gains'
//! `L D Lᵀ` solves, the bulk of every Riccati pass. Rollouts, costs and the box QP's own
//! factorisation stay separate in every build (latency-bound chains, which FMA does not
//! shorten).

/// The rounding of a multiply-add: [`Fused`] (or [`Fused512`]) or [`Separate`]; and, for
/// products blocked to stay in registers, how many `f64` the build's vector registers hold.
pub trait Arith: Copy + Send + Sync + 'static {
    /// Whether `madd` rounds once.
    const FUSED: bool;
    /// The `f64` capacity of the build's vector register file (registers × lanes).
    const VECTOR_F64: usize;
}

/// One rounding per multiply-add (FMA); 16 vector registers of 4 `f64` (AVX2).
#[derive(Clone, Copy, Debug)]
pub struct Fused;

/// [`Fused`] in the AVX-512 build: the same arithmetic, 32 vector registers of 8 `f64`.
#[derive(Clone, Copy, Debug)]
pub struct Fused512;

/// The product rounded, then the sum (the baseline build: 16 registers of 2 `f64`).
#[derive(Clone, Copy, Debug)]
pub struct Separate;

impl Arith for Fused {
    const FUSED: bool = true;
    const VECTOR_F64: usize = 64;
}

impl Arith for Fused512 {
    const FUSED: bool = true;
    const VECTOR_F64: usize = 256;
}

impl Arith for Separate {
    const FUSED: bool = false;
    const VECTOR_F64: usize = 32;
}

/// The rounding of the baseline build: [`Separate`] on x86-64 (FMA3 is not in its baseline),
/// [`Fused`] where every CPU of the target has FMA (AArch64).
#[cfg(not(target_arch = "aarch64"))]
pub type Baseline = Separate;
/// The rounding of the baseline build: [`Fused`] (every AArch64 CPU has FMA).
#[cfg(target_arch = "aarch64")]
pub type Baseline = Fused;

/// `c + a·b`, rounded as `M` says.
#[inline(always)]
pub fn madd<M: Arith>(a: f64, b: f64, c: f64) -> f64 {
    if M::FUSED { a.mul_add(b, c) } else { c + a * b }
}

/// `c − a·b`, rounded as `M` says.
#[inline(always)]
pub fn nmadd<M: Arith>(a: f64, b: f64, c: f64) -> f64 {
    if M::FUSED { (-a).mul_add(b, c) } else { c - a * b }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Separate rounds the product first; Fused does not (a case where the two differ), and
    /// both equal the plain expressions they stand for.
    #[test]
    fn fused_rounds_once_and_separate_twice() {
        let (a, b, c) = (1.0 + f64::EPSILON, 1.0 - f64::EPSILON, -1.0);
        assert_eq!(madd::<Separate>(a, b, c), c + a * b);
        assert_eq!(madd::<Separate>(a, b, c), 0.0);
        assert_eq!(madd::<Fused>(a, b, c), -f64::EPSILON * f64::EPSILON);
        assert_eq!(nmadd::<Separate>(a, b, -c), -c - a * b);
        assert_eq!(nmadd::<Fused>(a, b, -c), f64::EPSILON * f64::EPSILON);
    }
}
