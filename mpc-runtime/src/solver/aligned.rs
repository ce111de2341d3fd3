//! Workspace buffers that start on a cache line.
//!
//! A `Vec<f64>` or `Vec<[f64; 4]>` starts where the allocator puts it: 16-byte aligned, and for
//! blocks of 128 KiB and more 16 bytes past a page boundary. Half of the 32-byte lane vectors
//! of such a buffer then straddle two cache lines, and so do the 64-byte rows of the one-problem
//! kernels; each such load or store costs two. [`Aligned`] puts the first entry on a 64-byte
//! boundary. The solver's workspaces (one-problem, lane group, line-search lanes, box QPs) use
//! it: B = 256, T = 50 on one thread, the lane forward solve 31.8 → 29.2 ms and the lane backward
//! pass 7.5 → 6.8–7.0 ms (2 threads: 16.1–16.7 → 15.2–15.6 ms and 4.18–4.30 → 3.94–4.14 ms); B = 1
//! unchanged within the noise (`bench/results/cpu-2026-12-05-amd-stores.md`). The same bits.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// One cache line of storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Entry types an [`Aligned`] may hold: plain `f64` data, every bit pattern a value, alignment
/// at most 64 and a size that divides 64.
///
/// # Safety
/// Implementors must be `Copy` types without padding or invalid bit patterns, with
/// `align_of::<Self>() <= 64` and `64 % size_of::<Self>() == 0`.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: an `f64` has no padding and no invalid bit patterns; size 8, alignment 8.
unsafe impl Plain for f64 {}
// SAFETY: arrays of `f64` have no padding and no invalid bit patterns; size 32, alignment 8.
unsafe impl Plain for [f64; 4] {}

/// A fixed-length buffer of `T` whose first entry starts a 64-byte cache line. Dereferences to
/// `[T]`; allocated once, never resized.
pub(crate) struct Aligned<T: Plain> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Plain> Aligned<T> {
    /// `len` copies of `value`.
    pub(crate) fn new(len: usize, value: T) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        let mut a = Aligned { lines: vec![Line([0; 64]); bytes.div_ceil(64)], len, _t: PhantomData };
        a.fill(value);
        a
    }
}

impl<T: Plain> Default for Aligned<T> {
    fn default() -> Self {
        Aligned { lines: Vec::new(), len: 0, _t: PhantomData }
    }
}

impl<T: Plain> Clone for Aligned<T> {
    fn clone(&self) -> Self {
        Aligned { lines: self.lines.clone(), len: self.len, _t: PhantomData }
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for Aligned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Plain> Deref for Aligned<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `lines` holds at least `len * size_of::<T>()` initialised bytes (`new`), its
        // start is 64-byte aligned and so aligned for `T` (`Plain`: alignment ≤ 64), and every
        // bit pattern is a valid `T` (`Plain`). The slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> DerefMut for Aligned<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and the slice borrows `self` mutably (no other reference).
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<'a, T: Plain> IntoIterator for &'a Aligned<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Plain> IntoIterator for &'a mut Aligned<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_holds_its_values() {
        for len in [0, 1, 3, 8, 9, 100, 40_000] {
            let mut a = Aligned::new(len, [1.0, 2.0, 3.0, 4.0]);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|v| *v == [1.0, 2.0, 3.0, 4.0]));
            if len > 0 {
                assert_eq!(a.as_ptr() as usize % 64, 0);
                a[len - 1][3] = -1.0;
                assert_eq!(a.clone()[len - 1], [1.0, 2.0, 3.0, -1.0]);
            }
            let s = Aligned::new(len, 0.5f64);
            assert!(s.iter().all(|&v| v == 0.5) && s.len() == len);
            assert!(len == 0 || s.as_ptr() as usize % 64 == 0);
        }
        let d: Aligned<f64> = Aligned::default();
        assert!(d.is_empty());
    }
}
