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
