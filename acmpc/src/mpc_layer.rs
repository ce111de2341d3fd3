//! The differentiable MPC as a candle operation: the actor's last layer.
//!
//! Input: the cost tensor `[B, T, 28]`, per stage the 14 diagonal entries of `C_t` followed by
//! the 14 entries of `c_t` in the MPC's variable order `z = [p(3), q(4), v(3), f_c, ω(3)]`
//! (acmpc-reference.md §4.4). Output: the first control `u_0*` `[B, 4]` of the box-constrained
//! iLQR solution from each row's initial state. The backward pass is the solver's implicit
//! gradient (active bounds held fixed; Gauss-Newton or exact), so `∂L/∂C_t` reaches only the
//! diagonal the actor predicts, and `∂L/∂c_t` all of `c_t`.
//!
//! The solve runs once in the forward pass; its solution is kept inside the operation for the
//! backward pass, so nothing is solved twice.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use mpc_models::Quadrotor;
use mpc_cuda::select::{self, Needs, Preference};
use mpc_runtime::Backend;
use mpc_runtime::solver::{Batch, Bound, Gradients, GradientMode, Solution, Solver, SolverOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// State dimension of the quadrotor (the model's own).
pub const NX: usize = <Quadrotor as mpc_runtime::Model>::NX;
/// Control dimension of the quadrotor (the model's own).
pub const NU: usize = <Quadrotor as mpc_runtime::Model>::NU;
/// `nx + nu`.
pub const NZ: usize = NX + NU;
/// Numbers per stage in the cost tensor: diag(C_t) and c_t.
pub const COST_PER_STAGE: usize = 2 * NZ;
/// Control bounds (thrust N, rates rad/s), §1.7.
pub const U_LOWER: [f64; NU] = [0.0, -10.0, -10.0, -4.0];
/// Upper control bounds.
pub const U_UPPER: [f64; NU] = [34.0, 10.0, 10.0, 4.0];
/// Hover thrust `m·g` (N): the warm start of a fresh solve.
pub const HOVER_THRUST: f64 = 0.752 * 9.8066;

/// Where the layer solves: any [`Backend`] (the CPU solver, or the CUDA solver in double
/// precision, whose kernels are host-emulated against the CPU solver in the test suite but
/// have not run on a GPU yet), with its errors as candle errors.
struct Engine(Box<dyn Backend>);

impl Engine {
    fn solve(&mut self, batch: &Batch<'_>) -> candle_core::Result<Solution> {
        let kind = self.0.kind().name();
        self.0.try_solve(batch).map_err(|e| candle_core::Error::Msg(format!("MPC solve ({kind}): {e}")))
    }

    fn backward(&mut self, batch: &Batch<'_>, sol: &Solution, gx: &[f64], gu: &[f64]) -> candle_core::Result<Gradients> {
        let kind = self.0.kind().name();
        self.0.try_backward(batch, sol, gx, gu).map_err(|e| candle_core::Error::Msg(format!("MPC backward ({kind}): {e}")))
    }
}

/// Problems whose solve or gradient went non-finite, counted since the last
/// [`MpcLayer::take_health`] (shared by the clones of a layer).
#[derive(Debug, Default)]
struct Health {
    non_finite_solves: AtomicU64,
    masked_gradients: AtomicU64,
    replaced_controls: AtomicU64,
    /// Wall time inside the solver (forward and backward), ns, since the layer was made.
    solver_nanos: AtomicU64,
}

impl Health {
    /// Runs `f` (a call into the solver) and adds its wall time to `solver_nanos`.
    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let t0 = std::time::Instant::now();
        let r = f();
        self.solver_nanos.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

/// What [`MpcLayer::take_health`] reports: problems counted since the previous call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerHealth {
    /// Forward solves that stopped on a non-finite value (`StopReason::NonFinite`): never
    /// converged; the action is the solver's last finite iterate.
    pub non_finite_solves: u64,
    /// Problems whose gradient the backward pass zeroed (non-finite solution or gradient):
    /// nothing non-finite reaches the optimiser.
    pub masked_gradients: u64,
    /// First controls that were not finite and were replaced by the warm start clamped to the
    /// bounds (none is expected: the solver returns its last finite iterate).
    pub replaced_controls: u64,
}

/// A batched, differentiable quadrotor MPC of fixed horizon.
#[derive(Clone)]
pub struct MpcLayer {
    solver: Arc<Mutex<Engine>>,
    horizon: usize,
    on_gpu: bool,
    health: Arc<Health>,
}

fn options(iters: usize, gradient: GradientMode) -> SolverOptions {
    // The policy never reads the KKT residual: skip its extra linearisation.
    SolverOptions { max_iters: iters, eps: 1e-6, gradient, report_kkt: false, ..SolverOptions::default() }
}

fn model() -> Quadrotor {
    Quadrotor { dt: 0.02, ..Quadrotor::default() }
}

impl MpcLayer {
    /// An MPC of horizon `horizon` with `iters` iLQR iterations on the CPU solver, the
    /// quadrotor at dt = 0.02 s.
    pub fn new(horizon: usize, iters: usize, gradient: GradientMode) -> Self {
        let solver = Solver::new(model(), horizon, options(iters, gradient));
        Self { solver: Arc::new(Mutex::new(Engine(Box::new(solver)))), horizon, on_gpu: false, health: Arc::default() }
    }

    /// The same MPC on GPU 0 for batches of up to `capacity` problems (double precision).
    /// Errors (no driver, no GPU, NVRTC failure) are returned, never panics.
    pub fn new_cuda(horizon: usize, iters: usize, gradient: GradientMode, capacity: usize) -> Result<Self, String> {
        let choice = select::choose(Preference::Cuda, capacity, &Needs::default()).map_err(|e| e.to_string())?;
        let s = select::build(&choice, &model(), horizon, &options(iters, gradient), capacity).map_err(|e| e.to_string())?;
        Ok(Self { solver: Arc::new(Mutex::new(Engine(s))), horizon, on_gpu: true, health: Arc::default() })
    }

    /// Whether this layer solves on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.on_gpu
    }

    /// Horizon T.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Wall time spent in the solver (forward solves and backward passes) since the layer was
    /// made, in seconds (shared by the clones of a layer).
    pub fn solver_seconds(&self) -> f64 {
        self.health.solver_nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// The non-finite events since the previous call (and reset the counts): how the trainer
    /// logs them.
    pub fn take_health(&self) -> LayerHealth {
        LayerHealth {
            non_finite_solves: self.health.non_finite_solves.swap(0, Ordering::Relaxed),
            masked_gradients: self.health.masked_gradients.swap(0, Ordering::Relaxed),
            replaced_controls: self.health.replaced_controls.swap(0, Ordering::Relaxed),
        }
    }

    /// Differentiable first controls `[B, 4]` (dtype of `cost`) for costs `[B, T, 28]`, initial
    /// states `x0` (B×10) and warm starts `u_init` (B×T×4).
    pub fn forward(&self, cost: &Tensor, x0: &[f64], u_init: &[f64]) -> candle_core::Result<Tensor> {
        let dims = cost.dims();
        if dims.len() != 3 || dims[1] != self.horizon || dims[2] != COST_PER_STAGE {
            candle_core::bail!("MpcLayer: cost must be [B, {}, {COST_PER_STAGE}], got {dims:?}", self.horizon);
        }
        let b = dims[0];
        if x0.len() != b * NX || u_init.len() != b * self.horizon * NU {
            candle_core::bail!(
                "MpcLayer: x0 must hold B×{NX} = {} and u_init B×T×{NU} = {} numbers, got {} and {}",
                b * NX,
                b * self.horizon * NU,
                x0.len(),
                u_init.len()
            );
        }
        let op = MpcOp {
            solver: self.solver.clone(),
            health: self.health.clone(),
            horizon: self.horizon,
            x0: x0.to_vec(),
            u_init: u_init.to_vec(),
            saved: Mutex::new(None),
        };
        cost.contiguous()?.apply_op1(op)
    }

    /// Solves without building a graph (rollouts, evaluation): the full solution.
    pub fn solve(&self, cost: &[f64], x0: &[f64], u_init: &[f64]) -> candle_core::Result<Solution> {
        let b = x0.len() / NX;
        let (cm, cv) = dense_cost(cost, b, self.horizon);
        let batch = batch(b, x0, &cm, &cv, u_init);
        let mut sol = self.health.timed(|| self.solver.lock().expect("solver lock").solve(&batch))?;
        sanitize(&mut sol, u_init, self.horizon, &self.health);
        Ok(sol)
    }
}

/// Expands `[B, T, 28]` (diag, linear) into the solver's dense `C` (B×T×14×14) and `c`.
fn dense_cost(cost: &[f64], b: usize, t: usize) -> (Vec<f64>, Vec<f64>) {
    let mut cm = vec![0.0; b * t * NZ * NZ];
    let mut cv = vec![0.0; b * t * NZ];
    for k in 0..b * t {
        let src = &cost[k * COST_PER_STAGE..(k + 1) * COST_PER_STAGE];
        for i in 0..NZ {
            cm[k * NZ * NZ + i * NZ + i] = src[i];
        }
        cv[k * NZ..(k + 1) * NZ].copy_from_slice(&src[NZ..]);
    }
    (cm, cv)
}

fn batch<'a>(b: usize, x0: &'a [f64], cm: &'a [f64], cv: &'a [f64], u_init: &'a [f64]) -> Batch<'a> {
    Batch {
        size: b,
        x_init: x0,
        cost_hess: cm,
        cost_lin: cv,
        u_lower: Bound::PerControl(&U_LOWER),
        u_upper: Bound::PerControl(&U_UPPER),
        u_init: Some(u_init),
    }
}

/// Count the non-finite solves of `sol` and replace any non-finite control of its first stage
/// by the warm start clamped to the bounds, so that no NaN reaches an action or the optimiser.
fn sanitize(sol: &mut Solution, u_init: &[f64], horizon: usize, health: &Health) {
    let b = sol.cost.len();
    health.non_finite_solves.fetch_add(sol.non_finite_count() as u64, Ordering::Relaxed);
    for i in 0..b {
        let off = i * horizon * NU;
        if sol.u[off..off + NU].iter().any(|v| !v.is_finite()) {
            health.replaced_controls.fetch_add(1, Ordering::Relaxed);
            for k in 0..NU {
                sol.u[off + k] = u_init[off + k].clamp(U_LOWER[k], U_UPPER[k]);
            }
        }
    }
}

struct Saved {
    cm: Vec<f64>,
    cv: Vec<f64>,
    solution: Solution,
}

struct MpcOp {
    solver: Arc<Mutex<Engine>>,
    health: Arc<Health>,
    horizon: usize,
    x0: Vec<f64>,
    u_init: Vec<f64>,
    saved: Mutex<Option<Saved>>,
}

fn to_f64(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<f64>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("MpcLayer: cost tensor must be contiguous".into()))?;
    Ok(match storage {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| x as f64).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        _ => candle_core::bail!("MpcLayer: cost must be f32 or f64"),
    })
}

