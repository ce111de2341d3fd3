//! Runtime of the differentiable MPC compiler.
//!
//! * [`model`]: the [`Dynamics`] and [`Model`] traits that generated models implement.
//! * [`linear`]: the run-time-sized `linear` model.

pub mod linear;
pub mod model;

pub use linear::LinearModel;
pub use model::{Dynamics, Model, ParamError, TimeModel};
