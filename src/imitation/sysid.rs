//! The system-identification baseline: Levenberg–Marquardt least squares on the expert's transitions.

use super::lm::lm_step;
use super::task::{Data, Task, batch, imitation_loss, options, param_error};
use super::{Point, RunConfig};
use mpc_runtime::{GradientMode, Model, Solution, Solver};

pub(super) fn learn_sysid<M: Model>(task: &Task<M>, cfg: &RunConfig, data: &Data, expert: &Solution, initial: &[f64], truth: &[f64]) -> (Vec<f64>, Vec<Point>) {
    let (t, nx, nu, k, np) = (cfg.horizon, M::NX, M::NU, task.learn.len(), M::NP);
    let idx: Vec<usize> = task.learn.iter().map(|n| M::PARAM_NAMES.iter().position(|p| p == n).expect("a parameter")).collect();
    // Transitions (x_t, u_t) -> x_{t+1} of the expert's trajectories.
    let mut trans = Vec::new();
    for i in 0..data.n {
        for s in 0..t - 1 {
            let x = &expert.x[(i * t + s) * nx..(i * t + s + 1) * nx];
            let u = &expert.u[(i * t + s) * nu..(i * t + s + 1) * nu];
            let xn = &expert.x[(i * t + s + 1) * nx..(i * t + s + 2) * nx];
            trans.push((x, u, xn));
        }
    }
    let residuals = |m: &M| -> f64 {
        let mut xn = vec![0.0; nx];
        trans.iter().map(|(x, u, y)| {
            m.eval_step(x, u, &mut xn);
            xn.iter().zip(y.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()
        }).sum()
    };
    let eval_loss = |theta: &[f64]| -> f64 {
        let sol = Solver::new(task.with(theta), t, options(GradientMode::Exact)).solve(&batch(data, &task.lo, &task.hi, None));
        imitation_loss(&sol, &expert.u, data.n)
    };
    let mut log_theta: Vec<f64> = initial.iter().map(|v| v.ln()).collect();
    let mut lambda = 1e-3;
    let mut curve = Vec::new();
    let (mut fp, mut xn) = (vec![0.0; nx * np], vec![0.0; nx]);
    for it in 0..=cfg.iters {
        let theta: Vec<f64> = log_theta.iter().map(|v| v.exp()).collect();
        curve.push(Point { iter: it, loss: eval_loss(&theta), param_error: param_error(&theta, truth) });
        if it == cfg.iters {
            return (theta, curve);
        }
        let m = task.with(&theta);
        let r0 = residuals(&m);
        // Normal equations in log θ: J_k = θ_k ∂f/∂θ_k.
        let mut jtj = vec![0.0; k * k];
        let mut jtr = vec![0.0; k];
        for (x, u, y) in &trans {
            m.eval_step(x, u, &mut xn);
            m.eval_param_jacobian(x, u, &mut fp);
            for i in 0..nx {
                let r = xn[i] - y[i];
                for a in 0..k {
                    let ja = fp[i * np + idx[a]] * theta[a];
                    jtr[a] += ja * r;
                    for b in 0..k {
                        jtj[a * k + b] += ja * fp[i * np + idx[b]] * theta[b];
                    }
                }
            }
        }
        // Levenberg–Marquardt: grow λ until the step lowers the residual.
        loop {
            let Some(step) = lm_step(&jtj, &jtr, lambda) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = log_theta.iter().zip(&step).map(|(l, s)| l + s).collect();
            let tm = task.with(&trial.iter().map(|v| v.exp()).collect::<Vec<_>>());
            if residuals(&tm) < r0 || lambda > 1e12 {
                log_theta = trial;
                lambda = (lambda / 10.0).max(1e-12);
                break;
            }
            lambda *= 10.0;
        }
    }
    unreachable!("the loop returns at its last iteration")
}
