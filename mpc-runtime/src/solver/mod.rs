//! Batched, box-constrained iLQR with implicit-differentiation gradients (CPU).
//!
//! A [`Solver`] is configured once (model, horizon, [`SolverOptions`]) and then solves batches
//! of problems
//!
//! ```text
//! min  Σ_{t=0}^{T-1} ½ z_tᵀ C_t z_t + c_tᵀ z_t ,   z_t = [x_t; u_t]
//! s.t. x_0 = x_init,  x_{t+1} = f(x_t, u_t)  (t = 0..T-2),  lo_t ≤ u_t ≤ hi_t
//! ```
//!
//! with the layout of the exchange format (`problem-format.md`): batch first, row-major, flat
//! `Vec<f64>` (`x_init` B×nx, `C` B×T×n×n, `c` B×T×n, controls B×T×nu).
//!
//! * **Forward** ([`Solver::solve`]): control-limited iLQR (Tassa, Mansard & Todorov 2014).
//!   Each stage's control step solves a box QP by projected Newton to full accuracy
//!   ([`boxqp`]); feedback gains act only on the free controls; `Q_uu` is regularised (`μ I`)
//!   only when it is not positive definite or no step size lowers the cost; every step size
//!   of the line search is evaluated and the best that lowers the cost is kept; a problem has
//!   converged when the norm of its whole control update is below `eps`.
//! * **Backward** ([`Solver::backward`]): implicit differentiation of the KKT conditions at the
//!   solution, active bounds held fixed (a control within [`ACTIVE_TOL`] of a bound is on
//!   it): one LQR solve with the upstream gradients as the linear term gives `dL/dC`,
//!   `dL/dc`, `dL/dx_init`. [`GradientMode::Exact`] puts the co-state–weighted second
//!   derivatives of the dynamics into the Hessian ([`Dynamics::weighted_hessian`]);
//!   [`GradientMode::GaussNewton`] drops them, as mpc.pytorch does.
//!
//! Problems are independent: the batch is spread over the rayon thread pool, each problem
//! with its own [`Workspace`], allocated once per solver and reused.

pub mod backward;
pub mod boxqp;
pub mod ilqr;
pub mod linalg;
pub mod workspace;

use crate::backend::{Backend, BackendError, BackendKind, check_backward};
use crate::model::Dynamics;
use rayon::prelude::*;
pub use workspace::Workspace;

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

/// Why the forward solve of one problem stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StopReason {
    /// The KKT residual fell below `tol` (converged).
    Tolerance,
    /// The norm of the whole control update fell below `eps` (converged).
    SmallStep,
    /// `max_iters` iterations ran without meeting a convergence test.
    #[default]
    MaxIterations,
    /// No step size lowered the cost even with the largest regularisation: the iterates
    /// cannot move (the residual says how far from optimal they stopped).
    Stalled,
    /// Something went non-finite (overflow, or a model that is undefined at the iterate): never
    /// converged. The solution is the last finite iterate where there is one.
    NonFinite(NonFinite),
}

/// What went non-finite in a forward solve ([`StopReason::NonFinite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// The states of the rollout from `x_init` with the initial controls (the dynamics
    /// overflowed, or `x_init` is too large to propagate).
    Rollout,
    /// The cost of the initial rollout (its states finite).
    Cost,
    /// The Riccati pass: the dynamics' Jacobians, the cost-to-go or the gains at the iterate.
    Riccati,
    /// The KKT residual of the returned solution (the cost's gradient through the dynamics).
    Residual,
}

/// Every [`StopReason`] with its status code, the one table the CUDA kernels' `status_out`
/// codes are rendered from.
pub const STOP_CODES: [(StopReason, i32); 8] = [
    (StopReason::MaxIterations, 0),
    (StopReason::Tolerance, 1),
    (StopReason::SmallStep, 2),
    (StopReason::Stalled, 3),
    (StopReason::NonFinite(NonFinite::Rollout), 4),
    (StopReason::NonFinite(NonFinite::Cost), 5),
    (StopReason::NonFinite(NonFinite::Riccati), 6),
    (StopReason::NonFinite(NonFinite::Residual), 7),
];

