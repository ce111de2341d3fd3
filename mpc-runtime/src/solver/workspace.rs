//! Per-problem scratch memory, allocated once per (horizon, nx, nu) and reused by every solve
//! and every iteration: nothing in the iLQR or gradient loops allocates.

use super::boxqp::BoxQp;

/// Everything one problem of the batch needs while it is solved or differentiated.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(crate) horizon: usize,
    pub(crate) nx: usize,
    pub(crate) nu: usize,
    /// Current iterate (T×nx, T×nu).
    pub(crate) x: Vec<f64>,
    pub(crate) u: Vec<f64>,
    /// Line-search trial and the best trial so far.
    pub(crate) xt: Vec<f64>,
    pub(crate) ut: Vec<f64>,
    pub(crate) xb: Vec<f64>,
    pub(crate) ub: Vec<f64>,
    /// Best iterate seen (kept when the solve does not converge).
    pub(crate) xbest: Vec<f64>,
    pub(crate) ubest: Vec<f64>,
    /// Absolute control bounds per stage (T×nu), ±inf when unbounded.
    pub(crate) lo: Vec<f64>,
    pub(crate) hi: Vec<f64>,
    /// Which stage cost Hessians are diagonal (T), set once per solve.
    pub(crate) cdiag: Vec<bool>,
    /// Dynamics Jacobians per stage (T×nx×nx, T×nx×nu); the last stage is unused.
    pub(crate) a: Vec<f64>,
    pub(crate) b: Vec<f64>,
    /// Feed-forward steps (T×nu) and feedback gains (T×nu×nx).
    pub(crate) k: Vec<f64>,
    pub(crate) kk: Vec<f64>,
    /// Cost-to-go Hessian and gradient (nx×nx, nx).
    pub(crate) p: Vec<f64>,
    pub(crate) pv: Vec<f64>,
    /// Stage Q-function Hessian and gradient over z (n×n, n).
    pub(crate) qzz: Vec<f64>,
    pub(crate) qz: Vec<f64>,
    /// P·A and P·B.
    pub(crate) pa: Vec<f64>,
    pub(crate) pb: Vec<f64>,
    /// Aᵀ·P (nx×nx) and Bᵀ·P (nu×nx).
    pub(crate) atp: Vec<f64>,
    pub(crate) btp: Vec<f64>,
    /// Regularised Q_uu, and the box bounds of the control step.
    pub(crate) quu: Vec<f64>,
    pub(crate) dlo: Vec<f64>,
    pub(crate) dhi: Vec<f64>,
    /// Right-hand sides for the gain solves (nu×(nx+1)) and a matrix copy (nu×nu).
    pub(crate) rhs: Vec<f64>,
    pub(crate) mat: Vec<f64>,
    /// `W = Q_uu K + Q_ux` (nu×nx) and `w = Q_uu k + q_u` (nu).
    pub(crate) w: Vec<f64>,
    pub(crate) wv: Vec<f64>,
    /// Scratch vectors: z (n), dx (nx), x_next (nx), index list (nu).
    pub(crate) z: Vec<f64>,
    pub(crate) dx: Vec<f64>,
    pub(crate) xn: Vec<f64>,
    pub(crate) idx: Vec<usize>,
    /// Co-states λ_t (T×nx), weighted Hessian (n×n), adjoint trajectory d_t (T×n).
    pub(crate) lam: Vec<f64>,
    pub(crate) hess: Vec<f64>,
    pub(crate) dz: Vec<f64>,
    /// Parameter Jacobian (nx×np) and mixed Hessian (n×np): sized on the first backward pass
    /// that asks for parameter gradients.
    pub(crate) fp: Vec<f64>,
    pub(crate) hp: Vec<f64>,
    /// Box-QP scratch.
    pub(crate) qp: BoxQp,
}

impl Workspace {
    /// Scratch space for problems of horizon `horizon` with `nx` states and `nu` controls.
    pub fn new(horizon: usize, nx: usize, nu: usize) -> Self {
        let t = horizon;
        let n = nx + nu;
        let v = |len: usize| vec![0.0; len];
        Self {
            horizon,
            nx,
            nu,
            x: v(t * nx),
            u: v(t * nu),
            xt: v(t * nx),
            ut: v(t * nu),
            xb: v(t * nx),
            ub: v(t * nu),
            xbest: v(t * nx),
            ubest: v(t * nu),
            lo: v(t * nu),
            hi: v(t * nu),
            cdiag: vec![false; t],
            a: v(t * nx * nx),
            b: v(t * nx * nu),
            k: v(t * nu),
            kk: v(t * nu * nx),
            p: v(nx * nx),
            pv: v(nx),
            qzz: v(n * n),
            qz: v(n),
            pa: v(nx * nx),
            pb: v(nx * nu),
            atp: v(nx * nx),
            btp: v(nu * nx),
            quu: v(nu * nu),
            dlo: v(nu),
            dhi: v(nu),
            rhs: v(nu * (nx + 1)),
            mat: v(nu * nu),
            w: v(nu * nx),
            wv: v(nu),
            z: v(n),
            dx: v(nx),
            xn: v(nx),
            idx: vec![0; nu],
            lam: v(t * nx),
            hess: v(n * n),
            dz: v(t * n),
            fp: Vec::new(),
            hp: Vec::new(),
            qp: BoxQp::new(nu),
        }
    }

    /// Whether this workspace fits problems of these sizes.
    pub fn fits(&self, horizon: usize, nx: usize, nu: usize) -> bool {
        self.horizon == horizon && self.nx == nx && self.nu == nu
    }
}
