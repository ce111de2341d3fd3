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

mod aligned;
pub mod arith;
pub mod backward;
mod batch;
mod each;
pub mod boxqp;
pub mod ilqr;
pub(crate) mod isa;
mod kkt;
mod lanes;
#[cfg(test)]
mod test_models;
pub mod linalg;
mod options;
mod riccati;
mod rollout;
mod results;
mod runs;
mod status;
mod trace;
pub mod workspace;

use crate::backend::{Backend, BackendError, BackendKind, check_backward};
use crate::model::Dynamics;
pub use batch::{Batch, Bound};
pub use each::SolveEach;
pub(crate) use batch::ProblemRef;
pub use options::{ACTIVE_TOL, GradientMode, Lanes, LineSearchRule, Method, SolverOptions};
pub use results::{CostStructure, Gradients, Solution, Stats};
use results::StatsOut;
use status::mask_gradients_known;
pub use status::{GradStatus, NonFinite, STOP_CODES, StopReason, mask_gradients, solution_ok};
pub use trace::{IterationRecord, format_trace};
pub(crate) use trace::sci;
pub use workspace::Workspace;

/// Size of a batch's `dL/dC` from which the lane backward pass writes it with non-temporal
/// stores, where they pay ([`streaming_stores_pay`]): beyond what a 2-core share of a last-level
/// cache keeps (at T = 50, K = 5 on an AVX-512 host: B = 64, 6.5 MB, 1.75 against 1.85 ms;
/// B = 256, 26 MB, 6.4 against 7.2 ms).
const STREAM_MIN_BYTES: usize = 4 << 20;

