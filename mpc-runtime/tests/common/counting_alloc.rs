//! A global allocator that counts the allocations of the threads that switch counting on, for
//! the no-allocation tests (`mpc-runtime/tests/no_alloc.rs`, `models/tests/no_alloc_lanes.rs`,
//! which include this file with `#[path]`; each test binary needs its own `#[global_allocator]`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only threads that set it are counted: libtest's other threads (output capture, the
    /// "running for over 60 seconds" notice on a loaded machine) may allocate at any time.
    pub static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's counted allocations (tests that run side by side in one binary each
    /// read their own).
    pub static MINE: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(|c| c.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        MINE.with(|m| m.set(m.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
