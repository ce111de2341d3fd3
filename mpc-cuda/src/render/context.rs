//! The tera context of a kernel: its template, names and compile-time constants from the model and the options.

use super::{
    BACKWARD_TEMPLATE, BACKWARD_TEMPLATE_NAME, KernelKind, KernelOptions, ModelCode, RenderError, SOLVE_TEMPLATE,
    SOLVE_TEMPLATE_NAME, STAGE_TEMPLATES, WARP_TEMPLATE, WARP_TEMPLATE_NAME, backward_kernel_name, backward_work_len,
    solve_kernel_name, solve_work_len, staged_base_name, staged_state_len, warp_kernel_name, warp_state_len,
};
use mpc_runtime::solver::{ACTIVE_TOL, GradientMode, LineSearchRule};

/// A finite `f64` as an exact C++ floating literal (shortest round-trip form).
pub(super) fn literal(v: f64) -> String {
    debug_assert!(v.is_finite());
    format!("{v:e}")
}

/// The kernels' `STATUS_*` constants: `(name, code)` for every [`mpc_runtime::solver::STOP_CODES`]
/// entry (`non-finite-rollout` → `STATUS_NONFINITE_ROLLOUT`).
pub fn status_constants() -> Vec<(String, i32)> {
    mpc_runtime::solver::STOP_CODES
        .iter()
        .map(|&(r, c)| (format!("STATUS_{}", r.name().to_uppercase().replace("NON-FINITE", "NONFINITE").replace('-', "_")), c))
        .collect()
}

/// What [`render_kernel`](super::render_kernel) renders for one kernel: the template, the kernel's names and the
/// tera context.
pub(super) struct KernelContext {
    /// Template file name (under `templates/`).
    pub(super) template: &'static str,
    /// Template text.
    pub(super) template_src: &'static str,
    /// Name of the kernel ([`RenderedKernel::kernel`](super::RenderedKernel::kernel)).
    pub(super) kernel: String,
    /// The `extern "C"` entry points the source defines.
    pub(super) entries: Vec<String>,
    /// The values the template is rendered with.
    pub(super) ctx: tera::Context,
}

/// The template, names and tera context of the kernel `kind` for `model` (`opts` and `model` already checked).
pub(super) fn kernel_context(
    model: &ModelCode<'_>,
    kind: KernelKind,
    opts: &KernelOptions,
) -> Result<KernelContext, RenderError> {
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
            ctx.insert("sqrt_eps_mach", &literal(p.epsilon().sqrt()));
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
    Ok(KernelContext { template, template_src, kernel, entries, ctx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip() {
        for v in [1.0, 0.2, 0.04000000000000001, 1e-11, 2.220446049250313e-16, 1e10, 0.1 + 0.2] {
            assert_eq!(literal(v).parse::<f64>().unwrap(), v);
        }
    }
}
