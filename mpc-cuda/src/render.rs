//! Rendering of the CUDA kernel templates (`templates/*.cu.tera`, tera 2) for a model.
//!
//! A template gets the model's generated device code ([`Model::CUDA_SOURCE`]) spliced in and
//! the problem sizes, the iteration count, the line-search steps, the solver constants and the
//! real type fixed as compile-time constants. The result is one self-contained translation unit
//! that NVRTC compiles for the GPU ([`super::compile_ptx`]) and the host C++ compiler compiles
//! for the CPU emulation ([`super::host`]) — the same text for both.
//!
//! Templates are embedded in the library (`include_str!`), so rendering needs no files at run
//! time.
//!
//! Kernels ([`KernelKind`]):
//! * [`SOLVE_TEMPLATE`] (`ilqr_solve.cu.tera`): the single-launch forward solve, all iLQR
//!   iterations of one problem per thread (see the layout notes at the top of the template);
//! * [`WARP_TEMPLATE`] (`ilqr_solve_warp.cu.tera`): the same single-launch solve with one
//!   warp per problem (lanes over matrix rows, stages, line-search steps);
//! * [`STAGE_TEMPLATES`] (`ilqr_stage{1,2,3}_*.cu.tera`): the three-stage layout;
//! * [`BACKWARD_TEMPLATE`] (`ilqr_backward.cu.tera`): the implicit-differentiation backward
//!   pass, one problem per thread, exact or Gauss-Newton Hessian fixed at render time
//!   (`opts.solver.gradient`).
//!
//! [`COMMON_TEMPLATE`] (`common.cu.tera`) holds device helpers (dense linear algebra, the
//! Riccati pieces) and [`CORE_TEMPLATE`] (`ilqr_core.cu.tera`) the iLQR building blocks (box QP,
//! rollouts, Riccati pass) that the kernel templates `{% include %}`.

use mpc_runtime::model::Model;
use mpc_runtime::solver::{ACTIVE_TOL, GradientMode, LineSearchRule, SolverOptions};

