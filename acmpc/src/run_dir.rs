//! A training run's directory: its options and summary, `--resume` from its latest checkpoint, the training plot.

use crate::checkpoint::{self, TrainState};
use crate::config::TrainConfig;
use crate::normalize::ObsNormalizer;
use crate::optim::Adam;
use crate::policy::ActorCritic;
use std::path::{Path, PathBuf};

/// Options of one training run besides the configuration.
pub struct RunOptions {
    /// Run directory (logs, checkpoints, plots).
    pub out: PathBuf,
    /// Continue from `out/checkpoints/latest`.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Stop (with a checkpoint and an evaluation) once this many environment steps are done,
    /// before the end of `ppo.total_steps`: the learning-rate schedule stays that of the whole
    /// run, so `--resume` later continues it unchanged (long runs split across sessions, and
    /// ablations compared at equal steps of the same schedule).
    pub stop_at: Option<u64>,
}

impl RunOptions {
    /// The step count this invocation trains to: `ppo.total_steps`, or `stop_at` when earlier.
    pub fn end_steps(&self, cfg: &TrainConfig) -> u64 {
        self.stop_at.map_or(cfg.ppo.total_steps, |s| s.min(cfg.ppo.total_steps))
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunSummary {
    /// Environment steps trained.
    pub steps: u64,
    /// Wall-clock training time (s).
    pub wall_seconds: f64,
    /// Environment steps per second.
    pub steps_per_second: f64,
    /// Mean return of the last 100 finished episodes.
    pub mean_return: f64,
    /// Mean return of the episodes finished in the first rollout.
    pub first_mean_return: f64,
    /// Resident memory after the first update and at the end (MiB).
    pub rss_mib: (f64, f64),
    /// Final checkpoint directory.
    pub checkpoint: PathBuf,
}

/// Loads `checkpoints/latest` under `ckpt_root` into the networks and the optimiser; returns its
/// observation statistics and counters. The configuration must be the saved one, except that a
/// run may be extended (a larger `ppo.total_steps`) and keep another number of checkpoints.
pub(crate) fn resume(
    cfg: &TrainConfig,
    ckpt_root: &Path,
    policy: &ActorCritic,
    opt: &mut Adam,
) -> anyhow::Result<(ObsNormalizer, TrainState)> {
    let ck = checkpoint::load(ckpt_root).map_err(|e| anyhow::anyhow!("--resume: {e}"))?;
    // A run may be extended (a larger `ppo.total_steps`); everything else must match.
    let mut saved = ck.config.clone();
    saved.ppo.total_steps = cfg.ppo.total_steps;
    saved.log.keep_last = cfg.log.keep_last;
    if saved != *cfg {
        anyhow::bail!(
            "--resume: the configuration differs from the one saved in {} (resume with the same --config/--set)",
            ck.dir.display()
        );
    }
    policy.params.load(&ck.model).map_err(anyhow::Error::msg)?;
    opt.load_state(&ck.optimizer, ck.state.adam_steps)
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "resuming from {} at {} steps",
        ck.dir.display(),
        ck.state.steps
    );
    Ok((ck.normalizer, ck.state))
}

/// Training curves of a run directory as one PNG (`train.csv` → `training.png`).
pub fn plot_run(out: &Path) -> anyhow::Result<PathBuf> {
    let (header, cols) = crate::logging::read_csv(&out.join("train.csv"))?;
    let col = |name: &str| header.iter().position(|h| h == name).map(|i| &cols[i]);
    let steps = col("steps").ok_or_else(|| anyhow::anyhow!("train.csv has no steps column"))?;
    let mut series = Vec::new();
    for (name, title, ylabel) in [
        (
            "ep_return_mean100",
            "episode return (mean of last 100)",
            "return",
        ),
        ("ep_gates_mean100", "gates passed per episode", "gates"),
        (
            "ep_length_mean100",
            "episode length (mean of last 100; 2500 = timeout)",
            "steps",
        ),
        (
            "lap_time_mean100",
            "lap time (mean of last 100 episodes with a lap)",
            "s",
        ),
        ("eval_return", "deterministic evaluation return", "return"),
        ("approx_kl", "approximate KL", "KL"),
        ("actor_lr", "actor learning rate", "lr"),
        ("rss_mib", "resident memory", "MiB"),
        ("heap_mib", "live heap", "MiB"),
    ] {
        if let Some(c) = col(name) {
            let pts: Vec<(f64, f64)> = steps
                .iter()
                .zip(c)
                .filter(|(_, y)| y.is_finite())
                .map(|(x, y)| (*x, *y))
                .collect();
            series.push((title.to_string(), ylabel.to_string(), pts));
        }
    }
    let p = out.join("training.png");
    racing::plot::curves_png(&p, "training", &series).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(p)
}
