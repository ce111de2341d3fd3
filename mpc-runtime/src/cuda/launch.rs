//! The CUDA backend: the rendered single-launch forward-solve kernel
//! (`templates/ilqr_solve.cu.tera`) and the implicit-differentiation backward kernel
//! (`templates/ilqr_backward.cu.tera`), one thread per problem, compiled with NVRTC for the
//! device's compute capability (through the PTX cache of [`super::cache`], memory and disk),
//! loaded through `cudarc`'s driver API and launched over a batch.
//!
//! **Untested on hardware.** This was written and compiled on a machine without a GPU or CUDA
//! driver. The kernel itself is checked (NVRTC + `ptxas` compile it; the host emulation in
//! [`super::host`] runs the same source bit-for-bit against the CPU solver); what has never run
//! is this file: context creation, module loading, copies and the launch. `scripts/gpu-checks.sh`
//! is the check to run on a machine with a GPU.
//!
//! All `unsafe` of the CUDA backend is in this file, in the two launch functions; the public API
//! ([`CudaSolver::new`], [`CudaSolver::solve`], [`CudaSolver::backward`]) is safe. Every `cudarc` call runs inside
//! [`std::panic::catch_unwind`], and [`CudaSolver::new`] first checks
//! [`super::driver::driver_available`], so a missing driver is an error, never a panic.
//!
//! Argument order of the kernels (see the banners of the templates and `host.rs`), all arrays
//! row-major and batch first in the kernel's real type:
//! * solve: `params, x_init, C, c, u_lo, u_hi, u_init, x_out, u_out, cost_out, iters_out,
//!   status_out, batch`;
//! * backward: `params, C, c, u_lo, u_hi, x, u, grad_x, grad_u, grad_C, grad_c, grad_x_init,
//!   grad_params (null: none), batch`.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::driver::{CudaUnavailable, driver_available, panic_message};
use super::nvrtc::{NvrtcError, NvrtcOptions};
use super::render::{
    KernelLayout, KernelOptions, Precision, RenderError, RenderedKernel, render_backward, render_solve, render_solve_warp,
    render_stages, staged_state_len, warp_state_len,
};
use crate::model::Model;
use crate::solver::{Batch, Bound, Gradients, Solution};

/// Threads per block of the solve launch (one problem per thread; the kernel keeps a large
/// per-thread workspace in local memory, so small blocks).
pub const BLOCK_SIZE: u32 = 64;

/// Why the CUDA solver could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No driver or no GPU.
    #[error(transparent)]
    Unavailable(#[from] CudaUnavailable),
    /// The kernel could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// NVRTC is missing or rejected the kernel.
    #[error(transparent)]
    Nvrtc(#[from] NvrtcError),
    /// A CUDA driver call failed.
    #[error("CUDA driver: {what}: {message}")]
    Driver {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        message: String,
    },
    /// The batch does not fit the solver.
    #[error("batch does not fit the CUDA solver: {0}")]
    Batch(String),
    /// `cudarc` panicked.
    #[error("cudarc panicked: {0}")]
    Panic(String),
}

fn drv<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> CudaError {
    move |e| CudaError::Driver { what, message: format!("{e:?}") }
}

fn guard<T>(f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(CudaError::Panic(panic_message(p.as_ref()))))
}

/// NVRTC-compile `source` for `opts`, or take the PTX from the module cache (memory, then
/// disk: [`super::cache`]).
fn cached_ptx(source: &str, opts: &NvrtcOptions) -> Result<String, NvrtcError> {
    super::cache::global().get_or_compile(source, opts)
}

/// Device buffers for `capacity` problems, allocated once.
struct Buffers<R> {
    params: CudaSlice<R>,
    x_init: CudaSlice<R>,
    cost_hess: CudaSlice<R>,
    cost_lin: CudaSlice<R>,
    u_lo: CudaSlice<R>,
    u_hi: CudaSlice<R>,
    u_init: CudaSlice<R>,
    x_out: CudaSlice<R>,
    u_out: CudaSlice<R>,
    cost_out: CudaSlice<R>,
    iters_out: CudaSlice<i32>,
    status_out: CudaSlice<i32>,
}

enum AnyBuffers {
    F32(Buffers<f32>),
    F64(Buffers<f64>),
}

/// Device buffers the backward pass adds, for `capacity` problems, allocated on its first use.
struct BackwardBuffers<R> {
    x: CudaSlice<R>,
    u: CudaSlice<R>,
    grad_x: CudaSlice<R>,
    grad_u: CudaSlice<R>,
    grad_cost_hess: CudaSlice<R>,
    grad_cost_lin: CudaSlice<R>,
    grad_x_init: CudaSlice<R>,
    grad_params: CudaSlice<R>,
}

enum AnyBackwardBuffers {
    F32(BackwardBuffers<f32>),
    F64(BackwardBuffers<f64>),
}

