//! Bundled robot models, written with `#[mpc_model]`.
//!
//! The equations, parameter names and defaults are those of the reference fixtures
//! (`shared/reference/models.md`: mpc.pytorch's pendulum and cart-pole, and the CA-AC-MPC
//! racing quadrotor), so a problem file that names `pendulum`, `cartpole` or `quadrotor` means
//! exactly these maps.

mod cartpole;
mod pendulum;
mod quadrotor;
pub mod scenarios;

pub use cartpole::Cartpole;
pub use pendulum::Pendulum;
pub use quadrotor::Quadrotor;

/// Names of the bundled models, as used in problem files (`"model": "..."`).
pub const BUNDLED: &[&str] = &["pendulum", "cartpole", "quadrotor"];

use mpc_runtime::Model;

/// Something to do with a model whose type is only known by name at run time.
///
/// `dispatch("quadrotor", visitor)` calls `visitor.visit::<Quadrotor>()`: the visitor's code is
/// monomorphised for each bundled model, so solvers stay fixed-size.
pub trait ModelVisitor {
    /// What the visit returns.
    type Output;
    /// Called with the model type chosen by name.
    fn visit<M: Model>(self) -> Self::Output;
}

/// Run `visitor` with the bundled model called `name`; `None` for an unknown name.
pub fn dispatch<V: ModelVisitor>(name: &str, visitor: V) -> Option<V::Output> {
    match name {
        "pendulum" => Some(visitor.visit::<Pendulum>()),
        "cartpole" => Some(visitor.visit::<Cartpole>()),
        "quadrotor" => Some(visitor.visit::<Quadrotor>()),
        _ => None,
    }
}

/// The generated CUDA device source of a bundled model.
pub fn cuda_source(name: &str) -> Option<&'static str> {
    struct Cuda;
    impl ModelVisitor for Cuda {
        type Output = &'static str;
        fn visit<M: Model>(self) -> &'static str {
            M::CUDA_SOURCE
        }
    }
    dispatch(name, Cuda)
}

/// The generated Rust bodies of a bundled model's `Model` methods.
pub fn generated_rust(name: &str) -> Option<&'static str> {
    match name {
        "pendulum" => Some(Pendulum::GENERATED_RUST),
        "cartpole" => Some(Cartpole::GENERATED_RUST),
        "quadrotor" => Some(Quadrotor::GENERATED_RUST),
        _ => None,
    }
}
