//! The contract between generated models and the solvers.
//!
//! Two traits split the job:
//!
//! * [`Dynamics`] is what a solver needs: sizes, the discrete step `x' = f(x, u)`, its
//!   Jacobians and the co-state–weighted second derivative. It is object-safe-free but
//!   generic-friendly: for generated models `nx()`/`nu()` return compile-time constants, so
//!   loops over them are unrolled after monomorphisation; the [`crate::linear::LinearModel`]
//!   returns run-time sizes.
//! * [`Model`] is what `#[mpc_model]` generates on top: names, bounds, parameters, `dt`, and the
//!   CUDA device source. Every `Model` is a `Dynamics` through a blanket impl.
//!
//! Layout conventions (the ABI, also documented in `ARCHITECTURE.md`):
//! * `x` has `nx` entries, `u` has `nu`, `z = [x; u]` has `n = nx + nu`.
//! * `A = ∂f/∂x` is `nx × nx`, `B = ∂f/∂u` is `nx × nu`, `H = Σ_i λ_i ∇²_zz f_i` is `n × n`,
//!   all **row-major** (`A[i * nx + j] = ∂f_i/∂x_j`).
//! * Derivatives are those of the *discrete* map, through the integrator.

use std::fmt;

/// How a model's equations become a discrete step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeModel {
    /// The body returns the next state directly (`Next { .. }`).
    Discrete,
    /// Continuous time integrated with one explicit Euler step of length `dt`.
    Euler,
    /// Continuous time integrated with one classical Runge–Kutta 4 step of length `dt`.
    Rk4,
}

impl fmt::Display for TimeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeModel::Discrete => "discrete",
            TimeModel::Euler => "euler",
            TimeModel::Rk4 => "rk4",
        })
    }
}

/// Problems per lane group of the structure-of-arrays path ([`Dynamics::step_lanes`]).
pub const LANES: usize = 4;

/// One value per problem of a lane group.
pub type Lane = [f64; LANES];

/// Discrete-time dynamics with exact first and second derivatives: what a solver consumes.
pub trait Dynamics: Send + Sync {
    /// State dimension.
    fn nx(&self) -> usize;
    /// Control dimension.
    fn nu(&self) -> usize;
    /// `x_next = f(x, u)`.
    fn step(&self, x: &[f64], u: &[f64], x_next: &mut [f64]);
    /// `x_next = f(x, u)` together with `A = ∂f/∂x` (nx×nx) and `B = ∂f/∂u` (nx×nu), row-major.
    fn linearize(&self, x: &[f64], u: &[f64], x_next: &mut [f64], a: &mut [f64], b: &mut [f64]);
    /// `H = Σ_i λ_i ∇²_zz f_i(x, u)`, `(nx+nu)×(nx+nu)`, symmetric, row-major.
    fn weighted_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], h: &mut [f64]);
    /// [`Dynamics::step`] for [`LANES`] problems at once, structure of arrays (`x[i][l]` is
    /// state `i` of problem `l`), each lane's result that of `step` to the bit. Returns `false`
    /// without doing anything when the model has no lane code (the default; generated models
    /// have it), and the caller then steps lane by lane.
    fn step_lanes(&self, _x: &[Lane], _u: &[Lane], _x_next: &mut [Lane]) -> bool {
        false
    }
    /// [`Dynamics::linearize`] for [`LANES`] problems at once, as [`Dynamics::step_lanes`].
    fn linearize_lanes(&self, _x: &[Lane], _u: &[Lane], _x_next: &mut [Lane], _a: &mut [Lane], _b: &mut [Lane]) -> bool {
        false
    }
    /// Whether [`Dynamics::step_lanes`] and [`Dynamics::linearize_lanes`] do the work (the
    /// model has lane code) rather than return `false`.
    fn has_lanes(&self) -> bool {
        false
    }
    /// False when every second derivative is identically zero (linear dynamics), so that
    /// solvers can skip [`Dynamics::weighted_hessian`].
    fn has_curvature(&self) -> bool {
        true
    }
    /// Number of parameters `θ` whose derivatives [`Dynamics::param_jacobian`] and
    /// [`Dynamics::param_hessian`] give (0: none, and those two are never called).
    fn np(&self) -> usize {
        0
    }
    /// `Fp = ∂f/∂θ` (nx×np, row-major).
    fn param_jacobian(&self, _x: &[f64], _u: &[f64], _fp: &mut [f64]) {}
    /// `Hp = ∂²(λᵀf)/∂z∂θ` (`(nx+nu)×np`, row-major): the co-state–weighted mixed second
    /// derivative.
    fn param_hessian(&self, _x: &[f64], _u: &[f64], _lambda: &[f64], _hp: &mut [f64]) {}
}

