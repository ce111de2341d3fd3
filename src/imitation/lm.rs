//! The MPC learner with Levenberg–Marquardt on the control residuals, restarted when a start stalls.

use super::task::{Data, Rng, Task, batch, imitation_loss, options, param_error};
use super::{Point, RunConfig};
use mpc_models::scenarios::SplitMix;
use mpc_runtime::solver::linalg::lu_solve_multi;
use mpc_runtime::{GradientMode, Model, Solution, Solver};

/// The Levenberg–Marquardt step `δ` of `(JᵀJ + λ(I + diag JᵀJ)) δ = −Jᵀr` (`None` when singular
/// or not finite).
pub(super) fn lm_step(jtj: &[f64], jtr: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let k = jtr.len();
    let mut a = jtj.to_vec();
    for d in 0..k {
        a[d * k + d] += lambda * (1.0 + jtj[d * k + d]);
    }
    let mut step: Vec<f64> = jtr.iter().map(|v| -v).collect();
    (lu_solve_multi(&mut a, k, &mut step, 1) && step.iter().all(|v| v.is_finite())).then_some(step)
}

pub(super) fn learn_mpc_dx_lm<M: Model>(
    task: &Task<M>,
    cfg: &RunConfig,
    data: &Data,
    expert: &Solution,
    initial: &[f64],
    truth: &[f64],
    mode: GradientMode,
) -> (Vec<f64>, Vec<Point>, usize) {
    let (t, nx, nu, k, np, n) = (cfg.horizon, M::NX, M::NU, task.learn.len(), M::NP, data.n);
    let idx: Vec<usize> = task.learn.iter().map(|p| M::PARAM_NAMES.iter().position(|q| q == p).expect("a parameter")).collect();
    let b = batch(data, &task.lo, &task.hi, None);
    let solve = |log_theta: &[f64]| {
        let theta: Vec<f64> = log_theta.iter().map(|v| v.exp()).collect();
        let mut solver = Solver::new(task.with(&theta), t, options(mode));
        let sol = solver.solve(&b);
        let loss = imitation_loss(&sol, &expert.u, n);
        (solver, sol, loss)
    };
    let mut log_theta: Vec<f64> = initial.iter().map(|v| v.ln()).collect();
    let (mut solver, mut sol, mut loss) = solve(&log_theta);
    let mut lambda = 1e-2;
    let mut curve = Vec::with_capacity(cfg.iters + 1);
    let gx = vec![0.0; n * t * nx];
    let mut gu = vec![0.0; n * t * nu];
    let mut g = mpc_runtime::Gradients::default();
    // The best point so far (what the learner would return), and this start's loss history.
    let mut best = (log_theta.clone(), loss);
    let mut history: Vec<f64> = vec![loss];
    // Noise-free data: the loss at θ* is zero up to rounding. A start is good once its loss is
    // 1e-12 of the first (it is never abandoned then); the run ends at 1e-24.
    let (good_loss, converged_loss) = (1e-12 * loss, 1e-24 * loss);
    let mut rng = Rng(SplitMix(0x0e57_a27 ^ cfg.seed ^ ((n as u64) << 32)));
    let mut restarts = 0;
    for it in 0..=cfg.iters {
        if loss < best.1 {
            best = (log_theta.clone(), loss);
        }
        let best_theta: Vec<f64> = best.0.iter().map(|v| v.exp()).collect();
        curve.push(Point { iter: it, loss: best.1, param_error: param_error(&best_theta, truth) });
        if it == cfg.iters || best.1 <= converged_loss {
            return (best_theta, curve, restarts);
        }
        // A start that has stalled above the converged loss (less than 0.1 % progress over its
        // last 5 steps: a local minimum or a flat region where the controls sit on their bounds)
        // is abandoned for a new one: the lowest-loss of 16 points drawn log-uniformly within a
        // factor 4 of the initial guess (one batch solve each, a fraction of one step's cost).
        let w = history.len();
        if w > 5 && loss > good_loss && history[w - 6] - history[w - 1] < 1e-3 * history[w - 6] {
            let mut pick: Option<(Vec<f64>, (Solver<M>, Solution, f64))> = None;
            for _ in 0..16 {
                let cand: Vec<f64> = initial.iter().map(|v| v.ln() + rng.uniform(-4f64.ln(), 4f64.ln())).collect();
                let r = solve(&cand);
                if pick.as_ref().is_none_or(|p| r.2 < p.1.2) {
                    pick = Some((cand, r));
                }
            }
            let (cand, r) = pick.expect("16 candidates");
            log_theta = cand;
            (solver, sol, loss) = r;
            history = vec![loss];
            lambda = 1e-2;
            restarts += 1;
            continue;
        }
        let theta: Vec<f64> = log_theta.iter().map(|v| v.exp()).collect();
        // Residuals r = (u* − u^expert)/√N, so that L = ‖r‖²; Jacobian rows from one backward
        // pass per (time step, control) with a unit upstream gradient in every problem.
        let scale = 1.0 / (n as f64).sqrt();
        let (mut jtj, mut jtr) = (vec![0.0; k * k], vec![0.0; k]);
        let mut row = vec![0.0; k];
        for s in 0..t {
            for c in 0..nu {
                gu.iter_mut().for_each(|v| *v = 0.0);
                for i in 0..n {
                    gu[(i * t + s) * nu + c] = 1.0;
                }
                solver.backward_into(&b, &sol, &gx, &gu, &mut g);
                for i in 0..n {
                    let at = (i * t + s) * nu + c;
                    let r = (sol.u[at] - expert.u[at]) * scale;
                    for a in 0..k {
                        row[a] = g.params[i * np + idx[a]] * theta[a] * scale;
                    }
                    for a in 0..k {
                        jtr[a] += row[a] * r;
                        for bb in 0..k {
                            jtj[a * k + bb] += row[a] * row[bb];
                        }
                    }
                }
            }
        }
        // Grow λ until the step lowers the loss (each trial is one batch solve).
        loop {
            if lambda > 1e10 {
                // No descent at any damping: a stationary point of the loss (or rounding at
                // θ*); stay, and the stall rule above decides.
                break;
            }
            let Some(step) = lm_step(&jtj, &jtr, lambda) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = log_theta.iter().zip(&step).map(|(l, d)| l + d.clamp(-1.0, 1.0)).collect();
            let (ts, tsol, tloss) = solve(&trial);
            if tloss < loss {
                (log_theta, solver, sol, loss) = (trial, ts, tsol, tloss);
                lambda = (lambda / 10.0).max(1e-9);
                break;
            }
            lambda *= 10.0;
        }
        history.push(loss);
    }
    unreachable!("the loop returns at its last iteration")
}
