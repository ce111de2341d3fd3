//! A batch solved one problem at a time (no lanes) shares its workspaces between consecutive
//! problems (`solver::runs`): on one thread, 37 problems run in 4 runs of up to 10 on 4
//! workspaces, and every problem still gets the bits of a solver that saw only it (solution,
//! statistics, KKT residual, gradients): nothing of one problem leaks into the next.

use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{Backend, GradientMode, Lanes, Model, Solver, SolverOptions};

#[test]
fn problems_sharing_a_workspace_equal_fresh_solvers() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    let (b, t) = (37, 12);
    let (nx, nu) = (Quadrotor::NX, Quadrotor::NU);
    let n = nx + nu;
    let sc = quadrotor_hover(&Quadrotor::default(), b, t, 11);
    let batch = sc.batch();
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for gradient in [GradientMode::GaussNewton, GradientMode::Exact] {
        let opts = SolverOptions { lanes: Lanes::Never, max_iters: 8, gradient, ..SolverOptions::default() };
        let gx: Vec<f64> = (0..b * t * nx).map(|k| (0.3 * k as f64).sin()).collect();
        let gu: Vec<f64> = (0..b * t * nu).map(|k| (0.7 * k as f64).cos()).collect();
        let (sol, grads) = pool.install(|| {
            let mut all = Solver::new(Quadrotor::default(), t, opts.clone());
            let sol = all.try_solve(&batch).expect("batch solve");
            let grads = all.try_backward(&batch, &sol, &gx, &gu).expect("batch backward");
            (sol, grads)
        });
        for i in 0..b {
            let single = batch.single(i, t, nx, nu);
            let mut one = Solver::new(Quadrotor::default(), t, opts.clone());
            let s = one.try_solve(&single).expect("single solve");
            let g = one.try_backward(&single, &s, &gx[i * t * nx..(i + 1) * t * nx], &gu[i * t * nu..(i + 1) * t * nu]).expect("single backward");
            let what = format!("problem {i}, {gradient:?}");
            assert_eq!(bits(&sol.x[i * t * nx..(i + 1) * t * nx]), bits(&s.x), "states, {what}");
            assert_eq!(bits(&sol.u[i * t * nu..(i + 1) * t * nu]), bits(&s.u), "controls, {what}");
            assert_eq!((sol.cost[i].to_bits(), sol.kkt_residual[i].to_bits()), (s.cost[0].to_bits(), s.kkt_residual[0].to_bits()), "{what}");
            assert_eq!((sol.iterations[i], sol.stop[i]), (s.iterations[0], s.stop[0]), "{what}");
            assert_eq!(bits(&grads.cost_hess[i * t * n * n..(i + 1) * t * n * n]), bits(&g.cost_hess), "dL/dC, {what}");
            assert_eq!(bits(&grads.cost_lin[i * t * n..(i + 1) * t * n]), bits(&g.cost_lin), "dL/dc, {what}");
            assert_eq!(bits(&grads.x_init[i * nx..(i + 1) * nx]), bits(&g.x_init), "dL/dx_init, {what}");
        }
    }
}
