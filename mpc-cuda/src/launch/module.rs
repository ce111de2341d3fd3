//! Module loading: the kernels compiled by NVRTC, loaded as a cubin or else as PTX for the driver's JIT.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction};

use super::{CompileOptions, CudaError, drv};
use crate::nvrtc::{NvrtcError, NvrtcOptions};
use crate::render::RenderedKernel;

/// NVRTC-compile `source` for `opts`, or take the PTX from the module cache (memory, then
/// disk: [`crate::cache`]).
fn cached_ptx(source: &str, opts: &NvrtcOptions) -> Result<String, NvrtcError> {
    crate::cache::global().get_or_compile(source, opts)
}

/// Compile `k` for the device's architecture `arch` (`compute_XY`), load it and add its entry
/// points to `funcs`. First as a cubin for `sm_XY` (no driver JIT; runs on any driver of CUDA
/// 12, whereas NVRTC's PTX needs a driver as new as its PTX ISA), then, if NVRTC cannot target
/// the device or the driver refuses the cubin, as PTX for the driver to JIT. Both through the
/// module cache ([`crate::cache`]). An error names both attempts.
pub(super) fn load(
    ctx: &Arc<CudaContext>,
    arch: &str,
    k: &RenderedKernel,
    compile: CompileOptions,
    funcs: &mut HashMap<String, CudaFunction>,
) -> Result<(), CudaError> {
    let nv = NvrtcOptions { program_name: k.file_name(), fmad: compile.fmad, ..NvrtcOptions::new(arch.to_string()) };
    let cubin = crate::cache::global()
        .get_or_compile_cubin(&k.source, &nv)
        .map_err(|e| format!("cubin: {e}"))
        .and_then(|bin| ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bin)).map_err(|e| format!("loading the cubin: {e:?}")));
    let module = match cubin {
        Ok(m) => m,
        Err(first) => {
            let (driver, nvrtc) = (crate::driver::driver_cuda_version()?, crate::nvrtc::nvrtc_version()?);
            crate::driver::ptx_gate(driver, nvrtc)
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