/// File name of the single-launch forward-solve template under `templates/`.
pub const SOLVE_TEMPLATE_NAME: &str = "ilqr_solve.cu.tera";
/// The single-launch forward-solve template (tera 2 syntax).
pub const SOLVE_TEMPLATE: &str = include_str!("../../templates/ilqr_solve.cu.tera");
/// File name of the backward-pass template under `templates/`.
pub const BACKWARD_TEMPLATE_NAME: &str = "ilqr_backward.cu.tera";
/// The implicit-differentiation backward-pass template (tera 2 syntax).
pub const BACKWARD_TEMPLATE: &str = include_str!("../../templates/ilqr_backward.cu.tera");
/// File name of the shared device helpers under `templates/` (included by other templates).
pub const COMMON_TEMPLATE_NAME: &str = "common.cu.tera";
/// Shared device helpers (tera 2 syntax), `{% include %}`d by kernel templates.
pub const COMMON_TEMPLATE: &str = include_str!("../../templates/common.cu.tera");
/// File name of the iLQR building blocks under `templates/` (included by the solve kernels).
pub const CORE_TEMPLATE_NAME: &str = "ilqr_core.cu.tera";
/// The iLQR building blocks (box QP, rollouts, Riccati pass), templates over the workspace type.
pub const CORE_TEMPLATE: &str = include_str!("../../templates/ilqr_core.cu.tera");
/// File name of the warp-per-problem solve template under `templates/`.
pub const WARP_TEMPLATE_NAME: &str = "ilqr_solve_warp.cu.tera";
/// The warp-per-problem single-launch solve template (tera 2 syntax).
pub const WARP_TEMPLATE: &str = include_str!("../../templates/ilqr_solve_warp.cu.tera");
/// File names and texts of the three-stage layout's templates (stage 1, 2, 3) under `templates/`.
pub const STAGE_TEMPLATES: [(&str, &str); 3] = [
    ("ilqr_stage1_rollout.cu.tera", include_str!("../../templates/ilqr_stage1_rollout.cu.tera")),
    ("ilqr_stage2_riccati.cu.tera", include_str!("../../templates/ilqr_stage2_riccati.cu.tera")),
    ("ilqr_stage3_line_search.cu.tera", include_str!("../../templates/ilqr_stage3_line_search.cu.tera")),
];
/// File name of the three-stage layout's shared part (constants, state layout) under `templates/`.
pub const STAGED_TEMPLATE_NAME: &str = "ilqr_staged.cu.tera";
/// The three-stage layout's shared part (tera 2 syntax).
pub const STAGED_TEMPLATE: &str = include_str!("../../templates/ilqr_staged.cu.tera");
/// File name of the host compatibility header under `templates/`.
pub const HOST_COMPAT_NAME: &str = "host_compat.h";
/// The host compatibility header that lets a host C++ compiler build the rendered kernels.
pub const HOST_COMPAT_H: &str = include_str!("../../templates/host_compat.h");

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

    fn index(self) -> usize {
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

/// Per-problem iteration state of the three-stage layout: `(reals, ints)` per problem (the
/// layout is in `templates/ilqr_staged.cu.tera`, which checks this count at compile time).
pub fn staged_state_len(nx: usize, nu: usize, horizon: usize, line_search_steps: usize) -> (usize, usize) {
    let (t, nls) = (horizon, line_search_steps);
    let ndyn = if t > 1 { t - 1 } else { 1 };
    let reals = 2 * t * nx + 2 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx + nls * t * (nx + nu) + 2 * nls + 6;
    (reals, 3)
}

/// The T-dependent part of the single-launch solve kernel's per-problem workspace, in global
/// memory (reals per problem; `templates/ilqr_solve.cu.tera` binds it and checks this count
/// at compile time): bounds, four state and four control trajectories, the Jacobians and the
/// gains. What stays in the thread's local memory does not grow with T.
pub fn solve_work_len(nx: usize, nu: usize, horizon: usize) -> usize {
    let t = horizon;
    let ndyn = if t > 1 { t - 1 } else { 1 };
    2 * t * nu + 4 * t * nx + 4 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx
}

/// The backward kernel's T-dependent workspace in global memory (reals per problem; checked by
/// `templates/ilqr_backward.cu.tera`): the Jacobians and the gains.
pub fn backward_work_len(nx: usize, nu: usize, horizon: usize) -> usize {
    let t = horizon;
    let ndyn = if t > 1 { t - 1 } else { 1 };
    ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx
}

/// Reals per problem of kernel `k`'s global workspace (`work` argument), 0 for kernels without.
pub fn work_len(k: &RenderedKernel) -> usize {
    match k.kind {
        KernelKind::Solve => solve_work_len(k.nx, k.nu, k.horizon),
        KernelKind::Backward(_) => backward_work_len(k.nx, k.nu, k.horizon),
        KernelKind::Stage(_) | KernelKind::SolveWarp => 0,
    }
}

/// Workspace of the warp-per-problem kernel in global memory: `(reals, ints)` per problem (the
/// layout is in `templates/ilqr_solve_warp.cu.tera`, which checks this count at compile time).
pub fn warp_state_len(nx: usize, nu: usize, horizon: usize, line_search_steps: usize) -> (usize, usize) {
    let (t, nls, nz) = (horizon, line_search_steps, nx + nu);
    let ndyn = if t > 1 { t - 1 } else { 1 };
    let reals = 2 * t * nx + 2 * t * nu + ndyn * nx * nx + ndyn * nx * nu + t * nu + t * nu * nx + nls * t * (nx + nu)
        + 2 * nx * nx + nx + nx * nu + nz * nz + nz + nu * nx + nu + nu * nu;
    (reals, nu + 1)
}

/// Name of the warp-per-problem solve kernel: `mpc_ilqr_solve_warp_<model>_<f32|f64>`.
pub fn warp_kernel_name(model: &str, precision: Precision) -> String {
    format!("mpc_ilqr_solve_warp_{model}_{}", precision.suffix())
}

/// Upper bound on the rounds of the three-stage layout: every round either ends an iteration
/// (at most K) or raises mu (at most the steps from 0 past `reg_max` per iteration), plus one.
fn max_rounds(s: &SolverOptions) -> usize {
    let mut bumps = 0usize;
    let mut mu = 0.0f64;
    while mu <= s.reg_max && bumps < 10_000 {
        mu = s.raise_regularisation(mu);
        bumps += 1;
    }
    s.max_iters.saturating_mul(bumps + 2).saturating_add(1)
}

/// Base name of the three-stage kernels of `model` in `precision`: `mpc_ilqr3_<model>_<f32|f64>`
/// (entry points `<base>_init`, `_linearize`, `_riccati`, `_line_search`, `_finish`).
pub fn staged_base_name(model: &str, precision: Precision) -> String {
    format!("mpc_ilqr3_{model}_{}", precision.suffix())
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

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Invalid [`KernelOptions`].
    #[error("invalid kernel options: {0}")]
    Options(String),
    /// The model cannot be used in a kernel.
    #[error("model `{model}`: {message}")]
    Model {
        /// Model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The template engine failed (a bug in a template).
    #[error("rendering {template}: {message}")]
    Template {
        /// Template file name.
        template: &'static str,
        /// tera's message.
        message: String,
    },
}

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

/// A finite `f64` as an exact C++ floating literal (shortest round-trip form).
fn literal(v: f64) -> String {
    debug_assert!(v.is_finite());
    format!("{v:e}")
}

/// A model as the renderer sees it: name, generated CUDA source and sizes.
#[derive(Clone, Copy, Debug)]
pub struct ModelCode<'a> {
    /// Model name (a C identifier; the CUDA source has `namespace mpc_model_<name>`).
    pub name: &'a str,
    /// The generated device code ([`Model::CUDA_SOURCE`]).
    pub cuda_source: &'a str,
    /// State count.
    pub nx: usize,
    /// Control count.
    pub nu: usize,
    /// Parameter count.
    pub np: usize,
    /// Whether every second derivative is identically zero ([`Model::IS_LINEAR`]).
    pub is_linear: bool,
}

impl<'a> ModelCode<'a> {
    /// The code of model `M`.
    pub fn of<M: Model>() -> ModelCode<'static> {
        ModelCode { name: M::NAME, cuda_source: M::CUDA_SOURCE, nx: M::NX, nu: M::NU, np: M::NP, is_linear: M::IS_LINEAR }
    }

    fn check(&self) -> Result<(), RenderError> {
        let model = self.name;
        if model.is_empty() || !model.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RenderError::Model { model: model.into(), message: "name is not a C identifier".into() });
        }
        if self.nu == 0 || self.nx == 0 {
            return Err(RenderError::Model { model: model.into(), message: "the kernels need nx ≥ 1 and nu ≥ 1".into() });
        }
        if !self.cuda_source.contains(&format!("namespace mpc_model_{model}")) {
            return Err(RenderError::Model {
                model: model.into(),
                message: format!("CUDA source lacks `namespace mpc_model_{model}`"),
            });
        }
        Ok(())
    }
}

