//! Define a robot with `#[mpc_model]` and use its generated code.
//!
//! Run with `cargo run --release --example bicycle`.

mod model;

use model::Bicycle;
use mpc_runtime::verify::check_derivatives;
use mpc_runtime::{Batch, Bound, Model, Solver, SolverOptions};

fn main() {
    let car = Bicycle::default();
    println!("model `{}`: nx = {}, nu = {}, params {:?} = {:?}", Bicycle::NAME, Bicycle::NX, Bicycle::NU, Bicycle::PARAM_NAMES, car.param_values());

    // One RK4 step and its exact Jacobians (through the integrator).
    let (x, u) = ([0.0, 0.0, 0.3, 5.0], [1.0, 0.1]);
    let (mut xn, mut a, mut b) = ([0.0; 4], [0.0; 16], [0.0; 8]);
    car.eval_linearize(&x, &u, &mut xn, &mut a, &mut b);
    println!("x' = {xn:.6?}");
    for i in 0..4 {
        println!("A[{i}] = {:+.6?}   B[{i}] = {:+.6?}", &a[i * 4..i * 4 + 4], &b[i * 2..i * 2 + 2]);
    }
    let check = check_derivatives(&car, &x, &u, &[1.0, -1.0, 0.5, 2.0]);
    println!("finite-difference check: Jacobian rel err {:.1e}, weighted Hessian rel err {:.1e}", check.jacobian, check.hessian);

    // Drive a short open-loop trajectory.
    let mut state = x;
    for _ in 0..20 {
        let mut next = [0.0; 4];
        car.eval_step(&state, &u, &mut next);
        state = next;
    }
    println!("after 1 s: {state:.4?}");
    println!("generated CUDA device code: {} lines (Bicycle::CUDA_SOURCE)", Bicycle::CUDA_SOURCE.lines().count());

    // A lane change solved by the box-constrained iLQR, then differentiated.
    // Cost per stage: 0.5 (z - z_ref)ᵀ W (z - z_ref) with z_ref = (·, 3.5, 0, 10, 0, 0):
    // reach the next lane (y = 3.5 m) at 10 m/s with a straight heading, small controls.
    let horizon = 40;
    let w = [0.0, 2.0, 5.0, 1.0, 0.1, 1.0];
    let z_ref = [0.0, 3.5, 0.0, 10.0, 0.0, 0.0];
    let n = 6;
    let mut cost_hess = vec![0.0; horizon * n * n];
    let mut cost_lin = vec![0.0; horizon * n];
    for t in 0..horizon {
        for i in 0..n {
            cost_hess[t * n * n + i * n + i] = w[i];
            cost_lin[t * n + i] = -w[i] * z_ref[i];
        }
    }
    let x_init = [0.0, 0.0, 0.0, 8.0];
    let batch = Batch {
        size: 1,
        x_init: &x_init,
        cost_hess: &cost_hess,
        cost_lin: &cost_lin,
        u_lower: Bound::PerControl(Bicycle::CONTROL_LOWER),
        u_upper: Bound::PerControl(Bicycle::CONTROL_UPPER),
        u_init: None,
    };
    let mut solver = Solver::new(car, horizon, SolverOptions::default());
    let t0 = std::time::Instant::now();
    let sol = solver.solve(&batch);
    let elapsed = t0.elapsed();
    println!(
        "lane change: cost {:.4}, {} iterations, converged {}, solved in {:.3} ms",
        sol.cost[0], sol.iterations[0], sol.converged[0], elapsed.as_secs_f64() * 1e3
    );
    for t in (0..horizon).step_by(8) {
        let (x, u) = (&sol.x[t * 4..t * 4 + 4], &sol.u[t * 2..t * 2 + 2]);
        println!("  t = {:4.2} s  x = {x:+.3?}  u = {u:+.3?}", t as f64 * car.dt);
    }
    // How does the final lateral position depend on the initial speed and the lane target?
    let mut grad_x = vec![0.0; horizon * 4];
    grad_x[(horizon - 1) * 4 + 1] = 1.0; // L = y_{T-1}
    let grad_u = vec![0.0; horizon * 2];
    let g = solver.backward(&batch, &sol, &grad_x, &grad_u);
    println!("dL/dx_init = {:+.4?}  (L = final y; exact implicit gradient)", g.x_init);
    let dl_dyref: f64 = (0..horizon).map(|t| -w[1] * g.cost_lin[t * n + 1]).sum();
    println!("dL/dy_ref  = {dl_dyref:+.4}  (through c = -W z_ref)");
}
