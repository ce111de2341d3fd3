//! The training loop of `mpc train`: rollouts on the batched environment, PPO updates, logs
//! (CSV + TensorBoard), periodic deterministic evaluation, atomic checkpoints and `--resume`.

use crate::checkpoint::{self, TrainState};
use crate::config::{GradientKind, TrainConfig};
use crate::evaluate::{Agent, build_policy, run_episode};
use crate::logging::{CsvLog, TensorBoardWriter};
use crate::mpc_layer::{HOVER_THRUST, NX};
use crate::normalize::ObsNormalizer;
use crate::optim::Adam;
use crate::policy::{FEATURES, N_FEATURES};
use crate::ppo::{self, RolloutBuffer};
use indicatif::{ProgressBar, ProgressStyle};
use mpc_runtime::solver::GradientMode;
use racing::env::{OBS_DIM, VecEnv};
use racing::track::Track;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The solver's gradient mode for a configuration.
pub fn gradient_mode(cfg: &TrainConfig) -> GradientMode {
    match cfg.mpc.gradient {
        GradientKind::GaussNewton => GradientMode::GaussNewton,
        GradientKind::Exact => GradientMode::Exact,
    }
}

/// Resident memory of this process in MiB (Linux `/proc/self/statm`; NaN elsewhere).
pub fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<f64>().ok()))
        .map(|pages| pages * 4096.0 / (1024.0 * 1024.0))
        .unwrap_or(f64::NAN)
}

