//! Gradients with respect to model parameters (issue 13): `dL/dθ` from the solver's backward
//! pass (exact mode) against central finite differences of re-solved problems, with control
//! bounds active, on every bundled model, the `linear` model (its `A`, `B`, `f`), and a model
//! written here the way a user writes one. Also: the generated `∂f/∂θ` and mixed second
//! derivative against finite differences of the generated step and Jacobians.

mod common;

use common::{fixture_path, read_json, solve_file};
use mpc_macros::mpc_model;
use mpc_models::{Cartpole, Pendulum, Quadrotor};
use mpc_runtime::{Batch, Bound, Dynamics, GradientMode, LinearModel, Model, Solver, SolverOptions};

/// A user's model: a damped pendulum on a spring-mounted pivot, RK4, four parameters.
#[mpc_model(dt = 0.05, integrator = rk4)]
pub fn spring_pendulum(
    #[state] q: f64,
    #[state] dq: f64,
    #[state] s: f64,
    #[state] ds: f64,
    #[control(min = -3.0, max = 3.0)] tau: f64,
    #[param(default = 1.5)] k: f64,
    #[param(default = 0.3)] damping: f64,
    #[param(default = 0.8)] length: f64,
    #[param(default = 9.81)] g: f64,
) -> Derivative {
    Derivative { q: dq, dq: -g / length * q.sin() - damping * dq + tau + 0.2 * s, s: ds, ds: -k * s - 0.1 * ds + 0.5 * q.cos() }
}

/// Tight solves, so that finite differences of the solution are accurate.
fn options(mode: GradientMode) -> SolverOptions {
    SolverOptions { max_iters: 500, eps: 1e-13, tol: Some(1e-11), gradient: mode, grad_params: true, ..SolverOptions::default() }
}

struct Case {
    x0: Vec<f64>,
    cm: Vec<f64>,
    cv: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    gx: Vec<f64>,
    gu: Vec<f64>,
}

/// Two problems: quadratic tracking of a target, bounds tight enough that some controls sit on
/// them; upstream gradients of a fixed linear loss `L = Σ gx·x* + gu·u*`.
fn case(nx: usize, nu: usize, t: usize, x0: &[f64], target: &[f64], w: f64, r: f64, bound: &[f64], center: &[f64]) -> Case {
    let (b, n) = (2, nx + nu);
    let mut xs = x0.to_vec();
    xs.extend(x0.iter().enumerate().map(|(i, v)| v * 0.8 + 0.05 * i as f64));
    let mut cm = vec![0.0; b * t * n * n];
    let mut cv = vec![0.0; b * t * n];
    for p in 0..b {
        for s in 0..t {
            let o = (p * t + s) * n;
            for i in 0..n {
                let wi = if i < nx { w } else { r };
                cm[o * n + i * n + i] = wi;
                let zref = if i < nx { target[i] } else { center[i - nx] };
                cv[o + i] = -wi * zref;
            }
        }
    }
    let lo: Vec<f64> = (0..nu).map(|i| center[i] - bound[i]).collect();
    let hi: Vec<f64> = (0..nu).map(|i| center[i] + bound[i]).collect();
    let gx = (0..b * t * nx).map(|i| ((i * 7 % 13) as f64 - 6.0) / 6.0).collect();
    let gu = (0..b * t * nu).map(|i| ((i * 5 % 11) as f64 - 5.0) / 5.0).collect();
    Case { x0: xs, cm, cv, lo, hi, gx, gu }
}

fn batch(c: &Case) -> Batch<'_> {
    Batch {
        size: 2,
        x_init: &c.x0,
        cost_hess: &c.cm,
        cost_lin: &c.cv,
        u_lower: Bound::PerControl(&c.lo),
        u_upper: Bound::PerControl(&c.hi),
        u_init: None,
    }
}

/// `L` per problem at the solution for dynamics `d`.
fn losses<D: Dynamics>(d: D, t: usize, c: &Case) -> Vec<f64> {
    let b = batch(c);
    let sol = Solver::new(d, t, options(GradientMode::Exact)).solve(&b);
    assert!(sol.converged.iter().all(|&v| v), "re-solve did not converge: {:?} {:?}", sol.stop, sol.kkt_residual);
    let (nx, nu) = (c.x0.len() / 2, c.lo.len());
    (0..2)
        .map(|p| {
            let lx: f64 = (0..t * nx).map(|i| c.gx[p * t * nx + i] * sol.x[p * t * nx + i]).sum();
            let lu: f64 = (0..t * nu).map(|i| c.gu[p * t * nu + i] * sol.u[p * t * nu + i]).sum();
            lx + lu
        })
        .collect()
}

