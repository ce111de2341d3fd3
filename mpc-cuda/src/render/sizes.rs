//! Per-problem workspace and state lengths of the kernels, and the round bound of the three-stage layout.

use super::{KernelKind, RenderedKernel};
use mpc_runtime::solver::SolverOptions;

/// Per-problem iteration state of the three-stage layout: `(reals, ints)` per problem (the
/// layout is in `templates/ilqr_staged.cu.tera`, which checks this count at compile time).
pub fn staged_state_len(nx: usize, nu: usize, horizon: usize, line_search_steps: usize) -> (usize, usize) {
    let (t, nls) = (horizon, line_search_steps);
    let ndyn = if t > 1 { t - 1 } else { 1 };
    let reals = 2 * t * nx + 2 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx + nls * t * (nx + nu) + 2 * nls + 6;
    (reals, 3)
}

/// The T-dependent part of the single-launch solve kernel's per-problem workspace, in global
/// memory (reals per problem; `templates/ilqr_solve.cu.tera` binds it and checks this count
/// at compile time): bounds, four state and four control trajectories, the Jacobians and the
/// gains. What stays in the thread's local memory does not grow with T.
pub fn solve_work_len(nx: usize, nu: usize, horizon: usize) -> usize {
    let t = horizon;
    let ndyn = if t > 1 { t - 1 } else { 1 };
    2 * t * nu + 4 * t * nx + 4 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx
}

/// The backward kernel's T-dependent workspace in global memory (reals per problem; checked by
/// `templates/ilqr_backward.cu.tera`): the Jacobians and the gains.
pub fn backward_work_len(nx: usize, nu: usize, horizon: usize) -> usize {
    let t = horizon;
    let ndyn = if t > 1 { t - 1 } else { 1 };
    ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx
}

/// Reals per problem of kernel `k`'s global workspace (`work` argument), 0 for kernels without.
pub fn work_len(k: &RenderedKernel) -> usize {
    match k.kind {
        KernelKind::Solve => solve_work_len(k.nx, k.nu, k.horizon),
        KernelKind::Backward(_) => backward_work_len(k.nx, k.nu, k.horizon),
        KernelKind::Stage(_) | KernelKind::SolveWarp => 0,
    }
}

/// Workspace of the warp-per-problem kernel in global memory: `(reals, ints)` per problem (the
/// layout is in `templates/ilqr_solve_warp.cu.tera`, which checks this count at compile time).
pub fn warp_state_len(nx: usize, nu: usize, horizon: usize, line_search_steps: usize) -> (usize, usize) {
    let (t, nls, nz) = (horizon, line_search_steps, nx + nu);
    let ndyn = if t > 1 { t - 1 } else { 1 };
    let reals = 2 * t * nx + 2 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx + nls * t * (nx + nu)
        + 2 * nx * nx + nx + nx * nu + nz * nz + nz + nu * nx + nu + nu * nu;
    (reals, nu + 1)
}

/// Upper bound on the rounds of the three-stage layout: every round either ends an iteration
/// (at most K) or raises mu (at most the steps from 0 past `reg_max` per iteration), plus one.
pub(super) fn max_rounds(s: &SolverOptions) -> usize {
    let mut bumps = 0usize;
    let mut mu = 0.0f64;
    while mu <= s.reg_max && bumps < 10_000 {
        mu = s.raise_regularisation(mu);
        bumps += 1;
    }
    s.max_iters.saturating_mul(bumps + 2).saturating_add(1)
}
