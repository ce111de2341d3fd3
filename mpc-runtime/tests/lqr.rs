//! Linear-quadratic problems against independent dense solutions:
//! * unconstrained: one iLQR iteration gives the dense KKT solution (to 1e-10);
//! * box-constrained: the solution equals the best feasible KKT point over every active set
//!   (brute-force enumeration of 3^(T·nu) active sets);
//! * the batch is solved the same in parallel as one problem at a time, with per-element
//!   bounds, warm starts, and reused workspaces.

mod common;

use common::*;
use mpc_runtime::problem::BoundData;
use mpc_runtime::{GradientMode, LinearModel, Solver, SolverOptions};
use rand::Rng;

fn random_linear(seed: u64, b: usize, t: usize, nx: usize, nu: usize) -> (LinearModel, Prob) {
    let mut r = rng(seed);
    let n = nx + nu;
    let a: Vec<f64> = (0..nx * nx).map(|_| 0.5 * normal(&mut r)).collect();
    let bm: Vec<f64> = (0..nx * nu).map(|_| normal(&mut r)).collect();
    let f: Vec<f64> = (0..nx).map(|_| 0.2 * normal(&mut r)).collect();
    let lin = LinearModel::new(nx, nu, a, bm, Some(f)).unwrap();
    let x_init: Vec<f64> = (0..b * nx).map(|_| normal(&mut r)).collect();
    let mut cm = Vec::new();
    for _ in 0..b * t {
        cm.extend(random_psd(&mut r, n, nu, 0.05));
    }
    let cv: Vec<f64> = (0..b * t * n).map(|_| normal(&mut r)).collect();
    let p = Prob { b, t, nx, nu, x_init, cm, cv, lo: BoundData::None, hi: BoundData::None, u_init: None };
    (lin, p)
}

fn dense_solution(lin: &LinearModel, p: &Prob, bi: usize, fixed: &[(usize, usize, f64)]) -> Vec<f64> {
    let (t, nx, nu, n) = (p.t, p.nx, p.nu, p.n());
    let a: Vec<f64> = (0..t).flat_map(|_| lin.a().iter().copied()).collect();
    let bm: Vec<f64> = (0..t).flat_map(|_| lin.b().iter().copied()).collect();
    let f: Vec<f64> = (0..t).flat_map(|_| lin.f().iter().copied()).collect();
    let (w, _) = kkt_solve(
        t,
        nx,
        nu,
        &p.cm[bi * t * n * n..(bi + 1) * t * n * n],
        &p.cv[bi * t * n..(bi + 1) * t * n],
        &a,
        &bm,
        &f,
        &p.x_init[bi * nx..(bi + 1) * nx],
        fixed,
    );
    w
}

