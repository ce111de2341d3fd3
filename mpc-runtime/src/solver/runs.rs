//! How a batch's items (problems, or lane groups of problems) share the threads: one worker
//! per rayon thread, each on its own workspace (warm in its caches from one item to the next),
//! claiming the next item from a shared queue until none is left ([`for_each_claimed`]).
//!
//! Claiming balances items that take different times (iteration counts differ between
//! problems), and the calling thread starts on the first item at once: a helper thread that
//! wakes late only takes fewer items, instead of holding a share fixed in advance that the
//! calling thread then waits for (`bench/results/cpu-claims-2026-12-06.md`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How long a worker out of items spins for the others' last items before it waits in
/// `rayon::join` (where it may fall asleep).
const SPIN_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// The workers, and so the workspaces, for `items` items: one per rayon thread of the current
/// pool, at most one per item, at least one.
pub(crate) fn workers(items: usize) -> usize {
    rayon::current_num_threads().min(items).max(1)
}

/// Make `pool` hold at least `n` workspaces (at least one), all fitting the current sizes
/// (`fits`), and new ones from `make`; [`for_each_claimed`] needs [`workers`] of them.
pub(crate) fn ensure_pool<W>(pool: &mut Vec<W>, n: usize, fits: impl Fn(&W) -> bool, make: impl Fn() -> W) {
    if pool.first().is_some_and(|w| !fits(w)) {
        pool.clear();
    }
    while pool.len() < n.max(1) {
        pool.push(make());
    }
}

/// `f(i, workspace, item_i)` for every item, each claimed by one of [`workers`] workers that
/// work on a workspace of `pool` each. The calling thread is the first worker;
/// the others are offered to the pool's threads ([`rayon::join`], nothing allocated). Items
/// are claimed one at a time, the calling thread's from the front, the others' from the back:
/// each thread's items are then consecutive, as with a split fixed in advance, and mostly the
/// same in consecutive calls over the same batch (the forward solve and its backward pass),
/// so that a thread tends to find its problems' data in its own caches. Which workspace an
/// item gets is not fixed, so `f`'s results must not depend on what a workspace held before.
/// Allocates nothing.
pub(crate) fn for_each_claimed<W: Send, I: Send>(
    pool: &mut [W],
    items: impl DoubleEndedIterator<Item = I> + ExactSizeIterator + Send,
    f: impl Fn(usize, &mut W, I) + Sync,
) {
    let k = workers(items.len());
    let queue = Mutex::new(items.enumerate());
    // The calling thread always works on the pool's first workspace, the others on the rest:
    // a workspace stays with one thread from call to call, in its caches.
    let (first, rest) = pool.split_first_mut().expect("runs::for_each_claimed: ensure_pool keeps a workspace");
    let first = Mutex::new(Some(first));
    let rest = Mutex::new(rest.iter_mut());
    // Workers between their start and their last item's end.
    let active = AtomicUsize::new(0);
    let work = |front: bool| {
        {
            let _busy = Busy::enter(&active);
            // A worker without a workspace (a pool smaller than the workers) leaves the items to
            // the others; `ensure_pool` keeps at least one.
            let w = if front { first.lock().unwrap_or_else(|e| e.into_inner()).take() } else { rest.lock().unwrap_or_else(|e| e.into_inner()).next() };
            let Some(w) = w else { return };
            loop {
                // The queue's lock is held for the claim only (a `while let` would hold it
                // through `f`).
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    if front { q.next() } else { q.next_back() }
                };
                let Some((i, item)) = next else { break };
                f(i, w, item);
            }
        }
        // Out of items: wait, spinning, for the others' last items. Waiting in `join` instead
        // lets this thread fall asleep, and waking it costs tens of microseconds on a virtual
        // machine: more than the small batches this serves take in all. Past `SPIN_MAX` (a
        // last item far longer than the wake-up) the wait goes on in `join`, so that a long
        // one does not keep a core busy doing nothing.
        let start = std::time::Instant::now();
        'wait: while active.load(Ordering::Acquire) > 0 {
            for _ in 0..64 {
                std::hint::spin_loop();
                if active.load(Ordering::Acquire) == 0 {
                    break 'wait;
                }
            }
            if start.elapsed() > SPIN_MAX {
                break;
            }
        }
    };
    launch(k, &work);
}

