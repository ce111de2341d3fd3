//! The JSON exchange format (`shared/problem-format.md`): parsing and validation of
//! `mpc-problem/1` documents, and writing of `mpc-solution/1` documents.
//!
//! Every validation failure is a [`ProblemError`] naming the offending key and, for arrays,
//! the expected shape in symbols and numbers, e.g.
//! `C: expected shape B×T×n×n = 4×10×4×4, got 4×10×4×3`.

mod parse;
mod write;

use crate::linear::LinearModel;
use crate::solver::{Batch, Bound, SolverOptions};
use std::fmt;

pub use write::{solution_json, solution_value};

/// The `format` value of a problem document.
pub const PROBLEM_FORMAT: &str = "mpc-problem/1";
/// The `format` value of a solution document.
pub const SOLUTION_FORMAT: &str = "mpc-solution/1";
/// Relative tolerance of the symmetry check on `C` (relative to the largest entry of `C_t`).
pub const SYMMETRY_RTOL: f64 = 1e-9;

/// A malformed problem document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemError {
    /// The offending key (`"C"`, `"params.A"`, `"solver.eps"`, or `""` for the document).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ProblemError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.key, self.message) }
    }
}

impl std::error::Error for ProblemError {}

/// Control bounds as stored in a problem.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum BoundData {
    /// Key absent: unbounded.
    #[default]
    None,
    /// `nu` bounds shared by every problem and stage.
    PerControl(Vec<f64>),
    /// B×T×nu bounds.
    PerStage(Vec<f64>),
}

impl BoundData {
    /// Borrow as a solver [`Bound`].
    pub fn as_bound(&self) -> Bound<'_> {
        match self {
            BoundData::None => Bound::None,
            BoundData::PerControl(v) => Bound::PerControl(v),
            BoundData::PerStage(v) => Bound::PerStage(v),
        }
    }
    /// The bound of problem `b`, stage `t`, control `i` (`default` when absent).
    fn at(&self, b: usize, t: usize, i: usize, horizon: usize, nu: usize, default: f64) -> f64 {
        match self {
            BoundData::None => default,
            BoundData::PerControl(v) => v[i],
            BoundData::PerStage(v) => v[(b * horizon + t) * nu + i],
        }
    }
}

/// Model parameters of a problem.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelParams {
    /// The `linear` model, built from `A`, `B`, `f`, shared by the batch.
    Linear(LinearModel),
    /// Scalar parameters of a named model, in document order (validated by the model), shared
    /// by the batch.
    Named(Vec<(String, f64)>),
    /// One `linear` model per problem (some of `A`, `B`, `f` given per problem).
    LinearPerProblem(Vec<LinearModel>),
    /// The parameters of each problem (some given per problem as arrays of B numbers; the
    /// shared ones repeated), B lists in document order.
    NamedPerProblem(Vec<Vec<(String, f64)>>),
}

impl ModelParams {
    /// Whether the problems of the batch have different parameters.
    pub fn per_problem(&self) -> bool {
        matches!(self, ModelParams::LinearPerProblem(_) | ModelParams::NamedPerProblem(_))
    }
}

/// `(nx, nu)` of a named model, or why the name is not known.
pub type ModelDims<'a> = &'a dyn Fn(&str) -> Result<(usize, usize), String>;

/// A validated problem document.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Model name.
    pub model: String,
    /// Model parameters.
    pub params: ModelParams,
    /// Horizon `T`.
    pub horizon: usize,
    /// Batch size `B`.
    pub batch: usize,
    /// State dimension.
    pub nx: usize,
    /// Control dimension.
    pub nu: usize,
    /// B×nx.
    pub x_init: Vec<f64>,
    /// `C`, B×T×n×n (symmetrised).
    pub cost_hess: Vec<f64>,
    /// `c`, B×T×n.
    pub cost_lin: Vec<f64>,
    /// Lower control bounds.
    pub u_lower: BoundData,
    /// Upper control bounds.
    pub u_upper: BoundData,
    /// Warm start, B×T×nu.
    pub u_init: Option<Vec<f64>>,
    /// Solver settings (defaults of the format where absent).
    pub options: SolverOptions,
    /// Upstream gradient dL/dx*, B×T×nx (zeros when only `grad_u` is given).
    pub grad_x: Option<Vec<f64>>,
    /// Upstream gradient dL/du*, B×T×nu (zeros when only `grad_x` is given).
    pub grad_u: Option<Vec<f64>>,
}

impl Problem {
    /// Borrow the batch for the solver.
    pub fn as_batch(&self) -> Batch<'_> {
        Batch {
            size: self.batch,
            x_init: &self.x_init,
            cost_hess: &self.cost_hess,
            cost_lin: &self.cost_lin,
            u_lower: self.u_lower.as_bound(),
            u_upper: self.u_upper.as_bound(),
            u_init: self.u_init.as_deref(),
        }
    }

    /// Whether the document asks for the backward pass (`grad_x` and/or `grad_u` present).
    pub fn wants_gradients(&self) -> bool {
        self.grad_x.is_some()
    }
}

/// The model sizes and the minimal `linear` document the tests of parsing and writing start from.
#[cfg(test)]
mod fixtures {
    use serde_json::Value;

    pub(super) fn dims(m: &str) -> Result<(usize, usize), String> {
        match m {
            "pendulum" => Ok((3, 1)),
            _ => Err(format!("unknown model `{m}`")),
        }
    }

    pub(super) fn base() -> Value {
        serde_json::json!({
            "format": "mpc-problem/1",
            "model": "linear",
            "params": {"A": [[1.0, 0.1], [0.0, 1.0]], "B": [[0.0], [0.1]]},
            "horizon": 2,
            "x_init": [[1.0, 0.0]],
            "C": [[[[1,0,0],[0,1,0],[0,0,1]], [[1,0,0],[0,1,0],[0,0,1]]]],
            "c": [[[0,0,0],[0,0,0]]],
        })
    }
}