impl CustomOp1 for MpcOp {
    fn name(&self) -> &'static str {
        "mpc-ilqr"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let cost = to_f64(storage, layout)?;
        if let Some(i) = cost.iter().position(|v| !v.is_finite()) {
            candle_core::bail!("MpcLayer: cost entry {i} is not finite ({})", cost[i]);
        }
        let b = self.x0.len() / NX;
        let (cm, cv) = dense_cost(&cost, b, self.horizon);
        let bt = batch(b, &self.x0, &cm, &cv, &self.u_init);
        let mut solution = self.health.timed(|| self.solver.lock().expect("solver lock").solve(&bt))?;
        sanitize(&mut solution, &self.u_init, self.horizon, &self.health);
        let mut u0 = Vec::with_capacity(b * NU);
        for i in 0..b {
            let off = i * self.horizon * NU;
            u0.extend_from_slice(&solution.u[off..off + NU]);
        }
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(u0.iter().map(|&x| x as f32).collect()),
            _ => CpuStorage::F64(u0),
        };
        *self.saved.lock().expect("saved lock") = Some(Saved { cm, cv, solution });
        Ok((out, Shape::from((b, NU))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let guard = self.saved.lock().expect("saved lock");
        let saved = guard.as_ref().ok_or_else(|| candle_core::Error::Msg("MpcLayer: backward before forward".into()))?;
        let (b, t) = (self.x0.len() / NX, self.horizon);
        let g0: Vec<f64> = grad_res.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let grad_x = vec![0.0; b * t * NX];
        let mut grad_u = vec![0.0; b * t * NU];
        for i in 0..b {
            grad_u[i * t * NU..i * t * NU + NU].copy_from_slice(&g0[i * NU..(i + 1) * NU]);
        }
        let bt = batch(b, &self.x0, &saved.cm, &saved.cv, &self.u_init);
        let g = self.health.timed(|| self.solver.lock().expect("solver lock").backward(&bt, &saved.solution, &grad_x, &grad_u))?;
        // Masked problems (non-finite solution or gradient) come back as zeros, counted here.
        self.health.masked_gradients.fetch_add(g.status.iter().filter(|s| s.masked()).count() as u64, Ordering::Relaxed);
        let mut out = vec![0.0; b * t * COST_PER_STAGE];
        for k in 0..b * t {
            let dst = &mut out[k * COST_PER_STAGE..(k + 1) * COST_PER_STAGE];
            for i in 0..NZ {
                dst[i] = g.cost_hess[k * NZ * NZ + i * NZ + i];
            }
            dst[NZ..].copy_from_slice(&g.cost_lin[k * NZ..(k + 1) * NZ]);
        }
        let grad = Tensor::from_vec(out, arg.shape(), arg.device())?.to_dtype(arg.dtype())?;
        Ok(Some(grad))
    }
}
