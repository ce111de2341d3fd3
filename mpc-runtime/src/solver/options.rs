//! Solver settings: what the forward solve and the backward pass do, fixed when a solver is
//! built.

/// A control within this distance of a bound counts as on it in the backward pass.
pub const ACTIVE_TOL: f64 = 1e-8;

/// Which Hessian the implicit-differentiation KKT system holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GradientMode {
    /// The full Hessian of the Lagrangian, `C_t + Σ_i λ_{t+1,i} ∇²f_i(z_t)`: the true
    /// derivatives of the solution (they agree with finite differences).
    #[default]
    Exact,
    /// `C_t` only (the dynamics' second derivatives dropped), as mpc.pytorch and CA-AC-MPC.
    GaussNewton,
}

/// Which second-order model of the dynamics the forward solver's Riccati pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// iLQR: the dynamics linearised (Gauss-Newton), as mpc.pytorch and CA-AC-MPC. Cheapest
    /// per iteration; converges linearly where the co-states are large and the dynamics curved.
    #[default]
    Ilqr,
    /// DDP: the Riccati pass also adds `Σ_i V'_{x,i} ∇²f_i` (the generated co-state–weighted
    /// Hessian with the next stage's cost-to-go gradient), regularised (`Q_uu + μ I`) until the
    /// control block is positive definite. Converges quadratically near a solution.
    Ddp,
}

impl Method {
    /// The name used in the exchange format (`"ilqr"`, `"ddp"`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ilqr => "ilqr",
            Method::Ddp => "ddp",
        }
    }
}

/// Which step the line search keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LineSearchRule {
    /// Evaluate every step size and keep the one with the lowest cost (ties within rounding go
    /// to the earlier step in the list).
    #[default]
    Best,
    /// Keep the first step size (in list order) that lowers the cost, as mpc.pytorch does.
    FirstDecrease,
}

/// When a batch is solved a group of [`LANES`](crate::LANES) problems at a time in lock step
/// (SIMD across problems) rather than problem by problem, and whether a problem solved on its
/// own rolls out its line search's step sizes in lanes (SIMD across step sizes, with
/// [`LineSearchRule::Best`] and a model with lane code). All give every problem the same bits;
/// only the speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lanes {
    /// Where it was measured to pay (`bench/results/cpu-lanes-split-2026-12-05.md`): whole
    /// groups in equal shares for the pool's threads (a multiple of the thread count), the
    /// remaining problems one by one after them, in the forward solve and the backward pass.
    #[default]
    Auto,
    /// Whenever the batch holds at least one whole group and the options allow it.
    Always,
    /// Never: every problem on its own, every step size rolled out alone (the scalar path).
    Never,
}

/// Solver settings, fixed when the [`Solver`](crate::solver::Solver) is built.
#[derive(Clone, Debug, PartialEq)]
pub struct SolverOptions {
    /// Maximum number of iLQR iterations per problem.
    pub max_iters: usize,
    /// Convergence tolerance on the 2-norm of one problem's whole control update.
    pub eps: f64,
    /// Step sizes tried by the line search (all are evaluated).
    pub line_search: Vec<f64>,
    /// Which of the lowering step sizes is kept.
    pub line_search_rule: LineSearchRule,
    /// Gradient mode of [`Solver::backward`](crate::solver::Solver::backward).
    pub gradient: GradientMode,
    /// Forward method: iLQR (default) or DDP.
    pub method: Method,
    /// Converged when the KKT residual (see [`Stats::kkt_residual`](crate::solver::Stats::kkt_residual)) is at most this (absolute);
    /// `None`: only the step test (`eps`) applies. With a tolerance, steps the cost cannot
    /// resolve are judged by the residual, only a step that vanishes in floating point counts as
    /// convergence, and an iLQR solve that stalls short of the tolerance (no step lowers the cost
    /// or the residual, even at the largest regularisation) continues with DDP steps.
    pub tol: Option<f64>,
    /// Compute the KKT residual of every returned solution (default). It needs the Jacobians at
    /// the returned iterate, one linearisation more than the iterations use; `false` skips it
    /// (the residual is then NaN unless `tol` computed it), for callers that never read it
    /// (training loops, benchmarks against solvers that do not compute it).
    pub report_kkt: bool,
    /// Also compute `dL/dθ` for the model's parameters in [`Solver::backward`](crate::solver::Solver::backward)
    /// ([`Gradients::params`](crate::solver::Gradients::params); default off: it costs a parameter Jacobian and a mixed second
    /// derivative per stage).
    pub grad_params: bool,
    /// First non-zero `Q_uu` regularisation `μ` used when one is needed.
    pub reg_min: f64,
    /// Regularisation growth (and decay) factor.
    pub reg_factor: f64,
    /// Give up (not converged) once `μ` would exceed this.
    pub reg_max: f64,
    /// When batches take the lock-step lane path (the environment variable `MPC_NO_LANES=1`
    /// overrides it with [`Lanes::Never`]).
    pub lanes: Lanes,
}

impl SolverOptions {
    /// The regularisation after a failed step: `reg_min` from zero, else × `reg_factor` (the
    /// rule of the CPU solver and of every kernel's iteration count).
    pub fn raise_regularisation(&self, mu: f64) -> f64 {
        if mu == 0.0 { self.reg_min } else { mu * self.reg_factor }
    }

    /// The regularisation after an accepted step: ÷ `reg_factor`, and zero once at `reg_min`.
    pub fn lower_regularisation(&self, mu: f64) -> f64 {
        if mu <= self.reg_min { 0.0 } else { mu / self.reg_factor }
    }
}

impl Default for SolverOptions {
    fn default() -> Self {
        Self {
            max_iters: 50,
            eps: 1e-7,
            line_search: vec![1.0, 0.5, 0.25, 0.1],
            line_search_rule: LineSearchRule::Best,
            gradient: GradientMode::Exact,
            method: Method::Ilqr,
            tol: None,
            report_kkt: true,
            grad_params: false,
            reg_min: 1e-6,
            reg_factor: 10.0,
            reg_max: 1e10,
            lanes: Lanes::Auto,
        }
    }
}
