//! This machine's float64 limit: a fused multiply-add throughput micro-benchmark, per core and
//! over the bench's thread pool, so that every timing of `mpc bench` can be read as a fraction
//! of what the cores can do.
//!
//! The kernel keeps `ACC` independent accumulator chains of `acc = acc * a + b` in vector
//! registers (enough chains to cover the FMA latency on two pipes), with the widest instruction
//! set the CPU has: AVX-512F (8 lanes), AVX2+FMA (4 lanes), else scalar `f64::mul_add`. One FMA
//! counts as 2 floating-point operations per lane. The best of several short repetitions is
//! kept (a peak, not a typical rate).

use rayon::ThreadPool;
use std::hint::black_box;
use std::time::Instant;

/// Independent accumulator chains (≥ latency × pipes: 4–5 cycles × 2 FMA pipes on current x86).
const ACC: usize = 12;

/// The measured limit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peak {
    /// Instruction set used: "avx512f", "avx2+fma" or "scalar".
    pub(super) isa: &'static str,
    /// Vector lanes per instruction.
    pub(super) lanes: usize,
    /// GFLOP/s of one thread.
    pub(super) per_core: f64,
    /// GFLOP/s of all threads of the pool together.
    pub(super) all_threads: f64,
    /// Threads of the pool.
    pub(super) threads: usize,
}

/// Run `iters` rounds of the kernel; returns a value that depends on every FMA.
fn kernel(iters: u64, isa: &'static str) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == "avx512f" {
            // SAFETY: `isa` is "avx512f" only when the CPU has it (see `best_isa`).
            return unsafe { x86::fma512(iters) };
        }
        if isa == "avx2+fma" {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { x86::fma256(iters) };
        }
    }
    let _ = isa;
    scalar(iters)
}

/// Scalar `mul_add` chains (the fallback, and a lower bound where vectors are absent).
fn scalar(iters: u64) -> f64 {
    let (a, b) = (black_box(0.999_999_9), black_box(1e-9));
    let mut acc = [1.0f64; ACC];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = v.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACC;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma256(iters: u64) -> f64 {
        let a = _mm256_set1_pd(black_box(0.999_999_9));
        let b = _mm256_set1_pd(black_box(1e-9));
        let mut acc = [_mm256_set1_pd(1.0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_pd(*v, a, b);
            }
        }
        let mut out = [0.0f64; 4];
        let mut s = _mm256_setzero_pd();
        for v in acc {
            s = _mm256_add_pd(s, v);
        }
        // SAFETY: `out` has room for 4 doubles.
        unsafe { _mm256_storeu_pd(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma512(iters: u64) -> f64 {
        let a = _mm512_set1_pd(black_box(0.999_999_9));
        let b = _mm512_set1_pd(black_box(1e-9));
        let mut acc = [_mm512_set1_pd(1.0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_pd(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_pd();
        for v in acc {
            s = _mm512_add_pd(s, v);
        }
        _mm512_reduce_add_pd(s)
    }
}

/// The widest FMA instruction set of this CPU and its lanes.
fn best_isa() -> (&'static str, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return ("avx512f", 8);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return ("avx2+fma", 4);
        }
    }
    ("scalar", 1)
}

/// GFLOP/s of `threads` threads running the kernel at once (best of `reps`, each ~`ms` long).
fn rate(pool: &ThreadPool, isa: &'static str, lanes: usize, threads: usize, reps: usize, ms: f64) -> f64 {
    // Size one repetition from a short calibration run on this thread.
    let t0 = Instant::now();
    black_box(kernel(100_000, isa));
    let per_iter = t0.elapsed().as_secs_f64() / 100_000.0;
    let iters = ((ms * 1e-3 / per_iter.max(1e-12)) as u64).max(1000);
    let flops = (iters * (ACC * lanes * 2) as u64 * threads as u64) as f64;
    let mut best = 0.0f64;
    for _ in 0..reps {
        let t = Instant::now();
        if threads == 1 {
            black_box(kernel(iters, isa));
        } else {
            pool.broadcast(|_| black_box(kernel(iters, isa)));
        }
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Measure the per-core and all-threads float64 FMA throughput (~0.5 s).
pub(super) fn measure(pool: &ThreadPool) -> Peak {
    let (isa, lanes) = best_isa();
    let threads = pool.current_num_threads();
    let per_core = rate(pool, isa, lanes, 1, 7, 20.0);
    let all_threads = if threads > 1 { rate(pool, isa, lanes, threads, 7, 20.0) } else { per_core };
    Peak { isa, lanes, per_core, all_threads, threads }
}

impl Peak {
    /// The limit for a case run on `threads` threads (GFLOP/s).
    pub(super) fn limit(&self, threads: usize) -> f64 {
        if threads <= 1 { self.per_core } else { self.all_threads }
    }

    /// One line for the report.
    pub(super) fn describe(&self) -> String {
        format!(
            "machine limit (f64 FMA, {} × {} lanes): {:.1} GFLOP/s on one core, {:.1} GFLOP/s on {} threads",
            self.isa, self.lanes, self.per_core, self.all_threads, self.threads
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_isa_computes_the_same_chain() {
        // acc ← acc·a + b from 1, n times, summed over the chains and lanes.
        let (a, b) = (0.999_999_9f64, 1e-9f64);
        let mut x = 1.0f64;
        for _ in 0..1000 {
            x = x.mul_add(a, b);
        }
        let (isa, lanes) = best_isa();
        let want = x * (ACC * lanes) as f64;
        assert!((kernel(1000, isa) - want).abs() < 1e-9 * want, "{isa}");
        assert!((scalar(1000) - x * ACC as f64).abs() < 1e-9 * x * ACC as f64);
    }

    #[test]
    fn peak_is_positive_and_finite() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = measure(&pool);
        assert!(p.per_core.is_finite() && p.per_core > 0.1, "{p:?}");
        assert!(p.all_threads.is_finite() && p.all_threads > 0.1, "{p:?}");
    }
}
