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
use std::collections::{HashMap, VecDeque};
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
    /// The last (up to 100) finished training episodes, so that the rolling `*_mean100`
    /// columns of `train.csv` continue across a resume instead of restarting from the first
    /// (short, crashed) episodes of the new segment. Empty in checkpoints written before.
    #[serde(default)]
    pub episode_window: VecDeque<EpisodeRecord>,
}

/// One finished training episode, as the rolling statistics keep it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Return.
    pub ret: f64,
    /// Length (steps).
    pub length: f64,
    /// Gates passed.
    pub gates: f64,
    /// Laps completed.
    pub laps: f64,
    /// Best flying lap, else the standing-start lap (s); none without a complete lap.
    pub lap: Option<f64>,
    /// Ended on the ground or by missing a gate.
    pub crash: bool,
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

/// Whether an error is the disk being full or over quota (ENOSPC, EDQUOT), by its OS code or,
/// for errors that carry only a message (the safetensors writer), by that message.
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded
                || matches!(io.raw_os_error(), Some(28) | Some(122)))
        {
            return true;
        }
        let m = err.to_string();
        if m.contains("No space left on device") || m.contains("Disk quota exceeded") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Writes a checkpoint named `name` under `root` and, with `set_latest`, points `root/latest`
/// at it (`best` is written without moving `latest`).
///
/// Atomic: on any failure (a full disk included) the half-written temporary directory is
/// removed, `latest` still points to the previous checkpoint, and the error says so.
#[allow(clippy::too_many_arguments)]
pub fn save(
    root: &Path,
    name: &str,
    policy: &ActorCritic,
    opt: &Adam,
    normalizer: &ObsNormalizer,
    config: &TrainConfig,
    state: &TrainState,
    set_latest: bool,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let write = |file: &str, bytes: &[u8]| -> Result<(), CheckpointError> {
            let p = tmp.join(file);
            write_file(&p, bytes).map_err(io(&p))
        };
        write("model.safetensors", &tensors_bytes(&policy.params.tensors(), &tmp.join("model.safetensors"))?)?;
        write("optimizer.safetensors", &tensors_bytes(&opt.state(), &tmp.join("optimizer.safetensors"))?)?;
        write("normalizer.json", serde_json::to_string(normalizer).expect("normalizer serialises").as_bytes())?;
        write("state.json", serde_json::to_string_pretty(state).expect("state serialises").as_bytes())?;
        write("config.yaml", config.to_yaml().as_bytes())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        let last = std::fs::read_to_string(root.join("latest")).map(|s| s.trim().to_string()).ok();
        let keep = last.map_or("no earlier checkpoint exists".to_string(), |l| format!("the last good checkpoint `{l}` is intact"));
        let what = if is_disk_full(&e) { "the disk is full (or over quota)" } else { "it could not be written" };
        return Err(invalid(
            &root.join(name),
            format!("checkpoint not written: {what} ({e}); nothing half-written was left, {keep}; free space and rerun with --resume"),
        ));
    }
    let dest = root.join(name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    if set_latest {
        point_latest(root, name)?;
    }
    Ok(dest)
}

/// The safetensors encoding of `tensors` (written by [`write_file`] like every other file).
fn tensors_bytes(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    safetensors::serialize(sorted, None).map_err(|e| invalid(path, e))
}

