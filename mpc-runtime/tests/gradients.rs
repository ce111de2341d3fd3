//! Gradients of the solution against finite differences and against an independent dense KKT
//! solve, in both modes, on problems with active and inactive control bounds.
//!
//! * Exact mode must agree with central finite differences of `L = Σ gx·x* + gu·u*` (each
//!   perturbed problem re-solved to eps 1e-12, warm-started, with the active set checked to be
//!   unchanged) to 1e-6 relative to the largest gradient entry.
//! * Gauss-Newton mode must agree with finite differences on linear dynamics, and must *not*
//!   on nonlinear dynamics (it drops the co-state term), which shows the finite-difference
//!   test can tell the two apart.
//! * Both modes must agree with a dense KKT solve (Hessian `C_t`, or `C_t + Σ λ ∇²f` with the
//!   co-states taken from the dense KKT multipliers of the problem itself) to 1e-9 relative.

mod common;

use common::*;
use mpc_runtime::problem::BoundData;
use mpc_oracles::{Cartpole, Pendulum, Quadrotor, RefCartpole, RefPendulum, RefQuadrotor};
use mpc_runtime::{Dynamics, GradientMode, LinearModel};
use rand::Rng;

/// Largest difference relative to the largest entry of `b` (at least `floor`).
fn rel_err_floor(a: &[f64], b: &[f64], floor: f64) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(floor);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

fn pendulum_problem(seed: u64, b: usize) -> (Pendulum, Prob) {
    let mut r = rng(seed);
    let t = 10;
    let (nx, nu) = (3, 1);
    let mut x_init = Vec::new();
    for _ in 0..b {
        let th: f64 = r.random_range(0.02..0.4) * if r.random_bool(0.5) { 1.0 } else { -1.0 };
        x_init.extend([th.cos(), th.sin(), r.random_range(-0.5..0.5)]);
    }
    let mut cm = Vec::new();
    let mut cv = Vec::new();
    for _ in 0..b * t {
        cm.extend(diag_matrix(&[1.0, 1.0, 0.1, 0.001]));
        cv.extend([-1.0 + 0.1 * normal(&mut r), 0.1 * normal(&mut r), 0.05 * normal(&mut r), 1e-4 * normal(&mut r)]);
    }
    let p = Prob {
        b,
        t,
        nx,
        nu,
        x_init,
        cm,
        cv,
        lo: BoundData::PerControl(vec![-2.0]),
        hi: BoundData::PerControl(vec![2.0]),
        u_init: None,
    };
    (Pendulum::new(RefPendulum::default()), p)
}

fn linear_problem(seed: u64, b: usize) -> (LinearModel, Prob) {
    let mut r = rng(seed);
    let (t, nx, nu) = (6, 3, 2);
    let n = nx + nu;
    let a: Vec<f64> = (0..nx * nx).map(|k| if k % (nx + 1) == 0 { 0.9 } else { 0.2 * normal(&mut r) }).collect();
    let bm: Vec<f64> = (0..nx * nu).map(|_| normal(&mut r)).collect();
    let f: Vec<f64> = (0..nx).map(|_| 0.1 * normal(&mut r)).collect();
    let lin = LinearModel::new(nx, nu, a, bm, Some(f)).unwrap();
    let x_init: Vec<f64> = (0..b * nx).map(|_| normal(&mut r)).collect();
    let mut cm = Vec::new();
    for _ in 0..b * t {
        cm.extend(random_psd(&mut r, n, nu, 0.1));
    }
    let cv: Vec<f64> = (0..b * t * n).map(|_| 2.0 * normal(&mut r)).collect();
    // Per-stage bounds, different per element and stage.
    let lo: Vec<f64> = (0..b * t * nu).map(|_| -r.random_range(0.2..0.6)).collect();
    let hi: Vec<f64> = (0..b * t * nu).map(|_| r.random_range(0.2..0.6)).collect();
    let p = Prob { b, t, nx, nu, x_init, cm, cv, lo: BoundData::PerStage(lo), hi: BoundData::PerStage(hi), u_init: None };
    (lin, p)
}

