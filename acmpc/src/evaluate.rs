//! Deterministic evaluation of a trained policy: episodes on a track with lap timing, speeds,
//! inference time per step, trajectory plots and a JSON summary (`mpc eval`).

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::config::{BackendKind, PolicyKind, TrainConfig};
use crate::mpc_layer::{HOVER_THRUST, MpcLayer};
use crate::normalize::ObsNormalizer;
use crate::policy::{ActorCritic, FEATURES, N_FEATURES};
use racing::env::{EnvConfig, Event, RacingEnv, action_to_control};
use racing::plot::Trajectory;
use racing::track::Track;
use serde::Serialize;
use std::path::Path;

/// A policy ready to act: networks, frozen observation statistics and its configuration.
pub struct Agent {
    /// The networks.
    pub policy: ActorCritic,
    /// Frozen observation statistics.
    pub normalizer: ObsNormalizer,
    /// The configuration it was trained with.
    pub config: TrainConfig,
}

/// The MPC layer `config.mpc` asks for: `cpu`; `cuda` (an error without a usable GPU);
/// `auto` (CUDA when a driver and GPU are present and the kernels build, else CPU). The
/// choice and its reason are returned for the log. `capacity` is the largest batch solved.
pub fn build_mpc(config: &TrainConfig, capacity: usize) -> Result<(MpcLayer, String), String> {
    let (t, k, g) = (config.mpc.horizon, config.mpc.iters, crate::trainer::gradient_mode(config));
    match config.mpc.backend {
        BackendKind::Cpu => Ok((MpcLayer::new(t, k, g), "MPC layer on the CPU (mpc.backend = cpu)".into())),
        BackendKind::Cuda => MpcLayer::new_cuda(t, k, g, capacity)
            .map(|m| (m, "MPC layer on GPU 0 (mpc.backend = cuda)".into()))
            .map_err(|e| format!("mpc.backend = cuda: {e}")),
        BackendKind::Auto => match mpc_cuda::driver_available() {
            Err(e) => Ok((MpcLayer::new(t, k, g), format!("MPC layer on the CPU (auto: {e})"))),
            Ok(()) => match MpcLayer::new_cuda(t, k, g, capacity) {
                Ok(m) => Ok((m, "MPC layer on GPU 0 (auto: a CUDA driver and GPU are present)".into())),
                Err(e) => Ok((MpcLayer::new(t, k, g), format!("MPC layer on the CPU (auto: the CUDA solver failed: {e})"))),
            },
        },
    }
}

/// Builds the (untrained) policy a configuration describes, with an MPC layer for batches of
/// up to `capacity` problems; returns the backend note of [`build_mpc`].
pub fn build_policy(config: &TrainConfig, capacity: usize) -> Result<(ActorCritic, String), String> {
    let (mpc, note) = match config.policy {
        PolicyKind::Acmpc => {
            let (m, note) = build_mpc(config, capacity)?;
            (Some(m), note)
        }
        PolicyKind::Mlp => (None, "AC-MLP policy: no MPC layer".to_string()),
    };
    let p = ActorCritic::with_cost_map(config.policy, config.net.hidden, mpc, config.log_std_init(), config.seed, config.net.cost_map)
        .map_err(|e| e.to_string())?;
    Ok((p, note))
}

impl Agent {
    /// Loads a checkpoint (a checkpoint directory, or a run directory with `checkpoints/latest`).
    pub fn load(path: &Path) -> Result<Agent, String> {
        let ck: Checkpoint = checkpoint::load(path).map_err(|e: CheckpointError| e.to_string())?;
        let (policy, _) = build_policy(&ck.config, 1)?;
        policy.params.load(&ck.model).map_err(|e| format!("{}: {e}", ck.dir.display()))?;
        Ok(Agent { policy, normalizer: ck.normalizer, config: ck.config })
    }

    /// Normalised network features of one observation.
    pub fn features(&self, obs: &[f32]) -> [f32; N_FEATURES] {
        let mut f = [0f32; N_FEATURES];
        self.normalizer.normalize_into(obs, FEATURES, &mut f);
        f
    }
}

/// One evaluated episode.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeReport {
    /// How it ended.
    pub outcome: String,
    /// Sum of rewards.
    pub ret: f64,
    /// Steps flown.
    pub steps: u32,
    /// Gates passed.
    pub gates_passed: u32,
    /// Laps completed.
    pub laps: u32,
    /// Lap times (s): the first from the standing start, then flying laps.
    pub lap_times: Vec<f64>,
    /// Peak speed (m/s).
    pub peak_speed: f64,
    /// Mean speed (m/s).
    pub mean_speed: f64,
    /// Policy inference time per step (ms): median.
    pub inference_ms_median: f64,
    /// Mean.
    pub inference_ms_mean: f64,
    /// 95th percentile.
    pub inference_ms_p95: f64,
    /// The flown trajectory (not serialised into the summary).
    #[serde(skip)]
    pub trajectory: Trajectory,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Flies one deterministic episode (action = clip(mean)); the MPC is warm-started with its own
