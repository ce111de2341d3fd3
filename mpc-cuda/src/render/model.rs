//! A model as the renderer sees it ([`ModelCode`]): name, generated CUDA source, sizes.

use super::RenderError;
use mpc_runtime::model::Model;

/// A model as the renderer sees it: name, generated CUDA source and sizes.
#[derive(Clone, Copy, Debug)]
pub struct ModelCode<'a> {
    /// Model name (a C identifier; the CUDA source has `namespace mpc_model_<name>`).
    pub name: &'a str,
    /// The generated device code ([`Model::CUDA_SOURCE`]).
    pub cuda_source: &'a str,
    /// State count.
    pub nx: usize,
    /// Control count.
    pub nu: usize,
    /// Parameter count.
    pub np: usize,
    /// Whether every second derivative is identically zero ([`Model::IS_LINEAR`]).
    pub is_linear: bool,
}

impl<'a> ModelCode<'a> {
    /// The code of model `M`.
    pub fn of<M: Model>() -> ModelCode<'static> {
        ModelCode { name: M::NAME, cuda_source: M::CUDA_SOURCE, nx: M::NX, nu: M::NU, np: M::NP, is_linear: M::IS_LINEAR }
    }

    pub(super) fn check(&self) -> Result<(), RenderError> {
        let model = self.name;
        if model.is_empty() || !model.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RenderError::Model { model: model.into(), message: "name is not a C identifier".into() });
        }
        if self.nu == 0 || self.nx == 0 {
            return Err(RenderError::Model { model: model.into(), message: "the kernels need nx ≥ 1 and nu ≥ 1".into() });
        }
        if !self.cuda_source.contains(&format!("namespace mpc_model_{model}")) {
            return Err(RenderError::Model {
                model: model.into(),
                message: format!("CUDA source lacks `namespace mpc_model_{model}`"),
            });
        }
        Ok(())
    }
}