fn cartpole_problem(seed: u64, b: usize) -> (Cartpole, Prob) {
    let mut r = rng(seed);
    let (t, nx, nu) = (10, 5, 1);
    let mut x_init = Vec::new();
    for _ in 0..b {
        let th: f64 = r.random_range(-0.6..0.6);
        x_init.extend([r.random_range(-0.5..0.5), r.random_range(-0.5..0.5), th.cos(), th.sin(), r.random_range(-0.5..0.5)]);
    }
    let mut cm = Vec::new();
    let mut cv = Vec::new();
    for _ in 0..b * t {
        cm.extend(diag_matrix(&[0.1, 0.1, 1.0, 1.0, 0.1, 0.001]));
        cv.extend([0.05 * normal(&mut r), 0.0, -1.0, 0.05 * normal(&mut r), 0.0, 0.0]);
    }
    let p = Prob {
        b,
        t,
        nx,
        nu,
        x_init,
        cm,
        cv,
        lo: BoundData::PerControl(vec![-4.0]),
        hi: BoundData::PerControl(vec![4.0]),
        u_init: None,
    };
    (Cartpole::new(RefCartpole::default()), p)
}

fn quadrotor_problem(seed: u64, b: usize) -> (Quadrotor, Prob) {
    let mut r = rng(seed);
    let (t, nx, nu) = (8, 10, 4);
    let n = 14;
    let (m, g) = (0.752, 9.8066);
    let w = [10.0, 10.0, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1];
    let mut x_init = Vec::new();
    let mut cm = Vec::new();
    let mut cv = Vec::new();
    for _ in 0..b {
        let ang: f64 = r.random_range(0.0..0.2);
        let axis = [normal(&mut r), normal(&mut r), normal(&mut r)];
        let an = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
        let s = (0.5 * ang).sin() / an;
        x_init.extend([0.1 * normal(&mut r), 0.1 * normal(&mut r), 0.1 * normal(&mut r)]);
        x_init.extend([(0.5 * ang).cos(), axis[0] * s, axis[1] * s, axis[2] * s]);
        x_init.extend([0.2 * normal(&mut r), 0.2 * normal(&mut r), 0.2 * normal(&mut r)]);
        let pref = [r.random_range(-1.0..1.0), r.random_range(-1.0..1.0), r.random_range(-1.0..1.0)];
        let zref = [pref[0], pref[1], pref[2], 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, m * g, 0.0, 0.0, 0.0];
        for _ in 0..t {
            let mut c = vec![0.0; n * n];
            for i in 0..n {
                c[i * n + i] = w[i];
            }
            cm.extend(c);
            cv.extend((0..n).map(|i| -w[i] * zref[i]));
        }
    }
    // Tight bounds so that some controls saturate.
    let p = Prob {
        b,
        t,
        nx,
        nu,
        x_init,
        cm,
        cv,
        lo: BoundData::PerControl(vec![5.0, -1.0, -1.0, -0.5]),
        hi: BoundData::PerControl(vec![9.0, 1.0, 1.0, 0.5]),
        u_init: Some((0..b * t).flat_map(|_| [m * g, 0.0, 0.0, 0.0]).collect()),
    };
    (Quadrotor::new(RefQuadrotor::default()), p)
}

struct Fd {
    /// Directional derivatives by finite differences, exact-mode and Gauss-Newton analytic.
    fd: Vec<f64>,
    exact: Vec<f64>,
    gn: Vec<f64>,
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    rel_err_floor(a, b, 1e-8)
}

