//! What parameter gradients cost in the backward pass: the quadrotor hover task (float64, K = 5
//! iLQR iterations, both gradient modes), the backward pass with and without
//! `SolverOptions::grad_params`, alternated in the same run on a 2-thread pool, medians.
//!
//! `cargo run --release -p mpc-models --example grad_params_cost [-- REPS]`

use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{GradientMode, Gradients, Model, Solver, SolverOptions};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(40);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("rayon pool");
    println!("| B | T | mode | backward | with grad_params | ratio |");
    println!("|---:|---:|---|---:|---:|---:|");
    for &(b, t) in &[(1usize, 10usize), (256, 50)] {
        let model = Quadrotor::default();
        let sc = quadrotor_hover(&model, b, t, 0);
        let batch = sc.batch();
        for mode in [GradientMode::GaussNewton, GradientMode::Exact] {
            let opts = SolverOptions { max_iters: 5, eps: f64::MIN_POSITIVE, gradient: mode, report_kkt: false, ..SolverOptions::default() };
            let mut plain = Solver::new(model, t, opts.clone());
            let mut with = Solver::new(model, t, SolverOptions { grad_params: true, ..opts });
            let sol = plain.solve(&batch);
            let gx = vec![0.0; b * t * Quadrotor::NX];
            let gu: Vec<f64> = (0..b * t * Quadrotor::NU).map(|k| if k % (t * Quadrotor::NU) < 4 { 1.0 } else { 0.0 }).collect();
            let (mut g1, mut g2) = (Gradients::default(), Gradients::default());
            let (mut a, mut c) = (Vec::new(), Vec::new());
            pool.install(|| {
                for _ in 0..3 {
                    plain.backward_into(&batch, &sol, &gx, &gu, &mut g1);
                    with.backward_into(&batch, &sol, &gx, &gu, &mut g2);
                }
                for _ in 0..reps {
                    let t0 = Instant::now();
                    plain.backward_into(&batch, &sol, &gx, &gu, &mut g1);
                    a.push(t0.elapsed().as_secs_f64());
                    let t0 = Instant::now();
                    with.backward_into(&batch, &sol, &gx, &gu, &mut g2);
                    c.push(t0.elapsed().as_secs_f64());
                }
            });
            assert_eq!(g1.cost_lin, g2.cost_lin, "grad_params must not change the other gradients");
            assert_eq!(g2.params.len(), b * Quadrotor::NP);
            let (ma, mc) = (median(a), median(c));
            println!("| {b} | {t} | {mode:?} | {:.4} ms | {:.4} ms | {:.2}× |", ma * 1e3, mc * 1e3, mc / ma);
        }
    }
}
