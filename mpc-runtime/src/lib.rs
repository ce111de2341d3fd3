//! Runtime of the differentiable MPC compiler.
//!
//! * [`backend`]: the [`Backend`] trait every solver implements (CPU here, CUDA and host
//!   emulation in `mpc-cuda`), with typed errors.
//! * [`model`]: the [`Dynamics`] and [`Model`] traits that generated models implement.
//! * [`lane`]: arithmetic on lanes of problems, what generated lane code is written in.
//! * [`math`]: the `sin` and `cos` of generated code (branch-free, same bits in lanes).
//! * [`linear`]: the run-time-sized `linear` model.
//! * [`verify`]: finite-difference checks of a model's derivatives; lane and batch checks.
//! * [`solver`]: the batched box-constrained iLQR solver with implicit-differentiation
//!   gradients (CPU).
//! * [`pages`]: large buffers in huge-page-advised memory.
//! * [`private_fs`]: build and cache folders no other user can change.
//! * [`problem`]: the JSON exchange format (`mpc-problem/1`, `mpc-solution/1`).

pub mod backend;
pub mod lane;
pub mod linear;
pub mod math;
pub mod model;
pub mod pages;
pub mod private_fs;
pub mod problem;
pub mod solver;
pub mod verify;

pub use backend::{Backend, BackendError, BackendKind};
pub use linear::LinearModel;
pub use model::{Dynamics, LANES, Lane, Model, OpCounts, ParamError, TimeModel};
pub use solver::{
    Batch, Bound, CostStructure, GradStatus, GradientMode, Gradients, IterationRecord, Lanes, LineSearchRule, Method, NonFinite, Solution, Solver,
    SolveEach, SolverOptions, StopReason, format_trace, mask_gradients, solve_each,
};