/// The backward kernel, compiled and loaded on first use.
struct Backward {
    kernel: RenderedKernel,
    func: CudaFunction,
    bufs: AnyBackwardBuffers,
}

/// The forward solve and the backward pass of model `M` on the GPU, for batches of up to
/// `capacity` problems of one horizon and one set of compile-time solver settings
/// ([`KernelOptions`]; the gradient mode of the backward pass is `opts.solver.gradient`).
pub struct CudaSolver<M: Model> {
    params: Vec<f64>,
    opts: KernelOptions,
    kernel: RenderedKernel,
    capacity: usize,
    arch: String,
    stream: Arc<CudaStream>,
    forward: Forward,
    bufs: AnyBuffers,
    backward: Option<Backward>,
    last_timing: LaunchTiming,
    ctx: Arc<CudaContext>,
    _model: PhantomData<M>,
}

/// The forward solve's kernels, per [`KernelLayout`].
enum Forward {
    /// The single-launch kernel.
    Single(CudaFunction),
    /// The three-stage layout: the stage kernels' entry points (init, linearize, riccati,
    /// line_search, finish), their other translation units, and the iteration state.
    Staged { funcs: Box<[CudaFunction; 5]>, others: Vec<RenderedKernel>, state: AnyState },
    /// The warp-per-problem kernel and its workspace (`active` unused).
    Warp { func: CudaFunction, state: AnyState },
}

/// Device memory of a layout's per-problem state in global memory (the three-stage layout's
/// iteration state, the warp layout's workspace), for `capacity` problems.
struct StagedState<R> {
    state: CudaSlice<R>,
    istate: CudaSlice<i32>,
    active: CudaSlice<i32>,
}

enum AnyState {
    F32(StagedState<f32>),
    F64(StagedState<f64>),
}

/// Warps (problems) per block of the warp-per-problem layout.
pub const WARPS_PER_BLOCK: u32 = 4;

/// Problems per block of the three-stage layout's kernels (the line search runs NLS times
/// as many threads per block).
pub const STAGED_BLOCK: u32 = 64;

/// Where one GPU call spent its wall-clock time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchTiming {
    /// Converting and copying the inputs to the device (until the copies completed).
    pub upload: Duration,
    /// The kernel launch until its completion.
    pub kernel: Duration,
    /// Copying the results back and converting them to `f64`.
    pub download: Duration,
    /// Host rounds of the three-stage layout (1 for a single launch).
    pub rounds: usize,
}

impl<M: Model> std::fmt::Debug for CudaSolver<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaSolver").field("kernel", &self.kernel.kernel).field("arch", &self.arch).finish_non_exhaustive()
    }
}

impl<M: Model> CudaSolver<M> {
    /// Check the driver, render the forward-solve kernels of `opts.layout` for `model` (its
    /// parameters are uploaded on every solve), compile them with NVRTC for device 0's compute
    /// capability, load them and allocate the device buffers for `capacity` problems.
    pub fn new(model: &M, capacity: usize, opts: &KernelOptions) -> Result<Self, CudaError> {
        driver_available()?;
        let mut kernels: Vec<RenderedKernel> = match opts.layout {
            KernelLayout::SingleLaunch => vec![render_solve::<M>(opts)?],
            KernelLayout::ThreeStage => render_stages::<M>(opts)?.into(),
            KernelLayout::WarpPerProblem => vec![render_solve_warp::<M>(opts)?],
        };
        let capacity = capacity.max(1);
        guard(|| {
            let ctx = CudaContext::new(0).map_err(drv("creating the context on device 0"))?;
            let (major, minor) = ctx.compute_capability().map_err(drv("reading the compute capability"))?;
            let arch = format!("compute_{major}{minor}");
            let mut funcs = Vec::new();
            for k in &kernels {
                let nv = NvrtcOptions { program_name: k.file_name(), ..NvrtcOptions::new(arch.clone()) };
                let ptx = cached_ptx(&k.source, &nv)?;
                let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(drv("loading the module"))?;
                for e in &k.entries {
                    funcs.push(module.load_function(e).map_err(drv("finding the kernel"))?);
                }
            }
            let stream = ctx.default_stream();
            let kernel = kernels.remove(0);
            let bufs = match kernel.precision {
                Precision::F32 => AnyBuffers::F32(alloc(&stream, &kernel, capacity)?),
                Precision::F64 => AnyBuffers::F64(alloc(&stream, &kernel, capacity)?),
            };
            let zi = |len: usize| stream.alloc_zeros::<i32>(len.max(1)).map_err(drv("allocating device memory"));
            let state_of = |(reals, ints): (usize, usize)| -> Result<AnyState, CudaError> {
                Ok(match kernel.precision {
                    Precision::F32 => AnyState::F32(StagedState {
                        state: stream.alloc_zeros::<f32>(capacity * reals).map_err(drv("allocating device memory"))?,
                        istate: zi(capacity * ints)?,
                        active: zi(1)?,
                    }),
                    Precision::F64 => AnyState::F64(StagedState {
                        state: stream.alloc_zeros::<f64>(capacity * reals).map_err(drv("allocating device memory"))?,
                        istate: zi(capacity * ints)?,
                        active: zi(1)?,
                    }),
                })
            };
            let forward = match opts.layout {
                KernelLayout::SingleLaunch => Forward::Single(funcs.remove(0)),
                KernelLayout::WarpPerProblem => Forward::Warp {
                    func: funcs.remove(0),
                    state: state_of(warp_state_len(kernel.nx, kernel.nu, kernel.horizon, kernel.nls))?,
                },
                KernelLayout::ThreeStage => {
                    let funcs: Box<[CudaFunction; 5]> = funcs
                        .into_boxed_slice()
                        .try_into()
                        .map_err(|_| CudaError::Batch("the stage kernels have 5 entry points".into()))?;
                    let state = state_of(staged_state_len(kernel.nx, kernel.nu, kernel.horizon, kernel.nls))?;
                    Forward::Staged { funcs, others: kernels, state }
                }
            };
            Ok(CudaSolver {
                params: model.param_values(),
                opts: opts.clone(),
                kernel,
                capacity,
                arch,
                stream,
                forward,
                bufs,
                backward: None,
                last_timing: LaunchTiming::default(),
                ctx,
                _model: PhantomData,
            })
        })
    }

