//! Before/after timing of the CPU solver on the Table II task (quadrotor hover, float64, K = 5
//! iLQR iterations, Gauss-Newton backward), for changes to the solver or the generated code:
//! build this example at two commits and run both binaries back to back on an idle machine.
//! `mpc bench` is the full benchmark (grid, peer ratios); this one needs only the solver crates.
//!
//! `cargo run --release -p mpc-models --example solver_speed [-- REPS [kkt]]` prints the median
//! forward and backward time of B=1,T=10 and B=256,T=50 on a 2-thread rayon pool, without the
//! KKT residual (the work `mpc bench` measures) or, with `kkt`, with it (the library default).
//! `MPC_SPEED_CASE=1` or `=256` runs only that batch size (for profiling one case); any other
//! `MPC_SPEED_CASE=B` runs B problems at T = 50; `MPC_SPEED_LANES=always|never` overrides the
//! lane policy (`MPC_NO_AVX512=1` runs the AVX2 builds); `MPC_SPEED_THREADS=N` sets the pool size.
//! `MPC_SPEED_DUMP=PREFIX` writes every value of each case's solution and gradients to
//! `PREFIX-B<b>.txt`, one per line, to compare builds whose bits differ by their largest change.

use mpc_models::Quadrotor;
use mpc_models::scenarios::quadrotor_hover;
use mpc_runtime::{GradientMode, Gradients, Lanes, Model, Solution, Solver, SolverOptions};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let with_kkt = std::env::args().nth(2).is_some_and(|s| s == "kkt");
    // `MPC_SPEED_THREADS=1` with `taskset` runs two builds side by side, one per core, under the
    // same conditions of a noisy host (swap the cores for a second run).
    let threads = std::env::var("MPC_SPEED_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool");
    let only: Option<usize> = std::env::var("MPC_SPEED_CASE").ok().and_then(|s| s.parse().ok());
    // Another batch size through MPC_SPEED_CASE runs at T = 50 (for cache-size studies).
    let cases = match only {
        Some(o) if o != 1 && o != 256 => vec![(o, 50)],
        _ => vec![(1usize, 10usize), (256, 50)],
    };
    for &(b, t) in cases.iter().filter(|(b, _)| only.is_none_or(|o| o == *b)) {
        let model = Quadrotor::default();
        let mut sc = quadrotor_hover(&model, b, t, 0);
        // The problem data held as `mpc bench` holds them (huge-page-advised, as numpy does).
        for v in [&mut sc.x_init, &mut sc.cost_c, &mut sc.cost_q, &mut sc.u_init] {
            *v = mpc_runtime::pages::copy_of(v);
        }
        let batch = sc.batch();
        let opts = SolverOptions { max_iters: 5, eps: f64::MIN_POSITIVE, gradient: GradientMode::GaussNewton, ..SolverOptions::default() };
        // (Builds from before `report_kkt` existed computed no residual.)
        #[allow(clippy::needless_update)]
        let opts = SolverOptions { report_kkt: with_kkt, ..opts };
        // `MPC_SPEED_LANES=always|never` overrides the lane policy (default: auto).
        let lanes = match std::env::var("MPC_SPEED_LANES").as_deref() {
            Ok("always") => Lanes::Always,
            Ok("never") => Lanes::Never,
            _ => Lanes::Auto,
        };
        let opts = SolverOptions { lanes, ..opts };
        let mut solver = Solver::new(model, t, opts);
        let mut sol = Solution::default();
        let mut grads = Gradients::default();
        let gx = vec![1.0; b * t * Quadrotor::NX];
        let gu = vec![1.0; b * t * Quadrotor::NU];
        let inner = if b == 1 { 200 } else { 1 };
        let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
        pool.install(|| {
            for _ in 0..reps + 3 {
                let s = Instant::now();
                for _ in 0..inner {
                    solver.solve_into(&batch, &mut sol);
                }
                fwd.push(s.elapsed().as_secs_f64() / inner as f64);
                let s = Instant::now();
                for _ in 0..inner {
                    solver.backward_into(&batch, &sol, &gx, &gu, &mut grads);
                }
                bwd.push(s.elapsed().as_secs_f64() / inner as f64);
            }
        });
        let cost: f64 = sol.cost.iter().sum();
        // FNV-1a of every bit of the solution and the gradients: equal hashes across builds mean
        // bit-identical results.
        let hash = [&sol.x, &sol.u, &grads.cost_hess, &grads.cost_lin, &grads.x_init]
            .iter()
            .flat_map(|v| v.iter())
            .fold(0xcbf29ce484222325u64, |h, v| (h ^ v.to_bits()).wrapping_mul(0x100000001b3));
        if let Ok(prefix) = std::env::var("MPC_SPEED_DUMP") {
            let lines: Vec<String> = [&sol.x, &sol.u, &grads.cost_hess, &grads.cost_lin, &grads.x_init]
                .iter()
                .flat_map(|v| v.iter())
                .map(|v| format!("{v:e}"))
                .collect();
            std::fs::write(format!("{prefix}-B{b}.txt"), lines.join("\n")).expect("MPC_SPEED_DUMP: write");
        }
        println!(
            "B={b:<4} T={t:<3} forward {:>10.4} ms  backward {:>10.4} ms  (min {:.4} / {:.4} ms; sum of costs {cost:.12e}, bits {hash:016x})",
            1e3 * median(fwd[3..].to_vec()),
            1e3 * median(bwd[3..].to_vec()),
            1e3 * fwd[3..].iter().copied().fold(f64::INFINITY, f64::min),
            1e3 * bwd[3..].iter().copied().fold(f64::INFINITY, f64::min)
        );
    }
}
