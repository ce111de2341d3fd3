//! The CUDA backend: the rendered single-launch forward-solve kernel
//! (`templates/ilqr_solve.cu.tera`) and the implicit-differentiation backward kernel
//! (`templates/ilqr_backward.cu.tera`), and the warp and three-stage layouts, compiled with
//! NVRTC to a cubin for the device's `sm_XY` (PTX for the driver's JIT as the fallback; both
//! through the module cache of [`super::cache`], memory and disk), loaded through `cudarc`'s
//! driver API and launched over a batch.
//!
//! **Untested on hardware.** This was written and compiled on a machine without a GPU or CUDA
//! driver. The kernel itself is checked (NVRTC + `ptxas` compile it; the host emulation in
//! [`super::host`] runs the same source bit-for-bit against the CPU solver); what has never run
//! is this module: context creation, module loading, copies and the launch. `scripts/gpu-checks.sh`
//! is the check to run on a machine with a GPU.
//!
//! The launch sequences (buffers, uploads, kernels, grids, the three-stage rounds, downloads) are
//! not here: they are [`super::orchestrate`]'s, shared with host emulation, which runs them in
//! the tests. This module is the device under them (`device.rs`): `cudarc` allocations, copies (every read
//! synchronises the stream before the host looks at the data) and the launch of an entry point
//! with the argument list of [`super::args`].
//!
//! All `unsafe` of the CUDA backend is in this module's files, in `GpuDevice`'s launch (`device.rs`) and in
//! module loading (`module.rs`, the driver's JIT error log); the public API
//! ([`CudaSolver::new`], [`CudaSolver::solve`], [`CudaSolver::backward`]) is safe. Every `cudarc` call runs inside
//! [`std::panic::catch_unwind`], and [`CudaSolver::new`] first checks
//! [`super::driver::driver_available`], so a missing driver is an error, never a panic.
//!
//! The kernels' argument lists are declared once, in [`super::args`].

mod device;
mod module;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

use device::{AnyBuffers, GpuDevice, alloc, ensure_all};
use module::load;
use super::driver::{CudaUnavailable, driver_available, panic_message};
use super::nvrtc::NvrtcError;
use super::orchestrate::{self, BackwardInputs, Blocks, PlanError, backward_buffer_sizes, buffer_sizes};
use super::render::{KernelLayout, KernelOptions, Precision, RenderError, RenderedKernel, render_backward, render_forward};
use mpc_runtime::model::Model;
use mpc_runtime::backend::{Backend, BackendError, BackendKind, check_backward};
use mpc_runtime::solver::{Batch, Gradients, Solution};

/// Threads per block of the one-thread-per-problem launches (the single-launch kernel keeps a
/// large per-thread workspace in local memory, so small blocks).
pub const BLOCK_SIZE: u32 = 64;

/// Warps (problems) per block of the warp-per-problem layout.
pub const WARPS_PER_BLOCK: u32 = 4;

/// Problems per block of the three-stage layout's kernels (the line search runs NLS times
/// as many threads per block).
pub const STAGED_BLOCK: u32 = 64;

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

impl From<PlanError> for CudaError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Batch(m) | PlanError::Output(m) => CudaError::Batch(m),
            PlanError::StillActive(rounds) => {
                CudaError::Driver { what: "running the three-stage solve", message: format!("still active after {rounds} rounds") }
            }
        }
    }
}

fn drv<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> CudaError {
    move |e| CudaError::Driver { what, message: format!("{e:?}") }
}

fn guard<T>(f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(CudaError::Panic(panic_message(p.as_ref()))))
}

/// The forward solve and the backward pass of model `M` on the GPU, for batches of up to
/// `capacity` problems of one horizon and one set of compile-time solver settings
/// ([`KernelOptions`]; the gradient mode of the backward pass is `opts.solver.gradient`).
pub struct CudaSolver<M: Model> {
    params: Vec<f64>,
    opts: KernelOptions,
    /// The forward kernels: one, or the three stages in order.
    kernels: Vec<RenderedKernel>,
    /// The backward kernel, once prepared.
    backward: Option<RenderedKernel>,
    /// Every loaded entry point by name.
    funcs: HashMap<String, CudaFunction>,
    capacity: usize,
    arch: String,
    stream: Arc<CudaStream>,
    bufs: AnyBuffers,
    last_timing: LaunchTiming,
    ctx: Arc<CudaContext>,
    compile: CompileOptions,
    _model: PhantomData<M>,
}