    /// The rendered forward kernel this solver runs (for the three-stage layout, stage 1).
    pub fn kernel(&self) -> &RenderedKernel {
        &self.kernel
    }

    /// Every rendered forward kernel this solver runs (one, or the three stages).
    pub fn kernels(&self) -> Vec<&RenderedKernel> {
        let mut v = vec![&self.kernel];
        if let Forward::Staged { others, .. } = &self.forward {
            v.extend(others);
        }
        v
    }

    /// The forward-solve layout.
    pub fn layout(&self) -> KernelLayout {
        self.opts.layout
    }

    /// The virtual architecture the kernel was compiled for (`compute_XY`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Largest batch [`CudaSolver::solve`] accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Render, compile (NVRTC, through the PTX cache) and load the backward kernel and allocate
    /// its buffers, unless done already. [`CudaSolver::backward`] does this on its first call;
    /// call it beforehand to keep the compilation out of a timed region.
    pub fn prepare_backward(&mut self) -> Result<&RenderedKernel, CudaError> {
        if self.backward.is_none() {
            let kernel = render_backward::<M>(&self.opts)?;
            let (ctx, stream, arch, cap) = (&self.ctx, &self.stream, &self.arch, self.capacity);
            let bwd = guard(|| {
                let nv = NvrtcOptions { program_name: kernel.file_name(), ..NvrtcOptions::new(arch.clone()) };
                let ptx = cached_ptx(&kernel.source, &nv)?;
                let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(drv("loading the module"))?;
                let func = module.load_function(&kernel.kernel).map_err(drv("finding the kernel"))?;
                let bufs = match kernel.precision {
                    Precision::F32 => AnyBackwardBuffers::F32(alloc_backward(stream, &kernel, cap)?),
                    Precision::F64 => AnyBackwardBuffers::F64(alloc_backward(stream, &kernel, cap)?),
                };
                Ok(Backward { kernel: kernel.clone(), func, bufs })
            })?;
            self.backward = Some(bwd);
        }
        Ok(&self.backward.as_ref().expect("just set").kernel)
    }

