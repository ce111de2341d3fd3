//! The one automatic choice of backend and kernel layout, and the one constructor of a boxed
//! [`Backend`]: what `mpc solve`, `mpc bench` and the trainer's MPC layer use instead of each
//! checking the driver and picking a layout on its own.

use crate::driver::{device_info, driver_available};
use crate::host::HostBuild;
use crate::render::{KernelLayout, KernelOptions, Precision};
use crate::{CudaSolver, EmulatedSolver};
use mpc_runtime::backend::{Backend, BackendError, BackendKind};
use mpc_runtime::model::Model;
use mpc_runtime::solver::{Solver, SolverOptions};

/// What the caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// The CPU solver.
    Cpu,
    /// The GPU: an error when there is no driver, no GPU or no CUDA code for the model.
    Cuda,
    /// The GPU when it can run the problem, else the CPU (the reason is in [`Choice::reason`]).
    Auto,
}

/// Where a batch runs, with which kernel layout, and why (one line for the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The backend.
    pub kind: BackendKind,
    /// The kernel layout (GPU and host emulation).
    pub layout: Option<KernelLayout>,
    /// Why, in words.
    pub reason: String,
}

/// What the problem needs from a GPU backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `Some(why)` when the model has no CUDA code (the run-time `linear` model).
    pub no_cuda_code: Option<String>,
    /// A KKT tolerance (`solver.tol`), which only the single-launch kernel implements.
    pub kkt_tol: bool,
    /// A layout forced by the caller (`mpc bench --layout`), else the automatic rule.
    pub layout: Option<KernelLayout>,
}

/// The kernel layout for batches of `batch` problems on GPU 0: [`KernelLayout::auto`] by its
/// multiprocessor count (1 when no device answers), or the single launch when a KKT tolerance
/// is asked for.
pub fn layout_for(batch: usize, needs: &Needs) -> KernelLayout {
    if let Some(l) = needs.layout {
        return l;
    }
    if needs.kkt_tol {
        return KernelLayout::SingleLaunch;
    }
    let sms = device_info(0).map_or(1, |d| d.multiprocessors.max(1) as usize);
    KernelLayout::auto(batch, sms)
}

/// Decide where batches of `batch` problems run. `Cuda` without a driver, a GPU or CUDA code
/// is an [`BackendError::Unavailable`] naming the reason; `Auto` falls back to the CPU and
/// says why.
pub fn choose(pref: Preference, batch: usize, needs: &Needs) -> Result<Choice, BackendError> {
    let cpu = |reason: String| Choice { kind: BackendKind::Cpu, layout: None, reason };
    if pref == Preference::Cpu {
        return Ok(cpu("asked for".into()));
    }
    let why_not = match (driver_available(), &needs.no_cuda_code) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), Some(why)) => Some(why.clone()),
        (Ok(()), None) => None,
    };
    match (pref, why_not) {
        (Preference::Cuda, Some(why)) => Err(BackendError::Unavailable(why)),
        (_, Some(why)) => Ok(cpu(why)),
        (_, None) => {
            let layout = layout_for(batch, needs);
            Ok(Choice { kind: BackendKind::Cuda, layout: Some(layout), reason: format!("CUDA driver and GPU found; {layout:?} layout") })
        }
    }
}

/// Build the backend of `choice` for `model`, horizon `horizon`, `options`, in double
/// precision, for batches of up to `capacity` problems. GPU kernels (forward and backward) are
/// compiled and loaded here, so that the first solve is not slower than the next.
pub fn build<M: Model>(
    choice: &Choice,
    model: &M,
    horizon: usize,
    options: &SolverOptions,
    capacity: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    let kernel_opts = || {
        KernelOptions::new(horizon, Precision::F64)
            .with_solver(options.clone())
            .with_layout(choice.layout.unwrap_or(KernelLayout::SingleLaunch))
    };
    Ok(match choice.kind {
        BackendKind::Cpu => Box::new(Solver::new(model.clone(), horizon, options.clone())),
        BackendKind::Cuda => {
            let mut gpu = CudaSolver::new(model, capacity, &kernel_opts())?;
            gpu.prepare_backward()?;
            Box::new(gpu)
        }
        BackendKind::HostEmulation => Box::new(EmulatedSolver::new(model, capacity, &kernel_opts(), HostBuild::Exact)?),
    })
}
