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

use mpc_models::scenarios::SplitMix;
use mpc_models::{Cartpole, Pendulum};
use mpc_runtime::solver::linalg::lu_solve_multi;
use mpc_runtime::{Batch, Bound, GradientMode, Model, Solution, Solver, SolverOptions};
use std::time::Instant;

/// Which system the experiment learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// mpc.pytorch's pendulum (swing-up cost), learning `g`, `m`.
    Pendulum,
    /// The cart-pole (swing-up and centre), learning `gravity`, `masscart`, `masspole`, `length`.
    Cartpole,
}

impl System {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            System::Pendulum => "pendulum",
            System::Cartpole => "cartpole",
        }
    }
}

/// How the learner gets its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Gradient descent on the imitation loss through the MPC, with this gradient mode.
    MpcDx(GradientMode),
    /// Least squares on the expert's transitions (needs states).
    SysId,
}

impl Method {
    /// Short label for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Method::MpcDx(GradientMode::Exact) => "mpc.dx exact",
            Method::MpcDx(GradientMode::GaussNewton) => "mpc.dx gauss-newton",
            Method::SysId => "sysid",
        }
    }
}

/// Settings of one learning run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The system.
    pub system: System,
    /// Learning method.
    pub method: Method,
    /// Number of expert trajectories.
    pub trajectories: usize,
    /// Seed of the initial states and of the wrong initial parameters.
    pub seed: u64,
    /// Gradient (or Levenberg–Marquardt) iterations.
    pub iters: usize,
    /// Adam step size on log θ.
    pub lr: f64,
    /// MPC horizon.
    pub horizon: usize,
    /// How the MPC learners step (the sysid baseline always uses Levenberg–Marquardt).
    pub optimizer: Optimizer,
}

/// How the MPC learner moves log θ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Adam (step `lr`) on the gradient of the imitation loss, every step kept.
    Adam,
    /// Adam with step control: a step that raises the imitation loss is undone and retried at
    /// half the size (the size grows back by 1.5× per accepted step, up to `lr`).
    AdamMonotone,
    /// Levenberg–Marquardt on the residuals `u*(θ) − u^expert`: the Jacobian `du*/dlog θ` from
    /// T·nu backward passes (one per time step and control, all problems at once), the step from
    /// the damped normal equations, kept only when the loss falls.
    LevenbergMarquardt,
}

impl Optimizer {
    /// Name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Adam => "adam",
            Optimizer::AdamMonotone => "adam-monotone",
            Optimizer::LevenbergMarquardt => "lm",
        }
    }
}

/// One point of a learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Iteration (0: the initial guess).
    pub iter: usize,
    /// Imitation loss `L(θ)` (for sysid too, evaluated through the MPC).
    pub loss: f64,
    /// Mean relative parameter error `mean_k |θ_k − θ*_k| / θ*_k`.
    pub param_error: f64,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Settings.
    pub config: RunConfig,
    /// Names of the learned parameters.
    pub names: Vec<&'static str>,
    /// True values.
    pub truth: Vec<f64>,
    /// Initial (wrong) values.
    pub initial: Vec<f64>,
    /// Learned values.
    pub learned: Vec<f64>,
    /// The learning curve.
    pub curve: Vec<Point>,
    /// Wall time of the learning loop (s).
    pub wall_s: f64,
    /// Restarts from new starting points after a stall (Levenberg–Marquardt only).
    pub restarts: usize,
}

/// Uniform numbers in ranges, from the scenarios' SplitMix64 (reproducible without extra crates).
struct Rng(SplitMix);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0.uniform()
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// A learning task for model `M`: the known cost, bounds and the parameters to learn.
struct Task<M: Model> {
    truth: M,
    learn: &'static [&'static str],
    /// Diagonal of the stage cost over `z = [x; u]` and the goal `z_goal` (`c = −W z_goal`).
    weights: Vec<f64>,
    goal: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    sample_x0: fn(&mut Rng) -> Vec<f64>,
}

