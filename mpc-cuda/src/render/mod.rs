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

mod context;
mod kernel;
mod model;
mod options;
mod sizes;
mod templates;

pub use context::status_constants;
pub use kernel::{
    KernelKind, RenderedKernel, backward_kernel_name, solve_kernel_name, staged_base_name, warp_kernel_name,
};
pub use model::ModelCode;
pub use options::{KernelLayout, KernelOptions, Precision, Stage};
pub use sizes::{backward_work_len, solve_work_len, staged_state_len, warp_state_len, work_len};
pub use templates::{
    BACKWARD_TEMPLATE, BACKWARD_TEMPLATE_NAME, COMMON_TEMPLATE, COMMON_TEMPLATE_NAME, CORE_TEMPLATE, CORE_TEMPLATE_NAME,
    HOST_COMPAT_H, HOST_COMPAT_NAME, SOLVE_TEMPLATE, SOLVE_TEMPLATE_NAME, STAGE_TEMPLATES, STAGED_TEMPLATE,
    STAGED_TEMPLATE_NAME, WARP_TEMPLATE, WARP_TEMPLATE_NAME,
};

use context::{KernelContext, kernel_context};
use mpc_runtime::model::Model;
use sizes::max_rounds;

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

/// Render the kernel `kind` for `model`. For [`KernelKind::Backward`] the mode given there is
/// used (not `opts.solver.gradient`).
pub fn render_kernel(model: &ModelCode<'_>, kind: KernelKind, opts: &KernelOptions) -> Result<RenderedKernel, RenderError> {
    opts.validate()?;
    model.check()?;
    let p = opts.precision;
    let s = &opts.solver;
    let KernelContext { template, template_src, kernel, entries, ctx } = kernel_context(model, kind, opts)?;
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
    use mpc_runtime::solver::{GradientMode, SolverOptions};

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

}
