//! The table of iterations to converge, iLQR against DDP, for every zoo model, start and bound
//! setting (the scenario of `ZooCase`, KKT tolerance 1e-9 × the start residual, at most 1000
//! iterations). `cargo run --release -p mpc-zoo --example zoo_table` prints it as Markdown, with
//! the wall time of each solve (one thread).

use mpc_runtime::{Batch, Bound, Method, Model, Solver, SolverOptions};
use mpc_zoo::{ZooCase, ZooVisitor, for_each};
use std::time::Instant;

#[derive(Clone)]
struct Table;

impl ZooVisitor for Table {
    type Output = Vec<String>;
    fn visit<M: Model + ZooCase>(self) -> Vec<String> {
        let sc = M::scenario();
        let (nx, nu, t) = (M::NX, M::NU, sc.horizon);
        let (cm, cv) = sc.cost();
        let mut rows = Vec::new();
        for (si, x0) in sc.x_starts.iter().enumerate() {
            for tight in [false, true] {
                let (lo, hi) = if tight { (Bound::PerControl(&sc.u_lower_tight), Bound::PerControl(&sc.u_upper_tight)) } else { (Bound::PerControl(M::CONTROL_LOWER), Bound::PerControl(M::CONTROL_UPPER)) };
                let batch = Batch { size: 1, x_init: x0, cost_hess: &cm, cost_lin: &cv, u_lower: lo, u_upper: hi, u_init: None };
                let u0: Vec<f64> = (0..t * nu).map(|k| 0.0f64.max(sc.u_lower_tight[k % nu]).min(sc.u_upper_tight[k % nu])).collect();
                let u0: Vec<f64> = if tight { u0 } else { (0..t * nu).map(|k| 0.0f64.max(M::CONTROL_LOWER[k % nu]).min(M::CONTROL_UPPER[k % nu])).collect() };
                let kkt0 = Solver::new(M::default(), t, SolverOptions::default()).kkt_residuals(&batch, &u0)[0];
                let mut cells = Vec::new();
                for method in [Method::Ilqr, Method::Ddp] {
                    let opts = SolverOptions { method, tol: Some(1e-9 * kkt0.max(1.0)), eps: 1e-12, max_iters: 1000, ..SolverOptions::default() };
                    let mut solver = Solver::new(M::default(), t, opts);
                    let start = Instant::now();
                    let sol = solver.solve(&batch);
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    cells.push(format!("{} ({}, {:.1e}, {:.2} ms)", sol.iterations[0], sol.stop[0].name(), sol.kkt_residual[0], ms));
                }
                rows.push(format!("| {} | {nx}/{nu} | {t} | {si} | {} | {:.1e} | {} | {} |", M::NAME, if tight { "tight" } else { "model" }, kkt0, cells[0], cells[1]));
            }
        }
        rows
    }
}

fn main() {
    println!("| model | nx/nu | T | start | bounds | KKT residual at u = 0 | iLQR: iterations (stop, residual, time) | DDP: iterations (stop, residual, time) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (_, rows) in for_each(Table) {
        for r in rows {
            println!("{r}");
        }
    }
}
