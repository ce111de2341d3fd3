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
//!   converged_out, batch`;
//! * backward: `params, C, c, u_lo, u_hi, x, u, grad_x, grad_u, grad_C, grad_c, grad_x_init,
//!   batch`.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::driver::{CudaUnavailable, driver_available, panic_message};
use super::nvrtc::{NvrtcError, NvrtcOptions};
use super::render::{KernelOptions, Precision, RenderError, RenderedKernel, render_backward, render_solve};
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
    converged_out: CudaSlice<i32>,
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
    func: CudaFunction,
    bufs: AnyBuffers,
    backward: Option<Backward>,
    ctx: Arc<CudaContext>,
    _model: PhantomData<M>,
}

impl<M: Model> std::fmt::Debug for CudaSolver<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaSolver").field("kernel", &self.kernel.kernel).field("arch", &self.arch).finish_non_exhaustive()
    }
}

impl<M: Model> CudaSolver<M> {
    /// Check the driver, render the solve kernel for `model` (its parameters are uploaded on
    /// every solve), compile it with NVRTC for device 0's compute capability, load it and
    /// allocate the device buffers for `capacity` problems.
    pub fn new(model: &M, capacity: usize, opts: &KernelOptions) -> Result<Self, CudaError> {
        driver_available()?;
        let kernel = render_solve::<M>(opts)?;
        let capacity = capacity.max(1);
        guard(|| {
            let ctx = CudaContext::new(0).map_err(drv("creating the context on device 0"))?;
            let (major, minor) = ctx.compute_capability().map_err(drv("reading the compute capability"))?;
            let arch = format!("compute_{major}{minor}");
            let nv = NvrtcOptions { program_name: kernel.file_name(), ..NvrtcOptions::new(arch.clone()) };
            let ptx = cached_ptx(&kernel.source, &nv)?;
            let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(drv("loading the module"))?;
            let func = module.load_function(&kernel.kernel).map_err(drv("finding the kernel"))?;
            let stream = ctx.default_stream();
            let bufs = match kernel.precision {
                Precision::F32 => AnyBuffers::F32(alloc(&stream, &kernel, capacity)?),
                Precision::F64 => AnyBuffers::F64(alloc(&stream, &kernel, capacity)?),
            };
            Ok(CudaSolver {
                params: model.param_values(),
                opts: opts.clone(),
                kernel,
                capacity,
                arch,
                stream,
                func,
                bufs,
                backward: None,
                ctx,
                _model: PhantomData,
            })
        })
    }

    /// The rendered kernel this solver runs.
    pub fn kernel(&self) -> &RenderedKernel {
        &self.kernel
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
        let inputs = BackwardInputs { batch, sol, grad_x, grad_u };
        guard(|| match (&mut self.bufs, &mut bw.bufs) {
            (AnyBuffers::F32(d), AnyBackwardBuffers::F32(g)) => launch_backward(stream, &bw.func, &bw.kernel, d, g, params, &inputs),
            (AnyBuffers::F64(d), AnyBackwardBuffers::F64(g)) => launch_backward(stream, &bw.func, &bw.kernel, d, g, params, &inputs),
            _ => Err(CudaError::Batch("solve and backward kernels differ in precision".into())),
        })
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
        let (params, kernel, stream, func) = (&self.params, &self.kernel, &self.stream, &self.func);
        guard(|| match &mut self.bufs {
            AnyBuffers::F32(b) => launch(stream, func, kernel, b, params, batch),
            AnyBuffers::F64(b) => launch(stream, func, kernel, b, params, batch),
        })
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
        params: z(k.np)?,
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
        converged_out: zi(cap)?,
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
    })
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
) -> Result<Gradients, CudaError> {
    let batch = inp.batch;
    let (b, t, nx, nu) = (batch.size, k.horizon, k.nx, k.nu);
    let n = nx + nu;
    if params.len() != k.np {
        return Err(CudaError::Batch(format!("{} parameters, the model has {}", params.len(), k.np)));
    }
    upload(s, params, &mut d.params)?;
    upload(s, batch.cost_hess, &mut d.cost_hess)?;
    upload(s, batch.cost_lin, &mut d.cost_lin)?;
    upload(s, &expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu), &mut d.u_lo)?;
    upload(s, &expand_bound(batch.u_upper, f64::INFINITY, b, t, nu), &mut d.u_hi)?;
    upload(s, &inp.sol.x, &mut g.x)?;
    upload(s, &inp.sol.u, &mut g.u)?;
    upload(s, inp.grad_x, &mut g.grad_x)?;
    upload(s, inp.grad_u, &mut g.grad_u)?;
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
        .arg(&mut g.grad_x_init)
        .arg(&nb);
    // SAFETY: the argument list matches the kernel's extern "C" signature in
    // templates/ilqr_backward.cu.tera (9 const and 3 mutable device pointers of the kernel's
    // real type, then `int batch`) for the precision the buffers were allocated in (all from
    // RenderedKernels of one precision); every buffer holds at least `capacity ≥ b` problems'
    // worth of the sizes the kernel indexes, and threads with index ≥ b return at once.
    unsafe { args.launch(cfg) }.map_err(drv("launching the backward kernel"))?;
    s.synchronize().map_err(drv("running the backward kernel"))?;
    Ok(Gradients {
        cost_hess: download(s, &g.grad_cost_hess, b * t * n * n)?,
        cost_lin: download(s, &g.grad_cost_lin, b * t * n)?,
        x_init: download(s, &g.grad_x_init, b * nx)?,
    })
}

