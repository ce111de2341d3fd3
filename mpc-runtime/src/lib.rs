//! Runtime of the differentiable MPC compiler.
//!
//! * [`model`]: the [`Dynamics`] and [`Model`] traits that generated models implement.
//! * [`linear`]: the run-time-sized `linear` model.
//! * [`cuda`]: NVRTC compilation and `ptxas` reports for generated CUDA device code.
//! * [`verify`]: finite-difference checks of a model's derivatives.

pub mod cuda;
pub mod linear;
pub mod model;
pub mod verify;

pub use linear::LinearModel;
pub use model::{Dynamics, Model, ParamError, TimeModel};