fn stack(p: &Prob, x: &[f64], u: &[f64], bi: usize) -> Vec<f64> {
    let (t, nx, nu) = (p.t, p.nx, p.nu);
    (0..t)
        .flat_map(|s| x[(bi * t + s) * nx..(bi * t + s + 1) * nx].iter().chain(&u[(bi * t + s) * nu..(bi * t + s + 1) * nu]).copied())
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn unconstrained_lqr_is_the_dense_kkt_solution_after_one_iteration() {
    for (seed, t) in [(1u64, 1usize), (2, 2), (3, 7), (4, 15)] {
        let (lin, p) = random_linear(seed, 3, t, 4, 2);
        let opts = SolverOptions { max_iters: 1, eps: 1e-9, line_search: vec![1.0], ..SolverOptions::default() };
        let mut s = Solver::new(lin.clone(), t, opts);
        let sol = s.solve(&p.batch());
        for bi in 0..p.b {
            let want = dense_solution(&lin, &p, bi, &[]);
            let got = stack(&p, &sol.x, &sol.u, bi);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let e = max_diff(&got, &want) / scale;
            assert!(e < 1e-10, "T={t}, element {bi}: one iteration vs dense KKT {e:.3e}");
            // The cost reported is that of the solution.
            let n = p.n();
            let cost: f64 = (0..t)
                .map(|s| {
                    let z = &want[s * n..(s + 1) * n];
                    let cm = &p.cm[(bi * t + s) * n * n..(bi * t + s + 1) * n * n];
                    let cv = &p.cv[(bi * t + s) * n..(bi * t + s + 1) * n];
                    (0..n).map(|i| z[i] * (cv[i] + 0.5 * (0..n).map(|j| cm[i * n + j] * z[j]).sum::<f64>())).sum::<f64>()
                })
                .sum();
            assert!((sol.cost[bi] - cost).abs() <= 1e-10 * cost.abs().max(1.0), "{} vs {cost}", sol.cost[bi]);
        }
        // A second iteration changes nothing: converged at iteration 2 with the default eps.
        let mut s2 = Solver::new(lin.clone(), t, SolverOptions { max_iters: 5, eps: 1e-9, ..SolverOptions::default() });
        let sol2 = s2.solve(&p.batch());
        assert!(sol2.converged.iter().all(|&c| c), "{:?}", sol2.iterations);
        assert!(sol2.iterations.iter().all(|&i| i <= 2), "{:?}", sol2.iterations);
        assert!(max_diff(&sol2.u, &sol.u) < 1e-10);
    }
}

#[test]
fn box_constrained_lqr_matches_active_set_enumeration() {
    let mut n_active = 0;
    let mut n_free = 0;
    for seed in 0..12u64 {
        let (t, nx, nu) = (3, 2, 2);
        let (lin, mut p) = random_linear(100 + seed, 2, t, nx, nu);
        let mut r = rng(seed);
        let lo: Vec<f64> = (0..p.b * t * nu).map(|_| -r.random_range(0.1..0.8)).collect();
        let hi: Vec<f64> = (0..p.b * t * nu).map(|_| r.random_range(0.1..0.8)).collect();
        p.lo = BoundData::PerStage(lo);
        p.hi = BoundData::PerStage(hi);
        let mut s = Solver::new(lin.clone(), t, SolverOptions { max_iters: 100, eps: 1e-12, ..SolverOptions::default() });
        let sol = s.solve(&p.batch());
        assert!(sol.converged.iter().all(|&c| c));
        for bi in 0..p.b {
            // Enumerate: each control free, at its lower or at its upper bound.
            let m = t * nu;
            let mut best: Option<(f64, Vec<f64>)> = None;
            for code in 0..3usize.pow(m as u32) {
                let mut c = code;
                let mut fixed = Vec::new();
                for k in 0..m {
                    let (st, i) = (k / nu, k % nu);
                    match c % 3 {
                        1 => fixed.push((st, i, p.bound(true, bi, st, i))),
                        2 => fixed.push((st, i, p.bound(false, bi, st, i))),
                        _ => {}
                    }
                    c /= 3;
                }
                let w = dense_solution(&lin, &p, bi, &fixed);
                let n = p.n();
                let feasible = (0..m).all(|k| {
                    let (st, i) = (k / nu, k % nu);
                    let v = w[st * n + nx + i];
                    v >= p.bound(true, bi, st, i) - 1e-12 && v <= p.bound(false, bi, st, i) + 1e-12
                });
                if !feasible {
                    continue;
                }
                let cost: f64 = (0..t)
                    .map(|st| {
                        let z = &w[st * n..(st + 1) * n];
                        let cm = &p.cm[(bi * t + st) * n * n..(bi * t + st + 1) * n * n];
                        let cv = &p.cv[(bi * t + st) * n..(bi * t + st + 1) * n];
                        (0..n).map(|i| z[i] * (cv[i] + 0.5 * (0..n).map(|j| cm[i * n + j] * z[j]).sum::<f64>())).sum::<f64>()
                    })
                    .sum();
                if best.as_ref().is_none_or(|(bc, _)| cost < *bc) {
                    best = Some((cost, w));
                }
            }
            let (bc, bw) = best.unwrap();
            let got = stack(&p, &sol.x, &sol.u, bi);
            assert!(max_diff(&got, &bw) < 1e-9, "seed {seed} element {bi}: {:.3e}", max_diff(&got, &bw));
            assert!((sol.cost[bi] - bc).abs() < 1e-9 * bc.abs().max(1.0));
            let act = active_set(&p, bi, &sol.u, 1e-8).len();
            n_active += act;
            n_free += m - act;
        }
    }
    assert!(n_active > 10 && n_free > 10, "{n_active} active, {n_free} free");
}

#[test]
fn batch_in_parallel_equals_one_at_a_time_and_workspaces_are_reused() {
    let (lin, mut p) = random_linear(7, 9, 8, 3, 2);
    p.lo = BoundData::PerControl(vec![-0.5, -0.3]);
    p.hi = BoundData::PerControl(vec![0.4, 0.6]);
    let mut r = rng(3);
    p.u_init = Some((0..p.b * p.t * p.nu).map(|_| r.random_range(-1.0..1.0)).collect());
    let opts = SolverOptions { max_iters: 100, eps: 1e-12, gradient: GradientMode::Exact, ..SolverOptions::default() };
    let mut s = Solver::new(lin.clone(), p.t, opts.clone());
    let sol = s.solve(&p.batch());
    let gx: Vec<f64> = (0..p.b * p.t * p.nx).map(|_| normal(&mut r)).collect();
    let gu: Vec<f64> = (0..p.b * p.t * p.nu).map(|_| normal(&mut r)).collect();
    let g = s.backward(&p.batch(), &sol, &gx, &gu);
    // Again with the same solver (reused workspaces): identical.
    let sol_again = s.solve(&p.batch());
    assert_eq!(sol, sol_again);
    let n = p.n();
    for bi in 0..p.b {
        let mut q = p.clone();
        q.b = 1;
        q.x_init = p.x_init[bi * p.nx..(bi + 1) * p.nx].to_vec();
        q.cm = p.cm[bi * p.t * n * n..(bi + 1) * p.t * n * n].to_vec();
        q.cv = p.cv[bi * p.t * n..(bi + 1) * p.t * n].to_vec();
        q.u_init = Some(p.u_init.as_ref().unwrap()[bi * p.t * p.nu..(bi + 1) * p.t * p.nu].to_vec());
        let mut s1 = Solver::new(lin.clone(), p.t, opts.clone());
        let one = s1.solve(&q.batch());
        assert_eq!(one.u[..], sol.u[bi * p.t * p.nu..(bi + 1) * p.t * p.nu]);
        assert_eq!(one.x[..], sol.x[bi * p.t * p.nx..(bi + 1) * p.t * p.nx]);
        assert_eq!(one.cost[0], sol.cost[bi]);
        let g1 = s1.backward(
            &q.batch(),
            &one,
            &gx[bi * p.t * p.nx..(bi + 1) * p.t * p.nx],
            &gu[bi * p.t * p.nu..(bi + 1) * p.t * p.nu],
        );
        assert_eq!(g1.cost_lin[..], g.cost_lin[bi * p.t * n..(bi + 1) * p.t * n]);
        assert_eq!(g1.x_init[..], g.x_init[bi * p.nx..(bi + 1) * p.nx]);
    }
}

#[test]
fn infeasible_warm_start_is_projected_and_horizon_one_works() {
    let (lin, mut p) = random_linear(9, 2, 1, 3, 2);
    p.lo = BoundData::PerControl(vec![-0.1, -0.1]);
    p.hi = BoundData::PerControl(vec![0.1, 0.1]);
    p.u_init = Some(vec![5.0; 4]);
    let mut s = Solver::new(lin, 1, SolverOptions::default());
    let sol = s.solve(&p.batch());
    assert!(sol.converged.iter().all(|&c| c));
    assert!(sol.u.iter().all(|v| v.abs() <= 0.1));
    assert_eq!(sol.x, p.x_init);
}
