//! Live heap accounting: a global-allocator wrapper that counts the bytes currently allocated.
//!
//! Resident memory (RSS) mixes live data with pages an allocator keeps for reuse, so a slow RSS
//! drift does not tell a leak from allocator caching. The trainer therefore also logs the live
//! heap, which only grows if something is really kept. The `mpc` binary installs
//! [`CountingAlloc`] around mimalloc; without it (a library user's own allocator)
//! [`live_heap_mib`] reports `None`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Wraps a global allocator and keeps a running count of live bytes (two relaxed atomic adds
/// per allocation, nothing else).
pub struct CountingAlloc<A>(pub A);

/// Counts a fresh allocation `p` of `layout` (nothing when the allocator failed).
fn counted(p: *mut u8, layout: Layout) -> *mut u8 {
    if !p.is_null() {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
    }
    p
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(unsafe { self.0.alloc(layout) }, layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(unsafe { self.0.alloc_zeroed(layout) }, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

/// Bytes currently allocated through [`CountingAlloc`] in MiB, or `None` when the process does
/// not use it as its global allocator.
pub fn live_heap_mib() -> Option<f64> {
    INSTALLED.load(Ordering::Relaxed).then(|| LIVE_BYTES.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allocations_and_frees_through_the_wrapper() {
        // Drive the wrapper directly (the test binary's global allocator is the system one).
        let a = CountingAlloc(std::alloc::System);
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        unsafe {
            let l = Layout::from_size_align(1 << 20, 8).unwrap();
            let p = a.alloc(l);
            assert_eq!(LIVE_BYTES.load(Ordering::Relaxed) - before, 1 << 20);
            let p = a.realloc(p, l, 3 << 20);
            assert_eq!(LIVE_BYTES.load(Ordering::Relaxed) - before, 3 << 20);
            a.dealloc(p, Layout::from_size_align(3 << 20, 8).unwrap());
        }
        assert_eq!(LIVE_BYTES.load(Ordering::Relaxed), before);
        assert!(live_heap_mib().is_some());
    }
}