/// How NVRTC compiles the kernels of a [`CudaSolver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Contract multiply-adds into FMAs (`--fmad`, NVRTC's default `true`). `false` gives the
    /// arithmetic of host emulation's exact build (`HostBuild::Exact`), which the GPU parity
    /// test compares to a few ulp.
    pub fmad: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { fmad: true }
    }
}

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
        f.debug_struct("CudaSolver").field("kernel", &self.kernels[0].kernel).field("arch", &self.arch).finish_non_exhaustive()
    }
}

impl<M: Model> CudaSolver<M> {
    /// Check the driver, render the forward-solve kernels of `opts.layout` for `model` (its
    /// parameters are uploaded on every solve), compile them with NVRTC for device 0's compute
    /// capability, load them and allocate the device buffers for `capacity` problems.
    pub fn new(model: &M, capacity: usize, opts: &KernelOptions) -> Result<Self, CudaError> {
        Self::new_with(model, capacity, opts, CompileOptions::default())
    }

    /// [`CudaSolver::new`] with NVRTC settings `compile` (the parity test builds without FMA
    /// contraction).
    pub fn new_with(model: &M, capacity: usize, opts: &KernelOptions, compile: CompileOptions) -> Result<Self, CudaError> {
        driver_available()?;
        let kernels = render_forward::<M>(opts)?;
        let capacity = capacity.max(1);
        guard(|| {
            let ctx = CudaContext::new(0).map_err(drv("creating the context on device 0"))?;
            let (major, minor) = ctx.compute_capability().map_err(drv("reading the compute capability"))?;
            let arch = format!("compute_{major}{minor}");
            let mut funcs = HashMap::new();
            for k in &kernels {
                load(&ctx, &arch, k, compile, &mut funcs)?;
            }
            let stream = ctx.default_stream();
            let sizes = buffer_sizes(&kernels[0], opts.layout, capacity);
            let bufs = match kernels[0].precision {
                Precision::F32 => AnyBuffers::F32(alloc(&stream, &funcs, &sizes)?),
                Precision::F64 => AnyBuffers::F64(alloc(&stream, &funcs, &sizes)?),
            };
            Ok(CudaSolver {
                params: model.param_values(),
                opts: opts.clone(),
                kernels,
                backward: None,
                funcs,
                capacity,
                arch,
                stream,
                bufs,
                last_timing: LaunchTiming::default(),
                ctx,
                compile,
                _model: PhantomData,
            })
        })
    }

    /// The rendered forward kernel this solver runs (for the three-stage layout, stage 1).
    pub fn kernel(&self) -> &RenderedKernel {
        &self.kernels[0]
    }