/// Compare the backward pass's dL/dθ with central differences; `perturb(k, h)` is the model
/// with parameter `k` moved by `h`. Returns the largest relative error.
fn check<D: Dynamics + Clone>(what: &str, d: D, t: usize, c: &Case, perturb: impl Fn(usize, f64) -> D, scale: impl Fn(usize) -> f64) -> f64 {
    let np = d.np();
    let b = batch(c);
    let mut solver = Solver::new(d.clone(), t, options(GradientMode::Exact));
    let sol = solver.solve(&b);
    assert!(sol.converged.iter().all(|&v| v), "{what}: {:?}", sol.stop);
    // Some bounds must be active for the test to mean what it says.
    let active = sol.u.iter().enumerate().filter(|&(i, &u)| (u - c.lo[i % c.lo.len()]).abs() < 1e-8 || (c.hi[i % c.hi.len()] - u).abs() < 1e-8).count();
    let g = solver.backward(&b, &sol, &c.gx, &c.gu);
    assert_eq!(g.params.len(), 2 * np, "{what}");
    let mut worst = 0.0f64;
    for k in 0..np {
        let h = 1e-5 * scale(k);
        let (lp, lm) = (losses(perturb(k, h), t, c), losses(perturb(k, -h), t, c));
        for p in 0..2 {
            let fd = (lp[p] - lm[p]) / (2.0 * h);
            let an = g.params[p * np + k];
            let err = (an - fd).abs() / (1.0 + fd.abs().max(an.abs()));
            worst = worst.max(err);
            assert!(err < 1e-5, "{what}: problem {p} parameter {k}: analytic {an:.9e}, finite differences {fd:.9e} (rel err {err:.1e})");
        }
    }
    eprintln!("{what}: {np} parameters, {active} active controls, worst rel err {worst:.1e}");
    assert!(active > 0, "{what}: no active bound");
    worst
}

fn check_model<M: Model>(m: M, t: usize, c: &Case) {
    let names = M::PARAM_NAMES;
    check(
        M::NAME,
        m.clone(),
        t,
        c,
        |k, h| {
            let mut p = m.clone();
            p.set_param(names[k], m.param(names[k]).unwrap() + h).unwrap();
            p
        },
        |k| m.param(names[k]).unwrap().abs().max(1e-2),
    );
}

#[test]
fn pendulum_param_gradients_match_finite_differences() {
    let c = case(3, 1, 8, &[0.0, 1.0, 0.0], &[1.0, 0.0, 0.0], 1.0, 0.01, &[1.0], &[0.0]);
    check_model(Pendulum::default(), 8, &c);
}

#[test]
fn cartpole_param_gradients_match_finite_differences() {
    let c = case(5, 1, 8, &[0.2, 0.0, 0.9, 0.4, 0.0], &[0.0, 0.0, 1.0, 0.0, 0.0], 1.0, 1e-3, &[4.0], &[0.0]);
    check_model(Cartpole::default(), 8, &c);
}

