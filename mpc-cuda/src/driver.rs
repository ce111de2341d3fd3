//! Is there a usable CUDA driver and GPU? Answered without ever letting `cudarc` panic.
//!
//! `cudarc` (with `dynamic-loading`) opens `libcuda` lazily on its first driver call and
//! **panics** when the library is missing. [`driver_available`] therefore first opens the
//! library itself by name (`libcuda.so.1`, then `libcuda.so`) with `libloading` and keeps the
//! handle for the life of the process, so that `cudarc`'s own `dlopen` later resolves to the
//! same object; only then does it call `cuInit` and `cuDeviceGetCount` through `cudarc`, inside
//! [`std::panic::catch_unwind`]. The outcome is computed once per process and cached.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

/// Names the driver library is opened by, in order (the first is the soname the NVIDIA driver
/// installs; the second is the development symlink).
pub const DRIVER_NAMES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// Why the CUDA backend cannot run on this machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CudaUnavailable {
    /// The dynamic loader found neither `libcuda.so.1` nor `libcuda.so`.
    #[error("no CUDA driver: libcuda.so.1 not found (is the NVIDIA driver installed? loader said: {0})")]
    NoDriver(String),
    /// The library loaded but `cuInit` failed (driver/kernel-module mismatch, no device node…).
    #[error("CUDA driver found but it could not be initialised: {0}")]
    Init(String),
    /// The driver works but reports no device.
    #[error("CUDA driver found but no GPU (cuDeviceGetCount = 0)")]
    NoDevice,
    /// `cudarc` panicked (a guard; should not happen once the library is preloaded).
    #[error("CUDA driver found but cudarc panicked while initialising it: {0}")]
    Panic(String),
}

struct Driver {
    devices: i32,
    // Never dropped: keeps libcuda mapped for the process.
    _handle: Library,
}

static DRIVER: OnceLock<Result<Driver, CudaUnavailable>> = OnceLock::new();

/// `Ok(())` when the CUDA driver library loads, initialises and reports at least one device;
/// otherwise an `Err` whose message says what is missing. Never panics.
pub fn driver_available() -> Result<(), CudaUnavailable> {
    device_count().map(|_| ())
}

/// Number of CUDA devices (≥ 1) when [`driver_available`] is `Ok`.
pub fn device_count() -> Result<usize, CudaUnavailable> {
    match DRIVER.get_or_init(probe) {
        Ok(d) => Ok(d.devices as usize),
        Err(e) => Err(e.clone()),
    }
}

