//! Nominal floating-point operation counts of one forward solve and one backward pass, for the
//! achieved GFLOP/s of `mpc bench`.
//!
//! The count is the *dense-equivalent* arithmetic of the algorithm the solver runs, stage by
//! stage, with the model's own operation counts ([`OpCounts`], from its expression DAG):
//!
//! * rollout (initial, and one per line-search trial): the model step, the control law
//!   `u = ū + α k + K (x − x̄)` and the stage cost `½ zᵀ C z + cᵀ z`;
//! * linearisation: the model's `linearize` (value, `A`, `B`);
//! * Riccati stage: `q = C z + c`, `Fᵀ P` and `Fᵀ P F` with `F = [A B]` dense, `Fᵀ p`, a
//!   Cholesky factorisation of `Q_uu` with one solve (the box-QP's unconstrained work), the
//!   feedback gains `K = −Q_uu⁻¹ Q_ux`, and the cost-to-go update `P = Q_xx + Kᵀ W + Q_xu K`,
//!   `p = q_x + Kᵀ w + Q_xu k`;
//! * backward pass: linearisation, the co-states, the same Riccati stages on the fixed active
//!   set (no box-QP; in exact mode with the weighted Hessian of the dynamics), the adjoint
//!   forward sweep and `dL/dC = ½ (d zᵀ + z dᵀ)`.
//!
//! An `a·b + c` counts as two operations, an elementary function as one (see [`OpCounts`]).
//! The solver skips exact zeros of `A` and `B` and iterates the box-QP on active bounds, so
//! the operations it executes differ from this count in both directions: the figure is the rate
//! at which the dense algorithm's work gets done, the figure of merit across solvers (a dense
//! peer does every one of these operations), not a hardware counter.

use mpc_runtime::OpCounts;

/// Sizes and model counts of one problem.
#[derive(Clone, Copy, Debug)]
pub(super) struct FlopModel {
    pub(super) nx: usize,
    pub(super) nu: usize,
    pub(super) horizon: usize,
    pub(super) ops: OpCounts,
}

impl FlopModel {
    fn n(&self) -> f64 {
        (self.nx + self.nu) as f64
    }

    /// Stages, and stages with a dynamics step (all but the last).
    fn stages(&self) -> (f64, f64) {
        (self.horizon as f64, self.horizon.saturating_sub(1) as f64)
    }

    /// One rollout: per stage the control law and the stage cost, and the step between stages.
    fn rollout(&self) -> f64 {
        let (nx, nu, n) = (self.nx as f64, self.nu as f64, self.n());
        let (t, t1) = self.stages();
        t * ((2.0 * nu * nx + 3.0 * nu) + (2.0 * n * n + 3.0 * n)) + t1 * self.ops.step as f64
    }

    /// The dynamics' part of one Riccati stage (dense `F = [A B]`): `Fᵀ P`, `Fᵀ P F`, `Fᵀ p`,
    /// and with `hess` the weighted Hessian added to `Q`.
    fn cost_to_go_of_dynamics(&self, hess: bool) -> f64 {
        let (nx, n) = (self.nx as f64, self.n());
        let h = if hess { self.ops.weighted_hessian as f64 + n * n } else { 0.0 };
        2.0 * n * nx * nx + 2.0 * n * n * nx + 2.0 * n * nx + h
    }

    /// The rest of one Riccati stage: `q = C z + c`, the Cholesky factorisation of `Q_uu` (nu³/3)
    /// with one solve (2 nu²), the gains (nx solves, 2 nu² nx) and the cost-to-go update
    /// `w = Q_uu k + q_u`, `p = q_x + Kᵀ w + Q_xu k`, `W = Q_uu K + Q_ux`, `P = Q_xx + Kᵀ W + Q_xu K`.
    fn stage_solve(&self) -> f64 {
        let (nx, nu, n) = (self.nx as f64, self.nu as f64, self.n());
        let q = 2.0 * n * n;
        let factor = nu * nu * nu / 3.0 + 2.0 * nu * nu + 2.0 * nu * nu * nx;
        let update = 2.0 * nu * nu + 4.0 * nu * nx + 2.0 * nu * nu * nx + 4.0 * nu * nx * nx;
        q + factor + update
    }

    /// One Riccati pass (`hess`: with the dynamics' weighted Hessians).
    fn riccati(&self, hess: bool) -> f64 {
        let (t, t1) = self.stages();
        t * self.stage_solve() + t1 * self.cost_to_go_of_dynamics(hess)
    }

    /// One forward solve: the initial rollout and `iterations` iterations of a linearisation, a
    /// Riccati pass (`ddp`: with the weighted Hessians) and `trials_per_iteration` rollouts.
    pub(super) fn forward(&self, iterations: f64, trials_per_iteration: f64, ddp: bool) -> f64 {
        let (_, t1) = self.stages();
        let per_iter = t1 * self.ops.linearize as f64 + self.riccati(ddp) + trials_per_iteration * self.rollout();
        self.rollout() + iterations * per_iter
    }

    /// One backward pass (implicit gradients); `exact` adds the dynamics' weighted Hessians.
    pub(super) fn backward(&self, exact: bool) -> f64 {
        let (nx, nu, n) = (self.nx as f64, self.nu as f64, self.n());
        let (t, t1) = self.stages();
        // Co-states λ_t = (C z + c)_x + Aᵀ λ_{t+1}.
        let costates = t * 2.0 * nx * n + t1 * 2.0 * nx * nx;
        // Adjoint sweep d_u = k + K d_x, d_x' = A d_x + B d_u; dL/dC = ½ (d zᵀ + z dᵀ).
        let sweep = t * (2.0 * nu * nx + 2.0 * n * n) + t1 * 2.0 * nx * n;
        t1 * self.ops.linearize as f64 + costates + self.riccati(exact) + sweep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Check the counts against the dense operations written out for nx = 2, nu = 1 (n = 3),
    /// T = 2 (one dynamics step), with model functions of 5, 7 and 11 operations.
    #[test]
    fn dense_counts_for_a_small_problem() {
        let m = FlopModel { nx: 2, nu: 1, horizon: 2, ops: OpCounts { step: 5, linearize: 7, weighted_hessian: 11 } };
        // Rollout: 2 × (control law 4 + 3, cost 18 + 9) + 1 step of 5.
        assert_eq!(m.rollout(), 2.0 * 34.0 + 5.0);
        // Dynamics part: FᵀP 24, FᵀPF 36, Fᵀp 12 (+ Hessian 11 + 9).
        assert_eq!(m.cost_to_go_of_dynamics(false), 72.0);
        assert_eq!(m.cost_to_go_of_dynamics(true), 92.0);
        // Stage: q 18, Cholesky 1/3 + solve 2 + gains 4, update 2 + 8 + 4 + 16.
        assert!((m.stage_solve() - (18.0 + 1.0 / 3.0 + 6.0 + 30.0)).abs() < 1e-12);
        let ric = 2.0 * m.stage_solve() + 72.0;
        let f = m.forward(5.0, 4.0, false);
        assert!((f - (73.0 + 5.0 * (7.0 + ric + 4.0 * 73.0))).abs() < 1e-9, "{f}");
        // Backward: linearise 7, co-states 2·12 + 8, Riccati, sweep 2·(4 + 18) + 12.
        let b = m.backward(false);
        assert!((b - (7.0 + 32.0 + ric + 56.0)).abs() < 1e-9, "{b}");
        assert!((m.backward(true) - b - 20.0).abs() < 1e-9);
    }
}