    /// Gradients of a loss with respect to `C`, `c`, `x_init` at the solution `sol` of `batch`,
    /// given the upstream gradients `grad_x` (B×T×nx) and `grad_u` (B×T×nu), on the GPU: the
    /// same contract as the CPU [`crate::Solver::backward`] (implicit differentiation, active
    /// bounds fixed, the Hessian of `opts.solver.gradient`). The first call compiles the kernel
    /// (see [`CudaSolver::prepare_backward`]).
    pub fn backward(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64]) -> Result<Gradients, CudaError> {
        let k = &self.kernel;
        let (b, t, nx, nu) = (batch.size, k.horizon, k.nx, k.nu);
        batch.check(t, nx, nu).map_err(CudaError::Batch)?;
        if b > self.capacity {
            return Err(CudaError::Batch(format!("{b} problems, capacity {}", self.capacity)));
        }
        for (name, len, want) in [
            ("solution x", sol.x.len(), b * t * nx),
            ("solution u", sol.u.len(), b * t * nu),
            ("grad_x", grad_x.len(), b * t * nx),
            ("grad_u", grad_u.len(), b * t * nu),
        ] {
            if len != want {
                return Err(CudaError::Batch(format!("{name}: expected {want} entries, got {len}")));
            }
        }
        if b == 0 {
            return Ok(Gradients::default());
        }
        self.prepare_backward()?;
        let bw = self.backward.as_mut().expect("prepared");
        let (params, stream) = (&self.params, &self.stream);
        let inputs = BackwardInputs { batch, sol, grad_x, grad_u, params: self.opts.solver.grad_params && self.kernel.np > 0 };
        let (grads, timing) = guard(|| match (&mut self.bufs, &mut bw.bufs) {
            (AnyBuffers::F32(d), AnyBackwardBuffers::F32(g)) => launch_backward(stream, &bw.func, &bw.kernel, d, g, params, &inputs),
            (AnyBuffers::F64(d), AnyBackwardBuffers::F64(g)) => launch_backward(stream, &bw.func, &bw.kernel, d, g, params, &inputs),
            _ => Err(CudaError::Batch("solve and backward kernels differ in precision".into())),
        })?;
        self.last_timing = timing;
        Ok(grads)
    }

    /// The model parameters the kernels get: one set (NP, the model's at construction), or with
    /// [`KernelOptions::per_problem_params`] one per problem (B×NP, in `PARAM_NAMES` order) for
    /// the next batches of B problems. Checked against each batch when it is solved.
    pub fn set_params(&mut self, params: Vec<f64>) -> Result<(), CudaError> {
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(CudaError::Batch(format!("params[{i}] is not finite ({})", params[i])));
        }
        let np = self.kernel.np;
        if params.len() % np.max(1) != 0 || (!self.kernel.per_problem_params && params.len() != np) {
            return Err(CudaError::Batch(format!(
                "{} parameters: the kernel takes {}",
                params.len(),
                if self.kernel.per_problem_params { format!("B×{np}") } else { np.to_string() }
            )));
        }
        self.params = params;
        Ok(())
    }

    /// Solve `batch` on the GPU: copy the inputs, launch one thread per problem, copy the
    /// results back. Inputs are converted to the kernel's precision, results back to `f64`.
    pub fn solve(&mut self, batch: &Batch<'_>) -> Result<Solution, CudaError> {
        let k = &self.kernel;
        batch.check(k.horizon, k.nx, k.nu).map_err(CudaError::Batch)?;
        if batch.size > self.capacity {
            return Err(CudaError::Batch(format!("{} problems, capacity {}", batch.size, self.capacity)));
        }
        if batch.size == 0 {
            return Ok(Solution::default());
        }
        let (params, kernel, stream) = (&self.params, &self.kernel, &self.stream);
        let (sol, timing) = guard(|| match (&mut self.forward, &mut self.bufs) {
            (Forward::Single(func), AnyBuffers::F32(b)) => launch(stream, func, kernel, b, params, batch),
            (Forward::Single(func), AnyBuffers::F64(b)) => launch(stream, func, kernel, b, params, batch),
            (Forward::Staged { funcs, state: AnyState::F32(st), .. }, AnyBuffers::F32(b)) => {
                launch_staged(stream, funcs, kernel, b, st, params, batch)
            }
            (Forward::Staged { funcs, state: AnyState::F64(st), .. }, AnyBuffers::F64(b)) => {
                launch_staged(stream, funcs, kernel, b, st, params, batch)
            }
            (Forward::Warp { func, state: AnyState::F32(st) }, AnyBuffers::F32(b)) => {
                launch_warp(stream, func, kernel, b, st, params, batch)
            }
            (Forward::Warp { func, state: AnyState::F64(st) }, AnyBuffers::F64(b)) => {
                launch_warp(stream, func, kernel, b, st, params, batch)
            }
            _ => Err(CudaError::Batch("state and buffers differ in precision".into())),
        })?;
        self.last_timing = timing;
        Ok(sol)
    }

    /// How the last [`CudaSolver::solve`] or [`CudaSolver::backward`] spent its time (host
    /// clocks around synchronisations: copies in, the kernel, copies out).
    pub fn last_timing(&self) -> LaunchTiming {
        self.last_timing
    }
}

/// `f32` / `f64` as exchanged with the device.
trait DeviceReal: DeviceRepr + ValidAsZeroBits + Copy + Unpin + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl DeviceReal for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl DeviceReal for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

fn alloc<R: DeviceReal>(s: &Arc<CudaStream>, k: &RenderedKernel, cap: usize) -> Result<Buffers<R>, CudaError> {
    let (t, nx, nu) = (k.horizon, k.nx, k.nu);
    let n = nx + nu;
    let z = |len: usize| s.alloc_zeros::<R>(len.max(1)).map_err(drv("allocating device memory"));
    let zi = |len: usize| s.alloc_zeros::<i32>(len.max(1)).map_err(drv("allocating device memory"));
    Ok(Buffers {
        params: z(k.params_len(cap))?,
        x_init: z(cap * nx)?,
        cost_hess: z(cap * t * n * n)?,
        cost_lin: z(cap * t * n)?,
        u_lo: z(cap * t * nu)?,
        u_hi: z(cap * t * nu)?,
        u_init: z(cap * t * nu)?,
        x_out: z(cap * t * nx)?,
        u_out: z(cap * t * nu)?,
        cost_out: z(cap)?,
        iters_out: zi(cap)?,
        status_out: zi(cap)?,
    })
}

