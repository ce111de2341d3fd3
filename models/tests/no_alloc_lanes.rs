//! The lane paths allocate nothing once the solver's workspaces and outputs exist, as the
//! per-problem path (`mpc-runtime/tests/no_alloc.rs`): a problem alone with its line search's
//! step sizes in lanes (B = 1), and a batch in lock-step groups of problems (forward and
//! backward), for a generated model (the quadrotor). Run on a one-thread rayon pool, whose
//! thread is the one counted.

use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{Gradients, Lanes, Model, Solution, Solver, SolverOptions};
#[path = "../../mpc-runtime/tests/common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{ALLOCS, COUNTING};
use std::sync::atomic::Ordering;

#[test]
fn lane_paths_do_not_allocate() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    let t = 12;
    for (b, lanes) in [(1, Lanes::Auto), (2 * mpc_runtime::LANES, Lanes::Always)] {
        let sc = quadrotor_hover(&Quadrotor::default(), b, t, 1);
        let batch = sc.batch();
        let opts = SolverOptions { lanes, max_iters: 5, report_kkt: false, ..SolverOptions::default() };
        let mut s = Solver::new(Quadrotor::default(), t, opts);
        let (mut sol, mut g) = (Solution::default(), Gradients::default());
        let gx = vec![1.0; b * t * Quadrotor::NX];
        let gu = vec![0.5; b * t * Quadrotor::NU];
        let allocs = pool.install(|| {
            s.solve_into(&batch, &mut sol);
            s.backward_into(&batch, &sol, &gx, &gu, &mut g);
            assert!(sol.iterations.iter().all(|&k| k >= 2), "{:?}", sol.iterations);
            let before = ALLOCS.load(Ordering::Relaxed);
            COUNTING.with(|c| c.set(true));
            for _ in 0..5 {
                s.solve_into(&batch, &mut sol);
                s.backward_into(&batch, &sol, &gx, &gu, &mut g);
            }
            COUNTING.with(|c| c.set(false));
            ALLOCS.load(Ordering::Relaxed) - before
        });
        assert_eq!(allocs, 0, "B = {b}, {lanes:?}: {allocs} allocations in 5 solve + backward calls");
    }
}