#[test]
fn quadrotor_param_gradients_match_finite_differences() {
    let m = Quadrotor::default();
    let hover = m.param("mass").unwrap() * m.param("gravity").unwrap();
    let c = case(
        10,
        4,
        6,
        &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        &[0.5, -0.3, 1.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        5.0,
        0.1,
        &[2.0, 1.0, 1.0, 1.0],
        &[hover, 0.0, 0.0, 0.0],
    );
    check_model(m, 6, &c);
}

#[test]
fn user_model_param_gradients_match_finite_differences() {
    let c = case(4, 1, 10, &[0.5, 0.0, 0.1, 0.0], &[0.0, 0.0, 0.0, 0.0], 2.0, 0.01, &[0.5], &[0.0]);
    check_model(SpringPendulum::default(), 10, &c);
}

#[test]
fn linear_model_a_b_f_gradients_match_finite_differences() {
    let (nx, nu) = (3, 2);
    let a = vec![1.0, 0.1, 0.0, -0.05, 0.98, 0.1, 0.0, 0.02, 0.95];
    let bm = vec![0.0, 0.1, 0.1, 0.0, 0.05, 0.05];
    let f = vec![0.01, -0.02, 0.0];
    let lin = LinearModel::new(nx, nu, a.clone(), bm.clone(), Some(f.clone())).unwrap();
    let c = case(nx, nu, 7, &[1.0, -0.5, 0.3], &[0.0, 0.0, 0.0], 1.0, 0.05, &[0.4, 0.3], &[0.0, 0.0]);
    let theta: Vec<f64> = a.iter().chain(&bm).chain(&f).cloned().collect();
    let build = |th: &[f64]| LinearModel::new(nx, nu, th[..9].to_vec(), th[9..15].to_vec(), Some(th[15..].to_vec())).unwrap();
    check(
        "linear",
        lin,
        7,
        &c,
        |k, h| {
            let mut th = theta.clone();
            th[k] += h;
            build(&th)
        },
        |_| 1.0,
    );
}

/// The generated derivatives themselves: `∂f/∂θ` against differences of `step`, the mixed
/// term against differences of `λᵀ ∂f/∂z` (from `linearize`) in θ.
#[test]
fn generated_parameter_derivatives_match_finite_differences() {
    fn run<M: Model>(m: M, x: &[f64], u: &[f64]) {
        let (nx, nu, np) = (M::NX, M::NU, M::NP);
        let n = nx + nu;
        let lam: Vec<f64> = (0..nx).map(|i| 0.3 + 0.2 * i as f64 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let mut fp = vec![0.0; nx * np];
        let mut hp = vec![0.0; n * np];
        m.param_jacobian(x, u, &mut fp);
        m.param_hessian(x, u, &lam, &mut hp);
        for (k, name) in M::PARAM_NAMES.iter().enumerate() {
            let v = m.param(name).unwrap();
            let h = 1e-6 * v.abs().max(1e-2);
            let at = |dv: f64| {
                let mut p = m.clone();
                p.set_param(name, v + dv).unwrap();
                let (mut xn, mut a, mut b) = (vec![0.0; nx], vec![0.0; nx * nx], vec![0.0; nx * nu]);
                p.linearize(x, u, &mut xn, &mut a, &mut b);
                // w = ∇_z(λᵀf) = [Aᵀλ; Bᵀλ].
                let w: Vec<f64> = (0..nx)
                    .map(|j| (0..nx).map(|i| lam[i] * a[i * nx + j]).sum())
                    .chain((0..nu).map(|j| (0..nx).map(|i| lam[i] * b[i * nu + j]).sum()))
                    .collect::<Vec<f64>>();
                (xn, w)
            };
            let ((xp, wp), (xm, wm)) = (at(h), at(-h));
            for i in 0..nx {
                let fd = (xp[i] - xm[i]) / (2.0 * h);
                let e = (fp[i * np + k] - fd).abs() / (1.0 + fd.abs());
                assert!(e < 1e-6, "{}: df_{i}/d{name}: {} vs {fd} ({e:.1e})", M::NAME, fp[i * np + k]);
            }
            for j in 0..n {
                let fd = (wp[j] - wm[j]) / (2.0 * h);
                let e = (hp[j * np + k] - fd).abs() / (1.0 + fd.abs());
                assert!(e < 1e-6, "{}: d2(lam f)/dz_{j} d{name}: {} vs {fd} ({e:.1e})", M::NAME, hp[j * np + k]);
            }
        }
    }
    run(Pendulum::default(), &[0.8, 0.6, 0.3], &[0.7]);
    run(Cartpole::default(), &[0.1, -0.2, 0.9, 0.43, 0.5], &[3.0]);
    run(Quadrotor::default(), &[0.1, 0.2, 1.0, 0.9, 0.1, -0.2, 0.3, 0.5, -0.4, 0.2], &[8.0, 0.3, -0.2, 0.1]);
    run(SpringPendulum::default(), &[0.4, -0.3, 0.2, 0.1], &[0.5]);
}

fn solve_doc(doc: &serde_json::Value) -> serde_json::Value {
    let dir = mpc_runtime::private_fs::private_temp_dir("mpc-grad-params-").unwrap();
    let (p, s) = (dir.path().join("p.json"), dir.path().join("s.json"));
    std::fs::write(&p, doc.to_string()).unwrap();
    let out = solve_file(&p, &s);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_json(&s)
}

fn fixture(name: &str) -> serde_json::Value {
    read_json(fixture_path(name))
}

/// `mpc solve` writes `grad_params` exactly as the format's Additions say: one array of B
/// numbers per parameter of a named model (shared parameters too), `A`/`B`/`f` blocks for
/// `linear`; per-problem parameters give each problem the gradient at its own values.
#[test]
fn mpc_solve_writes_grad_params() {
    let mut doc = fixture("cartpole.problem.json");
    let b = doc["x_init"].as_array().unwrap().len();
    let sol = solve_doc(&doc);
    let gp = sol["grad_params"].as_object().expect("grad_params");
    let names: Vec<&str> = gp.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = Cartpole::PARAM_NAMES.to_vec();
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want);
    for (k, v) in gp {
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), b, "{k}");
        assert!(v.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)), "{k}");
    }
    // Per problem: a different mass per problem gives each its own gradient, equal to solving
    // that problem alone with its mass.
    let masses: Vec<f64> = (0..b).map(|i| 0.1 + 0.05 * i as f64).collect();
    doc["params"]["masspole"] = serde_json::json!(masses);
    let per = solve_doc(&doc);
    for (i, m) in masses.iter().enumerate() {
        let mut one = doc.clone();
        one["params"]["masspole"] = serde_json::json!(m);
        for key in ["x_init", "grad_x", "grad_u"] {
            one[key] = serde_json::json!([doc[key][i].clone()]);
        }
        for key in ["C", "c"] {
            one[key] = serde_json::json!([doc[key][i].clone()]);
        }
        let alone = solve_doc(&one);
        for name in Cartpole::PARAM_NAMES {
            assert_eq!(per["grad_params"][name][i], alone["grad_params"][name][0], "problem {i}, {name}");
        }
    }
    // linear: A, B, f blocks.
    let lin = solve_doc(&fixture("linear_boxed.problem.json"));
    let (bl, nx, nu) = (lin["x"].as_array().unwrap().len(), 4, 2);
    let shape = |v: &serde_json::Value| -> Vec<usize> {
        let mut s = Vec::new();
        let mut c = v;
        while let Some(a) = c.as_array() {
            s.push(a.len());
            c = &a[0];
        }
        s
    };
    assert_eq!(shape(&lin["grad_params"]["A"]), vec![bl, nx, nx]);
    assert_eq!(shape(&lin["grad_params"]["B"]), vec![bl, nx, nu]);
    assert_eq!(shape(&lin["grad_params"]["f"]), vec![bl, nx]);
}

