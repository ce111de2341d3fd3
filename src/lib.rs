//! Code-generating differentiable MPC compiler.
//!
//! This facade re-exports the crates of the workspace:
//! * [`macros`] (`mpc-macros`): the `#[mpc_model]` attribute, which derives exact Jacobians and
//!   co-state–weighted Hessians of a model symbolically and emits Rust and CUDA code;
//! * [`runtime`] (`mpc-runtime`): the `Model`/`Dynamics` traits, the `linear` model, the CPU
//!   solver with its implicit gradients, the backend trait and the exchange format;
//! * [`cuda`] (`mpc-cuda`): the CUDA backend (kernel templates, NVRTC/ptxas, the launch
//!   orchestration run on a GPU or by host emulation);
//! * [`models`] (`mpc-models`): the bundled pendulum, cart-pole and quadrotor.
//!
//! A model written in a user's crate refers to the runtime as `::mpc_runtime` by default; with
//! only this facade as a dependency, write `#[mpc_model(crate = ::mpc::runtime, ..)]`.

pub mod imitation;

pub use mpc_cuda as cuda;
pub use mpc_macros as macros;
pub use mpc_models as models;
pub use mpc_runtime as runtime;

/// The names most programs need.
pub mod prelude {
    pub use mpc_macros::mpc_model;
    pub use mpc_models::{Cartpole, Pendulum, Quadrotor};
    pub use mpc_runtime::{Dynamics, LinearModel, Model, TimeModel};
}