/// Render the single-launch forward-solve kernel for model `M`.
pub fn render_solve<M: Model>(opts: &KernelOptions) -> Result<RenderedKernel, RenderError> {
    render_kernel(&ModelCode::of::<M>(), KernelKind::Solve, opts)
}

/// [`render_solve`] for a model given by name, CUDA source and sizes.
pub fn render_solve_for(
    model: &str,
    cuda_source: &str,
    nx: usize,
    nu: usize,
    np: usize,
    opts: &KernelOptions,
) -> Result<RenderedKernel, RenderError> {
    render_kernel(&ModelCode { name: model, cuda_source, nx, nu, np, is_linear: false }, KernelKind::Solve, opts)
}

/// Render the implicit-differentiation backward kernel for model `M`, with the Hessian of
/// `opts.solver.gradient` (only the horizon, the precision and the mode matter).
pub fn render_backward<M: Model>(opts: &KernelOptions) -> Result<RenderedKernel, RenderError> {
    render_kernel(&ModelCode::of::<M>(), KernelKind::Backward(opts.solver.gradient), opts)
}

/// Render the warp-per-problem single-launch solve kernel for model `M`.
pub fn render_solve_warp<M: Model>(opts: &KernelOptions) -> Result<RenderedKernel, RenderError> {
    render_kernel(&ModelCode::of::<M>(), KernelKind::SolveWarp, opts)
}

