//! CUDA tooling without a GPU: run-time compilation with NVRTC and register reports from `ptxas`.
//!
//! * [`compile_ptx`]: CUDA C++ → PTX through NVRTC (via `cudarc`), which is located and loaded
//!   without environment variables; a missing library is an [`NvrtcError::NotFound`], not a panic.
//! * [`assemble`]: PTX → cubin with `ptxas -v`, reporting registers and spills per kernel.
//! * [`check_source`] / [`check_kernels`]: a model's [`Model::CUDA_SOURCE`] plus small
//!   `extern "C"` kernels that instantiate its templates for `float` and `double`, so that the
//!   device code is actually compiled (templates that are never instantiated are only parsed).
//!
//! [`cache`] keeps NVRTC's PTX and cubins ([`compile_cubin`]) in memory and under the user's
//! cache directory, keyed by a hash of the source, the options and the NVRTC version.
//!
//! NVRTC and `ptxas` come from NVIDIA's PyPI wheels, which `scripts/setup.sh` installs into the
//! repository's `.venv`; a CUDA toolkit (`CUDA_PATH`, `/usr/local/cuda`) works too.

pub mod args;
pub mod cache;
pub mod driver;
pub mod emulated;
pub mod host;
pub mod launch;
#[cfg(test)]
mod launch_fit;
mod locate;
pub mod nvrtc;
pub mod orchestrate;
pub mod ptxas;
pub mod render;
pub mod select;

pub use nvrtc::{
    NvrtcError, NvrtcLibrary, NvrtcOptions, Ptx, compile_cubin, compile_ptx, load_nvrtc, locate_nvrtc, nvrtc_available,
    nvrtc_version,
};
pub use driver::{CudaUnavailable, DeviceInfo, device_info, driver_available, driver_cuda_version, ptx_gate};
pub use emulated::EmulatedSolver;
pub use launch::{CompileOptions, CudaError, CudaSolver, LaunchTiming};
pub use ptxas::{KernelResources, PtxasError, PtxasReport, assemble, assemble_with, locate_ptxas};

use mpc_runtime::model::Model;
use mpc_runtime::solver::{Gradients, Solution, StopReason, mask_gradients, solution_ok};

