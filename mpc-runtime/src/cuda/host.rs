//! Host emulation of the rendered CUDA kernels: the **same** kernel source is compiled by the
//! host C++ compiler (with `templates/host_compat.h` force-included) into a shared library,
//! loaded with `libloading` and run on the CPU. This is how the GPU kernels' logic is tested on
//! machines without a GPU.
//!
//! A [`HostModule`] holds several kernels (say the solve kernel and both backward kernels of
//! one model and precision) in one library built by one compiler run, so tests pay one host
//! compilation per model and precision.
//!
//! The grid is emulated block after block; the threads of a block run concurrently as
//! `std::thread`s with a real barrier behind `__syncthreads()` (see the header). The solve and
//! backward kernels use one thread per problem and no cooperation, so for them the emulation is
//! exact by construction; the machinery is there for kernels whose threads cooperate.
//!
//! The compiler is `$MPC_HOST_CXX`, else `$CXX`, else the first of `g++`, `c++`, `clang++` on
//! `PATH`; it is run with `-O2 -std=c++17 -fPIC -shared -pthread` and **no** fast-math or FMA
//! contraction (`-ffp-contract=off`), so double results are those of the Rust CPU solver's
//! operation order.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::launch::expand_bound;
use super::launch::StagedPlan;
use super::render::{HOST_COMPAT_H, HOST_COMPAT_NAME, KernelKind, Precision, RenderedKernel, Stage};
use crate::solver::{Batch, GradientMode, Gradients, Solution};

/// Override variable for the host C++ compiler.
pub const HOST_CXX_VAR: &str = "MPC_HOST_CXX";

/// Why a kernel could not be built or run on the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No C++ compiler found.
    #[error("no host C++ compiler found (set MPC_HOST_CXX or CXX, or install g++); tried: {0}")]
    NoCompiler(String),
    /// Writing sources or running the compiler failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// File or program.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The compiler rejected the source; `log` is its output.
    #[error("host compilation of {kernel} failed ({command}):\n{log}")]
    Compile {
        /// Kernel name.
        kernel: String,
        /// The command line.
        command: String,
        /// Compiler output.
        log: String,
    },
    /// Loading the library or finding its entry point failed.
    #[error("loading the host build of {kernel}: {message}")]
    Load {
        /// Kernel name.
        kernel: String,
        /// The loader's message.
        message: String,
    },
    /// The batch does not fit the kernel.
    #[error("batch does not fit kernel {kernel}: {message}")]
    Batch {
        /// Kernel name.
        kernel: String,
        /// What is wrong.
        message: String,
    },
    /// An emulated thread threw.
    #[error("an emulated thread of {0} failed")]
    Launch(String),
}

