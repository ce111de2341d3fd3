//! Flush-to-zero for the training threads.
//!
//! Subnormal floats (below 1.2e-38 in f32) make x86 floating-point units fall back to a slow
//! microcode path, dozens of times slower per operation. As a policy trains, some activations
//! and gradients drift into that range (exact GELU of a very negative input, products of small
//! gradients), and the network's matrix products slowed down as the run went on. Setting the
//! FTZ (flush results to zero) and DAZ (treat subnormal inputs as zero) bits of MXCSR on every
//! compute thread removes that path; the values it touches are below 1.2e-38 and irrelevant to
//! the training. PyTorch offers the same switch (`torch.set_flush_denormal`).

/// Sets FTZ and DAZ on the calling thread (x86-64 with SSE; a no-op elsewhere).
pub fn flush_denormals_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: reading and writing MXCSR only changes this thread's floating-point modes.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040); // FTZ (bit 15) | DAZ (bit 6)
    }
}

/// Sets FTZ/DAZ on the calling thread and builds rayon's global pool (which candle's matrix
/// products and element-wise ops run on) with them set on every worker. Returns `false` when
/// the global pool already existed, in which case only the calling thread is changed.
pub fn flush_denormals_for_training() -> bool {
    flush_denormals_on_this_thread();
    rayon::ThreadPoolBuilder::new().start_handler(|_| flush_denormals_on_this_thread()).build_global().is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnormals_are_flushed_on_a_thread_that_asks() {
        let tiny = std::hint::black_box(1e-30f32);
        let before = std::thread::spawn(move || tiny * 1e-10).join().unwrap();
        assert!(before > 0.0 && !before.is_normal(), "default mode keeps subnormals: {before:e}");
        let after = std::thread::spawn(move || {
            super::flush_denormals_on_this_thread();
            tiny * std::hint::black_box(1e-10f32)
        })
        .join()
        .unwrap();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(after, 0.0);
        }
    }
}
