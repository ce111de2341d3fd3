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
//! is this file: context creation, module loading, copies and the launch. `scripts/gpu-checks.sh`
//! is the check to run on a machine with a GPU.
//!
//! The launch sequences (buffers, uploads, kernels, grids, the three-stage rounds, downloads) are
//! not here: they are [`super::orchestrate`]'s, shared with host emulation, which runs them in
//! the tests. This file is the device under them: `cudarc` allocations, copies (every read
//! synchronises the stream before the host looks at the data) and the launch of an entry point
//! with the argument list of [`super::args`].
//!
//! All `unsafe` of the CUDA backend is in this file, in `GpuDevice`'s launch; the public API
//! ([`CudaSolver::new`], [`CudaSolver::solve`], [`CudaSolver::backward`]) is safe. Every `cudarc` call runs inside
//! [`std::panic::catch_unwind`], and [`CudaSolver::new`] first checks
//! [`super::driver::driver_available`], so a missing driver is an error, never a panic.
//!
//! The kernels' argument lists are declared once, in [`super::args`].

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::args::{Arg, Buf};
use super::driver::{CudaUnavailable, driver_available, panic_message};
use super::nvrtc::{NvrtcError, NvrtcOptions};
use super::orchestrate::{self, BackwardInputs, Blocks, KernelDevice, KernelReal, PlanError, backward_buffer_sizes, buffer_sizes};
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

/// NVRTC-compile `source` for `opts`, or take the PTX from the module cache (memory, then
/// disk: [`super::cache`]).
fn cached_ptx(source: &str, opts: &NvrtcOptions) -> Result<String, NvrtcError> {
    super::cache::global().get_or_compile(source, opts)
}

/// `f32` / `f64` as exchanged with the device.
trait DeviceReal: KernelReal + DeviceRepr + ValidAsZeroBits + Unpin {}
impl<R: KernelReal + DeviceRepr + ValidAsZeroBits + Unpin> DeviceReal for R {}

/// Device memory by buffer name, allocated for the solver's capacity and grown only if a call
/// needs more; `null` marks buffers bound as null pointers for the next launches.
struct GpuBuffers<R> {
    reals: HashMap<Buf, CudaSlice<R>>,
    ints: HashMap<Buf, CudaSlice<i32>>,
    null: HashSet<Buf>,
}

impl<R> Default for GpuBuffers<R> {
    fn default() -> Self {
        GpuBuffers { reals: HashMap::new(), ints: HashMap::new(), null: HashSet::new() }
    }
}

enum AnyBuffers {
    F32(GpuBuffers<f32>),
    F64(GpuBuffers<f64>),
}

/// The GPU as a [`KernelDevice`]: the stream, the loaded entry points and the buffers.
struct GpuDevice<'a, R> {
    stream: &'a Arc<CudaStream>,
    funcs: &'a HashMap<String, CudaFunction>,
    bufs: &'a mut GpuBuffers<R>,
}