/// The host C++ compiler to use (see the module docs).
pub fn locate_cxx() -> Result<PathBuf, HostError> {
    for var in [HOST_CXX_VAR, "CXX"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(v));
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["g++", "c++", "clang++"] {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(name);
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    Err(HostError::NoCompiler("$MPC_HOST_CXX, $CXX, g++, c++, clang++ on PATH".into()))
}

/// Name of the C entry point the host wrapper exports for kernel `kernel`.
fn entry_name(kernel: &str) -> String {
    format!("mpc_host_{kernel}")
}

type SolveFn<R> = unsafe extern "C" fn(
    grid: u32,
    block: u32,
    params: *const R,
    x_init: *const R,
    c_hess: *const R,
    c_lin: *const R,
    u_lo: *const R,
    u_hi: *const R,
    u_init: *const R,
    x_out: *mut R,
    u_out: *mut R,
    cost_out: *mut R,
    iters_out: *mut i32,
    status_out: *mut i32,
    batch: i32,
) -> i32;

type BackwardFn<R> = unsafe extern "C" fn(
    grid: u32,
    block: u32,
    params: *const R,
    c_hess: *const R,
    c_lin: *const R,
    u_lo: *const R,
    u_hi: *const R,
    x: *const R,
    u: *const R,
    grad_x: *const R,
    grad_u: *const R,
    grad_c_hess: *mut R,
    grad_c_lin: *mut R,
    grad_x_init: *mut R,
    grad_params: *mut R,
    batch: i32,
) -> i32;

type WarpFn<R> = unsafe extern "C" fn(
    grid: u32,
    block: u32,
    params: *const R,
    x_init: *const R,
    c_hess: *const R,
    c_lin: *const R,
    u_lo: *const R,
    u_hi: *const R,
    u_init: *const R,
    state: *mut R,
    istate: *mut i32,
    x_out: *mut R,
    u_out: *mut R,
    cost_out: *mut R,
    iters_out: *mut i32,
    status_out: *mut i32,
    batch: i32,
) -> i32;

type StagedFn<R> = unsafe extern "C" fn(
    grid: u32,
    block: u32,
    params: *const R,
    x_init: *const R,
    c_hess: *const R,
    c_lin: *const R,
    u_lo: *const R,
    u_hi: *const R,
    u_init: *const R,
    state: *mut R,
    istate: *mut i32,
    x_out: *mut R,
    u_out: *mut R,
    cost_out: *mut R,
    iters_out: *mut i32,
    status_out: *mut i32,
    active: *mut i32,
    batch: i32,
) -> i32;

/// The C parameter list (types only) of a kernel of this kind, after `grid, block`.
fn kernel_params(kind: KernelKind, r: &str) -> Vec<String> {
    let c = |n: usize| std::iter::repeat_n(format!("const {r}*"), n);
    let m = |n: usize| std::iter::repeat_n(format!("{r}*"), n);
    let mut v: Vec<String> = Vec::new();
    match kind {
        KernelKind::Solve => {
            v.extend(c(7));
            v.extend(m(3));
            v.extend(["int*".into(), "int*".into()]);
        }
        KernelKind::Backward(_) => {
            v.extend(c(9));
            v.extend(m(4));
        }
        KernelKind::SolveWarp => {
            v.extend(c(7));
            v.push(format!("{r}*"));
            v.push("int*".into());
            v.extend(m(3));
            v.extend(["int*".into(), "int*".into()]);
        }
        KernelKind::Stage(_) => {
            v.extend(c(7));
            v.push(format!("{r}*"));
            v.push("int*".into());
            v.extend(m(3));
            v.extend(["int*".into(), "int*".into(), "int*".into()]);
        }
    }
    v.push("int".into());
    v
}

/// The host-side wrapper (a translation unit of its own): for every kernel an exported C
/// function `mpc_host_<kernel>(grid, block, args...)` that runs it over a grid through
/// `mpc_host::launch`.
fn wrapper_source(kernels: &[&RenderedKernel]) -> String {
    let mut s = String::from("// Host launchers (generated by mpc_runtime::cuda::host).\n");
    for (k, name) in kernels.iter().flat_map(|k| k.entries.iter().map(move |e| (k, e))) {
        let r = k.precision.c_type();
        let types = kernel_params(k.kind, r);
        let decl = types.join(", ");
        let params: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("{t} a{i}")).collect();
        let args: Vec<String> = (0..types.len()).map(|i| format!("a{i}")).collect();
        s.push_str(&format!(
            "extern \"C\" void {name}({decl});\n\
             extern \"C\" __attribute__((visibility(\"default\"))) int {entry}(unsigned grid, unsigned block, {params}) {{\n    \
             return mpc_host::launch(grid, block, {name}, {args});\n}}\n",
            entry = entry_name(name),
            params = params.join(", "),
            args = args.join(", "),
        ));
    }
    s
}

/// Rendered kernels built for the host into one shared library and loaded: a solve kernel,
/// backward kernels, ... of one model and precision, compiled by one compiler run.
pub struct HostModule {
    kernels: Vec<RenderedKernel>,
    lib: libloading::Library,
    // mpc_host::launch sets process-wide gridDim/blockDim of this library: one launch at a time.
    lock: Mutex<()>,
    /// Seconds the host compiler took.
    pub compile_seconds: f64,
}

/// A host build of a single kernel (see [`HostModule::build`]).
pub type HostKernel = HostModule;

impl std::fmt::Debug for HostModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.kernels.iter().map(|k| k.kernel.as_str()).collect();
        f.debug_struct("HostModule").field("kernels", &names).finish_non_exhaustive()
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io { what, path: path.to_path_buf(), source }
}

