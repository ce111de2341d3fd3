//! Never a silent non-finite answer (issue 17): a problem whose rollout, cost or Riccati pass
//! overflows is reported as such (`stop`: `non-finite-*`, `converged: false`), its backward pass
//! is masked (zero gradients, `grad_status` says why), and the other problems of the batch are
//! exactly what they are alone. The same on the CPU, in every CUDA layout (host-emulated), and
//! through `mpc solve`.

mod common;

use common::{fixture_path, in_ci, read_json, solve_file};

use mpc_models::Pendulum;
use mpc_cuda::host::HostModule;
use mpc_cuda::render::{KernelOptions, Precision, render_backward, render_solve, render_solve_warp, render_stages};
use mpc_runtime::{Batch, Bound, GradStatus, GradientMode, Lanes, Model, NonFinite, Solver, SolverOptions, StopReason};
use serde_json::Value;

const T: usize = 10;
const NX: usize = Pendulum::NX;
const NU: usize = Pendulum::NU;
const N: usize = NX + NU;

/// Four pendulum problems: 0 and 3 ordinary, 1 with `x_init` 1e308 (its rollout or cost
/// overflows), 2 with the angular velocity's weight 1e308 (finite cost at a tiny state, but the Riccati pass
/// overflows one stage back).
fn problems() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let b = 4;
    let mut x0 = Vec::new();
    for th in [0.5f64, 0.0, 0.0, -1.0] {
        x0.extend_from_slice(&[th.cos(), th.sin(), 0.1]);
    }
    x0[NX] = 1e308;
    x0[2 * NX + 2] = 1e-9; // a tiny velocity: cost about 1e308·1e-18, finite
    let mut cm = vec![0.0; b * T * N * N];
    let mut cv = vec![0.0; b * T * N];
    for i in 0..b {
        for t in 0..T {
            let c = &mut cm[(i * T + t) * N * N..(i * T + t + 1) * N * N];
            for j in 0..N {
                c[j * N + j] = if i == 2 && j == 2 { 1e308 } else { 1.0 };
            }
            cv[(i * T + t) * N] = -1.0; // toward cos θ = 1
        }
    }
    (x0, cm, cv)
}

const LO: [f64; 1] = [-2.0];
const HI: [f64; 1] = [2.0];

fn batch<'a>(x0: &'a [f64], cm: &'a [f64], cv: &'a [f64]) -> Batch<'a> {
    Batch {
        size: x0.len() / NX,
        x_init: x0,
        cost_hess: cm,
        cost_lin: cv,
        u_lower: Bound::PerControl(&LO),
        u_upper: Bound::PerControl(&HI),
        u_init: None,
    }
}

fn options() -> SolverOptions {
    SolverOptions { max_iters: 30, eps: 1e-9, ..SolverOptions::default() }
}

fn upstream(b: usize) -> (Vec<f64>, Vec<f64>) {
    let gx: Vec<f64> = (0..b * T * NX).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect();
    let mut gu: Vec<f64> = (0..b * T * NU).map(|i| ((i * 5 % 7) as f64 - 3.0) / 3.0).collect();
    // Problem 3's upstream gradient overflows the implicit-differentiation solve.
    for v in &mut gu[3 * T * NU..4 * T * NU] {
        *v = 1e308;
    }
    (gx, gu)
}

fn is_rollout_or_cost(s: StopReason) -> bool {
    matches!(s, StopReason::NonFinite(NonFinite::Rollout | NonFinite::Cost))
}