/// The CUDA backward kernel's dL/dθ, host-emulated in double, equals the CPU's to 1e-9
/// (relative to the largest entry), in both gradient modes, with bounds active.
#[test]
fn host_emulated_backward_kernel_param_gradients_equal_the_cpu() {
    use mpc_cuda::host::{HostError, HostModule};
    use mpc_cuda::render::{KernelOptions, Precision, render_backward};
    fn run<M: Model>(m: M, t: usize, c: &Case) {
        let b = batch(c);
        for mode in [GradientMode::Exact, GradientMode::GaussNewton] {
            let opts = options(mode);
            let mut cpu = Solver::new(m.clone(), t, opts.clone());
            let sol = cpu.solve(&b);
            let want = cpu.backward(&b, &sol, &c.gx, &c.gu);
            let k = render_backward::<M>(&KernelOptions::new(t, Precision::F64).with_solver(opts.clone())).unwrap();
            let hm = match HostModule::build(&k) {
                Ok(h) => h,
                Err(HostError::NoCompiler(e)) if std::env::var_os("CI").is_none() => {
                    eprintln!("\n!!!!! SKIPPING HOST EMULATION (no C++ compiler): {e}\n");
                    return;
                }
                Err(e) => panic!("{e}"),
            };
            let got = hm.backward(mode, &m.param_values(), &b, &sol, &c.gx, &c.gu, 2).unwrap();
            assert_eq!(got.params.len(), want.params.len());
            let scale = want.params.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let err = got.params.iter().zip(&want.params).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
            eprintln!("{} {mode:?}: host-emulated dL/dθ rel err {err:.1e}", M::NAME);
            assert!(err <= 1e-9, "{} {mode:?}: {:?} vs {:?}", M::NAME, got.params, want.params);
        }
    }
    run(Pendulum::default(), 8, &case(3, 1, 8, &[0.0, 1.0, 0.0], &[1.0, 0.0, 0.0], 1.0, 0.01, &[1.0], &[0.0]));
    run(Cartpole::default(), 8, &case(5, 1, 8, &[0.2, 0.0, 0.9, 0.4, 0.0], &[0.0, 0.0, 1.0, 0.0, 0.0], 1.0, 1e-3, &[4.0], &[0.0]));
    run(SpringPendulum::default(), 10, &case(4, 1, 10, &[0.5, 0.0, 0.1, 0.0], &[0.0, 0.0, 0.0, 0.0], 2.0, 0.01, &[0.5], &[0.0]));
}

