//! The zoo of robots users bring, through the whole product: every model (written with
//! `#[mpc_model]` in this crate, built in the dev profile with full debug information by this
//! very test run) is solved by iLQR and by DDP from several starts, with its control bounds
//! inactive and active, and must
//!
//! Bounds: the model's own (`model`, mostly inactive) and the scenario's tight ones (`tight`).
//!
//! 1. **converge**: `converged`, stopped on the KKT tolerance or a vanishing step, and the
//!    solver's KKT residual at most [`KKT_RTOL`] × the residual at the start;
//! 2. **be optimal by this test's own numbers**: central finite differences of the cost (this
//!    file's rollout and cost, not the solver's) give a projected gradient at most
//!    [`OPT_RTOL`] × the one at the start (free controls: |∂J/∂u| small; controls on a bound:
//!    the gradient pushes into the bound);
//! 3. **agree between methods**: iLQR and DDP reach the same controls (to [`METHOD_ATOL`]);
//! 4. **differentiate exactly**: the exact implicit gradient of a random linear loss with
//!    respect to `x_init` and `c` equals central differences of re-solved problems along random
//!    directions to [`GRAD_RTOL`] relative;
//! 5. **run as CUDA**: the solve and backward kernels render, NVRTC compiles them for
//!    `compute_80`/`compute_90` and ptxas assembles them for `sm_80`/`sm_90` (see
//!    `cuda_kernels_of_every_zoo_model`), and host emulation of the solve kernel equals the
//!    CPU solver (iLQR, double) to 1e-9 with the same iteration counts.
//!
//! Run with `--nocapture` for the table of iterations (iLQR vs DDP) per model, start and
//! bounds, which `zoo/README.md` records.

use mpc_runtime::{Batch, Bound, GradientMode, Method, Model, Solution, Solver, SolverOptions, StopReason};
use mpc_zoo::{ZooCase, ZooScenario};
use rand::{Rng, SeedableRng};

/// Solve tolerance: KKT residual at most this × the residual at the start (u = 0).
const KKT_RTOL: f64 = 1e-7;
/// Re-solves for finite differences: KKT residual at most this × the start residual.
const KKT_RTOL_FD: f64 = 1e-10;
/// Optimality by finite differences of the cost: projected gradient at most this × the one at
/// the start (central differences with step 1e-6 carry ~1e-10 × |J| / 1e-6 of rounding).
const OPT_RTOL: f64 = 1e-5;
/// iLQR and DDP reach the same controls to this (absolute, relative to max(1, max|u|)).
const METHOD_ATOL: f64 = 1e-5;
/// Exact gradients against finite differences of re-solved problems (relative to the largest
/// of the two directional derivatives and 1e-6 × the loss weights' scale).
const GRAD_RTOL: f64 = 1e-4;
/// The same with the tight bounds (weakly active bounds; see the check).
const GRAD_RTOL_TIGHT: f64 = 1e-3;

/// One concrete problem of a scenario.
struct Case {
    t: usize,
    x_init: Vec<f64>,
    cm: Vec<f64>,
    cv: Vec<f64>,
    lo: Option<Vec<f64>>,
    hi: Option<Vec<f64>>,
}

impl Case {
    fn new<M: Model>(sc: &ZooScenario, x0: &[f64], tight: bool) -> Self {
        let (cm, cv) = sc.cost();
        // Loose: the model's own control bounds (±inf where it declares none); tight: the
        // scenario's, which some controls hit at the optimum.
        let (lo, hi) = if tight {
            (Some(sc.u_lower_tight.clone()), Some(sc.u_upper_tight.clone()))
        } else {
            (Some(M::CONTROL_LOWER.to_vec()), Some(M::CONTROL_UPPER.to_vec()))
        };
        Case { t: sc.horizon, x_init: x0.to_vec(), cm, cv, lo, hi }
    }

