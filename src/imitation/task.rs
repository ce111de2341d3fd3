//! The learning tasks (true model, known cost and bounds, learned parameters), their problems and the loss.

use mpc_models::scenarios::SplitMix;
use mpc_models::{Cartpole, Pendulum};
use mpc_runtime::{Batch, Bound, GradientMode, Model, Solution, SolverOptions};

/// Uniform numbers in ranges, from the scenarios' SplitMix64 (reproducible without extra crates).
pub(super) struct Rng(pub(super) SplitMix);
impl Rng {
    pub(super) fn next(&mut self) -> f64 {
        self.0.uniform()
    }
    pub(super) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// A learning task for model `M`: the known cost, bounds and the parameters to learn.
pub(super) struct Task<M: Model> {
    pub(super) truth: M,
    pub(super) learn: &'static [&'static str],
    /// Diagonal of the stage cost over `z = [x; u]` and the goal `z_goal` (`c = −W z_goal`).
    weights: Vec<f64>,
    goal: Vec<f64>,
    pub(super) lo: Vec<f64>,
    pub(super) hi: Vec<f64>,
    sample_x0: fn(&mut Rng) -> Vec<f64>,
}

pub(super) fn pendulum_task() -> Task<Pendulum> {
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

pub(super) fn cartpole_task() -> Task<Cartpole> {
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
pub(super) struct Data {
    pub(super) n: usize,
    x0: Vec<f64>,
    cm: Vec<f64>,
    cv: Vec<f64>,
}

impl<M: Model> Task<M> {
    pub(super) fn data(&self, n: usize, horizon: usize, rng: &mut Rng) -> Data {
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

    pub(super) fn with(&self, theta: &[f64]) -> M {
        let mut m = self.truth.clone();
        for (name, v) in self.learn.iter().zip(theta) {
            m.set_param(name, *v).expect("a learned parameter");
        }
        m
    }

    pub(super) fn truth_values(&self) -> Vec<f64> {
        self.learn.iter().map(|n| self.truth.param(n).expect("a learned parameter")).collect()
    }
}

pub(super) fn options(mode: GradientMode) -> SolverOptions {
    SolverOptions { max_iters: 200, eps: 1e-10, tol: Some(1e-9), gradient: mode, grad_params: true, ..SolverOptions::default() }
}

pub(super) fn batch<'a>(d: &'a Data, lo: &'a [f64], hi: &'a [f64], u_init: Option<&'a [f64]>) -> Batch<'a> {
    Batch { size: d.n, x_init: &d.x0, cost_hess: &d.cm, cost_lin: &d.cv, u_lower: Bound::PerControl(lo), u_upper: Bound::PerControl(hi), u_init }
}

pub(super) fn param_error(theta: &[f64], truth: &[f64]) -> f64 {
    theta.iter().zip(truth).map(|(a, b)| (a - b).abs() / b.abs()).sum::<f64>() / truth.len() as f64
}

pub(super) fn imitation_loss(sol: &Solution, expert: &[f64], n: usize) -> f64 {
    sol.u.iter().zip(expert).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / n as f64
}
