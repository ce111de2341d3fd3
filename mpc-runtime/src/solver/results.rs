//! What a solve returns: the [`Solution`](crate::solver::Solution) of a batch, per-problem [`Stats`](crate::solver::Stats), and the
//! [`Gradients`](crate::solver::Gradients) of the backward pass.

use super::{GradStatus, NonFinite, StopReason, sci};

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
    /// First-order optimality of each returned solution (see [`Stats::kkt_residual`](crate::solver::Stats::kkt_residual)); empty
    /// when the backend does not compute it (fill it with [`Solver::kkt_residuals`](crate::solver::Solver::kkt_residuals)).
    pub kkt_residual: Vec<f64>,
    /// Why each problem stopped; empty when the backend does not report it.
    pub stop: Vec<StopReason>,
    /// What the solve found out about the batch's cost Hessians, for the backward pass of the
    /// same batch; nothing ([`Default`]) where a solution is made otherwise.
    pub cost_structure: CostStructure,
}

/// Which stage cost Hessians of a batch a solve found diagonal, kept with its [`Solution`] so
/// that [`Solver::backward`](crate::solver::Solver::backward) of that batch need not read every
/// entry of `C` again to find out: at B = 256, T = 50 skipping that second reading saved 14–17 % of the
/// backward pass (`bench/results/cpu-structure-2026-12-06.md`).
///
/// It describes the very array it was taken from (the address and length of the batch's
/// `cost_hess`) and is used only for that array; as the gradients themselves, it assumes the
/// array was not changed between the solve and the backward pass. Opaque; solutions compare
/// equal whatever it holds.
#[derive(Clone, Debug, Default)]
pub struct CostStructure {
    /// Address and length of the `cost_hess` it describes.
    source: (usize, usize),
    /// Per problem and stage: [`CostStructure::KNOWN`], [`CostStructure::DIAGONAL`], [`CostStructure::COMPACT`] bits.
    flags: Vec<u8>,
}

impl PartialEq for CostStructure {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl CostStructure {
    /// The stage was tested.
    pub(crate) const KNOWN: u8 = 1;
    /// Every off-diagonal entry of `C_t` is `±0`.
    pub(crate) const DIAGONAL: u8 = 2;
    /// Every off-diagonal entry of `C_t` is `+0`.
    pub(crate) const COMPACT: u8 = 4;

    /// Nothing known yet about `cost_hess`, `stages` (problems in lane groups × T) of them; the flags for the solve
    /// to fill.
    pub(crate) fn start(&mut self, cost_hess: &[f64], stages: usize) -> &mut [u8] {
        self.source = (cost_hess.as_ptr() as usize, cost_hess.len());
        self.flags.clear();
        self.flags.resize(stages, 0);
        &mut self.flags
    }

    /// The flags of every stage, where they describe `cost_hess` (`stages` of them).
    pub(crate) fn of(&self, cost_hess: &[f64], stages: usize) -> Option<&[u8]> {
        let same = self.source == (cost_hess.as_ptr() as usize, cost_hess.len()) && self.flags.len() == stages;
        same.then_some(&self.flags[..])
    }

    /// One stage's flags from its `(diagonal, compact)` test.
    pub(crate) fn flag(diag: bool, compact: bool) -> u8 {
        Self::KNOWN | if diag { Self::DIAGONAL } else { 0 } | if compact { Self::COMPACT } else { 0 }
    }
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
    /// [`SolverOptions::grad_params`](crate::solver::SolverOptions::grad_params) is set.
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

/// The per-problem result fields of a [`Solution`] (cost, iterations, convergence, KKT
/// residual, stop reason), borrowed to be written from a problem's [`Stats`]: the one writer of
/// the solver's per-problem and lane paths.
pub(crate) struct StatsOut<'a> {
    cost: &'a mut [f64],
    iterations: &'a mut [usize],
    converged: &'a mut [bool],
    kkt_residual: &'a mut [f64],
    stop: &'a mut [StopReason],
}

impl<'a> StatsOut<'a> {
    /// The fields given one by one (so that the caller can borrow the solution's other fields).
    pub(crate) fn of_fields(
        cost: &'a mut [f64],
        iterations: &'a mut [usize],
        converged: &'a mut [bool],
        kkt_residual: &'a mut [f64],
        stop: &'a mut [StopReason],
    ) -> Self {
        Self { cost, iterations, converged, kkt_residual, stop }
    }

    /// Problem `i`'s results.
    pub(crate) fn set(&mut self, i: usize, s: Stats) {
        self.cost[i] = s.cost;
        self.iterations[i] = s.iterations;
        self.converged[i] = s.converged;
        self.kkt_residual[i] = s.kkt_residual;
        self.stop[i] = s.stop;
    }

    /// In parallel over the problems: `f(i, workspace, extra_i)` gives problem `i`'s results
    /// (`extra`: a per-problem iterator, e.g. its solution rows), the problems claimed one at a
    /// time by workers on a workspace of `pool` each ([`super::runs::for_each_claimed`]).
    pub(crate) fn for_each_problem<W: Send, E: Send>(
        self,
        pool: &mut Vec<W>,
        extra: impl DoubleEndedIterator<Item = E> + ExactSizeIterator + Send,
        f: impl Fn(usize, &mut W, E) -> Stats + Sync,
    ) {
        let items = extra
            .zip(self.cost.iter_mut())
            .zip(self.iterations.iter_mut())
            .zip(self.converged.iter_mut())
            .zip(self.kkt_residual.iter_mut())
            .zip(self.stop.iter_mut());
        super::runs::for_each_claimed(pool, items, |i, w, (((((e, c), it), cv), kkt), stop)| {
            let s = f(i, w, e);
            *c = s.cost;
            *it = s.iterations;
            *cv = s.converged;
            *kkt = s.kkt_residual;
            *stop = s.stop;
        });
    }
}