/// Directions: `entrywise` (every entry of `c` and `x_init` of element 0) and random ones.
fn finite_differences<D: Dynamics + Clone>(d: &D, p: &Prob, seed: u64, entrywise: bool, n_random: usize) -> (Fd, usize, usize) {
    let mut r = rng(seed);
    let (b, t, nx, nu, n) = (p.b, p.t, p.nx, p.nu, p.n());
    let gx: Vec<f64> = (0..b * t * nx).map(|_| normal(&mut r)).collect();
    let gu: Vec<f64> = (0..b * t * nu).map(|_| normal(&mut r)).collect();
    let (sol, ge) = solve_and_grad(d, p, GradientMode::Exact, &gx, &gu);
    let (sol2, gg) = solve_and_grad(d, p, GradientMode::GaussNewton, &gx, &gu);
    assert!(sol.converged.iter().all(|&c| c), "not converged: {:?}", sol.iterations);
    assert_eq!(sol.u, sol2.u);
    let n_active: usize = (0..b).map(|bi| active_set(p, bi, &sol.u, 1e-8).len()).sum();
    let n_free = b * t * nu - n_active;
    // Margins: free controls well inside, so a perturbation cannot change the active set.
    let base_act: Vec<Vec<(usize, usize)>> =
        (0..b).map(|bi| active_set(p, bi, &sol.u, 1e-8).into_iter().map(|(t, i, _)| (t, i)).collect()).collect();

    let mut dirs: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = Vec::new();
    let zero = || (vec![0.0; b * t * n * n], vec![0.0; b * t * n], vec![0.0; b * nx]);
    if entrywise {
        for k in 0..t * n {
            let mut dd = zero();
            dd.1[k] = 1.0;
            dirs.push(dd);
        }
        for k in 0..nx {
            let mut dd = zero();
            dd.2[k] = 1.0;
            dirs.push(dd);
        }
    }
    for k in 0..n_random {
        let mut dd = zero();
        // k % 3: 0 → C only, 1 → c only, 2 → all of them.
        if k % 3 != 1 {
            for s in 0..b * t {
                for i in 0..n {
                    for j in 0..=i {
                        let v = 0.1 * normal(&mut r);
                        dd.0[s * n * n + i * n + j] = v;
                        dd.0[s * n * n + j * n + i] = v;
                    }
                }
            }
        }
        if k % 3 != 0 {
            dd.1.iter_mut().for_each(|v| *v = normal(&mut r));
            dd.2.iter_mut().for_each(|v| *v = 0.1 * normal(&mut r));
        }
        dirs.push(dd);
    }
    let dot = |g: &mpc_runtime::Gradients, dd: &(Vec<f64>, Vec<f64>, Vec<f64>)| -> f64 {
        g.cost_hess.iter().zip(&dd.0).map(|(a, b)| a * b).sum::<f64>()
            + g.cost_lin.iter().zip(&dd.1).map(|(a, b)| a * b).sum::<f64>()
            + g.x_init.iter().zip(&dd.2).map(|(a, b)| a * b).sum::<f64>()
    };
    let h = 1e-6;
    let mut out = Fd { fd: vec![], exact: vec![], gn: vec![] };
    for dd in &dirs {
        let mut lp = [0.0; 2];
        for (si, sg) in [1.0, -1.0].iter().enumerate() {
            let mut q = p.clone();
            q.cm.iter_mut().zip(&dd.0).for_each(|(a, v)| *a += sg * h * v);
            q.cv.iter_mut().zip(&dd.1).for_each(|(a, v)| *a += sg * h * v);
            q.x_init.iter_mut().zip(&dd.2).for_each(|(a, v)| *a += sg * h * v);
            let (l, act, conv) = loss(d, &q, &sol.u, &gx, &gu);
            assert!(conv, "perturbed problem not converged");
            assert_eq!(act, base_act, "the active set changed under a perturbation of {h}: finite differences invalid");
            lp[si] = l;
        }
        out.fd.push((lp[0] - lp[1]) / (2.0 * h));
        out.exact.push(dot(&ge, dd));
        out.gn.push(dot(&gg, dd));
    }
    (out, n_active, n_free)
}

#[test]
fn pendulum_exact_gradients_match_finite_differences_gauss_newton_does_not() {
    let (d, p) = pendulum_problem(1, 2);
    let (fd, n_active, n_free) = finite_differences(&d, &p, 11, true, 6);
    assert!(n_active > 0 && n_free > 0, "need active and inactive bounds: {n_active} active, {n_free} free");
    let (e_exact, e_gn) = (rel_err(&fd.exact, &fd.fd), rel_err(&fd.gn, &fd.fd));
    eprintln!("pendulum: {n_active} active / {n_free} free; exact vs FD {e_exact:.2e}, Gauss-Newton vs FD {e_gn:.2e}");
    assert!(e_exact < 1e-6, "exact gradients vs finite differences: {e_exact:.3e}");
    assert!(e_gn > 1e-4, "Gauss-Newton unexpectedly equal to the true gradient ({e_gn:.3e})");
}

