//! `mpc train`: train an AC-MPC (or AC-MLP) racing policy with PPO.
//!
//! With no arguments it trains the embedded default (SplitS = `zurich.yaml`, T = 2, K = 5,
//! 64 environments, Table I PPO settings) into `runs/acmpc`. `--config FILE` merges a YAML file
//! over the default, `--set key=value` (repeatable, dotted keys) overrides single values;
//! unknown keys are errors naming the key. `--resume` continues from the run's latest
//! checkpoint. Logs: `train.csv`, TensorBoard events in `tb/`, `training.png` at the end
//! (`--plot-only` redraws it from `train.csv`).

use acmpc::config::TrainConfig;
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
    /// Stop once this many environment steps are done (checkpoint and evaluation written), keeping
    /// the schedule of `ppo.total_steps`; `--resume` continues from there.
    #[arg(long, value_name = "STEPS")]
    pub stop_at: Option<u64>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
    /// One log line per update on stderr instead of the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Only redraw `training.png` from the run directory's `train.csv` (e.g. for a run that was
    /// stopped before the end) and exit.
    #[arg(long)]
    pub plot_only: bool,
}

/// Runs `mpc train`.
pub fn run(args: TrainArgs) -> ExitCode {
    if args.plot_only {
        return match plot_run(&args.out) {
            Ok(p) => {
                eprintln!("mpc train: curves {}", p.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mpc train: {}: {e:#}", args.out.display());
                ExitCode::from(2)
            }
        };
    }
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
    let opts = RunOptions { out: args.out.clone(), resume: args.resume, progress: !args.no_progress, stop_at: args.stop_at };
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
            if format!("{e:#}").contains("mpc.backend = cuda") { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