/// Copy in, launch, copy out. `batch` has been checked against the kernel and the capacity.
fn launch<R: DeviceReal>(
    s: &Arc<CudaStream>,
    func: &CudaFunction,
    k: &RenderedKernel,
    d: &mut Buffers<R>,
    params: &[f64],
    batch: &Batch<'_>,
) -> Result<Solution, CudaError> {
    let (b, t, nx, nu) = (batch.size, k.horizon, k.nx, k.nu);
    let conv = |v: &[f64]| v.iter().map(|&x| R::from_f64(x)).collect::<Vec<R>>();
    let up = |src: &[f64], dst: &mut CudaSlice<R>| -> Result<(), CudaError> {
        if src.is_empty() {
            return Ok(());
        }
        s.memcpy_htod(&conv(src), &mut dst.slice_mut(0..src.len())).map_err(drv("copying to the device"))
    };
    if params.len() != k.np {
        return Err(CudaError::Batch(format!("{} parameters, the model has {}", params.len(), k.np)));
    }
    up(params, &mut d.params)?;
    up(batch.x_init, &mut d.x_init)?;
    up(batch.cost_hess, &mut d.cost_hess)?;
    up(batch.cost_lin, &mut d.cost_lin)?;
    up(&expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu), &mut d.u_lo)?;
    up(&expand_bound(batch.u_upper, f64::INFINITY, b, t, nu), &mut d.u_hi)?;
    // No warm start = zeros (the kernel treats a null u_init the same way).
    match batch.u_init {
        Some(u) => up(u, &mut d.u_init)?,
        None => up(&vec![0.0; b * t * nu], &mut d.u_init)?,
    }

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
        .arg(&mut d.converged_out)
        .arg(&n);
    // SAFETY: the argument list matches the kernel's extern "C" signature in
    // templates/ilqr_solve.cu.tera (12 device pointers of the kernel's real type / int, then
    // `int batch`) for the precision the buffers were allocated in (both from the same
    // RenderedKernel); every buffer holds at least `capacity ≥ b` problems' worth of the sizes
    // the kernel indexes, and threads with index ≥ b return at once.
    unsafe { args.launch(cfg) }.map_err(drv("launching the solve kernel"))?;
    s.synchronize().map_err(drv("running the solve kernel"))?;

    let down = |src: &CudaSlice<R>, len: usize| -> Result<Vec<f64>, CudaError> {
        let mut h = vec![R::from_f64(0.0); len];
        s.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
        Ok(h.into_iter().map(R::to_f64).collect())
    };
    let down_i = |src: &CudaSlice<i32>| -> Result<Vec<i32>, CudaError> {
        let mut h = vec![0i32; b];
        s.memcpy_dtoh(&src.slice(0..b), &mut h).map_err(drv("copying from the device"))?;
        Ok(h)
    };
    Ok(Solution {
        x: down(&d.x_out, b * t * nx)?,
        u: down(&d.u_out, b * t * nu)?,
        cost: down(&d.cost_out, b)?,
        iterations: down_i(&d.iters_out)?.into_iter().map(|v| v.max(0) as usize).collect(),
        converged: down_i(&d.converged_out)?.into_iter().map(|v| v != 0).collect(),
    })
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
