//! Batches solved several problems at a time (the lane path: structure of arrays, the
//! generated lane code of each model) give every problem the bits of solving it alone, for the
//! bundled models: the quadrotor hover task, and the pendulum and cart-pole from random starts
//! with their control bounds active; default options and the trainer's (fixed K, Gauss-Newton,
//! no residual); batches of whole and partial lane groups.

use mpc_models::scenarios::quadrotor_hover;
use mpc_models::{Cartpole, Pendulum, Quadrotor};
use mpc_runtime::verify::{check_batch_matches_single, check_lanes};
use mpc_runtime::{Batch, Bound, GradientMode, LANES, Model, SolverOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn option_sets() -> Vec<SolverOptions> {
    vec![
        SolverOptions::default(),
        SolverOptions { max_iters: 5, eps: 1e-6, gradient: GradientMode::GaussNewton, report_kkt: false, ..SolverOptions::default() },
    ]
}

#[test]
fn quadrotor_hover_batches_equal_single_solves() {
    for b in [LANES, 2 * LANES + 1] {
        let t = 12;
        let sc = quadrotor_hover(&Quadrotor::default(), b, t, 3);
        for opts in option_sets() {
            if let Err(e) = check_batch_matches_single(&Quadrotor::default(), t, &opts, &sc.batch()) {
                panic!("quadrotor, B = {b}, {opts:?}: {e}");
            }
        }
    }
}

/// A swing-up-like task: random starts, a diagonal cost towards a random goal, bounds of ±0.5
/// on every control (which the solutions hit).
fn random_task<M: Model>(seed: u64, b: usize, t: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (nx, nu) = (M::NX, M::NU);
    let n = nx + nu;
    let x_init: Vec<f64> = (0..b * nx).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut cm = vec![0.0; b * t * n * n];
    let mut cv = vec![0.0; b * t * n];
    for p in 0..b {
        let goal: Vec<f64> = (0..nx).map(|_| rng.random_range(-2.0..2.0)).collect();
        for s in 0..t {
            for i in 0..n {
                let w = if i < nx { rng.random_range(1.0..10.0) } else { 0.01 };
                cm[((p * t + s) * n + i) * n + i] = w;
                if i < nx {
                    cv[(p * t + s) * n + i] = -w * goal[i];
                }
            }
        }
    }
    let (lo, hi) = (vec![-0.5; nu], vec![0.5; nu]);
    let batch = Batch {
        size: b,
        x_init: &x_init,
        cost_hess: &cm,
        cost_lin: &cv,
        u_lower: Bound::PerControl(&lo),
        u_upper: Bound::PerControl(&hi),
        u_init: None,
    };
    let mut hit = false;
    for opts in option_sets() {
        if let Err(e) = check_batch_matches_single(&M::default(), t, &opts, &batch) {
            panic!("{}, B = {b}, {opts:?}: {e}", M::NAME);
        }
        let sol = mpc_runtime::Solver::new(M::default(), t, opts).solve(&batch);
        hit |= sol.u.iter().any(|&u| u.abs() == 0.5);
    }
    assert!(hit, "{}: no control bound is active, the test does not test the box QP's lanes", M::NAME);
}

#[test]
fn pendulum_and_cartpole_batches_equal_single_solves() {
    random_task::<Pendulum>(1, 2 * LANES + 3, 20);
    random_task::<Cartpole>(2, 3 * LANES, 15);
}

#[test]
fn generated_lane_code_equals_the_one_problem_code() {
    fn check<M: Model>(seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..20 {
            let xs: Vec<Vec<f64>> = (0..LANES).map(|_| (0..M::NX).map(|_| rng.random_range(-1.5..1.5)).collect()).collect();
            let us: Vec<Vec<f64>> = (0..LANES)
                .map(|_| (0..M::NU).map(|i| rng.random_range(M::CONTROL_LOWER[i].max(-20.0)..M::CONTROL_UPPER[i].min(20.0))).collect())
                .collect();
            match check_lanes(&M::default(), &xs, &us) {
                Some(Ok(())) => {}
                Some(Err(e)) => panic!("{}: {e}", M::NAME),
                None => panic!("{}: no lane code", M::NAME),
            }
        }
    }
    check::<Pendulum>(4);
    check::<Cartpole>(5);
    check::<Quadrotor>(6);
}

/// Consecutive lane groups share a workspace (four tasks per rayon thread): on one thread,
/// 41 problems are 11 groups in 4 tasks of up to 3 groups each, and every problem still gets
/// the bits of solving and differentiating it alone (nothing of one group leaks into the next).
#[test]
fn groups_sharing_a_workspace_equal_single_solves() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    let (b, t) = (10 * LANES + 1, 12);
    let sc = quadrotor_hover(&Quadrotor::default(), b, t, 7);
    pool.install(|| {
        for opts in option_sets() {
            if let Err(e) = check_batch_matches_single(&Quadrotor::default(), t, &opts, &sc.batch()) {
                panic!("quadrotor, B = {b}, one thread, {opts:?}: {e}");
            }
        }
    });
}