fn alloc_backward<R: DeviceReal>(s: &Arc<CudaStream>, k: &RenderedKernel, cap: usize) -> Result<BackwardBuffers<R>, CudaError> {
    let (t, nx, nu) = (k.horizon, k.nx, k.nu);
    let n = nx + nu;
    let z = |len: usize| s.alloc_zeros::<R>(len.max(1)).map_err(drv("allocating device memory"));
    Ok(BackwardBuffers {
        x: z(cap * t * nx)?,
        u: z(cap * t * nu)?,
        grad_x: z(cap * t * nx)?,
        grad_u: z(cap * t * nu)?,
        grad_cost_hess: z(cap * t * n * n)?,
        grad_cost_lin: z(cap * t * n)?,
        grad_x_init: z(cap * nx)?,
        grad_params: z(cap * k.np)?,
    })
}

/// Launch shapes and state sizes of the three-stage layout for `b` problems, `block`
/// problems per block (shared by the GPU and the host emulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StagedPlan {
    /// Iteration state per problem: reals, ints.
    pub reals: usize,
    pub ints: usize,
    /// Most rounds a solve can take (a guard against a kernel bug).
    pub max_rounds: usize,
    /// (grid, block) of the one-thread-per-problem kernels (init, riccati, finish).
    pub per_problem: (u32, u32),
    /// (grid, block) of the linearisation, one thread per (problem, dynamics stage).
    pub per_stage: (u32, u32),
    /// (grid, block) of the line search, one thread per (problem, step), `block × NLS` per block.
    pub per_step: (u32, u32),
}

impl StagedPlan {
    pub fn new(k: &RenderedKernel, b: usize, block: u32) -> Result<Self, String> {
        let (reals, ints) = super::render::staged_state_len(k.nx, k.nu, k.horizon, k.nls);
        let ndyn = k.horizon.saturating_sub(1).max(1);
        let nls = k.nls.max(1);
        let grid = |threads: usize, blk: usize| -> Result<(u32, u32), String> {
            let g = threads.div_ceil(blk);
            let g = u32::try_from(g).map_err(|_| format!("{threads} threads do not fit a grid"))?;
            Ok((g, blk as u32))
        };
        if i32::try_from(b.saturating_mul(ndyn.max(nls))).is_err() {
            return Err(format!("{b} problems are too many for the three-stage kernels' int indices"));
        }
        let block = block as usize;
        // The line search needs whole problems per block: block × NLS threads, at most 1024.
        let ls_block = (block.min(1024 / nls).max(1)) * nls;
        Ok(StagedPlan {
            reals,
            ints,
            max_rounds: k.max_rounds,
            per_problem: grid(b, block)?,
            per_stage: grid(b * ndyn, block)?,
            per_step: grid(b * nls, ls_block)?,
        })
    }
}

/// Per-problem, per-stage bounds (B×T×nu), `inf` where unbounded (the kernel's layout).
pub(crate) fn expand_bound(bd: Bound<'_>, inf: f64, b: usize, t: usize, nu: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(b * t * nu);
    for i in 0..b {
        for st in 0..t {
            for j in 0..nu {
                out.push(match bd {
                    Bound::None => inf,
                    Bound::PerControl(s) => s[j],
                    Bound::PerStage(s) => s[(i * t + st) * nu + j],
                });
            }
        }
    }
    out
}

/// Convert `src` to the device's real type and copy it to the start of `dst`.
fn upload<R: DeviceReal>(s: &Arc<CudaStream>, src: &[f64], dst: &mut CudaSlice<R>) -> Result<(), CudaError> {
    if src.is_empty() {
        return Ok(());
    }
    let host: Vec<R> = src.iter().map(|&x| R::from_f64(x)).collect();
    s.memcpy_htod(&host, &mut dst.slice_mut(0..src.len())).map_err(drv("copying to the device"))
}

/// Copy the first `len` entries of `src` back as `f64`.
fn download<R: DeviceReal>(s: &Arc<CudaStream>, src: &CudaSlice<R>, len: usize) -> Result<Vec<f64>, CudaError> {
    let mut h = vec![R::from_f64(0.0); len];
    s.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
    Ok(h.into_iter().map(R::to_f64).collect())
}

/// What the backward pass reads, checked against the kernel and the capacity.
struct BackwardInputs<'a, 'b> {
    batch: &'a Batch<'b>,
    sol: &'a Solution,
    grad_x: &'a [f64],
    grad_u: &'a [f64],
    /// Compute dL/dθ too (`SolverOptions::grad_params`).
    params: bool,
}