/// Error when setting a parameter by name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The model has no parameter of that name.
    #[error("model `{model}` has no parameter `{name}` (its parameters: {known})")]
    Unknown {
        /// Model name.
        model: &'static str,
        /// Offending parameter name.
        name: String,
        /// Comma-separated list of the model's parameters.
        known: String,
    },
    /// The value is NaN or infinite where a finite value is required.
    #[error("parameter `{name}` of model `{model}` must be a finite number, got {value}")]
    NotFinite {
        /// Model name.
        model: &'static str,
        /// Parameter name.
        name: String,
        /// The rejected value.
        value: f64,
    },
}

/// A model generated by `#[mpc_model]`: sizes as constants, metadata, parameters and device code.
///
/// Parameters (including `dt` for continuous-time models) are public fields of the model
/// struct; [`Model::param`]/[`Model::set_param`] address them by name, in
/// [`Model::PARAM_NAMES`] order, which is also the field order of the CUDA `Params<T>` struct.
pub trait Model: Clone + Default + Send + Sync + 'static {
    /// Model name (the snake_case name of the annotated function).
    const NAME: &'static str;
    /// State dimension.
    const NX: usize;
    /// Control dimension.
    const NU: usize;
    /// Number of run-time parameters.
    const NP: usize;
    /// State names, in order.
    const STATE_NAMES: &'static [&'static str];
    /// Control names, in order.
    const CONTROL_NAMES: &'static [&'static str];
    /// Parameter names, in order (the CUDA `Params<T>` field order).
    const PARAM_NAMES: &'static [&'static str];
    /// Lower control bounds (`-inf` when unbounded).
    const CONTROL_LOWER: &'static [f64];
    /// Upper control bounds (`+inf` when unbounded).
    const CONTROL_UPPER: &'static [f64];
    /// Discrete model or integrator.
    const TIME_MODEL: TimeModel;
    /// CUDA C++ device code: `namespace mpc_model_<name>` with `Params<T>`, `step`,
    /// `linearize` and `weighted_hessian`, templated on the real type.
    const CUDA_SOURCE: &'static str;

    /// Value of a parameter by name.
    fn param(&self, name: &str) -> Option<f64>;
    /// Set a parameter by name.
    fn set_param(&mut self, name: &str, value: f64) -> Result<(), ParamError>;
    /// All parameter values in [`Model::PARAM_NAMES`] order.
    fn param_values(&self) -> Vec<f64> {
        Self::PARAM_NAMES.iter().map(|n| self.param(n).expect("listed parameter")).collect()
    }
    /// Time step of the discrete map, when the model has a `dt` parameter.
    fn dt(&self) -> Option<f64> {
        self.param("dt")
    }

    /// `x_next = f(x, u)` (generated).
    fn eval_step(&self, x: &[f64], u: &[f64], x_next: &mut [f64]);
    /// Step and Jacobians of the discrete map (generated, common subexpressions shared).
    fn eval_linearize(&self, x: &[f64], u: &[f64], x_next: &mut [f64], a: &mut [f64], b: &mut [f64]);
    /// [`Model::eval_step`] over [`LANES`] problems (generated: the same operations per lane).
    fn eval_step_lanes(&self, x: &[Lane], u: &[Lane], x_next: &mut [Lane]);
    /// [`Model::eval_linearize`] over [`LANES`] problems (generated).
    fn eval_linearize_lanes(&self, x: &[Lane], u: &[Lane], x_next: &mut [Lane], a: &mut [Lane], b: &mut [Lane]);
    /// Co-state–weighted Hessian `Σ_i λ_i ∇²_zz f_i` (generated).
    fn eval_weighted_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], h: &mut [f64]);
    /// `∂f/∂θ`, nx×np in [`Model::PARAM_NAMES`] order (generated).
    fn eval_param_jacobian(&self, x: &[f64], u: &[f64], fp: &mut [f64]);
    /// `∂²(λᵀf)/∂z∂θ`, `(nx+nu)×np` (generated).
    fn eval_param_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], hp: &mut [f64]);
    /// True when the generated second derivatives are all identically zero.
    const IS_LINEAR: bool;
    /// Arithmetic operations of the generated functions (for operation counts and GFLOP/s).
    const OP_COUNTS: OpCounts;
}