#[cfg(test)]
thread_local! {
    /// Test-only fault injection: the bytes [`write_file`] may still write on this thread before
    /// it fails with ENOSPC, as a full disk does (`None`: no limit).
    static DISK_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Write a file, flushed to disk.
fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(test)]
    if let Some(left) = DISK_BUDGET.get() {
        if data.len() > left {
            DISK_BUDGET.set(Some(0));
            let mut f = std::fs::File::create(path)?;
            f.write_all(&data[..left])?; // the part that fitted: a torn file
            return Err(std::io::Error::from_raw_os_error(28));
        }
        DISK_BUDGET.set(Some(left - data.len()));
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Point `root/latest` at `name` (written beside it and renamed: atomic).
pub fn point_latest(root: &Path, name: &str) -> Result<(), CheckpointError> {
    let latest_tmp = root.join(format!(".latest.tmp-{}", std::process::id()));
    write_file(&latest_tmp, name.as_bytes()).map_err(io(&latest_tmp))?;
    std::fs::rename(&latest_tmp, root.join("latest")).map_err(io(root))
}

/// Whether `name` is a regular (periodic) checkpoint: `step_<digits>`.
fn is_regular(name: &str) -> bool {
    name.strip_prefix("step_").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Retention: delete regular checkpoints (`step_*`) but the newest `keep_last` (by step; never
/// the one `latest` points to, never `best`), and temporary directories left by killed runs.
/// `keep_last = 0` deletes every regular checkpoint but `latest` (room before writing one).
/// Returns the directories removed.
pub fn prune(root: &Path, keep_last: usize) -> Result<Vec<PathBuf>, CheckpointError> {
    let latest = std::fs::read_to_string(root.join("latest")).map(|s| s.trim().to_string()).unwrap_or_default();
    let mut regular = Vec::new();
    let mut removed = Vec::new();
    let own_tmp = format!(".tmp-{}", std::process::id());
    if !root.is_dir() {
        return Ok(removed);
    }
    for entry in std::fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') && name.contains(".tmp-") && !name.ends_with(&own_tmp) {
            // A half-written checkpoint of a killed run (never read: only renamed ones are).
            let r = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            r.map_err(io(&path))?;
            removed.push(path);
        } else if is_regular(&name) && path.is_dir() {
            regular.push(name);
        }
    }
    regular.sort_by_key(|n| n[5..].parse::<u64>().unwrap_or(u64::MAX));
    let n = regular.len();
    for name in &regular[..n.saturating_sub(keep_last)] {
        if *name == latest {
            continue;
        }
        let path = root.join(name);
        std::fs::remove_dir_all(&path).map_err(io(&path))?;
        removed.push(path);
    }
    Ok(removed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyKind;

    fn parts() -> (ActorCritic, Adam, ObsNormalizer, TrainConfig) {
        let policy = ActorCritic::new(PolicyKind::Mlp, 8, None, -1.0, 1).unwrap();
        let opt = Adam::new(policy.params.vars.clone(), 1e-3, 1e-5).unwrap();
        let cfg = TrainConfig::build(None, &["policy=mlp".to_string(), "net.hidden=8".to_string()]).unwrap();
        (policy, opt, ObsNormalizer::new(racing::env::OBS_DIM), cfg)
    }

    fn names(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// A full disk in the middle of a checkpoint: the error says so, the torn temporary
    /// directory is gone, `latest` still names the previous checkpoint, which loads.
    #[test]
    fn a_full_disk_leaves_the_last_checkpoint_intact() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("checkpoints");
        let (policy, opt, norm, cfg) = parts();
        let state = TrainState { steps: 100, ..TrainState::default() };
        save(&root, "step_000000100", &policy, &opt, &norm, &cfg, &state, true).unwrap();
        let size: usize = std::fs::read_dir(root.join("step_000000100")).unwrap().map(|e| e.unwrap().metadata().unwrap().len() as usize).sum();
        for budget in [0, 10, size / 2, size - 1] {
            DISK_BUDGET.set(Some(budget));
            let state2 = TrainState { steps: 200, ..TrainState::default() };
            let err = save(&root, "step_000000200", &policy, &opt, &norm, &cfg, &state2, true).unwrap_err().to_string();
            DISK_BUDGET.set(None);
            assert!(err.contains("the disk is full"), "budget {budget}: {err}");
            assert!(err.contains("`step_000000100` is intact"), "budget {budget}: {err}");
            assert_eq!(names(&root), vec!["latest", "step_000000100"], "budget {budget}: nothing half-written is left");
            let ck = load(&root).unwrap();
            assert_eq!(ck.state.steps, 100);
        }
        // With room again the next checkpoint is written and becomes `latest`.
        save(&root, "step_000000200", &policy, &opt, &norm, &cfg, &TrainState { steps: 200, ..TrainState::default() }, true).unwrap();
        assert_eq!(load(&root).unwrap().state.steps, 200);
    }

    #[test]
    fn retention_keeps_the_newest_best_and_latest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for n in ["step_000000100", "step_000001000", "step_000000300", "step_000000200", "best", "step_000000400"] {
            std::fs::create_dir_all(root.join(n)).unwrap();
        }
        std::fs::create_dir_all(root.join(".step_000000500.tmp-999999")).unwrap(); // a killed run's
        point_latest(root, "step_000000100").unwrap(); // e.g. a resume point older than the rest
        let removed = prune(root, 2).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert_eq!(names(root), vec!["best", "latest", "step_000000100", "step_000000400", "step_000001000"]);
        point_latest(root, "step_000001000").unwrap();
        prune(root, 2).unwrap();
        assert_eq!(names(root), vec!["best", "latest", "step_000000400", "step_000001000"]);
    }

    #[test]
    fn disk_full_is_recognised() {
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(122)));
        assert!(!is_disk_full(&std::io::Error::from_raw_os_error(13)));
        let wrapped = CheckpointError::Io { path: "x".into(), source: std::io::Error::from_raw_os_error(28) };
        assert!(is_disk_full(&wrapped));
    }
}
