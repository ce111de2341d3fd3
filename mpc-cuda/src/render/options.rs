//! Compile-time settings of a rendered kernel: [`KernelOptions`], [`Precision`], [`KernelLayout`], [`Stage`].

use super::RenderError;
use mpc_runtime::solver::SolverOptions;

/// Real type of a rendered kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// `float`.
    F32,
    /// `double`.
    #[default]
    F64,
}

impl Precision {
    /// Both precisions, `f32` first.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F64];

    /// The C++ type name (`"float"`, `"double"`).
    pub fn c_type(self) -> &'static str {
        match self {
            Precision::F32 => "float",
            Precision::F64 => "double",
        }
    }

    /// The suffix used in kernel names (`"f32"`, `"f64"`).
    pub fn suffix(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Machine epsilon of the type.
    pub fn epsilon(self) -> f64 {
        match self {
            Precision::F32 => f32::EPSILON as f64,
            Precision::F64 => f64::EPSILON,
        }
    }

    /// Size of one real in bytes.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "float" => Ok(Precision::F32),
            "f64" | "double" => Ok(Precision::F64),
            other => Err(format!("unknown precision `{other}` (f32 or f64)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.suffix())
    }
}

/// Compile-time settings of a rendered solve kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelOptions {
    /// Horizon `T` (≥ 1).
    pub horizon: usize,
    /// Real type.
    pub precision: Precision,
    /// Solver settings baked into the kernel: `max_iters` (K), `eps`, `line_search`,
    /// `line_search_rule`, `reg_min`, `reg_factor`, `reg_max`. (`gradient` is not used by the
    /// forward kernel.)
    pub solver: SolverOptions,
    /// Thread layout of the forward solve.
    pub layout: KernelLayout,
    /// Every problem has its own parameter values (`params` B×NP instead of NP): one mass per
    /// environment.
    pub per_problem_params: bool,
}

/// How the forward solve is laid out on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum KernelLayout {
    /// One launch runs all K iterations, one thread per problem (`ilqr_solve.cu.tera`).
    #[default]
    SingleLaunch,
    /// The CA-AC-MPC paper's three stages per iteration, launched from the host about K times
    /// (`ilqr_stage{1,2,3}_*.cu.tera`): linearisation over (problem, stage) threads, the
    /// Riccati pass per problem, the line search over (problem, step) threads.
    ThreeStage,
    /// One launch runs all K iterations, one warp per problem, lanes over matrix rows, stages
    /// and line-search steps (`ilqr_solve_warp.cu.tera`).
    WarpPerProblem,
}

impl KernelLayout {
    /// Every layout.
    pub const ALL: [KernelLayout; 3] = [KernelLayout::SingleLaunch, KernelLayout::ThreeStage, KernelLayout::WarpPerProblem];

    /// The layout [`KernelLayout::auto`] picks for a batch of `batch` problems on a GPU with
    /// `multiprocessors` SMs: a warp per problem while the batch leaves most of the GPU idle
    /// with one thread per problem (fewer problems than 4 warps' worth of threads per SM,
    /// `batch < 128 × SMs`), otherwise one thread per problem. This is the rule the layouts'
    /// design suggests (a lone problem gets 32 lanes instead of one thread; a full GPU gains
    /// nothing from lanes that wait at warp barriers); it has **not been measured** (no GPU
    /// was available: `scripts/gpu-checks.sh` times both layouts on the Table II grid and the
    /// large batches, which is what should set the threshold).
    pub fn auto(batch: usize, multiprocessors: usize) -> KernelLayout {
        if batch < 128 * multiprocessors.max(1) { KernelLayout::WarpPerProblem } else { KernelLayout::SingleLaunch }
    }
}

impl std::str::FromStr for KernelLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" | "single-launch" => Ok(KernelLayout::SingleLaunch),
            "three-stage" | "staged" => Ok(KernelLayout::ThreeStage),
            "warp" | "warp-per-problem" => Ok(KernelLayout::WarpPerProblem),
            other => Err(format!("unknown kernel layout `{other}` (single-launch, three-stage or warp)")),
        }
    }
}

/// One of the three-stage layout's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Stage 1: the initial rollout (`_init`) and the linearisation (`_linearize`).
    Rollout,
    /// Stage 2: the Riccati pass with the per-stage box QP (`_riccati`).
    Riccati,
    /// Stage 3: the parallel line search (`_line_search`) and the results (`_finish`).
    LineSearch,
}

impl Stage {
    /// The three stages in order.
    pub const ALL: [Stage; 3] = [Stage::Rollout, Stage::Riccati, Stage::LineSearch];

    pub(super) fn index(self) -> usize {
        match self {
            Stage::Rollout => 0,
            Stage::Riccati => 1,
            Stage::LineSearch => 2,
        }
    }

    /// Entry-point suffixes of this stage's translation unit.
    pub fn entry_suffixes(self) -> &'static [&'static str] {
        match self {
            Stage::Rollout => &["init", "linearize"],
            Stage::Riccati => &["riccati"],
            Stage::LineSearch => &["line_search", "finish"],
        }
    }
}

impl KernelOptions {
    /// Options for horizon `horizon`, precision `precision` and the default [`SolverOptions`].
    pub fn new(horizon: usize, precision: Precision) -> Self {
        KernelOptions { horizon, precision, solver: SolverOptions::default(), layout: KernelLayout::default(), per_problem_params: false }
    }

    /// With this forward-solve layout.
    pub fn with_layout(mut self, layout: KernelLayout) -> Self {
        self.layout = layout;
        self
    }

    /// With `max_iters = iters`.
    pub fn with_iters(mut self, iters: usize) -> Self {
        self.solver.max_iters = iters;
        self
    }

    /// With one parameter set per problem (`params` B×NP).
    pub fn with_per_problem_params(mut self, per_problem: bool) -> Self {
        self.per_problem_params = per_problem;
        self
    }

    /// With these solver settings.
    pub fn with_solver(mut self, solver: SolverOptions) -> Self {
        self.solver = solver;
        self
    }

    /// Check the settings a kernel can be rendered with.
    pub fn validate(&self) -> Result<(), RenderError> {
        let bad = |m: String| Err(RenderError::Options(m));
        let s = &self.solver;
        if self.horizon == 0 {
            return bad("horizon must be at least 1".into());
        }
        if self.horizon > 100_000 || s.max_iters > i32::MAX as usize {
            return bad("horizon or iteration count too large for a kernel".into());
        }
        if s.line_search.is_empty() || s.line_search.iter().any(|a| !(a.is_finite() && *a > 0.0)) {
            return bad(format!("line_search needs positive finite steps, got {:?}", s.line_search));
        }
        if s.tol.is_some_and(|t| !(t >= 0.0 && t.is_finite())) {
            return bad(format!("tol must be a non-negative finite number, got {:?}", s.tol));
        }
        if s.tol.is_some() && self.layout != KernelLayout::SingleLaunch {
            return bad(format!(
                "the KKT tolerance `tol` is in the single-launch kernel only (layout {:?} stops on `eps`)",
                self.layout
            ));
        }
        for (name, v) in [("eps", s.eps), ("reg_min", s.reg_min), ("reg_factor", s.reg_factor), ("reg_max", s.reg_max)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be positive and finite, got {v}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_parses() {
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!("double".parse::<Precision>().unwrap(), Precision::F64);
        assert!("f16".parse::<Precision>().is_err());
    }
}