/// The forward-solve kernels of `opts.layout` for model `M`: one, or the three stages in
/// order. What the GPU and the host-emulated solver both run.
pub fn render_forward<M: Model>(opts: &KernelOptions) -> Result<Vec<RenderedKernel>, RenderError> {
    Ok(match opts.layout {
        KernelLayout::SingleLaunch => vec![render_solve::<M>(opts)?],
        KernelLayout::ThreeStage => render_stages::<M>(opts)?.into(),
        KernelLayout::WarpPerProblem => vec![render_solve_warp::<M>(opts)?],
    })
}

/// Render the three stage kernels of the three-stage layout for model `M` (stage 1, 2, 3).
pub fn render_stages<M: Model>(opts: &KernelOptions) -> Result<[RenderedKernel; 3], RenderError> {
    let m = ModelCode::of::<M>();
    Ok([
        render_kernel(&m, KernelKind::Stage(Stage::Rollout), opts)?,
        render_kernel(&m, KernelKind::Stage(Stage::Riccati), opts)?,
        render_kernel(&m, KernelKind::Stage(Stage::LineSearch), opts)?,
    ])
}

/// The kernels' `STATUS_*` constants: `(name, code)` for every [`mpc_runtime::solver::STOP_CODES`]
/// entry (`non-finite-rollout` → `STATUS_NONFINITE_ROLLOUT`).
pub fn status_constants() -> Vec<(String, i32)> {
    mpc_runtime::solver::STOP_CODES
        .iter()
        .map(|&(r, c)| (format!("STATUS_{}", r.name().to_uppercase().replace("NON-FINITE", "NONFINITE").replace('-', "_")), c))
        .collect()
}

