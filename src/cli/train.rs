//! `mpc train`: train an AC-MPC (or AC-MLP) racing policy with PPO.
//!
//! With no arguments it trains the embedded default (SplitS = `zurich.yaml`, T = 2, K = 5,
//! 64 environments, Table I PPO settings) into `runs/acmpc`. `--config FILE` merges a YAML file
//! over the default, `--set key=value` (repeatable, dotted keys) overrides single values;
//! unknown keys are errors naming the key. `--resume` continues from the run's latest
//! checkpoint. Logs: `train.csv`, TensorBoard events in `tb/`, `training.png` at the end.

use acmpc::config::{BackendKind, TrainConfig};
use acmpc::trainer::{RunOptions, plot_run, train};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `mpc train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// YAML configuration merged over the embedded default (see `--print-config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one configuration value, e.g. `--set ppo.total_steps=2000000 --set policy=mlp`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run directory (logs, checkpoints, plots).
    #[arg(long, value_name = "DIR", default_value = "runs/acmpc")]
    pub out: PathBuf,
    /// Continue from the run directory's latest checkpoint (same configuration required).
    #[arg(long)]
    pub resume: bool,
    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
    /// One log line per update on stderr instead of the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Resolves `mpc.backend` to what the MPC layer will run on, saying so on stderr.
fn check_backend(cfg: &TrainConfig) -> Result<(), String> {
    match cfg.mpc.backend {
        BackendKind::Cpu => Ok(()),
        BackendKind::Auto => {
            match mpc_runtime::cuda::driver_available() {
                Ok(()) => eprintln!("mpc train: a CUDA driver is present, but the MPC layer runs on the CPU solver (the CUDA MPC layer is not wired in yet)"),
                Err(e) => eprintln!("mpc train: MPC layer on the CPU ({e})"),
            }
            Ok(())
        }
        BackendKind::Cuda => Err(match mpc_runtime::cuda::driver_available() {
            Err(e) => format!("mpc.backend = cuda: {e}"),
            Ok(()) => "mpc.backend = cuda: the MPC layer has no CUDA path yet; use cpu or auto".to_string(),
        }),
    }
}

/// Runs `mpc train`.
pub fn run(args: TrainArgs) -> ExitCode {
    let text = match &args.config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("mpc train: cannot read {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let cfg = match TrainConfig::build(text.as_deref(), &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpc train: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", cfg.to_yaml());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = check_backend(&cfg) {
        eprintln!("mpc train: {e}");
        return ExitCode::from(2);
    }
    let opts = RunOptions { out: args.out.clone(), resume: args.resume, progress: !args.no_progress };
    match train(&cfg, &opts) {
        Ok(s) => {
            let plot = plot_run(&args.out).map(|p| p.display().to_string()).unwrap_or_else(|e| format!("(plot failed: {e})"));
            eprintln!(
                "mpc train: {} steps in {:.0} s ({:.0} steps/s); mean return (last 100 episodes) {:.2}; checkpoint {}; curves {}",
                s.steps,
                s.wall_seconds,
                s.steps_per_second,
                s.mean_return,
                s.checkpoint.display(),
                plot
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpc train: {e:#}");
            ExitCode::FAILURE
        }
    }
}