impl StopReason {
    /// A short name for reports (`"tolerance"`, `"small-step"`, `"max-iterations"`, `"stalled"`).
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Tolerance => "tolerance",
            StopReason::SmallStep => "small-step",
            StopReason::MaxIterations => "max-iterations",
            StopReason::Stalled => "stalled",
            StopReason::NonFinite(NonFinite::Rollout) => "non-finite-rollout",
            StopReason::NonFinite(NonFinite::Cost) => "non-finite-cost",
            StopReason::NonFinite(NonFinite::Riccati) => "non-finite-riccati",
            StopReason::NonFinite(NonFinite::Residual) => "non-finite-residual",
        }
    }
    /// Whether this counts as converged.
    pub fn converged(self) -> bool {
        matches!(self, StopReason::Tolerance | StopReason::SmallStep)
    }
    /// Whether something went non-finite.
    pub fn non_finite(self) -> bool {
        matches!(self, StopReason::NonFinite(_))
    }
    /// The status code of this reason (see [`STOP_CODES`]).
    pub fn code(self) -> i32 {
        STOP_CODES.iter().find(|(r, _)| *r == self).map(|&(_, c)| c).expect("every StopReason has a code")
    }
    /// The reason of a status code; `None` for a code no kernel writes.
    pub fn from_code(code: i32) -> Option<Self> {
        STOP_CODES.iter().find(|(_, c)| *c == code).map(|&(r, _)| r)
    }
}

/// What the backward pass did for one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GradStatus {
    /// Gradients computed and finite.
    #[default]
    Ok,
    /// The forward solution went non-finite ([`StopReason::NonFinite`], or non-finite states
    /// or controls): no gradient is defined; all of this problem's gradients are zero.
    MaskedSolution,
    /// The implicit-differentiation solve produced a non-finite value; all of this problem's
    /// gradients are set to zero rather than propagating it.
    MaskedNonFinite,
}

impl GradStatus {
    /// A short name for reports (`"ok"`, `"masked-solution"`, `"masked-non-finite"`).
    pub fn name(self) -> &'static str {
        match self {
            GradStatus::Ok => "ok",
            GradStatus::MaskedSolution => "masked-solution",
            GradStatus::MaskedNonFinite => "masked-non-finite",
        }
    }
    /// Whether the gradients were zeroed.
    pub fn masked(self) -> bool {
        self != GradStatus::Ok
    }
}

/// Zero one problem's gradients unless its forward solution is usable and they came out
/// finite: the rule every backend applies after its backward pass (`solution_ok`: the problem's
/// stop reason is not [`StopReason::NonFinite`] and its states and controls are finite).
pub fn mask_gradients(solution_ok: bool, grads: [&mut [f64]; 4]) -> GradStatus {
    let status = if !solution_ok {
        GradStatus::MaskedSolution
    } else if grads.iter().any(|g| g.iter().any(|v| !v.is_finite())) {
        GradStatus::MaskedNonFinite
    } else {
        return GradStatus::Ok;
    };
    for g in grads {
        g.fill(0.0);
    }
    status
}

