//! Imitation learning of the dynamics through the MPC, as in Amos et al. 2018 ("Differentiable
//! MPC for End-to-end Planning and Control", the `mpc.dx` experiments).
//!
//! An expert (box-constrained MPC, T = 20, the true parameters) solves problems from random
//! initial states; a learner with the same known cost and wrong parameters (each off by a factor
//! 2 to 3) fits them by gradient descent (Adam on log θ) on the imitation loss
//! `L(θ) = 1/N Σ_i ‖u*_i(θ) − u^expert_i‖²` through the MPC, with `dL/dθ` from the solver's
//! implicit-function backward pass ([`mpc_runtime::SolverOptions::grad_params`]), exact or
//! Gauss-Newton. The baseline is system identification: Levenberg–Marquardt least squares on
//! the expert's observed transitions `‖f(x_t, u_t; θ) − x_{t+1}‖²` (it needs the states; the
//! learner sees only initial states and controls), with the generated `∂f/∂θ`.
//!
//! Learned parameters: the pendulum's `g` and `m` (its length is known: from motion alone only
//! `g/l` and `m l²` are identifiable) and all four physical parameters of the cart-pole.

mod adam;
mod config;
mod lm;
mod sysid;
mod task;

pub use config::{Method, Optimizer, Point, RunConfig, RunResult, System};

use adam::learn_mpc_dx;
use lm::learn_mpc_dx_lm;
use mpc_models::scenarios::SplitMix;
use mpc_runtime::{GradientMode, Model, Solver};
use std::time::Instant;
use sysid::learn_sysid;
use task::{Rng, Task, batch, cartpole_task, options, pendulum_task};

/// Run one learning run.
pub fn run(cfg: &RunConfig) -> RunResult {
    match cfg.system {
        System::Pendulum => run_task(&pendulum_task(), cfg),
        System::Cartpole => run_task(&cartpole_task(), cfg),
    }
}

fn run_task<M: Model>(task: &Task<M>, cfg: &RunConfig) -> RunResult {
    let t = cfg.horizon;
    let mut rng = Rng(SplitMix(0x5eed ^ cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ cfg.trajectories as u64));
    let data = task.data(cfg.trajectories, t, &mut rng);
    let truth = task.truth_values();
    // Each parameter off by a factor in [2, 3], up or down.
    let initial: Vec<f64> = truth
        .iter()
        .map(|v| {
            let f = rng.uniform(2.0, 3.0);
            if rng.next() < 0.5 { v * f } else { v / f }
        })
        .collect();
    let expert = Solver::new(task.truth.clone(), t, options(GradientMode::Exact)).solve(&batch(&data, &task.lo, &task.hi, None));
    let started = Instant::now();
    let (learned, curve, restarts) = match cfg.method {
        Method::MpcDx(mode) if cfg.optimizer == Optimizer::LevenbergMarquardt => learn_mpc_dx_lm(task, cfg, &data, &expert, &initial, &truth, mode),
        Method::MpcDx(mode) => {
            let (l, c) = learn_mpc_dx(task, cfg, &data, &expert, &initial, &truth, mode);
            (l, c, 0)
        }
        Method::SysId => {
            let (l, c) = learn_sysid(task, cfg, &data, &expert, &initial, &truth);
            (l, c, 0)
        }
    };
    RunResult { config: cfg.clone(), names: task.learn.to_vec(), truth, initial, learned, curve, wall_s: started.elapsed().as_secs_f64(), restarts }
}