impl<R: DeviceReal> KernelDevice for GpuDevice<'_, R> {
    type Error = CudaError;

    fn ensure(&mut self, buf: Buf, len: usize) -> Result<(), CudaError> {
        if len == 0 {
            self.bufs.null.insert(buf);
            return Ok(());
        }
        self.bufs.null.remove(&buf);
        let s = self.stream;
        if buf.is_int() {
            if self.bufs.ints.get(&buf).is_none_or(|v| v.len() < len) {
                self.bufs.ints.insert(buf, s.alloc_zeros::<i32>(len).map_err(drv("allocating device memory"))?);
            }
        } else if self.bufs.reals.get(&buf).is_none_or(|v| v.len() < len) {
            self.bufs.reals.insert(buf, s.alloc_zeros::<R>(len).map_err(drv("allocating device memory"))?);
        }
        Ok(())
    }

    fn write(&mut self, buf: Buf, data: &[f64]) -> Result<(), CudaError> {
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.bufs.reals.get_mut(&buf).filter(|d| d.len() >= data.len());
        let dst = dst.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {} entries do not fit the buffer", data.len())))?;
        let host: Vec<R> = data.iter().map(|&x| R::from_f64(x)).collect();
        // From pageable memory the driver stages the data before it returns, so `host` may go;
        // the orchestration synchronises once after all uploads.
        self.stream.memcpy_htod(&host, &mut dst.slice_mut(0..data.len())).map_err(drv("copying to the device"))
    }

    fn write_ints(&mut self, buf: Buf, data: &[i32]) -> Result<(), CudaError> {
        let dst = self.bufs.ints.get_mut(&buf).filter(|d| d.len() >= data.len());
        let dst = dst.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {} entries do not fit the buffer", data.len())))?;
        self.stream.memcpy_htod(data, &mut dst.slice_mut(0..data.len())).map_err(drv("copying to the device"))
    }

    fn read(&mut self, buf: Buf, len: usize) -> Result<Vec<f64>, CudaError> {
        let src = self.bufs.reals.get(&buf).filter(|d| d.len() >= len);
        let src = src.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {len} entries read from a smaller buffer")))?;
        let mut h = vec![R::from_f64(0.0); len];
        self.stream.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
        self.stream.synchronize().map_err(drv("copying from the device"))?;
        Ok(h.into_iter().map(R::to_f64).collect())
    }

    fn read_ints(&mut self, buf: Buf, len: usize) -> Result<Vec<i32>, CudaError> {
        let src = self.bufs.ints.get(&buf).filter(|d| d.len() >= len);
        let src = src.ok_or_else(|| CudaError::Batch(format!("{buf:?}: {len} entries read from a smaller buffer")))?;
        let mut h = vec![0i32; len];
        self.stream.memcpy_dtoh(&src.slice(0..len), &mut h).map_err(drv("copying from the device"))?;
        self.stream.synchronize().map_err(drv("copying from the device"))?;
        Ok(h)
    }

    fn launch(&mut self, entry: &str, grid: u32, block: u32, args: &[Arg], batch: i32) -> Result<(), CudaError> {
        let func = self.funcs.get(entry).ok_or_else(|| CudaError::Batch(format!("kernel entry point {entry} is not loaded")))?;
        let s: &CudaStream = self.stream;
        // Each buffer's device address (0 for a null one), with cudarc's stream-ordering guards
        // held until the launch is issued.
        let mut guards = Vec::new();
        let mut ptrs: Vec<u64> = Vec::with_capacity(args.len());
        for a in args {
            let p = match a.buf {
                Some(b) if !self.bufs.null.contains(&b) => {
                    let (p, g) = if b.is_int() {
                        self.bufs.ints.get(&b).map(|v| v.device_ptr(s))
                    } else {
                        self.bufs.reals.get(&b).map(|v| v.device_ptr(s))
                    }
                    .ok_or_else(|| CudaError::Batch(format!("{entry}: buffer {b:?} was never allocated")))?;
                    guards.push(g);
                    p
                }
                _ => 0,
            };
            ptrs.push(p);
        }
        let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 };
        let mut lb = s.launch_builder(func);
        for (a, p) in args.iter().zip(&ptrs) {
            if a.buf.is_some() {
                lb.arg(p);
            } else {
                lb.arg(&batch);
            }
        }
        // SAFETY: the argument list is the kernel's own (`args` of its kind, checked against
        // every rendered `extern "C"` signature by cuda::args' tests): each buffer argument is
        // an 8-byte device address of the kernel's real type or int (the buffers were allocated
        // in the precision of the kernels they serve), null only where the kernels accept it
        // (u_init, grad_params, params with NP = 0), then `int batch`. The orchestration ensured
        // every buffer for this batch, so the kernels index within them; threads past the batch
        // return at once.
        unsafe { lb.launch(cfg) }.map_err(drv("launching a kernel"))?;
        drop(guards);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(drv("running the kernels"))
    }

    fn max_block(&mut self, entry: &str) -> Result<u32, CudaError> {
        let func = self.funcs.get(entry).ok_or_else(|| CudaError::Batch(format!("kernel entry point {entry} is not loaded")))?;
        let n = func.max_threads_per_block().map_err(drv("reading the kernel's threads-per-block limit"))?;
        Ok(n.max(0) as u32)
    }
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