/// Whether problem `i` of `sol` is usable for the backward pass (see [`mask_gradients`]).
pub fn solution_ok(sol: &Solution, i: usize, t: usize, nx: usize, nu: usize) -> bool {
    !sol.stop.get(i).is_some_and(|s| s.non_finite())
        && sol.x[i * t * nx..(i + 1) * t * nx].iter().all(|v| v.is_finite())
        && sol.u[i * t * nu..(i + 1) * t * nu].iter().all(|v| v.is_finite())
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

/// Solver settings, fixed when the [`Solver`] is built.
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
    /// Gradient mode of [`Solver::backward`].
    pub gradient: GradientMode,
    /// Forward method: iLQR (default) or DDP.
    pub method: Method,
    /// Converged when the KKT residual (see [`Stats::kkt_residual`]) is at most this (absolute);
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
    /// Also compute `dL/dθ` for the model's parameters in [`Solver::backward`]
    /// ([`Gradients::params`]; default off: it costs a parameter Jacobian and a mixed second
    /// derivative per stage).
    pub grad_params: bool,
    /// First non-zero `Q_uu` regularisation `μ` used when one is needed.
    pub reg_min: f64,
    /// Regularisation growth (and decay) factor.
    pub reg_factor: f64,
    /// Give up (not converged) once `μ` would exceed this.
    pub reg_max: f64,
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
        }
    }
}

/// Control bounds on one side (lower or upper).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Bound<'a> {
    /// Unbounded (±inf).
    #[default]
    None,
    /// The same `nu` bounds for every problem and stage.
    PerControl(&'a [f64]),
    /// One bound per problem, stage and control (B×T×nu).
    PerStage(&'a [f64]),
}

/// A batch of problems, borrowed in the exchange format's flat layout.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Number of problems `B`.
    pub size: usize,
    /// Initial states, B×nx.
    pub x_init: &'a [f64],
    /// Stage cost Hessians `C`, B×T×n×n (symmetric).
    pub cost_hess: &'a [f64],
    /// Stage cost linear terms `c`, B×T×n.
    pub cost_lin: &'a [f64],
    /// Lower control bounds.
    pub u_lower: Bound<'a>,
    /// Upper control bounds.
    pub u_upper: Bound<'a>,
    /// Warm start B×T×nu (zeros when absent); projected onto the bounds.
    pub u_init: Option<&'a [f64]>,
}

/// One problem of a batch, as the per-problem kernels see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProblemRef<'a> {
    pub x_init: &'a [f64],
    pub cm: &'a [f64],
    pub cv: &'a [f64],
    pub lower: Bound<'a>,
    pub upper: Bound<'a>,
    pub u_init: Option<&'a [f64]>,
}

impl<'a> Batch<'a> {
    fn problem(&self, i: usize, horizon: usize, nx: usize, nu: usize) -> ProblemRef<'a> {
        let n = nx + nu;
        let per = |b: Bound<'a>| match b {
            Bound::PerStage(s) => Bound::PerStage(&s[i * horizon * nu..(i + 1) * horizon * nu]),
            other => other,
        };
        ProblemRef {
            x_init: &self.x_init[i * nx..(i + 1) * nx],
            cm: &self.cost_hess[i * horizon * n * n..(i + 1) * horizon * n * n],
            cv: &self.cost_lin[i * horizon * n..(i + 1) * horizon * n],
            lower: per(self.u_lower),
            upper: per(self.u_upper),
            u_init: self.u_init.map(|u| &u[i * horizon * nu..(i + 1) * horizon * nu]),
        }
    }

    /// Problem `i` as a batch of one (borrowing the same data).
    pub fn single(&self, i: usize, horizon: usize, nx: usize, nu: usize) -> Batch<'a> {
        let p = self.problem(i, horizon, nx, nu);
        Batch { size: 1, x_init: p.x_init, cost_hess: p.cm, cost_lin: p.cv, u_lower: p.lower, u_upper: p.upper, u_init: p.u_init }
    }

    /// Check the lengths of every array against `B`, `T`, `nx`, `nu`.
    pub fn check(&self, horizon: usize, nx: usize, nu: usize) -> Result<(), String> {
        let (b, t, n) = (self.size, horizon, nx + nu);
        let want = |name: &str, got: usize, want: usize| {
            if got == want { Ok(()) } else { Err(format!("{name}: expected {want} entries, got {got}")) }
        };
        want("x_init", self.x_init.len(), b * nx)?;
        want("C", self.cost_hess.len(), b * t * n * n)?;
        want("c", self.cost_lin.len(), b * t * n)?;
        for (name, bd) in [("u_lower", self.u_lower), ("u_upper", self.u_upper)] {
            match bd {
                Bound::None => {}
                Bound::PerControl(s) => want(name, s.len(), nu)?,
                Bound::PerStage(s) => want(name, s.len(), b * t * nu)?,
            }
        }
        if let Some(u) = self.u_init {
            want("u_init", u.len(), b * t * nu)?;
        }
        Ok(())
    }
}