/// Render the kernel `kind` for `model`. For [`KernelKind::Backward`] the mode given there is
/// used (not `opts.solver.gradient`).
pub fn render_kernel(model: &ModelCode<'_>, kind: KernelKind, opts: &KernelOptions) -> Result<RenderedKernel, RenderError> {
    opts.validate()?;
    model.check()?;
    let p = opts.precision;
    let s = &opts.solver;
    let (template, template_src, kernel, ns) = match kind {
        KernelKind::Solve => (
            SOLVE_TEMPLATE_NAME,
            SOLVE_TEMPLATE,
            solve_kernel_name(model.name, p),
            format!("mpc_ilqr_{}_{}_impl", model.name, p.suffix()),
        ),
        KernelKind::Backward(mode) => {
            let k = backward_kernel_name(model.name, p, mode);
            let ns = format!("{k}_impl");
            (BACKWARD_TEMPLATE_NAME, BACKWARD_TEMPLATE, k, ns)
        }
        KernelKind::SolveWarp => {
            let k = warp_kernel_name(model.name, p);
            let ns = format!("{k}_impl");
            (WARP_TEMPLATE_NAME, WARP_TEMPLATE, k, ns)
        }
        KernelKind::Stage(stage) => {
            let (name, src) = STAGE_TEMPLATES[stage.index()];
            let k = format!("{}_stage{}", staged_base_name(model.name, p), stage.index() + 1);
            let ns = format!("{k}_impl");
            (name, src, k, ns)
        }
    };
    let entries: Vec<String> = match kind {
        KernelKind::Stage(stage) => {
            stage.entry_suffixes().iter().map(|x| format!("{}_{x}", staged_base_name(model.name, p))).collect()
        }
        _ => vec![kernel.clone()],
    };
    // DDP solve kernels are named `mpc_ddp_*` (so that one module can hold both methods).
    let ddp = !matches!(kind, KernelKind::Backward(_)) && s.method == mpc_runtime::solver::Method::Ddp && !model.is_linear;
    let algo = |name: String| if ddp { name.replacen("mpc_ilqr", "mpc_ddp", 1) } else { name };
    let (kernel, ns) = (algo(kernel), algo(ns));
    let entries: Vec<String> = entries.into_iter().map(algo).collect();
    let mut ctx = tera::Context::new();
    ctx.insert("template", template);
    ctx.insert("model", model.name);
    ctx.insert("kernel", &kernel);
    ctx.insert("ns", &ns);
    ctx.insert("model_source", model.cuda_source.trim_end());
    ctx.insert("real", p.c_type());
    ctx.insert("nx", &model.nx);
    ctx.insert("nu", &model.nu);
    ctx.insert("np", &model.np);
    ctx.insert("horizon", &opts.horizon);
    ctx.insert("eps_mach", &literal(p.epsilon()));
    ctx.insert("entries", &entries);
    let status: Vec<serde_json::Value> =
        status_constants().into_iter().map(|(name, code)| serde_json::json!({ "name": name, "code": code })).collect();
    ctx.insert("status", &status);
    ctx.insert("param_stride", &if opts.per_problem_params { model.np } else { 0 });
    match kind {
        KernelKind::Solve | KernelKind::Stage(_) | KernelKind::SolveWarp => {
            ctx.insert("iters", &s.max_iters);
            let steps: Vec<String> = s.line_search.iter().map(|&a| literal(a)).collect();
            ctx.insert("line_search", &steps);
            let first = s.line_search_rule == LineSearchRule::FirstDecrease;
            ctx.insert("first_decrease", if first { "true" } else { "false" });
            ctx.insert("rule", if first { "first decrease" } else { "best step" });
            ctx.insert("eps", &literal(s.eps));
            ctx.insert("reg_min", &literal(s.reg_min));
            ctx.insert("reg_factor", &literal(s.reg_factor));
            ctx.insert("reg_max", &literal(s.reg_max));
            ctx.insert("ddp", if ddp { "true" } else { "false" });
            ctx.insert("method", s.method.name());
            ctx.insert("kkt_mode", if s.tol.is_some() { "true" } else { "false" });
            ctx.insert("has_curvature", if model.is_linear { "false" } else { "true" });
            ctx.insert("kkt_tol", &literal(s.tol.unwrap_or(0.0)));
            ctx.insert("work_reals", &solve_work_len(model.nx, model.nu, opts.horizon));
            if s.tol.is_some() && !matches!(kind, KernelKind::Solve) {
                return Err(RenderError::Options("the KKT tolerance `tol` is in the single-launch kernel only".into()));
            }
            if matches!(kind, KernelKind::Stage(_) | KernelKind::SolveWarp) {
                let (reals, ints) = staged_state_len(model.nx, model.nu, opts.horizon, s.line_search.len());
                ctx.insert("base", &algo(staged_base_name(model.name, p)));
                ctx.insert("state_reals", &reals);
                ctx.insert("state_ints", &ints);
                let (reals, ints) = warp_state_len(model.nx, model.nu, opts.horizon, s.line_search.len());
                ctx.insert("warp_reals", &reals);
                ctx.insert("warp_ints", &ints);
            }
        }
        KernelKind::Backward(mode) => {
            let exact = mode == GradientMode::Exact;
            ctx.insert("exact", if exact { "true" } else { "false" });
            ctx.insert("mode_name", if exact { "exact" } else { "Gauss-Newton" });
            ctx.insert("has_curvature", if model.is_linear { "false" } else { "true" });
            ctx.insert("active_tol", &literal(ACTIVE_TOL));
            ctx.insert("work_reals", &backward_work_len(model.nx, model.nu, opts.horizon));
        }
    }
    let terr = |e: tera::Error| RenderError::Template { template, message: format!("{e:?}") };
    let mut tera = tera::Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    tera.add_raw_templates([
        (COMMON_TEMPLATE_NAME, COMMON_TEMPLATE),
        (CORE_TEMPLATE_NAME, CORE_TEMPLATE),
        (STAGED_TEMPLATE_NAME, STAGED_TEMPLATE),
        (template, template_src),
    ])
    .map_err(terr)?;
    let mut source = tera.render(template, &ctx).map_err(terr)?;
    if !source.ends_with('\n') {
        source.push('\n');
    }
    Ok(RenderedKernel {
        model: model.name.into(),
        template,
        kind,
        kernel,
        entries,
        nls: if matches!(kind, KernelKind::Backward(_)) { 0 } else { s.line_search.len() },
        max_rounds: if matches!(kind, KernelKind::Stage(_)) { max_rounds(s) } else { 0 },
        precision: p,
        nx: model.nx,
        nu: model.nu,
        np: model.np,
        horizon: opts.horizon,
        per_problem_params: opts.per_problem_params,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOY: &str = "namespace mpc_model_toy {\nconstexpr int NX = 2; constexpr int NU = 1; constexpr int NP = 1;\n}\n";

    #[test]
    fn renders_constants_banner_and_source() {
        let mut opts = KernelOptions::new(7, Precision::F32).with_iters(5);
        opts.solver.line_search = vec![1.0, 0.04000000000000001];
        let r = render_solve_for("toy", TOY, 2, 1, 1, &opts).unwrap();
        assert_eq!(r.kernel, "mpc_ilqr_solve_toy_f32");
        let s = &r.source;
        assert!(s.starts_with("// ====="), "{}", &s[..200]);
        assert!(s.contains("GENERATED by mpc-runtime (cuda::render) from the template `templates/ilqr_solve.cu.tera`"));
        assert!(s.contains("for the model `toy`"));
        assert!(s.contains("namespace mpc_model_toy {"));
        assert!(s.contains("constexpr int HORIZON = 7;"));
        assert!(s.contains("constexpr int MAX_ITERS = 5;"));
        assert!(s.contains("constexpr int NLS = 2;"));
        assert!(s.contains("real(1e0), real(4.000000000000001e-2)"));
        assert!(s.contains("typedef float real;"));
        assert!(s.contains("extern \"C\" __global__ void mpc_ilqr_solve_toy_f32("));
        assert!(!s.contains("{{") && !s.contains("{%"), "unrendered tera syntax left");
    }

    #[test]
    fn renders_backward_kernels_per_mode() {
        let mut opts = KernelOptions::new(4, Precision::F64);
        let toy = ModelCode { name: "toy", cuda_source: TOY, nx: 2, nu: 1, np: 1, is_linear: false };
        for (mode, name, exact) in [
            (GradientMode::Exact, "mpc_ilqr_backward_toy_f64_exact", "true"),
            (GradientMode::GaussNewton, "mpc_ilqr_backward_toy_f64_gn", "false"),
        ] {
            opts.solver.gradient = mode;
            let r = render_kernel(&toy, KernelKind::Backward(mode), &opts).unwrap();
            assert_eq!((r.kernel.as_str(), r.kind, r.template), (name, KernelKind::Backward(mode), BACKWARD_TEMPLATE_NAME));
            let s = &r.source;
            assert!(s.contains("from the template `templates/ilqr_backward.cu.tera`"));
            assert!(s.contains(&format!("constexpr bool EXACT_MODE = {exact};")));
            assert!(s.contains("constexpr bool HAS_CURVATURE = true;"));
            assert!(s.contains("constexpr real ACTIVE_TOL = real(1e-8);"));
            assert!(s.contains("constexpr int HORIZON = 4;"));
            // The shared helpers are included, inside the kernel's namespace.
            assert!(s.contains("__device__ __forceinline__ bool lu_solve_multi("));
            assert!(s.find(&format!("namespace {name}_impl {{")).unwrap() < s.find("bool lu_solve_multi(").unwrap());
            assert!(s.contains(&format!("extern \"C\" __global__ void {name}(")));
            assert!(!s.contains("{{") && !s.contains("{%"), "unrendered tera syntax left");
        }
        let lin = ModelCode { is_linear: true, ..toy };
        let r = render_kernel(&lin, KernelKind::Backward(GradientMode::Exact), &opts).unwrap();
        assert!(r.source.contains("constexpr bool HAS_CURVATURE = false;"));
    }

    #[test]
    fn renders_stage_kernels_with_their_entry_points() {
        let toy = ModelCode { name: "toy", cuda_source: TOY, nx: 2, nu: 1, np: 1, is_linear: false };
        let mut opts = KernelOptions::new(6, Precision::F32).with_iters(7).with_layout(KernelLayout::ThreeStage);
        opts.solver.line_search = vec![1.0, 0.5, 0.25];
        let (reals, ints) = staged_state_len(2, 1, 6, 3);
        // x, u, best x, best u, A, B, k, K, trials, trial costs and scales, 6 scalars.
        assert_eq!(reals, 12 + 6 + 12 + 6 + 5 * 4 + 5 * 2 + 6 + 12 + 3 * 6 * 3 + 6 + 6);
        assert_eq!(ints, 3);
        let want: [&[&str]; 3] = [
            &["mpc_ilqr3_toy_f32_init", "mpc_ilqr3_toy_f32_linearize"],
            &["mpc_ilqr3_toy_f32_riccati"],
            &["mpc_ilqr3_toy_f32_line_search", "mpc_ilqr3_toy_f32_finish"],
        ];
        for (stage, entries) in Stage::ALL.into_iter().zip(want) {
            let r = render_kernel(&toy, KernelKind::Stage(stage), &opts).unwrap();
            assert_eq!(r.entries, entries);
            assert_eq!((r.nls, r.kind), (3, KernelKind::Stage(stage)));
            assert!(r.max_rounds > 7, "{}", r.max_rounds);
            let s = &r.source;
            assert!(s.contains(&format!("static_assert(st::REALS == {reals}LL && st::INTS == 3,")));
            for e in entries {
                assert!(s.contains(&format!("extern \"C\" __global__ void {e}(")), "{e}");
            }
            assert!(s.contains("constexpr int NLS = 3;") && s.contains("constexpr int MAX_ITERS = 7;"));
            assert!(!s.contains("{{") && !s.contains("{%"), "unrendered tera syntax left");
        }
        // K iterations, each with every regularisation step from 0 past reg_max (1e-6 · 10^16
        // > 1e10: 18 steps), plus one.
        assert_eq!(max_rounds(&SolverOptions { max_iters: 5, ..SolverOptions::default() }), 5 * (18 + 2) + 1);
    }

    #[test]
    fn warp_kernel_renders_and_auto_rule_switches_on_the_batch() {
        let toy = ModelCode { name: "toy", cuda_source: TOY, nx: 2, nu: 1, np: 1, is_linear: false };
        let opts = KernelOptions::new(5, Precision::F64).with_layout(KernelLayout::WarpPerProblem);
        let r = render_kernel(&toy, KernelKind::SolveWarp, &opts).unwrap();
        assert_eq!((r.kernel.as_str(), r.entries.len()), ("mpc_ilqr_solve_warp_toy_f64", 1));
        let (reals, ints) = warp_state_len(2, 1, 5, 4);
        assert!(r.source.contains(&format!("static_assert(ws::REALS == {reals}LL && ws::INTS == {ints},")));
        assert!(r.source.contains("__syncwarp(FULL)") && r.source.contains("__shfl_sync(FULL, jt, l)"));
        assert!(!r.source.contains("{{") && !r.source.contains("{%"), "unrendered tera syntax left");
        assert_eq!(KernelLayout::auto(1, 132), KernelLayout::WarpPerProblem);
        assert_eq!(KernelLayout::auto(256, 132), KernelLayout::WarpPerProblem);
        assert_eq!(KernelLayout::auto(128 * 132, 132), KernelLayout::SingleLaunch);
        assert_eq!(KernelLayout::auto(65536, 132), KernelLayout::SingleLaunch);
        for (text, l) in [("single-launch", KernelLayout::SingleLaunch), ("three-stage", KernelLayout::ThreeStage), ("warp", KernelLayout::WarpPerProblem)] {
            assert_eq!(text.parse::<KernelLayout>().unwrap(), l);
        }
        assert!("tiles".parse::<KernelLayout>().is_err());
    }

    #[test]
    fn literals_round_trip() {
        for v in [1.0, 0.2, 0.04000000000000001, 1e-11, 2.220446049250313e-16, 1e10, 0.1 + 0.2] {
            assert_eq!(literal(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn rejects_bad_options_and_models() {
        let mut o = KernelOptions::new(0, Precision::F64);
        assert!(matches!(render_solve_for("toy", TOY, 2, 1, 1, &o), Err(RenderError::Options(_))));
        o.horizon = 3;
        o.solver.line_search = vec![];
        assert!(matches!(render_solve_for("toy", TOY, 2, 1, 1, &o), Err(RenderError::Options(_))));
        let o = KernelOptions::new(3, Precision::F64);
        assert!(matches!(render_solve_for("other", TOY, 2, 1, 1, &o), Err(RenderError::Model { .. })));
        assert!(matches!(render_solve_for("to-y", TOY, 2, 1, 1, &o), Err(RenderError::Model { .. })));
    }

    #[test]
    fn precision_parses() {
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
        assert_eq!("double".parse::<Precision>().unwrap(), Precision::F64);
        assert!("f16".parse::<Precision>().is_err());
    }
}
