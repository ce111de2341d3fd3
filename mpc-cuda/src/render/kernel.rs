//! A rendered kernel ([`RenderedKernel`], [`KernelKind`]) and the names of the kernels' entry points.

use super::{Precision, Stage};
use mpc_runtime::solver::GradientMode;

/// Which kernel a [`RenderedKernel`] is (and so which argument list its entry point takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// The single-launch forward solve (`ilqr_solve.cu.tera`).
    Solve,
    /// The implicit-differentiation backward pass (`ilqr_backward.cu.tera`) with this Hessian.
    Backward(GradientMode),
    /// One stage of the three-stage forward solve (`ilqr_stage{1,2,3}_*.cu.tera`).
    Stage(Stage),
    /// The warp-per-problem single-launch solve (`ilqr_solve_warp.cu.tera`).
    SolveWarp,
}

/// A rendered kernel: one complete CUDA C++ translation unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedKernel {
    /// Model name.
    pub model: String,
    /// Template file name (under `templates/`).
    pub template: &'static str,
    /// What the kernel computes.
    pub kind: KernelKind,
    /// Name of the kernel: its entry point, or for a stage of the three-stage layout the name
    /// of its translation unit (its entry points are in `entries`).
    pub kernel: String,
    /// The `extern "C"` entry points the source defines.
    pub entries: Vec<String>,
    /// Line-search steps (solve kernels; 0 for the backward kernel).
    pub nls: usize,
    /// Three-stage layout: the most host rounds (linearise, Riccati, line search) a solve can
    /// take: K iterations, each with at most every regularisation step from 0 past `reg_max`
    /// (0 for other kernels).
    pub max_rounds: usize,
    /// Real type.
    pub precision: Precision,
    /// State, control and parameter counts.
    pub nx: usize,
    /// Control count.
    pub nu: usize,
    /// Parameter count.
    pub np: usize,
    /// Horizon.
    pub horizon: usize,
    /// Whether `params` holds one set per problem (B×NP) rather than one shared set (NP).
    pub per_problem_params: bool,
    /// The CUDA C++ source.
    pub source: String,
}

impl RenderedKernel {
    /// How many numbers `params` must hold for a batch of `b` problems: NP, or B×NP with
    /// per-problem parameters.
    pub fn params_len(&self, b: usize) -> usize {
        if self.per_problem_params { b * self.np } else { self.np }
    }

    /// Suggested file name: `<kernel>_T<horizon>.cu`.
    pub fn file_name(&self) -> String {
        format!("{}_T{}.cu", self.kernel, self.horizon)
    }
}

/// Name of the single-launch solve kernel of `model` in `precision`:
/// `mpc_ilqr_solve_<model>_<f32|f64>`.
pub fn solve_kernel_name(model: &str, precision: Precision) -> String {
    format!("mpc_ilqr_solve_{model}_{}", precision.suffix())
}

/// Name of the backward kernel of `model` in `precision` and gradient `mode`:
/// `mpc_ilqr_backward_<model>_<f32|f64>_<exact|gn>`.
pub fn backward_kernel_name(model: &str, precision: Precision, mode: GradientMode) -> String {
    format!("mpc_ilqr_backward_{model}_{}_{}", precision.suffix(), mode_suffix(mode))
}

fn mode_suffix(mode: GradientMode) -> &'static str {
    match mode {
        GradientMode::Exact => "exact",
        GradientMode::GaussNewton => "gn",
    }
}

/// Name of the warp-per-problem solve kernel: `mpc_ilqr_solve_warp_<model>_<f32|f64>`.
pub fn warp_kernel_name(model: &str, precision: Precision) -> String {
    format!("mpc_ilqr_solve_warp_{model}_{}", precision.suffix())
}

/// Base name of the three-stage kernels of `model` in `precision`: `mpc_ilqr3_<model>_<f32|f64>`
/// (entry points `<base>_init`, `_linearize`, `_riccati`, `_line_search`, `_finish`).
pub fn staged_base_name(model: &str, precision: Precision) -> String {
    format!("mpc_ilqr3_{model}_{}", precision.suffix())
}