/// Compile `k` for the device's architecture `arch` (`compute_XY`), load it and add its entry
/// points to `funcs`. First as a cubin for `sm_XY` (no driver JIT; runs on any driver of CUDA
/// 12, whereas NVRTC's PTX needs a driver as new as its PTX ISA), then, if NVRTC cannot target
/// the device or the driver refuses the cubin, as PTX for the driver to JIT. Both through the
/// module cache ([`super::cache`]). An error names both attempts.
fn load(
    ctx: &Arc<CudaContext>,
    arch: &str,
    k: &RenderedKernel,
    compile: CompileOptions,
    funcs: &mut HashMap<String, CudaFunction>,
) -> Result<(), CudaError> {
    let nv = NvrtcOptions { program_name: k.file_name(), fmad: compile.fmad, ..NvrtcOptions::new(arch.to_string()) };
    let cubin = super::cache::global()
        .get_or_compile_cubin(&k.source, &nv)
        .map_err(|e| format!("cubin: {e}"))
        .and_then(|bin| ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bin)).map_err(|e| format!("loading the cubin: {e:?}")));
    let module = match cubin {
        Ok(m) => m,
        Err(first) => {
            let (driver, nvrtc) = (super::driver::driver_cuda_version()?, super::nvrtc::nvrtc_version()?);
            super::driver::ptx_gate(driver, nvrtc)
                .map_err(|gate| CudaError::Driver { what: "loading the module", message: format!("{first}; no PTX fallback: {gate}") })?;
            let ptx = cached_ptx(&k.source, &nv)?;
            ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx.clone())).map_err(|e| CudaError::Driver {
                what: "loading the module",
                message: format!("{first}; then PTX for {arch}: {e:?}; the driver's JIT log: {}", jit_error_log(ctx, ptx)),
            })?
        }
    };
    for e in &k.entries {
        funcs.insert(e.clone(), module.load_function(e).map_err(drv("finding the kernel"))?);
    }
    Ok(())
}

/// The driver's JIT error log for the PTX `ptx`: the module loaded once more, with log buffers,
/// only to explain a load that failed (cudarc's `load_module` keeps the log to itself).
fn jit_error_log(ctx: &Arc<CudaContext>, ptx: String) -> String {
    use cudarc::driver::sys;
    use std::ffi::c_void;
    if ctx.bind_to_thread().is_err() {
        return "(unavailable: the context could not be made current)".into();
    }
    let mut image = ptx.into_bytes();
    image.push(0);
    let mut log = vec![0u8; 1 << 14];
    let mut opts = [sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER, sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES];
    let mut vals: [*mut c_void; 2] = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
    let mut module: sys::CUmodule = std::ptr::null_mut();
    // SAFETY: `image` is NUL-terminated PTX text; the options are the error-log buffer (`log`,
    // alive for the call) and its size passed by value, as cuModuleLoadDataEx documents; a module
    // that loads after all is unloaded at once.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe {
        let r = sys::cuModuleLoadDataEx(&mut module, image.as_ptr() as *const c_void, 2, opts.as_mut_ptr(), vals.as_mut_ptr());
        if r == sys::CUresult::CUDA_SUCCESS && !module.is_null() {
            sys::cuModuleUnload(module);
        }
        r
    }));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
    match (r, text.is_empty()) {
        (Err(_), _) => "(unavailable: cudarc panicked)".into(),
        (Ok(code), true) => format!("(empty; {code:?})"),
        (Ok(_), false) => text,
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

fn ensure_all<D: KernelDevice>(dev: &mut D, sizes: &[(Buf, usize)]) -> Result<(), D::Error> {
    for &(buf, len) in sizes {
        dev.ensure(buf, len.max(1))?;
    }
    Ok(())
}

fn alloc<R: DeviceReal>(stream: &Arc<CudaStream>, funcs: &HashMap<String, CudaFunction>, sizes: &[(Buf, usize)]) -> Result<GpuBuffers<R>, CudaError> {
    let mut bufs = GpuBuffers::default();
    ensure_all(&mut GpuDevice { stream, funcs, bufs: &mut bufs }, sizes)?;
    Ok(bufs)
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
        check_capacity(batch, self.capacity)?;
        batch.check(self.opts.horizon, M::NX, M::NU).map_err(BackendError::Shape)?;
        *sol = self.solve(batch)?;
        Ok(())
    }

    fn try_backward_into(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64], out: &mut Gradients) -> Result<(), BackendError> {
        check_capacity(batch, self.capacity)?;
        check_backward(batch, sol, grad_x, grad_u, self.opts.horizon, M::NX, M::NU)?;
        *out = self.backward(batch, sol, grad_x, grad_u)?;
        Ok(())
    }

    fn last_kernel_time(&self) -> Option<Duration> {
        Some(self.last_timing.kernel)
    }
}

/// [`BackendError::Capacity`] when `batch` is larger than `capacity`.
pub(crate) fn check_capacity(batch: &Batch<'_>, capacity: usize) -> Result<(), BackendError> {
    if batch.size > capacity { Err(BackendError::Capacity { batch: batch.size, capacity }) } else { Ok(()) }
}
