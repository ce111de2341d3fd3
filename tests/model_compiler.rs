//! The model compiler end to end: models defined here with `#[mpc_model]` (continuous with RK4
//! and Euler, discrete, every supported function) have exact derivatives and the integrator
//! semantics the documentation promises.

#[path = "../examples/bicycle/model.rs"]
mod bicycle;

use bicycle::Bicycle;
use mpc_macros::mpc_model;
use mpc_runtime::verify::check_derivatives;
use mpc_runtime::{Model, TimeModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Damped oscillator with Euler integration and an unbounded control.
#[mpc_model(dt = 0.1, integrator = euler)]
fn oscillator(
    #[state] q: f64,
    #[state] qd: f64,
    #[control] force: f64,
    #[param(default = 2.0)] stiffness: f64,
    #[param(default = 0.3)] damping: f64,
) -> Derivative {
    Derivative { q: qd, qd: -stiffness * q - damping * qd + force }
}

/// Every function of the body language, in a discrete map (values kept in their domains).
#[mpc_model(discrete)]
fn kitchen_sink(
    #[state] a: f64,
    #[state] b: f64,
    #[state] c: f64,
    #[control(min = -1.0, max = 1.0)] w: f64,
    #[param(default = 0.5)] k: f64,
) -> Next {
    let s = (a * 0.3).sin() + (b * 0.2).cos() * (c * 0.1).tan();
    let inv = (0.5 * a.tanh()).asin() - (0.5 * b.tanh()).acos() + (c * w).atan();
    let hyp = (0.1 * a).sinh() * (0.1 * b).cosh() + (a * b).tanh();
    let e = (0.1 * c).exp() * (2.0 + a * a).ln() * (1.0 + b * b).sqrt();
    let nonsmooth = (a - 0.1).abs() + a.min(b) - b.max(c) + a.hypot(w + 2.0);
    let pow = (1.5 + b * b).powf(k) + c.powi(3) - (1.0 + a * a).powi(-2);
    let ang = (b + 3.0).atan2(a - 0.2);
    let pi = std::f64::consts::PI;
    Next { a: s + k * inv, b: hyp - e / pi, c: nonsmooth + pow * 0.1 + ang - 2 * w }
}

/// A linear discrete model: its second derivatives are identically zero.
#[mpc_model(discrete)]
fn double_integrator(#[state] pos: f64, #[state] vel: f64, #[control(min = -1.0, max = 1.0)] acc: f64, #[param(default = 0.1)] dt: f64) -> Next {
    Next { pos: pos + dt * vel + 0.5 * dt * dt * acc, vel: vel + dt * acc }
}

fn rand_vec(rng: &mut StdRng, n: usize, r: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-r..r)).collect()
}

fn assert_derivatives<M: Model>(m: &M, x: &[f64], u: &[f64], lam: &[f64]) {
    let c = check_derivatives(m, x, u, lam);
    assert!(c.step_consistent && c.hessian_asymmetry == 0.0, "{}: {c:?}", M::NAME);
    assert!(c.jacobian <= 1e-7 && c.hessian <= 1e-7, "{} at x={x:?} u={u:?}: {c:?}", M::NAME);
}

#[test]
fn bicycle_derivatives_through_rk4_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(10);
    let car = Bicycle::default();
    for _ in 0..100 {
        let x = [rng.random_range(-5.0..5.0), rng.random_range(-5.0..5.0), rng.random_range(-3.0..3.0), rng.random_range(-10.0..10.0)];
        let u = [rng.random_range(-3.0..3.0), rng.random_range(-0.5..0.5)];
        assert_derivatives(&car, &x, &u, &rand_vec(&mut rng, 4, 2.0));
    }
}

#[test]
fn bicycle_step_is_classical_rk4() {
    let car = Bicycle { wheelbase: 2.7, dt: 0.08 };
    let f = |x: [f64; 4], u: [f64; 2]| [x[3] * x[2].cos(), x[3] * x[2].sin(), x[3] / 2.7 * u[1].tan(), u[0]];
    let add = |x: [f64; 4], s: f64, k: [f64; 4]| [x[0] + s * k[0], x[1] + s * k[1], x[2] + s * k[2], x[3] + s * k[3]];
    let (x, u) = ([1.0, -2.0, 0.7, 3.0], [0.5, -0.2]);
    let h = 0.08;
    let k1 = f(x, u);
    let k2 = f(add(x, h / 2.0, k1), u);
    let k3 = f(add(x, h / 2.0, k2), u);
    let k4 = f(add(x, h, k3), u);
    let want: Vec<f64> = (0..4).map(|i| x[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])).collect();
    let mut got = [0.0; 4];
    car.eval_step(&x, &u, &mut got);
    for i in 0..4 {
        assert!((got[i] - want[i]).abs() < 1e-12, "{got:?} vs {want:?}");
    }
    assert_eq!(Bicycle::TIME_MODEL, TimeModel::Rk4);
    assert_eq!(Bicycle::PARAM_NAMES, &["wheelbase", "dt"]);
}