#[test]
fn linear_both_modes_match_finite_differences() {
    let (d, p) = linear_problem(2, 2);
    let (fd, n_active, n_free) = finite_differences(&d, &p, 12, true, 6);
    assert!(n_active > 0 && n_free > 0, "need active and inactive bounds: {n_active} active, {n_free} free");
    let (e_exact, e_gn) = (rel_err(&fd.exact, &fd.fd), rel_err(&fd.gn, &fd.fd));
    eprintln!("linear: {n_active} active / {n_free} free; exact vs FD {e_exact:.2e}, Gauss-Newton vs FD {e_gn:.2e}");
    assert!(e_exact < 1e-6 && e_gn < 1e-6, "{e_exact:.3e} {e_gn:.3e}");
}

#[test]
fn cartpole_exact_gradients_match_finite_differences() {
    let (d, p) = cartpole_problem(3, 2);
    let (fd, n_active, n_free) = finite_differences(&d, &p, 13, false, 6);
    assert!(n_active > 0 && n_free > 0, "need active and inactive bounds: {n_active} active, {n_free} free");
    let (e_exact, e_gn) = (rel_err(&fd.exact, &fd.fd), rel_err(&fd.gn, &fd.fd));
    eprintln!("cartpole: {n_active} active / {n_free} free; exact vs FD {e_exact:.2e}, Gauss-Newton vs FD {e_gn:.2e}");
    assert!(e_exact < 1e-6, "exact gradients vs finite differences: {e_exact:.3e}");
    assert!(e_gn > 1e-4, "Gauss-Newton unexpectedly equal to the true gradient ({e_gn:.3e})");
}

#[test]
fn quadrotor_exact_gradients_match_finite_differences() {
    let (d, p) = quadrotor_problem(4, 2);
    let (fd, n_active, n_free) = finite_differences(&d, &p, 14, false, 6);
    assert!(n_active > 0 && n_free > 0, "need active and inactive bounds: {n_active} active, {n_free} free");
    let (e_exact, e_gn) = (rel_err(&fd.exact, &fd.fd), rel_err(&fd.gn, &fd.fd));
    eprintln!("quadrotor: {n_active} active / {n_free} free; exact vs FD {e_exact:.2e}, Gauss-Newton vs FD {e_gn:.2e}");
    assert!(e_exact < 1e-6, "exact gradients vs finite differences: {e_exact:.3e}");
    assert!(e_gn > 1e-4, "Gauss-Newton unexpectedly equal to the true gradient ({e_gn:.3e})");
}