/// A worker counted in `active` until dropped (also when its item panics, so that no other
/// worker waits for it forever).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(active: &'a AtomicUsize) -> Self {
        active.fetch_add(1, Ordering::AcqRel);
        Self(active)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `work` on `k` workers: this thread runs `work(true)`, each `join` offers the rest
/// (`work(false)`) to a thread that is free, or runs them here after its own where none took
/// them (they then find the queue empty).
fn launch<F: Fn(bool) + Sync>(k: usize, work: &F) {
    fn rest<F: Fn(bool) + Sync>(k: usize, work: &F) {
        if k <= 1 {
            work(false);
        } else {
            rayon::join(|| work(false), || rest(k - 1, work));
        }
    }
    if k <= 1 {
        work(true);
    } else {
        rayon::join(|| work(true), || rest(k - 1, work));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is visited once, in claim order on each workspace, and the pool gets all its
    /// workspaces back; in a one-thread pool too, and with a pool of fewer workspaces than
    /// workers (the workers left without one do nothing).
    #[test]
    fn claims_cover_every_item_once_on_pooled_workspaces() {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("rayon pool");
        for items in [0, 1, 2, 5, 8, 33, 100] {
            for (pool_threads, short) in [(1, false), (3, false), (3, true)] {
                let check = || {
                    let k = workers(items);
                    assert_eq!(k, pool_threads.min(items).max(1));
                    let n_ws = if short { 1 } else { k };
                    let mut pool: Vec<Vec<usize>> = (0..n_ws).map(|_| Vec::new()).collect();
                    let visits: Vec<Mutex<u32>> = (0..items).map(|_| Mutex::new(0)).collect();
                    let mut data: Vec<usize> = (0..items).collect();
                    for_each_claimed(&mut pool, data.iter_mut(), |i, w, item| {
                        assert_eq!(i, *item);
                        *item += 1000;
                        w.push(i);
                        *visits[i].lock().unwrap() += 1;
                    });
                    assert!(visits.iter().all(|v| *v.lock().unwrap() == 1), "an item not visited exactly once");
                    assert!(data.iter().enumerate().all(|(i, &d)| d == i + 1000));
                    assert_eq!(pool.len(), n_ws);
                    // Claims are in order from either end: each workspace saw its items ascending
                    // (the calling thread's) or descending (the others').
                    let monotonic = |w: &Vec<usize>| w.windows(2).all(|p| p[0] < p[1]) || w.windows(2).all(|p| p[0] > p[1]);
                    assert!(pool.iter().all(monotonic), "{pool:?}");
                    assert_eq!(pool.iter().map(Vec::len).sum::<usize>(), items);
                };
                if pool_threads == 1 { one.install(check) } else { three.install(check) }
            }
        }
    }

    /// Items that take different times are balanced: with two workers, item 0 waits until every
    /// other item is done, which only the second worker can do, by claiming all of them (a
    /// share fixed in advance would leave half of them behind item 0, and the wait would time out).
    #[test]
    fn a_slow_item_leaves_the_rest_to_the_other_worker() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("rayon pool");
        two.install(|| {
            let mut pool: Vec<Vec<usize>> = vec![Vec::new(), Vec::new()];
            let items = 40;
            let done = AtomicUsize::new(0);
            for_each_claimed(&mut pool, 0..items, |i, w, _| {
                w.push(i);
                if i == 0 {
                    let start = Instant::now();
                    while done.load(Ordering::Acquire) < items - 1 && start.elapsed() < Duration::from_secs(60) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                } else {
                    done.fetch_add(1, Ordering::Release);
                }
            });
            let mut lens: Vec<usize> = pool.iter().map(Vec::len).collect();
            lens.sort();
            assert_eq!(lens, [1, items - 1], "{pool:?}");
        });
    }
}