impl HostModule {
    /// Compile `kernel` (its source unchanged, `host_compat.h` force-included) with the host
    /// C++ compiler into a shared library and load it.
    pub fn build(kernel: &RenderedKernel) -> Result<Self, HostError> {
        Self::build_many(&[kernel])
    }

    /// Compile several kernels (each its own translation unit, with distinct kernel names)
    /// into one shared library with one compiler run, and load it.
    pub fn build_many(kernels: &[&RenderedKernel]) -> Result<Self, HostError> {
        let first = kernels.first().ok_or_else(|| HostError::Load { kernel: String::new(), message: "no kernels given".into() })?;
        for (i, k) in kernels.iter().enumerate() {
            if kernels[..i].iter().any(|o| o.kernel == k.kernel || o.entries.iter().any(|e| k.entries.contains(e))) {
                return Err(HostError::Load {
                    kernel: k.kernel.clone(),
                    message: "two kernels of one module have this name (their namespaces would collide)".into(),
                });
            }
        }
        let cxx = locate_cxx()?;
        // A private folder (fresh random name, created exclusively, mode 0700): no other user
        // can pre-create it or swap the library between the build and the load.
        let prefix = format!("mpc-host-{}-", first.kernel);
        let dir = crate::private_fs::private_temp_dir(&prefix).map_err(io("creating a private build folder in", &std::env::temp_dir()))?;
        Self::build_in(kernels, &cxx, dir.path())
        // `dir` is removed here; the loaded library stays mapped.
    }