/// The solution is a KKT point (the LQR around it, active set fixed, returns it, with
/// multipliers of the right sign), and both gradient modes equal a dense KKT adjoint solve.
fn dense_kkt_check<D: Dynamics + Clone>(d: &D, p: &Prob, seed: u64) -> (usize, usize) {
    let mut r = rng(seed);
    let (b, t, nx, nu, n) = (p.b, p.t, p.nx, p.nu, p.n());
    let gx: Vec<f64> = (0..b * t * nx).map(|_| normal(&mut r)).collect();
    let gu: Vec<f64> = (0..b * t * nu).map(|_| normal(&mut r)).collect();
    let (sol, ge) = solve_and_grad(d, p, GradientMode::Exact, &gx, &gu);
    let (_, gg) = solve_and_grad(d, p, GradientMode::GaussNewton, &gx, &gu);
    let (mut n_act, mut n_free) = (0, 0);
    for bi in 0..b {
        let xs = &sol.x[bi * t * nx..(bi + 1) * t * nx];
        let us = &sol.u[bi * t * nu..(bi + 1) * t * nu];
        let cm = &p.cm[bi * t * n * n..(bi + 1) * t * n * n];
        let cv = &p.cv[bi * t * n..(bi + 1) * t * n];
        let (a, bm, f) = linearize(d, t, xs, us);
        let act = active_set(p, bi, &sol.u, 1e-8);
        n_act += act.len();
        n_free += t * nu - act.len();
        // 1. KKT point.
        let (w, nu_m) = kkt_solve(t, nx, nu, cm, cv, &a, &bm, &f, &p.x_init[bi * nx..(bi + 1) * nx], &act);
        let z: Vec<f64> = (0..t).flat_map(|s| xs[s * nx..(s + 1) * nx].iter().chain(&us[s * nu..(s + 1) * nu]).copied()).collect();
        let e = rel_err(&w, &z);
        assert!(e < 1e-8, "the solution is not a KKT point of its linearisation: {e:.3e}");
        let nc_dyn = nx + (t - 1) * nx;
        for (k, &(s, i, v)) in act.iter().enumerate() {
            let mult = nu_m[nc_dyn + k];
            let at_lower = (v - p.bound(true, bi, s, i)).abs() <= 1e-8;
            // ∇_u J + … + mult = 0: at a lower bound the reduced gradient (−mult) is ≥ 0.
            assert!(if at_lower { mult <= 1e-9 } else { mult >= -1e-9 }, "multiplier of ({s},{i}) has the wrong sign: {mult}");
        }
        // Co-states from the dense multipliers: λ_{s+1} = −ν of the dynamics rows of stage s.
        let lam = |s: usize| -> Vec<f64> { (0..nx).map(|i| -nu_m[nx + s * nx + i]).collect() };
        // 2. Adjoint solves with the Gauss-Newton and the exact Hessian.
        for (mode, g) in [(GradientMode::GaussNewton, &gg), (GradientMode::Exact, &ge)] {
            let mut hess = cm.to_vec();
            if mode == GradientMode::Exact {
                let mut h = vec![0.0; n * n];
                for s in 0..t - 1 {
                    d.weighted_hessian(&xs[s * nx..(s + 1) * nx], &us[s * nu..(s + 1) * nu], &lam(s), &mut h);
                    for k in 0..n * n {
                        hess[s * n * n + k] += h[k];
                    }
                }
            }
            let lin: Vec<f64> = (0..t)
                .flat_map(|s| gx[(bi * t + s) * nx..(bi * t + s + 1) * nx].iter().chain(&gu[(bi * t + s) * nu..(bi * t + s + 1) * nu]).copied())
                .collect();
            let fixed: Vec<(usize, usize, f64)> = act.iter().map(|&(s, i, _)| (s, i, 0.0)).collect();
            let (dw, dn) = kkt_solve(t, nx, nu, &hess, &lin, &a, &bm, &vec![0.0; t * nx], &vec![0.0; nx], &fixed);
            let gc = &g.cost_lin[bi * t * n..(bi + 1) * t * n];
            let gx0 = &g.x_init[bi * nx..(bi + 1) * nx];
            let want_x0: Vec<f64> = (0..nx).map(|i| -dn[i]).collect();
            let mut want_cm = vec![0.0; t * n * n];
            for s in 0..t {
                for i in 0..n {
                    for j in 0..n {
                        want_cm[s * n * n + i * n + j] = 0.5 * (dw[s * n + i] * z[s * n + j] + z[s * n + i] * dw[s * n + j]);
                    }
                }
            }
            let gcm = &g.cost_hess[bi * t * n * n..(bi + 1) * t * n * n];
            let errs = [rel_err_floor(gc, &dw, 1.0), rel_err_floor(gx0, &want_x0, 1.0), rel_err_floor(gcm, &want_cm, 1.0)];
            eprintln!("element {bi} {mode:?}: {} of {} controls active, errors vs dense KKT (c, x_init, C) {:.1e} {:.1e} {:.1e}", act.len(), t * nu, errs[0], errs[1], errs[2]);
            assert!(errs.iter().all(|&e| e < 1e-9), "{mode:?}: gradients vs dense KKT (c, x_init, C): {errs:?}");
        }
    }
    (n_act, n_free)
}

#[test]
fn both_modes_equal_dense_kkt_solves() {
    let (d, p) = pendulum_problem(5, 3);
    let (a, f) = dense_kkt_check(&d, &p, 21);
    assert!(a > 0 && f > 0);
    let (d, p) = linear_problem(6, 3);
    let (a, f) = dense_kkt_check(&d, &p, 22);
    assert!(a > 0 && f > 0);
    let (d, p) = quadrotor_problem(7, 2);
    let (a, f) = dense_kkt_check(&d, &p, 23);
    assert!(a > 0 && f > 0);
    let (d, p) = cartpole_problem(8, 2);
    dense_kkt_check(&d, &p, 24);
}
