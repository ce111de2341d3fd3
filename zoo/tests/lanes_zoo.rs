//! Every zoo model (user-style crates, built by this test run in the dev profile) solved in
//! batches that take the lane path (several problems at a time, the model's generated lane
//! code) gives each problem the bits of solving it alone: the scenario's three starts,
//! perturbed, with the model's own and the tight control bounds, for batches of a partial and
//! whole lane groups.

use mpc_runtime::verify::check_batch_matches_single;
use mpc_runtime::{Batch, Bound, LANES, Model, SolverOptions};
use mpc_zoo::{ZooCase, ZooVisitor, for_each};
use rand::{Rng, SeedableRng};

#[derive(Clone)]
struct BatchedEqualsSingle;

impl ZooVisitor for BatchedEqualsSingle {
    type Output = ();
    fn visit<M: Model + ZooCase>(self) {
        let sc = M::scenario();
        let (nx, t) = (M::NX, sc.horizon);
        let (cm1, cv1) = sc.cost();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let b = 2 * LANES + 1;
        let x_init: Vec<f64> = (0..b)
            .flat_map(|p| sc.x_starts[p % sc.x_starts.len()].clone())
            .enumerate()
            .map(|(k, v)| if k < nx { v } else { v + 0.01 * rng.random_range(-1.0..1.0) })
            .collect();
        let (cm, cv) = (cm1.repeat(b), cv1.repeat(b));
        let opts = SolverOptions { max_iters: 30, ..SolverOptions::default() };
        for (lo, hi) in [(M::CONTROL_LOWER, M::CONTROL_UPPER), (&sc.u_lower_tight[..], &sc.u_upper_tight[..])] {
            let batch = Batch {
                size: b,
                x_init: &x_init,
                cost_hess: &cm,
                cost_lin: &cv,
                u_lower: Bound::PerControl(lo),
                u_upper: Bound::PerControl(hi),
                u_init: None,
            };
            if let Err(e) = check_batch_matches_single(&M::default(), t, &opts, &batch) {
                panic!("{}: {e}", M::NAME);
            }
        }
    }
}

#[test]
fn batched_solves_of_every_zoo_model_equal_single_solves() {
    assert_eq!(for_each(BatchedEqualsSingle).len(), mpc_zoo::ZOO.len());
}
