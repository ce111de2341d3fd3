//! Instruction-set builds of the solver loops: one source compiled for the target's baseline,
//! AVX2 and AVX-512F, chosen at run time.

/// The instruction set a solver loop is compiled for: the same source, built three times.
/// Only element-wise loops vectorise (no reassociation). The AVX2 and AVX-512 builds fuse the
/// multiply-adds that [`super::arith`] marks and give the same result to the bit; the baseline
/// rounds them separately (within rounding of the others; unit tests check both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The target's baseline (SSE2 on x86-64).
    Base,
    /// AVX2 with FMA: 4-wide f64 vectors.
    Avx2,
    /// AVX-512F: 8-wide f64 vectors.
    Avx512,
}

impl Isa {
    /// The widest build this CPU runs (detected once, cached by std); `MPC_NO_AVX512=1` keeps
    /// AVX2 where AVX-512 exists (for comparisons).
    #[inline(always)]
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            static NO_512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            if std::arch::is_x86_feature_detected!("avx512f")
                && !*NO_512.get_or_init(|| std::env::var_os("MPC_NO_AVX512").is_some_and(|v| v == "1"))
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Base
    }

    /// The build for the backward passes: AVX2 where the CPU has it, also where it has AVX-512.
    /// Their loops are 4-wide (lanes) or short rows, and much of their time is memory traffic;
    /// on a Zen 4 the AVX-512 builds were the slower ones (B=256, T=50 lane pass 5.6 → 5.0 ms,
    /// B=1, T=10 one-problem pass 8.4 → 6.7 µs in AVX2), with the same bits.
    #[inline(always)]
    pub(crate) fn for_backward() -> Isa {
        match Isa::detect() {
            Isa::Avx512 => Isa::Avx2,
            isa => isa,
        }
    }

    /// Every build this CPU can run.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Base];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
        }
        v
    }
}

/// ```text
/// isa_builds! {
///     /// doc
///     vis fn name;
///     /// doc
///     vis fn name_with = impl_fn(args…) -> Ret
/// }
/// ```
/// defines `vis fn name_with<D: Dynamics>(isa: Isa, args…) -> Ret`, which runs `impl_fn` (an
/// `#[inline(always)]` generic function over `D: Dynamics` and `M: Arith` with the same
/// arguments) compiled for `isa` — the baseline build with [`Baseline`](super::arith::Baseline)
/// multiply-adds, or a copy inlined into an AVX2 + FMA or an AVX-512F `#[target_feature]`
/// function with [`Fused`](super::arith::Fused) ones ([`Fused512`](super::arith::Fused512): the
/// same rounding, with AVX-512's register file); `isa` must be a build this CPU supports ([`Isa::detect`], [`Isa::available`]) —
/// and `vis fn name<D: Dynamics>(args…) -> Ret`, the widest build of [`Isa::detect`], or with
/// `vis fn name by choose;` the build `choose()` returns.
macro_rules! isa_builds {
    (
        $(#[$attr0:meta])* $vis0:vis fn $name0:ident $(by $choose:path)?;
        $(#[$attr:meta])* $vis:vis fn $name:ident = $impl_fn:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
    ) => {
        $(#[$attr0])*
        #[allow(clippy::too_many_arguments)]
        $vis0 fn $name0<D: $crate::model::Dynamics>($($arg: $ty),*) $(-> $ret)? {
            #[allow(unused_variables)]
            let isa = $crate::solver::isa::Isa::detect();
            $(let isa = $choose();)?
            $name(isa, $($arg),*)
        }

        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<D: $crate::model::Dynamics>(isa: $crate::solver::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2<D: $crate::model::Dynamics>($($arg: $ty),*) $(-> $ret)? {
                $impl_fn::<D, $crate::solver::arith::Fused>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,avx512f")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512<D: $crate::model::Dynamics>($($arg: $ty),*) $(-> $ret)? {
                $impl_fn::<D, $crate::solver::arith::Fused512>($($arg),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the caller passes a build this CPU supports (Isa::detect, Isa::available).
                $crate::solver::isa::Isa::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                $crate::solver::isa::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => $impl_fn::<D, $crate::solver::arith::Baseline>($($arg),*),
            }
        }
    };
}
pub(crate) use isa_builds;