#[test]
fn euler_model_steps_and_is_linear() {
    let m = Oscillator::default();
    let mut got = [0.0; 2];
    m.eval_step(&[1.0, 2.0], &[0.5], &mut got);
    let want = [1.0 + 0.1 * 2.0, 2.0 + 0.1 * (-2.0 * 1.0 - 0.3 * 2.0 + 0.5)];
    assert!((got[0] - want[0]).abs() < 1e-15 && (got[1] - want[1]).abs() < 1e-15, "{got:?} vs {want:?}");
    assert_eq!(Oscillator::TIME_MODEL, TimeModel::Euler);
    assert_eq!(Oscillator::CONTROL_LOWER, &[f64::NEG_INFINITY]);
    assert_eq!(Oscillator::CONTROL_UPPER, &[f64::INFINITY]);
    assert!(Oscillator::IS_LINEAR, "Euler of a linear ODE is linear in (x, u)");
    assert!(DoubleIntegrator::IS_LINEAR);
    assert!(!Bicycle::IS_LINEAR);
    assert_derivatives(&m, &[0.3, -0.4], &[1.5], &[1.0, 1.0]);
}

#[test]
fn every_supported_function_differentiates_correctly() {
    let mut rng = StdRng::seed_from_u64(11);
    let m = KitchenSink::default();
    for _ in 0..200 {
        let x = rand_vec(&mut rng, 3, 1.5);
        let u = rand_vec(&mut rng, 1, 1.0);
        // Stay away from the kinks of abs/min/max, where one-sided derivatives differ.
        if (x[0] - 0.1).abs() < 1e-3 || (x[0] - x[1]).abs() < 1e-3 || (x[1] - x[2]).abs() < 1e-3 {
            continue;
        }
        assert_derivatives(&m, &x, &u, &rand_vec(&mut rng, 3, 2.0));
    }
}

#[test]
fn cuda_source_is_marked_generated_and_has_fixed_sizes() {
    let src = Bicycle::CUDA_SOURCE;
    assert!(src.starts_with("// ====="));
    assert!(src.contains("GENERATED by mpc-macros") && src.contains("DO NOT EDIT"));
    assert!(src.contains("namespace mpc_model_bicycle {"));
    assert!(src.contains("constexpr int NX = 4;") && src.contains("constexpr int NU = 2;"));
    assert!(src.contains("struct Params {\n    T wheelbase;\n    T dt;\n};"));
    for f in ["void step(", "void linearize(", "void weighted_hessian("] {
        assert!(src.contains(f), "missing {f}");
    }
    assert!(Oscillator::CUDA_SOURCE.contains("CONTROL_LOWER[NU] = {-MPC_INF};"));
    // The Rust and CUDA code come from one schedule: the same temporaries in the same order.
    // Rust keeps them in one flat array, each slot commented with the CUDA name (`sin` and
    // `cos` of one argument set by one call, the second named by a comment at its own place).
    let rust_temps: Vec<&str> = Bicycle::GENERATED_RUST
        .lines()
        .filter_map(|l| l.split_once("// t").map(|(_, rest)| &l[l.len() - rest.len() - 1..]))
        .map(|t| t.split(' ').next().unwrap())
        .collect();
    assert!(!rust_temps.is_empty());
    assert!(!Bicycle::GENERATED_RUST.contains("let t"), "a temporary bound by its own `let` (one nested scope each)");
    let cuda_temps: Vec<&str> = src.split("const T ").skip(1).map(|s| s.split(' ').next().unwrap()).filter(|t| t.starts_with('t') && t.ends_with('_')).collect();
    assert_eq!(rust_temps, cuda_temps);
    // The bicycle's sin(yaw) and cos(yaw): one argument reduction for both, in every function.
    for f in ["__math::sin(", "__math::cos(", "__lane::sin(", "__lane::cos("] {
        assert!(!Bicycle::GENERATED_RUST.contains(f), "{f} apart from its pair");
    }
    assert!(Bicycle::GENERATED_RUST.contains("= __math::sin_cos(") && Bicycle::GENERATED_RUST.contains("= __lane::sin_cos("));
}

#[test]
fn common_subexpressions_are_shared() {
    // sin(yaw)/cos(yaw) appear in f, A and B; each is computed once per generated function.
    let lin = Bicycle::CUDA_SOURCE.split("void linearize(").nth(1).unwrap().split("void weighted_hessian(").next().unwrap();
    let mut lines: Vec<&str> = lin.lines().filter_map(|l| l.trim().strip_prefix("const T ")).filter_map(|l| l.split_once(" = ").map(|p| p.1)).collect();
    let n = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), n, "a right-hand side is computed twice");
}

