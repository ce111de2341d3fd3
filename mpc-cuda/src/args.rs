//! Every kernel's argument list, declared once: name, C type and the buffer it binds, per
//! [`KernelKind`]. The GPU launch ([`super::launch`]), the host-emulation entry points
//! ([`super::host`], whose C wrappers are generated from these tables) and the shared launch
//! sequence ([`super::orchestrate`]) all read them; a test parses the `extern "C" __global__`
//! signature of every rendered kernel and compares it with its table, so a template whose
//! arguments change without the table fails the tests.

use super::render::KernelKind;

/// A device buffer a kernel argument binds (batch first, row-major, the kernel's real type or
/// `int`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// Model parameters: NP, or B×NP with per-problem parameters.
    Params,
    /// Initial states, B×nx.
    XInit,
    /// Stage cost Hessians `C`, B×T×n×n.
    CostHess,
    /// Stage cost gradients `c`, B×T×n.
    CostLin,
    /// Lower control bounds, B×T×nu (`-inf` where unbounded).
    ULo,
    /// Upper control bounds, B×T×nu (`inf` where unbounded).
    UHi,
    /// Warm start, B×T×nu (null: zeros).
    UInit,
    /// The single-launch and backward kernels' horizon-long workspace (reals per problem:
    /// [`super::render::work_len`]).
    Work,
    /// The warp and three-stage layouts' per-problem real state.
    State,
    /// Their per-problem integer state.
    IState,
    /// Solution states, B×T×nx.
    XOut,
    /// Solution controls, B×T×nu.
    UOut,
    /// Costs, B.
    CostOut,
    /// Iterations, B (int).
    ItersOut,
    /// Stop codes ([`mpc_runtime::solver::STOP_CODES`]), B (int).
    StatusOut,
    /// The three-stage layout's count of problems still iterating (int, 1).
    Active,
    /// The solution's states the backward pass reads, B×T×nx.
    X,
    /// The solution's controls, B×T×nu.
    U,
    /// Upstream gradient dL/dx*, B×T×nx.
    GradX,
    /// Upstream gradient dL/du*, B×T×nu.
    GradU,
    /// dL/dC, B×T×n×n.
    GradCostHess,
    /// dL/dc, B×T×n.
    GradCostLin,
    /// dL/dx_init, B×nx.
    GradXInit,
    /// dL/dθ, B×NP (null: not computed).
    GradParams,
}

impl Buf {
    /// Whether the buffer holds `int`s (else the kernel's real type).
    pub fn is_int(self) -> bool {
        matches!(self, Buf::IState | Buf::ItersOut | Buf::StatusOut | Buf::Active)
    }
}

/// How an argument is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// `const real*`: read by the kernel.
    RealIn,
    /// `real*`: written (and possibly read) by the kernel.
    RealOut,
    /// `int*`: written (and possibly read).
    IntOut,
    /// `int` by value: the batch size.
    Batch,
}

impl ArgType {
    /// The C type in a kernel signature, for the real type `real` (`float` / `double`).
    pub fn c_type(self, real: &str) -> String {
        match self {
            ArgType::RealIn => format!("const {real}*"),
            ArgType::RealOut => format!("{real}*"),
            ArgType::IntOut => "int*".into(),
            ArgType::Batch => "int".into(),
        }
    }
}

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The parameter's name in the template.
    pub name: &'static str,
    /// How it is passed.
    pub ty: ArgType,
    /// The buffer it binds (`None` for the batch size).
    pub buf: Option<Buf>,
}

const fn a(name: &'static str, ty: ArgType, buf: Buf) -> Arg {
    Arg { name, ty, buf: Some(buf) }
}

const BATCH: Arg = Arg { name: "batch", ty: ArgType::Batch, buf: None };
use ArgType::{IntOut, RealIn, RealOut};

/// `templates/ilqr_solve.cu.tera`.
pub const SOLVE: &[Arg] = &[
    a("params", RealIn, Buf::Params),
    a("x_init", RealIn, Buf::XInit),
    a("C", RealIn, Buf::CostHess),
    a("c", RealIn, Buf::CostLin),
    a("u_lo", RealIn, Buf::ULo),
    a("u_hi", RealIn, Buf::UHi),
    a("u_init", RealIn, Buf::UInit),
    a("work", RealOut, Buf::Work),
    a("x_out", RealOut, Buf::XOut),
    a("u_out", RealOut, Buf::UOut),
    a("cost_out", RealOut, Buf::CostOut),
    a("iters_out", IntOut, Buf::ItersOut),
    a("status_out", IntOut, Buf::StatusOut),
    BATCH,
];

/// `templates/ilqr_solve_warp.cu.tera`.
pub const SOLVE_WARP: &[Arg] = &[
    a("params", RealIn, Buf::Params),
    a("x_init", RealIn, Buf::XInit),
    a("C", RealIn, Buf::CostHess),
    a("c", RealIn, Buf::CostLin),
    a("u_lo", RealIn, Buf::ULo),
    a("u_hi", RealIn, Buf::UHi),
    a("u_init", RealIn, Buf::UInit),
    a("state", RealOut, Buf::State),
    a("istate", IntOut, Buf::IState),
    a("x_out", RealOut, Buf::XOut),
    a("u_out", RealOut, Buf::UOut),
    a("cost_out", RealOut, Buf::CostOut),
    a("iters_out", IntOut, Buf::ItersOut),
    a("status_out", IntOut, Buf::StatusOut),
    BATCH,
];