    /// Every rendered forward kernel this solver runs (one, or the three stages).
    pub fn kernels(&self) -> Vec<&RenderedKernel> {
        self.kernels.iter().collect()
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
            let (ctx, stream, arch, funcs, bufs) = (&self.ctx, &self.stream, &self.arch, &mut self.funcs, &mut self.bufs);
            let compile = self.compile;
            let sizes = backward_buffer_sizes(&kernel, self.capacity);
            guard(|| {
                load(ctx, arch, &kernel, compile, funcs)?;
                match bufs {
                    AnyBuffers::F32(b) => ensure_all(&mut GpuDevice { stream, funcs, bufs: b }, &sizes),
                    AnyBuffers::F64(b) => ensure_all(&mut GpuDevice { stream, funcs, bufs: b }, &sizes),
                }
            })?;
            self.backward = Some(kernel);
        }
        Ok(self.backward.as_ref().expect("just set"))
    }

    /// Gradients of a loss with respect to `C`, `c`, `x_init` (and the parameters with
    /// `opts.solver.grad_params`) at the solution `sol` of `batch`, given the upstream
    /// gradients `grad_x` (B×T×nx) and `grad_u` (B×T×nu), on the GPU: the same contract as the
    /// CPU [`mpc_runtime::Solver::backward`] (implicit differentiation, active bounds fixed, the
    /// Hessian of `opts.solver.gradient`). The first call compiles the kernel (see
    /// [`CudaSolver::prepare_backward`]).
    pub fn backward(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64]) -> Result<Gradients, CudaError> {
        if batch.size > self.capacity {
            return Err(CudaError::Batch(format!("{} problems, capacity {}", batch.size, self.capacity)));
        }
        self.prepare_backward()?;
        let k = self.backward.as_ref().expect("prepared");
        let inp = BackwardInputs { sol, grad_x, grad_u, params: self.opts.solver.grad_params };
        let blocks = Blocks::backward();
        let (params, stream, funcs) = (&self.params, &self.stream, &self.funcs);
        let (grads, timing) = guard(|| match &mut self.bufs {
            AnyBuffers::F32(b) => orchestrate::backward(&mut GpuDevice { stream, funcs, bufs: b }, k, params, batch, &inp, blocks),
            AnyBuffers::F64(b) => orchestrate::backward(&mut GpuDevice { stream, funcs, bufs: b }, k, params, batch, &inp, blocks),
        })?;
        self.last_timing = timing;
        Ok(grads)
    }

    /// The model parameters the kernels get: one set (NP, the model's at construction), or with
    /// [`KernelOptions::per_problem_params`] one per problem (B×NP, in `PARAM_NAMES` order) for
    /// the next batches of B problems. Checked against each batch when it is solved.
    pub fn set_params(&mut self, params: Vec<f64>) -> Result<(), CudaError> {
        orchestrate::check_params(&self.kernels[0], &params).map_err(CudaError::Batch)?;
        self.params = params;
        Ok(())
    }

    /// Solve `batch` on the GPU with the layout's launch sequence ([`super::orchestrate`]).
    /// Inputs are converted to the kernel's precision, results back to `f64`.
    pub fn solve(&mut self, batch: &Batch<'_>) -> Result<Solution, CudaError> {
        if batch.size > self.capacity {
            return Err(CudaError::Batch(format!("{} problems, capacity {}", batch.size, self.capacity)));
        }
        let blocks = Blocks::forward(self.opts.layout);
        let ks: Vec<&RenderedKernel> = self.kernels.iter().collect();
        let (layout, params, stream, funcs) = (self.opts.layout, &self.params, &self.stream, &self.funcs);
        let (sol, timing) = guard(|| match &mut self.bufs {
            AnyBuffers::F32(b) => orchestrate::solve(&mut GpuDevice { stream, funcs, bufs: b }, layout, &ks, params, batch, blocks),
            AnyBuffers::F64(b) => orchestrate::solve(&mut GpuDevice { stream, funcs, bufs: b }, layout, &ks, params, batch, blocks),
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

impl From<CudaError> for BackendError {
    fn from(e: CudaError) -> Self {
        match e {
            CudaError::Unavailable(u) => BackendError::Unavailable(u.to_string()),
            e @ (CudaError::Render(_) | CudaError::Nvrtc(_)) => BackendError::Build(e.to_string()),
            CudaError::Batch(m) => BackendError::Shape(m),
            e @ (CudaError::Driver { .. } | CudaError::Panic(_)) => BackendError::Device(e.to_string()),
        }
    }
}

impl<M: Model> Backend for CudaSolver<M> {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn horizon(&self) -> usize {
        self.opts.horizon
    }

    fn dims(&self) -> (usize, usize) {
        (M::NX, M::NU)
    }

    fn try_solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) -> Result<(), BackendError> {
        check_solve(batch, self.capacity, self.opts.horizon, M::NX, M::NU)?;
        *sol = self.solve(batch)?;
        Ok(())
    }

    fn try_backward_into(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64], out: &mut Gradients) -> Result<(), BackendError> {
        check_backward_inputs(batch, self.capacity, sol, (grad_x, grad_u), self.opts.horizon, M::NX, M::NU)?;
        *out = self.backward(batch, sol, grad_x, grad_u)?;
        Ok(())
    }

    fn last_kernel_time(&self) -> Option<Duration> {
        Some(self.last_timing.kernel)
    }
}

/// The checks of a kernel backend's forward solve: [`BackendError::Capacity`] when `batch` is
/// larger than `capacity`, else the batch's shapes against `T`, `nx`, `nu`.
pub(crate) fn check_solve(batch: &Batch<'_>, capacity: usize, horizon: usize, nx: usize, nu: usize) -> Result<(), BackendError> {
    if batch.size > capacity {
        return Err(BackendError::Capacity { batch: batch.size, capacity });
    }
    batch.check(horizon, nx, nu).map_err(BackendError::Shape)
}

/// [`check_solve`] for a backward pass: also the solution and the upstream gradients.
pub(crate) fn check_backward_inputs(
    batch: &Batch<'_>,
    capacity: usize,
    sol: &Solution,
    grad: (&[f64], &[f64]),
    horizon: usize,
    nx: usize,
    nu: usize,
) -> Result<(), BackendError> {
    check_solve(batch, capacity, horizon, nx, nu)?;
    check_backward(batch, sol, grad.0, grad.1, horizon, nx, nu)
}