/// The example robot through the whole pipeline: solve a lane change with the box-constrained
/// iLQR and check the exact implicit gradient of the final lateral position with respect to
/// the lane target against re-solves.
#[test]
fn bicycle_solves_and_differentiates_end_to_end() {
    use mpc_runtime::{Batch, Bound, Solver, SolverOptions};
    let (horizon, n) = (30, 6);
    let w = [0.0, 2.0, 5.0, 1.0, 0.1, 1.0];
    let build = |y_ref: f64| {
        let z_ref = [0.0, y_ref, 0.0, 10.0, 0.0, 0.0];
        let mut hess = vec![0.0; horizon * n * n];
        let mut lin = vec![0.0; horizon * n];
        for t in 0..horizon {
            for i in 0..n {
                hess[t * n * n + i * n + i] = w[i];
                lin[t * n + i] = -w[i] * z_ref[i];
            }
        }
        (hess, lin)
    };
    let x_init = [0.0, 0.0, 0.0, 8.0];
    let opts = SolverOptions { eps: 1e-12, max_iters: 200, ..SolverOptions::default() };
    let solve = |y_ref: f64| {
        let (hess, lin) = build(y_ref);
        let batch = Batch {
            size: 1,
            x_init: &x_init,
            cost_hess: &hess,
            cost_lin: &lin,
            u_lower: Bound::PerControl(Bicycle::CONTROL_LOWER),
            u_upper: Bound::PerControl(Bicycle::CONTROL_UPPER),
            u_init: None,
        };
        let mut solver = Solver::new(Bicycle::default(), horizon, opts.clone());
        let sol = solver.solve(&batch);
        let mut gx = vec![0.0; horizon * 4];
        gx[(horizon - 1) * 4 + 1] = 1.0;
        let g = solver.backward(&batch, &sol, &gx, &vec![0.0; horizon * 2]);
        (sol, g)
    };
    let (sol, g) = solve(3.5);
    assert!(sol.converged[0], "lane change did not converge");
    let on_bound = sol.u.iter().enumerate().filter(|(k, u)| (**u - Bicycle::CONTROL_UPPER[k % 2]).abs() < 1e-8 || (**u - Bicycle::CONTROL_LOWER[k % 2]).abs() < 1e-8).count();
    assert!(on_bound > 0 && on_bound < sol.u.len(), "want active and inactive bounds, got {on_bound}");
    assert!((sol.x[(horizon - 1) * 4 + 1] - 3.5).abs() < 0.05, "did not reach the lane");
    // dL/dy_ref = Σ_t dL/dc_t,y · dc_t,y/dy_ref with c_y = -w_y y_ref.
    let analytic: f64 = (0..horizon).map(|t| -w[1] * g.cost_lin[t * n + 1]).sum();
    let h = 1e-5;
    let y_at = |y_ref: f64| solve(y_ref).0.x[(horizon - 1) * 4 + 1];
    let fd = (y_at(3.5 + h) - y_at(3.5 - h)) / (2.0 * h);
    assert!((analytic - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "dL/dy_ref: implicit {analytic}, finite differences {fd}");
}

/// The operation counts the Rust side reports (`Model::OP_COUNTS`, used by `mpc bench` for
/// GFLOP/s) are the ones the generated CUDA code states; a linear model's weighted Hessian
/// costs nothing.
#[test]
fn operation_counts_match_the_generated_code() {
    fn stated(src: &str, what: &str) -> usize {
        let line = src.lines().find(|l| l.starts_with(what) && l.ends_with("operations).")).unwrap_or_else(|| panic!("{what}"));
        let open = line.rfind('(').unwrap();
        line[open + 1..].split_whitespace().next().unwrap().parse().unwrap()
    }
    fn check<M: Model>() {
        let c = M::OP_COUNTS;
        assert_eq!(c.step, stated(M::CUDA_SOURCE, "/// x_next = f(x, u) ("), "{}", M::NAME);
        assert_eq!(c.linearize, stated(M::CUDA_SOURCE, "/// x_next = f(x, u), A = df/dx"), "{}", M::NAME);
        assert_eq!(c.weighted_hessian, stated(M::CUDA_SOURCE, "/// H = sum_i lambda_i"), "{}", M::NAME);
        assert!(c.linearize >= c.step, "{}: {c:?}", M::NAME);
    }
    check::<Bicycle>();
    check::<Oscillator>();
    check::<KitchenSink>();
    check::<mpc_models::Quadrotor>();
    let c = DoubleIntegrator::OP_COUNTS;
    assert!(c.step > 0 && c.weighted_hessian == 0, "{c:?}");
    assert!(Bicycle::OP_COUNTS.weighted_hessian > 0);
}
