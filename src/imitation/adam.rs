//! The MPC learner with Adam on log θ, every step kept or with step control (`Optimizer::AdamMonotone`).

use super::task::{Data, Task, batch, imitation_loss, options, param_error};
use super::{Optimizer, Point, RunConfig};
use mpc_runtime::{GradientMode, Model, Solution, Solver};

pub(super) fn learn_mpc_dx<M: Model>(
    task: &Task<M>,
    cfg: &RunConfig,
    data: &Data,
    expert: &Solution,
    initial: &[f64],
    truth: &[f64],
    mode: GradientMode,
) -> (Vec<f64>, Vec<Point>) {
    let (t, nx, nu, k) = (cfg.horizon, M::NX, M::NU, task.learn.len());
    let idx: Vec<usize> = task.learn.iter().map(|n| M::PARAM_NAMES.iter().position(|p| p == n).expect("a parameter")).collect();
    let mut log_theta: Vec<f64> = initial.iter().map(|v| v.ln()).collect();
    let (mut m1, mut m2) = (vec![0.0; k], vec![0.0; k]);
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut curve = Vec::with_capacity(cfg.iters + 1);
    let gx = vec![0.0; data.n * t * nx];
    // The last accepted point (log θ, loss, Adam update direction as numerator and denominator) and the step scale.
    let mut accepted: Option<(Vec<f64>, f64, Vec<(f64, f64)>)> = None;
    let mut scale = 1.0;
    let mut adam_t = 0;
    for it in 0..=cfg.iters {
        let theta: Vec<f64> = log_theta.iter().map(|v| v.exp()).collect();
        let mut solver = Solver::new(task.with(&theta), t, options(mode));
        // The expert's initialisation (zeros): at θ* the learner reproduces the expert exactly.
        let b = batch(data, &task.lo, &task.hi, None);
        let sol = solver.solve(&b);
        let loss = imitation_loss(&sol, &expert.u, data.n);
        if cfg.optimizer == Optimizer::AdamMonotone {
            if let Some((prev, prev_loss, dir)) = &accepted {
                if !(loss <= *prev_loss) && it < cfg.iters {
                    // Rejected: the curve shows the accepted point; retry a shorter step.
                    let prev_theta: Vec<f64> = prev.iter().map(|v| v.exp()).collect();
                    curve.push(Point { iter: it, loss: *prev_loss, param_error: param_error(&prev_theta, truth) });
                    scale *= 0.5;
                    log_theta = prev.iter().zip(dir).map(|(p, &(num, den))| p - cfg.lr * scale * num / den).collect();
                    continue;
                }
                if !(loss <= *prev_loss) {
                    let prev_theta: Vec<f64> = prev.iter().map(|v| v.exp()).collect();
                    curve.push(Point { iter: it, loss: *prev_loss, param_error: param_error(&prev_theta, truth) });
                    return (prev_theta, curve);
                }
            }
        }
        curve.push(Point { iter: it, loss, param_error: param_error(&theta, truth) });
        if it == cfg.iters {
            return (theta, curve);
        }
        let gu: Vec<f64> = sol.u.iter().zip(&expert.u).map(|(a, e)| 2.0 * (a - e) / data.n as f64).collect();
        let g = solver.backward(&b, &sol, &gx, &gu);
        let np = M::NP;
        adam_t += 1;
        let mut dir = vec![(0.0, 0.0); k];
        for j in 0..k {
            // dL/dlog θ = θ dL/dθ, summed over the problems (θ is shared).
            let d: f64 = (0..data.n).map(|i| g.params[i * np + idx[j]]).sum::<f64>() * theta[j];
            m1[j] = b1 * m1[j] + (1.0 - b1) * d;
            m2[j] = b2 * m2[j] + (1.0 - b2) * d * d;
            let (h1, h2) = (m1[j] / (1.0 - b1.powi(adam_t)), m2[j] / (1.0 - b2.powi(adam_t)));
            dir[j] = (h1, h2.sqrt() + eps);
        }
        if cfg.optimizer == Optimizer::AdamMonotone {
            scale = (scale * 1.5).min(1.0);
            accepted = Some((log_theta.clone(), loss, dir.clone()));
        }
        for j in 0..k {
            log_theta[j] -= cfg.lr * scale * dir[j].0 / dir[j].1;
        }
        let _ = nu;
    }
    unreachable!("the loop returns at its last iteration")
}