    fn build_in(kernels: &[&RenderedKernel], cxx: &Path, dir: &Path) -> Result<Self, HostError> {
        let name = kernels[0].kernel.clone();
        let header = dir.join(HOST_COMPAT_NAME);
        let wrap = dir.join("launch.cpp");
        let lib_path = dir.join(format!("lib{name}.so"));
        std::fs::write(&header, HOST_COMPAT_H).map_err(io("writing", &header))?;
        let mut srcs = Vec::new();
        for k in kernels {
            let src = dir.join(format!("{}.cu", k.kernel));
            std::fs::write(&src, &k.source).map_err(io("writing", &src))?;
            srcs.push(src);
        }
        std::fs::write(&wrap, wrapper_source(kernels)).map_err(io("writing", &wrap))?;
        let mut cmd = Command::new(cxx);
        cmd.args(["-O2", "-std=c++17", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fvisibility=hidden"])
            .args(["-Wno-unused-parameter", "-Wno-unknown-pragmas", "-Wno-attributes"])
            .arg("-include")
            .arg(&header)
            .args(["-x", "c++"])
            .args(&srcs)
            .arg(&wrap)
            .arg("-o")
            .arg(&lib_path);
        let command = format!("{cmd:?}");
        let t0 = std::time::Instant::now();
        let out = cmd.output().map_err(io("running", cxx))?;
        let compile_seconds = t0.elapsed().as_secs_f64();
        if !out.status.success() {
            let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
            log.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(HostError::Compile { kernel: name, command, log });
        }
        // SAFETY: the library was just built from our own sources; its initialisers only set up
        // the C++ runtime.
        let lib = unsafe { libloading::Library::new(&lib_path) }
            .map_err(|e| HostError::Load { kernel: name.clone(), message: e.to_string() })?;
        // Check the entry points now, so that the launches cannot fail on them.
        for e in kernels.iter().flat_map(|k| &k.entries) {
            // SAFETY: only the symbol's presence is checked here.
            unsafe { lib.get::<unsafe extern "C" fn()>(entry_name(e).as_bytes()) }
                .map_err(|err| HostError::Load { kernel: e.clone(), message: err.to_string() })?;
        }
        Ok(HostModule { kernels: kernels.iter().map(|k| (*k).clone()).collect(), lib, lock: Mutex::new(()), compile_seconds })
    }

    /// The first kernel this was built from.
    pub fn kernel(&self) -> &RenderedKernel {
        &self.kernels[0]
    }

    /// Every kernel of the module.
    pub fn kernels(&self) -> &[RenderedKernel] {
        &self.kernels
    }

    fn find(&self, kind: KernelKind) -> Result<&RenderedKernel, HostError> {
        self.kernels.iter().find(|k| k.kind == kind).ok_or_else(|| HostError::Load {
            kernel: format!("{kind:?}"),
            message: format!("the module has no such kernel (it has {:?})", self.kernels.iter().map(|k| &k.kernel).collect::<Vec<_>>()),
        })
    }

    /// Solve `batch` with model parameters `params` (in `PARAM_NAMES` order) by running the
    /// module's solve kernel over a grid of blocks of `block` threads (one thread per problem).
    /// Inputs are converted to the kernel's precision; results come back as `f64`.
    pub fn solve(&self, params: &[f64], batch: &Batch<'_>, block: u32) -> Result<Solution, HostError> {
        let k = self.find(KernelKind::Solve)?;
        match k.precision {
            Precision::F32 => self.solve_as::<f32>(k, params, batch, block),
            Precision::F64 => self.solve_as::<f64>(k, params, batch, block),
        }
    }

    /// Solve `batch` with the module's warp-per-problem kernel ([`KernelKind::SolveWarp`]):
    /// `warps` problems per block, each warp's 32 lanes running as cooperating threads
    /// (barriers behind `__syncwarp`, exchange slots behind `__shfl_sync`).
    pub fn solve_warp(&self, params: &[f64], batch: &Batch<'_>, warps: u32) -> Result<Solution, HostError> {
        let k = self.find(KernelKind::SolveWarp)?;
        match k.precision {
            Precision::F32 => self.solve_warp_as::<f32>(k, params, batch, warps),
            Precision::F64 => self.solve_warp_as::<f64>(k, params, batch, warps),
        }
    }

    /// Solve `batch` with the three-stage layout: the module's three stage kernels
    /// ([`KernelKind::Stage`]) driven from the host as `CudaSolver` drives them on the GPU
    /// (init; rounds of linearise, Riccati, line search until no problem is active; finish).
    /// `block` problems per block; the line search runs `block × NLS` threads per block, the
    /// NLS threads of a problem cooperating through a block barrier. Returns the solution and
    /// the number of rounds.
    pub fn solve_staged(&self, params: &[f64], batch: &Batch<'_>, block: u32) -> Result<(Solution, usize), HostError> {
        let ks = [
            self.find(KernelKind::Stage(Stage::Rollout))?,
            self.find(KernelKind::Stage(Stage::Riccati))?,
            self.find(KernelKind::Stage(Stage::LineSearch))?,
        ];
        match ks[0].precision {
            Precision::F32 => self.solve_staged_as::<f32>(ks, params, batch, block),
            Precision::F64 => self.solve_staged_as::<f64>(ks, params, batch, block),
        }
    }

    /// Gradients at the solution `sol` of `batch` (x, u as the CPU [`crate::Solver::backward`]
    /// takes them: B×T×nx, B×T×nu) for upstream gradients `grad_x` (B×T×nx), `grad_u`
    /// (B×T×nu), by the module's backward kernel of `mode`, one thread per problem in blocks
    /// of `block`. Inputs are converted to the kernel's precision; results come back as `f64`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        mode: GradientMode,
        params: &[f64],
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        block: u32,
    ) -> Result<Gradients, HostError> {
        let k = self.find(KernelKind::Backward(mode))?;
        match k.precision {
            Precision::F32 => self.backward_as::<f32>(k, params, batch, sol, grad_x, grad_u, block),
            Precision::F64 => self.backward_as::<f64>(k, params, batch, sol, grad_x, grad_u, block),
        }
    }

    fn solve_warp_as<R: HostReal>(&self, k: &RenderedKernel, params: &[f64], batch: &Batch<'_>, warps: u32) -> Result<Solution, HostError> {
        let (t, nx, nu) = (k.horizon, k.nx, k.nu);
        self.check(k, params, batch)?;
        let b = batch.size;
        if b == 0 {
            return Ok(Solution::default());
        }
        let warps = warps.clamp(1, 32);
        let (reals, ints) = super::render::warp_state_len(nx, nu, t, k.nls);
        let p = conv::<R>(params);
        let x0 = conv::<R>(batch.x_init);
        let cm = conv::<R>(batch.cost_hess);
        let cv = conv::<R>(batch.cost_lin);
        let lo = conv::<R>(&expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu));
        let hi = conv::<R>(&expand_bound(batch.u_upper, f64::INFINITY, b, t, nu));
        let ui = batch.u_init.map(conv::<R>);
        let mut state = vec![R::from_f64(0.0); b * reals];
        let mut istate = vec![0i32; b * ints];
        let mut xo = vec![R::from_f64(0.0); b * t * nx];
        let mut uo = vec![R::from_f64(0.0); b * t * nu];
        let mut co = vec![R::from_f64(0.0); b];
        let mut it = vec![0i32; b];
        let mut cvg = vec![0i32; b];
        let grid = b.div_ceil(warps as usize) as u32;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the entry point has the signature of `WarpFn<R>` for this kernel's precision
        // (generated from the RenderedKernel of kind SolveWarp), the arrays have the sizes the
        // kernel indexes for `b` problems (state: b × the workspace's reals, checked against the
        // template at compile time), blocks hold whole warps, and u_init may be null.
        let rc = unsafe {
            let f = self
                .lib
                .get::<WarpFn<R>>(entry_name(&k.kernel).as_bytes())
                .map_err(|e| HostError::Load { kernel: k.kernel.clone(), message: e.to_string() })?;
            f(
                grid,
                32 * warps,
                if p.is_empty() { std::ptr::null() } else { p.as_ptr() },
                x0.as_ptr(),
                cm.as_ptr(),
                cv.as_ptr(),
                lo.as_ptr(),
                hi.as_ptr(),
                ui.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
                state.as_mut_ptr(),
                istate.as_mut_ptr(),
                xo.as_mut_ptr(),
                uo.as_mut_ptr(),
                co.as_mut_ptr(),
                it.as_mut_ptr(),
                cvg.as_mut_ptr(),
                b as i32,
            )
        };
        if rc != 0 {
            return Err(HostError::Launch(k.kernel.clone()));
        }
        super::kernel_solution(back(&xo), back(&uo), back(&co), &it, &cvg)
            .map_err(|message| HostError::Batch { kernel: k.kernel.clone(), message })
    }