/// Copy in, launch the backward kernel, copy out. The problem data go to the solve's buffers
/// (`d`), the solution and upstream gradients to the backward's (`g`).
fn launch_backward<R: DeviceReal>(
    s: &Arc<CudaStream>,
    func: &CudaFunction,
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    g: &mut BackwardBuffers<R>,
    params: &[f64],
    inp: &BackwardInputs<'_, '_>,
) -> Result<(Gradients, LaunchTiming), CudaError> {
    let batch = inp.batch;
    let (b, t, nx, nu) = (batch.size, k.horizon, k.nx, k.nu);
    let n = nx + nu;
    if params.len() != k.params_len(b) {
        return Err(CudaError::Batch(format!("{} parameters, the kernel takes {}", params.len(), k.params_len(b))));
    }
    let t0 = Instant::now();
    upload(s, params, &mut d.params)?;
    upload(s, batch.cost_hess, &mut d.cost_hess)?;
    upload(s, batch.cost_lin, &mut d.cost_lin)?;
    upload(s, &expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu), &mut d.u_lo)?;
    upload(s, &expand_bound(batch.u_upper, f64::INFINITY, b, t, nu), &mut d.u_hi)?;
    upload(s, &inp.sol.x, &mut g.x)?;
    upload(s, &inp.sol.u, &mut g.u)?;
    upload(s, inp.grad_x, &mut g.grad_x)?;
    upload(s, inp.grad_u, &mut g.grad_u)?;
    s.synchronize().map_err(drv("copying to the device"))?;
    let t1 = Instant::now();
    let nb = i32::try_from(b).map_err(|_| CudaError::Batch(format!("{b} problems do not fit an int")))?;
    let block = BLOCK_SIZE.min(b as u32);
    let cfg = LaunchConfig { grid_dim: ((b as u32).div_ceil(block), 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
    let mut args = s.launch_builder(func);
    args.arg(&d.params)
        .arg(&d.cost_hess)
        .arg(&d.cost_lin)
        .arg(&d.u_lo)
        .arg(&d.u_hi)
        .arg(&g.x)
        .arg(&g.u)
        .arg(&g.grad_x)
        .arg(&g.grad_u)
        .arg(&mut g.grad_cost_hess)
        .arg(&mut g.grad_cost_lin)
        .arg(&mut g.grad_x_init);
    // A null device pointer (8 bytes, as every CUdeviceptr) when no parameter gradients are asked.
    let null_ptr: u64 = 0;
    if inp.params {
        args.arg(&mut g.grad_params);
    } else {
        args.arg(&null_ptr);
    }
    args.arg(&nb);
    // SAFETY: the argument list matches the kernel's extern "C" signature in
    // templates/ilqr_backward.cu.tera (9 const and 4 mutable device pointers of the kernel's
    // real type, the last possibly null, then `int batch`) for the precision the buffers were allocated in (all from
    // RenderedKernels of one precision); every buffer holds at least `capacity ≥ b` problems'
    // worth of the sizes the kernel indexes, and threads with index ≥ b return at once.
    unsafe { args.launch(cfg) }.map_err(drv("launching the backward kernel"))?;
    s.synchronize().map_err(drv("running the backward kernel"))?;
    let t2 = Instant::now();
    let grads = super::kernel_gradients(
        download(s, &g.grad_cost_hess, b * t * n * n)?,
        download(s, &g.grad_cost_lin, b * t * n)?,
        download(s, &g.grad_x_init, b * nx)?,
        if inp.params { download(s, &g.grad_params, b * k.np)? } else { Vec::new() },
        inp.sol,
        t,
        nx,
        nu,
    );
    let t3 = Instant::now();
    Ok((grads, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds: 1 }))
}