    fn batch<'a>(&'a self, u_init: Option<&'a [f64]>) -> Batch<'a> {
        Batch {
            size: 1,
            x_init: &self.x_init,
            cost_hess: &self.cm,
            cost_lin: &self.cv,
            u_lower: self.lo.as_deref().map_or(Bound::None, Bound::PerControl),
            u_upper: self.hi.as_deref().map_or(Bound::None, Bound::PerControl),
            u_init,
        }
    }

    fn bound(&self, i: usize) -> (f64, f64) {
        (
            self.lo.as_ref().map_or(f64::NEG_INFINITY, |v| v[i]),
            self.hi.as_ref().map_or(f64::INFINITY, |v| v[i]),
        )
    }
}

/// This test's own rollout and cost (the generated `step` only; nothing of the solver).
fn cost<M: Model>(m: &M, c: &Case, u: &[f64]) -> f64 {
    let (nx, nu) = (M::NX, M::NU);
    let n = nx + nu;
    let mut x = c.x_init.clone();
    let mut xn = vec![0.0; nx];
    let mut j = 0.0;
    for s in 0..c.t {
        let z: Vec<f64> = x.iter().chain(&u[s * nu..(s + 1) * nu]).copied().collect();
        for i in 0..n {
            let mut cz = 0.0;
            for k in 0..n {
                cz += c.cm[s * n * n + i * n + k] * z[k];
            }
            j += 0.5 * z[i] * cz + c.cv[s * n + i] * z[i];
        }
        m.eval_step(&x, &u[s * nu..(s + 1) * nu], &mut xn);
        x.copy_from_slice(&xn);
    }
    j
}

/// Projected finite-difference gradient of the cost: the largest violation of first-order
/// optimality over all controls.
fn fd_projected_gradient<M: Model>(m: &M, c: &Case, u: &[f64]) -> f64 {
    let nu = M::NU;
    let mut worst = 0.0f64;
    let mut up = u.to_vec();
    for k in 0..u.len() {
        let (lo, hi) = c.bound(k % nu);
        let h = 1e-6 * (1.0 + u[k].abs());
        up[k] = u[k] + h;
        let jp = cost(m, c, &up);
        up[k] = u[k] - h;
        let jm = cost(m, c, &up);
        up[k] = u[k];
        let on_lo = u[k] - lo <= 1e-7 * (1.0 + lo.abs());
        let on_hi = hi - u[k] <= 1e-7 * (1.0 + hi.abs());
        // On a bound only the one-sided difference into the box is a derivative of the
        // problem (the model may saturate at its bound: a kink there).
        let j0 = cost(m, c, u);
        let g = if on_lo {
            (jp - j0) / h
        } else if on_hi {
            (j0 - jm) / h
        } else {
            (jp - jm) / (2.0 * h)
        };
        let v = if on_lo {
            (-g).max(0.0)
        } else if on_hi {
            g.max(0.0)
        } else {
            g.abs()
        };
        worst = worst.max(v);
    }
    worst
}

fn solve<M: Model>(m: &M, c: &Case, opts: &SolverOptions, u_init: Option<&[f64]>) -> Solution {
    Solver::new(m.clone(), c.t, opts.clone()).solve(&c.batch(u_init))
}

/// The loss `L = Σ wx·x + wu·u` of a solution.
fn loss(sol: &Solution, wx: &[f64], wu: &[f64]) -> f64 {
    sol.x.iter().zip(wx).map(|(a, b)| a * b).sum::<f64>() + sol.u.iter().zip(wu).map(|(a, b)| a * b).sum::<f64>()
}