/// A solve kernel's outputs as a [`Solution`] (the GPU and host emulation alike): the
/// `status_out` codes ([`mpc_runtime::solver::STOP_CODES`]) give `converged` and `stop`. A code no
/// kernel writes is an error (a kernel and runtime out of step), never a guess.
pub(crate) fn kernel_solution(x: Vec<f64>, u: Vec<f64>, cost: Vec<f64>, iters: &[i32], status: &[i32]) -> Result<Solution, String> {
    let stop = status
        .iter()
        .enumerate()
        .map(|(i, &c)| StopReason::from_code(c).ok_or_else(|| format!("problem {i}: the kernel wrote the unknown status code {c}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Solution {
        x,
        u,
        cost,
        iterations: iters.iter().map(|&v| v.max(0) as usize).collect(),
        converged: stop.iter().map(|s| s.converged()).collect(),
        stop,
        kkt_residual: Vec::new(),
        cost_structure: Default::default(),
    })
}

/// A backward kernel's outputs as [`Gradients`] (`params`: B×NP or empty), each problem masked by the rule of the CPU
/// solver ([`mask_gradients`]): zero where the forward solution went non-finite or the
/// gradients did.
pub(crate) fn kernel_gradients(
    mut cost_hess: Vec<f64>,
    mut cost_lin: Vec<f64>,
    mut x_init: Vec<f64>,
    mut params: Vec<f64>,
    sol: &Solution,
    horizon: usize,
    nx: usize,
    nu: usize,
) -> Gradients {
    let (t, n) = (horizon, nx + nu);
    let b = x_init.len() / nx.max(1);
    let np = if b > 0 { params.len() / b } else { 0 };
    let status = (0..b)
        .map(|i| {
            mask_gradients(
                solution_ok(sol, i, t, nx, nu),
                [
                    &mut cost_hess[i * t * n * n..(i + 1) * t * n * n],
                    &mut cost_lin[i * t * n..(i + 1) * t * n],
                    &mut x_init[i * nx..(i + 1) * nx],
                    &mut params[i * np..(i + 1) * np],
                ],
            )
        })
        .collect();
    Gradients { cost_hess, cost_lin, x_init, params, status }
}

/// The device functions every generated model provides, as used in kernel names by
/// [`check_kernels`]: `step`, `linearize`, `hessian` (for `weighted_hessian`).
pub const CHECK_FUNCTIONS: [&str; 3] = ["step", "linearize", "hessian"];

/// The real types the check kernels instantiate, with their kernel-name suffixes.
pub const CHECK_PRECISIONS: [(&str, &str); 2] = [("float", "f32"), ("double", "f64")];

/// Name of the check kernel for `model`, device function `function` (one of
/// [`CHECK_FUNCTIONS`]) and precision suffix `precision` (`"f32"` or `"f64"`):
/// `mpc_check_<model>_<function>_<precision>`.
pub fn check_kernel_name(model: &str, function: &str, precision: &str) -> String {
    format!("mpc_check_{model}_{function}_{precision}")
}

/// All check kernel names of `model`, in the order [`check_kernels`] emits them.
pub fn check_kernel_names(model: &str) -> Vec<String> {
    CHECK_PRECISIONS
        .iter()
        .flat_map(|(_, p)| CHECK_FUNCTIONS.iter().map(move |f| check_kernel_name(model, f, p)))
        .collect()
}

/// `extern "C"` kernels that instantiate `mpc_model_<model>::{step, linearize,
/// weighted_hessian}` for `float` and `double`, to append to the model's CUDA source.
///
/// One thread per problem `i < n`; inputs are global arrays (`x` of `n*NX`, `u` of `n*NU`,
/// `lambda` of `n*NX`, `params` of `NP` shared by all problems) copied into per-thread local
/// arrays, as a solver kernel would; outputs (`x_next`, `A`, `B`, `H`) are written straight to
/// global memory at offset `i * size`. There is one kernel per function and precision, so that
/// `ptxas` reports registers per function (see [`check_kernel_names`]).
pub fn check_kernels(model: &str) -> String {
    let ns = format!("mpc_model_{model}");
    let helper = format!("mpc_check_{model}");
    let mut s = format!(
        r#"
// ---- compile-check kernels appended by mpc_cuda::check_kernels ----
namespace {helper} {{
namespace m = ::{ns};
constexpr int NXA = m::NX > 0 ? m::NX : 1;
constexpr int NUA = m::NU > 0 ? m::NU : 1;
template <typename T>
__device__ __forceinline__ const m::Params<T>& params_view(const T* __restrict__ src) {{
    static_assert(m::NP == 0 || sizeof(m::Params<T>) == m::NP * sizeof(T),
                  "Params<T> must consist of exactly NP fields of type T");
    return *reinterpret_cast<const m::Params<T>*>(src);
}}
template <typename T>
__device__ __forceinline__ void load(const T* __restrict__ src, T* dst, int n) {{
#pragma unroll
    for (int k = 0; k < n; ++k) dst[k] = src[k];
}}
}} // namespace {helper}
"#
    );
    for (ty, suffix) in CHECK_PRECISIONS {
        let step = check_kernel_name(model, "step", suffix);
        let lin = check_kernel_name(model, "linearize", suffix);
        let hes = check_kernel_name(model, "hessian", suffix);
        s.push_str(&format!(
            r#"
extern "C" __global__ void {step}(const {ty}* __restrict__ x, const {ty}* __restrict__ u,
        const {ty}* __restrict__ params, {ty}* __restrict__ x_next, int n) {{
    namespace m = ::{ns}; namespace c = ::{helper};
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const m::Params<{ty}>& p = c::params_view(params);
    {ty} xl[c::NXA], ul[c::NUA];
    c::load(x + i * m::NX, xl, m::NX); c::load(u + i * m::NU, ul, m::NU);
    m::step<{ty}>(xl, ul, p, x_next + i * m::NX);
}}

extern "C" __global__ void {lin}(const {ty}* __restrict__ x, const {ty}* __restrict__ u,
        const {ty}* __restrict__ params, {ty}* __restrict__ x_next, {ty}* __restrict__ A,
        {ty}* __restrict__ B, int n) {{
    namespace m = ::{ns}; namespace c = ::{helper};
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const m::Params<{ty}>& p = c::params_view(params);
    {ty} xl[c::NXA], ul[c::NUA];
    c::load(x + i * m::NX, xl, m::NX); c::load(u + i * m::NU, ul, m::NU);
    m::linearize<{ty}>(xl, ul, p, x_next + i * m::NX, A + i * m::NX * m::NX, B + i * m::NX * m::NU);
}}

extern "C" __global__ void {hes}(const {ty}* __restrict__ x, const {ty}* __restrict__ u,
        const {ty}* __restrict__ lambda, const {ty}* __restrict__ params, {ty}* __restrict__ H, int n) {{
    namespace m = ::{ns}; namespace c = ::{helper};
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const m::Params<{ty}>& p = c::params_view(params);
    {ty} xl[c::NXA], ul[c::NUA], ll[c::NXA];
    c::load(x + i * m::NX, xl, m::NX); c::load(u + i * m::NU, ul, m::NU);
    c::load(lambda + i * m::NX, ll, m::NX);
    m::weighted_hessian<{ty}>(xl, ul, ll, p, H + i * (m::NX + m::NU) * (m::NX + m::NU));
}}
"#
        ));
    }
    s
}

/// `M::CUDA_SOURCE` followed by [`check_kernels`] for `M::NAME`: a complete translation unit
/// that makes NVRTC compile every device function of the model in both precisions.
pub fn check_source<M: Model>() -> String {
    check_source_for(M::NAME, M::CUDA_SOURCE)
}

/// [`check_source`] for a model given by name and CUDA source.
pub fn check_source_for(model: &str, cuda_source: &str) -> String {
    let mut s = String::with_capacity(cuda_source.len() + 4096);
    s.push_str(cuda_source);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&check_kernels(model));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-written pendulum in the shape `#[mpc_model]` emits (see `model.rs`).
    const PENDULUM: &str = r#"// generated by hand for mpc-runtime tests, in the shape of mpc-macros output
#ifndef MPC_MODEL_TOY_PENDULUM_CUH
#define MPC_MODEL_TOY_PENDULUM_CUH
#ifndef MPC_CUDA_PRELUDE
#define MPC_CUDA_PRELUDE
namespace mpc_prelude {
__device__ __forceinline__ float mpc_sin(float a) { return sinf(a); }
__device__ __forceinline__ double mpc_sin(double a) { return sin(a); }
__device__ __forceinline__ float mpc_cos(float a) { return cosf(a); }
__device__ __forceinline__ double mpc_cos(double a) { return cos(a); }
}
#endif
namespace mpc_model_toy_pendulum {
using namespace ::mpc_prelude;
constexpr int NX = 2; constexpr int NU = 1; constexpr int NZ = 3; constexpr int NP = 4;
template <typename T> struct Params { T mass; T length; T gravity; T dt; };
template <typename T> __device__ __forceinline__ void step(const T* x, const T* u, const Params<T>& p, T* x_next) {
    const T acc = -p.gravity / p.length * mpc_sin(x[0]) + u[0] / (p.mass * p.length * p.length);
    x_next[0] = x[0] + p.dt * x[1];
    x_next[1] = x[1] + p.dt * acc;
}
template <typename T> __device__ __forceinline__ void linearize(const T* x, const T* u, const Params<T>& p, T* x_next, T* A, T* B) {
    step(x, u, p, x_next);
    A[0] = T(1); A[1] = p.dt;
    A[2] = -p.dt * p.gravity / p.length * mpc_cos(x[0]); A[3] = T(1);
    B[0] = T(0); B[1] = p.dt / (p.mass * p.length * p.length);
}
template <typename T> __device__ __forceinline__ void weighted_hessian(const T* x, const T* u, const T* lambda, const Params<T>& p, T* H) {
    for (int k = 0; k < NZ * NZ; ++k) H[k] = T(0);
    H[0] = lambda[1] * p.dt * p.gravity / p.length * mpc_sin(x[0]);
}
}
#endif
"#;

    /// NVRTC missing is only acceptable outside CI.
    fn nvrtc_or_skip() -> bool {
        match load_nvrtc() {
            Ok(lib) => {
                eprintln!("NVRTC {:?} from {}", lib.version(), lib.path().display());
                true
            }
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
                    panic!("NVRTC is required in CI: {e}");
                }
                eprintln!("\n!!!!! SKIPPING NVRTC TEST: {e}\n");
                false
            }
        }
    }

    #[test]
    fn compiles_model_shaped_source_for_both_precisions_and_archs() {
        if !nvrtc_or_skip() {
            return;
        }
        let src = check_source_for("toy_pendulum", PENDULUM);
        for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
            let ptx = compile_ptx(&src, &NvrtcOptions::new(arch)).unwrap_or_else(|e| panic!("{e}"));
            let mut entries = ptx.entry_points();
            entries.sort();
            let mut want = check_kernel_names("toy_pendulum");
            want.sort();
            assert_eq!(entries, want);
            assert!(ptx.as_str().contains(&format!(".target {sm}")), "PTX targets {sm}");
            let report = assemble(ptx.as_str(), sm).unwrap_or_else(|e| panic!("{e}"));
            for name in check_kernel_names("toy_pendulum") {
                let k = report.kernel(&name).unwrap_or_else(|| panic!("{name} missing in:\n{}", report.log));
                assert!(k.is_entry && k.registers > 0, "{k:?}\n{}", report.log);
                assert!(!k.spills(), "{k:?}");
            }
        }
    }

    #[test]
    fn compile_error_carries_full_log() {
        if !nvrtc_or_skip() {
            return;
        }
        let err = compile_ptx("__device__ int f() { return undeclared_thing; }\n", &NvrtcOptions::default())
            .unwrap_err();
        match &err {
            NvrtcError::Compile { log, options, .. } => {
                assert!(log.contains("undeclared_thing"), "{log}");
                assert!(options.iter().any(|o| o == "--gpu-architecture=compute_80"));
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
        assert!(err.to_string().contains("undeclared_thing"));
    }

    #[test]
    fn nul_in_source_is_an_error() {
        let err = compile_ptx("int a;\0", &NvrtcOptions::default()).unwrap_err();
        // Either NVRTC is missing (NotFound) or the NUL is reported; never a panic.
        assert!(matches!(err, NvrtcError::Nul { offset: 6, .. } | NvrtcError::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn not_found_message_names_the_fix() {
        let e = NvrtcError::NotFound { searched: vec!["/nowhere".into()] };
        let msg = e.to_string();
        assert!(msg.starts_with("libnvrtc.so.12 not found; run scripts/setup.sh or pip install nvidia-cuda-nvrtc-cu12"));
        assert!(msg.contains("/nowhere"));
    }

    #[test]
    fn options_to_args() {
        let o = NvrtcOptions { max_registers: Some(64), line_info: true, extra: vec!["-DX=1".into()], ..NvrtcOptions::new("compute_90") };
        assert_eq!(
            o.to_args(),
            ["--gpu-architecture=compute_90", "--std=c++17", "--fmad=true", "--generate-line-info", "--maxrregcount=64", "-DX=1"]
        );
    }

    #[test]
    fn parses_ptxas_verbose_output() {
        let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'k1' for 'sm_80'\n\
ptxas info    : Function properties for k1\n\
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 30 registers, used 0 barriers, 380 bytes cmem[0]\n\
ptxas info    : Function properties for _Z3fooPd\n\
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n\
ptxas info    : Compiling entry function 'k2' for 'sm_80'\n\
ptxas info    : Function properties for k2\n\
    48 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 255 registers, 376 bytes cmem[0]\n";
        let ks = ptxas::parse_ptxas_verbose(log);
        assert_eq!(ks.len(), 3);
        assert_eq!(ks[0], KernelResources { name: "k1".into(), is_entry: true, registers: 30, ..Default::default() });
        assert_eq!(
            ks[1],
            KernelResources { name: "_Z3fooPd".into(), is_entry: false, registers: 0, stack_frame_bytes: 16, spill_store_bytes: 8, spill_load_bytes: 4 }
        );
        assert_eq!(ks[2].registers, 255);
        assert_eq!(ks[2].stack_frame_bytes, 48);
        let r = PtxasReport { arch: "sm_80".into(), kernels: ks, log: log.into() };
        assert!(r.has_spills());
        assert_eq!(r.spilling().len(), 1);
        assert_eq!(r.max_registers(), 255);
    }

    #[test]
    fn check_kernel_names_cover_functions_and_precisions() {
        let names = check_kernel_names("quadrotor");
        assert_eq!(names.len(), 6);
        assert!(names.contains(&"mpc_check_quadrotor_hessian_f64".to_string()));
        let k = check_kernels("quadrotor");
        for n in &names {
            assert!(k.contains(&format!("void {n}(")), "{n}");
        }
        assert!(k.contains("::mpc_model_quadrotor"));
    }
}