/// One parameter set per problem in every kernel layout (host-emulated, double): the thread,
/// warp and three-stage solves and the backward kernel (with dL/dθ) equal the CPU's
/// per-problem solver (`solve_each`) to 1e-9.
#[test]
fn per_problem_params_in_every_kernel_equal_the_cpu() {
    use mpc_cuda::host::{HostError, HostModule};
    use mpc_cuda::render::{KernelOptions, Precision, render_backward, render_solve, render_solve_warp, render_stages};
    let t = 8;
    let base = case(3, 1, t, &[0.0, 1.0, 0.0], &[1.0, 0.0, 0.0], 1.0, 0.01, &[1.0], &[0.0]);
    // Three problems: the two of `case` and a copy of the first, each with its own mass.
    let mut c = base;
    let (nx, nu, n) = (3, 1, 4);
    c.x0.extend_from_within(0..nx);
    c.cm.extend_from_within(0..t * n * n);
    c.cv.extend_from_within(0..t * n);
    c.gx.extend_from_within(0..t * nx);
    c.gu.extend_from_within(0..t * nu);
    let masses = [0.5, 1.0, 2.0];
    let models: Vec<Pendulum> = masses.iter().map(|&m| Pendulum { m, ..Pendulum::default() }).collect();
    let b = Batch { size: 3, ..batch(&c) };
    // No KKT tolerance (the warp and three-stage layouts stop on the step size only).
    let opts = SolverOptions { tol: None, ..options(GradientMode::Exact) };
    let (want, wg) = mpc_runtime::solve_each(&models, t, &opts, &b, Some((&c.gx, &c.gu)));
    let wg = wg.unwrap();
    assert!(want.x[..t * nx] != want.x[2 * t * nx..], "the masses must make a difference");
    let ko = KernelOptions::new(t, Precision::F64).with_solver(opts.clone()).with_per_problem_params(true);
    let k = render_solve::<Pendulum>(&ko).unwrap();
    let [s1, s2, s3] = render_stages::<Pendulum>(&ko).unwrap();
    let wk = render_solve_warp::<Pendulum>(&ko).unwrap();
    let bk = render_backward::<Pendulum>(&ko).unwrap();
    let hm = match HostModule::build_many(&[&k, &s1, &s2, &s3, &wk, &bk]) {
        Ok(h) => h,
        Err(HostError::NoCompiler(e)) if std::env::var_os("CI").is_none() => {
            eprintln!("\n!!!!! SKIPPING HOST EMULATION (no C++ compiler): {e}\n");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let params: Vec<f64> = models.iter().flat_map(|m| m.param_values()).collect();
    // A shared parameter set is refused by a per-problem kernel, naming the sizes.
    let err = hm.solve(&Pendulum::default().param_values(), &b, 2).unwrap_err().to_string();
    assert!(err.contains("parameters given, the kernel takes 15"), "{err}");
    let max_du = |u: &[f64]| u.iter().zip(&want.u).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let thread = hm.solve(&params, &b, 2).unwrap();
    let warp = hm.solve_warp(&params, &b, 2).unwrap();
    let (staged, _) = hm.solve_staged(&params, &b, 2).unwrap();
    for (name, s) in [("thread", &thread), ("warp", &warp), ("three-stage", &staged)] {
        assert!(max_du(&s.u) <= 1e-9, "{name}: |du| {:e}", max_du(&s.u));
        let dx = s.x.iter().zip(&want.x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(dx <= 1e-9, "{name}: |dx| {dx:e}");
        assert_eq!(s.iterations, want.iterations, "{name}");
    }
    let g = hm.backward(GradientMode::Exact, &params, &b, &want, &c.gx, &c.gu, 2).unwrap();
    let scale = wg.params.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    let err = g.params.iter().zip(&wg.params).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
    assert!(err <= 1e-9, "dL/dθ: {:?} vs {:?}", g.params, wg.params);
    let err = g.cost_lin.iter().zip(&wg.cost_lin).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err <= 1e-9, "dL/dc: {err:e}");
}
