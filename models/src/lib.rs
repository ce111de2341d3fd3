//! Bundled robot models, written with `#[mpc_model]`.
//!
//! The equations, parameter names and defaults are those of the reference fixtures
//! (`shared/reference/models.md`: mpc.pytorch's pendulum and cart-pole, and the CA-AC-MPC
//! racing quadrotor), so a problem file that names `pendulum`, `cartpole` or `quadrotor` means
//! exactly these maps.

mod cartpole;
mod pendulum;
mod quadrotor;

pub use cartpole::Cartpole;
pub use pendulum::Pendulum;
pub use quadrotor::Quadrotor;

/// Names of the bundled models, as used in problem files (`"model": "..."`).
pub const BUNDLED: &[&str] = &["pendulum", "cartpole", "quadrotor"];
