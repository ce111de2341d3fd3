//! Runtime of the differentiable MPC compiler.
//!
//! * [`model`]: the [`Dynamics`] and [`Model`] traits that generated models implement.
//! * [`linear`]: the run-time-sized `linear` model.
//! * [`verify`]: finite-difference checks of a model's derivatives.

pub mod linear;
pub mod model;
pub mod verify;

pub use linear::LinearModel;
pub use model::{Dynamics, Model, ParamError, TimeModel};