fn probe() -> Result<Driver, CudaUnavailable> {
    let mut errors = Vec::new();
    let mut handle = None;
    for name in DRIVER_NAMES {
        // SAFETY: loading the NVIDIA driver library runs only its own initialisers.
        match unsafe { Library::open(Some(name), RTLD_NOW | RTLD_GLOBAL) } {
            Ok(h) => {
                handle = Some(h);
                break;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(handle) = handle else { return Err(CudaUnavailable::NoDriver(errors.join("; "))) };
    same_library_as_cudarc(&handle)?;
    let devices = guard(|| {
        cudarc::driver::result::init().map_err(|e| CudaUnavailable::Init(format!("cuInit: {e:?}")))?;
        cudarc::driver::result::device::get_count()
            .map_err(|e| CudaUnavailable::Init(format!("cuDeviceGetCount: {e:?}")))
    })?;
    if devices < 1 {
        return Err(CudaUnavailable::NoDevice);
    }
    Ok(Driver { devices, _handle: handle })
}

/// `cudarc` opens `libcuda.so` before `libcuda.so.1`; where a CUDA toolkit's stub
/// `libcuda.so` is on the loader's path it would bind the stub (every call then fails) instead
/// of the driver opened here. Compares `cuInit` of both; a mismatch is a clear error.
fn same_library_as_cudarc(handle: &Library) -> Result<(), CudaUnavailable> {
    // SAFETY: only the addresses of the symbols are read, nothing is called.
    let ours = unsafe { handle.get::<unsafe extern "C" fn()>(b"cuInit\0") }
        .map(|f| *f as usize)
        .map_err(|e| CudaUnavailable::Init(format!("the driver library has no cuInit: {e}")))?;
    let theirs = guard(|| {
        // SAFETY: as above; `culib` loads the library cudarc will use (a panic is caught).
        unsafe { cudarc::driver::sys::culib().get::<unsafe extern "C" fn()>(b"cuInit\0") }
            .map(|f| *f as usize)
            .map_err(|e| CudaUnavailable::Init(format!("cudarc's driver library has no cuInit: {e}")))
    })?;
    if ours != theirs {
        return Err(CudaUnavailable::Init(
            "cudarc bound a different libcuda.so than the driver's libcuda.so.1 (a CUDA toolkit stub on \
             LD_LIBRARY_PATH?); remove the stubs directory from the library path"
                .into(),
        ));
    }
    Ok(())
}

/// What the driver reports about a device (for benchmark records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Global memory in bytes.
    pub total_memory: usize,
    /// Streaming multiprocessors.
    pub multiprocessors: i32,
    /// CUDA version the driver supports, from `cuDriverGetVersion` (e.g. 12040 → (12, 4)).
    pub driver_cuda_version: (i32, i32),
}

/// Name, compute capability, memory and driver version of device `ordinal`; never panics.
pub fn device_info(ordinal: usize) -> Result<DeviceInfo, CudaUnavailable> {
    let n = device_count()?;
    if ordinal >= n {
        return Err(CudaUnavailable::Init(format!("device {ordinal} requested, {n} present")));
    }
    guard(|| {
        let err = |what: &'static str| move |e: cudarc::driver::DriverError| CudaUnavailable::Init(format!("{what}: {e:?}"));
        let ctx = cudarc::driver::CudaContext::new(ordinal).map_err(err("creating a context"))?;
        let name = ctx.name().map_err(err("cuDeviceGetName"))?;
        let compute_capability = ctx.compute_capability().map_err(err("compute capability"))?;
        let total_memory = ctx.total_mem().map_err(err("cuDeviceTotalMem"))?;
        let multiprocessors = ctx
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(err("multiprocessor count"))?;
        Ok(DeviceInfo { ordinal, name, compute_capability, total_memory, multiprocessors, driver_cuda_version: driver_cuda_version()? })
    })
}

/// The CUDA version the driver supports, from `cuDriverGetVersion` (12040 → (12, 4)).
pub fn driver_cuda_version() -> Result<(i32, i32), CudaUnavailable> {
    driver_available()?;
    guard(|| {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: a plain out-parameter; the driver library is loaded (driver_available).
        let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
        if r != cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            return Err(CudaUnavailable::Init(format!("cuDriverGetVersion: {r:?}")));
        }
        Ok((v / 1000, (v % 1000) / 10))
    })
}

/// Whether a driver for CUDA `driver` can JIT the PTX of NVRTC `nvrtc` (both (major, minor)):
/// NVRTC X.Y writes the PTX ISA of CUDA X.Y, which only drivers for X.Y or newer read (a
/// CUDA 12.9 PTX needs R575+, while most fleets run R535–R570). The error names both versions.
pub fn ptx_gate(driver: (i32, i32), nvrtc: (i32, i32)) -> Result<(), String> {
    if driver >= nvrtc {
        Ok(())
    } else {
        Err(format!(
            "the driver supports CUDA {}.{} but NVRTC {}.{} writes PTX only CUDA {}.{}+ drivers can JIT: \
             update the driver, or install an NVRTC no newer than {}.{} (pip install 'nvidia-cuda-nvrtc-cu12=={}.{}.*')",
            driver.0, driver.1, nvrtc.0, nvrtc.1, nvrtc.0, nvrtc.1, driver.0, driver.1, driver.0, driver.1
        ))
    }
}

/// Runs `f`, turning a panic into [`CudaUnavailable::Panic`].
fn guard<T>(f: impl FnOnce() -> Result<T, CudaUnavailable>) -> Result<T, CudaUnavailable> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(CudaUnavailable::Panic(panic_message(p.as_ref()))))
}

/// The text of a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_panics_and_is_consistent() {
        // On a machine without a driver this is Err; with one, Ok and ≥ 1 device. Either way
        // no panic, and a second call gives the cached answer.
        let a = driver_available();
        let b = driver_available();
        assert_eq!(a, b);
        match a {
            Ok(()) => assert!(device_count().unwrap() >= 1),
            Err(e) => {
                eprintln!("no CUDA here: {e}");
                assert!(e.to_string().contains("CUDA driver"), "{e}");
                assert_eq!(device_info(0).unwrap_err(), e, "device_info must fail the same way");
            }
        }
    }

    #[test]
    fn ptx_gate_compares_major_and_minor() {
        assert!(ptx_gate((12, 9), (12, 9)).is_ok());
        assert!(ptx_gate((13, 0), (12, 9)).is_ok());
        assert!(ptx_gate((12, 4), (12, 2)).is_ok());
        // R535 (CUDA 12.2) cannot JIT NVRTC 12.9's PTX: the minor version matters.
        let e = ptx_gate((12, 2), (12, 9)).unwrap_err();
        assert!(e.contains("CUDA 12.2") && e.contains("NVRTC 12.9"), "{e}");
        assert!(ptx_gate((11, 8), (12, 0)).is_err());
    }

    #[test]
    fn messages() {
        assert!(CudaUnavailable::NoDriver("x".into()).to_string().starts_with("no CUDA driver: libcuda.so.1 not found"));
        assert_eq!(CudaUnavailable::NoDevice.to_string(), "CUDA driver found but no GPU (cuDeviceGetCount = 0)");
    }
}
