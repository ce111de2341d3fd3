//! One interface for every place a batch can be solved: the CPU [`Solver`](crate::solver::Solver), and in `mpc-cuda`
//! the CUDA kernels on a GPU and the same kernels under host emulation. Callers hold a
//! `Box<dyn Backend>` and get typed errors instead of panics or strings.

use crate::solver::{Batch, Gradients, Solution};

/// Why a backend call failed. Never a panic: a wrong shape, a batch over capacity, a backend
/// that cannot run here, a build that failed, or a device that failed while running.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// An input array has the wrong length (the message names the array and what it expected).
    #[error("{0}")]
    Shape(String),
    /// The batch is larger than the backend was built for.
    #[error("a batch of {batch} problems exceeds the backend's capacity of {capacity}")]
    Capacity {
        /// Problems in the batch.
        batch: usize,
        /// Largest batch the backend accepts.
        capacity: usize,
    },
    /// The backend cannot run on this machine (no CUDA driver or GPU, no C++ compiler, no CUDA
    /// code for the model).
    #[error("{0}")]
    Unavailable(String),
    /// Rendering, compiling or loading the kernels failed.
    #[error("{0}")]
    Build(String),
    /// The device failed while running (a driver call, a launch, a copy, a kernel out of step
    /// with the runtime).
    #[error("{0}")]
    Device(String),
}

/// Which implementation a [`Backend`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The CPU solver (`mpc_runtime::Solver`), batches in parallel with rayon.
    Cpu,
    /// The CUDA kernels on a GPU (`mpc_cuda::CudaSolver`).
    Cuda,
    /// The CUDA kernel sources built for the host and run by the same launch orchestration
    /// (`mpc_cuda::EmulatedSolver`): the GPU path without a GPU, for tests.
    HostEmulation,
}

impl BackendKind {
    /// The name used on the command line and in solution documents (`cpu`, `cuda`,
    /// `host-emulation`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::HostEmulation => "host-emulation",
        }
    }
}

/// A configured solver of batches of one horizon for one model: forward solve and the
/// implicit-differentiation backward pass, with the contract of the CPU [`Solver`](crate::Solver)
/// (same inputs, same outputs, same masking of non-finite gradients).
pub trait Backend: Send {
    /// Which implementation this is.
    fn kind(&self) -> BackendKind;

    /// Horizon `T`.
    fn horizon(&self) -> usize;

    /// State and control dimensions `(nx, nu)`.
    fn dims(&self) -> (usize, usize);

    /// Solve `batch` into `sol` (its vectors resized to the batch).
    fn try_solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) -> Result<(), BackendError>;

    /// Solve `batch`.
    fn try_solve(&mut self, batch: &Batch<'_>) -> Result<Solution, BackendError> {
        let mut sol = Solution::default();
        self.try_solve_into(batch, &mut sol)?;
        Ok(sol)
    }

    /// Gradients of a loss with respect to `C`, `c`, `x_init` (and the parameters when the
    /// options ask for them) at the solution `sol` of `batch`, given `grad_x = dL/dx*` (B×T×nx)
    /// and `grad_u = dL/du*` (B×T×nu), into `out` (its vectors resized to the batch).
    fn try_backward_into(
        &mut self,
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
        out: &mut Gradients,
    ) -> Result<(), BackendError>;

    /// [`Backend::try_backward_into`] into new [`Gradients`].
    fn try_backward(
        &mut self,
        batch: &Batch<'_>,
        sol: &Solution,
        grad_x: &[f64],
        grad_u: &[f64],
    ) -> Result<Gradients, BackendError> {
        let mut g = Gradients::default();
        self.try_backward_into(batch, sol, grad_x, grad_u, &mut g)?;
        Ok(g)
    }

    /// Kernel time of the last call, where the backend measures it apart from copies (the
    /// GPU); `None` elsewhere.
    fn last_kernel_time(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Check the inputs of a backward pass: the batch's arrays, the solution's `x`/`u` and the
/// upstream gradients against `B`, `T`, `nx`, `nu`.
pub fn check_backward(
    batch: &Batch<'_>,
    sol: &Solution,
    grad_x: &[f64],
    grad_u: &[f64],
    horizon: usize,
    nx: usize,
    nu: usize,
) -> Result<(), BackendError> {
    batch.check(horizon, nx, nu).map_err(BackendError::Shape)?;
    let (b, t) = (batch.size, horizon);
    for (name, got, want) in [
        ("solution x", sol.x.len(), b * t * nx),
        ("solution u", sol.u.len(), b * t * nu),
        ("grad_x", grad_x.len(), b * t * nx),
        ("grad_u", grad_u.len(), b * t * nu),
    ] {
        if got != want {
            return Err(BackendError::Shape(format!("{name}: expected B×T×{} = {want} entries, got {got}", want / (b * t).max(1))));
        }
    }
    Ok(())
}
