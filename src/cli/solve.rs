//! `mpc solve`: read a problem document (`mpc-problem/1`), solve it with the CPU iLQR solver,
//! run the backward pass when the document holds `grad_x`/`grad_u`, and write the solution
//! document (`mpc-solution/1`, `backend: "cpu"`).
//!
//! A malformed document, an unknown model or an unknown parameter is reported on stderr with
//! the offending key and exit status 2, and nothing is written. Non-convergence is not an
//! error: it is reported per problem in `converged`.
//!
//! `--backend cpu|cuda|auto` (default `cpu`) picks where the forward solve runs:
//! * `cuda`: the rendered solve kernel on GPU 0 (`mpc_cuda::CudaSolver`, double
//!   precision; thread layout by `KernelLayout::auto`: a warp per problem for batches below
//!   128 problems per multiprocessor, a thread per problem above). Without a usable CUDA driver/GPU, or for a model without CUDA code (`linear`), it fails with exit status 2 and writes nothing.
//! * `auto`: `cuda` when a driver and GPU are present and the model has CUDA code, else `cpu`;
//!   the choice and its reason are printed on stderr, and a failed CUDA solve falls back to
//!   the CPU with a note.
//!
//! Gradients (`grad_x`/`grad_u`) with the CUDA backend: the backward pass runs on the GPU too
//! (`CudaSolver::backward`, the rendered `templates/ilqr_backward.cu.tera`, in the problem's
//! gradient mode), at the GPU's solution. The solution's `backend` field says which backend
//! ran. The CUDA path is checked against the CPU solver through its host emulation on every
//! machine, but it has **not yet run on a GPU** (`scripts/gpu-checks.sh` is its test there).