fn pendulum_task() -> Task<Pendulum> {
    Task {
        truth: Pendulum::default(),
        learn: &["g", "m"],
        weights: vec![1.0, 1.0, 0.1, 0.001],
        goal: vec![1.0, 0.0, 0.0, 0.0],
        lo: vec![-2.0],
        hi: vec![2.0],
        sample_x0: |r| {
            let th = r.uniform(-std::f64::consts::PI, std::f64::consts::PI);
            vec![th.cos(), th.sin(), r.uniform(-1.0, 1.0)]
        },
    }
}

fn cartpole_task() -> Task<Cartpole> {
    Task {
        truth: Cartpole::default(),
        learn: &["gravity", "masscart", "masspole", "length"],
        weights: vec![0.1, 0.1, 1.0, 1.0, 0.1, 0.001],
        goal: vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        lo: vec![-10.0],
        hi: vec![10.0],
        sample_x0: |r| {
            // Balancing from moderate tilts: the expert's controls are a smooth function of the
            // parameters (swing-ups from large angles switch between swing directions).
            let th = r.uniform(-0.4, 0.4);
            vec![r.uniform(-0.5, 0.5), r.uniform(-0.5, 0.5), th.cos(), th.sin(), r.uniform(-0.5, 0.5)]
        },
    }
}

/// The problems of one run: initial states and the (shared) cost.
struct Data {
    n: usize,
    x0: Vec<f64>,
    cm: Vec<f64>,
    cv: Vec<f64>,
}

impl<M: Model> Task<M> {
    fn data(&self, n: usize, horizon: usize, rng: &mut Rng) -> Data {
        let nz = M::NX + M::NU;
        let x0: Vec<f64> = (0..n).flat_map(|_| (self.sample_x0)(rng)).collect();
        let mut cm = vec![0.0; n * horizon * nz * nz];
        let mut cv = vec![0.0; n * horizon * nz];
        for s in 0..n * horizon {
            for i in 0..nz {
                cm[s * nz * nz + i * nz + i] = self.weights[i];
                cv[s * nz + i] = -self.weights[i] * self.goal[i];
            }
        }
        Data { n, x0, cm, cv }
    }

    fn with(&self, theta: &[f64]) -> M {
        let mut m = self.truth.clone();
        for (name, v) in self.learn.iter().zip(theta) {
            m.set_param(name, *v).expect("a learned parameter");
        }
        m
    }

    fn truth_values(&self) -> Vec<f64> {
        self.learn.iter().map(|n| self.truth.param(n).expect("a learned parameter")).collect()
    }
}

fn options(mode: GradientMode) -> SolverOptions {
    SolverOptions { max_iters: 200, eps: 1e-10, tol: Some(1e-9), gradient: mode, grad_params: true, ..SolverOptions::default() }
}

fn batch<'a>(d: &'a Data, lo: &'a [f64], hi: &'a [f64], u_init: Option<&'a [f64]>) -> Batch<'a> {
    Batch { size: d.n, x_init: &d.x0, cost_hess: &d.cm, cost_lin: &d.cv, u_lower: Bound::PerControl(lo), u_upper: Bound::PerControl(hi), u_init }
}

fn param_error(theta: &[f64], truth: &[f64]) -> f64 {
    theta.iter().zip(truth).map(|(a, b)| (a - b).abs() / b.abs()).sum::<f64>() / truth.len() as f64
}

fn imitation_loss(sol: &Solution, expert: &[f64], n: usize) -> f64 {
    sol.u.iter().zip(expert).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n as f64
}

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

fn learn_mpc_dx<M: Model>(
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

fn learn_sysid<M: Model>(task: &Task<M>, cfg: &RunConfig, data: &Data, expert: &Solution, initial: &[f64], truth: &[f64]) -> (Vec<f64>, Vec<Point>) {
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


/// The Levenberg–Marquardt step `δ` of `(JᵀJ + λ(I + diag JᵀJ)) δ = −Jᵀr` (`None` when singular
/// or not finite).
fn lm_step(jtj: &[f64], jtr: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let k = jtr.len();
    let mut a = jtj.to_vec();
    for d in 0..k {
        a[d * k + d] += lambda * (1.0 + jtj[d * k + d]);
    }
    let mut step: Vec<f64> = jtr.iter().map(|v| -v).collect();
    (lu_solve_multi(&mut a, k, &mut step, 1) && step.iter().all(|v| v.is_finite())).then_some(step)
}

fn learn_mpc_dx_lm<M: Model>(
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
