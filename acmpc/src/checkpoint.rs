//! Checkpoints: a directory per checkpoint holding the networks (`model.safetensors`), the Adam
//! moments (`optimizer.safetensors`), the observation statistics (`normalizer.json`), the
//! training counters (`state.json`) and the configuration (`config.yaml`).
//!
//! Writing is atomic: everything goes into a hidden temporary directory that is renamed into
//! place, and the `latest` pointer file is replaced by rename too, so an interrupted run never
//! leaves a half-written checkpoint behind what `--resume` or `mpc eval` reads.

use crate::config::TrainConfig;
use crate::normalize::ObsNormalizer;
use crate::optim::Adam;
use crate::policy::ActorCritic;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Counters that let a run resume where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Environment steps taken.
    pub steps: u64,
    /// PPO updates done.
    pub updates: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Wall-clock training time so far (s), over all resumed segments.
    pub wall_seconds: f64,
    /// Adam steps taken.
    pub adam_steps: u64,
    /// Best periodic-evaluation return so far.
    pub best_eval_return: Option<f64>,
    /// Current multiplier of the actor network's learning rate (`ppo.adaptive_actor_lr`).
    #[serde(default = "one")]
    pub actor_lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A file is present but unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// Path involved.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.display().to_string(), source }
}

fn invalid(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError::Invalid { path: path.display().to_string(), message: message.to_string() }
}

/// Writes a checkpoint named `name` under `root` and points `root/latest` at it.
pub fn save(
    root: &Path,
    name: &str,
    policy: &ActorCritic,
    opt: &Adam,
    normalizer: &ObsNormalizer,
    config: &TrainConfig,
    state: &TrainState,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let model = tmp.join("model.safetensors");
    candle_core::safetensors::save(&policy.params.tensors(), &model).map_err(|e| invalid(&model, e))?;
    let optim = tmp.join("optimizer.safetensors");
    candle_core::safetensors::save(&opt.state(), &optim).map_err(|e| invalid(&optim, e))?;
    let write = |file: &str, text: String| -> Result<(), CheckpointError> {
        let p = tmp.join(file);
        std::fs::write(&p, text).map_err(io(&p))
    };
    write("normalizer.json", serde_json::to_string(normalizer).expect("normalizer serialises"))?;
    write("state.json", serde_json::to_string_pretty(state).expect("state serialises"))?;
    write("config.yaml", config.to_yaml())?;
    let dest = root.join(name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    let latest_tmp = root.join(format!(".latest.tmp-{}", std::process::id()));
    std::fs::write(&latest_tmp, name).map_err(io(&latest_tmp))?;
    std::fs::rename(&latest_tmp, root.join("latest")).map_err(io(root))?;
    Ok(dest)
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// The configuration it was trained with.
    pub config: TrainConfig,
    /// Counters.
    pub state: TrainState,
    /// Observation statistics.
    pub normalizer: ObsNormalizer,
    /// Network tensors by name.
    pub model: HashMap<String, Tensor>,
    /// Adam moments by name.
    pub optimizer: HashMap<String, Tensor>,
}

/// Finds the checkpoint directory meant by `path`: a checkpoint itself, a directory with a
/// `latest` pointer, or a run directory whose `checkpoints/latest` points to one.
pub fn resolve(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.join("model.safetensors").is_file() {
        return Ok(path.to_path_buf());
    }
    for root in [path.to_path_buf(), path.join("checkpoints")] {
        let pointer = root.join("latest");
        if pointer.is_file() {
            let name = std::fs::read_to_string(&pointer).map_err(io(&pointer))?;
            let dir = root.join(name.trim());
            if dir.join("model.safetensors").is_file() {
                return Ok(dir);
            }
            return Err(invalid(&pointer, format!("points to {}, which holds no model.safetensors", dir.display())));
        }
    }
    Err(invalid(path, "not a checkpoint (no model.safetensors) and no `latest` pointer found here or in checkpoints/"))
}

/// Loads the checkpoint meant by `path` (see [`resolve`]).
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let dir = resolve(path)?;
    let read = |file: &str| -> Result<String, CheckpointError> {
        let p = dir.join(file);
        std::fs::read_to_string(&p).map_err(io(&p))
    };
    let cfg_path = dir.join("config.yaml");
    let config = TrainConfig::build(Some(&read("config.yaml")?), &[]).map_err(|e| invalid(&cfg_path, e))?;
    let state: TrainState = serde_json::from_str(&read("state.json")?).map_err(|e| invalid(&dir.join("state.json"), e))?;
    let normalizer: ObsNormalizer =
        serde_json::from_str(&read("normalizer.json")?).map_err(|e| invalid(&dir.join("normalizer.json"), e))?;
    let mp = dir.join("model.safetensors");
    let model = candle_core::safetensors::load(&mp, &Device::Cpu).map_err(|e| invalid(&mp, e))?;
    let op = dir.join("optimizer.safetensors");
    let optimizer = if op.is_file() {
        candle_core::safetensors::load(&op, &Device::Cpu).map_err(|e| invalid(&op, e))?
    } else {
        HashMap::new()
    };
    Ok(Checkpoint { dir, config, state, normalizer, model, optimizer })
}