/// previous first control, as in the reference's no-grad calls.
pub fn run_episode(agent: &Agent, track: &Track, env_config: &EnvConfig, seed: u64) -> Result<EpisodeReport, String> {
    use rand::SeedableRng;
    let mut env = RacingEnv::new(track.clone(), env_config.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    env.reset(&mut rng);
    let mut warm = [HOVER_THRUST, 0.0, 0.0, 0.0];
    let mut traj = Trajectory { dt: env_config.dt, ..Default::default() };
    let mut times = Vec::new();
    let mut ret = 0.0;
    let outcome: Event = loop {
        let s = env.state();
        traj.pos.push([s[0], s[1], s[2]]);
        traj.vel.push([s[7], s[8], s[9]]);
        let obs = env.observation();
        let f = agent.features(&obs);
        let t0 = std::time::Instant::now();
        let acting = agent.policy.act(&f, &s, &warm).map_err(|e| e.to_string())?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        let a = acting.mean[0].map(|v| v.clamp(-1.0, 1.0));
        warm = acting.control[0];
        traj.controls.push(action_to_control(a));
        let out = env.step(a);
        ret += out.reward;
        if out.done {
            let s = env.state();
            traj.pos.push([s[0], s[1], s[2]]);
            traj.vel.push([s[7], s[8], s[9]]);
            break out.event;
        }
    };
    let stats = env.stats().clone();
    let speeds: Vec<f64> = traj.vel.iter().map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok(EpisodeReport {
        outcome: format!("{outcome:?}"),
        ret,
        steps: stats.length,
        gates_passed: stats.gates_passed,
        laps: stats.laps,
        lap_times: stats.lap_times.clone(),
        peak_speed: speeds.iter().cloned().fold(0.0, f64::max),
        mean_speed: speeds.iter().sum::<f64>() / speeds.len().max(1) as f64,
        inference_ms_median: percentile(&sorted, 0.5),
        inference_ms_mean: times.iter().sum::<f64>() / times.len().max(1) as f64,
        inference_ms_p95: percentile(&sorted, 0.95),
        trajectory: traj,
    })
}

/// What `mpc eval` writes to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalSummary {
    /// Checkpoint evaluated.
    pub checkpoint: String,
    /// Policy kind.
    pub policy: PolicyKind,
    /// MPC horizon and iterations (0 for the MLP policy).
    pub horizon: usize,
    /// iLQR iterations.
    pub iters: usize,
    /// Track id.
    pub track: String,
    /// Laps asked for per episode.
    pub laps_requested: u32,
    /// Episodes.
    pub episodes: Vec<EpisodeReport>,
    /// Episodes that ended by crash (ground) or missing a gate.
    pub crashes: usize,
    /// All lap times over all episodes.
    pub lap_times: Vec<f64>,
    /// Best flying lap (s), if any (laps after the first).
    pub best_flying_lap: Option<f64>,
    /// First lap from the standing start (s), of the first episode, if completed.
    pub first_lap: Option<f64>,
    /// Training environment steps of the checkpoint.
    pub trained_steps: u64,
    /// Wall-clock training time of the checkpoint (s).
    pub training_seconds: f64,
}

/// The evaluation environment derived from a training one: looping track, at most `laps` laps
/// and `max_steps` steps, always from the track's start pose (no random gate starts).
pub fn eval_env_config(train_env: &EnvConfig, laps: u32, max_steps: u32) -> EnvConfig {
    EnvConfig {
        loop_track_on_finish: true,
        max_laps_per_episode: Some(laps),
        max_steps,
        random_gate_start_prob: 0.0,
        ..train_env.clone()
    }
}

/// Evaluates `agent` for `episodes` episodes of up to `laps` laps on `track` and writes
/// `summary.json` and the plots (`top_down.png`, `trajectory_3d.png`, `states.png`) of the first
/// episode into `out`.
pub fn evaluate(agent: &Agent, ckpt: &Path, track: &Track, laps: u32, episodes: usize, max_steps: u32, out: &Path) -> Result<EvalSummary, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let env_cfg = eval_env_config(&agent.config.env, laps, max_steps);
    let mut reports = Vec::new();
    for e in 0..episodes.max(1) {
        reports.push(run_episode(agent, track, &env_cfg, agent.config.seed + 1000 + e as u64)?);
    }
    let first = &reports[0];
    let title = format!(
        "{} on {} — {}",
        match agent.config.policy {
            PolicyKind::Acmpc => format!("AC-MPC T={} K={}", agent.config.mpc.horizon, agent.config.mpc.iters),
            PolicyKind::Mlp => "AC-MLP".to_string(),
        },
        track.id,
        if first.lap_times.is_empty() { format!("{} gates, {}", first.gates_passed, first.outcome) } else {
            format!("laps {}", first.lap_times.iter().map(|t| format!("{t:.2} s")).collect::<Vec<_>>().join(", "))
        }
    );
    racing::plot::top_down_png(&out.join("top_down.png"), track, &first.trajectory, &title).map_err(|e| e.to_string())?;
    racing::plot::view_3d_png(&out.join("trajectory_3d.png"), track, &first.trajectory, &title).map_err(|e| e.to_string())?;
    racing::plot::states_controls_png(&out.join("states.png"), &first.trajectory, &title).map_err(|e| e.to_string())?;
    let crashes = reports.iter().filter(|r| r.outcome == "Ground" || r.outcome == "Miss").count();
    let lap_times: Vec<f64> = reports.iter().flat_map(|r| r.lap_times.iter().cloned()).collect();
    let best_flying_lap = reports.iter().flat_map(|r| r.lap_times.iter().skip(1).cloned()).fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))));
    let state = checkpoint::load(ckpt).map(|c| c.state).unwrap_or_default();
    let summary = EvalSummary {
        checkpoint: ckpt.display().to_string(),
        policy: agent.config.policy,
        horizon: agent.policy.horizon(),
        iters: if agent.config.policy == PolicyKind::Acmpc { agent.config.mpc.iters } else { 0 },
        track: track.id.clone(),
        laps_requested: laps,
        first_lap: first.lap_times.first().cloned(),
        episodes: reports,
        crashes,
        lap_times,
        best_flying_lap,
        trained_steps: state.steps,
        training_seconds: state.wall_seconds,
    };
    let p = out.join("summary.json");
    std::fs::write(&p, serde_json::to_string_pretty(&summary).expect("summary serialises")).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(summary)
}
