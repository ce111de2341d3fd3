//! Criterion benchmark of the CPU solver on the Table II task (quadrotor hover, float64,
//! K = 5 iLQR iterations fixed, Gauss-Newton backward as in mpc.pytorch), over a small grid:
//! B ∈ {1, 256} at T = 10, forward solve and backward pass timed separately.
//!
//! `cargo bench --bench solver`; the full Table II grid with the mpc.pytorch ratios is
//! `mpc bench`. The rayon pool has 2 threads (as the mpc.pytorch measurement) unless
//! `MPC_BENCH_THREADS` says otherwise.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{GradientMode, Gradients, Model, Solution, Solver, SolverOptions};
use std::hint::black_box;
use std::time::Duration;

/// The grid: (B, T).
const GRID: &[(usize, usize)] = &[(1, 10), (256, 10)];
/// iLQR iterations, fixed.
const ITERS: usize = 5;

fn bench_solver(c: &mut Criterion) {
    let threads = std::env::var("MPC_BENCH_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
    let mut group = c.benchmark_group("quadrotor_hover");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for &(b, t) in GRID {
        let model = Quadrotor::default();
        let sc = quadrotor_hover(&model, b, t, 0);
        let batch = sc.batch();
        let opts = SolverOptions {
            max_iters: ITERS,
            eps: f64::MIN_POSITIVE,
            gradient: GradientMode::GaussNewton,
            // As `mpc bench`: the work mpc.pytorch does (no KKT residual).
            report_kkt: false,
            ..SolverOptions::default()
        };
        let mut solver = Solver::new(model, t, opts);
        let mut sol = Solution::default();
        let mut grads = Gradients::default();
        let gx = vec![1.0; b * t * Quadrotor::NX];
        let gu = vec![1.0; b * t * Quadrotor::NU];
        pool.install(|| {
            solver.solve_into(&batch, &mut sol);
            solver.backward_into(&batch, &sol, &gx, &gu, &mut grads);
        });
        let id = format!("B{b}_T{t}");
        group.bench_function(BenchmarkId::new("forward", &id), |bn| {
            bn.iter(|| pool.install(|| solver.solve_into(black_box(&batch), &mut sol)))
        });
        // The forward loop above leaves `sol` at the solution of `batch`.
        group.bench_function(BenchmarkId::new("backward", &id), |bn| {
            bn.iter(|| pool.install(|| solver.backward_into(black_box(&batch), &sol, &gx, &gu, &mut grads)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_solver);
criterion_main!(benches);