#[test]
fn cpu_flags_each_non_finite_problem_and_leaves_the_others_alone() {
    let (x0, cm, cv) = problems();
    let b = batch(&x0, &cm, &cv);
    let mut solver = Solver::new(Pendulum::default(), T, options());
    let sol = solver.solve(&b);
    eprintln!("stop {:?} iterations {:?} cost {:?}", sol.stop, sol.iterations, sol.cost);
    assert!(is_rollout_or_cost(sol.stop[1]), "problem 1: {:?}", sol.stop[1]);
    assert_eq!(sol.stop[2], StopReason::NonFinite(NonFinite::Riccati), "problem 2");
    assert_eq!(sol.converged, vec![true, false, false, true]);
    assert_eq!((sol.iterations[1], sol.iterations[2]), (0, 1));
    assert_eq!(sol.non_finite_count(), 2);
    // Problem 2 returns its (finite) initial iterate; its controls are finite everywhere.
    assert!(sol.u.iter().all(|v| v.is_finite()));
    assert!(sol.x[2 * T * NX..3 * T * NX].iter().all(|v| v.is_finite()));
    // The ordinary problems are those of a batch of one, to the bit.
    for i in [0, 3] {
        let alone = Solver::new(Pendulum::default(), T, options()).solve(&b.single(i, T, NX, NU));
        assert_eq!(alone.u, sol.u[i * T * NU..(i + 1) * T * NU], "problem {i}: u");
        assert_eq!(alone.x, sol.x[i * T * NX..(i + 1) * T * NX], "problem {i}: x");
        assert_eq!(alone.cost[0].to_bits(), sol.cost[i].to_bits(), "problem {i}: cost");
    }
    // Backward: 1 and 2 masked for their solutions, 3 for its overflowing gradient; all zero.
    let (gx, gu) = upstream(4);
    let g = solver.backward(&b, &sol, &gx, &gu);
    assert_eq!(g.status, vec![GradStatus::Ok, GradStatus::MaskedSolution, GradStatus::MaskedSolution, GradStatus::MaskedNonFinite]);
    for i in 1..4 {
        assert!(g.cost_hess[i * T * N * N..(i + 1) * T * N * N].iter().all(|&v| v == 0.0), "problem {i}: grad_C");
        assert!(g.cost_lin[i * T * N..(i + 1) * T * N].iter().all(|&v| v == 0.0), "problem {i}: grad_c");
        assert!(g.x_init[i * NX..(i + 1) * NX].iter().all(|&v| v == 0.0), "problem {i}: grad_x_init");
    }
    assert!(g.cost_lin[..T * N].iter().any(|&v| v != 0.0) && g.cost_lin.iter().all(|v| v.is_finite()));
    // Problem 0's gradient is that of a batch of one.
    let one = b.single(0, T, NX, NU);
    let s0 = Solver::new(Pendulum::default(), T, options()).solve(&one);
    let g0 = Solver::new(Pendulum::default(), T, options()).backward(&one, &s0, &gx[..T * NX], &gu[..T * NU]);
    assert_eq!(g0.cost_lin, g.cost_lin[..T * N]);
}

/// The lock-step lane paths (forward and backward, forced for this batch of 4) flag the same
/// problems, zero the same gradients, and give the other problems' outputs to the bit: the
/// lane backward checks each problem's outputs itself (no second pass over them).
#[test]
fn lanes_flag_the_same_problems_to_the_bit() {
    let (x0, cm, cv) = problems();
    let b = batch(&x0, &cm, &cv);
    let (gx, gu) = upstream(4);
    let run = |lanes: Lanes| {
        // Gauss-Newton: the mode the lane backward serves for a model with curvature.
        let opts = SolverOptions { lanes, gradient: GradientMode::GaussNewton, ..options() };
        let mut solver = Solver::new(Pendulum::default(), T, opts);
        let sol = solver.solve(&b);
        let g = solver.backward(&b, &sol, &gx, &gu);
        (sol, g)
    };
    let (s1, g1) = run(Lanes::Never);
    let (s4, g4) = run(Lanes::Always);
    assert_eq!(s1.stop, s4.stop);
    assert_eq!(s1.u, s4.u);
    assert_eq!(g4.status, vec![GradStatus::Ok, GradStatus::MaskedSolution, GradStatus::MaskedSolution, GradStatus::MaskedNonFinite]);
    assert_eq!(g1.status, g4.status);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&g1.cost_hess), bits(&g4.cost_hess));
    assert_eq!(bits(&g1.cost_lin), bits(&g4.cost_lin));
    assert_eq!(bits(&g1.x_init), bits(&g4.x_init));
    assert!(g4.cost_hess[..T * N * N].iter().any(|&v| v != 0.0));
    assert!(g4.cost_hess[T * N * N..].iter().all(|&v| v == 0.0));
}

#[test]
fn tolerance_mode_and_ddp_flag_the_same_problems() {
    let (x0, cm, cv) = problems();
    let b = batch(&x0, &cm, &cv);
    for opts in [
        SolverOptions { tol: Some(1e-8), ..options() },
        SolverOptions { method: mpc_runtime::Method::Ddp, ..options() },
    ] {
        let sol = Solver::new(Pendulum::default(), T, opts.clone()).solve(&b);
        assert!(is_rollout_or_cost(sol.stop[1]), "{opts:?}: {:?}", sol.stop);
        assert_eq!(sol.stop[2], StopReason::NonFinite(NonFinite::Riccati), "{opts:?}");
        assert!(sol.converged[0] && sol.converged[3] && !sol.converged[1] && !sol.converged[2], "{opts:?}");
    }
}

