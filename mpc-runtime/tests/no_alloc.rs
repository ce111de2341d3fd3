//! The solver allocates nothing once its workspaces and outputs exist: repeated
//! `solve_into` / `backward_into` calls on a single problem (no thread pool involved) make zero
//! heap allocations, across every iLQR iteration, line search, box QP and the gradient pass.

mod common;

use common::*;
use mpc_runtime::problem::BoundData;
use mpc_oracles::{Pendulum, RefPendulum};
use mpc_runtime::{GradientMode, Gradients, Solution, Solver, SolverOptions};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{ALLOCS, COUNTING};
use std::sync::atomic::Ordering;

#[test]
fn repeated_solves_do_not_allocate() {
    let d = Pendulum::new(RefPendulum::default());
    let (t, nx, nu) = (10, 3, 1);
    let mut cm = Vec::new();
    for _ in 0..t {
        cm.extend(diag_matrix(&[1.0, 1.0, 0.1, 0.001]));
    }
    let th: f64 = 0.6;
    let p = Prob {
        b: 1,
        t,
        nx,
        nu,
        x_init: vec![th.cos(), th.sin(), -0.8],
        cm,
        cv: (0..t).flat_map(|_| [-1.0, 0.0, 0.0, 0.0]).collect(),
        lo: BoundData::PerControl(vec![-2.0]),
        hi: BoundData::PerControl(vec![2.0]),
        u_init: None,
    };
    let gx = vec![1.0; t * nx];
    let gu = vec![0.5; t * nu];
    for mode in [GradientMode::Exact, GradientMode::GaussNewton] {
        let mut s = Solver::new(d.clone(), t, SolverOptions { max_iters: 100, eps: 1e-12, gradient: mode, ..SolverOptions::default() });
        let mut sol = Solution::default();
        let mut g = Gradients::default();
        s.solve_into(&p.batch(), &mut sol);
        s.backward_into(&p.batch(), &sol, &gx, &gu, &mut g);
        assert!(sol.converged[0] && sol.iterations[0] >= 3, "{:?}", sol.iterations);
        let batch = p.batch();
        let before = ALLOCS.load(Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        for _ in 0..5 {
            s.solve_into(&batch, &mut sol);
            s.backward_into(&batch, &sol, &gx, &gu, &mut g);
        }
        COUNTING.with(|c| c.set(false));
        let after = ALLOCS.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "{mode:?}: {} allocations in 5 solve + backward calls", after - before);
    }
}