use mpc_cuda::render::KernelLayout;
use mpc_cuda::select::{self, Needs, Preference};
use mpc_models::ModelVisitor;
use mpc_runtime::problem::{ModelParams, Problem, solution_json};
use mpc_runtime::{BackendKind, Dynamics, Gradients, Model, Solution, Solver};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mpc solve`.
#[derive(clap::Args)]
pub struct SolveArgs {
    /// Problem document in the exchange format (`mpc-problem/1`). Without it, the embedded
    /// example is solved: 4 quadrotors hovering at random targets, T = 10, with gradients.
    #[arg(long, value_name = "PROBLEM.json")]
    pub problem: Option<PathBuf>,
    /// Print the embedded example problem document (a starting point for your own) and exit.
    #[arg(long, conflicts_with = "problem")]
    pub print_example: bool,
    /// Where to write the solution document; standard output when absent.
    #[arg(long, value_name = "SOLUTION.json")]
    pub out: Option<PathBuf>,
    /// Where the forward solve runs: `cpu`, `cuda` (GPU 0; exit status 2 when there is none),
    /// or `auto` (`cuda` when available, else `cpu`, with the choice printed on stderr).
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Print each problem's iteration trace on stderr (iteration, cost, |du|, step size,
    /// regularisation, KKT residual, outcome) and why it stopped. The solution is the same to
    /// the bit. The CUDA kernels record no trace: there, only the stop reasons.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// `--backend` values of `mpc solve`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// The CPU solver.
    Cpu,
    /// The CUDA kernels on GPU 0 (forward solve and, if asked for, the backward pass).
    Cuda,
    /// CUDA when a driver, a GPU and the model's CUDA code are there, else CPU.
    Auto,
}

/// Why the CUDA backend cannot take `p` (before trying the driver): `None` when it can.
fn cuda_unsupported(p: &Problem) -> Option<String> {
    match &p.params {
        ModelParams::Linear(_) | ModelParams::LinearPerProblem(_) => {
            Some("the `linear` model has no CUDA kernel".into())
        }
        ModelParams::Named(_) | ModelParams::NamedPerProblem(_) => None,
    }
}

/// Build the bundled model `M` with the problem's parameters (shared, or one set per problem),
/// solve on the GPU with the chosen kernel layout and, when asked, differentiate on the GPU at
/// that solution.
struct SolveCuda<'a>(&'a Problem, KernelLayout);

impl ModelVisitor for SolveCuda<'_> {
    type Output = Result<Solved, String>;
    fn visit<M: Model>(self) -> Self::Output {
        use mpc_cuda::render::{KernelOptions, Precision};
        let p = self.0;
        let models: Vec<M> = match &p.params {
            ModelParams::Named(ps) => vec![with_params::<M>(ps)?],
            ModelParams::NamedPerProblem(lists) => {
                lists.iter().map(|ps| with_params::<M>(ps)).collect::<Result<_, _>>()?
            }
            _ => unreachable!("a named model"),
        };
        let per_problem = models.len() > 1 || p.params.per_problem();
        let m = models[0].clone();
        let batch = p.as_batch();
        let layout = self.1;
        let opts = KernelOptions::new(p.horizon, Precision::F64)
            .with_solver(options(p))
            .with_layout(layout)
            .with_per_problem_params(per_problem);
        let mut gpu = mpc_cuda::CudaSolver::new(&m, batch.size, &opts).map_err(|e| e.to_string())?;
        if per_problem {
            gpu.set_params(models.iter().flat_map(|m| m.param_values()).collect()).map_err(|e| e.to_string())?;
        }
        let mut sol = gpu.solve(&batch).map_err(|e| e.to_string())?;
        // The kernels do not compute the KKT residual: check the GPU's controls on the CPU.
        sol.kkt_residual = if per_problem {
            let (t, nu) = (p.horizon, M::NU);
            (0..batch.size)
                .flat_map(|i| {
                    Solver::new(models[i].clone(), t, p.options.clone())
                        .kkt_residuals(&batch.single(i, t, M::NX, nu), &sol.u[i * t * nu..(i + 1) * t * nu])
                })
                .collect()
        } else {
            Solver::new(m.clone(), p.horizon, p.options.clone()).kkt_residuals(&batch, &sol.u)
        };
        sol.flag_non_finite_residuals();
        let grads = match (&p.grad_x, &p.grad_u) {
            (Some(gx), Some(gu)) => Some(gpu.backward(&batch, &sol, gx, gu).map_err(|e| e.to_string())?),
            _ => None,
        };
        Ok((sol, grads, M::PARAM_NAMES.to_vec()))
    }
}

fn solve_problem_cuda(p: &Problem, layout: KernelLayout) -> Result<Solved, String> {
    match &p.params {
        ModelParams::Named(_) | ModelParams::NamedPerProblem(_) => mpc_models::dispatch(&p.model, SolveCuda(p, layout))
            .unwrap_or_else(|| Err(format!("model: unknown model `{}` (known: {})", p.model, known_models()))),
        ModelParams::Linear(_) | ModelParams::LinearPerProblem(_) => {
            Err("the `linear` model has no CUDA kernel".into())
        }
    }
}

/// Names accepted in `model`.
fn known_models() -> String {
    let mut v = vec!["linear"];
    v.extend_from_slice(mpc_models::BUNDLED);
    v.join(", ")
}

/// `(nx, nu)` of a named model.
fn model_dims(name: &str) -> Result<(usize, usize), String> {
    struct Dims;
    impl ModelVisitor for Dims {
        type Output = (usize, usize);
        fn visit<M: Model>(self) -> (usize, usize) {
            (M::NX, M::NU)
        }
    }
    mpc_models::dispatch(name, Dims).ok_or_else(|| format!("unknown model `{name}` (known: {})", known_models()))
}

/// Solve (and differentiate when asked) with dynamics `d`; with `verbose`, with the iteration
/// trace printed.
fn solve_with<D: Dynamics>(d: D, p: &Problem, verbose: bool) -> (Solution, Option<Gradients>) {
    let mut solver = Solver::new(d, p.horizon, options(p));
    let batch = p.as_batch();
    let sol = if verbose {
        let (sol, traces) = solver.solve_traced(&batch).expect("the batch was validated with the problem");
        print_traces(p, &sol, &traces);
        sol
    } else {
        solver.solve(&batch)
    };
    let grads = match (&p.grad_x, &p.grad_u) {
        (Some(gx), Some(gu)) => Some(solver.backward(&batch, &sol, gx, gu)),
        _ => None,
    };
    (sol, grads)
}

/// Solve a batch whose problems each have their own model (per-problem params). With
/// `verbose`, each problem is also solved alone with a trace (as `solve_each` solves it: the
/// same numbers) and the traces printed.
fn solve_each_with<D: Dynamics + Clone>(models: &[D], p: &Problem, verbose: bool) -> (Solution, Option<Gradients>) {
    let upstream = p.grad_x.as_deref().zip(p.grad_u.as_deref());
    let batch = p.as_batch();
    let out = mpc_runtime::solve_each(models, p.horizon, &options(p), &batch, upstream);
    if verbose {
        let traces = (0..batch.size)
            .map(|i| {
                let one = batch.single(i, p.horizon, models[i].nx(), models[i].nu());
                let mut solver = Solver::new(models[i].clone(), p.horizon, options(p));
                solver.solve_traced(&one).expect("the batch was validated with the problem").1.remove(0)
            })
            .collect::<Vec<_>>();
        print_traces(p, &out.0, &traces);
    }
    out
}

/// `--verbose`: per problem, the trace table and the stop line, on stderr.
fn print_traces(p: &Problem, sol: &Solution, traces: &[Vec<mpc_runtime::IterationRecord>]) {
    let o = &p.options;
    let mut text = String::new();
    for (i, trace) in traces.iter().enumerate() {
        text.push_str(&format!(
            "mpc solve: problem {i} of {} ({}, T = {}, {}, max_iters {}, eps {:e}{})\n",
            p.batch,
            p.model,
            p.horizon,
            o.method.name(),
            o.max_iters,
            o.eps,
            o.tol.map(|t| format!(", tol {t:e}")).unwrap_or_default()
        ));
        text.push_str(&mpc_runtime::format_trace(trace));
        text.push_str(&format!("  {}\n", sol.summary(i)));
    }
    eprint!("{text}");
}

/// The problem's solver options, with parameter gradients on (`grad_params` is part of every
/// solution whose backward pass runs).
fn options(p: &Problem) -> mpc_runtime::SolverOptions {
    mpc_runtime::SolverOptions { grad_params: true, ..p.options.clone() }
}

/// What a solve returns: the solution, the gradients when asked for, and the names of the
/// model's parameters (the keys of `grad_params`).
type Solved = (Solution, Option<Gradients>, Vec<&'static str>);

/// The bundled model `M` with these parameters.
fn with_params<M: Model>(params: &[(String, f64)]) -> Result<M, String> {
    let mut m = M::default();
    for (k, v) in params {
        m.set_param(k, *v).map_err(|e| format!("params.{k}: {e}"))?;
    }
    Ok(m)
}

/// Build the bundled model `M` with the problem's parameters (shared, or one list per
/// problem) and solve.
struct SolveGenerated<'a>(&'a Problem, bool);

impl ModelVisitor for SolveGenerated<'_> {
    type Output = Result<Solved, String>;
    fn visit<M: Model>(self) -> Self::Output {
        let p = self.0;
        let (sol, grads) = match &p.params {
            ModelParams::NamedPerProblem(lists) => {
                let models = lists.iter().map(|ps| with_params::<M>(ps)).collect::<Result<Vec<_>, _>>()?;
                solve_each_with(&models, p, self.1)
            }
            ModelParams::Named(ps) => solve_with(with_params::<M>(ps)?, p, self.1),
            _ => unreachable!("a named model"),
        };
        Ok((sol, grads, M::PARAM_NAMES.to_vec()))
    }
}

fn solve_problem(p: &Problem, verbose: bool) -> Result<Solved, String> {
    let named = |(s, g)| (s, g, Vec::new());
    match &p.params {
        ModelParams::Linear(lin) => Ok(named(solve_with(lin.clone(), p, verbose))),
        ModelParams::LinearPerProblem(lins) => Ok(named(solve_each_with(lins, p, verbose))),
        ModelParams::Named(_) | ModelParams::NamedPerProblem(_) => mpc_models::dispatch(&p.model, SolveGenerated(p, verbose))
            .unwrap_or_else(|| Err(format!("model: unknown model `{}` (known: {})", p.model, known_models()))),
    }
}

/// The embedded example: a batch of quadrotor hover problems (the CA-AC-MPC benchmark task,
/// `mpc_models::scenarios::quadrotor_hover`), with upstream gradients `dL/du_0 = 1` so the
/// backward pass runs too.
pub fn example_problem() -> serde_json::Value {
    use serde_json::json;
    let model = mpc_models::Quadrotor::default();
    let (b, t, nx, nu) = (4, 10, 10, 4);
    let n = nx + nu;
    let s = mpc_models::scenarios::quadrotor_hover(&model, b, t, 2026);
    let nest = |v: &[f64], dims: &[usize]| -> serde_json::Value {
        fn rec(v: &[f64], dims: &[usize]) -> serde_json::Value {
            if dims.len() == 1 {
                return json!(v);
            }
            let stride: usize = dims[1..].iter().product();
            serde_json::Value::Array(v.chunks(stride).map(|c| rec(c, &dims[1..])).collect())
        }
        rec(v, dims)
    };
    let grad_u: Vec<f64> = (0..b * t * nu).map(|k| if k % (t * nu) < nu { 1.0 } else { 0.0 }).collect();
    json!({
        "format": "mpc-problem/1",
        "model": "quadrotor",
        "params": { "mass": model.mass, "gravity": model.gravity, "dt": model.dt },
        "horizon": t,
        "x_init": nest(&s.x_init, &[b, nx]),
        "C": nest(&s.cost_c, &[b, t, n, n]),
        "c": nest(&s.cost_q, &[b, t, n]),
        "u_lower": <mpc_models::Quadrotor as Model>::CONTROL_LOWER,
        "u_upper": <mpc_models::Quadrotor as Model>::CONTROL_UPPER,
        "u_init": nest(&s.u_init, &[b, t, nu]),
        "solver": { "max_iters": 50, "eps": 1e-7, "gradient": "exact" },
        "grad_x": nest(&vec![0.0; b * t * nx], &[b, t, nx]),
        "grad_u": nest(&grad_u, &[b, t, nu]),
    })
}

/// Run `mpc solve`.
pub fn run(args: SolveArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("mpc solve: {msg}");
        ExitCode::from(2)
    };
    if args.print_example {
        println!("{}", serde_json::to_string_pretty(&example_problem()).expect("serialisable"));
        return ExitCode::SUCCESS;
    }
    let (path, text) = match &args.problem {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.display().to_string(), t),
            Err(e) => return fail(format!("{}: cannot read: {e}", p.display())),
        },
        None => ("<embedded example>".to_string(), example_problem().to_string()),
    };
    let problem = match Problem::parse(&text, &model_dims) {
        Ok(p) => p,
        Err(e) => return fail(format!("{path}: {e}")),
    };
    // Which backend runs: the one rule of `mpc_cuda::select` (explicit `cuda` must have a
    // driver, a GPU and CUDA code for the model).
    let pref = match args.backend {
        BackendArg::Cpu => Preference::Cpu,
        BackendArg::Cuda => Preference::Cuda,
        BackendArg::Auto => Preference::Auto,
    };
    let needs = Needs { no_cuda_code: cuda_unsupported(&problem), kkt_tol: problem.options.tol.is_some(), layout: None };
    let choice = match select::choose(pref, problem.batch, &needs) {
        Ok(c) => c,
        Err(e) => return fail(format!("--backend cuda: {e}")),
    };
    if args.backend == BackendArg::Auto {
        eprintln!("mpc solve: --backend auto: using {} ({})", choice.kind.name(), choice.reason);
    }
    let (result, backend) = match choice.layout.filter(|_| choice.kind == BackendKind::Cuda) {
        Some(layout) => match solve_problem_cuda(&problem, layout) {
            Err(e) if args.backend == BackendArg::Auto => {
                eprintln!("mpc solve: --backend auto: the CUDA solve failed, falling back to cpu: {e}");
                (solve_problem(&problem, args.verbose), "cpu")
            }
            r => {
                if let (true, Ok((sol, ..))) = (args.verbose, &r) {
                    let lines: Vec<String> = (0..sol.cost.len()).map(|i| format!("mpc solve: problem {i}: {}\n", sol.summary(i))).collect();
                    eprint!("mpc solve: --verbose: the CUDA kernels record no iteration trace\n{}", lines.concat());
                }
                (r, "cuda")
            }
        },
        None => (solve_problem(&problem, args.verbose), "cpu"),
    };
    let (sol, grads, param_names) = match result {
        Ok(r) => r,
        Err(e) => return fail(format!("{path}: {e}")),
    };
    if args.problem.is_none() {
        eprintln!(
            "mpc solve: no --problem given, solved the embedded example (quadrotor hover, B = 4, T = 10, exact gradients of L = Σ_b Σ_i u_0,i)"
        );
        for b in 0..sol.cost.len() {
            eprintln!(
                "  problem {b}: cost {:.6}, {} iterations, converged {}, u_0 = {:.4?}",
                sol.cost[b],
                sol.iterations[b],
                sol.converged[b],
                &sol.u[b * problem.horizon * 4..b * problem.horizon * 4 + 4]
            );
        }
        eprintln!("  (the solution document follows on stdout; `mpc solve --print-example` shows the problem)");
    }
    let json = solution_json(&problem, &sol, grads.as_ref(), &param_names, backend);
    match args.out {
        Some(out) => {
            if let Err(e) = std::fs::write(&out, json.as_bytes()) {
                return fail(format!("{}: cannot write: {e}", out.display()));
            }
        }
        None => {
            let mut so = std::io::stdout().lock();
            if so.write_all(json.as_bytes()).and_then(|_| so.write_all(b"\n")).is_err() {
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