/// Solutions of a batch (flat, batch first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Solution {
    /// States x_0..x_{T-1}, B×T×nx.
    pub x: Vec<f64>,
    /// Controls u_0..u_{T-1}, B×T×nu.
    pub u: Vec<f64>,
    /// Objective value per problem.
    pub cost: Vec<f64>,
    /// iLQR iterations used per problem.
    pub iterations: Vec<usize>,
    /// Whether each problem met the convergence test.
    pub converged: Vec<bool>,
    /// First-order optimality of each returned solution (see [`Stats::kkt_residual`]); empty
    /// when the backend does not compute it (fill it with [`Solver::kkt_residuals`]).
    pub kkt_residual: Vec<f64>,
    /// Why each problem stopped; empty when the backend does not report it.
    pub stop: Vec<StopReason>,
}

impl Solution {
    /// After `kkt_residual` was filled from outside the solve (a CUDA solution checked on the
    /// CPU): a problem whose residual is not finite has a non-finite gradient of its cost at the returned
    /// controls, so it is marked [`NonFinite::Residual`] and not converged, as the CPU solver does.
    pub fn flag_non_finite_residuals(&mut self) {
        for i in 0..self.kkt_residual.len().min(self.converged.len()) {
            if !self.kkt_residual[i].is_finite() && !self.stop.get(i).is_some_and(|s| s.non_finite()) {
                self.converged[i] = false;
                if let Some(s) = self.stop.get_mut(i) {
                    *s = StopReason::NonFinite(NonFinite::Residual);
                }
            }
        }
    }

    /// Problem `i` in one line: why it stopped, whether that is convergence, iterations, cost
    /// and KKT residual (what `mpc solve --verbose` prints under each trace).
    pub fn summary(&self, i: usize) -> String {
        let stop = self.stop.get(i).map_or("unknown", |s| s.name());
        let kkt = self.kkt_residual.get(i).map_or("not computed".to_string(), |&r| sci(r, 3));
        format!(
            "stop: {stop} ({}) after {} iterations; cost {}; KKT residual {kkt}",
            if self.converged[i] { "converged" } else { "not converged" },
            self.iterations[i],
            sci(self.cost[i], 6)
        )
    }

    /// How many problems went non-finite ([`StopReason::NonFinite`]).
    pub fn non_finite_count(&self) -> usize {
        self.stop.iter().filter(|s| s.non_finite()).count()
    }
}

/// Gradients of a loss with respect to the problem data (flat, batch first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gradients {
    /// dL/dC, B×T×n×n (symmetric per stage).
    pub cost_hess: Vec<f64>,
    /// dL/dc, B×T×n.
    pub cost_lin: Vec<f64>,
    /// dL/dx_init, B×nx.
    pub x_init: Vec<f64>,
    /// dL/dθ, B×np in the model's parameter order (`Model::PARAM_NAMES`; for the linear model
    /// `A`, `B`, `f` row-major): per problem, at that problem's parameter values. Empty unless
    /// [`SolverOptions::grad_params`] is set.
    pub params: Vec<f64>,
    /// Per problem: computed, or masked (zeroed) and why.
    pub status: Vec<GradStatus>,
}

/// Per-problem result of the forward solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Objective value.
    pub cost: f64,
    /// iLQR iterations used.
    pub iterations: usize,
    /// Whether a convergence test was met (`stop.converged()`).
    pub converged: bool,
    /// Largest entry of the projected gradient of the whole cost with respect to the controls
    /// (through the dynamics) at the returned solution: `max |u - clamp(u - ∇_u J, lo, hi)|`,
    /// absolute. Zero at a KKT point of the box-constrained problem.
    pub kkt_residual: f64,
    /// Why the solve stopped.
    pub stop: StopReason,
}