/// Copy in, launch, copy out. `batch` has been checked against the kernel and the capacity.
fn launch<R: DeviceReal>(
    s: &Arc<CudaStream>,
    func: &CudaFunction,
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    params: &[f64],
    batch: &Batch<'_>,
) -> Result<(Solution, LaunchTiming), CudaError> {
    let b = batch.size;
    if params.len() != k.params_len(b) {
        return Err(CudaError::Batch(format!("{} parameters, the kernel takes {}", params.len(), k.params_len(b))));
    }
    let t0 = Instant::now();
    upload_solve_inputs(s, k, d, params, batch)?;
    let t1 = Instant::now();

    let n = i32::try_from(b).map_err(|_| CudaError::Batch(format!("{b} problems do not fit an int")))?;
    let block = BLOCK_SIZE.min(b as u32);
    let cfg = LaunchConfig { grid_dim: ((b as u32).div_ceil(block), 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
    let mut args = s.launch_builder(func);
    args.arg(&d.params)
        .arg(&d.x_init)
        .arg(&d.cost_hess)
        .arg(&d.cost_lin)
        .arg(&d.u_lo)
        .arg(&d.u_hi)
        .arg(&d.u_init)
        .arg(&mut d.x_out)
        .arg(&mut d.u_out)
        .arg(&mut d.cost_out)
        .arg(&mut d.iters_out)
        .arg(&mut d.status_out)
        .arg(&n);
    // SAFETY: the argument list matches the kernel's extern "C" signature in
    // templates/ilqr_solve.cu.tera (12 device pointers of the kernel's real type / int, then
    // `int batch`) for the precision the buffers were allocated in (both from the same
    // RenderedKernel); every buffer holds at least `capacity ≥ b` problems' worth of the sizes
    // the kernel indexes, and threads with index ≥ b return at once.
    unsafe { args.launch(cfg) }.map_err(drv("launching the solve kernel"))?;
    s.synchronize().map_err(drv("running the solve kernel"))?;
    let t2 = Instant::now();

    let sol = download_solution(s, k, d, b)?;
    let t3 = Instant::now();
    Ok((sol, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds: 1 }))
}

/// Convert and copy a solve's inputs to the device and wait for the copies.
fn upload_solve_inputs<R: DeviceReal>(
    s: &Arc<CudaStream>,
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    params: &[f64],
    batch: &Batch<'_>,
) -> Result<(), CudaError> {
    let (b, t, nu) = (batch.size, k.horizon, k.nu);
    upload(s, params, &mut d.params)?;
    upload(s, batch.x_init, &mut d.x_init)?;
    upload(s, batch.cost_hess, &mut d.cost_hess)?;
    upload(s, batch.cost_lin, &mut d.cost_lin)?;
    upload(s, &expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu), &mut d.u_lo)?;
    upload(s, &expand_bound(batch.u_upper, f64::INFINITY, b, t, nu), &mut d.u_hi)?;
    // No warm start = zeros (the kernels treat a null u_init the same way).
    match batch.u_init {
        Some(u) => upload(s, u, &mut d.u_init)?,
        None => upload(s, &vec![0.0; b * t * nu], &mut d.u_init)?,
    }
    s.synchronize().map_err(drv("copying to the device"))
}

/// Copy a solve's results back.
fn download_solution<R: DeviceReal>(s: &Arc<CudaStream>, k: &RenderedKernel, d: &Buffers<R>, b: usize) -> Result<Solution, CudaError> {
    let (t, nx, nu) = (k.horizon, k.nx, k.nu);
    let down_i = |src: &CudaSlice<i32>| -> Result<Vec<i32>, CudaError> {
        let mut h = vec![0i32; b];
        s.memcpy_dtoh(&src.slice(0..b), &mut h).map_err(drv("copying from the device"))?;
        Ok(h)
    };
    super::kernel_solution(
        download(s, &d.x_out, b * t * nx)?,
        download(s, &d.u_out, b * t * nu)?,
        download(s, &d.cost_out, b)?,
        &down_i(&d.iters_out)?,
        &down_i(&d.status_out)?,
    )
    .map_err(CudaError::Batch)
}

/// The warp-per-problem layout: copy in, launch (WARPS_PER_BLOCK warps of 32 lanes per block,
/// one problem per warp), copy out.
fn launch_warp<R: DeviceReal>(
    s: &Arc<CudaStream>,
    func: &CudaFunction,
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    st: &mut StagedState<R>,
    params: &[f64],
    batch: &Batch<'_>,
) -> Result<(Solution, LaunchTiming), CudaError> {
    let b = batch.size;
    if params.len() != k.params_len(b) {
        return Err(CudaError::Batch(format!("{} parameters, the kernel takes {}", params.len(), k.params_len(b))));
    }
    let nb = i32::try_from(b).map_err(|_| CudaError::Batch(format!("{b} problems do not fit an int")))?;
    let t0 = Instant::now();
    upload_solve_inputs(s, k, d, params, batch)?;
    let t1 = Instant::now();
    let warps = WARPS_PER_BLOCK.min(b as u32).max(1);
    let cfg = LaunchConfig { grid_dim: ((b as u32).div_ceil(warps), 1, 1), block_dim: (32 * warps, 1, 1), shared_mem_bytes: 0 };
    let mut args = s.launch_builder(func);
    args.arg(&d.params)
        .arg(&d.x_init)
        .arg(&d.cost_hess)
        .arg(&d.cost_lin)
        .arg(&d.u_lo)
        .arg(&d.u_hi)
        .arg(&d.u_init)
        .arg(&mut st.state)
        .arg(&mut st.istate)
        .arg(&mut d.x_out)
        .arg(&mut d.u_out)
        .arg(&mut d.cost_out)
        .arg(&mut d.iters_out)
        .arg(&mut d.status_out)
        .arg(&nb);
    // SAFETY: the argument list matches the kernel's extern "C" signature in
    // templates/ilqr_solve_warp.cu.tera (7 const input pointers of the kernel's real type, the
    // workspace (real) and its ints, 3 real and 2 int output pointers, `int batch`) for the
    // precision the buffers were allocated in; the workspace holds capacity ≥ b problems'
    // blocks of the layout's size (checked against the template by its static_assert); blocks
    // hold whole warps, and warps past the batch return as a whole.
    unsafe { args.launch(cfg) }.map_err(drv("launching the warp solve kernel"))?;
    s.synchronize().map_err(drv("running the warp solve kernel"))?;
    let t2 = Instant::now();
    let sol = download_solution(s, k, d, b)?;
    let t3 = Instant::now();
    Ok((sol, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds: 1 }))
}

