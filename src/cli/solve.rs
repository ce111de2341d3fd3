//! `mpc solve`: read a problem document (`mpc-problem/1`), solve it with the CPU iLQR solver,
//! run the backward pass when the document holds `grad_x`/`grad_u`, and write the solution
//! document (`mpc-solution/1`, `backend: "cpu"`).
//!
//! A malformed document, an unknown model or an unknown parameter is reported on stderr with
//! the offending key and exit status 2, and nothing is written. Non-convergence is not an
//! error: it is reported per problem in `converged`.

use mpc_models::ModelVisitor;
use mpc_runtime::problem::{ModelParams, Problem, solution_json};
use mpc_runtime::reference::{self, RefModel};
use mpc_runtime::{Dynamics, Gradients, Model, Solution, Solver};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mpc solve`.
#[derive(clap::Args)]
pub struct SolveArgs {
    /// Problem document in the exchange format (`mpc-problem/1`).
    #[arg(long, value_name = "PROBLEM.json")]
    pub problem: PathBuf,
    /// Where to write the solution document; standard output when absent.
    #[arg(long, value_name = "SOLUTION.json")]
    pub out: Option<PathBuf>,
    /// Use the hand-written reference models (`mpc_runtime::reference`) instead of the
    /// generated ones for `pendulum`, `cartpole` and `quadrotor` (a cross-check).
    #[arg(long, hide = true)]
    pub reference_models: bool,
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

/// Solve (and differentiate when asked) with dynamics `d`.
fn solve_with<D: Dynamics>(d: D, p: &Problem) -> (Solution, Option<Gradients>) {
    let mut solver = Solver::new(d, p.horizon, p.options.clone());
    let batch = p.as_batch();
    let sol = solver.solve(&batch);
    let grads = match (&p.grad_x, &p.grad_u) {
        (Some(gx), Some(gu)) => Some(solver.backward(&batch, &sol, gx, gu)),
        _ => None,
    };
    (sol, grads)
}

/// Build the bundled model `M` with the problem's parameters and solve.
struct SolveGenerated<'a>(&'a Problem, &'a [(String, f64)]);

impl ModelVisitor for SolveGenerated<'_> {
    type Output = Result<(Solution, Option<Gradients>), String>;
    fn visit<M: Model>(self) -> Self::Output {
        let mut m = M::default();
        for (k, v) in self.1 {
            m.set_param(k, *v).map_err(|e| format!("params.{k}: {e}"))?;
        }
        Ok(solve_with(m, self.0))
    }
}

fn solve_reference<M: RefModel, const N: usize>(p: &Problem, params: &[(String, f64)]) -> Result<(Solution, Option<Gradients>), String> {
    let mut m = M::default();
    for (k, v) in params {
        m.set_param(k, *v).map_err(|e| format!("params.{k}: {e}"))?;
    }
    Ok(solve_with(reference::RefDynamics::<M, N>::new(m), p))
}

fn solve_problem(p: &Problem, use_reference: bool) -> Result<(Solution, Option<Gradients>), String> {
    match &p.params {
        ModelParams::Linear(lin) => Ok(solve_with(lin.clone(), p)),
        ModelParams::Named(params) if use_reference => match p.model.as_str() {
            "pendulum" => solve_reference::<reference::RefPendulum, 4>(p, params),
            "cartpole" => solve_reference::<reference::RefCartpole, 6>(p, params),
            "quadrotor" => solve_reference::<reference::RefQuadrotor, 14>(p, params),
            other => Err(format!("model: no reference implementation of `{other}`")),
        },
        ModelParams::Named(params) => mpc_models::dispatch(&p.model, SolveGenerated(p, params))
            .unwrap_or_else(|| Err(format!("model: unknown model `{}` (known: {})", p.model, known_models()))),
    }
}

/// Run `mpc solve`.
pub fn run(args: SolveArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("mpc solve: {msg}");
        ExitCode::from(2)
    };
    let path = args.problem.display().to_string();
    let text = match std::fs::read_to_string(&args.problem) {
        Ok(t) => t,
        Err(e) => return fail(format!("{path}: cannot read: {e}")),
    };
    let problem = match Problem::parse(&text, &model_dims) {
        Ok(p) => p,
        Err(e) => return fail(format!("{path}: {e}")),
    };
    let (sol, grads) = match solve_problem(&problem, args.reference_models) {
        Ok(r) => r,
        Err(e) => return fail(format!("{path}: {e}")),
    };
    let json = solution_json(&problem, &sol, grads.as_ref(), "cpu");
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