/// One line-search outcome of the forward solve ([`Solver::solve_traced`], `mpc solve
/// --verbose`): what crocoddyl's verbose callback prints, for this solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterationRecord {
    /// The iteration (1-based; an iteration that raises the regularisation and retries has
    /// several records).
    pub iteration: usize,
    /// The cost after the step (of the current iterate when no step was taken).
    pub cost: f64,
    /// `‖Δu‖` of the step taken, or of the full step tried when none was.
    pub step: f64,
    /// The line-search step size taken; NaN when no step was taken or the step was chosen on
    /// the KKT residual.
    pub alpha: f64,
    /// The regularisation μ the Riccati pass used.
    pub mu: f64,
    /// The KKT residual after the step, where it was computed (with `solver.tol`); else NaN.
    pub kkt: f64,
    /// Whether a step was taken.
    pub accepted: bool,
    /// Whether the Riccati pass used DDP's second-order term.
    pub newton: bool,
}

/// `v` as C's `%.*e` (`1.250e-03`, which lines up in columns, rather than Rust's `1.25e-3`);
/// `-` for NaN (a value not computed).
fn sci(v: f64, prec: usize) -> String {
    if v.is_nan() {
        return "-".to_string();
    }
    let s = format!("{v:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// The iteration trace of one problem as a table, one line per [`IterationRecord`] (what
/// `mpc solve --verbose` prints): iteration, cost, ‖Δu‖, step size α, regularisation μ, KKT
/// residual (where computed), and whether the step was taken (`step`), taken on DDP's Newton
/// pass (`newton`), or refused (`reject`: no step size lowered the cost; μ rises).
pub fn format_trace(records: &[IterationRecord]) -> String {
    let num = sci;
    let mut out = format!("{:>5} {:>13} {:>10} {:>9} {:>9} {:>10}  {}\n", "iter", "cost", "|du|", "alpha", "mu", "kkt", "outcome");
    for r in records {
        let outcome = match (r.accepted, r.newton) {
            (true, false) => "step",
            (true, true) => "newton",
            (false, _) => "reject",
        };
        out.push_str(&format!(
            "{:>5} {:>13} {:>10} {:>9} {:>9} {:>10}  {outcome}\n",
            r.iteration,
            num(r.cost, 6),
            num(r.step, 3),
            num(r.alpha, 2),
            num(r.mu, 2),
            num(r.kkt, 3),
        ));
    }
    out
}

/// A configured batched iLQR solver for dynamics `D` and horizon `T`.
pub struct Solver<D: Dynamics> {
    model: D,
    horizon: usize,
    options: SolverOptions,
    workspaces: Vec<Workspace>,
}

impl<D: Dynamics> Solver<D> {
    /// Configure a solver. Panics when `horizon == 0`, `eps` is not positive, or the line
    /// search is empty or holds a non-positive step.
    pub fn new(model: D, horizon: usize, options: SolverOptions) -> Self {
        assert!(horizon >= 1, "horizon must be at least 1");
        assert!(options.eps > 0.0, "eps must be positive");
        assert!(options.tol.is_none_or(|t| t >= 0.0), "tol must not be negative");
        assert!(
            !options.line_search.is_empty() && options.line_search.iter().all(|&a| a > 0.0 && a.is_finite()),
            "line_search needs at least one positive finite step"
        );
        Self { model, horizon, options, workspaces: Vec::new() }
    }

    /// The model.
    pub fn model(&self) -> &D {
        &self.model
    }

    /// The horizon `T`.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The options.
    pub fn options(&self) -> &SolverOptions {
        &self.options
    }

    fn ensure_workspaces(&mut self, b: usize) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        if self.workspaces.first().is_some_and(|w| !w.fits(t, nx, nu)) {
            self.workspaces.clear();
        }
        while self.workspaces.len() < b {
            self.workspaces.push(Workspace::new(t, nx, nu));
        }
    }

    /// Solve a batch; allocates the result (see [`Solver::solve_into`] to reuse one).
    pub fn solve(&mut self, batch: &Batch<'_>) -> Solution {
        let mut sol = Solution::default();
        self.solve_into(batch, &mut sol);
        sol
    }

    /// Solve a batch into `sol`, resizing its vectors only when the batch size changed.
    /// Panics when an array of `batch` has the wrong length (see [`Batch::check`]);
    /// [`Backend::try_solve_into`] returns the error instead.
    pub fn solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) {
        if let Err(e) = self.try_solve_into(batch, sol) {
            panic!("Solver::solve: {e}");
        }
    }

    fn solve_checked(&mut self, batch: &Batch<'_>, sol: &mut Solution) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        let bsz = batch.size;
        self.ensure_workspaces(bsz);
        sol.x.resize(bsz * t * nx, 0.0);
        sol.u.resize(bsz * t * nu, 0.0);
        sol.cost.resize(bsz, 0.0);
        sol.iterations.resize(bsz, 0);
        sol.converged.resize(bsz, false);
        sol.kkt_residual.resize(bsz, 0.0);
        sol.stop.resize(bsz, StopReason::default());
        let model = &self.model;
        let opts = &self.options;
        let run = |i: usize, ws: &mut Workspace, x: &mut [f64], u: &mut [f64]| -> Stats {
            let p = batch.problem(i, t, nx, nu);
            ilqr::solve_one(model, opts, ws, &p, x, u, None)
        };
        if bsz == 1 {
            let s = run(0, &mut self.workspaces[0], &mut sol.x, &mut sol.u);
            sol.cost[0] = s.cost;
            sol.iterations[0] = s.iterations;
            sol.converged[0] = s.converged;
            sol.kkt_residual[0] = s.kkt_residual;
            sol.stop[0] = s.stop;
            return;
        }
        self.workspaces[..bsz]
            .par_iter_mut()
            .zip(sol.x.par_chunks_mut(t * nx))
            .zip(sol.u.par_chunks_mut(t * nu))
            .zip(sol.cost.par_iter_mut())
            .zip(sol.iterations.par_iter_mut())
            .zip(sol.converged.par_iter_mut())
            .zip(sol.kkt_residual.par_iter_mut())
            .zip(sol.stop.par_iter_mut())
            .enumerate()
            .for_each(|(i, (((((((ws, x), u), c), it), cv), kkt), stop))| {
                let s = run(i, ws, x, u);
                *c = s.cost;
                *it = s.iterations;
                *cv = s.converged;
                *kkt = s.kkt_residual;
                *stop = s.stop;
            });
    }

    /// [`Backend::try_solve`] with an iteration trace per problem ([`IterationRecord`]s, in
    /// order). The problems run one after another; the solution is the same to the bit as
    /// without the trace.
    pub fn solve_traced(&mut self, batch: &Batch<'_>) -> Result<(Solution, Vec<Vec<IterationRecord>>), BackendError> {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        batch.check(t, nx, nu).map_err(BackendError::Shape)?;
        let bsz = batch.size;
        self.ensure_workspaces(bsz);
        let mut sol = Solution {
            x: vec![0.0; bsz * t * nx],
            u: vec![0.0; bsz * t * nu],
            ..Solution::default()
        };
        let mut traces = Vec::with_capacity(bsz);
        for i in 0..bsz {
            let p = batch.problem(i, t, nx, nu);
            let mut trace = Vec::new();
            let (x, u) = (&mut sol.x[i * t * nx..(i + 1) * t * nx], &mut sol.u[i * t * nu..(i + 1) * t * nu]);
            let s = ilqr::solve_one(&self.model, &self.options, &mut self.workspaces[i], &p, x, u, Some(&mut trace));
            sol.cost.push(s.cost);
            sol.iterations.push(s.iterations);
            sol.converged.push(s.converged);
            sol.kkt_residual.push(s.kkt_residual);
            sol.stop.push(s.stop);
            traces.push(trace);
        }
        Ok((sol, traces))
    }

    /// The KKT residual ([`Stats::kkt_residual`]) of every problem of `batch` at the controls
    /// `u` (B×T×nu; the states are rolled out from `x_init`): how a solution from any backend
    /// is checked for optimality.
    pub fn kkt_residuals(&mut self, batch: &Batch<'_>, u: &[f64]) -> Vec<f64> {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        if let Err(e) = batch.check(t, nx, nu) {
            panic!("Solver::kkt_residuals: {e}");
        }
        assert_eq!(u.len(), batch.size * t * nu, "Solver::kkt_residuals: u: expected B×T×nu entries");
        self.ensure_workspaces(batch.size);
        let model = &self.model;
        self.workspaces[..batch.size]
            .par_iter_mut()
            .enumerate()
            .map(|(i, ws)| {
                let p = batch.problem(i, t, nx, nu);
                ilqr::kkt_residual_at(model, ws, &p, &u[i * t * nu..(i + 1) * t * nu])
            })
            .collect()
    }

    /// Gradients of a loss `L` with respect to `C`, `c`, `x_init`, given the upstream
    /// gradients `grad_x = dL/dx*` (B×T×nx) and `grad_u = dL/du*` (B×T×nu) at the solution
    /// `sol` of `batch` (implicit differentiation, active bounds fixed, mode from the
    /// options).
    pub fn backward(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64]) -> Gradients {
        let mut g = Gradients::default();
        self.backward_into(batch, sol, grad_x, grad_u, &mut g);
        g
    }

    /// [`Solver::backward`] into a reusable [`Gradients`]. Panics when an input has the wrong
    /// length; [`Backend::try_backward`] returns the error instead.
    pub fn backward_into(
        &mut self,
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        out: &mut Gradients,
    ) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        if let Err(e) = check_backward(batch, sol, grad_x, grad_u, t, nx, nu) {
            panic!("Solver::backward: {e}");
        }
        self.backward_checked(batch, sol, grad_x, grad_u, out);
    }

    fn backward_checked(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64], out: &mut Gradients) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        let n = nx + nu;
        let bsz = batch.size;
        self.ensure_workspaces(bsz);
        out.cost_hess.resize(bsz * t * n * n, 0.0);
        out.cost_lin.resize(bsz * t * n, 0.0);
        out.x_init.resize(bsz * nx, 0.0);
        out.status.resize(bsz, GradStatus::Ok);
        let np = if self.options.grad_params { self.model.np() } else { 0 };
        // One parameter chunk per problem; without parameter gradients a one-entry scratch chunk
        // that the problems ignore (cleared below, its capacity kept: no allocation per call).
        let chunk = np.max(1);
        out.params.resize(bsz * chunk, 0.0);
        let model = &self.model;
        let mode = self.options.gradient;
        let run = |i: usize, ws: &mut Workspace, gcm: &mut [f64], gcv: &mut [f64], gx0: &mut [f64], gp: &mut [f64]| -> GradStatus {
            let ok = solution_ok(sol, i, t, nx, nu);
            if ok {
                let p = batch.problem(i, t, nx, nu);
                let xs = &sol.x[i * t * nx..(i + 1) * t * nx];
                let us = &sol.u[i * t * nu..(i + 1) * t * nu];
                let gx = &grad_x[i * t * nx..(i + 1) * t * nx];
                let gu = &grad_u[i * t * nu..(i + 1) * t * nu];
                backward::backward_one(model, mode, ws, &p, xs, us, gx, gu, gcm, gcv, gx0, gp);
            }
            mask_gradients(ok, [gcm, gcv, gx0, gp])
        };
        if bsz == 1 {
            let gp = if np > 0 { &mut out.params[..] } else { &mut out.params[..0] };
            out.status[0] = run(0, &mut self.workspaces[0], &mut out.cost_hess, &mut out.cost_lin, &mut out.x_init, gp);
        } else {
            self.workspaces[..bsz]
                .par_iter_mut()
                .zip(out.cost_hess.par_chunks_mut(t * n * n))
                .zip(out.cost_lin.par_chunks_mut(t * n))
                .zip(out.x_init.par_chunks_mut(nx))
                .zip(out.params.par_chunks_mut(chunk))
                .zip(out.status.par_iter_mut())
                .enumerate()
                .for_each(|(i, (((((ws, gcm), gcv), gx0), gp), st))| {
                    let gp = if np > 0 { gp } else { &mut gp[..0] };
                    *st = run(i, ws, gcm, gcv, gx0, gp)
                });
        }
        if np == 0 {
            out.params.clear();
        }
    }
}

