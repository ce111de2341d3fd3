//! Define a robot with `#[mpc_model]` and use its generated code.
//!
//! Run with `cargo run --release --example bicycle`.

mod model;

use model::Bicycle;
use mpc_runtime::verify::check_derivatives;
use mpc_runtime::Model;

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
    println!("generated CUDA device code: {} lines (print it with `mpc codegen`-style access to Bicycle::CUDA_SOURCE)", Bicycle::CUDA_SOURCE.lines().count());
}