    fn solve_staged_as<R: HostReal>(
        &self,
        ks: [&RenderedKernel; 3],
        params: &[f64],
        batch: &Batch<'_>,
        block: u32,
    ) -> Result<(Solution, usize), HostError> {
        let k = ks[0];
        let (t, nx, nu) = (k.horizon, k.nx, k.nu);
        self.check(k, params, batch)?;
        let b = batch.size;
        if b == 0 {
            return Ok((Solution::default(), 0));
        }
        let plan = StagedPlan::new(k, b, block.clamp(1, 1024))
            .map_err(|message| HostError::Batch { kernel: k.kernel.clone(), message })?;
        let p = conv::<R>(params);
        let x0 = conv::<R>(batch.x_init);
        let cm = conv::<R>(batch.cost_hess);
        let cv = conv::<R>(batch.cost_lin);
        let lo = conv::<R>(&expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu));
        let hi = conv::<R>(&expand_bound(batch.u_upper, f64::INFINITY, b, t, nu));
        let ui = batch.u_init.map(conv::<R>);
        let mut state = vec![R::from_f64(0.0); b * plan.reals];
        let mut istate = vec![0i32; b * plan.ints];
        let mut xo = vec![R::from_f64(0.0); b * t * nx];
        let mut uo = vec![R::from_f64(0.0); b * t * nu];
        let mut co = vec![R::from_f64(0.0); b];
        let mut it = vec![0i32; b];
        let mut cvg = vec![0i32; b];
        let mut active = 0i32;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut call = |entry: &str, grid: u32, blk: u32, active: &mut i32| -> Result<(), HostError> {
            // SAFETY: every stage entry point has the signature of `StagedFn<R>` for this
            // module's precision (generated from RenderedKernels of kind Stage), the arrays
            // have the sizes the kernels index for `b` problems (state: b × the layout's reals,
            // checked against the template at compile time), and u_init may be null.
            let rc = unsafe {
                let f = self
                    .lib
                    .get::<StagedFn<R>>(entry_name(entry).as_bytes())
                    .map_err(|e| HostError::Load { kernel: entry.to_string(), message: e.to_string() })?;
                f(
                    grid,
                    blk,
                    if p.is_empty() { std::ptr::null() } else { p.as_ptr() },
                    x0.as_ptr(),
                    cm.as_ptr(),
                    cv.as_ptr(),
                    lo.as_ptr(),
                    hi.as_ptr(),
                    ui.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
                    state.as_mut_ptr(),
                    istate.as_mut_ptr(),
                    xo.as_mut_ptr(),
                    uo.as_mut_ptr(),
                    co.as_mut_ptr(),
                    it.as_mut_ptr(),
                    cvg.as_mut_ptr(),
                    active,
                    b as i32,
                )
            };
            if rc != 0 { Err(HostError::Launch(entry.to_string())) } else { Ok(()) }
        };
        let e = |stage: usize, i: usize| ks[stage].entries[i].as_str();
        call(e(0, 0), plan.per_problem.0, plan.per_problem.1, &mut active)?;
        let mut rounds = 0;
        loop {
            if rounds == plan.max_rounds {
                return Err(HostError::Launch(format!("{}: still active after {rounds} rounds", k.kernel)));
            }
            rounds += 1;
            call(e(0, 1), plan.per_stage.0, plan.per_stage.1, &mut active)?;
            call(e(1, 0), plan.per_problem.0, plan.per_problem.1, &mut active)?;
            active = 0;
            call(e(2, 0), plan.per_step.0, plan.per_step.1, &mut active)?;
            if active == 0 {
                break;
            }
        }
        call(e(2, 1), plan.per_problem.0, plan.per_problem.1, &mut active)?;
        let sol = super::kernel_solution(back(&xo), back(&uo), back(&co), &it, &cvg)
            .map_err(|message| HostError::Batch { kernel: ks[2].kernel.clone(), message })?;
        Ok((sol, rounds))
    }

    fn check(&self, k: &RenderedKernel, params: &[f64], batch: &Batch<'_>) -> Result<(), HostError> {
        let bad = |message: String| HostError::Batch { kernel: k.kernel.clone(), message };
        batch.check(k.horizon, k.nx, k.nu).map_err(bad)?;
        if params.len() != k.params_len(batch.size) {
            return Err(bad(format!(
                "{} parameters given, the kernel takes {} ({} per {})",
                params.len(),
                k.params_len(batch.size),
                k.np,
                if k.per_problem_params { "problem" } else { "batch" }
            )));
        }
        Ok(())
    }

    fn solve_as<R: HostReal>(&self, k: &RenderedKernel, params: &[f64], batch: &Batch<'_>, block: u32) -> Result<Solution, HostError> {
        let (t, nx, nu) = (k.horizon, k.nx, k.nu);
        self.check(k, params, batch)?;
        let b = batch.size;
        if b == 0 {
            return Ok(Solution::default());
        }
        let block = block.clamp(1, 1024);
        let p = conv::<R>(params);
        let x0 = conv::<R>(batch.x_init);
        let cm = conv::<R>(batch.cost_hess);
        let cv = conv::<R>(batch.cost_lin);
        let lo = conv::<R>(&expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu));
        let hi = conv::<R>(&expand_bound(batch.u_upper, f64::INFINITY, b, t, nu));
        let ui = batch.u_init.map(conv::<R>);
        let mut xo = vec![R::from_f64(0.0); b * t * nx];
        let mut uo = vec![R::from_f64(0.0); b * t * nu];
        let mut co = vec![R::from_f64(0.0); b];
        let mut it = vec![0i32; b];
        let mut cvg = vec![0i32; b];
        let grid = b.div_ceil(block as usize) as u32;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the entry point has the signature of `SolveFn<R>` for this kernel's precision
        // (both generated from the same RenderedKernel of kind Solve), every array has the size
        // the kernel indexes for `b` problems (checked above), and u_init may be null.
        let rc = unsafe {
            let f = self
                .lib
                .get::<SolveFn<R>>(entry_name(&k.kernel).as_bytes())
                .map_err(|e| HostError::Load { kernel: k.kernel.clone(), message: e.to_string() })?;
            f(
                grid,
                block,
                if p.is_empty() { std::ptr::null() } else { p.as_ptr() },
                x0.as_ptr(),
                cm.as_ptr(),
                cv.as_ptr(),
                lo.as_ptr(),
                hi.as_ptr(),
                ui.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
                xo.as_mut_ptr(),
                uo.as_mut_ptr(),
                co.as_mut_ptr(),
                it.as_mut_ptr(),
                cvg.as_mut_ptr(),
                b as i32,
            )
        };
        if rc != 0 {
            return Err(HostError::Launch(k.kernel.clone()));
        }
        super::kernel_solution(back(&xo), back(&uo), back(&co), &it, &cvg)
            .map_err(|message| HostError::Batch { kernel: k.kernel.clone(), message })
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_as<R: HostReal>(
        &self,
        k: &RenderedKernel,
        params: &[f64],
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        block: u32,
    ) -> Result<Gradients, HostError> {
        let (t, nx, nu) = (k.horizon, k.nx, k.nu);
        let n = nx + nu;
        self.check(k, params, batch)?;
        let b = batch.size;
        let bad = |message: String| HostError::Batch { kernel: k.kernel.clone(), message };
        for (name, len, want) in [
            ("solution x", sol.x.len(), b * t * nx),
            ("solution u", sol.u.len(), b * t * nu),
            ("grad_x", grad_x.len(), b * t * nx),
            ("grad_u", grad_u.len(), b * t * nu),
        ] {
            if len != want {
                return Err(bad(format!("{name}: expected {want} entries, got {len}")));
            }
        }
        if b == 0 {
            return Ok(Gradients::default());
        }
        let block = block.clamp(1, 1024);
        let p = conv::<R>(params);
        let cm = conv::<R>(batch.cost_hess);
        let cv = conv::<R>(batch.cost_lin);
        let lo = conv::<R>(&expand_bound(batch.u_lower, f64::NEG_INFINITY, b, t, nu));
        let hi = conv::<R>(&expand_bound(batch.u_upper, f64::INFINITY, b, t, nu));
        let xs = conv::<R>(&sol.x);
        let us = conv::<R>(&sol.u);
        let gx = conv::<R>(grad_x);
        let gu = conv::<R>(grad_u);
        let mut gcm = vec![R::from_f64(0.0); b * t * n * n];
        let mut gcv = vec![R::from_f64(0.0); b * t * n];
        let mut gx0 = vec![R::from_f64(0.0); b * nx];
        // Host emulation always computes dL/dθ (B×NP).
        let mut gp = vec![R::from_f64(0.0); b * k.np];
        let grid = b.div_ceil(block as usize) as u32;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the entry point has the signature of `BackwardFn<R>` for this kernel's
        // precision (both generated from the same RenderedKernel of kind Backward), and every
        // array has the size the kernel indexes for `b` problems (checked above).
        let rc = unsafe {
            let f = self
                .lib
                .get::<BackwardFn<R>>(entry_name(&k.kernel).as_bytes())
                .map_err(|e| HostError::Load { kernel: k.kernel.clone(), message: e.to_string() })?;
            f(
                grid,
                block,
                if p.is_empty() { std::ptr::null() } else { p.as_ptr() },
                cm.as_ptr(),
                cv.as_ptr(),
                lo.as_ptr(),
                hi.as_ptr(),
                xs.as_ptr(),
                us.as_ptr(),
                gx.as_ptr(),
                gu.as_ptr(),
                gcm.as_mut_ptr(),
                gcv.as_mut_ptr(),
                gx0.as_mut_ptr(),
                if gp.is_empty() { std::ptr::null_mut() } else { gp.as_mut_ptr() },
                b as i32,
            )
        };
        if rc != 0 {
            return Err(HostError::Launch(k.kernel.clone()));
        }
        Ok(super::kernel_gradients(back(&gcm), back(&gcv), back(&gx0), back(&gp), sol, t, nx, nu))
    }
}

fn conv<R: HostReal>(v: &[f64]) -> Vec<R> {
    v.iter().map(|&x| R::from_f64(x)).collect()
}

fn back<R: HostReal>(v: &[R]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// `f32` or `f64` as exchanged with the host build.
trait HostReal: Copy + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl HostReal for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl HostReal for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}