impl<D: Dynamics> Backend for Solver<D> {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn horizon(&self) -> usize {
        self.horizon
    }

    fn dims(&self) -> (usize, usize) {
        (self.model.nx(), self.model.nu())
    }

    fn try_solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) -> Result<(), BackendError> {
        batch.check(self.horizon, self.model.nx(), self.model.nu()).map_err(BackendError::Shape)?;
        self.solve_checked(batch, sol);
        Ok(())
    }

    fn try_backward_into(
        &mut self,
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        out: &mut Gradients,
    ) -> Result<(), BackendError> {
        check_backward(batch, sol, grad_x, grad_u, self.horizon, self.model.nx(), self.model.nu())?;
        self.backward_checked(batch, sol, grad_x, grad_u, out);
        Ok(())
    }
}

/// Solve a batch whose problems each have their own dynamics (`models[i]` for problem `i`: one
/// mass per environment, per-problem parameters), and differentiate it when `upstream` holds
/// `(grad_x, grad_u)` (B×T×nx, B×T×nu). The problems run in parallel, each with a solver of its
/// own (allocated per call). Same results as [`Solver`] on each problem alone.
pub fn solve_each<D: Dynamics + Clone>(
    models: &[D],
    horizon: usize,
    options: &SolverOptions,
    batch: &Batch<'_>,
    upstream: Option<(&[f64], &[f64])>,
) -> (Solution, Option<Gradients>) {
    let b = batch.size;
    assert_eq!(models.len(), b, "solve_each: one model per problem");
    let (nx, nu) = (models[0].nx(), models[0].nu());
    let t = horizon;
    if let Err(e) = batch.check(t, nx, nu) {
        panic!("solve_each: {e}");
    }
    let parts: Vec<(Solution, Option<Gradients>)> = (0..b)
        .into_par_iter()
        .map(|i| {
            let one = batch.single(i, t, nx, nu);
            let mut solver = Solver::new(models[i].clone(), t, options.clone());
            let sol = solver.solve(&one);
            let g = upstream.map(|(gx, gu)| {
                solver.backward(&one, &sol, &gx[i * t * nx..(i + 1) * t * nx], &gu[i * t * nu..(i + 1) * t * nu])
            });
            (sol, g)
        })
        .collect();
    let mut sol = Solution::default();
    let mut grads = upstream.map(|_| Gradients::default());
    for (s, g) in parts {
        sol.x.extend(s.x);
        sol.u.extend(s.u);
        sol.cost.extend(s.cost);
        sol.iterations.extend(s.iterations);
        sol.converged.extend(s.converged);
        sol.kkt_residual.extend(s.kkt_residual);
        sol.stop.extend(s.stop);
        if let (Some(all), Some(g)) = (grads.as_mut(), g) {
            all.cost_hess.extend(g.cost_hess);
            all.cost_lin.extend(g.cost_lin);
            all.x_init.extend(g.x_init);
            all.params.extend(g.params);
            all.status.extend(g.status);
        }
    }
    (sol, grads)
}
