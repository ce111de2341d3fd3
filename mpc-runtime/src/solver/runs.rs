//! Scratch shared by consecutive problems (or lane groups) of a batch: a few parallel tasks per
//! thread, each running a run of consecutive items on one workspace, which stays warm in the
//! caches from one item to the next (a workspace per item started every item cold).

use rayon::prelude::*;
use std::sync::Mutex;

/// `(runs, per)`: `items` in runs of `per` consecutive items, four runs per rayon thread (for
/// balance where items take different times).
pub(crate) fn plan(items: usize) -> (usize, usize) {
    let per = items.div_ceil(4 * rayon::current_num_threads()).max(1);
    (items.div_ceil(per), per)
}

/// Make `pool` hold at least `n` workspaces (at least one), all fitting the current sizes
/// (`fits`), and new ones from `make`; the runs of [`plan`] need one each.
pub(crate) fn ensure_pool<W>(pool: &mut Vec<W>, n: usize, fits: impl Fn(&W) -> bool, make: impl Fn() -> W) {
    if pool.first().is_some_and(|w| !fits(w)) {
        pool.clear();
    }
    while pool.len() < n.max(1) {
        pool.push(make());
    }
}

/// `f(i, workspace, item_i)` for every item, in runs of `per` consecutive items; each run takes
/// one workspace from `pool` (which must hold one per run, [`plan`]) and every workspace goes
/// back to it. Allocates nothing (the pool keeps its buffer); which workspace a run gets is
/// not fixed, so `f`'s results must not depend on what a workspace held before.
pub(crate) fn for_each_in_runs<W: Send, I: Send>(
    pool: &mut Vec<W>,
    per: usize,
    items: impl IndexedParallelIterator<Item = I>,
    f: impl Fn(usize, &mut W, I) + Sync + Send,
) {
    let shared = Mutex::new(std::mem::take(pool));
    let take = || shared.lock().unwrap_or_else(|e| e.into_inner()).pop().expect("runs::for_each_in_runs: one workspace per run");
    items
        .enumerate()
        .fold_chunks(per.max(1), take, |mut w, (i, item)| {
            f(i, &mut w, item);
            w
        })
        .for_each(|w| shared.lock().unwrap_or_else(|e| e.into_inner()).push(w));
    *pool = shared.into_inner().unwrap_or_else(|e| e.into_inner());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is visited once, each run of consecutive items on one workspace, and the pool
    /// gets all its workspaces back; in a one-thread pool too (several runs per workspace).
    #[test]
    fn runs_cover_every_item_once_on_pooled_workspaces() {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
        for items in [1, 5, 8, 33, 100] {
            for single in [false, true] {
                let check = || {
                    let (runs, per) = plan(items);
                    assert!(runs * per >= items && (runs - 1) * per < items);
                    let mut pool: Vec<Vec<usize>> = (0..runs).map(|_| Vec::new()).collect();
                    let visits: Vec<Mutex<u32>> = (0..items).map(|_| Mutex::new(0)).collect();
                    for_each_in_runs(&mut pool, per, (0..items).into_par_iter(), |i, w, item| {
                        assert_eq!(i, item);
                        w.push(i);
                        *visits[i].lock().unwrap() += 1;
                    });
                    assert!(visits.iter().all(|v| *v.lock().unwrap() == 1), "an item not visited exactly once");
                    assert_eq!(pool.len(), runs);
                    // A run stays on one workspace: every item but a run's first follows its
                    // predecessor on the same workspace (which may take several runs in turn).
                    for w in &pool {
                        for (k, &i) in w.iter().enumerate() {
                            assert!(i % per == 0 || (k > 0 && w[k - 1] == i - 1), "per {per}: {w:?}");
                        }
                    }
                };
                if single { one.install(check) } else { check() }
            }
        }
    }
}