/// The same batch through every CUDA layout, host-emulated (the kernels' own status codes):
/// the same statuses as the CPU, the ordinary problems equal to it, the backward masked alike.
#[test]
fn host_emulated_kernels_flag_the_same_problems() {
    let (x0, cm, cv) = problems();
    let b = batch(&x0, &cm, &cv);
    let opts = options();
    let cpu = Solver::new(Pendulum::default(), T, opts.clone()).solve(&b);
    let ko = KernelOptions::new(T, Precision::F64).with_solver(opts.clone());
    let k = render_solve::<Pendulum>(&ko).unwrap();
    let [s1, s2, s3] = render_stages::<Pendulum>(&ko).unwrap();
    let wk = render_solve_warp::<Pendulum>(&ko).unwrap();
    let bk = render_backward::<Pendulum>(&ko.clone().with_solver(SolverOptions { gradient: GradientMode::Exact, ..opts.clone() })).unwrap();
    let hm = match HostModule::build_many(&[&k, &s1, &s2, &s3, &wk, &bk]) {
        Ok(m) => m,
        Err(e) if !in_ci() && matches!(e, mpc_cuda::host::HostError::NoCompiler(_)) => {
            eprintln!("\n!!!!! SKIPPING HOST EMULATION (no C++ compiler): {e}\n");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let p = Pendulum::default().param_values();
    let thread = hm.solve(&p, &b, 2).unwrap();
    let warp = hm.solve_warp(&p, &b, 2).unwrap();
    let (staged, _) = hm.solve_staged(&p, &b, 2).unwrap();
    for (name, s) in [("thread", &thread), ("warp", &warp), ("three-stage", &staged)] {
        assert_eq!(s.stop.len(), 4, "{name}: every problem has a status");
        assert!(is_rollout_or_cost(s.stop[1]), "{name}: {:?}", s.stop);
        assert_eq!(s.stop[2], StopReason::NonFinite(NonFinite::Riccati), "{name}");
        assert_eq!(s.converged, cpu.converged, "{name}");
        assert_eq!(s.iterations, cpu.iterations, "{name}");
        for i in [0, 3] {
            let du = (0..T * NU).map(|j| (s.u[i * T * NU + j] - cpu.u[i * T * NU + j]).abs()).fold(0.0, f64::max);
            assert!(du <= 1e-9, "{name}: problem {i}: |du| {du:e}");
        }
        assert!(s.u.iter().all(|v| v.is_finite()), "{name}");
    }
    let (gx, gu) = upstream(4);
    let want = Solver::new(Pendulum::default(), T, opts.clone()).backward(&b, &cpu, &gx, &gu);
    let got = hm.backward(GradientMode::Exact, &p, &b, &thread, &gx, &gu, 2).unwrap();
    assert_eq!(got.status, want.status);
    for i in 1..4 {
        assert!(got.cost_lin[i * T * N..(i + 1) * T * N].iter().all(|&v| v == 0.0), "problem {i}");
    }
}

fn solve_doc(doc: &Value, tag: &str) -> Value {
    let dir = mpc_runtime::private_fs::private_temp_dir("mpc-nonfinite-test-").unwrap();
    let (p, s) = (dir.path().join(format!("{tag}.json")), dir.path().join(format!("{tag}.solution.json")));
    std::fs::write(&p, doc.to_string()).unwrap();
    let out = solve_file(&p, &s);
    assert!(out.status.success(), "{tag}: {}", String::from_utf8_lossy(&out.stderr));
    read_json(&s)
}

/// The document: a valid problem whose first `x_init` entry is 1e308.
#[test]
fn cli_reports_the_1e308_problem_and_leaves_the_other_unchanged() {
    let doc: Value = read_json(fixture_path("cartpole.problem.json"));
    let mut big = doc.clone();
    big["x_init"][0][0] = Value::from(1e308);
    let plain = solve_doc(&doc, "plain");
    let sol = solve_doc(&big, "big");
    assert_eq!(sol["converged"][0], Value::Bool(false));
    let stop = sol["stop"][0].as_str().unwrap();
    assert!(stop == "non-finite-rollout" || stop == "non-finite-cost", "stop {stop}");
    assert_eq!(sol["iterations"][0], Value::from(0));
    assert_eq!(sol["grad_status"][0], Value::from("masked-solution"));
    assert!(sol["grad_c"][0].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap()).all(|v| v.as_f64() == Some(0.0)));
    for key in ["x", "u", "cost", "iterations", "converged", "stop", "kkt_residual", "grad_C", "grad_c", "grad_x_init", "grad_status"] {
        assert_eq!(sol[key][1], plain[key][1], "problem 1, key {key}: unchanged");
    }
}