/// Every entry point of `templates/ilqr_stage{1,2,3}_*.cu.tera`.
pub const STAGE: &[Arg] = &[
    a("params", RealIn, Buf::Params),
    a("x_init", RealIn, Buf::XInit),
    a("C", RealIn, Buf::CostHess),
    a("c", RealIn, Buf::CostLin),
    a("u_lo", RealIn, Buf::ULo),
    a("u_hi", RealIn, Buf::UHi),
    a("u_init", RealIn, Buf::UInit),
    a("state", RealOut, Buf::State),
    a("istate", IntOut, Buf::IState),
    a("x_out", RealOut, Buf::XOut),
    a("u_out", RealOut, Buf::UOut),
    a("cost_out", RealOut, Buf::CostOut),
    a("iters_out", IntOut, Buf::ItersOut),
    a("status_out", IntOut, Buf::StatusOut),
    a("active", IntOut, Buf::Active),
    BATCH,
];

/// `templates/ilqr_backward.cu.tera`.
pub const BACKWARD: &[Arg] = &[
    a("params", RealIn, Buf::Params),
    a("C", RealIn, Buf::CostHess),
    a("c", RealIn, Buf::CostLin),
    a("u_lo", RealIn, Buf::ULo),
    a("u_hi", RealIn, Buf::UHi),
    a("x", RealIn, Buf::X),
    a("u", RealIn, Buf::U),
    a("grad_x", RealIn, Buf::GradX),
    a("grad_u", RealIn, Buf::GradU),
    a("work", RealOut, Buf::Work),
    a("grad_C", RealOut, Buf::GradCostHess),
    a("grad_c", RealOut, Buf::GradCostLin),
    a("grad_x_init", RealOut, Buf::GradXInit),
    a("grad_params", RealOut, Buf::GradParams),
    BATCH,
];

/// The argument list of every entry point of a kernel of this kind.
pub fn args(kind: KernelKind) -> &'static [Arg] {
    match kind {
        KernelKind::Solve => SOLVE,
        KernelKind::SolveWarp => SOLVE_WARP,
        KernelKind::Stage(_) => STAGE,
        KernelKind::Backward(_) => BACKWARD,
    }
}

/// The `(type, name)` parameters of every `extern "C" __global__` function in `source`, by
/// function name (`__restrict__` and spacing dropped): what [`args`] is checked against.
pub fn parse_signatures(source: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let marker = "extern \"C\" __global__ void ";
    let mut rest = source;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let open = rest.find('(').unwrap_or(0);
        let name = rest[..open].trim().to_string();
        let close = rest.find(')').unwrap_or(rest.len());
        let params = rest[open + 1..close]
            .split(',')
            .map(|p| {
                let words: Vec<&str> = p.split_whitespace().filter(|w| *w != "__restrict__").collect();
                let (ty, name) = words.split_at(words.len().saturating_sub(1));
                (ty.join(" "), name.join(""))
            })
            .collect();
        out.push((name, params));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{KernelOptions, ModelCode, Precision, RenderedKernel, Stage, render_kernel};
    use mpc_runtime::solver::GradientMode;

    const TOY: &str = "namespace mpc_model_toy {\nconstexpr int NX = 2; constexpr int NU = 1; constexpr int NP = 1;\n}\n";

    fn render(kind: KernelKind, opts: &KernelOptions) -> RenderedKernel {
        let m = ModelCode { name: "toy", cuda_source: TOY, nx: 2, nu: 1, np: 1, is_linear: false };
        render_kernel(&m, kind, opts).unwrap()
    }

    fn check(k: &RenderedKernel) {
        let sigs = parse_signatures(&k.source);
        let want = args(k.kind);
        let real = k.precision.c_type();
        assert!(!sigs.is_empty(), "{}: no extern \"C\" __global__ function", k.kernel);
        for (name, params) in &sigs {
            let expected: Vec<(String, String)> = want.iter().map(|a| (a.ty.c_type(real), a.name.to_string())).collect();
            assert_eq!(params, &expected, "{}: the signature of {name} differs from cuda::args", k.kernel);
        }
        let names: Vec<&String> = sigs.iter().map(|(n, _)| n).collect();
        assert_eq!(names, k.entries.iter().collect::<Vec<_>>(), "{}: entry points", k.kernel);
    }

    #[test]
    fn every_rendered_signature_matches_its_table() {
        for p in [Precision::F32, Precision::F64] {
            let opts = KernelOptions::new(4, p);
            let kinds = [
                KernelKind::Solve,
                KernelKind::SolveWarp,
                KernelKind::Stage(Stage::Rollout),
                KernelKind::Stage(Stage::Riccati),
                KernelKind::Stage(Stage::LineSearch),
                KernelKind::Backward(GradientMode::Exact),
                KernelKind::Backward(GradientMode::GaussNewton),
            ];
            for kind in kinds {
                check(&render(kind, &opts));
            }
        }
    }

    #[test]
    fn the_signature_check_sees_a_changed_argument() {
        let opts = KernelOptions::new(4, Precision::F64);
        let mut k = render(KernelKind::Solve, &opts);
        k.source = k.source.replace("int* __restrict__ status_out, int batch", "int* __restrict__ status_out, int* __restrict__ extra, int batch");
        let r = std::panic::catch_unwind(|| check(&k));
        assert!(r.is_err(), "an added argument must fail the check");
    }

    #[test]
    fn int_buffers_are_the_int_arguments() {
        for table in [SOLVE, SOLVE_WARP, STAGE, BACKWARD] {
            for a in table {
                if let Some(b) = a.buf {
                    assert_eq!(b.is_int(), a.ty == ArgType::IntOut, "{}", a.name);
                }
            }
        }
    }
}
