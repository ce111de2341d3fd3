//! [`EmulatedSolver`]: the CUDA backend without a GPU. The kernels [`CudaSolver`] would load
//! are built for the host ([`HostModule`]) and run by the same launch orchestration, with the
//! same blocks, parameter checks and capacity, so a test that loops over backends runs every
//! line of the GPU path except the driver calls.
//!
//! [`CudaSolver`]: crate::CudaSolver

use std::marker::PhantomData;

use crate::host::{HostBuild, HostError, HostModule};
use crate::launch::{check_backward_inputs, check_solve};
use crate::orchestrate::{self, BackwardInputs, Blocks};
use crate::render::{KernelKind, KernelOptions, RenderedKernel, render_backward, render_forward};
use mpc_runtime::backend::{Backend, BackendError, BackendKind};
use mpc_runtime::model::Model;
use mpc_runtime::solver::{Batch, Gradients, Solution};

impl From<HostError> for BackendError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NoCompiler(_) => BackendError::Unavailable(e.to_string()),
            HostError::Batch { message, .. } => BackendError::Shape(message),
            e @ (HostError::Io { .. } | HostError::Compile { .. } | HostError::Load { .. }) => BackendError::Build(e.to_string()),
            e => BackendError::Device(e.to_string()),
        }
    }
}

/// Model `M`'s forward and backward kernels of [`KernelOptions`] built by the host C++
/// compiler, for batches of up to `capacity` problems: [`CudaSolver`](crate::CudaSolver)'s
/// contract on the CPU.
pub struct EmulatedSolver<M: Model> {
    params: Vec<f64>,
    opts: KernelOptions,
    /// The forward kernels (one, or the three stages in order), then the backward kernel.
    module: HostModule,
    capacity: usize,
    _model: PhantomData<M>,
}

impl<M: Model> std::fmt::Debug for EmulatedSolver<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedSolver").field("kernel", &self.module.kernel().kernel).finish_non_exhaustive()
    }
}

impl<M: Model> EmulatedSolver<M> {
    /// Render the forward kernels of `opts.layout` and the backward kernel of
    /// `opts.solver.gradient` for `model` (its parameters are used on every solve), and build
    /// them for the host with floating-point contraction `build` (see [`HostBuild`]).
    pub fn new(model: &M, capacity: usize, opts: &KernelOptions, build: HostBuild) -> Result<Self, BackendError> {
        let build_err = |e: crate::render::RenderError| BackendError::Build(e.to_string());
        let mut kernels = render_forward::<M>(opts).map_err(build_err)?;
        kernels.push(render_backward::<M>(opts).map_err(build_err)?);
        let refs: Vec<&RenderedKernel> = kernels.iter().collect();
        let module = HostModule::build_many_with(&refs, build)?;
        Ok(EmulatedSolver { params: model.param_values(), opts: opts.clone(), module, capacity: capacity.max(1), _model: PhantomData })
    }

    /// The model parameters the kernels get, as [`CudaSolver::set_params`](crate::CudaSolver::set_params).
    pub fn set_params(&mut self, params: Vec<f64>) -> Result<(), BackendError> {
        orchestrate::check_params(self.module.kernel(), &params).map_err(BackendError::Shape)?;
        self.params = params;
        Ok(())
    }

    /// Every kernel of the host build (forward kernels, then the backward kernel).
    pub fn kernels(&self) -> &[RenderedKernel] {
        self.module.kernels()
    }

    fn forward_kernels(&self) -> Vec<&RenderedKernel> {
        self.module.kernels().iter().filter(|k| !matches!(k.kind, KernelKind::Backward(_))).collect()
    }
}

impl<M: Model> Backend for EmulatedSolver<M> {
    fn kind(&self) -> BackendKind {
        BackendKind::HostEmulation
    }

    fn horizon(&self) -> usize {
        self.opts.horizon
    }

    fn dims(&self) -> (usize, usize) {
        (M::NX, M::NU)
    }

    fn try_solve_into(&mut self, batch: &Batch<'_>, sol: &mut Solution) -> Result<(), BackendError> {
        check_solve(batch, self.capacity, self.opts.horizon, M::NX, M::NU)?;
        let ks = self.forward_kernels();
        let (layout, params, blocks) = (self.opts.layout, &self.params, Blocks::forward(self.opts.layout));
        let (s, _) = self.module.run(
            ks[0],
            |d| orchestrate::solve(d, layout, &ks, params, batch, blocks),
            |d| orchestrate::solve(d, layout, &ks, params, batch, blocks),
        )?;
        *sol = s;
        Ok(())
    }

    fn try_backward_into(&mut self, batch: &Batch<'_>, sol: &Solution, grad_x: &[f64], grad_u: &[f64], out: &mut Gradients) -> Result<(), BackendError> {
        check_backward_inputs(batch, self.capacity, sol, (grad_x, grad_u), self.opts.horizon, M::NX, M::NU)?;
        let k = self.module.kernels().last().expect("built with the backward kernel");
        let inp = BackwardInputs { sol, grad_x, grad_u, params: self.opts.solver.grad_params };
        let (params, blocks) = (&self.params, Blocks::backward());
        let (g, _) = self.module.run(
            k,
            |d| orchestrate::backward(d, k, params, batch, &inp, blocks),
            |d| orchestrate::backward(d, k, params, batch, &inp, blocks),
        )?;
        *out = g;
        Ok(())
    }
}