/// The backward pass takes the cost Hessians' structure (which stages are diagonal) from the
/// solve of the same array, and tests it again for any other: with stages dense, diagonal with
/// `-0` off the diagonal, and compact, the gradients equal those of the backward pass that
/// tests every entry, to the bit; after a stage of a copy of `C` is made dense, the backward
/// pass of the copy with the original's solution sees the new entries (its gradients are
/// those of testing the copy, and differ from the original's).
#[test]
fn backward_takes_the_cost_structure_from_the_solve_of_the_same_array() {
    let (t, b) = (6, 2 * LANES);
    let n = Quadrotor::NX + Quadrotor::NU;
    let mut sc = quadrotor_hover(&Quadrotor::default(), b, t, 8);
    for p in 0..b {
        for s in 0..t {
            let c = &mut sc.cost_c[(p * t + s) * n * n..(p * t + s + 1) * n * n];
            if p % LANES == 0 && s % 2 == 0 {
                // Dense: a symmetric coupling of neighbouring entries.
                for i in 0..n - 1 {
                    c[i * n + i + 1] = 0.05;
                    c[(i + 1) * n + i] = 0.05;
                }
            } else if p == 3 && s % 3 == 1 {
                // Diagonal, not compact.
                c[1] = -0.0;
                c[n] = -0.0;
            }
        }
    }
    let opts = SolverOptions { max_iters: 5, gradient: GradientMode::GaussNewton, lanes: mpc_runtime::Lanes::Always, ..SolverOptions::default() };
    let mut solver = mpc_runtime::Solver::new(Quadrotor::default(), t, opts);
    let sol = solver.solve(&sc.batch());
    let gx: Vec<f64> = (0..b * t * Quadrotor::NX).map(|k| (0.37 * k as f64).sin()).collect();
    let gu: Vec<f64> = (0..b * t * Quadrotor::NU).map(|k| (0.91 * k as f64).cos()).collect();
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let unrecorded = mpc_runtime::Solution { cost_structure: Default::default(), ..sol.clone() };
    let recorded = solver.backward(&sc.batch(), &sol, &gx, &gu);
    let tested = solver.backward(&sc.batch(), &unrecorded, &gx, &gu);
    assert!(recorded.status.iter().all(|s| *s == mpc_runtime::GradStatus::Ok), "{:?}", recorded.status);
    assert_eq!(bits(&recorded.cost_hess), bits(&tested.cost_hess));
    assert_eq!(bits(&recorded.cost_lin), bits(&tested.cost_lin));
    assert_eq!(bits(&recorded.x_init), bits(&tested.x_init));
    // A copy with problem 5's stage 3 made dense: compact in every problem of its lane group
    // in the original, so the original's record would leave the new entries out.
    let mut c2 = sc.cost_c.clone();
    let (p, s) = (LANES + 1, 3);
    let c = &mut c2[(p * t + s) * n * n..(p * t + s + 1) * n * n];
    for i in 0..n - 1 {
        c[i * n + i + 1] = 0.1;
        c[(i + 1) * n + i] = 0.1;
    }
    let batch2 = Batch { cost_hess: &c2, ..sc.batch() };
    let moved = solver.backward(&batch2, &sol, &gx, &gu);
    let moved_tested = solver.backward(&batch2, &unrecorded, &gx, &gu);
    assert_eq!(bits(&moved.cost_hess), bits(&moved_tested.cost_hess));
    assert_eq!(bits(&moved.cost_lin), bits(&moved_tested.cost_lin));
    assert_eq!(bits(&moved.x_init), bits(&moved_tested.x_init));
    assert_ne!(bits(&moved.cost_lin), bits(&recorded.cost_lin), "the copy's new entries changed nothing");
}
