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
//! * [`BACKWARD_TEMPLATE`] (`ilqr_backward.cu.tera`): the implicit-differentiation backward
//!   pass, one problem per thread, exact or Gauss-Newton Hessian fixed at render time
//!   (`opts.solver.gradient`).
//!
//! [`COMMON_TEMPLATE`] (`common.cu.tera`) holds device helpers (dense linear algebra, the
//! Riccati pieces) that the newer templates `{% include %}`.

use crate::model::Model;
use crate::solver::{ACTIVE_TOL, GradientMode, LineSearchRule, SolverOptions};

/// File name of the single-launch forward-solve template under `templates/`.
pub const SOLVE_TEMPLATE_NAME: &str = "ilqr_solve.cu.tera";
/// The single-launch forward-solve template (tera 2 syntax).
pub const SOLVE_TEMPLATE: &str = include_str!("../../../templates/ilqr_solve.cu.tera");
/// File name of the backward-pass template under `templates/`.
pub const BACKWARD_TEMPLATE_NAME: &str = "ilqr_backward.cu.tera";
/// The implicit-differentiation backward-pass template (tera 2 syntax).
pub const BACKWARD_TEMPLATE: &str = include_str!("../../../templates/ilqr_backward.cu.tera");
/// File name of the shared device helpers under `templates/` (included by other templates).
pub const COMMON_TEMPLATE_NAME: &str = "common.cu.tera";
/// Shared device helpers (tera 2 syntax), `{% include %}`d by kernel templates.
pub const COMMON_TEMPLATE: &str = include_str!("../../../templates/common.cu.tera");
/// File name of the host compatibility header under `templates/`.
pub const HOST_COMPAT_NAME: &str = "host_compat.h";
/// The host compatibility header that lets a host C++ compiler build the rendered kernels.
pub const HOST_COMPAT_H: &str = include_str!("../../../templates/host_compat.h");

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
}

impl KernelOptions {
    /// Options for horizon `horizon`, precision `precision` and the default [`SolverOptions`].
    pub fn new(horizon: usize, precision: Precision) -> Self {
        KernelOptions { horizon, precision, solver: SolverOptions::default() }
    }

    /// With `max_iters = iters`.
    pub fn with_iters(mut self, iters: usize) -> Self {
        self.solver.max_iters = iters;
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
    /// `extern "C"` name of the kernel entry point.
    pub kernel: String,
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
    /// The CUDA C++ source.
    pub source: String,
}

impl RenderedKernel {
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
    };
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
    match kind {
        KernelKind::Solve => {
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
        }
        KernelKind::Backward(mode) => {
            let exact = mode == GradientMode::Exact;
            ctx.insert("exact", if exact { "true" } else { "false" });
            ctx.insert("mode_name", if exact { "exact" } else { "Gauss-Newton" });
            ctx.insert("has_curvature", if model.is_linear { "false" } else { "true" });
            ctx.insert("active_tol", &literal(ACTIVE_TOL));
        }
    }
    let terr = |e: tera::Error| RenderError::Template { template, message: format!("{e:?}") };
    let mut tera = tera::Tera::new();
    tera.autoescape_on(Vec::<&str>::new());
    tera.add_raw_templates([(COMMON_TEMPLATE_NAME, COMMON_TEMPLATE), (template, template_src)]).map_err(terr)?;
    let mut source = tera.render(template, &ctx).map_err(terr)?;
    if !source.ends_with('\n') {
        source.push('\n');
    }
    Ok(RenderedKernel {
        model: model.name.into(),
        template,
        kind,
        kernel,
        precision: p,
        nx: model.nx,
        nu: model.nu,
        np: model.np,
        horizon: opts.horizon,
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