fn run_zoo_model<M: Model + ZooCase + Copy>() {
    let m = M::default();
    let sc = M::scenario();
    let (nx, nu, t) = (M::NX, M::NU, sc.horizon);
    let n = nx + nu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x200 + M::NAME.len() as u64);
    let mut table = Vec::new();
    let mut saw_active = false;
    let mut gradient_checks = 0;
    for (si, x0) in sc.x_starts.iter().enumerate() {
        for tight in [false, true] {
            let c = Case::new::<M>(&sc, x0, tight);
            let u0 = vec![0.0f64; t * nu];
            let u0: Vec<f64> = u0.iter().enumerate().map(|(k, &v)| { let (lo, hi) = c.bound(k % nu); v.max(lo).min(hi) }).collect();
            let kkt0 = Solver::new(m, t, SolverOptions::default()).kkt_residuals(&c.batch(None), &u0)[0];
            let fd0 = fd_projected_gradient(&m, &c, &u0);
            assert!(kkt0.is_finite() && kkt0 > 0.0, "{}: start residual {kkt0}", M::NAME);
            let tol = KKT_RTOL * kkt0.max(1.0);
            let mut sols = Vec::new();
            for method in [Method::Ilqr, Method::Ddp] {
                let opts = SolverOptions { method, tol: Some(tol), eps: 1e-12, max_iters: 1000, ..SolverOptions::default() };
                let sol = solve(&m, &c, &opts, None);
                let what = format!("{} start {si} bounds {} {:?}", M::NAME, if tight { "tight" } else { "model" }, method);
                assert!(sol.converged[0], "{what}: not converged ({:?}, {} iterations, KKT residual {:.3e}, start {kkt0:.3e})", sol.stop[0], sol.iterations[0], sol.kkt_residual[0]);
                assert!(matches!(sol.stop[0], StopReason::Tolerance | StopReason::SmallStep), "{what}: {:?}", sol.stop[0]);
                assert!(sol.kkt_residual[0] <= 1e-6 * kkt0.max(1.0), "{what}: KKT residual {:.3e} (start {kkt0:.3e})", sol.kkt_residual[0]);
                let fd = fd_projected_gradient(&m, &c, &sol.u);
                assert!(fd <= OPT_RTOL * fd0.max(1.0), "{what}: finite-difference projected gradient {fd:.3e} (start {fd0:.3e})");
                if tight {
                    let active = (0..t * nu).filter(|&k| {
                        let (lo, hi) = c.bound(k % nu);
                        (sol.u[k] - lo).abs() <= 1e-8 || (hi - sol.u[k]).abs() <= 1e-8
                    }).count();
                    saw_active |= active > 0;
                }
                table.push(format!(
                    "| {} | {si} | {} | {:?} | {} | {:.1e} | {:.1e} |",
                    M::NAME,
                    if tight { "tight" } else { "model" },
                    method,
                    sol.iterations[0],
                    sol.kkt_residual[0],
                    fd
                ));
                sols.push(sol);
            }
            let scale = sols[0].u.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let du = sols[0].u.iter().zip(&sols[1].u).fold(0.0f64, |a, (p, q)| a.max((p - q).abs()));
            // The problems are not convex: the two methods may end in different local minima
            // (both checked optimal above); the same minimum must agree.
            let (ci, cd) = (sols[0].cost[0], sols[1].cost[0]);
            let same_min = (ci - cd).abs() <= 1e-6 * ci.abs().max(1.0);
            assert!(du <= METHOD_ATOL * scale || !same_min, "{}: iLQR and DDP reach the same cost {ci} but differ by {du:.3e} in u (start {si}, tight {tight})", M::NAME);
            if !same_min {
                table.push(format!("<!-- {}: start {si} tight {tight}: iLQR and DDP in different local minima (costs {ci:.6e} / {cd:.6e}) -->", M::NAME));
            }

            // Exact implicit gradients against re-solved finite differences (the first start
            // of each bound setting; DDP re-solves warm-started from the solution).
            if si != 0 {
                continue;
            }
            let wx: Vec<f64> = (0..t * nx).map(|_| rng.random_range(-1.0..1.0)).collect();
            let wu: Vec<f64> = (0..t * nu).map(|_| rng.random_range(-1.0..1.0)).collect();
            let opts = SolverOptions { method: Method::Ddp, gradient: GradientMode::Exact, tol: Some(KKT_RTOL_FD * kkt0.max(1.0)), eps: 1e-14, max_iters: 1000, ..SolverOptions::default() };
            // The base solution to the re-solves' accuracy (warm-started from DDP's).
            let sol = &solve(&m, &c, &opts, Some(&sols[1].u));
            let mut solver = Solver::new(m, t, opts.clone());
            let g = solver.backward(&c.batch(None), sol, &wx, &wu);
            let dir_x: Vec<f64> = (0..nx).map(|_| rng.random_range(-1.0..1.0)).collect();
            let dir_c: Vec<f64> = (0..t * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let exact_x: f64 = g.x_init.iter().zip(&dir_x).map(|(a, b)| a * b).sum();
            let exact_c: f64 = g.cost_lin.iter().zip(&dir_c).map(|(a, b)| a * b).sum();
            let active = |u: &[f64]| -> Vec<bool> {
                (0..t * nu).map(|k| { let (lo, hi) = c.bound(k % nu); (u[k] - lo).abs() <= 1e-8 || (hi - u[k]).abs() <= 1e-8 }).collect()
            };
            let base_active = active(&sol.u);
            let resolve = |dx: f64, dc: f64| -> (f64, Vec<bool>) {
                let mut cc = Case { t, x_init: c.x_init.clone(), cm: c.cm.clone(), cv: c.cv.clone(), lo: c.lo.clone(), hi: c.hi.clone() };
                for i in 0..nx {
                    cc.x_init[i] += dx * dir_x[i];
                }
                let cscale = c.cv.iter().fold(1.0f64, |a, v| a.max(v.abs()));
                for i in 0..t * n {
                    cc.cv[i] += dc * cscale * dir_c[i];
                }
                let s = solve(&m, &cc, &opts, Some(&sol.u));
                assert!(s.converged[0] || s.kkt_residual[0] <= 1e-8 * kkt0.max(1.0), "{}: re-solve did not converge ({:?}, residual {:.3e})", M::NAME, s.stop[0], s.kkt_residual[0]);
                (loss(&s, &wx, &wu), active(&s.u))
            };
            let cscale = c.cv.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            // Central differences where the active set stays that of the solution (the
            // gradient holds it fixed; where a perturbation switches a weakly active bound the
            // solution map has a kink and a smaller step is tried, down to 1e-8).
            let fd = |dx: f64, dc: f64| -> Option<f64> {
                let mut h = 1e-5;
                while h >= 1e-8 {
                    let (lp, ap) = resolve(h * dx, h * dc);
                    let (lm, am) = resolve(-h * dx, -h * dc);
                    if ap == base_active && am == base_active {
                        return Some((lp - lm) / (2.0 * h));
                    }
                    h /= 10.0;
                }
                None
            };
            let mut checks = Vec::new();
            if let Some(v) = fd(1.0, 0.0) {
                checks.push(("x_init", exact_x, v));
            }
            if let Some(v) = fd(0.0, 1.0) {
                checks.push(("c", exact_c, v / cscale));
            }
            if !tight {
                assert!(!checks.is_empty(), "{}: every finite-difference direction switches the active set", M::NAME);
            }
            gradient_checks += checks.len();
            for (what, ex, fd) in checks {
                let err = (ex - fd).abs() / ex.abs().max(fd.abs()).max(1e-6);
                table.push(format!("<!-- {}: dL/d{what} exact {ex:.9e} fd {fd:.9e} rel {err:.1e} -->", M::NAME));
                // Tight bounds hold many controls on a bound, some with (near-)zero multipliers:
                // there the solution map is only one-sidedly differentiable and a central
                // difference averages the two sides (acrobot: 2.8e-4 measured).
                let rtol = if tight { GRAD_RTOL_TIGHT } else { GRAD_RTOL };
                assert!(err <= rtol, "{} (bounds {}): dL/d{what} along a random direction: exact {ex:.9e}, re-solved finite differences {fd:.9e} (rel {err:.2e})", M::NAME, if tight { "tight" } else { "model" });
            }
        }
    }
    assert!(saw_active, "{}: the tight bounds never became active", M::NAME);
    assert!(gradient_checks >= 2, "{}: only {gradient_checks} gradient directions checked", M::NAME);
    println!("{}", table.join("\n"));
}

macro_rules! zoo_tests {
    ($($name:ident => $ty:ty),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_zoo_model::<$ty>();
            }
        )*
    };
}

mpc_zoo::with_zoo_types!(zoo_tests);