/// Options of one training run besides the configuration.
pub struct RunOptions {
    /// Run directory (logs, checkpoints, plots).
    pub out: PathBuf,
    /// Continue from `out/checkpoints/latest`.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
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

/// CSV columns, one row per PPO update.
pub const CSV_COLUMNS: &[&str] = &[
    "update", "steps", "wall_s", "steps_per_s", "lr", "ep_return_mean100", "ep_length_mean100", "ep_gates_mean100",
    "ep_laps_mean100", "lap_time_mean100", "crash_fraction100", "episodes", "policy_loss", "value_loss", "approx_kl",
    "clip_fraction", "grad_norm", "explained_variance", "std", "rollout_s", "update_s", "rss_mib", "eval_return",
    "eval_gates", "eval_lap_time", "policy_minibatches", "critic_only_minibatches", "actor_lr", "heap_mib",
    "mpc_non_finite", "mpc_grads_masked",
];

#[derive(Default)]
struct EpisodeWindow {
    items: VecDeque<(f64, f64, f64, f64, Option<f64>, bool)>,
}

impl EpisodeWindow {
    fn push(&mut self, s: &racing::env::EpisodeStats) {
        use racing::env::Event;
        let crash = matches!(s.end, Some(Event::Ground) | Some(Event::Miss));
        // Best flying lap, else the standing-start lap (after a gate spawn every timed lap flies).
        let standing = usize::from(!s.partial_first_lap);
        let lap = s.lap_times.iter().skip(standing).cloned().fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
            .or(s.lap_times.first().cloned());
        self.items.push_back((s.ret, s.length as f64, s.gates_passed as f64, s.laps as f64, lap, crash));
        while self.items.len() > 100 {
            self.items.pop_front();
        }
    }
    fn mean(&self, f: impl Fn(&(f64, f64, f64, f64, Option<f64>, bool)) -> Option<f64>) -> f64 {
        let v: Vec<f64> = self.items.iter().filter_map(f).collect();
        if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
    }
}

/// Trains a policy as `cfg` says, writing into `opts.out`.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    if std::env::var_os("MPC_KEEP_SUBNORMALS").is_none() {
        crate::fpu::flush_denormals_for_training();
    }
    let track = Track::resolve(&cfg.track)?;
    let ckpt_root = opts.out.join("checkpoints");
    std::fs::create_dir_all(&opts.out)?;
    let (policy, note) = build_policy(cfg, cfg.n_envs.max(cfg.ppo.batch_size)).map_err(anyhow::Error::msg)?;
    eprintln!("mpc train: {note}");
    let mut opt = Adam::new(policy.params.vars.clone(), cfg.ppo.lr_init, cfg.ppo.adam_eps)?;
    let mut normalizer = ObsNormalizer::new(OBS_DIM);
    let mut state = TrainState { actor_lr_scale: cfg.ppo.actor_lr_scale, ..TrainState::default() };
    if opts.resume {
        let ck = checkpoint::load(&ckpt_root).map_err(|e| anyhow::anyhow!("--resume: {e}"))?;
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
        opt.load_state(&ck.optimizer, ck.state.adam_steps).map_err(anyhow::Error::msg)?;
        normalizer = ck.normalizer;
        state = ck.state;
        eprintln!("resuming from {} at {} steps", ck.dir.display(), state.steps);
    }
    std::fs::write(opts.out.join("config.yaml"), cfg.to_yaml())?;
    if opts.resume {
        crate::logging::truncate_after(&opts.out.join("train.csv"), state.updates)?;
    }
    let mut csv = CsvLog::open(&opts.out.join("train.csv"), CSV_COLUMNS)?;
    let mut tb = TensorBoardWriter::create(&opts.out.join("tb"))?;

    let n = cfg.n_envs;
    // Environments are re-seeded per segment so that a resumed run does not replay the same
    // random spawns (the shipped tracks spawn deterministically anyway).
    let mut venv = VecEnv::new(track.clone(), cfg.env.clone(), n, cfg.seed.wrapping_add(state.updates.wrapping_mul(7919)));
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed ^ state.updates);
    let mut warm: Vec<f64> = (0..n).flat_map(|_| [HOVER_THRUST, 0.0, 0.0, 0.0]).collect();
    let mut obs = venv.observations();
    normalizer.update(&obs);
    let mut buf = RolloutBuffer::new(n);
    let mut window = EpisodeWindow::default();
    let mut first_mean_return = f64::NAN;
    let mut rss_first = f64::NAN;
    let started = Instant::now();
    let wall_before = state.wall_seconds;
    let steps_before = state.steps;
    let mut next_ckpt = (state.steps / cfg.log.checkpoint_every.max(1) + 1) * cfg.log.checkpoint_every.max(1);
    let mut next_eval = if cfg.log.eval_every > 0 { (state.steps / cfg.log.eval_every + 1) * cfg.log.eval_every } else { u64::MAX };
    let bar = if opts.progress {
        let b = ProgressBar::new(cfg.ppo.total_steps);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps ({per_sec}, eta {eta}) {msg}")
                .expect("progress template")
                .progress_chars("=> "),
        );
        b.set_position(state.steps);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut feats = vec![0f32; n * N_FEATURES];
    while state.steps < cfg.ppo.total_steps {
        let lr = cfg.learning_rate(state.steps);
        opt.lr = lr;
        opt.scale_lr("actor.", state.actor_lr_scale);
        buf.clear();
        let t_roll = Instant::now();
        let mut first_rollout_returns = Vec::new();
        for _ in 0..cfg.ppo.n_steps {
            for (i, o) in obs.iter().enumerate() {
                normalizer.normalize_into(o, FEATURES, &mut feats[i * N_FEATURES..(i + 1) * N_FEATURES]);
            }
            let states: Vec<f64> = venv.states().iter().flat_map(|s| s.iter().cloned()).collect();
            let acting = policy.act(&feats, &states, &warm)?;
            let std = policy.std()?;
            let mut actions = Vec::with_capacity(n);
            for i in 0..n {
                let mut a = [0f32; 4];
                let mut lp = 0.0;
                for k in 0..4 {
                    let eps: f64 = StandardNormal.sample(&mut rng);
                    let ak = acting.mean[i][k] + std[k] * eps;
                    a[k] = ak as f32;
                    let d = (a[k] as f64 - acting.mean[i][k]) / std[k];
                    lp += -0.5 * d * d - std[k].ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
                }
                buf.features.extend_from_slice(&feats[i * N_FEATURES..(i + 1) * N_FEATURES]);
                buf.states.extend_from_slice(&states[i * NX..(i + 1) * NX]);
                buf.warm.extend_from_slice(&warm[i * 4..(i + 1) * 4]);
                buf.actions.extend_from_slice(&a);
                buf.log_probs.push(lp as f32);
                buf.values.push(acting.value[i]);
                actions.push(a.map(|v| v.clamp(-1.0, 1.0)));
            }
            // The next warm start is this solve's first control (not reset at episode ends, §4.5).
            for i in 0..n {
                warm[i * 4..(i + 1) * 4].copy_from_slice(&acting.control[i]);
            }
            let step = venv.step(&actions);
            buf.rewards.extend_from_slice(&step.rewards);
            buf.dones.extend_from_slice(&step.dones);
            buf.len += 1;
            for s in &step.finished {
                window.push(s);
                state.episodes += 1;
                if state.updates == 0 {
                    first_rollout_returns.push(s.ret);
                }
            }
            obs = venv.observations();
            normalizer.update(&obs);
            state.steps += n as u64;
        }
        if state.updates == 0 && !first_rollout_returns.is_empty() {
            first_mean_return = first_rollout_returns.iter().sum::<f64>() / first_rollout_returns.len() as f64;
        }
        for (i, o) in obs.iter().enumerate() {
            normalizer.normalize_into(o, FEATURES, &mut feats[i * N_FEATURES..(i + 1) * N_FEATURES]);
        }
        let last_values: Vec<f32> =
            policy.value(&candle_core::Tensor::from_slice(&feats, (n, N_FEATURES), &candle_core::Device::Cpu)?)?.to_vec1()?;
        buf.finish(&last_values, cfg.ppo.gamma, cfg.ppo.gae_lambda);
        let rollout_s = t_roll.elapsed().as_secs_f64();
        let t_upd = Instant::now();
        let st = ppo::update(&policy, &mut opt, &buf, &cfg.ppo, &mut rng)?;
        let update_s = t_upd.elapsed().as_secs_f64();
        let actor_lr = lr * state.actor_lr_scale;
        if cfg.ppo.adaptive_actor_lr {
            state.actor_lr_scale = ppo::adapt_actor_lr_scale(state.actor_lr_scale, &st, cfg.ppo.target_kl);
        }
        state.updates += 1;
        state.adam_steps = opt.step;
        state.wall_seconds = wall_before + started.elapsed().as_secs_f64();
        let rss = resident_mib();
        if state.updates == 1 || rss_first.is_nan() {
            rss_first = rss;
        }
        // Periodic evaluation.
        let (mut eval_ret, mut eval_gates, mut eval_lap) = (f64::NAN, f64::NAN, f64::NAN);
        if state.steps >= next_eval || state.steps >= cfg.ppo.total_steps {
            next_eval = next_eval.saturating_add(cfg.log.eval_every.max(1));
            let agent = Agent { policy: policy.clone(), normalizer: normalizer.clone(), config: cfg.clone() };
            let mut rets = Vec::new();
            for e in 0..cfg.log.eval_episodes.max(1) {
                let r = run_episode(&agent, &track, &crate::evaluate::eval_env_config(&cfg.env, 2, 3000), cfg.seed + 1000 + e as u64).map_err(anyhow::Error::msg)?;
                rets.push(r);
            }
            eval_ret = rets.iter().map(|r| r.ret).sum::<f64>() / rets.len() as f64;
            eval_gates = rets.iter().map(|r| r.gates_passed as f64).sum::<f64>() / rets.len() as f64;
            eval_lap = rets.iter().flat_map(|r| r.lap_times.iter().cloned()).fold(f64::NAN, f64::min);
            if state.best_eval_return.is_none_or(|b| eval_ret > b) {
                state.best_eval_return = Some(eval_ret);
                // `best` never becomes `latest` (the resume point is the last regular one).
                checkpoint::save(&ckpt_root, "best", &policy, &opt, &normalizer, cfg, &state, false)?;
            }
        }
        let sps = (state.steps - steps_before) as f64 / started.elapsed().as_secs_f64();
        // Non-finite MPC solves and masked gradients of this update's rollout, PPO epochs and
        // evaluation: counted and logged, never fed to the optimiser as NaN.
        let health = policy.mpc_health();
        if health.non_finite_solves + health.masked_gradients + health.replaced_controls > 0 {
            eprintln!(
                "update {}: MPC layer: {} non-finite solves, {} masked gradients, {} replaced controls",
                state.updates, health.non_finite_solves, health.masked_gradients, health.replaced_controls
            );
        }
        let row = [
            state.updates as f64, state.steps as f64, state.wall_seconds, sps, lr,
            window.mean(|e| Some(e.0)), window.mean(|e| Some(e.1)), window.mean(|e| Some(e.2)), window.mean(|e| Some(e.3)),
            window.mean(|e| e.4), window.mean(|e| Some(if e.5 { 1.0 } else { 0.0 })), state.episodes as f64,
            st.policy_loss, st.value_loss, st.approx_kl, st.clip_fraction, st.grad_norm, st.explained_variance, st.std,
            rollout_s, update_s, rss, eval_ret, eval_gates, eval_lap, st.minibatches as f64, st.critic_only_minibatches as f64,
            actor_lr, crate::heap::live_heap_mib().unwrap_or(f64::NAN),
            health.non_finite_solves as f64, health.masked_gradients as f64,
        ];
        csv.row(&row)?;
        let tags: Vec<(&str, f64)> = CSV_COLUMNS.iter().zip(row.iter()).skip(3).map(|(k, v)| (*k, *v)).collect();
        tb.scalars(state.steps, &tags)?;
        bar.set_position(state.steps.min(cfg.ppo.total_steps));
        bar.set_message(format!(
            "ret {:.1} gates {:.1} lap {} kl {:.3} rss {:.0} MiB",
            window.mean(|e| Some(e.0)),
            window.mean(|e| Some(e.2)),
            { let l = window.mean(|e| e.4); if l.is_nan() { "-".to_string() } else { format!("{l:.2}s") } },
            st.approx_kl,
            rss
        ));
        if !opts.progress {
            eprintln!(
                "update {} steps {} sps {:.0} ret {:.2} gates {:.2} kl {:.4} mb {}+{} actor lr {:.1e} ev {:.2} std {:.3} roll {:.1}s upd {:.1}s rss {:.0}MiB",
                state.updates, state.steps, sps, window.mean(|e| Some(e.0)), window.mean(|e| Some(e.2)), st.approx_kl,
                st.minibatches, st.critic_only_minibatches, actor_lr,
                st.explained_variance, st.std, rollout_s, update_s, rss
            );
        }
        if state.steps >= next_ckpt || state.steps >= cfg.ppo.total_steps {
            next_ckpt = next_ckpt.saturating_add(cfg.log.checkpoint_every.max(1));
            let name = format!("step_{:09}", state.steps);
            // Make room first, so that at most keep_last regular checkpoints exist at any moment
            // (`latest` is never deleted, so keep_last = 1 briefly holds two).
            checkpoint::prune(&ckpt_root, cfg.log.keep_last.saturating_sub(1))?;
            checkpoint::save(&ckpt_root, &name, &policy, &opt, &normalizer, cfg, &state, true)?;
            checkpoint::prune(&ckpt_root, cfg.log.keep_last)?;
        }
    }
    bar.finish();
    let ckpt = checkpoint::resolve(&ckpt_root).unwrap_or_else(|_| ckpt_root.clone());
    let summary = RunSummary {
        steps: state.steps,
        wall_seconds: state.wall_seconds,
        steps_per_second: (state.steps - steps_before) as f64 / started.elapsed().as_secs_f64(),
        mean_return: window.mean(|e| Some(e.0)),
        first_mean_return,
        rss_mib: (rss_first, resident_mib()),
        checkpoint: ckpt,
    };
    std::fs::write(opts.out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    Ok(summary)
}

