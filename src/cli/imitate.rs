//! `mpc imitate`: the imitation-learning experiment of Amos et al. 2018 (learning the
//! dynamics' parameters through the MPC from expert controls; see [`mpc::imitation`]), over
//! systems, numbers of expert trajectories, seeds and methods (exact and Gauss-Newton implicit
//! gradients, and the system-identification baseline). Writes `curves.csv` (every iteration of
//! every run), `summary.md` (final errors, losses, wall time, the command) and one PNG per
//! system into `--out`.

use mpc::imitation::{Method, Optimizer, RunConfig, RunResult, System, run};
use mpc_runtime::GradientMode;
use racing::plot::{Panel, panels_png};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mpc imitate`.
#[derive(clap::Args)]
pub struct ImitateArgs {
    /// Systems: `pendulum`, `cartpole` (comma separated).
    #[arg(long, default_value = "pendulum,cartpole", value_delimiter = ',')]
    pub systems: Vec<String>,
    /// Numbers of expert trajectories (comma separated).
    #[arg(long, default_value = "10,50,100", value_delimiter = ',')]
    pub trajectories: Vec<usize>,
    /// Seeds per setting.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Gradient iterations of the MPC learners.
    #[arg(long, default_value_t = 150)]
    pub iters: usize,
    /// Levenberg–Marquardt iterations of the sysid baseline.
    #[arg(long, default_value_t = 20)]
    pub sysid_iters: usize,
    /// Adam step size on log θ.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Optimizer of the MPC learners: `lm` (Levenberg–Marquardt through the MPC), `adam`,
    /// `adam-monotone` (Adam that undoes steps raising the loss).
    #[arg(long, default_value = "lm")]
    pub optimizer: String,
    /// Output directory.
    #[arg(long, value_name = "DIR", default_value = "runs/imitation")]
    pub out: PathBuf,
}

fn fail(msg: String) -> ExitCode {
    eprintln!("mpc imitate: {msg}");
    ExitCode::from(2)
}

/// Runs `mpc imitate`.
pub fn run_cli(args: ImitateArgs) -> ExitCode {
    let mut systems = Vec::new();
    for s in &args.systems {
        systems.push(match s.as_str() {
            "pendulum" => System::Pendulum,
            "cartpole" => System::Cartpole,
            other => return fail(format!("--systems: unknown system `{other}` (known: pendulum, cartpole)")),
        });
    }
    if args.trajectories.is_empty() || args.trajectories.contains(&0) || args.seeds == 0 || args.iters == 0 {
        return fail("--trajectories must be positive numbers, --seeds and --iters at least 1".into());
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        return fail(format!("--lr must be positive, got {}", args.lr));
    }
    let Some(optimizer) = [Optimizer::LevenbergMarquardt, Optimizer::Adam, Optimizer::AdamMonotone].into_iter().find(|o| o.name() == args.optimizer) else {
        return fail(format!("--optimizer: unknown optimizer `{}` (known: lm, adam, adam-monotone)", args.optimizer));
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return fail(format!("{}: {e}", args.out.display()));
    }
    let methods = [Method::MpcDx(GradientMode::Exact), Method::MpcDx(GradientMode::GaussNewton), Method::SysId];
    let mut results: Vec<RunResult> = Vec::new();
    let total = systems.len() * args.trajectories.len() * args.seeds as usize * methods.len();
    for &system in &systems {
        for &n in &args.trajectories {
            for seed in 0..args.seeds {
                for &method in &methods {
                    let iters = if method == Method::SysId { args.sysid_iters } else { args.iters };
                    let cfg = RunConfig { system, method, trajectories: n, seed, iters, lr: args.lr, horizon: 20, optimizer };
                    let r = run(&cfg);
                    let last = r.curve.last().expect("a curve");
                    eprintln!(
                        "[{}/{total}] {} N={n} seed {seed} {}: parameter error {:.2e} -> {:.2e}, imitation loss {:.2e} -> {:.2e}, {:.1} s",
                        results.len() + 1,
                        system.name(),
                        method.label(),
                        r.curve[0].param_error,
                        last.param_error,
                        r.curve[0].loss,
                        last.loss,
                        r.wall_s
                    );
                    results.push(r);
                }
            }
        }
    }
    if let Err(e) = write_outputs(&args, &systems, &results) {
        return fail(format!("{}: {e}", args.out.display()));
    }
    eprintln!("mpc imitate: wrote {}/{{curves.csv, summary.md, *.png}}", args.out.display());
    ExitCode::SUCCESS
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

fn write_outputs(args: &ImitateArgs, systems: &[System], results: &[RunResult]) -> std::io::Result<()> {
    let mut csv = String::from("system,method,trajectories,seed,iter,imitation_loss,param_error\n");
    for r in results {
        for p in &r.curve {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:e},{:e}",
                r.config.system.name(),
                r.config.method.label(),
                r.config.trajectories,
                r.config.seed,
                p.iter,
                p.loss,
                p.param_error
            );
        }
    }
    std::fs::write(args.out.join("curves.csv"), csv)?;
    let mut md = String::new();
    let _ = writeln!(md, "# Imitation learning of the dynamics through the MPC (Amos et al. 2018)\n");
    let _ = writeln!(
        md,
        "Command: `mpc imitate --systems {} --trajectories {} --seeds {} --iters {} --sysid-iters {} --lr {} --optimizer {}`  ",
        args.systems.join(","),
        args.trajectories.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        args.seeds,
        args.iters,
        args.sysid_iters,
        args.lr,
        args.optimizer
    );
    let _ = writeln!(
        md,
        "Machine: {} logical CPUs (rayon over the problems of a batch); T = 20; initial parameters each off by a factor 2–3.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(md, "Parameter error: mean over the learned parameters of |θ − θ*| / θ*; mean ± sd (max) over seeds. Imitation loss: 1/N Σ ‖u* − u_expert‖² at the end (sysid: evaluated through the MPC with its fitted parameters).\n");
    let _ = writeln!(md, "| system | learned | method | N | parameter error at start | runs recovering θ (error < 1e-3) | final parameter error | final imitation loss | restarts (all runs) | wall time per run |");
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &s in systems {
        for method in [Method::MpcDx(GradientMode::Exact), Method::MpcDx(GradientMode::GaussNewton), Method::SysId] {
            for &n in &args.trajectories {
                let runs: Vec<&RunResult> =
                    results.iter().filter(|r| r.config.system == s && r.config.method == method && r.config.trajectories == n).collect();
                if runs.is_empty() {
                    continue;
                }
                let start: Vec<f64> = runs.iter().map(|r| r.curve[0].param_error).collect();
                let err: Vec<f64> = runs.iter().map(|r| r.curve.last().expect("curve").param_error).collect();
                let loss: Vec<f64> = runs.iter().map(|r| r.curve.last().expect("curve").loss).collect();
                let wall: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
                let ((e, esd), emax) = (mean_sd(&err), err.iter().cloned().fold(0.0, f64::max));
                let recovered = err.iter().filter(|&&v| v < 1e-3).count();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {n} | {:.2} | {recovered}/{} | {e:.1e} ± {esd:.1e} ({emax:.1e}) | {:.1e} | {} | {:.1} s |",
                    s.name(),
                    runs[0].names.join(", "),
                    method.label(),
                    mean_sd(&start).0,
                    runs.len(),
                    mean_sd(&loss).0,
                    runs.iter().map(|r| r.restarts).sum::<usize>(),
                    mean_sd(&wall).0
                );
            }
        }
    }
    std::fs::write(args.out.join("summary.md"), md)?;
    for &s in systems {
        let line = |method: Method, n: usize, f: &dyn Fn(&mpc::imitation::Point) -> f64| -> (String, Vec<(f64, f64)>) {
            let runs: Vec<&RunResult> =
                results.iter().filter(|r| r.config.system == s && r.config.method == method && r.config.trajectories == n).collect();
            // A run that stopped early (converged) holds its last point.
            let len = runs.iter().map(|r| r.curve.len()).max().unwrap_or(0);
            let at = |r: &RunResult, i: usize| f(r.curve.get(i).unwrap_or_else(|| r.curve.last().expect("a curve")));
            // Mean over seeds of log10 of the quantity.
            let pts = (0..len)
                .map(|i| (i as f64, runs.iter().map(|r| at(r, i).max(1e-300).log10()).sum::<f64>() / runs.len() as f64))
                .collect();
            (format!("N = {n}"), pts)
        };
        let panel = |title: &str, y: &str, method: Method, f: &dyn Fn(&mpc::imitation::Point) -> f64| Panel {
            title: title.into(),
            x_label: if method == Method::SysId || args.optimizer == "lm" { "Levenberg-Marquardt iteration".into() } else { "Adam iteration".into() },
            y_label: y.into(),
            lines: args.trajectories.iter().map(|&n| line(method, n, f)).collect(),
        };
        let err = |p: &mpc::imitation::Point| p.param_error;
        let loss = |p: &mpc::imitation::Point| p.loss;
        let (ex, gn) = (Method::MpcDx(GradientMode::Exact), Method::MpcDx(GradientMode::GaussNewton));
        let panels = vec![
            panel("mpc.dx, exact gradients", "log10 parameter error", ex, &err),
            panel("mpc.dx, Gauss-Newton gradients", "log10 parameter error", gn, &err),
            panel("mpc.dx, exact gradients", "log10 imitation loss", ex, &loss),
            panel("mpc.dx, Gauss-Newton gradients", "log10 imitation loss", gn, &loss),
            panel("sysid (least squares on transitions)", "log10 parameter error", Method::SysId, &err),
            panel("sysid (least squares on transitions)", "log10 imitation loss", Method::SysId, &loss),
        ];
        let title = format!("Learning the {} dynamics from expert controls (mean of {} seeds)", s.name(), args.seeds);
        panels_png(&args.out.join(format!("{}.png", s.name())), &title, &panels).map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}
