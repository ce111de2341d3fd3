//! The settings and results of a learning run: the system, the method, the optimizer and the learning curve.

use mpc_runtime::GradientMode;

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