/// The three-stage layout: copy in; init; rounds of linearise, Riccati, line search until the
/// line search counts no active problem; finish; copy out.
fn launch_staged<R: DeviceReal>(
    s: &Arc<CudaStream>,
    funcs: &[CudaFunction; 5],
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    st: &mut StagedState<R>,
    params: &[f64],
    batch: &Batch<'_>,
) -> Result<(Solution, LaunchTiming), CudaError> {
    let b = batch.size;
    if params.len() != k.params_len(b) {
        return Err(CudaError::Batch(format!("{} parameters, the kernel takes {}", params.len(), k.params_len(b))));
    }
    let plan = StagedPlan::new(k, b, STAGED_BLOCK).map_err(CudaError::Batch)?;
    let nb = i32::try_from(b).map_err(|_| CudaError::Batch(format!("{b} problems do not fit an int")))?;
    let t0 = Instant::now();
    upload_solve_inputs(s, k, d, params, batch)?;
    let t1 = Instant::now();
    let cfg = |(g, blk): (u32, u32)| LaunchConfig { grid_dim: (g, 1, 1), block_dim: (blk, 1, 1), shared_mem_bytes: 0 };
    let run = |f: &CudaFunction, shape: (u32, u32), what: &'static str, d: &mut Buffers<R>, st: &mut StagedState<R>| {
        let mut args = s.launch_builder(f);
        args.arg(&d.params)
            .arg(&d.x_init)
            .arg(&d.cost_hess)
            .arg(&d.cost_lin)
            .arg(&d.u_lo)
            .arg(&d.u_hi)
            .arg(&d.u_init)
            .arg(&mut st.state)
            .arg(&mut st.istate)
            .arg(&mut d.x_out)
            .arg(&mut d.u_out)
            .arg(&mut d.cost_out)
            .arg(&mut d.iters_out)
            .arg(&mut d.status_out)
            .arg(&mut st.active)
            .arg(&nb);
        // SAFETY: every entry point of the stage kernels has this argument list (7 const input
        // pointers of the kernel's real type, the state (real) and istate (int), 3 real and 2
        // int output pointers, the int counter, `int batch`; templates/ilqr_stage*.cu.tera),
        // for the precision the buffers were allocated in; the state holds capacity ≥ b
        // problems' blocks of the layout's size (checked against the template by its
        // static_assert), and the launch shapes come from StagedPlan (whole problems per
        // line-search block); threads past the batch do nothing but the block barrier.
        unsafe { args.launch(cfg(shape)) }.map(|_| ()).map_err(drv(what))
    };
    run(&funcs[0], plan.per_problem, "launching the init kernel", d, st)?;
    let mut rounds = 0;
    loop {
        if rounds == plan.max_rounds {
            return Err(CudaError::Driver { what: "running the three-stage solve", message: format!("still active after {rounds} rounds") });
        }
        rounds += 1;
        run(&funcs[1], plan.per_stage, "launching the linearisation kernel", d, st)?;
        run(&funcs[2], plan.per_problem, "launching the Riccati kernel", d, st)?;
        s.memcpy_htod(&[0i32], &mut st.active).map_err(drv("zeroing the active counter"))?;
        run(&funcs[3], plan.per_step, "launching the line-search kernel", d, st)?;
        let mut active = [0i32];
        s.memcpy_dtoh(&st.active, &mut active).map_err(drv("reading the active counter"))?;
        s.synchronize().map_err(drv("running the three-stage kernels"))?;
        if active[0] == 0 {
            break;
        }
    }
    run(&funcs[4], plan.per_problem, "launching the finish kernel", d, st)?;
    s.synchronize().map_err(drv("running the finish kernel"))?;
    let t2 = Instant::now();
    let sol = download_solution(s, k, d, b)?;
    let t3 = Instant::now();
    Ok((sol, LaunchTiming { upload: t1 - t0, kernel: t2 - t1, download: t3 - t2, rounds }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_expand_to_kernel_layout() {
        assert_eq!(expand_bound(Bound::PerControl(&[1.0, 2.0]), 0.0, 2, 1, 2), [1.0, 2.0, 1.0, 2.0]);
        assert_eq!(expand_bound(Bound::None, f64::INFINITY, 1, 2, 1), [f64::INFINITY; 2]);
        assert_eq!(expand_bound(Bound::PerStage(&[1.0, 2.0, 3.0, 4.0]), 0.0, 2, 2, 1), [1.0, 2.0, 3.0, 4.0]);
    }
}
