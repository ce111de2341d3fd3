//! Per-problem scratch memory, allocated once per (horizon, nx, nu) and reused by every solve
//! and every iteration: nothing in the iLQR or gradient loops allocates.
//!
//! Grouped by job: the `Trajectories` the forward solve moves between, the problem's
//! per-stage `StageData`, the dynamics' `Linearization` along the iterate, the `Riccati`
//! pass's gains and cost-to-go, the backward pass's `Adjoint` quantities, and small
//! `Scratch` vectors. The CUDA templates keep the same short names (`x`, `u`, `k`, `kk`,
//! `p`, `pv`, ...) in their per-thread workspaces.

use super::aligned::Aligned;
use super::boxqp::BoxQp;
use super::lanes::TrialLanes;

/// The trajectories of the forward solve (states T×nx, controls T×nu each).
#[derive(Clone, Debug)]
pub(crate) struct Trajectories {
    /// The current iterate.
    pub x: Aligned<f64>,
    pub u: Aligned<f64>,
    /// The line search's trial.
    pub xt: Aligned<f64>,
    pub ut: Aligned<f64>,
    /// The best trial of the current line search.
    pub xb: Aligned<f64>,
    pub ub: Aligned<f64>,
    /// The best iterate seen (returned when the solve does not converge).
    pub xbest: Aligned<f64>,
    pub ubest: Aligned<f64>,
}

/// The problem's per-stage data, loaded once per solve.
#[derive(Clone, Debug)]
pub(crate) struct StageData {
    /// Absolute control bounds per stage (T×nu), ±inf when unbounded.
    pub lo: Aligned<f64>,
    pub hi: Aligned<f64>,
    /// Which stage cost Hessians are diagonal (T).
    pub cdiag: Vec<bool>,
}

/// The dynamics' Jacobians along the iterate (T×nx×nx, T×nx×nu; the last stage is unused).
#[derive(Clone, Debug)]
pub(crate) struct Linearization {
    pub a: Aligned<f64>,
    pub b: Aligned<f64>,
}

/// The Riccati (backward) pass of the forward solve: its results, the gains, and its
/// per-stage working matrices.
#[derive(Clone, Debug)]
pub(crate) struct Riccati {
    /// Feed-forward steps `k` (T×nu) and feedback gains `K` (T×nu×nx).
    pub k: Aligned<f64>,
    pub kk: Aligned<f64>,
    /// `K` transposed per stage (T×nx×nu), for the one-problem trial rollout (one vector
    /// operation per state there), and whether it is that of the gains in `kk` (transposed
    /// on that rollout's demand: the line search with step sizes in lanes reads `kk`).
    pub kkt: Aligned<f64>,
    pub kkt_current: bool,
    /// Cost-to-go Hessian `P` (nx×nx) and gradient `p` (nx).
    pub p: Aligned<f64>,
    pub pv: Aligned<f64>,
    /// Stage Q-function Hessian and gradient over z = [x; u] (n×n, n).
    pub qzz: Aligned<f64>,
    pub qz: Aligned<f64>,
    /// `F = [A B]` (nx rows of [`row_stride`]`(nx + nu)`: zero-padded, so a row is whole
    /// vectors) and `P·F` in the same layout.
    pub f: Aligned<f64>,
    pub pf: Aligned<f64>,
    /// Row accumulator of the cost-to-go products when `nx + nu > 32` (n; else a stack array).
    pub acc: Aligned<f64>,
    /// Regularised `Q_uu`, and the box bounds of the control step.
    pub quu: Aligned<f64>,
    pub dlo: Aligned<f64>,
    pub dhi: Aligned<f64>,
    /// Right-hand sides for the gain solves (nu×(nx+1)) and a matrix copy (nu×nu).
    pub rhs: Aligned<f64>,
    pub mat: Aligned<f64>,
    /// `W = Q_uu K + Q_ux` (nu×nx) and `w = Q_uu k + q_u` (nu).
    pub w: Aligned<f64>,
    pub wv: Aligned<f64>,
    /// `Q_xu` transposed (nu×nx), for the row loops of the cost-to-go update.
    pub qxut: Aligned<f64>,
}

/// The implicit-differentiation backward pass and the KKT residual.
#[derive(Clone, Debug)]
pub(crate) struct Adjoint {
    /// Co-states λ_t (T×nx), a weighted Hessian Σ λ_i ∇²f_i (n×n), adjoint trajectory d_t (T×n).
    pub lam: Aligned<f64>,
    pub hess: Aligned<f64>,
    pub dz: Aligned<f64>,
    /// Parameter Jacobian (nx×np) and mixed Hessian (n×np): sized on the first backward pass
    /// that asks for parameter gradients.
    pub fp: Vec<f64>,
    pub hp: Vec<f64>,
}