/// Training curves of a run directory as one PNG (`train.csv` → `training.png`).
pub fn plot_run(out: &Path) -> anyhow::Result<PathBuf> {
    let (header, cols) = crate::logging::read_csv(&out.join("train.csv"))?;
    let col = |name: &str| header.iter().position(|h| h == name).map(|i| &cols[i]);
    let steps = col("steps").ok_or_else(|| anyhow::anyhow!("train.csv has no steps column"))?;
    let mut series = Vec::new();
    for (name, title, ylabel) in [
        ("ep_return_mean100", "episode return (mean of last 100)", "return"),
        ("ep_gates_mean100", "gates passed per episode", "gates"),
        ("ep_length_mean100", "episode length (mean of last 100; 2500 = timeout)", "steps"),
        ("lap_time_mean100", "lap time (mean of last 100 episodes with a lap)", "s"),
        ("eval_return", "deterministic evaluation return", "return"),
        ("approx_kl", "approximate KL", "KL"),
        ("actor_lr", "actor learning rate", "lr"),
        ("rss_mib", "resident memory", "MiB"),
        ("heap_mib", "live heap", "MiB"),
    ] {
        if let Some(c) = col(name) {
            let pts: Vec<(f64, f64)> = steps.iter().zip(c).filter(|(_, y)| y.is_finite()).map(|(x, y)| (*x, *y)).collect();
            series.push((title.to_string(), ylabel.to_string(), pts));
        }
    }
    let p = out.join("training.png");
    racing::plot::curves_png(&p, "training", &series).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(p)
}
