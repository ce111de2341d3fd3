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

use counting_alloc::{COUNTING, MINE};

/// The allocations `f` makes on this thread.
fn allocations_of(f: impl FnOnce()) -> usize {
    let before = MINE.with(|m| m.get());
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    MINE.with(|m| m.get()) - before
}

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
        let n = allocations_of(|| {
            for _ in 0..5 {
                s.solve_into(&batch, &mut sol);
                s.backward_into(&batch, &sol, &gx, &gu, &mut g);
            }
        });
        assert_eq!(n, 0, "{mode:?}: {n} allocations in 5 solve + backward calls");
    }
}

/// A batch with a model per problem ([`SolveEach`]) reuses its per-problem solutions and
/// gradients: repeated calls allocate nothing either (in a one-thread pool, so that every
/// problem runs on this thread, where the allocations are counted).
#[test]
fn repeated_per_problem_model_solves_do_not_allocate() {
    use mpc_runtime::{Backend, SolveEach};
    let (t, nx, nu, b) = (10, 3, 1, 3);
    let models: Vec<_> = [0.9, 1.0, 1.1].iter().map(|&m| Pendulum::new(RefPendulum { m, ..RefPendulum::default() })).collect();
    let mut cm = Vec::new();
    for _ in 0..b * t {
        cm.extend(diag_matrix(&[1.0, 1.0, 0.1, 0.001]));
    }
    let p = Prob {
        b,
        t,
        nx,
        nu,
        x_init: (0..b).flat_map(|i| {
            let th = 0.4 + 0.2 * i as f64;
            [th.cos(), th.sin(), -0.8]
        }).collect(),
        cm,
        cv: (0..b * t).flat_map(|_| [-1.0, 0.0, 0.0, 0.0]).collect(),
        lo: BoundData::PerControl(vec![-2.0]),
        hi: BoundData::PerControl(vec![2.0]),
        u_init: None,
    };
    let gx = vec![1.0; b * t * nx];
    let gu = vec![0.5; b * t * nu];
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    one.install(|| {
        let mut each = SolveEach::new(models, t, SolverOptions { max_iters: 100, eps: 1e-12, ..SolverOptions::default() });
        let mut sol = Solution::default();
        let mut g = Gradients::default();
        let batch = p.batch();
        each.try_solve_into(&batch, &mut sol).unwrap();
        each.try_backward_into(&batch, &sol, &gx, &gu, &mut g).unwrap();
        assert!(sol.converged.iter().all(|&c| c), "{:?}", sol.stop);
        let n = allocations_of(|| {
            for _ in 0..5 {
                each.try_solve_into(&batch, &mut sol).unwrap();
                each.try_backward_into(&batch, &sol, &gx, &gu, &mut g).unwrap();
            }
        });
        assert_eq!(n, 0, "{n} allocations in 5 per-problem-model solve + backward calls");
    });
}