/// Whether non-temporal stores write a large output faster than ordinary ones on this CPU: not
/// on AMD's (and Hygon's) cores, whose ordinary stores of whole lines stream as fast or faster
/// (`mpc bench`'s memory limit on a 2-core Zen 4 share: ordinary 29.4 / 49.6 GB/s against
/// non-temporal 19.6 / 38.7 GB/s on one / two cores; the B = 256, T = 50 backward pass 4.03–4.11
/// against 4.45–4.51 ms, and at B = 1024, 80 MB of `dL/dC`, 15.2 against 15.5–16.2 ms:
/// `bench/results/cpu-2026-12-05-amd-stores.md`); elsewhere they do (the figures of
/// [`STREAM_MIN_BYTES`]). Read once (CPUID), then cached.
fn streaming_stores_pay() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static PAY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PAY.get_or_init(|| {
            // SAFETY: CPUID leaf 0 exists on every x86-64 CPU (the call is safe in newer Rust).
            #[allow(unused_unsafe)]
            let r = unsafe { std::arch::x86_64::__cpuid(0) };
            let mut vendor = [0u8; 12];
            for (k, w) in [r.ebx, r.edx, r.ecx].into_iter().enumerate() {
                vendor[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
            }
            !(&vendor == b"AuthenticAMD" || &vendor == b"HygonGenuine")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A configured batched iLQR solver for dynamics `D` and horizon `T`.
pub struct Solver<D: Dynamics> {
    model: D,
    horizon: usize,
    options: SolverOptions,
    workspaces: Vec<Workspace>,
    /// One per group of [`lanes::LANES`] problems (SIMD across problems).
    lane_workspaces: Vec<lanes::LaneWorkspace>,
    lane_stats: Vec<Stats>,
    /// Per problem: not done by the lane backward pass (redo it per problem).
    lane_redo: Vec<bool>,
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
        Self { model, horizon, options, workspaces: Vec::new(), lane_workspaces: Vec::new(), lane_stats: Vec::new(), lane_redo: Vec::new() }
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

    /// Lane workspaces for `groups` lane groups claimed by the threads ([`runs::workers`]), one
    /// per worker: a group's scratch (Jacobians, gains, packed costs: ~1 MB at T = 50) stays in
    /// the caches for the worker's next group instead of a cold workspace per group.
    fn ensure_lane_workspaces(&mut self, groups: usize) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        runs::ensure_pool(&mut self.lane_workspaces, runs::workers(groups), |w| w.fits(t, nx, nu), || lanes::LaneWorkspace::new(t, nx, nu));
    }

    /// One-problem workspaces for `b` problems claimed by the threads
    /// ([`runs::for_each_claimed`]), one per worker.
    fn ensure_workspaces(&mut self, b: usize) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        runs::ensure_pool(&mut self.workspaces, runs::workers(b), |w| w.fits(t, nx, nu), || Workspace::new(t, nx, nu));
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
        crate::pages::resize(&mut sol.x, bsz * t * nx, 0.0);
        crate::pages::resize(&mut sol.u, bsz * t * nu, 0.0);
        sol.cost.resize(bsz, 0.0);
        sol.iterations.resize(bsz, 0);
        sol.converged.resize(bsz, false);
        sol.kkt_residual.resize(bsz, 0.0);
        sol.stop.resize(bsz, StopReason::default());
        let nl = if lanes::lanes_apply(&self.model, &self.options) { lanes::lane_count(bsz, self.options.lanes) } else { 0 };
        // What the lane groups find out about the cost Hessians, for the backward pass.
        let structure = sol.cost_structure.start(batch.cost_hess, nl * t);
        // Problems 0..nl in lane groups, the others one by one: disjoint parts of the solution.
        let (xl, xr) = sol.x.split_at_mut(nl * t * nx);
        let (ul, ur) = sol.u.split_at_mut(nl * t * nu);
        let (cl, cr) = sol.cost.split_at_mut(nl);
        let (il, ir) = sol.iterations.split_at_mut(nl);
        let (vl, vr) = sol.converged.split_at_mut(nl);
        let (kl, kr) = sol.kkt_residual.split_at_mut(nl);
        let (sl, sr) = sol.stop.split_at_mut(nl);
        if nl > 0 {
            self.solve_lanes(&batch.range(0, nl, t, nx, nu), xl, ul, StatsOut::of_fields(cl, il, vl, kl, sl), structure);
        }
        if nl < bsz {
            self.solve_one_by_one(&batch.range(nl, bsz, t, nx, nu), xr, ur, StatsOut::of_fields(cr, ir, vr, kr, sr));
        }
    }

    /// Every problem of `batch` on its own, in parallel; solutions into `x` (B×T×nx), `u`
    /// (B×T×nu) and `out`.
    fn solve_one_by_one(&mut self, batch: &Batch<'_>, x: &mut [f64], u: &mut [f64], mut out: StatsOut<'_>) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        let bsz = batch.size;
        self.ensure_workspaces(bsz);
        let model = &self.model;
        let opts = &self.options;
        let run = |i: usize, ws: &mut Workspace, x: &mut [f64], u: &mut [f64]| -> Stats {
            let p = batch.problem(i, t, nx, nu);
            ilqr::solve_one(model, opts, ws, &p, x, u, None)
        };
        if bsz == 1 {
            let s = run(0, &mut self.workspaces[0], x, u);
            out.set(0, s);
            return;
        }
        let xu = x.chunks_mut(t * nx).zip(u.chunks_mut(t * nu));
        out.for_each_problem(&mut self.workspaces, xu, |i, ws, (x, u)| run(i, ws, x, u));
    }

    /// The batch in groups of [`lanes::LANES`] problems solved in lock step (same results as
    /// one by one), then each problem's KKT residual where the options ask for it; solutions
    /// into `x` (B×T×nx), `u` (B×T×nu) and `out`.
    /// Each problem's cost structure goes to `structure` (B × T, [`CostStructure`]).
    fn solve_lanes(&mut self, batch: &Batch<'_>, x: &mut [f64], u: &mut [f64], mut out: StatsOut<'_>, structure: &mut [u8]) {
        let (t, nx, nu) = (self.horizon, self.model.nx(), self.model.nu());
        let (bsz, ln) = (batch.size, lanes::LANES);
        self.ensure_lane_workspaces(bsz.div_ceil(ln));
        if self.options.report_kkt {
            self.ensure_workspaces(bsz);
        }
        self.lane_stats.resize(bsz, Stats::default());
        let (model, opts) = (&self.model, &self.options);
        let groups = x
            .chunks_mut(ln * t * nx)
            .zip(u.chunks_mut(ln * t * nu))
            .zip(self.lane_stats[..bsz].chunks_mut(ln))
            .zip(structure.chunks_mut(ln * t));
        runs::for_each_claimed(&mut self.lane_workspaces, groups, |k, ws, (((x, u), stats), structure)| {
            let (i0, g) = (k * ln, stats.len());
            let probs: [ProblemRef<'_>; lanes::LANES] = std::array::from_fn(|l| batch.problem((i0 + l).min(bsz - 1), t, nx, nu));
            lanes::solve_lanes(model, opts, ws, &probs[..g], x, u, stats, Some(structure));
        });
        let stats = &self.lane_stats;
        if !opts.report_kkt {
            for (i, s) in stats[..bsz].iter().enumerate() {
                out.set(i, *s);
            }
            return;
        }
        let us = &*u;
        out.for_each_problem(&mut self.workspaces, std::iter::repeat_n((), bsz), |i, ws, ()| {
            let mut s = stats[i];
            // As `ilqr::solve_one`: the residual of every returned solution but one whose
            // initial rollout was already non-finite.
            let initial = matches!(s.stop, StopReason::NonFinite(NonFinite::Rollout | NonFinite::Cost));
            if opts.report_kkt && !initial {
                let p = batch.problem(i, t, nx, nu);
                s.kkt_residual = kkt::kkt_residual_at(model, ws, &p, &us[i * t * nu..(i + 1) * t * nu]);
                if !s.kkt_residual.is_finite() && !s.stop.non_finite() {
                    s.stop = StopReason::NonFinite(NonFinite::Residual);
                }
                s.converged = s.stop.converged();
            }
            s
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
            let s = ilqr::solve_one(&self.model, &self.options, &mut self.workspaces[0], &p, x, u, Some(&mut trace));
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
        let mut out = vec![0.0; batch.size];
        runs::for_each_claimed(&mut self.workspaces, out.iter_mut(), |i, ws, r| {
            let p = batch.problem(i, t, nx, nu);
            *r = kkt::kkt_residual_at(model, ws, &p, &u[i * t * nu..(i + 1) * t * nu]);
        });
        out
    }

    /// Gradients of a loss `L` with respect to `C`, `c`, `x_init`, given the upstream
    /// gradients `grad_x = dL/dx*` (B×T×nx) and `grad_u = dL/du*` (B×T×nu) at the solution
    /// `sol` of `batch` (implicit differentiation, active bounds fixed, mode from the
    /// options). Where `sol` comes from a CPU solve of this very `cost_hess` array, which stage
    /// Hessians are diagonal is taken from it ([`CostStructure`]) rather than read again.
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
        crate::pages::resize(&mut out.cost_hess, bsz * t * n * n, 0.0);
        crate::pages::resize(&mut out.cost_lin, bsz * t * n, 0.0);
        crate::pages::resize(&mut out.x_init, bsz * nx, 0.0);
        out.status.resize(bsz, GradStatus::Ok);
        let np = if self.options.grad_params { self.model.np() } else { 0 };
        // One parameter chunk per problem; without parameter gradients a one-entry scratch chunk
        // that the problems ignore (cleared below, its capacity kept: no allocation per call).
        let chunk = np.max(1);
        out.params.resize(bsz * chunk, 0.0);
        let mode = self.options.gradient;
        // Groups of problems in lock step first where they apply; `redo[i]`: problem `i` was not
        // (or not fully) done there.
        self.lane_redo.clear();
        self.lane_redo.resize(bsz, true);
        let ln = lanes::LANES;
        // Problems 0..nl in lane groups ([`lanes::lane_count`], as the forward solve).
        let nl = if lanes::backward_applies(&self.model, mode, np) { lanes::lane_count(bsz, self.options.lanes) } else { 0 };
        if nl > 0 {
            self.ensure_lane_workspaces(nl.div_ceil(ln));
        }
        let model = &self.model;
        // The cost Hessians' structure as the solve found it, where `sol` is this batch's and
        // records it for every lane problem.
        let known = sol.cost_structure.of(batch.cost_hess, nl * t).filter(|f| f.iter().all(|&v| v & CostStructure::KNOWN != 0));
        if nl > 0 {
            // `dL/dC` far larger than the caches goes to memory with non-temporal stores, on
            // the CPUs where they are the faster ones.
            let stream = out.cost_hess.len() * std::mem::size_of::<f64>() >= STREAM_MIN_BYTES && streaming_stores_pay();
            let groups = out.cost_hess[..nl * t * n * n]
                .chunks_mut(ln * t * n * n)
                .zip(out.cost_lin[..nl * t * n].chunks_mut(ln * t * n))
                .zip(out.x_init[..nl * nx].chunks_mut(ln * nx))
                .zip(self.lane_redo[..nl].chunks_mut(ln))
                .zip(out.status[..nl].chunks_mut(ln));
            runs::for_each_claimed(&mut self.lane_workspaces, groups, |k, ws, ((((gcm, gcv), gx0), redo), st)| {
                let (i0, g) = (k * ln, redo.len());
                let probs: [ProblemRef<'_>; lanes::LANES] =
                    std::array::from_fn(|l| batch.problem((i0 + l).min(nl - 1), t, nx, nu));
                let (xr, ur) = (i0 * t * nx..(i0 + g) * t * nx, i0 * t * nu..(i0 + g) * t * nu);
                let structure = known.map(|f| &f[i0 * t..(i0 + g) * t]);
                let (failed, finite) = lanes::backward_lanes(
                    model, ws, &probs[..g], &sol.x[xr.clone()], &sol.u[ur.clone()], &grad_x[xr], &grad_u[ur], gcm, gcv, gx0, stream, structure,
                );
                for (l, r) in redo.iter_mut().enumerate() {
                    *r = failed[l];
                    if !failed[l] {
                        let (m, v) = (t * n * n, t * n);
                        st[l] = mask_gradients_known(
                            solution_ok(sol, i0 + l, t, nx, nu),
                            finite[l],
                            [&mut gcm[l * m..(l + 1) * m], &mut gcv[l * v..(l + 1) * v], &mut gx0[l * nx..(l + 1) * nx], &mut []],
                        );
                    }
                }
            });
        }
        let redo = &self.lane_redo;
        // Problems left to the per-problem pass (`redo`), with their status.
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
            // From the first problem left: those after the lane groups (the lane groups done,
            // they alone share the threads), unless a lane problem was left too (a group that
            // fell back), then from the start.
            let first = if redo[..nl].contains(&true) { 0 } else { nl };
            let outputs = out.cost_hess[first * t * n * n..]
                .chunks_mut(t * n * n)
                .zip(out.cost_lin[first * t * n..].chunks_mut(t * n))
                .zip(out.x_init[first * nx..].chunks_mut(nx))
                .zip(out.params[first * chunk..].chunks_mut(chunk))
                .zip(out.status[first..].iter_mut());
            runs::for_each_claimed(&mut self.workspaces, outputs, |k, ws, ((((gcm, gcv), gx0), gp), st)| {
                let (i, gp) = (first + k, if np > 0 { gp } else { &mut gp[..0] });
                if redo[i] {
                    *st = run(i, ws, gcm, gcv, gx0, gp);
                }
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
/// `(grad_x, grad_u)` (B×T×nx, B×T×nu): [`SolveEach`] for one call. Same results as [`Solver`]
/// on each problem alone.
pub fn solve_each<D: Dynamics + Clone + Send>(
    models: &[D],
    horizon: usize,
    options: &SolverOptions,
    batch: &Batch<'_>,
    upstream: Option<(&[f64], &[f64])>,
) -> (Solution, Option<Gradients>) {
    assert_eq!(models.len(), batch.size, "solve_each: one model per problem");
    let mut each = SolveEach::new(models.to_vec(), horizon, options.clone());
    let sol = each.try_solve(batch).unwrap_or_else(|e| panic!("solve_each: {e}"));
    let grads = upstream.map(|(gx, gu)| each.try_backward(batch, &sol, gx, gu).unwrap_or_else(|e| panic!("solve_each: {e}")));
    (sol, grads)
}