/// Arithmetic operations of a generated model's functions: the interior nodes of its expression
/// DAG after simplification and common-subexpression elimination, as emitted. Each `+`, `×`,
/// `÷`, power or elementary function (`sin`, `sqrt`, ...) counts as one operation, so this is a
/// nominal count: a transcendental function costs a few tens of machine instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpCounts {
    /// `step`: `x_next = f(x, u)`.
    pub step: usize,
    /// `linearize`: `x_next`, `A = ∂f/∂x` and `B = ∂f/∂u` together.
    pub linearize: usize,
    /// `weighted_hessian`: `Σ λ_i ∂²f_i/∂z²`.
    pub weighted_hessian: usize,
}

impl<M: Model> Dynamics for M {
    #[inline(always)]
    fn nx(&self) -> usize {
        M::NX
    }
    #[inline(always)]
    fn nu(&self) -> usize {
        M::NU
    }
    #[inline(always)]
    fn step(&self, x: &[f64], u: &[f64], x_next: &mut [f64]) {
        self.eval_step(x, u, x_next)
    }
    #[inline(always)]
    fn linearize(&self, x: &[f64], u: &[f64], x_next: &mut [f64], a: &mut [f64], b: &mut [f64]) {
        self.eval_linearize(x, u, x_next, a, b)
    }
    #[inline(always)]
    fn step_lanes(&self, x: &[Lane], u: &[Lane], x_next: &mut [Lane]) -> bool {
        self.eval_step_lanes(x, u, x_next);
        true
    }
    #[inline(always)]
    fn has_lanes(&self) -> bool {
        true
    }
    #[inline(always)]
    fn linearize_lanes(&self, x: &[Lane], u: &[Lane], x_next: &mut [Lane], a: &mut [Lane], b: &mut [Lane]) -> bool {
        self.eval_linearize_lanes(x, u, x_next, a, b);
        true
    }
    #[inline(always)]
    fn weighted_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], h: &mut [f64]) {
        self.eval_weighted_hessian(x, u, lambda, h)
    }
    #[inline(always)]
    fn has_curvature(&self) -> bool {
        !M::IS_LINEAR
    }
    #[inline(always)]
    fn np(&self) -> usize {
        M::NP
    }
    #[inline(always)]
    fn param_jacobian(&self, x: &[f64], u: &[f64], fp: &mut [f64]) {
        self.eval_param_jacobian(x, u, fp)
    }
    #[inline(always)]
    fn param_hessian(&self, x: &[f64], u: &[f64], lambda: &[f64], hp: &mut [f64]) {
        self.eval_param_hessian(x, u, lambda, hp)
    }
}