/// Small vectors every pass borrows.
#[derive(Clone, Debug)]
pub(crate) struct Scratch {
    /// z (n), dx (nx), x_next (nx), an index list (nu).
    pub z: Aligned<f64>,
    pub dx: Aligned<f64>,
    pub xn: Aligned<f64>,
    pub idx: Vec<usize>,
    /// The box-QP solver's own scratch.
    pub qp: BoxQp,
}

/// Everything one problem of the batch needs while it is solved or differentiated.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(crate) horizon: usize,
    pub(crate) nx: usize,
    pub(crate) nu: usize,
    pub(crate) traj: Trajectories,
    pub(crate) data: StageData,
    pub(crate) lin: Linearization,
    pub(crate) ric: Riccati,
    pub(crate) adj: Adjoint,
    pub(crate) scratch: Scratch,
    /// The line search's step sizes in lanes (`lanes::trials`).
    pub(crate) trials: TrialLanes,
}

impl Workspace {
    /// Scratch space for problems of horizon `horizon` with `nx` states and `nu` controls.
    pub fn new(horizon: usize, nx: usize, nu: usize) -> Self {
        let t = horizon;
        let n = nx + nu;
        let v = |len: usize| Aligned::new(len, 0.0);
        Self {
            horizon,
            nx,
            nu,
            traj: Trajectories {
                x: v(t * nx),
                u: v(t * nu),
                xt: v(t * nx),
                ut: v(t * nu),
                xb: v(t * nx),
                ub: v(t * nu),
                xbest: v(t * nx),
                ubest: v(t * nu),
            },
            data: StageData { lo: v(t * nu), hi: v(t * nu), cdiag: vec![false; t] },
            lin: Linearization { a: v(t * nx * nx), b: v(t * nx * nu) },
            ric: Riccati {
                k: v(t * nu),
                kk: v(t * nu * nx),
                kkt: v(t * nx * nu),
                kkt_current: false,
                p: v(nx * nx),
                pv: v(nx),
                qzz: v(n * n),
                qz: v(n),
                f: v(nx * row_stride(n)),
                pf: v(nx * row_stride(n)),
                acc: v(if n > 32 { n } else { 0 }),
                quu: v(nu * nu),
                dlo: v(nu),
                dhi: v(nu),
                rhs: v(nu * (nx + 1)),
                mat: v(nu * nu),
                w: v(nu * nx),
                wv: v(nu),
                qxut: v(nu * nx),
            },
            adj: Adjoint { lam: v(t * nx), hess: v(n * n), dz: v(t * n), fp: Vec::new(), hp: Vec::new() },
            scratch: Scratch { z: v(n), dx: v(nx), xn: v(nx), idx: vec![0; nu], qp: BoxQp::new(nu) },
            trials: TrialLanes::new(t, nx, nu),
        }
    }

    /// Whether this workspace fits problems of these sizes.
    pub fn fits(&self, horizon: usize, nx: usize, nu: usize) -> bool {
        self.horizon == horizon && self.nx == nx && self.nu == nu
    }
}

/// The stride of the zero-padded rows of `F = [A B]` and `P·F` for `n = nx + nu`: `n` rounded up
/// to whole 8-wide vectors up to 32 (the row accumulator's sizes), else `n`.
#[inline(always)]
pub(crate) fn row_stride(n: usize) -> usize {
    if n <= 32 { n.div_ceil(8) * 8 } else { n }
}

/// `with_row_acc!(ws, n, acc => expr)`: evaluate `expr` with `acc` a row accumulator of at
/// least `n` entries: a stack array for `n ≤ 32` (which, the sizes being constants after
/// inlining, lives in vector registers), else `ws.ric.acc`. (A macro, not a closure: a closure
/// would be compiled outside the instruction-set builds and not inlined.)
macro_rules! with_row_acc {
    ($ws:ident, $n:expr, $acc:ident => $e:expr) => {
        if $n <= 16 {
            let $acc = &mut [0.0f64; 16];
            $e
        } else if $n <= 32 {
            let $acc = &mut [0.0f64; 32];
            $e
        } else {
            let mut owned = std::mem::take(&mut $ws.ric.acc);
            let $acc = &mut owned[..];
            let r = $e;
            $ws.ric.acc = owned;
            r
        }
    };
}
pub(crate) use with_row_acc;
